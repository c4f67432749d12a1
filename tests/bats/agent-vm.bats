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

# A busybox sh init that records each trapped signal's name in /got
# and exits 3 on TERM; /ready once the traps are set.
trap_spec() {
	jq -nc --arg s 'for s in HUP INT USR1 USR2 QUIT WINCH; do trap "echo $s >>/got" $s; done; trap "echo TERM >>/got; exit 3" TERM; touch /ready; while :; do sleep 0.1; done' \
		'{process: {args: ["sh", "-c", $s], env: ["PATH=/bin"], cwd: "/"},
		  root: {path: "rootfs"},
		  mounts: [{destination: "/proc", type: "proc", source: "proc"}],
		  linux: {namespaces: [{type: "pid"}, {type: "mount"}]}}'
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

# docker 20.10's config.json (tests/unit/fixtures), with the rootfs
# under the share and docker's own binds (the host side's job) left out.
docker_spec() {
	jq -c --arg cmd "$1" '.root.path = "rootfs"
		| .mounts |= map(select(.type != "bind"))
		| .process.args = ["sh", "-c", $cmd]
		| .process.env = ["PATH=/bin"]' \
		"$HUSK_SRC/tests/unit/fixtures/docker-20.10-config.json"
}

@test "agent-vm: docker 20.10's spec runs; its blkio weight is the container's io.weight" {
	# blockIO.weight 300 is io.weight 1 + (300 - 10) * 9999 / 990 on
	# the guest's cgroup v2 (iocost; BFQ is not loaded); the throttle
	# names 254:0, a disk this guest does not have: skipped.
	# Its device rules are the cgroup's device program: /dev/mem (1:1)
	# may be made (mknod of any device is allowed, as runc allows it)
	# but not read; /dev/zero and /dev/fuse (listed) may.
	run "$CLIENT" --no-stdin "$VT/agent.sock" run d1 \
		"$(docker_spec 'cat /sys/fs/cgroup/io.weight; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; stat -c "%a %u:%g" /dev/fuse; mknod /dev/m c 1 1 && head -c 1 /dev/m; head -c 3 /dev/zero | wc -c; exec 3</dev/fuse && echo fuse-ok')"
	echo "$output"
	[ "$status" -eq 0 ] || { show_console; false; }
	[ "${lines[0]}" = "default 2930" ]
	[ "${lines[1]}" = 0 ]
	[ "${lines[2]}" = "666 0:0" ]
	[[ "${lines[3]}" == *"/dev/m: Operation not permitted" ]]
	[ "${lines[4]}" = 3 ]
	[ "${lines[5]}" = fuse-ok ]
}

@test "agent-vm: a trap in the container's init sees every signal kill sends" {
	# PID 1 of the container's pid namespace: only signals it has a
	# handler for reach it, and the trap is that handler.
	"$CLIENT" --detach "$VT/agent.sock" run t1 "$(trap_spec)"
	local sig want
	for _ in $(seq 300); do [ -e "$VT/share/rootfs/ready" ] && break; sleep 0.1; done
	[ -e "$VT/share/rootfs/ready" ] || { show_console; false; }
	# The six signals on one connection, then TERM and the wait on
	# another: this test is about the signals, not about the host
	# reconnecting to the port, which a new connection for each call
	# would make it depend on (docs/agent.md).
	local calls=()
	for sig in 1 2 10 12 3 28; do
		calls+=(signal_process "{\"container_id\":\"t1\",\"exec_id\":\"\",\"signal\":$sig}")
	done
	run "$CLIENT" "$VT/agent.sock" calls "${calls[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	for sig in 1 2 10 12 3 28; do
		want=$(kill -l "$sig")
		for _ in $(seq 300); do grep -qx "$want" "$VT/share/rootfs/got" 2>/dev/null && break; sleep 0.1; done
		grep -qx "$want" "$VT/share/rootfs/got"
	done
	run "$CLIENT" "$VT/agent.sock" calls \
		signal_process '{"container_id":"t1","exec_id":"","signal":15}' \
		wait_process '{"container_id":"t1","exec_id":""}'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = '{"status":3}' ]
	grep -qx TERM "$VT/share/rootfs/got"
	rm -f "$VT/share/rootfs/ready" "$VT/share/rootfs/got"
}

@test "agent-vm: a user namespace in the guest, with the guest's sysfs and cgroups" {
	local sp
	sp=$(jq -nc '{process: {args: ["sh", "-c", "id -u; cat /proc/self/uid_map; ls /sys/fs/cgroup/cgroup.procs; ls -d /sys/class"],
			env: ["PATH=/bin"], cwd: "/"},
		root: {path: "rootfs"},
		mounts: [{destination: "/proc", type: "proc", source: "proc"},
			{destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"]},
			{destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]},
			{destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["ro", "nosuid", "noexec", "nodev"]}],
		linux: {namespaces: [{type: "pid"}, {type: "mount"}, {type: "user"}, {type: "cgroup"}],
			uidMappings: [{containerID: 0, hostID: 100000, size: 65536}],
			gidMappings: [{containerID: 0, hostID: 100000, size: 65536}]}}')
	run "$CLIENT" --no-stdin "$VT/agent.sock" run u1 "$sp"
	echo "$output"
	[ "$status" -eq 0 ] || { show_console; false; }
	[ "${lines[0]}" = 0 ]
	[ "$(echo ${lines[1]})" = "0 100000 65536" ]
	[ "${lines[2]}" = /sys/fs/cgroup/cgroup.procs ]
	[ "${lines[3]}" = /sys/class ]
}

@test "agent-vm: rshared volumes of two containers see each other's mounts" {
	# docker's `-v vol:/v:rshared`: rootfsPropagation shared and an
	# rshared bind.  The guest's mounts are shared (as a systemd host's),
	# so a mount one container makes under the volume reaches the other.
	mkdir -p "$VT/share/vol/x"
	local sp
	sp=$(jq -nc '{process: {args: ["sleep", "1000"], env: ["PATH=/bin"], cwd: "/"},
		root: {path: "rootfs"},
		mounts: [{destination: "/proc", type: "proc", source: "proc"},
			{destination: "/v", type: "bind", source: "vol", options: ["rbind", "rshared"]}],
		linux: {namespaces: [{type: "pid"}, {type: "mount"}], rootfsPropagation: "shared"}}')
	"$CLIENT" --detach "$VT/agent.sock" run pa "$sp"
	"$CLIENT" --detach "$VT/agent.sock" run pb "$sp"
	run "$CLIENT" --no-stdin "$VT/agent.sock" exec pa e1 \
		'{"args":["mount","-t","tmpfs","fromA","/v/x"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$status" -eq 0 ] || { show_console; false; }
	run "$CLIENT" --no-stdin "$VT/agent.sock" exec pb e1 \
		'{"args":["sh","-c","grep -c \" /v/x \" /proc/self/mountinfo"],"env":["PATH=/bin"],"cwd":"/"}'
	echo "$output"
	[ "$output" = 1 ]
	# An unmount travels the same way (and leaves the guest clean).
	run "$CLIENT" --no-stdin "$VT/agent.sock" exec pb e2 \
		'{"args":["umount","/v/x"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$status" -eq 0 ]
	run "$CLIENT" --no-stdin "$VT/agent.sock" exec pa e2 \
		'{"args":["sh","-c","grep -c \" /v/x \" /proc/self/mountinfo"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$output" = 0 ]
	"$IPC" "$VT/agent.sock" remove_container '{"container_id":"pa","force":true}'
	"$IPC" "$VT/agent.sock" remove_container '{"container_id":"pb","force":true}'
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

# Before the power-off below, which ends this file's VM.
@test "agent-vm: online_cpu_mem reports the guest's CPUs and memory" {
	run "$IPC" "$VT/agent.sock" online_cpu_mem '{}'
	echo "$output"
	[ "$status" -eq 0 ]
	local cpus kb total
	cpus=$(jq -r .online_cpus <<<"$output")
	kb=$(jq -r .mem_online_kb <<<"$output")
	# The VM has -smp 1 -m 256: nothing hot-plugged to bring online.
	[ "$cpus" -eq 1 ]
	[ "$kb" -le 262144 ]
	# The online blocks hold at least what the kernel manages.
	run "$CLIENT" --no-stdin "$VT/agent.sock" run cmem \
		"$(vm_spec '["sh","-c","grep MemTotal /proc/meminfo"]')"
	[ "$status" -eq 0 ]
	total=$(awk '{print $2}' <<<"$output")
	[ "$total" -gt 0 ]
	[ "$kb" -ge "$total" ]
	run "$IPC" "$VT/agent.sock" online_cpu_mem '{"cpus": false, "memory": false}'
	[ "$status" -eq 0 ]
	[ "$(jq -r .online_cpus <<<"$output")" -eq 1 ]
	run "$IPC" "$VT/agent.sock" online_cpu_mem '{"cpus": "yes"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"params.cpus: expected"* ]]
}

# Binary data: husk-ipc speaks JSON, so agent_client sends the seed.
@test "agent-vm: reseed_random_dev takes a binary seed of 1 to 4096 bytes" {
	run "$CLIENT" "$VT/agent.sock" seed 64
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
	run "$CLIENT" "$VT/agent.sock" seed 4096
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
	run "$CLIENT" "$VT/agent.sock" seed 0
	[ "$status" -eq 1 ]
	[[ "$output" == *"params.data: empty (1 to 4096 bytes)"* ]]
	run "$CLIENT" "$VT/agent.sock" seed 4097
	[ "$status" -eq 1 ]
	[[ "$output" == *"params.data: 4097 bytes is longer than 4096"* ]]
	run "$IPC" "$VT/agent.sock" reseed_random_dev '{"data": "abc"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"params.data: expected binary data"* ]]
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
