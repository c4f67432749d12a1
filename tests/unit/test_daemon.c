/* libhusk/daemon.c: the common options, a program's own options and
 * check, the usage text, operands, Go-style single-dash options, and
 * the fatal exit's code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"

/* What the program's callbacks saw. */
static struct {
	char seen[8][64];
	int n;
	bool checked;
	bool refuse_check;
} prog;

static int t_option(struct husk_daemon *d, int key, const char *arg,
		    struct husk_err **err)
{
	if (key == 'x' && strcmp(arg, "bad") == 0)
		return husk_error(err, HUSK_E_INVALID, "--address `%s`: no",
				  arg);
	snprintf(prog.seen[prog.n++], sizeof(prog.seen[0]), "%c=%s", key,
		 arg ? arg : "-");
	return 0;
}

static int t_check(struct husk_daemon *d, struct husk_err **err)
{
	prog.checked = true;
	if (prog.refuse_check)
		return husk_error(err, HUSK_E_INVALID, "--address is required");
	return 0;
}

static const struct option t_opts[] = {
	{ "address", required_argument, NULL, 'x' },
	{ "flag", no_argument, NULL, 'f' },
	{ NULL, 0, NULL, 0 },
};

static struct husk_daemon t_daemon(unsigned flags)
{
	struct husk_daemon d = {
		.name = "husk-test",
		.tag = "test",
		.version = "1.2.3",
		.usage = "--address A\n[--flag]",
		.options = t_opts,
		.option = t_option,
		.check = t_check,
		.flags = flags,
		.log_level = HUSK_LOG_INFO,
		.sandbox = "dflt",
	};

	memset(&prog, 0, sizeof(prog));
	return d;
}

/* Parse a NULL-terminated argument list (argv[0] added). */
static int parse(struct husk_daemon *d, struct husk_err **err, ...)
{
	char *argv[32] = { "husk-test" };
	int argc = 1;
	va_list ap;

	va_start(ap, err);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	return husk_daemon_parse(d, argc, argv, err);
}

static void test_defaults(void **state)
{
	struct husk_daemon d = t_daemon(0);
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(parse(&d, &err, NULL), 0);
	assert_null(err);
	assert_null(d.log_path);
	assert_int_equal(d.log_level, HUSK_LOG_INFO);
	assert_int_equal(d.log_format, HUSK_LOG_TEXT);
	assert_string_equal(d.sandbox, "dflt");
	assert_false(d.no_seccomp);
	assert_int_equal(d.n_operands, 0);
	assert_true(prog.checked);
	assert_int_equal(prog.n, 0);
}

static void test_common_options(void **state)
{
	struct husk_daemon d = t_daemon(0);
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(parse(&d, &err, "--log", "/tmp/x.log", "--log-level",
			       "debug", "--log-format=json", "--sandbox", "sb1",
			       "--no-seccomp", NULL), 0);
	assert_string_equal(d.log_path, "/tmp/x.log");
	assert_int_equal(d.log_level, HUSK_LOG_DEBUG);
	assert_int_equal(d.log_format, HUSK_LOG_JSON);
	assert_string_equal(d.sandbox, "sb1");
	assert_true(d.no_seccomp);
	assert_int_equal(prog.n, 0);
}

static void test_program_options(void **state)
{
	struct husk_daemon d = t_daemon(0);
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(parse(&d, &err, "--flag", "--address", "a1",
			       "--log-level", "warn", "--address=a2", NULL), 0);
	assert_int_equal(prog.n, 3);
	assert_string_equal(prog.seen[0], "f=-");
	assert_string_equal(prog.seen[1], "x=a1");
	assert_string_equal(prog.seen[2], "x=a2");
	assert_int_equal(d.log_level, HUSK_LOG_WARN);
	assert_true(prog.checked);
}

static void test_help_version(void **state)
{
	struct husk_daemon d = t_daemon(0);
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(parse(&d, &err, "--help", NULL), HUSK_DAEMON_HELP);
	assert_int_equal(parse(&d, &err, "-h", NULL), HUSK_DAEMON_HELP);
	assert_int_equal(parse(&d, &err, "--version", NULL),
			 HUSK_DAEMON_VERSION);
	/* asked for before a bad option: answered, nothing checked */
	d = t_daemon(0);
	assert_int_equal(parse(&d, &err, "--help", "--bogus", NULL),
			 HUSK_DAEMON_HELP);
	assert_false(prog.checked);
	assert_null(err);
}

/* -1, with err's message equal to want. */
static void expect_usage(struct husk_daemon *d, const char *want, ...)
{
	char *argv[32] = { "husk-test" };
	struct husk_err *err = NULL;
	int argc = 1;
	va_list ap;

	va_start(ap, want);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	assert_int_equal(husk_daemon_parse(d, argc, argv, &err), -1);
	assert_non_null(err);
	assert_string_equal(err->msg, want);
	husk_err_free(err);
}

static void test_usage_errors(void **state)
{
	struct husk_daemon d = t_daemon(0);

	(void)state;
	expect_usage(&d, "unknown option `--bogus`", "--bogus", NULL);
	expect_usage(&d, "unknown option `-z`", "-z", NULL);
	expect_usage(&d, "--log needs a value", "--log", NULL);
	expect_usage(&d, "--address needs a value", "--address", NULL);
	expect_usage(&d, "--log-level `loud`: error, warn, info or debug",
		     "--log-level", "loud", NULL);
	expect_usage(&d, "--log-format `xml`: text or json", "--log-format",
		     "xml", NULL);
	expect_usage(&d, "--log: an empty path", "--log", "", NULL);
	expect_usage(&d, "unexpected argument `stray`", "stray", NULL);
	expect_usage(&d, "`--flag` takes no value", "--flag=1", NULL);
	expect_usage(&d, "`--help` takes no value", "--help=1", NULL);
	expect_usage(&d, "--address `bad`: no", "--address", "bad", NULL);
	d = t_daemon(0);
	expect_usage(&d, "--address `bad`: no", "--address", "bad", NULL);
	assert_false(prog.checked);
	/* a bad sandbox id is refused by husk_id_validate's rules */
	{
		char *argv[] = { "husk-test", "--sandbox", "../x", NULL };
		struct husk_err *err = NULL;

		assert_int_equal(husk_daemon_parse(&d, 3, argv, &err), -1);
		assert_non_null(strstr(err->msg, "--sandbox"));
		husk_err_free(err);
	}
	/* the program's check runs last and can refuse */
	d = t_daemon(0);
	prog.refuse_check = true;
	expect_usage(&d, "--address is required", "--flag", NULL);
	assert_true(prog.checked);
}

static void test_refused_common_options(void **state)
{
	struct husk_daemon d = t_daemon(HUSK_DAEMON_NO_SANDBOX_OPT |
					HUSK_DAEMON_NO_SECCOMP_OPT);

	(void)state;
	expect_usage(&d, "unknown option `--sandbox`", "--sandbox", "s", NULL);
	expect_usage(&d, "unknown option `--no-seccomp`", "--no-seccomp",
		     NULL);
}

static void test_operands_and_long_only(void **state)
{
	struct husk_daemon d = t_daemon(HUSK_DAEMON_OPERANDS |
					HUSK_DAEMON_LONG_ONLY);
	struct husk_err *err = NULL;

	(void)state;
	/* containerd's shims are called so: -name value, then a verb */
	assert_int_equal(parse(&d, &err, "-address", "/run/c.sock", "-log",
			       "/tmp/l", "-sandbox", "sb", "start", NULL), 0);
	assert_int_equal(d.n_operands, 1);
	assert_string_equal(d.operands[0], "start");
	assert_string_equal(prog.seen[0], "x=/run/c.sock");
	assert_string_equal(d.log_path, "/tmp/l");
	assert_string_equal(d.sandbox, "sb");
	/* without LONG_ONLY, -address is a cluster of unknown letters */
	d = t_daemon(HUSK_DAEMON_OPERANDS);
	expect_usage(&d, "unknown option `-a`", "-address", "x", NULL);
}

static void test_usage_text(void **state)
{
	struct husk_daemon d = t_daemon(HUSK_DAEMON_NO_SECCOMP_OPT);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	husk_daemon_usage(&d, f);
	fclose(f);
	assert_string_equal(buf,
		"usage: husk-test --address A\n"
		"                 [--flag]\n"
		"                 [--sandbox ID] [--log FILE] [--log-level LEVEL]\n"
		"                 [--log-format text|json]\n"
		"       husk-test --help | --version\n");
	free(buf);
}

static void test_fatal_exit_code(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* quiet: the message is not what this test looks at */
		if (!freopen("/dev/null", "w", stderr))
			_exit(99);
		husk_daemon_fatal(HUSK_EXIT_PEER, "lost %s", "it");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), HUSK_EXIT_PEER);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_err *err = NULL;

		if (!freopen("/dev/null", "w", stderr))
			_exit(99);
		husk_error(&err, HUSK_E_SYSTEM, "broken");
		husk_daemon_fatal_err(err);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), HUSK_EXIT_SYSTEM);
}

/* ------------------------------------------------------------------ */
/* The life: the order of the steps, the confinement point, the loop   */

static char steps[64];

static void step(char c)
{
	size_t n = strlen(steps);

	if (n + 1 < sizeof(steps))
		steps[n] = c;
}

static int l_open(struct husk_daemon *d, struct husk_err **err)
{
	step('o');
	return 0;
}

static int l_confine(struct husk_daemon *d, struct husk_err **err)
{
	step('c');
	return 0;
}

/* Confines late when asked, then ends the loop with SIGTERM. */
static int l_run(struct husk_daemon *d, struct husk_err **err)
{
	step('r');
	if (d->flags & HUSK_DAEMON_CONFINE_LATER) {
		husk_daemon_confine(d);
		husk_daemon_confine(d);         /* once only */
	}
	if (d->exit_code == 7)
		return HUSK_DAEMON_DONE;
	raise(SIGTERM);
	return 0;
}

static void l_stop(struct husk_daemon *d, int signum)
{
	step(signum == SIGTERM ? 's' : '?');
}

static void l_close(struct husk_daemon *d)
{
	step('x');
}

/* husk_daemon_main in a child; its steps and exit status. */
static int life(unsigned flags, int exit_code, char *out, size_t cap)
{
	int p[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_daemon d = {
			.name = "husk-life", .tag = "life", .version = "0",
			.open = l_open, .confine = l_confine, .run = l_run,
			.stop = l_stop, .close = l_close, .flags = flags,
			.log_level = HUSK_LOG_ERROR, .exit_code = exit_code,
		};
		char *argv[] = { "husk-life", NULL };
		int rc;

		close(p[0]);
		rc = husk_daemon_main(&d, 1, argv);
		if (write(p[1], steps, strlen(steps)) < 0)
			_exit(98);
		_exit(rc);
	}
	close(p[1]);
	n = read(p[0], out, cap - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_life(void **state)
{
	char got[64];

	(void)state;
	/* open, confine right after it, run, the loop until SIGTERM (stop
	 * first), close; the exit code is exit_code */
	assert_int_equal(life(0, 0, got, sizeof(got)), 0);
	assert_string_equal(got, "ocrsx");
	/* the program names the moment, and it happens once */
	assert_int_equal(life(HUSK_DAEMON_CONFINE_LATER, 0, got,
			      sizeof(got)), 0);
	assert_string_equal(got, "orcsx");
	/* a one-shot: no loop, close, exit_code */
	assert_int_equal(life(0, 7, got, sizeof(got)), 7);
	assert_string_equal(got, "ocrx");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_common_options),
		cmocka_unit_test(test_program_options),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_refused_common_options),
		cmocka_unit_test(test_operands_and_long_only),
		cmocka_unit_test(test_usage_text),
		cmocka_unit_test(test_fatal_exit_code),
		cmocka_unit_test(test_life),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
