/*
 * husk-proxy's confinement: no capabilities, the configured user, and
 * the syscalls of a libev loop shuffling frames between sockets.
 */
#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "libhusk/confine.h"
#include "libhusk/daemon.h"
#include "proxy.h"

static const char *const proxy_syscalls[] = {
	/* reconnecting to the agent channel when the VM comes back
	 * (socket itself: AF_UNIX only, below) */
	"connect", "getsockopt", "setsockopt",
	/* removing the client socket when leaving */
	"unlink", "unlinkat",
	NULL,
};

static const struct husk_errno_rule proxy_deny[] = {
	/* libc probes these; failing cleanly costs nothing */
	{ "ioctl", ENOTTY },
	{ NULL, 0 },
};

static const struct husk_arg_rule proxy_args[] = {
	/* the agent channel is a unix socket; nothing else is opened */
	{ "socket", 0, HUSK_ARG_EQ, AF_UNIX, 0 },
	/* malloc and libev map data, never code */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
};

static const struct husk_rlimit_rule proxy_rlimits[] = {
	/* no core dumps of a process holding guest data */
	{ RLIMIT_CORE, 0, 0 },
	{ -1, 0, 0 },
};

/* The proxy's confinement point: after px_open (main.c). */
int proxy_confine(struct husk_daemon *d, struct husk_err **err)
{
	const struct proxy *p = d->arg;
	const struct husk_profile profile = {
		.name = "husk-proxy",
		.syscalls = proxy_syscalls,
		.deny = proxy_deny,
		.allow_args = proxy_args,
		.caps = NULL,
		.rlimits = proxy_rlimits,
	};
	const struct husk_confine_opts o = {
		.set_ids = p->set_ids,
		.uid = p->uid,
		.gid = p->gid,
		.seccomp_debug = d->seccomp_debug,
		.no_seccomp = d->no_seccomp,
	};

	return husk_confine(&profile, &o, err);
}
