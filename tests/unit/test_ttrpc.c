/*
 * shimv2/ttrpc*.c and shimv2/events.c: the frame reader at any read
 * boundary, the server against a peer that writes frames by hand,
 * client and server over a socketpair, and the events publisher
 * against a fake containerd that is not there at first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ipc_testlib.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/events.h"
#include "shimv2/ttrpc.h"
#include "shimv2/proto/task.pb-c.h"

#define SVC "containerd.task.v2.Task"

/* ------------------------------------------------------ frame reader */

struct seen {
	int n;
	struct ttrpc_hdr h[8];
	size_t len[8];
	uint8_t first[8], last[8];
	int stop_at;	/* return -1 on this frame (1-based), 0: never */
};

static int seen_cb(void *arg, const struct ttrpc_hdr *h,
		   const uint8_t *payload, struct husk_err **err)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	s->h[s->n] = *h;
	s->len[s->n] = h->len;
	s->first[s->n] = h->len ? payload[0] : 0;
	s->last[s->n] = h->len ? payload[h->len - 1] : 0;
	s->n++;
	if (s->stop_at == s->n)
		return husk_error(err, HUSK_E_PROTOCOL, "stop");
	return 0;
}

/* Three frames back to back: 0, 7 and 70000 bytes of payload. */
static size_t make_stream(uint8_t **out)
{
	static const uint32_t lens[] = { 0, 7, 70000 };
	size_t total = 0, off = 0;
	uint8_t *buf;

	for (size_t i = 0; i < 3; i++)
		total += TTRPC_HDR_LEN + lens[i];
	buf = malloc(total);
	assert_non_null(buf);
	for (size_t i = 0; i < 3; i++) {
		struct ttrpc_hdr h = { .len = lens[i], .stream = 2 * i + 1,
				       .type = 1, .flags = (uint8_t)i };

		ttrpc_hdr_put(buf + off, &h);
		off += TTRPC_HDR_LEN;
		for (uint32_t k = 0; k < lens[i]; k++)
			buf[off + k] = (uint8_t)(i * 16 + k % 13);
		off += lens[i];
	}
	*out = buf;
	return total;
}

static void check_stream(const struct seen *s)
{
	assert_int_equal(s->n, 3);
	assert_int_equal(s->len[0], 0);
	assert_int_equal(s->len[1], 7);
	assert_int_equal(s->len[2], 70000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(s->h[i].stream, 2 * i + 1);
		assert_int_equal(s->h[i].type, 1);
		assert_int_equal(s->h[i].flags, i);
	}
	assert_int_equal(s->first[1], 16);
	assert_int_equal(s->last[1], 16 + 6);
	assert_int_equal(s->first[2], 32);
	assert_int_equal(s->last[2], 32 + 69999 % 13);
}

static void test_hdr_big_endian(void **state)
{
	struct ttrpc_hdr h = { .len = 0x01020304, .stream = 0x0a0b0c0d,
			       .type = 2, .flags = 0x80 }, back;
	uint8_t b[TTRPC_HDR_LEN];
	static const uint8_t want[] = { 1, 2, 3, 4, 10, 11, 12, 13, 2, 0x80 };

	ttrpc_hdr_put(b, &h);
	assert_memory_equal(b, want, sizeof(want));
	ttrpc_hdr_get(&back, b);
	assert_int_equal(back.len, h.len);
	assert_int_equal(back.stream, h.stream);
	assert_int_equal(back.type, 2);
	assert_int_equal(back.flags, 0x80);
}

static void test_reader_one_read(void **state)
{
	cleanup_free uint8_t *buf = NULL;
	size_t n = make_stream(&buf);
	struct ttrpc_reader r;
	struct seen s = { 0 };

	ttrpc_reader_init(&r);
	assert_int_equal(ttrpc_reader_feed(&r, buf, n, seen_cb, &s, NULL), 0);
	check_stream(&s);
	ttrpc_reader_free(&r);
}

static void test_reader_split_reads(void **state)
{
	static const size_t cuts[] = { 1, 3, 9, 10, 11, 4096 };
	cleanup_free uint8_t *buf = NULL;
	size_t n = make_stream(&buf);

	for (size_t c = 0; c < HUSK_ARRAY_SIZE(cuts); c++) {
		struct ttrpc_reader r;
		struct seen s = { 0 };

		ttrpc_reader_init(&r);
		for (size_t off = 0; off < n; off += cuts[c]) {
			size_t k = n - off < cuts[c] ? n - off : cuts[c];

			assert_int_equal(ttrpc_reader_feed(&r, buf + off, k,
						seen_cb, &s, NULL), 0);
		}
		check_stream(&s);
		ttrpc_reader_free(&r);
	}
}

static void test_reader_oversized(void **state)
{
	struct ttrpc_hdr h = { .len = TTRPC_MAX_MSG + 1, .stream = 1,
			       .type = 1 };
	uint8_t b[TTRPC_HDR_LEN];
	struct ttrpc_reader r;
	struct seen s = { 0 };
	cleanup_err struct husk_err *err = NULL;

	ttrpc_hdr_put(b, &h);
	ttrpc_reader_init(&r);
	assert_int_equal(ttrpc_reader_feed(&r, b, sizeof(b), seen_cb, &s,
					   &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	assert_non_null(strstr(err->msg, "4194305"));
	assert_null(r.buf);
	assert_int_equal(s.n, 0);
	ttrpc_reader_free(&r);

	/* Exactly the limit is a frame. */
	cleanup_free uint8_t *big = calloc(1, TTRPC_HDR_LEN + TTRPC_MAX_MSG);

	assert_non_null(big);
	h.len = TTRPC_MAX_MSG;
	ttrpc_hdr_put(big, &h);
	ttrpc_reader_init(&r);
	assert_int_equal(ttrpc_reader_feed(&r, big, 100, seen_cb, &s, NULL), 0);
	assert_int_equal(ttrpc_reader_feed(&r, big + 100,
					   TTRPC_HDR_LEN + TTRPC_MAX_MSG - 100,
					   seen_cb, &s, NULL), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len[0], TTRPC_MAX_MSG);
	ttrpc_reader_free(&r);
}

static void test_reader_callback_stops(void **state)
{
	cleanup_free uint8_t *buf = NULL;
	size_t n = make_stream(&buf);
	struct ttrpc_reader r;
	struct seen s = { .stop_at = 2 };
	cleanup_err struct husk_err *err = NULL;

	ttrpc_reader_init(&r);
	assert_int_equal(ttrpc_reader_feed(&r, buf, n, seen_cb, &s, &err), -1);
	assert_int_equal(s.n, 2);
	assert_string_equal(err->msg, "stop");
	ttrpc_reader_free(&r);
}

/* ---------------------------------------------------------- decoders */

static size_t pack_request(uint8_t *out, size_t max, const char *svc,
			   const char *method, const ProtobufCMessage *m)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	uint8_t payload[4096];
	size_t n;

	req.service = (char *)svc;
	req.method = (char *)method;
	if (m) {
		n = protobuf_c_message_get_packed_size(m);
		assert_true(n <= sizeof(payload));
		protobuf_c_message_pack(m, payload);
		req.payload.data = payload;
		req.payload.len = n;
	}
	n = ttrpc__request__get_packed_size(&req);
	assert_true(n <= max);
	return ttrpc__request__pack(&req, out);
}

static void test_request_decode(void **state)
{
	Task__StartRequest sr = TASK__START_REQUEST__INIT;
	uint8_t buf[8192];
	Ttrpc__Request *req;
	size_t n;

	sr.id = "c1";
	n = pack_request(buf, sizeof(buf), SVC, "Start", &sr.base);
	assert_int_equal(ttrpc_request_decode(buf, n, &req, NULL), 0);
	assert_string_equal(req->service, SVC);
	assert_string_equal(req->method, "Start");
	assert_true(req->payload.len > 0);
	ttrpc__request__free_unpacked(req, NULL);

	const char *bad[][2] = {
		{ "", "Start" }, { SVC, "" }, { "svc with space", "Start" },
		{ SVC, "Sta\nrt" },
	};
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++) {
		cleanup_err struct husk_err *err = NULL;

		n = pack_request(buf, sizeof(buf), bad[i][0], bad[i][1], NULL);
		assert_int_equal(ttrpc_request_decode(buf, n, &req, &err), -1);
		assert_null(req);
		assert_int_equal(err->code, HUSK_E_PROTOCOL);
	}

	/* Not protobuf: field 1 as a length of 100 with 2 bytes after. */
	static const uint8_t junk[] = { 0x0a, 100, 'a', 'b' };
	cleanup_err struct husk_err *err = NULL;

	assert_int_equal(ttrpc_request_decode(junk, sizeof(junk), &req, &err),
			 -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
	assert_non_null(strstr(err->msg, "ttrpc request"));
}

/* 4 MiB of empty submessages would be 2 million structs: refused
 * before protobuf-c allocates any; a few thousand are fine. */
static void test_decode_field_bound(void **state)
{
	size_t n = 4u << 20;
	cleanup_free uint8_t *b = malloc(n);
	ProtobufCMessage *m;
	cleanup_err struct husk_err *err = NULL;

	assert_non_null(b);
	for (size_t i = 0; i < n; i += 2) {
		b[i] = 0x1a;	/* field 3 (rootfs), length-delimited */
		b[i + 1] = 0;
	}
	assert_int_equal(ttrpc_decode(&task__create_task_request__descriptor,
				      b, n, &m, &err), -1);
	assert_null(m);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	/* Unknown fields count too. */
	for (size_t i = 0; i < n; i += 2)
		b[i] = 0x78;	/* field 15, varint */
	assert_int_equal(ttrpc_decode(&task__start_request__descriptor,
				      b, n, &m, &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	/* Metadata pairs in the ttrpc.Request itself. */
	for (size_t i = 0; i < n; i += 2)
		b[i] = 0x2a;	/* field 5 (metadata) */
	assert_int_equal(ttrpc_request_decode(b, n, (Ttrpc__Request **)&m,
					      &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);

	for (size_t i = 0; i < 2 * 4000; i += 2)
		b[i] = 0x1a;
	assert_int_equal(ttrpc_decode(&task__create_task_request__descriptor,
				      b, 2 * 4000, &m, NULL), 0);
	assert_int_equal(((Task__CreateTaskRequest *)m)->n_rootfs, 4000);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Truncated and group wire types. */
	static const uint8_t trunc[] = { 0x0a, 0x05, 'a' };
	static const uint8_t group[] = { 0x0b, 0x0c };

	assert_int_equal(ttrpc_decode(&task__start_request__descriptor, trunc,
				      sizeof(trunc), &m, &err), -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
	husk_err_clear(&err);
	assert_int_equal(ttrpc_decode(&task__start_request__descriptor, group,
				      sizeof(group), &m, &err), -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
}

/* ------------------------------------------------------------ server */

struct fx {
	struct ev_loop *loop;
	struct ttrpc_server *srv;
	int raw;		/* our end of the socketpair */
	struct ttrpc_call *held[8];
	int nheld;
	int orphans;
	int conn_closed;
	/* client side */
	struct ttrpc_client *cli;
	int ndone;
	int codes[8];
	char msgs[8][256];
	uint32_t pids[8];
	/* events */
	int forwarded;
	char topics[8][64];
	char urls[8][64];
	char ns[64];
	uint32_t exit_pid;
	int refuse_first;
	int drained;
};

/* Start: answers StartResponse{pid = strlen(id)} at once. */
static void h_start(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StartRequest *req = (const Task__StartRequest *)m;
	Task__StartResponse r = TASK__START_RESPONSE__INIT;

	r.pid = strlen(req->id);
	ttrpc_reply(call, &r.base);
}

/* Wait: held until the test answers it. */
static void orphan_cb(struct ttrpc_call *call, void *arg)
{
	struct fx *f = arg;

	f->orphans++;
	assert_true(ttrpc_call_orphaned(call));
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	struct fx *f = arg;

	assert_true(f->nheld < 8);
	ttrpc_call_on_orphan(call, orphan_cb, f);
	f->held[f->nheld++] = call;
}

static const struct ttrpc_method methods[] = {
	{ SVC, "Start", &task__start_request__descriptor, h_start },
	{ SVC, "Wait", &task__wait_request__descriptor, h_wait },
};

static void conn_closed_cb(struct ttrpc_server *s, void *arg)
{
	((struct fx *)arg)->conn_closed++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int sv[2];

	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
				    SOCK_CLOEXEC, 0, sv), 0);
	f->srv = ttrpc_server_new(f->loop, methods, HUSK_ARRAY_SIZE(methods),
				  f);
	assert_non_null(f->srv);
	ttrpc_server_on_conn_close(f->srv, conn_closed_cb, f);
	assert_non_null(ttrpc_server_add_fd(f->srv, sv[0], NULL));
	f->raw = sv[1];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < f->nheld; i++)
		if (f->held[i])
			ttrpc_call_drop(f->held[i]);
	ttrpc_client_free(f->cli);
	ttrpc_server_free(f->srv);
	if (f->raw >= 0)
		close(f->raw);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static void raw_send(struct fx *f, uint32_t stream, uint8_t type,
		     const void *p, size_t n)
{
	uint8_t hdr[TTRPC_HDR_LEN];
	struct ttrpc_hdr h = { .len = n, .stream = stream, .type = type };

	ttrpc_hdr_put(hdr, &h);
	assert_int_equal(write(f->raw, hdr, sizeof(hdr)), sizeof(hdr));
	if (n)
		assert_int_equal(write(f->raw, p, n), (ssize_t)n);
}

static void raw_call(struct fx *f, uint32_t stream, const char *method,
		     const ProtobufCMessage *m)
{
	uint8_t buf[8192];
	size_t n = pack_request(buf, sizeof(buf), SVC, method, m);

	raw_send(f, stream, TTRPC_TYPE_REQUEST, buf, n);
}

/* Run the loop until the raw end can read; then read exactly n. */
static void raw_read(struct fx *f, void *p, size_t n)
{
	size_t got = 0;
	double end = ev_time() + TEST_DEADLINE;

	while (got < n && ev_time() < end) {
		ssize_t r = read(f->raw, (uint8_t *)p + got, n - got);

		if (r > 0) {
			got += r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		ev_run(f->loop, EVRUN_NOWAIT);
		poll(&(struct pollfd){ .fd = f->raw, .events = POLLIN }, 1, 10);
	}
	assert_int_equal(got, n);
}

/* Read one response frame: its stream, status and payload. */
static Ttrpc__Response *raw_response(struct fx *f, uint32_t *stream)
{
	uint8_t hdr[TTRPC_HDR_LEN];
	struct ttrpc_hdr h;
	cleanup_free uint8_t *p = NULL;
	Ttrpc__Response *resp;

	raw_read(f, hdr, sizeof(hdr));
	ttrpc_hdr_get(&h, hdr);
	assert_int_equal(h.type, TTRPC_TYPE_RESPONSE);
	assert_true(h.len <= TTRPC_MAX_MSG);
	p = malloc(h.len + 1);
	raw_read(f, p, h.len);
	assert_int_equal(ttrpc_response_decode(p, h.len, &resp, NULL), 0);
	*stream = h.stream;
	return resp;
}

static int status_of(const Ttrpc__Response *r)
{
	return r->status ? r->status->code : 0;
}

static void test_server_unimplemented(void **state)
{
	struct fx *f = *state;
	uint8_t buf[1024];
	Ttrpc__Response *r;
	uint32_t stream;
	size_t n;

	raw_call(f, 1, "Checkpoint", NULL);
	r = raw_response(f, &stream);
	assert_int_equal(stream, 1);
	assert_int_equal(status_of(r), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(r->status->message, "Checkpoint"));
	ttrpc__response__free_unpacked(r, NULL);

	n = pack_request(buf, sizeof(buf), "no.such.Service", "Start", NULL);
	raw_send(f, 3, TTRPC_TYPE_REQUEST, buf, n);
	r = raw_response(f, &stream);
	assert_int_equal(stream, 3);
	assert_int_equal(status_of(r), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(r->status->message, "no.such.Service"));
	ttrpc__response__free_unpacked(r, NULL);
}

static void test_server_out_of_order(void **state)
{
	struct fx *f = *state;
	Task__WaitRequest w = TASK__WAIT_REQUEST__INIT;
	Task__StartRequest s = TASK__START_REQUEST__INIT;
	Ttrpc__Response *r;
	uint32_t stream;

	w.id = "c1";
	s.id = "abcd";
	raw_call(f, 1, "Wait", &w.base);
	raw_call(f, 3, "Wait", &w.base);
	raw_call(f, 5, "Start", &s.base);

	/* Start is answered while both Waits are in flight. */
	r = raw_response(f, &stream);
	assert_int_equal(stream, 5);
	assert_int_equal(status_of(r), 0);
	Task__StartResponse *sr = task__start_response__unpack(
		NULL, r->payload.len, r->payload.data);
	assert_non_null(sr);
	assert_int_equal(sr->pid, 4);
	task__start_response__free_unpacked(sr, NULL);
	ttrpc__response__free_unpacked(r, NULL);
	assert_int_equal(f->nheld, 2);
	assert_string_equal(ttrpc_call_method(f->held[0]), "Wait");

	/* The later Wait first, then the earlier, as a status. */
	Task__WaitResponse wr = TASK__WAIT_RESPONSE__INIT;

	wr.exit_status = 7;
	ttrpc_reply(f->held[1], &wr.base);
	f->held[1] = NULL;
	ttrpc_reply_status(f->held[0], TTRPC_NOT_FOUND, "process %s gone",
			   "c1");
	f->held[0] = NULL;

	r = raw_response(f, &stream);
	assert_int_equal(stream, 3);
	Task__WaitResponse *got = task__wait_response__unpack(
		NULL, r->payload.len, r->payload.data);
	assert_non_null(got);
	assert_int_equal(got->exit_status, 7);
	task__wait_response__free_unpacked(got, NULL);
	ttrpc__response__free_unpacked(r, NULL);

	r = raw_response(f, &stream);
	assert_int_equal(stream, 1);
	assert_int_equal(status_of(r), TTRPC_NOT_FOUND);
	assert_string_equal(r->status->message, "process c1 gone");
	ttrpc__response__free_unpacked(r, NULL);
}

static void test_server_bad_frames(void **state)
{
	struct fx *f = *state;
	Task__StartRequest s = TASK__START_REQUEST__INIT;
	static const uint8_t junk[] = { 0x0a, 100, 'a' };
	Ttrpc__Response *r;
	uint32_t stream;

	s.id = "x";
	/* A frame of an unknown type is skipped, not answered. */
	raw_send(f, 1, 9, "abc", 3);
	/* An even stream id. */
	raw_call(f, 2, "Start", &s.base);
	r = raw_response(f, &stream);
	assert_int_equal(stream, 2);
	assert_int_equal(status_of(r), TTRPC_INVALID_ARGUMENT);
	ttrpc__response__free_unpacked(r, NULL);
	/* Not a Request. */
	raw_send(f, 3, TTRPC_TYPE_REQUEST, junk, sizeof(junk));
	r = raw_response(f, &stream);
	assert_int_equal(stream, 3);
	assert_int_equal(status_of(r), TTRPC_INVALID_ARGUMENT);
	ttrpc__response__free_unpacked(r, NULL);
	/* A Request whose payload is not the method's message. */
	uint8_t buf[256];
	Ttrpc__Request req = TTRPC__REQUEST__INIT;

	req.service = SVC;
	req.method = "Start";
	req.payload.data = (uint8_t *)junk;
	req.payload.len = sizeof(junk);
	raw_send(f, 5, TTRPC_TYPE_REQUEST, buf, ttrpc__request__pack(&req, buf));
	r = raw_response(f, &stream);
	assert_int_equal(stream, 5);
	assert_int_equal(status_of(r), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "StartRequest"));
	ttrpc__response__free_unpacked(r, NULL);
	/* A stream id used before. */
	raw_call(f, 5, "Start", &s.base);
	r = raw_response(f, &stream);
	assert_int_equal(stream, 5);
	assert_int_equal(status_of(r), TTRPC_INVALID_ARGUMENT);
	ttrpc__response__free_unpacked(r, NULL);
	/* And the connection still serves. */
	raw_call(f, 7, "Start", &s.base);
	r = raw_response(f, &stream);
	assert_int_equal(stream, 7);
	assert_int_equal(status_of(r), 0);
	ttrpc__response__free_unpacked(r, NULL);
}

static int held_many;

static void h_hold_many(struct ttrpc_call *call, const ProtobufCMessage *m,
			void *arg)
{
	struct ttrpc_call **held = arg;

	held[held_many++] = call;
}

static void test_server_inflight_bound(void **state)
{
	static const struct ttrpc_method hold[] = {
		{ SVC, "Wait", NULL, h_hold_many },
	};
	struct ttrpc_call **held = calloc(TTRPC_MAX_INFLIGHT + 1,
						 sizeof(*held));
	struct ttrpc_server *s;
	Ttrpc__Response *r;
	uint32_t stream;
	int sv[2];
	struct fx f = { 0 };

	assert_non_null(held);
	f.loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sv), 0);
	s = ttrpc_server_new(f.loop, hold, 1, held);
	assert_non_null(ttrpc_server_add_fd(s, sv[0], NULL));
	f.raw = sv[1];
	held_many = 0;
	for (int i = 0; i <= TTRPC_MAX_INFLIGHT; i++) {
		raw_call(&f, 2 * i + 1, "Wait", NULL);
		ev_run(f.loop, EVRUN_NOWAIT);
	}
	/* The one call over the bound is answered at once. */
	r = raw_response(&f, &stream);
	assert_int_equal(stream, 2 * TTRPC_MAX_INFLIGHT + 1);
	assert_int_equal(status_of(r), TTRPC_RESOURCE_EXHAUSTED);
	ttrpc__response__free_unpacked(r, NULL);
	assert_int_equal(held_many, TTRPC_MAX_INFLIGHT);
	/* Answering one makes room for one more. */
	ttrpc_reply(held[0], NULL);
	r = raw_response(&f, &stream);
	assert_int_equal(stream, 1);
	ttrpc__response__free_unpacked(r, NULL);
	raw_call(&f, 2 * TTRPC_MAX_INFLIGHT + 3, "Wait", NULL);
	tl_run_until(f.loop, &held_many, TTRPC_MAX_INFLIGHT + 1);
	ttrpc_server_free(s);
	for (int i = 1; i < held_many; i++)
		ttrpc_reply(held[i], NULL);	/* into nothing */
	close(f.raw);
	ev_loop_destroy(f.loop);
	free(held);
}

/* A peer that sends calls without reading the answers: reading stops
 * past 1 MiB of answers queued and resumes as it reads; answers piled
 * up past 16 MiB by late replies close the connection. */
static uint8_t mib[1 << 20];

static void h_mib(struct ttrpc_call *call, const ProtobufCMessage *m,
		  void *arg)
{
	ttrpc_reply_bytes(call, mib, sizeof(mib) - 64);
}

static void test_server_write_queue(void **state)
{
	static const struct ttrpc_method big[] = {
		{ SVC, "Big", NULL, h_mib },
		{ SVC, "Wait", NULL, h_hold_many },
	};
	struct ttrpc_call *held[24];
	struct ttrpc_server *s;
	int sv[2];
	struct fx f = { 0 };

	f.loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sv), 0);
	s = ttrpc_server_new(f.loop, big, 2, held);
	ttrpc_server_on_conn_close(s, conn_closed_cb, &f);
	assert_non_null(ttrpc_server_add_fd(s, sv[0], NULL));
	f.raw = sv[1];
	for (int i = 0; i < 20; i++)
		raw_call(&f, 2 * i + 1, "Big", NULL);
	for (int i = 0; i < 20; i++) {
		uint32_t stream;
		Ttrpc__Response *r = raw_response(&f, &stream);

		assert_int_equal(stream, 2 * i + 1);
		assert_int_equal(r->payload.len, sizeof(mib) - 64);
		ttrpc__response__free_unpacked(r, NULL);
	}
	assert_int_equal(f.conn_closed, 0);

	held_many = 0;
	for (int i = 0; i < 20; i++)
		raw_call(&f, 101 + 2 * i, "Wait", NULL);
	tl_run_until(f.loop, &held_many, 20);
	for (int i = 0; i < 20; i++)
		ttrpc_reply_bytes(held[i], mib, sizeof(mib) - 64);
	assert_int_equal(f.conn_closed, 1);
	ttrpc_server_free(s);
	close(f.raw);
	ev_loop_destroy(f.loop);
}

static void test_server_oversized_closes(void **state)
{
	struct fx *f = *state;
	uint8_t b;

	raw_send(f, 1, TTRPC_TYPE_REQUEST, NULL, 0);	/* empty: invalid */
	uint8_t hdr[TTRPC_HDR_LEN];
	struct ttrpc_hdr h = { .len = 0xffffffff, .stream = 3, .type = 1 };

	ttrpc_hdr_put(hdr, &h);
	assert_int_equal(write(f->raw, hdr, sizeof(hdr)), sizeof(hdr));
	tl_run_until(f->loop, &f->conn_closed, 1);
	assert_int_equal(ttrpc_server_nconns(f->srv), 0);
	/* The answer to stream 1, then end of file. */
	uint32_t stream;
	Ttrpc__Response *r = raw_response(f, &stream);

	assert_int_equal(stream, 1);
	ttrpc__response__free_unpacked(r, NULL);
	assert_int_equal(read(f->raw, &b, 1), 0);
}

static void test_server_orphaned_call(void **state)
{
	struct fx *f = *state;
	Task__WaitRequest w = TASK__WAIT_REQUEST__INIT;
	Task__WaitResponse wr = TASK__WAIT_RESPONSE__INIT;

	w.id = "c1";
	raw_call(f, 1, "Wait", &w.base);
	raw_call(f, 3, "Wait", &w.base);
	tl_run_until(f->loop, &f->nheld, 2);
	close(f->raw);
	f->raw = -1;
	tl_run_until(f->loop, &f->conn_closed, 1);
	assert_int_equal(f->orphans, 2);
	assert_true(ttrpc_call_orphaned(f->held[0]));
	/* Answering into nothing is safe (ASan checks the rest). */
	ttrpc_reply(f->held[0], &wr.base);
	f->held[0] = NULL;
	ttrpc_reply_status(f->held[1], TTRPC_INTERNAL, "late");
	f->held[1] = NULL;
}

/* ------------------------------------------------------------ client */

static void done_cb(void *arg, int code, const char *msg,
		    const uint8_t *payload, size_t n)
{
	struct fx *f = arg;
	int i = f->ndone++;

	assert_true(i < 8);
	f->codes[i] = code;
	snprintf(f->msgs[i], sizeof(f->msgs[i]), "%s", msg ? msg : "");
	if (code == TTRPC_OK) {
		Task__StartResponse *r = task__start_response__unpack(NULL, n,
								      payload);

		assert_non_null(r);
		f->pids[i] = r->pid;
		task__start_response__free_unpacked(r, NULL);
	}
}

static void test_client_round_trip(void **state)
{
	struct fx *f = *state;
	Task__StartRequest s = TASK__START_REQUEST__INIT;
	Task__WaitRequest w = TASK__WAIT_REQUEST__INIT;
	Task__StartResponse sr = TASK__START_RESPONSE__INIT;

	f->cli = ttrpc_client_new(f->loop, husk_steal_fd(f->raw), NULL);
	assert_non_null(f->cli);
	w.id = "c1";
	s.id = "hello";
	assert_int_equal(ttrpc_client_call(f->cli, SVC, "Wait", &w.base, 0,
					   done_cb, f, NULL), 0);
	assert_int_equal(ttrpc_client_call(f->cli, SVC, "Start", &s.base, 0,
					   done_cb, f, NULL), 0);
	assert_int_equal(ttrpc_client_call(f->cli, SVC, "Nope", NULL, 0,
					   done_cb, f, NULL), 0);
	assert_int_equal(f->ndone, 0);	/* never from inside the call */
	tl_run_until(f->loop, &f->ndone, 2);
	assert_int_equal(f->codes[0], TTRPC_OK);
	assert_int_equal(f->pids[0], 5);
	assert_int_equal(f->codes[1], TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(f->msgs[1], "Nope"));
	assert_int_equal(ttrpc_client_pending(f->cli), 1);

	/* The Wait held by the server ends last. */
	assert_int_equal(f->nheld, 1);
	sr.pid = 99;
	ttrpc_reply(f->held[0], &sr.base);
	f->held[0] = NULL;
	tl_run_until(f->loop, &f->ndone, 3);
	assert_int_equal(f->codes[2], TTRPC_OK);
	assert_int_equal(f->pids[2], 99);
	assert_int_equal(ttrpc_client_pending(f->cli), 0);
}

static void test_client_server_goes(void **state)
{
	struct fx *f = *state;
	Task__WaitRequest w = TASK__WAIT_REQUEST__INIT;
	cleanup_err struct husk_err *err = NULL;

	f->cli = ttrpc_client_new(f->loop, husk_steal_fd(f->raw), NULL);
	w.id = "c1";
	assert_int_equal(ttrpc_client_call(f->cli, SVC, "Wait", &w.base, 0,
					   done_cb, f, NULL), 0);
	tl_run_until(f->loop, &f->nheld, 1);
	ttrpc_server_free(f->srv);
	f->srv = NULL;
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->codes[0], TTRPC_UNAVAILABLE);
	assert_true(ttrpc_client_closed(f->cli));
	assert_int_equal(ttrpc_client_call(f->cli, SVC, "Wait", &w.base, 0,
					   done_cb, f, &err), -1);
	assert_int_equal(err->code, HUSK_E_UNAVAILABLE);
}

/* ------------------------------------------------------------ events */

static void h_forward(struct ttrpc_call *call, const ProtobufCMessage *m,
		      void *arg)
{
	const Events__ForwardRequest *req = (const Events__ForwardRequest *)m;
	struct fx *f = arg;
	int i = f->forwarded;

	if (f->refuse_first) {
		f->refuse_first = 0;
		ttrpc_reply_status(call, TTRPC_INVALID_ARGUMENT, "refused");
		return;
	}
	assert_true(i < 8);
	assert_non_null(req->envelope);
	assert_non_null(req->envelope->event);
	assert_non_null(req->envelope->timestamp);
	assert_true(req->envelope->timestamp->seconds > 1700000000);
	snprintf(f->topics[i], 64, "%s", req->envelope->topic);
	snprintf(f->urls[i], 64, "%s", req->envelope->event->type_url);
	snprintf(f->ns, sizeof(f->ns), "%s", req->envelope->namespace_);
	if (strcmp(req->envelope->topic, "/tasks/exit") == 0) {
		Events__TaskExit *e = events__task_exit__unpack(NULL,
			req->envelope->event->value.len,
			req->envelope->event->value.data);

		assert_non_null(e);
		f->exit_pid = e->pid;
		events__task_exit__free_unpacked(e, NULL);
	}
	f->forwarded++;
	ttrpc_reply(call, NULL);
}

static const struct ttrpc_method ev_methods[] = {
	{ EVENTS_SERVICE, EVENTS_METHOD, &events__forward_request__descriptor,
	  h_forward },
};

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static void drained_cb(struct events_pub *p, void *arg)
{
	((struct fx *)arg)->drained++;
}

static void test_events_retry_in_order(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/test_ttrpc.XXXXXX", path[128];
	struct ttrpc_server *ctd;
	struct events_pub *p;
	Events__TaskCreate c = EVENTS__TASK_CREATE__INIT;
	Events__TaskStart s = EVENTS__TASK_START__INIT;
	Events__TaskExit e = EVENTS__TASK_EXIT__INIT;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "unix://%s/ttrpc.sock", dir);
	p = events_pub_new(f->loop, path, "husk-test", 0, NULL);
	assert_non_null(p);
	c.container_id = s.container_id = e.container_id = "c1";
	e.pid = 42;
	/* containerd is not there: each publish tries and fails. */
	assert_int_equal(events_publish(p, &c.base, NULL), 0);
	assert_int_equal(events_publish(p, &s.base, NULL), 0);
	assert_int_equal(events_publish(p, &e.base, NULL), 0);
	assert_int_equal(events_pending(p), 3);

	/* It comes; it refuses the first event it reads. */
	ctd = ttrpc_server_new(f->loop, ev_methods, 1, f);
	f->refuse_first = 1;
	assert_int_equal(ttrpc_server_listen_fd(ctd, listen_at(path + 7),
						NULL), 0);
	events_on_drained(p, drained_cb, f);
	tl_run_until(f->loop, &f->drained, 1);
	assert_int_equal(f->forwarded, 2);
	assert_string_equal(f->topics[0], "/tasks/start");
	assert_string_equal(f->urls[0], "containerd.events.TaskStart");
	assert_string_equal(f->topics[1], "/tasks/exit");
	assert_string_equal(f->urls[1], "containerd.events.TaskExit");
	assert_string_equal(f->ns, "husk-test");
	assert_int_equal(f->exit_pid, 42);
	assert_int_equal(events_dropped(p), 1);
	assert_int_equal(events_pending(p), 0);

	/* containerd restarts: the next event waits for it. */
	ttrpc_server_free(ctd);
	unlink(path + 7);
	Events__TaskDelete d = EVENTS__TASK_DELETE__INIT;

	d.container_id = "c1";
	assert_int_equal(events_publish(p, &d.base, NULL), 0);
	tl_run_for(f->loop, 0.1);
	assert_int_equal(f->forwarded, 2);
	assert_int_equal(events_pending(p), 1);
	ctd = ttrpc_server_new(f->loop, ev_methods, 1, f);
	assert_int_equal(ttrpc_server_listen_fd(ctd, listen_at(path + 7),
						NULL), 0);
	tl_run_until(f->loop, &f->forwarded, 3);
	assert_string_equal(f->topics[2], "/tasks/delete");
	assert_string_equal(f->urls[2], "containerd.events.TaskDelete");

	events_pub_free(p);
	ttrpc_server_free(ctd);
	unlink(path + 7);
	rmdir(dir);
}

static void test_events_queue_bound(void **state)
{
	struct fx *f = *state;
	struct events_pub *p;
	Events__TaskOOM o = EVENTS__TASK_OOM__INIT;
	Task__StartRequest notev = TASK__START_REQUEST__INIT;
	cleanup_err struct husk_err *err = NULL;

	p = events_pub_new(f->loop, "/nonexistent/ttrpc.sock", "ns", 2, NULL);
	assert_non_null(p);
	o.container_id = "c1";
	assert_int_equal(events_publish(p, &o.base, NULL), 0);
	assert_int_equal(events_publish(p, &o.base, NULL), 0);
	assert_int_equal(events_publish(p, &o.base, &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	assert_int_equal(events_dropped(p), 1);
	husk_err_clear(&err);
	assert_int_equal(events_publish(p, &notev.base, &err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	assert_string_equal(events_topic(&events__task_exec_started__descriptor),
			    "/tasks/exec-started");
	assert_string_equal(events_type_url(&events__task_oom__descriptor),
			    "containerd.events.TaskOOM");
	events_pub_free(p);
}

/* ----------------------------------------------------------- helpers */

static void test_any_and_codes(void **state)
{
	Task__RuntimeOptions o = TASK__RUNTIME_OPTIONS__INIT;
	Gpb__Any any;
	ProtobufCMessage *out;
	cleanup_err struct husk_err *err = NULL;

	o.config_path = "/etc/husk/a.conf";
	assert_int_equal(ttrpc_any_pack(&any, "runtimeoptions.v1.Options",
					&o.base, NULL), 0);
	assert_int_equal(ttrpc_any_unpack(&any,
			 "type.googleapis.com/runtimeoptions.v1.Options",
			 &task__runtime_options__descriptor, &out, NULL), 0);
	assert_string_equal(((Task__RuntimeOptions *)out)->config_path,
			    "/etc/husk/a.conf");
	protobuf_c_message_free_unpacked(out, NULL);
	assert_int_equal(ttrpc_any_unpack(&any, "containerd.runc.v1.Options",
			 &task__runtime_options__descriptor, &out, &err), -1);
	assert_null(out);
	assert_int_equal(err->code, HUSK_E_INVALID);
	ttrpc_any_clear(&any);

	assert_int_equal(ttrpc_code_from_husk(HUSK_E_NOT_FOUND),
			 TTRPC_NOT_FOUND);
	assert_int_equal(ttrpc_code_from_husk(HUSK_E_NOT_IMPLEMENTED),
			 TTRPC_UNIMPLEMENTED);
	assert_string_equal(ttrpc_code_name(TTRPC_UNIMPLEMENTED),
			    "Unimplemented");
	assert_string_equal(ttrpc_code_name(99), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_big_endian),
		cmocka_unit_test(test_reader_one_read),
		cmocka_unit_test(test_reader_split_reads),
		cmocka_unit_test(test_reader_oversized),
		cmocka_unit_test(test_reader_callback_stops),
		cmocka_unit_test(test_request_decode),
		cmocka_unit_test(test_decode_field_bound),
		cmocka_unit_test(test_any_and_codes),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_server_unimplemented),
		T(test_server_out_of_order),
		T(test_server_bad_frames),
		T(test_server_oversized_closes),
		cmocka_unit_test(test_server_inflight_bound),
		cmocka_unit_test(test_server_write_queue),
		T(test_server_orphaned_call),
		T(test_client_round_trip),
		T(test_client_server_goes),
		T(test_events_retry_in_order),
		T(test_events_queue_bound),
#undef T
	};

	husk_log_init("test_ttrpc", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
