/* libipc/conn.c: both ends of a socketpair driven by one ev_loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "ipc_testlib.h"
#include "libhusk/log.h"

struct res {
	int done;
	int code;               /* 0 on success */
	int64_t n;
	char msg[256];
};

struct fx {
	struct ev_loop *loop;
	struct ipc_conn *cli, *srv;
	int raw;                /* our end when a test speaks by hand */
	int ready, closed;      /* counters over both ends */
	int cli_closed, srv_closed;
	int srv_close_code;     /* -1: clean */
	int ndone;
	struct res res[8];
	int notes;
	int64_t note_n;
	int blobs;
	uint32_t held[8];
	int nheld;
	int above, below;
	ev_timer later;
	uint32_t later_id;
	struct ipc_conn *later_conn;
};

static int64_t param_n(const msgpack_object *map)
{
	const msgpack_object *v = map ? ipc_map_get(map, "n") : NULL;
	int64_t n = -1;

	if (v)
		assert_int_equal(ipc_obj_int(v, "n", INT64_MIN, INT64_MAX, &n,
					     NULL), 0);
	return n;
}

static void reply_n(struct ipc_conn *c, uint32_t id, int64_t n)
{
	msgpack_packer *pk = ipc_reply_begin(c, id);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "n", n);
	assert_int_equal(ipc_reply_send(c), 0);
}

/* ---------------------------------------------------- server methods */

static int h_echo(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	reply_n(c, m->msgid, param_n(m->params));
	return 0;
}

static int h_hold(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	struct fx *f = arg;

	f->held[f->nheld++] = m->msgid;
	return 0;
}

static int h_note(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	struct fx *f = arg;

	f->notes++;
	f->note_n = param_n(m->params);
	return 0;
}

static int h_blob(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	struct fx *f = arg;

	f->blobs++;
	return 0;
}

static int h_ok(struct ipc_conn *c, struct ipc_msg *m,
		void *params, void *arg, struct husk_err **err)
{
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static int h_bye(struct ipc_conn *c, struct ipc_msg *m,
		 void *params, void *arg, struct husk_err **err)
{
	ipc_conn_close(c, NULL);
	/* Still safe to look at: the dispatcher holds a reference. */
	assert_true(ipc_conn_closed(c));
	assert_int_equal(ipc_reply_ok(c, m->msgid), -1);
	return 0;
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fx *f = w->data;

	assert_int_equal(ipc_reply_ok(f->later_conn, f->later_id), 0);
	ipc_conn_unref(f->later_conn);
}

static int h_later(struct ipc_conn *c, struct ipc_msg *m,
		   void *params, void *arg, struct husk_err **err)
{
	struct fx *f = arg;

	ipc_conn_ref(c);
	f->later_conn = c;
	f->later_id = m->msgid;
	ev_timer_init(&f->later, later_cb, 0.01, 0.);
	f->later.data = f;
	ev_timer_start(f->loop, &f->later);
	return 0;
}

/* Write through the descriptor that came with the request. */
static int h_pipe(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	int fd = ipc_msg_take_fd(m, 0);

	if (fd < 0) {
		ipc_reply_error(c, m->msgid, HUSK_E_INVALID, "no fd");
		return 0;
	}
	assert_int_equal(husk_write_all(fd, "through", 7), 0);
	close(fd);
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static const struct ipc_method srv_methods[] = {
	IPC_METHOD("echo", IPC_M_REQUEST, h_echo),
	IPC_METHOD("hold", IPC_M_REQUEST, h_hold),
	IPC_METHOD("note", IPC_M_NOTIFY, h_note),
	IPC_METHOD("blob", IPC_M_NOTIFY, h_blob),
	IPC_METHOD("reqonly", IPC_M_REQUEST, h_ok),
	IPC_METHOD("once", IPC_M_REQUEST | IPC_M_ONCE, h_ok),
	IPC_METHOD("bye", IPC_M_REQUEST, h_bye),
	IPC_METHOD("later", IPC_M_REQUEST, h_later),
	IPC_METHOD("pipe", IPC_M_REQUEST, h_pipe),
	IPC_METHOD_END,
};

/* ------------------------------------------------------- callbacks */

static void on_ready(struct ipc_conn *c, void *arg)
{
	struct fx *f = arg;

	f->ready++;
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	struct fx *f = arg;

	f->closed++;
	/* Freed after this returns unless a test holds a reference. */
	if (c == f->cli) {
		f->cli_closed++;
		f->cli = NULL;
	} else {
		f->srv_closed++;
		f->srv_close_code = why ? why->code : -1;
		f->srv = NULL;
	}
}

static void on_queue(struct ipc_conn *c, bool above, void *arg)
{
	struct fx *f = arg;

	if (above)
		f->above++;
	else
		f->below++;
}

static void on_result(struct ipc_conn *c, struct ipc_msg *resp,
		      const struct husk_err *err, void *arg)
{
	struct res *r = arg;
	struct fx *f = ipc_conn_arg(c);

	assert_int_equal(r->done, 0);
	r->done = 1;
	f->ndone++;
	if (err) {
		r->code = err->code;
		snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
		return;
	}
	assert_non_null(resp);
	r->n = param_n(resp->result);
}

/* ---------------------------------------------------------- fixture */

static int setup(void **state)
{
	struct fx *f = husk_xcalloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->raw = -1;
	f->srv_close_code = -2;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->cli)
		ipc_conn_close(f->cli, NULL);
	if (f->srv)
		ipc_conn_close(f->srv, NULL);
	if (f->raw >= 0)
		close(f->raw);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static struct ipc_conn_opts opts(struct fx *f, int role)
{
	struct ipc_conn_opts o = {
		.role = role,
		.component = role == IPC_ROLE_SERVER ? "test-server" :
			     "test-client",
		.methods = role == IPC_ROLE_SERVER ? srv_methods : NULL,
		.on_ready = on_ready,
		.on_close = on_close,
		.arg = f,
	};
	return o;
}

static void make_srv(struct fx *f, int fd, const struct ipc_conn_opts *o)
{
	f->srv = ipc_conn_new(f->loop, fd, o, NULL);
	assert_non_null(f->srv);
}

/* A connected pair; waits for the hello unless told not to. */
static void make_pair(struct fx *f, const struct ipc_conn_opts *co,
		      const struct ipc_conn_opts *so, bool wait)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	make_srv(f, sv[0], so);
	f->cli = ipc_conn_new(f->loop, sv[1], co, NULL);
	assert_non_null(f->cli);
	if (wait)
		tl_run_until(f->loop, &f->ready, 2);
}

static void default_pair(struct fx *f)
{
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);

	make_pair(f, &co, &so, true);
}

/* A server conn whose other end we drive by hand. */
static void make_raw(struct fx *f)
{
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	make_srv(f, sv[0], &so);
	f->raw = sv[1];
}

static void call(struct fx *f, const char *method, int64_t n, double timeout,
		 int slot)
{
	msgpack_packer *pk = ipc_call_begin(f->cli, method);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "n", n);
	assert_int_equal(ipc_call_send(f->cli, timeout, NULL, 0, on_result,
				       &f->res[slot], NULL), 0);
}

static void notify(struct ipc_conn *c, const char *method, int64_t n)
{
	msgpack_packer *pk = ipc_notify_begin(c, method);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "n", n);
	assert_int_equal(ipc_notify_send(c), 0);
}

/* ------------------------------------------------------------ tests */

static void test_hello_ok(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);

	co.expect_peer = "test-server";
	so.expect_peer = "test-client";
	make_pair(f, &co, &so, false);
	/* Made before the hello completes: sent after it, in order. */
	call(f, "echo", 41, 0, 0);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->ready, 2);
	assert_int_equal(f->res[0].code, 0);
	assert_int_equal(f->res[0].n, 41);
	assert_string_equal(ipc_conn_peer_component(f->cli), "test-server");
	assert_string_equal(ipc_conn_peer_component(f->srv), "test-client");
	assert_int_equal(ipc_conn_peer_pid(f->srv), getpid());
	assert_int_equal(ipc_conn_peer_uid(f->srv), geteuid());
}

static void test_expect_peer_mismatch(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);

	so.expect_peer = "husk-proxy";
	make_pair(f, &co, &so, false);
	tl_run_until(f->loop, &f->closed, 2);
	assert_int_equal(f->ready, 0);
	assert_int_equal(f->srv_close_code, HUSK_E_PERMISSION);
}

static void test_version_mismatch(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	struct ipc_buf b;
	struct ipc_msg m;
	msgpack_packer *pk;

	make_raw(f);
	ipc_buf_init(&b);
	pk = ipc_pack_request(&b, 1, "hello");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", 99);
	ipc_pack_kv_str(pk, "component", "husk-old");
	tl_write_buf(f->raw, &b);
	ipc_buf_destroy(&b);
	tl_run_until(f->loop, &f->srv_closed, 1);
	assert_int_equal(f->srv_close_code, HUSK_E_VERSION);

	assert_int_equal(tl_read_msg(f->raw, &m), 0);
	assert_int_equal(m.type, IPC_RESPONSE);
	assert_int_equal(m.msgid, 1);
	assert_non_null(m.error);
	assert_int_equal(ipc_error_decode(m.error, &e), -1);
	assert_int_equal(e->code, HUSK_E_VERSION);
	assert_non_null(strstr(e->msg, "husk-old speaks version 99"));
	assert_non_null(strstr(e->msg, "test-server speaks version 1"));
	husk_err_free(e);
	ipc_msg_free(&m);
	assert_int_equal(tl_wait_eof(f->raw), 0);
}

static void test_request_before_hello(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	struct ipc_buf b;
	struct ipc_msg m;

	make_raw(f);
	ipc_buf_init(&b);
	msgpack_pack_map(ipc_pack_request(&b, 7, "echo"), 0);
	tl_write_buf(f->raw, &b);
	ipc_buf_destroy(&b);
	tl_run_until(f->loop, &f->srv_closed, 1);
	assert_int_equal(f->srv_close_code, HUSK_E_NO_HELLO);
	assert_int_equal(tl_read_msg(f->raw, &m), 0);
	assert_int_equal(m.msgid, 7);
	assert_int_equal(ipc_error_decode(m.error, &e), -1);
	assert_int_equal(e->code, HUSK_E_NO_HELLO);
	husk_err_free(e);
	ipc_msg_free(&m);
	assert_int_equal(tl_wait_eof(f->raw), 0);
}

static void test_hello_timeout(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	int sv[2];

	so.hello_timeout = 0.05;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	make_srv(f, sv[0], &so);
	f->raw = sv[1];
	tl_run_until(f->loop, &f->srv_closed, 1);
	assert_int_equal(f->srv_close_code, HUSK_E_TIMEOUT);
}

static void test_unknown_method(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	call(f, "nope", 0, 0, 0);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->res[0].code, HUSK_E_UNKNOWN_METHOD);
	assert_string_equal(f->res[0].msg, "unknown method 'nope'");
	call(f, "echo", 5, 0, 1);
	tl_run_until(f->loop, &f->ndone, 2);
	assert_int_equal(f->res[1].code, 0);
	assert_int_equal(f->res[1].n, 5);
	assert_int_equal(f->closed, 0);
}

static void test_dispatch_flags(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	notify(f->cli, "note", 5);
	notify(f->cli, "reqonly", 1);   /* not a notification: dropped */
	notify(f->cli, "nosuch", 1);    /* unknown: dropped */
	call(f, "note", 1, 0, 0);       /* not a request: refused */
	call(f, "once", 0, 0, 1);
	call(f, "once", 0, 0, 2);
	call(f, "hello", 0, 0, 3);      /* a second hello */
	tl_run_until(f->loop, &f->ndone, 4);
	assert_int_equal(f->notes, 1);
	assert_int_equal(f->note_n, 5);
	assert_int_equal(f->res[0].code, HUSK_E_PROTOCOL);
	assert_int_equal(f->res[1].code, 0);
	assert_int_equal(f->res[2].code, HUSK_E_STATE);
	assert_int_equal(f->res[3].code, HUSK_E_STATE);
	assert_int_equal(f->closed, 0);
}

/* A channel that outlives its peers (the guest's port) takes a second
 * hello as a new peer; without the option it is refused. */
static void test_rehello(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	msgpack_packer *pk;

	so.rehello = true;
	make_pair(f, &co, &so, true);
	assert_int_equal(f->ready, 2);
	pk = ipc_call_begin(f->cli, "hello");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", "test-client");
	assert_int_equal(ipc_call_send(f->cli, 0, NULL, 0, on_result,
				       &f->res[0], NULL), 0);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->res[0].code, 0);
	/* The server's on_ready ran again. */
	assert_int_equal(f->ready, 3);
	call(f, "echo", 7, 0, 1);
	tl_run_until(f->loop, &f->ndone, 2);
	assert_int_equal(f->res[1].n, 7);
	assert_int_equal(f->closed, 0);
}

static void test_out_of_order(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	for (int i = 0; i < 3; i++)
		call(f, "hold", 0, 0, i);
	tl_run_until(f->loop, &f->nheld, 3);
	for (int i = 2; i >= 0; i--)
		reply_n(f->srv, f->held[i], 100 + i);
	tl_run_until(f->loop, &f->ndone, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->res[i].code, 0);
		assert_int_equal(f->res[i].n, 100 + i);
	}
}

static void test_call_timeout(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	call(f, "hold", 0, 0.05, 0);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->res[0].code, HUSK_E_TIMEOUT);
	assert_int_equal(f->nheld, 1);
	/* The late answer is dropped; the connection stays. */
	reply_n(f->srv, f->held[0], 1);
	call(f, "echo", 9, 0, 1);
	tl_run_until(f->loop, &f->ndone, 2);
	assert_int_equal(f->res[1].n, 9);
	assert_int_equal(f->closed, 0);
}

static void test_unknown_response_untrusted(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	reply_n(f->srv, 12345, 1);
	tl_run_until(f->loop, &f->cli_closed, 1);
}

static void test_pending_fail_on_close(void **state)
{
	struct fx *f = *state;
	struct ipc_conn *cli;

	default_pair(f);
	cli = f->cli;
	ipc_conn_ref(cli);
	call(f, "hold", 0, 0, 0);
	call(f, "hold", 0, 10, 1);
	tl_run_until(f->loop, &f->nheld, 2);
	ipc_conn_close(f->srv, NULL);
	tl_run_until(f->loop, &f->cli_closed, 1);
	assert_int_equal(f->res[0].code, HUSK_E_UNAVAILABLE);
	assert_int_equal(f->res[1].code, HUSK_E_UNAVAILABLE);
	assert_int_equal(f->cli_closed, 1);
	assert_int_equal(f->srv_closed, 1);
	assert_non_null(ipc_call_begin(cli, "echo"));
	assert_int_equal(ipc_call_send(cli, 0, NULL, 0, on_result,
				       &f->res[2], NULL), -1);
	ipc_conn_unref(cli);
}

static void test_watermarks(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	static char blob[16384];
	int sent = 0;

	co.wq_high = 64 << 10;
	co.wq_low = 16 << 10;
	co.on_queue = on_queue;
	make_pair(f, &co, &so, true);
	ipc_conn_pause_read(f->srv, true);
	while (!f->above && sent < 4096) {
		msgpack_packer *pk = ipc_notify_begin(f->cli, "blob");

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_bin(pk, "data", blob, sizeof(blob));
		assert_int_equal(ipc_notify_send(f->cli), 0);
		sent++;
	}
	assert_int_equal(f->above, 1);
	assert_true(ipc_conn_queued(f->cli) > co.wq_high);
	assert_int_equal(f->below, 0);
	ipc_conn_pause_read(f->srv, false);
	tl_run_until(f->loop, &f->below, 1);
	assert_true(ipc_conn_queued(f->cli) < co.wq_low);
	tl_run_until(f->loop, &f->blobs, sent);
	assert_int_equal(f->above, 1);
}

/* Tiny messages count what they hold, not only their bytes: the high
 * mark is reached with far fewer of them than their payload allows. */
static void test_watermarks_count_messages(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	int sent = 0;
	size_t msgs;

	co.wq_high = 64 << 10;
	co.wq_low = 16 << 10;
	co.on_queue = on_queue;
	make_pair(f, &co, &so, true);
	ipc_conn_pause_read(f->srv, true);
	while (!f->above && sent < 200000) {
		notify(f->cli, "note", sent);
		sent++;
	}
	assert_int_equal(f->above, 1);
	msgs = ipc_conn_queued_msgs(f->cli);
	assert_true(msgs > 0);
	/* each note is under 32 bytes on the wire */
	assert_true(msgs * 32 < co.wq_high);
	assert_true(ipc_conn_queued(f->cli) >= msgs * IPC_WQ_ITEM_COST);
	ipc_conn_pause_read(f->srv, false);
	tl_run_until(f->loop, &f->notes, sent);
	tl_run_until(f->loop, &f->below, 1);
	assert_int_equal(ipc_conn_queued_msgs(f->cli), 0);
	assert_int_equal(ipc_conn_queued(f->cli), 0);
}

/* max_frame bounds what we read, max_frame_send what we send. */
static void test_frame_limits_per_direction(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	static char blob[4096];
	msgpack_packer *pk;

	co.max_frame = 1024;            /* reads at most 1 KiB */
	co.max_frame_send = 64 << 10;   /* sends up to 64 KiB */
	so.max_frame_send = 1024;       /* sends at most 1 KiB */
	make_pair(f, &co, &so, true);
	pk = ipc_notify_begin(f->cli, "blob");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_bin(pk, "data", blob, sizeof(blob));
	assert_int_equal(ipc_notify_send(f->cli), 0);
	tl_run_until(f->loop, &f->blobs, 1);
	pk = ipc_notify_begin(f->srv, "blob");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_bin(pk, "data", blob, sizeof(blob));
	assert_int_equal(ipc_notify_send(f->srv), -1);
	assert_int_equal(f->closed, 0);
}

static void test_pause_read(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	ipc_conn_pause_read(f->srv, true);
	notify(f->cli, "note", 3);
	tl_run_for(f->loop, 0.05);
	assert_int_equal(f->notes, 0);
	ipc_conn_pause_read(f->srv, false);
	tl_run_until(f->loop, &f->notes, 1);
	assert_int_equal(f->note_n, 3);
}

static void test_oversized_frame(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = opts(f, IPC_ROLE_CLIENT);
	struct ipc_conn_opts so = opts(f, IPC_ROLE_SERVER);
	static char blob[4096];
	msgpack_packer *pk;

	so.max_frame = 1024;
	make_pair(f, &co, &so, true);
	pk = ipc_notify_begin(f->cli, "blob");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_bin(pk, "data", blob, sizeof(blob));
	assert_int_equal(ipc_notify_send(f->cli), 0);
	tl_run_until(f->loop, &f->closed, 2);
	assert_int_equal(f->srv_close_code, HUSK_E_TOO_LARGE);
	assert_int_equal(f->blobs, 0);
}

static void test_malformed_frame(void **state)
{
	struct fx *f = *state;
	/* A frame holding 0xc1, a byte MessagePack never uses. */
	static const unsigned char bad[] = { 0, 0, 0, 1, 0xc1 };

	make_raw(f);
	assert_int_equal(husk_write_all(f->raw, bad, sizeof(bad)), 0);
	tl_run_until(f->loop, &f->srv_closed, 1);
	assert_int_equal(f->srv_close_code, HUSK_E_PROTOCOL);
	assert_int_equal(tl_wait_eof(f->raw), 0);
}

static void test_fd_passing(void **state)
{
	struct fx *f = *state;
	char buf[16] = "";
	msgpack_packer *pk;
	int p[2];

	default_pair(f);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	/* A frame before it so that the descriptor is not on the first
	 * message the server reads. */
	notify(f->cli, "note", 1);
	pk = ipc_call_begin(f->cli, "pipe");
	msgpack_pack_map(pk, 0);
	assert_int_equal(ipc_call_send(f->cli, 0, &p[1], 1, on_result,
				       &f->res[0], NULL), 0);
	close(p[1]);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->res[0].code, 0);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "through", 7);
	/* The server closed its copy, we closed ours: EOF. */
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0);
	close(p[0]);
}

static void test_handler_closes(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	call(f, "bye", 0, 0, 0);
	tl_run_until(f->loop, &f->cli_closed, 1);
	assert_int_equal(f->res[0].code, HUSK_E_UNAVAILABLE);
	assert_int_equal(f->srv_closed, 1);
	assert_int_equal(f->srv_close_code, -1);
}

static void test_late_reply_with_ref(void **state)
{
	struct fx *f = *state;

	default_pair(f);
	call(f, "later", 0, 0, 0);
	tl_run_until(f->loop, &f->ndone, 1);
	assert_int_equal(f->res[0].code, 0);
}

/* The server is closed while a handler's late reply still holds it. */
static void test_ref_outlives_close(void **state)
{
	struct fx *f = *state;
	struct ipc_conn *s;

	default_pair(f);
	s = f->srv;
	ipc_conn_ref(s);
	ipc_conn_close(s, NULL);
	assert_true(ipc_conn_closed(s));
	assert_int_equal(ipc_reply_ok(s, 1), -1);
	assert_int_equal(f->srv_closed, 1);
	ipc_conn_close(s, NULL);        /* on_close only once */
	assert_int_equal(f->srv_closed, 1);
	ipc_conn_unref(s);
	tl_run_until(f->loop, &f->cli_closed, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_hello_ok),
		T(test_expect_peer_mismatch),
		T(test_version_mismatch),
		T(test_request_before_hello),
		T(test_hello_timeout),
		T(test_rehello),
		T(test_unknown_method),
		T(test_dispatch_flags),
		T(test_out_of_order),
		T(test_call_timeout),
		T(test_unknown_response_untrusted),
		T(test_pending_fail_on_close),
		T(test_watermarks),
		T(test_pause_read),
		T(test_watermarks_count_messages),
		T(test_frame_limits_per_direction),
		T(test_oversized_frame),
		T(test_malformed_frame),
		T(test_fd_passing),
		T(test_handler_closes),
		T(test_late_reply_with_ref),
		T(test_ref_outlives_close),
#undef T
	};

	husk_log_init("test_conn", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
