/*
 * husk-shim's confinement: no capabilities, and the syscalls of a libev
 * loop relaying between its stdio and one socket.
 */
#include <sys/resource.h>

#include "libhusk/confine.h"
#include "shim.h"

static const char *const shim_syscalls[] = {
	/* terminal: window size (TIOCGWINSZ), restoring the mode at exit */
	"ioctl",
	NULL,
};

static const struct husk_rlimit_rule shim_rlimits[] = {
	/* no core dumps of a process holding the container's output */
	{ RLIMIT_CORE, 0, 0 },
	{ -1, 0, 0 },
};

int shim_confine(struct shim *s, struct husk_err **err)
{
	const struct husk_profile profile = {
		.name = "husk-shim",
		.syscalls = shim_syscalls,
		.caps = NULL,
		.rlimits = shim_rlimits,
	};
	const struct husk_confine_opts o = { .no_seccomp = s->no_seccomp };

	return husk_confine(&profile, &o, err);
}
