#!/usr/bin/env bats
# containerd-shim-husk-v2's command line as containerd drives it (start,
# delete, the daemon's socket) without containerd or a VM, then the
# calls ctr 1.6 cannot make (Update, Checkpoint, Connect) on a daemon
# that a private containerd started (one VM).  The full life through
# containerd is tests/bats/shimv2.bats.

load lib/engines.sh
load lib/wait.sh

bats_require_minimum_version 1.5.0

setup() {
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	BUILD=$(cd "$HUSK_SRC" && cd "${BUILD:-build}" && pwd)
	SV=$BUILD/bin/containerd-shim-husk-v2
	CALL=$BUILD/tests/helpers/shimv2_call
	[ -x "$SV" ] || skip "no $SV (make all)"
	[ -x "$CALL" ] || skip "no $CALL (make all)"
	[ "$(id -u)" = 0 ] || skip "needs root"
	T=$(mktemp -d /tmp/husk-sv.XXXXXX)
	chmod 0711 "$T"
	export HUSK_ROOT=$T/root
	mkdir -p "$T/b"
	echo '{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["true"],"cwd":"/"}}' \
		>"$T/b/config.json"
	# An address of our own: the daemon's socket name hashes it.
	ADDR=$T/ctd.sock
}

teardown() {
	local p
	if [ -n "${T:-}" ]; then
		for p in $(pgrep -f "containerd-shim-husk-v2 .*-address $T/" 2>/dev/null); do
			kill -9 "$p" 2>/dev/null || true
		done
		[ -z "${EN:-}" ] || engines_teardown
		rm -rf "$T"
	fi
	[ -z "${EN:-}" ] || rm -rf "$EN"
	true
}

sv() {
	(cd "$T/b" && "$SV" "$@")
}

@test "shimv2: options and actions are checked, each with its reason" {
	run sv -namespace ns -id c1 -address "$ADDR" frobnicate
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown action 'frobnicate' (start or delete)"* ]]
	run sv -id c1 -address "$ADDR" start
	[ "$status" -eq 100 ]
	[[ "$output" == *"-namespace is required"* ]]
	run sv -namespace ns -address "$ADDR" start
	[ "$status" -eq 100 ]
	[[ "$output" == *"-id is required"* ]]
	run sv -namespace ns -id ../x -address "$ADDR" start
	[ "$status" -eq 100 ]
	[[ "$output" == *"-id"* ]]
	run sv -namespace a/b -id c1 -address "$ADDR" start
	[ "$status" -eq 100 ]
	[[ "$output" == *"a namespace has no '/'"* ]]
	run sv -namespace ns -id c1 start
	[ "$status" -eq 100 ]
	[[ "$output" == *"-address is required"* ]]
	run sv -namespace ns -id c1 -address "$ADDR" start delete
	[ "$status" -eq 100 ]
	# The daemon itself is started by start only.
	run sv -namespace ns -id c1 -address "$ADDR"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no listening socket at descriptor 3"* ]]
}

@test "shimv2 start: a bundle without config.json, or joining a pod with no shim, fails and says why" {
	rm "$T/b/config.json"
	run sv -namespace ns -id c1 -address "$ADDR" start
	[ "$status" -ne 0 ]
	[[ "$output" == *"config.json in the bundle"* ]]
	[ ! -e "$T/b/address" ]
	echo '{"ociVersion":"1.0.2","root":{"path":"rootfs"},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod9"}}' \
		>"$T/b/config.json"
	run sv -namespace ns -id c1 -address "$ADDR" start
	[ "$status" -ne 0 ]
	[[ "$output" == *"container c1 joins pod pod9, whose shim does not answer"* ]]
	[ ! -e "$T/b/address" ]
	echo '{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container"}}' \
		>"$T/b/config.json"
	run sv -namespace ns -id c1 -address "$ADDR" start
	[ "$status" -ne 0 ]
	[[ "$output" == *"io.kubernetes.cri.sandbox-id is missing"* ]]
}

@test "shimv2 start: the daemon answers at the printed address, a pod member gets the same one, Shutdown ends it" {
	run --separate-stderr sv -namespace ns -id pod1 -address "$ADDR" start
	[ "$status" -eq 0 ]
	# containerd reads stdout and stderr together: only the address.
	[ -z "$stderr" ]
	[[ "$output" == unix:///run/husk-shimv2-s/*.sock ]]
	[ "$output" = "$(cat "$T/b/address")" ]
	sock=${output#unix://}
	[ "${#sock}" -lt 106 ]
	pid=$(cat "$T/b/shim.pid")
	[[ "$(tr '\0' ' ' </proc/$pid/cmdline)" == "containerd-shim-husk-v2 -namespace ns -id pod1 "* ]]
	# Detached: a session of its own, no tie to our stdout or stderr.
	[ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ]
	[ "$(readlink /proc/$pid/fd/1)" = /dev/null ]
	[ "$(readlink /proc/$pid/fd/2)" = /dev/null ]

	run "$CALL" "$sock" connect pod1
	[ "$status" -eq 0 ]
	[[ "$output" == *"shim_pid=$pid"* ]]
	[[ "$output" == *"task_pid=0"* ]]
	run "$CALL" "$sock" state nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"error 5: task nope not found"* ]]
	run "$CALL" "$sock" checkpoint pod1
	[ "$status" -eq 1 ]
	[[ "$output" == *"error 12: Checkpoint is not supported by husk"* ]]

	# A second start for the same pod is refused: one daemon per pod.
	run sv -namespace ns -id pod1 -address "$ADDR" start
	[ "$status" -ne 0 ]
	[[ "$output" == *"already answers"* ]]

	# A member of the pod gets the pod's address, no daemon of its own.
	mkdir -p "$T/m"
	echo '{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod1"}}' \
		>"$T/m/config.json"
	run bash -c "cd '$T/m' && '$SV' -namespace ns -id m1 -address '$ADDR' start"
	[ "$status" -eq 0 ]
	[ "$output" = "unix://$sock" ]
	[ "$(cat "$T/m/address")" = "unix://$sock" ]
	[ ! -e "$T/m/shim.pid" ]
	run pgrep -f "containerd-shim-husk-v2 .*-id m1 "
	[ "$status" -ne 0 ]

	run "$CALL" "$sock" shutdown pod1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	run kill -0 "$pid"
	[ "$status" -ne 0 ]
	[ ! -e "$sock" ]
}

@test "shimv2 delete: with nothing to clean, a DeleteResponse with SIGKILL's status on stdout" {
	run sv -namespace ns -id gone1 -address "$ADDR" -bundle "$T/b" delete
	[ "$status" -eq 0 ]
	# field 2 (exit_status) = 137: 0x10 0x89 0x01, then field 3 (exited_at)
	hex=$(cd "$T/b" && "$SV" -namespace ns -id gone1 -address "$ADDR" delete | od -An -tx1 | tr -d ' \n')
	[[ "$hex" == 1089011a* ]]
}

@test "shimv2 delete: a daemon without the task is asked to shut down, and leaves" {
	run sv -namespace ns -id lost1 -address "$ADDR" start
	[ "$status" -eq 0 ]
	sock=${output#unix://}
	pid=$(cat "$T/b/shim.pid")
	kill -0 "$pid"
	run sv -namespace ns -id lost1 -address "$ADDR" -bundle "$T/b" delete
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	run kill -0 "$pid"
	[ "$status" -ne 0 ]
	[ ! -e "$sock" ]
}

@test "shimv2 delete: a daemon that does not answer is stopped, its socket removed" {
	run sv -namespace ns -id hung1 -address "$ADDR" start
	[ "$status" -eq 0 ]
	sock=${output#unix://}
	pid=$(cat "$T/b/shim.pid")
	kill -STOP "$pid"
	run --separate-stderr sv -namespace ns -id hung1 -address "$ADDR" -bundle "$T/b" delete
	[ "$status" -eq 0 ]
	echo "$stderr"
	[[ "$stderr" == *"its daemon $pid is still there: stopped"* ]]
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	run kill -0 "$pid"
	[ "$status" -ne 0 ]
	[ ! -e "$sock" ]
}

@test "shimv2 through containerd: Update grows the VM, Connect names the task's pid, Checkpoint is refused" {
	engines_skip_unless_ready
	engines_setup
	mkdir -p "$EN/bin"
	ln -s "$SV" "$EN/bin/containerd-shim-husk-v2"
	export HUSK_ROOT=$EN/husk-root
	PATH=$EN/bin:$PATH engines_start_containerd
	run timeout 180 "$CTR_BIN" -a "$EN/ctd.sock" -n husk-test run -d \
		--runtime io.containerd.husk.v2 --rootfs "$EN/rootfs" u1 \
		sh -c 'while true; do sleep 1; done'
	[ "$status" -eq 0 ]
	bundle=$EN/ctd-state/io.containerd.runtime.v2.task/husk-test/u1
	sock=$(sed 's|^unix://||' "$bundle/address")
	pid=$(ctrc task ls | awk '$1 == "u1" { print $2 }')
	run "$CALL" "$sock" connect u1
	[ "$status" -eq 0 ]
	[[ "$output" == *"task_pid=$pid"* ]]
	[[ "$output" == *"shim_pid=$(cat "$bundle/shim.pid")"* ]]
	run "$CALL" "$sock" checkpoint u1
	[ "$status" -eq 1 ]
	[[ "$output" == *"error 12: Checkpoint is not supported"* ]]
	run "$CALL" "$sock" update u1 'not json'
	[ "$status" -eq 1 ]
	[[ "$output" == *"error 3: update u1: the resources"* ]]

	before=$(timeout 60 "$CTR_BIN" -a "$EN/ctd.sock" -n husk-test task exec --exec-id m1 u1 awk '/MemTotal/ { print $2 }' /proc/meminfo)
	run "$CALL" "$sock" update u1 '{"memory":{"limit":268435456}}'
	[ "$status" -eq 0 ]
	after=$(timeout 60 "$CTR_BIN" -a "$EN/ctd.sock" -n husk-test task exec --exec-id m2 u1 awk '/MemTotal/ { print $2 }' /proc/meminfo)
	echo "MemTotal $before -> $after kB"
	# 256 MiB hot-plugged (some of it the guest keeps for its page tables)
	[ "$after" -gt $((before + 200000)) ]
	run grep -c '"sized_mb":256' "$HUSK_ROOT/u1/state.json"
	[ "$output" = 1 ]
	# The agent's update_container is answered from the loop: with the
	# pod's husk-proxy stopped under an Update, State still answers.
	proxy=$(pgrep -f "husk-proxy.*$HUSK_ROOT/u1/" | head -n 1)
	[ -n "$proxy" ]
	kill -STOP "$proxy"
	"$CALL" "$sock" update u1 '{"cpu":{"shares":512}}' \
		>"$EN/update.out" 2>&1 3>&- &
	upd=$!
	wait_for -t 60 socket_unread "$(cat "$bundle/shim.pid")"
	run timeout 20 "$CALL" "$sock" state u1
	kill -CONT "$proxy"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *status=2* ]]
	wait "$upd" || { cat "$EN/update.out"; false; }

	run ctrc task kill -s SIGKILL u1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 300); do
		ctrc task ls | grep -q 'u1 .*STOPPED' && break
		sleep 0.1
	done
	run ctrc task ls
	[[ "$output" == *u1*STOPPED* ]]
	run timeout 60 "$CTR_BIN" -a "$EN/ctd.sock" -n husk-test task delete u1
	[ "$status" -eq 0 ]
	ctrc container rm u1
	for _ in $(seq 1 100); do
		[ -e "$sock" ] || break
		sleep 0.1
	done
	[ ! -e "$sock" ]
	run ls -A "$HUSK_ROOT"
	[ -z "$output" ]
	engines_teardown
	engines_assert_clean
}
