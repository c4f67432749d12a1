/* sandbox/factory.c: a template's manifest against the configuration
 * and its files (docs/factory.md): a damaged or stale template is
 * refused (STALE: rebuilt), another configuration boots cold (DIFFERS),
 * and a sandbox's own size is no difference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox/sandbox.h"

struct fx {
	char dir[64];
	char tdir[96];
	struct husk_config cfg;
	json_t *have;
};

static void put(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static char *in(struct fx *f, const char *name)
{
	return husk_xasprintf("%s/%s", f->dir, name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *p, hex[24];

	husk_log_set_level(HUSK_LOG_ERROR);
	snprintf(f->dir, sizeof(f->dir), "/tmp/husk-factory.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->tdir, sizeof(f->tdir), "%s/template", f->dir);
	assert_int_equal(mkdir(f->tdir, 0700), 0);
	husk_config_defaults(&f->cfg);
	free(f->cfg.shared_fs);
	f->cfg.shared_fs = husk_xstrdup("virtio-9p");
	free(f->cfg.kernel);
	free(f->cfg.initrd);
	free(f->cfg.qemu_path);
	free(f->cfg.hypervisor_path);
	f->cfg.kernel = in(f, "vmlinux");
	f->cfg.initrd = in(f, "initrd");
	f->cfg.qemu_path = in(f, "qemu");
	f->cfg.hypervisor_path = in(f, "husk-hypervisor");
	put(f->cfg.kernel, 1000);
	put(f->cfg.initrd, 2000);
	put(f->cfg.qemu_path, 3000);
	put(f->cfg.hypervisor_path, 4000);
	/* The template as init leaves it. */
	f->have = husk_factory_want(&f->cfg, NULL);
	assert_non_null(f->have);
	json_object_set_new(f->have, "memory_bytes",
			    json_integer((json_int_t)f->cfg.factory_memory_mb
					 << 20));
	json_object_set_new(f->have, "state_bytes", json_integer(5000));
	p = husk_xasprintf("%s/memory", f->tdir);
	put(p, (size_t)f->cfg.factory_memory_mb << 20);
	free(p);
	p = husk_xasprintf("%s/state", f->tdir);
	put(p, 5000);
	assert_int_equal(husk_factory_hash(p, hex, sizeof(hex)), 0);
	json_object_set_new(f->have, "state_fnv1a64", json_string(hex));
	free(p);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	json_decref(f->have);
	husk_config_free(&f->cfg);
	free(f);
	return 0;
}

static int compare(struct fx *f, char *why, size_t n)
{
	json_t *want = husk_factory_want(&f->cfg, NULL);
	int rc;

	assert_non_null(want);
	why[0] = '\0';
	rc = husk_factory_compare(f->have, want, f->tdir, why, n);
	json_decref(want);
	return rc;
}

static void test_ok(void **state)
{
	struct fx *f = *state;
	char why[512];

	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_OK);
	/* A sandbox's own size is what clones plug in. */
	f->cfg.vcpus = 3;
	f->cfg.memory_mb = 1024;
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_OK);
}

static void test_truncated_or_missing(void **state)
{
	struct fx *f = *state;
	char why[512], *p = husk_xasprintf("%s/memory", f->tdir);

	put(p, 4096);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "memory has 4096 bytes"));
	put(p, (size_t)f->cfg.factory_memory_mb << 20);
	free(p);
	p = husk_xasprintf("%s/state", f->tdir);
	put(p, 4999);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "truncated"));
	/* The right size, a byte changed. */
	put(p, 5000);
	{
		int fd = open(p, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "x", 1, 100), 1);
		close(fd);
	}
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "damaged"));
	unlink(p);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "state"));
	free(p);
	/* A symlink in its place is not the file. */
	p = husk_xasprintf("%s/state", f->tdir);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	free(p);
}

static void test_makers_changed(void **state)
{
	struct fx *f = *state;
	char why[512];
	struct timeval tv[2] = { { 1000, 0 }, { 1000, 0 } };
	json_t *want;

	/* Rebuilt under the same path: size, or only the mtime. */
	put(f->cfg.kernel, 1001);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "kernel"));
	put(f->cfg.kernel, 1000);
	/* The kernel's new mtime accepted, QEMU's changed. */
	want = husk_factory_want(&f->cfg, NULL);
	json_object_set(json_object_get(f->have, "files"), "kernel",
			json_object_get(json_object_get(want, "files"),
					"kernel"));
	json_decref(want);
	assert_int_equal(utimes(f->cfg.qemu_path, tv), 0);
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "qemu"));
}

static void test_config_differs(void **state)
{
	struct fx *f = *state;
	char why[512];

	free(f->cfg.machine_type);
	f->cfg.machine_type = husk_xstrdup("microvm");
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	assert_non_null(strstr(why, "machine"));
	free(f->cfg.machine_type);
	f->cfg.machine_type = husk_xstrdup("q35");
	free(f->cfg.kernel_params);
	f->cfg.kernel_params = husk_xstrdup("foo=1");
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	free(f->cfg.kernel_params);
	f->cfg.kernel_params = husk_xstrdup("");
	f->cfg.max_vcpus = 7;
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	assert_non_null(strstr(why, "max_vcpus"));
	f->cfg.max_vcpus = 4;
	f->cfg.factory_memory_mb = 512;
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	f->cfg.factory_memory_mb = 256;
	free(f->cfg.shared_fs);
	f->cfg.shared_fs = husk_xstrdup("virtio-fs");
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	assert_non_null(strstr(why, "share"));
	free(f->cfg.shared_fs);
	f->cfg.shared_fs = husk_xstrdup("virtio-9p");
	/* Another kernel file is another configuration, not a stale one. */
	free(f->cfg.kernel);
	f->cfg.kernel = in(f, "initrd");
	assert_int_equal(compare(f, why, sizeof(why)), HUSK_TMPL_DIFFERS);
	assert_non_null(strstr(why, "kernel"));
}

static void test_bad_manifest(void **state)
{
	struct fx *f = *state;
	json_t *want = husk_factory_want(&f->cfg, NULL);
	char why[512];

	assert_int_equal(husk_factory_compare(NULL, want, f->tdir, why,
					      sizeof(why)), HUSK_TMPL_STALE);
	json_object_set_new(f->have, "version", json_integer(99));
	assert_int_equal(husk_factory_compare(f->have, want, f->tdir, why,
					      sizeof(why)), HUSK_TMPL_STALE);
	assert_non_null(strstr(why, "manifest"));
	json_decref(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_or_missing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_makers_changed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_differs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_manifest, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
