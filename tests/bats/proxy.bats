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
	[ "$status" -eq 0 ]
	[ "$output" = "{}" ]
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
	# The process ends only once the client has left.
	px_ctr c1 "while [ ! -e $T/go ]; do sleep 0.05; done; exit 3"
	px_start c1
	run "$IPC" -t 0.1 "$PS" wait_process '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	touch "$T/go"
	# The call stays until the agent answers; then the answer is
	# dropped and the entry freed.
	px_status_until '"calls":0,.*"orphaned_calls":0,'
	grep -q "call_done: answer [0-9]* for a client that left dropped" "$T/proxy.log"
	run pipc wait_process '{"container_id":"c1"}'
	[ "$output" = '{"status":3}' ]
	proxy_alive
	run grep -q "cutting the agent off" "$T/proxy.log"
	[ "$status" -ne 0 ]
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
	wait_for unsubscribed_bytes 15
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

# calls_pending N, unsubscribed_bytes N: proxy_status says so.
calls_pending() { pipc proxy_status | grep -q "\"calls\":$1[,}]"; }
unsubscribed_bytes() { pipc proxy_status | grep -q "\"unsubscribed_bytes\":$1[,}]"; }

# The fake agent turns hostile when pinged with {hostile: true}; the
# proxy must close the connection for the reason $2 (a grep pattern).
hostile() {
	[ -n "$2" ]
	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	kill "$AGENT_PID"; wait "$AGENT_PID" || true
	rm -f "$T/agent.log"
	FAKE_MODE=$1 px_start_agent
	px_start_proxy
	pipc -q create_sandbox '{"sandbox_id":"sb"}'
	pending_wait
	run pipc ping '{"hostile":true}'
	# Bounded: a proxy that keeps the agent would leave the wait
	# pending for ever.
	wait_for -t 30 test -e "$T/wait.rc" || kill "$WAITER"
	wait "$WAITER" || true
	echo "wait: $(cat "$T/wait.out")"
	grep -q "agent connection closed: .*$2" "$T/wait.out"
	grep -q "code unavailable" "$T/wait.out"
	grep -q "agent connection closed: .*$2" "$T/proxy.log"
	proxy_alive
	# The fake agent is still there: the proxy comes back to it.
	for _ in $(seq 200); do pipc -q ping '{}' 2>/dev/null && break; sleep 0.05; done
	run pipc ping '{}'
	[ "$status" -eq 0 ]
}

@test "proxy: hostile agent: garbage bytes" { hostile garbage "type 0xc1 at byte 0 is not accepted"; }
@test "proxy: hostile agent: oversized frame" { hostile oversize "frame of [0-9]* bytes is over the limit"; }
@test "proxy: hostile agent: malformed message" { hostile malformed "message type: expected 0, 1 or 2"; }
@test "proxy: hostile agent: answer to an id never asked" { hostile unsolicited "unknown msgid"; }
@test "proxy: hostile agent: the same answer twice" { hostile dup-answer "unknown msgid"; }
@test "proxy: hostile agent: output for processes nobody created" { hostile flood "never created"; }
@test "proxy: hostile agent: output beyond the window" { hostile window "overruns the window"; }
@test "proxy: hostile agent: output after the end of a stream" { hostile after-eof "after its end"; }
@test "proxy: hostile agent: output_ack sent to the host" { hostile bad-notify "unexpected notification output_ack"; }
@test "proxy: hostile agent: a request to the host" { hostile request "agent broke the protocol: unexpected request ping"; }
@test "proxy: hostile agent: output as a request" { hostile output-request "agent broke the protocol: unexpected request output"; }
@test "proxy: hostile agent: a hello back to the host" { hostile hello-back "a hello from the server's side"; }

# --- Bounds against a hostile guest (docs/proxy.md, "Bounds") ---------

# restart the fake agent in mode $1 and the proxy in front of it
px_hostile_restart() {
	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	kill "$AGENT_PID"; wait "$AGENT_PID" || true
	rm -f "$T/agent.log" "$T/proxy.log"
	FAKE_MODE=$1 px_start_agent
	px_start_proxy
	pipc -q create_sandbox '{"sandbox_id":"sb"}'
}

# poll proxy_status until it matches the regex $1 (bounded)
px_status_until() {
	for _ in $(seq 600); do
		[[ "$(pipc proxy_status)" =~ $1 ]] && return 0
		sleep 0.05
	done
	echo "proxy_status never matched $1: $(pipc proxy_status)"
	return 1
}

# VmHWM of the proxy under $1 KiB.  Under ASan the runtime's own
# resident memory (shadow, allocator metadata: about 8 MiB before the
# proxy does anything) comes on top: the bound is then counted from the
# proxy's VmHWM once it answered its first ping.
px_hwm_under() {
	local hwm bound=$1
	hwm=$(px_hwm "$PROXY_PID")
	[ "${HUSK_ASAN:-}" != 1 ] || bound=$((bound + PROXY_HWM0))
	echo "# proxy VmHWM ${hwm} KiB (bound $bound)" >&3
	[ "$hwm" -lt "$bound" ]
}

@test "proxy: hostile agent: frame just over the agent frame limit (1 MiB)" {
	hostile big "frame of 1048577 bytes is over the limit of 1048576"
}

@test "proxy: hostile agent: 1-byte outputs for 100000 made-up processes" {
	hostile flood1 "output for more than 64 processes never created"
	px_hwm_under 8192
	run pipc proxy_status
	[[ "$output" == *'"unknown_streams":64,'* ]]
}

@test "proxy: hostile agent: ends of streams for 100000 made-up processes" {
	hostile eof-ghosts "output for more than 64 processes never created"
	px_hwm_under 8192
}

@test "proxy: hostile agent: a window of 1-byte outputs is held at its size" {
	px_hostile_restart drip
	px_ctr c1 'sleep 1000'
	px_start c1
	run pipc ping '{"hostile":true}'
	[ "$status" -eq 0 ]
	px_status_until '"unsubscribed_bytes":524288'
	run pipc proxy_status
	echo "$output"
	[[ "$output" == *'"connects":1,'* ]]
	held=$(echo "$output" | sed -n 's/.*"held_bytes":\([0-9]*\).*/\1/p')
	# 2 streams x 256 chunks of PROXY_CHUNK_MIN (1024) + 64
	[ "$held" -le $((2 * 256 * 1088)) ]
	px_hwm_under 8192
	# Nothing was lost: a subscriber gets every byte.
	"$SHIM" --proxy "$PS" --container c1 </dev/null >"$T/out" 2>"$T/err" 3>&- &
	s=$!
	px_status_until '"unsubscribed_bytes":0,'
	for _ in $(seq 400); do
		[ "$(stat -c %s "$T/out")" = 262144 ] && [ "$(stat -c %s "$T/err")" = 262144 ] && break
		sleep 0.05
	done
	kill -9 "$s"; wait "$s" || true
	[ "$(tr -d o <"$T/out" | wc -c)" = 0 ]
	[ "$(tr -d e <"$T/err" | wc -c)" = 0 ]
	[ "$(stat -c %s "$T/out")" = 262144 ]
	[ "$(stat -c %s "$T/err")" = 262144 ]
}

@test "proxy: hostile agent: window credit across reconnects is bounded" {
	px_hostile_restart window-reset
	px_ctr c1 'sleep 1000'
	px_start c1
	# each round: a full window of c1's stdout, then the agent drops
	# the connection and the proxy comes back with a fresh window
	for round in 1 2; do
		run pipc ping '{"hostile":true}'
		px_status_until "\"connects\":$((round + 1)),.*\"agent_connected\":true|\"agent_connected\":true.*\"connects\":$((round + 1)),"
	done
	run pipc proxy_status
	[[ "$output" == *'"unsubscribed_bytes":524288'* ]]
	run pipc ping '{"hostile":true}'
	grep "agent connection closed: .*output for c1/ stream 1: 589824 bytes held across agent connections (at most 524288)" "$T/proxy.log"
	run pipc proxy_status
	[[ "$output" == *'"unsubscribed_bytes":524288'* ]]
	proxy_alive
}

@test "proxy: hostile agent: a channel reset over and over backs off, logs little" {
	px_hostile_restart flap
	run pipc ping '{"hostile":true}'
	px_status_until '"connects":([7-9]|[1-9][0-9]),'
	run pipc proxy_status
	echo "$output"
	# a connection that lasted less than PROXY_STABLE_SECS does not
	# start the backoff over: it reached its 2 s ceiling
	[[ "$output" == *'"reconnect_delay_ms":2000'* ]]
	n=$(grep -c 'agent_on_ready: connected\|agent_on_close: agent connection closed' "$T/proxy.log")
	echo "lines: $n"
	# 7 connects would be 14 lines; PROXY_LOG_BURST is 10 a minute
	[ "$n" -le 10 ]
	proxy_alive
}

@test "proxy: a client that does not read its answers is cut off at 8 MiB" {
	px_hostile_restart fat
	run "$B/tests/helpers/lazy_client" "$PS" fat 20 300
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"closed by the proxy"* ]]
	grep -q "client_check_queue: client pid [0-9]* cut off: write queue over 8388608 bytes" "$T/proxy.log"
	px_hwm_under 32768
	# everyone else is served
	run pipc ping '{}'
	[ "$status" -eq 0 ]
	run pipc proxy_status
	[[ "$output" == *'"agent_connected":true'* ]]
}

@test "proxy: clients' queues past 64 MiB in all: the largest is cut off" {
	px_hostile_restart fat
	# ten clients with 7 answers of 900 KiB unread each (each held in a
	# 1 MiB buffer): 7 MiB, under one client's 8 MiB, 70 MiB in all
	pids=
	for i in $(seq 10); do
		"$B/tests/helpers/lazy_client" "$PS" fat 7 180 >"$T/lazy$i" 2>&1 3>&- &
		pids="$pids $!"
	done
	# 70 MiB of answers to make and queue: on a loaded machine that took
	# over 30 s once; the bound is generous, the loop ends at the cut.
	for _ in $(seq 3600); do
		grep -q "client_check_queue: client pid [0-9]* cut off: clients' write queues over 67108864 bytes in all, this one the largest" "$T/proxy.log" && break
		sleep 0.05
	done
	kill $pids 2>/dev/null || true
	wait $pids || true
	grep "client_check_queue" "$T/proxy.log"
	grep -q "clients' write queues over 67108864 bytes in all, this one the largest" "$T/proxy.log"
	run grep -q "write queue over 8388608 bytes" "$T/proxy.log"
	[ "$status" -ne 0 ]
	px_hwm_under 102400
	run pipc ping '{}'
	[ "$status" -eq 0 ]
}

# The proxy's CPU time in clock ticks (utime + stime).
px_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
px_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

@test "proxy: polls before sleeping while calls come back to back, not when idle; --poll-us 0 never" {
	PB=$B/bench/proxy_bench
	[ -x "$PB" ] || skip "no $PB (make all)"
	"$PB" "$PS" 2000 >/dev/null
	st=$(pipc proxy_status)
	caught=$(px_field poll_caught <<<"$st")
	missed=$(px_field poll_missed <<<"$st")
	echo "$st"
	# 4000 waits for a peer that answers at once: the window opened
	[ $((caught + missed)) -gt 0 ]
	# nothing comes: the loop sleeps (a spinning one takes 100 a second)
	t0=$(px_ticks "$PROXY_PID")
	sleep 1
	t1=$(px_ticks "$PROXY_PID")
	[ $((t1 - t0)) -le 5 ]

	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	PROXY_ARGS="--poll-us 0" px_start_proxy
	"$PB" "$PS" 2000 >/dev/null
	st=$(pipc proxy_status)
	[ "$(px_field poll_caught <<<"$st")" = 0 ]
	[ "$(px_field poll_missed <<<"$st")" = 0 ]
	[ "$(px_field poll_window_us <<<"$st")" = 0 ]
}

@test "proxy: --ready-fd gets ok once the agent answered, then is closed" {
	kill "$PROXY_PID"; wait "$PROXY_PID" || true
	exec 8>"$T/ready"
	PROXY_ARGS="--ready-fd 8" px_start_proxy
	exec 8>&-
	wait_for -t 10 grep -qx ok "$T/ready"
	# Written once, and the proxy holds it no more.
	[ "$(wc -l <"$T/ready")" -eq 1 ]
	run ls -l "/proc/$PROXY_PID/fd"
	[[ "$output" != *"$T/ready"* ]]
}

@test "proxy: usage errors exit 100" {
	run "$PROXY" --socket "$T/x.sock"
	[ "$status" -eq 100 ]
	run "$PROXY" --agent "$T/a.sock" --socket "$T/x.sock"
	[ "$status" -eq 100 ]
	[[ "$output" == *"unix:PATH"* ]]
	run "$PROXY" --agent "unix:$T/a" --socket "$T/x.sock" --uid 5
	[ "$status" -eq 100 ]
	run "$PROXY" --agent "unix:$T/a" --socket "$T/x.sock" --poll-us 20000
	[ "$status" -eq 100 ]
	[[ "$output" == *"--poll-us \`20000\`: 0 to 10000 microseconds"* ]]
	run "$PROXY" --agent "unix:$T/a" --socket "$T/x.sock" --ready-fd 2
	[ "$status" -eq 100 ]
	[[ "$output" == *"--ready-fd \`2\`: a descriptor above 2"* ]]
}

@test "proxy: SIGTERM leaves cleanly and removes the socket" {
	kill -TERM "$PROXY_PID"
	wait "$PROXY_PID"
	[ ! -e "$PS" ]
	PROXY_PID=
}
