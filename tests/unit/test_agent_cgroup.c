/*
 * agent/cgroup.c and agent/procinfo.c: OCI linux.resources decoding,
 * and (as root with a writable /sys/fs/cgroup) a real cgroup's life.
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

/* Every member of runtime-spec 1.0.2's linux.resources (and 1.1's
 * burst, idle, checkBeforeUpdate) is taken, as runc takes it. */
static void test_decode_every_field(void **state)
{
	struct at *t = *state;
	struct cg_resources r;

	assert_int_equal(decode(t,
		"{'memory': {'swappiness': 60, 'disableOOMKiller': true,"
		"  'checkBeforeUpdate': true},"
		" 'cpu': {'realtimeRuntime': 950000, 'realtimePeriod': 1000000,"
		"  'burst': 0, 'idle': 1},"
		" 'blockIO': {'weight': 500, 'leafWeight': 300,"
		"  'weightDevice': [{'major': 8, 'minor': 0, 'weight': 600,"
		"    'leafWeight': 10}, {'major': 8, 'minor': 16}],"
		"  'throttleReadBpsDevice': [{'major': 8, 'minor': 0, 'rate': 1048576}],"
		"  'throttleWriteBpsDevice': [{'major': 8, 'minor': 0, 'rate': 0}],"
		"  'throttleReadIOPSDevice': [{'major': 253, 'minor': 1, 'rate': 100}],"
		"  'throttleWriteIOPSDevice': []},"
		" 'hugepageLimits': [{'pageSize': '2MB', 'limit': 4194304},"
		"  {'pageSize': '1GB', 'limit': 0}],"
		" 'network': {'classID': 1048577, 'priorities': [{'name': 'eth0',"
		"  'priority': 5}]},"
		" 'rdma': {'mlx5_1': {'hcaHandles': 3, 'hcaObjects': 10000}},"
		" 'unified': {'memory.high': '1G', 'io.weight': 'default 100'},"
		" 'devices': [{'allow': false, 'access': 'rwm'},"
		"  {'allow': true, 'type': 'c', 'major': 1, 'minor': 3,"
		"   'access': 'rw'}, {'allow': true, 'type': 'c', 'major': 136,"
		"   'minor': -1, 'access': 'rwm'}]}", &r), 0);
	assert_int_equal(r.memory_swappiness, 60);
	assert_int_equal(r.memory_oom_kill_disable, 1);
	assert_true(r.memory_check_before_update);
	assert_int_equal(r.cpu_rt_runtime, 950000);
	assert_int_equal(r.cpu_rt_period, 1000000);
	assert_int_equal(r.cpu_burst, 0);
	assert_int_equal(r.cpu_idle, 1);
	assert_int_equal(r.blkio_weight, 500);
	assert_int_equal(r.blkio_leaf_weight, 300);
	assert_int_equal(r.nweight_devs, 2);
	assert_int_equal(r.weight_devs[0].major, 8);
	assert_int_equal(r.weight_devs[0].value, 600);
	assert_int_equal(r.weight_devs[0].leaf, 10);
	assert_int_equal(r.weight_devs[1].minor, 16);
	assert_int_equal(r.weight_devs[1].value, 0);
	assert_int_equal(r.nthrottle[CG_RBPS], 1);
	assert_int_equal(r.throttle[CG_RBPS][0].value, 1048576);
	assert_int_equal(r.nthrottle[CG_WBPS], 1);
	assert_int_equal(r.throttle[CG_WBPS][0].value, 0);
	assert_int_equal(r.throttle[CG_RIOPS][0].major, 253);
	assert_int_equal(r.nthrottle[CG_WIOPS], 0);
	assert_int_equal(r.nhugepages, 2);
	assert_string_equal(r.hugepages[0].name, "2MB");
	assert_int_equal(r.hugepages[0].value, 4194304);
	assert_int_equal(r.net_classid, 1048577);
	assert_int_equal(r.nnet_prios, 1);
	assert_string_equal(r.net_prios[0].name, "eth0");
	assert_int_equal(r.net_prios[0].value, 5);
	assert_int_equal(r.nrdma, 1);
	assert_int_equal(r.nunified, 2);
	assert_string_equal(r.unified[1].key, "io.weight");
	assert_string_equal(r.unified[1].val, "default 100");
	assert_int_equal(r.ndevice_rules, 3);
	assert_null(r.notes);
	cg_resources_free(&r);

	/* What docker 20.10 sends for a plain `docker run`: zeros and
	 * falses that leave everything as it is. */
	assert_int_equal(decode(t,
		"{'devices': [{'allow': false, 'access': 'rwm'}],"
		" 'memory': {'disableOOMKiller': false}, 'cpu': {'shares': 0},"
		" 'blockIO': {'weight': 0}, 'pids': {'limit': 0}}", &r), 0);
	assert_true(r.blkio_weight == CG_UNSET);
	assert_true(r.memory_oom_kill_disable == CG_UNSET);
	cg_resources_free(&r);
	/* swappiness -1 (or its uint64 image) is "not set", as in runc. */
	assert_int_equal(decode(t, "{'memory': {'swappiness': -1}}", &r), 0);
	assert_true(r.memory_swappiness == CG_UNSET);
	cg_resources_free(&r);
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_key(&t->pk, "memory");
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_key(&t->pk, "swappiness");
	msgpack_pack_uint64(&t->pk, UINT64_MAX);
	cg_resources_init(&r);
	assert_int_equal(cg_resources_decode(at_obj(t), &r, &t->err), 0);
	assert_true(r.memory_swappiness == CG_UNSET);
	cg_resources_free(&r);
}

/* The spec: "Runtimes ... MUST NOT generate an error if they encounter
 * an unknown property.  Instead they MUST ignore unknown properties."
 * They are noted, for one log line each. */
static void test_decode_unknown_noted(void **state)
{
	struct at *t = *state;
	struct cg_resources r;

	assert_int_equal(decode(t,
		"{'somethingNew': 1, 'memory': {'future': 1},"
		" 'blockIO': {'newKnob': 2}, 'pids': {'max': 1}}", &r), 0);
	assert_non_null(r.notes);
	assert_string_equal(r.notes[0], "linux.resources.somethingNew: not a "
			    "runtime-spec field this agent knows; ignored");
	assert_non_null(strstr(r.notes[1], "linux.resources.memory.future"));
	assert_non_null(strstr(r.notes[2], "linux.resources.blockIO.newKnob"));
	assert_non_null(strstr(r.notes[3], "linux.resources.pids.max"));
	assert_null(r.notes[4]);
	cg_resources_free(&r);
	assert_null(r.notes);
}

static void test_decode_bad_values(void **state)
{
	struct at *t = *state;
	struct cg_resources r;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "{'blockIO': {'weight': 5}}",
		  "linux.resources.blockIO.weight: 5 is out of range [10, 1000]" },
		{ "{'blockIO': {'weight': 1001}}",
		  "linux.resources.blockIO.weight: 1001 is out of range [0, 1000]" },
		{ "{'blockIO': {'weightDevice': [{'major': 8, 'weight': 10}]}}",
		  "linux.resources.blockIO.weightDevice[0].minor: missing" },
		{ "{'blockIO': {'throttleReadBpsDevice': [{'major': 8, 'minor': 0}]}}",
		  "linux.resources.blockIO.throttleReadBpsDevice[0].rate: missing" },
		{ "{'blockIO': {'throttleWriteIOPSDevice': [{'major': -1, 'minor': 0, 'rate': 1}]}}",
		  "linux.resources.blockIO.throttleWriteIOPSDevice[0].major: -1 is out of range [0, 4095]" },
		{ "{'blockIO': {'throttleReadBpsDevice': {}}}",
		  "linux.resources.blockIO.throttleReadBpsDevice: expected an array, got a map" },
		{ "{'hugepageLimits': [{'pageSize': '../x', 'limit': 1}]}",
		  "linux.resources.hugepageLimits[0].pageSize: \"../x\" is not a size such as \"2MB\"" },
		{ "{'hugepageLimits': [{'pageSize': '2MB'}]}",
		  "linux.resources.hugepageLimits[0].limit: missing" },
		{ "{'network': {'classID': -1}}",
		  "linux.resources.network.classID: -1 is out of range [0, 4294967295]" },
		{ "{'network': {'priorities': [{'name': 'a b', 'priority': 1}]}}",
		  "linux.resources.network.priorities[0].name: bad interface name" },
		{ "{'rdma': {'mlx': {'hcaHandles': 'x'}}}",
		  "linux.resources.rdma.mlx.hcaHandles: expected an integer, got a string" },
		{ "{'unified': {'../memory.max': '1'}}",
		  "linux.resources.unified.../memory.max: not a cgroup v2 file a container may set" },
		{ "{'unified': {'cgroup.procs': '1'}}",
		  "linux.resources.unified.cgroup.procs: not a cgroup v2 file a container may set" },
		{ "{'unified': {'memory.max': 1}}",
		  "linux.resources.unified.memory.max: expected a string, got an integer" },
		{ "{'devices': [{'allow': true, 'type': 'x'}]}",
		  "linux.resources.devices[0].type: expected a, b or c" },
		{ "{'devices': [{'allow': true, 'access': 'rwx'}]}",
		  "linux.resources.devices[0].access: expected letters of \"rwm\"" },
		{ "{'devices': [{'access': 'r'}]}",
		  "linux.resources.devices[0].allow: missing" },
		{ "{'memory': {'swappiness': 101}}",
		  "linux.resources.memory.swappiness: 101 is out of range [0, 100]" },
		{ "{'cpu': {'idle': 2}}",
		  "linux.resources.cpu.idle: 2 is out of range [0, 1]" },
		/* The string-valued cpuset is freed on the way out. */
		{ "{'cpu': {'cpus': '0', 'idle': 3}}",
		  "linux.resources.cpu.idle: 3 is out of range [0, 1]" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(decode(t, cases[i].json, &r), -1);
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
		assert_null(r.cpuset_cpus);
		assert_null(r.unified);
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
	assert_int_equal(cg_resources_decode(at_obj(t), &r, &t->err), 0);
	assert_non_null(r.notes);
	assert_non_null(strstr(r.notes[0],
			       "linux.resources.<non-string key>: not a"));
	cg_resources_free(&r);
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
	assert_int_equal(cg_keyed_value("usage_usec 10\nuser_usec 7\n",
				     "user_usec"), 7);
	assert_int_equal(cg_keyed_value("usage_usec 10\n", "usage"), 0);
	assert_int_equal(cg_keyed_value(NULL, "x"), 0);
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
		cmocka_unit_test_setup_teardown(test_decode_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_unset_and_unlimited,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_every_field, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decode_unknown_noted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decode_bad_values, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decode_duplicate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_name_check, setup, teardown),
		cmocka_unit_test(test_self_path),
		cmocka_unit_test(test_keyed_value),
		cmocka_unit_test_setup_teardown(test_live, setup, teardown_live),
		cmocka_unit_test_setup_teardown(test_live_v2, setup,
						teardown_live),
		cmocka_unit_test_setup_teardown(test_limits_blkio_v2, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_limits_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_program, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_procinfo, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
