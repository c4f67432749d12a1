/*
 * The driver's confinement, applied once QEMU answers on QMP (until
 * then the driver must fork and exec QEMU and virtiofsd).  What is left
 * to do: serve RPC, talk QMP (passing tap descriptors), signal and reap
 * its two children, rewrite its state file, stat paths it is given.
 */
#include <errno.h>
#include <stddef.h>

#include <linux/capability.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include "hv.h"
#include "libhusk/confine.h"
#include "libhusk/daemon.h"

static const char *const hv_syscalls[] = {
	/* signal QEMU and virtiofsd (stop, kill, leftovers) */
	"kill",
	/* reap them: libev's child watcher and the final wait */
	"wait4", "waitid",
	/* the state file (husk_write_atomic) and QEMU's log tail for
	 * errors */
	"openat", "fchmod", "fsync", "rename", "renameat", "renameat2",
	/* sockets and temporaries cleaned up at exit or on a failed write */
	"unlink", "unlinkat",
	/* hotplug_block and create check the paths they are given */
	"stat", "lstat", "access", "faccessat", "faccessat2", "readlink",
	/* dup of a tap descriptor queued for getfd */
	"dup", "dup3",
	/* clients connecting to the RPC socket (peer credentials) */
	"getsockname", "getpeername",
	/* /proc/<pid>/stat for the state file's start times */
	"getdents64",
	NULL,
};

static const struct husk_arg_rule hv_args[] = {
	/* net_attach: a tap from /dev/net/tun (the rtnetlink socket is
	 * opened before confinement) */
	{ "ioctl", 1, HUSK_ARG_EQ, TUNSETIFF, 0 },
	/* libc's isatty() on a log stream; reads a terminal's mode only */
	{ "ioctl", 1, HUSK_ARG_EQ, TCGETS, 0 },
	/* nothing is loaded once QEMU runs (getgrnam's NSS modules are
	 * loaded at create) */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL },
};

/* Probes some libraries make; failing them is harmless. */
static const struct husk_errno_rule hv_deny[] = {
	{ "socket", EACCES },   /* no new sockets once confined */
	{ "prctl", EPERM },
	{ NULL, 0 },
};

/* Everything the driver opens after this point (its state directory,
 * console.log, hotplug_block's files) is root's own or open to it. */
static const int hv_caps[] = {
	/* stop's last stage and a QEMU that broke QMP: SIGKILL to QEMU,
	 * which runs as a uid of its own (jail.c) */
	CAP_KILL,
	/* net_attach/net_detach: taps, tc filters and links in the
	 * sandbox's own network namespace (docs/network.md) */
	CAP_NET_ADMIN,
	-1,
};

static const struct husk_profile hv_profile = {
	.name = "husk-hypervisor",
	.syscalls = hv_syscalls,
	.deny = hv_deny,
	.allow_args = hv_args,
	.caps = hv_caps,
	.rlimits = NULL,
};

/* The driver's confinement point (HUSK_DAEMON_CONFINE_LATER): life.c's
 * started() asks for it through husk_daemon_confine(). */
int hv_confine(struct husk_daemon *d, struct husk_err **err)
{
	struct husk_confine_opts o = {
		.seccomp_debug = d->seccomp_debug,
		.no_seccomp = d->no_seccomp,
	};

	return husk_confine(&hv_profile, &o, err);
}
