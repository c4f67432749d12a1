/*
 * Confinement, applied in the same order by every long-lived program
 * once it has opened what it needs (vmd's proc_run order), called from
 * the program's one confinement point (its `confine` step, called
 * through husk_daemon_confine(), libhusk/daemon.h):
 *
 *   1. chdir to `dir` ("/" by default).  No chroot: the programs still
 *      reach paths after confining (the driver its state directory and
 *      the files hotplug_block is given, the proxy the agent channel
 *      through /proc/self/fd); the seccomp list and the dropped
 *      capabilities are what bound them
 *   2. switch gid/groups/uid when configured, keeping only `caps`
 *   3. cut the capability sets (effective, permitted, inheritable,
 *      bounding, ambient) to `caps` with libcap-ng
 *   4. rlimits
 *   5. prctl(PR_SET_NO_NEW_PRIVS)
 *   6. load the seccomp allow-list: `syscalls` allowed, `allow_args`
 *      allowed for the arguments they name, `deny` answered with an
 *      errno, anything else kills the process (SIGSYS) or, in debug
 *      mode, is reported on the log fd and fails with ENOSYS.  A
 *      syscall of a foreign architecture (i386 or x32 from x86-64)
 *      kills the process in either mode.
 *
 * A program keeps its profile in <dir>/confine.c beside its main.c; the
 * format is described in docs/confinement.md.
 */
#ifndef HUSK_CONFINE_H
#define HUSK_CONFINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/resource.h>

#include "err.h"

struct husk_errno_rule {
	const char *syscall;
	int errnum;
};

/* How an argument is compared with `value` (libseccomp's SCMP_CMP_*). */
enum husk_arg_op {
	HUSK_ARG_EQ = 1,        /* arg == value */
	HUSK_ARG_NE,            /* arg != value */
	HUSK_ARG_LT,            /* arg <  value (unsigned, 64-bit) */
	HUSK_ARG_LE,
	HUSK_ARG_GT,
	HUSK_ARG_GE,
	HUSK_ARG_MASKED_EQ,     /* (arg & mask) == value */
};

/*
 * One use of a syscall that is allowed (OpenSSH's SC_ALLOW_ARG and
 * SC_ALLOW_ARG_MASK): the call runs when argument `arg` (0..5)
 * compares with `value` as `op` says.  Several rows for one syscall
 * allow any of them; a call that matches none gets the default action
 * (killed, or reported in debug mode).  A syscall named here is allowed
 * only by its rows, even when husk_syscalls_base or `syscalls` name it
 * (that is how mmap and mprotect lose PROT_EXEC).  A syscall cannot be
 * both here and in `deny`.
 */
struct husk_arg_rule {
	const char *syscall;
	unsigned arg;
	enum husk_arg_op op;
	uint64_t value;
	uint64_t mask;          /* HUSK_ARG_MASKED_EQ only */
};

/* Rows for a program that never maps executable memory once confined:
 * mmap and mprotect only without PROT_EXEC. */
#define HUSK_ARGS_NO_EXEC_MAPPINGS                                       \
	{ "mmap", 2, HUSK_ARG_MASKED_EQ, 0, PROT_EXEC },                 \
	{ "mprotect", 2, HUSK_ARG_MASKED_EQ, 0, PROT_EXEC }

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
	/* Syscalls allowed only for given arguments; terminated by
	 * { NULL }.  May be NULL. */
	const struct husk_arg_rule *allow_args;
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

/* Checks a profile's tables without applying anything (husk_confine
 * does it first): an argument index past 5, an unknown operator, a
 * syscall both denied and allowed by argument are errors. */
int husk_profile_check(const struct husk_profile *p, struct husk_err **err);

/*
 * Step 6 alone: the allow-list filter of profile p, checked first (its
 * syscalls, husk_syscalls_base, allow_args, deny), for a program that
 * sets its capabilities and ids itself (containerd-shim-husk-v2).
 * debug as husk_confine_opts.seccomp_debug (or HUSK_SECCOMP_DEBUG=1).
 */
int husk_seccomp_allow_only(const struct husk_profile *p, bool debug,
			    struct husk_err **err);

/*
 * A deny-list instead of an allow-list, for a program whose children
 * inherit its filter and run code husk does not write (QEMU, virtiofsd,
 * OCI hooks, loggers: containerd-shim-husk-v2): every syscall is
 * allowed but those in `deny`, which fail with their errno; a call
 * through another ABI (i386, x32) kills the process, as in
 * husk_confine().  Needs no_new_privs or CAP_SYS_ADMIN.  Names this
 * libseccomp does not know are skipped; name is for messages.
 */
int husk_seccomp_deny_only(const char *name,
			   const struct husk_errno_rule *deny,
			   struct husk_err **err);

/* True when HUSK_SECCOMP_DEBUG is exactly "1" in the environment (any
 * other value, empty included, leaves the filter killing). */
bool husk_seccomp_debug_env(void);

/* Syscalls every husk program needs (malloc, stdio, libev's loop,
 * time, exit); always allowed.  NULL-terminated. */
extern const char *const husk_syscalls_base[];

#endif
