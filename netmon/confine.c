/*
 * husk-netmon's confinement, applied once its rtnetlink sockets and
 * its connections to the driver and the proxy are open: no
 * capabilities (reading rtnetlink needs none, and changes go through
 * the driver and the agent), no new sockets, no files.
 */
#include <errno.h>
#include <stddef.h>

#include "libhusk/confine.h"
#include "libhusk/daemon.h"
#include "netmon/netmon.h"

static const char *const nm_syscalls[] = {
	/* nothing beyond the base set: rtnetlink and the two RPC
	 * connections are read and written with recvmsg/sendmsg, the
	 * coalescing timer is libev's */
	NULL,
};

/* Probes some libraries make; failing them is harmless. */
static const struct husk_errno_rule nm_deny[] = {
	{ "socket", EACCES },
	{ "openat", EACCES },
	{ "prctl", EPERM },
	{ NULL, 0 },
};

static const struct husk_arg_rule nm_args[] = {
	/* malloc and libev map data, never code */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
};

static const struct husk_profile nm_profile = {
	.name = "husk-netmon",
	.syscalls = nm_syscalls,
	.deny = nm_deny,
	.allow_args = nm_args,
	.caps = NULL,
	.rlimits = NULL,
};

int nm_confine(struct husk_daemon *d, struct husk_err **err)
{
	struct husk_confine_opts o = {
		.seccomp_debug = d->seccomp_debug,
		.no_seccomp = d->no_seccomp,
	};

	return husk_confine(&nm_profile, &o, err);
}
