#!/usr/bin/env bats
# containerd (Debian's 1.6) with husk's own shim v2: runtime
# io.containerd.husk.v2, containerd-shim-husk-v2 on containerd's PATH.
# A private containerd started here (own root, state, addresses, no
# CRI), a busybox root file system given with --rootfs, no registry.
# Each test boots one VM (two containers of one pod share it), and
# leaves nothing behind.

load lib/shimv2.sh

bats_require_minimum_version 1.5.0

setup_file() {
	shimv2_skip_unless_ready
	shimv2_setup
	shimv2_start_containerd
	# Each test's containers have their own rootfs.
	cp -a "$EN/rootfs" "$EN/rootfs.pristine"
}

teardown_file() {
	events_stop
	engines_teardown
	[ -n "${EN:-}" ] && rm -rf "$EN"
	true
}

setup() {
	local d
	socks_snapshot
	for d in a b; do
		rm -rf "$EN/rootfs-$d"
		cp -a "$EN/rootfs.pristine" "$EN/rootfs-$d"
	done
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || shimv2_show_logs
	events_stop
	# A failed cache test's daemon and VMs.
	if [ -f "$EN/cache.conf" ]; then
		HUSK_CONFIG=$EN/cache.conf "${BUILD:-build}/bin/husk" \
			--root "$HUSK_ROOT" factory destroy >/dev/null 2>&1 || true
		rm -f "$EN/cache.conf"
	fi
	rm -f "$EN/events"
	ip netns del "hksv$$" 2>/dev/null || true
	ip netns del "hkcri$$" 2>/dev/null || true
	# A failed CRI test's pods, so that CNI takes their namespaces back.
	if [ -S "$EN/cri/ctd.sock" ]; then
		(
			EN=$EN/cri
			for p in $(cri lsp 2>/dev/null); do
				cri stopp "$p" >/dev/null 2>&1 || true
				cri rmp "$p" >/dev/null 2>&1 || true
			done
		)
	fi
	[ ! -d "$EN/cri" ] || (EN=$EN/cri; engines_teardown)
	# A failed test's tasks must not fail the next one: containerd up
	# again if the test stopped it, and it removes them.
	if ! kill -0 "$(cat "$EN/containerd.pid" 2>/dev/null)" 2>/dev/null; then
		shimv2_start_containerd || true
	fi
	if [ -S "$EN/ctd.sock" ]; then
		local id
		for id in $(ctrc task ls -q 2>/dev/null); do
			ctrc task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
			timeout 60 $(ctr_cmd) task delete --force "$id" >/dev/null 2>&1 || true
		done
		for id in $(ctrc container ls -q 2>/dev/null); do
			ctrc container rm "$id" >/dev/null 2>&1 || true
		done
	fi
}

@test "ctr run --rm: output from the VM, the exit code, ConfigPath's husk.conf" {
	# --runtime-config-path: ctr puts runtimeoptions.v1.Options
	# {ConfigPath} in Create's options, as the CRI plugin does.
	printf '[hypervisor]\nmemory_mb = 384\n' >"$EN/husk-384.conf"
	run --separate-stderr timeout 300 $(ctr_cmd) run --rm \
		--runtime "$SHIMV2_RUNTIME" \
		--runtime-config-path "$EN/husk-384.conf" \
		--rootfs "$EN/rootfs-a" r1 \
		/bin/sh -c 'uname -r; grep MemTotal /proc/meminfo; echo to-stderr >&2; exit 3'
	echo "$output / $stderr"
	[ "$status" -eq 3 ]
	[ -n "${lines[0]}" ]
	[ "${lines[0]}" != "$(uname -r)" ]
	[[ "$stderr" == *to-stderr* ]]
	# 384 MiB, not the default 256: the guest sees more than 256 MiB
	# could give it.
	mem=$(awk '/^MemTotal:/ { print $2 }' <<<"$output")
	[ -n "$mem" ]
	[ "$mem" -gt 270000 ]
	run ctrc container ls -q
	[ -z "$output" ]
	shimv2_assert_gone r1
}

@test "a ConfigPath that does not exist or does not parse fails the task's creation, naming what was wrong" {
	run --separate-stderr timeout 300 $(ctr_cmd) run --rm \
		--runtime "$SHIMV2_RUNTIME" \
		--runtime-config-path "$EN/no-such.conf" \
		--rootfs "$EN/rootfs-a" n1 /bin/true
	echo "$output / $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"$EN/no-such.conf"* ]]
	printf '[hypervisor]\nmemory_mb = lots\n' >"$EN/bad.conf"
	run --separate-stderr timeout 300 $(ctr_cmd) run --rm \
		--runtime "$SHIMV2_RUNTIME" \
		--runtime-config-path "$EN/bad.conf" \
		--rootfs "$EN/rootfs-a" n2 /bin/true
	echo "$output / $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *bad.conf*memory_mb* ]]
	for id in n1 n2; do
		timeout 60 $(ctr_cmd) task delete --force "$id" 2>/dev/null || true
		ctrc container rm "$id" 2>/dev/null || true
	done
	shimv2_assert_gone n1
	shimv2_assert_gone n2
}

@test "a detached task: binary:// logger, exec (-t or not, stdin to its end), ps, pause, resume, metrics, no checkpoint, kill, delete, and its events in order" {
	events_start
	# containerd's binary:// logger: the process's stdout on fd 3, its
	# stderr on fd 4, fd 5 closed once it is ready.
	cat >"$EN/logger" <<-EOF
	#!/bin/sh
	# what it inherits from the daemon that started it, and the daemon
	grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapBnd|PPid):' /proc/\$\$/status >"$EN/logger.status"
	exec 5>&-
	cat <&3 >"$EN/binlog.out" &
	cat <&4 >"$EN/binlog.err" &
	wait
	EOF
	chmod 0755 "$EN/logger"
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--log-uri "binary://$EN/logger" --rootfs "$EN/rootfs-a" d1 \
		/bin/sh -c 'echo d1-out; echo d1-err >&2; trap "echo got-USR1 >/tmp/usr1" USR1; while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task d1 RUNNING
	sock=$(shim_sock_of d1)
	[ -S "$sock" ]
	wait_for -t 60 grep -q d1-out "$EN/binlog.out"
	wait_for -t 60 grep -q d1-err "$EN/binlog.err"
	# The daemon's confinement (docs/confinement.md), and what the
	# logger it started inherits: no_new_privs, its seccomp deny-list,
	# a bounding set without CAP_SYS_MODULE (16) or CAP_SYS_BOOT (22).
	shim=$(shim_pid_of d1)
	[ -n "$shim" ]
	grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapBnd):' "/proc/$shim/status" >"$EN/shim.status"
	# Its spawner (libhusk/spawn.h): a child of its own name, which
	# clones what the daemon starts.
	spawner=$(pgrep -P "$shim" -x husk-spawner)
	[ -n "$spawner" ]
	grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapBnd):' "/proc/$spawner/status" >"$EN/spawner.status"
	for f in "$EN/shim.status" "$EN/spawner.status" "$EN/logger.status"; do
		cat "$f"
		grep -q '^NoNewPrivs:[[:space:]]*1$' "$f"
		grep -q '^Seccomp:[[:space:]]*2$' "$f"
		bnd=$(awk '$1 == "CapBnd:" { print $2 }' "$f")
		[ $(( 0x$bnd & (1 << 16 | 1 << 22) )) -eq 0 ]
	done
	# The daemon has its allow-list on top of the deny-list; the
	# spawner, and the logger it cloned, only the deny-list; the logger
	# is still the daemon's child.
	grep -q '^Seccomp_filters:[[:space:]]*2$' "$EN/shim.status"
	grep -q '^Seccomp_filters:[[:space:]]*1$' "$EN/spawner.status"
	grep -q '^Seccomp_filters:[[:space:]]*1$' "$EN/logger.status"
	grep -q "^PPid:[[:space:]]*$shim$" "$EN/logger.status"

	run timeout 120 $(ctr_cmd) task exec --exec-id e1 d1 \
		/bin/sh -c 'echo in-exec; uname -r; exit 6'
	echo "$output"
	[ "$status" -eq 6 ]
	[[ "$output" == *in-exec* ]]
	[[ "$output" != *"$(uname -r)"* ]]
	run timeout 120 script -qec "$(ctr_cmd) task exec -t --exec-id e2 d1 /bin/sh -c 'test -t 0 && echo exec-tty; exit 5'" /dev/null
	echo "$output"
	[ "$status" -eq 5 ]
	[[ "$output" == *exec-tty* ]]

	# stdin from a pipe: cat ends when it ends (CloseIO).
	run timeout 120 bash -c "printf 'piped-in\n' | $(ctr_cmd) task exec --exec-id e4 d1 /bin/cat"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = piped-in ]

	# ps: the processes in the VM, one row each.
	run ctrc task ps d1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]%% *}" = PID ]
	[ "$(awk 'NR > 1 && $1 ~ /^[0-9]+$/' <<<"$output" | wc -l)" -ge 1 ]

	run ctrc task pause d1
	[ "$status" -eq 0 ]
	wait_task d1 PAUSED
	run ctrc task resume d1
	[ "$status" -eq 0 ]
	wait_task d1 RUNNING

	# Start waits for the agent from the loop (docs/shimv2.md): with
	# the pod's husk-proxy stopped, an exec's Start waits, and State
	# still answers meanwhile.
	proxy_stalled_ls d1 "$EN/e5.out" \
		timeout 180 $(ctr_cmd) task exec --exec-id e5 d1 /bin/echo e5-out
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *d1*RUNNING* ]]
	cat "$EN/e5.out"
	[ "$(cat "$EN/e5.out")" = e5-out ]

	# metrics: the agent's cgroup statistics in containerd's type.
	run ctrc task metrics d1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *METRIC*VALUE* ]]
	[[ "$output" == *memory.usage* ]]
	pids=$(awk '$1 == "pids.current" { print $2 }' <<<"$output")
	[ -n "$pids" ]
	[ "$pids" -ge 1 ]

	# checkpoint: not supported, and said so (Unimplemented, which
	# containerd says as "not implemented").  ctr pauses the task around
	# it: two more paused and resumed events.
	run timeout 120 $(ctr_cmd) task checkpoint d1
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *husk* ]]
	[[ "$output" == *"not implemented"* ]]
	wait_task d1 RUNNING

	# A trapped signal reaches the process and leaves it running.
	run ctrc task kill -s SIGUSR1 d1
	[ "$status" -eq 0 ]
	out=
	for i in $(seq 1 100); do
		# The trap's file may be there yet empty: poll its content.
		out=$(timeout 120 $(ctr_cmd) task exec --exec-id "e3-$i" d1 \
			/bin/cat /tmp/usr1 2>/dev/null) || true
		[ "$out" = got-USR1 ] && break
		sleep 0.2
	done
	echo "last exec said: '$out'"
	[ "$out" = got-USR1 ]
	wait_task d1 RUNNING

	run ctrc task kill -s SIGKILL d1
	[ "$status" -eq 0 ]
	wait_task d1 STOPPED
	run timeout 120 $(ctr_cmd) task delete d1
	echo "$output"
	[ "$status" -eq 0 ]
	run ctrc container rm d1
	[ "$status" -eq 0 ]
	shimv2_assert_gone d1
	wait_for -t 30 test ! -e "$sock"

	# The shim's events, forwarded to containerd, in the order they
	# happened; each exec's three, and one exit per process.
	wait_for -t 30 grep -q '/tasks/delete.*"container_id":"d1"' "$EN/events"
	events_stop
	topics=$(task_topics d1 | tr '\n' ' ')
	echo "topics: $topics"
	re='^create:d1 start:d1 exec-added:e1 exec-started:e1 exit:e1 '
	re+='exec-added:e2 exec-started:e2 exit:e2 '
	re+='exec-added:e4 exec-started:e4 exit:e4 paused:d1 resumed:d1 '
	re+='exec-added:e5 exec-started:e5 exit:e5 '
	re+='paused:d1 resumed:d1 '
	re+='(exec-added:(e3-[0-9]+) exec-started:e3-[0-9]+ exit:e3-[0-9]+ )+'
	re+='exit:d1 delete:d1 $'
	[[ "$topics" =~ $re ]]
	# d1's own exit carries SIGKILL's status.
	grep -q '/tasks/exit {"container_id":"d1","id":"d1".*"exit_status":137' "$EN/events"
}

# A CRI call to the containerd of $EN (cri_client.py), for pod1 with
# its logs in $EN/logs and an annotation husk.conf(5) lets a pod set
# (the handler passes io.husk.config.* on).
# In network namespace $CRI_NETNS when it is there: containerd's, where
# its streaming server listens.
cri() {
	local in=()
	[ -z "${CRI_NETNS:-}" ] || [ ! -e "/run/netns/$CRI_NETNS" ] ||
		in=(nsenter "--net=/run/netns/$CRI_NETNS")
	"${in[@]}" /usr/bin/python3 "${HUSK_SRC:-$BATS_TEST_DIRNAME/../..}/tests/helpers/cri_client.py" \
		"$EN/ctd.sock" --pod pod1 --logs "$EN/logs" \
		--annotation io.husk.config.hypervisor.memory_mb=384 \
		--cgroup-parent /husk-test/pod1 "$@"
}

_cri_exited() {
	[[ "$(cri status "$1")" == EXITED* ]]
}

# The task nt1's links show the address (an exec of its own each time).
_nt1_has() {
	_nt1_n=$(( ${_nt1_n:-0} + 1 ))
	$(ctr_cmd) task exec --exec-id "a$_nt1_n" nt1 ip addr show 2>/dev/null |
		grep -q "inet $1"
}

@test "a task in a network namespace: its links in the VM, husk-netmon inside the namespace, started through the spawner" {
	# The daemon sets the network up under its allow-list (setns,
	# netlink, taps), and its spawner starts husk-netmon in the
	# namespace the daemon is in at that moment.
	local ns=hksv$$ shim netmon
	ip netns add "$ns"
	ip -n "$ns" link add sv0 type veth peer name sv1
	ip -n "$ns" addr add 10.209.0.2/24 dev sv0
	ip -n "$ns" link set sv1 up
	ip -n "$ns" link set sv0 up
	printf '[netmon]\nenable = true\n' >"$EN/husk-netmon.conf"
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--runtime-config-path "$EN/husk-netmon.conf" \
		--with-ns "network:/run/netns/$ns" --rootfs "$EN/rootfs-a" nt1 \
		/bin/sh -c 'while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task nt1 RUNNING
	run timeout 120 $(ctr_cmd) task exec --exec-id a1 nt1 ip addr show
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"inet 10.209.0.2/24"* ]]
	shim=$(shim_pid_of nt1)
	[ -n "$shim" ]
	netmon=$(pgrep -P "$shim" -x husk-netmon)
	[ -n "$netmon" ]
	[ "$(stat -L -c %i "/proc/$netmon/ns/net")" = "$(stat -L -c %i "/run/netns/$ns")" ]
	grep -q '^Seccomp_filters:[[:space:]]*2$' "/proc/$netmon/status"
	# a link added later reaches the VM through it
	ip -n "$ns" link add sv2 type veth peer name sv3
	ip -n "$ns" addr add 10.210.0.2/24 dev sv2
	ip -n "$ns" link set sv3 up
	ip -n "$ns" link set sv2 up
	wait_for -t 60 _nt1_has 10.210.0.2/24
	ctrc task kill -s SIGKILL nt1
	wait_task nt1 STOPPED
	run timeout 120 $(ctr_cmd) task delete nt1
	[ "$status" -eq 0 ]
	ctrc container rm nt1
	shimv2_assert_gone nt1
	ip netns del "$ns"
}

@test "two containers with the CRI annotations share one shim and one VM" {
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--annotation io.kubernetes.cri.container-type=sandbox \
		--annotation io.kubernetes.cri.sandbox-id=p1 \
		--rootfs "$EN/rootfs-a" p1 /bin/sh -c 'while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task p1 RUNNING
	# The member's Create waits for the agent's create_container from
	# the loop: with the pod's husk-proxy stopped meanwhile, State
	# still answers.
	proxy_stalled_ls p1 "$EN/c1.create" \
		timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--annotation io.kubernetes.cri.container-type=container \
		--annotation io.kubernetes.cri.sandbox-id=p1 \
		--rootfs "$EN/rootfs-b" c1 /bin/sh -c 'while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *p1*RUNNING* ]]
	wait_task c1 RUNNING

	# One shim: both bundles name the same address, one process
	# listens on it, and only one shim daemon is running.
	[ -s "$(bundle_of p1)/address" ]
	[ "$(cat "$(bundle_of p1)/address")" = "$(cat "$(bundle_of c1)/address")" ]
	shim=$(shim_pid_of p1)
	[ -n "$shim" ]
	sock=$(shim_sock_of p1)
	[ "$(pgrep -f "containerd-shim-husk-v2 .*$EN/" | wc -l)" -eq 1 ]
	# One VM: one QEMU, and both containers see the same kernel boot.
	[ "$(pgrep -f "qemu-system.*$EN/" | wc -l)" -eq 1 ]
	run timeout 120 $(ctr_cmd) task exec --exec-id b1 p1 /bin/cat /proc/sys/kernel/random/boot_id
	[ "$status" -eq 0 ]
	boot_p1=$output
	run timeout 120 $(ctr_cmd) task exec --exec-id b2 c1 /bin/cat /proc/sys/kernel/random/boot_id
	[ "$status" -eq 0 ]
	[ -n "$boot_p1" ]
	[ "$output" = "$boot_p1" ]
	# Two containers, not one: each has its own root file system.
	run timeout 120 $(ctr_cmd) task exec --exec-id w1 c1 /bin/touch /only-in-c1
	[ "$status" -eq 0 ]
	run timeout 120 $(ctr_cmd) task exec --exec-id w2 p1 /bin/test -e /only-in-c1
	[ "$status" -ne 0 ]

	# The container goes, the pod stays.  Its Delete waits for the
	# agent's remove_container from the loop: with the pod's husk-proxy
	# stopped meanwhile, State still answers.
	run ctrc task kill -s SIGKILL c1
	[ "$status" -eq 0 ]
	wait_task c1 STOPPED
	proxy_stalled_ls p1 "$EN/c1.delete" \
		timeout 120 $(ctr_cmd) task delete c1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *p1*RUNNING* ]]
	run ctrc container rm c1
	[ "$status" -eq 0 ]
	[ "$(task_status p1)" = RUNNING ]
	kill -0 "$shim"
	[ "$(pgrep -f "qemu-system.*$EN/" | wc -l)" -eq 1 ]
	run timeout 120 $(ctr_cmd) task exec --exec-id b3 p1 /bin/true
	[ "$status" -eq 0 ]

	# Then the pod: the shim exits once no task is left.
	run ctrc task kill -s SIGKILL p1
	[ "$status" -eq 0 ]
	wait_task p1 STOPPED
	run timeout 120 $(ctr_cmd) task delete p1
	[ "$status" -eq 0 ]
	run ctrc container rm p1
	[ "$status" -eq 0 ]
	wait_for -t 60 proc_gone "$shim"
	shimv2_assert_gone p1
	shimv2_assert_gone c1
	wait_for -t 30 test ! -e "$sock"
}

@test "kill -9 of the shim: containerd's cleanup leaves no process, mount or state" {
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--rootfs "$EN/rootfs-a" k1 /bin/sh -c 'while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task k1 RUNNING
	shim=$(shim_pid_of k1)
	[ -n "$shim" ]
	sock=$(shim_sock_of k1)
	qemu=$(pgrep -f "qemu-system.*$EN/")
	[ -n "$qemu" ]
	kill -9 "$shim"
	wait_for -t 30 proc_gone "$shim"
	# containerd sees its shim gone and runs `containerd-shim-husk-v2
	# delete` in the bundle: the task ends (stopped or removed).
	for _ in $(seq 1 600); do
		st=$(task_status k1)
		[ "$st" = RUNNING ] || break
		sleep 0.1
	done
	[ "$st" != RUNNING ]
	timeout 120 $(ctr_cmd) task delete --force k1 || true
	wait_task_gone k1 120
	run ctrc container rm k1
	[ "$status" -eq 0 ]
	for p in $qemu; do
		wait_for -t 60 proc_gone "$p"
	done
	shimv2_assert_gone k1
	# The dead shim's socket too (the shim's `delete` removes it).
	wait_for -t 30 test ! -e "$sock"
}

@test "containerd restarted on the same root finds the shim by its address file and the task still works" {
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--rootfs "$EN/rootfs-a" s1 /bin/sh -c 'while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task s1 RUNNING
	shim=$(shim_pid_of s1)
	[ -n "$shim" ]
	sock=$(shim_sock_of s1)

	engines_stop_containerd
	# The shim and its VM outlive containerd.
	kill -0 "$shim"
	[ -n "$(pgrep -f "qemu-system.*$EN/")" ]
	shimv2_start_containerd
	wait_task s1 RUNNING
	[ "$(shim_pid_of s1)" = "$shim" ]
	run timeout 120 $(ctr_cmd) task exec --exec-id x1 s1 /bin/sh -c 'echo still-here; exit 4'
	echo "$output"
	[ "$status" -eq 4 ]
	[[ "$output" == *still-here* ]]

	run ctrc task kill -s SIGKILL s1
	[ "$status" -eq 0 ]
	wait_task s1 STOPPED
	run timeout 120 $(ctr_cmd) task delete s1
	[ "$status" -eq 0 ]
	run ctrc container rm s1
	[ "$status" -eq 0 ]
	wait_for -t 60 proc_gone "$shim"
	shimv2_assert_gone s1
	wait_for -t 30 test ! -e "$sock"
}

@test "containerd's CRI plugin loads with two husk runtime handlers whose options name their husk.conf" {
	# A containerd of its own, CRI on, beside the test's.
	local EN=$EN/cri
	mkdir -p "$EN/cni-conf" "$EN/cni-bin"
	printf '{"cniVersion": "0.4.0", "name": "husk-test", "plugins": [{"type": "loopback"}]}\n' \
		>"$EN/cni-conf/10-husk-test.conflist"
	printf '# defaults\n' >"$EN/husk.conf"
	printf '[hypervisor]\nmemory_mb = 512\n' >"$EN/husk-512.conf"
	ENGINES_CTD_TOML=$(shimv2_cri_toml "$EN/husk.conf" "$EN/husk-512.conf")
	shimv2_start_containerd cri
	wait_for -t 60 grep -q "containerd successfully booted" "$EN/containerd.log"
	run ctrc plugins ls
	echo "$output"
	[ "$status" -eq 0 ]
	grep -E '^io\.containerd\.grpc\.v1 +cri +[^ ]+ +ok *$' <<<"$output"
	# The handler as the plugin took it: its type and its options.
	grep -q "husk:{Type:io.containerd.husk.v2 .*Options:map\[ConfigPath:$EN/husk.conf\]" \
		"$EN/containerd.log"
	grep -q "husk-big:{Type:io.containerd.husk.v2 .*Options:map\[ConfigPath:$EN/husk-512.conf\]" \
		"$EN/containerd.log"
	grep -q 'husk:{Type:io.containerd.husk.v2 .*PodAnnotations:\[io.husk.config.\*\]' \
		"$EN/containerd.log"
	run grep -E 'level=(error|fatal)' "$EN/containerd.log"
	echo "$output"
	[ "$status" -eq 1 ]
	engines_stop_containerd
	engines_assert_clean
}

@test "a pod through containerd's CRI, as kubelet drives it: its sandbox and a container in one VM sized by the pod's annotation and in the pod's host cgroup, limits that grow it, volumes, status and stats, exec (also streamed, several at once, 3 MB), update, logs, the pod's address, a second container attached to with a terminal, stop and removal leave nothing" {
	# A containerd of its own with CRI on, in a network namespace of
	# the test's (CNI's bridge goes there), an image made here (no
	# registry), the calls kubelet makes (tests/helpers/cri_client.py).
	local EN=$EN/cri ns=hkcri$$ p pod cid cid2 netns_before
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	mkdir -p "$EN/cni-conf" "$EN/cni-bin" "$EN/logs"
	for p in loopback bridge host-local; do
		ln -s "/usr/lib/cni/$p" "$EN/cni-bin/$p"
	done
	cat >"$EN/cni-conf/10-husk-cri.conflist" <<-EOF
	{"cniVersion": "0.4.0", "name": "husk-cri", "plugins": [
	  {"type": "bridge", "bridge": "hkcri0", "isGateway": false,
	   "ipMasq": false, "ipam": {"type": "host-local",
	   "dataDir": "$EN/cni-ipam", "ranges": [[{"subnet": "10.213.77.0/24"}]]}}]}
	EOF
	# The VM's processes in the pod sandbox's cgroup (kubelet's pod
	# cgroup is the parent: cri passes --cgroup-parent).
	printf '[runtime]\nsandbox_cgroup_only = true\n' >"$EN/husk.conf"
	/usr/bin/python3 "$HUSK_SRC/tests/helpers/oci_image.py" "$EN/../rootfs" \
		docker.io/library/husk-pause:1 "$EN/image.tar" sleep 2147483647
	netns_before=$(ip netns list | grep -c '^cni-' || true)
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	CRI_NETNS=$ns
	ENGINES_CTD_NETNS=$ns \
	ENGINES_CTD_TOML=$(shimv2_cri_toml "$EN/husk.conf" "$EN/husk.conf" docker.io/library/husk-pause:1) \
		shimv2_start_containerd cri
	wait_for -t 60 grep -q "containerd successfully booted" "$EN/containerd.log"
	run "$CTR_BIN" -a "$EN/ctd.sock" -n k8s.io images import "$EN/image.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	run cri runp husk
	echo "$output"
	[ "$status" -eq 0 ]
	pod=$output
	# The pause container is the pod's VM: one QEMU, in the sandbox's
	# host cgroup below the pod's (sandbox_cgroup_only).
	[ "$(pgrep -f "qemu-system.*$HUSK_ROOT/" | wc -l)" -eq 1 ]
	grep -qx "$(pgrep -f "qemu-system.*$HUSK_ROOT/")" \
		"/sys/fs/cgroup/memory/husk-test/pod1/$pod/cgroup.procs"
	# With limits, as kubelet sends a container's resources: the VM
	# grows by them (a DIMM and a vCPU hot-plugged during Create).  And
	# volumes as kubelet gives them: a directory read-only (a
	# configMap's) and a file read-write (the termination log).
	mkdir -p "$EN/vol-cfg"
	echo cfg-value >"$EN/vol-cfg/key"
	: >"$EN/termination-log"
	run cri create -m 134217728 -c 50000 \
		-v "$EN/vol-cfg:/etc/cfg:ro" \
		-v "$EN/termination-log:/dev/termination-log" "$pod" c1 \
		docker.io/library/husk-pause:1 sh -c 'echo cri-out; sleep 1000'
	echo "$output"
	[ "$status" -eq 0 ]
	cid=$output
	run cri start "$cid"
	[ "$status" -eq 0 ]
	run cri status "$cid"
	[ "$output" = "RUNNING 0 " ]
	[ "$(pgrep -f "qemu-system.*$HUSK_ROOT/" | wc -l)" -eq 1 ]
	# What kubelet polls: the pod's status (ready, its CNI address, the
	# handler) and the container's stats, the guest cgroup's (Stats).
	run cri podstatus "$pod"
	echo "$output"
	[[ "$output" =~ ^READY\ 10\.213\.77\.[0-9]+\ husk$ ]]
	run cri stats "$cid"
	echo "$output"
	[[ "$output" =~ ^cpu=[1-9][0-9]*\ memory=[1-9][0-9]*\ working_set=[0-9]+$ ]]

	# ExecSync: in the VM's kernel, with the exit code; the pod's CNI
	# address is in the VM.
	run cri exec "$cid" sh -c 'uname -r; ip -4 addr show eth0; exit 3'
	echo "$output"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" != "$(uname -r)" ]
	[[ "$output" == *"inet 10.213.77."* ]]
	# kubectl exec's way: Exec, then its URL on the CRI's streaming
	# server (a websocket), the output and the exit code through it.
	run cri stream "$cid" sh -c 'echo streamed-out; exit 4'
	echo "$output"
	[ "$status" -eq 4 ]
	[ "$output" = streamed-out ]
	run cri stream -t "$cid" sh -c 'test -t 1 && echo on-a-tty'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(tr -d '\r' <<<"$output")" = on-a-tty ]
	# Its stdin: a line in, read by the process.
	run cri stream -i $'a line in\n' "$cid" sh -c 'read x; echo "got $x"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "got a line in" ]
	# The pod's annotation sized its VM at 384 MiB, not husk.conf's
	# 256, and c1's limit grew it by 128 (256 + 128 would be about
	# 372000 kB); c1's quota brought a second vCPU.  Its cgroup in the
	# guest has the limits.
	run cri exec "$cid" awk '/^MemTotal/ { print $2 }' /proc/meminfo
	echo "MemTotal: $output kB"
	[ "$status" -eq 0 ]
	[ "$output" -gt 450000 ]
	run cri exec "$cid" nproc
	[ "$output" = 2 ]
	run cri exec "$cid" sh -c 'd=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $d/memory.max $d/cpu.max'
	echo "$output"
	[ "${lines[0]}" = 134217728 ]
	[ "${lines[1]}" = "50000 100000" ]
	# The volumes: the read-only one read and not written, the file
	# written through to the host, where kubelet reads it.
	run cri exec "$cid" sh -c 'cat /etc/cfg/key; touch /etc/cfg/new && echo wrote; echo done-msg >/dev/termination-log'
	echo "$output"
	[ "${lines[0]}" = cfg-value ]
	[[ "$output" == *"Read-only file system"* ]]
	[[ "$output" != *wrote* ]]
	[ ! -e "$EN/vol-cfg/new" ]
	[ "$(cat "$EN/termination-log")" = done-msg ]
	# Probes as kubelet runs them, several ExecSyncs at once, each
	# with its own output; and one whose output is 3 MB.
	pids=
	for i in 1 2 3 4 5 6; do
		cri exec "$cid" sh -c "sleep 1; echo probe-$i" >"$EN/probe$i" 2>&1 &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p"
	done
	for i in 1 2 3 4 5 6; do
		[ "$(cat "$EN/probe$i")" = "probe-$i" ]
	done
	[ "$(cri exec "$cid" sh -c 'head -c 3000000 /dev/zero | tr "\0" a' | wc -c)" -eq 3000000 ]
	# The container's output in its CRI log.
	wait_for -t 60 grep -q ' stdout F cri-out$' "$EN/logs/c1.log"

	# UpdateContainerResources: new CPU shares reach the container's
	# cgroup in the guest (cgroup v2: weight 1 + (512 - 2) * 9999 /
	# 262142 = 20).  No cgroup namespace on this cgroup v1 host, as
	# runc: the container sees the guest's whole tree.
	run cri update "$cid" 512
	[ "$status" -eq 0 ]
	run cri exec "$cid" sh -c 'cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cpu.weight"'
	echo "$output"
	[ "$output" = 20 ]

	# A second container beside it, as kubectl run -it makes it: a
	# terminal and stdin, attached to through the streaming server; a
	# line typed reaches its process, what it writes comes back, and its
	# exit code is its status.
	run cri create -t -i "$pod" c2 docker.io/library/husk-pause:1 \
		sh -c 'test -t 0 && read x && echo "got $x"; exit 7'
	[ "$status" -eq 0 ]
	cid2=$output
	run cri start "$cid2"
	[ "$status" -eq 0 ]
	run cri attach -t -i $'typed in\n' "$cid2"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(tr -d '\r' <<<"$output")" == *"got typed in"* ]]
	wait_for -t 60 _cri_exited "$cid2"
	run cri status "$cid2"
	[ "$output" = "EXITED 7 Error" ]
	wait_for -t 60 grep -q ' stdout F got typed in' "$EN/logs/c2.log"
	run cri rm "$cid2"
	[ "$status" -eq 0 ]
	[ "$(pgrep -f "qemu-system.*$HUSK_ROOT/" | wc -l)" -eq 1 ]
	run cri status "$cid"
	[ "$output" = "RUNNING 0 " ]

	# StopContainer: sh as PID 1 ignores SIGTERM, so SIGKILL after the
	# timeout; then the removals.
	run cri stop "$cid"
	[ "$status" -eq 0 ]
	run cri status "$cid"
	[ "$output" = "EXITED 137 Error" ]
	run cri rm "$cid"
	[ "$status" -eq 0 ]
	run cri stopp "$pod"
	[ "$status" -eq 0 ]
	run cri rmp "$pod"
	[ "$status" -eq 0 ]
	wait_for -t 60 test -z "$(ls -A "$HUSK_ROOT")"
	[ "$(pgrep -f "qemu-system.*$HUSK_ROOT/" | wc -l)" -eq 0 ]
	[ "$(ip netns list | grep -c '^cni-' || true)" -eq "$netns_before" ]
	# The cgroups husk made for the pod went with it.
	[ ! -d /sys/fs/cgroup/memory/husk-test/pod1 ]
	engines_stop_containerd
	engines_assert_clean
	ip netns del "$ns"
}

@test "ctr run --rm -t: a terminal in the VM, sized by ResizePty" {
	run timeout 300 script -qec "stty rows 33 cols 101; $(ctr_cmd) run --rm -t --runtime $SHIMV2_RUNTIME --rootfs $EN/rootfs-a t1 /bin/sh -c 'test -t 0 && echo is-a-tty; for i in \$(seq 100); do s=\$(stty size 2>/dev/null); [ \"\$s\" = \"33 101\" ] && break; sleep 0.1; done; echo size \$s; exit 4'" /dev/null
	# ctr sends ResizePty after Start (as with runc): the process may
	# run before it, so it polls for its size, 10 s at most.
	echo "$output"
	[ "$status" -eq 4 ]
	[[ "$output" == *is-a-tty* ]]
	[[ "$output" == *"size 33 101"* ]]
	shimv2_assert_gone t1
}

@test "QEMU killed under the shim: the task exits, told by its event, and delete leaves nothing" {
	events_start
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--log-uri "file://$EN/q1.log" --rootfs "$EN/rootfs-a" q1 \
		/bin/sh -c 'echo q1-says-hello; while true; do sleep 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task q1 RUNNING
	wait_for -t 60 grep -q q1-says-hello "$EN/q1.log"
	shim=$(shim_pid_of q1)
	[ -n "$shim" ]
	sock=$(shim_sock_of q1)
	qemu=$(pgrep -f "qemu-system.*$EN/")
	[ "$(wc -w <<<"$qemu")" -eq 1 ]
	kill -9 $qemu
	wait_task q1 STOPPED 120
	wait_for -t 60 grep -q '/tasks/exit {"container_id":"q1","id":"q1"' "$EN/events"
	[ "$(grep -c '/tasks/exit {"container_id":"q1","id":"q1"' "$EN/events")" -eq 1 ]
	# A status that says it failed (JSON leaves a 0 out).
	st=$(grep '/tasks/exit {"container_id":"q1","id":"q1"' "$EN/events" |
		sed -n 's/.*"exit_status":\([0-9]*\).*/\1/p')
	echo "exit status when the VM died: $st"
	[ -n "$st" ]
	[ "$st" -ne 0 ]
	run timeout 120 $(ctr_cmd) task delete q1
	[ "$status" -eq 0 ]
	run ctrc container rm q1
	[ "$status" -eq 0 ]
	wait_for -t 60 proc_gone "$shim"
	shimv2_assert_gone q1
	wait_for -t 30 test ! -e "$sock"
}

@test "an OOM kill in the VM: /tasks/oom, then the exit" {
	events_start
	run timeout 300 $(ctr_cmd) run --rm --runtime "$SHIMV2_RUNTIME" \
		--memory-limit 33554432 --rootfs "$EN/rootfs-a" o1 \
		/bin/dd if=/dev/zero of=/dev/null bs=96M count=1
	echo "$output"
	[ "$status" -eq 137 ]
	wait_for -t 30 grep -q '/tasks/delete.*"container_id":"o1"' "$EN/events"
	topics=$(task_topics o1 | tr '\n' ' ')
	echo "topics: $topics"
	# One kill, one event, told before the exit it caused.
	[ "$topics" = "create:o1 start:o1 oom:o1 exit:o1 delete:o1 " ]
	shimv2_assert_gone o1
}

@test "a task's pod takes its VM from the VM cache (husk-cache), and leaves nothing" {
	# The shim's configuration is the cache's: the same VM.
	{ cat "$HUSK_CONFIG"; printf '[factory]\ncache = 1\n'; } >"$EN/cache.conf"
	hk() { HUSK_CONFIG=$EN/cache.conf "${BUILD:-build}/bin/husk" --root "$HUSK_ROOT" "$@"; }
	run hk factory init
	[ "$status" -eq 0 ]
	wait_for -t 300 bash -c "'${BUILD:-build}/bin/husk' --root '$HUSK_ROOT' factory status 2>/dev/null | grep -q '\"ready\": 1'"
	run timeout 300 $(ctr_cmd) run -d --runtime "$SHIMV2_RUNTIME" \
		--runtime-config-path "$EN/cache.conf" \
		--rootfs "$EN/rootfs-a" k1 /bin/sleep 100000
	echo "$output"
	[ "$status" -eq 0 ]
	wait_task k1 RUNNING
	# Its VM is the one the cache booted, moved into the pod's state.
	[ -d "$HUSK_ROOT/k1/factory-vm" ]
	run timeout 120 $(ctr_cmd) task exec --exec-id e1 k1 /bin/echo in-k1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = in-k1 ]
	run ctrc task kill -s SIGKILL k1
	[ "$status" -eq 0 ]
	wait_task k1 STOPPED
	run timeout 120 $(ctr_cmd) task delete k1
	[ "$status" -eq 0 ]
	run ctrc container rm k1
	[ "$status" -eq 0 ]
	run hk factory destroy
	[ "$status" -eq 0 ]
	shimv2_assert_gone k1
	[ ! -e "$HUSK_ROOT/.factory" ]
}

@test "nothing left once containerd stops" {
	engines_stop_containerd
	engines_assert_clean
	[ -z "$(ls -A "$EN/husk-root")" ]
	[ -z "$(ls -A "$EN/ctd-state/io.containerd.runtime.v2.task/husk-test" 2>/dev/null)" ]
}
