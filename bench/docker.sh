#!/usr/bin/env bash
# docker end to end: `docker run --rm` of `true` with husk as the
# runtime next to the same with runc, in one run, through a private
# dockerd and containerd (tests/bats/lib/engines.sh) and an image
# imported from busybox-static.
set -u
export BUILD=${BUILD:-build}
export HUSK_SRC=$PWD
RUNS=${BENCH_RUNS:-3}

skip() { echo "docker.sh: $*; skipped"; exit 0; }
source tests/bats/lib/engines.sh
engines_skip_unless_ready docker
engines_setup
trap 'engines_teardown; rm -rf "$EN"' EXIT
engines_start_containerd || { echo "docker.sh: containerd did not start"; exit 1; }
engines_start_dockerd || { echo "docker.sh: dockerd did not start"; exit 1; }
engines_import_image husk-bench:1 || { echo "docker.sh: docker import failed"; exit 1; }

now() { date +%s.%N; }
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
run_one() {	# runtime -> seconds, or nothing on failure
	local t0 t1
	t0=$(now)
	timeout 300 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run --rm \
		--runtime "$1" --network none husk-bench:1 true \
		</dev/null >"$EN/last.$1" 2>&1 || return 1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

declare -A times
for ((i = 0; i < RUNS; i++)); do
	for rt in husk runc; do
		t=$(run_one $rt) && times[$rt]+="$t "
	done
done
med() { printf '%s\n' ${times[$1]:-} | median; }
h=$(med husk)
printf '%-46s %8s %8s\n' "docker run --rm true, median of $RUNS (TCG here)" "seconds" "ratio"
ratio() { awk -v a="$h" -v b="$1" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
for rt in husk runc; do
	if [ -z "${times[$rt]:-}" ]; then
		printf '%-46s %8s\n' "--runtime $rt" \
			"failed: $(tail -n 1 "$EN/last.$rt" 2>/dev/null)"
		continue
	fi
	printf '%-46s %8s %8s\n' "--runtime $rt" "$(med $rt)" "$(ratio "$(med $rt)")"
done
echo "(ratio: husk's time over the other's)"
