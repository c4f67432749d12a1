/*
 * agent/cgroup_res.c and cgroup.c: OCI linux.resources decoding, cgroup
 * names and paths (applying them: test_agent_cgroup_live.c).
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decode_all, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_unset_and_unlimited,
						at_setup, at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_types, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_every_field,
						at_setup, at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_unknown_noted,
						at_setup, at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_bad_values,
						at_setup, at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_duplicate, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_name_check, at_setup,
						at_teardown),
		cmocka_unit_test(test_self_path),
		cmocka_unit_test(test_keyed_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
