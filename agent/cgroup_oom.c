/*
 * OOM kills of a container's cgroup, as the kernel counts them: v2's
 * memory.events `oom_kill` (the cgroup and its descendants), v1's
 * memory.oom_control `oom_kill` (kernels since 4.13), and v1's
 * notification eventfd (cgroup.event_control) that says when to look.
 * The watch itself (when to read, who to tell) is agent/oom.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "agent/cgroup_int.h"

/* The value of `key N` on a line of a flat keyed file; false when no
 * line has that key (a kernel without the counter). */
bool cg_keyed_find(const char *text, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			*v = strtoull(p + kl + 1, NULL, 10);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

const char *cg_memory_dir(const struct cg *cg)
{
	return cg->v2 ? cg->v2 : cg->v1[C_MEMORY];
}

int cg_oom_kills(const struct cg *cg, uint64_t *n)
{
	const char *dir = cg_memory_dir(cg);
	char buf[1024];

	if (!dir || cg_read_small(dir, cg->v2 ? "memory.events" :
				  "memory.oom_control", buf, sizeof(buf)) < 0)
		return -1;
	return cg_keyed_find(buf, "oom_kill", n) ? 0 : 1;
}

int cg_oom_events_path(const struct cg *cg, char *buf, size_t size)
{
	if (!cg->v2)
		return -1;
	if ((size_t)snprintf(buf, size, "%s/memory.events", cg->v2) >= size)
		return -1;
	return 0;
}

int cg_oom_eventfd(const struct cg *cg, struct husk_err **err)
{
	const char *dir = cg->v1[C_MEMORY];
	cleanup_close int efd = -1, ofd = -1;
	char path[PATH_MAX], line[64];
	int ret;

	if (cg->v2 || !dir)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED, "cgroup `%s`: "
				  "no v1 memory controller", cg->name);
	snprintf(path, sizeof(path), "%s/memory.oom_control", dir);
	ofd = open(path, O_RDONLY | O_CLOEXEC);
	if (ofd < 0)
		return husk_error_sys(err, errno, "open `%s`", path);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return husk_error_sys(err, errno, "eventfd");
	/* The kernel keeps what it needs of ofd: it may close. */
	snprintf(line, sizeof(line), "%d %d", efd, ofd);
	if (cg_write(dir, "cgroup.event_control", line, "OOM notification",
		     err) < 0)
		return -1;
	ret = efd;
	efd = -1;
	return ret;
}
