/*
 * husk-shim's confinement: no capabilities, and the syscalls of a libev
 * loop relaying between its stdio and one socket.
 */
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <termios.h>

#include "libhusk/confine.h"
#include "libhusk/daemon.h"
#include "shim.h"

static const char *const shim_syscalls[] = {
	NULL,
};

/* ioctl only for the terminal requests the shim makes once confined;
 * TIOCSTI (pushing input into a terminal) and the rest kill it. */
static const struct husk_arg_rule shim_args[] = {
	/* the window size, polled and sent to the container */
	{ "ioctl", 1, HUSK_ARG_EQ, TIOCGWINSZ, 0 },
	/* isatty() and tcgetattr() */
	{ "ioctl", 1, HUSK_ARG_EQ, TCGETS, 0 },
	/* tcsetattr(TCSADRAIN) restoring the mode at exit */
	{ "ioctl", 1, HUSK_ARG_EQ, TCSETSW, 0 },
	/* malloc and libev map data, never code */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
};

static const struct husk_rlimit_rule shim_rlimits[] = {
	/* no core dumps of a process holding the container's output */
	{ RLIMIT_CORE, 0, 0 },
	{ -1, 0, 0 },
};

/* The shim's confinement point: after sh_open (main.c). */
int shim_confine(struct husk_daemon *d, struct husk_err **err)
{
	const struct husk_profile profile = {
		.name = "husk-shim",
		.syscalls = shim_syscalls,
		.allow_args = shim_args,
		.caps = NULL,
		.rlimits = shim_rlimits,
	};
	const struct husk_confine_opts o = {
		.seccomp_debug = d->seccomp_debug,
		.no_seccomp = d->no_seccomp,
	};

	return husk_confine(&profile, &o, err);
}
