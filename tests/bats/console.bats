#!/usr/bin/env bats
# A terminal does not hold the caller's stdio: an engine that reads the
# output of `husk create --console-socket` (or `exec --detach
# --console-socket`) to its end gets that end when husk returns, while
# the shim goes on relaying the terminal.

load lib/husk.sh

bats_require_minimum_version 1.5.0

setup_file() {
	export ROOT=$(mktemp -d /tmp/husk-con.XXXXXX)/root
}

teardown_file() {
	for id in $("$HUSK_BIN" --root "$ROOT" list --quiet 2>/dev/null); do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" || true
	done
	rm -rf "$(dirname "$ROOT")"
}

teardown() {
	[ -n "${RECV:-}" ] && kill "$RECV" 2>/dev/null
	true
}

# recvtty NAME: a console socket $D/NAME.sock whose pty copies
# $D/NAME.in to $D/NAME.out.
recvtty() {
	mkfifo "$D/$1.in"
	exec {fd}<>"$D/$1.in"
	"$BUILD/tests/helpers/shim_recvtty" "$D/$1.sock" <"$D/$1.in" \
		>"$D/$1.out" 2>"$D/$1.err" &
	RECV=$!
	for _ in $(seq 1 100); do [ -S "$D/$1.sock" ] && return 0; sleep 0.05; done
	return 1
}

@test "out=\$(husk create --console-socket ...) returns, and the shim still relays the terminal" {
	# Console sockets want a 0700 directory.
	b="$BATS_TEST_TMPDIR/t" D=$(mktemp -d "$BATS_TEST_TMPDIR/c.XXXXXX")
	make_bundle "$b" sh -c 'read line; echo got-$line; exec sleep 100000'
	sed -i 's/"terminal": false/"terminal": true/' "$b/config.json"
	recvtty init
	# What an engine does: read everything husk prints, to its end.
	# timeout bounds a husk that would leave it open.
	run timeout 120 bash -c 'out=$("$@"); rc=$?; echo "rc=$rc out=[$out]"' _ \
		"$HUSK_BIN" --root "$ROOT" create --console-socket "$D/init.sock" \
		--bundle "$b" --pid-file "$D/pid" ct
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "rc=0 out=[]" ]
	pid=$(cat "$D/pid")
	[ "$(readlink "/proc/$pid/fd/1")" != "$(readlink /proc/self/fd/1)" ]
	grep -q "^name: /dev/pts/" "$D/init.err"
	run husk start ct
	[ "$status" -eq 0 ]
	echo typed >"$D/init.in"
	for _ in $(seq 1 300); do grep -q "got-typed" "$D/init.out" && break; sleep 0.1; done
	grep -q "got-typed" "$D/init.out"

	# exec --detach with a terminal: the same.
	recvtty ex
	run timeout 60 bash -c 'out=$("$@"); rc=$?; echo "rc=$rc out=[$out]"' _ \
		"$HUSK_BIN" --root "$ROOT" exec --detach --tty \
		--console-socket "$D/ex.sock" ct sh -c 'read l; echo exec-got-$l'
	[ "$status" -eq 0 ]
	[ "$output" = "rc=0 out=[]" ]
	echo more >"$D/ex.in"
	for _ in $(seq 1 300); do grep -q "exec-got-more" "$D/ex.out" && break; sleep 0.1; done
	grep -q "exec-got-more" "$D/ex.out"

	run husk delete --force ct
	[ "$status" -eq 0 ]
	assert_gone ct
}

@test "without a terminal, a detached container's process gets the caller's stdio" {
	b="$BATS_TEST_TMPDIR/p" D=$BATS_TEST_TMPDIR
	make_bundle "$b" sh -c 'echo to-out; echo to-err >&2; exit 0'
	# Not through `run`: the shim holds what it is given, as runc's
	# init does.
	husk create --bundle "$b" --pid-file "$D/pid" pc \
		</dev/null >"$D/out" 2>"$D/err"
	pid=$(cat "$D/pid")
	[ "$(readlink "/proc/$pid/fd/1")" = "$D/out" ]
	[ "$(readlink "/proc/$pid/fd/2")" = "$D/err" ]
	run husk start pc
	[ "$status" -eq 0 ]
	wait_status pc stopped
	grep -qx to-out "$D/out"
	grep -qx to-err "$D/err"
	run husk delete pc
	[ "$status" -eq 0 ]
	assert_gone pc
}

@test "a console socket nobody listens on fails the create with the shim's reason, leaving nothing" {
	b="$BATS_TEST_TMPDIR/t" D=$(mktemp -d "$BATS_TEST_TMPDIR/c.XXXXXX")
	make_bundle "$b" sh
	sed -i 's/"terminal": false/"terminal": true/' "$b/config.json"
	run timeout 120 "$HUSK_BIN" --root "$ROOT" create \
		--console-socket "$D/nobody.sock" --bundle "$b" cf
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	[[ "$output" == *husk-shim* && "$output" == *--console-socket* ]]
	assert_gone cf
}
