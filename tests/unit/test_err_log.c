/* libhusk/err.c and log.c: error chains, errno mapping, exit codes, log
 * line shapes and level filtering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "libhusk/err.h"
#include "libhusk/log.h"

static void test_error_and_wrap(void **state)
{
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(husk_error(&err, HUSK_E_INVALID, "bad `%s`", "x"),
			 -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	assert_int_equal(err->errnum, 0);
	assert_string_equal(err->msg, "bad `x`");
	/* the first error stays; a later one does not overwrite it */
	assert_int_equal(husk_error(&err, HUSK_E_INTERNAL, "later"), -1);
	assert_string_equal(err->msg, "bad `x`");
	assert_int_equal(husk_error_wrap(&err, "load %s", "config"), -1);
	assert_int_equal(husk_error_wrap(&err, "create"), -1);
	assert_string_equal(err->msg, "create: load config: bad `x`");
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
	assert_null(err);
	/* wrapping nothing and a NULL err are harmless */
	assert_int_equal(husk_error_wrap(&err, "ctx"), -1);
	assert_null(err);
	assert_int_equal(husk_error(NULL, HUSK_E_INVALID, "x"), -1);
	husk_err_free(NULL);
}

static void check_sys(int errnum, int code)
{
	struct husk_err *err = NULL;
	char want[256];

	assert_int_equal(husk_error_sys(&err, errnum, "open `%s`", "/f"), -1);
	assert_int_equal(err->code, code);
	assert_int_equal(err->errnum, errnum);
	snprintf(want, sizeof(want), "open `/f`: %s", strerror(errnum));
	assert_string_equal(err->msg, want);
	husk_err_clear(&err);
}

static void test_errno_mapping(void **state)
{
	(void)state;
	check_sys(ENOENT, HUSK_E_NOT_FOUND);
	check_sys(EEXIST, HUSK_E_EXISTS);
	check_sys(EACCES, HUSK_E_PERMISSION);
	check_sys(EPERM, HUSK_E_PERMISSION);
	check_sys(ETIMEDOUT, HUSK_E_TIMEOUT);
	check_sys(EIO, HUSK_E_SYSTEM);
	check_sys(ENOMEM, HUSK_E_SYSTEM);
	check_sys(ECONNREFUSED, HUSK_E_UNAVAILABLE);
}

static void test_code_names(void **state)
{
	(void)state;
	assert_string_equal(husk_errcode_name(HUSK_E_OK), "ok");
	assert_string_equal(husk_errcode_name(HUSK_E_NOT_FOUND), "not-found");
	assert_string_equal(husk_errcode_name(HUSK_E_INVALID), "invalid");
	assert_string_equal(husk_errcode_name(HUSK_E_CANCELLED), "cancelled");
	for (int c = 0; c < HUSK_E__MAX; c++)
		assert_string_not_equal(husk_errcode_name(c), "unknown");
	assert_string_equal(husk_errcode_name(HUSK_E__MAX), "unknown");
	assert_string_equal(husk_errcode_name(-1), "unknown");
}

static void test_exit_codes(void **state)
{
	struct husk_err e = { 0 };

	(void)state;
	/* fixed numbers: scripts and docs/exit-codes.md depend on them */
	assert_int_equal(HUSK_EXIT_OK, 0);
	assert_int_equal(HUSK_EXIT_FAIL, 1);
	assert_int_equal(HUSK_EXIT_USAGE, 100);
	assert_int_equal(HUSK_EXIT_SYSTEM, 111);
	assert_int_equal(HUSK_EXIT_PEER, 112);
	assert_int_equal(husk_err_exit_code(NULL), 0);
	e.code = HUSK_E_SYSTEM;
	assert_int_equal(husk_err_exit_code(&e), 111);
	e.code = HUSK_E_UNAVAILABLE;
	assert_int_equal(husk_err_exit_code(&e), 112);
	e.code = HUSK_E_NOT_FOUND;
	assert_int_equal(husk_err_exit_code(&e), 1);
	e.code = HUSK_E_STATE;
	assert_int_equal(husk_err_exit_code(&e), 1);
}

/* Log into a pipe and return what was written (at most one read). */
static char *capture(void (*emit)(void))
{
	static char buf[65536];
	int p[2];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	husk_log_set_fd(p[1]);
	emit();
	husk_log_set_fd(STDERR_FILENO);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static void emit_levels(void)
{
	husk_log(HUSK_LOG_ERROR, "e1");
	log_warnx("w1");
	log_info("i1");
	log_debug("d1");
}

static void emit_json(void)
{
	log_info("started \"quoted\"\n\tand a control \x01 char");
}

static void emit_warn_errno(void)
{
	errno = ENOENT;
	log_warn("open %s", "/x");
}

static void test_json_shape(void **state)
{
	json_error_t jerr;
	json_t *j;
	const char *out, *t;

	(void)state;
	husk_log_init("proxy/sb1", HUSK_LOG_INFO, HUSK_LOG_JSON);
	out = capture(emit_json);
	/* one line, newline-terminated */
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0');
	j = json_loads(out, 0, &jerr);
	assert_non_null(j);
	assert_true(json_is_object(j));
	assert_int_equal(json_object_size(j), 4);
	assert_string_equal(json_string_value(json_object_get(j, "level")),
			    "info");
	/* Controls are escaped before the JSON encoding, so that a reader
	 * that decodes the line gets inert text too. */
	assert_string_equal(json_string_value(json_object_get(j, "msg")),
			    "emit_json: started \"quoted\"\\x0a\tand a "
			    "control "
			    "\\x01 char");
	assert_string_equal(json_string_value(json_object_get(j, "tag")),
			    "proxy/sb1");
	t = json_string_value(json_object_get(j, "time"));
	assert_non_null(t);
	/* 2026-11-22T13:00:00.000000Z */
	assert_int_equal(strlen(t), 27);
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[26], 'Z');
	json_decref(j);

	out = capture(emit_warn_errno);
	j = json_loads(out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "msg")),
			    "emit_warn_errno: open /x: No such file or "
			    "directory");
	assert_non_null(json_string_value(json_object_get(j, "level")));
	json_decref(j);
	husk_log_init("husk", HUSK_LOG_INFO, HUSK_LOG_TEXT);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_levels(void **state)
{
	const char *out;

	(void)state;
	husk_log_init("t", HUSK_LOG_INFO, HUSK_LOG_TEXT);
	out = capture(emit_levels);
	assert_int_equal(count_lines(out), 3);
	assert_non_null(strstr(out, "e1"));
	assert_non_null(strstr(out, "i1"));
	assert_null(strstr(out, "d1"));
	/* runc's (logrus') text shape: time, level, msg, then our fields. */
	assert_int_equal(strncmp(out, "time=\"", 6), 0);
	assert_non_null(strstr(out, "Z\" level=error msg=e1 tag=t pid="));
	/* The macros put the calling function first. */
	assert_non_null(strstr(out, " level=warning msg=\"emit_levels: w1\" "
			       "tag=t pid="));
	out = capture(emit_json);
	/* The message is made inert first (\xNN), then quoted as logrus
	 * does: a reader that unquotes it still gets inert text. */
	assert_non_null(strstr(out, " level=info msg=\"emit_json: started "
			       "\\\"quoted\\\"\\\\x0a\\tand a control "
			       "\\\\x01 char\" tag=t pid="));
	assert_int_equal(count_lines(out), 1);

	husk_log_set_level(HUSK_LOG_ERROR);
	assert_int_equal(husk_log_get_level(), HUSK_LOG_ERROR);
	out = capture(emit_levels);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "e1"));

	husk_log_set_level(HUSK_LOG_DEBUG);
	out = capture(emit_levels);
	assert_int_equal(count_lines(out), 4);
	assert_non_null(strstr(out, "d1"));

	husk_log_set_format(HUSK_LOG_JSON);
	out = capture(emit_levels);
	assert_int_equal(count_lines(out), 4);
	assert_non_null(strstr(out, "\"level\":\"debug\""));
	assert_non_null(strstr(out, "\"level\":\"error\""));
	husk_log_init("husk", HUSK_LOG_INFO, HUSK_LOG_TEXT);
}

static void emit_hostile(void)
{
	log_warnx("peer said: %s", "ok\r\n2026-01-01 husk[1]: error: forged"
		  "\x1b[2J\x1b]0;title\x07\xc2\x9b" "1A");
}

/* A peer's text in a text line: one line, no byte a terminal acts on. */
static void test_text_escaped(void **state)
{
	const char *out;

	(void)state;
	husk_log_init("t", HUSK_LOG_INFO, HUSK_LOG_TEXT);
	out = capture(emit_hostile);
	assert_int_equal(count_lines(out), 1);
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
	assert_null(strchr(out, '\x07'));
	assert_null(strstr(out, "\xc2\x9b"));
	assert_non_null(strstr(out, "msg=\"emit_hostile: peer said: "
			       "ok\\\\x0d\\\\x0a"
			       "2026-01-01 husk[1]: error: forged\\\\x1b[2J"
			       "\\\\x1b]0;title\\\\x07\\\\xc2\\\\x9b1A\" "
			       "tag=t pid="));
	husk_log_init("husk", HUSK_LOG_INFO, HUSK_LOG_TEXT);
}

static void test_parse(void **state)
{
	(void)state;
	assert_int_equal(husk_log_level_parse("error"), HUSK_LOG_ERROR);
	assert_int_equal(husk_log_level_parse("warn"), HUSK_LOG_WARN);
	assert_int_equal(husk_log_level_parse("warning"), HUSK_LOG_WARN);
	assert_int_equal(husk_log_level_parse("INFO"), HUSK_LOG_INFO);
	assert_int_equal(husk_log_level_parse("debug"), HUSK_LOG_DEBUG);
	assert_int_equal(husk_log_level_parse("loud"), -1);
	assert_int_equal(husk_log_level_parse(NULL), -1);
	assert_int_equal(husk_log_format_parse("text"), HUSK_LOG_TEXT);
	assert_int_equal(husk_log_format_parse("json"), HUSK_LOG_JSON);
	assert_int_equal(husk_log_format_parse("xml"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_and_wrap),
		cmocka_unit_test(test_errno_mapping),
		cmocka_unit_test(test_code_names),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_json_shape),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_text_escaped),
		cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
