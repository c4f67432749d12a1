# containerd with husk's own shim v2, containerd-shim-husk-v2 (runtime
# io.containerd.husk.v2), for shimv2.bats and bench/containerd.sh
# (sourced after nothing: it sources engines.sh and wait.sh).
#
#   shimv2_skip_unless_ready   skip without containerd, root or a built
#                              guest; FAIL (not skip) without the shim
#                              binary: it is part of `make all`
#   shimv2_setup               engines_setup, then $EN/bin (the shim on
#                              containerd's PATH), $EN/husk.conf and
#                              $EN/husk-root in containerd's environment
#                              (HUSK_CONFIG, HUSK_ROOT: shims inherit it)
#   shimv2_start_containerd [cri]
#   shimv2_cri_toml CONF BIG [IMAGE]
#                              the CRI plugin's part of containerd's
#                              config: runtime handlers "husk" and
#                              "husk-big" with ConfigPath CONF and BIG,
#                              IMAGE the pods' sandbox image
#                              (docs/containerd.md), runc the default, CNI
#                              confs in $EN/cni-conf (docs/containerd.md)
#   ctr_cmd                    ctr's full command line, for timeout/script
#   shim_run ARGS              `ctr run` with the husk runtime
#   task_status ID             RUNNING, PAUSED, STOPPED... or nothing
#   wait_task ID STATUS        poll until the task has STATUS (bounded)
#   bundle_of ID               containerd's bundle (state) dir of task ID
#   shim_sock_of ID            the socket the bundle's address names
#   shim_pid_of ID             the shim daemon serving task ID (the one
#                              listening on the bundle's address)
#   en_procs                   pids naming $EN/ that are not containerd
#                              nor a `ctr events` of ours
#   shimv2_assert_gone ID      nothing left of task ID: process, mount,
#                              bundle, husk state, and no shim socket
#                              left dead since socks_snapshot
#   socks_snapshot             note the shims' sockets there now
#   proxy_stalled_ls SID LOG CMD...
#                              pod SID's husk-proxy stopped, CMD started
#                              (its output to LOG); once the shim daemon
#                              has a call waiting on the proxy, `ctr task
#                              ls` ($output, $status); then the proxy goes
#                              on and CMD must succeed
#   events_start / events_stop / task_topics ID
#                              `ctr events` to $EN/events; the /tasks/
#                              topics of container ID in order, each as
#                              TOPIC:PROCESS-ID

source "$(dirname "${BASH_SOURCE[0]}")/engines.sh"
source "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

SHIMV2_RUNTIME=${SHIMV2_RUNTIME:-io.containerd.husk.v2}
SHIMV2_NS=husk-test

shimv2_skip_unless_ready() {
	local b
	engines_skip_unless_ready
	b=$(_engines_build)
	if [ ! -x "$b/bin/containerd-shim-husk-v2" ]; then
		echo "no $b/bin/containerd-shim-husk-v2 (make all)" >&2
		return 1
	fi
}

shimv2_setup() {
	local b
	b=$(_engines_build)
	engines_setup
	mkdir -p "$EN/bin" "$EN/husk-root"
	# A link: the shim resolves /proc/self/exe to the build tree and
	# finds its helpers and the guest image beside it, as husk does.
	ln -sf "$b/bin/containerd-shim-husk-v2" "$EN/bin/containerd-shim-husk-v2"
	printf '# shimv2.bats: the defaults\n[agent]\nlog_level = info\n' \
		>"$EN/husk.conf"
	export ENGINES_CTD_PATH=$EN/bin
	export HUSK_CONFIG=$EN/husk.conf
	export HUSK_ROOT=$EN/husk-root
}

shimv2_start_containerd() {
	engines_start_containerd "$@"
}

shimv2_cri_toml() {
	cat <<-EOF
	[plugins."io.containerd.grpc.v1.cri"]
	  sandbox_image = "${3:-registry.k8s.io/pause:3.6}"
	  disable_tcp_service = true
	  stream_server_address = "127.0.0.1"
	  stream_server_port = "0"
	  [plugins."io.containerd.grpc.v1.cri".cni]
	    bin_dir = "$EN/cni-bin"
	    conf_dir = "$EN/cni-conf"
	  [plugins."io.containerd.grpc.v1.cri".containerd]
	    default_runtime_name = "runc"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
	      runtime_type = "io.containerd.runc.v2"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
	      runtime_type = "io.containerd.husk.v2"
	      pod_annotations = ["io.husk.config.*"]
	      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk.options]
	        ConfigPath = "$1"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-big]
	      runtime_type = "io.containerd.husk.v2"
	      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-big.options]
	        ConfigPath = "$2"
	EOF
}

ctr_cmd() {
	echo "$CTR_BIN -a $EN/ctd.sock -n $SHIMV2_NS"
}

shim_run() {
	"$CTR_BIN" -a "$EN/ctd.sock" -n "$SHIMV2_NS" run \
		--runtime "$SHIMV2_RUNTIME" "$@"
}

task_status() {
	ctrc task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'
}

_task_is() {
	[ "$(task_status "$1")" = "$2" ]
}

wait_task() {
	wait_for -t "${3:-120}" _task_is "$1" "$2" || {
		echo "task $1 is '$(task_status "$1")', not $2" >&2
		return 1
	}
}

_task_absent() {
	[ -z "$(task_status "$1")" ]
}

wait_task_gone() {
	wait_for -t "${2:-120}" _task_absent "$1"
}

bundle_of() {
	echo "$EN/ctd-state/io.containerd.runtime.v2.task/$SHIMV2_NS/$1"
}

shim_sock_of() {
	local addr
	addr=$(cat "$(bundle_of "$1")/address" 2>/dev/null) || return 1
	echo "${addr#unix://}"
}

# The process that listens on the socket the bundle's address names.
shim_pid_of() {
	local addr sock
	addr=$(cat "$(bundle_of "$1")/address" 2>/dev/null) || return 1
	sock=${addr#unix://}
	ss -xlpH 2>/dev/null | awk -v s="$sock" '$5 == s' |
		sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | head -n 1
}

en_procs() {
	local p keep
	keep=" $(cat "$EN/containerd.pid" 2>/dev/null) $(cat "$EN"/events.pid 2>/dev/null) "
	for p in $(pgrep -f "$EN/"); do
		[[ "$keep" == *" $p "* ]] && continue
		# pgrep's own shell, or a reaped child
		[ -d "/proc/$p" ] || continue
		echo "$p"
	done
}

_no_en_procs() {
	[ -z "$(en_procs)" ]
}

SHIMV2_SOCK_DIR=${SHIMV2_SOCK_DIR:-/run/husk-shimv2-s}

socks_snapshot() {
	ls -A "$SHIMV2_SOCK_DIR" 2>/dev/null >"$EN/socks.before" || true
}

# Sockets that appeared since socks_snapshot and that nobody listens on
# (another user's live shim is not ours to judge).
_dead_new_socks() {
	local f listening
	[ -d "$SHIMV2_SOCK_DIR" ] || return 0
	listening=$(ss -xlH 2>/dev/null | awk '{ print $5 }')
	for f in $(ls -A "$SHIMV2_SOCK_DIR"); do
		grep -qxF "$f" "$EN/socks.before" 2>/dev/null && continue
		grep -qxF "$SHIMV2_SOCK_DIR/$f" <<<"$listening" && continue
		echo "$SHIMV2_SOCK_DIR/$f"
	done
}

_no_dead_new_socks() {
	[ -z "$(_dead_new_socks)" ]
}

# Nothing left of task ID: no process naming $EN/ but containerd, no
# mount under $EN/, no bundle, no husk state named ID.
shimv2_assert_gone() {
	local id=$1 p left
	if ! wait_for -t 60 _no_en_procs; then
		for p in $(en_procs); do
			echo "left: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
		done
		return 1
	fi
	if grep -q " $EN/" /proc/self/mountinfo; then
		echo "mounts left behind:" >&2
		grep " $EN/" /proc/self/mountinfo >&2
		return 1
	fi
	if [ -e "$(bundle_of "$id")" ]; then
		echo "containerd's bundle of $id left behind:" >&2
		find "$(bundle_of "$id")" >&2
		return 1
	fi
	if ! wait_for -t 30 _no_dead_new_socks; then
		echo "shim sockets left with no shim:" >&2
		_dead_new_socks >&2
		return 1
	fi
	left=$(find "$EN/husk-root" -mindepth 1 -name "*$id*" 2>/dev/null)
	if [ -n "$left" ]; then
		echo "husk state of $id left behind:" >&2
		echo "$left" >&2
		return 1
	fi
}

# `ctr events` into $EN/events; returns once it is subscribed (a
# container created and removed shows in it).
events_start() {
	: >"$EN/events"
	setsid "$CTR_BIN" -a "$EN/ctd.sock" events >>"$EN/events" 2>&1 &
	echo $! >"$EN/events.pid"
	local i probe
	for i in $(seq 1 50); do
		probe=evprobe$i
		ctrc container create --rootfs "$EN/rootfs" "$probe" /bin/true \
			>/dev/null 2>&1
		ctrc container rm "$probe" >/dev/null 2>&1
		wait_for -t 2 grep -q "\"id\":\"$probe\"" "$EN/events" 2>/dev/null &&
			return 0
	done
	echo "ctr events never saw a container created" >&2
	return 1
}

events_stop() {
	[ -s "$EN/events.pid" ] || return 0
	kill "$(cat "$EN/events.pid")" 2>/dev/null || true
	rm -f "$EN/events.pid"
}

# One word a line: TOPIC:ID with TOPIC the part after /tasks/ and ID the
# exec's id for exec-added, exec-started and an exec's exit, else the
# container's.
task_topics() {
	local id=$1
	grep " /tasks/" "$EN/events" | grep "\"container_id\":\"$id\"" |
		while IFS= read -r line; do
			local topic pid
			topic=$(sed -n 's|.* /tasks/\([a-z-]*\) .*|\1|p' <<<"$line")
			pid=$(sed -n 's/.*"exec_id":"\([^"]*\)".*/\1/p' <<<"$line")
			[ -n "$pid" ] ||
				pid=$(sed -n 's/.*[{,]"id":"\([^"]*\)".*/\1/p' <<<"$line")
			echo "$topic:${pid:-$id}"
		done
}

shimv2_show_logs() {
	local f
	if [ -s "$EN/containerd.log" ]; then
		echo "# containerd.log, all but level=info:"
		grep -v 'level=info' "$EN/containerd.log" | tail -n 30
	fi
	if [ -s "$EN/events" ]; then
		echo "# events:"
		grep " /tasks/" "$EN/events" | tail -n 30
	fi
	for f in $(find "$EN/husk-root" "$EN/ctd-state" -name '*.log' 2>/dev/null); do
		[ -s "$f" ] || continue
		echo "# $f:"
		tail -n 20 "$f"
	done
}

proxy_stalled_ls() {
	local sid=$1 log=$2 proxy shim cmd rc=0
	shift 2
	shim=$(shim_pid_of "$sid")
	proxy=$(pgrep -f "husk-proxy.*$HUSK_ROOT/$sid/" | head -n 1)
	[ -n "$shim" ] && [ -n "$proxy" ] || return 1
	kill -STOP "$proxy"
	"$@" >"$log" 2>&1 3>&- &
	cmd=$!
	if wait_for -t 60 socket_unread "$shim"; then
		run timeout 30 $(ctr_cmd) task ls
	else
		rc=1
	fi
	kill -CONT "$proxy"
	wait "$cmd" || { cat "$log"; rc=1; }
	return "$rc"
}
