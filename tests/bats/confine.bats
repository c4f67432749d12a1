#!/usr/bin/env bats
# husk_confine() seen from the inside: tests/helpers/confine_probe
# confines itself, prints its /proc/self/status lines and, when asked,
# makes a syscall outside its profile.

setup() {
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	BUILD=$(cd "$HUSK_SRC" && cd "${BUILD:-build}" && pwd)
	PROBE=$BUILD/tests/helpers/confine_probe
	[ -x "$PROBE" ] || skip "no $PROBE (make all)"
	[ "$(id -u)" = 0 ] || skip "needs root to cut capabilities and switch ids"
	cd "$BATS_TEST_TMPDIR"
	# LeakSanitizer stops the world with clone and ptrace at exit,
	# which no seccomp profile allows: no leak check inside the probe.
	if [ "${HUSK_ASAN:-}" = 1 ]; then
		export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	fi
}

asan_skip() {
	# ASan's runtime makes syscalls of its own that no profile lists.
	[ "${HUSK_ASAN:-}" != 1 ] || skip "seccomp kill checks under ASan"
}

# The CapEff mask of exactly one capability, as /proc prints it.
cap_mask() {
	printf '%016x' $((1 << $1))
}

@test "no_new_privs and the seccomp filter are on" {
	run "$PROBE"
	[ "$status" -eq 0 ]
	[[ "$output" =~ NoNewPrivs:[[:space:]]+1 ]]
	[[ "$output" =~ Seccomp:[[:space:]]+2 ]]
}

@test "capabilities are cut to CAP_NET_ADMIN in every set" {
	run "$PROBE" --caps net_admin
	[ "$status" -eq 0 ]
	mask=$(cap_mask 12)
	[[ "$output" =~ CapEff:[[:space:]]+$mask ]]
	[[ "$output" =~ CapPrm:[[:space:]]+$mask ]]
	[[ "$output" =~ CapBnd:[[:space:]]+$mask ]]
	[[ "$output" =~ CapInh:[[:space:]]+0000000000000000 ]]
	[[ "$output" =~ CapAmb:[[:space:]]+0000000000000000 ]]
}

@test "a syscall outside the profile kills with SIGSYS" {
	asan_skip
	run "$PROBE" --forbidden
	# 159 = 128 + SIGSYS (31)
	[ "$status" -eq 159 ]
	[[ "$output" =~ Seccomp:[[:space:]]+2 ]]
	[[ "$output" != *"getcwd returned"* ]]
}

@test "debug switch (HUSK_SECCOMP_DEBUG=1): survives and names the syscall" {
	HUSK_SECCOMP_DEBUG=1 run "$PROBE" --forbidden
	[ "$status" -eq 0 ]
	[[ "$output" == *"seccomp: confine_probe blocked syscall getcwd ("* ]]
	[[ "$output" == *"getcwd returned -1 (Function not implemented)"* ]]
}

@test "debug option of the profile: same report" {
	run "$PROBE" --debug --forbidden
	[ "$status" -eq 0 ]
	[[ "$output" == *"blocked syscall getcwd"* ]]
}

@test "switch to uid 65534 with no capabilities kept" {
	run "$PROBE" --uid 65534 --caps none
	[ "$status" -eq 0 ]
	[[ "$output" =~ Uid:[[:space:]]+65534[[:space:]]+65534[[:space:]]+65534[[:space:]]+65534 ]]
	[[ "$output" =~ Gid:[[:space:]]+65534 ]]
	[[ "$output" =~ CapEff:[[:space:]]+0000000000000000 ]]
	[[ "$output" =~ CapPrm:[[:space:]]+0000000000000000 ]]
	[[ "$output" =~ CapBnd:[[:space:]]+0000000000000000 ]]
	[[ "$output" =~ NoNewPrivs:[[:space:]]+1 ]]
}

@test "switch to uid 65534 keeping CAP_NET_ADMIN" {
	run "$PROBE" --uid 65534 --caps net_admin
	[ "$status" -eq 0 ]
	[[ "$output" =~ Uid:[[:space:]]+65534 ]]
	[[ "$output" =~ CapEff:[[:space:]]+$(cap_mask 12) ]]
}

@test "unprivileged uid is still killed on a forbidden syscall" {
	asan_skip
	run "$PROBE" --uid 65534 --caps none --forbidden
	[ "$status" -eq 159 ]
}

# Argument rules (the probe's profile: socket only AF_UNIX, ioctl only
# TCGETS and TIOCGWINSZ, mmap/mprotect without PROT_EXEC).

@test "argument rule: socket(AF_UNIX) runs, socket(AF_INET) kills" {
	asan_skip
	run "$PROBE" --socket unix
	[ "$status" -eq 0 ]
	[[ "$output" =~ "socket returned "[0-9]+" (allowed)" ]]
	run "$PROBE" --socket inet
	[ "$status" -eq 159 ]
	[[ "$output" != *"socket returned"* ]]
}

@test "argument rule: ioctl TIOCGWINSZ runs, TIOCSTI kills" {
	asan_skip
	# stdin is not a terminal here: the allowed request fails ENOTTY
	# inside the kernel, which shows it ran.
	run "$PROBE" --ioctl winsz </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"ioctl returned -1 (Inappropriate ioctl for device)"* ]]
	run "$PROBE" --ioctl sti </dev/null
	[ "$status" -eq 159 ]
	[[ "$output" != *"ioctl returned"* ]]
}

@test "argument rule: mmap and mprotect without PROT_EXEC run, with it kill" {
	asan_skip
	run "$PROBE" --map data
	[ "$status" -eq 0 ]
	[[ "$output" == *"mmap returned 0 (allowed)"* ]]
	[[ "$output" == *"mprotect returned 0 (allowed)"* ]]
	run "$PROBE" --map exec
	[ "$status" -eq 159 ]
	[[ "$output" != *"mmap returned"* ]]
}

@test "debug mode names a call refused by its arguments" {
	HUSK_SECCOMP_DEBUG=1 run "$PROBE" --ioctl sti </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"seccomp: confine_probe blocked syscall ioctl (16)"* ]]
	[[ "$output" == *"ioctl returned -1 (Function not implemented)"* ]]
}

@test "a syscall of a foreign architecture kills, debug mode or not" {
	asan_skip
	[ "$(uname -m)" = x86_64 ] || skip "x86-64 only"
	for arch in i386 x32; do
		# A kernel without the i386 ABI faults int 0x80 itself
		# (SIGSEGV): no process can make such a call, nothing to
		# filter.
		run "$PROBE" --unconfined --arch "$arch"
		echo "$arch unconfined: $status"
		if [ "$arch" = i386 ] && [ "$status" -eq 139 ]; then
			continue
		fi
		run "$PROBE" --arch "$arch"
		echo "$arch: $status $output"
		[ "$status" -eq 159 ]
		[[ "$output" != *"foreign syscall returned"* ]]
		HUSK_SECCOMP_DEBUG=1 run "$PROBE" --arch "$arch"
		echo "$arch debug: $status $output"
		[ "$status" -eq 159 ]
		[[ "$output" != *"foreign syscall returned"* ]]
	done
}

@test "HUSK_SECCOMP_DEBUG other than 1 leaves the filter killing" {
	asan_skip
	for v in 0 yes true "" " 1" 11; do
		HUSK_SECCOMP_DEBUG=$v run "$PROBE" --forbidden
		echo "value '$v': $status"
		[ "$status" -eq 159 ]
	done
}
