/*
 * Adaptive polling before a libev loop sleeps, as KVM polls a halted
 * vCPU for a while before it schedules it away (halt_poll_ns): when
 * the next event has lately come soon after the loop ran out of work,
 * the loop looks for it a little while instead of sleeping, and is
 * spared a sleep and a wake-up.  When events come rarely the window
 * shrinks to nothing and the loop sleeps at once, as before.
 *
 * husk-proxy runs its loop this way (husk_daemon.poll_ns): it sits
 * between two peers that answer each other quickly, and every proxied
 * call would otherwise cost it two sleeps and two wake-ups
 * (docs/proxy.md, "Polling before sleeping").
 *
 * The window:
 *   - starts at 0 (no polling);
 *   - after a wait the poll did not spare, grows (to `grow` from 0,
 *     else doubled, up to `max`) when the whole wait was at most `max`:
 *     a longer poll would have caught the event;
 *   - halves after a wait longer than `max` (the poll was wasted), and
 *     drops to 0 under `grow`;
 *   - stays as it is when the poll caught the event.
 * A look is one non-blocking turn of the loop; between looks the loop
 * yields the CPU, so a peer on the same CPU runs.  A yield that took
 * longer than HUSK_EVPOLL_YIELD_NS gave the CPU to another task, which
 * wants it: one more look, then the loop sleeps.  A look that runs a
 * prepare or check watcher counts as an event: the loop's program has
 * none of them.
 */
#ifndef HUSK_EVPOLL_H
#define HUSK_EVPOLL_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

struct husk_evpoll {
	uint64_t max_ns;        /* the longest poll; 0: never poll */
	uint64_t grow_ns;       /* the first step up from 0 */
	uint64_t window_ns;     /* the poll now */
	uint64_t events;        /* watchers invoked, all told */
	uint64_t woke_at;       /* CLOCK_MONOTONIC ns of the last events */
	uint64_t caught;        /* polls that caught an event */
	uint64_t missed;        /* polls that did not */
};

/* The default longest poll, and the first step up. */
#define HUSK_EVPOLL_MAX_NS  200000u
#define HUSK_EVPOLL_GROW_NS  10000u
/* A yield that took longer gave the CPU to another task. */
#define HUSK_EVPOLL_YIELD_NS  5000u

/* The next window (pure, for the tests): caught, the poll before
 * this wake-up caught the event; else waited_ns, the whole wait. */
uint64_t husk_evpoll_next(const struct husk_evpoll *p, bool caught,
			  uint64_t waited_ns);

/* Run loop as ev_run(loop, 0) does, polling before each sleep for up
 * to max_ns (0: plain ev_run).  Returns when no active watcher is
 * left, or when *stop is true after a turn (an ev_break alone does
 * not end it: the caller sets *stop with it). */
void husk_evpoll_run(struct ev_loop *loop, struct husk_evpoll *p,
		     uint64_t max_ns, const bool *stop);

#endif
