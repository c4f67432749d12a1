# One guest VM started by a bats file itself (sourced after rootfs.sh):
# q35 + qboot + the PVH vmlinux under TCG, virtiofsd sharing a busybox
# rootfs, the agent on the virtio-serial port at $VT/agent.sock.
#
#   vm_skip_unless_ready      skip the file when something is missing
#   vm_start NAME [APPEND]    set VT, start virtiofsd and QEMU
#   vm_stop [PIDFILE...]      kill those, QEMU and virtiofsd; remove VT

VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

vm_skip_unless_ready() {
	local f
	for f in vmlinux initrd.img initrd.init; do
		[ -f "$GUEST/$f" ] || skip "$GUEST/$f missing (make guest)"
	done
	grep -q husk-agent-static "$GUEST/initrd.init" ||
		skip "initrd.img was not built with the agent (make guest)"
	[ -x "$VIRTIOFSD" ] || skip "no virtiofsd at $VIRTIOFSD"
	command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
	[ -f /usr/share/qemu/qboot.rom ] || skip "no qboot.rom"
	[ "$(id -u)" = 0 ] || skip "virtiofsd needs root"
}

vm_start() {
	local cmdline
	export VT=$(mktemp -d "/tmp/husk-$1.XXXXXX")
	chmod 0700 "$VT"
	mkdir -p "$VT/share"
	make_rootfs "$VT/share/rootfs"
	"$VIRTIOFSD" --socket-path="$VT/vfs.sock" -o source="$VT/share" \
		-o cache=none --thread-pool-size=1 2>"$VT/virtiofsd.log" &
	echo $! >"$VT/virtiofsd.pid"
	for _ in $(seq 300); do [ -S "$VT/vfs.sock" ] && break; sleep 0.01; done
	cmdline="console=ttyS0 quiet panic=-1 nolapic_timer cryptomgr.notests"
	cmdline+=" tsc=reliable no_timer_check noreplace-smp i8042.noaux"
	cmdline+=" 8250.nr_uarts=1 random.trust_cpu=on${2:+ $2}"
	qemu-system-x86_64 -accel tcg -nodefaults -no-user-config -nographic \
		-no-reboot -m 256 -smp 1 -M q35 -bios /usr/share/qemu/qboot.rom \
		-kernel "$GUEST/vmlinux" -initrd "$GUEST/initrd.img" \
		-append "$cmdline" \
		-chardev "file,id=con,path=$VT/console.log" -serial chardev:con \
		-device virtio-serial-pci,id=vser0 \
		-chardev "socket,id=agent,path=$VT/agent.sock,server=on,wait=off" \
		-device virtserialport,bus=vser0.0,chardev=agent,name=agent.channel.0 \
		-object memory-backend-memfd,id=mem,size=256M,share=on \
		-numa node,memdev=mem \
		-chardev "socket,id=vfs,path=$VT/vfs.sock" \
		-device vhost-user-fs-pci,chardev=vfs,tag=husk \
		>"$VT/qemu.log" 2>&1 &
	echo $! >"$VT/qemu.pid"
	for _ in $(seq 500); do [ -S "$VT/agent.sock" ] && break; sleep 0.01; done
}

vm_stop() {
	local p
	[ -n "${VT:-}" ] || return 0
	for p in "$@" qemu virtiofsd; do
		[ -f "$VT/$p.pid" ] || continue
		kill "$(cat "$VT/$p.pid")" 2>/dev/null || true
	done
	rm -rf "$VT"
}
