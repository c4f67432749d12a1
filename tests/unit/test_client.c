/* libipc/client.c: the blocking client against a server in a child. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "ipc_testlib.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"

struct fx {
	char *dir;
	char *path;
	pid_t child;
	struct ipc_client cl;
	bool connected;
};

/* ------------------------------------------------ the child's server */

static int notes;

static int64_t param_n(const msgpack_object *map)
{
	const msgpack_object *v = map ? ipc_map_get(map, "n") : NULL;
	int64_t n = -1;

	if (v && ipc_obj_int(v, "n", INT64_MIN, INT64_MAX, &n, NULL) < 0)
		n = -1;
	return n;
}

static void reply_n(struct ipc_conn *c, uint32_t id, int64_t n)
{
	msgpack_packer *pk = ipc_reply_begin(c, id);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "n", n);
	ipc_reply_send(c);
}

static int h_echo(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	reply_n(c, m->msgid, param_n(m->params));
	return 0;
}

static int h_hold(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	return 0;
}

/* n notifications, then the answer. */
static int h_burst(struct ipc_conn *c, struct ipc_msg *m,
		   void *params, void *arg, struct husk_err **err)
{
	int64_t n = param_n(m->params);

	for (int64_t i = 0; i < n; i++) {
		msgpack_packer *pk = ipc_notify_begin(c, "tick");

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "n", i);
		ipc_notify_send(c);
	}
	ipc_reply_ok(c, m->msgid);
	return 0;
}

/* The answer, then n notifications: what a subscription looks like. */
static int h_stream(struct ipc_conn *c, struct ipc_msg *m,
		    void *params, void *arg, struct husk_err **err)
{
	int64_t n = param_n(m->params);

	ipc_reply_ok(c, m->msgid);
	for (int64_t i = 0; i < n; i++) {
		msgpack_packer *pk = ipc_notify_begin(c, "tick");

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "n", i);
		ipc_notify_send(c);
	}
	return 0;
}

static int h_note(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	notes += (int)param_n(m->params);
	return 0;
}

static int h_count(struct ipc_conn *c, struct ipc_msg *m,
		   void *params, void *arg, struct husk_err **err)
{
	reply_n(c, m->msgid, notes);
	return 0;
}

static int h_pipe(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	int fd = ipc_msg_take_fd(m, 0);

	if (fd < 0) {
		ipc_reply_error(c, m->msgid, HUSK_E_INVALID, "no fd");
		return 0;
	}
	husk_write_all(fd, "piped", 5);
	close(fd);
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static const struct ipc_method methods[] = {
	IPC_METHOD("echo", IPC_M_REQUEST, h_echo),
	IPC_METHOD("hold", IPC_M_REQUEST, h_hold),
	IPC_METHOD("burst", IPC_M_REQUEST, h_burst),
	IPC_METHOD("stream", IPC_M_REQUEST, h_stream),
	IPC_METHOD("note", IPC_M_NOTIFY, h_note),
	IPC_METHOD("count", IPC_M_REQUEST, h_count),
	IPC_METHOD("pipe", IPC_M_REQUEST, h_pipe),
	IPC_METHOD_END,
};

static void serve(const char *path)
{
	struct ipc_server_opts so = {
		.conn = {
			.component = "test-server",
			.methods = methods,
			/* Room for the backlog-limit test's burst. */
			.wq_high = 64u << 20,
		},
	};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct husk_err *e = NULL;

	if (!ipc_server_new(loop, path, &so, &e)) {
		fprintf(stderr, "serve: %s\n", e->msg);
		_exit(1);
	}
	ev_run(loop, 0);
	_exit(0);
}

/* ------------------------------------------------------------ fixture */

static int setup(void **state)
{
	struct fx *f = husk_xcalloc(1, sizeof(*f));
	struct husk_err *e = NULL;

	f->dir = tl_tmpdir();
	f->path = husk_xasprintf("%s/srv.sock", f->dir);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0)
		serve(f->path);
	if (ipc_client_connect(&f->cl, f->path, "test-client", "test-server",
			       5000, &e) < 0)
		fail_msg("ipc_client_connect: %s", e->msg);
	f->connected = true;
	*state = f;
	return 0;
}

static void stop_child(struct fx *f)
{
	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
		f->child = 0;
	}
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->connected)
		ipc_client_close(&f->cl);
	stop_child(f);
	free(f->path);
	tl_rmdir(f->dir);
	free(f);
	return 0;
}

static int call_n(struct fx *f, const char *method, int64_t n, int timeout,
		  int64_t *out, struct husk_err **e)
{
	msgpack_packer *pk = ipc_client_begin(&f->cl, method);
	struct ipc_msg m;

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "n", n);
	if (ipc_client_call(&f->cl, timeout, NULL, 0, &m, e) < 0)
		return -1;
	if (out)
		*out = param_n(m.result);
	ipc_msg_free(&m);
	return 0;
}

/* -------------------------------------------------------------- tests */

static void test_call(void **state)
{
	struct fx *f = *state;
	int64_t n = 0;

	assert_string_equal(f->cl.peer, "test-server");
	assert_int_equal(call_n(f, "echo", 77, 5000, &n, NULL), 0);
	assert_int_equal(n, 77);
	assert_int_equal(call_n(f, "echo", -3, 5000, &n, NULL), 0);
	assert_int_equal(n, -3);
}

static void test_unknown_method(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;

	assert_int_equal(call_n(f, "nope", 0, 5000, NULL, &e), -1);
	assert_int_equal(e->code, HUSK_E_UNKNOWN_METHOD);
	husk_err_free(e);
}

static void test_timeout(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	int64_t n = 0;

	assert_int_equal(call_n(f, "hold", 0, 50, NULL, &e), -1);
	assert_int_equal(e->code, HUSK_E_TIMEOUT);
	husk_err_free(e);
	assert_int_equal(call_n(f, "echo", 5, 5000, &n, NULL), 0);
	assert_int_equal(n, 5);
}

static void test_backlog(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	struct ipc_msg m;

	assert_int_equal(call_n(f, "burst", 3, 5000, NULL, NULL), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ipc_client_next(&f->cl, 1000, &m, NULL), 0);
		assert_int_equal(m.type, IPC_NOTIFY);
		assert_string_equal(m.method, "tick");
		assert_int_equal(param_n(m.params), i);
		ipc_msg_free(&m);
	}
	assert_int_equal(ipc_client_next(&f->cl, 20, &m, &e), -1);
	assert_int_equal(e->code, HUSK_E_TIMEOUT);
	husk_err_free(e);
}

static void test_backlog_limit(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;

	assert_int_equal(call_n(f, "burst", 1100, 5000, NULL, &e), -1);
	assert_int_equal(e->code, HUSK_E_TOO_LARGE);
	husk_err_free(e);
}

/* A listener that takes notifications one by one as they come is not
 * flooding itself: one read brings thousands of small frames, and only
 * those before the message asked for may count against the backlog. */
static void test_listen_many(void **state)
{
	struct fx *f = *state;
	const int total = 20000;
	struct ipc_msg m;
	int avail = 0;

	assert_int_equal(call_n(f, "stream", total, 5000, NULL, NULL), 0);
	/* Let the server's batched writes fill the socket, so that one
	 * read takes in more frames than the backlog's bound. */
	for (int i = 0; i < 500 && avail < (48 << 10); i++) {
		assert_int_equal(ioctl(f->cl.fd, FIONREAD, &avail), 0);
		usleep(10000);
	}
	for (int i = 0; i < total; i++) {
		struct husk_err *e = NULL;

		if (ipc_client_next(&f->cl, 5000, &m, &e) < 0)
			fail_msg("notification %d: %s", i, e->msg);
		assert_int_equal(m.type, IPC_NOTIFY);
		assert_int_equal(param_n(m.params), i);
		ipc_msg_free(&m);
	}
}

static void test_notify(void **state)
{
	struct fx *f = *state;
	msgpack_packer *pk;
	int64_t n = 0;

	for (int i = 0; i < 2; i++) {
		pk = ipc_client_begin(&f->cl, "note");
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "n", 20);
		assert_int_equal(ipc_client_notify(&f->cl, NULL), 0);
	}
	assert_int_equal(call_n(f, "count", 0, 5000, &n, NULL), 0);
	assert_int_equal(n, 40);
}

static void test_fd_passing(void **state)
{
	struct fx *f = *state;
	struct ipc_msg m;
	char buf[8];
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	msgpack_pack_map(ipc_client_begin(&f->cl, "pipe"), 0);
	assert_int_equal(ipc_client_call(&f->cl, 5000, &p[1], 1, &m, NULL), 0);
	ipc_msg_free(&m);
	close(p[1]);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "piped", 5);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0);
	close(p[0]);
}

static void test_server_gone(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	struct ipc_msg m;

	stop_child(f);
	assert_int_equal(call_n(f, "echo", 1, 5000, NULL, &e), -1);
	assert_int_equal(e->code, HUSK_E_UNAVAILABLE);
	husk_err_clear(&e);
	assert_int_equal(ipc_client_next(&f->cl, 100, &m, &e), -1);
	assert_int_equal(e->code, HUSK_E_UNAVAILABLE);
	husk_err_free(e);
}

static void test_expect_peer(void **state)
{
	struct fx *f = *state;
	struct ipc_client other;
	struct husk_err *e = NULL;

	assert_int_equal(ipc_client_connect(&other, f->path, "test-client",
					    "husk-agent", 5000, &e), -1);
	assert_int_equal(e->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(e->msg, "husk-agent"));
	husk_err_free(e);
	ipc_client_close(&other);
}

static void test_no_server(void **state)
{
	struct fx *f = *state;
	cleanup_free char *p = husk_xasprintf("%s/none.sock", f->dir);
	struct ipc_client other;
	struct husk_err *e = NULL;

	assert_int_equal(ipc_client_connect(&other, p, "test-client", NULL,
					    50, &e), -1);
	assert_int_equal(e->code, HUSK_E_UNAVAILABLE);
	husk_err_free(e);
	ipc_client_close(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_call),
		T(test_unknown_method),
		T(test_timeout),
		T(test_backlog),
		T(test_backlog_limit),
		T(test_listen_many),
		T(test_notify),
		T(test_fd_passing),
		T(test_server_gone),
		T(test_expect_peer),
		T(test_no_server),
#undef T
	};

	husk_log_init("test_client", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
