# A sandbox without a VM for the proxy and shim tests (sourced by
# proxy.bats, shim.bats): an agent on a unix socket, a husk-proxy in
# front of it, containers created through the proxy with husk-ipc.
#
#   AGENT_KIND=host  build/bin/husk-agent in host mode, busybox rootfs
#                    (the default when it is built and we are root)
#   AGENT_KIND=fake  tests/helpers/fake_agent: host processes, no rootfs
#                    (what proxy.bats uses; shim.bats is only known to
#                    pass with the host-mode agent)
#
#   px_setup / px_teardown   start / stop agent and proxy in $T
#   px_ctr ID SCRIPT [TERM]  create container ID running `sh -c SCRIPT`
#   px_exec ID EID SCRIPT    exec a process in a created container
#   px_start ID              start_container
#   px_shim ID [EID] [args]  run husk-shim in the foreground
#   pipc METHOD JSON         husk-ipc through the proxy

load lib/rootfs.sh
load lib/wait.sh

HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
B=$(cd "$HUSK_SRC" && cd "${BUILD:-build}" && pwd)
IPC=$B/bin/husk-ipc
PROXY=$B/bin/husk-proxy
SHIM=$B/bin/husk-shim
FAKE=$B/tests/helpers/fake_agent

# LeakSanitizer stops the world with clone and ptrace at exit, which no
# seccomp profile allows (as in confine.bats).  ASan's quarantine keeps
# up to 256 MiB of freed blocks resident, which the memory bounds below
# would count: 1 MiB of it still catches a use right after a free.
if [ "${HUSK_ASAN:-}" = 1 ]; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:quarantine_size_mb=1:thread_local_quarantine_size_kb=64
fi

px_agent_kind() {
	if [ -n "${AGENT_KIND:-}" ]; then
		echo "$AGENT_KIND"
	elif [ -x "$B/bin/husk-agent" ] && [ "$(id -u)" = 0 ]; then
		echo host
	else
		echo fake
	fi
}

px_wait_sock() {
	for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.025; done
	return 1
}

px_setup_file() {
	if [ "$(px_agent_kind)" = host ]; then
		export ROOTFS_TPL=$BATS_FILE_TMPDIR/tpl
		make_rootfs "$ROOTFS_TPL"
	fi
}

px_setup() {
	[ -x "$PROXY" ] || skip "no $PROXY (make all)"
	[ -x "$SHIM" ] || skip "no $SHIM (make all)"
	[ -x "$IPC" ] || skip "no $IPC (make all)"
	KIND=$(px_agent_kind)
	T=$(mktemp -d /tmp/husk-px.XXXXXX)
	chmod 0700 "$T"
	AS=$T/agent.sock
	PS=$T/proxy.sock
	px_start_agent
	px_start_proxy
	pipc create_sandbox '{"sandbox_id":"sb"}' >/dev/null
}

px_start_agent() {
	if [ "$KIND" = host ]; then
		mkdir -p "$T/share"
		[ -d "$T/share/rootfs" ] || cp -a "$ROOTFS_TPL" "$T/share/rootfs"
		CGROOT=husk-px-$$-${BATS_TEST_NUMBER:-0}
		# stdout too: a child of its left behind must not hold
		# bats' pipe open.
		"$B/bin/husk-agent" --channel "unix:$AS" --shared-dir "$T/share" \
			--cgroup-root "$CGROOT" >>"$T/agent.log" 2>&1 &
	else
		# The fake agent's processes run on the host, and a shell may
		# fork its command: a pids cgroup of their own lets teardown
		# find every one of them, whatever killed the agent.
		FAKE_CG=/sys/fs/cgroup/pids/husk-px-fake-$$-${BATS_TEST_NUMBER:-0}
		[ -d /sys/fs/cgroup/pids ] || FAKE_CG=/sys/fs/cgroup/husk-px-fake-$$-${BATS_TEST_NUMBER:-0}
		mkdir -p "$FAKE_CG" 2>/dev/null || FAKE_CG=
		sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' \
			sh "$FAKE_CG" "$FAKE" --socket "$AS" \
			${FAKE_MODE:+--mode "$FAKE_MODE"} 2>>"$T/agent.log" &
	fi
	AGENT_PID=$!
	px_wait_sock "$AS"
}

px_start_proxy() {
	"$PROXY" --agent "unix:$AS" --socket "$PS" --sandbox sb \
		--log "$T/proxy.log" --log-level debug $PROXY_ARGS &
	PROXY_PID=$!
	px_wait_sock "$PS"
	# until the agent answers through it
	for _ in $(seq 200); do
		if "$IPC" -q -t 2 "$PS" ping '{}' 2>/dev/null; then
			PROXY_HWM0=$(px_hwm "$PROXY_PID")
			return 0
		fi
		sleep 0.025
	done
	return 1
}

px_teardown() {
	[ -n "${T:-}" ] || return 0
	if [ -n "${PROXY_PID:-}" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
		"$IPC" -q -t 5 "$PS" destroy_sandbox '{}' 2>/dev/null || true
		kill "$PROXY_PID" 2>/dev/null || true
		wait "$PROXY_PID" 2>/dev/null || true
	fi
	# A test that froze a container behind the agent's back and failed
	# must not leave frozen processes behind.
	if [ -n "${CGROOT:-}" ]; then
		for c in $(find /sys/fs/cgroup/freezer -type d -path "*/$CGROOT/*" 2>/dev/null); do
			echo THAWED >"$c/freezer.state" 2>/dev/null || true
		done
	fi
	kill "${AGENT_PID:-0}" 2>/dev/null || true
	wait "${AGENT_PID:-0}" 2>/dev/null || true
	if [ -n "${FAKE_CG:-}" ] && [ -d "$FAKE_CG" ]; then
		for _ in $(seq 50); do
			pids=$(cat "$FAKE_CG/cgroup.procs" 2>/dev/null)
			[ -n "$pids" ] || break
			kill -9 $pids 2>/dev/null || true
			sleep 0.02
		done
		rmdir "$FAKE_CG" 2>/dev/null || true
	fi
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		echo "# proxy log:"; tail -n 40 "$T/proxy.log" | sed 's/^/#   /'
		echo "# agent log:"; tail -n 20 "$T/agent.log" | sed 's/^/#   /'
	fi
	if [ -n "${CGROOT:-}" ]; then
		for c in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$CGROOT" 2>/dev/null); do
			find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done
	fi
	umount -R "$T/share" 2>/dev/null || true
	rm -rf "$T"
}

pipc() { "$IPC" -t 30 "$PS" "$@"; }

# A shell string as a JSON string (quotes, backslashes, tabs, newlines).
px_json_str() {
	printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/\\t/g' |
		sed -z 's/\n/\\n/g; s/^/"/; s/$/"/'
}

PX_MOUNTS='{"destination":"/proc","type":"proc","source":"proc"},
{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}'

# px_process SCRIPT [TERMINAL]: an OCI process running sh -c SCRIPT.
px_process() {
	printf '{"args":["sh","-c",%s],"env":["PATH=/bin:/usr/bin","HOME=/root","TERM=xterm"],"cwd":"/","terminal":%s}' \
		"$(px_json_str "$1")" "${2:-false}"
}

px_ctr() {
	local spec
	spec=$(printf '{"ociVersion":"1.0.2","process":%s,"root":{"path":"rootfs","readonly":false},"hostname":"ctr","mounts":[%s],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}]}}' \
		"$(px_process "$2" "${3:-false}")" "$PX_MOUNTS")
	pipc -q create_container "{\"container_id\":\"$1\",\"spec\":$spec}"
}

px_exec() {
	pipc -q exec_process "{\"container_id\":\"$1\",\"exec_id\":\"$2\",\"process\":$(px_process "$3" "${4:-false}")}"
}

px_start() { pipc -q start_container "{\"container_id\":\"$1\"}"; }

# Start a shim in the background for ID [EID]; SHIM_PID is its pid.
px_shim_bg() {
	local id=$1 eid=${2:-}
	shift 2 || shift
	# <&0: an asynchronous command's stdin is /dev/null otherwise
	"$SHIM" --proxy "$PS" --container "$id" ${eid:+--exec-id "$eid"} "$@" <&0 &
	SHIM_PID=$!
}

# Wait until the proxy has a subscriber for n processes.
px_wait_subscribed() {
	local n=$1
	for _ in $(seq 400); do
		[ "$(px_subscribers)" -ge "$n" ] && return 0
		sleep 0.025
	done
	return 1
}

# Number of processes someone subscribed to, from proxy_status.
px_subscribers() {
	local n
	n=$("$IPC" -t 5 "$PS" proxy_status 2>/dev/null |
		sed -n 's/.*"subscriptions":\([0-9]*\).*/\1/p')
	echo "${n:-0}"
}

px_status_field() {
	grep "^$2:" "/proc/$1/status" | awk '{print $2}'
}

# VmHWM of a pid in KiB.
px_hwm() { px_status_field "$1" VmHWM; }
