/*
 * OOM kills, per container (docs/agent-protocol.md, "OOM kills"): the
 * kernel's count in the container's cgroup is read when the kernel
 * says the cgroup changed (v2: inotify on memory.events, one inotify
 * instance for every container; v1: an eventfd registered through
 * cgroup.event_control) and whenever one of the container's processes
 * is reaped, so that a kill is counted before the exit it caused is
 * told.  Hosts learn it by wait_oom, a long poll: a counter in a reply
 * cannot be lost the way a notification can, and needs nothing of the
 * proxy but forwarding.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"

/* v1: after a notification, the count is read again at 10 ms, 20 ms,
 * ... (2.5 s in all) until the kill shows. */
#define OOM_RECHECK_FIRST 0.01
#define OOM_RECHECKS 8u

struct oom_waiter {
	struct oom_waiter *next;
	struct oom_watch *ow;
	struct ipc_conn *c;             /* referenced */
	uint32_t msgid;
	uint64_t seen;
	ev_timer timer;                 /* timeout_ms, when given */
};

struct oom_watch {
	struct container *ct;
	int wd;                         /* v2: inotify watch, or -1 */
	int efd;                        /* v1: eventfd, or -1 */
	ev_io efd_w;
	/* v1 signals as the cgroup runs out, before the kill: the count is
	 * read again a few times, sooner first, until it moves. */
	ev_timer recheck;
	unsigned rechecks;
	uint64_t last;                  /* the kernel's count, last read */
	uint64_t kills;                 /* counted since the watch began */
	struct oom_waiter *waiters;
	unsigned nwaiters;
};

const struct ipc_field oom_wait_fields[] = {
	{ "container_id", IPC_F_STR, IPC_REQUIRED,
	  offsetof(struct oom_params, container_id), 0, HUSK_ID_MAX },
	{ "seen", IPC_F_UINT64, IPC_NULLABLE,
	  offsetof(struct oom_params, seen), 0, UINT64_MAX },
	{ "timeout_ms", IPC_F_UINT64, IPC_NULLABLE,
	  offsetof(struct oom_params, timeout_ms), 0, AGENT_OOM_TIMEOUT_MAX },
	{ NULL, 0, 0, 0, 0, 0 },
};
const struct oom_params oom_wait_defaults = { .seen = UINT64_MAX };

uint64_t oom_kills(const struct container *ct)
{
	return ct->oom ? ct->oom->kills : 0;
}

static void waiter_free(struct oom_watch *ow, struct oom_waiter *w)
{
	struct agent_core *core = ow->ct->a->core;

	for (struct oom_waiter **pp = &ow->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			ow->nwaiters--;
			break;
		}
	if (ev_is_active(&w->timer))
		ev_timer_stop(core->loop, &w->timer);
	ipc_conn_unref(w->c);
	free(w);
}

static void waiter_answer(struct oom_watch *ow, struct oom_waiter *w)
{
	msgpack_packer *pk;

	if (!ipc_conn_closed(w->c)) {
		pk = ipc_reply_begin(w->c, w->msgid);
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_uint(pk, "oom_kills", ow->kills);
		ipc_reply_send(w->c);
	}
	waiter_free(ow, w);
}

static void waiter_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oom_waiter *w = t->data;

	waiter_answer(w->ow, w);
}

/* Read the kernel's count; notified: what a v1 eventfd said (counted
 * itself on a kernel without the counter). */
static void oom_read(struct oom_watch *ow, uint64_t notified)
{
	uint64_t now = 0, before = ow->kills;
	int r = cg_oom_kills(ow->ct->cg, &now);

	if (r == 0) {
		/* The kernel's count only grows; a smaller one is a cgroup
		 * made anew under the same name: start from it. */
		if (now > ow->last)
			ow->kills += now - ow->last;
		ow->last = now;
	} else if (r == 1) {
		ow->kills += notified;
	}
	if (ow->kills == before)
		return;
	log_info("container %s: OOM kill (%" PRIu64 " so far)", ow->ct->id,
		 ow->kills);
	for (struct oom_waiter *w = ow->waiters, *next; w; w = next) {
		next = w->next;
		if (w->seen < ow->kills)
			waiter_answer(ow, w);
	}
}

void oom_check(struct container *ct)
{
	if (ct->oom)
		oom_read(ct->oom, 0);
}

static void on_inotify(struct ev_loop *loop, ev_io *io, int revents)
{
	struct agent *a = io->data;
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(io->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (void *)p;

			p += sizeof(*ev) + ev->len;
			/* A full queue lost events: read every count. */
			if (!(ev->mask & (IN_MODIFY | IN_Q_OVERFLOW)))
				continue;
			for (struct container *ct = a->core->containers; ct;
			     ct = ct->next)
				if (ct->oom && (ct->oom->wd == ev->wd ||
						(ev->mask & IN_Q_OVERFLOW)))
					oom_read(ct->oom, 0);
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_warn("read inotify");
}

static void on_recheck(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oom_watch *ow = t->data;
	uint64_t before = ow->kills;

	oom_read(ow, 0);
	if (ow->kills != before || ++ow->rechecks >= OOM_RECHECKS)
		return;
	ev_timer_set(t, OOM_RECHECK_FIRST * (double)(1u << ow->rechecks), 0.);
	ev_timer_start(loop, t);
}

static void on_eventfd(struct ev_loop *loop, ev_io *io, int revents)
{
	struct oom_watch *ow = io->data;
	uint64_t v = 0, before = ow->kills;

	if (read(io->fd, &v, sizeof(v)) != sizeof(v))
		return;
	log_debug("container %s: OOM notification", ow->ct->id);
	oom_read(ow, v);
	if (ow->kills != before)
		return;
	ow->rechecks = 0;
	ev_timer_stop(loop, &ow->recheck);
	ev_timer_set(&ow->recheck, OOM_RECHECK_FIRST, 0.);
	ev_timer_start(loop, &ow->recheck);
}

static int inotify_fd(struct agent *a, struct husk_err **err)
{
	struct agent_core *core = a->core;
	int fd;

	if (core->oom_inotify)
		return core->oom_inotify_w.fd;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "inotify_init1");
	ev_io_init(&core->oom_inotify_w, on_inotify, fd, EV_READ);
	core->oom_inotify_w.data = a;
	ev_io_start(core->loop, &core->oom_inotify_w);
	core->oom_inotify = true;
	return fd;
}

int oom_watch_start(struct agent *a, struct container *ct,
		    struct husk_err **err)
{
	struct oom_watch *ow;
	char path[PATH_MAX];
	int fd;

	if (!cg_memory_dir(ct->cg))
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED, "no memory "
				  "controller");
	ow = husk_xcalloc(1, sizeof(*ow));
	ow->ct = ct;
	ow->wd = ow->efd = -1;
	if (cg_oom_events_path(ct->cg, path, sizeof(path)) == 0) {
		if ((fd = inotify_fd(a, err)) < 0)
			goto fail;
		ow->wd = inotify_add_watch(fd, path, IN_MODIFY);
		if (ow->wd < 0) {
			husk_error_sys(err, errno, "inotify `%s`", path);
			goto fail;
		}
	} else {
		ow->efd = cg_oom_eventfd(ct->cg, err);
		if (ow->efd < 0)
			goto fail;
		ev_io_init(&ow->efd_w, on_eventfd, ow->efd, EV_READ);
		ow->efd_w.data = ow;
		ev_io_start(a->core->loop, &ow->efd_w);
		ev_timer_init(&ow->recheck, on_recheck, OOM_RECHECK_FIRST, 0.);
		ow->recheck.data = ow;
	}
	/* Kills before the watch (a cgroup left with the same name) are
	 * not this container's. */
	if (cg_oom_kills(ct->cg, &ow->last) < 0)
		ow->last = 0;
	ct->oom = ow;
	return 0;
fail:
	free(ow);
	return -1;
}

void oom_watch_stop(struct container *ct)
{
	struct oom_watch *ow = ct->oom;
	struct agent_core *core = ct->a->core;

	if (!ow)
		return;
	while (ow->waiters) {
		struct oom_waiter *w = ow->waiters;

		if (!ipc_conn_closed(w->c))
			ipc_reply_error(w->c, w->msgid, HUSK_E_NOT_FOUND,
					"container %s: removed", ct->id);
		waiter_free(ow, w);
	}
	if (ow->wd >= 0 && core->oom_inotify)
		inotify_rm_watch(core->oom_inotify_w.fd, ow->wd);
	if (ow->efd >= 0) {
		ev_io_stop(core->loop, &ow->efd_w);
		ev_timer_stop(core->loop, &ow->recheck);
		close(ow->efd);
	}
	free(ow);
	ct->oom = NULL;
}

int agent_m_wait_oom(struct ipc_conn *c, struct ipc_msg *m, void *params,
		     void *arg, struct husk_err **err)
{
	const struct oom_params *p = params;
	struct ct_params cp = { .container_id = p->container_id };
	struct container *ct = ct_lookup(arg, &cp, err);
	struct oom_watch *ow;
	struct oom_waiter *w;

	if (!ct)
		return -1;
	ow = ct->oom;
	if (!ow)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED, "container %s: "
				  "OOM kills are not watched (no memory "
				  "controller)", ct->id);
	oom_read(ow, 0);
	if (p->seen == UINT64_MAX || p->seen < ow->kills) {
		msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_uint(pk, "oom_kills", ow->kills);
		ipc_reply_send(c);
		return 0;
	}
	/* Calls of a host connection that went stay until answered: those
	 * go first, so that reconnecting hosts are not refused. */
	for (struct oom_waiter *x = ow->waiters, *next; x; x = next) {
		next = x->next;
		if (ipc_conn_closed(x->c))
			waiter_free(ow, x);
	}
	if (ow->nwaiters >= AGENT_OOM_WAITERS_MAX)
		return husk_error(err, HUSK_E_UNAVAILABLE, "container %s: "
				  "more than %u wait_oom calls waiting",
				  ct->id, AGENT_OOM_WAITERS_MAX);
	w = husk_xcalloc(1, sizeof(*w));
	w->ow = ow;
	ipc_conn_ref(c);
	w->c = c;
	w->msgid = m->msgid;
	w->seen = p->seen;
	ev_timer_init(&w->timer, waiter_timeout,
		      (double)p->timeout_ms / 1000., 0.);
	w->timer.data = w;
	if (p->timeout_ms)
		ev_timer_start(ct->a->core->loop, &w->timer);
	w->next = ow->waiters;
	ow->waiters = w;
	ow->nwaiters++;
	log_debug("container %s: waiting for more than %" PRIu64
		  " OOM kills", ct->id, p->seen);
	return 0;
}
