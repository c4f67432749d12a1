/*
 * ttrpc framing, the decoders of what arrives on the socket, the write
 * queue and the protobuf helpers: everything that does not need the
 * event loop (the fuzz target links this file alone).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/ttrpc.h"
#include "shimv2/ttrpc-int.h"

int ttrpc_code_from_husk(int husk_code)
{
	switch (husk_code) {
	case HUSK_E_OK:			return TTRPC_OK;
	case HUSK_E_INVALID:		return TTRPC_INVALID_ARGUMENT;
	case HUSK_E_UNKNOWN_METHOD:	return TTRPC_UNIMPLEMENTED;
	case HUSK_E_NOT_FOUND:		return TTRPC_NOT_FOUND;
	case HUSK_E_EXISTS:		return TTRPC_ALREADY_EXISTS;
	case HUSK_E_STATE:		return TTRPC_FAILED_PRECONDITION;
	case HUSK_E_PERMISSION:		return TTRPC_PERMISSION_DENIED;
	case HUSK_E_TIMEOUT:		return TTRPC_DEADLINE_EXCEEDED;
	case HUSK_E_UNAVAILABLE:	return TTRPC_UNAVAILABLE;
	case HUSK_E_NOT_IMPLEMENTED:	return TTRPC_UNIMPLEMENTED;
	case HUSK_E_TOO_LARGE:		return TTRPC_RESOURCE_EXHAUSTED;
	case HUSK_E_PROTOCOL:		return TTRPC_INVALID_ARGUMENT;
	case HUSK_E_CANCELLED:		return TTRPC_CANCELLED;
	case HUSK_E_VERSION:		return TTRPC_FAILED_PRECONDITION;
	default:			return TTRPC_INTERNAL;
	}
}

const char *ttrpc_code_name(int code)
{
	static const char *const names[] = {
		"OK", "Canceled", "Unknown", "InvalidArgument",
		"DeadlineExceeded", "NotFound", "AlreadyExists",
		"PermissionDenied", "ResourceExhausted", "FailedPrecondition",
		"Aborted", "OutOfRange", "Unimplemented", "Internal",
		"Unavailable", "DataLoss", "Unauthenticated",
	};

	if (code < 0 || (size_t)code >= HUSK_ARRAY_SIZE(names))
		return "Unknown";
	return names[code];
}

/* ------------------------------------------------------------ framing */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

void ttrpc_hdr_put(uint8_t out[TTRPC_HDR_LEN], const struct ttrpc_hdr *h)
{
	put_be32(out, h->len);
	put_be32(out + 4, h->stream);
	out[8] = h->type;
	out[9] = h->flags;
}

void ttrpc_hdr_get(struct ttrpc_hdr *h, const uint8_t in[TTRPC_HDR_LEN])
{
	h->len = get_be32(in);
	h->stream = get_be32(in + 4);
	h->type = in[8];
	h->flags = in[9];
}

void ttrpc_reader_init(struct ttrpc_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void ttrpc_reader_free(struct ttrpc_reader *r)
{
	free(r->buf);
	ttrpc_reader_init(r);
}

int ttrpc_reader_feed(struct ttrpc_reader *r, const void *data, size_t n,
		      ttrpc_frame_cb cb, void *arg, struct husk_err **err)
{
	size_t used;
	int rc;

	while (n > 0) {
		rc = ttrpc_reader_feed_some(r, data, n, cb, arg, &used, err);
		if (rc < 0)
			return -1;
		data = (const uint8_t *)data + used;
		n -= used;
	}
	return 0;
}

int ttrpc_reader_feed_some(struct ttrpc_reader *r, const void *data,
			   size_t n, ttrpc_frame_cb cb, void *arg,
			   size_t *used, struct husk_err **err)
{
	const uint8_t *start = data, *p = data;
	int rc;

	*used = 0;

	while (n > 0) {
		if (r->hdr_got < TTRPC_HDR_LEN) {
			size_t k = TTRPC_HDR_LEN - r->hdr_got;

			if (k > n)
				k = n;
			memcpy(r->hdr + r->hdr_got, p, k);
			r->hdr_got += k;
			p += k;
			n -= k;
			if (r->hdr_got < TTRPC_HDR_LEN)
				break;
			ttrpc_hdr_get(&r->h, r->hdr);
			if (r->h.len > TTRPC_MAX_MSG)
				return husk_error(err, HUSK_E_TOO_LARGE,
					"ttrpc frame of %u bytes on stream %u "
					"over the %u-byte limit", r->h.len,
					r->h.stream, TTRPC_MAX_MSG);
			r->got = 0;
			/* A whole payload already here is passed in place. */
			if (r->h.len <= n) {
				const uint8_t *payload = p;

				p += r->h.len;
				n -= r->h.len;
				r->hdr_got = 0;
				rc = cb(arg, &r->h, payload, err);
				if (rc < 0)
					return -1;
				if (rc > 0) {
					*used = p - start;
					return 1;
				}
				continue;
			}
			r->buf = malloc(r->h.len);
			if (!r->buf)
				return husk_error_sys(err, errno,
					"ttrpc frame of %u bytes", r->h.len);
		}
		size_t k = r->h.len - r->got;

		if (k > n)
			k = n;
		memcpy(r->buf + r->got, p, k);
		r->got += k;
		p += k;
		n -= k;
		if (r->got < r->h.len)
			break;

		uint8_t *payload = husk_steal_ptr(r->buf);

		r->hdr_got = 0;
		r->got = 0;
		rc = cb(arg, &r->h, payload, err);
		free(payload);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			*used = p - start;
			return 1;
		}
	}
	*used = p - start;
	return 0;
}

bool ttrpc_reader_partial(const struct ttrpc_reader *r)
{
	return r->hdr_got > 0;
}

/* ----------------------------------------------------------- decoders */

static int get_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*off >= n)
			return -1;
		uint8_t b = p[(*off)++];

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/*
 * protobuf-c allocates a struct for every submessage and keeps every
 * unknown field: 4 MiB of two-byte empty submessages would become
 * hundreds of MB.  So the wire is walked first, against the message's
 * descriptor, and refused past TTRPC_MAX_FIELDS fields at any depth.
 */
static int pb_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p,
		   size_t n, unsigned depth, size_t *count,
		   struct husk_err **err)
{
	size_t off = 0;

	if (depth > TTRPC_MAX_DEPTH)
		return husk_error(err, HUSK_E_PROTOCOL, "%s nested over %d "
				  "deep", d->name, TTRPC_MAX_DEPTH);
	while (off < n) {
		const ProtobufCFieldDescriptor *f;
		uint64_t tag, len;

		if (get_varint(p, n, &off, &tag) < 0)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "%s: truncated tag", d->name);
		if (tag >> 3 == 0 || tag >> 3 > UINT32_MAX)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "%s: field number %llu", d->name,
					  (unsigned long long)(tag >> 3));
		f = protobuf_c_message_descriptor_get_field(d, tag >> 3);
		if (++*count > TTRPC_MAX_FIELDS)
			return husk_error(err, HUSK_E_TOO_LARGE,
					  "%s: over %d fields", d->name,
					  TTRPC_MAX_FIELDS);
		switch (tag & 7) {
		case 0:
			if (get_varint(p, n, &off, &len) < 0)
				return husk_error(err, HUSK_E_PROTOCOL,
						  "%s: truncated varint",
						  d->name);
			break;
		case 1:
		case 5: {
			size_t w = (tag & 7) == 1 ? 8 : 4;

			if (n - off < w)
				return husk_error(err, HUSK_E_PROTOCOL,
						  "%s: truncated fixed field",
						  d->name);
			off += w;
			break;
		}
		case 2:
			if (get_varint(p, n, &off, &len) < 0 || len > n - off)
				return husk_error(err, HUSK_E_PROTOCOL,
						  "%s: field %llu overruns the "
						  "message", d->name,
						  (unsigned long long)(tag >> 3));
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (pb_walk(f->descriptor, p + off, len,
					    depth + 1, count, err) < 0)
					return -1;
			} else if (f && f->type != PROTOBUF_C_TYPE_STRING &&
				   f->type != PROTOBUF_C_TYPE_BYTES) {
				/* Packed scalars: up to one per byte. */
				*count += len;
				if (*count > TTRPC_MAX_FIELDS)
					return husk_error(err,
						HUSK_E_TOO_LARGE, "%s: over %d "
						"fields", d->name,
						TTRPC_MAX_FIELDS);
			}
			off += len;
			break;
		default:
			return husk_error(err, HUSK_E_PROTOCOL, "%s: wire type "
					  "%u", d->name, (unsigned)(tag & 7));
		}
	}
	return 0;
}

int ttrpc_decode(const ProtobufCMessageDescriptor *d, const uint8_t *p,
		 size_t n, ProtobufCMessage **out, struct husk_err **err)
{
	size_t count = 0;

	*out = NULL;
	if (n > TTRPC_MAX_MSG)
		return husk_error(err, HUSK_E_TOO_LARGE, "%s of %zu bytes",
				  d->name, n);
	if (pb_walk(d, p, n, 0, &count, err) < 0)
		return -1;
	*out = protobuf_c_message_unpack(d, NULL, n, p);
	if (!*out)
		return husk_error(err, HUSK_E_PROTOCOL, "%zu bytes are not a "
				  "valid %s", n, d->name);
	return 0;
}

/* Service and method names index the method table and go into log
 * lines: printable ASCII, bounded. */
static int check_name(const char *s, const char *what, struct husk_err **err)
{
	size_t n = 0;

	if (!s || !*s)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "ttrpc request without a %s", what);
	for (; s[n]; n++) {
		if (s[n] < 0x21 || s[n] > 0x7e)
			return husk_error(err, HUSK_E_PROTOCOL,
				"ttrpc request %s has byte 0x%02x at %zu",
				what, (unsigned char)s[n], n);
		if (n >= TTRPC_NAME_MAX)
			return husk_error(err, HUSK_E_PROTOCOL,
				"ttrpc request %s over %d bytes", what,
				TTRPC_NAME_MAX);
	}
	return 0;
}

int ttrpc_request_decode(const uint8_t *p, size_t n, Ttrpc__Request **out,
			 struct husk_err **err)
{
	Ttrpc__Request *req;

	*out = NULL;
	if (ttrpc_decode(&ttrpc__request__descriptor, p, n,
			 (ProtobufCMessage **)&req, err) < 0)
		return husk_error_wrap(err, "ttrpc request");
	if (check_name(req->service, "service", err) < 0 ||
	    check_name(req->method, "method", err) < 0) {
		ttrpc__request__free_unpacked(req, NULL);
		return -1;
	}
	if (req->n_metadata > TTRPC_META_MAX) {
		husk_error(err, HUSK_E_PROTOCOL,
			   "ttrpc request with %zu metadata pairs (max %d)",
			   req->n_metadata, TTRPC_META_MAX);
		ttrpc__request__free_unpacked(req, NULL);
		return -1;
	}
	*out = req;
	return 0;
}

int ttrpc_response_decode(const uint8_t *p, size_t n, Ttrpc__Response **out,
			  struct husk_err **err)
{
	Ttrpc__Response *resp;

	*out = NULL;
	if (ttrpc_decode(&ttrpc__response__descriptor, p, n,
			 (ProtobufCMessage **)&resp, err) < 0)
		return husk_error_wrap(err, "ttrpc response");
	*out = resp;
	return 0;
}

/* -------------------------------------------------------- write queue */

int ttrpc_set_nonblock(int fd, struct husk_err **err)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return husk_error_sys(err, errno, "fcntl O_NONBLOCK on fd %d",
				      fd);
	return 0;
}

int ttrpc_wq_push(struct ttrpc_wq *q, uint32_t stream, uint8_t type,
		  const ProtobufCMessage *m, struct husk_err **err)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	struct ttrpc_wbuf *b;
	struct ttrpc_hdr h = { .len = n, .stream = stream, .type = type };

	if (n > TTRPC_MAX_MSG)
		return husk_error(err, HUSK_E_TOO_LARGE,
			"ttrpc message of %zu bytes over the %u-byte limit",
			n, TTRPC_MAX_MSG);
	b = malloc(sizeof(*b) + TTRPC_HDR_LEN + n);
	if (!b)
		return husk_error_sys(err, errno, "ttrpc message of %zu bytes",
				      n);
	b->next = NULL;
	b->len = TTRPC_HDR_LEN + n;
	b->off = 0;
	ttrpc_hdr_put(b->data, &h);
	protobuf_c_message_pack(m, b->data + TTRPC_HDR_LEN);
	if (q->tail)
		q->tail->next = b;
	else
		q->head = b;
	q->tail = b;
	q->bytes += b->len;
	return 0;
}

int ttrpc_wq_flush(struct ttrpc_wq *q, int fd, struct husk_err **err)
{
	while (q->head) {
		struct iovec iov[16];
		struct msghdr mh = { .msg_iov = iov };
		struct ttrpc_wbuf *b = q->head;
		ssize_t w;

		for (; b && mh.msg_iovlen < HUSK_ARRAY_SIZE(iov); b = b->next) {
			iov[mh.msg_iovlen].iov_base = b->data + b->off;
			iov[mh.msg_iovlen].iov_len = b->len - b->off;
			mh.msg_iovlen++;
		}
		/* MSG_NOSIGNAL: a peer gone is an error here, not SIGPIPE. */
		w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return husk_error_sys(err, errno, "ttrpc write");
		}
		q->bytes -= w;
		while (w > 0) {
			b = q->head;
			size_t left = b->len - b->off;

			if ((size_t)w < left) {
				b->off += w;
				break;
			}
			w -= left;
			q->head = b->next;
			if (!q->head)
				q->tail = NULL;
			free(b);
		}
	}
	return 0;
}

void ttrpc_wq_free(struct ttrpc_wq *q)
{
	while (q->head) {
		struct ttrpc_wbuf *b = q->head;

		q->head = b->next;
		free(b);
	}
	q->tail = NULL;
	q->bytes = 0;
}

/* --------------------------------------------------- protobuf helpers */

int ttrpc_pack(const ProtobufCMessage *m, uint8_t **out, size_t *n,
	       struct husk_err **err)
{
	Gpb__Empty empty = GPB__EMPTY__INIT;
	size_t len;
	uint8_t *buf;

	if (!m)
		m = &empty.base;
	len = protobuf_c_message_get_packed_size(m);
	if (len > TTRPC_MAX_MSG)
		return husk_error(err, HUSK_E_TOO_LARGE,
			"%s of %zu bytes over the %u-byte limit",
			m->descriptor->name, len, TTRPC_MAX_MSG);
	buf = malloc(len ? len : 1);
	if (!buf)
		return husk_error_sys(err, errno, "%s of %zu bytes",
				      m->descriptor->name, len);
	protobuf_c_message_pack(m, buf);
	*out = buf;
	*n = len;
	return 0;
}

int ttrpc_any_pack(Gpb__Any *any, const char *type_url,
		   const ProtobufCMessage *m, struct husk_err **err)
{
	cleanup_free char *url = strdup(type_url);
	uint8_t *buf;
	size_t n;

	if (!url)
		return husk_error_sys(err, errno, "any %s", type_url);
	if (ttrpc_pack(m, &buf, &n, err) < 0)
		return -1;
	gpb__any__init(any);
	any->type_url = husk_steal_ptr(url);
	any->value.data = buf;
	any->value.len = n;
	return 0;
}

void ttrpc_any_clear(Gpb__Any *any)
{
	if (any->type_url != protobuf_c_empty_string)
		free(any->type_url);
	free(any->value.data);
	gpb__any__init(any);
}

/* "type.googleapis.com/x.y.Z" and "x.y.Z" name the same type. */
static const char *type_name(const char *url)
{
	const char *slash = strrchr(url, '/');

	return slash ? slash + 1 : url;
}

int ttrpc_any_unpack(const Gpb__Any *any, const char *type_url,
		     const ProtobufCMessageDescriptor *d,
		     ProtobufCMessage **out, struct husk_err **err)
{
	*out = NULL;
	if (!any || !any->type_url)
		return husk_error(err, HUSK_E_INVALID,
				  "no %s given", type_url);
	if (strcmp(type_name(any->type_url), type_name(type_url)) != 0)
		return husk_error(err, HUSK_E_INVALID,
				  "an Any of type \"%.128s\" where %s was "
				  "expected", any->type_url, type_url);
	if (ttrpc_decode(d, any->value.data, any->value.len, out, err) < 0) {
		if (err && *err)
			(*err)->code = HUSK_E_INVALID;
		return husk_error_wrap(err, "%s", type_url);
	}
	return 0;
}

void ttrpc_timestamp_set(Gpb__Timestamp *ts, const struct timespec *t)
{
	gpb__timestamp__init(ts);
	ts->seconds = t->tv_sec;
	ts->nanos = t->tv_nsec;
}
