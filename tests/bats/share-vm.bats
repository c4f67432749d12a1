#!/usr/bin/env bats
# The share against a hostile guest (docs/share.md, issue 11 items 1, 2,
# 5 and 6): a privileged container in a pod (CAP_SYS_ADMIN and
# CAP_SYS_PTRACE, no seccomp, the guest's PID namespace) reaches the
# agent's mount of the share, as guest root can, and tries to plant
# symlinks where the host builds, to write through read-only binds, to
# make setuid files and device nodes the host would honour, and to fill
# the share.  One pod VM serves every test; the containers that join it
# come and go.

load lib/husk.sh

setup_file() {
	local caps
	export ROOT=$(mktemp -d /tmp/husk-share.XXXXXX)/root
	export HV="$BATS_FILE_TMPDIR/host"
	export VICTIM=$(mktemp -d /tmp/husk-victim.XXXXXX)
	export POD="$BATS_FILE_TMPDIR/pod"
	export CONF="$BATS_FILE_TMPDIR/husk.conf"
	mkdir -p "$HV/rw" "$HV/ro"
	echo precious >"$VICTIM/marker"
	echo original >"$HV/ro/f"
	printf '[hypervisor]\nshare_size_mb = 2\nshare_inodes = 4096\n' >"$CONF"
	make_bundle "$POD" sleep 100000
	# /mnt2 is the top of the share as the guest kernel has it: the
	# agent's own virtio-fs mount, reached through PID 1's root as an
	# escaped container reaches it.  (A second `mount -t virtiofs husk`
	# may come back as one of the submounts virtiofsd announces, such
	# as the pod's rootfs, and then plants nothing where it means to.)
	ln -s /proc/1/root/run/husk/shared "$POD/rootfs/mnt2"
	set_annotations "$POD" '{"io.kubernetes.cri.container-type": "sandbox"}'
	# The hostile guest: what an escaped container has.
	escaped_pod "$POD" "$HV/rw" "$HV/ro" "$CONF" || return 1
	# The guest's root reaches the top of the share.
	"$HUSK_BIN" --root "$ROOT" exec pod test -d /mnt2/pod/rootfs
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")" "$VICTIM"
}

# The index of a mount of the pod by destination (its mounts/N).
pod_mount() {
	jq --arg d "$1" '[.mounts[].destination] | index($d)' "$POD/config.json"
}

# join DIR ID [SOURCE [OPTIONS-JSON]]: a bundle that joins the pod, with
# one bind volume at /vol as its 8th mount (mounts/7) when SOURCE is
# given; then create it.
join() {
	local dir=$1 id=$2 src=${3:-} opts=${4:-'["rbind"]'}
	make_bundle "$dir" sleep 100000
	set_annotations "$dir" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod"}'
	if [ -n "$src" ]; then
		jq --arg s "$src" --argjson o "$opts" \
			'.mounts += [{destination: "/vol", type: "bind", source: $s, options: $o}]' \
			"$dir/config.json" >"$dir/config.json.new"
		mv "$dir/config.json.new" "$dir/config.json"
		[ "$(jq '.mounts | length' "$dir/config.json")" -eq 8 ] || return 1
	fi
	husk_detached create --bundle "$dir" "$id"
}

# The victim directory is as the test made it, and nothing is mounted on
# it or below it.
victim_intact() {
	[ "$(ls -A "$VICTIM")" = marker ]
	[ "$(cat "$VICTIM/marker")" = precious ]
	if grep -q " $VICTIM[ /]" /proc/self/mountinfo; then
		echo "a mount on the victim:" >&2
		grep " $VICTIM" /proc/self/mountinfo >&2
		return 1
	fi
}

@test "the share: a tmpfs of its own with the configured bounds, read-only to the guest" {
	local stage="$ROOT/pod/share-stage" view="$ROOT/pod/shared"
	run grep " $stage " /proc/self/mountinfo
	[ "$status" -eq 0 ]
	[[ "$output" == *" - tmpfs husk-share "*"size=2048k,nr_inodes=4096"* ]]
	[[ "$output" == *" shared:"* ]]
	run grep " $view " /proc/self/mountinfo
	[ "$status" -eq 0 ]
	[[ "$output" == *" ro,nosuid,nodev,noexec,"* ]]
	# virtiofsd serves the read-only view, and its namespace gets the
	# binds made later with their attributes (a slave of the stage).
	pid=$(pgrep -f "virtiofsd.*source=$view" | head -n 1)
	[ -n "$pid" ]
	run awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo"
	[[ "$output" == ro,nosuid,nodev,noexec* ]]
	n=$(pod_mount /volro)
	run awk -v m="/pod/mounts/$n" '$5 == m { print $6 }' "/proc/$pid/mountinfo"
	[[ "$output" == ro,nosuid,nodev* ]]
}

@test "a symlink planted for a container yet to join is refused; the host path stays untouched" {
	# The issue's reproduction: ctrB's 8th mount would have been bound
	# onto the victim through ctrB/mounts/7.
	run husk exec pod sh -c "mkdir -p /mnt2/ctrB/mounts && ln -s $VICTIM /mnt2/ctrB/mounts/7"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run husk exec pod ln -s "$VICTIM" /mnt2/ctrB
	[ "$status" -ne 0 ]
	run join "$BATS_TEST_TMPDIR/b" ctrB "$HV/rw"
	[ "$status" -eq 0 ]
	husk start ctrB
	wait_status ctrB running
	# The volume is where it belongs: in the share, not on the victim.
	echo from-host >"$HV/rw/seen"
	run husk exec ctrB cat /vol/seen
	[ "$output" = from-host ]
	grep -q " $ROOT/pod/share-stage/ctrB/mounts/7 .*nosuid,nodev" /proc/self/mountinfo
	victim_intact
	# The guest cannot rename or replace what the host built either.
	run husk exec pod sh -c "mv /mnt2/ctrB/mounts /mnt2/ctrB/m2 || rm -rf /mnt2/ctrB/mounts/7"
	[ "$status" -ne 0 ]
	run husk delete --force ctrB
	[ "$status" -eq 0 ]
	[ ! -e "$ROOT/pod/share-stage/ctrB" ]
	run grep " $ROOT/pod/share[^ ]*/ctrB" /proc/self/mountinfo
	[ "$status" -ne 0 ]
	# Nor in virtiofsd's namespace: the unmount propagated there.
	pid=$(pgrep -f "virtiofsd.*source=$ROOT/pod/shared" | head -n 1)
	[ -n "$pid" ]
	run grep " /ctrB/" "/proc/$pid/mountinfo"
	[ "$status" -ne 0 ]
	victim_intact
	rm -f "$HV/rw/seen"
}

@test "planting races many container creations and never lands" {
	local out="$BATS_TEST_TMPDIR/race.out" k
	# The guest polls for ids and tries to get there first.  (Once the
	# volume is bound, ln makes its link inside it, which is the
	# volume's business: only a link at mounts/7 itself is a plant.)
	husk exec pod sh -c "rm -f /tmp/stop; n=0; s=0
		while [ ! -e /tmp/stop ] && [ \$n -lt 200000 ]; do
			for k in 1 2 3 4 5 6; do
				mkdir /mnt2/race\$k 2>/dev/null && s=\$((s+1))
				mkdir /mnt2/race\$k/mounts 2>/dev/null && s=\$((s+1))
				ln -s $VICTIM /mnt2/race\$k/mounts/7 2>/dev/null &&
					[ -L /mnt2/race\$k/mounts/7 ] && s=\$((s+1))
				ln -s $VICTIM /mnt2/race\$k/rootfs 2>/dev/null &&
					[ -L /mnt2/race\$k/rootfs ] && s=\$((s+1))
			done
			n=\$((n+1))
		done
		echo tries=\$n planted=\$s" >"$out" 2>&1 </dev/null &
	for k in 1 2 3 4 5 6; do
		run join "$BATS_TEST_TMPDIR/r$k" "race$k" "$HV/rw"
		[ "$status" -eq 0 ]
		grep -q " $ROOT/pod/share-stage/race$k/mounts/7 " /proc/self/mountinfo
		victim_intact
	done
	for k in 1 2 3 4 5 6; do
		run husk delete --force "race$k"
		[ "$status" -eq 0 ]
	done
	husk exec pod touch /tmp/stop
	wait
	cat "$out"
	grep -q "^tries=[1-9][0-9]* planted=0$" "$out"
	victim_intact
	run grep " $ROOT/pod/share[^ ]*/race" /proc/self/mountinfo
	[ "$status" -ne 0 ]
	rm -f "$HV/rw/$(basename "$VICTIM")"
}

@test "a read-only volume stays read-only through the share" {
	n=$(pod_mount /volro)
	run husk exec pod sh -c 'echo x > /volro/f'
	[ "$status" -ne 0 ]
	run husk exec pod sh -c "echo x > /mnt2/pod/mounts/$n/f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run husk exec pod sh -c "echo x > /mnt2/pod/mounts/$n/new"
	[ "$status" -ne 0 ]
	# Remounting the guest's own mount read-write changes nothing:
	# the host's bind is read-only.
	run husk exec pod sh -c "mount -o remount,rw /mnt2; echo x > /mnt2/pod/mounts/$n/f"
	[ "$status" -ne 0 ]
	[ "$(cat "$HV/ro/f")" = original ]
	[ "$(ls "$HV/ro")" = f ]
	grep -q " $ROOT/pod/shared/pod/mounts/$n ro,nosuid,nodev" /proc/self/mountinfo
}

@test "root.readonly is read-only on the host; such a container still starts" {
	local b="$BATS_TEST_TMPDIR/roc"
	run join "$b" roc
	[ "$status" -eq 0 ]
	[ "$(jq .root.readonly "$b/config.json")" = true ]
	husk start roc
	wait_status roc running
	run husk exec roc sh -c 'echo hi'
	[ "$output" = hi ]
	run husk exec roc touch /x
	[ "$status" -ne 0 ]
	# Guest root through the share, the agent out of the way.
	run husk exec pod sh -c 'echo x >> /mnt2/roc/rootfs/etc/passwd'
	[ "$status" -ne 0 ]
	run husk exec pod sh -c 'mkdir /mnt2/roc/rootfs/planted'
	[ "$status" -ne 0 ]
	[ ! -e "$b/rootfs/planted" ]
	[ "$(tail -n 1 "$b/rootfs/etc/passwd")" != x ]
	grep -q " $ROOT/pod/share-stage/roc/rootfs ro,nosuid,nodev" /proc/self/mountinfo
	run husk delete --force roc
	[ "$status" -eq 0 ]
}

@test "a setuid file and a device node made in a writable volume are inert through the share" {
	n=$(pod_mount /volrw)
	run husk exec pod sh -c "cp /bin/busybox /mnt2/pod/mounts/$n/suid &&
		chmod 4755 /mnt2/pod/mounts/$n/suid &&
		mknod /mnt2/pod/mounts/$n/zero c 1 5"
	echo "guest: status $status: $output"
	# Whatever virtiofsd let through, the host's binds of the volume
	# are nosuid,nodev in every view: the stage, the served view and
	# virtiofsd's namespace.
	grep -q " $ROOT/pod/share-stage/pod/mounts/$n rw,nosuid,nodev" /proc/self/mountinfo
	grep -q " $ROOT/pod/shared/pod/mounts/$n rw,nosuid,nodev" /proc/self/mountinfo
	pid=$(pgrep -f "virtiofsd.*source=$ROOT/pod/shared" | head -n 1)
	run awk -v m="/pod/mounts/$n" '$5 == m { print $6 }' "/proc/$pid/mountinfo"
	[[ "$output" == rw,nosuid,nodev* ]]
	if [ -e "$HV/rw/zero" ]; then
		# A device node through a nodev mount does not open.
		run head -c 1 "$ROOT/pod/shared/pod/mounts/$n/zero"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Permission denied"* ]]
		echo "note: the node exists at its source: $(ls -l "$HV/rw/zero")"
	fi
	if [ -u "$HV/rw/suid" ]; then
		echo "note: setuid at its source: $(ls -l "$HV/rw/suid")"
	fi
	rm -f "$HV/rw/zero" "$HV/rw/suid"
}

@test "filling the share fails: its top is read-only and bounded, the host's disk untouched" {
	local stage="$ROOT/pod/share-stage"
	run husk exec pod sh -c 'dd if=/dev/zero of=/mnt2/fill bs=1M count=64'
	[ "$status" -ne 0 ]
	run husk exec pod sh -c 'dd if=/dev/zero of=/mnt2/pod/fill bs=1M count=64'
	[ "$status" -ne 0 ]
	run husk exec pod sh -c 'for i in $(seq 1 5000); do mkdir /mnt2/pod/d$i || exit 1; done'
	[ "$status" -ne 0 ]
	[ ! -e "$stage/fill" ]
	[ ! -e "$stage/pod/fill" ]
	[ ! -e "$stage/pod/d1" ]
	# The tmpfs holds directories and mount points only.
	used=$(df -k --output=used "$stage" | tail -n 1)
	[ "$used" -lt 64 ]
	# Nothing landed anywhere on the host beside it either.
	[ -z "$(find "$(dirname "$ROOT")" -xdev -name fill)" ]
}

@test "delete --force of the pod leaves no mount, and the victim as it was" {
	run join "$BATS_TEST_TMPDIR/last" last "$HV/rw"
	[ "$status" -eq 0 ]
	run husk delete --force pod
	[ "$status" -eq 0 ]
	assert_gone pod
	[ ! -e "$ROOT/last" ]
	run grep " $ROOT" /proc/self/mountinfo
	[ "$status" -ne 0 ]
	victim_intact
	[ "$(cat "$HV/ro/f")" = original ]
}

@test "share_size_mb and share_inodes: bad values are refused by name" {
	printf '[hypervisor]\nshare_size_mb = 0\n' >"$BATS_TEST_TMPDIR/bad.conf"
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/bad.conf" env
	[ "$status" -ne 0 ]
	[[ "$output" == *"share_size_mb"* ]]
	printf '[hypervisor]\nshare_inodes = 10\n' >"$BATS_TEST_TMPDIR/bad.conf"
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/bad.conf" env
	[ "$status" -ne 0 ]
	[[ "$output" == *"share_inodes"* ]]
	run "$HUSK_BIN" --root "$ROOT" env
	[[ "$output" == *"share_size_mb = 4"* ]]
	[[ "$output" == *"share_inodes = 16384"* ]]
}
