#!/usr/bin/env bats
# containerd (Debian's) with its runc v2 shim pointed at husk
# (`ctr run --runtime io.containerd.runc.v2 --runc-binary`): a private
# containerd started here, a busybox root file system given with
# --rootfs.  One container (one TCG VM) at a time.

load lib/engines.sh

bats_require_minimum_version 1.5.0

setup_file() {
	engines_skip_unless_ready
	engines_setup
	engines_start_containerd
}

teardown_file() {
	engines_teardown
	[ -n "${EN:-}" ] && rm -rf "$EN"
	true
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || engines_show_logs
}

# ctr with its full path and our daemon, for timeout and script.
CTR() {
	echo "$CTR_BIN -a $EN/ctd.sock -n husk-test"
}

@test "ctr run: output from the VM and the exit code" {
	run --separate-stderr timeout 180 $(CTR) run --rm $(ctr_husk_args) \
		--rootfs "$EN/rootfs" r1 sh -c 'uname -r; echo to-stderr >&2; exit 3'
	echo "$output / $stderr"
	[ "$status" -eq 3 ]
	[ -n "$output" ]
	[ "$output" != "$(uname -r)" ]
	[[ "$stderr" == *to-stderr* ]]
	grep -q "create --bundle" "$EN/runtime.calls"
	run ctrc container ls -q
	[ -z "$output" ]
	run "$BUILD/bin/husk" --root "$EN/runc-root/husk-test" list --quiet
	[ -z "$output" ]
}

@test "ctr run -t: a terminal through the console socket" {
	run timeout 180 script -qec "$(CTR) run --rm -t $(ctr_husk_args) --rootfs $EN/rootfs t1 sh -c 'test -t 0 && echo is-a-tty; stty size; exit 4'" /dev/null
	echo "$output"
	[ "$status" -eq 4 ]
	[[ "$output" == *is-a-tty* ]]
	grep -q "create .*--console-socket" "$EN/runtime.calls"
	run "$BUILD/bin/husk" --root "$EN/runc-root/husk-test" list --quiet
	[ -z "$output" ]
}

@test "ctr run -d, task exec, task kill, task delete" {
	run timeout 180 $(CTR) run -d $(ctr_husk_args) --rootfs "$EN/rootfs" d1 \
		sh -c 'trap "echo got-USR1 >/tmp/usr1" USR1; while true; do sleep 1; done'
	[ "$status" -eq 0 ]
	run ctrc task ls
	[[ "$output" == *d1*RUNNING* ]]
	pid=$(ctrc task ls | awk '$1 == "d1" { print $2 }')
	# The task's pid is husk's: the shim standing for the process.
	[[ "$(tr '\0' ' ' </proc/$pid/cmdline)" == *husk-shim*"--container d1"* ]]

	run timeout 60 $(CTR) task exec --exec-id e1 d1 sh -c 'echo in-exec; uname -r; exit 6'
	[ "$status" -eq 6 ]
	[[ "$output" == *in-exec* ]]
	[[ "$output" != *"$(uname -r)"* ]]
	run timeout 60 script -qec "$(CTR) task exec -t --exec-id e2 d1 sh -c 'test -t 0 && echo exec-tty'" /dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *exec-tty* ]]

	# A trapped signal reaches the process and leaves it running.
	run ctrc task kill -s SIGUSR1 d1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		# The trap's file may be there yet empty: poll its content.
		out=$(timeout 60 $(CTR) task exec --exec-id e3 d1 cat /tmp/usr1 2>/dev/null) || true
		[ "$out" = got-USR1 ] && break
		sleep 0.2
	done
	[ "$out" = got-USR1 ]
	run ctrc task ls
	[[ "$output" == *d1*RUNNING* ]]

	run ctrc task kill -s SIGKILL d1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		ctrc task ls | grep -q "d1.*STOPPED" && break
		sleep 0.1
	done
	run ctrc task ls
	[[ "$output" == *d1*STOPPED* ]]
	run timeout 60 $(CTR) task delete d1
	[ "$status" -eq 0 ]
	run ctrc container rm d1
	[ "$status" -eq 0 ]
	run "$BUILD/bin/husk" --root "$EN/runc-root/husk-test" list --quiet
	[ -z "$output" ]
	for _ in $(seq 1 100); do
		pgrep -f "$EN/runc-root/husk-test/d1/" >/dev/null || break
		sleep 0.1
	done
	run ! pgrep -af "$EN/runc-root/husk-test/d1/"
}

@test "nothing left once containerd stops" {
	_engines_kill_pidfile "$EN/containerd.pid"
	engines_assert_clean
	[ -z "$(ls -A "$EN/runc-root/husk-test")" ]
}
