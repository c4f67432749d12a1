#!/usr/bin/env bash
# husk end to end: `husk run` of `true`, next to the bare VM boot of the
# same kernel and initramfs (QEMU start to the agent's ping answer) and
# next to crun and runc running the same bundle, in one run; then the
# host memory (PSS) of one idle sandbox, split by process.
set -u
B=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
HUSK=$PWD/$B/bin/husk
[ -x "$HUSK" ] && [ -e "$B/guest/initrd.img" ] ||
	{ echo "husk.sh: build and make guest first; skipped"; exit 0; }

# The namespace runtimes to compare with, from Debian's packages.
if ! command -v crun >/dev/null || ! command -v runc >/dev/null; then
	[ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq crun runc >/dev/null 2>&1
fi

source tests/bats/lib/rootfs.sh
d=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'for id in $("$HUSK" --root "$d/root" list -q 2>/dev/null); do
	"$HUSK" --root "$d/root" delete --force "$id"; done; rm -rf "$d"' EXIT
mkdir -p "$d/bundle"
make_rootfs "$d/bundle/rootfs"
"$HUSK" spec --bundle "$d/bundle"
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"true"/' "$d/bundle/config.json"

now() { date +%s.%N; }
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
run_one() {	# runtime root id -> seconds, or nothing on failure
	local t0 t1
	t0=$(now)
	(cd "$d/bundle" && "$1" --root "$2" run "$3" </dev/null >/dev/null 2>&1) ||
		return 1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

declare -A times
for ((i = 0; i < RUNS; i++)); do
	t=$(run_one "$HUSK" "$d/root" "b$i") && times[husk]+="$t "
	t=$(guest/boot-test --initrd "$B/guest/initrd.img" --ping 2>/dev/null) &&
		times[vm]+="$t "
	for rt in crun runc; do
		command -v $rt >/dev/null || continue
		t=$(run_one $rt "$d/$rt" "n$i") && times[$rt]+="$t "
	done
done
med() { printf '%s\n' ${times[$1]:-} | median; }
h=$(med husk) v=$(med vm)
printf '%-46s %8s %8s\n' "start to exit, median of $RUNS (TCG here)" "seconds" "ratio"
printf '%-46s %8s %8s\n' "husk run true" "$h" "1.00"
ratio() { awk -v a="$h" -v b="$1" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
printf '%-46s %8s %8s\n' "bare VM boot to agent ping (same image)" "$v" "$(ratio "$v")"
for rt in crun runc; do
	if [ -z "${times[$rt]:-}" ]; then
		command -v $rt >/dev/null &&
			err=$(cd "$d/bundle" && $rt --root "$d/$rt" run x 2>&1 </dev/null | tail -n 1)
		printf '%-46s %8s\n' "$rt run true" "failed: ${err:-not installed}"
		continue
	fi
	r=$(med $rt)
	printf '%-46s %8s %8s\n' "$rt run true (namespaces only)" "$r" "$(ratio "$r")"
done
echo "(ratio: husk's time over the other's)"
echo

# One idle sandbox: PSS of each of its processes.
sed -i 's/"true"$/"sleep", "100000"/' "$d/bundle/config.json"
(cd "$d/bundle" && "$HUSK" --root "$d/root" run --detach idle \
	</dev/null >/dev/null 2>&1) || { echo "idle sandbox failed"; exit 1; }
sleep 2
printf '%-20s %8s %10s\n' "idle sandbox" "pid" "PSS kB"
total=0
for pat in husk-hypervisor qemu-system virtiofsd husk-proxy husk-shim; do
	for pid in $(pgrep -f "$pat.*$d/root/idle/"); do
		pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		[ -n "$pss" ] || continue
		printf '%-20s %8s %10s\n' "$pat" "$pid" "$pss"
		total=$((total + pss))
	done
done
printf '%-20s %8s %10s\n' "total" "" "$total"
