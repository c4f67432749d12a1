/*
 * hypervisor-drv/console.c: a log the guest can drive stays within its
 * bound (rotated to <log>.1), and it follows its directory: a VM from
 * the cache moves with its directory into the sandbox that takes it,
 * and a later VM may be made at the old path; the rotation must touch
 * only the moved one's files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hypervisor-drv/hv.h"
#include "libhusk/util.h"
#include "tests/unit/ipc_testlib.h"

static off_t size_of(const char *dir, const char *name)
{
	char *path = husk_xasprintf("%s/%s", dir, name);
	struct stat st;
	off_t n = stat(path, &st) == 0 ? st.st_size : -1;

	free(path);
	return n;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = husk_xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static void feed(struct hv_sink *s, int peer, size_t n)
{
	char buf[1024];

	memset(buf, 'x', sizeof(buf));
	while (n > 0) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		assert_int_equal(write(peer, buf, k), (ssize_t)k);
		hv_sink_drain(s);
		n -= k;
	}
}

static void bound_and_rotation(void **state)
{
	char *root = tl_tmpdir();
	char *path = husk_xasprintf("%s/console.log", root);
	struct husk_err *e = NULL;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct hv_sink *s;
	int peer = -1;

	(void)state;
	s = hv_sink_new(loop, path, 4, false, &peer, &e);
	assert_non_null(s);
	feed(s, peer, 10 * 1024);
	assert_int_equal(hv_sink_bytes(s), 10 * 1024);
	assert_int_equal(size_of(root, "console.log.1"), 4096);
	assert_int_equal(size_of(root, "console.log"), 2048);
	close(peer);
	hv_sink_free(s);
	free(path);
	ev_loop_destroy(loop);
	tl_rmdir(root);
}

static void follows_its_directory(void **state)
{
	char *root = tl_tmpdir();
	char *vm = husk_xasprintf("%s/vm-1", root);
	char *moved = husk_xasprintf("%s/taken", root);
	char *path = husk_xasprintf("%s/console.log", vm);
	struct husk_err *e = NULL;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct hv_sink *s;
	int peer = -1;
	char buf[64] = { 0 };
	int fd;

	(void)state;
	assert_int_equal(mkdir(vm, 0700), 0);
	s = hv_sink_new(loop, path, 4, false, &peer, &e);
	assert_non_null(s);
	feed(s, peer, 1024);
	/* Taken: the directory moves; another VM is made at the old path. */
	assert_int_equal(rename(vm, moved), 0);
	assert_int_equal(mkdir(vm, 0700), 0);
	write_file(vm, "console.log", "the new VM's own\n");
	feed(s, peer, 8 * 1024);
	/* Rotated where it went, twice; the new VM's log untouched. */
	assert_int_equal(size_of(moved, "console.log.1"), 4096);
	assert_int_equal(size_of(moved, "console.log"), 1024);
	assert_int_equal(size_of(vm, "console.log.1"), -1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_string_equal(buf, "the new VM's own\n");
	close(peer);
	hv_sink_free(s);
	free(path);
	free(vm);
	free(moved);
	ev_loop_destroy(loop);
	tl_rmdir(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bound_and_rotation),
		cmocka_unit_test(follows_its_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
