# A private containerd (and dockerd) driving husk, for docker.bats,
# containerd.bats and bench/docker.sh (sourced).  Debian's docker.io,
# containerd and runc; /usr/local/bin/docker may be an unrelated client,
# so the binaries are named by their Debian paths.
#
#   engines_skip_unless_ready [docker]   skip without the packages, root
#                                        or a built guest
#   engines_setup                        $EN: a private directory with
#                                        the husk wrapper and a busybox
#                                        rootfs ($EN/rootfs)
#   engines_start_containerd [cri]       containerd on $EN/ctd.sock (its
#                                        CRI plugin only with "cri"; more
#                                        TOML in $ENGINES_CTD_TOML, dirs
#                                        put first on its PATH in
#                                        $ENGINES_CTD_PATH; in network
#                                        namespace $ENGINES_CTD_NETNS if
#                                        set, so that CNI's bridges stay
#                                        there); again after
#                                        engines_stop_containerd: the same
#                                        root and state
#   engines_stop_containerd              containerd down (SIGTERM), shims
#                                        left running
#   engines_start_dockerd                dockerd on $EN/docker.sock, its
#                                        runtime "husk" the wrapper; no
#                                        default bridge, but with
#                                        $ENGINES_DOCKERD_BRIDGE (a CIDR
#                                        for --bip) docker's bridge
#                                        network, in network namespace
#                                        $ENGINES_CTD_NETNS (it must be
#                                        set then: docker0 stays there);
#                                        its userland proxy (-p) with
#                                        ENGINES_DOCKERD_USERLAND_PROXY=true
#   engines_import_image NAME            `docker import` of $EN/rootfs
#   dk ARGS / ctrc ARGS                  the clients, on our daemons
#   engines_teardown                     everything down, even half up;
#                                        then engines_assert_clean
#   socket_unread PID                    true if a connected socket of
#                                        PID holds bytes its peer has
#                                        not read (its Send-Q): a call
#                                        it made that waits

DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}
DOCKERD_BIN=${DOCKERD_BIN:-/usr/sbin/dockerd}
CONTAINERD_BIN=${CONTAINERD_BIN:-/usr/bin/containerd}
CTR_BIN=${CTR_BIN:-/usr/bin/ctr}

source "$(dirname "${BASH_SOURCE[0]}")/rootfs.sh"

_engines_build() {
	local b=${BUILD:-build}
	(cd "${HUSK_SRC:-.}" && cd "$b" && pwd)
}

engines_skip_unless_ready() {
	local b f
	b=$(_engines_build) || skip "no build directory"
	[ "$(id -u)" = 0 ] || skip "needs root"
	for f in "$CONTAINERD_BIN" "$CTR_BIN" /usr/bin/containerd-shim-runc-v2; do
		[ -x "$f" ] || skip "no $f (make deps: containerd)"
	done
	if [ "${1:-}" = docker ]; then
		[ -x "$DOCKERD_BIN" ] || skip "no $DOCKERD_BIN (make deps: docker.io)"
		[ -x "$DOCKER_BIN" ] || skip "no $DOCKER_BIN (make deps: docker.io)"
	fi
	[ -x "$b/bin/husk" ] || skip "no $b/bin/husk (make all)"
	for f in vmlinux initrd.img; do
		[ -f "$b/guest/$f" ] || skip "no $b/guest/$f (make guest)"
	done
}

# The runtime the engines call: husk with the arguments they give, each
# call noted in $EN/runtime.calls (what failed is then easy to see).
engines_setup() {
	local b
	b=$(_engines_build)
	# Short: containerd's and dockerd's sockets live in here.
	export EN=$(mktemp -d /tmp/husk-en.XXXXXX)
	chmod 0711 "$EN"
	cat >"$EN/husk-runtime" <<-EOF
	#!/bin/sh
	printf '%s\n' "\$*" >>"$EN/runtime.calls"
	exec "$b/bin/husk" "\$@"
	EOF
	chmod 0755 "$EN/husk-runtime"
	export HUSK_RUNTIME=$EN/husk-runtime
	make_rootfs "$EN/rootfs"
}

_engines_wait_sock() {
	local sock=$1 pid=$2 log=$3 i
	for i in $(seq 1 300); do
		[ -S "$sock" ] && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "daemon for $sock died:" >&2
			tail -n 20 "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "no $sock after 30 s:" >&2
	tail -n 20 "$log" >&2
	return 1
}

engines_start_containerd() {
	local disabled='disabled_plugins = ["io.containerd.grpc.v1.cri"]'
	[ "${1:-}" = cri ] && disabled=
	cat >"$EN/containerd.toml" <<-EOF
	version = 2
	root = "$EN/ctd-root"
	state = "$EN/ctd-state"
	$disabled
	[grpc]
	  address = "$EN/ctd.sock"
	[ttrpc]
	  address = "$EN/ctd.sock.ttrpc"
	[debug]
	  address = "$EN/ctd-debug.sock"
	[metrics]
	  address = ""
	${ENGINES_CTD_TOML:-}
	EOF
	# setsid: a terminal test's signals are not the daemon's.  The log
	# is appended to: a restart keeps what the first daemon said.
	PATH="${ENGINES_CTD_PATH:+$ENGINES_CTD_PATH:}$PATH" \
		setsid ${ENGINES_CTD_NETNS:+nsenter --net=/run/netns/$ENGINES_CTD_NETNS} \
		"$CONTAINERD_BIN" --config "$EN/containerd.toml" \
		</dev/null >>"$EN/containerd.log" 2>&1 &
	echo $! >"$EN/containerd.pid"
	_engines_wait_sock "$EN/ctd.sock" "$(cat "$EN/containerd.pid")" \
		"$EN/containerd.log"
}

engines_stop_containerd() {
	_engines_kill_pidfile "$EN/containerd.pid"
	rm -f "$EN/containerd.pid"
}

engines_start_dockerd() {
	local bridge=(--bridge=none)
	if [ -n "${ENGINES_DOCKERD_BRIDGE:-}" ]; then
		[ -n "${ENGINES_CTD_NETNS:-}" ] || {
			echo "ENGINES_DOCKERD_BRIDGE needs ENGINES_CTD_NETNS" >&2
			return 1
		}
		bridge=(--bip "$ENGINES_DOCKERD_BRIDGE")
	fi
	setsid ${ENGINES_CTD_NETNS:+nsenter --net=/run/netns/$ENGINES_CTD_NETNS} \
		"$DOCKERD_BIN" --data-root "$EN/docker" --exec-root "$EN/dexec" \
		-H "unix://$EN/docker.sock" --pidfile "$EN/dockerd.pid" \
		--containerd "$EN/ctd.sock" --iptables=false --ip6tables=false \
		"${bridge[@]}" --storage-driver vfs --userland-proxy=${ENGINES_DOCKERD_USERLAND_PROXY:-false} \
		--add-runtime "husk=$HUSK_RUNTIME" \
		</dev/null >"$EN/dockerd.log" 2>&1 &
	echo $! >"$EN/dockerd.bgpid"
	_engines_wait_sock "$EN/docker.sock" "$(cat "$EN/dockerd.bgpid")" \
		"$EN/dockerd.log" || return 1
	# The socket comes before the API answers.
	for _ in $(seq 1 100); do
		dk version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	dk version
}

dk() {
	"$DOCKER_BIN" -H "unix://$EN/docker.sock" "$@"
}

ctrc() {
	"$CTR_BIN" -a "$EN/ctd.sock" -n husk-test "$@"
}

socket_unread() {
	ss -xpnH state established 2>/dev/null |
		awk -v p="pid=$1," 'index($0, p) && $3 > 0 { f = 1 } END { exit !f }'
}

# ctr's runc v2 shim pointed at husk, with a root of our own.
ctr_husk_args() {
	echo --runtime io.containerd.runc.v2 --runc-binary "$HUSK_RUNTIME" \
		--runc-root "$EN/runc-root"
}

engines_import_image() {
	tar -C "$EN/rootfs" -cf "$EN/rootfs.tar" .
	dk import -c 'CMD ["sh"]' "$EN/rootfs.tar" "$1" >/dev/null
}

# husk's state roots the engines used: dockerd's runtime root and ours.
_engines_husk_roots() {
	local r
	for r in "$EN"/dexec/runtime-*/* "$EN"/runc-root/* "$EN"/husk-root \
		"$EN"/husk-root/*; do
		[ -d "$r" ] && echo "$r"
	done
}

_engines_kill_pidfile() {
	local f=$1 pid i
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

engines_teardown() {
	local r id m
	[ -n "${EN:-}" ] && [ -d "$EN" ] || return 0
	if [ -S "$EN/docker.sock" ]; then
		for id in $(dk ps -aq 2>/dev/null); do
			timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" \
				rm -f "$id" >/dev/null 2>&1 || true
		done
	fi
	_engines_kill_pidfile "$EN/dockerd.bgpid"
	if [ -S "$EN/ctd.sock" ]; then
		for id in $(ctrc task ls -q 2>/dev/null); do
			ctrc task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		done
		for id in $(ctrc container ls -q 2>/dev/null); do
			timeout 60 "$CTR_BIN" -a "$EN/ctd.sock" -n husk-test \
				task delete --force "$id" >/dev/null 2>&1 || true
			ctrc container rm "$id" >/dev/null 2>&1 || true
		done
	fi
	_engines_kill_pidfile "$EN/containerd.pid"
	# containerd-shim-husk-v2 daemons that outlived it (shimv2.bats):
	# down before the sandboxes they hold are deleted.
	for m in $(pgrep -f "containerd-shim-husk-v2 .*$EN/" 2>/dev/null); do
		kill -9 "$m" 2>/dev/null || true
	done
	# Whatever the engines left of husk's containers.
	for r in $(_engines_husk_roots); do
		for id in $("$(_engines_build)/bin/husk" --root "$r" list --quiet 2>/dev/null); do
			"$(_engines_build)/bin/husk" --root "$r" delete --force "$id" || true
		done
	done
	# Shims of containerd's, if any outlived it.
	for m in $(pgrep -f "containerd-shim-runc-v2 .*-address $EN/" 2>/dev/null); do
		kill -9 "$m" 2>/dev/null || true
	done
	# Mounts under $EN (network namespaces, shm), deepest first.
	for m in $(awk -v d="$EN/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

# Nothing of ours left: no process naming $EN, no mount under it.
engines_assert_clean() {
	local i
	for i in $(seq 1 100); do
		pgrep -f "$EN/" >/dev/null || break
		sleep 0.1
	done
	if pgrep -af "$EN/"; then
		echo "processes left behind" >&2
		return 1
	fi
	if grep -q " $EN/" /proc/self/mountinfo; then
		echo "mounts left behind:" >&2
		grep " $EN/" /proc/self/mountinfo >&2
		return 1
	fi
}

engines_show_logs() {
	local f
	for f in runtime.calls containerd.log dockerd.log; do
		[ -s "$EN/$f" ] || continue
		echo "# $f:"
		tail -n 30 "$EN/$f"
	done
}
