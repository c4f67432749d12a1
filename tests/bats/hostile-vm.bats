#!/usr/bin/env bats
# A hostile guest against the host (issue 11; docs/hostile-guest.md).
#
# Two sandboxes made by the husk CLI, each a VM under TCG:
#   good  the real agent, a busybox container running `sleep`
#   hx    initrd-hostile.img ([hypervisor] initrd in its husk.conf):
#         guest/hostile.c as PID 1, which passes for an agent and attacks
#         when asked.  An attack is asked for with the request
#         `hostile {attack, count, ...}` sent to hx's proxy, which forwards it
#         to the guest like any method it does not serve; the guest
#         answers {} and then attacks.
# Each test plays one attack and shows it stopped: the specific line in
# the log of the side that stopped it, hx's proxy within its memory
# bound, the logs and the console log within their caps, and the driver
# and proxy of `good` untouched (same pids, ping answered, a process run
# in its container).  The hx sandbox's container is lost at the first
# cut-off (its shim loses the agent); the sandbox itself serves on.
#
# The tests run in order on the same two VMs (about 2 minutes); the
# rate limits of the proxy's log lines (10 a minute about the agent
# connection, 20 for libipc's violations) are budgeted by that order:
# each line grepped for is among the first of its minute.
#
#   make all guest      (guest builds build/guest/initrd-hostile.img)
#   tests/run bats tests/bats/hostile-vm.bats      (as root)
#
# By hand: HUSK_CONFIG=FILE husk create ... with such a configuration,
# then husk-ipc ROOT/ID/proxy.sock hostile '{"attack":"garbage"}'; or
# kernel_params = husk.attack=NAME[:COUNT] for an attack at boot.

load lib/husk.sh

bats_require_minimum_version 1.5.0

B_ABS=$(cd "${BUILD:-build}" && pwd)
GUEST=$B_ABS/guest
IPC=$B_ABS/bin/husk-ipc
# hx's proxy's VmHWM: small floods (1-byte outputs, made-up processes)
# leave it near its idle size (2-3 MiB); output held for nobody is
# capped at PROXY_UNSUB_BYTES_MAX (32 MiB, proxy/proxy.h, counted with
# each chunk's cost), so the worst a guest gets is that plus the idle
# size and a 1 MiB frame buffer.
PROXY_HWM_SMALL_KB=16384
PROXY_HWM_MAX_KB=$(((32 + 16) * 1024))
# Under ASan the runtime's own resident memory (about 8 MiB idle) comes
# on top of these: the bounds are then counted from hx's proxy's VmHWM
# once it served the create (hx.hwm0), and ASan's quarantine (256 MiB
# of freed blocks kept resident by default) is held to 1 MiB.
if [ "${HUSK_ASAN:-}" = 1 ]; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1:thread_local_quarantine_size_kb=64
fi
# proxy/proxy.h PROXY_LOG_BURST, PROXY_LOG_INTERVAL; libipc's
# conn_violation: 20 lines a minute.
LOG_BURST=10
VIOLATION_BURST=20
CONSOLE_MAX_KB=128

setup_file() {
	local f
	for f in vmlinux initrd.img initrd.init initrd-hostile.img; do
		[ -f "$GUEST/$f" ] || skip "$GUEST/$f missing (make guest)"
	done
	grep -q husk-agent-static "$GUEST/initrd.init" ||
		skip "initrd.img was not built with the agent (make guest)"
	[ "$(id -u)" = 0 ] || skip "husk needs root"
	command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
	export ROOT=$(mktemp -d /tmp/husk-hostile.XXXXXX)/root
	export BND="$BATS_FILE_TMPDIR/bundle"
	make_bundle "$BND" sleep 100000
	cat >"$BATS_FILE_TMPDIR/hostile.conf" <<-EOF
	[hypervisor]
	initrd = $GUEST/initrd-hostile.img
	console_log_max_kb = $CONSOLE_MAX_KB
	EOF
	husk_detached run --detach --bundle "$BND" good
	HUSK_CONFIG=$BATS_FILE_TMPDIR/hostile.conf husk_detached create \
		--bundle "$BND" hx
	pid_of good hypervisor >"$BATS_FILE_TMPDIR/good.pids"
	pid_of good proxy >>"$BATS_FILE_TMPDIR/good.pids"
	pid_of hx proxy >"$BATS_FILE_TMPDIR/hx.proxy"
	kb "$(cat "$BATS_FILE_TMPDIR/hx.proxy")" VmHWM >"$BATS_FILE_TMPDIR/hx.hwm0"
}

teardown_file() {
	[ -n "${ROOT:-}" ] || return 0
	for id in hx good; do
		"$HUSK_BIN" --root "$ROOT" delete --force "$id" 2>/dev/null || true
	done
	rm -rf "$(dirname "$ROOT")"
}

# pid_of SANDBOX hypervisor|proxy
pid_of() {
	local p
	p=$(sed -n "s/.*\"$2\":{\"pid\":\([0-9]*\),.*/\1/p" \
		"$ROOT/$1/sandbox.json")
	[ -n "$p" ] && echo "$p"
}

hx() { "$IPC" -t 60 "$ROOT/hx/proxy.sock" "$@"; }

show_logs() {
	local f
	for f in proxy.log hypervisor.log console.log; do
		echo "# hx $f:"
		tail -c 3000 "$ROOT/hx/$f" | tail -n 15 | sed 's/^/#   /'
	done
}

# poll_grep FILE PATTERN [TENTHS]: wait for a line (bounded).
poll_grep() {
	for _ in $(seq "${3:-600}"); do
		grep -q -- "$2" "$1" && return 0
		sleep 0.1
	done
	echo "no '$2' in $1" >&2
	show_logs >&2
	return 1
}

# The hostile agent's connection is up (again): the proxy reconnects by
# itself after each cut-off.
hx_connected() {
	for _ in $(seq 300); do
		hx proxy_status 2>/dev/null | grep -q '"agent_connected":true' &&
			return 0
		sleep 0.1
	done
	show_logs >&2
	return 1
}

# A new agent connection: the guest sends garbage, the proxy cuts it
# off and connects again.
hx_reconnect() {
	local c
	c=$(hx proxy_status | field connects)
	hx hostile '{"attack":"garbage"}' >/dev/null
	for _ in $(seq 300); do
		[ "$(hx proxy_status | field connects)" -gt "$c" ] && return 0
		sleep 0.1
	done
	show_logs >&2
	return 1
}

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# assert_proxy_bounded [MAX_KB]: hx's proxy is alive (the same one)
# and its VmHWM within MAX_KB (default PROXY_HWM_SMALL_KB).
assert_proxy_bounded() {
	local p hwm bound=${1:-$PROXY_HWM_SMALL_KB}
	p=$(pid_of hx proxy)
	[ "$p" = "$(cat "$BATS_FILE_TMPDIR/hx.proxy")" ]
	kill -0 "$p"
	hwm=$(kb "$p" VmHWM)
	[ "${HUSK_ASAN:-}" != 1 ] ||
		bound=$((bound + $(cat "$BATS_FILE_TMPDIR/hx.hwm0")))
	echo "# hx proxy VmHWM ${hwm} kB (bound $bound), VmRSS $(kb "$p" VmRSS) kB"
	[ "$hwm" -le "$bound" ]
}

# hx_console PATTERN [TENTHS]: wait for a line on hx's console (either
# file of the rotated pair).
hx_console() {
	for _ in $(seq "${2:-600}"); do
		cat "$ROOT/hx/console.log.1" "$ROOT/hx/console.log" \
			2>/dev/null | grep -qa -- "$1" && return 0
		sleep 0.1
	done
	echo "no '$1' on hx's console" >&2
	show_logs >&2
	return 1
}

field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# The other sandbox: same driver and proxy as at the start, the proxy
# reaches its agent, and its container runs a process.
assert_good_unaffected() {
	local want got
	want=$(cat "$BATS_FILE_TMPDIR/good.pids")
	got=$(pid_of good hypervisor; pid_of good proxy)
	[ "$want" = "$got" ]
	for p in $got; do kill -0 "$p"; done
	run "$IPC" -t 30 "$ROOT/good/proxy.sock" ping
	[ "$status" -eq 0 ]
	[ "$output" = "{}" ]
	run husk exec good echo still-here
	[ "$status" -eq 0 ]
	[ "$output" = still-here ]
}

# Nothing of hx's grows on the host disk beyond the caps: its logs and
# console logs (the rest of its state directory is the share, which
# holds binds of the bundle) stay under MAX kB.
assert_disk_bounded() {
	local used
	ls -la "$ROOT/hx"
	used=$(cat "$ROOT"/hx/*.log "$ROOT"/hx/console.log* | wc -c)
	echo "# hx logs: $used bytes"
	[ "$used" -le $(($1 * 1024)) ]
}

@test "hostile-vm: the hostile guest passes for an agent" {
	run hx ping
	[ "$status" -eq 0 ] || { show_logs; false; }
	[ "$output" = "{}" ]
	hx_console "hostile: hello"
	# a misspelt attack is an error, not a test that passes for nothing
	run hx hostile '{"attack":"nosuch"}'
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"params.attack: no attack 'nosuch'"* ]]
	assert_good_unaffected
}

@test "hostile-vm: absurd get_guest_details: husk update refuses to believe it" {
	run hx get_guest_details
	[ "$status" -eq 0 ]
	[[ "$output" == *'"online_cpus":9223372036854775807'* ]]
	# The text comes through escaped, not as a terminal escape.
	[[ "$output" == *'\u001B[2J\r\n'* ]]
	run husk start hx
	[ "$status" -eq 0 ]
	run husk update --memory 134217728 hx
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"guest reports"*"online_cpus"* ]]
	assert_proxy_bounded
	assert_good_unaffected
}

# Lines of $1 that are oom events, at least $2 of them.
oom_lines_at_least() {
	[ "$(grep -c '"type":"oom"' "$1")" -ge "$2" ]
}

@test "hostile-vm: OOM counts jumping by 2^40 at once: husk events prints 16 an answer, an answer a second" {
	start=$SECONDS
	"$HUSK_BIN" --root "$ROOT" events --interval 1s hx \
		>"$BATS_TEST_TMPDIR/ev" 2>"$BATS_TEST_TMPDIR/ev.err" &
	ev=$!
	wait_for -t 120 oom_lines_at_least "$BATS_TEST_TMPDIR/ev" 48
	kill "$ev"
	wait "$ev" || true
	elapsed=$((SECONDS - start))
	n=$(grep -c '"type":"oom"' "$BATS_TEST_TMPDIR/ev")
	echo "$n oom lines in ${elapsed}s"
	# Whole answers only, each cut to HUSK_OOM_BURST, one a second
	# (HUSK_OOM_MIN_GAP_MS) after the first.
	[ $((n % 16)) -eq 0 ]
	[ "$n" -le $((16 * (elapsed + 2))) ]
	grep -q 'OOM kills not reported (more than 16 in one answer)' \
		"$BATS_TEST_TMPDIR/ev.err"
	grep -q '^{"type":"oom","id":"hx"}$' "$BATS_TEST_TMPDIR/ev"
	assert_good_unaffected
}

@test "hostile-vm: 1-byte outputs for 10000 made-up processes: cut off at 64" {
	run hx hostile '{"attack":"output-flood","count":10000}'
	[ "$status" -eq 0 ]
	poll_grep "$ROOT/hx/proxy.log" "cutting the agent off: agent broke the protocol: output for more than 64 processes never created"
	hx_console "hostile: output flood sent .* of 10000"
	assert_proxy_bounded
	hx_connected
	run hx proxy_status
	echo "$output"
	# the made-up processes it keeps state for: those 64
	[ "$(echo "$output" | field unknown_streams)" -le 64 ]
	run hx ping
	[ "$output" = "{}" ]
	assert_good_unaffected
}

@test "hostile-vm: 300000 1-byte outputs for 60 made-up processes: memory stays flat" {
	run hx hostile '{"attack":"output-flood","count":60,"each":5000}'
	[ "$status" -eq 0 ]
	hx_console "hostile: output flood sent 300000 of 300000[^ ]*$"
	# all taken in (within every limit), and the proxy did not grow:
	# the 300000 bytes cost it chunks, not 300000 allocations.  The
	# guest has written them when it says so; the last may still be on
	# their way through QEMU to the proxy.
	for _ in $(seq 300); do
		run hx proxy_status
		[ "$(echo "$output" | field unsubscribed_bytes)" -lt 300000 ] ||
			break
		sleep 0.1
	done
	echo "$output"
	[[ "$output" == *'"agent_connected":true'* ]]
	[ "$(echo "$output" | field unsubscribed_bytes)" -ge 300000 ]
	assert_proxy_bounded
	assert_good_unaffected
}

@test "hostile-vm: output held for nobody: bounded, then cut off" {
	# 60 processes x 2 streams x 256 KiB: 30 MiB, each stream at its
	# window, all held for a subscriber that never comes.
	fill='{"attack":"output-flood","count":60,"each":8,"size":32768,"streams":2}'
	# on a new connection: the last test's bytes took part of stdout's
	# window on this one
	hx_reconnect
	run hx hostile "$fill"
	[ "$status" -eq 0 ]
	hx_console "hostile: output flood sent 960 of 960[^ ]*$" 1800
	run hx proxy_status
	echo "$output"
	[ "$(echo "$output" | field unsubscribed_bytes)" -ge $((30 << 20)) ]
	assert_proxy_bounded "$PROXY_HWM_MAX_KB"
	# A new connection opens new windows; the proxy still holds the
	# old bytes, and the same again is over its bound.
	hx_reconnect
	run hx hostile "$fill"
	[ "$status" -eq 0 ]
	poll_grep "$ROOT/hx/proxy.log" "cutting the agent off: agent broke the protocol: more than 33554432 bytes of output nobody subscribed to"
	hx_console "hostile: output flood sent .* of 960 (cut off)" 1800
	assert_proxy_bounded "$PROXY_HWM_MAX_KB"
	hx_connected
	assert_good_unaffected
}

@test "hostile-vm: a garbage frame: cut off with the reason" {
	run hx hostile '{"attack":"garbage"}'
	[ "$status" -eq 0 ]
	poll_grep "$ROOT/hx/proxy.log" \
		"conn_violation: peer husk-agent (pid [0-9]*): type 0xc1 at byte 0 is not accepted; disconnecting"
	hx_connected
	assert_proxy_bounded "$PROXY_HWM_MAX_KB"
	assert_good_unaffected
}

@test "hostile-vm: a 4 GiB frame header: cut off before anything is allocated" {
	hwm=$(kb "$(pid_of hx proxy)" VmHWM)
	run hx hostile '{"attack":"oversize"}'
	[ "$status" -eq 0 ]
	poll_grep "$ROOT/hx/proxy.log" \
		"conn_violation: peer husk-agent (pid [0-9]*): frame of 4294967280 bytes is over the limit of 1048576; disconnecting"
	hx_connected
	# not a byte of it was allocated: the high-water mark did not move
	[ "$(kb "$(pid_of hx proxy)" VmHWM)" -le $((hwm + 1024)) ]
	assert_good_unaffected
}

@test "hostile-vm: a reply to a msgid never asked: cut off" {
	run hx hostile '{"attack":"bad-reply"}'
	[ "$status" -eq 0 ]
	poll_grep "$ROOT/hx/proxy.log" \
		"conn_violation: peer husk-agent (pid [0-9]*): response to unknown msgid 3141592653; disconnecting"
	hx_connected
	run hx ping
	[ "$output" = "{}" ]
	assert_good_unaffected
}

@test "hostile-vm: a request from the guest: cut off, the calls pending fail with the reason" {
	# A call the guest never answers is pending when it attacks; its
	# error is the record here (the log's agent lines may be past
	# this minute's budget by now).
	calls=$(hx proxy_status | field calls)
	"$IPC" -t 120 "$ROOT/hx/proxy.sock" wait_process \
		'{"container_id":"hx","exec_id":""}' >"$BATS_TEST_TMPDIR/wait" 2>&1 &
	waiter=$!
	for _ in $(seq 300); do
		[ "$(hx proxy_status | field calls)" -gt "$calls" ] && break
		sleep 0.1
	done
	run hx hostile '{"attack":"request"}'
	[ "$status" -eq 0 ]
	st=0; wait "$waiter" || st=$?
	cat "$BATS_TEST_TMPDIR/wait"
	[ "$st" -ne 0 ]
	grep -q "agent connection closed: agent broke the protocol: unexpected request destroy_sandbox" \
		"$BATS_TEST_TMPDIR/wait"
	hx_connected
	# the sandbox was not destroyed: its VM runs, its agent answers
	run "$IPC" -t 30 "$ROOT/hx/hv.sock" status
	[[ "$output" == *'"state":"running"'* ]]
	run hx ping
	[ "$output" = "{}" ]
	assert_good_unaffected
}

@test "hostile-vm: closing and reopening the port 500 times: the driver shrugs" {
	hvlines=$(wc -l <"$ROOT/hx/hypervisor.log")
	run hx hostile '{"attack":"port-storm","count":500}'
	[ "$status" -eq 0 ]
	hx_console "hostile: port storm done (500)"
	run "$IPC" -t 30 "$ROOT/hx/hv.sock" status
	[ "$status" -eq 0 ]
	[[ "$output" == *'"state":"running"'* ]]
	# 500 VSERPORT_CHANGE events from QEMU, and at most a few lines
	[ "$(wc -l <"$ROOT/hx/hypervisor.log")" -le $((hvlines + 10)) ]
	hx_connected
	run hx ping
	[ "$output" = "{}" ]
	assert_good_unaffected
}

@test "hostile-vm: a reconnect storm: the proxy backs off and its log lines are rate-limited" {
	n=25
	before=$(wc -l <"$ROOT/hx/proxy.log")
	connects=$(hx proxy_status | field connects)
	t0=$(date +%s)
	run hx hostile "{\"attack\":\"storm\",\"count\":$n}"
	[ "$status" -eq 0 ]
	for _ in $(seq 1800); do
		[ "$(hx proxy_status | field connects)" -ge $((connects + n)) ] &&
			break
		sleep 0.1
	done
	hx_console "hostile: storm done"
	hx_connected
	elapsed=$(($(date +%s) - t0))
	new=$(tail -n +$((before + 1)) "$ROOT/hx/proxy.log")
	agent=$(echo "$new" | grep -c "agent_on_ready\|agent_on_close\|proxy_agent_cut" || true)
	viol=$(echo "$new" | grep -c "conn_violation" || true)
	echo "# $n reconnects in ${elapsed} s: $agent connection lines, $viol violation lines"
	# Unlimited, each reconnect would write three lines.  Limited: a
	# burst per started minute, and one more for the window in progress.
	windows=$((elapsed / 60 + 2))
	[ "$agent" -le $((LOG_BURST * windows)) ]
	[ "$viol" -le $((VIOLATION_BURST * windows)) ]
	[ "$((agent + viol))" -lt $((3 * n)) ]
	assert_proxy_bounded "$PROXY_HWM_MAX_KB"
	assert_good_unaffected
}

@test "hostile-vm: flooding the console: the log stays within its cap, requests answered" {
	# 2 MiB against a 128 KiB cap ([hypervisor] console_log_max_kb)
	run hx hostile '{"attack":"console-flood","count":2}'
	[ "$status" -eq 0 ]
	flooding() {
		[ "$("$IPC" -t 10 "$ROOT/hx/hv.sock" status | field console_bytes)" -gt 65536 ]
	}
	for _ in $(seq 600); do flooding && break; sleep 0.1; done
	flooding
	# mid-flood the hostile agent still answers, and its driver
	run hx ping
	[ "$output" = "{}" ]
	run "$IPC" -t 10 "$ROOT/hx/hv.sock" status
	[ "$status" -eq 0 ]
	run "$IPC" -t 300 "$ROOT/hx/proxy.sock" hostile '{"attack":"flood-wait"}'
	[ "$status" -eq 0 ]
	hx_console "hostile: console flood done"
	[ "$("$IPC" -t 10 "$ROOT/hx/hv.sock" status | field console_bytes)" -gt $((2 << 20)) ]
	ls -la "$ROOT/hx"
	[ "$(stat -c %s "$ROOT/hx/console.log")" -le $((CONSOLE_MAX_KB * 1024)) ]
	[ "$(stat -c %s "$ROOT/hx/console.log.1")" -le $((CONSOLE_MAX_KB * 1024)) ]
	assert_good_unaffected
}

@test "hostile-vm: delete --force of the attacked sandbox leaves nothing; the other runs on" {
	# console.log and .1 at their cap, the logs rate-limited
	assert_disk_bounded $((2 * CONSOLE_MAX_KB + 256))
	run husk delete --force hx
	[ "$status" -eq 0 ]
	assert_gone hx
	assert_good_unaffected
	run husk delete --force good
	[ "$status" -eq 0 ]
	assert_gone good
}
