/* sandbox/: what a spec asks of the VM (sizing, annotations, pod
 * membership), the pid-reuse guard, and state files read back as they
 * were written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox/sandbox.h"
#include "tests/unit/store_testlib.h"

static json_t *spec_of(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);

	if (!j)
		fail_msg("bad test json: %s", je.text);
	return j;
}

/* ------------------------------------------------------------ sizing */

static void sizing(const char *res, unsigned *mb, unsigned *cpus)
{
	char *text = husk_xasprintf("{\"linux\":{\"resources\":%s}}", res);
	json_t *spec = spec_of(text);

	husk_spec_sizing(spec, mb, cpus);
	json_decref(spec);
	free(text);
}

static void test_sizing(void **state)
{
	unsigned mb, cpus;

	(void)state;
	/* Nothing asked: nothing added. */
	sizing("{}", &mb, &cpus);
	assert_int_equal(mb, 0);
	assert_int_equal(cpus, 0);
	/* One byte is one 128 MiB block; 128 MiB exactly stays one. */
	sizing("{\"memory\":{\"limit\":1}}", &mb, &cpus);
	assert_int_equal(mb, 128);
	sizing("{\"memory\":{\"limit\":134217728}}", &mb, &cpus);
	assert_int_equal(mb, 128);
	sizing("{\"memory\":{\"limit\":134217729}}", &mb, &cpus);
	assert_int_equal(mb, 256);
	sizing("{\"memory\":{\"limit\":209715200}}", &mb, &cpus);
	assert_int_equal(mb, 256);
	/* No limit (-1) or 0 is no addition. */
	sizing("{\"memory\":{\"limit\":-1}}", &mb, &cpus);
	assert_int_equal(mb, 0);
	sizing("{\"memory\":{\"limit\":0}}", &mb, &cpus);
	assert_int_equal(mb, 0);
	/* A limit beyond unsigned MiB saturates rather than wraps. */
	sizing("{\"memory\":{\"limit\":9223372036854775807}}", &mb, &cpus);
	assert_int_equal(mb, UINT_MAX);
	/* quota/period rounded up to whole vCPUs. */
	sizing("{\"cpu\":{\"quota\":150000,\"period\":100000}}", &mb, &cpus);
	assert_int_equal(cpus, 2);
	assert_int_equal(mb, 0);
	sizing("{\"cpu\":{\"quota\":200000,\"period\":100000}}", &mb, &cpus);
	assert_int_equal(cpus, 2);
	sizing("{\"cpu\":{\"quota\":1,\"period\":50000}}", &mb, &cpus);
	assert_int_equal(cpus, 1);
	/* No period: the kernel's default 100 ms. */
	sizing("{\"cpu\":{\"quota\":250000}}", &mb, &cpus);
	assert_int_equal(cpus, 3);
	/* quota -1 (unlimited) adds nothing. */
	sizing("{\"cpu\":{\"quota\":-1,\"period\":100000}}", &mb, &cpus);
	assert_int_equal(cpus, 0);
	/* A spec with no linux section at all. */
	{
		json_t *spec = spec_of("{}");

		husk_spec_sizing(spec, &mb, &cpus);
		assert_int_equal(mb, 0);
		assert_int_equal(cpus, 0);
		json_decref(spec);
	}
}

/* ------------------------------------------------------- annotations */

static int annotate(struct husk_config *cfg, const char *ann,
		    struct husk_err **err)
{
	char *text = husk_xasprintf("{\"annotations\":%s}", ann);
	json_t *spec = spec_of(text);
	int r;

	r = husk_config_annotations(cfg, spec, err);
	json_decref(spec);
	free(text);
	return r;
}

static void test_annotations_allowed(void **state)
{
	struct husk_config cfg;
	struct husk_err *err = NULL;

	(void)state;
	husk_config_defaults(&cfg);
	cfg.max_vcpus = 8;
	cfg.max_memory_mb = 4096;
	assert_int_equal(annotate(&cfg, "{"
		"\"io.husk.config.hypervisor.vcpus\":\"4\","
		"\"io.husk.config.hypervisor.memory_mb\":\"1024\","
		"\"io.husk.config.agent.timeout\":\"77\","
		"\"io.husk.config.hypervisor.machine_type\":\"q35\","
		"\"org.other.key\":\"anything\"}", &err), 0);
	assert_int_equal(cfg.vcpus, 4);
	assert_int_equal(cfg.memory_mb, 1024);
	assert_int_equal(cfg.agent_timeout, 77);
	assert_string_equal(cfg.machine_type, "q35");
	/* The bounds themselves are allowed: the max is the configured
	 * maximum, not a constant. */
	assert_int_equal(annotate(&cfg, "{"
		"\"io.husk.config.hypervisor.vcpus\":\"8\","
		"\"io.husk.config.hypervisor.memory_mb\":\"64\","
		"\"io.husk.config.agent.timeout\":\"3600\","
		"\"io.husk.config.hypervisor.machine_type\":\"microvm\"}",
		&err), 0);
	assert_int_equal(cfg.vcpus, 8);
	assert_int_equal(cfg.memory_mb, 64);
	assert_int_equal(cfg.agent_timeout, 3600);
	assert_string_equal(cfg.machine_type, "microvm");
	/* No annotations: nothing changes. */
	assert_int_equal(annotate(&cfg, "{}", &err), 0);
	assert_int_equal(cfg.vcpus, 8);
	husk_config_free(&cfg);
}

static void test_annotations_refused(void **state)
{
	static const struct {
		const char *ann, *msg;
	} bad[] = {
		{ "{\"io.husk.config.hypervisor.vcpus\":\"9\"}",
		  "io.husk.config.hypervisor.vcpus: '9' is not a whole "
		  "number in [1, 8]" },
		{ "{\"io.husk.config.hypervisor.vcpus\":\"0\"}",
		  "'0' is not a whole number in [1, 8]" },
		{ "{\"io.husk.config.hypervisor.memory_mb\":\"4097\"}",
		  "'4097' is not a whole number in [64, 4096]" },
		{ "{\"io.husk.config.hypervisor.memory_mb\":\"63\"}",
		  "'63' is not a whole number in [64, 4096]" },
		{ "{\"io.husk.config.agent.timeout\":\"3601\"}",
		  "'3601' is not a whole number in [1, 3600]" },
		{ "{\"io.husk.config.agent.timeout\":\"1x\"}",
		  "'1x' is not a whole number" },
		{ "{\"io.husk.config.hypervisor.vcpus\":2}",
		  "vcpus: '?' is not a whole number" },
		{ "{\"io.husk.config.hypervisor.machine_type\":\"pc\"}",
		  "machine_type: 'pc' is not q35 or microvm" },
		{ "{\"io.husk.config.hypervisor.path\":\"/bin/sh\"}",
		  "annotation io.husk.config.hypervisor.path: not one husk "
		  "lets a container change" },
		{ "{\"io.husk.config.hypervisor.kernel_params\":\"init=/x\"}",
		  "kernel_params: not one husk lets" },
		{ "{\"io.husk.anything\":\"1\"}",
		  "io.husk.anything: not one husk lets" },
	};

	(void)state;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++) {
		struct husk_config cfg;
		struct husk_err *err = NULL;

		husk_config_defaults(&cfg);
		cfg.max_vcpus = 8;
		cfg.max_memory_mb = 4096;
		cfg.vcpus = 1;
		if (annotate(&cfg, bad[i].ann, &err) == 0)
			fail_msg("accepted %s", bad[i].ann);
		assert_int_equal(err->code, HUSK_E_INVALID);
		if (!strstr(err->msg, bad[i].msg))
			fail_msg("%s: '%s' lacks '%s'", bad[i].ann, err->msg,
				 bad[i].msg);
		assert_int_equal(cfg.vcpus, 1);
		husk_err_clear(&err);
		husk_config_free(&cfg);
	}
}

/* ---------------------------------------------------- pod membership */

static int member(const char *ann, char **sid, struct husk_err **err)
{
	char *text = husk_xasprintf("{\"annotations\":%s}", ann);
	json_t *spec = spec_of(text);
	int r;

	*sid = NULL;
	r = husk_pod_membership(spec, "c1", sid, err);
	json_decref(spec);
	free(text);
	return r;
}

static void test_membership(void **state)
{
	static const struct {
		const char *ann, *sid;
	} good[] = {
		/* No CRI annotation: a sandbox of its own. */
		{ "{}", "c1" },
		{ "{\"io.kubernetes.cri.sandbox-id\":\"p9\"}", "c1" },
		/* containerd */
		{ "{\"io.kubernetes.cri.container-type\":\"sandbox\","
		  "\"io.kubernetes.cri.sandbox-id\":\"p9\"}", "c1" },
		{ "{\"io.kubernetes.cri.container-type\":\"container\","
		  "\"io.kubernetes.cri.sandbox-id\":\"pod-1\"}", "pod-1" },
		/* CRI-O */
		{ "{\"io.kubernetes.cri-o.ContainerType\":\"sandbox\"}",
		  "c1" },
		{ "{\"io.kubernetes.cri-o.ContainerType\":\"container\","
		  "\"io.kubernetes.cri-o.SandboxID\":\"pod-2\"}", "pod-2" },
		/* The other runtime's sandbox key does not count. */
		{ "{\"io.kubernetes.cri-o.ContainerType\":\"container\","
		  "\"io.kubernetes.cri.sandbox-id\":\"x\","
		  "\"io.kubernetes.cri-o.SandboxID\":\"pod-3\"}", "pod-3" },
	};
	static const struct {
		const char *ann, *msg;
	} bad[] = {
		{ "{\"io.kubernetes.cri.container-type\":\"pod\"}",
		  "annotation io.kubernetes.cri.container-type: 'pod' is "
		  "neither sandbox nor container" },
		{ "{\"io.kubernetes.cri-o.ContainerType\":\"\"}",
		  "'' is neither sandbox nor container" },
		{ "{\"io.kubernetes.cri.container-type\":\"container\"}",
		  "annotation io.kubernetes.cri.container-type is container "
		  "but io.kubernetes.cri.sandbox-id is missing" },
		{ "{\"io.kubernetes.cri.container-type\":\"container\","
		  "\"io.kubernetes.cri.sandbox-id\":\"\"}",
		  "io.kubernetes.cri.sandbox-id is missing" },
		{ "{\"io.kubernetes.cri-o.ContainerType\":\"container\","
		  "\"io.kubernetes.cri.sandbox-id\":\"p\"}",
		  "io.kubernetes.cri-o.SandboxID is missing" },
		{ "{\"io.kubernetes.cri.container-type\":\"container\","
		  "\"io.kubernetes.cri.sandbox-id\":\"../etc\"}",
		  "sandbox id" },
	};

	(void)state;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(good); i++) {
		struct husk_err *err = NULL;
		char *sid;

		if (member(good[i].ann, &sid, &err) < 0)
			fail_msg("%s: %s", good[i].ann, err->msg);
		if (strcmp(sid, good[i].sid))
			fail_msg("%s: sandbox %s, not %s", good[i].ann, sid,
				 good[i].sid);
		free(sid);
	}
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++) {
		struct husk_err *err = NULL;
		char *sid;

		if (member(bad[i].ann, &sid, &err) == 0)
			fail_msg("accepted %s (sandbox %s)", bad[i].ann, sid);
		assert_null(sid);
		if (!strstr(err->msg, bad[i].msg))
			fail_msg("%s: '%s' lacks '%s'", bad[i].ann, err->msg,
				 bad[i].msg);
		husk_err_clear(&err);
	}
}

/* ------------------------------------------------------ pid reuse */

static void test_pid_reuse(void **state)
{
	struct husk_proc_ref me, other, child;
	struct husk_container c = { 0 };
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(husk_proc_ref(getpid(), &me), 0);
	assert_int_equal(me.pid, getpid());
	assert_true(me.start > 0);
	assert_true(husk_proc_alive(&me));
	/* Our pid with another start time: a reused pid, not ours. */
	other = me;
	other.start = me.start + 1;
	assert_false(husk_proc_alive(&other));
	other.start = me.start - 1;
	assert_false(husk_proc_alive(&other));
	/* The container's status follows: its shim is "gone". */
	c.status = HUSK_ST_RUNNING;
	c.shim = me;
	assert_int_equal(husk_live_status(&c), HUSK_ST_RUNNING);
	c.shim = other;
	assert_int_equal(husk_live_status(&c), HUSK_ST_STOPPED);
	c.status = HUSK_ST_CREATING;
	assert_int_equal(husk_live_status(&c), HUSK_ST_CREATING);

	/* A child that exited is gone once a zombie, and after reaping. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* The start time is read before the child can be reaped. */
	assert_int_equal(husk_proc_ref(pid, &child), 0);
	assert_int_equal(waitid(P_PID, pid, NULL, WEXITED | WNOWAIT), 0);
	assert_false(husk_proc_alive(&child));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_false(husk_proc_alive(&child));
}

/* ------------------------------------------------------ round trips */

static int setup(void **state)
{
	/* The warnings of dropped fields are not this test's output. */
	husk_log_set_level(HUSK_LOG_ERROR);
	return store_setup(state, "sbspec", "root");
}

static int teardown(void **state)
{
	return store_teardown(state);
}

static void test_container_round_trip(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	struct husk_entry e;
	struct husk_container w = { 0 }, r = { 0 };
	char *a, *b;

	assert_int_equal(husk_store_create(&f->s, "c1", HUSK_LOCK_EXCL, &e,
					   &err), 0);
	w.id = "c1";
	w.sandbox_id = "pod-1";
	w.is_sandbox = false;
	w.bundle = "/srv/bundles/c1";
	w.status = HUSK_ST_PAUSED;
	assert_int_equal(husk_proc_ref(getpid(), &w.shim), 0);
	w.created = "2026-12-02T17:00:00.123456789Z";
	w.annotations = json_pack("{s:s, s:s}", "a", "1", "io.x", "y");
	w.hooks = json_pack("{s:[{s:s}]}", "poststop", "path", "/bin/true");
	w.binds = json_pack("[s, s]", "/srv/data", "/srv/etc");
	w.cgroups = json_pack("[s]", "/sys/fs/cgroup/husk/c1");
	w.dimms = json_pack("[{s:s, s:i}]", "id", "dimm-c1-0",
			    "size_mb", 256);
	w.grown_vcpus = 2;
	w.sized_mb = 256;
	w.sized_vcpus = 3;
	w.owner = "1000";
	assert_int_equal(husk_container_write(&e, &w, &err), 0);
	if (husk_container_read(&e, &r, &err) < 0)
		fail_msg("read back: %s", err->msg);
	assert_string_equal(r.id, w.id);
	assert_string_equal(r.sandbox_id, w.sandbox_id);
	assert_false(r.is_sandbox);
	assert_string_equal(r.bundle, w.bundle);
	assert_int_equal(r.status, HUSK_ST_PAUSED);
	assert_int_equal(r.shim.pid, w.shim.pid);
	assert_true(r.shim.start == w.shim.start);
	assert_string_equal(r.created, w.created);
	assert_true(json_equal(r.annotations, w.annotations));
	assert_true(json_equal(r.hooks, w.hooks));
	assert_true(json_equal(r.binds, w.binds));
	assert_true(json_equal(r.cgroups, w.cgroups));
	assert_true(json_equal(r.dimms, w.dimms));
	assert_int_equal(r.grown_vcpus, 2);
	assert_int_equal(r.sized_mb, 256);
	assert_int_equal(r.sized_vcpus, 3);
	assert_string_equal(r.owner, "1000");
	/* Written again from what was read: the same bytes. */
	assert_int_equal(husk_entry_read(&e, "state.json", 1 << 20, &a, NULL,
					 &err), 0);
	assert_int_equal(husk_container_write(&e, &r, &err), 0);
	assert_int_equal(husk_entry_read(&e, "state.json", 1 << 20, &b, NULL,
					 &err), 0);
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* The sandbox's own container. */
	husk_container_free(&r);
	w.is_sandbox = true;
	w.sandbox_id = "c1";
	w.status = HUSK_ST_CREATED;
	assert_int_equal(husk_container_write(&e, &w, &err), 0);
	assert_int_equal(husk_container_read(&e, &r, &err), 0);
	assert_true(r.is_sandbox);
	assert_string_equal(r.sandbox_id, "c1");
	assert_int_equal(r.status, HUSK_ST_CREATED);
	husk_container_free(&r);
	json_decref(w.annotations);
	json_decref(w.hooks);
	json_decref(w.binds);
	json_decref(w.cgroups);
	json_decref(w.dimms);
	husk_entry_close(&e);
}

static void test_sandbox_round_trip(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	struct husk_entry e;
	struct husk_sandbox w = { 0 }, r = { 0 };
	char *path;

	assert_int_equal(husk_store_create(&f->s, "pod-1", HUSK_LOCK_EXCL,
					   &e, &err), 0);
	w.id = "pod-1";
	assert_int_equal(husk_proc_ref(getpid(), &w.hv), 0);
	assert_int_equal(husk_proc_ref(getppid(), &w.proxy), 0);
	w.accel = "tcg";
	path = husk_xasprintf("%s/pod-1/netns", f->root);
	w.netns = path;
	w.netns_created = true;
	w.netmon = w.hv;
	assert_int_equal(husk_sandbox_write(&e, &w, &err), 0);
	if (husk_sandbox_read(&e, &r, &err) < 0)
		fail_msg("read back: %s", err->msg);
	assert_string_equal(r.id, "pod-1");
	assert_int_equal(r.hv.pid, w.hv.pid);
	assert_true(r.hv.start == w.hv.start);
	assert_int_equal(r.proxy.pid, w.proxy.pid);
	assert_true(r.proxy.start == w.proxy.start);
	assert_string_equal(r.accel, "tcg");
	assert_string_equal(r.netns, path);
	assert_true(r.netns_created);
	assert_int_equal(r.netmon.pid, w.netmon.pid);
	assert_true(r.netmon.start == w.netmon.start);
	husk_sandbox_free(&r);
	/* No netns, no netmon. */
	w.netns = NULL;
	w.netns_created = false;
	w.netmon.pid = 0;
	w.netmon.start = 0;
	assert_int_equal(husk_sandbox_write(&e, &w, &err), 0);
	assert_int_equal(husk_sandbox_read(&e, &r, &err), 0);
	assert_null(r.netns);
	assert_false(r.netns_created);
	assert_int_equal(r.netmon.pid, 0);
	husk_sandbox_free(&r);
	free(path);
	husk_entry_close(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizing),
		cmocka_unit_test(test_annotations_allowed),
		cmocka_unit_test(test_annotations_refused),
		cmocka_unit_test(test_membership),
		cmocka_unit_test(test_pid_reuse),
		T(test_container_round_trip),
		T(test_sandbox_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
