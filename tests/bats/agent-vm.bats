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

# vm_spec ARGS-JSON [LINUX-MEMBERS]: a container spec for the VM's agent.
vm_spec() {
	printf '{"process":{"args":%s,"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"},"hostname":"vmc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],"linux":{%s"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]}}' \
		"$1" "${2:-}"
}

@test "agent-vm: set_guest_datetime sets the guest's clock" {
	run "$IPC" "$VT/agent.sock" set_guest_datetime '{"sec": 1000000000, "usec": 0}'
	[ "$status" -eq 0 ]
	run "$CLIENT" --no-stdin "$VT/agent.sock" run cdate "$(vm_spec '["busybox","date","+%s"]')"
	[ "$status" -eq 0 ]
	# 2001-09-09 and on from there, far from the host's clock
	[ "$output" -ge 1000000000 ]
	[ "$output" -lt 1500000000 ]
	run "$IPC" "$VT/agent.sock" set_guest_datetime '{"sec": 1, "usec": 1000000}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"usec"* ]]
	run "$IPC" "$VT/agent.sock" set_guest_datetime "{\"sec\": $(date +%s)}"
	[ "$status" -eq 0 ]
}

@test "agent-vm: namespaced sysctls apply in the container's namespaces only" {
	run "$CLIENT" --no-stdin "$VT/agent.sock" run csys \
		"$(vm_spec '["sh","-c","cat /proc/sys/kernel/shmmni /proc/sys/kernel/msgmax"]' '"sysctl":{"kernel.shmmni":"1234","kernel.msgmax":"4321"},')"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'1234\n4321' ]
	# Another container's ipc namespace has the kernel's own.
	run "$CLIENT" --no-stdin "$VT/agent.sock" run csys2 \
		"$(vm_spec '["cat","/proc/sys/kernel/shmmni"]')"
	[ "$status" -eq 0 ]
	[ "$output" != 1234 ]
	# One that is not the container's: refused by name.
	run "$CLIENT" --no-stdin "$VT/agent.sock" run csys3 \
		"$(vm_spec '["true"]' '"sysctl":{"vm.swappiness":"10"},')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"spec.linux.sysctl.vm.swappiness: not a namespaced sysctl of this container"* ]]
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
