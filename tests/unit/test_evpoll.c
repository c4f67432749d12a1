/* libhusk/evpoll.c: how the poll window grows and shrinks, and a loop
 * run through husk_evpoll_run: events handled, the stop flag, the end
 * when no watcher is left, no polling after long waits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "libhusk/evpoll.h"

static struct husk_evpoll pol(uint64_t max, uint64_t window)
{
	struct husk_evpoll p = { .max_ns = max, .grow_ns = 10000,
				 .window_ns = window };
	return p;
}

static void test_next_window(void **state)
{
	struct husk_evpoll p;

	(void)state;
	/* off */
	p = pol(0, 0);
	assert_int_equal(husk_evpoll_next(&p, false, 5000), 0);
	/* a short wait: up from 0 to the first step, then doubled */
	p = pol(200000, 0);
	assert_int_equal(husk_evpoll_next(&p, false, 5000), 10000);
	p = pol(200000, 10000);
	assert_int_equal(husk_evpoll_next(&p, false, 150000), 20000);
	/* never past max; a wait of exactly max still grows it */
	p = pol(200000, 160000);
	assert_int_equal(husk_evpoll_next(&p, false, 200000), 200000);
	/* caught: kept */
	p = pol(200000, 40000);
	assert_int_equal(husk_evpoll_next(&p, true, 0), 40000);
	/* a long wait: halved, and 0 under the first step */
	p = pol(200000, 40000);
	assert_int_equal(husk_evpoll_next(&p, false, 200001), 20000);
	p = pol(200000, 15000);
	assert_int_equal(husk_evpoll_next(&p, false, 1000000000), 0);
	p = pol(200000, 0);
	assert_int_equal(husk_evpoll_next(&p, false, 1000000000), 0);
}

struct reader {
	ev_io w;
	bool stop;
	int n;
};

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct reader *r = (struct reader *)w;
	char c;

	(void)revents;
	assert_int_equal(read(w->fd, &c, 1), 1);
	if (++r->n == 3) {
		r->stop = true;
		ev_io_stop(loop, w);
	}
}

/* Bytes already waiting: the first turn sleeps (no window yet) and
 * wakes at once, which opens the window; the next turns' looks catch
 * the rest; the stop flag ends the run. */
static void test_run_catches(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct husk_evpoll p = { 0 };
	struct reader r = { .n = 0 };
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "abcd", 4), 4);
	ev_io_init(&r.w, read_cb, fds[0], EV_READ);
	ev_io_start(loop, &r.w);
	husk_evpoll_run(loop, &p, HUSK_EVPOLL_MAX_NS, &r.stop);
	assert_int_equal(r.n, 3);
	assert_int_equal(p.caught, 2);
	assert_int_equal(p.missed, 0);
	assert_int_equal(p.window_ns, HUSK_EVPOLL_GROW_NS);
	assert_int_equal(p.events, 3);
	/* the loop's own hook is back */
	assert_null(ev_userdata(loop));
	close(fds[0]);
	close(fds[1]);
	ev_loop_destroy(loop);
}

struct waiter {
	ev_timer t;
	bool stop;
	int fired;
};

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct waiter *x = (struct waiter *)w;

	(void)loop;
	(void)revents;
	if (++x->fired == 2)
		x->stop = true;
}

/* Events 20 ms apart, a hundred times the longest poll: the window
 * never opens, nothing is polled. */
static void test_run_slow_events_no_poll(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct husk_evpoll p = { 0 };
	struct waiter x = { .fired = 0 };

	(void)state;
	ev_timer_init(&x.t, timer_cb, 0.02, 0.02);
	ev_timer_start(loop, &x.t);
	husk_evpoll_run(loop, &p, HUSK_EVPOLL_MAX_NS, &x.stop);
	assert_int_equal(x.fired, 2);
	assert_int_equal(p.window_ns, 0);
	assert_int_equal(p.caught + p.missed, 0);
	ev_timer_stop(loop, &x.t);
	ev_loop_destroy(loop);
}

/* No active watcher: the run returns, with or without polling. */
static void test_run_nothing_to_wait_for(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct husk_evpoll p = { 0 };
	bool stop = false;

	(void)state;
	husk_evpoll_run(loop, &p, HUSK_EVPOLL_MAX_NS, &stop);
	husk_evpoll_run(loop, &p, 0, &stop);
	assert_int_equal(p.events, 0);
	ev_loop_destroy(loop);
}

/* max 0: a plain ev_run, which ends when the watchers do. */
static void test_run_off(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct husk_evpoll p = { 0 };
	struct reader r = { .n = 0 };
	bool never = false;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "abc", 3), 3);
	ev_io_init(&r.w, read_cb, fds[0], EV_READ);
	ev_io_start(loop, &r.w);
	husk_evpoll_run(loop, &p, 0, &never);
	assert_int_equal(r.n, 3);
	assert_int_equal(p.caught + p.missed + p.events, 0);
	close(fds[0]);
	close(fds[1]);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_window),
		cmocka_unit_test(test_run_catches),
		cmocka_unit_test(test_run_slow_events_no_poll),
		cmocka_unit_test(test_run_nothing_to_wait_for),
		cmocka_unit_test(test_run_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
