# Waiting on a condition instead of on the clock (sourced).
#
#   wait_for [-t SECS] CMD...   run CMD every 0.1 s until it succeeds;
#                               after SECS (default 60) say what was
#                               awaited and fail
#   proc_gone PID               PID has exited (or is a zombie)
#
# The bound only ends a wait that would otherwise hang: it is generous,
# and no test asserts how long anything took.

wait_for() {
	local limit=60 end
	if [ "${1:-}" = -t ]; then
		limit=$2
		shift 2
	fi
	end=$((SECONDS + limit))
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.1
	done
	echo "wait_for: still failing after ${limit}s: $*" >&2
	return 1
}

proc_gone() {
	! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}
