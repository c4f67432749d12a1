#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

#include <cap-ng.h>
#include <seccomp.h>

#include "confine.h"
#include "err.h"
#include "log.h"

/*
 * What every husk program needs once it runs its loop.  Each group says
 * why; a program adds its own needs in its profile.
 */
const char *const husk_syscalls_base[] = {
	/* descriptor I/O on sockets, pipes and already open files */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close",
	"lseek",
	/* libev's backends (epoll, with poll/select as fallbacks) */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "poll", "ppoll", "select", "pselect6",
	/* libev's signal, async and timer watchers */
	"signalfd4", "eventfd2", "timerfd_create", "timerfd_settime",
	"timerfd_gettime",
	/* malloc and the dynamic loader's lazy work */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* locks inside libc and libev */
	"futex", "sched_yield",
	/* time: ev_now, log timestamps, sleeps */
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep",
	"gettimeofday",
	/* identity for log lines and peer checks */
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
	"getegid",
	/* signal handling, including the return from a handler */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"restart_syscall",
	/* abort() and raise() signal the calling thread */
	"tgkill",
	/* leaving */
	"exit", "exit_group",
	/* stdio's buffer sizing and fstat-before-read of a file */
	"fstat", "newfstatat", "statx", "fcntl",
	/* hash seeds and message ids */
	"getrandom",
	/* the IPC sockets: messages, descriptor passing, accepting peers */
	"sendmsg", "recvmsg", "sendto", "recvfrom", "accept4", "getsockopt",
	"shutdown",
	NULL,
};

#if defined(__SANITIZE_ADDRESS__)
/*
 * Sanitizer builds only (make asan): what ASan's reports and
 * LeakSanitizer's exit-time check need once a program is confined (a
 * tracer thread that ptrace-stops the others, /proc reads, the report).
 * Release builds never allow these.
 */
/*
 * LeakSanitizer's exit-time check ptrace-stops the process from a
 * helper thread, which a confined process cannot do (it spins in
 * sched_yield): programs that confine themselves run without it.
 * (ASAN_OPTIONS in the environment can still turn it on.)
 */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "detect_leaks=0";
}

static const char *const sanitizer_syscalls[] = {
	"clone", "clone3", "ptrace", "wait4", "waitid", "prctl",
	"sched_yield", "getdents64", "openat", "readlink", "readlinkat",
	"sigaltstack", "gettid", "getppid", "tgkill", "kill",
	"process_vm_readv", "prlimit64", "pipe2", "dup", "dup2", "dup3",
	"sched_getaffinity", "uname", NULL,
};
#endif

/*
 * Debug mode: a SIGSYS handler that names the blocked syscall.  It runs
 * inside a failed syscall, so it only reads this table (filled before
 * the filter loads) and calls write().
 */
#define TRAP_NAMES 512
#define TRAP_NAME_LEN 32

static struct {
	int fd;
	char profile[64];
	char names[TRAP_NAMES][TRAP_NAME_LEN];
} trap = { .fd = -1 };

static size_t put_str(char *buf, size_t n, size_t cap, const char *s)
{
	while (*s && n < cap)
		buf[n++] = *s++;
	return n;
}

static size_t put_uint(char *buf, size_t n, size_t cap, unsigned v)
{
	char tmp[16];
	size_t k = 0;

	do {
		tmp[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && k < sizeof(tmp));
	while (k > 0 && n < cap)
		buf[n++] = tmp[--k];
	return n;
}

static void trap_sigsys(int sig, siginfo_t *si, void *uctx)
{
	ucontext_t *uc = uctx;
	char line[200];
	int saved = errno;
	int nr = si->si_syscall;
	const char *name = "?";
	size_t n = 0, cap = sizeof(line) - 1;

	(void)sig;
	if (nr >= 0 && nr < TRAP_NAMES && trap.names[nr][0])
		name = trap.names[nr];
	n = put_str(line, n, cap, "seccomp: ");
	n = put_str(line, n, cap, trap.profile);
	n = put_str(line, n, cap, " blocked syscall ");
	n = put_str(line, n, cap, name);
	n = put_str(line, n, cap, " (");
	n = put_uint(line, n, cap, (unsigned)nr);
	n = put_str(line, n, cap, ")");
	line[n++] = '\n';
	if (trap.fd >= 0 && write(trap.fd, line, n) < 0) {
		/* nowhere else to say it */
	}
	/* Make the trapped syscall return -ENOSYS so the program goes on
	 * and shows how it copes. */
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long long)-ENOSYS;
#else
	(void)uc;
	_exit(128 + SIGSYS);
#endif
	errno = saved;
}

static int trap_install(const char *profile, struct husk_err **err)
{
	struct sigaction sa;
	uint32_t arch = seccomp_arch_native();

	snprintf(trap.profile, sizeof(trap.profile), "%s",
		 profile ? profile : "?");
	trap.fd = husk_log_get_fd();
	for (int nr = 0; nr < TRAP_NAMES; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(arch, nr);

		if (name) {
			snprintf(trap.names[nr], TRAP_NAME_LEN, "%s", name);
			free(name);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = trap_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return husk_error_sys(err, errno, "sigaction SIGSYS");
	return 0;
}

bool husk_seccomp_debug_env(void)
{
	const char *v = getenv("HUSK_SECCOMP_DEBUG");

	return v && !strcmp(v, "1");
}

static bool denied(const struct husk_profile *p, const char *name)
{
	for (const struct husk_errno_rule *r = p->deny; r && r->syscall; r++)
		if (!strcmp(r->syscall, name))
			return true;
	return false;
}

static bool has_arg_rule(const struct husk_profile *p, const char *name)
{
	for (const struct husk_arg_rule *r = p->allow_args; r && r->syscall;
	     r++)
		if (!strcmp(r->syscall, name))
			return true;
	return false;
}

static int scmp_op(enum husk_arg_op op)
{
	switch (op) {
	case HUSK_ARG_EQ: return SCMP_CMP_EQ;
	case HUSK_ARG_NE: return SCMP_CMP_NE;
	case HUSK_ARG_LT: return SCMP_CMP_LT;
	case HUSK_ARG_LE: return SCMP_CMP_LE;
	case HUSK_ARG_GT: return SCMP_CMP_GT;
	case HUSK_ARG_GE: return SCMP_CMP_GE;
	case HUSK_ARG_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
	}
	return -1;
}

int husk_profile_check(const struct husk_profile *p, struct husk_err **err)
{
	const char *name = p->name ? p->name : "?";

	for (const struct husk_arg_rule *r = p->allow_args; r && r->syscall;
	     r++) {
		if (r->arg > 5)
			return husk_error(err, HUSK_E_INVALID,
					  "profile %s: %s: argument index %u "
					  "(0..5)", name, r->syscall, r->arg);
		if (scmp_op(r->op) < 0)
			return husk_error(err, HUSK_E_INVALID,
					  "profile %s: %s: unknown argument "
					  "operator %d", name, r->syscall,
					  (int)r->op);
		if (r->op != HUSK_ARG_MASKED_EQ && r->mask)
			return husk_error(err, HUSK_E_INVALID,
					  "profile %s: %s: a mask needs "
					  "HUSK_ARG_MASKED_EQ", name,
					  r->syscall);
		if (denied(p, r->syscall))
			return husk_error(err, HUSK_E_INVALID,
					  "profile %s: %s is both denied and "
					  "allowed by argument", name,
					  r->syscall);
	}
	return 0;
}

/* One row of allow_args as a conditional allow rule; rows for the same
 * syscall add up (libseccomp ORs the rules of one syscall). */
static int allow_args(scmp_filter_ctx ctx, const struct husk_profile *p,
		      struct husk_err **err)
{
	for (const struct husk_arg_rule *r = p->allow_args; r && r->syscall;
	     r++) {
		int nr = seccomp_syscall_resolve_name(r->syscall);
		struct scmp_arg_cmp cmp = {
			.arg = r->arg,
			.op = (enum scmp_compare)scmp_op(r->op),
			.datum_a = r->op == HUSK_ARG_MASKED_EQ ? r->mask
							       : r->value,
			.datum_b = r->op == HUSK_ARG_MASKED_EQ ? r->value : 0,
		};
		int rc;

		if (nr == __NR_SCMP_ERROR) {
			log_debug("confine: %s: unknown syscall %s skipped",
				  p->name, r->syscall);
			continue;
		}
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp);
		if (rc < 0 && rc != -EEXIST)
			return husk_error_sys(err, -rc,
					      "seccomp allow %s (argument %u)",
					      r->syscall, r->arg);
	}
	return 0;
}

static int allow_list(scmp_filter_ctx ctx, const struct husk_profile *p,
		      const char *const *names, struct husk_err **err)
{
	for (; names && *names; names++) {
		int nr = seccomp_syscall_resolve_name(*names);
		int rc;

		if (nr == __NR_SCMP_ERROR) {
			log_debug("confine: %s: unknown syscall %s skipped",
				  p->name, *names);
			continue;
		}
		if (denied(p, *names) || has_arg_rule(p, *names))
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0 && rc != -EEXIST)
			return husk_error_sys(err, -rc, "seccomp allow %s",
					      *names);
	}
	return 0;
}

#if defined(__SANITIZE_ADDRESS__)
static bool sanitizer_needs(const char *sc)
{
	for (size_t i = 0; sanitizer_syscalls[i]; i++)
		if (!strcmp(sanitizer_syscalls[i], sc))
			return true;
	return false;
}
#endif

/* A filter whose default is def.  Only the native architecture is in
 * it.  A call through another ABI (int 0x80 for i386, the x32 bit on
 * x86-64, which libseccomp checks too) would be matched against the
 * wrong syscall numbers: it kills the whole process, debug mode or not
 * (libseccomp's default kills only the thread). */
static scmp_filter_ctx filter_new(uint32_t def, struct husk_err **err)
{
	scmp_filter_ctx ctx = seccomp_init(def);
	int rc;

	if (!ctx) {
		husk_error(err, HUSK_E_SYSTEM, "seccomp_init failed");
		return NULL;
	}
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			      SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		seccomp_release(ctx);
		husk_error_sys(err, -rc, "seccomp bad-arch action");
		return NULL;
	}
	return ctx;
}

/* deny's calls fail with their errno; names libseccomp does not know
 * are skipped.  keep_sanitizer: not the sanitizer's own calls. */
static int add_denies(scmp_filter_ctx ctx, const char *name,
		      const struct husk_errno_rule *deny, bool keep_sanitizer,
		      struct husk_err **err)
{
	for (const struct husk_errno_rule *r = deny; r && r->syscall; r++) {
		int nr = seccomp_syscall_resolve_name(r->syscall);
		int rc;

		if (nr == __NR_SCMP_ERROR) {
			log_debug("confine: %s: unknown syscall %s skipped",
				  name, r->syscall);
			continue;
		}
#if defined(__SANITIZE_ADDRESS__)
		/* the sanitizer's own report and exit-time check */
		if (keep_sanitizer && sanitizer_needs(r->syscall))
			continue;
#else
		(void)keep_sanitizer;
#endif
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint16_t)r->errnum),
				      nr, 0);
		if (rc < 0 && rc != -EEXIST)
			return husk_error_sys(err, -rc, "seccomp deny %s",
					      r->syscall);
	}
	return 0;
}

/* Load ctx, on every thread (threads started before confinement,
 * libraries' helpers, get the same filter, or the load fails), and
 * release it. */
static int filter_load(scmp_filter_ctx ctx, const char *name,
		       struct husk_err **err)
{
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);

	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0)
		return husk_error_sys(err, -rc, "seccomp_load for %s", name);
	return 0;
}

static int load_filter(const struct husk_profile *p, bool debug,
		       struct husk_err **err)
{
	scmp_filter_ctx ctx;

	if (debug && trap_install(p->name, err) < 0)
		return -1;
	ctx = filter_new(debug ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS, err);
	if (!ctx)
		return -1;
	if (add_denies(ctx, p->name, p->deny, false, err) < 0 ||
	    allow_list(ctx, p, husk_syscalls_base, err) < 0 ||
	    allow_list(ctx, p, p->syscalls, err) < 0 ||
	    allow_args(ctx, p, err) < 0) {
		seccomp_release(ctx);
		return -1;
	}
#if defined(__SANITIZE_ADDRESS__)
	if (allow_list(ctx, p, sanitizer_syscalls, err) < 0) {
		seccomp_release(ctx);
		return -1;
	}
#endif
	return filter_load(ctx, p->name, err);
}

int husk_seccomp_allow_only(const struct husk_profile *p, bool debug,
			    struct husk_err **err)
{
	if (husk_profile_check(p, err) < 0)
		return -1;
	if (load_filter(p, debug || husk_seccomp_debug_env(), err) < 0)
		return husk_error_wrap(err, "confine %s", p->name);
	return 0;
}

int husk_seccomp_deny_only(const char *name,
			   const struct husk_errno_rule *deny,
			   struct husk_err **err)
{
	scmp_filter_ctx ctx = filter_new(SCMP_ACT_ALLOW, err);

	if (!ctx)
		return -1;
	if (add_denies(ctx, name, deny, true, err) < 0) {
		seccomp_release(ctx);
		return -1;
	}
	return filter_load(ctx, name, err);
}

/* Change gid, groups, uid; permitted capabilities survive (KEEPCAPS)
 * so the next step can choose which of them stay. */
static int switch_ids(uid_t uid, gid_t gid, struct husk_err **err)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return husk_error_sys(err, errno, "prctl PR_SET_KEEPCAPS");
	if (setgroups(0, NULL) < 0)
		return husk_error_sys(err, errno, "setgroups");
	if (setresgid(gid, gid, gid) < 0)
		return husk_error_sys(err, errno, "setresgid %u",
				      (unsigned)gid);
	if (setresuid(uid, uid, uid) < 0)
		return husk_error_sys(err, errno, "setresuid %u",
				      (unsigned)uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return husk_error_sys(err, errno, "prctl PR_SET_KEEPCAPS");
	/* setresuid cleared the effective set; raise it back from
	 * permitted so that CAP_SETPCAP can cut the bounding set. */
	if (capng_get_caps_process() < 0)
		return husk_error(err, HUSK_E_SYSTEM, "capng_get_caps_process");
	for (unsigned c = 0; c <= CAP_LAST_CAP; c++)
		if (capng_have_capability(CAPNG_PERMITTED, c))
			capng_update(CAPNG_ADD, CAPNG_EFFECTIVE, c);
	if (capng_apply(CAPNG_SELECT_CAPS) < 0)
		return husk_error(err, HUSK_E_SYSTEM,
				  "raise effective capabilities failed");
	return 0;
}

static int cut_caps(const struct husk_profile *p, struct husk_err **err)
{
	bool setpcap;
	int rc;

	if (capng_get_caps_process() < 0)
		return husk_error(err, HUSK_E_SYSTEM, "capng_get_caps_process");
	setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	capng_clear(CAPNG_SELECT_ALL);
	for (const int *c = p->caps; c && *c >= 0; c++)
		if (capng_update(CAPNG_ADD,
				 CAPNG_EFFECTIVE | CAPNG_PERMITTED |
					 CAPNG_BOUNDING_SET,
				 (unsigned)*c) < 0)
			return husk_error(err, HUSK_E_INVALID,
					  "unknown capability %d", *c);
	/* Without CAP_SETPCAP the bounding set cannot shrink; with
	 * no_new_privs set next it cannot grant anything either. */
	if (!setpcap)
		log_debug("confine: %s: no CAP_SETPCAP, bounding set kept",
			  p->name);
	rc = capng_apply(setpcap ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM,
				  "capng_apply failed (%d)", rc);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return husk_error_sys(err, errno, "clear ambient capabilities");
	return 0;
}

static int set_rlimits(const struct husk_profile *p, struct husk_err **err)
{
	for (const struct husk_rlimit_rule *r = p->rlimits;
	     r && r->resource >= 0; r++) {
		struct rlimit rl = { r->soft, r->hard };

		if (setrlimit(r->resource, &rl) < 0)
			return husk_error_sys(err, errno, "setrlimit %d",
					      r->resource);
	}
	return 0;
}

int husk_confine(const struct husk_profile *p,
		 const struct husk_confine_opts *o, struct husk_err **err)
{
	static const struct husk_confine_opts none = { 0 };
	const char *dir;

	if (!o)
		o = &none;
	if (husk_profile_check(p, err) < 0)
		return -1;
	dir = o->dir ? o->dir : "/";
	if (chdir(dir) < 0)
		return husk_error_sys(err, errno, "confine: chdir `%s`", dir);
	if (o->set_ids && switch_ids(o->uid, o->gid, err) < 0)
		return husk_error_wrap(err, "confine %s", p->name);
	if (cut_caps(p, err) < 0 || set_rlimits(p, err) < 0)
		return husk_error_wrap(err, "confine %s", p->name);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return husk_error_sys(err, errno, "confine: no_new_privs");
	if (o->no_seccomp) {
		log_warnx("confine: %s: SECCOMP FILTER DISABLED by request",
			  p->name);
		return 0;
	}
	if (load_filter(p, o->seccomp_debug || husk_seccomp_debug_env(), err) < 0)
		return husk_error_wrap(err, "confine %s", p->name);
	return 0;
}
