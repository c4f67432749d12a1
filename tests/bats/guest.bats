#!/usr/bin/env bats
# The guest image from `make guest`: which kernel it is (husk's own by
# default, Debian's with GUEST_KERNEL=debian), that husk's kernel has
# what the agent needs, what is in the initramfs, that guest/mkinitrd
# is reproducible, and one TCG boot of the test init (guest/testinit.c)
# that must say READY on the agent channel and read a file from a
# virtio-fs share.  Builds nothing: `make guest` must have run (make
# check sees to it).

setup_file() {
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	cd "$HUSK_SRC" || return 1
	G=$(cd "${BUILD:-build}" 2>/dev/null && pwd)/guest
	# bats 1.8 cannot skip from setup_file: setup() skips instead.
	MISSING=
	for f in kernel vmlinux initrd.img initrd-testinit.img testinit \
	    bootwait kver; do
		[ -e "$G/$f" ] || { MISSING=$G/$f; break; }
	done
	K=$(cat "$G/kernel" 2>/dev/null)
	export HUSK_SRC G MISSING K
	[ -z "$MISSING" ] || return 0

	# One boot serves the boot tests below; it runs here so that a
	# filtered run of the listing tests does not pay for it.
	command -v qemu-system-x86_64 >/dev/null || return 0
	export BOOT=$BATS_FILE_TMPDIR/boot
	mkdir -p "$BOOT/share"
	echo "husk-share-$$" > "$BOOT/share/probe.txt"
	share=()
	if [ "$(id -u)" = 0 ] && [ -x /usr/lib/qemu/virtiofsd ]; then
		share=(--share "$BOOT/share" --testfs probe.txt)
		touch "$BOOT/with-share"
	fi
	BUILD=$G/.. guest/boot-test --kernel "$G/vmlinux" \
		--initrd "$G/initrd-testinit.img" "${share[@]}" \
		--timeout 60 --out "$BOOT/channel" --log "$BOOT/console" \
		>"$BOOT/seconds" 2>"$BOOT/stderr" || true
}

setup() {
	[ -z "$MISSING" ] || skip "$MISSING missing: run 'make guest' first"
	cd "$HUSK_SRC" || return 1
}

listing() {
	cpio -it --quiet < "$1"
}

debian_only() {
	[ "$K" = debian ] || skip "husk's kernel has no modules (GUEST_KERNEL=debian has)"
}

@test "the guest kernel is the one GUEST_KERNEL names, husk's by default" {
	[[ "$K" == husk || "$K" == debian ]]
	cmp "$G/vmlinux" "$G/$K/vmlinux"
	cmp "$G/initrd.img" "$G/$K/initrd.img"
	# What make would do (-n: nothing is run): the default copies up
	# husk's kernel, GUEST_KERNEL=debian Debian's, anything else is
	# refused.
	run make -n --no-print-directory BUILD="$G/.." guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"guest/husk/vmlinux"* ]]
	[[ "$output" != *"guest/debian/"* ]]
	run make -n --no-print-directory BUILD="$G/.." GUEST_KERNEL=debian guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"guest/debian/vmlinux"* ]]
	[[ "$output" != *"guest/husk/"* ]]
	run make -n --no-print-directory BUILD="$G/.." GUEST_KERNEL=fedora guest
	[ "$status" -ne 0 ]
	[[ "$output" == *"GUEST_KERNEL=fedora: must be husk or debian"* ]]
}

@test "husk's kernel has what the agent and containers need, and no modules" {
	[ -f "$G/husk/config" ] || skip "husk's kernel not built (make guest)"
	c=$G/husk/config
	for o in PVH VIRTIO_PCI VIRTIO_MMIO VIRTIO_CONSOLE FUSE_FS VIRTIO_FS \
	    NET_9P_VIRTIO 9P_FS VIRTIO_NET VIRTIO_BLK VIRTIO_BALLOON \
	    PAGE_REPORTING UNIX INET IPV6 PACKET DEVTMPFS BLK_DEV_INITRD \
	    OVERLAY_FS TMPFS POSIX_MQUEUE SYSVIPC MULTIUSER \
	    UTS_NS IPC_NS USER_NS PID_NS NET_NS TIME_NS \
	    CGROUPS MEMCG CGROUP_SCHED CFS_BANDWIDTH CGROUP_PIDS \
	    CGROUP_FREEZER CPUSETS CGROUP_DEVICE CGROUP_CPUACCT \
	    CGROUP_HUGETLB BLK_CGROUP BLK_DEV_THROTTLING CGROUP_BPF \
	    BPF_SYSCALL CGROUP_NET_CLASSID CGROUP_NET_PRIO SWAP \
	    SECCOMP_FILTER ACPI ACPI_BUTTON INPUT_EVDEV HOTPLUG_CPU \
	    ACPI_HOTPLUG_CPU MEMORY_HOTPLUG MEMORY_HOTREMOVE \
	    ACPI_HOTPLUG_MEMORY HOTPLUG_PCI_PCIE HOTPLUG_PCI_ACPI \
	    PCI_MSI SERIAL_8250_CONSOLE UNIX98_PTYS BINFMT_SCRIPT TUN VETH; do
		grep -qx "CONFIG_$o=y" "$c" || { echo "CONFIG_$o is not y in $c"; false; }
	done
	run grep -x 'CONFIG_MODULES=y' "$c"
	[ "$status" -ne 0 ]
	# Each option of the fragment made it (build-kernel checks it too).
	run sh -c "grep -E '^CONFIG_[A-Za-z0-9_]+=' guest/kernel.config |
		grep -vxFf '$c'"
	[ -z "$output" ]
}

@test "initramfs has /init, and the load order its kernel needs" {
	for img in "$G/initrd.img" "$G/initrd-testinit.img"; do
		run listing "$img"
		[ "$status" -eq 0 ]
		[[ "$output" == *$'\n'init$'\n'* || "$output" == init$'\n'* ]]
		[[ "$output" == *lib/modules/load-order* ]]
		if [ "$K" = husk ]; then
			[[ "$output" != *".ko"* ]] || { echo "a module in $img"; false; }
			run sh -c "cpio -i --quiet --to-stdout lib/modules/load-order < '$img' | wc -c"
			[ "$output" = 0 ]
			continue
		fi
		for m in virtio_ring virtio virtio_pci virtio_mmio \
		    virtio_console fuse virtiofs virtio_net virtio_blk button evdev; do
			[[ "$output" == *"lib/modules/$m.ko"* ]] ||
				{ echo "no $m.ko in $img"; false; }
		done
	done
}

@test "load-order lists every module in the image, dependencies first" {
	debian_only
	run sh -c "cpio -i --quiet --to-stdout lib/modules/load-order \
		< '$G/initrd-testinit.img'"
	[ "$status" -eq 0 ]
	order=$output
	listed=$(listing "$G/initrd-testinit.img" | grep '\.ko$' | sort)
	[ "$(echo "$order" | sed 's,^/,,' | sort)" = "$listed" ]
	pos() { echo "$order" | grep -n "/$1.ko\$" | cut -d: -f1; }
	[ "$(pos virtio_ring)" -lt "$(pos virtio)" ]
	[ "$(pos virtio)" -lt "$(pos virtio_pci)" ]
	[ "$(pos virtio_pci_modern_dev)" -lt "$(pos virtio_pci)" ]
	[ "$(pos virtio)" -lt "$(pos virtio_console)" ]
	[ "$(pos fuse)" -lt "$(pos virtiofs)" ]
}

@test "modules are stored uncompressed (finit_module needs no decompressor)" {
	debian_only
	run sh -c "cpio -i --quiet --to-stdout lib/modules/virtiofs.ko \
		< '$G/initrd-testinit.img' | head -c 4 | od -An -c | tr -d ' '"
	[ "$output" = '177ELF' ]
}

@test "entries are owned by root with a fixed mtime" {
	run sh -c "cpio -itv --quiet < '$G/initrd-testinit.img' |
		awk '\$3 != \"root\" || \$4 != \"root\"'"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# Every newc header's c_mtime is SOURCE_DATE_EPOCH's default, 0
	# (cpio -tv shows only the day): entries with another are printed.
	run python3 -c 'import sys
d = open(sys.argv[1], "rb").read()
o = n = 0
while True:
    f = [int(d[o + 6 + 8 * i:o + 14 + 8 * i], 16) for i in range(13)]
    name = d[o + 110:o + 109 + f[11]].decode()
    if name == "TRAILER!!!":
        break
    if f[5] != 0:
        print("mtime", f[5], name)
    n += 1
    o = (o + 110 + f[11] + 3) & ~3
    o = (o + f[6] + 3) & ~3
print("entries", n)' "$G/initrd-testinit.img"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	# /init, 6 mount points, lib, lib/modules, load-order (+ modules)
	[ "${lines[0]#entries }" -ge 10 ]
}

@test "mkinitrd gives the same bytes twice" {
	mk() {
		if [ "$K" = husk ]; then
			guest/mkinitrd --init "$G/testinit" --no-modules --out "$1"
		else
			guest/mkinitrd --init "$G/testinit" \
				--kernel-root "$(cat "$G/kroot")" \
				--kver "$(cat "$G/kver")" --out "$1"
		fi
	}
	[ "$K" = husk ] || [ -d "$(cat "$G/kroot")" ] ||
		skip "kernel package cache gone: make guest-clean guest"
	mk "$BATS_TEST_TMPDIR/a.img"
	# A different umask and staging folder must not show in the result.
	(umask 077; TMPDIR=$BATS_TEST_TMPDIR mk "$BATS_TEST_TMPDIR/b.img")
	a=$(sha256sum < "$BATS_TEST_TMPDIR/a.img")
	b=$(sha256sum < "$BATS_TEST_TMPDIR/b.img")
	[ "$a" = "$b" ]
}

@test "vmlinux is an ELF kernel with a PVH entry note" {
	run sh -c "readelf -n '$G/vmlinux' | grep -E 'Xen.*(\(0x00000012\)|PHYS32)'"
	[ "$status" -eq 0 ]
}

# elfgap (guest/guest.mk): the 2 MiB alignment after .text is in no
# segment, so QEMU neither copies those zeros into guest RAM nor maps
# them.
@test "husk's vmlinux: no segment loads the zeros between .text and .rodata" {
	[ "$K" = husk ] || skip "elfgap runs on husk's kernel only"
	sections=$(readelf -SW "$G/vmlinux" | sed -n 's/^ *\[ *[0-9]*\] *//p')
	read -r ta ts < <(awk '$1 == ".text" { print $3, $5 }' <<<"$sections")
	ra=$(awk '$1 == ".rodata" { print $3 }' <<<"$sections")
	[ -n "$ta" ]
	[ -n "$ts" ]
	[ -n "$ra" ]
	lo=$(( (16#$ta + 16#$ts + 4095) & ~4095 ))
	hi=$(( 16#$ra & ~4095 ))
	[ "$hi" -gt "$lo" ]
	n=0
	while read -r va ms; do
		va=$((va)) ms=$((ms))
		n=$((n + 1))
		if [ "$va" -lt "$hi" ] && [ $((va + ms)) -gt "$lo" ]; then
			echo "a LOAD segment at $va (+$ms) covers the gap"
			false
		fi
	done < <(readelf -lW "$G/vmlinux" | awk '$1 == "LOAD" { print $3, $6 }')
	[ "$n" -ge 5 ]
}

@test "testinit boots under TCG and says READY on agent.channel.0 within 60 s" {
	[ -n "${BOOT:-}" ] || skip "qemu-system-x86_64 not installed"
	echo "boot-test: $(cat "$BOOT/seconds") s"
	cat "$BOOT/stderr"
	[ -s "$BOOT/seconds" ]
	[ "$(head -n 1 "$BOOT/channel")" = READY ]
	grep -q HUSK-TESTINIT-READY "$BOOT/console"
}

@test "the guest reads a file from the virtio-fs share" {
	[ -n "${BOOT:-}" ] || skip "qemu-system-x86_64 not installed"
	[ -e "$BOOT/with-share" ] || skip "virtiofsd needs root"
	cat "$BOOT/console"
	grep -qx "FILE husk-share-[0-9]*" "$BOOT/channel"
}
