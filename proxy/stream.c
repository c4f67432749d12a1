/*
 * Output streams of the sandbox's processes, as the proxy sees them:
 * what the agent sent, what waits for a subscriber, what the subscriber
 * has not acknowledged yet.  No I/O here: the table talks to the world
 * through struct pstream_ops, so the fuzz target and the unit tests
 * drive it without sockets.
 *
 * Memory stays bounded because the agent may have at most PROXY_WINDOW
 * bytes of a stream unacknowledged, and the proxy acknowledges only
 * what the subscriber acknowledged (or what a departed subscriber took
 * with it).  Bytes from the agent beyond the window, output after a
 * stream's end, or more unread output than the caps allow are a broken
 * agent: the caller cuts it off.
 */
#include <stdlib.h>
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "proxy.h"

#define FIELD(k, t, fl, m, mn, mx) \
	{ k, t, fl, offsetof(struct pout_params, m), mn, mx }

static const struct ipc_field output_fields[] = {
	FIELD("container_id", IPC_F_STR, IPC_REQUIRED, container_id, 0,
	      HUSK_ID_MAX),
	FIELD("exec_id", IPC_F_STR, IPC_REQUIRED, exec_id, 0, HUSK_ID_MAX),
	FIELD("stream", IPC_F_UINT32, IPC_REQUIRED, stream, 0, 2),
	FIELD("data", IPC_F_BIN, IPC_REQUIRED, data, 0, UINT32_MAX),
	{ NULL },
};

static const struct ipc_field ack_fields[] = {
	FIELD("container_id", IPC_F_STR, IPC_REQUIRED, container_id, 0,
	      HUSK_ID_MAX),
	FIELD("exec_id", IPC_F_STR, IPC_REQUIRED, exec_id, 0, HUSK_ID_MAX),
	FIELD("stream", IPC_F_UINT32, IPC_REQUIRED, stream, 0, 2),
	FIELD("bytes", IPC_F_UINT64, IPC_REQUIRED, bytes, 0, UINT64_MAX),
	{ NULL },
};

static int check_ids(struct pout_params *o, struct husk_err **err)
{
	if (husk_id_validate(o->container_id, "params.container_id",
			     err) < 0)
		return -1;
	if (o->exec_id[0] &&
	    husk_id_validate(o->exec_id, "params.exec_id", err) < 0)
		return -1;
	if (o->stream < 1)
		return husk_error(err, HUSK_E_INVALID,
				  "params.stream: must be 1 or 2");
	return 0;
}

static int decode(const msgpack_object *params,
		  const struct ipc_field *fields, struct pout_params *o,
		  struct husk_err **err)
{
	memset(o, 0, sizeof(*o));
	if (ipc_decode(params, fields, o, err) < 0)
		return -1;
	if (check_ids(o, err) < 0) {
		pstream_params_free(o);
		return -1;
	}
	return 0;
}

int pstream_decode_output(const msgpack_object *params,
			  struct pout_params *o, struct husk_err **err)
{
	return decode(params, output_fields, o, err);
}

int pstream_decode_ack(const msgpack_object *params, struct pout_params *o,
		       struct husk_err **err)
{
	return decode(params, ack_fields, o, err);
}

void pstream_params_free(struct pout_params *o)
{
	ipc_decode_free(output_fields, o);
}

void pstreams_init(struct pstreams *t, const struct pstream_ops *ops,
		   void *arg)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->arg = arg;
}

static uint64_t proc_buffered(const struct pproc *p)
{
	return p->out[0].buffered + p->out[1].buffered;
}

static uint64_t proc_held(const struct pproc *p)
{
	return p->out[0].held + p->out[1].held;
}

/* Keep unsub_bytes and the held totals true around a change to p. */
static void account_out(struct pstreams *t, const struct pproc *p)
{
	if (!p->sub) {
		t->unsub_bytes -= proc_buffered(p);
		t->unsub_held -= proc_held(p);
	}
	t->held -= proc_held(p);
}

static void account_in(struct pstreams *t, const struct pproc *p)
{
	if (!p->sub) {
		t->unsub_bytes += proc_buffered(p);
		t->unsub_held += proc_held(p);
	}
	t->held += proc_held(p);
}

/* p becomes known (created through the proxy, or subscribed to). */
static void make_known(struct pstreams *t, struct pproc *p)
{
	if (!p->known)
		t->nunknown--;
	p->known = true;
}

static void out_clear(struct pout *o)
{
	struct pchunk *c, *n;

	for (c = o->head; c; c = n) {
		n = c->next;
		free(c);
	}
	o->head = o->tail = NULL;
	o->buffered = 0;
	o->held = 0;
}

static void proc_free(struct pstreams *t, struct pproc *p)
{
	account_out(t, p);
	if (!p->known)
		t->nunknown--;
	if (p->prev)
		p->prev->next = p->next;
	else
		t->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	t->nprocs--;
	out_clear(&p->out[0]);
	out_clear(&p->out[1]);
	free(p->cid);
	free(p->eid);
	free(p);
}

void pstreams_free(struct pstreams *t)
{
	while (t->head)
		proc_free(t, t->head);
}

struct pproc *pstreams_find(struct pstreams *t, const char *cid,
			    const char *eid)
{
	for (struct pproc *p = t->head; p; p = p->next)
		if (strcmp(p->cid, cid) == 0 && strcmp(p->eid, eid) == 0)
			return p;
	return NULL;
}

static bool finished(const struct pproc *p)
{
	return p->out[0].eof_received && p->out[1].eof_received &&
	       !proc_buffered(p);
}

/* Make room for one more process: forget the oldest one that has ended
 * and that nobody reads, else fail. */
static int make_room(struct pstreams *t, struct husk_err **err)
{
	struct pproc *p, *victim = NULL;

	if (t->nprocs < PROXY_MAX_PROCS)
		return 0;
	for (p = t->head; p; p = p->next)
		if (!p->sub && finished(p))
			victim = p;     /* the list is newest first */
	if (!victim)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "more than %d processes with output",
				  PROXY_MAX_PROCS);
	proc_free(t, victim);
	return 0;
}

/* The entry of cid/eid; a new one when create (known: the proxy saw it
 * created or a client subscribed; else output made it up). */
static struct pproc *proc_get(struct pstreams *t, const char *cid,
			      const char *eid, bool create, bool known,
			      struct husk_err **err)
{
	struct pproc *p = pstreams_find(t, cid, eid);

	if (p || !create)
		return p;
	if (!known && t->nunknown >= PROXY_UNKNOWN_PROCS_MAX) {
		husk_error(err, HUSK_E_TOO_LARGE,
			   "output for more than %d processes never created "
			   "(last %s/%s)", PROXY_UNKNOWN_PROCS_MAX, cid, eid);
		return NULL;
	}
	if (make_room(t, err) < 0)
		return NULL;
	p = husk_xcalloc(1, sizeof(*p));
	p->cid = husk_xstrdup(cid);
	p->eid = husk_xstrdup(eid);
	p->known = known;
	if (!known)
		t->nunknown++;
	p->next = t->head;
	if (t->head)
		t->head->prev = p;
	t->head = p;
	t->nprocs++;
	return p;
}

static void deliver_one(struct pstreams *t, struct pproc *p, int s)
{
	struct pout *o = &p->out[s - 1];
	struct pchunk *c;

	while ((c = o->head) && t->ops->can_deliver(p->sub, t->arg)) {
		o->head = c->next;
		if (!o->head)
			o->tail = NULL;
		o->buffered -= c->len;
		o->held -= c->cap + PROXY_CHUNK_COST;
		o->inflight += c->len;
		t->ops->deliver(p->sub, p, s, c->data, c->len, t->arg);
		free(c);
	}
	if (!o->head && o->eof_received && !o->eof_delivered &&
	    t->ops->can_deliver(p->sub, t->arg)) {
		o->eof_delivered = true;
		t->ops->deliver(p->sub, p, s, NULL, 0, t->arg);
	}
}

/* Deliver what p holds to its subscriber, as far as it takes it. */
static void proc_flush(struct pstreams *t, struct pproc *p)
{
	if (!p->sub)
		return;
	account_out(t, p);
	deliver_one(t, p, 1);
	deliver_one(t, p, 2);
	account_in(t, p);
}

/* Append to the last chunk while it has room, so that many small
 * outputs share one allocation. */
static void buffer(struct pout *o, const char *data, uint32_t len)
{
	struct pchunk *c = o->tail;

	if (!c || c->cap - c->len < len) {
		uint32_t cap = len < PROXY_CHUNK_MIN ? PROXY_CHUNK_MIN : len;

		c = husk_xmalloc(sizeof(*c) + cap);
		c->next = NULL;
		c->len = 0;
		c->cap = cap;
		if (o->tail)
			o->tail->next = c;
		else
			o->head = c;
		o->tail = c;
		o->held += cap + PROXY_CHUNK_COST;
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	o->buffered += len;
}

/* Would len more bytes of stream num of p pass a bound?  Checked before
 * anything is kept, so the bounds hold at all times (give or take the
 * one chunk a message may start). */
static int check_caps(struct pstreams *t, const struct pproc *p,
		      const struct pout *s, unsigned num, uint32_t len,
		      struct husk_err **err)
{
	if (s->buffered + s->inflight + len > PROXY_STREAM_HELD_MAX)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "output for %s/%s stream %u: %llu bytes "
				  "held across agent connections (at most %u)",
				  p->cid, p->eid, num,
				  (unsigned long long)(s->buffered +
						       s->inflight + len),
				  PROXY_STREAM_HELD_MAX);
	if (!p->sub && t->unsub_held + len > PROXY_UNSUB_BYTES_MAX)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "more than %u bytes of output nobody "
				  "subscribed to", PROXY_UNSUB_BYTES_MAX);
	if (t->held + len > PROXY_HELD_BYTES_MAX)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "more than %u bytes of output held",
				  PROXY_HELD_BYTES_MAX);
	return 0;
}

/* Relay the agent's message as it is: the subscriber takes it now and
 * nothing of the stream waits to go before it. */
static bool relay(struct pstreams *t, struct pproc *p, struct pout *s,
		  const char *raw, uint32_t raw_len, uint32_t len)
{
	if (!raw || !t->ops->relay || !p->sub || s->head ||
	    raw_len > (uint64_t)len + PROXY_RELAY_SLACK ||
	    !t->ops->can_deliver(p->sub, t->arg) ||
	    t->ops->relay(p->sub, raw, raw_len, t->arg) < 0)
		return false;
	s->inflight += len;
	return true;
}

int pstreams_output(struct pstreams *t, const msgpack_object *params,
		    const char *raw, uint32_t raw_len, struct husk_err **err)
{
	struct pout_params o;
	struct pproc *p;
	struct pout *s;
	int ret = -1;

	if (pstream_decode_output(params, &o, err) < 0)
		return husk_error_wrap(err, "output");
	p = proc_get(t, o.container_id, o.exec_id, true, false, err);
	if (!p)
		goto out;
	s = &p->out[o.stream - 1];
	if (s->eof_received) {
		husk_error(err, HUSK_E_PROTOCOL,
			   "output for %s/%s stream %u after its end",
			   p->cid, p->eid, o.stream);
		goto out;
	}
	if (o.data.len == 0) {
		s->eof_received = true;
		proc_flush(t, p);
		ret = 0;
		goto out;
	}
	if (s->agent_unacked + o.data.len > PROXY_WINDOW) {
		husk_error(err, HUSK_E_PROTOCOL,
			   "output for %s/%s stream %u overruns the window "
			   "(%llu bytes unacknowledged, %u more)", p->cid,
			   p->eid, o.stream,
			   (unsigned long long)s->agent_unacked, o.data.len);
		goto out;
	}
	if (check_caps(t, p, s, o.stream, o.data.len, err) < 0)
		goto out;
	s->agent_unacked += o.data.len;
	s->total += o.data.len;
	if (relay(t, p, s, raw, raw_len, o.data.len)) {
		ret = 0;
		goto out;
	}
	account_out(t, p);
	buffer(s, o.data.p, o.data.len);
	account_in(t, p);
	proc_flush(t, p);
	ret = 0;
out:
	pstream_params_free(&o);
	return ret;
}

int pstreams_register(struct pstreams *t, const char *cid, const char *eid,
		      struct husk_err **err)
{
	struct pproc *p = proc_get(t, cid, eid, true, true, err);

	if (!p)
		return -1;
	make_known(t, p);
	return 0;
}

int pstreams_subscribe(struct pstreams *t, void *sub, const char *cid,
		       const char *eid, struct husk_err **err)
{
	struct pproc *p = proc_get(t, cid, eid, true, true, err);

	if (!p)
		return -1;
	if (p->sub && p->sub != sub)
		return husk_error(err, HUSK_E_EXISTS,
				  "%s/%s already has a subscriber", cid, eid);
	if (p->sub == sub)
		return 0;
	account_out(t, p);
	p->sub = sub;
	make_known(t, p);
	account_in(t, p);
	proc_flush(t, p);
	return 0;
}

/* p loses its subscriber: what it took with it is acknowledged, since
 * nobody will, and the next subscriber starts where it stopped. */
static void unsub(struct pstreams *t, struct pproc *p)
{
	for (int s = 1; s <= 2; s++) {
		struct pout *o = &p->out[s - 1];
		uint64_t n = o->inflight < o->agent_unacked ? o->inflight
							    : o->agent_unacked;

		o->inflight = 0;
		o->eof_delivered = false;
		if (n) {
			o->agent_unacked -= n;
			t->ops->ack(p, s, n, t->arg);
		}
	}
	account_out(t, p);
	p->sub = NULL;
	account_in(t, p);
}

int pstreams_unsubscribe(struct pstreams *t, void *sub, const char *cid,
			 const char *eid, struct husk_err **err)
{
	struct pproc *p = pstreams_find(t, cid, eid);

	if (!p || p->sub != sub)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "not subscribed to %s/%s", cid, eid);
	unsub(t, p);
	return 0;
}

void pstreams_drop_sub(struct pstreams *t, void *sub)
{
	for (struct pproc *p = t->head; p; p = p->next)
		if (p->sub == sub)
			unsub(t, p);
}

int pstreams_client_ack(struct pstreams *t, void *sub,
			const msgpack_object *params, struct husk_err **err)
{
	struct pout_params o;
	struct pproc *p;
	struct pout *s;
	uint64_t n;
	int ret = -1;

	if (pstream_decode_ack(params, &o, err) < 0)
		return husk_error_wrap(err, "output_ack");
	p = pstreams_find(t, o.container_id, o.exec_id);
	if (!p || p->sub != sub) {
		husk_error(err, HUSK_E_NOT_FOUND,
			   "output_ack: not subscribed to %s/%s",
			   o.container_id, o.exec_id);
		goto out;
	}
	s = &p->out[o.stream - 1];
	if (o.bytes > s->inflight) {
		husk_error(err, HUSK_E_INVALID,
			   "output_ack: %llu bytes of %s/%s stream %u "
			   "acknowledged, %llu delivered",
			   (unsigned long long)o.bytes, p->cid, p->eid,
			   o.stream, (unsigned long long)s->inflight);
		goto out;
	}
	s->inflight -= o.bytes;
	/* Bytes that came over an earlier agent connection are not that
	 * agent's to hear about. */
	n = o.bytes < s->agent_unacked ? o.bytes : s->agent_unacked;
	s->agent_unacked -= n;
	if (n)
		t->ops->ack(p, o.stream, n, t->arg);
	ret = 0;
out:
	pstream_params_free(&o);
	return ret;
}

void pstreams_flush(struct pstreams *t, void *sub)
{
	for (struct pproc *p = t->head; p; p = p->next)
		if (p->sub == sub)
			proc_flush(t, p);
}

void pstreams_agent_reset(struct pstreams *t)
{
	for (struct pproc *p = t->head; p; p = p->next) {
		p->out[0].agent_unacked = 0;
		p->out[1].agent_unacked = 0;
	}
}

/* Subscribers of removed processes get the end of whatever stream had
 * not ended, so that a shim waiting for it does not wait forever. */
void pstreams_remove(struct pstreams *t, const char *cid_arg)
{
	/* cid may be a process's own, which this frees */
	char *cid = cid_arg ? husk_xstrdup(cid_arg) : NULL;
	struct pproc *p, *n;

	for (p = t->head; p; p = n) {
		n = p->next;
		if (cid && strcmp(p->cid, cid) != 0)
			continue;
		if (p->sub) {
			p->out[0].eof_received = p->out[1].eof_received = true;
			proc_flush(t, p);
			continue;       /* the subscriber unsubscribes */
		}
		proc_free(t, p);
	}
	free(cid);
}

size_t pstreams_count_sub(const struct pstreams *t, void *sub)
{
	size_t n = 0;

	for (const struct pproc *p = t->head; p; p = p->next)
		if (sub ? p->sub == sub : p->sub != NULL)
			n++;
	return n;
}

int pstreams_agent_msg(struct pstreams *t, const struct ipc_msg *m,
		       struct husk_err **err)
{
	if (m->type == IPC_NOTIFY && strcmp(m->method, AGENT_N_OUTPUT) == 0)
		return pstreams_output(t, m->params, m->raw, m->raw_len, err);
	return husk_error(err, HUSK_E_PROTOCOL, "unexpected %s %s",
			  m->type == IPC_REQUEST ? "request" : "notification",
			  m->method);
}
