#!/usr/bin/env bash
# File I/O in the guest over the share, virtio-9p against virtio-fs
# (docs/share.md, "virtio-9p"): a container reads a BENCH_9P_MB MiB
# (64) file of its root file system, writes as much to a bind volume,
# and walks a tree of 2000 small files (ls -lR: a lookup and a getattr
# each), with the guest's page cache dropped before each, timed by the
# guest's clock; median of BENCH_RUNS (3) in one sandbox per row.
# virtio-fs as husk runs it (virtiofsd, cache=auto), then 9p with the
# agent's mount options changed through the kernel command line
# (husk.9p_msize=, husk.9p_cache=): msize 8192 (Kata 1.x's default),
# 131072 and 512000 with cache=mmap, and 512000 with cache=none and
# cache=loose.  Ratios are to virtio-fs in the same run.  Writes are
# timed to the last write(2): with cache=loose part of them may still
# sit in the guest's page cache.  Then, per transport: `husk run` of
# `true` (seconds, median of BENCH_RUNS) and the PSS of an idle
# sandbox's QEMU and virtiofsd 2 s after its start.  BENCH_9P_ROWS="0 4 3" runs only those
# rows, in that order (0 is virtio-fs, the ratios' base).  Row 6 runs
# the default 9p row in a clone of a VM template (docs/factory.md; its
# first run makes the template, which is destroyed at the end).
set -u
cd "$(dirname "$0")/.." || exit 111
B=${BUILD:-build}
MB=${BENCH_9P_MB:-64}
RUNS=${BENCH_RUNS:-3}
HUSK=$PWD/$B/bin/husk
G=$B/guest
for f in "$HUSK" "$G/vmlinux" "$G/initrd.img"; do
	[ -e "$f" ] || { echo "# share9p: $f missing (make all guest), skipped"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "# share9p: needs root, skipped"; exit 0; }
source tests/bats/lib/rootfs.sh

d=$(mktemp -d /tmp/husk-9pbench.XXXXXX)
trap 'for id in $("$HUSK" --root "$d/root" list -q 2>/dev/null); do
	"$HUSK" --root "$d/root" delete --force "$id" >/dev/null 2>&1; done
	[ ! -f "$d/tmpl.conf" ] || "$HUSK" --root "$d/root" --config \
		"$d/tmpl.conf" factory destroy >/dev/null 2>&1
	rm -rf "$d"' EXIT
mkdir -p "$d/bundle" "$d/vol"
make_rootfs "$d/bundle/rootfs"
ln -sf busybox "$d/bundle/rootfs/bin/dd"
ln -sf busybox "$d/bundle/rootfs/bin/sync"
mkdir -p "$d/bundle/rootfs/data"
dd if=/dev/urandom of="$d/bundle/rootfs/data/big" bs=1M count="$MB" 2>/dev/null
for i in $(seq 40); do
	mkdir -p "$d/bundle/rootfs/data/tree/d$i"
	for j in $(seq 50); do
		head -c 1024 /dev/zero >"$d/bundle/rootfs/data/tree/d$i/f$j"
	done
done
# One line per run: read, write and walk, each as "start end" seconds.
cat >"$d/bundle/rootfs/bench.sh" <<EOF
#!/bin/sh
drop() { echo 3 >/proc/sys/vm/drop_caches; }
for i in \$(seq $RUNS); do
	rm -f /vol/w
	drop
	read a _ </proc/uptime; cat /data/big >/dev/null; read b _ </proc/uptime
	read c _ </proc/uptime
	dd if=/dev/zero of=/vol/w bs=1M count=$MB 2>/dev/null
	read e _ </proc/uptime
	drop
	read f _ </proc/uptime; ls -lR /data/tree >/dev/null; read g _ </proc/uptime
	echo "RUN \$a \$b \$c \$e \$f \$g"
done
EOF
chmod 755 "$d/bundle/rootfs/bench.sh"
"$HUSK" spec --bundle "$d/bundle"
caps='["CAP_SYS_ADMIN","CAP_KILL","CAP_AUDIT_WRITE","CAP_NET_BIND_SERVICE"]'
jq --argjson c "$caps" --arg v "$d/vol" '
    .process.terminal = false | .process.args = ["/bench.sh"]
    | .process.capabilities = {bounding: $c, effective: $c, permitted: $c}
    | .linux.readonlyPaths -= ["/proc/sys"]
    | .mounts += [{destination: "/vol", type: "bind", source: $v,
		   options: ["rbind", "rw"]}]' \
	"$d/bundle/config.json" >"$d/config.json"
mv "$d/config.json" "$d/bundle/config.json"

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# row NAME SHARED_FS KERNEL_PARAMS [TEMPLATE]: "read write walk"
# (MiB/s, MiB/s, files/s), medians, or "- - -".  TEMPLATE: the
# sandbox is a clone of a template (made by the first such row).
row() {
	local id=$2$RANDOM out conf=$d/husk.conf
	printf '[hypervisor]\nkernel = "%s"\ninitrd = "%s"\nshared_fs = %s\nkernel_params = "%s"\nmax_vcpus = 1\n' \
		"$PWD/$G/vmlinux" "$PWD/$G/initrd.img" "$2" "$3" >"$conf"
	if [ -n "${4:-}" ]; then
		conf=$d/tmpl.conf
		{ cat "$d/husk.conf"; printf '[factory]\ntemplate = true\ntemplate_path = %s/t/template\n' "$d"; } >"$conf"
	fi
	out=$(cd "$d/bundle" && "$HUSK" --root "$d/root" --config "$conf" \
		run "$id" </dev/null 2>&1)
	"$HUSK" --root "$d/root" delete --force "$id" >/dev/null 2>&1
	if ! grep -q '^RUN ' <<<"$out"; then
		echo "# share9p: $1: $out" >&2
		echo "- - -"
		return
	fi
	local r w k
	r=$(awk -v mb="$MB" '/^RUN / && $3 > $2 { print mb / ($3 - $2) }' <<<"$out" | median)
	w=$(awk -v mb="$MB" '/^RUN / && $5 > $4 { print mb / ($5 - $4) }' <<<"$out" | median)
	k=$(awk '/^RUN / && $7 > $6 { print 2040 / ($7 - $6) }' <<<"$out" | median)
	echo "${r:--} ${w:--} ${k:--}"
}

names=("virtio-fs (virtiofsd, cache=auto)"
	"9p msize=8192 cache=mmap"
	"9p msize=131072 cache=mmap"
	"9p msize=512000 cache=mmap (default)"
	"9p msize=512000 cache=none"
	"9p msize=512000 cache=loose"
	"9p (default) in a clone of a template")
fs=(virtio-fs virtio-9p virtio-9p virtio-9p virtio-9p virtio-9p virtio-9p)
tmpl=("" "" "" "" "" "" yes)
params=("" "husk.9p_msize=8192 husk.9p_cache=mmap"
	"husk.9p_msize=131072 husk.9p_cache=mmap"
	"husk.9p_msize=512000 husk.9p_cache=mmap"
	"husk.9p_msize=512000 husk.9p_cache=none"
	"husk.9p_msize=512000 husk.9p_cache=loose" "")
rows=(${BENCH_9P_ROWS:-${!names[@]}})
results=()
for i in "${rows[@]}"; do
	results[$i]=$(row "${names[$i]}" "${fs[$i]}" "${params[$i]}" "${tmpl[$i]}")
done

printf '%-40s %9s %9s %9s %7s %7s\n' \
	"share I/O in the guest, TCG, median of $RUNS" "read" "write" "walk" \
	"read" "walk"
printf '%-40s %9s %9s %9s %7s %7s\n' \
	"($MB MiB file; 2000 small files)" "MiB/s" "MiB/s" "files/s" "/vfs" \
	"/vfs"
read -r r0 _ k0 <<<"${results[0]:-- - -}"
for i in "${rows[@]}"; do
	read -r r w k <<<"${results[$i]}"
	awk -v n="${names[$i]}" -v r="$r" -v w="$w" -v k="$k" -v r0="$r0" \
	    -v k0="$k0" 'BEGIN {
		rr = (r + 0 > 0 && r0 + 0 > 0) ? sprintf("%.2f", r / r0) : "-"
		kr = (k + 0 > 0 && k0 + 0 > 0) ? sprintf("%.2f", k / k0) : "-"
		printf "%-40s %9s %9s %9s %7s %7s\n", n, r, w, k, rr, kr }'
done

echo
# Start-up and an idle sandbox's memory, per transport.
cp "$d/bundle/config.json" "$d/bench.json"
printf '%-40s %12s %12s %12s %12s\n' "per sandbox, TCG" "run true s" \
	"QEMU PSS kB" "virtiofsd kB" "total kB"
for f in virtio-fs virtio-9p; do
	printf '[hypervisor]\nkernel = "%s"\ninitrd = "%s"\nshared_fs = %s\nmax_vcpus = 1\n' \
		"$PWD/$G/vmlinux" "$PWD/$G/initrd.img" "$f" >"$d/husk.conf"
	jq '.process.args = ["true"]' "$d/bench.json" >"$d/bundle/config.json"
	ts=()
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s.%N)
		(cd "$d/bundle" && "$HUSK" --root "$d/root" --config "$d/husk.conf" \
			run "t$f$i" </dev/null >/dev/null 2>&1) &&
			ts+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')")
		"$HUSK" --root "$d/root" delete --force "t$f$i" >/dev/null 2>&1
	done
	t=$(printf '%s\n' "${ts[@]}" | median)
	jq '.process.args = ["sleep", "100000"]' "$d/bench.json" >"$d/bundle/config.json"
	q=- v=-
	if (cd "$d/bundle" && "$HUSK" --root "$d/root" --config "$d/husk.conf" \
		run -d "idle-$f" </dev/null >/dev/null 2>&1); then
		sleep 2
		q=0 v=0
		for pid in $(pgrep -f "qemu-system.*$d/root/idle-$f/"); do
			q=$((q + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
		done
		for pid in $(pgrep -f "virtiofsd.*$d/root/idle-$f/"); do
			v=$((v + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
		done
	fi
	"$HUSK" --root "$d/root" delete --force "idle-$f" >/dev/null 2>&1
	printf '%-40s %12s %12s %12s %12s\n' "$f" "${t:--}" "$q" "$v" \
		"$([ "$q" = - ] && echo - || echo $((q + v)))"
done
