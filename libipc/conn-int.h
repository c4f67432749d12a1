/*
 * Private glue between the conn*.c files and server.c: not part of
 * libipc's API.
 */
#ifndef HUSK_IPC_CONN_INT_H
#define HUSK_IPC_CONN_INT_H

#include <ev.h>

#include "ipc.h"

/* Called by conn.c when a server's connection closes (before on_close). */
void ipc_server_conn_gone(struct ipc_server *s, struct ipc_conn *c);
/* Tie a connection to its server (NULL unties it). */
void ipc_conn_set_server(struct ipc_conn *c, struct ipc_server *s);

/* Check a hello map {version, component} from the peer; on success
 * peer holds its component name. */
int ipc_hello_parse(const msgpack_object *map, const char *self,
		    const char *expect, char peer[IPC_COMPONENT_MAX + 1],
		    struct husk_err **err);

/* Frames to complete before the one that owns descriptors received
 * with data[0..n), given the framer's state before feeding data. */
int ipc_fds_skip(const struct ipc_framer *f, const char *data, size_t n);

/* ------------------------------------------------------------------ */
/* The connection, shared by conn.c, conn_wq.c, conn_call.c and        */
/* conn_dispatch.c                                                     */

#define WQ_HIGH_DEFAULT (1u << 20)
#define WQ_LOW_DEFAULT (256u << 10)
#define HELLO_TIMEOUT_DEFAULT 10.0
#define FLUSH_TIMEOUT 5.0       /* a peer that never reads our last words */
#define CONNECT_RETRY 0.02
#define RECENT_MAX 64           /* timed-out ids whose late answer we drop */
/* A connection reads into a buffer of its own, of this size (larger
 * while a larger frame comes in), and frames are dispatched where they
 * lie: several 64 KiB output frames a read, no copy. */
#define READ_BUF (128u << 10)
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

	char *rbuf;             /* frames read, not yet dispatched */
	size_t rcap, rstart, rend;
	size_t rneed;           /* bytes the frame at rstart takes in all */
	/* The objects of the message being dispatched (cleared after each,
	 * which keeps only its first chunk). */
	msgpack_zone *zone;
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

/* conn.c */
const char *conn_peer_name(const struct ipc_conn *c);
void conn_violation(struct ipc_conn *c, const struct husk_err *e);
uint32_t conn_next_msgid(struct ipc_conn *c);
void conn_recent_add(struct ipc_conn *c, uint32_t id);
bool conn_recent_has(const struct ipc_conn *c, uint32_t id);
struct pending *conn_pending_find(struct ipc_conn *c, uint32_t id);
void conn_pending_unlink(struct ipc_conn *c, struct pending *p);
void conn_close_after_flush_why(struct ipc_conn *c,
				const struct husk_err *why);

/* conn_wq.c */
void conn_wq_item_free(struct wq_item *it);
void conn_flush(struct ipc_conn *c);
void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Queue (or write) a framed message; with from_out, data is c->out's. */
int conn_queue(struct ipc_conn *c, const char *data, size_t len,
	       const int *fds, int nfds, bool from_out);
/* Finish c->out and queue it. */
int conn_send_out(struct ipc_conn *c, const int *fds, int nfds);

/* conn_call.c */
void conn_send_hello(struct ipc_conn *c);
void conn_server_hello(struct ipc_conn *c, struct ipc_msg *m);
void conn_hello_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* conn_dispatch.c */
void conn_dispatch(struct ipc_conn *c, struct ipc_msg *m);

#endif
