/*
 * libipc/conn.c, conn_wq.c: a stream of frames of every size between
 * two connections on a socketpair, larger than a connection's read
 * buffer too, packed whole or sent from where the data lies
 * (ipc_notify_send_tail), and relayed back as they came
 * (ipc_msg.raw, ipc_conn_send_payload): every byte arrives, in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "ipc_testlib.h"
#include "libhusk/log.h"

struct fx {
	struct ev_loop *loop;
	struct ipc_conn *cli, *srv;
	int ready, closed;
	/* per end (0 server, 1 client): messages, bytes, checksum */
	int sums[2];
	uint64_t bytes[2], hash[2];
};

#define HASH_START 0xcbf29ce484222325ull

static uint64_t hash_bytes(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The server counts what came and relays the message back unchanged;
 * the client counts it again. */
static int h_sum(struct ipc_conn *c, struct ipc_msg *m, void *params,
		 void *arg, struct husk_err **err)
{
	struct fx *f = arg;
	const msgpack_object *d = ipc_map_get(m->params, "data");
	int end = c == f->srv ? 0 : 1;

	assert_non_null(d);
	assert_int_equal(d->type, MSGPACK_OBJECT_BIN);
	f->sums[end]++;
	f->bytes[end] += d->via.bin.size;
	f->hash[end] = hash_bytes(f->hash[end],
				  (const unsigned char *)d->via.bin.ptr,
				  d->via.bin.size);
	if (end == 0)
		assert_int_equal(ipc_conn_send_payload(c, m->raw, m->raw_len),
				 0);
	return 0;
}

static const struct ipc_method methods[] = {
	IPC_METHOD("sum", IPC_M_NOTIFY, h_sum),
	IPC_METHOD_END,
};

static void on_ready(struct ipc_conn *c, void *arg)
{
	((struct fx *)arg)->ready++;
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	((struct fx *)arg)->closed++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ipc_conn_opts o = {
		.methods = methods,
		.max_frame = 1u << 20,
		.on_ready = on_ready,
		.on_close = on_close,
		.trusted = true,
		.arg = f,
	};
	int sv[2];

	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->hash[0] = f->hash[1] = HASH_START;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	o.role = IPC_ROLE_SERVER;
	o.component = "test-server";
	f->srv = ipc_conn_new(f->loop, sv[0], &o, NULL);
	o.role = IPC_ROLE_CLIENT;
	o.component = "test-client";
	f->cli = ipc_conn_new(f->loop, sv[1], &o, NULL);
	assert_non_null(f->srv);
	assert_non_null(f->cli);
	tl_run_until(f->loop, &f->ready, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ipc_conn_close(f->cli, NULL);
	ipc_conn_close(f->srv, NULL);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static void test_stream_sizes(void **state)
{
	static const size_t sizes[] = { 1, 65536, 300000, 7, 131077, 4096 };
	struct fx *f = *state;
	uint64_t bytes = 0, hash = HASH_START;
	unsigned char *data = malloc(300000);
	const int count = 60;

	assert_non_null(data);
	for (int i = 0; i < count; i++) {
		size_t n = sizes[i % 6];
		msgpack_packer *pk;

		for (size_t j = 0; j < n; j++)
			data[j] = (unsigned char)(i * 31 + j * 7);
		bytes += n;
		hash = hash_bytes(hash, data, n);
		pk = ipc_notify_begin(f->cli, "sum");
		msgpack_pack_map(pk, 1);
		if (i % 2) {
			ipc_pack_kv_bin(pk, "data", data, n);
			assert_int_equal(ipc_notify_send(f->cli), 0);
		} else {
			/* data changes right after: what the socket did not
			 * take must have been copied */
			ipc_pack_key(pk, "data");
			msgpack_pack_bin(pk, n);
			assert_int_equal(ipc_notify_send_tail(f->cli, data, n),
					 0);
		}
	}
	free(data);
	tl_run_until(f->loop, &f->sums[1], count);
	for (int end = 0; end < 2; end++) {
		assert_int_equal(f->sums[end], count);
		assert_true(f->bytes[end] == bytes);
		assert_true(f->hash[end] == hash);
	}
	assert_int_equal(f->closed, 0);
}

/* A frame over the sender's limit is refused before anything is sent. */
static void test_tail_over_limit(void **state)
{
	static char big[(1u << 20) + 1];
	struct fx *f = *state;
	msgpack_packer *pk = ipc_notify_begin(f->cli, "sum");

	msgpack_pack_map(pk, 1);
	ipc_pack_key(pk, "data");
	msgpack_pack_bin(pk, sizeof(big));
	assert_int_equal(ipc_notify_send_tail(f->cli, big, sizeof(big)), -1);
	assert_int_equal(ipc_conn_send_payload(f->cli, big, sizeof(big)), -1);
	tl_run_for(f->loop, 0.05);
	assert_int_equal(f->sums[0], 0);
	assert_int_equal(f->closed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stream_sizes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tail_over_limit, setup,
						teardown),
	};

	husk_log_init("test_conn_stream", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
