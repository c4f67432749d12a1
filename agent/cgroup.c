/*
 * Container cgroups: cgroup v2 (the guest mounts cgroup2 at
 * /sys/fs/cgroup) and cgroup v1 (a host running the agent in host mode
 * may have one hierarchy per controller under /sys/fs/cgroup/<name>),
 * behind the interface of cgroup.h: the hierarchy, files, freezing,
 * processes and stats.  OCI linux.resources are decoded in
 * cgroup_res.c and written in cgroup_limits.c; docs/agent.md,
 * "Cgroups", has the mapping of OCI fields to files.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/cgroup_int.h"

const char *const cg_v1_names[CG_NCTRL] = {
	"memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "blkio",
	"hugetlb", "net_cls", "net_prio",
};

/* Controllers a v2 parent hands down to its children. */
static const char *const v2_ctrls[] = {
	"cpu", "memory", "pids", "cpuset", "io", "hugetlb",
};

struct cg_hier cgs;

/* ------------------------------------------------------------------ */
/* Files                                                               */

int cg_read_small(const char *dir, const char *file, char *buf,
		  size_t size)
{
	char path[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	n = husk_read_small(AT_FDCWD, path, buf, size);
	if (n < 0)
		return -1;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return (int)n;
}

bool cg_file_exists(const char *dir, const char *file)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

/* Write val to dir/file; `what` names the OCI field for the error. */
int cg_write(const char *dir, const char *file, const char *val,
	     const char *what, struct husk_err **err)
{
	char path[PATH_MAX];
	cleanup_close int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
					  "%s: `%s` is missing (controller not available)",
					  what, path);
		return husk_error_sys(err, errno, "%s: open `%s`", what, path);
	}
	if (husk_write_all(fd, val, strlen(val)) < 0)
		return husk_error_sys(err, errno, "%s: write \"%s\" to `%s`",
				      what, val, path);
	return 0;
}

int cg_write_i64(const char *dir, const char *file, int64_t v,
		 const char *unlimited, const char *what,
		 struct husk_err **err)
{
	char buf[32];

	if (v < 0 && unlimited)
		snprintf(buf, sizeof(buf), "%s", unlimited);
	else
		snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cg_write(dir, file, buf, what, err);
}

int cg_need_v1(const struct cg *cg, int ctrl, const char *what,
	       struct husk_err **err)
{
	if (cg->v1[ctrl])
		return 0;
	return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
			  "%s: the cgroup v1 %s controller is not mounted",
			  what, cg_v1_names[ctrl]);
}

/* The number after `key ` on a line of a flat keyed file. */
uint64_t cg_keyed_value(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

uint64_t cg_read_u64(const char *dir, const char *file)
{
	char buf[64];

	if (!dir || cg_read_small(dir, file, buf, sizeof(buf)) <= 0)
		return 0;
	if (strcmp(buf, "max") == 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

char *cg_read_text(const char *dir, const char *file)
{
	char path[PATH_MAX];
	char *s = NULL;

	if (!dir)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (husk_read_file(AT_FDCWD, path, CG_FILE_MAX, &s, NULL, NULL) < 0)
		return NULL;
	return s;
}

/* ------------------------------------------------------------------ */
/* Hierarchy                                                           */

/* Our own cgroup in the v1 hierarchy of ctrl, from /proc/self/cgroup. */
char *self_path(const char *text, const char *ctrl)
{
	size_t cl = strlen(ctrl);

	for (const char *line = text; line && *line;) {
		const char *c1 = strchr(line, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *end = strchr(line, '\n');

		if (!end)
			end = line + strlen(line);
		if (c2 && c2 < end) {
			for (const char *p = c1 + 1; p < c2;) {
				const char *comma = memchr(p, ',', (size_t)(c2 - p));
				const char *e = comma ? comma : c2;

				if ((size_t)(e - p) == cl &&
				    memcmp(p, ctrl, cl) == 0)
					return strndup(c2 + 1,
						       (size_t)(end - c2 - 1));
				p = e + 1;
			}
		}
		line = *end ? end + 1 : NULL;
	}
	return NULL;
}

static void cg_reset(void)
{
	free(cgs.v2_base);
	for (int i = 0; i < CG_NCTRL; i++)
		free(cgs.v1_base[i]);
	memset(&cgs, 0, sizeof(cgs));
}

int cg_init_at(const char *mnt, struct husk_err **err)
{
	cleanup_free char *self = NULL;
	struct statfs sfs;
	int found = 0;

	cg_reset();
	if (statfs(mnt, &sfs) < 0)
		return husk_error_sys(err, errno, "cgroups: `%s`", mnt);
	if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
		/* The guest's agent lives in the root cgroup, where the
		 * "no internal processes" rule does not apply. */
		cgs.version = 2;
		cgs.v2_base = husk_xstrdup(mnt);
		log_debug("cgroup v2 at %s", mnt);
		return 0;
	}
	if (husk_read_file(AT_FDCWD, "/proc/self/cgroup", 1u << 20, &self,
			   NULL, err) < 0)
		return -1;
	for (int i = 0; i < CG_NCTRL; i++) {
		cleanup_free char *rel = NULL;
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s/%s", mnt, cg_v1_names[i]);
		if (statfs(dir, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC) {
			log_debug("no v1 %s controller", cg_v1_names[i]);
			continue;
		}
		/* Below our own cgroup: a host agent stays inside the limits
		 * it was started with. */
		rel = self_path(self, cg_v1_names[i]);
		if (!rel || strcmp(rel, "/") == 0)
			cgs.v1_base[i] = husk_xstrdup(dir);
		else
			cgs.v1_base[i] = husk_xasprintf("%s%s", dir, rel);
		found++;
	}
	if (!found)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "cgroups: `%s` is neither cgroup2 nor a set of v1 controllers",
				  mnt);
	cgs.version = 1;
	return 0;
}

int cg_init(struct husk_err **err)
{
	return cg_init_at(CG_MOUNT, err);
}

const char *cg_version(void)
{
	return cgs.version == 2 ? "v2" : "v1";
}

/* "husk/<sandbox>/<container>": plain components, nothing that climbs. */
int cg_name_check(const char *name, struct husk_err **err)
{
	const char *p = name;

	if (!name || !*name || strlen(name) > CG_NAME_MAX || *name == '/')
		return husk_error(err, HUSK_E_INVALID,
				  "cgroup name `%s`: expected a relative path",
				  name ? name : "");
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.') || n > 255)
			return husk_error(err, HUSK_E_INVALID,
					  "cgroup name `%s`: bad component",
					  name);
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)p[i]) &&
			    !strchr("_.+-", p[i]))
				return husk_error(err, HUSK_E_INVALID,
						  "cgroup name `%s`: bad character",
						  name);
		p += n;
		if (*p == '/' && !p[1])
			return husk_error(err, HUSK_E_INVALID,
					  "cgroup name `%s`: trailing slash",
					  name);
		if (*p)
			p++;
	}
	return 0;
}

/* v2: let dir's children have the controllers it has itself. */
static void v2_enable(const char *dir)
{
	char have[512], on[512], word[16], h[520], o[520];

	if (cg_read_small(dir, "cgroup.controllers", have, sizeof(have)) < 0)
		return;
	if (cg_read_small(dir, "cgroup.subtree_control", on, sizeof(on)) < 0)
		on[0] = '\0';
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(v2_ctrls); i++) {
		const char *c = v2_ctrls[i];
		cleanup_err struct husk_err *e = NULL;

		/* Space-pad both lists to find whole words. */
		snprintf(word, sizeof(word), " %s ", c);
		snprintf(h, sizeof(h), " %s ", have);
		snprintf(o, sizeof(o), " %s ", on);
		if (!strstr(h, word) || strstr(o, word))
			continue;
		snprintf(word, sizeof(word), "+%s", c);
		if (cg_write(dir, "cgroup.subtree_control", word, "cgroup",
			     &e) < 0)
			log_debug("%s", e->msg);
	}
}

/* v1 cpuset: a new cgroup starts with empty cpus and mems, and the
 * kernel refuses tasks until they are set; inherit the parent's. */
static int v1_cpuset_inherit(const char *dir, struct husk_err **err)
{
	char parent[PATH_MAX], val[CG_CPUSET_MAX + 1];
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(files); i++) {
		char cur[CG_CPUSET_MAX + 1];

		if (cg_read_small(dir, files[i], cur, sizeof(cur)) > 0)
			continue;
		if (cg_read_small(parent, files[i], val, sizeof(val)) <= 0)
			continue;
		if (cg_write(dir, files[i], val, "cgroup", err) < 0)
			return -1;
	}
	return 0;
}

/* mkdir -p base/name; v2 enables controllers on the way down. */
static int cg_mkdirs(const char *base, const char *name, int ctrl,
		     char **out, struct husk_err **err)
{
	char path[PATH_MAX];
	size_t len;
	const char *p = name;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", base, name) >=
	    sizeof(path))
		return husk_error(err, HUSK_E_INVALID,
				  "cgroup `%s`: path too long", name);
	snprintf(path, sizeof(path), "%s", base);
	len = strlen(path);
	while (*p) {
		size_t n = strcspn(p, "/");

		if (cgs.version == 2)
			v2_enable(path);
		path[len++] = '/';
		memcpy(path + len, p, n);
		len += n;
		path[len] = '\0';
		if (mkdir(path, 0755) < 0) {
			if (errno != EEXIST)
				return husk_error_sys(err, errno,
						      "cgroup: mkdir `%s`",
						      path);
		} else if (ctrl == C_CPUSET) {
			if (v1_cpuset_inherit(path, err) < 0)
				return -1;
		}
		p += n;
		if (*p)
			p++;
	}
	*out = husk_xstrdup(path);
	return 0;
}

static void cg_free(struct cg *cg)
{
	if (!cg)
		return;
	free(cg->name);
	free(cg->v2);
	for (int i = 0; i < CG_NCTRL; i++)
		free(cg->v1[i]);
	/* Its program goes with the cgroup; our descriptor with it. */
	if (cg->dev_prog >= 0)
		close(cg->dev_prog);
	free(cg);
}

int cg_create(const char *name, const struct cg_resources *r,
	      struct cg **out, struct husk_err **err)
{
	struct cg *cg;

	if (!cgs.version)
		return husk_error(err, HUSK_E_STATE, "cgroup: cg_init not done");
	if (cg_name_check(name, err) < 0)
		return -1;
	cg = husk_xcalloc(1, sizeof(*cg));
	cg->dev_prog = -1;
	cg->name = husk_xstrdup(name);
	if (cgs.version == 2) {
		if (cg_mkdirs(cgs.v2_base, name, -1, &cg->v2, err) < 0)
			goto fail;
	} else {
		for (int i = 0; i < CG_NCTRL; i++) {
			if (!cgs.v1_base[i])
				continue;
			if (cg_mkdirs(cgs.v1_base[i], name, i, &cg->v1[i],
				      err) < 0)
				goto fail;
		}
	}
	if (r && cg_update(cg, r, err) < 0)
		goto fail;
	*out = cg;
	return 0;
fail:
	husk_error_wrap(err, "cgroup `%s`", name);
	cg_destroy(cg, NULL);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Processes, freezing, stats                                          */

int cg_attach(struct cg *cg, pid_t pid, struct husk_err **err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	if (cg->v2)
		return cg_write(cg->v2, "cgroup.procs", buf, "cgroup attach",
				err);
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i] && cg_write(cg->v1[i], "cgroup.procs", buf,
					  "cgroup attach", err) < 0)
			return -1;
	return 0;
}

int cg_open_dir(const struct cg *cg)
{
	if (!cg->v2)
		return -1;
	return open(cg->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool frozen_is(const struct cg *cg, bool frozen)
{
	char buf[256];

	if (cg->v2) {
		cleanup_free char *ev = cg_read_text(cg->v2, "cgroup.events");

		return ev && cg_keyed_value(ev, "frozen") == (frozen ? 1u : 0u);
	}
	if (cg_read_small(cg->v1[C_FREEZER], "freezer.state", buf,
		       sizeof(buf)) < 0)
		return false;
	return strcmp(buf, frozen ? "FROZEN" : "THAWED") == 0;
}

static int freeze_write(const struct cg *cg, bool frozen,
			struct husk_err **err)
{
	if (cg->v2)
		return cg_write(cg->v2, "cgroup.freeze", frozen ? "1" : "0",
				"freeze", err);
	return cg_write(cg->v1[C_FREEZER], "freezer.state",
			frozen ? "FROZEN" : "THAWED", "freeze", err);
}

int cg_freeze(struct cg *cg, bool frozen, struct husk_err **err)
{
	uint64_t deadline = husk_now_ms() + 5000;

	if (!cg->v2 && cg_need_v1(cg, C_FREEZER, "freeze", err) < 0)
		return -1;
	if (freeze_write(cg, frozen, err) < 0)
		return -1;
	for (int i = 1; !frozen_is(cg, frozen); i++) {
		if (husk_now_ms() > deadline) {
			if (frozen)
				freeze_write(cg, false, NULL);
			return husk_error(err, HUSK_E_TIMEOUT,
					  "cgroup `%s`: not %s after 5 s",
					  cg->name, frozen ? "frozen" : "thawed");
		}
		sleep_ms(i < 10 ? 1 : 10);
		/* v1 can stay FREEZING when a task is mid-fork; asking again
		 * is how runc gets it over the line. */
		if (!cg->v2 && i % 10 == 0 &&
		    freeze_write(cg, frozen, err) < 0)
			return -1;
	}
	return 0;
}

static const char *procs_dir(const struct cg *cg)
{
	static const int order[] = { C_FREEZER, C_MEMORY, C_PIDS, C_CPU,
				     C_CPUACCT, C_CPUSET, C_BLKIO };

	if (cg->v2)
		return cg->v2;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(order); i++)
		if (cg->v1[order[i]])
			return cg->v1[order[i]];
	return NULL;
}

int cg_pids(struct cg *cg, pid_t **pids, size_t *n, struct husk_err **err)
{
	const char *d = procs_dir(cg);
	cleanup_free char *text = NULL;
	char path[PATH_MAX];
	size_t cap = 16, have = 0;
	pid_t *v;

	if (!d)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
				  "cgroup `%s`: no controller", cg->name);
	snprintf(path, sizeof(path), "%s/cgroup.procs", d);
	if (husk_read_file(AT_FDCWD, path, CG_FILE_MAX, &text, NULL, err) < 0)
		return -1;
	v = husk_xmalloc(cap * sizeof(*v));
	for (char *p = text, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);

		if (end == p)
			break;
		while (*end == '\n')
			end++;
		if (pid <= 0)
			continue;
		if (have == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				return husk_error_sys(err, ENOMEM, "cg_pids");
		}
		v[have++] = (pid_t)pid;
	}
	*pids = v;
	*n = have;
	return 0;
}

struct cg_stats {
	uint64_t cpu_usage, cpu_user, cpu_system;
	uint64_t mem_usage, mem_limit, mem_max, mem_cache;
	uint64_t pids_current, pids_limit;
	uint64_t io_read, io_write;
};

/* v1 and v2 say "unlimited" with a huge number or "max". */
static uint64_t limit_or_zero(uint64_t v)
{
	return v >= (1ull << 62) ? 0 : v;
}

static void v2_stats(const char *d, struct cg_stats *s)
{
	cleanup_free char *cpu = cg_read_text(d, "cpu.stat");
	cleanup_free char *mem = cg_read_text(d, "memory.stat");
	cleanup_free char *io = cg_read_text(d, "io.stat");

	s->cpu_usage = cg_keyed_value(cpu, "usage_usec") * 1000;
	s->cpu_user = cg_keyed_value(cpu, "user_usec") * 1000;
	s->cpu_system = cg_keyed_value(cpu, "system_usec") * 1000;
	s->mem_usage = cg_read_u64(d, "memory.current");
	s->mem_limit = limit_or_zero(cg_read_u64(d, "memory.max"));
	s->mem_max = cg_read_u64(d, "memory.peak");
	s->mem_cache = cg_keyed_value(mem, "file");
	s->pids_current = cg_read_u64(d, "pids.current");
	s->pids_limit = cg_read_u64(d, "pids.max");
	/* "8:0 rbytes=1 wbytes=2 rios=3 ..." per device. */
	for (char *p = io; p && *p;) {
		char *r = strstr(p, "rbytes="), *w = strstr(p, "wbytes=");
		char *nl = strchr(p, '\n');

		if (r && (!nl || r < nl))
			s->io_read += strtoull(r + 7, NULL, 10);
		if (w && (!nl || w < nl))
			s->io_write += strtoull(w + 7, NULL, 10);
		p = nl ? nl + 1 : NULL;
	}
}

static void v1_stats(const struct cg *cg, struct cg_stats *s)
{
	const char *acct = cg->v1[C_CPUACCT], *m = cg->v1[C_MEMORY];
	cleanup_free char *stat = cg_read_text(acct, "cpuacct.stat");
	cleanup_free char *mem = cg_read_text(m, "memory.stat");
	cleanup_free char *io = cg_read_text(cg->v1[C_BLKIO],
					  "blkio.throttle.io_service_bytes");
	long hz = sysconf(_SC_CLK_TCK);

	if (hz <= 0)
		hz = 100;
	s->cpu_usage = cg_read_u64(acct, "cpuacct.usage");
	s->cpu_user = cg_keyed_value(stat, "user") * (1000000000ull / (uint64_t)hz);
	s->cpu_system = cg_keyed_value(stat, "system") *
			(1000000000ull / (uint64_t)hz);
	s->mem_usage = cg_read_u64(m, "memory.usage_in_bytes");
	s->mem_limit = limit_or_zero(cg_read_u64(m, "memory.limit_in_bytes"));
	s->mem_max = cg_read_u64(m, "memory.max_usage_in_bytes");
	s->mem_cache = cg_keyed_value(mem, "cache");
	s->pids_current = cg_read_u64(cg->v1[C_PIDS], "pids.current");
	s->pids_limit = cg_read_u64(cg->v1[C_PIDS], "pids.max");
	/* "8:0 Read 4096" lines per device, then "Total N". */
	for (char *p = io; p && *p;) {
		char *nl = strchr(p, '\n');
		char dev[32], op[16];
		unsigned long long v;

		if (sscanf(p, "%31s %15s %llu", dev, op, &v) == 3) {
			if (strcmp(op, "Read") == 0)
				s->io_read += v;
			else if (strcmp(op, "Write") == 0)
				s->io_write += v;
		}
		p = nl ? nl + 1 : NULL;
	}
}

int cg_stats_pack(struct cg *cg, msgpack_packer *pk, struct husk_err **err)
{
	struct cg_stats s = { 0 };

	if (cg->v2)
		v2_stats(cg->v2, &s);
	else
		v1_stats(cg, &s);
	msgpack_pack_map(pk, 4);
	ipc_pack_key(pk, "cpu");
	msgpack_pack_map(pk, 3);
	ipc_pack_kv_uint(pk, "usage_ns", s.cpu_usage);
	ipc_pack_kv_uint(pk, "user_ns", s.cpu_user);
	ipc_pack_kv_uint(pk, "system_ns", s.cpu_system);
	ipc_pack_key(pk, "memory");
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_uint(pk, "usage", s.mem_usage);
	ipc_pack_kv_uint(pk, "limit", s.mem_limit);
	ipc_pack_kv_uint(pk, "max_usage", s.mem_max);
	ipc_pack_kv_uint(pk, "cache", s.mem_cache);
	ipc_pack_key(pk, "pids");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "current", s.pids_current);
	ipc_pack_kv_uint(pk, "limit", s.pids_limit);
	ipc_pack_key(pk, "io");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "read_bytes", s.io_read);
	ipc_pack_kv_uint(pk, "write_bytes", s.io_write);
	return 0;
}

/* rmdir dir/name and then its parents up to (not including) base, while
 * they are empty.  The leaf gets a second of EBUSY retries: the last
 * processes may still be exiting. */
int cg_rmdirs(const char *dir, size_t baselen, struct husk_err **err)
{
	char path[PATH_MAX];
	char *slash;

	snprintf(path, sizeof(path), "%s", dir);
	for (int i = 0; rmdir(path) < 0; i++) {
		if (errno == ENOENT)
			break;
		if (errno != EBUSY || i >= 100)
			return husk_error_sys(err, errno, "cgroup: rmdir `%s`",
					      path);
		sleep_ms(10);
	}
	while ((slash = strrchr(path, '/')) && (size_t)(slash - path) > baselen) {
		*slash = '\0';
		if (rmdir(path) < 0)
			break;          /* siblings live there */
	}
	return 0;
}

int cg_destroy(struct cg *cg, struct husk_err **err)
{
	int rc = 0;

	if (!cg)
		return 0;
	if (cg->v2)
		rc = cg_rmdirs(cg->v2, strlen(cgs.v2_base), err);
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i] && cg_rmdirs(cg->v1[i], strlen(cgs.v1_base[i]),
					   err) < 0)
			rc = -1;
	cg_free(cg);
	return rc;
}
