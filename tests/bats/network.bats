#!/usr/bin/env bats
# Networking (docs/network.md): a sandbox in a network namespace the
# test makes, its veths mirrored into the VM through taps and tc
# filters, husk-netmon following changes, `husk network` by hand, and
# nothing left behind.  All traffic stays in namespaces made here.

load lib/husk.sh

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-net.XXXXXX)/root
	export B="$BATS_FILE_TMPDIR/bundle"
	export NS=hknet$$ HN=hkhost$$
	make_bundle "$B" sleep 100000
	net_bundle "$B" "/run/netns/$NS"
	ip netns add "$NS"
	ip netns add "$HN"
	ip -n "$NS" link set lo up
	ip -n "$HN" link set lo up
	veth eth0 hp0 10.201.0
	veth eth1 hp1 10.202.0
	ip -n "$NS" route add default via 10.201.0.1
	ip -n "$NS" route add 10.203.0.0/24 via 10.202.0.1
	ip -n "$HN" addr add 10.203.0.1/24 dev lo
	export CONF="$BATS_FILE_TMPDIR/husk.conf"
	printf '[netmon]\nenable = true\n' >"$CONF"
	"$HUSK_BIN" --root "$ROOT" --config "$CONF" run -d --bundle "$B" c1 \
		</dev/null >/dev/null 2>"$BATS_FILE_TMPDIR/run.err" || {
		cat "$BATS_FILE_TMPDIR/run.err" >&2
		return 1
	}
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$HN" 2>/dev/null || true
	ip netns del "${NS}b" 2>/dev/null || true
	rm -rf "$(dirname "$ROOT")"
}

# veth NAME PEER PREFIX: NAME in $NS with PREFIX.2/24, PEER in $HN
# with PREFIX.1/24, both up.
veth() {
	ip link add name "$1$$" netns "$NS" type veth peer name "$2" netns "$HN"
	ip -n "$NS" link set "$1$$" name "$1"
	ip -n "$NS" addr add "$3.2/24" dev "$1"
	ip -n "$HN" addr add "$3.1/24" dev "$2"
	ip -n "$HN" link set "$2" up
	ip -n "$NS" link set "$1" up
}

# The bundle joins the netns at path, may use ping (CAP_NET_RAW), and
# may write its root.
net_bundle() {
	local b=$1 path=$2
	jq --arg p "$path" '(.linux.namespaces[] | select(.type == "network")).path = $p
	    | .process.capabilities |= (with_entries(.value += ["CAP_NET_RAW"]) | del(.ambient))
	    | .root.readonly = false' "$b/config.json" >"$b/config.json.new"
	mv "$b/config.json.new" "$b/config.json"
}

hostns() {
	ip netns exec "$HN" "$@"
}

# Poll a command in the container until its output matches (bounded).
wait_inside() {
	local pattern=$1 i
	shift
	for i in $(seq 1 100); do
		if husk exec c1 "$@" 2>/dev/null | grep -q -- "$pattern"; then
			return 0
		fi
		sleep 0.2
	done
	echo "never saw '$pattern' in: $*" >&2
	husk exec c1 "$@" >&2
	return 1
}

wait_not_inside() {
	local pattern=$1 i
	shift
	for i in $(seq 1 100); do
		if ! husk exec c1 "$@" 2>/dev/null | grep -q -- "$pattern"; then
			return 0
		fi
		sleep 0.2
	done
	echo "still see '$pattern' in: $*" >&2
	return 1
}

@test "the container reaches the host end: ping and a TCP transfer" {
	run husk exec c1 ping -c 2 -W 5 10.201.0.1
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 packets received"* ]]
	head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/blob"
	# busybox nc -l ends the connection at EOF on its stdin: keep it open
	hostns busybox nc -l -p 5001 >"$BATS_TEST_TMPDIR/got" < <(sleep 30) &
	server=$!
	listening() { [ -n "$(hostns ss -Hltn 'sport = :5001')" ]; }
	wait_for listening
	# nc's -w only ends a hung client (a short one cut transfers short
	# under load): what arrived is what counts.
	husk exec -d c1 sh -c 'head -c 200000 /dev/zero | nc -w 300 10.201.0.1 5001'
	got_all() { [ "$(stat -c %s "$BATS_TEST_TMPDIR/got")" -eq 200000 ]; }
	wait_for got_all
	kill "$server" 2>/dev/null || true
}

@test "the host end reaches a server in the container" {
	run hostns busybox ping -c 2 -W 5 10.201.0.2
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 packets received"* ]]
	# busybox nc half-closes at EOF on its stdin, and the client then
	# stops sending: a detached exec's stdin ends at once, so under load
	# the transfer was cut after its first 1 KiB.  Keep it open.
	husk exec -d c1 sh -c 'sleep 300 | nc -l -p 5002 >/tmp/got'
	head -c 150000 /dev/urandom >"$BATS_TEST_TMPDIR/blob"
	# listening: port 5002 (0x138A) in state LISTEN (0A)
	wait_inside ':138A [0:]* 0A' cat /proc/net/tcp /proc/net/tcp6
	# -w only ends a hung client: what arrived is what counts.
	hostns busybox nc -w 300 10.201.0.2 5002 <"$BATS_TEST_TMPDIR/blob" &
	client=$!
	wait_inside "^150000" wc -c /tmp/got
	kill "$client" 2>/dev/null || true
	sum=$(md5sum <"$BATS_TEST_TMPDIR/blob" | cut -d' ' -f1)
	run husk exec c1 busybox md5sum /tmp/got
	[[ "$output" == "$sum"* ]]
}

@test "two interfaces with their MACs and MTUs, a default and a static route" {
	run husk exec c1 ip addr
	[[ "$output" == *"inet 10.201.0.2/24"* ]]
	[[ "$output" == *"inet 10.202.0.2/24"* ]]
	mac1=$(ip -n "$NS" -o link show eth1 | sed 's/.*link\/ether \([^ ]*\).*/\1/')
	run husk exec c1 cat /sys/class/net/eth1/address
	[ "$output" = "$mac1" ]
	run husk exec c1 ip route
	[[ "$output" == *"default via 10.201.0.1 dev eth0"* ]]
	[[ "$output" == *"10.203.0.0/24 via 10.202.0.1 dev eth1"* ]]
	# through the static route: the host end's lo address
	run husk exec c1 ping -c 1 -W 5 10.203.0.1
	[ "$status" -eq 0 ]
}

@test "taps and filters are there while the sandbox runs" {
	run ip -n "$NS" -o link show
	[[ "$output" == *"tap0_husk"* ]]
	[[ "$output" == *"tap1_husk"* ]]
	run tc -n "$NS" filter show dev eth0 ingress
	[[ "$output" == *"mirred (Egress Redirect to device tap"* ]]
	# Both links were there at create: their NICs went on QEMU's
	# command line (on root ports), not hot-plugged.
	hv_status >"$BATS_TEST_TMPDIR/hv.json"
	[ "$(jq '[.devices[] | select(.kind == "net" and .hotplugged == false)] | length' "$BATS_TEST_TMPDIR/hv.json")" -eq 2 ]
	tr '\0' '\n' </proc/"$(jq -r .qemu_pid "$BATS_TEST_TMPDIR/hv.json")"/cmdline >"$BATS_TEST_TMPDIR/qemu.args"
	grep -q '^virtio-net-pci,netdev=net-tap0_husk,.*,bus=rp[0-9]*$' "$BATS_TEST_TMPDIR/qemu.args"
}

# The driver's status of c1; the number of its net devices.
hv_status() { "${BUILD:-build}/bin/husk-ipc" -t 10 "$ROOT/c1/hv.sock" status '{}'; }
nets_are() { [ "$(hv_status | jq '[.devices[] | select(.kind == "net")] | length')" -eq "$1" ]; }
taps_are() { [ "$(ip -n "$NS" -o link show | grep -c _husk)" -eq "$1" ]; }

@test "husk-netmon is confined: no_new_privs, seccomp, no capabilities" {
	pid=$(jq -r .netmon.pid "$ROOT/c1/sandbox.json")
	[ "$pid" -gt 0 ]
	grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid/status
	grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status
	grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/$pid/status
	# and it lives in the sandbox's namespace
	[ "$(stat -L -c %i /proc/$pid/ns/net)" = "$(stat -L -c %i /run/netns/$NS)" ]
}

@test "netmon: an interface added while the container runs shows up, then goes" {
	veth eth2 hp2 10.204.0
	wait_inside "inet 10.204.0.2/24" ip addr show eth2
	run husk exec c1 ping -c 1 -W 5 10.204.0.1
	[ "$status" -eq 0 ]
	ip -n "$NS" link del eth2
	wait_not_inside "eth2" ip link
	# the driver took its tap away too
	for i in $(seq 1 50); do
		[ "$(ip -n "$NS" -o link show | grep -c _husk)" -eq 2 ] && break
		sleep 0.1
	done
	[ "$(ip -n "$NS" -o link show | grep -c _husk)" -eq 2 ]
}

@test "netmon: an address change is mirrored" {
	ip -n "$NS" addr add 10.201.0.77/24 dev eth0
	wait_inside "inet 10.201.0.77/24" ip addr show eth0
	ip -n "$NS" addr del 10.201.0.77/24 dev eth0
	wait_not_inside "10.201.0.77" ip addr show eth0
}

@test "husk network by hand: add-iface, list-ifaces, update-routes, list-routes, del-iface" {
	# Its peer stays down, so netmon leaves it alone.
	ip link add name eth3$$ netns "$NS" type veth peer name hp3 netns "$HN"
	ip -n "$NS" link set eth3$$ name eth3
	ip -n "$NS" link set eth3 up
	mac=$(ip -n "$NS" -o link show eth3 | sed 's/.*link\/ether \([^ ]*\).*/\1/')
	run husk network add-iface c1 <<<'{"name": "eth3", "addresses": [{"address": "10.205.0.2", "prefix_len": 24}]}'
	[ "$status" -eq 0 ]
	[ "$(jq -r .mac <<<"$output")" = "$mac" ]
	[[ "$(jq -r .tap <<<"$output")" == *_husk ]]
	run husk network list-ifaces c1
	[ "$status" -eq 0 ]
	[ "$(jq -r '.interfaces[] | select(.name == "eth3") | .addresses[0].address' <<<"$output")" = 10.205.0.2 ]
	echo '[{"dest": "default", "gateway": "10.201.0.1", "device": "eth0"},
	       {"dest": "10.206.0.0/16", "gateway": "10.205.0.1", "device": "eth3"}]' >"$BATS_TEST_TMPDIR/routes.json"
	run husk network update-routes c1 "$BATS_TEST_TMPDIR/routes.json"
	[ "$status" -eq 0 ]
	run husk network list-routes c1
	[ "$status" -eq 0 ]
	[[ "$(jq -r '.routes[] | select(.device == "eth3") | .dest' <<<"$output")" == *10.206.0.0/16* ]]
	run husk network del-iface c1 <<<'{"name": "eth3"}'
	[ "$status" -eq 0 ]
	run husk network list-ifaces c1
	[ "$status" -eq 0 ]
	[[ "$output" != *eth3* ]]
	run husk network del-iface c1 <<<'{"name": "eth3"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"not attached"* ]]
	run husk network add-iface c1 <<<'{"name": "nosuch0"}'
	[ "$status" -ne 0 ]
	[[ "$output" == *"no link nosuch0"* ]]
	ip -n "$NS" link del eth3
	# A NIC that was on QEMU's command line goes like a hot-plugged
	# one: its link gone, netmon detaches it, the guest loses it.
	ip -n "$NS" link del eth1
	wait_not_inside "eth1" ip link
	wait_for taps_are 1
	wait_for nets_are 1
}

@test "delete leaves no tap, tc filter or netmon behind" {
	pid=$(jq -r .netmon.pid "$ROOT/c1/sandbox.json")
	run husk delete --force c1
	[ "$status" -eq 0 ]
	assert_gone c1
	proc_gone "$pid"
	run ip -n "$NS" -o link show
	[ "$status" -eq 0 ]
	[[ "$output" != *_husk* ]]
	run tc -n "$NS" qdisc show
	[ "$status" -eq 0 ]
	[[ "$output" != *ingress* ]]
	# the namespace was the test's: it stays
	[ -e "/run/netns/$NS" ]
}

@test "a namespace husk made goes with delete --force, after the driver was killed" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	net_bundle "$b" ""
	jq '(.linux.namespaces[] | select(.type == "network")) |= del(.path)' \
		"$b/config.json" >"$b/c.json" && mv "$b/c.json" "$b/config.json"
	# the shim keeps the caller's stdout: not through `run`
	husk create --bundle "$b" c2 </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1 ||
		{ cat "$BATS_TEST_TMPDIR/out"; false; }
	ns=$(jq -r .netns "$ROOT/c2/sandbox.json")
	[ "$ns" = "$ROOT/c2/netns" ]
	[ "$(jq -r .netns_created "$ROOT/c2/sandbox.json")" = true ]
	grep -q " $ns " /proc/self/mountinfo
	# a veth the driver attaches by hand, then the driver dies
	ip link add name hkx$$ type veth peer name hky$$
	ip link set hkx$$ netns "$ns"
	nsenter --net="$ns" ip link set hkx$$ up
	run husk network add-iface c2 <<<"{\"name\": \"hkx$$\"}"
	[ "$status" -eq 0 ]
	nsenter --net="$ns" tc filter show dev hkx$$ ingress | grep -q mirred
	hvpid=$(jq -r .hypervisor.pid "$ROOT/c2/sandbox.json")
	kill -9 "$hvpid"
	wait_for proc_gone "$hvpid"
	run husk delete --force c2
	[ "$status" -eq 0 ]
	run grep -q " $ns " /proc/self/mountinfo
	[ "$status" -eq 1 ]
	[ ! -e "$ns" ]
	assert_gone c2
	ip link del hky$$ 2>/dev/null || true
}

@test "a given namespace is scrubbed of taps and filters after kill -9 of the driver" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	ip netns add "${NS}b"
	ip link add name hkz$$ netns "${NS}b" type veth peer name eth0 netns "${NS}b"
	ip -n "${NS}b" link set hkz$$ up
	ip -n "${NS}b" link set eth0 up
	net_bundle "$b" "/run/netns/${NS}b"
	# the shim keeps the caller's stdout: not through `run`
	husk create --bundle "$b" c3 </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1 ||
		{ cat "$BATS_TEST_TMPDIR/out"; false; }
	[ "$(ip -n "${NS}b" -o link show | grep -c _husk)" -eq 2 ]
	kill -9 "$(jq -r .hypervisor.pid "$ROOT/c3/sandbox.json")"
	run husk delete --force c3
	[ "$status" -eq 0 ]
	run ip -n "${NS}b" -o link show
	[ "$status" -eq 0 ]
	[[ "$output" != *_husk* ]]
	run tc -n "${NS}b" qdisc show
	[ "$status" -eq 0 ]
	[[ "$output" != *ingress* ]]
	assert_gone c3
}

@test "no network namespace in the spec: refused unless host_network" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" true
	jq 'del(.linux.namespaces[] | select(.type == "network"))' \
		"$b/config.json" >"$b/c.json" && mv "$b/c.json" "$b/config.json"
	run husk create --bundle "$b" c4 </dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"host_network = true"* ]]
	assert_gone c4
	printf '[runtime]\nnetwork_model = macvtap\n' >"$BATS_TEST_TMPDIR/m.conf"
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/m.conf" \
		create --bundle "$B" c5 </dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"macvtap is not implemented"* ]]
	assert_gone c5
}

@test "the host's network namespace by path is refused unless host_network, then nothing is mirrored" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	# init's namespace file may be closed to us (a test host in a
	# container): then the caller's own stands for the host's.
	hostns=/proc/1/ns/net
	stat -L "$hostns" >/dev/null 2>&1 || hostns="/proc/$$/ns/net"
	# Or bound elsewhere, as docker's --network host names it
	# (<exec-root>/netns/default): the host's all the same.
	bound=$BATS_TEST_TMPDIR/netns-default
	touch "$bound"
	mount --bind "$hostns" "$bound"
	for p in "$hostns" /proc/self/ns/net "/proc/$$/ns/net" "$bound"; do
		net_bundle "$b" "$p"
		run husk create --bundle "$b" c6 </dev/null
		[ "$status" -ne 0 ]
		[[ "$output" == *"is the host's network namespace"* ]]
		[[ "$output" == *"host_network = true"* ]]
		assert_gone c6
	done
	# With host_network the sandbox runs, as with no namespace: no tap,
	# no filter, no netmon in the host's namespace, and delete scrubs
	# nothing there.
	printf '[runtime]\nhost_network = true\n[netmon]\nenable = true\n' \
		>"$BATS_TEST_TMPDIR/h.conf"
	before=$(ip -o link show | grep -c _husk || true)
	net_bundle "$b" "$bound"
	"$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/h.conf" \
		create --bundle "$b" c6 </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1 ||
		{ umount "$bound"; cat "$BATS_TEST_TMPDIR/out"; false; }
	umount "$bound"
	[ "$(jq -r .netns "$ROOT/c6/sandbox.json")" = null ]
	[ "$(jq -r '.netmon.pid // 0' "$ROOT/c6/sandbox.json")" = 0 ]
	[ "$(ip -o link show | grep -c _husk || true)" -eq "$before" ]
	run husk delete --force c6
	[ "$status" -eq 0 ]
	assert_gone c6
}

@test "a network namespace path outside the places namespaces live is refused" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" true
	for p in /etc/passwd /run/netns/../../etc/passwd "$ROOT/../x"; do
		net_bundle "$b" "$p"
		run husk create --bundle "$b" c7 </dev/null
		[ "$status" -ne 0 ]
		[[ "$output" == *"is not below the state directory, /var/run/netns, /run/netns or /proc"* ]]
		assert_gone c7
	done
	[ -f /etc/passwd ]
}
