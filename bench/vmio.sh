#!/usr/bin/env bash
# A container's stdout in a real VM: `husk run` of a container writing
# BENCH_VMIO_MB MiB (default 256) of zeros to stdout, in MiB/s from the
# first byte to the end, next to the same bytes written by the guest's
# test init straight to the virtio-serial port (husk.teststream) and
# read on the host without husk: what the channel itself carries under
# TCG; and, for scale, the same bytes through a pipe inside the guest
# (`dd | cat`, timed by the guest's clock): a container's stdout is a
# pipe to the agent, and a TCG guest moves bytes through a pipe several
# times slower than it writes them to the port.  Interleaved, median of
# BENCH_RUNS (3); the same guest kernel.
set -u
cd "$(dirname "$0")/.." || exit 111
B=${BUILD:-build}
MB=${BENCH_VMIO_MB:-256}
RUNS=${BENCH_RUNS:-3}
HUSK=$PWD/$B/bin/husk
RATE=$PWD/$B/bench/byterate
G=$B/guest
for f in "$HUSK" "$RATE" "$G/vmlinux" "$G/initrd.img" "$G/initrd-testinit.img"; do
	[ -e "$f" ] || { echo "# vmio: $f missing (make all bench guest), skipped"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "# vmio: needs root, skipped"; exit 0; }
source tests/bats/lib/rootfs.sh

d=$(mktemp -d /tmp/husk-vmio.XXXXXX)
trap 'for id in $("$HUSK" --root "$d/root" list -q 2>/dev/null); do
	"$HUSK" --root "$d/root" delete --force "$id" >/dev/null 2>&1; done
	rm -rf "$d"' EXIT
mkdir -p "$d/bundle"
make_rootfs "$d/bundle/rootfs"
"$HUSK" spec --bundle "$d/bundle"
sed -i 's/"terminal": true/"terminal": false/' "$d/bundle/config.json"
cp -a "$d/bundle" "$d/pipe"
DD="dd if=/dev/zero bs=64k count=$((MB * 16)) 2>/dev/null"
sed -i "s|\"sh\"\$|\"sh\", \"-c\", \"$DD\"|" "$d/bundle/config.json"
sed -i "s|\"sh\"\$|\"sh\", \"-c\", \"read a _ </proc/uptime; $DD \| cat >/dev/null; read b _ </proc/uptime; echo \$a \$b\"|" \
	"$d/pipe/config.json"
conf=(--root "$d/root")
[ -z "${HUSK_CONFIG:-}" ] && [ -f "$G/vmlinux" ] && {
	printf '[hypervisor]\nkernel = "%s"\ninitrd = "%s"\n' \
		"$PWD/$G/vmlinux" "$PWD/$G/initrd.img" >"$d/husk.conf"
	export HUSK_CONFIG=$d/husk.conf
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f",
	    NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# "bytes seconds MiB/s" lines: the rate when all the bytes came.
rate_of() { awk -v want="$1" '$1 >= want { print $3 }'; }

want=$((MB << 20))
husk_rates=() raw_rates=() pipe_rates=()
for ((i = 0; i < RUNS; i++)); do
	mkfifo "$d/chan"
	# the channel carries READY and a newline first
	"$RATE" $((want + 6)) <"$d/chan" >"$d/raw.rate" &
	r=$!
	guest/boot-test --initrd "$G/initrd-testinit.img" \
		--append "husk.teststream=$MB" --out "$d/chan" --timeout 300 \
		>"$d/boot.log" 2>&1 || cat "$d/boot.log" >&2
	wait "$r"
	rm -f "$d/chan"
	raw_rates+=("$(rate_of "$want" <"$d/raw.rate")")
	(cd "$d/bundle" && "$HUSK" "${conf[@]}" run "v$i" </dev/null |
		"$RATE" >"$d/husk.rate")
	husk_rates+=("$(rate_of "$want" <"$d/husk.rate")")
	"$HUSK" "${conf[@]}" delete --force "v$i" >/dev/null 2>&1
	pipe_rates+=("$(cd "$d/pipe" && "$HUSK" "${conf[@]}" run "p$i" </dev/null |
		awk -v mb="$MB" '$2 > $1 { printf "%.1f\n", mb / ($2 - $1) }')")
	"$HUSK" "${conf[@]}" delete --force "p$i" >/dev/null 2>&1
done
h=$(printf '%s\n' "${husk_rates[@]}" | median)
w=$(printf '%s\n' "${raw_rates[@]}" | median)
p=$(printf '%s\n' "${pipe_rates[@]}" | median)
printf '%-52s %10s\n' "VM stdout, $MB MiB, median of $RUNS (TCG)" "MiB/s"
printf '%-52s %10s\n' "guest init writing the virtio-serial port, no husk" "${w:-failed}"
printf '%-52s %10s\n' "husk run: container stdout via agent, proxy, shim" "${h:-failed}"
printf '%-52s %10s\n' "in the guest: dd | cat, a pipe (guest clock)" "${p:-failed}"
awk -v h="$h" -v w="$w" -v p="$p" 'BEGIN { if (h > 0 && w > 0)
    printf "%-52s %10.2f\n", "ratio husk/port", h / w
    if (h > 0 && p > 0)
    printf "%-52s %10.2f\n", "ratio husk/guest pipe", h / p }'
