/* sandbox/vm.c: what [proxy] user names (husk.conf(5)). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pwd.h>
#include <string.h>

#include "libhusk/err.h"
#include "sandbox/sandbox.h"

static void expect_err(const char *spec, const char *want)
{
	struct husk_err *err = NULL;
	bool set = true;
	uid_t u;
	gid_t g;

	assert_int_equal(husk_proxy_ids(spec, &set, &u, &g, &err), -1);
	assert_non_null(err);
	if (!strstr(err->msg, want))
		fail_msg("`%s`: error `%s` lacks `%s`", spec, err->msg, want);
	husk_err_free(err);
}

static void test_ids(void **state)
{
	bool set = false;
	uid_t u = 0;
	gid_t g = 0;

	(void)state;
	assert_int_equal(husk_proxy_ids("65534:65533", &set, &u, &g, NULL), 0);
	assert_true(set);
	assert_int_equal(u, 65534);
	assert_int_equal(g, 65533);
	assert_int_equal(husk_proxy_ids("root", &set, &u, &g, NULL), 0);
	assert_false(set);
	assert_int_equal(husk_proxy_ids("0:0", &set, &u, &g, NULL), 0);
	assert_false(set);
}

static void test_name(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	bool set = false;
	uid_t u = 0;
	gid_t g = 0;

	(void)state;
	if (!pw)
		skip();
	assert_int_equal(husk_proxy_ids("nobody", &set, &u, &g, NULL), 0);
	assert_true(set);
	assert_int_equal(u, pw->pw_uid);
	assert_int_equal(g, pw->pw_gid);
}

static void test_default(void **state)
{
	struct passwd *pw = getpwnam(HUSK_PROXY_USER);
	bool set = true;
	uid_t u = 0;
	gid_t g = 0;

	(void)state;
	/* The installed user when there is one, else root. */
	assert_int_equal(husk_proxy_ids("", &set, &u, &g, NULL), 0);
	if (pw) {
		assert_true(set);
		assert_int_equal(u, pw->pw_uid);
	} else {
		assert_false(set);
	}
	assert_int_equal(husk_proxy_ids(NULL, &set, &u, &g, NULL), 0);
}

static void test_bad(void **state)
{
	(void)state;
	expect_err("husk-no-such-user-here", "[proxy] user: no user "
		   "`husk-no-such-user-here`");
	expect_err("12:x", "`12:x` is not UID:GID");
	expect_err(":5", "is not UID:GID");
	expect_err("5:", "is not UID:GID");
	expect_err("-1:5", "is not UID:GID");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
