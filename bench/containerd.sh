#!/usr/bin/env bash
# containerd end to end, in one run through a private containerd
# (tests/bats/lib/shimv2.sh) and a busybox --rootfs:
# - `ctr run --rm` of `true` through husk's own shim v2
#   (io.containerd.husk.v2, containerd-shim-husk-v2), through
#   containerd's runc v2 shim running husk (--runc-binary), and through
#   the runc v2 shim with runc;
# - the PSS of the shim process while it serves an idle pod (one
#   container that sleeps), husk's shim v2 next to the runc v2 shim
#   serving the same container with husk; and of the whole pod.
set -u
export BUILD=${BUILD:-build}
export HUSK_SRC=$PWD
RUNS=${BENCH_RUNS:-3}

skip() { echo "containerd.sh: $*; skipped"; exit 0; }
source tests/bats/lib/shimv2.sh
engines_skip_unless_ready
shimv2_skip_unless_ready || skip "no containerd-shim-husk-v2 built"
shimv2_setup
trap 'engines_teardown; rm -rf "$EN"' EXIT
shimv2_start_containerd || { echo "containerd.sh: containerd did not start"; exit 1; }

now() { date +%s.%N; }
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The ctr arguments that pick each way of running a container.
runtime_args() {
	case $1 in
	husk-shimv2) echo --runtime io.containerd.husk.v2 ;;
	runc-shim+husk) echo --runtime io.containerd.runc.v2 \
		--runc-binary "$HUSK_RUNTIME" --runc-root "$EN/runc-root" ;;
	runc) echo --runtime io.containerd.runc.v2 ;;
	esac
}

n=0
run_one() {	# way -> seconds, or nothing on failure
	local t0 t1 id
	n=$((n + 1))
	id=b$n
	t0=$(now)
	# shellcheck disable=SC2046
	timeout 300 "$CTR_BIN" -a "$EN/ctd.sock" -n "$SHIMV2_NS" run --rm \
		$(runtime_args "$1") --rootfs "$EN/rootfs" "$id" /bin/true \
		</dev/null >"$EN/last.$1" 2>&1 || return 1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

ways=(husk-shimv2 runc-shim+husk runc)
declare -A times
for ((i = 0; i < RUNS; i++)); do
	for w in "${ways[@]}"; do
		t=$(run_one "$w") && times[$w]+="$t "
	done
done
med() { printf '%s\n' ${times[$1]:-} | median; }
h=$(med husk-shimv2)
printf '%-46s %8s %8s\n' "ctr run --rm true, median of $RUNS (TCG here)" "seconds" "ratio"
ratio() { awk -v a="$h" -v b="$1" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "-" }'; }
for w in "${ways[@]}"; do
	if [ -z "${times[$w]:-}" ]; then
		printf '%-46s %8s\n' "$w" "failed: $(tail -n 1 "$EN/last.$w" 2>/dev/null)"
		continue
	fi
	printf '%-46s %8s %8s\n' "$w" "$(med "$w")" "$(ratio "$(med "$w")")"
done
echo "(ratio: husk-shimv2's time over the other's)"
echo

# An idle pod: one container (the pod's sandbox, by its CRI annotations)
# that sleeps; the shim serving it measured once it runs.
pss_kb() {
	awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}
idle_pss() {	# way id -> "pss-kB pid", or nothing
	local pid pss
	# shellcheck disable=SC2046
	timeout 300 "$CTR_BIN" -a "$EN/ctd.sock" -n "$SHIMV2_NS" run -d \
		$(runtime_args "$1") \
		--annotation io.kubernetes.cri.container-type=sandbox \
		--annotation "io.kubernetes.cri.sandbox-id=$2" \
		--rootfs "$EN/rootfs" "$2" /bin/sleep 100000 \
		</dev/null >"$EN/last.$1" 2>&1 || return 1
	wait_task "$2" RUNNING 120 2>>"$EN/last.$1" || return 1
	pid=$(shim_pid_of "$2")
	[ -n "$pid" ] && pss=$(pss_kb "$pid")
	# Every process of the pod: all that name $EN/ but containerd.
	local p v all=0
	for p in $(en_procs); do
		v=$(pss_kb "$p")
		all=$((all + ${v:-0}))
	done
	ctrc task kill -s SIGKILL "$2" >/dev/null 2>&1
	wait_task "$2" STOPPED 120 2>/dev/null
	timeout 120 "$CTR_BIN" -a "$EN/ctd.sock" -n "$SHIMV2_NS" task delete \
		"$2" >/dev/null 2>&1
	ctrc container rm "$2" >/dev/null 2>&1
	[ -n "${pss:-}" ] || return 1
	echo "$pss $all"
}
printf '%-46s %8s %10s\n' "an idle pod (one container), PSS in KiB" "shim" "whole pod"
for w in husk-shimv2 runc-shim+husk; do
	n=$((n + 1))
	if p=$(idle_pss "$w" "idle$n"); then
		printf '%-46s %8s %10s\n' "$w" $p
	else
		printf '%-46s %8s\n' "$w" "failed: $(tail -n 1 "$EN/last.$w" 2>/dev/null)"
	fi
done
echo "(shim: the shim process alone; whole pod: the shim, husk's helpers,"
echo " QEMU and virtiofsd)"
