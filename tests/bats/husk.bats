#!/usr/bin/env bats
# husk end to end, driven as engines drive runc: every VM here boots
# under TCG on this machine, so each test shares what it can.

load lib/husk.sh

bats_require_minimum_version 1.5.0

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-e2e.XXXXXX)/root
	export B="$BATS_FILE_TMPDIR/bundle"
	make_bundle "$B" sleep 100000
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")"
}

@test "create, start, state, kill, delete with a pid file" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sleep 100000
	# The shim goes into the spec's cgroups path; the VM grows by the
	# container's memory limit.
	set_cgroups_path "$b" "/husk-test/c1"
	set_memory_limit "$b" 134217728
	run husk_detached create --bundle "$b" --pid-file "$BATS_TEST_TMPDIR/pid" c1
	[ "$status" -eq 0 ]
	pid=$(cat "$BATS_TEST_TMPDIR/pid")
	[ "$pid" -gt 0 ]
	kill -0 "$pid"
	run husk state c1
	[ "$status" -eq 0 ]
	[[ "$output" == *'"status": "created"'* ]]
	[[ "$output" == *"\"pid\": $pid"* ]]
	[[ "$output" == *"\"bundle\": \"$b\""* ]]
	for h in /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
		[ -d "$h" ] || continue
		grep -qx "$pid" "$h/husk-test/c1/cgroup.procs"
	done
	run husk start c1
	[ "$status" -eq 0 ]
	wait_status c1 running
	# 256 MiB configured + 128 MiB limit (the guest kernel keeps about
	# 100 MiB of a 256 MiB VM for itself).
	[ "$(guest_mem_kb c1)" -gt 250000 ]
	run husk start c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"running, not created"* ]]
	run husk delete c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"--force"* ]]
	run husk kill c1 KILL
	[ "$status" -eq 0 ]
	wait_status c1 stopped
	run husk state c1
	[[ "$output" == *'"pid": 0'* ]]
	run husk kill c1 TERM
	[ "$status" -eq 1 ]
	run husk delete c1
	[ "$status" -eq 0 ]
	assert_gone c1
	[ ! -e /sys/fs/cgroup/memory/husk-test/c1 ]
	[ ! -e /sys/fs/cgroup/memory/husk-test ]
	run husk delete c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"container c1 does not exist"* ]]
}

@test "run in the foreground: output, guest kernel, exit codes" {
	b="$BATS_TEST_TMPDIR/b"
	make_bundle "$b" sh -c 'uname -r; echo to-stderr >&2; exit 3'
	run --separate-stderr husk run --bundle "$b" r1
	[ "$status" -eq 3 ]
	[ "$output" != "$(uname -r)" ]
	# The guest kernel make guest built: husk's (6.1.N) or Debian's.
	[ "$output" = "$(cat "${BUILD:-build}/guest/kver")" ]
	[[ "$stderr" == *to-stderr* ]]
	assert_gone r1
	# A process killed by signal N: 128+N.  (The container's init is
	# PID 1 of its pid namespace and cannot be killed from inside.)
	make_bundle "$b" sleep 1000
	"$HUSK_BIN" --root "$ROOT" run --bundle "$b" r2 </dev/null \
		>"$BATS_TEST_TMPDIR/r2.out" 2>&1 &
	pid=$!
	wait_status r2 running
	husk kill r2 KILL
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 137 ]
	assert_gone r2
}

@test "run --detach, exec, ps, pause, resume, update, events, list" {
	run husk_detached run --detach --bundle "$B" --pid-file "$BATS_TEST_TMPDIR/pid" d1
	[ "$status" -eq 0 ]
	wait_status d1 running

	run husk exec d1 sh -c 'echo out; echo err >&2; exit 7'
	[ "$status" -eq 7 ]
	[[ "$output" == *out* && "$output" == *err* ]]

	run husk exec --env FOO=bar --cwd /tmp --user 65534:65534 d1 sh -c 'echo $FOO $(pwd) $(id -u):$(id -g)'
	[ "$status" -eq 0 ]
	[ "$output" = "bar /tmp 65534:65534" ]

	printf '{"args": ["sh", "-c", "echo from-process-json"], "cwd": "/", "env": ["PATH=/bin"]}' \
		> "$BATS_TEST_TMPDIR/process.json"
	run husk exec --process "$BATS_TEST_TMPDIR/process.json" d1
	[ "$status" -eq 0 ]
	[ "$output" = "from-process-json" ]

	run script -qec "$HUSK_BIN --root $ROOT exec --tty d1 sh -c 'test -t 0 && echo is-a-tty'" /dev/null
	[[ "$output" == *is-a-tty* ]]

	run husk_detached exec --detach --pid-file "$BATS_TEST_TMPDIR/epid" d1 sleep 300
	[ "$status" -eq 0 ]
	[ -s "$BATS_TEST_TMPDIR/epid" ]

	run husk ps d1
	[ "$status" -eq 0 ]
	[[ "$output" == *PID* && "$output" == *"sleep 100000"* && "$output" == *"sleep 300"* ]]
	run husk ps --format json d1
	[ "$status" -eq 0 ]
	# runc's form, host pids: the container's shim (engines look them
	# up on the host).
	[ "$output" = "[$(husk state d1 | jq .pid)]" ]

	run husk pause d1
	[ "$status" -eq 0 ]
	wait_status d1 paused
	run husk exec d1 true
	[ "$status" -eq 255 ]
	run husk resume d1
	[ "$status" -eq 0 ]
	wait_status d1 running

	# A memory limit the VM did not have room for is hot-plugged first
	# (a 128 MiB block), and given back when the limit goes.
	m0=$(guest_mem_kb d1)
	run husk update --memory 64M --pids-limit 50 d1
	[ "$status" -eq 0 ]
	# pids.max of the container's own cgroup in the guest.
	run husk exec d1 sh -c 'cat "/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/pids.max"'
	[ "$status" -eq 0 ]
	[ "$output" = 50 ]
	[ "$(guest_mem_kb d1)" -eq $((m0 + 131072)) ]
	run husk events --stats d1
	[ "$status" -eq 0 ]
	[[ "$output" == *'"type":"stats"'* && "$output" == *'"id":"d1"'* ]]
	[[ "$output" == *'"limit":67108864'* ]]
	run husk update --memory -1 d1
	[ "$status" -eq 0 ]
	[ "$(guest_mem_kb d1)" -eq "$m0" ]
	# Beyond the VM's maximum: refused, nothing changed.
	run husk update --memory 64G d1
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"max_memory_mb"* ]]
	[ "$(guest_mem_kb d1)" -eq "$m0" ]

	run husk list
	[[ "$output" == *"d1"*"running"* ]]
	run husk list --format json
	[[ "$output" == *'"id": "d1"'* || "$output" == *'"id":"d1"'* ]]
	run husk list --quiet
	[[ "$output" == *d1* ]]

	run husk delete --force d1
	[ "$status" -eq 0 ]
	assert_gone d1
}

@test "create --console-socket hands the terminal over, as runc does" {
	b="$BATS_TEST_TMPDIR/t" d=$(mktemp -d)
	make_bundle "$b" sh
	sed -i 's/"terminal": false/"terminal": true/' "$b/config.json"
	printf 'test -t 0 && echo is-a-tty; echo "name=$(tty)"; exit 3\n' |
		timeout 120 "$BUILD/tests/helpers/shim_recvtty" "$d/tty.sock" \
		>"$BATS_TEST_TMPDIR/tty.out" 2>/dev/null &
	rpid=$!
	for i in $(seq 1 100); do [ -S "$d/tty.sock" ] && break; sleep 0.05; done
	run husk_detached create --console-socket "$d/tty.sock" --bundle "$b" tt
	[ "$status" -eq 0 ]
	run husk start tt
	[ "$status" -eq 0 ]
	wait_status tt stopped
	wait "$rpid"
	grep -q "^is-a-tty" "$BATS_TEST_TMPDIR/tty.out"
	# The container's own devpts gave the pty, as with runc.
	grep -q "^name=/dev/pts/0" "$BATS_TEST_TMPDIR/tty.out"
	run husk delete tt
	[ "$status" -eq 0 ]
	assert_gone tt
	rm -rf "$d"
}

@test "[runtime] sandbox_cgroup_only: the driver, QEMU, virtiofsd and the proxy in the spec's host cgroup, the VM's memory charged there, the directories removed with it" {
	b="$BATS_TEST_TMPDIR/b" conf="$BATS_TEST_TMPDIR/sco.conf"
	make_bundle "$b" sleep 100000
	set_cgroups_path "$b" "/husk-test/sco1"
	printf '[runtime]\nsandbox_cgroup_only = true\n' >"$conf"
	run husk_detached --config "$conf" run --detach --bundle "$b" sco1
	echo "$output"
	[ "$status" -eq 0 ]
	wait_status sco1 running
	pids="$(jq -r '.hypervisor.pid, .proxy.pid' "$ROOT/sco1/sandbox.json")
$(pgrep -f "qemu-system.*$ROOT/sco1/")
$(pgrep -f "virtiofsd.*$ROOT/sco1/")"
	[ "$(wc -w <<<"$pids")" -ge 4 ]
	n=0
	for h in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/cpu; do
		[ -d "$h" ] || continue
		n=$((n + 1))
		for p in $pids; do
			grep -qx "$p" "$h/husk-test/sco1/cgroup.procs"
		done
	done
	[ "$n" -gt 0 ]
	# What docker stats reads there is the VM's: its guest RAM and
	# QEMU's own, tens of MB, not a shim's few hundred KB.
	if [ -f /sys/fs/cgroup/memory/husk-test/sco1/memory.usage_in_bytes ]; then
		[ "$(cat /sys/fs/cgroup/memory/husk-test/sco1/memory.usage_in_bytes)" -gt 50000000 ]
	fi
	[ "$(jq '.cgroups | length' "$ROOT/sco1/sandbox.json")" -gt 0 ]
	run husk delete --force sco1
	[ "$status" -eq 0 ]
	assert_gone sco1
	for h in /sys/fs/cgroup/*/; do
		[ ! -d "$h/husk-test/sco1" ]
	done
}

@test "two containers in one sandbox by CRI annotation" {
	s="$BATS_TEST_TMPDIR/s" c="$BATS_TEST_TMPDIR/c"
	make_bundle "$s" sleep 100000
	set_annotations "$s" '{"io.kubernetes.cri.container-type": "sandbox", "io.husk.config.hypervisor.memory_mb": "320"}'
	make_bundle "$c" sleep 100000
	set_annotations "$c" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod1"}'
	set_memory_limit "$c" 134217728
	run husk_detached run --detach --bundle "$s" pod1
	[ "$status" -eq 0 ]
	wait_status pod1 running
	# The annotation sized the VM: 320 MiB, not the configured 256.
	before=$(guest_mem_kb pod1)
	[ "$before" -gt 200000 ]
	run husk_detached run --detach --bundle "$c" app1
	[ "$status" -eq 0 ]
	wait_status app1 running
	# app1's limit was hot-plugged into the pod's VM.
	for i in $(seq 1 100); do
		[ "$(guest_mem_kb app1)" -gt $((before + 100000)) ] && break
		sleep 0.2
	done
	[ "$(guest_mem_kb app1)" -gt $((before + 100000)) ]
	# One VM for both.
	[ "$(pgrep -fc "qemu-system.*$ROOT/pod1/")" -eq 1 ]
	[ "$(pgrep -fc "qemu-system.*$ROOT/app1/")" -eq 0 ]
	run husk exec app1 sh -c 'echo in-app1'
	[ "$output" = "in-app1" ]
	run husk delete pod1
	[ "$status" -eq 1 ]
	run husk delete --force app1
	[ "$status" -eq 0 ]
	[ ! -e "$ROOT/app1" ]
	husk state pod1
	# app1's DIMM went back: the guest offlined it, QEMU took it.
	[ "$(guest_mem_kb pod1)" -eq "$before" ]
	"${BUILD:-build}/bin/husk-ipc" -t 10 "$ROOT/pod1/hv.sock" status '{}' >"$BATS_TEST_TMPDIR/hv.json"
	[ "$(jq -r .memory_mb "$BATS_TEST_TMPDIR/hv.json")" = 320 ]
	[ "$(jq '[.devices[] | select(.kind == "memory")] | length' "$BATS_TEST_TMPDIR/hv.json")" -eq 0 ]
	run husk delete --force pod1
	[ "$status" -eq 0 ]
	assert_gone pod1
}

@test "hooks of every kind get the state on stdin" {
	b="$BATS_TEST_TMPDIR/h" out="$BATS_TEST_TMPDIR/hooks"
	mkdir -p "$out"
	make_bundle "$b" sh -c 'exit 0'
	printf '#!/bin/sh\ncat > %s/$1\n' "$out" > "$BATS_TEST_TMPDIR/hook.sh"
	chmod +x "$BATS_TEST_TMPDIR/hook.sh"
	hooks=""
	for k in prestart createRuntime createContainer startContainer poststart poststop; do
		hooks="$hooks\"$k\": [{\"path\": \"$BATS_TEST_TMPDIR/hook.sh\", \"args\": [\"hook.sh\", \"$k\"], \"timeout\": 10}],"
	done
	sed -i "s|\"ociVersion\": \"1.0.2\",|\"ociVersion\": \"1.0.2\", \"hooks\": {${hooks%,}},|" "$b/config.json"
	run husk run --bundle "$b" hk
	[ "$status" -eq 0 ]
	for k in prestart createRuntime createContainer startContainer poststart poststop; do
		[ -s "$out/$k" ]
		grep -q '"id":"hk"' "$out/$k"
		grep -q "\"bundle\":\"$b\"" "$out/$k"
	done
	grep -q '"status":"creating"' "$out/prestart"
	grep -q '"status":"running"' "$out/poststart"
	grep -q '"status":"stopped"' "$out/poststop"
	assert_gone hk

	# A failing prestart hook fails the create and leaves nothing.
	printf '#!/bin/sh\necho hook-said-no >&2\nexit 4\n' > "$BATS_TEST_TMPDIR/fail.sh"
	chmod +x "$BATS_TEST_TMPDIR/fail.sh"
	make_bundle "$b" true
	sed -i "s|\"ociVersion\": \"1.0.2\",|\"ociVersion\": \"1.0.2\", \"hooks\": {\"prestart\": [{\"path\": \"$BATS_TEST_TMPDIR/fail.sh\"}]},|" "$b/config.json"
	run husk_detached create --bundle "$b" hk2
	[ "$status" -eq 1 ]
	[[ "$output" == *"hook prestart[0]"* && "$output" == *"exit status 4"* && "$output" == *hook-said-no* ]]
	assert_gone hk2
}

# kill -9 one component of a running sandbox, then delete --force.
kill_and_delete() {
	local id=$1 pattern=$2 pid
	run husk_detached run --detach --bundle "$B" "$id"
	[ "$status" -eq 0 ]
	wait_status "$id" running
	pid=$(pgrep -f "$pattern" | head -n 1)
	[ -n "$pid" ]
	kill -9 "$pid"
	run husk delete --force "$id"
	[ "$status" -eq 0 ]
	assert_gone "$id"
	run husk state "$id"
	[[ "$output" == *"does not exist"* ]]
}

@test "delete --force after kill -9 of the shim leaves nothing" {
	kill_and_delete k-shim "husk-shim.*$ROOT/k-shim/"
}

@test "delete --force after kill -9 of the proxy leaves nothing" {
	kill_and_delete k-proxy "husk-proxy.*$ROOT/k-proxy/"
}

@test "delete --force after kill -9 of the hypervisor driver leaves nothing" {
	kill_and_delete k-hv "husk-hypervisor.*$ROOT/k-hv/"
}

@test "delete --force after kill -9 of QEMU leaves nothing" {
	kill_and_delete k-qemu "qemu-system.*$ROOT/k-qemu/"
}

@test "delete --force after kill -9 of virtiofsd leaves nothing" {
	kill_and_delete k-vfs "virtiofsd.*$ROOT/k-vfs/"
}

@test "[proxy] user: the proxy runs as that user, unprivileged and confined" {
	export HUSK_CONFIG="$BATS_TEST_TMPDIR/husk.conf"
	printf '[proxy]\nuser = "65534:65534"\n' >"$HUSK_CONFIG"
	run husk_detached run --detach --bundle "$B" pu
	[ "$status" -eq 0 ]
	wait_status pu running
	pid=$(pgrep -f "husk-proxy.*$ROOT/pu/" | head -n 1)
	[ -n "$pid" ]
	grep -E '^(Uid|Gid|CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status
	grep -Eq '^Uid:\s+65534\s+65534\s+65534\s+65534$' /proc/$pid/status
	grep -Eq '^Gid:\s+65534\s+65534\s+65534\s+65534$' /proc/$pid/status
	grep -Eq '^CapEff:\s+0000000000000000$' /proc/$pid/status
	grep -Eq '^NoNewPrivs:\s+1$' /proc/$pid/status
	grep -Eq '^Seccomp:\s+2$' /proc/$pid/status
	# The CLI (root) and the shims still reach it, and it the agent.
	run husk exec pu sh -c 'echo through-the-proxy'
	[ "$status" -eq 0 ]
	[ "$output" = through-the-proxy ]
	run husk delete --force pu
	[ "$status" -eq 0 ]
	assert_gone pu
	printf '[proxy]\nuser = "husk-no-such-user"\n' >"$HUSK_CONFIG"
	run husk_detached run --detach --bundle "$B" pu2
	[ "$status" -ne 0 ]
	[[ "$output" == *"[proxy] user: no user \`husk-no-such-user\`"* ]]
	run husk delete --force pu2
	assert_gone pu2
}

@test "ten sandboxes created and deleted in parallel" {
	local i pids=()
	for i in $(seq 0 9); do
		"$HUSK_BIN" --root "$ROOT" run --detach --bundle "$B" "p$i" </dev/null \
			>"$BATS_TEST_TMPDIR/p$i.out" 2>&1 &
		pids+=($!)
	done
	for i in $(seq 0 9); do
		wait "${pids[$i]}" || { cat "$BATS_TEST_TMPDIR/p$i.out"; false; }
	done
	run husk list --quiet
	[ "$(echo "$output" | grep -c '^p[0-9]$')" -eq 10 ]
	pids=()
	for i in $(seq 0 9); do
		"$HUSK_BIN" --root "$ROOT" delete --force "p$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	for i in $(seq 0 9); do assert_gone "p$i"; done
}

@test "a --root and id longer than a socket path allows" {
	# containerd's ids are 64 characters; with a long root every
	# socket path of the sandbox is beyond sun_path's 108 bytes.
	local long="$BATS_TEST_TMPDIR/$(printf 'r%.0s' $(seq 1 60))"
	local id=$(printf 'a%.0s' $(seq 1 64))
	b="$BATS_TEST_TMPDIR/lb"
	make_bundle "$b" echo long-ok
	[ $(( ${#long} + ${#id} + 16 )) -gt 108 ]
	run timeout 180 "$HUSK_BIN" --root "$long" run --bundle "$b" "$id"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *long-ok* ]]
	[ ! -e "$long/$id" ]
	! pgrep -f "qemu-system.*$id"
}

@test "--root spelled two ways is one root: delete --force leaves nothing" {
	# runc's --root goes through filepath.Abs; husk's state records
	# paths below the root (the network namespace it made) that delete
	# checks against its own, so both must be spelled one way.
	local rt="$BATS_TEST_TMPDIR/rt" hb
	hb=$(realpath "$HUSK_BIN")
	b="$BATS_TEST_TMPDIR/b2"
	make_bundle "$b" sleep 100000
	mkdir -p "$BATS_TEST_TMPDIR/sub"
	(cd "$BATS_TEST_TMPDIR/sub" &&
		"$hb" --root "../rt/./" create --bundle "$b" sp \
			</dev/null >"$BATS_TEST_TMPDIR/create.out" 2>&1) ||
		{ cat "$BATS_TEST_TMPDIR/create.out"; false; }
	grep -q " $rt/sp/netns " /proc/self/mountinfo
	run "$HUSK_BIN" --root "$rt//" delete --force sp
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"left alone"* ]]
	run ! grep " $rt/" /proc/self/mountinfo
	[ ! -e "$rt/sp" ]
	run ! pgrep -af "$rt/sp/"
}

@test "a container root makes no setuid file or device node in a writable volume" {
	# The container has CAP_MKNOD and CAP_FSETID, so the guest kernel
	# lets both through; virtiofsd's filter on the host refuses them
	# (docs/hypervisor.md, "virtiofsd").
	b="$BATS_TEST_TMPDIR/b"
	vol="$BATS_TEST_TMPDIR/vol"
	mkdir -p "$vol"
	make_bundle "$b" sh -c 'echo x >/vol/f; busybox chmod u+s /vol/f; echo chmod=$?; busybox mknod /vol/null c 1 3; echo mknod=$?; busybox mknod /vol/fifo p; echo fifo=$?'
	caps='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_MKNOD","CAP_SETUID","CAP_SETGID"]'
	jq --arg v "$vol" --argjson c "$caps" '
		.process.capabilities.bounding = $c |
		.process.capabilities.effective = $c |
		.process.capabilities.permitted = $c |
		.mounts += [{destination: "/vol", type: "bind", source: $v,
			     options: ["rbind", "rw"]}]' "$b/config.json" >"$b/c.json"
	mv "$b/c.json" "$b/config.json"
	run husk run --bundle "$b" suid1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"chmod=1"* ]]
	[[ "$output" == *"mknod=1"* ]]
	[[ "$output" == *"fifo=0"* ]]
	ls -la "$vol"
	[ "$(cat "$vol/f")" = x ]
	[ ! -u "$vol/f" ]
	[ ! -g "$vol/f" ]
	[ ! -e "$vol/null" ]
	[ -p "$vol/fifo" ]
	assert_gone suid1
}

@test "QEMU runs as a uid of [hypervisor] qemu_uid_base's range, with nothing of root's" {
	printf '[hypervisor]\nqemu_uid_base = 2150000000\nqemu_uid_count = 4\n' \
		>"$BATS_TEST_TMPDIR/husk.conf"
	export HUSK_CONFIG=$BATS_TEST_TMPDIR/husk.conf
	run husk_detached run --detach --bundle "$B" q1
	echo "$output"
	[ "$status" -eq 0 ]
	wait_status q1 running
	qpid=$(awk '$1 == "qemu" { print $2 }' "$ROOT/q1/hypervisor.state")
	run grep -E '^(Uid|Cap[A-Za-z]+|NoNewPrivs|Seccomp):' "/proc/$qpid/status"
	echo "$output"
	[[ "$output" =~ Uid:[[:space:]]+215000000[0-3][[:space:]] ]]
	for set in Inh Prm Eff Bnd Amb; do
		[[ "$output" =~ Cap$set:[[:space:]]+0000000000000000 ]]
	done
	[[ "$output" =~ NoNewPrivs:[[:space:]]+1 ]]
	[[ "$output" =~ Seccomp:[[:space:]]+2 ]]
	# Neither the host's /run nor the sandbox's state is in its view.
	run grep -E " /run[ /]|$ROOT" "/proc/$qpid/mountinfo"
	[ "$status" -ne 0 ]
	# The kernel it loaded is paged out of it once it runs (10.7 MB
	# otherwise); a page another QEMU maps too would stay, and no
	# other sandbox of this file runs now.
	rss=$(awk '$NF == "/boot/vmlinux" { f = 1; next }
		   f && $1 == "Rss:" { print $2; exit }' "/proc/$qpid/smaps")
	echo "vmlinux resident in QEMU: ${rss:-none} kB"
	[ -n "$rss" ]
	[ "$rss" -lt 1024 ]
	run husk delete --force q1
	[ "$status" -eq 0 ]
	assert_gone q1
}

@test "run --keep forwards its signals; kill: TERM by default, by number, --all" {
	b="$BATS_TEST_TMPDIR/sig"
	# Each handler leaves a mark in /dev/shm (the container's tmpfs).
	# (No quotes: make_bundle writes the arguments into JSON as they are.)
	make_bundle "$b" sh -c 'u1() { touch /dev/shm/init-USR1; }; te() { touch /dev/shm/init-TERM; }; u2() { touch /dev/shm/init-USR2; }; trap u1 USR1; trap te TERM; trap u2 USR2; touch /dev/shm/ready; while :; do sleep 0.1; done'
	"$HUSK_BIN" --root "$ROOT" run --keep --bundle "$b" sg </dev/null \
		>"$BATS_TEST_TMPDIR/sg.out" 2>&1 &
	pid=$!
	marked() { husk exec sg test -e "/dev/shm/$1"; }
	wait_for marked ready
	# A signal to husk run reaches the container's process.
	kill -USR1 "$pid"
	wait_for marked init-USR1
	# kill with no signal sends TERM.
	run husk kill sg
	[ "$status" -eq 0 ]
	wait_for marked init-TERM
	# Without --all only the container's process gets it; with it,
	# every process of the container.
	husk exec -d sg sh -c 'trap "touch /dev/shm/exec-USR2" USR2; touch /dev/shm/exec-ready; while :; do sleep 0.1; done'
	wait_for marked exec-ready
	run husk kill sg USR2
	[ "$status" -eq 0 ]
	wait_for marked init-USR2
	run marked exec-USR2
	[ "$status" -ne 0 ]
	husk exec sg rm /dev/shm/init-USR2
	run husk kill --all sg USR2
	[ "$status" -eq 0 ]
	wait_for marked exec-USR2
	wait_for marked init-USR2
	# A number: 9 ends it, and run says 128+9.
	run husk kill sg 9
	[ "$status" -eq 0 ]
	st=0
	wait "$pid" || st=$?
	cat "$BATS_TEST_TMPDIR/sg.out"
	[ "$st" -eq 137 ]
	# --keep: the stopped container stays until deleted.
	run husk state sg
	[ "$status" -eq 0 ]
	[[ "$output" == *'"status": "stopped"'* ]]
	run husk delete sg
	[ "$status" -eq 0 ]
	assert_gone sg
}

@test "a component that dies under run or exec in the foreground: 112" {
	# QEMU killed under `husk run`.
	"$HUSK_BIN" --root "$ROOT" run --bundle "$B" dq </dev/null \
		>"$BATS_TEST_TMPDIR/dq.out" 2>&1 &
	pid=$!
	wait_status dq running
	kill -9 "$(pgrep -f "qemu-system.*$ROOT/dq/" | head -n 1)"
	st=0
	wait "$pid" || st=$?
	cat "$BATS_TEST_TMPDIR/dq.out"
	[ "$st" -eq 112 ]
	# and, without --keep, run deleted what was left
	assert_gone dq
	run husk state dq
	[[ "$output" == *"does not exist"* ]]
	# The proxy killed under `husk exec`.
	run husk_detached run --detach --bundle "$B" dp
	[ "$status" -eq 0 ]
	wait_status dp running
	"$HUSK_BIN" --root "$ROOT" exec dp sh -c 'touch /dev/shm/in; sleep 1000' </dev/null \
		>"$BATS_TEST_TMPDIR/dp.out" 2>&1 &
	pid=$!
	wait_for husk exec dp test -e /dev/shm/in
	kill -9 "$(pgrep -f "husk-proxy.*$ROOT/dp/" | head -n 1)"
	st=0
	wait "$pid" || st=$?
	cat "$BATS_TEST_TMPDIR/dp.out"
	[ "$st" -eq 112 ]
	run husk delete --force dp
	[ "$status" -eq 0 ]
	assert_gone dp
}

@test "delete --force of a pod's own container takes its members along" {
	s="$BATS_TEST_TMPDIR/s" c="$BATS_TEST_TMPDIR/c"
	make_bundle "$s" sleep 100000
	set_annotations "$s" '{"io.kubernetes.cri.container-type": "sandbox"}'
	make_bundle "$c" sleep 100000
	set_annotations "$c" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod2"}'
	run husk_detached run --detach --bundle "$s" pod2
	[ "$status" -eq 0 ]
	wait_status pod2 running
	run husk_detached run --detach --bundle "$c" app2
	[ "$status" -eq 0 ]
	wait_status app2 running
	run husk delete --force pod2
	echo "$output"
	[ "$status" -eq 0 ]
	assert_gone app2
	assert_gone pod2
	run husk state app2
	[[ "$output" == *"container app2 does not exist"* ]]
	run husk list --quiet
	[ "$status" -eq 0 ]
	[[ "$output" != *pod2* && "$output" != *app2* ]]
}

@test "update: cpu, cpuset, memory reservation and --resources, read back in the guest" {
	run husk_detached run --detach --bundle "$B" up
	[ "$status" -eq 0 ]
	wait_status up running
	# A file of the container's own cgroup in the guest.
	cgfile() {
		husk exec up sh -c 'cat "/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/'"$1"'"'
	}
	run husk update --cpu-quota 50000 --cpu-period 100000 --cpu-share 512 \
		--memory-reservation 32M up
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cgfile cpu.max)" = "50000 100000" ]
	# runc's conversion: 1 + (512 - 2) * 9999 / 262142
	[ "$(cgfile cpu.weight)" = 20 ]
	[ "$(cgfile memory.low)" = 33554432 ]
	run husk update --cpuset-cpus 0 --cpuset-mems 0 up
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cgfile cpuset.cpus)" = 0 ]
	[ "$(cgfile cpuset.mems)" = 0 ]
	echo '{"pids": {"limit": 77}}' >"$BATS_TEST_TMPDIR/res.json"
	run husk update --resources "$BATS_TEST_TMPDIR/res.json" up
	[ "$status" -eq 0 ]
	[ "$(cgfile pids.max)" = 77 ]
	run husk update --resources - up <<<'{"pids": {"limit": 78}}'
	[ "$status" -eq 0 ]
	[ "$(cgfile pids.max)" = 78 ]
	run husk update --cpu-quota soon up
	[ "$status" -eq 100 ]
	[[ "$output" == *"'soon' is not a valid value for cpu.quota"* ]]
	run husk update --resources - up <<<'[1]'
	[ "$status" -eq 1 ]
	[[ "$output" == *"update --resources -: not a JSON object"* ]]
	run husk delete --force up
	[ "$status" -eq 0 ]
	assert_gone up
}

@test "--debug: the steps at debug level in the log, none without it" {
	b="$BATS_TEST_TMPDIR/dbg"
	make_bundle "$b" echo dbg-ok
	run husk --debug --log "$BATS_TEST_TMPDIR/debug.log" run --bundle "$b" dbg
	[ "$status" -eq 0 ]
	[[ "$output" == *dbg-ok* ]]
	cat "$BATS_TEST_TMPDIR/debug.log"
	grep -q ' level=debug ' "$BATS_TEST_TMPDIR/debug.log"
	run husk --log "$BATS_TEST_TMPDIR/quiet.log" run --bundle "$b" dbg2
	[ "$status" -eq 0 ]
	run grep -c ' level=debug ' "$BATS_TEST_TMPDIR/quiet.log"
	[ "$output" = 0 ]
	assert_gone dbg
	assert_gone dbg2
}

@test "exec --additional-gids, --cap and --no-new-privs" {
	b="$BATS_TEST_TMPDIR/xo"
	make_bundle "$b" sleep 100000
	# no_new_privs off in the container, so that the option shows
	sed -i 's/"noNewPrivileges": true/"noNewPrivileges": false/' "$b/config.json"
	run husk_detached run --detach --bundle "$b" xo
	[ "$status" -eq 0 ]
	wait_status xo running
	run husk exec --user 1000:1000 --additional-gids 10 --additional-gids 20 xo id -G
	[ "$status" -eq 0 ]
	[[ " $output " == *" 10 "* && " $output " == *" 20 "* ]]
	# CAP_SYS_TIME is bit 25 (0x2000000): not in the spec's sets, added
	# by --cap.
	capeff() { husk exec "$@" xo sh -c 'grep ^CapEff /proc/self/status' | awk '{ print $2 }'; }
	[ $(( 0x$(capeff) & 0x2000000 )) -eq 0 ]
	[ $(( 0x$(capeff --cap CAP_SYS_TIME) & 0x2000000 )) -ne 0 ]
	run husk exec xo sh -c 'grep ^NoNewPrivs /proc/self/status'
	[[ "$output" == *"NoNewPrivs:"*"0" ]]
	run husk exec --no-new-privs xo sh -c 'grep ^NoNewPrivs /proc/self/status'
	[[ "$output" == *"NoNewPrivs:"*"1" ]]
	run husk delete --force xo
	[ "$status" -eq 0 ]
	assert_gone xo
}

@test "machine_type = microvm: a container runs at the boot size, its link on QEMU's command line, a pod member's limits stay in the guest" {
	conf="$BATS_TEST_TMPDIR/husk.conf"
	# max_* left at their defaults: microvm boots at its final size.
	# The VM cache is on (no daemon runs): a running microvm could not
	# take the pod's links, so it is not asked.
	printf '[hypervisor]\nmachine_type = "microvm"\n[factory]\ncache = 1\n' >"$conf"
	# A link in the pod's namespace, its peer in another with the
	# address the container pings.
	ns=hkmv$$ hn=hkmh$$
	ip netns add "$ns"
	ip netns add "$hn"
	ip link add "mv$$" netns "$ns" type veth peer name mvp netns "$hn"
	ip -n "$ns" link set "mv$$" name eth0
	ip -n "$ns" addr add 10.209.0.2/24 dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$hn" addr add 10.209.0.1/24 dev mvp
	ip -n "$hn" link set mvp up
	s="$BATS_TEST_TMPDIR/s" c="$BATS_TEST_TMPDIR/c"
	make_bundle "$s" sleep 100000
	jq --arg p "/run/netns/$ns" '(.linux.namespaces[] | select(.type == "network")).path = $p
	    | .process.capabilities |= with_entries(.value += ["CAP_NET_RAW"])' \
		"$s/config.json" >"$s/c.json"
	mv "$s/c.json" "$s/config.json"
	set_annotations "$s" '{"io.kubernetes.cri.container-type": "sandbox"}'
	make_bundle "$c" sh -c 'echo member; exit 7'
	set_annotations "$c" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "mpod"}'
	set_memory_limit "$c" 134217728
	run husk_detached --config "$conf" --log "$BATS_TEST_TMPDIR/log" --debug run --detach --bundle "$s" mpod
	echo "$output"
	if [ "$status" -ne 0 ]; then
		ip netns del "$ns"; ip netns del "$hn"
		false
	fi
	grep -q "sandbox mpod: boots cold, not from the VM cache: a cached microvm is running" "$BATS_TEST_TMPDIR/log"
	wait_status mpod running
	hv() { "${BUILD:-build}/bin/husk-ipc" -t 10 "$ROOT/mpod/hv.sock" status '{}'; }
	[ "$(hv | jq -r .machine)" = microvm ]
	mem=$(hv | jq -r .memory_mb)
	before=$(guest_mem_kb mpod)
	# The link: a NIC at boot (microvm has no hotplug), its address in
	# the guest, the host end answers.
	[ "$(hv | jq '[.devices[] | select(.kind == "net" and .hotplugged == false)] | length')" -eq 1 ]
	run husk exec mpod sh -c 'ip addr show eth0'
	[[ "$output" == *"inet 10.209.0.2/24"* ]]
	run husk exec mpod ping -c 1 -W 5 10.209.0.1
	echo "$output"
	[ "$status" -eq 0 ]
	# The member's 128 MiB limit: no hotplug, the VM keeps its size,
	# the member runs, its output and exit code come back.
	run --separate-stderr husk --config "$conf" run --bundle "$c" mapp </dev/null
	echo "$output $stderr"
	[ "$status" -eq 7 ]
	[ "$output" = member ]
	[ "$(hv | jq -r .memory_mb)" = "$mem" ]
	[ "$(hv | jq '[.devices[] | select(.kind != "net")] | length')" -eq 0 ]
	[ "$(guest_mem_kb mpod)" -eq "$before" ]
	run husk delete --force mpod
	[ "$status" -eq 0 ]
	assert_gone mpod
	assert_gone mapp
	# The tap and its filters went with it; the namespace was ours.
	run ip -n "$ns" -o link show
	[[ "$output" != *_husk* ]]
	run tc -n "$ns" qdisc show
	[[ "$output" != *ingress* ]]
	ip netns del "$ns"
	ip netns del "$hn"
}
