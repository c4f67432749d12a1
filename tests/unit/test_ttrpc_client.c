/*
 * shimv2/ttrpc_client.c and events.c: client and server over a
 * socketpair, and the events publisher against a fake containerd that
 * is not there at first, refuses an event, then restarts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ttrpc_testlib.h"

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

/* An event published from a handler that held the loop longer than
 * the call timeout (Create booting a VM) is not taken for an
 * unanswered call: the bound starts when the call is sent. */
static void test_events_after_long_handler(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/test_ttrpc.XXXXXX", path[128];
	struct ttrpc_server *ctd;
	struct events_pub *p;
	Events__TaskCreate c = EVENTS__TASK_CREATE__INIT;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ttrpc.sock", dir);
	ctd = ttrpc_server_new(f->loop, ev_methods, 1, f);
	ttrpc_server_on_conn_close(ctd, conn_closed_cb, f);
	assert_int_equal(ttrpc_server_listen_fd(ctd, listen_at(path), NULL),
			 0);
	p = events_pub_new(f->loop, path, "husk-test", 0, NULL);
	events_set_call_timeout(p, 0.2);
	ev_run(f->loop, EVRUN_NOWAIT);
	/* The loop held past the bound, as a long handler holds it. */
	usleep(300 * 1000);
	c.container_id = "c1";
	assert_int_equal(events_publish(p, &c.base, NULL), 0);
	tl_run_until(f->loop, &f->forwarded, 1);
	assert_string_equal(f->topics[0], "/tasks/create");
	/* Delivered on its first connection: none was given up. */
	assert_int_equal(f->conn_closed, 0);
	events_pub_free(p);
	ttrpc_server_free(ctd);
	unlink(path);
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
		cmocka_unit_test(test_any_and_codes),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_client_round_trip),
		T(test_client_server_goes),
		T(test_events_retry_in_order),
		T(test_events_after_long_handler),
		T(test_events_queue_bound),
#undef T
	};

	husk_log_init("test_ttrpc_client", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
