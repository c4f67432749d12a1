/*
 * What a container process does between its namespaces and execve, in
 * the child (shared by a container's init and exec_process).  The order
 * is the one every husk program confines itself in: directory, rlimits,
 * bounding set, ids, capability sets, no_new_privs, seccomp last (the
 * filter was built by the agent before the clone, so this only loads
 * it).  Failures go to the agent over the error pipe, naming the step.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/core.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static bool is_exe(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

/* Resolve args[0] against PATH from the process's own environment. */
char *proc_find_exe(const struct spec_process *p, int errfd)
{
	const char *name = p->args[0], *path;
	int last = ENOENT;

	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			child_fail(errfd, errno, "exec \"%s\"", name);
		return husk_xstrdup(name);
	}
	path = spec_getenv(p->env, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	while (*path) {
		size_t n = strcspn(path, ":");
		char *cand;

		cand = husk_xasprintf("%.*s%s%s", (int)n, path, n ? "/" : "",
				      name);
		if (is_exe(cand))
			return cand;
		if (errno == EACCES)
			last = EACCES;
		free(cand);
		path += n;
		if (*path == ':')
			path++;
	}
	child_fail(errfd, last, "exec \"%s\"", name);
}

static void set_rlimits(const struct spec_process *p, int errfd)
{
	for (size_t i = 0; i < p->nrlimits; i++) {
		struct rlimit rl = { .rlim_cur = p->rlimits[i].soft,
				     .rlim_max = p->rlimits[i].hard };

		if (setrlimit(p->rlimits[i].resource, &rl) < 0)
			child_fail(errfd, errno, "setrlimit %d",
				   p->rlimits[i].resource);
	}
}

static void drop_bounding(struct agent *a, const struct spec_process *p,
			  int errfd)
{
	for (int cap = 0; cap <= a->core->cap_last; cap++) {
		if (p->caps[CAPSET_BOUNDING] & (1ull << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(errfd, errno, "drop capability %d from the bounding set",
				   cap);
	}
}

static void set_ids(const struct spec_process *p, int errfd)
{
	if (setgroups(p->ngids, p->gids) < 0)
		child_fail(errfd, errno, "setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		child_fail(errfd, errno, "setgid %u", p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		child_fail(errfd, errno, "setuid %u", p->uid);
}

static void set_caps(struct agent *a, const struct spec_process *p,
		     int errfd)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	uint64_t mask = a->core->cap_last >= 63 ? ~0ull :
			(1ull << (a->core->cap_last + 1)) - 1;
	uint64_t e = p->caps[CAPSET_EFFECTIVE] & mask;
	uint64_t pm = p->caps[CAPSET_PERMITTED] & mask;
	uint64_t in = p->caps[CAPSET_INHERITABLE] & mask;

	d[0].effective = (uint32_t)e;
	d[1].effective = (uint32_t)(e >> 32);
	d[0].permitted = (uint32_t)pm;
	d[1].permitted = (uint32_t)(pm >> 32);
	d[0].inheritable = (uint32_t)in;
	d[1].inheritable = (uint32_t)(in >> 32);
	if (syscall(SYS_capset, &hdr, d) < 0)
		child_fail(errfd, errno, "capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		child_fail(errfd, errno, "clear the ambient capabilities");
	for (int cap = 0; cap <= a->core->cap_last; cap++) {
		if (!(p->caps[CAPSET_AMBIENT] & (1ull << cap)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			child_fail(errfd, errno,
				   "raise ambient capability %d (it must be permitted and inheritable)",
				   cap);
	}
}

/* The kernel's struct sched_attr (sched_setattr(2)); glibc has no
 * wrapper. */
struct husk_sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

/* ioPriority and scheduler, while the capabilities they may need
 * (CAP_SYS_NICE, CAP_SYS_ADMIN) are still held. */
static void set_sched(const struct spec_process *p, int errfd)
{
	if (p->io_class &&
	    syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0,
		    (p->io_class << 13) | p->io_prio) < 0)
		child_fail(errfd, errno, "process.ioPriority");
	if (p->has_sched) {
		struct husk_sched_attr at = {
			.size = sizeof(at),
			.sched_policy = (uint32_t)p->sched_policy,
			.sched_flags = p->sched_flags,
			.sched_nice = p->sched_nice,
			.sched_priority = (uint32_t)p->sched_priority,
			.sched_runtime = p->sched_times[0],
			.sched_deadline = p->sched_times[1],
			.sched_period = p->sched_times[2],
		};

		if (syscall(SYS_sched_setattr, 0, &at, 0) < 0)
			child_fail(errfd, errno, "process.scheduler");
	}
}

void proc_log_notes(const char *who, char *const *notes)
{
	for (; notes && *notes; notes++)
		log_info("container %s: %s; not applied", who, *notes);
}

void proc_exec(struct agent *a, const struct spec_process *p,
	       long persona, const char *exe, scmp_filter_ctx filter,
	       int errfd)
{
	int r;

	umask(p->umask >= 0 ? (mode_t)p->umask : 022);
	if (chdir(p->cwd) < 0)
		child_fail(errfd, errno, "chdir \"%s\"", p->cwd);
	set_rlimits(p, errfd);
	set_sched(p, errfd);
	if (persona >= 0 && personality((unsigned long)persona) < 0)
		child_fail(errfd, errno, "spec.linux.personality");
	/* Without no_new_privs the kernel lets only a CAP_SYS_ADMIN holder
	 * load a filter: load it while we still hold every capability (as
	 * runc does); the profile then also governs the steps below. */
	if (filter && !p->no_new_privs) {
		r = seccomp_load(filter);
		if (r < 0)
			child_fail(errfd, -r, "load the seccomp filter");
		filter = NULL;
	}
	if (p->has_caps) {
		drop_bounding(a, p, errfd);
		/* Keep the permitted set across setuid; capset() below
		 * cuts it to what the spec grants. */
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			child_fail(errfd, errno, "PR_SET_KEEPCAPS");
	}
	set_ids(p, errfd);
	if (p->has_caps) {
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		set_caps(a, p, errfd);
	}
	/* On a host (tests, debugging) a container must not outlive the
	 * agent; in a VM the agent is PID 1 and the VM goes with it.  Set
	 * after the id changes, which clear it. */
	if (a->host_mode)
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errfd, errno, "PR_SET_NO_NEW_PRIVS");
	if (filter) {
		r = seccomp_load(filter);
		if (r < 0)
			child_fail(errfd, -r, "load the seccomp filter");
	}
	execve(exe, p->args, p->env);
	child_fail(errfd, errno, "exec \"%s\"", p->args[0]);
}
