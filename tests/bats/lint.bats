#!/usr/bin/env bats
# tests/lint-bats, the check `tests/run` makes of every bats file first:
# each shape of assertion that cannot fail is refused with its file,
# line and rule, and the forms that do fail pass.

LINT=${HUSK_SRC:-$BATS_TEST_DIRNAME/../..}/tests/lint-bats

# sample NAME: stdin as $BATS_TEST_TMPDIR/NAME.bats, with `%test` lines
# made `@test` (bats would take them for its own in this file).
sample() {
	sed 's/^%test/@test/' >"$BATS_TEST_TMPDIR/$1.bats"
}

@test "lint-bats: each shape is refused, with file, line and rule" {
	sample bad <<'EOF'
%test "bad" {
	! true
	false && [ 1 = 1 ]
	run wait 1
	[ 1 = 2 ] || show_logs
	for i in 1 2; do ! grep -q x /dev/null; done
	[ -n "$x" ] && [[ "$x" == *y* ]]
	true
}

helper() {
	! true
	[ 1 = 2 ] || { echo oops; }
	true
}
EOF
	run "$LINT" "$BATS_TEST_TMPDIR/bad.bats"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad.bats:2: bang:"* ]]
	[[ "$output" == *"bad.bats:3: and:"* ]]
	[[ "$output" == *"bad.bats:4: run-wait:"* ]]
	[[ "$output" == *"bad.bats:5: fallback:"* ]]
	[[ "$output" == *"bad.bats:6: bang:"* ]]
	[[ "$output" == *"bad.bats:7: and:"* ]]
	[[ "$output" == *"bad.bats:12: bang:"* ]]
	[[ "$output" == *"bad.bats:13: fallback:"* ]]
	[[ "$output" == *"8 assertion(s) that cannot fail"* ]]
}

@test "lint-bats: the forms that do fail a test pass" {
	sample good <<'EOF'
%test "good" {
	run ! true
	run true
	[ "$status" -eq 0 ]
	[ 1 = 1 ] && [ 2 = 2 ] || false
	for i in 1 2; do [ -e x ] && break; sleep 0.1; done
	if ! true; then false; fi
	while ! true; do :; done
	st=0; wait "$pid" || st=$?
	[ 1 = 1 ] || { show_logs; false; }
	[ 1 = 1 ] || { echo "no"; return 1; }
	gone() { ! kill -0 1; }
	echo '! not a command' "a && [ b ]"
	[[ a == a && b == b ]]
	x=$(! true; echo "&& [ x ]")
	cat <<X
! inside a heredoc
a && [ b ]
X
	[ -n "$y" ] && [ "$y" = 1 ]
}

%test "good, last line" {
	true
	! pgrep -f nothing-at-all-here
}
EOF
	run "$LINT" "$BATS_TEST_TMPDIR/good.bats"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}
