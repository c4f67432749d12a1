/*
 * Confinement, applied in the same order by every long-lived program
 * once it has opened what it needs (vmd's proc_run order):
 *
 *   1. chdir (and chroot, if asked)
 *   2. switch gid/groups/uid when configured, keeping only `caps`
 *   3. cut the capability sets (effective, permitted, inheritable,
 *      bounding, ambient) to `caps` with libcap-ng
 *   4. rlimits
 *   5. prctl(PR_SET_NO_NEW_PRIVS)
 *   6. load the seccomp allow-list: `syscalls` allowed, `deny` answered
 *      with an errno, anything else kills the process (SIGSYS) or, in
 *      debug mode, is reported on the log fd and fails with ENOSYS.
 *
 * A program keeps its profile in <dir>/confine.c beside its main.c; the
 * format is described in docs/confinement.md.
 */
#ifndef HUSK_CONFINE_H
#define HUSK_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/resource.h>

#include "err.h"

struct husk_errno_rule {
	const char *syscall;
	int errnum;
};

struct husk_rlimit_rule {
	int resource;           /* RLIMIT_* */
	rlim_t soft, hard;
};

struct husk_profile {
	const char *name;
	/* Syscall names allowed unconditionally, on top of
	 * husk_syscalls_base; NULL-terminated.  A name the running kernel
	 * or libseccomp does not know is skipped with a debug log. */
	const char *const *syscalls;
	/* Syscalls answered with an errno instead of running; terminated by
	 * { NULL, 0 }.  May be NULL. */
	const struct husk_errno_rule *deny;
	/* Capabilities kept (CAP_*), terminated by -1.  NULL keeps none. */
	const int *caps;
	/* rlimits, terminated by { -1 }.  May be NULL. */
	const struct husk_rlimit_rule *rlimits;
};

struct husk_confine_opts {
	/* Switch to this uid/gid (and drop supplementary groups) when
	 * set_ids is true. */
	bool set_ids;
	uid_t uid;
	gid_t gid;
	/* Directory to chdir to (NULL: "/"). */
	const char *dir;
	/* Report a disallowed syscall by name on the log instead of killing
	 * (HUSK_SECCOMP_DEBUG=1 in the environment sets it too). */
	bool seccomp_debug;
	/* Skip seccomp entirely (operators debugging; logged loudly). */
	bool no_seccomp;
};

int husk_confine(const struct husk_profile *p,
		 const struct husk_confine_opts *o, struct husk_err **err);

/* Syscalls every husk program needs (malloc, stdio, libev's loop,
 * time, exit); always allowed.  NULL-terminated. */
extern const char *const husk_syscalls_base[];

#endif
