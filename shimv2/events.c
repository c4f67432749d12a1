/*
 * The events publisher: one Forward call in flight at a time, so
 * containerd sees the events in the order they happened (an exit never
 * before its start).  While containerd is away the head of the queue
 * is retried with a doubling back-off; the queue is bounded so a
 * containerd that never returns costs a fixed amount of memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/events.h"
#include "shimv2/ttrpc.h"


struct event {
	struct event *next;
	char *topic;
	char *type_url;
	struct timespec when;
	size_t n;
	uint8_t data[];
};

struct events_pub {
	struct ev_loop *loop;
	char *address;
	char *ns;
	size_t max;
	struct event *head, *tail;
	size_t count;
	size_t dropped;
	struct ttrpc_client *client;
	bool inflight;
	unsigned backoff_ms;
	bool failing;		/* the last attempt failed: log less */
	bool closing;
	double call_timeout_s;
	ev_timer retry;
	ev_timer call_timeout;
	ev_timer drain_w;
	void (*drained)(struct events_pub *, void *);
	void *drained_arg;
};

static const struct {
	const ProtobufCMessageDescriptor *d;
	const char *topic;
	const char *type_url;
} event_types[] = {
	{ &events__task_create__descriptor, "/tasks/create",
	  "containerd.events.TaskCreate" },
	{ &events__task_start__descriptor, "/tasks/start",
	  "containerd.events.TaskStart" },
	{ &events__task_delete__descriptor, "/tasks/delete",
	  "containerd.events.TaskDelete" },
	{ &events__task_exit__descriptor, "/tasks/exit",
	  "containerd.events.TaskExit" },
	{ &events__task_oom__descriptor, "/tasks/oom",
	  "containerd.events.TaskOOM" },
	{ &events__task_exec_added__descriptor, "/tasks/exec-added",
	  "containerd.events.TaskExecAdded" },
	{ &events__task_exec_started__descriptor, "/tasks/exec-started",
	  "containerd.events.TaskExecStarted" },
	{ &events__task_paused__descriptor, "/tasks/paused",
	  "containerd.events.TaskPaused" },
	{ &events__task_resumed__descriptor, "/tasks/resumed",
	  "containerd.events.TaskResumed" },
};

const char *events_topic(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(event_types); i++)
		if (event_types[i].d == d)
			return event_types[i].topic;
	return NULL;
}

const char *events_type_url(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(event_types); i++)
		if (event_types[i].d == d)
			return event_types[i].type_url;
	return NULL;
}

static void event_free(struct event *e)
{
	free(e->topic);
	free(e->type_url);
	free(e);
}

static void kick(struct events_pub *p);

static void check_drained(struct events_pub *p)
{
	if (p->drained && !p->head && !p->inflight)
		ev_feed_event(p->loop, &p->drain_w, EV_TIMER);
}

static void drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct events_pub *p = w->data;
	void (*cb)(struct events_pub *, void *) = p->drained;

	if (!cb || p->head || p->inflight)
		return;
	p->drained = NULL;
	cb(p, p->drained_arg);
}

static void pop(struct events_pub *p)
{
	struct event *e = p->head;

	p->head = e->next;
	if (!p->head)
		p->tail = NULL;
	p->count--;
	event_free(e);
}

static void schedule_retry(struct events_pub *p)
{
	if (ev_is_active(&p->retry))
		return;
	/* Events are published from handlers that may have held the loop
	 * for long (a VM boot): timers start from now, not from when the
	 * loop last woke. */
	ev_now_update(p->loop);
	ev_timer_set(&p->retry, p->backoff_ms / 1000.0, 0.);
	ev_timer_start(p->loop, &p->retry);
	p->backoff_ms *= 2;
	if (p->backoff_ms > EVENTS_RETRY_MAX_MS)
		p->backoff_ms = EVENTS_RETRY_MAX_MS;
}

static void forward_done(void *arg, int code, const char *msg,
			 const uint8_t *payload, size_t n)
{
	struct events_pub *p = arg;
	struct event *e = p->head;

	if (p->closing)
		return;
	p->inflight = false;
	ev_timer_stop(p->loop, &p->call_timeout);
	if (code == TTRPC_OK) {
		if (p->failing)
			log_info("events: containerd takes events again");
		p->failing = false;
		p->backoff_ms = EVENTS_RETRY_MIN_MS;
		pop(p);
	} else if (code == TTRPC_UNAVAILABLE) {
		if (!p->failing)
			log_warnx("events: %s %s: %s; retrying", e->topic,
				  e->type_url, msg);
		p->failing = true;
		schedule_retry(p);
		return;
	} else {
		/* containerd read the event and refused it: sending it
		 * again would be refused again. */
		log_warnx("events: containerd refused %s (%s): %s: %s",
			  e->topic, e->type_url, ttrpc_code_name(code), msg);
		p->dropped++;
		pop(p);
	}
	check_drained(p);
	kick(p);
}

static int send_head(struct events_pub *p, struct husk_err **err)
{
	struct event *e = p->head;
	Events__ForwardRequest req = EVENTS__FORWARD_REQUEST__INIT;
	Events__Envelope env = EVENTS__ENVELOPE__INIT;
	Gpb__Timestamp ts;
	Gpb__Any any = GPB__ANY__INIT;

	ttrpc_timestamp_set(&ts, &e->when);
	any.type_url = e->type_url;
	any.value.data = e->data;
	any.value.len = e->n;
	env.timestamp = &ts;
	env.namespace_ = p->ns;
	env.topic = e->topic;
	env.event = &any;
	req.envelope = &env;
	return ttrpc_client_call(p->client, EVENTS_SERVICE, EVENTS_METHOD,
				 &req.base, 0, forward_done, p, err);
}

/* Send the head of the queue if nothing is in flight or waiting. */
static void kick(struct events_pub *p)
{
	cleanup_err struct husk_err *err = NULL;

	if (!p->head || p->inflight || ev_is_active(&p->retry))
		return;
	if (p->client && ttrpc_client_closed(p->client)) {
		ttrpc_client_free(p->client);
		p->client = NULL;
	}
	if (!p->client) {
		p->client = ttrpc_client_connect(p->loop, p->address, &err);
		if (!p->client) {
			if (!p->failing)
				log_warnx("events: %s; retrying", err->msg);
			else
				log_debug("events: %s", err->msg);
			p->failing = true;
			schedule_retry(p);
			return;
		}
	}
	if (send_head(p, &err) < 0) {
		log_debug("events: %s", err->msg);
		p->failing = true;
		schedule_retry(p);
		return;
	}
	p->inflight = true;
	ev_now_update(p->loop);
	ev_timer_set(&p->call_timeout, p->call_timeout_s, 0.);
	ev_timer_start(p->loop, &p->call_timeout);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	kick(w->data);
}

static void call_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct events_pub *p = w->data;
	struct ttrpc_client *c = p->client;

	log_warnx("events: containerd did not answer Forward in %.0f s; "
		  "reconnecting", p->call_timeout_s);
	/* Freeing the client ends the call with Unavailable, which
	 * schedules the retry. */
	p->client = NULL;
	ttrpc_client_free(c);
}

struct events_pub *events_pub_new(struct ev_loop *loop, const char *address,
				  const char *ns, size_t max,
				  struct husk_err **err)
{
	struct events_pub *p;

	if (!address || !*address) {
		husk_error(err, HUSK_E_INVALID, "events: no containerd ttrpc "
			   "address (TTRPC_ADDRESS)");
		return NULL;
	}
	if (!ns || !*ns) {
		husk_error(err, HUSK_E_INVALID, "events: no namespace");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->address = strdup(address)) || !(p->ns = strdup(ns))) {
		husk_error_sys(err, errno, "events publisher");
		if (p)
			free(p->address);
		free(p);
		return NULL;
	}
	p->loop = loop;
	p->max = max ? max : EVENTS_QUEUE_MAX;
	p->backoff_ms = EVENTS_RETRY_MIN_MS;
	p->call_timeout_s = EVENTS_CALL_TIMEOUT_S;
	ev_timer_init(&p->retry, retry_cb, 0., 0.);
	ev_timer_init(&p->call_timeout, call_timeout_cb, 0., 0.);
	ev_timer_init(&p->drain_w, drain_cb, 0., 0.);
	p->retry.data = p->call_timeout.data = p->drain_w.data = p;
	return p;
}

void events_pub_free(struct events_pub *p)
{
	if (!p)
		return;
	if (p->count)
		log_warnx("events: %zu event(s) never reached containerd",
			  p->count);
	ev_timer_stop(p->loop, &p->retry);
	ev_timer_stop(p->loop, &p->call_timeout);
	ev_clear_pending(p->loop, &p->drain_w);
	p->drained = NULL;
	/* Ending the client ends the call in flight, which must not
	 * retry now. */
	p->closing = true;
	ttrpc_client_free(p->client);
	p->dropped += p->count;
	while (p->head)
		pop(p);
	free(p->address);
	free(p->ns);
	free(p);
}

int events_publish_raw(struct events_pub *p, const char *topic,
		       const char *type_url, const void *data, size_t n,
		       struct husk_err **err)
{
	struct event *e;

	if (p->count >= p->max) {
		p->dropped++;
		log_warnx("events: queue full (%zu events containerd has not "
			  "taken): %s dropped", p->count, topic);
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "events queue full: %s dropped", topic);
	}
	if (n > TTRPC_MAX_MSG - 4096)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "event %s of %zu bytes", topic, n);
	e = calloc(1, sizeof(*e) + n);
	if (!e || !(e->topic = strdup(topic)) ||
	    !(e->type_url = strdup(type_url))) {
		if (e)
			free(e->topic);
		free(e);
		return husk_error_sys(err, errno, "event %s", topic);
	}
	clock_gettime(CLOCK_REALTIME, &e->when);
	memcpy(e->data, data, n);
	e->n = n;
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	p->count++;
	kick(p);
	return 0;
}

int events_publish(struct events_pub *p, const ProtobufCMessage *ev,
		   struct husk_err **err)
{
	const char *topic = events_topic(ev->descriptor);
	cleanup_free uint8_t *buf = NULL;
	size_t n;

	if (!topic)
		return husk_error(err, HUSK_E_INVALID,
				  "events: %s is not a task event",
				  ev->descriptor->name);
	if (ttrpc_pack(ev, &buf, &n, err) < 0)
		return -1;
	return events_publish_raw(p, topic, events_type_url(ev->descriptor),
				  buf, n, err);
}

size_t events_pending(const struct events_pub *p)
{
	return p->count;
}

size_t events_dropped(const struct events_pub *p)
{
	return p->dropped;
}

void events_set_call_timeout(struct events_pub *p, double secs)
{
	p->call_timeout_s = secs > 0 ? secs : EVENTS_CALL_TIMEOUT_S;
}

void events_on_drained(struct events_pub *p,
		       void (*cb)(struct events_pub *, void *), void *arg)
{
	p->drained = cb;
	p->drained_arg = arg;
	check_drained(p);
}
