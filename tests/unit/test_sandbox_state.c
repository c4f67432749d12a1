/* sandbox/state.c and bundle.c: what a state file or a bundle names is
 * checked when it is read, so that neither can steer husk elsewhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox/sandbox.h"
#include "tests/unit/store_testlib.h"

static int setup(void **state)
{
	/* The warnings of dropped fields are not this test's output. */
	husk_log_set_level(HUSK_LOG_ERROR);
	return store_setup(state, "sbstate", "root");
}

static int teardown(void **state)
{
	return store_teardown(state);
}

/* ------------------------------------------------------------ paths */

static void test_cgroup_check(void **state)
{
	static const char *const good[] = {
		"/sys/fs/cgroup/husk/c1", "/sys/fs/cgroup/a",
		"/sys/fs/cgroup/memory/x/y", NULL,
	};
	static const char *const bad[] = {
		"/sys/fs/cgroup", "/sys/fs/cgroup/", "/sys/fs/cgroup/..",
		"/sys/fs/cgroup/../../etc", "/sys/fs/cgroup/a/../../..",
		"/sys/fs/cgroup/./a", "/sys/fs/cgroup//a", "/sys/fs/cgroupx/a",
		"sys/fs/cgroup/a", "/etc", "/tmp/x", "", NULL,
	};
	struct husk_err *err = NULL;

	(void)state;
	for (const char *const *g = good; *g; g++)
		if (husk_state_cgroup_check(*g, &err) < 0)
			fail_msg("refused %s: %s", *g, err->msg);
	for (const char *const *b = bad; *b; b++) {
		if (husk_state_cgroup_check(*b, &err) == 0)
			fail_msg("accepted %s", *b);
		assert_non_null(strstr(err->msg, "is not a directory below "
					"/sys/fs/cgroup"));
		husk_err_clear(&err);
	}
	/* The path is shown escaped. */
	assert_int_equal(husk_state_cgroup_check("/x\x1b[2J", &err), -1);
	assert_null(strchr(err->msg, '\x1b'));
	assert_non_null(strstr(err->msg, "`/x\\x1b[2J`"));
	husk_err_clear(&err);
}

static void test_netns_check(void **state)
{
	static const char *const good[] = {
		"/run/netns/cni-1", "/var/run/netns/x", "/proc/42/ns/net",
		"/proc/self/ns/net", "/r/sb1/netns", "/r/other/netns", NULL,
	};
	static const char *const bad[] = {
		"/etc/passwd", "/run/netns", "/run/netns/../../etc/passwd",
		"/run/netnsx/a", "/r/../etc", "/r/sb1/../../etc/passwd",
		"/proc", "relative/netns", "", "/run//netns/a", NULL,
	};
	struct husk_err *err = NULL;

	(void)state;
	for (const char *const *g = good; *g; g++)
		if (husk_state_netns_check("/r", "sb1", *g, false, &err) < 0)
			fail_msg("refused %s: %s", *g, err->msg);
	for (const char *const *b = bad; *b; b++) {
		if (husk_state_netns_check("/r", "sb1", *b, false, &err) == 0)
			fail_msg("accepted %s", *b);
		assert_non_null(strstr(err->msg, "is not below the state "
					"directory"));
		husk_err_clear(&err);
	}
	/* One husk made: only its own file, whatever else is allowed. */
	assert_int_equal(husk_state_netns_check("/r", "sb1", "/r/sb1/netns",
						true, &err), 0);
	assert_int_equal(husk_state_netns_check("/r", "sb1", "/run/netns/x",
						true, &err), -1);
	assert_non_null(strstr(err->msg, "husk made is not `/r/sb1/netns`"));
	husk_err_clear(&err);
	assert_int_equal(husk_state_netns_check("/r", "sb1", "/r/sb2/netns",
						true, &err), -1);
	husk_err_clear(&err);
	/* The host's own namespace, by any name. */
	assert_true(husk_netns_is_host("/proc/self/ns/net"));
	assert_true(husk_netns_is_host("/proc/thread-self/ns/net"));
	assert_false(husk_netns_is_host("/nonexistent"));
	assert_false(husk_netns_is_host("/etc/passwd"));
}

/* ------------------------------------------------------------ state */

static void plant(struct fix *f, const char *id, const char *name,
		  const char *text)
{
	struct husk_entry e;

	if (husk_store_get(&f->s, id, HUSK_LOCK_NONE, &e, NULL) < 0)
		assert_int_equal(husk_store_create(&f->s, id, HUSK_LOCK_NONE,
						   &e, NULL), 0);
	assert_int_equal(husk_entry_write(&e, name, text, strlen(text), NULL),
			 0);
	husk_entry_close(&e);
}

static int read_ct(struct fix *f, const char *id, struct husk_container *c,
		   struct husk_err **err)
{
	struct husk_entry e;
	int r;

	assert_int_equal(husk_store_get(&f->s, id, HUSK_LOCK_NONE, &e, NULL),
			 0);
	r = husk_container_read(&e, c, err);
	husk_entry_close(&e);
	return r;
}

#define CT(id, sid, shim, extra)                                          \
	"{\"id\": \"" id "\", \"sandbox_id\": \"" sid "\", "             \
	"\"is_sandbox\": false, \"bundle\": \"/b\", \"status\": "        \
	"\"created\", \"shim\": " shim ", \"created\": \"t\"" extra "}"

static void test_container_read(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ CT("other", "sb", "{\"pid\": 5, \"start\": 9}", ""),
		  "id is not `c1`" },
		{ CT("c1", "../../etc", "{\"pid\": 5, \"start\": 9}", ""),
		  "sandbox_id `../../etc` must not start with '.'" },
		{ CT("c1", "a/b", "{\"pid\": 5, \"start\": 9}", ""),
		  "sandbox_id `a/b`: only" },
		{ CT("c1", "sb", "{\"pid\": 1, \"start\": 9}", ""),
		  "shim: pid 1 is not a process husk starts" },
		{ CT("c1", "sb", "{\"pid\": -1, \"start\": 9}", ""),
		  "shim: pid -1 is not" },
		{ CT("c1", "sb", "{\"pid\": 99999999, \"start\": 9}", ""),
		  "shim: pid 99999999 is not" },
		{ CT("c1", "sb", "{\"pid\": 5, \"start\": -2}", ""),
		  "shim: start -2 is negative" },
		{ CT("c1", "sb", "{\"pid\": \"5\", \"start\": 9}", ""),
		  "shim: pid and start must be integers" },
		{ "{\"id\": \"c1\", \"sandbox_id\": \"sb\", \"bundle\": "
		  "\"rel\", \"status\": \"created\", \"shim\": {\"pid\": 0, "
		  "\"start\": 0}, \"created\": \"t\"}",
		  "bundle is not an absolute path" },
		{ "{\"id\": \"c1\", \"sandbox_id\": \"sb\", \"is_sandbox\": "
		  "true, \"bundle\": \"/b\", \"status\": \"created\", "
		  "\"shim\": {\"pid\": 0, \"start\": 0}, \"created\": \"t\"}",
		  "a sandbox's sandbox_id is not its id" },
	};
	struct fix *f = *state;
	struct husk_container c;
	struct husk_err *err = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		plant(f, "c1", "state.json", bad[i].text);
		if (read_ct(f, "c1", &c, &err) == 0)
			fail_msg("accepted: %s", bad[i].text);
		if (!strstr(err->msg, bad[i].why) ||
		    strncmp(err->msg, "state of c1 is damaged: ", 24))
			fail_msg("error \"%s\", want \"%s\"", err->msg,
				 bad[i].why);
		husk_err_clear(&err);
	}

	/* Bad cgroup entries and hooks are dropped, the rest is kept. */
	plant(f, "c1", "state.json",
	      CT("c1", "sb", "{\"pid\": 5, \"start\": 9}",
		 ", \"cgroups\": [\"/sys/fs/cgroup/husk/c1\", "
		 "\"/sys/fs/cgroup/../../etc\", 5, \"/tmp/x\", "
		 "\"/sys/fs/cgroup/memory/husk/c1\"], \"hooks\": "
		 "{\"poststop\": [{\"path\": \"relative\"}]}"));
	assert_int_equal(read_ct(f, "c1", &c, &err), 0);
	assert_int_equal(json_array_size(c.cgroups), 2);
	assert_string_equal(json_string_value(json_array_get(c.cgroups, 0)),
			    "/sys/fs/cgroup/husk/c1");
	assert_string_equal(json_string_value(json_array_get(c.cgroups, 1)),
			    "/sys/fs/cgroup/memory/husk/c1");
	assert_null(c.hooks);
	assert_int_equal(c.shim.pid, 5);
	husk_container_free(&c);

	/* pid 0 is "no shim yet". */
	plant(f, "c1", "state.json",
	      CT("c1", "sb", "{\"pid\": 0, \"start\": 0}",
		 ", \"hooks\": {\"poststop\": [{\"path\": \"/bin/true\"}]}"));
	assert_int_equal(read_ct(f, "c1", &c, &err), 0);
	assert_non_null(c.hooks);
	husk_container_free(&c);
}

#define SB(id, netns, created)                                            \
	"{\"id\": \"" id "\", \"hypervisor\": {\"pid\": 0, \"start\": 0}, " \
	"\"proxy\": {\"pid\": 0, \"start\": 0}, \"accel\": \"tcg\", "     \
	"\"netns\": " netns ", \"netns_created\": " created "}"

static void test_sandbox_read(void **state)
{
	struct fix *f = *state;
	struct husk_sandbox s;
	struct husk_entry e;
	struct husk_err *err = NULL;
	char text[512], own[160];

	snprintf(own, sizeof(own), "%s/sb/netns", f->root);
	plant(f, "sb", "state.json", "{}");
	assert_int_equal(husk_store_get(&f->s, "sb", HUSK_LOCK_NONE, &e, NULL),
			 0);

	snprintf(text, sizeof(text), SB("sb", "\"%s\"", "true"), own);
	assert_int_equal(husk_entry_write(&e, "sandbox.json", text,
					  strlen(text), NULL), 0);
	assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
	assert_string_equal(s.netns, own);
	assert_true(s.netns_created);
	husk_sandbox_free(&s);

	/* Each of these is forgotten: delete leaves it alone. */
	{
		static const char *const drop[][2] = {
			{ "\"/etc/passwd\"", "true" },
			{ "\"/etc/passwd\"", "false" },
			{ "\"/run/netns/x\"", "true" },
			{ "\"/run/netns/../../etc/passwd\"", "false" },
			{ "\"/proc/self/ns/net\"", "false" },
			{ "\"/proc/thread-self/ns/net\"", "false" },
		};

		for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
			snprintf(text, sizeof(text), SB("sb", "%s", "%s"),
				 drop[i][0], drop[i][1]);
			assert_int_equal(husk_entry_write(&e, "sandbox.json",
							  text, strlen(text),
							  NULL), 0);
			assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
			if (s.netns)
				fail_msg("kept %s", drop[i][0]);
			assert_false(s.netns_created);
			husk_sandbox_free(&s);
		}
	}
	/* A given one where namespaces live is kept. */
	snprintf(text, sizeof(text), SB("sb", "\"/run/netns/cni-1\"", "false"));
	assert_int_equal(husk_entry_write(&e, "sandbox.json", text,
					  strlen(text), NULL), 0);
	assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
	assert_string_equal(s.netns, "/run/netns/cni-1");
	husk_sandbox_free(&s);

	/* [runtime] sandbox_cgroup_only's directories: written, read back,
	 * bad entries dropped as state.json's are. */
	{
		struct husk_sandbox w = { 0 };

		w.id = "sb";
		w.cgroups = json_pack("[s, s]", "/sys/fs/cgroup/memory/a",
				      "/sys/fs/cgroup/memory/a/b");
		assert_int_equal(husk_sandbox_write(&e, &w, &err), 0);
		json_decref(w.cgroups);
		assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
		assert_int_equal(json_array_size(s.cgroups), 2);
		assert_string_equal(json_string_value(json_array_get(
			s.cgroups, 1)), "/sys/fs/cgroup/memory/a/b");
		husk_sandbox_free(&s);
		snprintf(text, sizeof(text), "{\"id\": \"sb\", "
			 "\"hypervisor\": {\"pid\": 0, \"start\": 0}, "
			 "\"proxy\": {\"pid\": 0, \"start\": 0}, "
			 "\"cgroups\": [\"/etc\", 7, "
			 "\"/sys/fs/cgroup/../../etc\", "
			 "\"/sys/fs/cgroup/pids/a\"]}");
		assert_int_equal(husk_entry_write(&e, "sandbox.json", text,
						  strlen(text), NULL), 0);
		assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
		assert_int_equal(json_array_size(s.cgroups), 1);
		assert_string_equal(json_string_value(json_array_get(
			s.cgroups, 0)), "/sys/fs/cgroup/pids/a");
		husk_sandbox_free(&s);
		/* None made: none written. */
		w.cgroups = json_array();
		assert_int_equal(husk_sandbox_write(&e, &w, &err), 0);
		json_decref(w.cgroups);
		assert_int_equal(husk_sandbox_read(&e, &s, &err), 0);
		assert_null(s.cgroups);
		husk_sandbox_free(&s);
	}

	/* Another sandbox's id, or init as the driver: damaged. */
	snprintf(text, sizeof(text), SB("other", "null", "false"));
	assert_int_equal(husk_entry_write(&e, "sandbox.json", text,
					  strlen(text), NULL), 0);
	assert_int_equal(husk_sandbox_read(&e, &s, &err), -1);
	assert_string_equal(err->msg, "sandbox state of sb is damaged: id is "
			    "not `sb`");
	husk_err_clear(&err);
	snprintf(text, sizeof(text), "{\"id\": \"sb\", \"hypervisor\": "
		 "{\"pid\": 1, \"start\": 3}, \"proxy\": {\"pid\": 0, "
		 "\"start\": 0}}");
	assert_int_equal(husk_entry_write(&e, "sandbox.json", text,
					  strlen(text), NULL), 0);
	assert_int_equal(husk_sandbox_read(&e, &s, &err), -1);
	assert_non_null(strstr(err->msg, "hypervisor: pid 1 is not"));
	husk_err_clear(&err);
	husk_entry_close(&e);
}

/* A record without a start time names no live process of ours. */
static void test_proc_alive_needs_start(void **state)
{
	struct husk_proc_ref me, p;

	(void)state;
	assert_int_equal(husk_proc_ref(getpid(), &me), 0);
	assert_true(husk_proc_alive(&me));
	p = me;
	p.start = 0;
	assert_false(husk_proc_alive(&p));
	p = me;
	p.start++;
	assert_false(husk_proc_alive(&p));
	p.pid = 1;
	p.start = 1;
	assert_false(husk_proc_alive(&p));
}

/* ------------------------------------------------------------ bundle */

static void write_at(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void spec(const char *bundle, const char *root, const char *mounts)
{
	char text[1024];

	snprintf(text, sizeof(text), "{\"ociVersion\": \"1.0.2\", \"root\": "
		 "{\"path\": \"%s\"}, \"process\": {\"args\": [\"sh\"], "
		 "\"cwd\": \"/\"}, \"mounts\": %s}", root, mounts);
	write_at(bundle, "config.json", text);
}

static void test_bundle_paths(void **state)
{
	struct fix *f = *state;
	struct husk_bundle b = { 0 };
	struct husk_err *err = NULL;
	char bundle[160], outside[160], path[256], link[64], got[256];
	struct stat st1, st2;
	ssize_t n;

	snprintf(bundle, sizeof(bundle), "%s/bundle", f->dir);
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	assert_int_equal(mkdir(bundle, 0755), 0);
	assert_int_equal(mkdir(outside, 0755), 0);
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/vol", bundle);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/out", bundle);
	assert_int_equal(symlink(outside, path), 0);
	snprintf(path, sizeof(path), "%s/in", bundle);
	assert_int_equal(symlink("rootfs", path), 0);

	/* Relative: resolved, the descriptor is what the path names. */
	spec(bundle, "in", "[{\"destination\": \"/v\", \"type\": \"bind\", "
	     "\"source\": \"vol\"}, {\"destination\": \"/p\", \"type\": "
	     "\"proc\", \"source\": \"proc\"}, {\"destination\": \"/a\", "
	     "\"options\": [\"rbind\"], \"source\": \"/tmp\"}]");
	assert_int_equal(husk_bundle_load(bundle, &b, &err), 0);
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	assert_string_equal(b.rootfs, path);
	assert_int_equal(fstat(b.rootfd, &st1), 0);
	assert_int_equal(stat(path, &st2), 0);
	assert_true(st1.st_ino == st2.st_ino && st1.st_dev == st2.st_dev);
	assert_int_equal(b.nsrcs, 3);
	snprintf(path, sizeof(path), "%s/vol", bundle);
	assert_string_equal(b.srcs[0].path, path);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", b.srcs[0].fd);
	n = readlink(link, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, path);
	assert_int_equal(b.srcs[1].fd, -1);
	assert_null(b.srcs[1].path);
	assert_string_equal(b.srcs[2].path, "/tmp");
	husk_bundle_free(&b);

	/* Absolute outside the bundle: allowed (OCI). */
	spec(bundle, outside, "[]");
	assert_int_equal(husk_bundle_load(bundle, &b, &err), 0);
	assert_string_equal(b.rootfs, outside);
	husk_bundle_free(&b);

	/* Out of the bundle, or the host's. */
	{
		static const char *const bad[][2] = {
			{ "../outside", "leads out of the bundle" },
			{ "out", "leads out of the bundle" },
			{ "rootfs/../../outside", "leads out of the bundle" },
			{ "/", "is the host's /:" },
			{ "/usr", "is the host's /usr:" },
			{ "/etc/ssl", "is in the host's /etc:" },
			{ "/proc/self", "is in the host's /proc:" },
			{ "/var/lib", "is the host's /var/lib:" },
			{ "config.json", "is not a directory" },
			{ "", "root.path is empty" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			spec(bundle, bad[i][0], "[]");
			if (husk_bundle_load(bundle, &b, &err) == 0)
				fail_msg("accepted root %s", bad[i][0]);
			if (!strstr(err->msg, bad[i][1]))
				fail_msg("root %s: \"%s\"", bad[i][0],
					 err->msg);
			assert_int_equal(b.rootfd, -1);
			husk_err_clear(&err);
		}
	}
	spec(bundle, "rootfs", "[{\"destination\": \"/v\", \"type\": "
	     "\"bind\", \"source\": \"vol/../../outside\"}]");
	assert_int_equal(husk_bundle_load(bundle, &b, &err), -1);
	assert_non_null(strstr(err->msg, "config.json: mounts[0].source "
				"`vol/../../outside` leads out of the "
				"bundle"));
	husk_err_clear(&err);

	/* config.json: a fifo is refused at once. */
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(husk_bundle_load(bundle, &b, &err), -1);
	assert_non_null(strstr(err->msg, "`config.json` is a fifo"));
	husk_err_clear(&err);
	husk_bundle_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_cgroup_check),
		T(test_netns_check),
		T(test_container_read),
		T(test_sandbox_read),
		T(test_proc_alive_needs_start),
		T(test_bundle_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
