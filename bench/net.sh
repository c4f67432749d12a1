#!/usr/bin/env bash
# Network: TCP throughput and round-trip latency between a container
# and the host end of its veth, through the tap path (tc mirred ->
# tap -> QEMU virtio-net -> guest), next to the same between two plain
# namespaces over a veth, in the same run.  Busybox nc and ping; all
# traffic stays in namespaces made here.
#
#   BENCH_NET_MB   megabytes per transfer (default 64)
set -u
cd "$(dirname "$0")/.." || exit 111
BUILD=${BUILD:-build}
MB=${BENCH_NET_MB:-64}
HUSK_BIN="$BUILD/bin/husk"
source tests/bats/lib/rootfs.sh

tmp=$(mktemp -d /tmp/husk-bnet.XXXXXX)
ROOT=$tmp/root
NS=hkbn$$ HN=hkbh$$ P1=hkbp$$ P2=hkbq$$
cleanup() {
	"$HUSK_BIN" --root "$ROOT" delete --force b1 >/dev/null 2>&1
	for n in "$NS" "$HN" "$P1" "$P2"; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

pair() {        # pair NS_A NAME_A ADDR_A NS_B NAME_B ADDR_B
	ip link add name "$2" netns "$1" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$4" addr add "$6/24" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}
now() { date +%s.%N; }
mbps() { awk -v mb="$MB" -v t="$1" 'BEGIN { printf "%.1f", mb / t }'; }

for n in "$NS" "$HN" "$P1" "$P2"; do ip netns add "$n"; ip -n "$n" link set lo up; done
pair "$NS" eth0 10.210.0.2 "$HN" hb0 10.210.0.1
pair "$P1" va 10.211.0.2 "$P2" vb 10.211.0.1

b=$tmp/bundle
mkdir -p "$b"
make_rootfs "$b/rootfs"
"$HUSK_BIN" spec --bundle "$b"
jq --arg p "/run/netns/$NS" '.process.terminal = false | .process.args = ["sleep", "100000"]
    | (.linux.namespaces[] | select(.type == "network")).path = $p
    | .process.capabilities |= (with_entries(.value += ["CAP_NET_RAW"]) | del(.ambient))' \
	"$b/config.json" >"$b/c.json" && mv "$b/c.json" "$b/config.json"
"$HUSK_BIN" --root "$ROOT" run -d --bundle "$b" b1 </dev/null >/dev/null 2>"$tmp/err" ||
	{ cat "$tmp/err"; exit 1; }
hx() { "$HUSK_BIN" --root "$ROOT" exec b1 "$@"; }

# container -> host end: the clock runs on the host from the exec to
# the listener's end, less one `husk exec` (measured alone).  The
# listener keeps its stdin open (busybox nc -l drops the connection at
# EOF on its stdin); the sender closes at the end of its input.
t0=$(now); hx true; t1=$(now)
exec_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
ip netns exec "$HN" busybox nc -l -p 6001 >/dev/null < <(sleep 60) &
sleep 0.5
t0=$(now)
hx sh -c "head -c ${MB}000000 /dev/zero | nc -w 1 10.210.0.1 6001"
wait $!
t1=$(now)
tap_s=$(awk -v a="$t0" -v b="$t1" -v e="$exec_s" 'BEGIN { print b - a - e }')
tap_rtt=$(hx ping -c 20 -i 0.2 -q 10.210.0.1 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')

# the same between two plain namespaces
ip netns exec "$P2" busybox nc -l -p 6002 >/dev/null < <(sleep 60) &
sleep 0.5
t0=$(now)
ip netns exec "$P1" sh -c "head -c ${MB}000000 /dev/zero | busybox nc -w 1 10.211.0.1 6002"
wait $!
t1=$(now)
veth_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
veth_rtt=$(ip netns exec "$P1" busybox ping -c 20 -i 0.2 -q 10.211.0.1 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')

accel=$(jq -r .accel "$ROOT/b1/sandbox.json")
printf '%-40s %12s %12s\n' "path ($MB MB, busybox nc)" "MB/s" "rtt avg ms"
printf '%-40s %12s %12s\n' "container -> host end, tap ($accel)" "$(mbps "$tap_s")" "$tap_rtt"
printf '%-40s %12s %12s\n' "namespace -> namespace, veth" "$(mbps "$veth_s")" "$veth_rtt"
