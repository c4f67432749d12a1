#!/usr/bin/env bats
# husk-agent as PID 1 in the guest: one VM boot (QEMU started here, q35
# + qboot + the PVH vmlinux under TCG, virtiofsd for the share, the
# agent on the virtio-serial port), then ping, a busybox container
# whose rootfs comes over virtio-fs, and a power-off.

load lib/rootfs.sh
load lib/vm.sh

GUEST=${BUILD:-build}/guest
IPC=${BUILD:-build}/bin/husk-ipc
CLIENT=${BUILD:-build}/tests/helpers/agent_client

setup_file() {
	vm_skip_unless_ready
	vm_start agent-vm husk.log=debug
}

teardown_file() {
	vm_stop
}

show_console() {
	echo "# guest console:"
	sed 's/^/#   /' "$VT/console.log" | tail -n 40
}

@test "agent-vm: the agent answers ping over virtio-serial" {
	run "$IPC" -t 90 "$VT/agent.sock" ping
	[ "$status" -eq 0 ] || { show_console; false; }
	[ "$output" = "{}" ]
	run "$IPC" "$VT/agent.sock" get_guest_details
	[[ "$output" == *'"host_mode":false'* ]]
	[[ "$output" == *'"cgroup":"v2"'* ]]
}

@test "agent-vm: echo hello in a busybox container from virtio-fs" {
	local spec='{"process":{"args":["sh","-c","echo hello; hostname"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"},"hostname":"vmc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]}}'
	run "$CLIENT" --no-stdin "$VT/agent.sock" run c1 "$spec"
	[ "$status" -eq 0 ] || { show_console; false; }
	[ "$output" = $'hello\nvmc' ]
}

@test "agent-vm: destroy_sandbox with poweroff stops the VM" {
	"$IPC" "$VT/agent.sock" destroy_sandbox '{"poweroff":true}'
	local pid
	pid=$(cat "$VT/qemu.pid")
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	run kill -0 "$pid"
	[ "$status" -ne 0 ]
	grep -q "reboot: Power down" "$VT/console.log"
}
