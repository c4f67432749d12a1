/*
 * husk-cache's confinement, for the server only (the booter, forked
 * before, keeps root's privileges for what it starts: cache/booter.c):
 * no capabilities, its socket and the booter's socketpair, and /proc
 * read to tell a dead VM's helpers from live ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "cache/cache.h"
#include "libhusk/confine.h"

static const char *const cache_syscalls[] = {
	/* peers' credentials on the RPC socket */
	"getsockname", "getpeername",
	/* removing the socket when leaving */
	"unlink", "unlinkat",
	NULL,
};

static const struct husk_errno_rule cache_deny[] = {
	{ "ioctl", ENOTTY },
	{ "prctl", EPERM },
	{ NULL, 0 },
};

static const struct husk_arg_rule cache_args[] = {
	/* /proc/<pid>/stat, read only (husk_proc_alive) */
	{ "openat", 2, HUSK_ARG_MASKED_EQ, O_RDONLY,
	  O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND },
	/* malloc and libev map data, never code */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
};

static const struct husk_rlimit_rule cache_rlimits[] = {
	{ RLIMIT_CORE, 0, 0 },
	{ -1, 0, 0 },
};

int cache_confine(struct husk_daemon *d, struct husk_err **err)
{
	const struct husk_profile profile = {
		.name = "husk-cache",
		.syscalls = cache_syscalls,
		.deny = cache_deny,
		.allow_args = cache_args,
		.caps = NULL,
		.rlimits = cache_rlimits,
	};
	const struct husk_confine_opts o = {
		.seccomp_debug = d->seccomp_debug,
		.no_seccomp = d->no_seccomp,
	};

	return husk_confine(&profile, &o, err);
}
