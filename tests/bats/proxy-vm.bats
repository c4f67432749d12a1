#!/usr/bin/env bats
# husk-proxy and husk-shim with the agent in a VM: QEMU started here as
# agent-vm.bats does (q35 + qboot + the PVH vmlinux under TCG, virtiofsd
# for the share, the agent on the virtio-serial port), the proxy on the
# channel socket, a busybox container run through a shim; then the VM
# goes away under a waiting shim.

load lib/rootfs.sh
load lib/vm.sh

B=$(cd "${BUILD:-build}" && pwd)
GUEST=$B/guest
IPC=$B/bin/husk-ipc
PROXY=$B/bin/husk-proxy
SHIM=$B/bin/husk-shim

setup_file() {
	vm_skip_unless_ready
	[ -x "$PROXY" ] && [ -x "$SHIM" ] || skip "no husk-proxy/husk-shim (make all)"
	vm_start proxy-vm
	"$PROXY" --agent "unix:$VT/agent.sock" --socket "$VT/proxy.sock" \
		--sandbox vm --log "$VT/proxy.log" --log-level debug &
	echo $! >"$VT/proxy.pid"
	for _ in $(seq 300); do [ -S "$VT/proxy.sock" ] && break; sleep 0.01; done
}

teardown_file() {
	vm_stop proxy
}

show_logs() {
	echo "# guest console:"; tail -n 30 "$VT/console.log" | sed 's/^/#   /'
	echo "# proxy log:"; tail -n 30 "$VT/proxy.log" | sed 's/^/#   /'
}

pipc() { "$IPC" -t 120 "$VT/proxy.sock" "$@"; }

spec() {
	printf '{"process":{"args":["sh","-c","%s"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"},"hostname":"vmc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]}}' "$1"
}

subscribed() {
	for _ in $(seq 400); do
		pipc proxy_status | grep -q "\"subscriptions\":$1" && return 0
		sleep 0.05
	done
	return 1
}

@test "proxy-vm: ping through the proxy reaches the agent in the VM" {
	for _ in $(seq 120); do
		pipc proxy_status | grep -q '"agent_connected":true' && break
		sleep 0.5
	done
	run pipc ping '{}'
	[ "$status" -eq 0 ] || { show_logs; false; }
	[ "$output" = "{}" ]
	run pipc get_guest_details
	[[ "$output" == *'"host_mode":false'* ]]
	pipc -q create_sandbox '{"sandbox_id":"vm"}'
}

@test "proxy-vm: a container's output and status through a shim" {
	pipc -q create_container "{\"container_id\":\"c1\",\"spec\":$(spec 'echo hello; hostname; dd if=/dev/zero bs=64k count=160 2>/dev/null | wc -c; echo oops >&2; exit 5')}"
	"$SHIM" --proxy "$VT/proxy.sock" --container c1 </dev/null >"$VT/out" 2>"$VT/err" &
	shim=$!
	subscribed 1
	pipc -q start_container '{"container_id":"c1"}'
	st=0; wait "$shim" || st=$?
	cat "$VT/out" "$VT/err"
	[ "$st" -eq 5 ] || { show_logs; false; }
	[ "$(cat "$VT/out")" = "$(printf 'hello\nvmc\n10485760')" ]
	[ "$(cat "$VT/err")" = oops ]
}

@test "proxy-vm: 64 MiB from the guest through the shim" {
	pipc -q create_container "{\"container_id\":\"c2\",\"spec\":$(spec 'dd if=/dev/zero bs=64k count=1024 2>/dev/null')}"
	"$SHIM" --proxy "$VT/proxy.sock" --container c2 </dev/null | wc -c >"$VT/count" &
	reader=$!
	subscribed 1
	pipc -q start_container '{"container_id":"c2"}'
	wait "$reader"
	[ "$(cat "$VT/count")" -eq $((64 << 20)) ]
}

@test "proxy-vm: a new proxy is taken as soon as it connects: the port wakes the agent" {
	kill "$(cat "$VT/proxy.pid")"
	wait "$(cat "$VT/proxy.pid")" 2>/dev/null || true
	n0=$(grep -c "host present on .*(woken by the port)" "$VT/console.log" || true)
	"$PROXY" --agent "unix:$VT/agent.sock" --socket "$VT/proxy.sock" \
		--sandbox vm --log "$VT/proxy2.log" --log-level debug &
	echo $! >"$VT/proxy.pid"
	for _ in $(seq 300); do [ -S "$VT/proxy.sock" ] && break; sleep 0.01; done
	# The new proxy connects and says hello; the agent answers it.
	for _ in $(seq 600); do
		pipc proxy_status 2>/dev/null | grep -q '"agent_connected":true' && break
		sleep 0.05
	done
	run pipc ping '{}'
	[ "$status" -eq 0 ] || { echo "$output"; show_logs; tail -n 20 "$VT/proxy2.log"; false; }
	# Taken on the port's wake-up, not by the once-a-second look.
	n1=$(grep -c "host present on .*(woken by the port)" "$VT/console.log")
	[ "$n1" -eq $((n0 + 1)) ] || { show_logs; false; }
	# The sandbox outlived the first proxy.
	run pipc create_sandbox '{"sandbox_id":"vm"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *exists* ]] || { echo "$output"; false; }
}

@test "proxy-vm: the VM going away makes a waiting shim exit 112" {
	pipc -q create_container "{\"container_id\":\"c3\",\"spec\":$(spec 'sleep 1000')}"
	"$SHIM" --proxy "$VT/proxy.sock" --container c3 </dev/null 2>"$VT/err3" &
	shim=$!
	subscribed 1
	pipc -q start_container '{"container_id":"c3"}'
	kill -9 "$(cat "$VT/qemu.pid")"
	st=0; wait "$shim" || st=$?
	cat "$VT/err3"
	[ "$st" -eq 112 ]
	grep -q "husk-shim: lost the agent" "$VT/err3"
	kill -0 "$(cat "$VT/proxy.pid")"
	run pipc ping '{}'
	[[ "$output" == *"agent not connected"* ]]
}
