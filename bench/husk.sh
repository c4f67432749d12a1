#!/usr/bin/env bash
# husk end to end, per guest kernel (Debian's and husk's own, whichever
# are built): the bare boot of the sandbox's VM (QEMU started directly
# with the driver's command line for husk's configuration, virtiofsd
# included, to the agent's ping answer) next to `husk run` of `true`
# with the same kernel, the kernels interleaved run by run; runc and
# crun running the same bundle; then the host memory (PSS) of one idle
# sandbox per kernel, split by process.  `husk run true` from the VM
# cache (husk-cache, [factory] cache = 1) with the last kernel, each run
# once a VM is ready, against runc.
#
#   BENCH_RUNS      runs per row (3)
#   BENCH_KERNELS   "NAME=VMLINUX,INITRD ..." instead of the build's
#                   $B/guest/{debian,husk}/ (make guest-debian
#                   guest-husk), or $B/guest/ when neither is there
set -u
B=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
HUSK=$PWD/$B/bin/husk
HVB=$PWD/$B/bench/hv_bench
[ -x "$HUSK" ] && [ -x "$HVB" ] ||
	{ echo "husk.sh: build first (make all bench); skipped"; exit 0; }

# name kernel initrd, one kernel a line.
kernels() {
	local k n=0 spec
	if [ -n "${BENCH_KERNELS:-}" ]; then
		for spec in $BENCH_KERNELS; do
			k=${spec#*=}
			echo "${spec%%=*} ${k%%,*} ${k#*,}"
		done
		return
	fi
	for k in debian husk; do
		[ -f "$B/guest/$k/vmlinux" ] && [ -f "$B/guest/$k/initrd.img" ] ||
			continue
		echo "$k $PWD/$B/guest/$k/vmlinux $PWD/$B/guest/$k/initrd.img"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || [ ! -f "$B/guest/initrd.img" ] || {
		k=default
		grep -q -- -cloud- "$B/guest/kver" 2>/dev/null && k=debian
		echo "$k $PWD/$B/guest/vmlinux $PWD/$B/guest/initrd.img"
	}
	[ "$n" -eq 2 ] || echo "(make guest-debian guest-husk: both kernels" \
		"side by side)" >&2
}
mapfile -t KERNELS < <(kernels)
[ "${#KERNELS[@]}" -gt 0 ] ||
	{ echo "husk.sh: no guest kernel built (make guest); skipped"; exit 0; }

# The namespace runtimes to compare with, from Debian's packages.
if ! command -v crun >/dev/null || ! command -v runc >/dev/null; then
	[ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq crun runc >/dev/null 2>&1
fi

source tests/bats/lib/rootfs.sh
d=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'for id in $("$HUSK" --root "$d/root" list -q 2>/dev/null); do
	"$HUSK" --root "$d/root" delete --force "$id"; done
	"$HUSK" --root "$d/croot" factory destroy 2>/dev/null; rm -rf "$d"' EXIT
mkdir -p "$d/bundle"
make_rootfs "$d/bundle/rootfs"
"$HUSK" spec --bundle "$d/bundle"
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"true"/' "$d/bundle/config.json"

# One husk.conf per kernel: the effective configuration (husk.conf or
# the built-in defaults) with that kernel.
base_conf=${HUSK_CONFIG:-}
for kl in "${KERNELS[@]}"; do
	read -r name kernel initrd <<<"$kl"
	{
		[ -z "$base_conf" ] || grep -v '^\s*\(kernel\|initrd\)\s*=' "$base_conf"
		[ -n "$base_conf" ] && grep -q '^\[hypervisor\]' "$base_conf" ||
			echo "[hypervisor]"
	} >"$d/$name.conf"
	# The keys go right under [hypervisor].
	sed -i "0,/^\[hypervisor\]/s||[hypervisor]\nkernel = \"$kernel\"\ninitrd = \"$initrd\"|" \
		"$d/$name.conf"
done
husk_k() { local n=$1; shift; HUSK_CONFIG=$d/$n.conf "$HUSK" --root "$d/root" "$@"; }
env_key() {	# name key -> the value `husk env` prints
	husk_k "$1" env | sed -n "s/^$2 = \"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" | head -n 1
}
bare_args() {	# name -> hv_bench boot options for its configuration
	local n=$1
	printf '%s\n' --kernel "$(env_key "$n" kernel)" \
		--initrd "$(env_key "$n" initrd)" \
		--machine "$(env_key "$n" machine_type)" \
		--vcpus "$(env_key "$n" vcpus)" \
		--max-vcpus "$(env_key "$n" max_vcpus)" \
		--memory "$(env_key "$n" memory_mb)" \
		--max-memory "$(env_key "$n" max_memory_mb)" \
		--slots "$(env_key "$n" memory_slots)" \
		--tcg-cache-mb "$(env_key "$n" tcg_cache_mb)" \
		--params "$(env_key "$n" kernel_params)"
}

now() { date +%s.%N; }
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
run_one() {	# command... -> seconds, or nothing on failure
	local t0 t1
	t0=$(now)
	(cd "$d/bundle" && "$@" </dev/null >/dev/null 2>&1) || return 1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

declare -A times
# Kernels interleaved run by run: the machine's load drifts, and the
# ratios compare kernels as well as runs.
for ((i = 0; i < RUNS; i++)); do
	for kl in "${KERNELS[@]}"; do
		read -r name _ <<<"$kl"
		mapfile -t args < <(bare_args "$name")
		t=$("$HVB" boot "${args[@]}" --runs 1) &&
			times[bare-$name]+="$t "
		t=$(run_one husk_k "$name" run "$name-$i") &&
			times[run-$name]+="$t "
	done
done
for ((i = 0; i < RUNS; i++)); do
	for rt in crun runc; do
		command -v $rt >/dev/null || continue
		t=$(run_one $rt --root "$d/$rt" run "n$i") && times[$rt]+="$t "
	done
done
# From the cache: one VM kept, each run taking it once it is ready (the
# replacement boots between runs, not during one).
read -r cname _ <<<"${KERNELS[-1]}"
{ cat "$d/$cname.conf"; printf '[factory]\ncache = 1\n'; } >"$d/cache.conf"
husk_c() { HUSK_CONFIG=$d/cache.conf "$HUSK" --root "$d/croot" "$@"; }
cache_ready() {
	local i
	for i in $(seq 1 600); do
		husk_c factory status 2>/dev/null | grep -q '"ready": 1' &&
			return 0
		sleep 0.1
	done
	return 1
}
if husk_c factory init >/dev/null 2>&1; then
	for ((i = 0; i < RUNS; i++)); do
		cache_ready || break
		t=$(run_one husk_c run "c$i") && times[cache]+="$t "
	done
	husk_c factory destroy >/dev/null 2>&1
fi
med() { printf '%s\n' ${times[$1]:-} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }
row() { printf '%-50s %8s %8s\n' "$@"; }
row "start to exit, median of $RUNS (TCG here)" "seconds" "ratio"
first=
for kl in "${KERNELS[@]}"; do
	read -r name kernel _ <<<"$kl"
	v=$(med "bare-$name") h=$(med "run-$name")
	row "[$name] bare boot to the agent's ping answer" "${v:-failed}" \
		"$(ratio "$v" "${first:-$v}")"
	row "[$name] husk run true" "${h:-failed}" "$(ratio "$h" "$v")"
	first=${first:-$v}
done
for rt in crun runc; do
	if [ -z "${times[$rt]:-}" ]; then
		command -v $rt >/dev/null &&
			err=$(cd "$d/bundle" && $rt --root "$d/$rt" run x 2>&1 </dev/null | tail -n 1)
		row "$rt run true" "failed: ${err:-not installed}" ""
		continue
	fi
	row "$rt run true (namespaces only)" "$(med $rt)" ""
done
c=$(med cache)
row "[$cname] husk run true from the VM cache" "${c:-failed}" \
	"$(ratio "$c" "$(med runc)") of runc"
echo "(ratio: a bare boot over the first kernel's, husk run over the bare"
echo " boot of the same kernel; bare = QEMU with the driver's command line"
echo " for husk's configuration and virtiofsd, without the driver, proxy,"
echo " shim and container)"
echo

# One idle sandbox per kernel: PSS of each of its processes.
sed -i 's/"true"$/"sleep", "100000"/' "$d/bundle/config.json"
procs=(qemu-system virtiofsd husk-hypervisor husk-proxy husk-shim husk-netmon)
declare -A pss
names=()
for kl in "${KERNELS[@]}"; do
	read -r name _ <<<"$kl"
	names+=("$name")
	if ! (cd "$d/bundle" && husk_k "$name" run --detach "idle-$name" \
		</dev/null >/dev/null 2>&1); then
		echo "[$name] idle sandbox failed"
		continue
	fi
	# Let the guest settle after the container's start.
	sleep 2
	for pat in "${procs[@]}"; do
		for pid in $(pgrep -f "$pat.*$d/root/idle-$name/"); do
			kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
			[ -n "$kb" ] || continue
			pss[$name-$pat]=$(( ${pss[$name-$pat]:-0} + kb ))
			pss[$name-total]=$(( ${pss[$name-total]:-0} + kb ))
		done
	done
	husk_k "$name" delete --force "idle-$name" >/dev/null 2>&1
done
printf '%-20s' "idle sandbox PSS kB"
printf ' %10s' "${names[@]}"
echo
for pat in "${procs[@]}" total; do
	printf '%-20s' "$pat"
	for name in "${names[@]}"; do
		printf ' %10s' "${pss[$name-$pat]:--}"
	done
	echo
done
