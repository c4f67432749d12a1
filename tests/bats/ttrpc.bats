#!/usr/bin/env bats
# husk's ttrpc (shimv2/ttrpc*.c, shimv2/events.c) against containerd's
# own programs: `ctr shim` (ttrpc-go's client) calls a husk ttrpc
# server, and the events publisher forwards task events to a private
# containerd that `ctr events` watches.  No VM.

load lib/wait.sh

bats_require_minimum_version 1.5.0

CONTAINERD_BIN=${CONTAINERD_BIN:-/usr/bin/containerd}
CTR_BIN=${CTR_BIN:-/usr/bin/ctr}

setup_file() {
	local b=${BUILD:-build}
	export PEER
	PEER=$(cd "${HUSK_SRC:-.}" && cd "$b" && pwd)/tests/helpers/ttrpc_peer
	export TT
	TT=$(mktemp -d /tmp/husk-tt.XXXXXX)
}

teardown_file() {
	local f
	for f in "$TT"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	rm -rf "$TT"
	true
}

setup() {
	[ -x "$PEER" ] || skip "no $PEER (make all)"
	[ -x "$CTR_BIN" ] || skip "no $CTR_BIN (make deps: containerd)"
}

# Start the husk server on ctr 1.6's fallback socket for container $1
# (the abstract /containerd-shim/NS/ID/shim.sock).
serve_for() {
	"$PEER" serve "@/containerd-shim/husk-test/$1/shim.sock" \
		>"$TT/peer-$1.out" 2>&1 &
	echo $! >"$TT/peer-$1.pid"
	wait_for -t 30 grep -q ready "$TT/peer-$1.out"
}

CTR_SHIM() {
	# No containerd at this address: ctr falls back to the abstract socket.
	"$CTR_BIN" -a "$TT/none.sock" -n husk-test shim --id "$@"
}

@test "ctr shim state: ttrpc-go's client decodes a husk StateResponse" {
	serve_for s1
	run --separate-stderr CTR_SHIM s1 state
	echo "$output $stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"id": "s1"'* ]]
	[[ "$output" == *'"bundle": "/run/husk-test/bundle"'* ]]
	[[ "$output" == *'"pid": 4242'* ]]
	[[ "$output" == *'"status": 2'* ]]
	[[ "$output" == *'"stdout": "/run/husk-test/stdout"'* ]]
	# Start answers an empty-bodied success.
	run CTR_SHIM s1 start s1
	[ "$status" -eq 0 ]
}

@test "ctr shim: a gRPC status and Unimplemented reach ttrpc-go's client" {
	serve_for missing
	run CTR_SHIM missing start missing
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"code = NotFound desc = container missing: not found"* ]]
	run CTR_SHIM missing delete
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"code = Unimplemented"*"containerd.task.v2.Task/Delete"* ]]
}

@test "events: containerd takes Forward, ctr events shows them in order and decoded" {
	[ "$(id -u)" = 0 ] || skip "needs root (containerd)"
	[ -x "$CONTAINERD_BIN" ] || skip "no $CONTAINERD_BIN (make deps: containerd)"
	cat >"$TT/containerd.toml" <<-EOF
	version = 2
	root = "$TT/ctd-root"
	state = "$TT/ctd-state"
	disabled_plugins = ["io.containerd.grpc.v1.cri"]
	[grpc]
	  address = "$TT/ctd.sock"
	[ttrpc]
	  address = "$TT/ctd.sock.ttrpc"
	[debug]
	  address = "$TT/ctd-debug.sock"
	[metrics]
	  address = ""
	EOF
	setsid "$CONTAINERD_BIN" --config "$TT/containerd.toml" \
		</dev/null >"$TT/containerd.log" 2>&1 &
	echo $! >"$TT/containerd.pid"
	wait_for -t 60 test -S "$TT/ctd.sock.ttrpc"
	"$CTR_BIN" -a "$TT/ctd.sock" events >"$TT/events.out" 2>&1 &
	echo $! >"$TT/ctr-events.pid"
	# Publish until ctr events shows something: it has subscribed.
	wait_for -t 60 sh -c "timeout 60 '$PEER' publish 'unix://$TT/ctd.sock.ttrpc' husk-test && grep -q ' husk-test /tasks/' '$TT/events.out'"
	n0=$(grep -c ' husk-test /tasks/' "$TT/events.out")

	# Then one whole batch, which ctr events sees whole and in order.
	run timeout 60 "$PEER" publish "unix://$TT/ctd.sock.ttrpc" husk-test
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for -t 30 sh -c "[ \$(grep -c ' husk-test /tasks/' '$TT/events.out') -ge $((n0 + 4)) ]"
	cat "$TT/events.out"
	run sh -c "grep -o ' husk-test /tasks/[a-z-]*' '$TT/events.out' | tail -n 4"
	[ "${lines[0]}" = " husk-test /tasks/create" ]
	[ "${lines[1]}" = " husk-test /tasks/start" ]
	[ "${lines[2]}" = " husk-test /tasks/exit" ]
	[ "${lines[3]}" = " husk-test /tasks/delete" ]
	# Decoded by their type URLs (ctr skips an event it cannot decode).
	grep -q '/tasks/create {"container_id":"c1","bundle":"/run/husk-test/bundle","io":{"stdout":"/run/husk-test/stdout"},"pid":4242}' "$TT/events.out"
	grep -q '/tasks/exit {"container_id":"c1","id":"c1","pid":4242,"exit_status":3,"exited_at":"20' "$TT/events.out"
}
