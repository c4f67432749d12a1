/*
 * Helpers shared by the libipc connection tests (test_conn, test_peer,
 * test_client): a loop runner with a safety net, temp dirs, and raw
 * frame I/O for peers that speak the protocol by hand.
 */
#ifndef HUSK_TEST_IPC_TESTLIB_H
#define HUSK_TEST_IPC_TESTLIB_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/util.h"
#include "libipc/ipc.h"

#define TEST_DEADLINE 5.0

static inline void tl_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run loop until *flag >= want; fails the test after TEST_DEADLINE. */
static inline void tl_run_until(struct ev_loop *loop, const int *flag,
				int want)
{
	ev_timer wake;
	double end = ev_time() + TEST_DEADLINE;

	ev_timer_init(&wake, tl_wake, 0.02, 0.02);
	ev_timer_start(loop, &wake);
	while (*flag < want && ev_time() < end) {
		ev_now_update(loop);
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &wake);
	assert_true(*flag >= want);
}

/* Run the loop for a short while (to show that something does NOT
 * happen). */
static inline void tl_run_for(struct ev_loop *loop, double secs)
{
	int never = 0;
	ev_timer wake;
	double end = ev_time() + secs;

	ev_timer_init(&wake, tl_wake, 0.01, 0.01);
	ev_timer_start(loop, &wake);
	while (!never && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &wake);
}

/* A private 0700 directory; returns a malloc'ed path. */
static inline char *tl_tmpdir(void)
{
	char *d = husk_xstrdup("/tmp/husk-ipc-test.XXXXXX");

	assert_non_null(mkdtemp(d));
	assert_int_equal(chmod(d, 0700), 0);
	return d;
}

static inline void tl_rmdir(char *d)
{
	struct husk_err *e = NULL;

	if (!d)
		return;
	husk_rmtree_at(AT_FDCWD, d, &e);
	husk_err_free(e);
	free(d);
}

/* Write a request frame by hand (params built by the caller's fn). */
static inline void tl_write_buf(int fd, struct ipc_buf *b)
{
	assert_int_equal(ipc_buf_finish(b, IPC_FRAME_MAX_DEFAULT, NULL), 0);
	assert_int_equal(husk_write_all(fd, b->sb.data, b->sb.size), 0);
}

struct tl_read {
	struct ipc_msg *m;
	int got;
};

static inline int tl_frame(void *arg, const char *data, uint32_t len)
{
	struct tl_read *r = arg;

	if (r->got)
		return 0;       /* one message is all the tests ask for */
	assert_int_equal(ipc_msg_parse(r->m, data, len, NULL), 0);
	r->got = 1;
	return 0;
}

/* Blocking read of one message from fd; -1 at EOF. */
static inline int tl_read_msg(int fd, struct ipc_msg *m)
{
	struct ipc_framer fr;
	struct tl_read r = { .m = m };
	char c;

	ipc_framer_init(&fr, IPC_FRAME_MAX_DEFAULT);
	/* Byte by byte: slow, but never reads past the message. */
	while (!r.got) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, (int)(TEST_DEADLINE * 1000)), 1);
		n = read(fd, &c, 1);
		if (n <= 0)
			break;
		assert_int_equal(ipc_framer_feed(&fr, &c, 1, tl_frame, &r,
						 NULL), 0);
	}
	ipc_framer_free(&fr);
	return r.got ? 0 : -1;
}

/* Wait for EOF on fd (what a refused peer sees). */
static inline int tl_wait_eof(int fd)
{
	char buf[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(TEST_DEADLINE * 1000)) != 1)
			return -1;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 0;
		if (n < 0)
			return -1;
	}
}

#endif
