/*
 * ttrpc server: containerd's connections to the shim.  Each request is
 * decoded, matched in the method table and handed to its handler as a
 * call that the handler answers now or later, so one connection has
 * many calls in flight (Wait blocks while State, Kill... go on).
 *
 * A connection lives while its socket does; a call outlives it when
 * its handler answers late, and that answer is then dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/ttrpc.h"
#include "shimv2/ttrpc-int.h"

struct ttrpc_server {
	struct ev_loop *loop;
	const struct ttrpc_method *methods;
	size_t nmethods;
	void *arg;
	int listen_fd;
	ev_io accept_w;
	struct ttrpc_conn *conns;
	size_t nconns;
	void (*on_close)(struct ttrpc_server *, void *);
	void *on_close_arg;
};

struct ttrpc_conn {
	struct ttrpc_server *srv;
	struct ttrpc_conn *next, *prev;
	int fd;
	ev_io rio, wio;
	struct ttrpc_reader rd;
	struct ttrpc_wq wq;
	struct ttrpc_call *calls;	/* in flight */
	size_t ncalls;
	uint32_t last_stream;
	int refs;
	bool closed;
	/* Bytes read but not fed: reading paused after a frame because
	 * the answers queued passed TTRPC_WQ_SOFT. */
	uint8_t *rest;
	size_t rest_off, rest_len;
};

struct ttrpc_call {
	struct ttrpc_conn *conn;	/* NULL once the connection went */
	struct ttrpc_call *next, *prev;
	uint32_t stream;
	Ttrpc__Request *req;
	ProtobufCMessage *msg;
	void (*on_orphan)(struct ttrpc_call *, void *);
	void *on_orphan_arg;
};

static void conn_close(struct ttrpc_conn *c);

static void conn_unref(struct ttrpc_conn *c)
{
	if (--c->refs > 0)
		return;
	ttrpc_reader_free(&c->rd);
	ttrpc_wq_free(&c->wq);
	free(c->rest);
	free(c);
}

static void conn_flush(struct ttrpc_conn *c)
{
	cleanup_err struct husk_err *err = NULL;
	struct ev_loop *loop = c->srv->loop;

	if (ttrpc_wq_flush(&c->wq, c->fd, &err) < 0) {
		log_debug("ttrpc: %s", err->msg);
		conn_close(c);
		return;
	}
	if (c->wq.head)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
	/* A peer that sends requests without reading the answers is
	 * slowed down, not buffered without end. */
	if (c->wq.bytes > TTRPC_WQ_SOFT || c->rest)
		ev_io_stop(loop, &c->rio);
	else
		ev_io_start(loop, &c->rio);
}

static void conn_send(struct ttrpc_conn *c, uint32_t stream, int code,
		      const char *msg, const void *payload, size_t n)
{
	cleanup_err struct husk_err *err = NULL;
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	Gpb__RpcStatus st = GPB__RPC_STATUS__INIT;

	if (c->closed)
		return;
	st.code = code;
	st.message = (char *)(msg ? msg : "");
	resp.status = &st;
	resp.payload.data = (uint8_t *)payload;
	resp.payload.len = n;
	if (ttrpc_wq_push(&c->wq, stream, TTRPC_TYPE_RESPONSE, &resp.base,
			  &err) < 0) {
		if (err->code != HUSK_E_TOO_LARGE) {
			log_warnx("ttrpc: stream %u: %s", stream, err->msg);
			conn_close(c);
			return;
		}
		husk_err_clear(&err);
		st.code = TTRPC_RESOURCE_EXHAUSTED;
		st.message = "response over the 4 MiB ttrpc limit";
		resp.payload.len = 0;
		if (ttrpc_wq_push(&c->wq, stream, TTRPC_TYPE_RESPONSE,
				  &resp.base, &err) < 0) {
			log_warnx("ttrpc: stream %u: %s", stream, err->msg);
			conn_close(c);
			return;
		}
	}
	if (c->wq.bytes > TTRPC_WQ_MAX) {
		log_warnx("ttrpc: peer leaves over %u bytes of answers "
			  "unread: closing its connection", TTRPC_WQ_MAX);
		conn_close(c);
		return;
	}
	conn_flush(c);
}

/* ------------------------------------------------------------- calls */

static void call_unlink(struct ttrpc_call *call)
{
	struct ttrpc_conn *c = call->conn;

	if (!c)
		return;
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->ncalls--;
	call->conn = NULL;
	call->next = call->prev = NULL;
	conn_unref(c);
}

static void call_free(struct ttrpc_call *call)
{
	call_unlink(call);
	if (call->msg)
		protobuf_c_message_free_unpacked(call->msg, NULL);
	if (call->req)
		ttrpc__request__free_unpacked(call->req, NULL);
	free(call);
}

static void call_answer(struct ttrpc_call *call, int code, const char *msg,
			const void *payload, size_t n)
{
	struct ttrpc_conn *c = call->conn;

	/* Out of the connection's list first: a write failure closes the
	 * connection, which must not report this call as orphaned. */
	if (c) {
		c->refs++;
		call_unlink(call);
		conn_send(c, call->stream, code, msg, payload, n);
		conn_unref(c);
	} else {
		log_debug("ttrpc: answer to stream %u dropped: its "
			  "connection has gone", call->stream);
	}
	call_free(call);
}

void ttrpc_reply_bytes(struct ttrpc_call *call, const void *p, size_t n)
{
	call_answer(call, TTRPC_OK, NULL, p, n);
}

void ttrpc_reply(struct ttrpc_call *call, const ProtobufCMessage *resp)
{
	cleanup_err struct husk_err *err = NULL;
	cleanup_free uint8_t *buf = NULL;
	size_t n;

	if (ttrpc_pack(resp, &buf, &n, &err) < 0) {
		call_answer(call, err->code == HUSK_E_TOO_LARGE ?
			    TTRPC_RESOURCE_EXHAUSTED : TTRPC_INTERNAL,
			    err->msg, NULL, 0);
		return;
	}
	call_answer(call, TTRPC_OK, NULL, buf, n);
}

void ttrpc_reply_status(struct ttrpc_call *call, int code,
			const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	/* A status of OK with a message would read as success. */
	if (code == TTRPC_OK)
		code = TTRPC_UNKNOWN;
	call_answer(call, code, msg ? msg : "out of memory", NULL, 0);
}

void ttrpc_reply_err(struct ttrpc_call *call, const struct husk_err *err)
{
	int code = err ? ttrpc_code_from_husk(err->code) : TTRPC_UNKNOWN;

	if (code == TTRPC_OK)
		code = TTRPC_UNKNOWN;
	call_answer(call, code, err && err->msg ? err->msg : "error",
		    NULL, 0);
}

void ttrpc_call_drop(struct ttrpc_call *call)
{
	call_free(call);
}

const char *ttrpc_call_service(const struct ttrpc_call *call)
{
	return call->req->service;
}

const char *ttrpc_call_method(const struct ttrpc_call *call)
{
	return call->req->method;
}

uint32_t ttrpc_call_stream(const struct ttrpc_call *call)
{
	return call->stream;
}

const uint8_t *ttrpc_call_payload(const struct ttrpc_call *call, size_t *len)
{
	*len = call->req->payload.len;
	return call->req->payload.data;
}

const char *ttrpc_call_meta(const struct ttrpc_call *call, const char *key)
{
	for (size_t i = 0; i < call->req->n_metadata; i++) {
		const Ttrpc__KeyValue *kv = call->req->metadata[i];

		if (kv && kv->key && strcmp(kv->key, key) == 0)
			return kv->value;
	}
	return NULL;
}

int64_t ttrpc_call_timeout_ns(const struct ttrpc_call *call)
{
	return call->req->timeout_nano;
}

bool ttrpc_call_orphaned(const struct ttrpc_call *call)
{
	return !call->conn || call->conn->closed;
}

void ttrpc_call_on_orphan(struct ttrpc_call *call,
			  void (*cb)(struct ttrpc_call *, void *), void *arg)
{
	call->on_orphan = cb;
	call->on_orphan_arg = arg;
}

/* ---------------------------------------------------------- dispatch */

static const struct ttrpc_method *find_method(const struct ttrpc_server *s,
					      const Ttrpc__Request *req,
					      bool *service_known)
{
	*service_known = false;
	for (size_t i = 0; i < s->nmethods; i++) {
		if (strcmp(s->methods[i].service, req->service) != 0)
			continue;
		*service_known = true;
		if (strcmp(s->methods[i].method, req->method) == 0)
			return &s->methods[i];
	}
	return NULL;
}

static void dispatch(struct ttrpc_conn *c, uint32_t stream,
		     const uint8_t *p, size_t n)
{
	cleanup_err struct husk_err *err = NULL;
	const struct ttrpc_method *m;
	struct ttrpc_call *call;
	Ttrpc__Request *req;
	bool known;

	if (ttrpc_request_decode(p, n, &req, &err) < 0) {
		conn_send(c, stream, TTRPC_INVALID_ARGUMENT, err->msg, NULL, 0);
		return;
	}
	m = find_method(c->srv, req, &known);
	if (!m) {
		char msg[2 * TTRPC_NAME_MAX + 64];

		if (known)
			snprintf(msg, sizeof(msg), "method %s/%s: not "
				 "implemented", req->service, req->method);
		else
			snprintf(msg, sizeof(msg), "service %s: not "
				 "implemented", req->service);
		ttrpc__request__free_unpacked(req, NULL);
		conn_send(c, stream, TTRPC_UNIMPLEMENTED, msg, NULL, 0);
		return;
	}
	if (c->ncalls >= TTRPC_MAX_INFLIGHT) {
		ttrpc__request__free_unpacked(req, NULL);
		conn_send(c, stream, TTRPC_RESOURCE_EXHAUSTED,
			  "too many calls in flight on this connection",
			  NULL, 0);
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		ttrpc__request__free_unpacked(req, NULL);
		conn_send(c, stream, TTRPC_RESOURCE_EXHAUSTED,
			  "out of memory", NULL, 0);
		return;
	}
	call->stream = stream;
	call->req = req;
	if (m->in && ttrpc_decode(m->in, req->payload.data, req->payload.len,
				  &call->msg, &err) < 0) {
		char msg[2 * TTRPC_NAME_MAX + 256];

		snprintf(msg, sizeof(msg), "%s/%s: %s", req->service,
			 req->method, err->msg);
		call_free(call);
		conn_send(c, stream, err->code == HUSK_E_TOO_LARGE ?
			  TTRPC_RESOURCE_EXHAUSTED : TTRPC_INVALID_ARGUMENT,
			  msg, NULL, 0);
		return;
	}
	call->conn = c;
	c->refs++;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;
	m->handler(call, call->msg, c->srv->arg);
}

static int on_frame(void *arg, const struct ttrpc_hdr *h,
		    const uint8_t *payload, struct husk_err **err)
{
	struct ttrpc_conn *c = arg;

	if (c->closed)
		return husk_error(err, HUSK_E_UNAVAILABLE, "closed");
	/* Only requests come to a server; ttrpc's later frame types
	 * (streams) are not used by containerd's shim API. */
	if (h->type != TTRPC_TYPE_REQUEST) {
		log_debug("ttrpc: frame of type %u on stream %u ignored",
			  h->type, h->stream);
		return 0;
	}
	if (h->stream % 2 != 1) {
		conn_send(c, h->stream, TTRPC_INVALID_ARGUMENT,
			  "StreamID must be odd for client initiated streams",
			  NULL, 0);
		return 0;
	}
	if (h->stream <= c->last_stream) {
		conn_send(c, h->stream, TTRPC_INVALID_ARGUMENT,
			  "StreamID cannot be re-used and must increment",
			  NULL, 0);
		return 0;
	}
	c->last_stream = h->stream;
	dispatch(c, h->stream, payload, h->len);
	/* Pause after this frame while the answers are not taken. */
	return !c->closed && c->wq.bytes > TTRPC_WQ_SOFT ? 1 : 0;
}

/* Feed bytes; keep what follows a pause in c->rest.  Called with a
 * reference held. */
static void conn_feed(struct ttrpc_conn *c, const uint8_t *p, size_t n)
{
	cleanup_err struct husk_err *err = NULL;
	size_t used;
	int rc;

	rc = ttrpc_reader_feed_some(&c->rd, p, n, on_frame, c, &used, &err);
	if (c->closed)
		return;
	if (rc < 0) {
		log_warnx("ttrpc: %s: closing the connection", err->msg);
		conn_close(c);
		return;
	}
	if (rc > 0 && used < n) {
		uint8_t *rest = malloc(n - used);

		if (!rest) {
			log_warnx("ttrpc: out of memory: closing the "
				  "connection");
			conn_close(c);
			return;
		}
		memcpy(rest, p + used, n - used);
		c->rest = rest;
		c->rest_off = 0;
		c->rest_len = n - used;
		ev_io_stop(c->srv->loop, &c->rio);
	}
}

/* The answers were taken: go on with the bytes held back. */
static void conn_resume(struct ttrpc_conn *c)
{
	uint8_t *rest = husk_steal_ptr(c->rest);
	size_t off = c->rest_off, len = c->rest_len;

	c->refs++;
	conn_feed(c, rest + off, len - off);
	free(rest);
	if (!c->closed && !c->rest && c->wq.bytes <= TTRPC_WQ_SOFT)
		ev_io_start(c->srv->loop, &c->rio);
	conn_unref(c);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_conn *c = w->data;
	uint8_t buf[65536];
	ssize_t n;

	n = read(c->fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_debug("ttrpc: read: %s", strerror(errno));
		conn_close(c);
		return;
	}
	if (n == 0) {
		if (ttrpc_reader_partial(&c->rd))
			log_warnx("ttrpc: connection closed inside a frame");
		conn_close(c);
		return;
	}
	c->refs++;
	conn_feed(c, buf, n);
	conn_unref(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_conn *c = w->data;

	conn_flush(c);
	if (!c->closed && c->rest && c->wq.bytes <= TTRPC_WQ_SOFT)
		conn_resume(c);
}

/* --------------------------------------------------------- lifecycle */

static void conn_close(struct ttrpc_conn *c)
{
	struct ttrpc_server *s = c->srv;

	if (c->closed)
		return;
	c->closed = true;
	ev_io_stop(s->loop, &c->rio);
	ev_io_stop(s->loop, &c->wio);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	/* Calls still in flight stay with their handlers; those who
	 * asked are told, and may answer (into nothing) or drop. */
	while (c->calls) {
		struct ttrpc_call *call = c->calls;
		void (*cb)(struct ttrpc_call *, void *) = call->on_orphan;

		call_unlink(call);
		call->on_orphan = NULL;
		if (cb)
			cb(call, call->on_orphan_arg);
	}
	if (s->on_close)
		s->on_close(s, s->on_close_arg);
	/* The server's own reference: the memory goes now, or when the
	 * read callback that closed it returns. */
	conn_unref(c);
}

struct ttrpc_conn *ttrpc_server_add_fd(struct ttrpc_server *s, int fd,
				       struct husk_err **err)
{
	struct ttrpc_conn *c;

	if (ttrpc_set_nonblock(fd, err) < 0) {
		close(fd);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		husk_error_sys(err, errno, "ttrpc connection");
		return NULL;
	}
	c->srv = s;
	c->fd = fd;
	c->refs = 1;
	ttrpc_reader_init(&c->rd);
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	ev_io_start(s->loop, &c->rio);
	return c;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_server *s = w->data;
	cleanup_err struct husk_err *err = NULL;
	int fd;

	fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("ttrpc: accept");
		return;
	}
	if (!ttrpc_server_add_fd(s, fd, &err))
		log_warnx("ttrpc: %s", err->msg);
}

struct ttrpc_server *ttrpc_server_new(struct ev_loop *loop,
				      const struct ttrpc_method *methods,
				      size_t n, void *arg)
{
	struct ttrpc_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = loop;
	s->methods = methods;
	s->nmethods = n;
	s->arg = arg;
	s->listen_fd = -1;
	return s;
}

int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd,
			   struct husk_err **err)
{
	if (s->listen_fd >= 0) {
		close(fd);
		return husk_error(err, HUSK_E_EXISTS,
				  "ttrpc server already listens");
	}
	if (ttrpc_set_nonblock(fd, err) < 0) {
		close(fd);
		return -1;
	}
	s->listen_fd = fd;
	ev_io_init(&s->accept_w, accept_cb, fd, EV_READ);
	s->accept_w.data = s;
	ev_io_start(s->loop, &s->accept_w);
	return 0;
}

size_t ttrpc_server_nconns(const struct ttrpc_server *s)
{
	return s->nconns;
}

void ttrpc_server_on_conn_close(struct ttrpc_server *s,
				void (*cb)(struct ttrpc_server *, void *),
				void *arg)
{
	s->on_close = cb;
	s->on_close_arg = arg;
}

void ttrpc_server_free(struct ttrpc_server *s)
{
	if (!s)
		return;
	s->on_close = NULL;
	if (s->listen_fd >= 0) {
		ev_io_stop(s->loop, &s->accept_w);
		close(s->listen_fd);
	}
	while (s->conns)
		conn_close(s->conns);
	free(s);
}
