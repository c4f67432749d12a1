#!/usr/bin/env bats
# husk-shim behind a real husk-proxy, with the agent in host mode (no VM).

load lib/proxy_env.sh

bats_require_minimum_version 1.5.0

setup_file() { px_setup_file; }
setup() { px_setup; }
teardown() {
	[ -n "${SHIM_PID:-}" ] && kill -9 "$SHIM_PID" 2>/dev/null
	px_teardown
}

# run_shim ID SCRIPT: create, shim, start; the shim's status, stdout and
# stderr end up in $status, $T/out, $T/err.
run_shim() {
	px_ctr "$1" "$2"
	px_shim_bg "$1" "" >"$T/out" 2>"$T/err" </dev/null
	px_wait_subscribed 1
	px_start "$1"
	status=0
	wait "$SHIM_PID" || status=$?
	SHIM_PID=
}

@test "shim: exit codes pass through" {
	for code in 0 3 77 255; do
		run_shim "c$code" "exit $code"
		[ "$status" -eq "$code" ]
		pipc -q remove_container "{\"container_id\":\"c$code\"}"
	done
}

@test "shim: a process killed by signal N gives 128+N" {
	# not the container's init: signals it has no handler for are
	# ignored by a pid namespace's first process
	px_ctr c1 'sleep 1000'
	px_start c1
	px_exec c1 e1 'kill -USR2 $$; sleep 5'
	run "$SHIM" --proxy "$PS" --container c1 --exec-id e1 </dev/null
	[ "$status" -eq $((128 + 12)) ]
	px_exec c1 e2 'sleep 1000'
	px_shim_bg c1 e2 </dev/null
	px_wait_subscribed 1
	pipc -q signal_process '{"container_id":"c1","exec_id":"e2","signal":9}'
	status=0
	wait "$SHIM_PID" || status=$?
	SHIM_PID=
	[ "$status" -eq 137 ]
}

@test "shim: output order is kept on each stream" {
	run_shim c1 'i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; exit 4'
	[ "$status" -eq 4 ]
	[ "$(wc -l <"$T/out")" -eq 3000 ]
	[ "$(wc -l <"$T/err")" -eq 3000 ]
	diff <(seq 0 2999 | sed 's/^/out/') "$T/out"
	diff <(seq 0 2999 | sed 's/^/err/') "$T/err"
}

@test "shim: output written just before exit is not lost" {
	run_shim c1 'dd if=/dev/zero bs=1000 count=3000 2>/dev/null; echo last >&2; exit 9'
	[ "$status" -eq 9 ]
	[ "$(wc -c <"$T/out")" -eq 3000000 ]
	[ "$(cat "$T/err")" = last ]
}

# Memory stays under 64 MiB (KiB given).  ASan's quarantine keeps
# freed memory for a while: no bound there.
mem_bound() {
	[ "${HUSK_ASAN:-}" = 1 ] || [ "$1" -lt $((64 * 1024)) ]
}

# Highest VmHWM (KiB) of pid while it runs, written to file.
watch_hwm() {
	local pid=$1 file=$2 v max=0
	while kill -0 "$pid" 2>/dev/null; do
		v=$(px_hwm "$pid" 2>/dev/null) || break
		[ -n "$v" ] && [ "$v" -gt "$max" ] && max=$v
		sleep 0.1
	done
	echo "$max" >"$file"
}

@test "shim: 300 MiB of stdout with bounded proxy and shim memory" {
	px_ctr c1 'dd if=/dev/zero bs=1M count=300 2>/dev/null; exit 0'
	"$SHIM" --proxy "$PS" --container c1 </dev/null 2>"$T/err" | wc -c >"$T/count" &
	reader=$!
	px_wait_subscribed 1
	shim_pid=$(pgrep -n -f "husk-shim --proxy $PS --container c1")
	watch_hwm "$shim_pid" "$T/shim.hwm" &
	watcher=$!
	px_start c1
	wait "$reader" "$watcher"
	[ "$(cat "$T/count")" -eq $((300 * 1024 * 1024)) ]
	proxy_hwm=$(px_hwm "$PROXY_PID")
	echo "# VmHWM proxy ${proxy_hwm} KiB, shim $(cat "$T/shim.hwm") KiB" >&3
	mem_bound "$proxy_hwm"
	mem_bound "$(cat "$T/shim.hwm")"
}

@test "shim: 96 MiB of random bytes on stdout, stderr and stdin arrive intact at full speed" {
	# Random bytes (no pattern a lost or repeated chunk could keep),
	# streamed at once on both output streams and stdin; the shim's
	# outputs and what the process read are compared byte for byte.
	head -c $((64 << 20)) /dev/urandom >"$T/share/rootfs/o"
	head -c $((16 << 20)) /dev/urandom >"$T/share/rootfs/e"
	head -c $((16 << 20)) /dev/urandom >"$T/in"
	px_ctr c1 'cat /o & cat /e >&2 & cat >/i; wait'
	"$SHIM" --proxy "$PS" --container c1 <"$T/in" >"$T/out" 2>"$T/err" &
	SHIM_PID=$!
	px_wait_subscribed 1
	px_start c1
	wait "$SHIM_PID"
	SHIM_PID=
	cmp "$T/share/rootfs/o" "$T/out"
	cmp "$T/share/rootfs/e" "$T/err"
	cmp "$T/in" "$T/share/rootfs/i"
}

@test "shim: a slow reader slows only its own stream" {
	px_ctr c1 'sleep 1000'
	px_start c1
	px_exec c1 slow 'dd if=/dev/zero bs=1M count=20 2>/dev/null'
	px_exec c1 fast 'dd if=/dev/zero bs=1M count=50 2>/dev/null'
	# The slow shim's stdout is not read until the fast stream is done
	# (a fifo opened read-write: the wait is bounded even if we fail).
	mkfifo "$T/go"
	"$SHIM" --proxy "$PS" --container c1 --exec-id slow </dev/null \
		| { read -r -t 300 _ <>"$T/go"; wc -c >"$T/slow"; } &
	slow=$!
	px_wait_subscribed 1
	"$SHIM" --proxy "$PS" --container c1 --exec-id fast </dev/null | wc -c >"$T/fast"
	[ "$(cat "$T/fast")" -eq $((50 << 20)) ]
	# All of it, while the slow stream's reader still waits.
	[ ! -e "$T/slow" ]
	kill -0 "$slow"
	echo go >"$T/go"
	wait "$slow"
	[ "$(cat "$T/slow")" -eq $((20 << 20)) ]
	mem_bound "$(px_hwm "$PROXY_PID")"
}

@test "shim: stdin is relayed to EOF" {
	head -c 3000000 /dev/urandom >"$T/in"
	px_ctr c1 'cat; echo done >&2'
	px_shim_bg c1 "" <"$T/in" >"$T/out" 2>"$T/err"
	px_wait_subscribed 1
	px_start c1
	wait "$SHIM_PID"
	SHIM_PID=
	cmp "$T/in" "$T/out"
	[ "$(cat "$T/err")" = done ]
}

@test "shim: TERM, INT, HUP and USR1 reach the process" {
	px_ctr c1 'for s in INT HUP USR1; do trap "echo got $s" $s; done
		trap "echo got TERM; exit 42" TERM
		echo ready
		while :; do sleep 0.05; done'
	px_shim_bg c1 "" >"$T/out" 2>"$T/err" </dev/null
	px_wait_subscribed 1
	px_start c1
	for _ in $(seq 200); do grep -q ready "$T/out" && break; sleep 0.025; done
	for s in INT HUP USR1; do
		kill -$s "$SHIM_PID"
		for _ in $(seq 200); do grep -q "got $s" "$T/out" && break; sleep 0.025; done
	done
	kill -TERM "$SHIM_PID"
	status=0
	wait "$SHIM_PID" || status=$?
	SHIM_PID=
	cat "$T/out"
	[ "$status" -eq 42 ]
	grep -q "got INT" "$T/out"
	grep -q "got HUP" "$T/out"
	grep -q "got USR1" "$T/out"
	grep -q "got TERM" "$T/out"
}

@test "shim: a terminal session in tmux: prompt, command, resize" {
	command -v tmux >/dev/null || skip "no tmux"
	px_ctr c1 'PS1="prompt# " exec sh -i' true
	sess=husk-px-$$
	tmux -L "$sess" new-session -d -x 80 -y 24 \
		"$SHIM --proxy $PS --container c1 --terminal 2>$T/err; echo \$? >$T/rc; sleep 30"
	px_wait_subscribed 1
	px_start c1
	pane() { tmux -L "$sess" capture-pane -p -t 0; }
	pane_wait() {
		for _ in $(seq 200); do pane | grep -q "$1" && return 0; sleep 0.05; done
		pane; return 1
	}
	pane_wait "prompt#"
	tmux -L "$sess" send-keys -t 0 "stty size; echo hi-\$((6*7))" Enter
	pane_wait "^24 80"
	pane_wait "hi-42"
	tmux -L "$sess" resize-window -t 0 -x 100 -y 30
	# The new size travels tmux, shim, proxy, agent: ask until it is there.
	resized() {
		tmux -L "$sess" send-keys -t 0 "clear; stty size" Enter
		pane_wait "^30 100"
	}
	wait_for resized
	tmux -L "$sess" send-keys -t 0 "exit 7" Enter
	for _ in $(seq 200); do [ -s "$T/rc" ] && break; sleep 0.05; done
	tmux -L "$sess" kill-server 2>/dev/null || true
	[ "$(cat "$T/rc")" = 7 ]
}

@test "shim: 20 shims on one proxy at once" {
	px_ctr c1 'sleep 1000'
	px_start c1
	for i in $(seq 1 20); do
		px_exec c1 "e$i" "i=0; while [ \$i -lt 500 ]; do echo e$i-\$i; i=\$((i+1)); done; exit $i"
	done
	pids=()
	for i in $(seq 1 20); do
		"$SHIM" --proxy "$PS" --container c1 --exec-id "e$i" </dev/null >"$T/out$i" 2>"$T/err$i" &
		pids[$i]=$!
	done
	for i in $(seq 1 20); do
		st=0
		wait "${pids[$i]}" || st=$?
		[ "$st" -eq "$i" ]
		diff <(seq 0 499 | sed "s/^/e$i-/") "$T/out$i"
	done
}

@test "shim: a killed shim does not disturb the others" {
	px_ctr c1 'sleep 1000'
	px_start c1
	for i in 1 2 3; do
		px_exec c1 "e$i" "i=0; while [ \$i -lt 40 ]; do echo e$i-\$i; i=\$((i+1)); sleep 0.02; done; exit $i"
	done
	for i in 1 2 3; do
		"$SHIM" --proxy "$PS" --container c1 --exec-id "e$i" </dev/null >"$T/out$i" 2>"$T/err$i" &
		eval "p$i=\$!"
	done
	px_wait_subscribed 3
	kill -9 "$p2"
	wait "$p2" || true
	for i in 1 3; do
		st=0
		eval "wait \$p$i" || st=$?
		[ "$st" -eq "$i" ]
		diff <(seq 0 39 | sed "s/^/e$i-/") "$T/out$i"
	done
	run pipc ping '{}'
	[ "$status" -eq 0 ]
}

@test "shim: a killed proxy makes shims exit 112 with a message" {
	px_ctr c1 'sleep 1000'
	px_start c1
	px_exec c1 e1 'sleep 1000'
	px_exec c1 e2 'sleep 1000'
	"$SHIM" --proxy "$PS" --container c1 --exec-id e1 </dev/null 2>"$T/err1" & p1=$!
	"$SHIM" --proxy "$PS" --container c1 --exec-id e2 </dev/null 2>"$T/err2" & p2=$!
	px_wait_subscribed 2
	kill -9 "$PROXY_PID"
	wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=
	st=0; wait "$p1" || st=$?
	[ "$st" -eq 112 ]
	st=0; wait "$p2" || st=$?
	[ "$st" -eq 112 ]
	grep -q "husk-shim: lost the proxy" "$T/err1"
}

@test "shim: an agent that goes away (the VM) makes the shim exit 112" {
	px_ctr c1 'sleep 1000'
	px_shim_bg c1 "" </dev/null 2>"$T/err"
	px_wait_subscribed 1
	px_start c1
	kill -9 "$AGENT_PID"
	st=0; wait "$SHIM_PID" || st=$?
	SHIM_PID=
	cat "$T/err"
	[ "$st" -eq 112 ]
	grep -q "husk-shim: lost the agent" "$T/err"
	grep -q "agent connection closed" "$T/err"
}

@test "shim: no proxy at all: 112" {
	run "$SHIM" --proxy "$T/none.sock" --container c1 </dev/null
	[ "$status" -eq 112 ]
	[[ "$output" == *"husk-shim: lost the proxy"* ]]
}

@test "shim: usage errors exit 100" {
	run "$SHIM" --container c1
	[ "$status" -eq 100 ]
	run "$SHIM" --proxy x --container ../bad
	[ "$status" -eq 100 ]
}

@test "shim: confinement visible in /proc (NoNewPrivs, Seccomp, CapEff)" {
	px_ctr c1 'sleep 1000'
	px_shim_bg c1 "" </dev/null
	px_wait_subscribed 1
	[ "$(px_status_field "$SHIM_PID" NoNewPrivs)" = 1 ]
	[ "$(px_status_field "$SHIM_PID" Seccomp)" = 2 ]
	[ "$(px_status_field "$SHIM_PID" CapEff)" = 0000000000000000 ]
}

@test "shim: --console-socket hands a pty master over, as runc does" {
	# The size the receiver sets on the master: polled for, bounded.
	px_ctr c1 'read line; i=0; while [ "$(stty size 2>/dev/null)" != "33 77" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; stty size; echo "got $line"; exit 3' true
	mkfifo "$T/fifo"
	exec 9<>"$T/fifo"
	"$B/tests/helpers/shim_recvtty" "$T/console.sock" >"$T/tty.out" 2>"$T/tty.err" <"$T/fifo" &
	recv=$!
	px_wait_sock "$T/console.sock"
	px_shim_bg c1 "" --terminal --console-socket "$T/console.sock" </dev/null
	px_wait_subscribed 1
	px_start c1
	echo hello >"$T/fifo"
	st=0; wait "$SHIM_PID" || st=$?
	SHIM_PID=
	wait "$recv" || true
	cat "$T/tty.out"
	[ "$st" -eq 3 ]
	grep -q "^name: /dev/pts/" "$T/tty.err"
	grep -q "^33 77" "$T/tty.out"
	grep -q "got hello" "$T/tty.out"
}

@test "shim: --console-socket keeps none of the caller's stdio; --ready-fd says when it relays" {
	px_ctr c1 'read line; echo "got $line"; exit 4' true
	mkfifo "$T/fifo"
	exec 9<>"$T/fifo"
	"$B/tests/helpers/shim_recvtty" "$T/console.sock" >"$T/tty.out" 2>"$T/tty.err" <"$T/fifo" &
	recv=$!
	px_wait_sock "$T/console.sock"
	# The caller reads the output of a command that leaves the shim
	# behind to its end, as `out=$(husk create ...)` does: that end
	# comes while the shim still runs.
	T=$T timeout 20 bash -c 'out=$("$@" 3>"$T/ready" & echo $! >"$T/shim.pid"; echo started); echo "returned $out"' \
		_ "$SHIM" --proxy "$PS" --container c1 --terminal \
		--console-socket "$T/console.sock" --log "$T/shim.log" \
		--ready-fd 3 >"$T/res" 2>&1 </dev/null || true
	SHIM_PID=$(cat "$T/shim.pid")
	cat "$T/res"
	[ "$(cat "$T/res")" = "returned started" ]
	for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.025; done
	[ "$(cat "$T/ready")" = ok ]
	kill -0 "$SHIM_PID"
	# Its stdio: /dev/null and the log.
	[ "$(readlink "/proc/$SHIM_PID/fd/0")" = /dev/null ]
	[ "$(readlink "/proc/$SHIM_PID/fd/1")" = "$T/shim.log" ]
	[ "$(readlink "/proc/$SHIM_PID/fd/2")" = "$T/shim.log" ]
	# and it still relays the terminal.
	px_start c1
	echo hello >"$T/fifo"
	wait "$recv" || true
	grep -q "got hello" "$T/tty.out"
	for _ in $(seq 400); do kill -0 "$SHIM_PID" 2>/dev/null || break; sleep 0.025; done
	run ! kill -0 "$SHIM_PID"
	SHIM_PID=

	# A shim that cannot relay says why on the ready descriptor.
	run "$SHIM" --proxy "$PS" --container c1 --terminal \
		--console-socket "$T/no.sock" --ready-fd 3 3>"$T/ready2"
	[ "$status" -ne 0 ]
	grep -q -- "--console-socket" "$T/ready2"
	[ "$(cat "$T/ready2")" != ok ]
	run "$SHIM" --proxy "$PS" --container c1 --ready-fd 1
	[ "$status" -eq 100 ]
	[[ "$output" == *"--ready-fd"* ]]
}

# A call is on its way through the proxy.
call_in_flight() {
	[ "$(pipc proxy_status | sed -n 's/.*"calls":\([0-9]*\).*/\1/p')" -ge 1 ]
}

@test "agent: a child slow to report holds up neither the agent nor other calls" {
	[ "$KIND" = host ] || skip "needs the host-mode agent"
	px_ctr c1 'sleep 100'
	px_start c1
	f=$(find /sys/fs/cgroup/freezer -type d -path "*/$CGROOT/sb/c1" | head -n 1)
	[ -n "$f" ] || skip "no v1 freezer here"
	# Frozen behind the agent's back: an exec's child joins the cgroup
	# and cannot report until it thaws.
	echo FROZEN >"$f/freezer.state"
	pipc exec_process "{\"container_id\":\"c1\",\"exec_id\":\"e1\",\"process\":$(px_process 'true')}" >"$T/exec1.out" 2>&1 &
	xpid=$!
	wait_for call_in_flight
	# Meanwhile the agent answers through the same connection.
	run pipc list_processes '{"container_id":"c1"}'
	echo "$output"
	[ "$status" -eq 0 ]
	px_ctr c2 'true'
	kill -0 "$xpid"
	echo THAWED >"$f/freezer.state"
	wait "$xpid"
	grep -q '"pid"' "$T/exec1.out"
	# Removed while an exec still waits: the exec gets an answer.
	echo FROZEN >"$f/freezer.state"
	pipc exec_process "{\"container_id\":\"c1\",\"exec_id\":\"e2\",\"process\":$(px_process 'true')}" >"$T/exec2.out" 2>&1 &
	xpid=$!
	wait_for call_in_flight
	run pipc remove_container '{"container_id":"c1","force":true}'
	echo "$output"
	[ "$status" -eq 0 ]
	st=0
	wait "$xpid" || st=$?
	[ "$st" -ne 0 ]
	cat "$T/exec2.out"
	grep -q "exec in c1: the container was removed" "$T/exec2.out"
}
