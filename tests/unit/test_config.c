/*
 * sandbox/config.c: husk.conf(5) read over the defaults.  The share's
 * transport, [hypervisor] shared_fs: virtio-fs by default, virtio-9p on
 * request, anything else refused with the line, the key and the values
 * it takes; `husk env` prints it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "sandbox/sandbox.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/husk-conf.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	return unlink(path);
}

static void put(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Load text over the defaults; the error's message, or NULL. */
static char *load(struct husk_config *c, const char *text)
{
	struct husk_err *e = NULL;
	char *msg = NULL;

	husk_config_defaults(c);
	put(text);
	if (husk_config_load(c, path, true, &e) < 0) {
		assert_non_null(e);
		msg = strdup(e->msg);
		husk_err_free(e);
	}
	return msg;
}

static void shared_fs_default(void **state)
{
	struct husk_config c;

	husk_config_defaults(&c);
	assert_string_equal(c.shared_fs, "virtio-fs");
	husk_config_free(&c);
	/* A file without the key keeps the default. */
	assert_null(load(&c, "[hypervisor]\nvcpus = 1\n"));
	assert_string_equal(c.shared_fs, "virtio-fs");
	husk_config_free(&c);
}

static void shared_fs_values(void **state)
{
	struct husk_config c;

	assert_null(load(&c, "[hypervisor]\nshared_fs = virtio-9p\n"));
	assert_string_equal(c.shared_fs, "virtio-9p");
	husk_config_free(&c);
	/* Quoted, as TOML writes it. */
	assert_null(load(&c, "[hypervisor]\nshared_fs = \"virtio-9p\"\n"));
	assert_string_equal(c.shared_fs, "virtio-9p");
	husk_config_free(&c);
	assert_null(load(&c, "[hypervisor]\nshared_fs = \"virtio-fs\"\n"));
	assert_string_equal(c.shared_fs, "virtio-fs");
	husk_config_free(&c);
}

static void shared_fs_refused(void **state)
{
	static const char *const bad[] = {
		"9p", "virtiofs", "VIRTIO-9P", "virtio-9p ", "", "nfs",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct husk_config c;
		cleanup_free char *text = NULL, *msg = NULL, *want = NULL;

		assert_true(asprintf(&text, "[hypervisor]\nvcpus = 1\n"
				     "shared_fs = \"%s\"\n", bad[i]) > 0);
		msg = load(&c, text);
		assert_non_null(msg);
		/* The line, the key, the value and what it may be. */
		assert_true(asprintf(&want, "%s:3: [hypervisor] shared_fs: "
				     "'%s' is not one of virtio-fs, virtio-9p",
				     path, bad[i]) > 0);
		assert_string_equal(msg, want);
		husk_config_free(&c);
	}
}

static void shared_fs_printed(void **state)
{
	struct husk_config c;
	char *buf = NULL;
	size_t n = 0;
	FILE *out;

	assert_null(load(&c, "[hypervisor]\nshared_fs = virtio-9p\n"));
	out = open_memstream(&buf, &n);
	assert_non_null(out);
	husk_config_print(&c, out);
	fclose(out);
	assert_non_null(strstr(buf, "shared_fs = \"virtio-9p\"\n"));
	free(buf);
	husk_config_free(&c);
}

/* [hypervisor] tcg_cache_mb: 24 by default, 8 to 1024. */
static void tcg_cache_mb(void **state)
{
	struct husk_config c;
	cleanup_free char *msg = NULL;

	husk_config_defaults(&c);
	assert_int_equal(c.tcg_cache_mb, 24);
	husk_config_free(&c);
	assert_null(load(&c, "[hypervisor]\ntcg_cache_mb = 48\n"));
	assert_int_equal(c.tcg_cache_mb, 48);
	husk_config_free(&c);
	msg = load(&c, "[hypervisor]\ntcg_cache_mb = 4\n");
	assert_non_null(msg);
	assert_non_null(strstr(msg, "[hypervisor] tcg_cache_mb"));
	husk_config_free(&c);
}

/* [proxy] poll_us: husk-proxy's --poll-us, 200 by default, 0 turns
 * polling off, over 10000 refused with its range. */
static void proxy_poll_us(void **state)
{
	struct husk_config c;
	cleanup_free char *msg = NULL;

	husk_config_defaults(&c);
	assert_int_equal(c.proxy_poll_us, 200);
	husk_config_free(&c);
	assert_null(load(&c, "[proxy]\npoll_us = 0\n"));
	assert_int_equal(c.proxy_poll_us, 0);
	husk_config_free(&c);
	msg = load(&c, "[proxy]\npoll_us = 20000\n");
	assert_non_null(msg);
	assert_non_null(strstr(msg, "[proxy] poll_us"));
	assert_non_null(strstr(msg, "10000"));
	husk_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(shared_fs_default, setup,
						teardown),
		cmocka_unit_test_setup_teardown(proxy_poll_us, setup,
						teardown),
		cmocka_unit_test_setup_teardown(tcg_cache_mb, setup,
						teardown),
		cmocka_unit_test_setup_teardown(shared_fs_values, setup,
						teardown),
		cmocka_unit_test_setup_teardown(shared_fs_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(shared_fs_printed, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
