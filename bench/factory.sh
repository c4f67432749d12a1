#!/usr/bin/env bash
# VM templates (docs/factory.md): `husk run true` booted cold against
# cloned from the template, interleaved run by run; then the host
# memory (PSS) of 5 idle sandboxes started cold against 5 started from
# the template, per sandbox and in all, and what the template itself
# holds in RAM (its tmpfs: pages no clone has mapped are in nobody's
# PSS).  husk's kernel of the build ($B/guest).
#
#   BENCH_RUNS   runs per row (5)
#   BENCH_IDLE   idle sandboxes per kind (5)
set -u
B=${BUILD:-build}
RUNS=${BENCH_RUNS:-5}
IDLE=${BENCH_IDLE:-5}
HUSK=$PWD/$B/bin/husk
[ -x "$HUSK" ] || { echo "factory.sh: build first (make all); skipped"; exit 0; }
[ -f "$B/guest/initrd.img" ] || { echo "factory.sh: make guest first; skipped"; exit 0; }

source tests/bats/lib/rootfs.sh
d=$(mktemp -d /tmp/husk-fbench.XXXXXX)
cleanup() {
	for id in $("$HUSK" --root "$d/root" list -q 2>/dev/null); do
		"$HUSK" --root "$d/root" delete --force "$id" >/dev/null 2>&1
	done
	"$HUSK" --root "$d/root" --config "$d/tmpl.conf" factory destroy
	rm -rf "$d"
}
trap cleanup EXIT
mkdir -p "$d/bundle"
make_rootfs "$d/bundle/rootfs"
"$HUSK" spec --bundle "$d/bundle"
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"true"/' "$d/bundle/config.json"
# cold: the default configuration (virtio-fs); cold-9p: the clones'
# share transport, booted; tmpl: clones.
printf '' >"$d/cold.conf"
printf '[hypervisor]\nshared_fs = virtio-9p\n' >"$d/cold-9p.conf"
printf '[hypervisor]\nshared_fs = virtio-9p\n[factory]\ntemplate = true\ntemplate_path = %s/t/template\n' \
	"$d" >"$d/tmpl.conf"
kinds=(cold cold-9p tmpl)
hk() { local k=$1; shift; "$HUSK" --root "$d/root" --config "$d/$k.conf" "$@"; }

now() { date +%s.%N; }
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
t0=$(now)
hk tmpl factory init >/dev/null || { echo "factory init failed"; exit 1; }
tinit=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')

declare -A times
for ((i = 0; i < RUNS; i++)); do
	for k in "${kinds[@]}"; do
		t0=$(now)
		(cd "$d/bundle" && hk "$k" run "$k-$i" </dev/null >/dev/null 2>&1) ||
			continue
		times[$k]+="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }') "
	done
done
med() { printf '%s\n' ${times[$1]:-} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }
row() { printf '%-52s %9s %8s\n' "$@"; }
c=$(med cold)
row "husk run true, median of $RUNS (TCG here)" seconds "ratio"
row "cold boot (virtio-fs, the default)" "${c:-failed}" 1.00
row "cold boot (virtio-9p)" "$(med cold-9p)" "$(ratio "$(med cold-9p)" "$c")"
row "from the template (virtio-9p)" "$(med tmpl)" "$(ratio "$(med tmpl)" "$c")"
row "husk factory init (the template's boot and save)" "$tinit" ""
echo

sed -i 's/"true"$/"sleep", "100000"/' "$d/bundle/config.json"
procs=(qemu-system virtiofsd husk-hypervisor husk-proxy husk-shim)
declare -A pss
for k in cold tmpl; do
	for ((i = 0; i < IDLE; i++)); do
		(cd "$d/bundle" && hk "$k" run --detach "idle-$k-$i" \
			</dev/null >/dev/null 2>&1) || echo "[$k] idle sandbox $i failed"
	done
	# Let the guests settle after the containers' start.
	sleep 3
	for ((i = 0; i < IDLE; i++)); do
		for pat in "${procs[@]}"; do
			for pid in $(pgrep -f "$pat.*$d/root/idle-$k-$i/"); do
				kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
				[ -n "$kb" ] || continue
				pss[$k-$pat]=$(( ${pss[$k-$pat]:-0} + kb ))
				pss[$k-total]=$(( ${pss[$k-total]:-0} + kb ))
			done
		done
	done
	[ "$k" = tmpl ] &&
		pss[tmpl-tmpfs]=$(( $(du -sk "$d/t/template/memory" | cut -f1) ))
	for ((i = 0; i < IDLE; i++)); do
		hk "$k" delete --force "idle-$k-$i" >/dev/null 2>&1
	done
done
printf '%-28s %12s %12s %12s %12s\n' "PSS kB, $IDLE idle sandboxes" \
	"cold total" "per sandbox" "tmpl total" "per sandbox"
for pat in "${procs[@]}" total; do
	printf '%-28s %12s %12s %12s %12s\n' "$pat" "${pss[cold-$pat]:--}" \
		"$(( ${pss[cold-$pat]:-0} / IDLE ))" "${pss[tmpl-$pat]:--}" \
		"$(( ${pss[tmpl-$pat]:-0} / IDLE ))"
done
printf '%-28s %12s %12s %12s %12s\n' "the template's RAM file" - - \
	"${pss[tmpl-tmpfs]:--}" ""
printf '%-28s %12s %12s %12s %12s\n' "total with the template" \
	"${pss[cold-total]:--}" "$(( ${pss[cold-total]:-0} / IDLE ))" \
	"$(( ${pss[tmpl-total]:-0} + ${pss[tmpl-tmpfs]:-0} ))" \
	"$(( (${pss[tmpl-total]:-0} + ${pss[tmpl-tmpfs]:-0}) / IDLE ))"
