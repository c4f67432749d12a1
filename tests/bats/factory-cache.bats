#!/usr/bin/env bats
# The VM cache (docs/factory-cache.md, issue 16 items 3 and 4):
# `husk factory init` starts husk-cache, confined, which keeps
# [factory] cache VMs booted; a new sandbox takes one and the cache boots
# a replacement; a dead daemon leaves sandboxes to boot cold; `husk
# factory destroy` leaves nothing.  The tests run in order on one root
# and one daemon (VM boots under TCG are slow: as few as the checks
# allow).

load lib/husk.sh

bats_require_minimum_version 1.5.0

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-cache.XXXXXX)/root
	export NS=hkcache$$ PEER=hkcpeer$$
	export FDIR="$ROOT/.factory"
	export B="$BATS_FILE_TMPDIR/bundle"
	export HUSK_CONFIG="$BATS_FILE_TMPDIR/husk.conf"
	printf '[factory]\ncache = 2\n' >"$HUSK_CONFIG"
	make_bundle "$B" echo hello-from-the-cache
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	"$HUSK_BIN" --root "$ROOT" factory destroy || true
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$PEER" 2>/dev/null || true
	rm -rf "$(dirname "$ROOT")"
}

server_pid() {
	jq -r .server.pid "$FDIR/cache.json"
}

# `husk factory status` says N VMs are ready.
ready_count() {
	[ "$(husk factory status 2>/dev/null | jq .cache.ready)" = "$1" ]
}

# Names of the ready VMs, sorted, one line, without the daemon's own
# prefix (vm-<8 hex digits>-): vm-1 vm-2.
ready_names() {
	husk factory status | jq -r '[.cache.vms[] | select(.state == "ready") | .name] | sort | join(" ")' |
		sed -E 's/vm-[0-9a-f]{8}-/vm-/g'
}

# A VM name's daemon prefix: vm-<8 hex digits>.
name_prefix() {
	echo "${1%-*}"
}

# The oldest ready VM's name (names grow: vm-P-1, vm-P-2, ...).
oldest_ready() {
	husk factory status | jq -r '.cache.vms[] | select(.state == "ready") | .name' |
		sort -V | head -n 1
}

# No process started in the cache's directory (by a function: a
# `bash -c` would find itself).
no_procs_in() {
	! pgrep -f "$1" >/dev/null
}

# No process, mount or file of the cache is left: none started in its
# directory, or, given the names of the VMs it kept, none of those (the
# helpers of a VM a sandbox took were started there too) and no
# husk-cache.
assert_cache_gone() {
	local vm
	if [ $# -eq 0 ]; then
		wait_for -t 30 no_procs_in "$FDIR"
	else
		wait_for -t 30 no_procs_in "husk-cache --root $ROOT "
		for vm in "$@"; do
			wait_for -t 30 no_procs_in "$FDIR/$vm/"
		done
	fi
	if grep -F " $FDIR" /proc/self/mountinfo; then
		echo "mounts of the cache left behind" >&2
		return 1
	fi
	if [ -e "$FDIR" ]; then
		find "$FDIR" >&2
		return 1
	fi
}

@test "factory cache: init starts husk-cache, confined, and its booter" {
	run husk factory init
	[ "$status" -eq 0 ]
	pid=$(server_pid)
	[ "$pid" -gt 1 ]
	run grep -E '^(NoNewPrivs|Seccomp|CapEff):' "/proc/$pid/status"
	[[ "$output" =~ NoNewPrivs:[[:space:]]+1 ]]
	[[ "$output" =~ Seccomp:[[:space:]]+2 ]]
	[[ "$output" =~ CapEff:[[:space:]]+0000000000000000 ]]
	# The booter, its child, keeps root's privileges for what it starts.
	booter=$(jq -r .booter.pid "$FDIR/cache.json")
	[ "$(awk '/^PPid:/ { print $2 }' "/proc/$booter/status")" = "$pid" ]
	run grep -E '^Seccomp:' "/proc/$booter/status"
	[[ "$output" =~ Seccomp:[[:space:]]+0 ]]
	# One daemon per root.
	run husk factory init
	[ "$status" -eq 1 ]
	[[ "$output" == *"runs already (pid $pid)"* ]]
	# Its socket speaks to the debug client like the others'.
	run "${BUILD:-build}/bin/husk-ipc" -e husk-cache "$FDIR/cache.sock" cache_status
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .cache)" -eq 2 ]
	run "${BUILD:-build}/bin/husk-ipc" "$FDIR/cache.sock" take '{}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"fingerprint"* ]]
}

@test "factory cache: status lists the cached VMs, booted" {
	wait_for -t 300 ready_count 2
	run husk factory status
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq '.cache.vms | length')" -eq 2 ]
	[ "$(echo "$output" | jq '[.cache.vms[] | select(.alive)] | length')" -eq 2 ]
	for hv in $(echo "$output" | jq '.cache.vms[].hv_pid'); do
		kill -0 "$hv"
	done
	[ "$(ready_names)" = "vm-1 vm-2" ]
	# One prefix, the daemon's own.
	[ "$(echo "$output" | jq -r '.cache.vms[].name' | grep -cE '^vm-[0-9a-f]{8}-[12]$')" -eq 2 ]
	[ "$(echo "$output" | jq -r '.cache.vms[].name' | sed 's/-[0-9]*$//' | sort -u | wc -l)" -eq 1 ]
}

@test "factory cache: a container runs from the cache, and the cache refills" {
	run --separate-stderr husk --debug run --bundle "$B" c1
	[ "$status" -eq 0 ]
	[ "$output" = hello-from-the-cache ]
	[[ "$stderr" =~ "sandbox c1: VM vm-"[0-9a-f]{8}"-1 from the cache" ]]
	assert_gone c1
	# A replacement under a new name, not a VM given twice.
	wait_for -t 300 ready_count 2
	[ "$(ready_names)" = "vm-2 vm-3" ]
}

@test "factory cache: a sandbox from the cache lives and dies as a cold one" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	vm=$(oldest_ready)
	run husk_detached run --detach --bundle "$b" c2
	[ "$status" -eq 0 ]
	wait_status c2 running
	run husk exec c2 echo in-c2
	[ "$status" -eq 0 ]
	[ "$output" = in-c2 ]
	# Its VM's directory is the sandbox's now.
	[ -S "$ROOT/c2/factory-vm/proxy.sock" ]
	[ ! -e "$FDIR/$vm" ]
	run husk kill c2 KILL
	[ "$status" -eq 0 ]
	wait_status c2 stopped
	# QEMU dies under it: delete --force still leaves nothing.
	hv=$(jq -r .hypervisor.pid "$ROOT/c2/sandbox.json")
	proxy=$(jq -r .proxy.pid "$ROOT/c2/sandbox.json")
	qemu=$(pgrep -P "$hv" -f qemu-system)
	kill -9 "$qemu"
	run husk delete --force c2
	[ "$status" -eq 0 ]
	assert_gone c2
	# Its helpers' command lines name the cache's directory, where
	# they started: assert_gone cannot see them by the sandbox's.
	wait_for -t 30 proc_gone "$hv"
	wait_for -t 30 proc_gone "$proxy"
	wait_for -t 30 proc_gone "$qemu"
}

@test "factory cache: a sandbox given a network namespace takes a VM; its links are mirrored there" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	# The namespace CNI would have made: a veth to a peer namespace.
	ip netns add "$NS"
	ip netns add "$PEER"
	ip link add name "eth0$$" netns "$NS" type veth peer name hp0 netns "$PEER"
	ip -n "$NS" link set "eth0$$" name eth0
	ip -n "$NS" addr add 10.211.0.2/24 dev eth0
	ip -n "$PEER" addr add 10.211.0.1/24 dev hp0
	ip -n "$PEER" link set hp0 up
	ip -n "$NS" link set eth0 up
	jq --arg p "/run/netns/$NS" '(.linux.namespaces[] | select(.type == "network")).path = $p
	    | .process.capabilities |= (with_entries(.value += ["CAP_NET_RAW"]) | del(.ambient))' \
		"$b/config.json" >"$b/config.json.new"
	mv "$b/config.json.new" "$b/config.json"
	wait_for -t 300 ready_count 2
	vm=$(oldest_ready)
	run husk_detached --debug run --detach --bundle "$b" c6
	[ "$status" -eq 0 ]
	[[ "$output" == *"sandbox c6: VM $vm from the cache"* ]]
	wait_status c6 running
	[ "$(jq -r .netns "$ROOT/c6/sandbox.json")" = "/run/netns/$NS" ]
	# The tap is in the sandbox's namespace, and the guest reaches the
	# peer through it.
	run ip -n "$NS" -o link show
	[[ "$output" == *_husk* ]]
	run husk exec c6 ip -4 addr show eth0
	[ "$status" -eq 0 ]
	[[ "$output" == *10.211.0.2/24* ]]
	run husk exec c6 ping -c 2 -W 5 10.211.0.1
	[ "$status" -eq 0 ]
	run husk delete --force c6
	[ "$status" -eq 0 ]
	assert_gone c6
	# The namespace is the caller's: it stays, without husk's taps.
	run ip -n "$NS" -o link show
	[ "$status" -eq 0 ]
	[[ "$output" == *eth0* ]]
	[[ "$output" != *_husk* ]]
	ip netns del "$NS"
	ip netns del "$PEER"
}

@test "factory cache: a sandbox whose VM would differ boots cold, saying why" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" echo cold
	set_memory_limit "$b" 134217728
	wait_for -t 300 ready_count 2
	names=$(ready_names)
	run --separate-stderr husk run --bundle "$b" c3
	[ "$status" -eq 0 ]
	[ "$output" = cold ]
	[[ "$stderr" == *"sandbox c3: boots cold"*"another configuration"* ]]
	assert_gone c3
	# Nothing was taken.
	[ "$(ready_names)" = "$names" ]
}

@test "factory cache: a killed daemon is noticed; sandboxes boot cold meanwhile" {
	pid=$(server_pid)
	booter=$(jq -r .booter.pid "$FDIR/cache.json")
	kill -9 "$pid"
	# The booter sees its end and stops the VMs nobody took.
	wait_for -t 60 proc_gone "$booter"
	wait_for -t 30 no_procs_in "$FDIR/vm-"
	run husk factory status
	[ "$status" -ne 0 ]
	[[ "$output" == *"the cache daemon does not answer"* ]]
	run --separate-stderr husk run --bundle "$B" c4
	[ "$status" -eq 0 ]
	[ "$output" = hello-from-the-cache ]
	[[ "$stderr" == *"sandbox c4: boots cold: the VM cache"* ]]
	assert_gone c4
}

@test "factory cache: destroy, with VMs booted and booting, leaves nothing but the sandboxes' own" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	# init over a dead daemon's leftovers
	run husk factory init
	[ "$status" -eq 0 ]
	wait_for -t 300 ready_count 1
	run husk_detached run --detach --bundle "$b" c5
	[ "$status" -eq 0 ]
	wait_status c5 running
	[ -d "$ROOT/c5/factory-vm" ]
	wait_for -t 300 ready_count 1
	kept=$(husk factory status | jq -r '.cache.vms[].name')
	[ -n "$kept" ]
	run husk factory destroy
	[ "$status" -eq 0 ]
	# shellcheck disable=SC2086
	assert_cache_gone $kept
	# The VM a sandbox took is the sandbox's: it outlives the cache.
	run husk exec c5 echo still-here
	[ "$status" -eq 0 ]
	[ "$output" = still-here ]
	# A new daemon on the same root names its VMs apart from the old
	# one's: c5's helpers, which still hold the paths they were started
	# with, touch nothing of the new VMs when they go.
	run husk factory init
	[ "$status" -eq 0 ]
	wait_for -t 300 ready_count 1
	new=$(oldest_ready)
	[ "$(name_prefix "$new")" != "$(name_prefix "$(head -n 1 <<<"$kept")")" ]
	[ -S "$FDIR/$new/hv.sock" ]
	hv=$(jq -r .hypervisor.pid "$ROOT/c5/sandbox.json")
	run husk delete --force c5
	[ "$status" -eq 0 ]
	assert_gone c5
	wait_for -t 30 proc_gone "$hv"
	[ -S "$FDIR/$new/hv.sock" ]
	[ -S "$FDIR/$new/proxy.sock" ]
	run husk factory destroy
	[ "$status" -eq 0 ]
	# And a sandbox after it boots cold.
	run husk factory status
	[ "$status" -ne 0 ]
}

@test "factory cache: SIGTERM to both its processes (pkill) stops its VMs, booted or booting" {
	run husk factory init
	[ "$status" -eq 0 ]
	wait_for -t 300 ready_count 1
	pid=$(server_pid)
	booter=$(jq -r .booter.pid "$FDIR/cache.json")
	kill -TERM "$pid" "$booter"
	wait_for -t 120 proc_gone "$booter"
	wait_for -t 30 no_procs_in "$FDIR/vm-"
	grep -q "booter: stopped by a signal\|booter: vm-[0-9a-f]*-[0-9]* stopped" "$FDIR/cache.log"
	run husk factory destroy
	[ "$status" -eq 0 ]
	assert_cache_gone
}
