#!/usr/bin/env bash
# Proxy and shim: stdout throughput from a container process (husk-agent
# in host mode, busybox dd) to husk-shim's stdout through husk-proxy,
# next to the same bytes read straight off the agent channel socket
# (tests/helpers/agent_client, one connection, acking as it writes) in
# the same run; ping latency through the proxy next to straight to the
# agent, as the scheduler places the processes and again with all of
# them on one CPU (on a nested VM, which CPU a wake-up lands on costs
# more than the hop); the proxy's and shim's memory (PSS, highest seen
# in the run).
#
#   BENCH_PROXY_MB     MiB per transfer (default 512)
#   BENCH_PROXY_PINGS  pings per latency measure (default 5000)
#   BENCH_PROXY_POLL_US  the proxy's --poll-us (default: its own, 200)
set -u
cd "$(dirname "$0")/.." || exit 111
BUILD=${BUILD:-build}
MB=${BENCH_PROXY_MB:-512}
PINGS=${BENCH_PROXY_PINGS:-5000}
B=$BUILD/bin
PB=$BUILD/bench/proxy_bench
AC=$BUILD/tests/helpers/agent_client
for x in "$B/husk-agent" "$B/husk-proxy" "$B/husk-shim" "$B/husk-ipc" "$PB" "$AC"; do
	[ -x "$x" ] || { echo "# proxy: $x not built, skipped"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "# proxy: needs root (host-mode agent), skipped"; exit 0; }
source tests/bats/lib/rootfs.sh

tmp=$(mktemp -d /tmp/husk-bpx.XXXXXX)
chmod 0700 "$tmp"
AS=$tmp/agent.sock PS=$tmp/proxy.sock
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	umount -R "$tmp/share" 2>/dev/null
	rm -rf "$tmp"
	# the host-mode agent's cgroups (empty once its processes ended)
	find /sys/fs/cgroup -maxdepth 2 -type d -name "husk-bpx-$$" \
		-exec find {} -depth -type d -delete \; 2>/dev/null
}
trap cleanup EXIT

mkdir -p "$tmp/share"
make_rootfs "$tmp/share/rootfs" >/dev/null
"$B/husk-agent" --channel "unix:$AS" --shared-dir "$tmp/share" \
	--cgroup-root "husk-bpx-$$" 2>"$tmp/agent.log" &
pids+=($!)
for _ in $(seq 200); do [ -S "$AS" ] && break; sleep 0.025; done

spec() {
	printf '{"ociVersion":"1.0.2","process":{"args":["sh","-c","%s"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}' "$1"
}
DD="dd if=/dev/zero bs=64k count=$((MB * 16)) 2>/dev/null"
now() { date +%s.%N; }
rate() { awk -v mb="$MB" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", mb / (b - a) }'; }
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# Highest PSS (KiB) of pid while it lives, into file.
watch_pss() {
	local max=0 v
	while kill -0 "$1" 2>/dev/null; do
		v=$(pss "$1"); [ "${v:-0}" -gt "$max" ] && max=$v
		sleep 0.05
	done
	echo "$max" >"$2"
}

# The processes on the first CPU we may use, for a run of the ping
# that the scheduler's choice of CPU does not decide.
CPUS=$(taskset -pc $$ 2>/dev/null | sed 's/.*: *//')
CPU1=${CPUS%%[-,]*}
pinned_ping() {	# SOCKET PID... -> "min p50 p99 mean", all on CPU1
	local s=$1 p out
	shift
	for p in "$@"; do taskset -pc "$CPU1" "$p" >/dev/null; done
	out=$(taskset -c "$CPU1" "$PB" "$s" "$PINGS")
	for p in "$@"; do taskset -pc "$CPUS" "$p" >/dev/null; done
	echo "$out"
}

# --- straight to the agent (no proxy connected: it takes one host) ---
direct_lat=$("$PB" "$AS" "$PINGS")
direct_pin=$(pinned_ping "$AS" "${pids[0]}")
t0=$(now)
direct_bytes=$("$AC" --no-stdin "$AS" run d1 "$(spec "$DD")" | wc -c)
t1=$(now)
direct_rate=$(rate "$t0" "$t1")

# --- through husk-proxy and husk-shim ---
"$B/husk-proxy" --agent "unix:$AS" --socket "$PS" ${BENCH_PROXY_POLL_US:+--poll-us $BENCH_PROXY_POLL_US} --log "$tmp/proxy.log" &
PROXY=$!
pids+=($PROXY)
for _ in $(seq 200); do "$B/husk-ipc" -q -t 1 "$PS" ping '{}' 2>/dev/null && break; sleep 0.025; done
proxy_lat=$("$PB" "$PS" "$PINGS")
proxy_pin=$(pinned_ping "$PS" "${pids[0]}" "$PROXY")
"$B/husk-ipc" -q "$PS" create_container "{\"container_id\":\"p1\",\"spec\":$(spec "$DD")}"
"$B/husk-shim" --proxy "$PS" --container p1 </dev/null | wc -c >"$tmp/shim.bytes" &
READER=$!
for _ in $(seq 100); do SHIM=$(pgrep -n -f "husk-shim --proxy $PS") && break; sleep 0.01; done
watch_pss "$SHIM" "$tmp/shim.pss" &
W1=$!
(while kill -0 "$SHIM" 2>/dev/null; do pss "$PROXY"; sleep 0.05; done | sort -n | tail -n 1 >"$tmp/proxy.pss") &
W2=$!
for _ in $(seq 200); do
	"$B/husk-ipc" "$PS" proxy_status | grep -q '"subscriptions":1' && break
	sleep 0.01
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
c0=$(ticks "$PROXY")
t0=$(now)
"$B/husk-ipc" -q "$PS" start_container '{"container_id":"p1"}'
wait "$READER"
t1=$(now)
c1=$(ticks "$PROXY")
wait "$W1" "$W2"
shim_rate=$(rate "$t0" "$t1")
proxy_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.2f", (b - a) / hz }')

want=$((MB << 20))
[ "$direct_bytes" = "$want" ] || echo "# proxy: direct run gave $direct_bytes bytes, not $want"
[ "$(cat "$tmp/shim.bytes")" = "$want" ] || echo "# proxy: shim gave $(cat "$tmp/shim.bytes") bytes, not $want"
read -r dmin dp50 dp99 dmean <<<"$direct_lat"
read -r pmin pp50 pp99 pmean <<<"$proxy_lat"
read -r _ dq50 dq99 _ <<<"$direct_pin"
read -r _ pq50 pq99 _ <<<"$proxy_pin"
printf '%-44s %12s %12s\n' "proxy/shim ($MB MiB, $PINGS pings)" "direct" "via proxy"
printf '%-44s %12s %12s\n' "stdout throughput (MiB/s)" "$direct_rate" "$shim_rate"
printf '%-44s %12s %12s\n' "ping latency p50 (us)" "$dp50" "$pp50"
printf '%-44s %12s %12s\n' "ping latency p99 (us)" "$dp99" "$pp99"
printf '%-44s %12s %12s\n' "ping latency mean (us)" "$dmean" "$pmean"
printf '%-44s %12s %12s\n' "ping p50, all on one CPU (us)" "$dq50" "$pq50"
printf '%-44s %12s %12s\n' "ping p99, all on one CPU (us)" "$dq99" "$pq99"
printf '%-44s %12s %12s\n' "PSS during the transfer (KiB): proxy, shim" "$(cat "$tmp/proxy.pss")" "$(cat "$tmp/shim.pss")"
printf '%-44s %12s %12s\n' "proxy CPU seconds for the transfer" "" "$proxy_cpu"
