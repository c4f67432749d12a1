/*
 * shimv2/ttrpc.c and ttrpc_server.c: the frame reader at any read
 * boundary, the decoders' bounds, and the server against a peer that
 * writes frames by hand (test_ttrpc_client.c: client and events).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ttrpc_testlib.h"

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
	raw_send(f, 5, TTRPC_TYPE_REQUEST, buf,
		 ttrpc__request__pack(&req, buf));
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
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_server_unimplemented),
		T(test_server_out_of_order),
		T(test_server_bad_frames),
		T(test_server_oversized_closes),
		T(test_server_orphaned_call),
		cmocka_unit_test(test_server_inflight_bound),
		cmocka_unit_test(test_server_write_queue),
#undef T
	};

	husk_log_init("test_ttrpc", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
