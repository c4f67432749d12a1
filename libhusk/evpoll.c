/*
 * Adaptive polling before a libev loop sleeps (evpoll.h).
 *
 * A look is ev_run(EVRUN_NOWAIT): one epoll_wait with no timeout for
 * the whole loop, and the callbacks of what it found run there and
 * then.  The loop's invoke_pending hook counts them, which is how a
 * look knows it caught something.
 */
#include <sched.h>
#include <time.h>

#include "evpoll.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t husk_evpoll_next(const struct husk_evpoll *p, bool caught,
			  uint64_t waited_ns)
{
	uint64_t w;

	if (!p->max_ns)
		return 0;
	if (caught)
		return p->window_ns;
	if (waited_ns > p->max_ns) {
		w = p->window_ns / 2;
		return w < p->grow_ns ? 0 : w;
	}
	w = p->window_ns ? p->window_ns * 2 : p->grow_ns;
	return w > p->max_ns ? p->max_ns : w;
}

static void count_invoke(struct ev_loop *loop)
{
	struct husk_evpoll *p = ev_userdata(loop);
	unsigned n = ev_pending_count(loop);

	if (n) {
		p->events += n;
		p->woke_at = now_ns();
	}
	ev_invoke_pending(loop);
}

/* One look: a turn of the loop that does not wait.  True if it ran a
 * watcher; *active, whether any is left. */
static bool look(struct ev_loop *loop, struct husk_evpoll *p, int *active)
{
	uint64_t before = p->events;

	*active = ev_run(loop, EVRUN_NOWAIT);
	if (p->events == before)
		return false;
	p->caught++;
	return true;
}

/* Look until the window since start is over; true if a look caught
 * an event. */
static bool poll_window(struct ev_loop *loop, struct husk_evpoll *p,
			uint64_t start, const bool *stop, int *active)
{
	uint64_t t;

	for (;;) {
		if (look(loop, p, active))
			return true;
		if (!*active || *stop)
			return false;
		t = now_ns();
		if (t - start >= p->window_ns)
			return false;
		/* A peer on this CPU runs now, not at the end of this
		 * one's slice.  If one did run, the CPU is wanted: one
		 * more look, then sleep (as KVM stops polling when another
		 * task is runnable there). */
		sched_yield();
		if (now_ns() - t > HUSK_EVPOLL_YIELD_NS)
			return look(loop, p, active);
	}
}

void husk_evpoll_run(struct ev_loop *loop, struct husk_evpoll *p,
		     uint64_t max_ns, const bool *stop)
{
	uint64_t start, before;
	int active = 1;

	p->max_ns = max_ns;
	p->grow_ns = max_ns < HUSK_EVPOLL_GROW_NS ? max_ns :
		HUSK_EVPOLL_GROW_NS;
	p->window_ns = 0;
	if (!max_ns) {
		ev_run(loop, 0);
		return;
	}
	ev_set_userdata(loop, p);
	ev_set_invoke_pending_cb(loop, count_invoke);
	while (!*stop) {
		start = now_ns();
		if (p->window_ns) {
			if (poll_window(loop, p, start, stop, &active))
				continue;
			if (!active || *stop)
				break;
			p->missed++;
		}
		before = p->events;
		if (!ev_run(loop, EVRUN_ONCE))
			break;
		if (p->events != before)
			p->window_ns = husk_evpoll_next(p, false,
							p->woke_at - start);
	}
	ev_set_invoke_pending_cb(loop, ev_invoke_pending);
	ev_set_userdata(loop, NULL);
}
