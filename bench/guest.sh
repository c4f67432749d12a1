#!/usr/bin/env bash
# The guest image and its agent: sizes, the agent's memory, and the time
# from QEMU's start until the agent answers a ping, next to the time the
# same kernel takes to bring a trivial init to its first byte on the
# same channel (initrd-testinit.img), in the same run, interleaved.
set -u
B=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
G=$B/guest
for f in "$G/vmlinux" "$G/initrd.img" "$G/initrd-testinit.img" \
	 "$B/bin/husk-agent-static" "$B/bin/husk-ipc"; do
	[ -e "$f" ] || { echo "guest.sh: $f missing (make guest); skipped"; exit 0; }
done

size() { stat -c %s "$1"; }
printf '%-34s %12s\n' "what" "bytes"
printf '%-34s %12d\n' "initrd.img (agent + modules)" "$(size "$G/initrd.img")"
printf '%-34s %12d\n' "initrd-testinit.img" "$(size "$G/initrd-testinit.img")"
printf '%-34s %12d\n' "husk-agent-static" "$(size "$B/bin/husk-agent-static")"
echo

# The agent's resident memory after start and a ping, measured on the
# host (same static binary, host mode): the guest has no ps.
d=$(mktemp -d /tmp/husk-bench.XXXXXX)
chmod 700 "$d"
mkdir -p "$d/shared"
"$B/bin/husk-agent-static" --channel "unix:$d/agent.sock" \
	--shared-dir "$d/shared" 2>"$d/agent.log" &
apid=$!
for _ in $(seq 1 200); do [ -S "$d/agent.sock" ] && break; sleep 0.01; done
"$B/bin/husk-ipc" --timeout 10 "$d/agent.sock" ping >/dev/null
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$apid/status")
pss=$(awk '/^Pss:/ { print $2 }' "/proc/$apid/smaps_rollup" 2>/dev/null)
kill "$apid"; wait "$apid" 2>/dev/null
rm -rf "$d"
printf '%-34s %9s kB\n' "agent RSS after start (host mode)" "$rss"
printf '%-34s %9s kB\n' "agent PSS after start (host mode)" "${pss:-?}"
echo

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
agent=() plain=()
for ((i = 0; i < RUNS; i++)); do
	t=$(guest/boot-test --initrd "$G/initrd-testinit.img" 2>/dev/null) &&
		plain+=("$t")
	t=$(guest/boot-test --initrd "$G/initrd.img" --ping 2>/dev/null) &&
		agent+=("$t")
done
a=$(printf '%s\n' "${agent[@]}" | median)
p=$(printf '%s\n' "${plain[@]}" | median)
printf '%-44s %8s\n' "boot, QEMU start to (median of $RUNS, TCG)" "seconds"
printf '%-44s %8s\n' "first byte from a trivial init" "$p"
printf '%-44s %8s\n' "husk-agent answering ping" "$a"
awk -v a="$a" -v p="$p" 'BEGIN { if (p > 0) printf "%-44s %8.2f\n",
    "ratio agent/plain", a / p }'
