#!/usr/bin/env bats
# VM templates (docs/factory.md, issue 16 items 1, 4 and 5): husk
# factory init/status/destroy, containers in clones (rootfs, a bind
# volume, the network), what every clone must not share with another
# (its RNG's output, a stale clock), a clone whose QEMU dies, a sandbox
# whose configuration differs (cold), a damaged template (refused and
# made again).  Each template made is a VM boot; the file makes three.

load lib/husk.sh

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-factory.XXXXXX)/root
	export TP="$(dirname "$ROOT")/f/template"
	export CONF="$BATS_FILE_TMPDIR/husk.conf"
	export B="$BATS_FILE_TMPDIR/bundle"
	export NS=hkfac$$ HN=hkfh$$
	printf '[hypervisor]\nshared_fs = virtio-9p\n[factory]\ntemplate = true\ntemplate_path = %s\n' \
		"$TP" >"$CONF"
	make_bundle "$B" sh /probe
	# What a clone must not share with another: RNG output, a clock.
	printf 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"\necho\ndate +%%s\n' \
		>"$B/rootfs/probe"
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	"$HUSK_BIN" --root "$ROOT" --config "$CONF" factory destroy || true
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$HN" 2>/dev/null || true
	rm -rf "$(dirname "$ROOT")"
}

hk() {
	"$HUSK_BIN" --root "$ROOT" --config "$CONF" "$@"
}

status_field() {
	hk factory status | jq -r "$1"
}

@test "factory: init makes a template on a tmpfs of its own, status shows it, destroy leaves nothing" {
	run hk factory init
	[ "$status" -eq 0 ]
	[[ "$output" == "template made at $TP" ]]
	grep -q " $TP rw,nosuid,nodev,noexec.* - tmpfs husk-template " /proc/self/mountinfo
	[ "$(stat -c %a:%U "$TP")" = 700:root ]
	[ "$(status_field .template.usable)" = true ]
	[ "$(status_field .template.manifest.config.share)" = virtio-9p ]
	[ "$(status_field .template.manifest.files.kernel.path)" = "$(hk env | sed -n 's/^kernel = "\(.*\)"/\1/p')" ]
	[ "$(status_field .template.state.size)" -gt 10000 ]
	[ "$(status_field .template.memory.size)" -eq $((256 << 20)) ]
	# No QEMU or driver stays behind a template.
	run pgrep -f "$TP/"
	[ "$status" -eq 1 ]
	# A second init finds it.
	run hk factory init
	[ "$status" -eq 0 ]
	[[ "$output" == "template present at $TP" ]]
	run hk factory destroy
	[ "$status" -eq 0 ]
	run grep " $TP " /proc/self/mountinfo
	[ "$status" -eq 1 ]
	[ ! -e "$TP" ]
	[ ! -e "$TP.lock" ]
	[ ! -e "$(dirname "$TP")" ]
	[ "$(status_field .template)" = null ]
}

@test "factory: init refuses a configuration without templates, and sub-commands are checked" {
	run "$HUSK_BIN" --root "$ROOT" factory init
	[ "$status" -ne 0 ]
	[[ "$output" == *"[factory] template is false"* ]]
	run hk factory bogus
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown subcommand"* ]]
	run hk check
	[[ "$output" == *"factory"*"VM templates at $TP"* ]]
	printf '[factory]\ntemplate = true\n' >"$BATS_TEST_TMPDIR/c"
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/c" check
	[[ "$output" == *"template needs [hypervisor] shared_fs = virtio-9p"* ]]
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/c" factory init
	[ "$status" -ne 0 ]
	[[ "$output" == *"shared_fs is virtio-fs, which cannot serve a clone"* ]]
	printf '[factory]\ntemplate_path = rel\n' >"$BATS_TEST_TMPDIR/c"
	run "$HUSK_BIN" --root "$ROOT" --config "$BATS_TEST_TMPDIR/c" factory status
	[ "$status" -ne 0 ]
	[[ "$output" == *"template_path: 'rel' is not an absolute path"* ]]
}

@test "factory: the first sandbox makes the template; clones get their own RNG output and the host's time" {
	local a b t0 t1
	t0=$(date +%s)
	run hk --debug run --bundle "$B" c1 </dev/null
	t1=$(date +%s)
	[ "$status" -eq 0 ]
	[[ "$output" == *"no VM template yet: making it"* ]]
	[[ "$output" == *"VM cloned from the template"* ]]
	a=$(echo "$output" | grep -E '^[0-9a-f]{32}$')
	# The clock: the guest's seconds within a second of the host's.
	g=$(echo "$output" | grep -E '^[0-9]{10}$')
	[ "$g" -ge $((t0 - 1)) ] || { echo "guest $g, host $t0" >&2; false; }
	[ "$g" -le $((t1 + 1)) ] || { echo "guest $g, host $t1" >&2; false; }
	t0=$(date +%s)
	run hk --debug run --bundle "$B" c2 </dev/null
	t1=$(date +%s)
	[ "$status" -eq 0 ]
	[[ "$output" != *"making it"* ]]
	[[ "$output" == *"VM cloned from the template"* ]]
	b=$(echo "$output" | grep -E '^[0-9a-f]{32}$')
	g=$(echo "$output" | grep -E '^[0-9]{10}$')
	[ "$g" -ge $((t0 - 1)) ] || { echo "guest $g, host $t0" >&2; false; }
	[ "$g" -le $((t1 + 1)) ] || { echo "guest $g, host $t1" >&2; false; }
	[ -n "$a" ]
	[ -n "$b" ]
	[ "$a" != "$b" ] || { echo "two clones read $a" >&2; false; }
	assert_gone c1
	assert_gone c2
}

@test "factory: a container in a clone has its rootfs, a bind volume and the network" {
	local vol="$BATS_TEST_TMPDIR/vol" nb="$BATS_TEST_TMPDIR/nb"
	mkdir -p "$vol"
	echo from-the-host >"$vol/f"
	ip netns add "$NS"
	ip netns add "$HN"
	ip link add name "v$$" netns "$NS" type veth peer name hp0 netns "$HN"
	ip -n "$NS" link set "v$$" name eth0
	ip -n "$NS" addr add 10.204.0.2/24 dev eth0
	ip -n "$HN" addr add 10.204.0.1/24 dev hp0
	ip -n "$HN" link set hp0 up
	ip -n "$NS" link set eth0 up
	make_bundle "$nb" sh /probe
	cat >"$nb/rootfs/probe" <<-'EOF'
	cat /vol/f
	echo in-the-guest >/vol/g
	test -x /bin/sh && echo rootfs-ok
	ping -c 1 -W 10 10.204.0.1 >/dev/null && echo ping-ok
	EOF
	jq --arg v "$vol" --arg p "/run/netns/$NS" '
	    .mounts += [{destination: "/vol", type: "bind", source: $v, options: ["rbind", "rw"]}]
	    | (.linux.namespaces[] | select(.type == "network")).path = $p
	    | .process.capabilities |= (with_entries(.value += ["CAP_NET_RAW"]) | del(.ambient))
	    | .root.readonly = false' "$nb/config.json" >"$nb/c.json"
	mv "$nb/c.json" "$nb/config.json"
	run hk --debug run --bundle "$nb" c3 </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"VM cloned from the template"* ]]
	[[ "$output" == *from-the-host* ]]
	[[ "$output" == *rootfs-ok* ]]
	[[ "$output" == *ping-ok* ]]
	[ "$(cat "$vol/g")" = in-the-guest ]
	assert_gone c3
}

@test "factory: a clone whose QEMU is killed leaves nothing after delete --force" {
	local sb="$BATS_TEST_TMPDIR/sleep" qemu kb
	make_bundle "$sb" sleep 100000
	# Sized above the template's 256 MiB: a DIMM plugged in.
	set_memory_limit "$sb" $((256 << 20))
	run husk_detached --config "$CONF" run -d --bundle "$sb" c4
	[ "$status" -eq 0 ]
	jq -e '.clone.finished == true and .clone.vcpus == 1 and .clone.memory_mb == 256' "$ROOT/c4/sandbox.json"
	kb=$(guest_mem_kb c4)
	[ "$kb" -gt $((400 << 10)) ] || { echo "guest MemTotal $kb kB" >&2; false; }
	qemu=$(pgrep -f "guest=$ROOT/c4/vm")
	[ -n "$qemu" ]
	# A clone's QEMU: jailed as any, the RAM file its one writable
	# bind, private (share=off) on the command line.
	[ "$(awk '/^Uid:/ { print $2 }' "/proc/$qemu/status")" -ge 2140000000 ]
	grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$qemu/status"
	grep -q ' /boot/mem rw,nosuid,nodev,noexec' "/proc/$qemu/mountinfo"
	tr '\0' ' ' <"/proc/$qemu/cmdline" | grep -q 'mem-path=/boot/mem,share=off'
	tr '\0' ' ' <"/proc/$qemu/cmdline" | grep -q -- '-incoming defer'
	run grep -c free-page-reporting "/proc/$qemu/cmdline"
	[ "$output" = 0 ]
	# Only a template's driver saves a template.
	run "${BUILD:-build}/bin/husk-ipc" "$ROOT/c4/hv.sock" save_template \
		"{\"path\": \"$BATS_TEST_TMPDIR/st\"}"
	[ "$status" -ne 0 ]
	[[ "$output" == *"save_template: not a template VM"* ]]
	[ ! -e "$BATS_TEST_TMPDIR/st" ]
	kill -9 $qemu
	run hk delete --force c4
	[ "$status" -eq 0 ]
	assert_gone c4
	# The template is untouched by its clone's end.
	[ "$(status_field .template.usable)" = true ]
}

@test "factory: a sandbox whose configuration differs boots cold and says why" {
	local c2="$BATS_TEST_TMPDIR/cold.conf"
	sed 's/^\[hypervisor\]$/[hypervisor]\nkernel_params = husk.cold=1/' "$CONF" >"$c2"
	run "$HUSK_BIN" --root "$ROOT" --config "$c2" --debug run --bundle "$B" c5 </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"booting cold: the VM template does not fit this sandbox: [hypervisor] kernel_params: the template has "*", this sandbox husk.cold=1"* ]]
	[[ "$output" != *"cloned from the template"* ]]
	assert_gone c5
	# virtio-fs cannot serve a clone.
	sed 's/virtio-9p/virtio-fs/' "$CONF" >"$c2"
	run "$HUSK_BIN" --root "$ROOT" --config "$c2" --debug run --bundle "$B" c6 </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"booting cold: [hypervisor] shared_fs is virtio-fs"* ]]
	assert_gone c6
	# The template is the same one.
	[ "$(status_field .template.usable)" = true ]
}

@test "factory: a truncated template is refused, made again, and never booted" {
	local made
	made=$(status_field .template.manifest.created)
	truncate -s 1000 "$TP/state"
	run hk factory status
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r .template.usable)" = false ]
	[[ "$(echo "$output" | jq -r .template.reason)" == *"state has 1000 bytes"*truncated* ]]
	run hk --debug run --bundle "$B" c7 </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"the VM template is refused ($TP/state has 1000 bytes"* ]]
	[[ "$output" == *"making it again"* ]]
	[[ "$output" == *"VM cloned from the template"* ]]
	[ "$(status_field .template.usable)" = true ]
	[ "$(status_field .template.state.size)" -gt 10000 ]
	# The right size, a byte changed: refused too.
	printf 'x' | dd of="$TP/state" bs=1 seek=1000 conv=notrunc status=none
	[ "$(status_field .template.usable)" = false ]
	[[ "$(status_field .template.reason)" == *"state: its content is not what the manifest says (damaged)"* ]]
	# A template without its memory file: refused by status too.
	rm "$TP/memory"
	[ "$(status_field .template.usable)" = false ]
	assert_gone c7
	run hk factory destroy
	[ "$status" -eq 0 ]
	[ ! -e "$TP" ]
}
