/*
 * libipc: MessagePack-RPC over unix stream sockets (docs/protocol.md).
 *
 *   frame    = 4-byte big-endian length, then one MessagePack object
 *   request  = [0, msgid, method, params]
 *   response = [1, msgid, error, result]
 *   notify   = [2, method, params]
 *
 * params is a map of named parameters (an empty map when there are
 * none); error is nil or a map {code: int, message: str}.  Every
 * connection starts with a "hello" request from the connecting side
 * carrying {version, component}; the answer carries the server's.
 *
 * Bytes from a peer are decoded once, at the edge: ipc_msg_parse()
 * checks the shape, and a method row's params table (struct ipc_method,
 * ipc_decode()) fills the handler's C struct before the handler runs,
 * checking types, lengths and ranges and naming the offending field in
 * the error.
 */
#ifndef HUSK_IPC_H
#define HUSK_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <msgpack.h>

#include "../libhusk/err.h"

#define IPC_PROTOCOL_VERSION 1
#define IPC_FRAME_MAX_DEFAULT (4u << 20)
#define IPC_FRAME_HDR 4
#define IPC_METHOD_MAX 64        /* bytes in a method name */
#define IPC_COMPONENT_MAX 64
#define IPC_MAX_DEPTH 32         /* nesting of arrays and maps */
#define IPC_MAX_FDS 16           /* descriptors with one message */
#define IPC_ERRMSG_MAX 4096      /* bytes of an error message kept */
/*
 * Frames the guest's agent sends to the host.  The largest legitimate
 * one is a list_processes answer (records with command lines of up to
 * 128 KiB each); output notifications carry at most 64 KiB.  The agent
 * refuses to send more (the caller gets "frame too large") and the
 * proxy refuses to read more (the connection is cut), so a hostile
 * guest makes the proxy buffer at most this much per frame.
 */
#define IPC_AGENT_FRAME_MAX (1u << 20)
/* What a queued message costs beyond its buffer (the queue item and
 * its allocations' headers): write queues count it, so that many tiny
 * messages weigh what they hold. */
#define IPC_WQ_ITEM_COST 128u
/* Accepting paused for this long when the descriptor table is full
 * (EMFILE, ENFILE) or memory is short, instead of spinning. */
#define IPC_ACCEPT_PAUSE 0.5

/* ------------------------------------------------------------------ */
/* Frames                                                              */

/*
 * Incremental frame decoder: feed it whatever read() returned, in any
 * split.  A header announcing more than `max` bytes (or zero) fails
 * before anything is allocated.
 */
struct ipc_framer {
	uint32_t max;
	uint8_t hdr[IPC_FRAME_HDR];
	unsigned hdr_have;
	uint32_t len;           /* length of the frame being read */
	uint32_t have;          /* bytes of it read so far */
	char *buf;              /* len bytes once the header is complete */
};

/* Called for every complete frame; data is valid during the call only.
 * A negative return stops feeding and is returned by ipc_framer_feed. */
typedef int (*ipc_frame_cb)(void *arg, const char *data, uint32_t len);

void ipc_framer_init(struct ipc_framer *f, uint32_t max);
void ipc_framer_reset(struct ipc_framer *f);
void ipc_framer_free(struct ipc_framer *f);
/* 0, or -1 with *err (HUSK_E_TOO_LARGE, HUSK_E_PROTOCOL) or the
 * callback's failure.  After a failure, reset before feeding again. */
int ipc_framer_feed(struct ipc_framer *f, const void *data, size_t n,
		    ipc_frame_cb cb, void *arg, struct husk_err **err);
/* True while a frame is partly read (to report truncation at EOF). */
bool ipc_framer_partial(const struct ipc_framer *f);
/*
 * The whole frames at the start of buf[0..n), each given to cb where it
 * lies (no copy): a reader that keeps its own buffer.  Returns the bytes
 * they took; the rest is the start of a frame that needs *need bytes in
 * all (header included; IPC_FRAME_HDR while its header is incomplete).
 * A header announcing zero or more than max bytes fails (as
 * ipc_framer_feed); a negative return of cb stops and is returned.
 */
ssize_t ipc_frames_split(const char *buf, size_t n, uint32_t max,
			 ipc_frame_cb cb, void *arg, size_t *need,
			 struct husk_err **err);

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/*
 * Check that data holds exactly one MessagePack object, nested at most
 * IPC_MAX_DEPTH deep, whose every array and map count fits in the bytes
 * that remain (so a tiny frame cannot make the unpacker allocate
 * gigabytes), with no ext types.  Allocates nothing.
 */
int ipc_msgpack_check(const char *data, size_t len, struct husk_err **err);

enum ipc_msg_type {
	IPC_REQUEST = 0,
	IPC_RESPONSE = 1,
	IPC_NOTIFY = 2,
};

struct ipc_msg {
	int type;                       /* enum ipc_msg_type */
	uint32_t msgid;                 /* request, response */
	char method[IPC_METHOD_MAX + 1];/* request, notify; NUL-terminated */
	const msgpack_object *params;   /* request, notify: a map */
	const msgpack_object *error;    /* response: NULL when nil */
	const msgpack_object *result;   /* response */
	int fds[IPC_MAX_FDS];           /* descriptors that came with it */
	int nfds;
	/* The frame's payload it was parsed from (the objects point into
	 * it), for a relay that forwards it as it is. */
	const char *raw;
	uint32_t raw_len;
	msgpack_unpacked un;            /* owns the objects */
};

/*
 * Parse one frame's payload: ipc_msgpack_check(), unpack, then check the
 * RPC shape (array of 4 or 3, type, msgid a uint32, method a non-empty
 * string of at most IPC_METHOD_MAX bytes without NUL, params a map,
 * error nil or a map with an integer code and a string message).
 * On failure m is left freed.  Always ipc_msg_free() a parsed message.
 */
int ipc_msg_parse(struct ipc_msg *m, const char *data, size_t len,
		  struct husk_err **err);
/* ipc_msg_parse without the copy: the objects point into data, which
 * must stay unchanged until ipc_msg_free() (a frame dispatched at once). */
int ipc_msg_parse_ref(struct ipc_msg *m, const char *data, size_t len,
		      struct husk_err **err);
/* ipc_msg_parse_ref with the objects allocated in zone, which the
 * caller clears (msgpack_zone_clear) after ipc_msg_free(): a reader that
 * dispatches message after message allocates nothing for them. */
int ipc_msg_parse_zone(struct ipc_msg *m, const char *data, size_t len,
		       msgpack_zone *zone, struct husk_err **err);
/* Closes fds not taken with ipc_msg_take_fd(). */
void ipc_msg_free(struct ipc_msg *m);
/* Take ownership of descriptor i (-1 if there is none). */
int ipc_msg_take_fd(struct ipc_msg *m, int i);

/* Turn a response's error map into a husk_err (message sanitised and
 * bounded).  Returns -1 with *err set, for tail calls. */
int ipc_error_decode(const msgpack_object *error, struct husk_err **err);

/*
 * Building messages.  An ipc_buf is a msgpack sbuffer with 4 bytes
 * reserved for the frame header; *_begin packs the envelope and returns
 * the packer for the caller to pack params (a map) or the result;
 * ipc_buf_finish() writes the header.
 */
struct ipc_buf {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

void ipc_buf_init(struct ipc_buf *b);
void ipc_buf_destroy(struct ipc_buf *b);
void ipc_buf_reset(struct ipc_buf *b);
msgpack_packer *ipc_pack_request(struct ipc_buf *b, uint32_t msgid,
				 const char *method);
msgpack_packer *ipc_pack_response(struct ipc_buf *b, uint32_t msgid);
msgpack_packer *ipc_pack_notify(struct ipc_buf *b, const char *method);
/* A complete error response. */
void ipc_pack_error(struct ipc_buf *b, uint32_t msgid, int code,
		    const char *message);
/* Write the header; -1 with HUSK_E_TOO_LARGE if over max. */
int ipc_buf_finish(struct ipc_buf *b, uint32_t max, struct husk_err **err);

/* Pack helpers: a C string as a MessagePack str (NULL packs nil). */
void ipc_pack_str(msgpack_packer *pk, const char *s);
void ipc_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void ipc_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void ipc_pack_kv_uint(msgpack_packer *pk, const char *k, uint64_t v);
void ipc_pack_kv_bool(msgpack_packer *pk, const char *k, bool v);
void ipc_pack_kv_bin(msgpack_packer *pk, const char *k, const void *p,
		     size_t len);
/* Pack key only; the caller packs the value next. */
void ipc_pack_key(msgpack_packer *pk, const char *k);

/* ------------------------------------------------------------------ */
/* Params: typed getters and table-driven decoding                    */

/* o is the string s (a map key, an enum value)? */
bool ipc_str_is(const msgpack_object *o, const char *s);
/* The value for key in a map, or NULL.  (Duplicate keys are refused by
 * ipc_decode; ipc_map_get returns the first.) */
const msgpack_object *ipc_map_get(const msgpack_object *map,
				  const char *key);

/* `what` names the value in errors ("params.id"). */
int ipc_obj_str(const msgpack_object *o, const char *what, size_t maxlen,
		char **out, struct husk_err **err);
/* ipc_obj_str for a name (hello's component): printable ASCII without
 * space, so that it is safe in every log line. */
int ipc_obj_name(const msgpack_object *o, const char *what, size_t maxlen,
		 char **out, struct husk_err **err);
int ipc_obj_int(const msgpack_object *o, const char *what, int64_t min,
		int64_t max, int64_t *out, struct husk_err **err);
int ipc_obj_uint(const msgpack_object *o, const char *what, uint64_t max,
		 uint64_t *out, struct husk_err **err);
int ipc_obj_bool(const msgpack_object *o, const char *what, bool *out,
		 struct husk_err **err);
int ipc_obj_bin(const msgpack_object *o, const char *what, size_t maxlen,
		const char **p, size_t *len, struct husk_err **err);
/* Check type and count <= maxn; returns the count or -1. */
int ipc_obj_array(const msgpack_object *o, const char *what, size_t maxn,
		  struct husk_err **err);
int ipc_obj_map(const msgpack_object *o, const char *what, size_t maxn,
		struct husk_err **err);

enum ipc_ftype {
	IPC_F_STR,      /* char * (malloc'ed, NUL-terminated, no NUL in it) */
	IPC_F_INT64,    /* int64_t, in [min, max] */
	IPC_F_INT32,    /* int32_t, in [min, max] */
	IPC_F_UINT64,   /* uint64_t, <= max */
	IPC_F_UINT32,   /* uint32_t, <= max */
	IPC_F_BOOL,     /* bool */
	IPC_F_BIN,      /* struct ipc_bin (points into the message) */
	IPC_F_STRV,     /* char ** NULL-terminated; max = count, min = len */
	IPC_F_MAP,      /* const msgpack_object *, count <= max */
	IPC_F_ARRAY,    /* const msgpack_object *, count <= max */
	IPC_F_ANY,      /* const msgpack_object *, any type */
};

#define IPC_REQUIRED 1u
#define IPC_NULLABLE 2u   /* nil is accepted and leaves the default */

struct ipc_bin {
	const char *p;
	uint32_t len;
};

struct ipc_field {
	const char *key;
	int type;               /* enum ipc_ftype */
	unsigned flags;         /* IPC_REQUIRED, IPC_NULLABLE */
	size_t off;             /* offsetof() into the output struct */
	int64_t min;            /* INT: minimum; STRV: max string length */
	uint64_t max;           /* INT, UINT: maximum; STR, BIN: max bytes;
				 * STRV/MAP/ARRAY: max count */
};

/*
 * Decode a params map into *out following fields (terminated by an
 * entry with key NULL).  Absent optional fields keep the value already
 * in *out.  Unknown keys are ignored (newer peers); a key given twice,
 * a wrong type or a bound exceeded fails with HUSK_E_INVALID naming the
 * key (prefix "params.").  On failure what was decoded is freed.
 */
int ipc_decode(const msgpack_object *map, const struct ipc_field *fields,
	       void *out, struct husk_err **err);
/* Free the STR and STRV members that fields describe. */
void ipc_decode_free(const struct ipc_field *fields, void *out);

/* ------------------------------------------------------------------ */
/* Peers: credentials, descriptor passing, socket paths                */

/* SO_PEERCRED of a connected unix socket. */
int ipc_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid,
		  struct husk_err **err);
/* Is uid one of allowed[0..n)?  n == 0 allows only geteuid(). */
bool ipc_uid_allowed(uid_t uid, const uid_t *allowed, size_t n);

/* sendmsg with SCM_RIGHTS: all of buf, the descriptors with the first
 * byte.  Returns bytes sent or -1 with errno (may be short; then send
 * the rest with write()). */
ssize_t ipc_send_fds(int sock, const void *buf, size_t len, const int *fds,
		     int nfds);
/* recvmsg that appends received descriptors (O_CLOEXEC) to fds/nfds
 * (room for maxfds); extra ones are closed and flagged by *truncated. */
ssize_t ipc_recv_fds(int sock, void *buf, size_t len, int *fds, int *nfds,
		     int maxfds, bool *truncated);

/*
 * Bind and listen on path: the parent directory must exist and is
 * checked to be 0700 (or tighter) and owned by us; a stale socket is
 * replaced; the socket is 0600.  Returns the listening fd
 * (non-blocking, cloexec).
 */
int ipc_listen_path(const char *path, struct husk_err **err);
/* A unix socket address for path.  A path longer than sun_path goes
 * through its directory: /proc/self/fd/N/name, N an O_PATH descriptor
 * of the directory opened at the first use and kept (so a process that
 * has confined itself can still reach it). */
struct sockaddr_un;
int ipc_sockaddr(struct sockaddr_un *sa, const char *path,
		 struct husk_err **err);
/* Blocking connect with a timeout in milliseconds (retries ENOENT and
 * ECONNREFUSED until the timeout, for servers still starting). */
int ipc_connect_path(const char *path, int timeout_ms, struct husk_err **err);

/* ------------------------------------------------------------------ */
/* Event-driven connections (libev)                                    */

struct ipc_conn;
struct ipc_server;

/*
 * A method handler.  params is the row's struct, decoded from m->params
 * into zeroed memory before the call (NULL when the row has no params
 * table) and freed by libipc when the handler returns: a handler that
 * answers later copies what it keeps (or takes a string and sets its
 * member to NULL).
 *
 * For a request the handler answers exactly once: now
 * (ipc_reply_begin()+ipc_reply_send(), ipc_reply_ok(), ...) or later
 * (keep m->msgid and hold a reference with ipc_conn_ref()), and returns
 * 0; or it returns -1 with *err set and libipc sends *err as the error
 * reply.  For a notification, a -1 is logged.
 */
typedef int (*ipc_handler)(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err);

#define IPC_M_REQUEST 1u  /* legal as a request */
#define IPC_M_NOTIFY  2u  /* legal as a notification */
#define IPC_M_ONCE    4u  /* at most once per connection (a second call
			   * gets HUSK_E_STATE "'name' may be sent only
			   * once"); it counts once its handler has run */

/*
 * One row of a peer's method table: who may call what, how, with which
 * params.  Bad params (wrong type, out of range, missing, given twice)
 * get a HUSK_E_INVALID reply naming the field, and the handler does not
 * run.  Build rows with IPC_METHOD() or IPC_METHOD_P().
 */
struct ipc_method {
	const char *name;               /* "*" matches any method not listed */
	unsigned flags;                 /* IPC_M_* */
	const struct ipc_field *params; /* NULL: none decoded (the handler
					 * may read m->params itself) */
	size_t size;                    /* of the struct params fills */
	/* NULL: the struct starts zeroed; else it starts as a copy of
	 * *defaults (size bytes; no STR or STRV member set), and absent
	 * optional params keep those values. */
	const void *defaults;
	ipc_handler fn;
};

#define IPC_METHOD(name, flags, fn) { (name), (flags), NULL, 0, NULL, (fn) }
/* fields fill a zeroed struct of type `type`. */
#define IPC_METHOD_P(name, flags, fields, type, fn) \
	{ (name), (flags), (fields), sizeof(type), NULL, (fn) }
/* fields fill a copy of dflt (a const struct holding the defaults). */
#define IPC_METHOD_D(name, flags, fields, dflt, fn) \
	{ (name), (flags), (fields), sizeof(dflt), &(dflt), (fn) }
#define IPC_METHOD_END { NULL, 0, NULL, 0, NULL, NULL }

enum ipc_role {
	IPC_ROLE_CLIENT = 0,    /* sends the hello */
	IPC_ROLE_SERVER = 1,    /* waits for the hello */
};

struct ipc_conn_opts {
	int role;                       /* enum ipc_role */
	const char *component;          /* our name, e.g. "husk-proxy" */
	const char *expect_peer;        /* NULL: any component */
	const struct ipc_method *methods; /* terminated by name NULL */
	uint32_t max_frame;             /* 0: IPC_FRAME_MAX_DEFAULT */
	/* Frames we send, when the peer reads more (or less) than it may
	 * send us (0: max_frame). */
	uint32_t max_frame_send;
	double hello_timeout;           /* seconds; 0: 10 */
	/* Write-queue watermarks (0: 1 MiB / 256 KiB), compared with
	 * ipc_conn_queued().  on_queue is called with above=true when the
	 * queue grows past high and with above=false when it drains below
	 * low. */
	size_t wq_high, wq_low;
	void (*on_queue)(struct ipc_conn *c, bool above, void *arg);
	/* After the hello succeeded. */
	void (*on_ready)(struct ipc_conn *c, void *arg);
	/* Once, when the connection ends; why is NULL for a clean EOF.
	 * The connection is freed after it returns (unless referenced). */
	void (*on_close)(struct ipc_conn *c, const struct husk_err *why,
			 void *arg);
	/* A peer that breaks the protocol is disconnected; trusted peers
	 * (siblings) log it as a bug, untrusted ones (guest, clients) as a
	 * warning. */
	bool trusted;
	/* A server whose descriptor outlives its peers' connections (the
	 * guest's virtio-serial port: a host that reconnects before the
	 * guest sees the hang-up speaks on the same descriptor) takes a
	 * new hello as a new peer: it is answered and on_ready runs again. */
	bool rehello;
	void *arg;
};

/* Wrap a connected stream descriptor (socket, virtio-serial port, pipe
 * pair not supported).  Takes ownership of fd. */
struct ipc_conn *ipc_conn_new(struct ev_loop *loop, int fd,
			      const struct ipc_conn_opts *o,
			      struct husk_err **err);
/* Non-blocking connect to path, then hello; on_ready or on_close
 * reports the outcome, within timeout seconds. */
struct ipc_conn *ipc_conn_connect(struct ev_loop *loop, const char *path,
				  double timeout,
				  const struct ipc_conn_opts *o,
				  struct husk_err **err);
/* Close now: pending calls fail with HUSK_E_UNAVAILABLE, on_close runs
 * with why (may be NULL).  Safe to call from a handler. */
void ipc_conn_close(struct ipc_conn *c, const struct husk_err *why);
/* Stop reading, flush the write queue, then close. */
void ipc_conn_close_after_flush(struct ipc_conn *c);
void ipc_conn_ref(struct ipc_conn *c);
void ipc_conn_unref(struct ipc_conn *c);
bool ipc_conn_closed(const struct ipc_conn *c);

void *ipc_conn_arg(const struct ipc_conn *c);
void ipc_conn_set_arg(struct ipc_conn *c, void *arg);
int ipc_conn_fd(const struct ipc_conn *c);
const char *ipc_conn_peer_component(const struct ipc_conn *c);
/* From SO_PEERCRED; -1 when fd is not a unix socket. */
pid_t ipc_conn_peer_pid(const struct ipc_conn *c);
uid_t ipc_conn_peer_uid(const struct ipc_conn *c);
/* What the write queue holds: the buffers of the messages waiting
 * (their unsent bytes and the room around them) plus IPC_WQ_ITEM_COST
 * per message. */
size_t ipc_conn_queued(const struct ipc_conn *c);
/* Messages waiting in the write queue. */
size_t ipc_conn_queued_msgs(const struct ipc_conn *c);
/* Stop or restart reading from the peer (backpressure). */
void ipc_conn_pause_read(struct ipc_conn *c, bool pause);

/* Replies. */
msgpack_packer *ipc_reply_begin(struct ipc_conn *c, uint32_t msgid);
int ipc_reply_send(struct ipc_conn *c);
int ipc_reply_error(struct ipc_conn *c, uint32_t msgid, int code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int ipc_reply_err(struct ipc_conn *c, uint32_t msgid,
		  const struct husk_err *e);
/* An empty map as the result: the usual "done". */
int ipc_reply_ok(struct ipc_conn *c, uint32_t msgid);

/*
 * Calls.  The response reaches cb exactly once: resp set on success
 * (resp->result) or RPC error (err set from resp->error), resp NULL on
 * timeout (HUSK_E_TIMEOUT) or close (HUSK_E_UNAVAILABLE).  resp may be
 * kept past the callback only by ipc_msg take-over (not supported:
 * copy what you need).
 */
typedef void (*ipc_result_cb)(struct ipc_conn *c, struct ipc_msg *resp,
			      const struct husk_err *err, void *arg);

msgpack_packer *ipc_call_begin(struct ipc_conn *c, const char *method);
/* timeout in seconds (0: none).  fds (may be NULL) are sent with the
 * frame and stay owned by the caller.  Returns 0 or -1 (connection
 * closed or frame too large; cb is not called then). */
int ipc_call_send(struct ipc_conn *c, double timeout, const int *fds,
		  int nfds, ipc_result_cb cb, void *arg, uint32_t *msgid);
/* Forget a pending call: its callback will not run. */
void ipc_call_cancel(struct ipc_conn *c, uint32_t msgid);

/* Notifications. */
msgpack_packer *ipc_notify_begin(struct ipc_conn *c, const char *method);
int ipc_notify_send(struct ipc_conn *c);
/* ipc_notify_send for a message whose last len bytes are at tail and
 * not packed (the caller packed a bin's header, msgpack_pack_bin, as the
 * last thing): they are written from tail, not copied into the buffer
 * (only what the socket does not take is queued). */
int ipc_notify_send_tail(struct ipc_conn *c, const void *tail, size_t len);

/* Queue an already framed message (header included). */
int ipc_conn_send_frame(struct ipc_conn *c, const char *data, size_t len,
			const int *fds, int nfds);
/* Send payload[0..len) as one frame (its header added), without
 * packing it anew: a received message relayed as it is (ipc_msg.raw).
 * -1 when closed or over the peer's frame limit. */
int ipc_conn_send_payload(struct ipc_conn *c, const char *payload,
			  size_t len);

/* Servers. */
struct ipc_server_opts {
	struct ipc_conn_opts conn;      /* role is forced to SERVER */
	/* uids allowed to connect; n == 0 allows only our euid. */
	const uid_t *allowed_uids;
	size_t nallowed;
	/* After accept and credential check, before the hello. */
	void (*on_accept)(struct ipc_server *s, struct ipc_conn *c,
			  void *arg);
};

/* Listen on path (see ipc_listen_path) or adopt a listening fd. */
struct ipc_server *ipc_server_new(struct ev_loop *loop, const char *path,
				  const struct ipc_server_opts *o,
				  struct husk_err **err);
struct ipc_server *ipc_server_new_fd(struct ev_loop *loop, int listen_fd,
				     const struct ipc_server_opts *o,
				     struct husk_err **err);
/* Close the listener and every connection; unlink the path if it
 * still names the socket bound there (not one made there since). */
void ipc_server_free(struct ipc_server *s);
size_t ipc_server_nconns(const struct ipc_server *s);

/*
 * At most `burst` log lines per `interval` seconds for one kind of
 * event (a hostile peer must not fill the disk through our log).
 * ipc_ratelimit() says whether to log now; when it lets a line through
 * after some were held back, *suppressed says how many; `held` counts
 * them all, for a status to report.
 */
struct ipc_ratelimit {
	double interval;
	unsigned burst;
	double start;
	unsigned n;
	unsigned dropped;
	uint64_t held;
};

bool ipc_ratelimit(struct ipc_ratelimit *rl, double now,
		   unsigned *suppressed);

/* ------------------------------------------------------------------ */
/* Blocking client, for short-lived commands                          */

struct ipc_client {
	int fd;
	uint32_t next_id;
	uint32_t max_frame;
	struct ipc_framer fr;
	struct ipc_buf out;
	char peer[IPC_COMPONENT_MAX + 1];
	/* Messages that arrived while waiting for a response; delivered by
	 * ipc_client_next() (a small queue of parsed frames). */
	void *backlog;
};

/* Connect (retrying while the server starts, up to timeout_ms), then
 * hello.  expect_peer may be NULL. */
int ipc_client_connect(struct ipc_client *cl, const char *path,
		       const char *component, const char *expect_peer,
		       int timeout_ms, struct husk_err **err);
/* Adopt a connected fd and do the hello. */
int ipc_client_adopt(struct ipc_client *cl, int fd, const char *component,
		     const char *expect_peer, int timeout_ms,
		     struct husk_err **err);
/* Pack params (a map) into the returned packer, then ipc_client_call. */
msgpack_packer *ipc_client_begin(struct ipc_client *cl, const char *method);
/*
 * Send the request begun with ipc_client_begin and wait (timeout_ms,
 * -1 forever) for its response.  Notifications and other messages that
 * arrive meanwhile are kept for ipc_client_next().  On success resp
 * holds the response (free with ipc_msg_free); an RPC error returns -1
 * with *err decoded from it.
 */
int ipc_client_call(struct ipc_client *cl, int timeout_ms, const int *fds,
		    int nfds, struct ipc_msg *resp, struct husk_err **err);
/* Send a notification begun with ipc_client_begin. */
int ipc_client_notify(struct ipc_client *cl, struct husk_err **err);
/* Next incoming message (backlog first); 0, or -1 with HUSK_E_TIMEOUT
 * or HUSK_E_UNAVAILABLE at EOF. */
int ipc_client_next(struct ipc_client *cl, int timeout_ms,
		    struct ipc_msg *m, struct husk_err **err);
void ipc_client_close(struct ipc_client *cl);

/* ------------------------------------------------------------------ */
/* JSON <-> MessagePack (debug client, CLI)                            */

struct json_t;
/* JSON -> msgpack: objects, arrays, strings, integers, reals, bools,
 * null.  A string "b64:..." is NOT special: binary travels as bin only
 * when produced by msgpack. */
int ipc_json_pack(msgpack_packer *pk, const struct json_t *j,
		  struct husk_err **err);
/* msgpack -> JSON (new reference).  bin becomes a string when it is
 * valid UTF-8 without NUL, else {"base64": "..."}; map keys that are not
 * strings are rendered as JSON text. */
struct json_t *ipc_json_from_obj(const msgpack_object *o);

#endif
