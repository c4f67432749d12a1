# Helpers for the bats files that drive husk end to end (sourced).
#
#   husk_setup_root       ROOT and a bundle with a busybox rootfs
#   make_bundle DIR ARGS  a bundle running ARGS (no terminal)
#   husk ARGS             the CLI with --root ROOT
#   wait_status ID ST     poll `husk state` until status ST (bounded)
#   assert_gone ID        nothing of sandbox ID is left: processes,
#                         mounts, sockets, state

source "$(dirname "${BASH_SOURCE[0]}")/rootfs.sh"
source "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

HUSK_BIN="${BUILD:-build}/bin/husk"

husk() {
	"$HUSK_BIN" --root "$ROOT" "$@"
}

# make_bundle DIR ARG...: config.json from `husk spec`, terminal off,
# args replaced (each ARG a JSON string).
make_bundle() {
	local dir=$1 args
	shift
	mkdir -p "$dir"
	[ -d "$dir/rootfs/bin" ] || make_rootfs "$dir/rootfs"
	rm -f "$dir/config.json"
	"$HUSK_BIN" spec --bundle "$dir"
	args=$(printf '"%s", ' "$@")
	args="[${args%, }]"
	sed -i -e 's/"terminal": true/"terminal": false/' \
		-e "/\"args\": \[/,/\]/c\\    \"args\": $args," "$dir/config.json"
}

# Replace the annotations of a bundle's config.json (JSON object text).
set_annotations() {
	local dir=$1 json=$2
	sed -i "s|\"ociVersion\": \"1.0.2\",|\"ociVersion\": \"1.0.2\", \"annotations\": $json,|" \
		"$dir/config.json"
}

wait_status() {
	local id=$1 want=$2 i
	for i in $(seq 1 300); do
		if husk state "$id" 2>/dev/null | grep -q "\"status\": \"$want\""; then
			return 0
		fi
		sleep 0.1
	done
	echo "container $id never became $want:" >&2
	husk state "$id" >&2
	return 1
}

# Nothing left of sandbox/container $1 under $ROOT.
assert_gone() {
	local id=$1 i
	# Processes may take a moment to be reaped after SIGKILL.
	for i in $(seq 1 100); do
		pgrep -f "$ROOT/$id/" >/dev/null || break
		sleep 0.1
	done
	if pgrep -af "$ROOT/$id/"; then
		echo "processes of $id left behind" >&2
		return 1
	fi
	if grep -q " $ROOT/$id" /proc/self/mountinfo; then
		echo "mounts of $id left behind:" >&2
		grep " $ROOT/$id" /proc/self/mountinfo >&2
		return 1
	fi
	if [ -e "$ROOT/$id" ]; then
		echo "state of $id left behind:" >&2
		find "$ROOT/$id" >&2
		return 1
	fi
}

# A command that leaves a shim behind (create, run --detach, exec
# --detach): the shim keeps the stdio it inherits, as runc's init does,
# so bats' `run` would wait for its end of the pipe forever.  The shim
# gets a file instead, whose first lines are the command's own output.
husk_detached() {
	local out="$BATS_TEST_TMPDIR/detached.$$.$RANDOM" rc=0
	"$HUSK_BIN" --root "$ROOT" "$@" </dev/null >"$out" 2>&1 || rc=$?
	cat "$out"
	return $rc
}

# set_memory_limit DIR BYTES: linux.resources.memory.limit in the bundle.
set_memory_limit() {
	sed -i "s|\"resources\": {|\"resources\": {\"memory\": {\"limit\": $2},|" \
		"$1/config.json"
}

# set_cgroups_path DIR PATH
set_cgroups_path() {
	sed -i "s|\"linux\": {|\"linux\": {\"cgroupsPath\": \"$2\",|" "$1/config.json"
}

# The guest's MemTotal in kB, as container ID sees it.
guest_mem_kb() {
	husk exec "$1" sh -c 'grep MemTotal /proc/meminfo' | awk '{ print $2 }'
}

# escaped_pod BUNDLE RW RO CONF: run BUNDLE as the pod sandbox "pod"
# with what a container that escaped has (every file and process
# capability, the VM's pid namespace, no seccomp, a writable root), RW
# bound at /volrw and RO read-only at /volro (share-vm.bats,
# share9p.bats).
escaped_pod() {
	local caps='["CAP_SYS_ADMIN","CAP_SYS_PTRACE","CAP_MKNOD","CAP_FOWNER","CAP_FSETID","CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_SETUID","CAP_SETGID","CAP_KILL"]'
	jq --argjson c "$caps" --arg rw "$2" --arg ro "$3" '
	    .process.capabilities = {bounding: $c, effective: $c, permitted: $c}
	    | .linux.namespaces |= map(select(.type != "pid"))
	    | .process.noNewPrivileges = false
	    | del(.linux.seccomp) | .root.readonly = false
	    | .mounts += [{destination: "/volrw", type: "bind", source: $rw,
			   options: ["rbind", "rw"]},
			  {destination: "/volro", type: "bind", source: $ro,
			   options: ["rbind", "ro"]}]' \
		"$1/config.json" >"$1/config.json.new"
	mv "$1/config.json.new" "$1/config.json"
	"$HUSK_BIN" --root "$ROOT" --config "$4" run -d --bundle "$1" pod \
		</dev/null >/dev/null 2>"$BATS_FILE_TMPDIR/run.err" || {
		cat "$BATS_FILE_TMPDIR/run.err" >&2
		return 1
	}
}
