/*
 * A connection's write queue: framed messages go straight to the socket
 * while nothing waits, else they queue (with their descriptors) and are
 * written when the socket is writable; the watermarks of
 * ipc_conn_opts.on_queue follow what the queue holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../libhusk/log.h"
#include "conn-int.h"
#include "ipc.h"

/* ------------------------------------------------------- write queue */

void conn_wq_item_free(struct wq_item *it)
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
		conn_wq_item_free(it);
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

void conn_flush(struct ipc_conn *c)
{
	if (c->closed || c->connecting)
		return;
	if (c->werr || wq_write(c) < 0) {
		struct husk_err *e = NULL;

		if (!c->werr)
			c->werr = errno;
		husk_error_sys(&e, c->werr, "write to peer %s", conn_peer_name(c));
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

void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
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
				conn_wq_item_free(it);
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

/* A write failed: reported by closing from the write watcher, never
 * from the sender, so that callers are not surprised by on_close. */
static int wq_fail(struct ipc_conn *c)
{
	c->werr = errno;
	ev_io_start(c->loop, &c->wio);
	ev_feed_event(c->loop, &c->wio, EV_WRITE);
	return -1;
}

static void wq_append(struct ipc_conn *c, struct wq_item *it)
{
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
}

/*
 * Send a framed message: straight to the socket when nothing is queued
 * (the common case allocates nothing), the rest into the queue.
 */
int conn_queue(struct ipc_conn *c, const char *data, size_t len,
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
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return wq_fail(c);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			nfds = 0;
		}
	}
	it = wq_item_new(c, data, len, fds, nfds, from_out);
	if (!it)
		return -1;
	wq_append(c, it);
	return 0;
}

/*
 * Send a frame made of iov[0..n) (header included): in one writev when
 * nothing waits, and only what the socket does not take is copied into
 * the queue.
 */
static int conn_queue_iov(struct ipc_conn *c, struct iovec *iov, int n)
{
	size_t total = 0, sent = 0, rest, at = 0;
	struct wq_item *it;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (!c->wq_head && !c->connecting) {
		ssize_t w;

		do {
			w = write_iov(c, iov, n);
		} while (w < 0 && errno == EINTR);
		if (w == (ssize_t)total)
			return 0;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return wq_fail(c);
		if (w > 0)
			sent = (size_t)w;
	}
	rest = total - sent;
	it = wq_item_get(c, rest);
	if (!it)
		return -1;
	if (it->cap < rest) {
		char *d = realloc(it->data, rest);

		if (!d) {
			conn_wq_item_free(it);
			return -1;
		}
		it->data = d;
		it->cap = rest;
	}
	it->next = NULL;
	it->len = rest;
	it->off = 0;
	it->nfds = 0;
	for (int i = 0; i < n; i++) {
		const char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (sent >= len) {
			sent -= len;
			continue;
		}
		memcpy(it->data + at, p + sent, len - sent);
		at += len - sent;
		sent = 0;
	}
	wq_append(c, it);
	return 0;
}

static void be32_put(unsigned char *h, size_t len)
{
	h[0] = (unsigned char)(len >> 24);
	h[1] = (unsigned char)(len >> 16);
	h[2] = (unsigned char)(len >> 8);
	h[3] = (unsigned char)len;
}

/* A frame whose payload lies elsewhere (a message received, relayed as
 * it is). */
int ipc_conn_send_payload(struct ipc_conn *c, const char *payload,
			  size_t len)
{
	unsigned char hdr[IPC_FRAME_HDR];
	struct iovec iov[2] = {
		{ hdr, sizeof(hdr) }, { (void *)payload, len },
	};

	if (c->closed || c->flushing || c->werr || len == 0 ||
	    len > c->o.max_frame_send)
		return -1;
	be32_put(hdr, len);
	return conn_queue_iov(c, iov, 2);
}

/* The message in c->out ends with the len bytes at tail (a bin whose
 * header is packed): they go from where they are. */
int ipc_notify_send_tail(struct ipc_conn *c, const void *tail, size_t len)
{
	msgpack_sbuffer *sb = &c->out.sb;
	struct iovec iov[2];
	size_t total;

	if (c->closed || c->flushing || c->werr || !sb->data ||
	    sb->size < IPC_FRAME_HDR)
		return -1;
	total = sb->size - IPC_FRAME_HDR + len;
	if (total > c->o.max_frame_send) {
		log_warnx("message of %zu bytes is over the frame limit of %u",
			  total, c->o.max_frame_send);
		return -1;
	}
	be32_put((unsigned char *)sb->data, total);
	iov[0].iov_base = sb->data;
	iov[0].iov_len = sb->size;
	iov[1].iov_base = (void *)tail;
	iov[1].iov_len = len;
	return conn_queue_iov(c, iov, len ? 2 : 1);
}

int ipc_conn_send_frame(struct ipc_conn *c, const char *data, size_t len,
			const int *fds, int nfds)
{
	return conn_queue(c, data, len, fds, nfds, false);
}

int conn_send_out(struct ipc_conn *c, const int *fds, int nfds)
{
	struct husk_err *e = NULL;

	if (ipc_buf_finish(&c->out, c->o.max_frame_send, &e) < 0) {
		log_warnx("%s", e->msg);
		husk_err_free(e);
		return -1;
	}
	return conn_queue(c, c->out.sb.data, c->out.sb.size, fds, nfds, true);
}
