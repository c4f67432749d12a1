#!/usr/bin/env bats
# husk's command line without a VM: flags, spec, configuration, bundle
# validation and the errors runc users expect.

setup() {
	BUILD=${BUILD:-build}
	HUSK="$BUILD/bin/husk"
	T=$(mktemp -d /tmp/husk-cli.XXXXXX)
	ROOT="$T/root"
	mkdir -p "$T/bundle/rootfs"
}

teardown() {
	rm -rf "$T"
}

husk() {
	"$HUSK" --root "$ROOT" "$@"
}

# A bundle whose config.json is the default spec with one change made by
# a jq-less sed/printf (the tests keep to POSIX tools).
write_spec() {
	printf '%s\n' "$1" > "$T/bundle/config.json"
}

@test "version and help" {
	run husk --version
	[ "$status" -eq 0 ]
	[[ "$output" == *"husk version"* ]]
	[[ "$output" == *"spec: 1.0"* ]]
	run husk help
	[ "$status" -eq 0 ]
	[[ "$output" == *"create"* && "$output" == *"delete"* ]]
	run husk help exec
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: husk [GLOBAL OPTIONS] exec"* ]]
	run husk state --help
	[ "$status" -eq 0 ]
}

@test "usage errors exit 100 and name the problem" {
	run husk frobnicate
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown command 'frobnicate'"* ]]
	run husk --log-format yaml list
	[ "$status" -eq 100 ]
	[[ "$output" == *"--log-format"* ]]
	run husk state
	[ "$status" -eq 100 ]
	run husk kill c1 NOTASIGNAL
	[ "$status" -eq 100 ]
	[[ "$output" == *"unknown signal 'NOTASIGNAL'"* ]]
	run husk list --format yaml
	[ "$status" -eq 100 ]
	run husk create --bogus c1
	[ "$status" -eq 100 ]
	[[ "$output" == *"--bogus"* ]]
	run husk exec c1
	[ "$status" -eq 100 ]
	[[ "$output" == *"needs a command"* ]]
	run husk exec --tty --detach c1 sh
	[ "$status" -eq 100 ]
	[[ "$output" == *"--console-socket"* ]]
	run husk update --memory lots c1
	[ "$status" -eq 100 ]
}

@test "spec writes runc's default config.json once" {
	run husk spec --bundle "$T/bundle"
	[ "$status" -eq 0 ]
	grep -q '"ociVersion": "1.0' "$T/bundle/config.json"
	grep -q '"maskedPaths"' "$T/bundle/config.json"
	grep -q '"CAP_NET_BIND_SERVICE"' "$T/bundle/config.json"
	run husk spec --bundle "$T/bundle"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config.json exists"* ]]
	run husk spec --bundle "$T/nonexistent"
	[ "$status" -ne 0 ]
	[[ "$output" == *"nonexistent"* ]]
}

@test "unknown containers: a clean 'does not exist' from every verb" {
	for verb in state start pause resume ps events delete; do
		run husk $verb nosuch
		[ "$status" -eq 1 ]
		[[ "$output" == *"container nosuch does not exist"* ]]
	done
	run husk kill nosuch KILL
	[ "$status" -eq 1 ]
	[[ "$output" == *"does not exist"* ]]
	run husk exec nosuch true
	[ "$status" -eq 1 ]
	[[ "$output" == *"does not exist"* ]]
	run husk list --quiet
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run husk list --format json
	[ "$status" -eq 0 ]
	[ "$output" = "[]" ]
}

@test "bad ids are refused before anything is touched" {
	# A valid bundle: only the id can be what is refused.
	"$HUSK" spec --bundle "$T/bundle"
	local ids=("../x" "a/b" ".hidden" "-dash" "" "$(printf 'x%.0s' {1..129})")
	local why=("must not start with '.'" "only A-Z a-z 0-9 _ . + - are allowed"
		"must not start with '.'" "must not start with '-'" "is empty"
		"is longer than 128 bytes")
	for i in "${!ids[@]}"; do
		run husk create --bundle "$T/bundle" -- "${ids[$i]}"
		echo "$output"
		[ "$status" -eq 1 ]
		[[ "$output" == *"container id"*"${why[$i]}"* ]]
	done
	[ ! -e "$T/x" ]
	run ls -A "$ROOT"
	[ -z "$output" ]
}

@test "bad bundles get one error naming the field, and leave nothing" {
	run husk create --bundle "$T/nonexistent" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"nonexistent"* ]]

	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"config.json"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"},'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"config.json:"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"process: missing"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": [], "cwd": "/"}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"process.args: must not be empty"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "relative"}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"process.cwd: 'relative' is not an absolute path"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/", "user": {"uid": "root"}}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"process.user.uid: expected an integer, got a string"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_FLY"]}}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"unknown capability 'CAP_FLY'"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "missing"}, "process": {"args": ["sh"], "cwd": "/"}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"root.path"* && "$output" == *"No such file"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "linux": {"namespaces": [{"type": "user"}]}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"user namespaces are not supported"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "hooks": {"prestart": [{"path": "relative/hook"}]}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"hooks.prestart[0].path"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/", "terminal": true}}'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"--console-socket"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"io.kubernetes.cri.container-type": "container"}}'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *"io.kubernetes.cri.sandbox-id is missing"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "nosuchpod"}}'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"nosuchpod"* && "$output" == *"does not exist"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"io.husk.config.hypervisor.kernel": "/evil"}}'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"io.husk.config.hypervisor.kernel: not one husk lets a container change"* ]]

	write_spec '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"io.husk.config.hypervisor.memory_mb": "999999"}}'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *"memory_mb: '999999' is not a whole number in [64, 2048]"* ]]

	# Nothing of c1 is left behind by any of these.
	run husk list --quiet
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ -z "$(ls -A "$ROOT" 2>/dev/null)" ]
}

@test "configuration file: effective values, and errors naming line and key" {
	printf '[hypervisor]\nvcpus = 2\nmemory_mb = 512\naccel = "tcg"\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[ "$status" -eq 0 ]
	[[ "$output" == *"vcpus = 2"* ]]
	[[ "$output" == *"memory_mb = 512"* ]]
	[[ "$output" == *'accel = "tcg"'* ]]
	[[ "$output" == *"$T/husk.conf"* ]]

	printf '[hypervisor]\nvcpus = 2\nvcpu = 3\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[ "$status" -eq 1 ]
	[[ "$output" == *"husk.conf:3"* && "$output" == *"unknown key 'vcpu'"* ]]

	printf '[hypervisor]\naccel = warp\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[[ "$output" == *"husk.conf:2"* && "$output" == *"accel"* ]]

	printf '[hypervisor]\nvcpus = 8\nmax_vcpus = 2\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[ "$status" -eq 1 ]
	[[ "$output" == *"max_vcpus"* ]]

	printf '[nosuch]\nx = 1\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[[ "$output" == *"unknown section [nosuch]"* ]]

	run husk --config "$T/missing.conf" env
	[ "$status" -ne 0 ]
	[[ "$output" == *"missing.conf"* ]]

	printf '[factory]\ntemplate = true\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" check
	[[ "$output" == *"not implemented"* ]]
}

@test "check names the accelerator and why" {
	run husk check
	[[ "$output" == *"accelerator"* ]]
	if grep -qE 'vmx|svm' /proc/cpuinfo; then
		[[ "$output" == *"KVM"* || "$output" == *"TCG"* ]]
	else
		[[ "$output" == *"TCG"* && "$output" == *"no vmx/svm"* ]]
		[[ "$output" == *"hotplug"*"does not unplug vCPUs under TCG"* ]]
	fi
	[[ "$output" == *"verdict:"* ]]
	printf '[hypervisor]\naccel = kvm\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" check
	if ! grep -qE 'vmx|svm' /proc/cpuinfo; then
		[ "$status" -eq 1 ]
		[[ "$output" == *"kvm is forced by the configuration but cannot work"* ]]
	fi
}

@test "--log with --log-format json gets the error as a JSON line" {
	run husk --log "$T/log.json" --log-format json state nosuch
	[ "$status" -eq 1 ]
	grep -q '"level":"error"' "$T/log.json"
	grep -q 'does not exist' "$T/log.json"
}

@test "version, --log-format text, and HUSK_CONFIG under --config" {
	run husk version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "husk version "* ]]
	[[ "${lines[1]}" == "spec: 1.0."* ]]
	# text: a UTC timestamp, the program and pid, the level, the message
	run husk --log "$T/log.txt" --log-format text state nosuch
	[ "$status" -eq 1 ]
	cat "$T/log.txt"
	grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z husk\[[0-9]+\]: error: container nosuch does not exist$' "$T/log.txt"
	run husk --log-format yaml state nosuch
	[ "$status" -eq 100 ]
	[[ "$output" == *"--log-format: 'yaml' is not text or json"* ]]
	# HUSK_CONFIG stands for the default file; --config wins over it.
	printf '[hypervisor]\nvcpus = 3\nmax_vcpus = 4\n' >"$T/env.conf"
	printf '[hypervisor]\nvcpus = 2\n' >"$T/opt.conf"
	run env HUSK_CONFIG="$T/env.conf" "$HUSK" --root "$ROOT" env
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"($T/env.conf)"* ]]
	[[ "$output" == *$'\nvcpus = 3\n'* ]]
	run env HUSK_CONFIG="$T/env.conf" "$HUSK" --root "$ROOT" --config "$T/opt.conf" env
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"($T/opt.conf)"* ]]
	[[ "$output" == *$'\nvcpus = 2\n'* ]]
	run env HUSK_CONFIG="$T/nope.conf" "$HUSK" --root "$ROOT" env
	[ "$status" -eq 1 ]
	[[ "$output" == *"open configuration \`$T/nope.conf\`: No such file or directory"* ]]
}
