/*
 * The blocking client, for short-lived commands (husk, husk-ipc): one
 * call at a time, poll() for timeouts, and a bounded backlog of what
 * the peer sent while we waited for a response.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/log.h"
#include "../libhusk/util.h"
#include "conn-int.h"
#include "ipc.h"

/* A peer that floods us while we wait must not grow memory unbounded. */
#define BACKLOG_MAX 1024
#define BACKLOG_BYTES (64u << 20)
#define READ_CHUNK (64u << 10)

struct bl_frame {
	struct bl_frame *next;
	uint32_t len;
	int nfds;
	int fds[IPC_MAX_FDS];
	char data[];
};

/* Behind ipc_client.backlog. */
struct client_state {
	struct bl_frame *head, *tail;
	size_t n, bytes;
	bool is_sock;
	int rx_fds[IPC_MAX_FDS];
	int rx_nfds;
	int rx_skip;
	struct ipc_buf env;             /* envelope + params being sent */
	char method[IPC_METHOD_MAX + 1];
	uint32_t msgid;                 /* of the call begun */
	/* The message being waited for. */
	struct ipc_msg *target;
	bool want_any;
	uint32_t want_id;
	bool have;
	struct husk_err *ferr;
	/* What the last read brought and the framer has not been fed yet:
	 * rbuf[rpos..rlen). */
	size_t rpos, rlen;
	char rbuf[READ_CHUNK];
};

static struct client_state *state(struct ipc_client *cl)
{
	return cl->backlog;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Descriptors of the frame just completed (see conn.c's read_cb). */
static int take_fds(struct client_state *st, int *fds)
{
	int n;

	if (st->rx_nfds == 0)
		return 0;
	if (st->rx_skip > 0) {
		st->rx_skip--;
		return 0;
	}
	n = st->rx_nfds;
	memcpy(fds, st->rx_fds, sizeof(int) * n);
	st->rx_nfds = 0;
	return n;
}

static int backlog_push(struct client_state *st, const char *data,
			uint32_t len, const int *fds, int nfds)
{
	struct bl_frame *f;

	if (st->n >= BACKLOG_MAX || st->bytes + len > BACKLOG_BYTES)
		return husk_error(&st->ferr, HUSK_E_TOO_LARGE,
				  "ipc_client: more than %d messages or %u "
				  "bytes arrived while waiting", BACKLOG_MAX,
				  BACKLOG_BYTES);
	f = husk_xmalloc(sizeof(*f) + len);
	f->next = NULL;
	f->len = len;
	f->nfds = nfds;
	memcpy(f->fds, fds, sizeof(int) * nfds);
	memcpy(f->data, data, len);
	if (st->tail)
		st->tail->next = f;
	else
		st->head = f;
	st->tail = f;
	st->n++;
	st->bytes += len;
	return 0;
}

static int client_frame(void *arg, const char *data, uint32_t len)
{
	struct client_state *st = arg;
	int fds[IPC_MAX_FDS];
	int nfds = take_fds(st, fds);
	struct ipc_msg tmp, *m = st->have || !st->target ? &tmp : st->target;

	if (ipc_msg_parse(m, data, len, &st->ferr) < 0) {
		close_fds(fds, nfds);
		return -1;
	}
	if (m == st->target && (st->want_any ||
	    (m->type == IPC_RESPONSE && m->msgid == st->want_id))) {
		memcpy(m->fds, fds, sizeof(int) * nfds);
		m->nfds = nfds;
		st->have = true;
		return 0;
	}
	if (m->type == IPC_RESPONSE && !st->want_any) {
		/* Only one call is ever in flight: this answers one that
		 * timed out earlier. */
		log_debug("late answer to %u dropped", m->msgid);
		ipc_msg_free(m);
		close_fds(fds, nfds);
		return 0;
	}
	ipc_msg_free(m);
	if (backlog_push(st, data, len, fds, nfds) < 0) {
		close_fds(fds, nfds);
		return -1;
	}
	return 0;
}

/* Drop the connection after an error that leaves the stream unusable. */
static void client_break(struct ipc_client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	cl->fd = -1;
}

/*
 * How much of the unfed input to give the framer next: up to the end
 * of the frame it is in, so that the frames are parsed one at a time
 * and what follows the awaited message stays raw in rbuf for the next
 * wait.  Otherwise one read of many small notifications (64 KiB holds
 * thousands) would all go to the backlog and overflow its bound, and a
 * listener that reads as fast as it can would be cut off.
 */
static size_t feed_size(const struct ipc_client *cl,
			const struct client_state *st)
{
	const struct ipc_framer *fr = &cl->fr;
	const uint8_t *p = (const uint8_t *)st->rbuf + st->rpos;
	size_t left = st->rlen - st->rpos, k = left;

	if (fr->hdr_have == 0 && left >= IPC_FRAME_HDR) {
		uint64_t len = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
			       (uint64_t)p[2] << 8 | p[3];

		/* The whole frame at once: the framer copies nothing. */
		if (IPC_FRAME_HDR + len < left)
			k = IPC_FRAME_HDR + (size_t)len;
	} else if (fr->hdr_have > 0 && fr->hdr_have < IPC_FRAME_HDR) {
		if (IPC_FRAME_HDR - fr->hdr_have < left)
			k = IPC_FRAME_HDR - fr->hdr_have;
	} else if (fr->hdr_have == IPC_FRAME_HDR) {
		if (fr->len - fr->have < left)
			k = fr->len - fr->have;
	}
	return k;
}

/* Read until the awaited message is in st->target. */
static int client_wait(struct ipc_client *cl, int timeout_ms,
		       struct husk_err **err)
{
	struct client_state *st = state(cl);
	long long deadline = now_ms() + timeout_ms;
	char *buf = st->rbuf;
	int ret = -1;

	while (!st->have) {
		struct pollfd pfd = { .fd = cl->fd, .events = POLLIN };
		int wait = -1, r, had = st->rx_nfds;
		bool trunc = false;
		ssize_t n;
		size_t k;

		/* Whole frames read before a break are still delivered, as
		 * the backlog's are. */
		if (st->rpos < st->rlen) {
			k = feed_size(cl, st);
			st->rpos += k;
			if (ipc_framer_feed(&cl->fr, buf + st->rpos - k, k,
					    client_frame, st, err) < 0) {
				st->rpos = st->rlen = 0;
				if (st->ferr) {
					husk_err_clear(err);
					*err = husk_steal_ptr(st->ferr);
				}
				if (st->have) {
					ipc_msg_free(st->target);
					st->have = false;
				}
				client_break(cl);
				break;
			}
			continue;
		}
		if (cl->fd < 0) {
			husk_error(err, HUSK_E_UNAVAILABLE,
				   "ipc_client: not connected");
			break;
		}
		if (timeout_ms >= 0) {
			long long left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		r = poll(&pfd, 1, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			husk_error_sys(err, errno, "ipc_client: poll");
			break;
		}
		if (r == 0) {
			husk_error(err, HUSK_E_TIMEOUT,
				   "ipc_client: no answer from %s within %d ms",
				   cl->peer[0] ? cl->peer : "peer", timeout_ms);
			break;
		}
		if (st->is_sock)
			n = ipc_recv_fds(cl->fd, buf, READ_CHUNK, st->rx_fds,
					 &st->rx_nfds, IPC_MAX_FDS, &trunc);
		else
			n = read(cl->fd, buf, READ_CHUNK);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno != ECONNRESET) {
			husk_error_sys(err, errno, "ipc_client: read");
			client_break(cl);
			break;
		}
		if (n <= 0) {
			husk_error(err, HUSK_E_UNAVAILABLE,
				   "ipc_client: connection closed by %s",
				   cl->peer[0] ? cl->peer : "peer");
			client_break(cl);
			break;
		}
		if (had == 0 && st->rx_nfds > 0)
			st->rx_skip = ipc_fds_skip(&cl->fr, buf, (size_t)n);
		st->rpos = 0;
		st->rlen = (size_t)n;
	}
	if (st->have)
		ret = 0;
	st->target = NULL;
	st->have = false;
	return ret;
}

static int write_full(struct ipc_client *cl, const char *p, size_t len,
		      const int *fds, int nfds, struct husk_err **err)
{
	struct client_state *st = state(cl);

	if (cl->fd < 0)
		return husk_error(err, HUSK_E_UNAVAILABLE,
				  "ipc_client: not connected");
	while (len > 0) {
		ssize_t n;

		if (nfds > 0)
			n = ipc_send_fds(cl->fd, p, len, fds, nfds);
		else if (st->is_sock)
			n = send(cl->fd, p, len, MSG_NOSIGNAL);
		else
			n = write(cl->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			client_break(cl);
			if (e == EPIPE || e == ECONNRESET)
				return husk_error(err, HUSK_E_UNAVAILABLE,
						  "ipc_client: connection closed "
						  "by %s", cl->peer[0] ?
						  cl->peer : "peer");
			return husk_error_sys(err, e, "ipc_client: write");
		}
		p += n;
		len -= (size_t)n;
		nfds = 0;
	}
	return 0;
}

msgpack_packer *ipc_client_begin(struct ipc_client *cl, const char *method)
{
	struct client_state *st = state(cl);

	snprintf(st->method, sizeof(st->method), "%s", method);
	/* Params go to cl->out; the envelope is added when we know whether
	 * this is a call or a notification. */
	ipc_buf_reset(&cl->out);
	return &cl->out.pk;
}

static int frame_out(struct ipc_client *cl, bool request,
		     struct husk_err **err)
{
	struct client_state *st = state(cl);

	if (request) {
		st->msgid = cl->next_id++;
		if (cl->next_id == UINT32_MAX || cl->next_id == 0)
			cl->next_id = 1;
		ipc_pack_request(&st->env, st->msgid, st->method);
	} else {
		ipc_pack_notify(&st->env, st->method);
	}
	if (cl->out.sb.size < IPC_FRAME_HDR ||
	    msgpack_sbuffer_write(&st->env.sb, cl->out.sb.data + IPC_FRAME_HDR,
				  cl->out.sb.size - IPC_FRAME_HDR) < 0)
		return husk_error(err, HUSK_E_INTERNAL,
				  "ipc_client: out of memory packing '%s'",
				  st->method);
	return ipc_buf_finish(&st->env, cl->max_frame, err);
}

int ipc_client_call(struct ipc_client *cl, int timeout_ms, const int *fds,
		    int nfds, struct ipc_msg *resp, struct husk_err **err)
{
	struct client_state *st = state(cl);

	if (nfds < 0 || nfds > IPC_MAX_FDS)
		return husk_error(err, HUSK_E_INVALID,
				  "ipc_client: %d descriptors", nfds);
	if (frame_out(cl, true, err) < 0 ||
	    write_full(cl, st->env.sb.data, st->env.sb.size, fds, nfds,
		       err) < 0)
		return husk_error_wrap(err, "call '%s'", st->method);
	st->target = resp;
	st->want_any = false;
	st->want_id = st->msgid;
	if (client_wait(cl, timeout_ms, err) < 0)
		return husk_error_wrap(err, "call '%s'", st->method);
	if (resp->error) {
		ipc_error_decode(resp->error, err);
		ipc_msg_free(resp);
		return -1;
	}
	return 0;
}

int ipc_client_notify(struct ipc_client *cl, struct husk_err **err)
{
	struct client_state *st = state(cl);

	if (frame_out(cl, false, err) < 0)
		return -1;
	return write_full(cl, st->env.sb.data, st->env.sb.size, NULL, 0, err);
}

int ipc_client_next(struct ipc_client *cl, int timeout_ms,
		    struct ipc_msg *m, struct husk_err **err)
{
	struct client_state *st = state(cl);
	struct bl_frame *f = st->head;

	if (f) {
		int r;

		st->head = f->next;
		if (!st->head)
			st->tail = NULL;
		st->n--;
		st->bytes -= f->len;
		r = ipc_msg_parse(m, f->data, f->len, err);
		if (r == 0) {
			memcpy(m->fds, f->fds, sizeof(int) * f->nfds);
			m->nfds = f->nfds;
		} else {
			close_fds(f->fds, f->nfds);
		}
		free(f);
		return r;
	}
	st->target = m;
	st->want_any = true;
	return client_wait(cl, timeout_ms, err);
}

int ipc_client_adopt(struct ipc_client *cl, int fd, const char *component,
		     const char *expect_peer, int timeout_ms,
		     struct husk_err **err)
{
	cleanup_err struct husk_err *e = NULL;
	struct client_state *st;
	struct ipc_msg resp;
	msgpack_packer *pk;
	struct stat sb;
	int r;

	memset(cl, 0, sizeof(*cl));
	cl->fd = fd;
	cl->next_id = 1;
	cl->max_frame = IPC_FRAME_MAX_DEFAULT;
	ipc_framer_init(&cl->fr, cl->max_frame);
	ipc_buf_init(&cl->out);
	st = husk_xcalloc(1, sizeof(*st));
	ipc_buf_init(&st->env);
	cl->backlog = st;
	if (fstat(fd, &sb) < 0) {
		husk_error_sys(err, errno, "ipc_client: fstat");
		ipc_client_close(cl);
		return -1;
	}
	st->is_sock = S_ISSOCK(sb.st_mode);

	pk = ipc_client_begin(cl, "hello");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", component);
	if (ipc_client_call(cl, timeout_ms, NULL, 0, &resp, err) < 0) {
		ipc_client_close(cl);
		return -1;
	}
	r = ipc_hello_parse(resp.result, component, expect_peer, cl->peer,
			    err);
	ipc_msg_free(&resp);
	if (r < 0) {
		husk_error_wrap(err, "hello");
		ipc_client_close(cl);
		return -1;
	}
	return 0;
}

int ipc_client_connect(struct ipc_client *cl, const char *path,
		       const char *component, const char *expect_peer,
		       int timeout_ms, struct husk_err **err)
{
	long long start = now_ms();
	int fd = ipc_connect_path(path, timeout_ms, err);
	int left;

	if (fd < 0) {
		memset(cl, 0, sizeof(*cl));
		cl->fd = -1;
		return -1;
	}
	left = timeout_ms;
	if (timeout_ms >= 0) {
		left = timeout_ms - (int)(now_ms() - start);
		if (left < 100)
			left = 100;
	}
	return ipc_client_adopt(cl, fd, component, expect_peer, left, err);
}

void ipc_client_close(struct ipc_client *cl)
{
	struct client_state *st = state(cl);

	client_break(cl);
	if (st) {
		while (st->head) {
			struct bl_frame *f = st->head;

			st->head = f->next;
			close_fds(f->fds, f->nfds);
			free(f);
		}
		close_fds(st->rx_fds, st->rx_nfds);
		ipc_buf_destroy(&st->env);
		husk_err_free(st->ferr);
		free(st);
		cl->backlog = NULL;
		ipc_framer_free(&cl->fr);
		ipc_buf_destroy(&cl->out);
	}
}
