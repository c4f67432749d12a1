#!/usr/bin/env bats
# husk-agent as PID 1 in the guest: one VM boot (QEMU started here, q35
# + qboot + the PVH vmlinux under TCG, virtiofsd for the share, the
# agent on the virtio-serial port), then ping, a busybox container
# whose rootfs comes over virtio-fs, and a power-off.

load lib/rootfs.sh

GUEST=${BUILD:-build}/guest
IPC=${BUILD:-build}/bin/husk-ipc
CLIENT=${BUILD:-build}/tests/helpers/agent_client
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

setup_file() {
	for f in vmlinux initrd.img initrd.init; do
		[ -f "$GUEST/$f" ] || skip "$GUEST/$f missing (make guest)"
	done
	grep -q husk-agent-static "$GUEST/initrd.init" ||
		skip "initrd.img was not built with the agent (make guest)"
	[ -x "$VIRTIOFSD" ] || skip "no virtiofsd at $VIRTIOFSD"
	command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
	[ -f /usr/share/qemu/qboot.rom ] || skip "no qboot.rom"
	[ "$(id -u)" = 0 ] || skip "virtiofsd needs root"

	export VT=$(mktemp -d /tmp/husk-agent-vm.XXXXXX)
	chmod 0700 "$VT"
	mkdir -p "$VT/share"
	make_rootfs "$VT/share/rootfs"
	"$VIRTIOFSD" --socket-path="$VT/vfs.sock" -o source="$VT/share" \
		-o cache=none --thread-pool-size=1 2>"$VT/virtiofsd.log" &
	echo $! >"$VT/virtiofsd.pid"
	for _ in $(seq 300); do [ -S "$VT/vfs.sock" ] && break; sleep 0.01; done
	local cmdline="console=ttyS0 quiet panic=-1 nolapic_timer cryptomgr.notests"
	cmdline+=" tsc=reliable no_timer_check noreplace-smp i8042.noaux"
	cmdline+=" 8250.nr_uarts=1 random.trust_cpu=on husk.log=debug"
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

teardown_file() {
	[ -n "${VT:-}" ] || return 0
	local p
	for p in qemu virtiofsd; do
		[ -f "$VT/$p.pid" ] || continue
		kill "$(cat "$VT/$p.pid")" 2>/dev/null || true
	done
	rm -rf "$VT"
}

show_console() {
	echo "# guest console:"
	sed 's/^/#   /' "$VT/console.log" | tail -n 40
}

@test "agent-vm: the agent answers ping over virtio-serial" {
	run "$IPC" -t 90 "$VT/agent.sock" ping
	[ "$status" -eq 0 ] || show_console
	[ "$output" = "{}" ]
	run "$IPC" "$VT/agent.sock" get_guest_details
	[[ "$output" == *'"host_mode":false'* ]]
	[[ "$output" == *'"cgroup":"v2"'* ]]
}

@test "agent-vm: echo hello in a busybox container from virtio-fs" {
	local spec='{"process":{"args":["sh","-c","echo hello; hostname"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"},"hostname":"vmc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]}}'
	run "$CLIENT" --no-stdin "$VT/agent.sock" run c1 "$spec"
	[ "$status" -eq 0 ] || show_console
	[ "$output" = $'hello\nvmc' ]
}

@test "agent-vm: destroy_sandbox with poweroff stops the VM" {
	"$IPC" "$VT/agent.sock" destroy_sandbox '{"poweroff":true}'
	local pid
	pid=$(cat "$VT/qemu.pid")
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null
	grep -q "reboot: Power down" "$VT/console.log"
}
