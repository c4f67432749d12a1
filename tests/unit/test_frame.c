/* libipc/frame.c: the incremental frame decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "libipc/ipc.h"

/* Frames the callback saw, copied. */
struct got {
	int n;
	char data[16][64];
	uint32_t len[16];
	int fail_at;            /* return -7 on this frame (1-based) */
	struct ipc_framer *free_me;
};

static int collect(void *arg, const char *data, uint32_t len)
{
	struct got *g = arg;

	assert_true(g->n < 16);
	assert_true(len <= sizeof(g->data[0]));
	memcpy(g->data[g->n], data, len);
	g->len[g->n] = len;
	g->n++;
	if (g->free_me)
		ipc_framer_free(g->free_me);
	return g->n == g->fail_at ? -7 : 0;
}

/* Append one frame (header + payload) to buf at *off. */
static void put_frame(char *buf, size_t *off, const char *payload)
{
	uint32_t n = (uint32_t)strlen(payload);
	unsigned char *h = (unsigned char *)buf + *off;

	h[0] = n >> 24;
	h[1] = n >> 16;
	h[2] = n >> 8;
	h[3] = n;
	memcpy(buf + *off + 4, payload, n);
	*off += 4 + n;
}

static const char *const payloads[] = { "a", "hello", "x", "a longer frame body" };

static size_t make_stream(char *buf)
{
	size_t off = 0;

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		put_frame(buf, &off, payloads[i]);
	return off;
}

static void check_all(const struct got *g)
{
	assert_int_equal(g->n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(g->len[i], strlen(payloads[i]));
		assert_memory_equal(g->data[i], payloads[i], g->len[i]);
	}
}

static void feed_ok(struct ipc_framer *f, const char *p, size_t n,
		    struct got *g)
{
	struct husk_err *err = NULL;

	assert_int_equal(ipc_framer_feed(f, p, n, collect, g, &err), 0);
	assert_null(err);
}

static void test_one_feed(void **state)
{
	struct ipc_framer f;
	struct got g = { 0 };
	char buf[128];
	size_t n = make_stream(buf);

	ipc_framer_init(&f, 1024);
	feed_ok(&f, buf, n, &g);
	check_all(&g);
	assert_false(ipc_framer_partial(&f));
	assert_null(f.buf);
	ipc_framer_free(&f);
}

static void test_byte_at_a_time(void **state)
{
	struct ipc_framer f;
	struct got g = { 0 };
	char buf[128];
	size_t n = make_stream(buf);

	ipc_framer_init(&f, 1024);
	for (size_t i = 0; i < n; i++)
		feed_ok(&f, buf + i, 1, &g);
	check_all(&g);
	assert_false(ipc_framer_partial(&f));
	ipc_framer_free(&f);
}

/* Every way of cutting the stream into three reads. */
static void test_every_split(void **state)
{
	char buf[128];
	size_t n = make_stream(buf);

	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			struct ipc_framer f;
			struct got g = { 0 };

			ipc_framer_init(&f, 1024);
			feed_ok(&f, buf, i, &g);
			feed_ok(&f, buf + i, j - i, &g);
			feed_ok(&f, buf + j, n - j, &g);
			check_all(&g);
			assert_false(ipc_framer_partial(&f));
			ipc_framer_free(&f);
		}
	}
}

static void expect_fail(struct ipc_framer *f, const void *p, size_t n,
			int code)
{
	struct husk_err *err = NULL;
	struct got g = { 0 };

	assert_int_equal(ipc_framer_feed(f, p, n, collect, &g, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, code);
	assert_int_equal(g.n, 0);
	assert_null(f->buf);
	husk_err_free(err);
}

static void test_too_large(void **state)
{
	static const unsigned char over[] = { 0, 0, 0, 17, 'x' };
	static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0xff };
	struct ipc_framer f;

	ipc_framer_init(&f, 16);
	expect_fail(&f, over, sizeof(over), HUSK_E_TOO_LARGE);
	ipc_framer_reset(&f);
	ipc_framer_free(&f);

	ipc_framer_init(&f, IPC_FRAME_MAX_DEFAULT);
	expect_fail(&f, huge, sizeof(huge), HUSK_E_TOO_LARGE);
	ipc_framer_reset(&f);
	/* Trickled in, the header still fails before any allocation. */
	for (int i = 0; i < 3; i++) {
		struct got g = { 0 };

		feed_ok(&f, (const char *)huge + i, 1, &g);
		assert_null(f.buf);
	}
	expect_fail(&f, huge + 3, 1, HUSK_E_TOO_LARGE);
	ipc_framer_free(&f);
}

static void test_exact_max(void **state)
{
	struct ipc_framer f;
	struct got g = { 0 };
	char buf[64];
	size_t off = 0;

	put_frame(buf, &off, "0123456789abcdef");
	ipc_framer_init(&f, 16);
	feed_ok(&f, buf, 10, &g);
	assert_non_null(f.buf);
	feed_ok(&f, buf + 10, off - 10, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], 16);
	ipc_framer_free(&f);
}

static void test_zero_length(void **state)
{
	static const unsigned char zero[] = { 0, 0, 0, 0, 0, 0, 0, 1, 'x' };
	struct ipc_framer f;
	struct got g = { 0 };

	ipc_framer_init(&f, 16);
	expect_fail(&f, zero, sizeof(zero), HUSK_E_PROTOCOL);
	/* After a reset the framer decodes again. */
	ipc_framer_reset(&f);
	feed_ok(&f, (const char *)zero + 4, 5, &g);
	assert_int_equal(g.n, 1);
	ipc_framer_free(&f);
}

static void test_partial(void **state)
{
	struct ipc_framer f;
	struct got g = { 0 };
	char buf[64];
	size_t off = 0;

	put_frame(buf, &off, "hello");
	ipc_framer_init(&f, 0);
	assert_int_equal(f.max, IPC_FRAME_MAX_DEFAULT);
	assert_false(ipc_framer_partial(&f));
	feed_ok(&f, buf, 2, &g);
	assert_true(ipc_framer_partial(&f));
	feed_ok(&f, buf + 2, 4, &g);
	assert_true(ipc_framer_partial(&f));
	assert_int_equal(g.n, 0);
	feed_ok(&f, buf + 6, off - 6, &g);
	assert_false(ipc_framer_partial(&f));
	assert_int_equal(g.n, 1);
	/* A truncated frame at reset is simply dropped. */
	feed_ok(&f, buf, 7, &g);
	ipc_framer_reset(&f);
	assert_false(ipc_framer_partial(&f));
	assert_null(f.buf);
	ipc_framer_free(&f);
}

static void test_callback_stops(void **state)
{
	struct husk_err *err = NULL;
	struct ipc_framer f;
	struct got g = { .fail_at = 2 };
	char buf[128];
	size_t n = make_stream(buf);

	ipc_framer_init(&f, 1024);
	assert_int_equal(ipc_framer_feed(&f, buf, n, collect, &g, &err), -7);
	assert_null(err);
	assert_int_equal(g.n, 2);
	ipc_framer_free(&f);

	/* The same with copied frames (one byte at a time). */
	memset(&g, 0, sizeof(g));
	g.fail_at = 1;
	ipc_framer_init(&f, 1024);
	for (size_t i = 0; i < 4; i++)
		feed_ok(&f, buf + i, 1, &g);
	assert_int_equal(ipc_framer_feed(&f, buf + 4, n - 4, collect, &g,
					 &err), -7);
	assert_int_equal(g.n, 1);
	ipc_framer_free(&f);
}

/* A callback that tears the framer down (a connection closing from
 * its handler) must not leave the framer reading freed memory. */
static void test_callback_frees(void **state)
{
	struct husk_err *err = NULL;
	struct ipc_framer f;
	struct got g = { .fail_at = 1 };
	char buf[128];
	size_t n = make_stream(buf);

	g.free_me = &f;
	ipc_framer_init(&f, 1024);
	feed_ok(&f, buf, 4, &g);
	assert_non_null(f.buf);
	assert_int_equal(ipc_framer_feed(&f, buf + 4, n - 4, collect, &g,
					 &err), -7);
	assert_null(f.buf);
}

/* ipc_frames_split: every prefix of a stream gives the whole frames in
 * it, where they lie, and says what the next one needs. */
static void test_split_prefixes(void **state)
{
	char buf[128];
	size_t n = make_stream(buf);

	for (size_t cut = 0; cut <= n; cut++) {
		struct husk_err *err = NULL;
		struct got g = { 0 };
		size_t need = 0, pos = 0;
		int whole = 0;
		ssize_t used;

		/* The frames that end within the prefix. */
		for (size_t i = 0; i < 4; i++) {
			size_t end = pos + 4 + strlen(payloads[i]);

			if (end > cut)
				break;
			pos = end;
			whole++;
		}
		used = ipc_frames_split(buf, cut, 1024, collect, &g, &need,
					&err);
		assert_int_equal(used, (ssize_t)pos);
		assert_int_equal(g.n, whole);
		for (int i = 0; i < whole; i++) {
			assert_int_equal(g.len[i], strlen(payloads[i]));
			assert_memory_equal(g.data[i], payloads[i], g.len[i]);
		}
		if (cut - pos < 4)
			assert_int_equal(need, 4);
		else
			assert_int_equal(need, 4 + strlen(payloads[whole]));
		assert_true(cut - pos < need);
	}
}

static void test_split_bad_headers(void **state)
{
	static const char zero[4] = { 0, 0, 0, 0 };
	static const char big[4] = { 0, 0, 4, 1 };     /* 1025 */
	struct husk_err *err = NULL;
	struct got g = { .fail_at = 2 };
	char buf[128];
	size_t n = make_stream(buf), need;

	assert_int_equal(ipc_frames_split(zero, 4, 1024, collect, &g, &need,
					  &err), -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
	husk_err_clear(&err);
	assert_int_equal(ipc_frames_split(big, 4, 1024, collect, &g, &need,
					  &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	/* the callback's failure stops the split and is returned */
	assert_int_equal(ipc_frames_split(buf, n, 1024, collect, &g, &need,
					  &err), -7);
	assert_int_equal(g.n, 2);
	assert_null(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_feed),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_exact_max),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_callback_frees),
		cmocka_unit_test(test_split_prefixes),
		cmocka_unit_test(test_split_bad_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
