/*
 * MessagePack-RPC messages: parsing a frame's payload into a checked
 * struct ipc_msg, and packing requests, responses and notifications
 * into a buffer that already has room for the frame header.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../libhusk/util.h"
#include "codec.h"
#include "ipc.h"

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static void msg_init(struct ipc_msg *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < IPC_MAX_FDS; i++)
		m->fds[i] = -1;
	msgpack_unpacked_init(&m->un);
}

void ipc_msg_free(struct ipc_msg *m)
{
	int n = m->nfds;

	if (n > IPC_MAX_FDS)
		n = IPC_MAX_FDS;
	for (int i = 0; i < n; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
	msgpack_unpacked_destroy(&m->un);
	m->params = NULL;
	m->error = NULL;
	m->result = NULL;
	m->raw = NULL;
	m->raw_len = 0;
}

int ipc_msg_take_fd(struct ipc_msg *m, int i)
{
	int fd;

	if (i < 0 || i >= m->nfds || i >= IPC_MAX_FDS)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

static int msg_msgid(struct ipc_msg *m, const msgpack_object *o,
		     struct husk_err **err)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "msgid: expected an unsigned integer, got %s",
				  ipc_type_name(o));
	if (o->via.u64 > UINT32_MAX)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "msgid: %llu is over %u",
				  (unsigned long long)o->via.u64, UINT32_MAX);
	m->msgid = (uint32_t)o->via.u64;
	return 0;
}

static int msg_method(struct ipc_msg *m, const msgpack_object *o,
		      struct husk_err **err)
{
	const msgpack_object_str *s = &o->via.str;

	if (o->type != MSGPACK_OBJECT_STR)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "method: expected a string, got %s",
				  ipc_type_name(o));
	if (s->size == 0)
		return husk_error(err, HUSK_E_PROTOCOL, "method: empty");
	if (s->size > IPC_METHOD_MAX)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "method: %u bytes is longer than %d",
				  s->size, IPC_METHOD_MAX);
	/* Method names are printable ASCII words: one that is not never
	 * reaches a log line or a handler. */
	if (!husk_is_name(s->ptr, s->size))
		return husk_error(err, HUSK_E_PROTOCOL, "method: not a name "
				  "(a control, space or non-ASCII byte)");
	memcpy(m->method, s->ptr, s->size);
	m->method[s->size] = '\0';
	return 0;
}

static int msg_params(struct ipc_msg *m, const msgpack_object *o,
		      struct husk_err **err)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "params: expected a map, got %s",
				  ipc_type_name(o));
	m->params = o;
	return 0;
}

/* nil, or a map holding an integer "code" and a string "message". */
static int msg_error(struct ipc_msg *m, const msgpack_object *o,
		     struct husk_err **err)
{
	const msgpack_object *code, *msg;

	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "error: expected nil or a map, got %s",
				  ipc_type_name(o));
	code = ipc_map_get(o, "code");
	msg = ipc_map_get(o, "message");
	if (!code || (code->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
		      code->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
		return husk_error(err, HUSK_E_PROTOCOL,
				  "error.code: expected an integer, got %s",
				  code ? ipc_type_name(code) : "nothing");
	if (!msg || msg->type != MSGPACK_OBJECT_STR)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "error.message: expected a string, got %s",
				  msg ? ipc_type_name(msg) : "nothing");
	m->error = o;
	return 0;
}

static int msg_shape(struct ipc_msg *m, struct husk_err **err)
{
	static const uint32_t want[] = { 4, 4, 3 };
	const msgpack_object *o = &m->un.data, *a;
	uint32_t n;

	if (o->type != MSGPACK_OBJECT_ARRAY)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "message: expected an array, got %s",
				  ipc_type_name(o));
	n = o->via.array.size;
	a = o->via.array.ptr;
	if (n == 0 || a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 > IPC_NOTIFY)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "message type: expected 0, 1 or 2");
	m->type = (int)a[0].via.u64;
	if (n != want[m->type])
		return husk_error(err, HUSK_E_PROTOCOL,
				  "message of type %d has %u elements, expected %u",
				  m->type, n, want[m->type]);
	switch (m->type) {
	case IPC_REQUEST:
		if (msg_msgid(m, &a[1], err) < 0 ||
		    msg_method(m, &a[2], err) < 0)
			return -1;
		return msg_params(m, &a[3], err);
	case IPC_RESPONSE:
		if (msg_msgid(m, &a[1], err) < 0 ||
		    msg_error(m, &a[2], err) < 0)
			return -1;
		if (m->error && a[3].type != MSGPACK_OBJECT_NIL)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "result: expected nil with an error, got %s",
					  ipc_type_name(&a[3]));
		m->result = &a[3];
		return 0;
	default:
		if (msg_method(m, &a[1], err) < 0)
			return -1;
		return msg_params(m, &a[2], err);
	}
}

/*
 * msgpack-c's objects point into the buffer they were unpacked from;
 * the message keeps its own copy (freed with its zone) so that it can
 * outlive the frame, e.g. in a client's backlog.  Without copy the
 * objects point into data, which the caller keeps while the message
 * lives (a connection's frame, dispatched and freed at once).
 */
static int msg_unpack(struct ipc_msg *m, const char *data, size_t len,
		      bool copy, msgpack_zone *zone, struct husk_err **err)
{
	msgpack_unpack_return r;
	char *buf = (char *)data;
	size_t off = 0;

	if (zone) {
		/* m->un.zone stays NULL: the zone is the caller's. */
		r = msgpack_unpack(buf, len, &off, zone, &m->un.data);
		m->raw = buf;
		m->raw_len = (uint32_t)len;
		if (r == MSGPACK_UNPACK_EXTRA_BYTES)
			r = MSGPACK_UNPACK_PARSE_ERROR;
		goto done;
	}
	if (copy) {
		buf = malloc(len);
		if (!buf)
			return husk_error_sys(err, ENOMEM,
					      "message of %zu bytes", len);
		memcpy(buf, data, len);
	}
	r = msgpack_unpack_next(&m->un, buf, len, NULL);
	m->raw = buf;
	m->raw_len = (uint32_t)len;
	if (!copy)
		goto done;
	if (!m->un.zone)
		m->un.zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (!m->un.zone || !msgpack_zone_push_finalizer(m->un.zone, free,
							 buf)) {
		free(buf);
		return husk_error_sys(err, ENOMEM, "message of %zu bytes",
				      len);
	}
done:
	if (r == MSGPACK_UNPACK_NOMEM_ERROR)
		return husk_error_sys(err, ENOMEM, "message of %zu bytes",
				      len);
	if (r != MSGPACK_UNPACK_SUCCESS)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "message cannot be unpacked (%d)", (int)r);
	return 0;
}

static int msg_parse(struct ipc_msg *m, const char *data, size_t len,
		     bool copy, msgpack_zone *zone, struct husk_err **err)
{
	msg_init(m);
	if (ipc_msgpack_check(data, len, err) < 0)
		return -1;
	if (msg_unpack(m, data, len, copy, zone, err) < 0 ||
	    msg_shape(m, err) < 0) {
		ipc_msg_free(m);
		msg_init(m);
		return -1;
	}
	return 0;
}

int ipc_msg_parse(struct ipc_msg *m, const char *data, size_t len,
		  struct husk_err **err)
{
	return msg_parse(m, data, len, true, NULL, err);
}

int ipc_msg_parse_ref(struct ipc_msg *m, const char *data, size_t len,
		      struct husk_err **err)
{
	return msg_parse(m, data, len, false, NULL, err);
}

int ipc_msg_parse_zone(struct ipc_msg *m, const char *data, size_t len,
		       msgpack_zone *zone, struct husk_err **err)
{
	return msg_parse(m, data, len, false, zone, err);
}

size_t ipc_utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n;

	if (len <= max)
		return len;
	/* Back off over continuation bytes to the start of a sequence. */
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

int ipc_error_decode(const msgpack_object *error, struct husk_err **err)
{
	const msgpack_object *code = ipc_map_get(error, "code");
	const msgpack_object *msg = ipc_map_get(error, "message");
	char text[4 * IPC_ERRMSG_MAX + 1];
	size_t n;
	int c;

	if (!code || !msg || msg->type != MSGPACK_OBJECT_STR)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "malformed error in a response");
	/* Codes we do not know yet are kept: a newer peer may send them. */
	if (code->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    code->via.u64 >= 1 && code->via.u64 <= INT_MAX)
		c = (int)code->via.u64;
	else
		c = HUSK_E_INTERNAL;
	/* The peer's text is escaped here, once: the error goes on to logs
	 * and to the terminal of whoever ran the command. */
	n = ipc_utf8_cut(msg->via.str.ptr, msg->via.str.size, IPC_ERRMSG_MAX);
	n = husk_escape_buf(msg->via.str.ptr, n, text, sizeof(text));
	return husk_error(err, c, "%s", n ? text : husk_errcode_name(c));
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

/*
 * The packer writes through this rather than msgpack_sbuffer_write so
 * that an allocation failure is remembered: the size drops below the
 * reserved header, later writes refuse, and ipc_buf_finish reports it
 * instead of sending a message with a hole in it.
 */
static int buf_write(void *data, const char *p, size_t n)
{
	struct ipc_buf *b = data;

	if (b->sb.size < IPC_FRAME_HDR)
		return -1;
	if (msgpack_sbuffer_write(&b->sb, p, n) < 0) {
		b->sb.size = 0;
		return -1;
	}
	return 0;
}

static void buf_reserve(struct ipc_buf *b)
{
	static const char zero[IPC_FRAME_HDR];

	b->sb.size = 0;
	msgpack_sbuffer_write(&b->sb, zero, sizeof(zero));
}

void ipc_buf_init(struct ipc_buf *b)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, b, buf_write);
	buf_reserve(b);
}

void ipc_buf_destroy(struct ipc_buf *b)
{
	msgpack_sbuffer_destroy(&b->sb);
	msgpack_sbuffer_init(&b->sb);
}

void ipc_buf_reset(struct ipc_buf *b)
{
	buf_reserve(b);
}

msgpack_packer *ipc_pack_request(struct ipc_buf *b, uint32_t msgid,
				 const char *method)
{
	ipc_buf_reset(b);
	msgpack_pack_array(&b->pk, 4);
	msgpack_pack_uint8(&b->pk, IPC_REQUEST);
	msgpack_pack_uint32(&b->pk, msgid);
	ipc_pack_str(&b->pk, method);
	return &b->pk;
}

msgpack_packer *ipc_pack_response(struct ipc_buf *b, uint32_t msgid)
{
	ipc_buf_reset(b);
	msgpack_pack_array(&b->pk, 4);
	msgpack_pack_uint8(&b->pk, IPC_RESPONSE);
	msgpack_pack_uint32(&b->pk, msgid);
	msgpack_pack_nil(&b->pk);
	return &b->pk;
}

msgpack_packer *ipc_pack_notify(struct ipc_buf *b, const char *method)
{
	ipc_buf_reset(b);
	msgpack_pack_array(&b->pk, 3);
	msgpack_pack_uint8(&b->pk, IPC_NOTIFY);
	ipc_pack_str(&b->pk, method);
	return &b->pk;
}

void ipc_pack_error(struct ipc_buf *b, uint32_t msgid, int code,
		    const char *message)
{
	size_t n;

	if (!message)
		message = "";
	n = ipc_utf8_cut(message, strlen(message), IPC_ERRMSG_MAX);
	ipc_buf_reset(b);
	msgpack_pack_array(&b->pk, 4);
	msgpack_pack_uint8(&b->pk, IPC_RESPONSE);
	msgpack_pack_uint32(&b->pk, msgid);
	msgpack_pack_map(&b->pk, 2);
	ipc_pack_kv_int(&b->pk, "code", code);
	ipc_pack_key(&b->pk, "message");
	msgpack_pack_str(&b->pk, n);
	msgpack_pack_str_body(&b->pk, message, n);
	msgpack_pack_nil(&b->pk);
}

int ipc_buf_finish(struct ipc_buf *b, uint32_t max, struct husk_err **err)
{
	unsigned char *h = (unsigned char *)b->sb.data;
	size_t len;

	if (!h || b->sb.size < IPC_FRAME_HDR)
		return husk_error_sys(err, ENOMEM, "packing a message");
	len = b->sb.size - IPC_FRAME_HDR;
	if (max == 0)
		max = IPC_FRAME_MAX_DEFAULT;
	if (len == 0)
		return husk_error(err, HUSK_E_INTERNAL, "empty message");
	if (len > max)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "message of %zu bytes is over the frame limit of %u",
				  len, max);
	h[0] = (unsigned char)(len >> 24);
	h[1] = (unsigned char)(len >> 16);
	h[2] = (unsigned char)(len >> 8);
	h[3] = (unsigned char)len;
	return 0;
}

void ipc_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n;

	if (!s) {
		msgpack_pack_nil(pk);
		return;
	}
	n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void ipc_pack_key(msgpack_packer *pk, const char *k)
{
	ipc_pack_str(pk, k);
}

void ipc_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	ipc_pack_key(pk, k);
	ipc_pack_str(pk, v);
}

void ipc_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
	ipc_pack_key(pk, k);
	msgpack_pack_int64(pk, v);
}

void ipc_pack_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
	ipc_pack_key(pk, k);
	msgpack_pack_uint64(pk, v);
}

void ipc_pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	ipc_pack_key(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void ipc_pack_kv_bin(msgpack_packer *pk, const char *k, const void *p,
		     size_t len)
{
	ipc_pack_key(pk, k);
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, p, len);
}
