/*
 * agent/cgroup.c, cgroup_limits.c, cgroup_dev.c and procinfo.c: (as
 * root with a writable /sys/fs/cgroup) a real cgroup's life, limits
 * written to directories of plain files standing in for cgroups, the
 * device program run as the kernel would, and the process records of
 * husk ps (decoding: test_agent_cgroup.c).
 *
 * Linked with build/lib/libagent.a (agent/program.mk); the steps it
 * reaches inside cgroup.c are declared in agent/cgroup_int.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/bpf.h>
#include <linux/magic.h>

#include "libhusk/cleanup.h"
#include "agent/cgroup_int.h"
#include "agent/core.h"
#include "tests/unit/agent_testlib.h"

static int decode(struct at *t, const char *json, struct cg_resources *r)
{
	cg_resources_init(r);
	return cg_resources_decode(at_json(t, json), r, &t->err);
}

/* ------------------------------------------------------------------ */
/* A real cgroup                                                       */

static bool cgroups_writable(void)
{
	if (geteuid() != 0)
		return false;
	return access(CG_MOUNT, W_OK) == 0 || access(CG_MOUNT "/memory", W_OK) == 0;
}

/* What a failed live test leaves behind, for its teardown. */
static pid_t live_child = -1;
static struct cg *live_cg;

static int teardown_live(void **state)
{
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	live_child = -1;
	if (live_cg)
		cg_destroy(live_cg, NULL);
	live_cg = NULL;
	return at_teardown(state);
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	live_child = pid;
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (pid == live_child)
		live_child = -1;
}

static const char *dir_of(struct cg *cg, int ctrl)
{
	return cg->v2 ? cg->v2 : cg->v1[ctrl];
}

static void test_live(void **state)
{
	struct at *t = *state;
	struct cg_resources r;
	struct cg *cg = NULL;
	char name[64], buf[256], dir[PATH_MAX];
	const msgpack_object *st;
	pid_t child, *pids = NULL;
	size_t n = 0;
	bool found = false;

	if (!cgroups_writable())
		skip();
	if (cg_init(&t->err) < 0)
		fail_msg("cg_init: %s", t->err->msg);
	if (cgs.version == 1 && !cgs.v1_base[C_MEMORY])
		skip();
	snprintf(name, sizeof(name), "husk-test-%d/ct", (int)getpid());
	assert_int_equal(decode(t,
		"{'memory': {'limit': 67108864},"
		" 'pids': {'limit': 100}}", &r), 0);
	if (cg_create(name, &r, &cg, &t->err) < 0)
		fail_msg("cg_create: %s", t->err->msg);
	live_cg = cg;
	cg_resources_free(&r);
	snprintf(dir, sizeof(dir), "%s", dir_of(cg, C_MEMORY));
	assert_true(cg_read_small(dir, cgs.version == 2 ? "memory.max" :
			       "memory.limit_in_bytes", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "67108864");

	/* Update: a new limit, cpu shares and a quota. */
	assert_int_equal(decode(t,
		"{'memory': {'limit': 33554432}, 'cpu': {'shares': 512,"
		" 'quota': 50000, 'period': 100000}}", &r), 0);
	if (cg_update(cg, &r, &t->err) < 0)
		fail_msg("cg_update: %s", t->err->msg);
	cg_resources_free(&r);
	assert_true(cg_read_small(dir, cgs.version == 2 ? "memory.max" :
			       "memory.limit_in_bytes", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "33554432");
	if (cgs.version == 1) {
		assert_true(cg_read_small(cg->v1[C_CPU], "cpu.cfs_quota_us", buf,
				       sizeof(buf)) > 0);
		assert_string_equal(buf, "50000");
	}

	child = sleeper();
	if (cg_attach(cg, child, &t->err) < 0) {
		reap(child);
		fail_msg("cg_attach: %s", t->err->msg);
	}
	assert_int_equal(cg_pids(cg, &pids, &n, &t->err), 0);
	for (size_t i = 0; i < n; i++)
		found |= pids[i] == child;
	free(pids);
	assert_true(found);

	if (cgs.version == 2 || cg->v1[C_FREEZER]) {
		assert_int_equal(cg_freeze(cg, true, &t->err), 0);
		if (cgs.version == 1) {
			assert_true(cg_read_small(cg->v1[C_FREEZER], "freezer.state",
					       buf, sizeof(buf)) > 0);
			assert_string_equal(buf, "FROZEN");
		}
		assert_true(frozen_is(cg, true));
		assert_int_equal(cg_freeze(cg, false, &t->err), 0);
		assert_true(frozen_is(cg, false));
	}

	assert_int_equal(cg_stats_pack(cg, &t->pk, &t->err), 0);
	st = at_obj(t);
	assert_int_equal(st->type, MSGPACK_OBJECT_MAP);
	at_uint(at_get(st, "cpu"), "usage_ns");
	at_uint(at_get(st, "cpu"), "user_ns");
	at_uint(at_get(st, "cpu"), "system_ns");
	assert_int_equal(at_uint(at_get(st, "memory"), "limit"), 33554432);
	/* v1 does not move the charges a task made before it came. */
	at_uint(at_get(st, "memory"), "usage");
	at_uint(at_get(st, "memory"), "max_usage");
	at_uint(at_get(st, "memory"), "cache");
	if (cgs.version == 2 || cg->v1[C_PIDS])
		assert_int_equal(at_uint(at_get(st, "pids"), "current"), 1);
	at_uint(at_get(st, "io"), "read_bytes");
	at_uint(at_get(st, "io"), "write_bytes");

	/* Not empty: rmdir refuses, after its retries, and says why; the
	 * directory stays (one hierarchy is enough: each costs a second). */
	for (int i = CG_NCTRL; i >= 0; i--) {
		const char *d = i < CG_NCTRL ? cg->v1[i] : cg->v2;
		const char *base = i < CG_NCTRL ? cgs.v1_base[i] : cgs.v2_base;

		if (!d || !cg_file_exists(d, "cgroup.procs"))
			continue;
		assert_int_equal(cg_rmdirs(d, strlen(base), &t->err), -1);
		assert_non_null(strstr(t->err->msg, "cgroup: rmdir `"));
		assert_non_null(strstr(t->err->msg, strerror(EBUSY)));
		husk_err_clear(&t->err);
		assert_int_equal(access(d, F_OK), 0);
		break;
	}
	/* Empty: it goes. */
	reap(child);
	live_cg = NULL;
	if (cg_destroy(cg, &t->err) < 0)
		fail_msg("cg_destroy: %s", t->err->msg);
	assert_int_equal(access(dir, F_OK), -1);
	/* The parent "husk-test-<pid>" went with it. */
	*strrchr(dir, '/') = '\0';
	assert_int_equal(access(dir, F_OK), -1);
}

/* cgroup v2 where this host has it (the "unified" mount): the same
 * interface over the other implementation. */
static void test_live_v2(void **state)
{
	struct at *t = *state;
	struct cg *cg = NULL;
	struct cg_resources r;
	char name[64];
	pid_t child;
	struct statfs sfs;
	const char *mnt = CG_MOUNT "/unified";

	if (geteuid() != 0 || statfs(mnt, &sfs) < 0 ||
	    sfs.f_type != CGROUP2_SUPER_MAGIC || access(mnt, W_OK) < 0)
		skip();
	assert_int_equal(cg_init_at(mnt, &t->err), 0);
	assert_string_equal(cg_version(), "v2");
	snprintf(name, sizeof(name), "husk-test-%d/ct", (int)getpid());
	if (cg_create(name, NULL, &cg, &t->err) < 0) {
		cg_init(NULL);
		fail_msg("cg_create: %s", t->err->msg);
	}
	live_cg = cg;
	child = sleeper();
	assert_int_equal(cg_attach(cg, child, &t->err), 0);
	/* cgroup.freeze is core v2: no controller needed. */
	assert_int_equal(cg_freeze(cg, true, &t->err), 0);
	assert_int_equal(cg_freeze(cg, false, &t->err), 0);
	/* A controller this hierarchy lacks is named, not skipped. */
	cg_resources_init(&r);
	r.memory_limit = 1 << 26;
	if (!cg_file_exists(cg->v2, "memory.max")) {
		assert_int_equal(cg_update(cg, &r, &t->err), -1);
		assert_int_equal(t->err->code, HUSK_E_NOT_IMPLEMENTED);
		assert_non_null(strstr(t->err->msg,
				       "linux.resources.memory.limit: `"));
		husk_err_clear(&t->err);
	}
	assert_int_equal(cg_stats_pack(cg, &t->pk, &t->err), 0);
	at_obj(t);
	reap(child);
	live_cg = NULL;
	assert_int_equal(cg_destroy(cg, &t->err), 0);
	cg_init(NULL);
}

/* A directory of plain files standing in for a cgroup: what
 * cgroup_limits.c writes where, for settings real cgroups here may not
 * offer.  FILES are made empty first; others stay missing. */
static char *fake_dir(const char *const *files)
{
	char *d = strdup("/tmp/husk-fakecg.XXXXXX");

	assert_non_null(mkdtemp(d));
	for (; *files; files++) {
		char p[PATH_MAX];
		FILE *f;

		snprintf(p, sizeof(p), "%s/%s", d, *files);
		f = fopen(p, "w");
		assert_non_null(f);
		fclose(f);
	}
	return d;
}

static void fake_rm(char *d)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static int truncate_at(const char *dir, const char *file)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return truncate(p, 0);
}

static void expect_file(const char *dir, const char *file, const char *want)
{
	char buf[256];

	assert_true(cg_read_small(dir, file, buf, sizeof(buf)) >= 0);
	assert_string_equal(buf, want);
}

static void test_limits_blkio_v2(void **state)
{
	static const char *const files[] = {
		"io.weight", "io.max", "memory.high", "cpu.max.burst", NULL,
	};
	struct at *t = *state;
	struct cg cg = { .name = "fake" };
	struct cg_resources r;

	if (access("/sys/dev/block/254:0", F_OK) < 0 ||
	    access("/sys/dev/block/259:4000", F_OK) == 0)
		skip();
	cg.v2 = fake_dir(files);
	/* weight 300 is io.weight 1 + 290 * 9999 / 990 (iocost); a
	 * throttle for a device the machine lacks is skipped; hugetlb,
	 * with no file here, is logged; unified files are written. */
	assert_int_equal(decode(t,
		"{'blockIO': {'weight': 300, 'leafWeight': 20,"
		"  'throttleReadBpsDevice': [{'major': 259, 'minor': 4000, 'rate': 5},"
		"   {'major': 254, 'minor': 0, 'rate': 1048576}]},"
		" 'hugepageLimits': [{'pageSize': '2MB', 'limit': 0}],"
		" 'network': {'classID': 7}, 'rdma': {'x': {'hcaHandles': 1}},"
		" 'cpu': {'burst': 1000},"
		" 'unified': {'memory.high': '1G'}}", &r), 0);
	if (cg_update(&cg, &r, &t->err) < 0)
		fail_msg("cg_update: %s", t->err->msg);
	expect_file(cg.v2, "io.weight", "default 2930");
	expect_file(cg.v2, "io.max", "254:0 rbps=1048576");
	expect_file(cg.v2, "memory.high", "1G");
	expect_file(cg.v2, "cpu.max.burst", "1000");
	cg_resources_free(&r);
	/* 0 lifts a throttle: "max" on v2.  (A plain file is not
	 * truncated by the write, a cgroup file has no length.) */
	assert_int_equal(truncate_at(cg.v2, "io.max"), 0);
	assert_int_equal(decode(t,
		"{'blockIO': {'throttleWriteIOPSDevice': [{'major': 254,"
		"  'minor': 0, 'rate': 0}]}}", &r), 0);
	assert_int_equal(cg_update(&cg, &r, &t->err), 0);
	expect_file(cg.v2, "io.max", "254:0 wiops=max");
	cg_resources_free(&r);
	/* A unified file the hierarchy lacks is an error, as with runc. */
	assert_int_equal(decode(t, "{'unified': {'pids.max': '5'}}", &r), 0);
	assert_int_equal(cg_update(&cg, &r, &t->err), -1);
	assert_non_null(strstr(t->err->msg, "linux.resources.unified.pids.max: `"));
	husk_err_clear(&t->err);
	cg_resources_free(&r);
	fake_rm(cg.v2);
}

static void test_limits_v1(void **state)
{
	static const char *const blkio[] = {
		"blkio.weight", "blkio.throttle.write_bps_device",
		"blkio.weight_device", NULL,
	};
	static const char *const mem[] = {
		"memory.swappiness", "memory.oom_control", NULL,
	};
	static const char *const none[] = { NULL };
	struct at *t = *state;
	struct cg cg = { .name = "fake" };
	struct cg_resources r;

	if (access("/sys/dev/block/254:0", F_OK) < 0)
		skip();
	cg.v1[C_BLKIO] = fake_dir(blkio);
	cg.v1[C_MEMORY] = fake_dir(mem);
	cg.v1[C_NET_CLS] = fake_dir(none);
	assert_int_equal(decode(t,
		"{'blockIO': {'weight': 300, 'weightDevice': [{'major': 254,"
		"  'minor': 0, 'weight': 700}],"
		"  'throttleWriteBpsDevice': [{'major': 254, 'minor': 0, 'rate': 4096}]},"
		" 'memory': {'swappiness': 10, 'disableOOMKiller': true},"
		" 'network': {'classID': 7}}", &r), 0);
	if (cg_update(&cg, &r, &t->err) < 0)
		fail_msg("cg_update: %s", t->err->msg);
	expect_file(cg.v1[C_BLKIO], "blkio.weight", "300");
	expect_file(cg.v1[C_BLKIO], "blkio.weight_device", "254:0 700");
	expect_file(cg.v1[C_BLKIO], "blkio.throttle.write_bps_device",
		    "254:0 4096");
	expect_file(cg.v1[C_MEMORY], "memory.swappiness", "10");
	expect_file(cg.v1[C_MEMORY], "memory.oom_control", "1");
	cg_resources_free(&r);
	/* unified needs v2. */
	assert_int_equal(decode(t, "{'unified': {'memory.high': '1G'}}", &r),
			 0);
	assert_int_equal(cg_update(&cg, &r, &t->err), -1);
	at_expect_err(t, HUSK_E_NOT_IMPLEMENTED,
		      "linux.resources.unified: needs cgroup v2 (this hierarchy is v1)");
	cg_resources_free(&r);
	fake_rm(cg.v1[C_BLKIO]);
	fake_rm(cg.v1[C_MEMORY]);
	fake_rm(cg.v1[C_NET_CLS]);
}

/* Run a device program as the kernel would for one request: only the
 * instructions cgroup_dev.c emits. */
static int run_dev_prog(const struct cg_dev_prog *p, char type, int major,
			int minor, unsigned access)
{
	const struct bpf_insn *v = p->insns;
	uint32_t ctx[3] = {
		(access << 16) | (type == 'b' ? BPF_DEVCG_DEV_BLOCK :
				  BPF_DEVCG_DEV_CHAR),
		(uint32_t)major, (uint32_t)minor,
	};
	uint64_t reg[11] = { 0 };

	for (size_t pc = 0; pc < p->n; pc++) {
		const struct bpf_insn *i = &v[pc];

		switch (i->code) {
		case BPF_LDX | BPF_MEM | BPF_W:
			assert_int_equal(i->src_reg, 1);
			reg[i->dst_reg] = ctx[i->off / 4];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_X:
			reg[i->dst_reg] = reg[i->src_reg];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_K:
			reg[i->dst_reg] = (uint64_t)(int64_t)i->imm;
			break;
		case BPF_ALU64 | BPF_AND | BPF_K:
			reg[i->dst_reg] &= (uint64_t)(int64_t)i->imm;
			break;
		case BPF_ALU64 | BPF_RSH | BPF_K:
			reg[i->dst_reg] >>= i->imm;
			break;
		case BPF_JMP | BPF_JNE | BPF_K:
			if (reg[i->dst_reg] != (uint64_t)(int64_t)i->imm)
				pc += (size_t)i->off;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			if (reg[i->dst_reg] == (uint64_t)(int64_t)i->imm)
				pc += (size_t)i->off;
			break;
		case BPF_JMP | BPF_EXIT:
			return (int)reg[0];
		default:
			fail_msg("instruction %zu: code %#x", pc, i->code);
		}
		assert_true(pc < p->n);
	}
	fail_msg("ran off the end");
	return -1;
}

static void test_device_program(void **state)
{
	struct at *t = *state;
	struct cg_resources r;
	struct cg_dev_prog *p;
	const char types[] = { 'c', 'b' };
	const int64_t maj[] = { 10, 7 }, min[] = { 229, 9 };
	enum { M = CG_DEV_MKNOD, R = CG_DEV_READ, W = CG_DEV_WRITE };

	/* docker's: deny all, then some; then linux.devices and runc's. */
	assert_int_equal(decode(t,
		"{'devices': [{'allow': false, 'access': 'rwm'},"
		" {'allow': true, 'type': 'c', 'major': 1, 'minor': 5, 'access': 'rwm'},"
		" {'allow': true, 'type': 'c', 'major': 4, 'access': 'r'},"
		" {'allow': false, 'type': 'c', 'major': 4, 'minor': 7, 'access': 'r'},"
		" {'allow': true, 'type': 'b', 'major': 8, 'minor': 0}]}", &r), 0);
	assert_int_equal(r.ndevice_rules, 5);
	assert_int_equal(r.dev_rules[4].access, M | R | W);
	cg_resources_add_devices(&r, types, maj, min, 2);
	assert_int_equal(r.ndevice_rules, 5 + 2 + 11);
	p = cg_dev_program(r.dev_rules, r.ndevice_rules);
	assert_int_equal(run_dev_prog(p, 'c', 1, 5, R | W), 1);   /* zero */
	assert_int_equal(run_dev_prog(p, 'c', 1, 1, R), 0);       /* mem */
	assert_int_equal(run_dev_prog(p, 'c', 1, 1, M), 1);       /* mknod */
	assert_int_equal(run_dev_prog(p, 'c', 4, 1, R), 1);       /* tty1 r */
	assert_int_equal(run_dev_prog(p, 'c', 4, 1, W), 0);       /* not w */
	assert_int_equal(run_dev_prog(p, 'c', 4, 1, R | W), 0);
	assert_int_equal(run_dev_prog(p, 'c', 4, 7, R), 0);       /* later deny */
	assert_int_equal(run_dev_prog(p, 'b', 8, 0, R | W), 1);
	assert_int_equal(run_dev_prog(p, 'c', 8, 0, R), 0);       /* type */
	assert_int_equal(run_dev_prog(p, 'c', 10, 229, R | W), 1); /* fuse */
	assert_int_equal(run_dev_prog(p, 'b', 7, 9, R), 1);       /* loop9 */
	assert_int_equal(run_dev_prog(p, 'b', 7, 8, R), 0);
	assert_int_equal(run_dev_prog(p, 'c', 136, 3, R | W), 1); /* pts */
	assert_int_equal(run_dev_prog(p, 'c', 5, 2, R | W), 1);   /* ptmx */
	assert_int_equal(run_dev_prog(p, 'c', 1, 3, R | W), 1);   /* null */
	cg_dev_program_free(p);
	cg_resources_free(&r);

	/* Without a deny-all, what no rule names stays allowed. */
	assert_int_equal(decode(t,
		"{'devices': [{'allow': false, 'type': 'b', 'access': 'w'}]}",
		&r), 0);
	cg_resources_add_devices(&r, NULL, NULL, NULL, 0);
	p = cg_dev_program(r.dev_rules, r.ndevice_rules);
	assert_int_equal(run_dev_prog(p, 'b', 8, 0, R), 1);
	assert_int_equal(run_dev_prog(p, 'b', 8, 0, W), 0);
	assert_int_equal(run_dev_prog(p, 'c', 1, 1, R | W), 1);
	cg_dev_program_free(p);
	cg_resources_free(&r);

	/* No rules: nothing added, no program. */
	assert_int_equal(decode(t, "{'devices': []}", &r), 0);
	cg_resources_add_devices(&r, NULL, NULL, NULL, 0);
	assert_int_equal(r.ndevice_rules, 0);
	cg_resources_free(&r);
}

static void test_procinfo(void **state)
{
	struct at *t = *state;
	const msgpack_object *a, *rec = NULL;
	pid_t pids[3];
	int sync[2];
	char c;

	assert_int_equal(pipe(sync), 0);
	pids[0] = fork();
	assert_true(pids[0] >= 0);
	if (pids[0] == 0) {
		/* A comm that tries to fool a naive parser. */
		prctl(PR_SET_NAME, "a) S 1 (b");
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	pids[1] = getpid();
	pids[2] = 999999999;            /* gone: left out */
	assert_int_equal(procinfo_pack(&t->pk, pids, 3), 0);
	a = at_obj(t);
	reap(pids[0]);
	close(sync[0]);
	close(sync[1]);
	assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(a->via.array.size, 2);
	rec = &a->via.array.ptr[0];
	assert_int_equal(at_get(rec, "pid")->via.i64, pids[0]);
	assert_int_equal(at_get(rec, "ppid")->via.i64, getpid());
	assert_true(at_str_eq(at_get(rec, "comm"), "a) S 1 (b"));
	assert_int_equal(at_uint(rec, "uid"), geteuid());
	assert_int_equal(at_uint(rec, "gid"), getegid());
	/* The fields after the comm, read past the last ')': a start
	 * made absolute by btime (the child is seconds old, not a boot
	 * time or the epoch), a mapped process's sizes. */
	assert_true(at_uint(rec, "start") <= (uint64_t)time(NULL) + 1);
	assert_true(at_uint(rec, "start") + 3600 > (uint64_t)time(NULL));
	assert_true(at_uint(rec, "vsz_kb") > 0);
	assert_true(at_uint(rec, "rss_kb") > 0);
	assert_int_equal(at_get(rec, "tty")->type,
			 MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(at_get(rec, "cpu_ms")->type,
			 MSGPACK_OBJECT_POSITIVE_INTEGER);
	rec = &a->via.array.ptr[1];
	assert_true(at_get(rec, "state")->type == MSGPACK_OBJECT_STR);
	assert_int_equal(at_get(rec, "args")->type, MSGPACK_OBJECT_ARRAY);
	assert_true(at_get(rec, "args")->via.array.size >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_live, at_setup,
						teardown_live),
		cmocka_unit_test_setup_teardown(test_live_v2, at_setup,
						teardown_live),
		cmocka_unit_test_setup_teardown(test_limits_blkio_v2, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_limits_v1, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_device_program, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_procinfo, at_setup,
						at_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
