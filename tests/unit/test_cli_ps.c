/* cmd/husk/ps.c: ps options to columns, and guest text made inert.
 * Linked with build/lib/libcmd-husk.a (cmd/husk/program.mk); the CLI
 * helpers ps.c calls are stubbed below, which keeps the rest out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "cmd/husk/husk.h"
#include "cmd/husk/ps.h"

int husk_usage_error(struct husk_err **err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return husk_error(err, HUSK_E_INVALID, "%s", buf);
}

int husk_bad_option(struct husk_err **err, const char *verb,
		    const char *opt)
{
	return husk_usage_error(err, "%s: %s", verb, opt);
}

const struct husk_cmd *husk_cmd_find(const char *name)
{
	return NULL;
}

void husk_cmd_usage(const struct husk_cmd *cmd, FILE *out)
{
}

int husk_open_container(struct husk_ctx *ctx, const char *id, int lock,
			struct husk_entry *e, struct husk_container *c,
			struct husk_err **err)
{
	return husk_error(err, HUSK_E_NOT_FOUND, "no containers here");
}

static void layout_free(struct layout *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->cols[i].header);
	l->n = 0;
}

/* The headers the options give, space-separated; NULL on error (the
 * message in *msg). */
static char *headers(const char *args, char **msg)
{
	cleanup_free char *copy = husk_xstrdup(args);
	struct husk_err *err = NULL;
	struct layout l = { .n = 0 };
	char *argv[16], *save = NULL, *out = NULL;
	int argc = 0;

	for (char *t = strtok_r(copy, " ", &save); t && argc < 16;
	     t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	if (parse_ps_args(argc, argv, &l, &err) < 0 ||
	    default_layout(&l, &err) < 0) {
		*msg = husk_xstrdup(err->msg);
		husk_err_free(err);
		layout_free(&l);
		return NULL;
	}
	for (size_t i = 0; i < l.n; i++) {
		char *next = husk_xasprintf("%s%s%s", out ? out : "",
					    out ? "|" : "", l.cols[i].header);

		free(out);
		out = next;
	}
	layout_free(&l);
	return out ? out : husk_xstrdup("");
}

static void expect_headers(const char *args, const char *want)
{
	cleanup_free char *msg = NULL;
	cleanup_free char *got = headers(args, &msg);

	if (!got)
		fail_msg("ps %s: %s", args, msg);
	assert_string_equal(got, want);
}

static void expect_refused(const char *args, const char *part)
{
	cleanup_free char *msg = NULL;
	cleanup_free char *got = headers(args, &msg);

	assert_null(got);
	if (!strstr(msg, part))
		fail_msg("ps %s: '%s' does not say '%s'", args, msg, part);
}

static void test_layouts(void **state)
{
	(void)state;
	expect_headers("-ef", "UID|PID|PPID|C|STIME|TTY|TIME|CMD");
	expect_headers("-e -f", "UID|PID|PPID|C|STIME|TTY|TIME|CMD");
	expect_headers("aux", "USER|PID|%CPU|VSZ|RSS|TTY|STAT|START|TIME|"
			      "COMMAND");
	expect_headers("-e -x", "PID|TTY|STAT|TIME|COMMAND");
	expect_headers("-e", "PID|TTY|TIME|CMD");
	expect_headers("-A", "PID|TTY|TIME|CMD");
	expect_headers("-o pid,ppid,args", "PID|PPID|COMMAND");
	expect_headers("-opid,comm", "PID|COMMAND");
	expect_headers("o pid x", "PID");
	expect_headers("--format=pid,etime", "PID|ELAPSED");
	expect_headers("-o pid -o user", "PID|USER");
	/* procps: "=" names the header; a comma that starts a keyword
	 * ends it, any other comma is part of it. */
	expect_headers("-o pid=,args=", "|");
	expect_headers("-o pid=P,args=A,B", "P|A,B");
	expect_headers("-e -o pid=", "");
}

static void test_refused(void **state)
{
	(void)state;
	expect_refused("-L", "'-L' is not supported");
	expect_refused("-p 1", "'-p' is not supported");
	expect_refused("e", "'e' is not supported");
	expect_refused("-o pid,wchan", "'wchan'");
	expect_refused("-o", "needs a format");
	expect_refused("--sort=pid", "'--sort=pid'");
}

static char *escaped(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	put_escaped(f, s);
	fclose(f);
	return buf;
}

static void expect_escaped(const char *in, const char *want)
{
	cleanup_free char *got = escaped(in);

	assert_string_equal(got, want);
}

static void test_escape(void **state)
{
	(void)state;
	expect_escaped("sleep 1", "sleep 1");
	expect_escaped("a\x1b[31mb\x01\x7f", "a\\x1b[31mb\\x01\\x7f");
	expect_escaped("l1\nl2\tx\r", "l1\\nl2\\tx\\r");
	/* UTF-8 stays; C1 controls, stray and overlong bytes do not. */
	expect_escaped("caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac");
	expect_escaped("\xc2\x9b" "2J", "\\xc2\\x9b2J");
	expect_escaped("\xff\xfe", "\\xff\\xfe");
	expect_escaped("\xc0\xaf", "\\xc0\\xaf");
	expect_escaped("\xe2\x82", "\\xe2\\x82");
	expect_escaped("\xed\xa0\x80", "\\xed\\xa0\\x80");
}

static void test_guest_text(void **state)
{
	json_t *v;
	char *t;

	(void)state;
	/* ff 00 61 1b: what the proxy sends as base64. */
	v = json_pack("{s:s}", "base64", "/wBhGw==");
	t = guest_text(v);
	json_decref(v);
	assert_memory_equal(t, "\xff\\x00a\x1b", 8);
	free(t);
	t = escaped("\xff\\x00a\x1b");
	assert_string_equal(t, "\\xff\\x00a\\x1b");
	free(t);
	v = json_integer(3);
	t = guest_text(v);
	json_decref(v);
	assert_string_equal(t, "?");
	free(t);
}

static void test_cells(void **state)
{
	char *s;

	(void)state;
#define EQ(expr, want) do { s = (expr); assert_string_equal(s, want); \
			    free(s); } while (0)
	EQ(fmt_tty(0), "?");
	EQ(fmt_tty(136 << 8 | 3), "pts/3");
	EQ(fmt_tty((136 << 8) | (1 << 20) | 2), "pts/258");
	EQ(fmt_tty(4 << 8 | 1), "tty1");
	EQ(fmt_tty(4 << 8 | 65), "ttyS1");
	EQ(fmt_time(3723000, false), "01:02:03");
	EQ(fmt_time(3723000, true), "62:03");
	EQ(fmt_time(90061000, false), "1-01:01:01");
	EQ(fmt_etime(65000), "01:05");
	EQ(fmt_etime(3723000), "01:02:03");
	EQ(fmt_etime(90061000), "1-01:01:01");
	EQ(fmt_stime(0, 1000), "?");
#undef EQ
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layouts),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_guest_text),
		cmocka_unit_test(test_cells),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
