/*
 * ttrpc client: the shim's calls to containerd (Events/Forward).  Calls
 * are written from the loop, never from ttrpc_client_call itself, so a
 * socket that fails ends calls from the loop too: a done callback never
 * runs inside the function that started the call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/ttrpc.h"
#include "shimv2/ttrpc-int.h"

struct pending {
	struct pending *next;
	uint32_t stream;
	ttrpc_done_cb done;
	void *arg;
};

struct ttrpc_client {
	struct ev_loop *loop;
	int fd;
	ev_io rio, wio;
	struct ttrpc_reader rd;
	struct ttrpc_wq wq;
	struct pending *pending;
	size_t npending;
	uint32_t next_stream;
	int refs;
	bool closed;
	char *why;	/* why it closed */
};

static void client_unref(struct ttrpc_client *c)
{
	if (--c->refs > 0)
		return;
	ttrpc_reader_free(&c->rd);
	ttrpc_wq_free(&c->wq);
	free(c->why);
	free(c);
}

/* Every pending call ends with Unavailable and why. */
static void client_close(struct ttrpc_client *c, const char *why)
{
	if (c->closed)
		return;
	c->closed = true;
	c->why = strdup(why);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	close(c->fd);
	c->fd = -1;
	ttrpc_wq_free(&c->wq);
	c->refs++;
	while (c->pending) {
		struct pending *p = c->pending;

		c->pending = p->next;
		c->npending--;
		p->done(p->arg, TTRPC_UNAVAILABLE, why, NULL, 0);
		free(p);
	}
	client_unref(c);
}

static struct pending *pending_take(struct ttrpc_client *c, uint32_t stream)
{
	for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;

		if (p->stream == stream) {
			*pp = p->next;
			c->npending--;
			return p;
		}
	}
	return NULL;
}

static int on_frame(void *arg, const struct ttrpc_hdr *h,
		    const uint8_t *payload, struct husk_err **err)
{
	struct ttrpc_client *c = arg;
	Ttrpc__Response *resp;
	struct pending *p;

	if (c->closed)
		return husk_error(err, HUSK_E_UNAVAILABLE, "closed");
	if (h->type != TTRPC_TYPE_RESPONSE) {
		log_debug("ttrpc client: frame of type %u on stream %u "
			  "ignored", h->type, h->stream);
		return 0;
	}
	if (ttrpc_response_decode(payload, h->len, &resp, err) < 0)
		return -1;
	p = pending_take(c, h->stream);
	if (!p) {
		log_debug("ttrpc client: answer on stream %u that no call "
			  "waits for", h->stream);
		ttrpc__response__free_unpacked(resp, NULL);
		return 0;
	}
	if (resp->status && resp->status->code != TTRPC_OK)
		p->done(p->arg, resp->status->code,
			resp->status->message ? resp->status->message : "",
			NULL, 0);
	else
		p->done(p->arg, TTRPC_OK, NULL, resp->payload.data,
			resp->payload.len);
	free(p);
	ttrpc__response__free_unpacked(resp, NULL);
	return 0;
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_client *c = w->data;
	cleanup_err struct husk_err *err = NULL;
	uint8_t buf[65536];
	ssize_t n;

	n = read(c->fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		husk_error_sys(&err, errno, "ttrpc client read");
		client_close(c, err->msg);
		return;
	}
	if (n == 0) {
		client_close(c, "connection closed by the server");
		return;
	}
	c->refs++;
	if (ttrpc_reader_feed(&c->rd, buf, n, on_frame, c, &err) < 0 &&
	    !c->closed) {
		log_warnx("ttrpc client: %s: closing the connection",
			  err->msg);
		client_close(c, err->msg);
	}
	client_unref(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_client *c = w->data;
	cleanup_err struct husk_err *err = NULL;

	if (ttrpc_wq_flush(&c->wq, c->fd, &err) < 0) {
		client_close(c, err->msg);
		return;
	}
	if (!c->wq.head)
		ev_io_stop(loop, &c->wio);
}

struct ttrpc_client *ttrpc_client_new(struct ev_loop *loop, int fd,
				      struct husk_err **err)
{
	struct ttrpc_client *c;

	if (ttrpc_set_nonblock(fd, err) < 0) {
		close(fd);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		husk_error_sys(err, errno, "ttrpc client");
		return NULL;
	}
	c->loop = loop;
	c->fd = fd;
	c->refs = 1;
	c->next_stream = 1;
	ttrpc_reader_init(&c->rd);
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_io_start(loop, &c->rio);
	return c;
}

struct ttrpc_client *ttrpc_client_connect(struct ev_loop *loop,
					  const char *path,
					  struct husk_err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strncmp(path, "unix://", 7) == 0)
		path += 7;
	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		husk_error(err, HUSK_E_INVALID, "ttrpc address `%s`: empty "
			   "or over %zu bytes", path, sizeof(sa.sun_path) - 1);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		husk_error_sys(err, errno, "socket");
		return NULL;
	}
	/* A unix connect completes at once or fails (EAGAIN: the
	 * server's backlog is full; the caller retries). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		husk_error_sys(err, errno, "connect `%s`", path);
		return NULL;
	}
	return ttrpc_client_new(loop, husk_steal_fd(fd), err);
}

int ttrpc_client_call(struct ttrpc_client *c, const char *service,
		      const char *method, const ProtobufCMessage *m,
		      int64_t timeout_ns, ttrpc_done_cb done, void *arg,
		      struct husk_err **err)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	cleanup_free uint8_t *buf = NULL;
	struct pending *p;
	size_t n;

	if (c->closed)
		return husk_error(err, HUSK_E_UNAVAILABLE,
				  "ttrpc %s/%s: %s", service, method,
				  c->why ? c->why : "connection closed");
	if (c->next_stream > UINT32_MAX - 2)
		return husk_error(err, HUSK_E_UNAVAILABLE, "ttrpc %s/%s: "
				  "stream ids used up on this connection",
				  service, method);
	if (ttrpc_pack(m, &buf, &n, err) < 0)
		return husk_error_wrap(err, "ttrpc %s/%s", service, method);
	p = calloc(1, sizeof(*p));
	if (!p)
		return husk_error_sys(err, errno, "ttrpc %s/%s", service,
				      method);
	req.service = (char *)service;
	req.method = (char *)method;
	req.payload.data = buf;
	req.payload.len = n;
	req.timeout_nano = timeout_ns;
	if (ttrpc_wq_push(&c->wq, c->next_stream, TTRPC_TYPE_REQUEST,
			  &req.base, err) < 0) {
		free(p);
		return husk_error_wrap(err, "ttrpc %s/%s", service, method);
	}
	p->stream = c->next_stream;
	p->done = done;
	p->arg = arg;
	p->next = c->pending;
	c->pending = p;
	c->npending++;
	c->next_stream += 2;
	ev_io_start(c->loop, &c->wio);
	return 0;
}

bool ttrpc_client_closed(const struct ttrpc_client *c)
{
	return c->closed;
}

size_t ttrpc_client_pending(const struct ttrpc_client *c)
{
	return c->npending;
}

void ttrpc_client_free(struct ttrpc_client *c)
{
	if (!c)
		return;
	client_close(c, "client closed");
	client_unref(c);
}
