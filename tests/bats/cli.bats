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
	# exec's own failures are all 255 (runc's), usage ones too.
	run husk exec c1
	[ "$status" -eq 255 ]
	[[ "$output" == *"needs a command"* ]]
	run husk exec --tty --detach c1 sh
	[ "$status" -eq 255 ]
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
	[ "$status" -eq 255 ]
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
	[[ "$output" == *"[factory] template needs [hypervisor] shared_fs = virtio-9p"* ]]
	printf '[factory]\ntemplate_path = "relative"\n' > "$T/husk.conf"
	run husk --config "$T/husk.conf" env
	[ "$status" -ne 0 ]
	[[ "$output" == *"[factory] template_path: 'relative' is not an absolute path"* ]]
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

# A spec whose root.path is $1 (JSON string) and mounts $2 (JSON array).
spec_root() {
	write_spec "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": $1}, \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}, \"mounts\": ${2:-[]}}"
}

@test "config.json must be a regular file: a fifo, a directory, a device, a symlink are refused at once" {
	mkfifo "$T/bundle/config.json"
	# A fifo would block a plain open: timeout turns a hang into 124.
	run timeout 20 "$HUSK" --root "$ROOT" create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *'`config.json` is a fifo, not a regular file'* ]]
	rm "$T/bundle/config.json"
	mkdir "$T/bundle/config.json"
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *'`config.json` is a directory, not a regular file'* ]]
	rmdir "$T/bundle/config.json"
	mknod "$T/bundle/config.json" c 1 5
	run timeout 20 "$HUSK" --root "$ROOT" create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *'`config.json` is a character device, not a regular file'* ]]
	rm "$T/bundle/config.json"
	mkdir "$T/bundle.real"
	"$HUSK" spec --bundle "$T/bundle.real"
	ln -s "$T/bundle.real/config.json" "$T/bundle/config.json"
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *'`config.json` is a symbolic link, not a file'* ]]
	[ -z "$(ls -A "$ROOT" 2>/dev/null)" ]
}

@test "root.path: the host's / and system directories are refused, by name and through a link" {
	ln -s / "$T/hostroot"
	ln -s /usr "$T/hostusr"
	for p in / /usr /usr/ /etc /etc/ssl /var/lib /proc/self /sys/fs /dev \
		 /boot "$T/hostroot" "$T/hostusr" "$T/../../usr"; do
		spec_root "\"$p\""
		run husk create --bundle "$T/bundle" c1
		[ "$status" -eq 1 ]
		[[ "$output" == *"config.json: root.path \`"*"\` is "*"the host's /"*"a container's root must be a directory of its own"* ]]
	done
	spec_root '"/"'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *'root.path `/` is the host'"'"'s /:'* ]]
	spec_root "\"$T/hostusr\""
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *'root.path `/usr` is the host'"'"'s /usr'* ]]
	[ -z "$(ls -A "$ROOT" 2>/dev/null)" ]
}

@test "relative root.path and bind sources stay in the bundle: no .., no symlink out" {
	mkdir -p "$T/outside" "$T/bundle/vol"
	ln -s "$T/outside" "$T/bundle/abs-link"
	ln -s ../outside "$T/bundle/rel-link"
	ln -s /proc/self/root "$T/bundle/magic"
	for p in ../outside rootfs/../../outside abs-link rel-link abs-link/ magic; do
		spec_root "\"$p\""
		run husk create --bundle "$T/bundle" c1
		[ "$status" -eq 1 ]
		[[ "$output" == *"config.json: root.path \`$p\` leads out of the bundle"* ]]
	done
	for p in ../outside abs-link rel-link vol/../../outside; do
		spec_root '"rootfs"' "[{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"$p\", \"options\": [\"rbind\"]}]"
		run husk create --bundle "$T/bundle" c1
		[ "$status" -eq 1 ]
		[[ "$output" == *"config.json: mounts[0].source \`$p\` leads out of the bundle"* ]]
	done
	# A symlink that stays inside is followed; a missing source is named.
	ln -s rootfs "$T/bundle/root-link"
	spec_root '"rootfs"' '[{"destination": "/v", "type": "bind", "source": "nosuch"}]'
	run husk create --bundle "$T/bundle" c1
	[ "$status" -eq 1 ]
	[[ "$output" == *'mounts[0].source `nosuch`: No such file'* ]]
	spec_root '"root-link"' '[{"destination": "/v", "type": "bind", "source": "nosuch"}]'
	run husk create --bundle "$T/bundle" c1
	[[ "$output" == *'mounts[0].source `nosuch`'* ]]
	[ -z "$(ls -A "$ROOT" 2>/dev/null)" ]
}

@test "the state root must be ours and not writable by group or others" {
	mkdir -m 0777 "$T/ww"
	chmod 0777 "$T/ww"
	run "$HUSK" --root "$T/ww" list
	[ "$status" -ne 0 ]
	[[ "$output" == *"state root \`$T/ww\` is writable by others (mode 0777): make it 0700"* ]]
	chmod 0770 "$T/ww"
	run "$HUSK" --root "$T/ww" state c1
	[ "$status" -ne 0 ]
	[[ "$output" == *"is writable by its group (mode 0770)"* ]]
	chmod 0700 "$T/ww"
	chown 65534 "$T/ww"
	run "$HUSK" --root "$T/ww" delete --force c1
	[ "$status" -ne 0 ]
	[[ "$output" == *"state root \`$T/ww\` is owned by uid 65534, not by uid 0 (root)"* ]]
	chown 0 "$T/ww"
	run "$HUSK" --root "$T/ww" list
	[ "$status" -eq 0 ]
	# One husk makes is 0700.
	run husk list
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$ROOT")" = 700 ]
}

# A state entry written by hand: state.json $2 and sandbox.json $3.
plant_state() {
	mkdir -p -m 0700 "$ROOT/$1"
	: >"$ROOT/$1/.lock"
	printf '%s\n' "$2" >"$ROOT/$1/state.json"
	if [ -n "$3" ]; then
		printf '%s\n' "$3" >"$ROOT/$1/sandbox.json"
	fi
}

@test "a damaged state cannot steer delete --force: bad fields are refused, the rest is removed" {
	run husk list
	mkdir -p "$T/victim-cg" "$ROOT/c1/cg"
	: >"$T/victim-ns"
	: >"$T/victim-ns2"
	cp /etc/passwd "$T/passwd.before"
	plant_state c1 "{\"id\": \"c1\", \"sandbox_id\": \"c1\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": 0, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\", \"cgroups\": [\"/sys/fs/cgroup/../..$T/victim-cg\", \"$T/victim-cg\", \"/sys/fs/cgroup\"]}" \
		"{\"id\": \"c1\", \"hypervisor\": {\"pid\": 0, \"start\": 0}, \"proxy\": {\"pid\": 0, \"start\": 0}, \"accel\": \"tcg\", \"netns\": \"$ROOT/c1/../../victim-ns\", \"netns_created\": true}"
	run husk delete --force c1
	[ "$status" -eq 0 ]
	[[ "$output" == *"state of c1: cgroups[0]: \`/sys/fs/cgroup/../..$T/victim-cg\` is not a directory below /sys/fs/cgroup: left alone"* ]]
	[[ "$output" == *"cgroups[1]: \`$T/victim-cg\` is not a directory below /sys/fs/cgroup"* ]]
	[[ "$output" == *"cgroups[2]"* ]]
	[[ "$output" == *"sandbox state of c1: network namespace \`$ROOT/c1/../../victim-ns\` husk made is not \`$ROOT/c1/netns\`: left alone"* ]]
	[ -d "$T/victim-cg" ]
	[ -f "$T/victim-ns" ]
	[ ! -e "$ROOT/c1" ]

	# A given namespace outside the places they live, or the host's: not
	# scrubbed, not unmounted.
	plant_state c2 "{\"id\": \"c2\", \"sandbox_id\": \"c2\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": 0, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}" \
		"{\"id\": \"c2\", \"hypervisor\": {\"pid\": 0, \"start\": 0}, \"proxy\": {\"pid\": 0, \"start\": 0}, \"accel\": \"tcg\", \"netns\": \"/etc/passwd\", \"netns_created\": false}"
	run husk delete --force c2
	[ "$status" -eq 0 ]
	[[ "$output" == *"network namespace \`/etc/passwd\` is not below the state directory, /var/run/netns, /run/netns or /proc: left alone"* ]]
	cmp /etc/passwd "$T/passwd.before"
	[ ! -e "$ROOT/c2" ]
	plant_state c3 "{\"id\": \"c3\", \"sandbox_id\": \"c3\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": 0, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}" \
		"{\"id\": \"c3\", \"hypervisor\": {\"pid\": 0, \"start\": 0}, \"proxy\": {\"pid\": 0, \"start\": 0}, \"accel\": \"tcg\", \"netns\": \"/proc/$$/ns/net\", \"netns_created\": false}"
	run husk delete --force c3
	[ "$status" -eq 0 ]
	[[ "$output" == *"network namespace \`/proc/$$/ns/net\` is the host's: left alone"* ]]
	[ ! -e "$ROOT/c3" ]
}

@test "a damaged state's ids and pids are refused by name; delete --force removes the state alone" {
	run husk list
	plant_state c4 "{\"id\": \"c4\", \"sandbox_id\": \"c4\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"running\", \"shim\": {\"pid\": 1, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}"
	run husk state c4
	[ "$status" -ne 0 ]
	[[ "$output" == *"state of c4 is damaged: shim: pid 1 is not a process husk starts"* ]]
	run husk delete --force c4
	[ "$status" -eq 0 ]
	[[ "$output" == *"state of c4 is damaged"*"removing its state only"* ]]
	[ ! -e "$ROOT/c4" ]
	kill -0 1

	plant_state c5 "{\"id\": \"c5\", \"sandbox_id\": \"../../etc\", \"is_sandbox\": false, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": 0, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}"
	run husk state c5
	[ "$status" -ne 0 ]
	[[ "$output" == *"state of c5 is damaged: sandbox_id \`../../etc\` must not start with '.'"* ]]
	plant_state c6 "{\"id\": \"other\", \"sandbox_id\": \"c6\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": -5, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}"
	run husk state c6
	[[ "$output" == *"state of c6 is damaged: id is not \`c6\`"* ]]
	plant_state c7 "{\"id\": \"c7\", \"sandbox_id\": \"c7\", \"is_sandbox\": true, \"bundle\": \"$T/bundle\", \"status\": \"stopped\", \"shim\": {\"pid\": -5, \"start\": 0}, \"created\": \"2026-01-01T00:00:00Z\"}"
	run husk state c7
	[[ "$output" == *"shim: pid -5 is not a process husk starts"* ]]
	# A state file that is a fifo does not hang a reader.
	rm "$ROOT/c7/state.json"
	mkfifo "$ROOT/c7/state.json"
	run timeout 20 "$HUSK" --root "$ROOT" state c7
	[ "$status" -eq 1 ]
	[[ "$output" == *'`state.json` is a fifo, not a regular file'* ]]
	for id in c5 c6 c7; do
		run husk delete --force $id
		[ "$status" -eq 0 ]
		[ ! -e "$ROOT/$id" ]
	done
}

@test "control characters in what the CLI echoes back are escaped" {
	run husk state $'a\e[2J\e]0;x\ab\r\nhusk: forged'
	[ "$status" -ne 0 ]
	[[ "$output" == *'container id `a\x1b[2J\x1b]0;x\x07b\x0d\x0ahusk: forged`'* ]]
	[[ "$output" != *$'\e'* && "$output" != *$'\r'* ]]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
	run husk --log "$T/log" state $'x\e[1A'
	[ "$status" -ne 0 ]
	run grep -c $'\e' "$T/log"
	[ "$output" = 0 ]
	# The log line quotes the escaped text as logrus does (\\ for \).
	grep -q 'x\\\\x1b\[1A' "$T/log"
}

@test "version, --log-format text, and HUSK_CONFIG under --config" {
	run husk version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "husk version "* ]]
	[[ "${lines[1]}" == "spec: 1.0."* ]]
	# text: runc's (logrus') shape: time, level, msg, then tag and pid
	run husk --log "$T/log.txt" --log-format text state nosuch
	[ "$status" -eq 1 ]
	cat "$T/log.txt"
	grep -qE '^time="[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z" level=error msg="container nosuch does not exist" tag=husk pid=[0-9]+$' "$T/log.txt"
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

@test "runc's flags husk takes and ignores, or refuses: accepted where husk(8) says so" {
	# Global flags for runc's own machinery: taken, nothing changes.
	run husk --criu /usr/sbin/criu --rootless false --systemd-cgroup list
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == ID*STATUS* ]]
	# create's and run's: the error is the bundle's, not the flag's.
	run husk create --no-pivot --no-new-keyring --bundle "$T/nonexistent" x
	[ "$status" -eq 1 ]
	[[ "$output" == *"bundle \`$T/nonexistent\`: No such file or directory"* ]]
	run husk run --no-subreaper --bundle "$T/nonexistent" x
	[ "$status" -eq 1 ]
	[[ "$output" == *"bundle \`$T/nonexistent\`"* ]]
	# update's resource flags parse (the error is the container's) ...
	for f in "--blkio-weight 300" "--memory-swap 1000000" \
		 "--cpu-rt-period 1000 --cpu-rt-runtime 10"; do
		run husk update $f nosuch
		[ "$status" -eq 1 ]
		[[ "$output" == *"container nosuch does not exist"* ]]
	done
	# ... and Intel RDT is refused with the reason.
	run husk update --mem-bw-schema MB:0=70 nosuch
	[ "$status" -ne 0 ]
	[[ "$output" == *"Intel RDT is not available in a VM"* ]]
}
