/*
 * Event-driven connections on libev: reading and framing what the peer
 * sends, the connection's life cycle.  The write queue is in
 * conn_wq.c, replies, calls and the hello in conn_call.c, the method
 * rows in conn_dispatch.c (docs/protocol.md).
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

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* ------------------------------------------------------------ helpers */

const char *conn_peer_name(const struct ipc_conn *c)
{
	return c->peer[0] ? c->peer : "?";
}

/*
 * A peer broke the protocol: from a sibling (trusted) that is a bug in
 * husk, from the guest or a client it is hostile or broken input.
 */
void conn_violation(struct ipc_conn *c, const struct husk_err *e)
{
	/* An untrusted peer that reconnects and misbehaves over and over
	 * gets a bounded number of lines. */
	static struct ipc_ratelimit rl = { .interval = 60., .burst = 20 };
	const char *msg = e && e->msg ? e->msg : "protocol violation";
	unsigned held = 0;

	if (c->o.trusted)
		log_warnx("bug: peer %s (pid %d) broke the "
			  "protocol: %s", conn_peer_name(c), (int)c->peer_pid, msg);
	else if (ipc_ratelimit(&rl, ev_now(c->loop), &held))
		log_warnx("peer %s (pid %d): %s; disconnecting"
			  "%s", conn_peer_name(c), (int)c->peer_pid, msg,
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
		rl->held++;
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

uint32_t conn_next_msgid(struct ipc_conn *c)
{
	uint32_t id = c->next_id++;

	if (c->next_id == UINT32_MAX || c->next_id == 0)
		c->next_id = 1;
	return id;
}

void conn_recent_add(struct ipc_conn *c, uint32_t id)
{
	c->recent[c->recent_pos++ % RECENT_MAX] = id;
}

bool conn_recent_has(const struct ipc_conn *c, uint32_t id)
{
	for (unsigned i = 0; i < RECENT_MAX; i++)
		if (c->recent[i] == id)
			return true;
	return false;
}

struct pending *conn_pending_find(struct ipc_conn *c, uint32_t id)
{
	for (struct pending *p = c->pending; p; p = p->next)
		if (p->msgid == id)
			return p;
	return NULL;
}

void conn_pending_unlink(struct ipc_conn *c, struct pending *p)
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

/* ------------------------------------------------------------- input */

static int frame_cb(void *arg, const char *data, uint32_t len)
{
	struct ipc_conn *c = arg;
	struct husk_err *e = NULL;
	struct ipc_msg m;

	if (!c->zone)
		c->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (!c->zone) {
		husk_error_sys(&e, ENOMEM, "message of %u bytes", len);
		ipc_conn_close(c, e);
		husk_err_free(e);
		return -1;
	}
	/* The frame lies in c->rbuf, unchanged until dispatched. */
	if (ipc_msg_parse_zone(&m, data, len, c->zone, &e) < 0) {
		msgpack_zone_clear(c->zone);
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
	conn_dispatch(c, &m);
	ipc_msg_free(&m);
	msgpack_zone_clear(c->zone);
	return c->closed || c->flushing ? -1 : 0;
}

static void conn_eof(struct ipc_conn *c)
{
	cleanup_err struct husk_err *e = NULL;

	if (c->rend > c->rstart) {
		husk_error(&e, HUSK_E_PROTOCOL,
			   "connection closed in the middle of a frame");
		conn_violation(c, e);
		return;
	}
	ipc_conn_close(c, NULL);
}

/*
 * Make room to read: the partial frame at rstart moves to the front when
 * the whole of it would not fit where it is, and the buffer grows for a
 * frame larger than READ_BUF (and shrinks back once it is dispatched).
 */
static int rbuf_prepare(struct ipc_conn *c, struct husk_err **err)
{
	size_t have = c->rend - c->rstart;
	size_t cap = c->rneed > READ_BUF ? c->rneed : READ_BUF;

	if (have == 0)
		c->rstart = c->rend = 0;
	if (c->rstart > 0 && c->rstart + c->rneed > c->rcap) {
		memmove(c->rbuf, c->rbuf + c->rstart, have);
		c->rstart = 0;
		c->rend = have;
	}
	if (!c->rbuf || cap > c->rcap || (have == 0 && cap < c->rcap)) {
		char *b = realloc(c->rbuf, cap);

		if (!b)
			return husk_error_sys(err, ENOMEM, "frame of %zu bytes",
					      c->rneed);
		c->rbuf = b;
		c->rcap = cap;
	}
	return 0;
}

/* Descriptors came with the n bytes just read at rend: which frame do
 * they go with?  (What lies before them is one partial frame.) */
static int rbuf_fds_skip(const struct ipc_conn *c, size_t n)
{
	const unsigned char *p = (unsigned char *)c->rbuf + c->rstart;
	size_t have = c->rend - c->rstart;
	struct ipc_framer f = { 0 };

	f.hdr_have = have < IPC_FRAME_HDR ? (unsigned)have : IPC_FRAME_HDR;
	memcpy(f.hdr, p, f.hdr_have);
	if (have >= IPC_FRAME_HDR) {
		f.len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			(uint32_t)p[2] << 8 | p[3];
		f.have = (uint32_t)(have - IPC_FRAME_HDR);
	}
	return ipc_fds_skip(&f, c->rbuf + c->rend, n);
}

/* Dispatch the whole frames read. */
static int rbuf_dispatch(struct ipc_conn *c, struct husk_err **err)
{
	ssize_t used = ipc_frames_split(c->rbuf + c->rstart,
					c->rend - c->rstart, c->o.max_frame,
					frame_cb, c, &c->rneed, err);

	if (used < 0)
		return -1;
	c->rstart += (size_t)used;
	return 0;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;

	ipc_conn_ref(c);
	for (int i = 0; i < READS_PER_WAKEUP; i++) {
		cleanup_err struct husk_err *e = NULL;
		bool trunc = false;
		int had = c->rx_nfds;
		size_t room;
		ssize_t n;

		if (c->closed || c->paused || c->flushing)
			break;
		if (rbuf_prepare(c, &e) < 0) {
			ipc_conn_close(c, e);
			break;
		}
		room = c->rcap - c->rend;
		if (c->is_sock)
			n = ipc_recv_fds(c->fd, c->rbuf + c->rend, room,
					 c->rx_fds, &c->rx_nfds, IPC_MAX_FDS,
					 &trunc);
		else
			n = read(c->fd, c->rbuf + c->rend, room);
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
				       conn_peer_name(c));
			ipc_conn_close(c, e);
			break;
		}
		if (trunc)
			log_warnx("peer %s sent more than %d "
				  "descriptors; extra ones closed",
				  conn_peer_name(c), IPC_MAX_FDS);
		if (n == 0) {
			conn_eof(c);
			break;
		}
		if (had == 0 && c->rx_nfds > 0)
			c->rx_skip = rbuf_fds_skip(c, (size_t)n);
		c->rend += (size_t)n;
		if (rbuf_dispatch(c, &e) < 0) {
			if (!c->closed && !c->flushing)
				conn_violation(c, e);
			break;
		}
		if ((size_t)n < room)
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
	c->rneed = IPC_FRAME_HDR;
	ipc_buf_init(&c->out);
	ev_io_init(&c->rio, read_cb, -1, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, -1, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_timer_init(&c->hello_timer, conn_hello_timer_cb, 0., c->o.hello_timeout);
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
		conn_wq_item_free(it);
	}
	free(c->rbuf);
	if (c->zone)
		msgpack_zone_free(c->zone);
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
		conn_send_hello(c);
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
	conn_send_hello(c);
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
		conn_wq_item_free(it);
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
		   conn_peer_name(c), why && why->msg ? ": " : "",
		   why && why->msg ? why->msg : "");
	while (c->pending) {
		struct pending *p = c->pending;

		conn_pending_unlink(c, p);
		p->cb(c, NULL, gone, p->arg);
		free(p);
	}
	husk_err_free(gone);
	if (c->o.on_close)
		c->o.on_close(c, why, c->o.arg);
	ipc_conn_unref(c);
	ipc_conn_unref(c);      /* the open connection's own reference */
}

void conn_close_after_flush_why(struct ipc_conn *c,
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
	conn_close_after_flush_why(c, NULL);
}

void ipc_conn_ref(struct ipc_conn *c)
{
	c->refs++;
}

void ipc_conn_unref(struct ipc_conn *c)
{
	if (--c->refs > 0)
		return;
	if (!c->closed) {
		/* A bug in the caller, not an error to report: a library
		 * does not exit, it stops here for the core dump. */
		log_warnx("bug: last reference dropped on an open "
			  "connection");
		abort();
	}
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
