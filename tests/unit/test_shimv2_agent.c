/*
 * shimv2/agent.c and the OOM read at a task's exit (shimv2/oom.c)
 * against a fake proxy in this process that answers when the test
 * says, as a slow or silent guest would.  What must hold: a call the
 * guest holds does not hold the loop or the calls after it; calls
 * reach the agent in the order they were made; a call that gets no
 * answer fails at its timeout and the connection goes on; a cancelled
 * call is never answered; leaving fails every call once; the exit
 * waits for the OOM read and no longer than that.
 *
 * Linked with build/lib/libshimv2.a; sv_event_oom is the test's own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"
#include "shimv2/shimv2.h"
#include "tests/unit/ipc_testlib.h"
#include "tests/unit/shimv2_testlib.h"

#define HELD_MAX 8

/* The fake proxy: "hold" keeps its call until release(), "echo" answers
 * {"n": params.n} at once, wait_oom answers oom_kills when released. */
static struct ipc_conn *held_conn[HELD_MAX];
static uint32_t held_id[HELD_MAX];
static int nheld, order[16], norder, events;

void sv_event_oom(struct sv *s, const struct sv_task *t)
{
	(void)s;
	(void)t;
	events++;
}

static int fake_hold(struct ipc_conn *c, struct ipc_msg *m, void *params,
		     void *arg, struct husk_err **err)
{
	assert_true(nheld < HELD_MAX);
	held_conn[nheld] = c;
	held_id[nheld++] = m->msgid;
	return 0;
}

static int fake_echo(struct ipc_conn *c, struct ipc_msg *m, void *params,
		     void *arg, struct husk_err **err)
{
	const msgpack_object *n = ipc_map_get(m->params, "n");
	msgpack_packer *pk;

	assert_non_null(n);
	order[norder++] = (int)n->via.u64;
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_uint(pk, "n", n->via.u64);
	ipc_reply_send(c);
	return 0;
}

static const struct ipc_method fake_methods[] = {
	IPC_METHOD("hold", IPC_M_REQUEST, fake_hold),
	IPC_METHOD("echo", IPC_M_REQUEST, fake_echo),
	IPC_METHOD(AGENT_M_WAIT_OOM, IPC_M_REQUEST, fake_hold),
	IPC_METHOD_END,
};

/* Answer the i-th held call with {"oom_kills": kills}. */
static void release(int i, uint64_t kills)
{
	msgpack_packer *pk = ipc_reply_begin(held_conn[i], held_id[i]);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_uint(pk, "oom_kills", kills);
	ipc_reply_send(held_conn[i]);
}


/* What a callback saw. */
struct seen {
	int done;
	int code;               /* 0, or the error's */
	uint64_t n;
	char msg[256];
};

static void cb(void *arg, const msgpack_object *result,
	       const struct husk_err *err)
{
	struct seen *s = arg;
	const msgpack_object *n = result ? ipc_map_get(result, "n") : NULL;

	s->done++;
	s->code = err ? err->code : 0;
	if (err)
		snprintf(s->msg, sizeof(s->msg), "%s", err->msg);
	if (n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		s->n = n->via.u64;
}

static int setup(void **state)
{
	nheld = norder = events = 0;
	*state = sv_fx_new(fake_methods);
	return 0;
}

static int teardown(void **state)
{
	return sv_fx_free(state);
}

static struct sv_acall *call(struct st *x, const char *method, int n,
			     double timeout, struct seen *s)
{
	struct husk_err *err = NULL;
	struct sv_acall *c;

	c = sv_agent_call(&x->s, "sb", method, json_pack("{s:i}", "n", n),
			  timeout, cb, s, &err);
	assert_null(err);
	assert_non_null(c);
	return c;
}

/* A held call holds neither the loop nor the calls after it. */
static void test_held_call_holds_nothing_else(void **state)
{
	struct st *x = *state;
	struct seen slow = { 0 }, fast = { 0 };

	call(x, "hold", 0, 10., &slow);
	call(x, "echo", 7, 10., &fast);
	tl_run_until(x->loop, &fast.done, 1);
	assert_int_equal(fast.code, 0);
	assert_int_equal(fast.n, 7);
	assert_int_equal(slow.done, 0);
	assert_int_equal(nheld, 1);
	release(0, 0);
	tl_run_until(x->loop, &slow.done, 1);
	assert_int_equal(slow.code, 0);
}

/* Made before the connection is up, they arrive in order, on one
 * connection. */
static void test_order(void **state)
{
	struct st *x = *state;
	struct seen s[10] = { 0 };

	for (int i = 0; i < 10; i++)
		call(x, "echo", i, 10., &s[i]);
	tl_run_until(x->loop, &s[9].done, 1);
	assert_int_equal(norder, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(s[i].done, 1);
		assert_int_equal(s[i].n, (uint64_t)i);
	}
	assert_int_equal(ipc_server_nconns(x->srv), 1);
}

/* No answer: the call fails at its timeout; the connection goes on. */
static void test_timeout(void **state)
{
	struct st *x = *state;
	struct seen s = { 0 }, after = { 0 };

	call(x, "hold", 0, 0.3, &s);
	tl_run_until(x->loop, &s.done, 1);
	assert_int_equal(s.code, HUSK_E_TIMEOUT);
	call(x, "echo", 3, 10., &after);
	tl_run_until(x->loop, &after.done, 1);
	assert_int_equal(after.code, 0);
	assert_int_equal(after.n, 3);
	/* The late answer is dropped. */
	release(0, 0);
	tl_run_for(x->loop, 0.1);
	assert_int_equal(s.done, 1);
}

static void test_no_proxy(void **state)
{
	struct st *x = *state;
	struct seen s = { 0 };
	struct husk_err *err = NULL;
	struct sv_acall *c;

	c = sv_agent_call(&x->s, "nosuch", "echo", NULL, 1., cb, &s, &err);
	if (!c) {
		assert_non_null(err);
		husk_err_free(err);
		return;
	}
	tl_run_until(x->loop, &s.done, 1);
	assert_int_equal(s.done, 1);
	assert_int_not_equal(s.code, 0);
	assert_non_null(strstr(s.msg, "echo"));
}

/* A cancelled call is not answered, even when its answer comes. */
static void test_cancel(void **state)
{
	struct st *x = *state;
	struct seen a = { 0 }, b = { 0 };
	struct sv_acall *c = call(x, "hold", 0, 10., &a);

	call(x, "hold", 1, 10., &b);
	tl_run_until(x->loop, &nheld, 2);
	sv_agent_cancel(&x->s, c);
	release(0, 0);
	release(1, 0);
	tl_run_until(x->loop, &b.done, 1);
	tl_run_for(x->loop, 0.1);
	assert_int_equal(a.done, 0);
}

/* A callback that cancels another call while the connection fails
 * (the OOM read's answer stops the watch): the cancelled one is not
 * answered.  Each cancels the other; whichever libipc fails first
 * runs, the other never does. */
static struct st *cancel_x;
static struct sv_acall *victim[2];
static struct seen seen2[2];
static void cb_cancels(void *arg, const msgpack_object *result,
		       const struct husk_err *err)
{
	int i = (struct seen *)arg - seen2;

	cb(arg, result, err);
	sv_agent_cancel(&cancel_x->s, victim[!i]);
}

static void test_cancel_from_callback(void **state)
{
	struct st *x = *state;
	struct husk_err *err = NULL;
	int done = 0;

	cancel_x = x;
	memset(seen2, 0, sizeof(seen2));
	for (int i = 0; i < 2; i++) {
		victim[i] = sv_agent_call(&x->s, "sb", "hold", NULL, 10.,
					  cb_cancels, &seen2[i], &err);
		assert_non_null(victim[i]);
	}
	tl_run_until(x->loop, &nheld, 2);
	ipc_conn_close(held_conn[0], NULL);     /* the proxy goes */
	while (!seen2[0].done && !seen2[1].done && done++ < 500)
		tl_run_for(x->loop, 0.01);
	tl_run_for(x->loop, 0.1);
	assert_int_equal(seen2[0].done + seen2[1].done, 1);
	assert_int_equal(seen2[0].done ? seen2[0].code : seen2[1].code,
			 HUSK_E_UNAVAILABLE);
}

/* Leaving: every call fails once, sent or not. */
static void test_close_all(void **state)
{
	struct st *x = *state;
	struct seen a = { 0 }, b = { 0 };

	call(x, "hold", 0, 10., &a);
	tl_run_until(x->loop, &nheld, 1);
	call(x, "hold", 1, 10., &b);
	sv_agent_close_all(&x->s);
	assert_int_equal(a.done, 1);
	assert_int_equal(b.done, 1);
	assert_int_equal(a.code, HUSK_E_UNAVAILABLE);
	assert_int_equal(b.code, HUSK_E_UNAVAILABLE);
	tl_run_for(x->loop, 0.1);
	assert_int_equal(a.done + b.done, 2);
}

static int told, events_at_told;
static void then(struct sv_proc *p)
{
	(void)p;
	told++;
	events_at_told = events;
}

/* The OOM read at the exit waits in the loop; the exit is told after
 * the kills it brings. */
static void test_final_read_in_loop(void **state)
{
	struct st *x = *state;
	struct seen other = { 0 };

	told = 0;
	x->t.oom = NULL;
	sv_oom_start(&x->s, &x->t);
	tl_run_until(x->loop, &nheld, 1);    /* the watch's wait_oom */
	assert_true(sv_oom_final(&x->s, &x->t, then));
	tl_run_until(x->loop, &nheld, 2);
	/* Meanwhile other calls are answered. */
	call(x, "echo", 5, 10., &other);
	tl_run_until(x->loop, &other.done, 1);
	assert_int_equal(told, 0);
	release(1, 2);
	tl_run_until(x->loop, &told, 1);
	/* The kills come before the exit. */
	assert_int_equal(events_at_told, 2);
	assert_null(x->t.oom);               /* the watch stopped */
}

/* Given up (the task goes): told at once, the answer is not used. */
static void test_final_given_up(void **state)
{
	struct st *x = *state;

	told = 0;
	sv_oom_start(&x->s, &x->t);
	tl_run_until(x->loop, &nheld, 1);
	assert_true(sv_oom_final(&x->s, &x->t, then));
	tl_run_until(x->loop, &nheld, 2);
	sv_oom_final_now(&x->s, &x->t);
	assert_int_equal(told, 1);
	release(1, 5);
	tl_run_for(x->loop, 0.2);
	assert_int_equal(told, 1);
	assert_int_equal(events, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_held_call_holds_nothing_else,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_proxy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_from_callback,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_all, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_final_read_in_loop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_final_given_up, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
