#!/usr/bin/env bats
# The share over virtio-9p ([hypervisor] shared_fs = virtio-9p; docs/
# share.md, "virtio-9p"): QEMU serves the containers' files itself, from
# its jail.  One pod VM serves the tests; a privileged container in it
# (what an escaped container has: guest root, the guest's PID namespace)
# reaches the agent's own 9p mount and plays the hostile guest.  Two
# short-lived sandboxes show the error when the guest cannot mount the
# share (no device with its tag; Debian's kernel, without 9p, when
# make guest-debian built it).

load lib/husk.sh

setup_file() {
	local caps
	export ROOT=$(mktemp -d /tmp/husk-9p.XXXXXX)/root
	export HV="$BATS_FILE_TMPDIR/host"
	export VICTIM=$(mktemp -d /tmp/husk-victim.XXXXXX)
	export POD="$BATS_FILE_TMPDIR/pod"
	export CONF="$BATS_FILE_TMPDIR/husk.conf"
	[ "$(id -u)" = 0 ] || return 0
	[ -f "$HUSK_SRC/build/guest/vmlinux" ] || [ -f "$BUILD/guest/vmlinux" ] ||
		return 0
	mkdir -p "$HV/rw" "$HV/ro"
	echo precious >"$VICTIM/marker"
	echo original >"$HV/ro/f"
	printf '[hypervisor]\nshared_fs = virtio-9p\n' >"$CONF"
	make_bundle "$POD" sleep 100000
	echo "from the image" >"$POD/rootfs/etc/marker"
	for a in chown chmod mknod; do
		ln -sf busybox "$POD/rootfs/bin/$a"
	done
	# The top of the share as the guest kernel has it: the agent's own
	# 9p mount, reached through PID 1's root.
	ln -s /proc/1/root/run/husk/shared "$POD/rootfs/mnt2"
	set_annotations "$POD" '{"io.kubernetes.cri.container-type": "sandbox"}'
	escaped_pod "$POD" "$HV/rw" "$HV/ro" "$CONF" || return 1
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")" "$VICTIM"
}

setup() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	[ -f "$BUILD/guest/vmlinux" ] || skip "no guest image (make guest)"
}

# The index of a mount of the pod by destination (its mounts/N).
pod_mount() {
	jq --arg d "$1" '[.mounts[].destination] | index($d)' "$POD/config.json"
}

hv_status() {
	"$BUILD/bin/husk-ipc" -t 10 "$ROOT/pod/hv.sock" status '{}'
}

qemu_pid() {
	hv_status | jq -r .qemu_pid
}

@test "virtio-9p: the container reads its rootfs and writes a rw volume; the host and the guest see each other's files" {
	run husk exec pod cat /etc/marker
	[ "$status" -eq 0 ]
	[ "$output" = "from the image" ]
	run husk exec pod sh -c 'echo from the guest >/volrw/out && cat /volrw/out'
	[ "$status" -eq 0 ]
	[ "$output" = "from the guest" ]
	[ "$(cat "$HV/rw/out")" = "from the guest" ]
	# Files keep the owners the guest gives them (passthrough).
	husk exec pod chown 1000:1000 /volrw/out
	[ "$(stat -c %u:%g "$HV/rw/out")" = 1000:1000 ]
	# A container user owns what it makes, and can use it (not QEMU's
	# uid: security_model=none would give them that).
	mkdir -m 1777 "$HV/rw/tmp"
	run husk exec --user 1000:1000 pod sh -c 'echo mine >/volrw/tmp/f && chmod 600 /volrw/tmp/f && cat /volrw/tmp/f && echo more >>/volrw/tmp/f'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = mine ]
	[ "$(stat -c %u:%g:%a "$HV/rw/tmp/f")" = 1000:1000:600 ]
	[ "$(cat "$HV/rw/tmp/f")" = "$(printf 'mine\nmore')" ]
	# cache=mmap: what the host writes is what the guest reads next.
	echo "from the host" >"$HV/rw/in"
	run husk exec pod cat /volrw/in
	[ "$output" = "from the host" ]
	echo "changed" >"$HV/rw/in"
	run husk exec pod cat /volrw/in
	[ "$output" = "changed" ]
	# The agent mounted the share as 9p, with the measured options.
	run husk exec pod grep ' /run/husk/shared ' /proc/1/mounts
	echo "$output"
	[[ "$output" == "husk /run/husk/shared 9p "*"mmap"*"msize=512000"*"trans=virtio"* ]]
}

@test "virtio-9p: no virtiofsd; QEMU serves the share from its jail, with three file capabilities" {
	run hv_status
	[ "$status" -eq 0 ]
	[ "$(jq -r .shared_fs <<<"$output")" = virtio-9p ]
	[ "$(jq -r .virtiofsd_pid <<<"$output")" = 0 ]
	qpid=$(jq -r .qemu_pid <<<"$output")
	uid=$(jq -r .qemu_uid <<<"$output")
	run pgrep -f "virtiofsd.*$ROOT/pod/"
	[ "$status" -ne 0 ]
	tr '\0' ' ' <"/proc/$qpid/cmdline" | grep -q -- '-fsdev local,id=fs0,path=/share,security_model=passthrough,multidevs=remap'
	tr '\0' ' ' <"/proc/$qpid/cmdline" | grep -q -- '-device virtio-9p-pci,fsdev=fs0,mount_tag=husk'
	run grep -E '^(Uid|Cap[A-Za-z]+|NoNewPrivs|Seccomp|Seccomp_filters):' "/proc/$qpid/status"
	echo "$output"
	[ "$uid" -ge 2140000000 ]
	[[ "$output" =~ Uid:[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid ]]
	# CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and nothing else, in
	# every set (ambient: they survive the exec as a non-root uid).
	for set in Inh Prm Eff Bnd Amb; do
		[[ "$output" =~ Cap$set:[[:space:]]+000000000000000b ]]
	done
	[[ "$output" =~ NoNewPrivs:[[:space:]]+1 ]]
	# The driver's filter (no setuid file, no device node) under
	# QEMU's own -sandbox.
	[[ "$output" =~ Seccomp_filters:[[:space:]]+2 ]]
	# Every mount point QEMU sees: its jail, its own /proc/self/fd, and
	# the share with the containers' binds under it.
	cat "/proc/$qpid/mountinfo"
	run awk '{ print $5 }' "/proc/$qpid/mountinfo"
	for m in $output; do
		case $m in
		/|/usr|/etc/ld.so.cache|/boot/vmlinux|/boot/initrd|/dev/null|/dev/urandom|/dev/kvm) ;;
		/proc/self/fd|/share|/share/pod/rootfs|/share/pod/mounts/*) ;;
		*) echo "unexpected mount $m"; false ;;
		esac
	done
	# /proc/self/fd is QEMU's own and no more of /proc.
	run awk '$5 == "/proc/self/fd" { print $4 }' "/proc/$qpid/mountinfo"
	[ "$output" = "/$qpid/fd" ]
	# The share: the host's read-only view, a slave (it gets the
	# host's binds, sends nothing back).
	run awk '$5 == "/share" { print $6, $7 }' "/proc/$qpid/mountinfo"
	[[ "$output" == ro,nosuid,nodev,noexec*" master:"* ]]
	n=$(pod_mount /volro)
	run awk -v m="/share/pod/mounts/$n" '$5 == m { print $6 }' "/proc/$qpid/mountinfo"
	[[ "$output" == ro,nosuid,nodev* ]]
	run awk '{ print $5 }' "/proc/$qpid/mountinfo"
	run grep -E "^(/run|/home|/root|/tmp|/var)(/|$)" <<<"$output"
	[ "$status" -ne 0 ]
	# QEMU could reopen a read-only disk for writing through its
	# /proc/self/fd: the driver does not offer one.
	truncate -s 1M "$BATS_TEST_TMPDIR/disk.img"
	run "$BUILD/bin/husk-ipc" -t 10 "$ROOT/pod/hv.sock" hotplug_block \
		"{\"id\": \"ro0\", \"path\": \"$BATS_TEST_TMPDIR/disk.img\", \"readonly\": true}"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"params.readonly: QEMU serves this VM's share over virtio-9p"* ]]
}

@test "virtio-9p: a read-only volume refuses writes, also through the guest's own mount of the share" {
	n=$(pod_mount /volro)
	run husk exec pod sh -c 'echo changed >/volro/f'
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	# Past the guest's read-only bind: the host's holds.
	run husk exec pod sh -c "echo changed >/mnt2/pod/mounts/$n/f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run husk exec pod sh -c "touch /mnt2/pod/mounts/$n/new"
	[ "$status" -ne 0 ]
	# The top of the share is read-only too: nothing planted there.
	run husk exec pod sh -c "mkdir /mnt2/other"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	[ "$(cat "$HV/ro/f")" = original ]
	[ "$(ls -A "$HV/ro")" = f ]
	# A second 9p mount of the share is refused (one per channel).
	run husk exec pod sh -c 'mkdir -p /m9 && mount -t 9p -o trans=virtio,version=9p2000.L husk /m9'
	[ "$status" -ne 0 ]
}

@test "virtio-9p: a guest root makes no setuid or setgid file and no device node on the host" {
	n=$(pod_mount /volrw)
	run husk exec pod sh -c 'echo x >/volrw/plain && chmod 4755 /volrw/plain'
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run husk exec pod chmod 2755 /volrw/plain
	[ "$status" -ne 0 ]
	run husk exec pod sh -c 'mkdir /volrw/d && chmod 2755 /volrw/d'
	[ "$status" -ne 0 ]
	run husk exec pod mknod /volrw/chr c 1 3
	[ "$status" -ne 0 ]
	run husk exec pod mknod "/mnt2/pod/mounts/$n/blk" b 8 0
	[ "$status" -ne 0 ]
	# A plain mode change works.
	husk exec pod chmod 700 /volrw/plain
	[ "$(stat -c %a "$HV/rw/plain")" = 700 ]
	run find "$HV/rw" -perm /6000 -o -type c -o -type b
	[ -z "$output" ]
}

@test "virtio-9p: a symlink made in the guest does not lead out of the share" {
	# Links the guest makes are links on the host, resolved by the
	# guest in its own tree.
	husk exec pod ln -s / /volrw/root
	husk exec pod ln -s "$VICTIM" /volrw/victim
	[ "$(readlink "$HV/rw/root")" = / ]
	[ "$(readlink "$HV/rw/victim")" = "$VICTIM" ]
	run husk exec pod cat /volrw/victim/marker
	[ "$status" -ne 0 ]
	run husk exec pod cat /volrw/root/etc/marker
	[ "$output" = "from the image" ]
	# QEMU itself never follows one: a directory the guest stands in
	# is swapped, on the host, for a link to a sibling that has the
	# file and for one to a host directory; walking on from the fid
	# it holds (whose path now ends in the link) finds nothing.
	mkdir -p "$HV/rw/dir" "$HV/rw/other/sub" "$HV/rw/dir2"
	echo followed >"$HV/rw/other/sub/secret"
	husk exec pod sh -c 'cd /volrw/dir && until [ -e /volrw/go ]; do sleep 0.1; done; cat sub/secret; ls' \
		</dev/null >"$BATS_TEST_TMPDIR/a.out" 2>&1 &
	a=$!
	husk exec pod sh -c 'cd /volrw/dir2 && until [ -e /volrw/go ]; do sleep 0.1; done; cat marker; ls' \
		</dev/null >"$BATS_TEST_TMPDIR/b.out" 2>&1 &
	b=$!
	# Both are in their directories once the guest has them open.
	for _ in $(seq 300); do
		[ "$(husk exec pod sh -c 'ls -l /proc/*/cwd 2>/dev/null' | grep -c -e '-> /volrw/dir$' -e '-> /volrw/dir2$')" = 2 ] && break
		sleep 0.1
	done
	mv "$HV/rw/dir" "$HV/rw/dir.old"
	mv "$HV/rw/dir2" "$HV/rw/dir2.old"
	ln -s other "$HV/rw/dir"
	ln -s "$VICTIM" "$HV/rw/dir2"
	touch "$HV/rw/go"
	st=0
	wait "$a" || st=$?
	cat "$BATS_TEST_TMPDIR/a.out"
	[ "$st" -ne 0 ]
	# Neither the file nor the listing of the link's target.
	run grep -c -x -e followed -e sub "$BATS_TEST_TMPDIR/a.out"
	[ "$output" = 0 ]
	st=0
	wait "$b" || st=$?
	cat "$BATS_TEST_TMPDIR/b.out"
	[ "$st" -ne 0 ]
	run grep -c -x -e precious -e marker "$BATS_TEST_TMPDIR/b.out"
	[ "$output" = 0 ]
	[ "$(ls -A "$VICTIM")" = marker ]
	[ "$(cat "$VICTIM/marker")" = precious ]
}

@test "virtio-9p: a container that joins the pod reaches QEMU's jail, and leaves it again" {
	local dir="$BATS_TEST_TMPDIR/c2"
	make_bundle "$dir" cat /etc/c2marker
	echo "c2's own" >"$dir/rootfs/etc/c2marker"
	set_annotations "$dir" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod"}'
	husk_detached create --bundle "$dir" c2
	qpid=$(qemu_pid)
	# Bound on the host after QEMU started: propagated into its jail.
	run awk '$5 == "/share/c2/rootfs" { print $6 }' "/proc/$qpid/mountinfo"
	[[ "$output" == *nosuid,nodev* ]]
	husk start c2
	wait_status c2 stopped
	husk delete c2
	# Its binds left QEMU's namespace with it: nothing keeps them busy.
	run awk '{ print $5 }' "/proc/$qpid/mountinfo"
	run grep -c '^/share/c2' <<<"$output"
	[ "$output" = 0 ]
}

@test "virtio-9p: delete --force leaves no process, mount or state" {
	qpid=$(qemu_pid)
	[ "$qpid" -gt 0 ]
	husk delete --force pod
	assert_gone pod
	run kill -0 "$qpid"
	[ "$status" -ne 0 ]
	run grep -F "$ROOT" /proc/self/mountinfo
	[ "$status" -ne 0 ]
	[ "$(cat "$HV/rw/out")" = "from the guest" ]
}

@test "virtio-9p: a guest that cannot mount the share says why, and leaves nothing" {
	# The agent takes the last husk.share=: a tag no device has is what
	# a kernel without 9p looks like from here (ENOENT against ENODEV).
	printf '[hypervisor]\nshared_fs = virtio-9p\nkernel_params = husk.share=nosuch\nmax_vcpus = 1\n' \
		>"$BATS_TEST_TMPDIR/husk.conf"
	make_bundle "$BATS_TEST_TMPDIR/b" true
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/husk.conf" \
		run --bundle "$BATS_TEST_TMPDIR/b" nomount
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"mount the 9p share nosuch on /run/husk/shared"* ]]
	[[ "$output" == *"CONFIG_9P_FS and CONFIG_NET_9P_VIRTIO"* ]]
	"$HUSK_BIN" --root "$ROOT" delete --force nomount 2>/dev/null || true
	assert_gone nomount
}

@test "virtio-9p: Debian's kernel, which has no 9p, is refused with the reason" {
	local g="$BUILD/guest/debian"
	[ -f "$g/vmlinux" ] && [ -f "$g/initrd.img" ] ||
		skip "no Debian guest kernel (make guest-debian)"
	printf '[hypervisor]\nshared_fs = virtio-9p\nkernel = "%s"\ninitrd = "%s"\nmax_vcpus = 1\n' \
		"$g/vmlinux" "$g/initrd.img" >"$BATS_TEST_TMPDIR/husk.conf"
	make_bundle "$BATS_TEST_TMPDIR/b" true
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/husk.conf" \
		run --bundle "$BATS_TEST_TMPDIR/b" debian
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"mount the 9p share husk on /run/husk/shared"* ]]
	[[ "$output" == *"Debian's, GUEST_KERNEL=debian, has not"* ]]
	[[ "$output" == *"No such device"* ]]
	"$HUSK_BIN" --root "$ROOT" delete --force debian 2>/dev/null || true
	assert_gone debian
}
