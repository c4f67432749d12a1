/*
 * /tasks/oom: each task's OOM kills in the guest.  The pod's connection
 * to its proxy (agent.c) keeps one wait_oom call waiting per task (the
 * agent answers when the container's count passes what we have seen);
 * each answer publishes one event per new kill, and the call goes out
 * again.  The count is read once more, bounded, when the
 * task's init exits, before its exit event: the agent counts a kill
 * before it tells the exit the kill caused, so an OOM that ends the
 * task comes before /tasks/exit.  That read waits in the loop too
 * (agent.c), at most SV_OOM_FINAL_MS, and the exit is told after it.
 *
 * The answers come from the guest: decoded once (husk_oom_decode), at
 * most HUSK_OOM_BURST events per answer and one call per
 * SV_OOM_MIN_GAP, so a guest that answers at once with ever larger
 * counts makes at most 16 events a second per task; log lines about
 * it are rate-limited.
 */
#include <stdlib.h>
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"
#include "shimv2.h"

/* Seconds between two calls, at least; after failures the wait
 * doubles from SV_OOM_RETRY_MIN to SV_OOM_RETRY_MAX. */
#define SV_OOM_MIN_GAP (HUSK_OOM_MIN_GAP_MS / 1000.)
#define SV_OOM_RETRY_MIN 0.5
#define SV_OOM_RETRY_MAX 10.0
/* The read at the init's exit. */
#define SV_OOM_FINAL_MS 2000

struct sv_oom {
	struct sv *s;
	struct sv_task *t;
	struct sv_acall *call;          /* the wait_oom waiting, or NULL */
	uint64_t seen;
	ev_timer timer;                 /* the next call */
	double delay;                   /* 0, or the wait after a failure */
	double last_call;
	struct ipc_ratelimit rl;
	/* The read at the init's exit, and what comes after it. */
	struct sv_acall *final;
	void (*final_then)(struct sv_proc *p);
};

static void oom_log(struct sv_oom *o, const char *what, const char *msg)
{
	unsigned suppressed = 0;
	char safe[256];

	if (!ipc_ratelimit(&o->rl, ev_now(o->s->loop), &suppressed))
		return;
	husk_escape_buf(msg, strlen(msg), safe, sizeof(safe));
	log_warnx("task %s: %s: %s%s", o->t->id, what, safe,
		  suppressed ? " (earlier lines like this suppressed)" : "");
}

static void publish(struct sv_oom *o, uint64_t kills)
{
	uint64_t dropped;
	unsigned n = husk_oom_news(&o->seen, kills, &dropped);

	if (n)
		log_info("task %s: %u OOM kill%s in the guest", o->t->id, n,
			 n > 1 ? "s" : "");
	for (unsigned i = 0; i < n; i++)
		sv_event_oom(o->s, o->t);
	if (dropped) {
		char msg[96];

		snprintf(msg, sizeof(msg), "%llu more not published (at "
			 "most %u an answer)", (unsigned long long)dropped,
			 HUSK_OOM_BURST);
		oom_log(o, "OOM kills", msg);
	}
}

static void schedule(struct sv_oom *o, double after)
{
	ev_timer_stop(o->s->loop, &o->timer);
	ev_timer_set(&o->timer, after > 0 ? after : 0., 0.);
	ev_timer_start(o->s->loop, &o->timer);
}

static void failed(struct sv_oom *o)
{
	o->delay = o->delay ? o->delay * 2 : SV_OOM_RETRY_MIN;
	if (o->delay > SV_OOM_RETRY_MAX)
		o->delay = SV_OOM_RETRY_MAX;
	schedule(o, o->delay);
}

static void on_answer(void *arg, const msgpack_object *result,
		      const struct husk_err *err)
{
	struct sv_oom *o = arg;
	struct husk_err *e = NULL;
	uint64_t kills;

	o->call = NULL;
	if (err) {
		/* The container went (Delete is on its way): nothing more
		 * to watch. */
		if (err->code == HUSK_E_NOT_FOUND) {
			log_debug("task %s: %s", o->t->id, err->msg);
			return;
		}
		/* An agent that cannot (an older one, no memory
		 * controller) will not later. */
		if (err->code == HUSK_E_UNKNOWN_METHOD ||
		    err->code == HUSK_E_NOT_IMPLEMENTED) {
			oom_log(o, "no OOM events", err->msg);
			return;
		}
		/* A failed call or a lost connection (the next call makes
		 * another). */
		oom_log(o, "wait_oom", err->msg);
		failed(o);
		return;
	}
	if (husk_oom_decode(result, &kills, &e) < 0) {
		oom_log(o, "wait_oom", e->msg);
		husk_err_free(e);
		failed(o);
		return;
	}
	o->delay = 0;
	publish(o, kills);
	schedule(o, o->last_call + SV_OOM_MIN_GAP - ev_now(o->s->loop));
}

/* Waits until the count passes what was seen: no timeout. */
static void oom_call(struct sv_oom *o)
{
	struct husk_err *err = NULL;

	if (o->call)
		return;
	o->last_call = ev_now(o->s->loop);
	o->call = sv_agent_call(o->s, o->t->sandbox_id, AGENT_M_WAIT_OOM,
				json_pack("{s:s, s:I}", "container_id",
					  o->t->id, "seen", (json_int_t)
					  (o->seen > INT64_MAX ? INT64_MAX :
					   o->seen)),
				0., on_answer, o, &err);
	if (!o->call) {
		oom_log(o, "wait_oom", err->msg);
		husk_err_free(err);
		failed(o);
	}
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	oom_call(w->data);
}

void sv_oom_start(struct sv *s, struct sv_task *t)
{
	struct sv_oom *o;

	if (t->oom)
		return;
	o = husk_xcalloc(1, sizeof(*o));
	o->s = s;
	o->t = t;
	o->rl.interval = 60.;
	o->rl.burst = 5;
	ev_timer_init(&o->timer, on_timer, 0., 0.);
	o->timer.data = o;
	t->oom = o;
	oom_call(o);
}

static void final_done(void *arg, const msgpack_object *result,
		       const struct husk_err *err)
{
	struct sv_oom *o = arg;
	struct sv_task *t = o->t;
	void (*then)(struct sv_proc *) = o->final_then;
	struct husk_err *e = NULL;
	uint64_t kills;

	o->final = NULL;
	o->final_then = NULL;
	if (err) {
		/* Slow or unreachable: the waiting call may still tell,
		 * after the exit, until the task is deleted. */
		if (err->code == HUSK_E_NOT_FOUND)
			sv_oom_stop(o->s, t);
		else
			oom_log(o, "wait_oom at the exit", err->msg);
	} else if (husk_oom_decode(result, &kills, &e) < 0) {
		oom_log(o, "wait_oom at the exit", e->msg);
		husk_err_free(e);
	} else {
		publish(o, kills);
		sv_oom_stop(o->s, t);
	}
	then(&t->init);
}

bool sv_oom_final(struct sv *s, struct sv_task *t,
		  void (*then)(struct sv_proc *p))
{
	struct sv_oom *o = t->oom;
	struct husk_err *err = NULL;

	if (!o || o->final)
		return false;
	/* Without "seen" the agent answers with the count at once. */
	o->final_then = then;
	o->final = sv_agent_call(s, t->sandbox_id, AGENT_M_WAIT_OOM,
				 json_pack("{s:s}", "container_id", t->id),
				 SV_OOM_FINAL_MS / 1000., final_done, o, &err);
	if (!o->final) {
		o->final_then = NULL;
		oom_log(o, "wait_oom at the exit", err->msg);
		husk_err_free(err);
		return false;
	}
	return true;
}

void sv_oom_final_now(struct sv *s, struct sv_task *t)
{
	struct sv_oom *o = t->oom;
	void (*then)(struct sv_proc *);

	if (!o || !o->final)
		return;
	sv_agent_cancel(s, o->final);
	then = o->final_then;
	o->final = NULL;
	o->final_then = NULL;
	then(&t->init);
}

void sv_oom_stop(struct sv *s, struct sv_task *t)
{
	struct sv_oom *o = t->oom;

	if (!o)
		return;
	ev_timer_stop(s->loop, &o->timer);
	if (o->final)
		sv_agent_cancel(s, o->final);
	if (o->call)
		sv_agent_cancel(s, o->call);
	free(o);
	t->oom = NULL;
}
