#!/usr/bin/env bats
# husk-proxy in front of tests/helpers/fake_agent: routing of calls and
# replies among clients, subscriptions, reconnecting, and a hostile
# guest that the proxy must cut off without falling over.

load lib/proxy_env.sh

setup() {
	AGENT_KIND=fake
	[ -x "$FAKE" ] || skip "no $FAKE (make all)"
	px_setup
}
teardown() { px_teardown; }

# A process that lives until killed, with a wait_process on it pending
# in the background; its result lands in $T/wait.out, status in $T/wait.rc.
pending_wait() {
	px_ctr c1 'sleep 1000'
	px_start c1
	( rc=0; "$IPC" -t 0 "$PS" wait_process '{"container_id":"c1","exec_id":""}' \
		>"$T/wait.out" 2>&1 || rc=$?; echo $rc >"$T/wait.rc" ) &
	WAITER=$!
	for _ in $(seq 200); do
		[ "$(pipc proxy_status | sed -n 's/.*"calls":\([0-9]*\).*/\1/p')" -ge 1 ] && break
		sleep 0.025
	done
}

proxy_alive() { kill -0 "$PROXY_PID"; }

@test "proxy: ping reaches the agent, proxy_status reports" {
	run pipc ping '{}'
	[ "$status" -eq 0 ] && [ "$output" = "{}" ]
	run pipc version
	[[ "$output" == *'"agent_version":"fake"'* ]]
	run pipc proxy_status
	[[ "$output" == *'"agent_connected":true'* ]]
	[[ "$output" == *'"sandbox":"sb"'* ]]
}

@test "proxy: confinement visible in /proc (NoNewPrivs, Seccomp, CapEff)" {
	[ "$(px_status_field "$PROXY_PID" NoNewPrivs)" = 1 ]
	[ "$(px_status_field "$PROXY_PID" Seccomp)" = 2 ]
	[ "$(px_status_field "$PROXY_PID" CapEff)" = 0000000000000000 ]
}

@test "proxy: --uid/--gid runs it unprivileged" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	"$PROXY" --agent "unix:$AS" --socket "$PS" --sandbox sb \
		--log "$T/proxy.log" --uid 65534 --gid 65534 &
	PROXY_PID=$!
	px_wait_sock "$PS"
	# The channel socket must be connectable by that user (the sandbox
	# set-up chowns QEMU's socket); its 0700 directory need not be
	# searchable: the proxy holds the socket by a descriptor.
	[ "$(stat -c %a "$T")" = 700 ]
	chown 65534 "$AS"
	for _ in $(seq 200); do pipc -q ping '{}' 2>/dev/null && break; sleep 0.05; done
	[ "$(px_status_field "$PROXY_PID" Uid | head -c 5)" = 65534 ]
	[ "$(px_status_field "$PROXY_PID" CapEff)" = 0000000000000000 ]
	run pipc ping '{}'
	[ "$status" -eq 0 ]
}

@test "proxy: replies go back to the client that asked, under its own id" {
	px_ctr c1 'sleep 1000'
	px_start c1
	for i in 1 2 3; do px_exec c1 "e$i" "sleep 0.$((4 - i)); exit $i"; done
	pids=
	for i in 1 2 3; do
		pipc wait_process "{\"container_id\":\"c1\",\"exec_id\":\"e$i\"}" >"$T/w$i" &
		pids="$pids $!"
	done
	for _ in $(seq 20); do pipc ping '{}' >/dev/null; done
	wait $pids
	for i in 1 2 3; do
		[ "$(cat "$T/w$i")" = "{\"status\":$i}" ]
	done
}

@test "proxy: a client that leaves mid-call costs nothing to the others" {
	px_ctr c1 'sleep 0.5; exit 3'
	px_start c1
	run "$IPC" -t 0.1 "$PS" wait_process '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	sleep 0.7         # the late answer arrives and is dropped
	run pipc wait_process '{"container_id":"c1"}'
	[ "$output" = '{"status":3}' ]
	proxy_alive
	! grep -q "cutting the agent off" "$T/proxy.log"
}

@test "proxy: one subscriber per process" {
	px_ctr c1 'sleep 1000'
	"$SHIM" --proxy "$PS" --container c1 </dev/null & s1=$!
	px_wait_subscribed 1
	run pipc subscribe '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"already has a subscriber"* ]]
	kill -9 "$s1"; wait "$s1" || true
}

@test "proxy: output waits for a subscriber and is flushed to it" {
	px_ctr c1 'echo early; echo late-err >&2'
	px_start c1
	sleep 0.3
	run pipc proxy_status
	[[ "$output" == *'"unsubscribed_bytes":15'* ]]
	"$SHIM" --proxy "$PS" --container c1 </dev/null >"$T/out" 2>"$T/err"
	[ "$(cat "$T/out")" = early ]
	[ "$(cat "$T/err")" = late-err ]
}

@test "proxy: requests while the agent is away fail clearly; it reconnects" {
	pending_wait
	kill "$AGENT_PID"; wait "$AGENT_PID" || true
	wait "$WAITER" || true
	[ "$(cat "$T/wait.rc")" -ne 0 ]
	grep -q "agent connection closed" "$T/wait.out"
	grep -q "code unavailable" "$T/wait.out"
	run pipc ping '{}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"agent not connected"* ]]
	px_start_agent
	for _ in $(seq 200); do pipc -q ping '{}' 2>/dev/null && break; sleep 0.05; done
	run pipc ping '{}'
	[ "$status" -eq 0 ]
	run pipc proxy_status
	[[ "$output" == *'"connects":2'* ]]
}

# The fake agent turns hostile when pinged with {hostile: true}.
hostile() {
	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	kill "$AGENT_PID"; wait "$AGENT_PID" || true
	rm -f "$T/agent.log"
	FAKE_MODE=$1 px_start_agent
	px_start_proxy
	pipc -q create_sandbox '{"sandbox_id":"sb"}'
	pending_wait
	run pipc ping '{"hostile":true}'
	wait "$WAITER" || true
	echo "wait: $(cat "$T/wait.out")"
	grep -q "agent connection closed" "$T/wait.out"
	grep -q "code unavailable" "$T/wait.out"
	grep -q "agent connection closed: .*$2" "$T/proxy.log"
	proxy_alive
	# The fake agent is still there: the proxy comes back to it.
	for _ in $(seq 200); do pipc -q ping '{}' 2>/dev/null && break; sleep 0.05; done
	run pipc ping '{}'
	[ "$status" -eq 0 ]
}

@test "proxy: hostile agent: garbage bytes" { hostile garbage ""; }
@test "proxy: hostile agent: oversized frame" { hostile oversize "frame"; }
@test "proxy: hostile agent: malformed message" { hostile malformed ""; }
@test "proxy: hostile agent: answer to an id never asked" { hostile unsolicited "unknown msgid"; }
@test "proxy: hostile agent: the same answer twice" { hostile dup-answer "unknown msgid"; }
@test "proxy: hostile agent: output for processes nobody created" { hostile flood "never created"; }
@test "proxy: hostile agent: output beyond the window" { hostile window "overruns the window"; }
@test "proxy: hostile agent: output after the end of a stream" { hostile after-eof "after its end"; }
@test "proxy: hostile agent: output_ack sent to the host" { hostile bad-notify "unexpected notification output_ack"; }
@test "proxy: hostile agent: a request to the host" { hostile request ""; }

@test "proxy: usage errors exit 100" {
	run "$PROXY" --socket "$T/x.sock"
	[ "$status" -eq 100 ]
	run "$PROXY" --agent "$T/a.sock" --socket "$T/x.sock"
	[ "$status" -eq 100 ]
	[[ "$output" == *"unix:PATH"* ]]
	run "$PROXY" --agent "unix:$T/a" --socket "$T/x.sock" --uid 5
	[ "$status" -eq 100 ]
}

@test "proxy: SIGTERM leaves cleanly and removes the socket" {
	kill -TERM "$PROXY_PID"
	wait "$PROXY_PID"
	[ ! -e "$PS" ]
	PROXY_PID=
}
