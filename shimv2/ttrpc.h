/*
 * ttrpc, containerd's small RPC protocol, over a unix socket on libev:
 * the framing, a server that answers many calls in flight per
 * connection in any order, and a client (docs/shimv2.md, "ttrpc and
 * protobuf").
 *
 * A frame is a 10-byte header (u32 big-endian payload length, u32
 * big-endian stream id, u8 type, u8 flags) and at most TTRPC_MAX_MSG
 * bytes of payload: a ttrpc.Request (type 1) or ttrpc.Response (type 2)
 * in protobuf.  Payloads of calls are protobuf-c messages generated
 * from shimv2/proto/ into $(BUILD)/gen/shimv2/proto/.
 */
#ifndef HUSK_SHIMV2_TTRPC_H
#define HUSK_SHIMV2_TTRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

#include "libhusk/err.h"
#include "shimv2/proto/gpb.pb-c.h"
#include "shimv2/proto/ttrpc.pb-c.h"

struct ev_loop;

#define TTRPC_HDR_LEN		10
/* Payload, as containerd's. */
#define TTRPC_MAX_MSG		(4u << 20)
#define TTRPC_TYPE_REQUEST	1
#define TTRPC_TYPE_RESPONSE	2
/* Answers queued on one connection beyond which reading stops until
 * the peer takes them, and beyond which it is closed. */
#define TTRPC_WQ_SOFT		(1u << 20)
#define TTRPC_WQ_MAX		(16u << 20)
/* Calls in flight on one connection; more get ResourceExhausted. */
#define TTRPC_MAX_INFLIGHT	1024

/* gRPC status codes, as google.rpc.Code numbers them. */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_ABORTED = 10,
	TTRPC_OUT_OF_RANGE = 11,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
	TTRPC_DATA_LOSS = 15,
	TTRPC_UNAUTHENTICATED = 16,
};

/* The gRPC code for a husk error code (HUSK_E_NOT_FOUND -> NotFound...). */
int ttrpc_code_from_husk(int husk_code);
/* "NotFound", ... ("code 42" style never: unknown codes give "Unknown"). */
const char *ttrpc_code_name(int code);

/* ------------------------------------------------------------ framing */

struct ttrpc_hdr {
	uint32_t len;
	uint32_t stream;
	uint8_t type;
	uint8_t flags;
};

void ttrpc_hdr_put(uint8_t out[TTRPC_HDR_LEN], const struct ttrpc_hdr *h);
void ttrpc_hdr_get(struct ttrpc_hdr *h, const uint8_t in[TTRPC_HDR_LEN]);

/*
 * Cuts a byte stream into frames whatever the read boundaries.  The
 * payload buffer is allocated only once a header's length has been
 * checked against TTRPC_MAX_MSG.
 */
struct ttrpc_reader {
	uint8_t hdr[TTRPC_HDR_LEN];
	size_t hdr_got;
	struct ttrpc_hdr h;
	uint8_t *buf;
	size_t got;
};

/* One whole frame; payload is valid during the call only.  Return <0
 * (with *err set) to stop: the feed then returns -1; >0 to pause (only
 * ttrpc_reader_feed_some stops there; ttrpc_reader_feed goes on). */
typedef int (*ttrpc_frame_cb)(void *arg, const struct ttrpc_hdr *h,
			      const uint8_t *payload, struct husk_err **err);

void ttrpc_reader_init(struct ttrpc_reader *r);
void ttrpc_reader_free(struct ttrpc_reader *r);
/* Feed n bytes; cb once per whole frame.  -1 with *err (HUSK_E_TOO_LARGE
 * for a length over TTRPC_MAX_MSG) when the stream cannot go on. */
int ttrpc_reader_feed(struct ttrpc_reader *r, const void *data, size_t n,
		      ttrpc_frame_cb cb, void *arg, struct husk_err **err);
/* The same, but returns 1 with *used < n when cb paused: the bytes
 * from data + *used on are to be fed again later. */
int ttrpc_reader_feed_some(struct ttrpc_reader *r, const void *data,
			   size_t n, ttrpc_frame_cb cb, void *arg,
			   size_t *used, struct husk_err **err);

/*
 * Decoders of what arrives on the socket (the fuzz targets).  A Request
 * needs a non-empty service and method of printable ASCII; *out is
 * freed with ttrpc__request__free_unpacked(*out, NULL).
 */
int ttrpc_request_decode(const uint8_t *p, size_t n, Ttrpc__Request **out,
			 struct husk_err **err);
int ttrpc_response_decode(const uint8_t *p, size_t n, Ttrpc__Response **out,
			  struct husk_err **err);
/*
 * Decode n bytes as a d message, after a walk of the wire that refuses
 * malformed input and more than 65536 fields at any depth (protobuf-c
 * would allocate a struct for each).  Free *out with
 * protobuf_c_message_free_unpacked(*out, NULL).
 */
int ttrpc_decode(const ProtobufCMessageDescriptor *d, const uint8_t *p,
		 size_t n, ProtobufCMessage **out, struct husk_err **err);

/* ------------------------------------------------------------- server */

struct ttrpc_server;
struct ttrpc_conn;
struct ttrpc_call;

/*
 * A handler gets the call and the request decoded with the method's
 * `in` descriptor (NULL `in`: req is NULL, the bytes are in
 * ttrpc_call_payload()).  It answers with exactly one ttrpc_reply*(),
 * now or later (Wait answers when the process exits); req stays valid
 * until then.  A call whose connection has gone may still be answered:
 * the answer goes nowhere and the call is freed.
 */
typedef void (*ttrpc_handler)(struct ttrpc_call *call,
			      const ProtobufCMessage *req, void *arg);

struct ttrpc_method {
	const char *service;	/* "containerd.task.v2.Task" */
	const char *method;	/* "Create" */
	const ProtobufCMessageDescriptor *in;	/* request type, or NULL */
	ttrpc_handler handler;
};

/* methods[0..n) must outlive the server; arg goes to every handler. */
struct ttrpc_server *ttrpc_server_new(struct ev_loop *loop,
				      const struct ttrpc_method *methods,
				      size_t n, void *arg);
/* Accept on a listening unix socket (the server owns fd). */
int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd,
			   struct husk_err **err);
/* Serve one connected socket (the server owns fd). */
struct ttrpc_conn *ttrpc_server_add_fd(struct ttrpc_server *s, int fd,
				       struct husk_err **err);
size_t ttrpc_server_nconns(const struct ttrpc_server *s);
/* Called each time a connection goes (e.g. to exit once containerd has
 * gone and no task is left). */
void ttrpc_server_on_conn_close(struct ttrpc_server *s,
				void (*cb)(struct ttrpc_server *, void *),
				void *arg);
/* Not from inside a handler (answer Shutdown, then free from the loop).
 * Closes the listener and every connection; calls not yet answered
 * stay with their handlers, which answer (into nothing) or drop them
 * with ttrpc_call_drop(). */
void ttrpc_server_free(struct ttrpc_server *s);

/* Answer with a message (NULL: google.protobuf.Empty).  The call is
 * freed: do not use it after any ttrpc_reply*() or ttrpc_call_drop().
 * A message packing over TTRPC_MAX_MSG answers ResourceExhausted. */
void ttrpc_reply(struct ttrpc_call *call, const ProtobufCMessage *resp);
/* Answer with raw protobuf bytes. */
void ttrpc_reply_bytes(struct ttrpc_call *call, const void *p, size_t n);
/* Answer with a gRPC status (code != TTRPC_OK) and a message. */
void ttrpc_reply_status(struct ttrpc_call *call, int code,
			const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Answer with a husk error: its code mapped, its message as is. */
void ttrpc_reply_err(struct ttrpc_call *call, const struct husk_err *err);
/* Free an unanswered call without answering (shutdown). */
void ttrpc_call_drop(struct ttrpc_call *call);

const char *ttrpc_call_service(const struct ttrpc_call *call);
const char *ttrpc_call_method(const struct ttrpc_call *call);
uint32_t ttrpc_call_stream(const struct ttrpc_call *call);
/* The raw request payload (valid until answered). */
const uint8_t *ttrpc_call_payload(const struct ttrpc_call *call,
				  size_t *len);
/* The first metadata value for key ("containerd-namespace-ttrpc"). */
const char *ttrpc_call_meta(const struct ttrpc_call *call, const char *key);
int64_t ttrpc_call_timeout_ns(const struct ttrpc_call *call);
/* The connection has gone: an answer would go nowhere. */
bool ttrpc_call_orphaned(const struct ttrpc_call *call);
/* cb runs once if the call's connection goes before it is answered;
 * cb may answer or drop the call. */
void ttrpc_call_on_orphan(struct ttrpc_call *call,
			  void (*cb)(struct ttrpc_call *, void *), void *arg);

/* --------------------------------------------------- protobuf helpers */

/* Pack m into a (type_url, bytes) Any; free with ttrpc_any_clear(). */
int ttrpc_any_pack(Gpb__Any *any, const char *type_url,
		   const ProtobufCMessage *m, struct husk_err **err);
void ttrpc_any_clear(Gpb__Any *any);
/* Unpack an Any after checking its type_url; free with
 * protobuf_c_message_free_unpacked(*out, NULL). */
int ttrpc_any_unpack(const Gpb__Any *any, const char *type_url,
		     const ProtobufCMessageDescriptor *d,
		     ProtobufCMessage **out, struct husk_err **err);
/* ts from a CLOCK_REALTIME time. */
void ttrpc_timestamp_set(Gpb__Timestamp *ts, const struct timespec *t);
/* Pack m (NULL: Empty) into a malloc'd buffer of at most TTRPC_MAX_MSG. */
int ttrpc_pack(const ProtobufCMessage *m, uint8_t **out, size_t *n,
	       struct husk_err **err);

/* ------------------------------------------------------------- client */

struct ttrpc_client;

/*
 * The end of a call: code TTRPC_OK with the response payload (n may be
 * 0), or a status from the server, or TTRPC_UNAVAILABLE when the
 * connection went first (msg says why).  payload and msg are valid
 * during the call only.
 */
typedef void (*ttrpc_done_cb)(void *arg, int code, const char *msg,
			      const uint8_t *payload, size_t n);

/* A client on a connected socket (the client owns fd). */
struct ttrpc_client *ttrpc_client_new(struct ev_loop *loop, int fd,
				      struct husk_err **err);
/* Connect to a unix socket path ("unix://" prefix allowed), without
 * waiting: a missing or refusing socket fails now. */
struct ttrpc_client *ttrpc_client_connect(struct ev_loop *loop,
					  const char *path,
					  struct husk_err **err);
/* Send service/method(req) (req NULL: Empty).  On 0, done runs exactly
 * once, later (never from inside this call); on -1 it never runs.
 * timeout_ns 0: none sent. */
int ttrpc_client_call(struct ttrpc_client *c, const char *service,
		      const char *method, const ProtobufCMessage *req,
		      int64_t timeout_ns, ttrpc_done_cb done, void *arg,
		      struct husk_err **err);
/* The connection has gone (calls after that fail). */
bool ttrpc_client_closed(const struct ttrpc_client *c);
size_t ttrpc_client_pending(const struct ttrpc_client *c);
/* Pending calls end with TTRPC_UNAVAILABLE "client closed". */
void ttrpc_client_free(struct ttrpc_client *c);

#endif
