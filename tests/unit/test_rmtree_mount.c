/*
 * husk_rmtree_at must not remove files through a mount point left in the
 * tree: a sandbox's share holds bind mounts of users' root file systems.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"

static void test_rmtree_stops_at_bind_mount(void **state)
{
	char base[] = "/tmp/husk-rmtree-XXXXXX";
	char src[256], tree[256], mnt[256], keep[256];
	struct husk_err *err = NULL;
	int fd;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(base));
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(tree, sizeof(tree), "%s/tree", base);
	snprintf(mnt, sizeof(mnt), "%s/tree/a/mnt", base);
	snprintf(keep, sizeof(keep), "%s/src/precious", base);
	assert_int_equal(mkdir(src, 0755), 0);
	fd = open(keep, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(husk_mkdir_p(mnt, 0755, &err), 0);
	if (mount(src, mnt, NULL, MS_BIND, NULL) < 0) {
		husk_rmtree_at(AT_FDCWD, base, &err);
		husk_err_clear(&err);
		skip();
		return;
	}
	assert_int_equal(husk_rmtree_at(AT_FDCWD, tree, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, HUSK_E_STATE);
	assert_non_null(strstr(err->msg, "mount point"));
	husk_err_clear(&err);
	assert_int_equal(access(keep, F_OK), 0);

	assert_int_equal(umount2(mnt, MNT_DETACH), 0);
	assert_int_equal(husk_rmtree_at(AT_FDCWD, tree, &err), 0);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(husk_rmtree_at(AT_FDCWD, base, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rmtree_stops_at_bind_mount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
