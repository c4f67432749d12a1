#!/usr/bin/env bats
# husk-ipc, the debug client, against tests/helpers/echo_server
# ("husk-echo": echo, fail, notify_me, sleep, hang_up, note).

load lib/wait.sh

setup() {
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	BUILD=$(cd "$HUSK_SRC" && cd "${BUILD:-build}" && pwd)
	IPC=$BUILD/bin/husk-ipc
	SERVER=$BUILD/tests/helpers/echo_server
	[ -x "$IPC" ] || skip "no $IPC (make all)"
	[ -x "$SERVER" ] || skip "no $SERVER (make all)"
	# Sockets live in 0700 directories; keep the path short for sun_path.
	SOCKDIR=$(mktemp -d /tmp/husk-ipc-bats.XXXXXX)
	chmod 0700 "$SOCKDIR"
	SOCK=$SOCKDIR/echo.sock
	"$SERVER" "$SOCK" 2>"$SOCKDIR/server.log" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && break
		sleep 0.05
	done
	[ -S "$SOCK" ]
}

teardown() {
	[ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null
	[ -n "${SERVER_PID:-}" ] && wait "$SERVER_PID" 2>/dev/null
	rm -rf "${SOCKDIR:-/nonexistent}"
}

@test "echo round trip keeps nested JSON" {
	params='{"a":[1,2,{"b":null,"c":[true,false]}],"s":"h\u00e9llo","n":-7,"f":1.5,"big":9007199254740993,"e":{}}'
	run "$IPC" "$SOCK" echo "$params"
	[ "$status" -eq 0 ]
	# key order kept, UTF-8 printed as is, integers exact
	[ "$output" = '{"a":[1,2,{"b":null,"c":[true,false]}],"s":"héllo","n":-7,"f":1.5,"big":9007199254740993,"e":{}}' ]
}

@test "echo with no params returns {}" {
	run "$IPC" "$SOCK" echo
	[ "$status" -eq 0 ]
	[ "$output" = "{}" ]
}

@test "params from stdin with -" {
	run bash -c "echo '{\"k\":\"v\"}' | '$IPC' '$SOCK' echo -"
	[ "$status" -eq 0 ]
	[ "$output" = '{"k":"v"}' ]
}

@test "--pretty indents" {
	run "$IPC" --pretty "$SOCK" echo '{"a":{"b":1}}'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "{" ]
	[ "${lines[1]}" = '  "a": {' ]
}

@test "--quiet prints nothing on success" {
	run "$IPC" --quiet "$SOCK" echo '{"a":1}'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "an RPC error exits 1 with the message and the code name" {
	run "$IPC" "$SOCK" fail
	[ "$status" -eq 1 ]
	[ "$output" = "husk-ipc: fail: no such thing as a free lunch (code not-found)" ]
}

@test "an unknown method is an RPC error" {
	run "$IPC" "$SOCK" no_such_method
	[ "$status" -eq 1 ]
	[[ "$output" == *"no_such_method"*"(code unknown-method)" ]]
}

@test "usage errors exit 100" {
	run "$IPC"
	[ "$status" -eq 100 ]
	[[ "$output" == *"no SOCKET given"* ]]
	run "$IPC" "$SOCK"
	[ "$status" -eq 100 ]
	run "$IPC" --bogus "$SOCK" echo
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown option"* ]]
	run "$IPC" --timeout soon "$SOCK" echo
	[ "$status" -eq 100 ]
	run "$IPC" --count 3 "$SOCK" echo
	[ "$status" -eq 100 ]
	run "$IPC" "$SOCK" echo '{}' extra
	[ "$status" -eq 100 ]
}

@test "--help and --version exit 0" {
	run "$IPC" --help
	[ "$status" -eq 0 ]
	[[ "$output" == usage:* ]]
	run "$IPC" --version
	[ "$status" -eq 0 ]
	[[ "$output" == "husk-ipc "*"(protocol 1)" ]]
}

@test "bad JSON params name the problem (exit 100)" {
	run "$IPC" "$SOCK" echo '{"a":'
	[ "$status" -eq 100 ]
	[[ "$output" == *"PARAMS-JSON: line 1 column"* ]]
	run "$IPC" "$SOCK" echo '[1,2]'
	[ "$status" -eq 100 ]
	[[ "$output" == *"must be a JSON object"* ]]
	run "$IPC" "$SOCK" echo '{"a":1,"a":2}'
	[ "$status" -eq 100 ]
	[[ "$output" == *"duplicate"* ]]
}

@test "a missing socket fails at once with 112 (no peer)" {
	# No retry until a timeout: ENOENT is the answer.
	run "$IPC" --timeout 600 "$SOCKDIR/absent.sock" echo
	[ "$status" -eq 112 ]
	[[ "$output" == *"absent.sock"*"No such file or directory"* ]]
}

@test "a peer that hangs up mid-call exits 112" {
	run "$IPC" "$SOCK" hang_up
	[ "$status" -eq 112 ]
	[[ "$output" == *"(code unavailable)"* ]]
}

@test "--listen prints notifications as JSON lines" {
	run "$IPC" --listen --count 3 "$SOCK" notify_me
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "{}" ]
	[ "${lines[1]}" = '{"method":"tick","params":{"n":1}}' ]
	[ "${lines[2]}" = '{"method":"tick","params":{"n":2}}' ]
	[ "${lines[3]}" = '{"method":"tick","params":{"n":3}}' ]
	[ "${#lines[@]}" -eq 4 ]
}

@test "--listen --count stops early" {
	run "$IPC" --listen --count 1 --quiet "$SOCK" notify_me
	[ "$status" -eq 0 ]
	[ "$output" = '{"method":"tick","params":{"n":1}}' ]
}

@test "--timeout hits on a slow method" {
	# The timeout's own message and code: the answer ({"slept":5000})
	# never came.
	run "$IPC" --timeout 0.3 "$SOCK" sleep '{"ms":5000}'
	[ "$status" -eq 1 ]
	[[ "$output" == "husk-ipc: sleep: no answer within 0.3 s (code timeout)" ]]
	run "$IPC" --timeout 5 "$SOCK" sleep '{"ms":50}'
	[ "$status" -eq 0 ]
	[ "$output" = '{"slept":50}' ]
}

@test "server-side param checks come back as invalid" {
	run "$IPC" "$SOCK" sleep '{"ms":"long"}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"params.ms"*"(code invalid)" ]]
}

@test "--expect mismatch fails clearly" {
	run "$IPC" --expect husk-proxy "$SOCK" echo
	[ "$status" -eq 1 ]
	[[ "$output" == *"expects to talk to husk-proxy, not to husk-echo"* ]]
	run "$IPC" --expect husk-echo "$SOCK" echo '{"ok":true}'
	[ "$status" -eq 0 ]
	[ "$output" = '{"ok":true}' ]
}

@test "--notify sends without waiting for a reply" {
	run "$IPC" --notify "$SOCK" note '{"n":7}'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# and the server got it
	wait_for grep -qx 'note {"n":7}' "$SOCKDIR/server.log"
}
