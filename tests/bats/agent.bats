#!/usr/bin/env bats
# husk-agent in host mode (--channel unix:PATH): containers built from a
# busybox rootfs under the shared dir, driven by husk-ipc and by
# tests/helpers/agent_client (one connection that relays stdio).

load lib/rootfs.sh
load lib/wait.sh

AGENT=${BUILD:-build}/bin/husk-agent
IPC=${BUILD:-build}/bin/husk-ipc
CLIENT=${BUILD:-build}/tests/helpers/agent_client

setup_file() {
	[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
	export ROOTFS_TPL=$BATS_FILE_TMPDIR/tpl
	make_rootfs "$ROOTFS_TPL"
}

setup() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	T=$(mktemp -d /tmp/husk-agent-test.XXXXXX)
	chmod 0700 "$T"
	mkdir -p "$T/share"
	cp -a "$ROOTFS_TPL" "$T/share/rootfs"
	S=$T/agent.sock
	CGROOT=husk-test-$$-$BATS_TEST_NUMBER
	"$AGENT" --channel "unix:$S" --shared-dir "$T/share" \
		--cgroup-root "$CGROOT" --log-level debug 2>"$T/agent.log" &
	AGENT_PID=$!
	for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
	[ -S "$S" ]
}

teardown() {
	[ -n "${AGENT_PID:-}" ] || return 0
	"$IPC" -q "$S" destroy_sandbox '{}' || true
	kill "$AGENT_PID" 2>/dev/null || true
	wait "$AGENT_PID" 2>/dev/null || true
	if [ -n "${BATS_TEST_COMPLETED:-}" ]; then :; else
		echo "# agent log:"; sed 's/^/#   /' "$T/agent.log"
	fi
	for c in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$CGROOT" 2>/dev/null); do
		find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	umount -R "$T/share" 2>/dev/null || true
	# What a test mounted below $T (deepest first).
	awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf "$T"
}

MOUNTS='{"destination":"/proc","type":"proc","source":"proc"},
{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}'

# spec ARGS-JSON: a config.json; PROC, LINUX, TOP add members (each
# starting with a comma), RO=true makes the root read-only.
spec() {
	printf '{"ociVersion":"1.0.2","process":{"args":%s,"env":["PATH=/bin","HOME=/root"],"cwd":"/"%s},"root":{"path":"rootfs","readonly":%s},"hostname":"ctr","mounts":[%s],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]%s}%s}' \
		"$1" "${PROC:-}" "${RO:-false}" "$MOUNTS" "${LINUX:-}" "${TOP:-}"
}

sh_spec() {
	spec "[\"sh\",\"-c\",$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')]"
}

ipc() { "$IPC" "$S" "$@"; }
# The v1 cgroup directory of a container (the agent nests its cgroups
# below its own, wherever that is).
cgdir() { find "/sys/fs/cgroup/$1" -maxdepth 5 -type d -path "*/$CGROOT/sb/$2" | head -n 1; }
run_sh() { "$CLIENT" --no-stdin "$S" run "${CID:-c1}" "$(sh_spec "$1")"; }

@test "agent: ping and version answer" {
	run ipc ping
	[ "$status" -eq 0 ]
	[ "$output" = "{}" ]
	run ipc version
	[[ "$output" == *'"protocol":1'* ]]
}

@test "agent: exit codes 0 and N" {
	run run_sh 'exit 0'
	[ "$status" -eq 0 ]
	CID=c2 run run_sh 'exit 42'
	[ "$status" -eq 42 ]
}

@test "agent: a process killed by a signal exits 128+N" {
	"$CLIENT" --detach "$S" run c1 "$(spec '["sleep","100"]')"
	ipc signal_process '{"container_id":"c1","exec_id":"","signal":9}'
	run ipc wait_process '{"container_id":"c1","exec_id":""}'
	[ "$output" = '{"status":137}' ]
}

@test "agent: stdout and stderr are kept apart" {
	"$CLIENT" --no-stdin "$S" run c1 "$(sh_spec 'echo out; echo err >&2')" \
		>"$T/out" 2>"$T/err"
	[ "$(cat "$T/out")" = out ]
	[ "$(cat "$T/err")" = err ]
}

@test "agent: stdin reaches the process and its close is an EOF" {
	run bash -c "printf 'line one\nline two\n' | '$CLIENT' '$S' run c1 '$(spec '["cat"]')'"
	[ "$status" -eq 0 ]
	[ "$output" = $'line one\nline two' ]
	# More than a pipe and a window: flow control both ways.
	head -c 3000000 /dev/zero >"$T/big"
	run bash -c "'$CLIENT' '$S' run c2 '$(spec '["wc","-c"]')' <'$T/big'"
	[ "$status" -eq 0 ]
	[ "$(echo $output)" = 3000000 ]
	run bash -c "'$CLIENT' --no-stdin '$S' run c3 '$(spec '["cat","/bin/busybox"]')' | wc -c"
	[ "$output" = "$(wc -c <"$T/share/rootfs/bin/busybox")" ]
}

@test "agent: a terminal: isatty, its size, and a resize" {
	PROC=',"terminal":true,"consoleSize":{"height":40,"width":100}'
	run run_sh 'test -t 0 && test -t 1 && echo tty; stty size'
	[ "$status" -eq 0 ]
	[ "$(printf '%s' "$output" | tr -d '\r')" = $'tty\n40 100' ]
	# The pty is the container's own (its devpts instance), as with
	# runc: tty names it, and it is the only one there.
	CID=c3 run run_sh 'tty; ls -1 /dev/pts'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(printf '%s' "$output" | tr -d '\r')" = $'/dev/pts/0\n0\nptmx' ]
	# Whatever an image puts at /dev/ptmx is not taken for one.
	mkdir -p "$T/share/rootfs/dev"
	echo not-a-pty >"$T/share/rootfs/dev/ptmx"
	MOUNTS='{"destination":"/proc","type":"proc","source":"proc"}' CID=c5 run run_sh 'true'
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"/dev/ptmx in the container is not the pty multiplexer"* ]]
	rm -f "$T/share/rootfs/dev/ptmx"
	# It belongs to the process's user.
	PROC=',"user":{"uid":1000,"gid":1000},"terminal":true'
	CID=c4 run run_sh 'ls -ln "$(tty)" | awk "{ print \$3 }"'
	echo "$output"
	[ "$(printf '%s' "$output" | tr -d '\r')" = 1000 ]
	# The resize comes after the start: the process waits for it.
	# (The process may be gone before the client's close_stdin comes,
	# which the client then reports: look for the size's line.)
	run "$CLIENT" --no-stdin --winsize 50,120 "$S" run c2 "$(sh_spec 'i=0; while [ "$(stty size)" != "50 120" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; stty size')"
	echo "$output"
	printf '%s\n' "$output" | tr -d '\r' | grep -qx '50 120'
}

@test "agent: env and cwd come from the spec" {
	PROC=',"env":["PATH=/bin","FOO=bar baz"],"cwd":"/tmp"'
	run run_sh 'echo "$FOO"; pwd'
	[ "$output" = $'bar baz\n/tmp' ]
}

@test "agent: numeric user, group and additional groups" {
	PROC=',"user":{"uid":1000,"gid":1001,"additionalGids":[10,20],"umask":63}'
	run run_sh 'id -u; id -g; id -G; umask'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 1000 ]
	[ "${lines[1]}" = 1001 ]
	[ "${lines[2]}" = "1001 10 20" ] || [ "${lines[2]}" = "10 20" ]
	[ "${lines[3]}" = 0077 ]
}

@test "agent: the five capability sets, read back from /proc/self/status" {
	PROC=',"user":{"uid":1000,"gid":1000},"capabilities":{"bounding":["CAP_CHOWN","CAP_KILL","CAP_NET_RAW"],"effective":["CAP_KILL"],"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_KILL"],"ambient":["CAP_KILL"]}'
	run run_sh 'grep ^Cap /proc/self/status'
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "$output" == *"CapBnd:	0000000000002021"* ]]
	[[ "$output" == *"CapAmb:	0000000000000020"* ]]
	[[ "$output" == *"CapInh:	0000000000000020"* ]]
	[[ "$output" == *"CapEff:	0000000000000020"* ]]
	[[ "$output" == *"CapPrm:	0000000000000020"* ]]
	PROC=',"noNewPrivileges":true,"capabilities":{"bounding":["CAP_CHOWN"],"effective":["CAP_CHOWN"],"permitted":["CAP_CHOWN"]}'
	CID=c2 run run_sh 'grep -E "^(CapBnd|CapEff|NoNewPrivs)" /proc/self/status'
	[[ "$output" == *"CapBnd:	0000000000000001"* ]]
	[[ "$output" == *"CapEff:	0000000000000001"* ]]
	[[ "$output" == *"NoNewPrivs:	1"* ]]
}

@test "agent: a seccomp rule fails a syscall with the configured errno" {
	LINUX=',"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}'
	run run_sh 'mkdir /tmp/x; echo "rc=$?"; touch /tmp/y && echo touched'
	echo "$output"
	[[ "$output" == *"Operation not permitted"* ]]
	[[ "$output" == *"rc=1"* ]]
	[[ "$output" == *touched* ]]
}

@test "agent: a seccomp profile loads for an unprivileged user without no_new_privs" {
	# The kernel allows that only to a CAP_SYS_ADMIN holder: the agent
	# must load the filter before the capabilities go.
	PROC=',"noNewPrivileges":false,"user":{"uid":1000,"gid":1000},"capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}'
	LINUX=',"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}'
	run run_sh 'mkdir /tmp/x; echo "rc=$? uid=$(id -u)"; grep NoNewPrivs /proc/self/status'
	echo "$output"
	[[ "$output" == *"Operation not permitted"* ]]
	[[ "$output" == *"rc=1 uid=1000"* ]]
	[[ "$output" == *"NoNewPrivs:"*"0"* ]]
}

@test "agent: rlimits" {
	PROC=',"rlimits":[{"type":"RLIMIT_NOFILE","soft":123,"hard":456}]'
	run run_sh 'ulimit -n; ulimit -Hn'
	[ "$output" = $'123\n456' ]
}

@test "agent: read-only root, masked and read-only paths, hostname" {
	RO=true
	LINUX=',"maskedPaths":["/proc/version","/proc/bus","/proc/nonexistent"],"readonlyPaths":["/proc/sys"]'
	run run_sh 'exec 2>&1; touch /x; touch /tmp/x; echo version=$(wc -c </proc/version); echo bus=$(ls /proc/bus | wc -l); (echo 1 >/proc/sys/kernel/domainname); hostname'
	echo "$output"
	[[ "${lines[0]}" == *"/x: Read-only file system"* ]]
	[[ "${lines[1]}" == *"/tmp/x: Read-only file system"* ]]
	[ "${lines[2]}" = "version=0" ]
	[ "${lines[3]}" = "bus=0" ]
	[[ "${lines[4]}" == *"Read-only file system"* ]]
	[ "${lines[5]}" = ctr ]
	[ ! -e "$T/share/rootfs/x" ]
}

@test "agent: ps, stats, pause and resume, memory limit update" {
	"$CLIENT" --detach "$S" run c1 "$(sh_spec 'sleep 100')"
	run ipc list_processes '{"container_id":"c1"}'
	echo "$output"
	[[ "$output" == *'"comm":"sleep"'* ]]
	run ipc stats_container '{"container_id":"c1"}'
	echo "$output"
	[[ "$output" == *'"memory":'* ]]
	[[ "$output" == *'"pids":'* ]]
	[[ "$output" == *'"current":1'* ]]
	ipc pause_container '{"container_id":"c1"}'
	[ "$(cat $(cgdir freezer c1)/freezer.state)" = FROZEN ]
	run ipc pause_container '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"not running"* ]]
	ipc resume_container '{"container_id":"c1"}'
	[ "$(cat $(cgdir freezer c1)/freezer.state)" = THAWED ]
	ipc update_container '{"container_id":"c1","resources":{"memory":{"limit":67108864}}}'
	[ "$(cat $(cgdir memory c1)/memory.limit_in_bytes)" = 67108864 ]
}

@test "agent: wait_oom counts a container's OOM kills, answering a long poll" {
	# 16 MiB of memory and no swap: awk doubling a string is OOM-killed
	# once the test is waiting (one host connection at a time: the
	# container starts it by itself).
	LINUX=',"resources":{"memory":{"limit":16777216,"swap":16777216}}'
	"$CLIENT" --detach "$S" run c1 "$(sh_spec 'while [ ! -e /go ]; do sleep 0.1; done; awk "BEGIN { s = 1; while (1) s = s s }"; echo "awk: $?" >/done; sleep 100')"
	run ipc wait_oom '{"container_id":"c1"}'
	echo "$output"
	[ "$output" = '{"oom_kills":0}' ]
	ipc wait_oom '{"container_id":"c1","seen":0}' >"$T/waited" &
	waiter=$!
	wait_for grep -q 'waiting for more than 0 OOM kills' "$T/agent.log"
	touch "$T/share/rootfs/go"
	wait "$waiter"
	cat "$T/waited"
	[ "$(cat "$T/waited")" = '{"oom_kills":1}' ]
	wait_for test -e "$T/share/rootfs/done"
	[ "$(cat "$T/share/rootfs/done")" = "awk: 137" ]
	grep -q 'container c1: OOM kill (1 so far)' "$T/agent.log"
	# Nothing new: the timeout answers with the same count.
	run ipc wait_oom '{"container_id":"c1","seen":1,"timeout_ms":100}'
	[ "$output" = '{"oom_kills":1}' ]
	# The container's removal ends a waiting call (on the connection
	# that removes it: a new one would replace the waiter's).
	run ipc remove_container '{"container_id":"c1","force":true}'
	[ "$status" -eq 0 ]
	run ipc wait_oom '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"c1: no such container"* ]]
	run ipc wait_oom '{"container_id":"c2","timeout_ms":86400001}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"timeout_ms"* ]]
}

@test "agent: two containers share the sandbox's pid namespace" {
	"$CLIENT" --sandbox '{"sandbox_id":"sb","shared_pid_ns":true}' --detach \
		"$S" run c1 "$(spec '["sleep","100"]')"
	run "$CLIENT" --no-stdin "$S" run c2 "$(sh_spec 'ps -o pid,comm')"
	echo "$output"
	[[ "$output" == *"1 sleep"* ]]
}

@test "agent: exec into a running container" {
	"$CLIENT" --detach "$S" run c1 "$(spec '["sleep","100"]')"
	run "$CLIENT" --no-stdin "$S" exec c1 e1 \
		'{"args":["sh","-c","hostname; echo $$; cat /proc/1/comm; exit 5"],"env":["PATH=/bin"],"cwd":"/tmp"}'
	echo "$output"
	[ "$status" -eq 5 ]
	[ "${lines[0]}" = ctr ]
	[ "${lines[1]}" != 1 ]
	[ "${lines[2]}" = sleep ]
	run ipc wait_process '{"container_id":"c1","exec_id":"e1"}'
	[ "$output" = '{"status":5}' ]
	run "$CLIENT" --no-stdin "$S" exec c1 e2 '{"args":["nosuchcmd"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$status" -eq 200 ]
	[[ "$output" == *'exec "nosuchcmd": No such file or directory'* ]]
	run "$CLIENT" --no-stdin "$S" exec c1 e1 '{"args":["true"],"cwd":"/"}'
	[[ "$output" == *"already exists"* ]]
	# An exec's terminal comes from the container's devpts too.
	run "$CLIENT" --no-stdin "$S" exec c1 e3 '{"args":["tty"],"cwd":"/","terminal":true}'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(printf '%s' "$output" | tr -d '\r')" = /dev/pts/0 ]
}

@test "agent: signal one process, then all of a container" {
	"$CLIENT" --detach "$S" run c1 "$(sh_spec 'trap "exit 7" TERM; touch /trapped; sleep 100 & wait')"
	wait_for test -e "$T/share/rootfs/trapped"
	ipc signal_process '{"container_id":"c1","exec_id":"","signal":15}'
	run ipc wait_process '{"container_id":"c1","exec_id":""}'
	[ "$output" = '{"status":7}' ]
	"$CLIENT" --detach "$S" run c2 "$(spec '["sleep","100"]')"
	"$CLIENT" --detach "$S" exec c2 e1 '{"args":["sleep","200"],"cwd":"/"}'
	ipc signal_process '{"container_id":"c2","exec_id":"","signal":9,"all":true}'
	run ipc wait_process '{"container_id":"c2","exec_id":"e1"}'
	[ "$output" = '{"status":137}' ]
	run ipc wait_process '{"container_id":"c2","exec_id":""}'
	[ "$output" = '{"status":137}' ]
}

@test "agent: remove_container refuses live processes unless forced" {
	"$CLIENT" --detach "$S" run c1 "$(spec '["sleep","100"]')"
	run ipc remove_container '{"container_id":"c1"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"live processes"* ]]
	ipc remove_container '{"container_id":"c1","force":true}'
	run ipc wait_process '{"container_id":"c1","exec_id":""}'
	[[ "$output" == *"no such container"* ]]
	[ -z "$(cgdir pids c1)" ]
}

@test "agent: bad requests get clear errors and the agent keeps serving" {
	run ipc create_container '{"container_id":"c1","spec":{}}'
	[[ "$output" == *"no sandbox"* ]]
	ipc create_sandbox '{"sandbox_id":"sb"}'
	run ipc create_sandbox '{"sandbox_id":"sb"}'
	[[ "$output" == *"already exists"* ]]
	run ipc start_container '{"container_id":"nope"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"container nope: no such container"* ]]
	run ipc create_container '{"container_id":"c1","spec":{"process":{"cwd":"/"}}}'
	[[ "$output" == *"spec.process.args: missing"* ]]
	run ipc create_container "{\"container_id\":\"c1\",\"spec\":$(PROC=',"rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]' spec '["true"]')}"
	[[ "$output" == *"spec.process.rlimits[0].type: unknown rlimit"* ]]
	run ipc create_container "{\"container_id\":\"c1\",\"spec\":$(spec '["nosuchcmd"]')}"
	[[ "$output" == *'exec "nosuchcmd": No such file or directory'* ]]
	run ipc create_container '{"container_id":"../x","spec":{}}'
	[[ "$output" == *"container_id"* ]]
	ipc create_container "{\"container_id\":\"c1\",\"spec\":$(spec '["true"]')}"
	run ipc create_container "{\"container_id\":\"c1\",\"spec\":$(spec '["true"]')}"
	[[ "$output" == *"container c1 already exists"* ]]
	run ipc no_such_method '{}'
	[[ "$output" == *"unknown method"* ]]
	run ipc ping
	[ "$output" = "{}" ]
}

@test "agent: a new connection replaces the old one and output continues" {
	# The process writes only once the first host has gone and a new
	# one is connected: its output must reach the new one.  It ends
	# only after that, so the output is the one notification.
	"$CLIENT" --detach "$S" run c1 "$(sh_spec 'while [ ! -e /go ]; do sleep 0.05; done; echo late; while [ ! -e /done ]; do sleep 0.05; done')"
	"$IPC" -t 60 --listen --count 1 "$S" ping '{}' >"$T/listen" 2>&1 &
	listener=$!
	wait_for grep -qx '{}' "$T/listen"
	touch "$T/share/rootfs/go"
	st=0
	wait "$listener" || st=$?
	cat "$T/listen"
	[ "$st" -eq 0 ]
	grep -q '"method":"output".*"late' "$T/listen"
	touch "$T/share/rootfs/done"
	run ipc wait_process '{"container_id":"c1","exec_id":""}'
	[ "$output" = '{"status":0}' ]
}

@test "agent: output held open by a daemonised child ends after the exit, not with the child" {
	"$CLIENT" --detach "$S" run c1 "$(spec '["sleep","100"]')"
	# The exec's sh exits; its sleep (now the container init's child)
	# keeps stdout open.
	run "$CLIENT" --no-stdin "$S" exec c1 e1 \
		'{"args":["sh","-c","sleep 98765 & echo started"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$status" -eq 0 ]
	[ "$output" = started ]
	# The client got its end while the child still holds the pipe.
	pgrep -xf "sleep 98765"
}

# docker 20.10's config.json (tests/unit/fixtures) with what the host
# side translates done by hand: the rootfs under the share, no binds of
# docker's files, no net.* sysctls (no network namespace in host mode).
docker_spec() {
	jq -c --arg cmd "$1" '.root.path = "rootfs"
		| .mounts |= map(select(.type != "bind"))
		| del(.linux.sysctl) | .process.args = ["sh", "-c", $cmd]
		| .process.env = ["PATH=/bin"]' \
		"$HUSK_SRC/tests/unit/fixtures/docker-20.10-config.json"
}

@test "agent: docker 20.10's spec runs; blockIO goes to the blkio controller where the device exists" {
	[ -e /sys/dev/block/254:0 ] || skip "no block device 254:0 here"
	local sp
	# A throttle on a device this machine lacks is skipped with a log
	# line, not an error.
	sp=$(docker_spec 'echo hello; stat -c "%F %t:%T %a %u:%g" /dev/fuse; sleep 100' |
		jq -c '.linux.resources.blockIO.throttleWriteIOPSDevice = [{"major": 259, "minor": 4000, "rate": 10}]')
	"$CLIENT" --detach "$S" run c1 "$sp"
	run cat "$(cgdir blkio c1)/blkio.throttle.read_bps_device"
	echo "$output"
	[ "$output" = "254:0 1048576" ]
	grep -q 'throttleWriteIOPSDevice 259:4000: no such block device in the guest; not applied' "$T/agent.log"
	grep -q 'spec.process.apparmorProfile: the guest kernel runs no AppArmor' "$T/agent.log"
	# The weight: BFQ's file where the kernel has it, else a log line.
	local d
	d=$(cgdir blkio c1)
	if [ -e "$d/blkio.bfq.weight" ]; then
		[ "$(cat "$d/blkio.bfq.weight")" = "default 300" ] ||
			[ "$(cat "$d/blkio.bfq.weight")" = 300 ]
	elif [ -e "$d/blkio.weight" ]; then
		[ "$(cat "$d/blkio.weight")" = 300 ]
	else
		grep -q 'blockIO.weight: no `blkio.weight` in this cgroup v1 hierarchy; not applied' "$T/agent.log"
	fi
	ipc signal_process '{"container_id":"c1","exec_id":"","signal":9}'
	run "$CLIENT" --no-stdin "$S" run c2 "$(docker_spec 'echo hello; stat -c "%F %t:%T %a %u:%g" /dev/fuse')"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = hello ]
	[ "${lines[1]}" = "character special file a:e5 666 0:0" ]
}

# A busybox sh init that records each trapped signal's name in /got
# and exits 3 on TERM; /ready once the traps are set.
trap_spec() {
	jq -nc --arg s 'for s in HUP INT USR1 USR2 QUIT WINCH ALRM; do trap "echo $s >>/got" $s; done; trap "echo TERM >>/got; exit 3" TERM; touch /ready; while :; do sleep 0.1; done' \
		'{process: {args: ["sh", "-c", $s], env: ["PATH=/bin"], cwd: "/"},
		  root: {path: "rootfs"},
		  mounts: [{destination: "/proc", type: "proc", source: "proc"}],
		  linux: {namespaces: [{type: "pid"}, {type: "mount"}]}}'
}

@test "agent: a trap in the container's init sees every signal kill sends" {
	# The agent is started here in the background, so it inherits
	# SIGINT and SIGQUIT ignored: the container's process must not.
	"$CLIENT" --detach "$S" run c1 "$(trap_spec)"
	local sig want r=$T/share/rootfs
	for _ in $(seq 600); do [ -e "$r/ready" ] && break; sleep 0.05; done
	[ -e "$r/ready" ]
	# Nothing blocked; ignored only what sh itself ignores (nothing
	# of the eight: bits 1, 2, 3, 10, 12, 14, 15, 28).
	run grep -E '^Sig(Blk|Ign)' "/proc/$(pgrep -P "$AGENT_PID" -x sh)/status"
	echo "$output"
	[ "${lines[0]}" = "SigBlk:	0000000000000000" ]
	[ $(( 0x${lines[1]#SigIgn:	} & 0x8006a07 )) -eq 0 ]
	for sig in 1 2 10 12 3 28 14; do
		ipc signal_process "{\"container_id\":\"c1\",\"exec_id\":\"\",\"signal\":$sig}"
		want=$(kill -l "$sig")
		for _ in $(seq 600); do grep -qx "$want" "$r/got" 2>/dev/null && break; sleep 0.05; done
		grep -qx "$want" "$r/got"
	done
	ipc signal_process '{"container_id":"c1","exec_id":"","signal":0}'
	ipc signal_process '{"container_id":"c1","exec_id":"","signal":15}'
	run ipc wait_process '{"container_id":"c1","exec_id":""}'
	[ "$output" = '{"status":3}' ]
	[ "$(cat "$r/got")" = "$(printf 'HUP\nINT\nUSR1\nUSR2\nQUIT\nWINCH\nALRM\nTERM')" ]
}

# An exec's process object running sh -c SCRIPT.
sh_proc() {
	jq -nc --arg s "$1" '{args: ["sh", "-c", $s], env: ["PATH=/bin"], cwd: "/"}'
}

@test "agent: mount propagation options and rootfsPropagation work as with runc" {
	local v=$T/share/vol
	mkdir -p "$v"
	mount --bind "$v" "$v"
	mount --make-shared "$v"
	mkdir -p "$v/sub" "$v/fromct"
	local base=$MOUNTS
	MOUNTS="$base"',{"destination":"/vs","type":"bind","source":"vol","options":["rbind","rslave"]},
{"destination":"/vp","type":"bind","source":"vol","options":["rbind","rprivate"]},
{"destination":"/vu","type":"bind","source":"vol","options":["rbind","runbindable"]},
{"destination":"/t","type":"tmpfs","source":"t","options":["shared"]}'
	"$CLIENT" --detach "$S" run c1 "$(spec '["sleep","100"]')"
	# A mount the host makes afterwards reaches the slave only.
	mount -t tmpfs late "$v/sub"
	run "$CLIENT" --no-stdin "$S" exec c1 e1 "$(sh_proc '
		for m in /vs /vp /vu /t /; do
			awk -v m=$m '"'"'$5 == m { o = ""; for (i = 7; $i != "-"; i++) o = o " " $i; print m ":" o }'"'"' /proc/self/mountinfo
		done
		echo vs_sub=$(grep -c " /vs/sub " /proc/self/mountinfo)
		echo vp_sub=$(grep -c " /vp/sub " /proc/self/mountinfo)')"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^/vs:\ master:[0-9]+$ ]]
	[ "${lines[1]}" = "/vp:" ]
	[ "${lines[2]}" = "/vu: unbindable" ]
	[[ "${lines[3]}" =~ ^/t:\ shared:[0-9]+$ ]]
	# runc's default root propagation, rslave: private here, since
	# the host's / is.
	[ "${lines[4]}" = "/:" ]
	[ "${lines[5]}" = vs_sub=1 ]
	[ "${lines[6]}" = vp_sub=0 ]
	umount "$v/sub"

	# docker's rshared volumes: rootfsPropagation shared, and a mount
	# the container makes comes out to the host.
	LINUX=',"rootfsPropagation":"shared"'
	MOUNTS="$base"',{"destination":"/vsh","type":"bind","source":"vol","options":["rbind","rshared"]}'
	"$CLIENT" --detach "$S" run c2 "$(spec '["sleep","100"]')"
	run "$CLIENT" --no-stdin "$S" exec c2 e1 "$(sh_proc 'mount -t tmpfs fromct /vsh/fromct && awk '"'"'$5 == "/" { print $7 }'"'"' /proc/self/mountinfo')"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^shared:[0-9]+$ ]]
	mountpoint -q "$v/fromct"
	umount "$v/fromct"
	# Without it (rslave), nothing comes out.
	LINUX=
	MOUNTS="$base"',{"destination":"/vs","type":"bind","source":"vol","options":["rbind","rshared"]}'
	"$CLIENT" --detach "$S" run c3 "$(spec '["sleep","100"]')"
	run "$CLIENT" --no-stdin "$S" exec c3 e1 "$(sh_proc 'mount -t tmpfs fromct /vs/fromct && grep -c " /vs/fromct " /proc/self/mountinfo')"
	[ "$output" = 1 ]
	run mountpoint -q "$v/fromct"
	[ "$status" -ne 0 ]
}

@test "agent: linux.devices get their type, numbers, mode, uid and gid" {
	LINUX=',"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":432,"uid":1000,"gid":5},
{"path":"/dev/xblk/loop9","type":"b","major":7,"minor":9,"fileMode":24992,"uid":0,"gid":6},
{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":438,"uid":0,"gid":0},
{"path":"/dev/myfifo","type":"p","fileMode":420,"uid":1,"gid":1}]' \
		run run_sh 'for d in /dev/fuse /dev/xblk/loop9 /dev/null /dev/myfifo; do stat -c "%n %F %t:%T %a %u:%g" $d; done; echo ok >/dev/null && echo null-ok'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "/dev/fuse character special file a:e5 660 1000:5" ]
	[ "${lines[1]}" = "/dev/xblk/loop9 block special file 7:9 640 0:6" ]
	# Listed: made as given rather than bound from the agent's /dev.
	[ "${lines[2]}" = "/dev/null character special file 1:3 666 0:0" ]
	[ "${lines[3]}" = "/dev/myfifo fifo 0:0 644 1:1" ]
	[ "${lines[4]}" = null-ok ]
}

# spec ARGS-JSON with a user namespace mapping 0..65535 to 100000.
userns_spec() {
	spec "$1" | jq -c '.linux.namespaces += [{"type": "user"}]
		| .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
		| .linux.gidMappings = [{"containerID": 0, "hostID": 200000, "size": 65536}]'
}

@test "agent: a user namespace is set up from linux.uidMappings and gidMappings" {
	# The mapped root must reach the rootfs: that is the bundle's
	# business, as with runc.
	chmod 0755 "$T"
	mkdir -p "$T/share/data" "$T/share/rootfs/data"
	echo from-the-share >"$T/share/data/f"
	local base=$MOUNTS
	MOUNTS="$base"',{"destination":"/data","type":"bind","source":"data","options":["rbind","ro"]}'
	run "$CLIENT" --no-stdin "$S" run c1 "$(userns_spec '["sh","-c","id -u; id -g; awk \"{ print \\$1, \\$2, \\$3 }\" /proc/self/uid_map /proc/self/gid_map; stat -c \"%u:%g\" /bin/busybox; touch /tmp/x 2>&1; ls /sys/fs/cgroup >/dev/null && echo sys-ok; cat /data/f"]')"
	MOUNTS=$base
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 0 ]
	[ "${lines[1]}" = 0 ]
	[ "${lines[2]}" = "0 100000 65536" ]
	[ "${lines[3]}" = "0 200000 65536" ]
	# Host root owns the rootfs: unmapped, so the overflow id, and
	# root in the container may not write there.
	[ "${lines[4]}" = "65534:65534" ]
	[[ "${lines[5]}" == *"Permission denied"* ]]
	[ "${lines[6]}" = sys-ok ]
	[ "${lines[7]}" = from-the-share ]
	# A user of the container is the mapped host id; an exec joins the
	# same namespace.
	PROC=',"user":{"uid":1000,"gid":1000}'
	"$CLIENT" --detach "$S" run c2 "$(userns_spec '["sleep","100"]')"
	local pid
	pid=$(pgrep -P "$AGENT_PID" -x sleep)
	[ "$(awk '/^Uid:/ { print $2 }' /proc/$pid/status)" = 101000 ]
	[ "$(awk '/^Gid:/ { print $2 }' /proc/$pid/status)" = 201000 ]
	run "$CLIENT" --no-stdin "$S" exec c2 e1 '{"args":["sh","-c","id -u; cat /proc/self/uid_map"],"env":["PATH=/bin"],"cwd":"/","user":{"uid":5,"gid":5}}'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 5 ]
	[ "$(echo ${lines[1]})" = "0 100000 65536" ]
	# Maps without the namespace, and the namespace without maps.
	run ipc create_container "{\"container_id\":\"c3\",\"spec\":$(LINUX=',"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]' spec '["true"]')}"
	[[ "$output" == *"spec.linux.uidMappings: given without a user namespace in spec.linux.namespaces"* ]]
	run ipc create_container "{\"container_id\":\"c3\",\"spec\":$(userns_spec '["true"]' | jq -c 'del(.linux.gidMappings)')}"
	[[ "$output" == *"spec.linux.gidMappings: a user namespace needs it"* ]]
}

@test "agent: tmpcopyup fills a tmpfs with what the image has there" {
	local d=$T/share/rootfs/opt/seed
	mkdir -p "$d/sub"
	echo seeded >"$d/sub/f"
	chmod 0640 "$d/sub/f"
	chown 5:6 "$d/sub/f"
	ln -s sub/f "$d/link"
	MOUNTS="$MOUNTS"',{"destination":"/opt/seed","type":"tmpfs","source":"tmpfs","options":["tmpcopyup","mode=755"]}' \
		run run_sh 'cat /opt/seed/link; stat -c "%a %u:%g" /opt/seed/sub/f; readlink /opt/seed/link; grep -c " /opt/seed tmpfs " /proc/self/mounts; echo new >/opt/seed/sub/g'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = seeded ]
	[ "${lines[1]}" = "640 5:6" ]
	[ "${lines[2]}" = sub/f ]
	[ "${lines[3]}" = 1 ]
	# Writes stay in the tmpfs.
	[ ! -e "$d/sub/g" ]
}

@test "agent: personality, domainname, scheduler and ioPriority are applied" {
	PROC=',"ioPriority":{"class":"IOPRIO_CLASS_BE","priority":6},"scheduler":{"policy":"SCHED_BATCH","nice":7}'
	LINUX=',"personality":{"domain":"LINUX32"}'
	TOP=',"domainname":"example.org"'
	run run_sh 'uname -m; cat /proc/sys/kernel/domainname; cut -d" " -f19,41 /proc/self/stat; busybox ionice -p $$'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = i686 ]
	[ "${lines[1]}" = example.org ]
	# nice 7, policy 3 (SCHED_BATCH), inherited by cut.
	[ "${lines[2]}" = "7 3" ]
	[[ "${lines[3]}" == *"best-effort"*"6"* ]]
	# An exec has the container's personality too.
	"$CLIENT" --detach "$S" run c2 "$(spec '["sleep","100"]')"
	run "$CLIENT" --no-stdin "$S" exec c2 e1 '{"args":["uname","-m"],"env":["PATH=/bin"],"cwd":"/"}'
	[ "$output" = i686 ]
}

@test "agent: recursive mount options (rro, rnoexec) reach the mounts below" {
	local v=$T/share/vol
	mkdir -p "$v/sub"
	mount -t tmpfs below "$v/sub"
	MOUNTS="$MOUNTS"',{"destination":"/v","type":"bind","source":"vol","options":["rbind","ro"]},
{"destination":"/rv","type":"bind","source":"vol","options":["rbind","rro","rnoexec"]}' \
		run run_sh 'touch /v/sub/a && echo v-sub-writable; touch /rv/sub/b 2>&1; grep " /rv/sub " /proc/self/mountinfo | cut -d" " -f6'
	echo "$output"
	[ "$status" -eq 0 ]
	# Plain ro covers the bind itself, not the tmpfs below it.
	[ "${lines[0]}" = v-sub-writable ]
	[[ "${lines[1]}" == *"Read-only file system"* ]]
	[[ "${lines[2]}" == ro,*noexec* ]]
	umount "$v/sub"
}

@test "agent: exec into a created container works, as with runc; into a paused one it is refused" {
	ipc create_sandbox '{"sandbox_id":"sb"}'
	ipc create_container "{\"container_id\":\"c1\",\"spec\":$(sh_spec 'echo started; sleep 100')}"
	run "$CLIENT" --no-stdin "$S" exec c1 e1 '{"args":["sh","-c","hostname; ls /proc/1/ns/mnt >/dev/null && echo in-ns"],"env":["PATH=/bin"],"cwd":"/"}'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = $'ctr\nin-ns' ]
	ipc start_container '{"container_id":"c1"}'
	ipc pause_container '{"container_id":"c1"}'
	run "$CLIENT" --no-stdin "$S" exec c1 e2 '{"args":["true"],"cwd":"/"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"container c1 is paused"* ]]
	ipc resume_container '{"container_id":"c1"}'
}

@test "agent: update_container changes limits and keeps the device rules it was made with" {
	"$CLIENT" --detach "$S" run c1 "$(sh_spec 'sleep 100')"
	ipc update_container '{"container_id":"c1","resources":{"devices":[{"allow":false,"access":"rwm"}],"pids":{"limit":50},"blockIO":{"weight":200}}}'
	[ "$(cat "$(cgdir pids c1)/pids.max")" = 50 ]
	grep -q 'container c1: update: linux.resources.devices: kept as created; not applied' "$T/agent.log"
}
