#!/usr/bin/env bats
# docker (Debian's docker.io) with husk as a runtime: a private dockerd
# and containerd started here, in a network namespace of the test's
# where dockerd's bridge (docker0, 10.214.5.1/24, no iptables) stays,
# an image made from busybox-static with `docker import`, no registry.
# One container (one TCG VM) at a time.

load lib/engines.sh

bats_require_minimum_version 1.5.0

IMG=husk-busybox:test

setup_file() {
	engines_skip_unless_ready docker
	engines_setup
	# docker's bridge and its userland proxy for -p, as by default.
	export ENGINES_CTD_NETNS=hkdk$$ ENGINES_DOCKERD_BRIDGE=10.214.5.1/24 \
		ENGINES_DOCKERD_USERLAND_PROXY=true
	ip netns add "$ENGINES_CTD_NETNS"
	ip -n "$ENGINES_CTD_NETNS" link set lo up
	engines_start_containerd
	engines_start_dockerd
	engines_import_image "$IMG"
}

teardown_file() {
	engines_teardown
	[ -n "${ENGINES_CTD_NETNS:-}" ] && ip netns del "$ENGINES_CTD_NETNS"
	[ -n "${EN:-}" ] && rm -rf "$EN"
	true
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || engines_show_logs
	tmux -L "husk-dk-$$" kill-server 2>/dev/null || true
}

hk_run() {
	dk run --runtime husk --network none "$@"
}

# Wait until container $1 has printed $2 (docker logs).
wait_log() {
	for _ in $(seq 1 300); do
		dk logs "$1" 2>&1 | grep -q -- "$2" && return 0
		sleep 0.1
	done
	dk logs "$1"
	return 1
}

@test "docker run --rm: output from the VM and the exit code" {
	run --separate-stderr timeout 180 "$DOCKER_BIN" -H "unix://$EN/docker.sock" \
		run --rm --runtime husk --network none "$IMG" \
		sh -c 'uname -r; echo to-stderr >&2; exit 7'
	echo "$output / $stderr"
	[ "$status" -eq 7 ]
	[ -n "$output" ]
	[ "$output" != "$(uname -r)" ]
	[[ "$stderr" == *to-stderr* ]]
	# --rm removed it, and husk has nothing of it either.
	[ -z "$(dk ps -aq)" ]
	grep -q " create .*--bundle" "$EN/runtime.calls"
	for r in $(_engines_husk_roots); do
		run "$BUILD/bin/husk" --root "$r" list --quiet
		[ -z "$output" ]
	done
}

@test "docker run on docker's bridge network: the address and route docker gave reach the VM, the gateway answers, a published port reaches a server in it, and the link goes with the container" {
	# docker's network is made by a prestart hook (libnetwork-setkey)
	# that finds the container's namespace through its pid: husk's
	# shim is in the sandbox's, and the link the hook added is mirrored
	# into the VM after it.
	run timeout 180 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run -d \
		--runtime husk --name n1 -p 127.0.0.1:18080:8080 "$IMG" \
		sh -c 'mkdir /www; echo served-from-the-vm >/www/index.html; exec httpd -f -p 8080 -h /www'
	[ "$status" -eq 0 ]
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" exec n1 \
		sh -c 'uname -r; ip -4 addr show eth0; ip route; ping -c 1 -W 10 10.214.5.1'
	echo "$output"
	[ "$status" -eq 0 ]
	# In the VM's kernel.
	[ "${lines[0]}" != "$(uname -r)" ]
	[[ "$output" == *"inet 10.214.5."*"/24"* ]]
	[[ "$output" == *"default via 10.214.5.1 dev eth0"* ]]
	[[ "$output" == *"1 packets received"* ]]
	# -p: docker's userland proxy, in dockerd's namespace, reaches the
	# server in the VM through the bridge.
	for _ in $(seq 1 100); do
		out=$(nsenter --net="/run/netns/$ENGINES_CTD_NETNS" \
			wget -q -O - -T 5 http://127.0.0.1:18080/ 2>/dev/null) && break
		sleep 0.2
	done
	[ "$out" = served-from-the-vm ]
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" rm -f n1
	[ "$status" -eq 0 ]
	# The host end of docker's veth went with the container's
	# namespace, which husk made and removed.
	for _ in $(seq 1 100); do
		[ -z "$(ip -n "$ENGINES_CTD_NETNS" -o link show master docker0)" ] && break
		sleep 0.1
	done
	[ -z "$(ip -n "$ENGINES_CTD_NETNS" -o link show master docker0)" ]
	for r in $(_engines_husk_roots); do
		run "$BUILD/bin/husk" --root "$r" list --quiet
		[ -z "$output" ]
	done
}

@test "docker run --network host is refused, naming husk.conf's host_network" {
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run --rm \
		--runtime husk --network host "$IMG" true
	echo "$output"
	[ "$status" -eq 125 ]
	[[ "$output" == *"is the host's network namespace"* ]]
	[[ "$output" == *"host_network = true"* ]]
	[ -z "$(dk ps -aq)" ]
}

@test "docker run -d, exec with and without -t, logs, top, stop (SIGTERM seen)" {
	run timeout 180 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run -d \
		--runtime husk --network none --name d1 "$IMG" \
		sh -c 'trap "echo got-TERM; exit 0" TERM; echo started; while true; do sleep 1; done'
	[ "$status" -eq 0 ]
	wait_log d1 started
	[ "$(dk inspect -f '{{.State.Running}}' d1)" = true ]

	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" exec d1 \
		sh -c 'echo in-exec; test -t 0 || echo no-tty; exit 5'
	[ "$status" -eq 5 ]
	[[ "$output" == *in-exec* && "$output" == *no-tty* ]]

	# -t: a terminal in the guest, through a pty here.
	run timeout 60 script -qec "$DOCKER_BIN -H unix://$EN/docker.sock exec -t d1 sh -c 'test -t 0 && echo is-a-tty; tty'" /dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *is-a-tty* && "$output" == */dev/pts/* ]]

	run dk logs d1
	[[ "$output" == *started* ]]

	# docker top lists host processes: the one standing for the
	# container is its shim.
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" top d1
	[ "$status" -eq 0 ]
	echo "$output"
	[ "$(echo "$output" | wc -l)" -eq 2 ]
	[[ "$output" == *husk-shim* ]]
	id=$(dk inspect -f '{{.Id}}' d1)
	[[ "$output" == *"--container $id"* ]]

	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" stop -t 30 d1
	[ "$status" -eq 0 ]
	[ "$(dk inspect -f '{{.State.ExitCode}}' d1)" -eq 0 ]
	run dk logs d1
	[[ "$output" == *got-TERM* ]]
	run dk rm d1
	[ "$status" -eq 0 ]
	[ -z "$(dk ps -aq)" ]
}

@test "docker kill stops it with SIGKILL; docker rm removes it" {
	run timeout 180 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run -d \
		--runtime husk --network none --name k1 "$IMG" \
		sh -c 'trap "" TERM; echo started; while true; do sleep 1; done'
	[ "$status" -eq 0 ]
	wait_log k1 started
	# A signal the process traps reaches it and leaves it running.
	run dk exec k1 true
	[ "$status" -eq 0 ]
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" kill k1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		[ "$(dk inspect -f '{{.State.Running}}' k1)" = false ] && break
		sleep 0.1
	done
	[ "$(dk inspect -f '{{.State.Running}} {{.State.ExitCode}}' k1)" = "false 137" ]
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" rm k1
	[ "$status" -eq 0 ]
	run dk inspect k1
	[ "$status" -ne 0 ]
	for r in $(_engines_husk_roots); do
		run "$BUILD/bin/husk" --root "$r" list --quiet
		[ -z "$output" ]
	done
}

@test "docker run -it through a pty answers typed input" {
	command -v tmux >/dev/null || skip "no tmux"
	sess=husk-dk-$$
	tmux -L "$sess" new-session -d -x 80 -y 24 \
		"$DOCKER_BIN -H unix://$EN/docker.sock run -it --rm --runtime husk --network none $IMG sh; echo \$? >$EN/it.rc; sleep 60"
	pane() { tmux -L "$sess" capture-pane -p -t 0; }
	wait_for() {
		for _ in $(seq 1 600); do pane | grep -q -- "$1" && return 0; sleep 0.2; done
		pane
		return 1
	}
	wait_for '^/ #'
	tmux -L "$sess" send-keys -t 0 'echo hi-$((6*7))' Enter
	wait_for "^hi-42"
	# docker sends the window size once the container started, as it
	# does to runc; the shell may be up before it arrives.
	for _ in $(seq 1 30); do
		tmux -L "$sess" send-keys -t 0 'stty size' Enter
		pane | grep -q "^24 80" && break
		sleep 1
	done
	wait_for "^24 80"
	tmux -L "$sess" send-keys -t 0 'exit 9' Enter
	for _ in $(seq 1 300); do [ -s "$EN/it.rc" ] && break; sleep 0.1; done
	tmux -L "$sess" kill-server 2>/dev/null || true
	[ "$(cat "$EN/it.rc")" = 9 ]
}

@test "nothing left after docker rm -f and stopping the daemons" {
	run timeout 180 "$DOCKER_BIN" -H "unix://$EN/docker.sock" run -d \
		--runtime husk --network none --name f1 "$IMG" sleep 100000
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		[ "$(dk inspect -f '{{.State.Running}}' f1)" = true ] && break
		sleep 0.1
	done
	id=$(dk inspect -f '{{.Id}}' f1)
	pgrep -f "qemu-system.*$id" >/dev/null
	run timeout 60 "$DOCKER_BIN" -H "unix://$EN/docker.sock" rm -f f1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 100); do
		pgrep -f "$id" >/dev/null || break
		sleep 0.1
	done
	run ! pgrep -af "$id"
	_engines_kill_pidfile "$EN/dockerd.bgpid"
	_engines_kill_pidfile "$EN/containerd.pid"
	# dockerd's own bind of the namespace --network host uses (made by
	# the test above; husk refused it), which dockerd leaves mounted.
	umount "$EN/dexec/netns/default" 2>/dev/null || true
	engines_assert_clean
	for r in $(_engines_husk_roots); do
		[ -z "$(ls -A "$r")" ]
	done
}
