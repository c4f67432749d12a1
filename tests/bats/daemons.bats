#!/usr/bin/env bats
# The daemons on libhusk/daemon.c: the common options (--help,
# --version, --log, --log-format, --log-level), usage errors (100) and a
# fatal set-up error each (the code of docs/exit-codes.md and a message
# that names what was wrong, on stderr and in the log).  None of them
# gets far enough to need root or a VM.

setup() {
	HUSK_SRC=${HUSK_SRC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
	BUILD=$(cd "$HUSK_SRC" && cd "${BUILD:-build}" && pwd)
	B=$BUILD/bin
	for p in hypervisor proxy shim netmon agent cache; do
		[ -x "$B/husk-$p" ] || skip "no $B/husk-$p (make all)"
	done
	T=$(mktemp -d /tmp/husk-daemons.XXXXXX)
	chmod 0700 "$T"
}

teardown() {
	rm -rf "${T:-/nonexistent}"
}

# The options each daemon needs to get past its own checks.
required() {
	case $1 in
	hypervisor) echo "--state-dir $T/hv" ;;
	proxy) echo "--agent unix:$T/agent.sock --socket $T/proxy.sock" ;;
	shim) echo "--proxy $T/proxy.sock --container c1" ;;
	netmon) echo "--hv-socket $T/hv.sock --proxy-socket $T/proxy.sock" ;;
	agent) echo "--channel unix:$T/agent.sock --shared-dir $T/share" ;;
	cache) echo "--root $T/root" ;;
	esac
}

@test "daemons: --version prints the name and version, exit 0" {
	for p in hypervisor proxy shim netmon agent cache; do
		run "$B/husk-$p" --version
		[ "$status" -eq 0 ]
		[[ "$output" =~ ^husk-$p\ [0-9]+\.[0-9]+\.[0-9]+ ]]
	done
	run "$B/husk-agent" --version
	[[ "$output" == *"(protocol "* ]]
}

@test "daemons: --help prints the usage with the common options on stdout, exit 0" {
	for p in hypervisor proxy shim netmon agent cache; do
		run "$B/husk-$p" --help
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == "usage: husk-$p "* ]]
		[[ "$output" == *"[--log FILE] [--log-level LEVEL]"* ]]
		[[ "$output" == *"[--log-format text|json]"* ]]
		[[ "$output" == *"husk-$p --help | --version"* ]]
		run "$B/husk-$p" -h
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == "usage: husk-$p "* ]]
	done
	# --no-seccomp only where there is a filter, --sandbox only where
	# there is a sandbox id.
	run "$B/husk-agent" --help
	[[ "$output" != *"--no-seccomp"* ]]
	[[ "$output" != *"--sandbox"* ]]
	run "$B/husk-shim" --help
	[[ "$output" != *"--sandbox"* ]]
	run "$B/husk-netmon" --help
	[[ "$output" == *"--sandbox ID"* ]]
}

@test "daemons: an unknown option or an operand exits 100 naming it" {
	for p in hypervisor proxy shim netmon agent cache; do
		run "$B/husk-$p" --bogus
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: unknown option \`--bogus\`" ]]
		[[ "${lines[1]}" == "usage: husk-$p "* ]]
		# shellcheck disable=SC2046
		run "$B/husk-$p" $(required "$p") stray
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: unexpected argument \`stray\`" ]]
		run "$B/husk-$p" --log-level
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: --log-level needs a value" ]]
	done
	run "$B/husk-hypervisor" --foreground
	[ "$status" -eq 100 ]
	run "$B/husk-agent" --no-seccomp
	[ "$status" -eq 100 ]
	run "$B/husk-shim" --sandbox s1
	[ "$status" -eq 100 ]
}

@test "daemons: bad --log-level, --log-format and --sandbox values exit 100 naming them" {
	for p in hypervisor proxy shim netmon agent cache; do
		# shellcheck disable=SC2046
		run "$B/husk-$p" $(required "$p") --log-level loud
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: --log-level \`loud\`: error, warn, info or debug" ]]
		# shellcheck disable=SC2046
		run "$B/husk-$p" $(required "$p") --log-format xml
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: --log-format \`xml\`: text or json" ]]
	done
	for p in hypervisor proxy netmon; do
		# shellcheck disable=SC2046
		run "$B/husk-$p" $(required "$p") --sandbox ../x
		[ "$status" -eq 100 ]
		[[ "${lines[0]}" == "husk-$p: --sandbox"* ]]
	done
}

@test "daemons: a missing required option exits 100 naming it" {
	run "$B/husk-hypervisor"
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-hypervisor: --state-dir is required" ]
	run "$B/husk-proxy" --socket "$T/p.sock"
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-proxy: --agent and --socket are required" ]
	run "$B/husk-shim" --container c1
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-shim: --proxy and --container are required" ]
	run "$B/husk-netmon" --hv-socket "$T/hv.sock"
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-netmon: --hv-socket and --proxy-socket are required" ]
	run "$B/husk-agent" --channel "unix:$T/a.sock"
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-agent: --channel needs --shared-dir" ]
	run "$B/husk-cache"
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-cache: --root is required" ]
	run "$B/husk-cache" --root relative/root
	[ "$status" -eq 100 ]
	[ "${lines[0]}" = "husk-cache: --root \`relative/root\`: not an absolute path" ]
}

@test "daemons: --log to a directory that is not there: 111, naming the file" {
	for p in hypervisor proxy shim netmon agent cache; do
		# shellcheck disable=SC2046
		run "$B/husk-$p" $(required "$p") --log "$T/none/$p.log"
		[ "$status" -eq 111 ]
		[ "$output" = "husk-$p: open log \`$T/none/$p.log\`: No such file or directory" ]
	done
}

# A fatal set-up error of each daemon's own open step, with --log FILE
# in the given format: the message on stderr and as an error line in the
# log.
fatal_setup() {
	local p=$1 fmt=$2 code=$3 msg=$4
	shift 4
	run "$B/husk-$p" "$@" --log "$T/$p.log" --log-format "$fmt"
	[ "$status" -eq "$code" ]
	[ "$output" = "husk-$p: $msg" ]
	if [ "$fmt" = json ]; then
		grep -F "{\"level\":\"error\",\"msg\":\"$msg\"" "$T/$p.log"
	else
		grep -F "level=error msg=\"$msg\"" "$T/$p.log"
	fi
}

@test "daemons: a fatal set-up error exits with its code, on stderr and in the --log (text and json)" {
	for fmt in text json; do
		rm -f "$T"/*.log
		# not a directory: a system error
		fatal_setup hypervisor "$fmt" 1 \
			"\`/dev/null\` exists and is not a directory" \
			--state-dir /dev/null/hv
		# the socket's directory is not there: not found
		fatal_setup proxy "$fmt" 1 \
			"stat \`$T/nodir\`: No such file or directory" \
			--agent "unix:$T/agent.sock" --socket "$T/nodir/p.sock"
		# no driver to talk to: a peer missing
		fatal_setup netmon "$fmt" 112 \
			"connect \`$T/hv.sock\`: No such file or directory" \
			--hv-socket "$T/hv.sock" --proxy-socket "$T/proxy.sock"
		fatal_setup agent "$fmt" 1 \
			"shared dir \`$T/share\`: No such file or directory" \
			--channel "unix:$T/agent.sock" --shared-dir "$T/share"
		# a configuration that keeps no VM: nothing to do
		printf '[factory]\ncache = 0\n' >"$T/husk.conf"
		fatal_setup cache "$fmt" 1 \
			"[factory] cache is 0 in $T/husk.conf: no VM to keep" \
			--root "$T/root" --config "$T/husk.conf"
	done
}

@test "daemons: husk-shim's fatal set-up error goes to its log and its --ready-fd when stdio is handed over" {
	run "$B/husk-shim" --proxy "$T/proxy.sock" --container c1 --terminal \
		--console-socket "$T/no.sock" --ready-fd 3 \
		--log "$T/shim.log" --log-format json 3>"$T/ready"
	[ "$status" -eq 112 ]
	# stdio was given away (docs/shim.md): nothing on it
	[ -z "$output" ]
	msg="--console-socket: connect \`$T/no.sock\`: No such file or directory"
	grep -F "{\"level\":\"error\",\"msg\":\"$msg\"" "$T/shim.log"
	grep -F "\"tag\":\"shim/c1\"" "$T/shim.log"
	[ "$(cat "$T/ready")" = "$msg" ]
}

@test "daemons: --log-level debug and the sandbox id reach the log" {
	run "$B/husk-netmon" --hv-socket "$T/hv.sock" --proxy-socket "$T/p.sock" \
		--sandbox sb-1 --log "$T/nm.log" --log-level debug
	[ "$status" -eq 112 ]
	grep -F "tag=netmon/sb-1 " "$T/nm.log"
	run "$B/husk-hypervisor" --state-dir /dev/null/hv --sandbox sb-2 \
		--log "$T/hv.log" --log-format json
	[ "$status" -eq 1 ]
	grep -F '"tag":"hypervisor/sb-2"' "$T/hv.log"
}
