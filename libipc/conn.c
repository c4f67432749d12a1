/*
 * Event-driven connections on libev: framing in, dispatch through the
 * method table, a write queue out, pending calls matched by msgid, and
 * the hello every connection starts with (docs/protocol.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/log.h"
#include "../libhusk/util.h"
#include "conn-int.h"
#include "ipc.h"

#define WQ_HIGH_DEFAULT (1u << 20)
#define WQ_LOW_DEFAULT (256u << 10)
#define HELLO_TIMEOUT_DEFAULT 10.0
#define FLUSH_TIMEOUT 5.0       /* a peer that never reads our last words */
#define CONNECT_RETRY 0.02
#define RECENT_MAX 64           /* timed-out ids whose late answer we drop */
#define READ_CHUNK (64u << 10)
#define READS_PER_WAKEUP 8
#define WRITE_IOV 64
#define SPARE_MAX 8             /* queue buffers kept for reuse */
#define SPARE_SIZE (256u << 10) /* ... if no larger than this */
#define SMALL_COPY 4096         /* messages copied, not swapped, below */

/* One framed message waiting to be written; fds go with its first byte. */
struct wq_item {
	struct wq_item *next;
	size_t cost;            /* counted in queued when queued */
	char *data;             /* cap bytes, malloc'ed */
	size_t cap, len, off;
	int nfds;
	int fds[IPC_MAX_FDS];
};

struct pending {
	struct pending *next, *prev;
	struct ipc_conn *c;
	uint32_t msgid;
	bool timed;
	double timeout;
	ipc_result_cb cb;
	void *arg;
	ev_timer timer;
	char method[IPC_METHOD_MAX + 1];
};

struct ipc_conn {
	struct ev_loop *loop;
	int fd;
	bool is_sock;
	ev_io rio, wio;
	ev_timer hello_timer;   /* hello, connect, and flush-before-close */
	ev_timer retry_timer;   /* connect retries */
	struct ipc_conn_opts o;
	char component[IPC_COMPONENT_MAX + 1];
	char expect[IPC_COMPONENT_MAX + 1];
	char peer[IPC_COMPONENT_MAX + 1];
	pid_t peer_pid;
	uid_t peer_uid;
	int refs;
	bool closed, ready, paused, flushing, connecting, above;
	int werr;
	struct husk_err *flush_why;
	char *path;

	struct ipc_framer fr;
	int rx_fds[IPC_MAX_FDS];
	int rx_nfds;
	int rx_skip;            /* frames to complete before rx_fds' frame */

	struct wq_item *wq_head, *wq_tail;
	size_t queued;          /* cost of the items (ipc_conn_queued) */
	size_t nqueued;
	/* A streaming writer queues buffers of one size over and over;
	 * reusing them spares malloc and the page faults of a heap that
	 * grows and shrinks. */
	struct wq_item *spare;
	int nspare;

	struct ipc_buf out;
	uint32_t out_msgid;
	char out_method[IPC_METHOD_MAX + 1];
	uint32_t next_id;
	struct pending *pending;
	uint32_t recent[RECENT_MAX];
	unsigned recent_pos;

	unsigned char *once_used;
	struct ipc_server *srv;
};

static void conn_flush(struct ipc_conn *c);
static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* ------------------------------------------------------------ helpers */

static const char *peer_name(const struct ipc_conn *c)
{
	return c->peer[0] ? c->peer : "?";
}

/*
 * A peer broke the protocol: from a sibling (trusted) that is a bug in
 * husk, from the guest or a client it is hostile or broken input.
 */
static void conn_violation(struct ipc_conn *c, const struct husk_err *e)
{
	/* An untrusted peer that reconnects and misbehaves over and over
	 * gets a bounded number of lines. */
	static struct ipc_ratelimit rl = { .interval = 60., .burst = 20 };
	const char *msg = e && e->msg ? e->msg : "protocol violation";
	unsigned held = 0;

	if (c->o.trusted)
		log_warnx("bug: peer %s (pid %d) broke the "
			  "protocol: %s", peer_name(c), (int)c->peer_pid, msg);
	else if (ipc_ratelimit(&rl, ev_now(c->loop), &held))
		log_warnx("peer %s (pid %d): %s; disconnecting"
			  "%s", peer_name(c), (int)c->peer_pid, msg,
			  held ? " (earlier lines like this suppressed)" : "");
	ipc_conn_close(c, e);
}

bool ipc_ratelimit(struct ipc_ratelimit *rl, double now,
		   unsigned *suppressed)
{
	if (suppressed)
		*suppressed = 0;
	if (rl->n == 0 || now - rl->start >= rl->interval) {
		rl->start = now;
		rl->n = 0;
	}
	if (rl->n >= rl->burst) {
		rl->dropped++;
		return false;
	}
	rl->n++;
	if (suppressed)
		*suppressed = rl->dropped;
	rl->dropped = 0;
	return true;
}

static struct husk_err *err_copy(const struct husk_err *e)
{
	struct husk_err *n = NULL;

	if (!e)
		return NULL;
	husk_error(&n, e->code, "%s", e->msg ? e->msg : "");
	if (n)
		n->errnum = e->errnum;
	return n;
}

static uint32_t next_msgid(struct ipc_conn *c)
{
	uint32_t id = c->next_id++;

	if (c->next_id == UINT32_MAX || c->next_id == 0)
		c->next_id = 1;
	return id;
}

static void recent_add(struct ipc_conn *c, uint32_t id)
{
	c->recent[c->recent_pos++ % RECENT_MAX] = id;
}

static bool recent_has(const struct ipc_conn *c, uint32_t id)
{
	for (unsigned i = 0; i < RECENT_MAX; i++)
		if (c->recent[i] == id)
			return true;
	return false;
}

static struct pending *pending_find(struct ipc_conn *c, uint32_t id)
{
	for (struct pending *p = c->pending; p; p = p->next)
		if (p->msgid == id)
			return p;
	return NULL;
}

static void pending_unlink(struct ipc_conn *c, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		c->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->timed)
		ev_timer_stop(c->loop, &p->timer);
}

/* ------------------------------------------------------- write queue */

static void wq_item_free(struct wq_item *it)
{
	for (int i = 0; i < it->nfds; i++)
		close(it->fds[i]);
	free(it->data);
	free(it);
}

static void wq_item_recycle(struct ipc_conn *c, struct wq_item *it)
{
	for (int i = 0; i < it->nfds; i++)
		close(it->fds[i]);
	it->nfds = 0;
	if (c->nspare >= SPARE_MAX || it->cap > SPARE_SIZE) {
		wq_item_free(it);
		return;
	}
	it->next = c->spare;
	c->spare = it;
	c->nspare++;
}

/* A spare item, preferably with room for len bytes, or a new one. */
static struct wq_item *wq_item_get(struct ipc_conn *c, size_t len)
{
	struct wq_item *it, **pp;

	for (pp = &c->spare; *pp; pp = &(*pp)->next) {
		/* A small message in a big spare would hold (and count)
		 * the whole spare. */
		if (len <= SMALL_COPY && (*pp)->cap > SMALL_COPY)
			continue;
		if ((*pp)->cap >= len || !(*pp)->next) {
			it = *pp;
			*pp = it->next;
			c->nspare--;
			return it;
		}
	}
	return calloc(1, sizeof(*it));
}

static void wq_done(struct ipc_conn *c, struct wq_item *it)
{
	c->queued -= it->cost;
	c->nqueued--;
	wq_item_recycle(c, it);
}

static void queue_check_low(struct ipc_conn *c)
{
	if (c->above && c->queued < c->o.wq_low) {
		c->above = false;
		if (c->o.on_queue)
			c->o.on_queue(c, false, c->o.arg);
	}
}

/* Account n bytes written from the head of the queue. */
static void wq_consume(struct ipc_conn *c, size_t n)
{
	while (n > 0 && c->wq_head) {
		struct wq_item *it = c->wq_head;
		size_t take = it->len - it->off;

		if (take > n)
			take = n;
		it->off += take;
		n -= take;
		/* The descriptors went with the first byte. */
		for (int i = 0; i < it->nfds; i++)
			close(it->fds[i]);
		it->nfds = 0;
		if (it->off == it->len) {
			c->wq_head = it->next;
			if (!c->wq_head)
				c->wq_tail = NULL;
			wq_done(c, it);
		}
	}
}

static ssize_t write_iov(struct ipc_conn *c, struct iovec *iov, int n)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };

	if (c->is_sock)
		return sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	return writev(c->fd, iov, n);
}

/* Write as much of the queue as the socket takes; -1 with errno. */
static int wq_write(struct ipc_conn *c)
{
	while (c->wq_head) {
		struct wq_item *it = c->wq_head;
		ssize_t n;

		if (it->nfds > 0) {
			n = ipc_send_fds(c->fd, it->data + it->off,
					 it->len - it->off, it->fds, it->nfds);
		} else {
			/* Coalesce a run of frames without descriptors. */
			struct iovec iov[WRITE_IOV];
			int k = 0;

			for (struct wq_item *q = it; q && k < WRITE_IOV &&
			     (q == it || q->nfds == 0); q = q->next) {
				iov[k].iov_base = q->data + q->off;
				iov[k].iov_len = q->len - q->off;
				k++;
			}
			n = write_iov(c, iov, k);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		wq_consume(c, (size_t)n);
	}
	return 0;
}

static void conn_flush(struct ipc_conn *c)
{
	if (c->closed || c->connecting)
		return;
	if (c->werr || wq_write(c) < 0) {
		struct husk_err *e = NULL;

		if (!c->werr)
			c->werr = errno;
		husk_error_sys(&e, c->werr, "write to peer %s", peer_name(c));
		if (c->werr == EPIPE || c->werr == ECONNRESET)
			ipc_conn_close(c, NULL);
		else
			ipc_conn_close(c, e);
		husk_err_free(e);
		return;
	}
	if (c->wq_head) {
		ev_io_start(c->loop, &c->wio);
	} else {
		ev_io_stop(c->loop, &c->wio);
		if (c->flushing) {
			ipc_conn_close(c, c->flush_why);
			return;
		}
	}
	queue_check_low(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;

	ipc_conn_ref(c);
	conn_flush(c);
	ipc_conn_unref(c);
}

/*
 * Queue the unsent data[0..len).  With from_out, data lies in c->out:
 * rather than copy it, the item takes c->out's buffer and c->out gets
 * the item's old one.
 */
static struct wq_item *wq_item_new(struct ipc_conn *c, const char *data,
				   size_t len, const int *fds, int nfds,
				   bool from_out)
{
	struct wq_item *it = wq_item_get(c, len);

	if (!it)
		return NULL;
	it->next = NULL;
	it->len = len;
	it->off = 0;
	it->nfds = 0;
	/* A small message would keep c->out's whole buffer (8 KiB or more):
	 * copy it instead. */
	if (from_out && len > SMALL_COPY) {
		msgpack_sbuffer *sb = &c->out.sb;
		char *old = it->data;
		size_t oldcap = it->cap;

		it->data = sb->data;
		it->cap = sb->alloc;
		it->off = (size_t)(data - sb->data);
		it->len = sb->size;
		sb->data = old;
		sb->alloc = old ? oldcap : 0;
		sb->size = 0;
	} else {
		if (it->cap < len) {
			char *d = realloc(it->data, len);

			if (!d) {
				wq_item_free(it);
				return NULL;
			}
			it->data = d;
			it->cap = len;
		}
		memcpy(it->data, data, len);
	}
	/* The caller keeps its descriptors; the queue owns copies. */
	for (int i = 0; i < nfds; i++) {
		int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (d < 0) {
			wq_item_recycle(c, it);
			return NULL;
		}
		it->fds[it->nfds++] = d;
	}
	return it;
}

/*
 * Send a framed message: straight to the socket when nothing is queued
 * (the common case allocates nothing), the rest into the queue.  Write
 * errors are reported by closing from the write watcher, never from
 * here, so that callers are not surprised by on_close.
 */
static int conn_queue(struct ipc_conn *c, const char *data, size_t len,
		      const int *fds, int nfds, bool from_out)
{
	struct wq_item *it;

	if (c->closed || c->flushing || c->werr || nfds < 0 ||
	    nfds > IPC_MAX_FDS || len == 0)
		return -1;
	if (!c->wq_head && !c->connecting) {
		ssize_t n;

		do {
			if (nfds > 0)
				n = ipc_send_fds(c->fd, data, len, fds, nfds);
			else if (c->is_sock)
				n = send(c->fd, data, len, MSG_NOSIGNAL);
			else
				n = write(c->fd, data, len);
		} while (n < 0 && errno == EINTR);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			c->werr = errno;
			ev_io_start(c->loop, &c->wio);
			ev_feed_event(c->loop, &c->wio, EV_WRITE);
			return -1;
		}
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			nfds = 0;
		}
	}
	it = wq_item_new(c, data, len, fds, nfds, from_out);
	if (!it)
		return -1;
	if (c->wq_tail)
		c->wq_tail->next = it;
	else
		c->wq_head = it;
	c->wq_tail = it;
	it->cost = it->cap + IPC_WQ_ITEM_COST;
	c->queued += it->cost;
	c->nqueued++;
	if (!c->connecting)
		ev_io_start(c->loop, &c->wio);
	if (!c->above && c->queued > c->o.wq_high) {
		c->above = true;
		if (c->o.on_queue)
			c->o.on_queue(c, true, c->o.arg);
	}
	return 0;
}

int ipc_conn_send_frame(struct ipc_conn *c, const char *data, size_t len,
			const int *fds, int nfds)
{
	return conn_queue(c, data, len, fds, nfds, false);
}

static int send_out(struct ipc_conn *c, const int *fds, int nfds)
{
	struct husk_err *e = NULL;

	if (ipc_buf_finish(&c->out, c->o.max_frame_send, &e) < 0) {
		log_warnx("%s", e->msg);
		husk_err_free(e);
		return -1;
	}
	return conn_queue(c, c->out.sb.data, c->out.sb.size, fds, nfds, true);
}

/* ------------------------------------------------------------ replies */

msgpack_packer *ipc_reply_begin(struct ipc_conn *c, uint32_t msgid)
{
	ipc_buf_reset(&c->out);
	c->out_msgid = msgid;
	return ipc_pack_response(&c->out, msgid);
}

int ipc_reply_send(struct ipc_conn *c)
{
	struct husk_err *e = NULL;

	if (ipc_buf_finish(&c->out, c->o.max_frame_send, &e) < 0) {
		/* Tell the caller rather than leave it waiting. */
		int r = ipc_reply_err(c, c->out_msgid, e);

		husk_err_free(e);
		(void)r;
		return -1;
	}
	return conn_queue(c, c->out.sb.data, c->out.sb.size, NULL, 0, true);
}

int ipc_reply_error(struct ipc_conn *c, uint32_t msgid, int code,
		    const char *fmt, ...)
{
	char msg[IPC_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ipc_buf_reset(&c->out);
	ipc_pack_error(&c->out, msgid, code, msg);
	return send_out(c, NULL, 0);
}

int ipc_reply_err(struct ipc_conn *c, uint32_t msgid,
		  const struct husk_err *e)
{
	return ipc_reply_error(c, msgid, e ? e->code : HUSK_E_INTERNAL, "%s",
			       e && e->msg ? e->msg : "error");
}

int ipc_reply_ok(struct ipc_conn *c, uint32_t msgid)
{
	msgpack_pack_map(ipc_reply_begin(c, msgid), 0);
	return ipc_reply_send(c);
}

/* -------------------------------------------------------------- calls */

msgpack_packer *ipc_call_begin(struct ipc_conn *c, const char *method)
{
	ipc_buf_reset(&c->out);
	c->out_msgid = next_msgid(c);
	snprintf(c->out_method, sizeof(c->out_method), "%s", method);
	return ipc_pack_request(&c->out, c->out_msgid, method);
}

static void call_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = w->data;
	struct ipc_conn *c = p->c;
	struct husk_err *e = NULL;

	pending_unlink(c, p);
	recent_add(c, p->msgid);
	husk_error(&e, HUSK_E_TIMEOUT, "call '%s' to %s timed out after %gs",
		   p->method, peer_name(c), p->timeout);
	ipc_conn_ref(c);
	p->cb(c, NULL, e, p->arg);
	ipc_conn_unref(c);
	husk_err_free(e);
	free(p);
}

int ipc_call_send(struct ipc_conn *c, double timeout, const int *fds,
		  int nfds, ipc_result_cb cb, void *arg, uint32_t *msgid)
{
	struct pending *p;

	if (c->closed || !cb)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	if (send_out(c, fds, nfds) < 0) {
		free(p);
		return -1;
	}
	p->c = c;
	p->msgid = c->out_msgid;
	p->cb = cb;
	p->arg = arg;
	memcpy(p->method, c->out_method, sizeof(p->method));
	if (timeout > 0) {
		ev_timer_init(&p->timer, call_timeout_cb, timeout, 0.);
		p->timer.data = p;
		p->timed = true;
		p->timeout = timeout;
		ev_timer_start(c->loop, &p->timer);
	}
	p->next = c->pending;
	if (p->next)
		p->next->prev = p;
	c->pending = p;
	if (msgid)
		*msgid = p->msgid;
	return 0;
}

void ipc_call_cancel(struct ipc_conn *c, uint32_t msgid)
{
	struct pending *p = pending_find(c, msgid);

	if (!p)
		return;
	pending_unlink(c, p);
	recent_add(c, msgid);
	free(p);
}

msgpack_packer *ipc_notify_begin(struct ipc_conn *c, const char *method)
{
	ipc_buf_reset(&c->out);
	return ipc_pack_notify(&c->out, method);
}

int ipc_notify_send(struct ipc_conn *c)
{
	return send_out(c, NULL, 0);
}

/* ------------------------------------------------------------- hello */

static void hello_ready(struct ipc_conn *c, const char *peer)
{
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->ready = true;
	ev_timer_stop(c->loop, &c->hello_timer);
	if (c->o.on_ready)
		c->o.on_ready(c, c->o.arg);
}

/*
 * Both ends check the other's hello (params or result): the version,
 * then the component when one is expected.
 */
int ipc_hello_parse(const msgpack_object *map, const char *self,
		    const char *expect, char peer[IPC_COMPONENT_MAX + 1],
		    struct husk_err **err)
{
	const msgpack_object *v = map ? ipc_map_get(map, "version") : NULL;
	const msgpack_object *n = map ? ipc_map_get(map, "component") : NULL;
	cleanup_free char *name = NULL;
	uint64_t version;

	if (!v || !n)
		return husk_error(err, HUSK_E_INVALID,
				  "hello needs version and component");
	if (ipc_obj_uint(v, "params.version", UINT32_MAX, &version, err) < 0 ||
	    ipc_obj_name(n, "params.component", IPC_COMPONENT_MAX, &name,
			err) < 0)
		return -1;
	if (version != IPC_PROTOCOL_VERSION)
		return husk_error(err, HUSK_E_VERSION,
				  "protocol version mismatch: %s speaks "
				  "version %llu, %s speaks version %d", name,
				  (unsigned long long)version, self,
				  IPC_PROTOCOL_VERSION);
	if (expect && expect[0] && strcmp(expect, name) != 0)
		return husk_error(err, HUSK_E_PERMISSION,
				  "%s expects to talk to %s, not to %s",
				  self, expect, name);
	snprintf(peer, IPC_COMPONENT_MAX + 1, "%s", name);
	return 0;
}

static void close_after_flush_why(struct ipc_conn *c,
				  const struct husk_err *why);

static void server_hello(struct ipc_conn *c, struct ipc_msg *m)
{
	cleanup_err struct husk_err *e = NULL;
	char peer[IPC_COMPONENT_MAX + 1];
	msgpack_packer *pk;

	if (ipc_hello_parse(m->params, c->component, c->expect, peer,
			    &e) < 0) {
		log_warnx("peer pid %d: %s", (int)c->peer_pid,
			  e->msg);
		ipc_reply_err(c, m->msgid, e);
		close_after_flush_why(c, e);
		return;
	}
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", c->component);
	if (ipc_reply_send(c) < 0)
		return;
	hello_ready(c, peer);
}

static void hello_done(struct ipc_conn *c, struct ipc_msg *resp,
		       const struct husk_err *err, void *arg)
{
	cleanup_err struct husk_err *e = NULL;
	char peer[IPC_COMPONENT_MAX + 1];

	if (c->closed)
		return;
	if (err) {
		log_warnx("%s refused us: %s", c->path ?
			  c->path : "peer", err->msg);
		ipc_conn_close(c, err);
		return;
	}
	if (ipc_hello_parse(resp->result, c->component, c->expect, peer,
			    &e) < 0) {
		conn_violation(c, e);
		return;
	}
	hello_ready(c, peer);
}

static void send_hello(struct ipc_conn *c)
{
	msgpack_packer *pk = ipc_call_begin(c, "hello");

	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", c->component);
	ipc_call_send(c, 0, NULL, 0, hello_done, NULL, NULL);
}

static void hello_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_conn *c = w->data;
	cleanup_err struct husk_err *e = NULL;

	if (c->flushing) {
		ipc_conn_close(c, c->flush_why);
		return;
	}
	if (c->connecting)
		husk_error(&e, HUSK_E_TIMEOUT, "connect to `%s` timed out",
			   c->path);
	else
		husk_error(&e, HUSK_E_TIMEOUT, "no hello within %gs",
			   c->hello_timer.repeat);
	log_warnx("pid %d: %s", (int)c->peer_pid, e->msg);
	ipc_conn_close(c, e);
}

/* ---------------------------------------------------------- dispatch */

static void handle_response(struct ipc_conn *c, struct ipc_msg *m)
{
	struct pending *p = pending_find(c, m->msgid);
	cleanup_err struct husk_err *e = NULL;

	if (!p) {
		if (recent_has(c, m->msgid)) {
			log_debug("late answer to %u dropped",
				  m->msgid);
			return;
		}
		husk_error(&e, HUSK_E_PROTOCOL,
			   "response to unknown msgid %u", m->msgid);
		if (c->o.trusted)
			log_warnx("bug: peer %s: %s",
				  peer_name(c), e->msg);
		else
			conn_violation(c, e);
		return;
	}
	pending_unlink(c, p);
	if (m->error)
		ipc_error_decode(m->error, &e);
	p->cb(c, m, e, p->arg);
	free(p);
}

static const struct ipc_method *method_find(const struct ipc_conn *c,
					    const char *name, size_t *idx)
{
	const struct ipc_method *any = NULL;
	size_t any_i = 0;

	if (!c->o.methods)
		return NULL;
	for (size_t i = 0; c->o.methods[i].name; i++) {
		const struct ipc_method *me = &c->o.methods[i];

		if (strcmp(me->name, name) == 0) {
			*idx = i;
			return me;
		}
		if (!any && strcmp(me->name, "*") == 0) {
			any = me;
			any_i = i;
		}
	}
	*idx = any_i;
	return any;
}

/* Refuse m: an error reply for a request, a log line for a notification. */
static void refuse(struct ipc_conn *c, struct ipc_msg *m, int code,
		   const char *why)
{
	if (m->type == IPC_REQUEST)
		ipc_reply_error(c, m->msgid, code, "%s", why);
	else
		log_warnx("peer %s: notification dropped: %s",
			  peer_name(c), why);
}

static void dispatch_before_hello(struct ipc_conn *c, struct ipc_msg *m)
{
	cleanup_err struct husk_err *e = NULL;

	if (c->o.role == IPC_ROLE_SERVER && m->type == IPC_REQUEST &&
	    strcmp(m->method, "hello") == 0) {
		server_hello(c, m);
		return;
	}
	husk_error(&e, HUSK_E_NO_HELLO, "'%s' before the hello", m->method);
	log_warnx("peer pid %d: %s; disconnecting",
		  (int)c->peer_pid, e->msg);
	if (m->type == IPC_REQUEST)
		ipc_reply_err(c, m->msgid, e);
	close_after_flush_why(c, e);
}

static void dispatch(struct ipc_conn *c, struct ipc_msg *m)
{
	const struct ipc_method *me;
	char why[IPC_METHOD_MAX + 64];
	size_t idx = 0;

	if (m->type == IPC_RESPONSE) {
		handle_response(c, m);
		return;
	}
	if (!c->ready) {
		dispatch_before_hello(c, m);
		return;
	}
	if (strcmp(m->method, "hello") == 0) {
		if (c->o.rehello && c->o.role == IPC_ROLE_SERVER &&
		    m->type == IPC_REQUEST) {
			log_info("peer %s says hello again: "
				 "a new peer on the same channel",
				 peer_name(c));
			server_hello(c, m);
			return;
		}
		refuse(c, m, HUSK_E_STATE, "hello already done");
		return;
	}
	me = method_find(c, m->method, &idx);
	if (!me) {
		if (m->type == IPC_REQUEST)
			ipc_reply_error(c, m->msgid, HUSK_E_UNKNOWN_METHOD,
					"unknown method '%s'", m->method);
		else
			log_debug("peer %s: unknown "
				  "notification '%s' dropped", peer_name(c),
				  m->method);
		return;
	}
	if (!(me->flags & (m->type == IPC_REQUEST ? IPC_M_REQUEST :
			   IPC_M_NOTIFY))) {
		snprintf(why, sizeof(why), "'%s' is not allowed as a %s",
			 m->method, m->type == IPC_REQUEST ? "request" :
			 "notification");
		refuse(c, m, HUSK_E_PROTOCOL, why);
		return;
	}
	if (me->flags & IPC_M_ONCE) {
		if (c->once_used[idx]) {
			snprintf(why, sizeof(why), "'%s' may be sent only once",
				 m->method);
			refuse(c, m, HUSK_E_STATE, why);
			return;
		}
		c->once_used[idx] = 1;
	}
	me->fn(c, m, c->o.arg);
}

/* ------------------------------------------------------------- input */

static int frame_cb(void *arg, const char *data, uint32_t len)
{
	struct ipc_conn *c = arg;
	struct husk_err *e = NULL;
	struct ipc_msg m;

	if (ipc_msg_parse(&m, data, len, &e) < 0) {
		conn_violation(c, e);
		husk_err_free(e);
		return -1;
	}
	m.nfds = 0;
	if (c->rx_nfds > 0) {
		if (c->rx_skip > 0) {
			c->rx_skip--;
		} else {
			memcpy(m.fds, c->rx_fds, sizeof(int) * c->rx_nfds);
			m.nfds = c->rx_nfds;
			c->rx_nfds = 0;
		}
	}
	dispatch(c, &m);
	ipc_msg_free(&m);
	return c->closed || c->flushing ? -1 : 0;
}

static void conn_eof(struct ipc_conn *c)
{
	cleanup_err struct husk_err *e = NULL;

	if (ipc_framer_partial(&c->fr)) {
		husk_error(&e, HUSK_E_PROTOCOL,
			   "connection closed in the middle of a frame");
		conn_violation(c, e);
		return;
	}
	ipc_conn_close(c, NULL);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;
	char buf[READ_CHUNK];

	ipc_conn_ref(c);
	for (int i = 0; i < READS_PER_WAKEUP; i++) {
		cleanup_err struct husk_err *e = NULL;
		bool trunc = false;
		int had = c->rx_nfds;
		ssize_t n;

		if (c->closed || c->paused || c->flushing)
			break;
		if (c->is_sock)
			n = ipc_recv_fds(c->fd, buf, sizeof(buf), c->rx_fds,
					 &c->rx_nfds, IPC_MAX_FDS, &trunc);
		else
			n = read(c->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ECONNRESET) {
				ipc_conn_close(c, NULL);
				break;
			}
			husk_error_sys(&e, errno, "read from peer %s",
				       peer_name(c));
			ipc_conn_close(c, e);
			break;
		}
		if (trunc)
			log_warnx("peer %s sent more than %d "
				  "descriptors; extra ones closed",
				  peer_name(c), IPC_MAX_FDS);
		if (n == 0) {
			conn_eof(c);
			break;
		}
		if (had == 0 && c->rx_nfds > 0)
			c->rx_skip = ipc_fds_skip(&c->fr, buf, (size_t)n);
		if (ipc_framer_feed(&c->fr, buf, (size_t)n, frame_cb, c,
				    &e) < 0) {
			if (!c->closed && !c->flushing)
				conn_violation(c, e);
			break;
		}
		if ((size_t)n < sizeof(buf))
			break;
	}
	ipc_conn_unref(c);
}

/*
 * Which frame do descriptors received with data[0..n) belong to?  The
 * sender passes them with the first byte of one frame, and Linux ends
 * a recvmsg right after the segment that carried descriptors, so they
 * belong to the last frame that begins in this chunk.  Returns how many
 * frames complete before that one.
 */
int ipc_fds_skip(const struct ipc_framer *f, const char *data, size_t n)
{
	const unsigned char *d = (const unsigned char *)data;
	int partial = 0, starts = 0;
	size_t pos = 0;

	if (f->hdr_have > 0) {
		uint8_t h[IPC_FRAME_HDR];
		unsigned hh = f->hdr_have;
		size_t rest;

		partial = 1;
		if (hh < IPC_FRAME_HDR) {
			size_t take = IPC_FRAME_HDR - hh;

			if (take > n)
				return partial;
			memcpy(h, f->hdr, hh);
			memcpy(h + hh, d, take);
			pos = take;
			rest = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
			       (size_t)h[2] << 8 | h[3];
		} else {
			rest = f->len - f->have;
		}
		pos += rest;
	}
	while (pos < n) {
		starts++;
		if (n - pos < IPC_FRAME_HDR)
			break;
		pos += IPC_FRAME_HDR + ((size_t)d[pos] << 24 |
			(size_t)d[pos + 1] << 16 | (size_t)d[pos + 2] << 8 |
			d[pos + 3]);
	}
	return partial + (starts > 1 ? starts - 1 : 0);
}

/* ------------------------------------------------------- life cycle */

static struct ipc_conn *conn_alloc(struct ev_loop *loop,
				   const struct ipc_conn_opts *o,
				   struct husk_err **err)
{
	struct ipc_conn *c;
	size_t nm = 0;

	if (!o || !o->component || strlen(o->component) > IPC_COMPONENT_MAX) {
		husk_error(err, HUSK_E_INVALID,
			   "ipc_conn: a component name of 1..%d bytes is "
			   "needed", IPC_COMPONENT_MAX);
		return NULL;
	}
	c = husk_xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = -1;
	c->o = *o;
	c->refs = 1;
	c->next_id = 1;
	c->peer_pid = -1;
	c->peer_uid = (uid_t)-1;
	snprintf(c->component, sizeof(c->component), "%s", o->component);
	if (o->expect_peer)
		snprintf(c->expect, sizeof(c->expect), "%s", o->expect_peer);
	c->o.component = c->component;
	c->o.expect_peer = o->expect_peer ? c->expect : NULL;
	if (!c->o.max_frame)
		c->o.max_frame = IPC_FRAME_MAX_DEFAULT;
	if (!c->o.max_frame_send)
		c->o.max_frame_send = c->o.max_frame;
	if (c->o.hello_timeout <= 0)
		c->o.hello_timeout = HELLO_TIMEOUT_DEFAULT;
	if (!c->o.wq_high)
		c->o.wq_high = WQ_HIGH_DEFAULT;
	if (!c->o.wq_low || c->o.wq_low > c->o.wq_high)
		c->o.wq_low = c->o.wq_high < WQ_LOW_DEFAULT ?
			c->o.wq_high / 4 : WQ_LOW_DEFAULT;
	if (o->methods)
		while (o->methods[nm].name)
			nm++;
	c->once_used = husk_xcalloc(nm + 1, 1);
	ipc_framer_init(&c->fr, c->o.max_frame);
	ipc_buf_init(&c->out);
	ev_io_init(&c->rio, read_cb, -1, EV_READ);
	ev_io_init(&c->wio, write_cb, -1, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_timer_init(&c->hello_timer, hello_timer_cb, 0., c->o.hello_timeout);
	c->hello_timer.data = c;
	ev_timer_init(&c->retry_timer, retry_cb, CONNECT_RETRY, CONNECT_RETRY);
	c->retry_timer.data = c;
	return c;
}

static void conn_free(struct ipc_conn *c)
{
	while (c->spare) {
		struct wq_item *it = c->spare;

		c->spare = it->next;
		wq_item_free(it);
	}
	ipc_framer_free(&c->fr);
	ipc_buf_destroy(&c->out);
	husk_err_free(c->flush_why);
	free(c->once_used);
	free(c->path);
	free(c);
}

static int conn_attach_fd(struct ipc_conn *c, int fd, struct husk_err **err)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fstat(fd, &st) < 0)
		return husk_error_sys(err, errno, "ipc_conn: fd %d", fd);
	c->fd = fd;
	c->is_sock = S_ISSOCK(st.st_mode);
	if (c->is_sock) {
		uid_t uid;
		pid_t pid;

		if (ipc_peer_cred(fd, &pid, &uid, NULL, NULL) == 0) {
			c->peer_pid = pid;
			c->peer_uid = uid;
		}
	}
	ev_io_set(&c->rio, fd, EV_READ);
	ev_io_set(&c->wio, fd, EV_WRITE);
	if (!c->paused)
		ev_io_start(c->loop, &c->rio);
	return 0;
}

struct ipc_conn *ipc_conn_new(struct ev_loop *loop, int fd,
			      const struct ipc_conn_opts *o,
			      struct husk_err **err)
{
	struct ipc_conn *c = conn_alloc(loop, o, err);

	if (!c || conn_attach_fd(c, fd, err) < 0) {
		close(fd);
		if (c)
			conn_free(c);
		return NULL;
	}
	ev_timer_again(loop, &c->hello_timer);
	if (c->o.role == IPC_ROLE_CLIENT)
		send_hello(c);
	return c;
}

/* 1 connected, 0 not yet (server not there), -1 failed. */
static int try_connect(struct ipc_conn *c, struct husk_err **err)
{
	cleanup_close int fd = -1;
	struct sockaddr_un sa;

	if (ipc_sockaddr(&sa, c->path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == EAGAIN || errno == EINTR)
			return 0;
		return husk_error_sys(err, errno, "connect `%s`", c->path);
	}
	if (conn_attach_fd(c, fd, err) < 0)
		return -1;
	fd = -1;
	c->connecting = false;
	return 1;
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_conn *c = w->data;
	cleanup_err struct husk_err *e = NULL;
	int r = try_connect(c, &e);

	if (r == 0)
		return;
	ev_timer_stop(loop, w);
	ipc_conn_ref(c);
	if (r < 0)
		ipc_conn_close(c, e);
	else
		conn_flush(c);
	ipc_conn_unref(c);
}

struct ipc_conn *ipc_conn_connect(struct ev_loop *loop, const char *path,
				  double timeout,
				  const struct ipc_conn_opts *o,
				  struct husk_err **err)
{
	struct ipc_conn *c = conn_alloc(loop, o, err);
	int r;

	if (!c)
		return NULL;
	c->o.role = IPC_ROLE_CLIENT;
	c->path = husk_xstrdup(path);
	c->connecting = true;
	send_hello(c);
	r = try_connect(c, err);
	if (r < 0) {
		/* Failing here is reported by the return, not by on_close. */
		c->o.on_close = NULL;
		ipc_conn_close(c, NULL);
		return NULL;
	}
	/* One deadline for connecting and the hello. */
	if (timeout > 0)
		c->hello_timer.repeat = timeout;
	ev_timer_again(loop, &c->hello_timer);
	if (r == 0) {
		ev_timer_start(loop, &c->retry_timer);
	} else {
		conn_flush(c);
	}
	return c;
}

void ipc_conn_close(struct ipc_conn *c, const struct husk_err *why)
{
	struct husk_err *gone = NULL;

	if (c->closed)
		return;
	c->closed = true;
	ipc_conn_ref(c);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->hello_timer);
	ev_timer_stop(c->loop, &c->retry_timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while (c->wq_head) {
		struct wq_item *it = c->wq_head;

		c->wq_head = it->next;
		wq_item_free(it);
	}
	c->wq_tail = NULL;
	c->queued = 0;
	c->nqueued = 0;
	for (int i = 0; i < c->rx_nfds; i++)
		close(c->rx_fds[i]);
	c->rx_nfds = 0;
	if (c->srv) {
		ipc_server_conn_gone(c->srv, c);
		c->srv = NULL;
	}
	husk_error(&gone, HUSK_E_UNAVAILABLE, "connection to %s closed%s%s",
		   peer_name(c), why && why->msg ? ": " : "",
		   why && why->msg ? why->msg : "");
	while (c->pending) {
		struct pending *p = c->pending;

		pending_unlink(c, p);
		p->cb(c, NULL, gone, p->arg);
		free(p);
	}
	husk_err_free(gone);
	if (c->o.on_close)
		c->o.on_close(c, why, c->o.arg);
	ipc_conn_unref(c);
	ipc_conn_unref(c);      /* the open connection's own reference */
}

static void close_after_flush_why(struct ipc_conn *c,
				  const struct husk_err *why)
{
	if (c->closed || c->flushing)
		return;
	c->flushing = true;
	c->flush_why = err_copy(why);
	ev_io_stop(c->loop, &c->rio);
	ev_timer_stop(c->loop, &c->retry_timer);
	if (!c->wq_head && !c->connecting) {
		ipc_conn_close(c, c->flush_why);
		return;
	}
	c->hello_timer.repeat = FLUSH_TIMEOUT;
	ev_timer_again(c->loop, &c->hello_timer);
}

void ipc_conn_close_after_flush(struct ipc_conn *c)
{
	close_after_flush_why(c, NULL);
}

void ipc_conn_ref(struct ipc_conn *c)
{
	c->refs++;
}

void ipc_conn_unref(struct ipc_conn *c)
{
	if (--c->refs > 0)
		return;
	if (!c->closed)
		fatalx("last reference dropped on an open "
		       "connection");
	conn_free(c);
}

bool ipc_conn_closed(const struct ipc_conn *c)
{
	return c->closed;
}

void *ipc_conn_arg(const struct ipc_conn *c)
{
	return c->o.arg;
}

void ipc_conn_set_arg(struct ipc_conn *c, void *arg)
{
	c->o.arg = arg;
}

int ipc_conn_fd(const struct ipc_conn *c)
{
	return c->fd;
}

const char *ipc_conn_peer_component(const struct ipc_conn *c)
{
	return c->ready ? c->peer : NULL;
}

pid_t ipc_conn_peer_pid(const struct ipc_conn *c)
{
	return c->peer_pid;
}

uid_t ipc_conn_peer_uid(const struct ipc_conn *c)
{
	return c->peer_uid;
}

size_t ipc_conn_queued(const struct ipc_conn *c)
{
	return c->queued;
}

size_t ipc_conn_queued_msgs(const struct ipc_conn *c)
{
	return c->nqueued;
}

void ipc_conn_pause_read(struct ipc_conn *c, bool pause)
{
	c->paused = pause;
	if (c->closed || c->flushing || c->fd < 0)
		return;
	if (pause)
		ev_io_stop(c->loop, &c->rio);
	else
		ev_io_start(c->loop, &c->rio);
}

void ipc_conn_set_server(struct ipc_conn *c, struct ipc_server *s)
{
	c->srv = s;
}
