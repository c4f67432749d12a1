#!/usr/bin/env bats
# OCI hooks as runc 1.1 runs them, as far as a VM allows: the state on
# stdin with the status of each point, the working directory of each
# kind, startContainer before the process runs, poststop once the
# container is gone.

load lib/husk.sh

bats_require_minimum_version 1.5.0

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-hooks.XXXXXX)/root
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")"
}

KINDS="prestart createRuntime createContainer startContainer poststart poststop"

# add_hooks DIR SCRIPT: every kind runs SCRIPT KIND.
add_hooks() {
	local dir=$1 script=$2 k hooks=""
	for k in $KINDS; do
		hooks="$hooks\"$k\": [{\"path\": \"$script\", \"args\": [\"hook\", \"$k\"], \"env\": [\"OUT=$BATS_TEST_TMPDIR/out\", \"HUSK=$HUSK_BIN\", \"ROOT=$ROOT\"], \"timeout\": 20}],"
	done
	sed -i "s|\"ociVersion\": \"1.0.2\",|\"ociVersion\": \"1.0.2\", \"hooks\": {${hooks%,}},|" "$dir/config.json"
}

@test "hooks: state, status and working directory of each kind; startContainer before the process, poststop after the state" {
	b="$BATS_TEST_TMPDIR/b" out="$BATS_TEST_TMPDIR/out"
	mkdir -p "$out"
	make_bundle "$b" sh -c 'cat /from-hook >/work/seen 2>&1; exec sleep 100000'
	sed -i 's/"readonly": true/"readonly": false/' "$b/config.json"
	cat >"$BATS_TEST_TMPDIR/hook.sh" <<-'EOF'
	#!/bin/sh
	cat >"$OUT/$1.state"
	pwd >"$OUT/$1.cwd"
	readlink /proc/self/ns/net >"$OUT/$1.netns"
	case $1 in
	startContainer) echo from-startContainer >from-hook ;;
	poststop)
		"$HUSK" --root "$ROOT" state hk >"$OUT/poststop.husk-state" 2>&1
		/usr/bin/pgrep -f "$ROOT/hk/" >"$OUT/poststop.procs" ;;
	esac
	exit 0
	EOF
	chmod +x "$BATS_TEST_TMPDIR/hook.sh"
	add_hooks "$b" "$BATS_TEST_TMPDIR/hook.sh"

	run husk_detached create --bundle "$b" --pid-file "$BATS_TEST_TMPDIR/pid" hk
	[ "$status" -eq 0 ]
	pid=$(cat "$BATS_TEST_TMPDIR/pid")
	for k in prestart createRuntime createContainer; do
		grep -q '"status":"creating"' "$out/$k.state"
		grep -q "\"pid\":$pid" "$out/$k.state"
		grep -q '"id":"hk"' "$out/$k.state"
		grep -q "\"bundle\":\"$b\"" "$out/$k.state"
	done
	[ "$(cat "$out/prestart.cwd")" = "$b" ]
	[ "$(cat "$out/createRuntime.cwd")" = "$b" ]
	[ "$(cat "$out/createContainer.cwd")" = "$b/rootfs" ]
	# prestart and createRuntime in the sandbox's network namespace,
	# createContainer in the host's
	sbx="net:[$(stat -L -c %i "$ROOT/hk/netns")]"
	[ "$(cat "$out/prestart.netns")" = "$sbx" ]
	[ "$(cat "$out/createRuntime.netns")" = "$sbx" ]
	[ "$(cat "$out/createContainer.netns")" = "$(readlink /proc/self/ns/net)" ]
	[ "$sbx" != "$(readlink /proc/self/ns/net)" ]
	[ ! -e "$out/startContainer.state" ]

	run husk start hk
	[ "$status" -eq 0 ]
	grep -q '"status":"created"' "$out/startContainer.state"
	grep -q "\"pid\":$pid" "$out/startContainer.state"
	[ "$(cat "$out/startContainer.cwd")" = "$b/rootfs" ]
	grep -q '"status":"running"' "$out/poststart.state"
	[ "$(cat "$out/poststart.cwd")" = "$b" ]
	# The process found what the startContainer hook left in its root.
	for _ in $(seq 1 300); do [ -s "$b/rootfs/work/seen" ] && break; sleep 0.1; done
	[ "$(cat "$b/rootfs/work/seen")" = from-startContainer ]
	[ ! -e "$out/poststop.state" ]

	run husk kill hk KILL
	[ "$status" -eq 0 ]
	wait_status hk stopped
	run husk delete hk
	[ "$status" -eq 0 ]
	grep -q '"status":"stopped"' "$out/poststop.state"
	grep -q '"pid":0' "$out/poststop.state"
	# By then the container was gone: its state and its VM.
	grep -q "does not exist" "$out/poststop.husk-state"
	[ ! -s "$out/poststop.procs" ]
	assert_gone hk
}

@test "hooks: a failing startContainer hook fails the start before the process runs; poststart and poststop failures are only logged" {
	b="$BATS_TEST_TMPDIR/b" out="$BATS_TEST_TMPDIR/out"
	mkdir -p "$out"
	make_bundle "$b" sh -c 'echo ran >/work/ran; exec sleep 100000'
	sed -i 's/"readonly": true/"readonly": false/' "$b/config.json"
	cat >"$BATS_TEST_TMPDIR/hook.sh" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	touch "$OUT/$1.ran"
	case $1 in
	startContainer) echo start-said-no >&2; exit 5 ;;
	poststop) exit 6 ;;
	esac
	exit 0
	EOF
	chmod +x "$BATS_TEST_TMPDIR/hook.sh"
	add_hooks "$b" "$BATS_TEST_TMPDIR/hook.sh"
	run husk_detached create --bundle "$b" hf
	[ "$status" -eq 0 ]
	run husk start hf
	[ "$status" -eq 1 ]
	[[ "$output" == *"hook startContainer[0]"* && "$output" == *"exit status 5"* && "$output" == *start-said-no* ]]
	[ ! -e "$out/poststart.ran" ]
	run husk state hf
	[[ "$output" == *'"status": "created"'* ]]
	[ ! -e "$b/rootfs/work/ran" ]
	# A failing poststop hook does not fail the delete.
	run husk delete --force hf
	[ "$status" -eq 0 ]
	[ -e "$out/poststop.ran" ]
	assert_gone hf
}
