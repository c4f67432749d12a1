/* libhusk/confine.c: the checks a profile's tables get before anything
 * is applied, the debug switch's exact value, and a deny-list filter
 * loaded in a child.  (What the allow-list filter does is shown from
 * outside by tests/bats/confine.bats.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/confine.h"
#include "libhusk/err.h"

static int check(const struct husk_arg_rule *args,
		 const struct husk_errno_rule *deny, const char *want)
{
	struct husk_profile p = {
		.name = "t",
		.allow_args = args,
		.deny = deny,
	};
	struct husk_err *err = NULL;
	int rc = husk_profile_check(&p, &err);

	if (want) {
		assert_int_equal(rc, -1);
		assert_non_null(err);
		if (!strstr(err->msg, want))
			fail_msg("error `%s` lacks `%s`", err->msg, want);
		husk_err_free(err);
	} else {
		assert_int_equal(rc, 0);
		assert_null(err);
	}
	return rc;
}

static void test_good_rows(void **state)
{
	static const struct husk_arg_rule rows[] = {
		{ "socket", 0, HUSK_ARG_EQ, AF_UNIX, 0 },
		{ "ioctl", 1, HUSK_ARG_EQ, 0x5413, 0 },
		{ "ioctl", 1, HUSK_ARG_EQ, 0x5401, 0 },
		{ "fcntl", 5, HUSK_ARG_LT, 10, 0 },
		HUSK_ARGS_NO_EXEC_MAPPINGS,
		{ NULL, 0, 0, 0, 0 },
	};

	(void)state;
	check(rows, NULL, NULL);
	check(NULL, NULL, NULL);
}

static void test_bad_index(void **state)
{
	static const struct husk_arg_rule rows[] = {
		{ "socket", 6, HUSK_ARG_EQ, AF_UNIX, 0 },
		{ NULL, 0, 0, 0, 0 },
	};

	(void)state;
	check(rows, NULL, "socket: argument index 6 (0..5)");
}

static void test_bad_op(void **state)
{
	static const struct husk_arg_rule rows[] = {
		{ "socket", 0, (enum husk_arg_op)0, AF_UNIX, 0 },
		{ NULL, 0, 0, 0, 0 },
	};
	static const struct husk_arg_rule rows2[] = {
		{ "socket", 0, (enum husk_arg_op)99, AF_UNIX, 0 },
		{ NULL, 0, 0, 0, 0 },
	};

	(void)state;
	check(rows, NULL, "unknown argument operator 0");
	check(rows2, NULL, "unknown argument operator 99");
}

static void test_mask_without_masked_eq(void **state)
{
	static const struct husk_arg_rule rows[] = {
		{ "mmap", 2, HUSK_ARG_EQ, 0, 4 },
		{ NULL, 0, 0, 0, 0 },
	};

	(void)state;
	check(rows, NULL, "mmap: a mask needs HUSK_ARG_MASKED_EQ");
}

static void test_denied_and_allowed(void **state)
{
	static const struct husk_arg_rule rows[] = {
		{ "ioctl", 1, HUSK_ARG_EQ, 0x5413, 0 },
		{ NULL, 0, 0, 0, 0 },
	};
	static const struct husk_errno_rule deny[] = {
		{ "openat", EACCES },
		{ "ioctl", ENOTTY },
		{ NULL, 0 },
	};

	(void)state;
	check(rows, deny, "ioctl is both denied and allowed by argument");
}

static void test_debug_env_only_1(void **state)
{
	static const char *const no[] = { "", "0", "yes", "true", "1 ",
					  "11", " 1", NULL };

	(void)state;
	unsetenv("HUSK_SECCOMP_DEBUG");
	assert_false(husk_seccomp_debug_env());
	for (const char *const *v = no; *v; v++) {
		setenv("HUSK_SECCOMP_DEBUG", *v, 1);
		if (husk_seccomp_debug_env())
			fail_msg("HUSK_SECCOMP_DEBUG=`%s` turned debug on", *v);
	}
	setenv("HUSK_SECCOMP_DEBUG", "1", 1);
	assert_true(husk_seccomp_debug_env());
	unsetenv("HUSK_SECCOMP_DEBUG");
}

/* husk_seccomp_deny_only in a child: the listed calls fail with their
 * errno, the rest run, an unknown name is skipped, and what the child
 * then starts (here: itself, after fork) inherits the list. */
static void test_deny_only(void **state)
{
	static const struct husk_errno_rule deny[] = {
		{ "kcmp", EPERM }, { "add_key", EACCES },
		{ "no_such_syscall", EPERM }, { NULL, 0 },
	};
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_err *err = NULL;
		pid_t me = getpid(), g;
		int st;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    husk_seccomp_deny_only("t", deny, &err) < 0)
			_exit(10);
		if (syscall(SYS_kcmp, me, me, 0, 0, 0) != -1 || errno != EPERM)
			_exit(11);
		if (syscall(SYS_add_key, "user", "k", "v", 1, 0) != -1 ||
		    errno != EACCES)
			_exit(12);
		if (getppid() <= 0 || syscall(SYS_getpid) != me)
			_exit(13);
		g = fork();
		if (g == 0)
			_exit(syscall(SYS_kcmp, 1, 1, 0, 0, 0) == -1 &&
			      errno == EPERM ? 0 : 14);
		if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st))
			_exit(15);
		_exit(WEXITSTATUS(st));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_rows),
		cmocka_unit_test(test_bad_index),
		cmocka_unit_test(test_bad_op),
		cmocka_unit_test(test_mask_without_masked_eq),
		cmocka_unit_test(test_denied_and_allowed),
		cmocka_unit_test(test_debug_env_only_1),
		cmocka_unit_test(test_deny_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
