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
	run "$CLIENT" --no-stdin --winsize 50,120 "$S" run c2 "$(sh_spec 'i=0; while [ "$(stty size)" != "50 120" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; stty size')"
	[ "$(printf '%s' "$output" | tr -d '\r')" = '50 120' ]
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
	run ipc create_container "{\"container_id\":\"c1\",\"spec\":$(LINUX=',"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]' spec '["true"]')}"
	[[ "$output" == *"spec.linux.uidMappings: user namespaces are not supported"* ]]
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
