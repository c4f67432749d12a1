/*
 * Shared by test_ttrpc.c and test_ttrpc_client.c: a ttrpc server on one
 * end of a socketpair with a small Task service, and the raw frame I/O
 * of a peer that speaks ttrpc by hand on the other end.
 */
#ifndef HUSK_TEST_TTRPC_TESTLIB_H
#define HUSK_TEST_TTRPC_TESTLIB_H

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

static inline size_t pack_request(uint8_t *out, size_t max, const char *svc,
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
static inline void h_start(struct ttrpc_call *call, const ProtobufCMessage *m,
			   void *arg)
{
	const Task__StartRequest *req = (const Task__StartRequest *)m;
	Task__StartResponse r = TASK__START_RESPONSE__INIT;

	r.pid = strlen(req->id);
	ttrpc_reply(call, &r.base);
}

/* Wait: held until the test answers it. */
static inline void orphan_cb(struct ttrpc_call *call, void *arg)
{
	struct fx *f = arg;

	f->orphans++;
	assert_true(ttrpc_call_orphaned(call));
}

static inline void h_wait(struct ttrpc_call *call, const ProtobufCMessage *m,
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

static inline void conn_closed_cb(struct ttrpc_server *s, void *arg)
{
	((struct fx *)arg)->conn_closed++;
}

static inline int setup(void **state)
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

static inline int teardown(void **state)
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

static inline void raw_send(struct fx *f, uint32_t stream, uint8_t type,
			    const void *p, size_t n)
{
	uint8_t hdr[TTRPC_HDR_LEN];
	struct ttrpc_hdr h = { .len = n, .stream = stream, .type = type };

	ttrpc_hdr_put(hdr, &h);
	assert_int_equal(write(f->raw, hdr, sizeof(hdr)), sizeof(hdr));
	if (n)
		assert_int_equal(write(f->raw, p, n), (ssize_t)n);
}

static inline void raw_call(struct fx *f, uint32_t stream, const char *method,
			    const ProtobufCMessage *m)
{
	uint8_t buf[8192];
	size_t n = pack_request(buf, sizeof(buf), SVC, method, m);

	raw_send(f, stream, TTRPC_TYPE_REQUEST, buf, n);
}

/* Run the loop until the raw end can read; then read exactly n. */
static inline void raw_read(struct fx *f, void *p, size_t n)
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
static inline Ttrpc__Response *raw_response(struct fx *f, uint32_t *stream)
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

static inline int status_of(const Ttrpc__Response *r)
{
	return r->status ? r->status->code : 0;
}

#endif
