#!/usr/bin/env bats
# The edges engines rely on, as runc 1.1 behaves there: idempotent
# deletes, signals, exec's exit codes and flags, ps, list, log lines and
# events.  One VM (a pod, so that a second container costs no boot) is
# shared by every test; the tests run in file order.

load lib/husk.sh

bats_require_minimum_version 1.5.0

# The container's init records the signals it traps.
TRAPS="trap 'echo usr1 >> /dev/shm/sigs' USR1; trap 'echo hup >> /dev/shm/sigs' HUP; trap 'echo term >> /dev/shm/sigs' TERM; while :; do sleep 1; done"

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-edges.XXXXXX)/root
	export B="$BATS_FILE_TMPDIR/bundle" M="$BATS_FILE_TMPDIR/member"
	make_bundle "$B" sh -c "$TRAPS"
	set_annotations "$B" '{"io.kubernetes.cri.container-type": "sandbox"}'
	# --no-new-privs must be able to make a difference.
	sed -i 's/"noNewPrivileges": true/"noNewPrivileges": false/' "$B/config.json"
	# 32 MiB, so that the events test can run it out of memory (the
	# VM boots with it: no hot-plug).
	jq '.linux.resources.memory.limit = 33554432' "$B/config.json" \
		>"$B/config.json.new" && mv "$B/config.json.new" "$B/config.json"
	make_bundle "$M" sleep 100000
	set_annotations "$M" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "edges"}'
	# Created, not started: the first test execs into it.
	"$HUSK_BIN" --root "$ROOT" create --bundle "$B" edges </dev/null \
		>"$BATS_FILE_TMPDIR/create.out" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/create.out" >&3; false; }
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")"
}

# The main container running, whichever tests ran before.
started() {
	if husk state edges | grep -q '"status": "created"'; then
		husk start edges
	fi
	wait_status edges running
}

# Process $1 has exited (gone, or a zombie not yet waited for).
exited() {
	[ ! -e "/proc/$1" ] || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# Poll (bounded) until a command succeeds.
poll() {
	local i
	for i in $(seq 1 150); do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

@test "exec into a created container works, and it stays created" {
	run husk state edges
	[[ "$output" == *'"status": "created"'* ]]
	run husk exec edges sh -c 'echo in-created; test -d /proc/1'
	[ "$status" -eq 0 ]
	[ "$output" = in-created ]
	run husk state edges
	[[ "$output" == *'"status": "created"'* ]]
	run husk start edges
	[ "$status" -eq 0 ]
	wait_status edges running
}

@test "delete --force of a missing or half-made id exits 0; plain delete of a missing id fails" {
	run husk delete nosuch
	[ "$status" -eq 1 ]
	[[ "$output" == *"container nosuch does not exist"* ]]
	run husk delete --force nosuch
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# Killed between mkdir and lock; between lock and state; a state
	# file that does not parse.
	mkdir "$ROOT/half1"
	mkdir "$ROOT/half2" && touch "$ROOT/half2/.lock"
	mkdir "$ROOT/half3" && touch "$ROOT/half3/.lock" && echo '{' >"$ROOT/half3/state.json"
	for id in half1 half2 half3; do
		run husk delete --force "$id"
		[ "$status" -eq 0 ]
		[ ! -e "$ROOT/$id" ]
		run husk delete --force "$id"
		[ "$status" -eq 0 ]
	done
	# A bad id is still refused.
	run husk delete --force ../x
	[ "$status" -ne 0 ]
	[[ "$output" == *"id"* ]]
}

@test "kill: default TERM, 0, numbers, names with and without SIG in any case" {
	started
	# Signals the trapping shell sees: it runs a trap once its sleep
	# ends, and runs it once for several of one signal, so one at a time.
	sigs() {
		husk exec edges cat /dev/shm/sigs 2>/dev/null | grep -c "$1"
	}
	run husk kill edges 0
	[ "$status" -eq 0 ]
	run husk kill edges usr1
	[ "$status" -eq 0 ]
	poll eval '[ "$(sigs usr1)" -eq 1 ]'
	run husk kill edges 10
	[ "$status" -eq 0 ]
	poll eval '[ "$(sigs usr1)" -eq 2 ]'
	run husk kill edges sigusr1
	[ "$status" -eq 0 ]
	poll eval '[ "$(sigs usr1)" -eq 3 ]'
	run husk kill edges SIGHUP
	[ "$status" -eq 0 ]
	poll eval '[ "$(sigs hup)" -eq 1 ]'
	run husk kill edges
	[ "$status" -eq 0 ]
	poll eval '[ "$(sigs term)" -eq 1 ]'
	run husk kill edges SIGKILLX
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown signal 'SIGKILLX'"* ]]
	run husk kill edges 65
	[ "$status" -eq 100 ]
	run husk kill edges -- -1
	[ "$status" -ne 0 ]
	run husk state edges
	[[ "$output" == *'"status": "running"'* ]]
	run husk kill nosuch 0
	[ "$status" -eq 1 ]
}

@test "exec: husk's own failures exit 255, the process's status is its own" {
	started
	run husk exec edges sh -c 'exit 254'
	[ "$status" -eq 254 ]
	run husk exec nosuch true
	[ "$status" -eq 255 ]
	[[ "$output" == *"does not exist"* ]]
	run husk exec --pid-file /nonexistent/dir/pid edges true
	[ "$status" -eq 255 ]
	[[ "$output" == *"/nonexistent/dir"* ]]
	run husk exec --process "$BATS_TEST_TMPDIR/missing.json" edges
	[ "$status" -eq 255 ]
	[[ "$output" == *"missing.json"* ]]
	echo '{"args": ' >"$BATS_TEST_TMPDIR/bad.json"
	run husk exec --process "$BATS_TEST_TMPDIR/bad.json" edges
	[ "$status" -eq 255 ]
	[[ "$output" == *"bad.json"* ]]
	run husk exec edges
	[ "$status" -eq 255 ]
	[[ "$output" == *"needs a command"* ]]
	run husk exec --bogus edges true
	[ "$status" -eq 255 ]
	# A pid file that cannot be written once the process runs: the
	# process goes again.
	mkdir "$BATS_TEST_TMPDIR/adir"
	run husk exec --pid-file "$BATS_TEST_TMPDIR/adir" edges sleep 303
	[ "$status" -eq 255 ]
	[[ "$output" == *"--pid-file"* ]]
	run husk ps edges
	[[ "$output" != *"sleep 303"* ]]
}

@test "exec flags: env, cwd, user, gids, caps, no-new-privs, tty, detach, process file; refused ones say why" {
	started
	run husk exec --env FOO=bar -e BAZ=qux --cwd /tmp edges sh -c 'echo $FOO $BAZ $(pwd)'
	[ "$status" -eq 0 ]
	[ "$output" = "bar qux /tmp" ]
	run husk exec --user 65534:65534 --additional-gids 10 -g 11 edges id -G
	[ "$status" -eq 0 ]
	[ "$output" = "65534 10 11" ]
	run husk exec edges grep NoNewPrivs /proc/self/status
	[[ "$output" == *"0" ]]
	run husk exec --no-new-privs edges grep NoNewPrivs /proc/self/status
	[[ "$output" == *"1" ]]
	# CAP_SYS_ADMIN (21) is not in the default spec's sets.
	run husk exec edges grep CapEff /proc/self/status
	[ $(( 0x${output##*:[[:space:]]} & (1 << 21) )) -eq 0 ]
	run husk exec --cap CAP_SYS_ADMIN edges grep CapEff /proc/self/status
	[ $(( 0x${output##*:[[:space:]]} & (1 << 21) )) -ne 0 ]
	run script -qec "$HUSK_BIN --root $ROOT exec --tty edges sh -c 'test -t 0 && echo is-a-tty'" /dev/null
	[[ "$output" == *is-a-tty* ]]
	printf '{"args": ["sh", "-c", "echo from-file $X"], "cwd": "/", "env": ["X=1"]}' >"$BATS_TEST_TMPDIR/p.json"
	run husk exec --process "$BATS_TEST_TMPDIR/p.json" edges
	[ "$status" -eq 0 ]
	[ "$output" = "from-file 1" ]
	run husk_detached exec --detach --pid-file "$BATS_TEST_TMPDIR/epid" edges sleep 304
	[ "$status" -eq 0 ]
	kill -0 "$(cat "$BATS_TEST_TMPDIR/epid")"
	run husk ps edges
	[[ "$output" == *"sleep 304"* ]]
	run husk exec --preserve-fds 0 edges true
	[ "$status" -eq 0 ]
	run husk exec --preserve-fds 2 edges true
	[ "$status" -eq 255 ]
	[[ "$output" == *"--preserve-fds 2: refused"*"VM"* ]]
	run husk exec --cgroup cpu:sub edges true
	[ "$status" -eq 255 ]
	[[ "$output" == *"--cgroup cpu:sub: refused"* ]]
	run husk exec --ignore-paused edges true
	[ "$status" -eq 255 ]
	[[ "$output" == *"--ignore-paused: refused"* ]]
	# The guest has no LSM: the agent logs these and runs the process,
	# as it does for a config.json that names them (docker's do).
	run husk exec --apparmor husk-test edges echo aa
	[ "$status" -eq 0 ]
	[ "$output" = aa ]
	run husk exec --process-label system_u:system_r:t edges echo se
	[ "$status" -eq 0 ]
	[ "$output" = se ]
}

@test "ps: ps options lay out the table, --format json gives the host pids, guest text is escaped" {
	started
	run husk_detached exec --detach edges sh -c "sleep 305; : $(printf '\033[31m')"
	[ "$status" -eq 0 ]
	poll eval 'husk ps edges -o args= | grep -qx "sleep 305"'
	# runc's default is -ef.
	run husk ps edges
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^UID\ +PID\ +PPID\ +C\ +STIME\ +TTY\ +TIME\ +CMD$ ]]
	[[ "$output" == *"root "*"sh -c trap"* ]]
	# Escaped, never raw.
	[[ "$output" == *'\x1b[31m'* ]]
	[[ "$output" != *$'\033'* ]]
	run husk ps edges -e -x
	[[ "${lines[0]}" =~ ^\ *PID\ +TTY\ +STAT\ +TIME\ +COMMAND$ ]]
	run husk ps edges aux
	[[ "${lines[0]}" =~ ^USER\ +PID\ +%CPU\ +VSZ\ +RSS\ +TTY\ +STAT\ +START\ +TIME\ +COMMAND$ ]]
	# The same pids as the table, with no header when all are empty.
	run husk ps edges -o pid=,args=
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^\ *[0-9]+\  ]]
	sp=$(echo "$output" | awk '$2 == "sleep" && $3 == "305" { print $1 }')
	[ -n "$sp" ]
	# --format json: host pids, as engines look them up on the host
	# (docker top): the shim's, which state reports as the pid.
	hp=$(husk state edges | jq .pid)
	[ "$hp" -gt 1 ]
	run husk ps --format json edges
	[ "$status" -eq 0 ]
	[ "$output" = "[$hp]" ]
	[ "$(cat /proc/$hp/comm)" = husk-shim ]
	run husk ps edges -o pid,ppid,user,args
	[[ "${lines[0]}" =~ ^\ *PID\ +PPID\ +USER\ +COMMAND$ ]]
	run husk ps edges -L
	[ "$status" -eq 100 ]
	[[ "$output" == *"'-L' is not supported"* ]]
	run husk ps edges -o pid,wchan
	[ "$status" -eq 100 ]
	[[ "$output" == *"'wchan'"* ]]
}

@test "list --format json has runc's fields; list -q the ids" {
	started
	run husk list --format json
	[ "$status" -eq 0 ]
	pid=$(husk state edges | jq .pid)
	echo "$output" | jq -e --arg b "$B" --argjson pid "$pid" '.[] | select(.id == "edges") |
		.ociVersion == "1.0.2" and .pid == $pid and .status == "running" and
		.bundle == $b and .rootfs == ($b + "/rootfs") and
		(.created | test("^[0-9-]+T[0-9:.]+Z$")) and .owner == "root"'
	echo "$output" | jq -e '.[] | select(.id == "edges") | keys_unsorted |
		.[0:6] == ["ociVersion", "id", "pid", "status", "bundle", "rootfs"]'
	run husk state edges
	echo "$output" | jq -e '.rootfs and .owner == "root"'
	run husk list -q
	[ "$status" -eq 0 ]
	[ "$output" = edges ]
}

@test "--log lines: runc's time/level/msg, as text or JSON" {
	run husk --log "$BATS_TEST_TMPDIR/log.txt" state nosuch
	[ "$status" -eq 1 ]
	tail -n 1 "$BATS_TEST_TMPDIR/log.txt" | grep -Eq '^time="[0-9-]+T[0-9:.]+Z" level=error msg="container nosuch does not exist" tag=husk pid=[0-9]+$'
	# Usage errors reach the log too (containerd shows its last line).
	run husk --log "$BATS_TEST_TMPDIR/log.json" --log-format json kill edges NOPE
	[ "$status" -eq 100 ]
	tail -n 1 "$BATS_TEST_TMPDIR/log.json" | jq -e '.level == "error" and
		(.msg | test("unknown signal .NOPE.")) and (.time | test("^[0-9-]+T[0-9:.]+Z$"))'
}

@test "kill --all signals every process of that container only; ps of a stopped container is an empty table" {
	started
	run husk_detached run --detach --bundle "$M" member
	[ "$status" -eq 0 ]
	wait_status member running
	run husk_detached exec --detach member sleep 306
	[ "$status" -eq 0 ]
	poll eval 'husk ps member | grep -q "sleep 306"'
	run husk kill --all member KILL
	[ "$status" -eq 0 ]
	wait_status member stopped
	# Nothing of the other container's was touched.
	run husk ps edges
	[[ "$output" == *"sleep 304"* && "$output" == *"sleep 305"* ]]
	run husk state edges
	[[ "$output" == *'"status": "running"'* ]]
	run husk ps member
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == UID*CMD ]]
	run husk ps --format json member
	[ "$status" -eq 0 ]
	[ "$output" = "[]" ]
	run husk exec member true
	[ "$status" -eq 255 ]
	[[ "$output" == *stopped* ]]
	run husk delete member
	[ "$status" -eq 0 ]
}

@test "events: a stats line per interval in runc's shape, an oom line per OOM kill, --stats once, the end at delete" {
	started
	run husk events --stats edges
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	echo "$output" | jq -e '.type == "stats" and .id == "edges" and
		(.data.cpu.usage.total | type == "number") and
		(.data.memory.usage.usage > 0) and (.data.pids.current >= 1)'
	"$HUSK_BIN" --root "$ROOT" events --interval 200ms edges \
		>"$BATS_TEST_TMPDIR/ev" 2>"$BATS_TEST_TMPDIR/ev.err" &
	ev=$!
	poll eval '[ "$(wc -l < "$BATS_TEST_TMPDIR/ev")" -ge 3 ]'
	head -n 3 "$BATS_TEST_TMPDIR/ev" | jq -e -s 'all(.[]; .type == "stats" and .id == "edges")'
	[ "$(grep -c '"type":"oom"' "$BATS_TEST_TMPDIR/ev")" -eq 0 ]
	# dd's 96 MiB buffer in a 32 MiB container: the guest's OOM killer.
	run husk exec edges dd if=/dev/zero of=/dev/null bs=96M count=1
	echo "$output"
	[ "$status" -eq 137 ]
	poll grep -q '^{"type":"oom","id":"edges"}$' "$BATS_TEST_TMPDIR/ev"
	# Stats go on after it, and one kill is one line.
	n=$(wc -l < "$BATS_TEST_TMPDIR/ev")
	poll eval '[ "$(wc -l < "$BATS_TEST_TMPDIR/ev")" -ge $((n + 2)) ]'
	[ "$(grep -c '"type":"oom"' "$BATS_TEST_TMPDIR/ev")" -eq 1 ]
	run husk delete --force edges
	[ "$status" -eq 0 ]
	poll exited "$ev"
	rc=0
	wait "$ev" || rc=$?
	[ "$rc" -eq 0 ]
	assert_gone edges
}
