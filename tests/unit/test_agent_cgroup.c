/*
 * agent/cgroup.c and agent/procinfo.c: OCI linux.resources decoding,
 * and (as root with a writable /sys/fs/cgroup) a real cgroup's life.
 *
 * The Makefile links a unit test from its own .c and the libraries
 * only; the agent's sources are not a library, so the files under test
 * are included here (which also lets the tests reach their statics).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "agent/cgroup.c"
#include "agent/procinfo.c"
#include "tests/unit/agent_testlib.h"

static int setup(void **state)
{
	*state = at_new();
	return 0;
}

static int teardown(void **state)
{
	at_free(*state);
	return 0;
}

static int decode(struct at *t, const char *json, struct cg_resources *r)
{
	cg_resources_init(r);
	return cg_resources_decode(at_json(t, json), r, &t->err);
}

static void test_decode_all(void **state)
{
	struct at *t = *state;
	struct cg_resources r;

	assert_int_equal(decode(t,
		"{'memory': {'limit': 67108864, 'reservation': 33554432,"
		"  'swap': 134217728, 'kernel': 0, 'kernelTCP': 0,"
		"  'swappiness': null, 'disableOOMKiller': false,"
		"  'useHierarchy': true},"
		" 'cpu': {'shares': 512, 'quota': 50000, 'period': 100000,"
		"  'cpus': '0-1', 'mems': '0', 'realtimeRuntime': 0,"
		"  'realtimePeriod': 0},"
		" 'pids': {'limit': 100},"
		" 'devices': [{'allow': false, 'access': 'rwm'}],"
		" 'blockIO': {}, 'hugepageLimits': [], 'network': null,"
		" 'rdma': {}, 'unified': {}}", &r), 0);
	assert_int_equal(r.memory_limit, 67108864);
	assert_int_equal(r.memory_reservation, 33554432);
	assert_int_equal(r.memory_swap, 134217728);
	assert_int_equal(r.cpu_shares, 512);
	assert_int_equal(r.cpu_quota, 50000);
	assert_int_equal(r.cpu_period, 100000);
	assert_int_equal(r.pids_limit, 100);
	assert_string_equal(r.cpuset_cpus, "0-1");
	assert_string_equal(r.cpuset_mems, "0");
	cg_resources_free(&r);
}

static void test_decode_unset_and_unlimited(void **state)
{
	struct at *t = *state;
	struct cg_resources r;

	/* 0 leaves a value alone (runc's reading); -1 is unlimited. */
	assert_int_equal(decode(t,
		"{'memory': {'limit': -1, 'swap': 0, 'reservation': 0},"
		" 'cpu': {'shares': 0, 'quota': -1, 'cpus': ''},"
		" 'pids': {'limit': -5}}", &r), 0);
	assert_int_equal(r.memory_limit, -1);
	assert_true(r.memory_swap == CG_UNSET);
	assert_true(r.memory_reservation == CG_UNSET);
	assert_true(r.cpu_shares == CG_UNSET);
	assert_int_equal(r.cpu_quota, -1);
	assert_true(r.cpu_period == CG_UNSET);
	assert_null(r.cpuset_cpus);
	assert_int_equal(r.pids_limit, -1);
	cg_resources_free(&r);

	assert_int_equal(decode(t, "null", &r), 0);
	assert_true(r.memory_limit == CG_UNSET);
	assert_int_equal(decode(t, "{}", &r), 0);
	assert_int_equal(decode(t, "{'memory': null, 'pids': {}}", &r), 0);
	assert_true(r.pids_limit == CG_UNSET);
}

static void test_decode_types(void **state)
{
	struct at *t = *state;
	struct cg_resources r;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "[]", "linux.resources: expected a map, got an array" },
		{ "{'memory': {'limit': 'x'}}",
		  "linux.resources.memory.limit: expected an integer, got a string" },
		{ "{'memory': {'limit': -2}}",
		  "linux.resources.memory.limit: -2 is out of range [-1, 9223372036854775807]" },
		{ "{'memory': 5}",
		  "linux.resources.memory: expected a map, got an integer" },
		{ "{'memory': {'disableOOMKiller': 1}}",
		  "linux.resources.memory.disableOOMKiller: expected a boolean, got an integer" },
		{ "{'cpu': {'shares': -1}}",
		  "linux.resources.cpu.shares: -1 is out of range [0, 262144]" },
		{ "{'cpu': {'shares': 1}}",
		  "linux.resources.cpu.shares: 1 is out of range [2, 262144]" },
		{ "{'cpu': {'period': 10}}",
		  "linux.resources.cpu.period: 10 is out of range [1000, 1000000]" },
		{ "{'cpu': {'quota': 10}}",
		  "linux.resources.cpu.quota: 10 is below the kernel's minimum of 1000 microseconds" },
		{ "{'cpu': {'cpus': '0-1; rm -rf'}}",
		  "linux.resources.cpu.cpus: expected a list such as \"0-3,5\"" },
		{ "{'cpu': {'mems': 7}}",
		  "linux.resources.cpu.mems: expected a string, got an integer" },
		{ "{'cpu': {'realtimeRuntime': 'x'}}",
		  "linux.resources.cpu.realtimeRuntime: expected an integer, got a string" },
		{ "{'pids': {'limit': true}}",
		  "linux.resources.pids.limit: expected an integer, got a boolean" },
		{ "{'devices': {}}",
		  "linux.resources.devices: expected an array, got a map" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(decode(t, cases[i].json, &r), -1);
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
		assert_null(r.cpuset_cpus);
	}
}

static void test_decode_refused(void **state)
{
	struct at *t = *state;
	struct cg_resources r;
	static const struct {
		const char *json, *field;
	} cases[] = {
		{ "{'memory': {'swappiness': 60}}", "memory.swappiness" },
		{ "{'memory': {'disableOOMKiller': true}}",
		  "memory.disableOOMKiller" },
		{ "{'memory': {'future': 1}}", "memory.future" },
		{ "{'cpu': {'realtimeRuntime': 950000}}", "cpu.realtimeRuntime" },
		{ "{'cpu': {'realtimePeriod': 1000000}}", "cpu.realtimePeriod" },
		{ "{'cpu': {'idle': 1}}", "cpu.idle" },
		{ "{'pids': {'max': 1}}", "pids.max" },
		{ "{'blockIO': {'weight': 10}}", "blockIO" },
		{ "{'hugepageLimits': [{'pageSize': '2MB', 'limit': 1}]}",
		  "hugepageLimits" },
		{ "{'network': {'classID': 1}}", "network" },
		{ "{'rdma': {'mlx5_1': {'hcaHandles': 3}}}", "rdma" },
		{ "{'unified': {'memory.high': '1G'}}", "unified" },
		{ "{'somethingNew': 1}", "somethingNew" },
		/* The string-valued cpuset is freed on the way out. */
		{ "{'cpu': {'cpus': '0', 'idle': 1}}", "cpu.idle" },
	};
	char msg[256];

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(decode(t, cases[i].json, &r), -1);
		snprintf(msg, sizeof(msg),
			 "linux.resources.%s: not supported by husk-agent",
			 cases[i].field);
		at_expect_err(t, HUSK_E_INVALID, msg);
		assert_null(r.cpuset_cpus);
	}
}

static void test_decode_duplicate(void **state)
{
	struct at *t = *state;
	struct cg_resources r;

	/* JSON cannot say it; MessagePack can. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_key(&t->pk, "cpu");
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_str(&t->pk, "cpus", "0");
	ipc_pack_key(&t->pk, "cpu");
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_str(&t->pk, "cpus", "1");
	cg_resources_init(&r);
	assert_int_equal(cg_resources_decode(at_obj(t), &r, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID, "linux.resources.cpu: given twice");
	assert_null(r.cpuset_cpus);

	/* A non-string key is named as such. */
	msgpack_pack_map(&t->pk, 1);
	msgpack_pack_int(&t->pk, 7);
	msgpack_pack_nil(&t->pk);
	assert_int_equal(cg_resources_decode(at_obj(t), &r, &t->err), 0);
	msgpack_pack_map(&t->pk, 1);
	msgpack_pack_int(&t->pk, 7);
	msgpack_pack_int(&t->pk, 7);
	assert_int_equal(cg_resources_decode(at_obj(t), &r, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "linux.resources.<non-string key>: not supported by husk-agent");
}

static void test_name_check(void **state)
{
	struct at *t = *state;
	static const char *const bad[] = {
		"", "/abs", "a//b", "a/../b", "..", "a/.", "a/", "a b", "a/b\n",
	};

	assert_int_equal(cg_name_check("husk/sb-1/ct_2.x", &t->err), 0);
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++) {
		assert_int_equal(cg_name_check(bad[i], &t->err), -1);
		assert_int_equal(t->err->code, HUSK_E_INVALID);
		husk_err_clear(&t->err);
	}
}

static void test_self_path(void **state)
{
	const char *text = "12:cpu,cpuacct:/a/b\n4:memory:/m\n0::/u\n";
	char *p;

	(void)state;
	p = self_path(text, "cpuacct");
	assert_string_equal(p, "/a/b");
	free(p);
	p = self_path(text, "memory");
	assert_string_equal(p, "/m");
	free(p);
	assert_null(self_path(text, "cpuset"));
	assert_null(self_path(text, "cpu,"));
}

static void test_keyed_value(void **state)
{
	(void)state;
	assert_int_equal(keyed_value("usage_usec 10\nuser_usec 7\n",
				     "user_usec"), 7);
	assert_int_equal(keyed_value("usage_usec 10\n", "usage"), 0);
	assert_int_equal(keyed_value(NULL, "x"), 0);
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
	return teardown(state);
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
	assert_true(read_small(dir, cgs.version == 2 ? "memory.max" :
			       "memory.limit_in_bytes", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "67108864");

	/* Update: a new limit, cpu shares and a quota. */
	assert_int_equal(decode(t,
		"{'memory': {'limit': 33554432}, 'cpu': {'shares': 512,"
		" 'quota': 50000, 'period': 100000}}", &r), 0);
	if (cg_update(cg, &r, &t->err) < 0)
		fail_msg("cg_update: %s", t->err->msg);
	cg_resources_free(&r);
	assert_true(read_small(dir, cgs.version == 2 ? "memory.max" :
			       "memory.limit_in_bytes", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "33554432");
	if (cgs.version == 1) {
		assert_true(read_small(cg->v1[C_CPU], "cpu.cfs_quota_us", buf,
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
			assert_true(read_small(cg->v1[C_FREEZER], "freezer.state",
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

		if (!d || !file_exists(d, "cgroup.procs"))
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
	if (!file_exists(cg->v2, "memory.max")) {
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
	rec = &a->via.array.ptr[1];
	assert_true(at_get(rec, "state")->type == MSGPACK_OBJECT_STR);
	assert_int_equal(at_get(rec, "args")->type, MSGPACK_OBJECT_ARRAY);
	assert_true(at_get(rec, "args")->via.array.size >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decode_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_unset_and_unlimited,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decode_duplicate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_name_check, setup, teardown),
		cmocka_unit_test(test_self_path),
		cmocka_unit_test(test_keyed_value),
		cmocka_unit_test_setup_teardown(test_live, setup, teardown_live),
		cmocka_unit_test_setup_teardown(test_live_v2, setup,
						teardown_live),
		cmocka_unit_test_setup_teardown(test_procinfo, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
