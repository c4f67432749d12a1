/*
 * hypervisor-drv/jail.c: QEMU's uid lease (one uid per driver, held
 * by a lock, refused in a directory others could write) and the KVM
 * group.  The jail itself needs root and a fork; tests/bats/
 * hypervisor.bats checks it on a running QEMU.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "hypervisor-drv/hv.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/husk-jail.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void lease_distinct_then_full(void **state)
{
	char locks[96];
	struct husk_err *e = NULL;
	uid_t a = 0, b = 0, c = 0;
	int fa, fb, fc;

	/* Created 0700 by the lease itself. */
	snprintf(locks, sizeof(locks), "%s/locks", dir);
	fa = hv_uid_lease(locks, 3000000000u, 2, &a, &e);
	assert_true(fa >= 0);
	fb = hv_uid_lease(locks, 3000000000u, 2, &b, &e);
	assert_true(fb >= 0);
	assert_int_equal(a, 3000000000u);
	assert_int_equal(b, 3000000001u);
	/* Every uid held: a clear refusal. */
	fc = hv_uid_lease(locks, 3000000000u, 2, &c, &e);
	assert_int_equal(fc, -1);
	assert_non_null(strstr(e->msg, "every QEMU uid of 3000000000..3000000001"
			       " is in use"));
	husk_err_clear(&e);
	/* A lease ends with its descriptor, and its uid is free again. */
	close(fa);
	fc = hv_uid_lease(locks, 3000000000u, 2, &c, &e);
	assert_true(fc >= 0);
	assert_int_equal(c, 3000000000u);
	close(fb);
	close(fc);
}

static void lease_refusals(void **state)
{
	char open_dir[96];
	struct husk_err *e = NULL;
	uid_t u;

	assert_int_equal(hv_uid_lease(dir, 0, 10, &u, &e), -1);
	assert_non_null(strstr(e->msg, "holds root"));
	husk_err_clear(&e);
	assert_int_equal(hv_uid_lease(dir, 4294967290u, 10, &u, &e), -1);
	assert_non_null(strstr(e->msg, "wraps"));
	husk_err_clear(&e);
	/* Anyone who could write there could steal or block a uid. */
	snprintf(open_dir, sizeof(open_dir), "%s/open", dir);
	assert_int_equal(mkdir(open_dir, 0755), 0);
	assert_int_equal(hv_uid_lease(open_dir, 3000000000u, 2, &u, &e), -1);
	assert_non_null(strstr(e->msg, "must be owned by root and closed to "
			       "others (it is 0755"));
	husk_err_clear(&e);
}

static void kvm_group(void **state)
{
	char why[256];
	gid_t g = 1;

	assert_int_equal(hv_kvm_gid("4242", &g, why, sizeof(why)), 0);
	assert_int_equal(g, 4242);
	assert_int_equal(hv_kvm_gid("no-such-group-husk", &g, why,
				    sizeof(why)), -1);
	assert_non_null(strstr(why, "kvm_group 'no-such-group-husk' is not "
			       "a group"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lease_distinct_then_full),
		cmocka_unit_test(lease_refusals),
		cmocka_unit_test(kvm_group),
	};

	if (geteuid() != 0) {
		/* The directory check wants root's ownership. */
		printf("# skip test_jail: needs root\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
