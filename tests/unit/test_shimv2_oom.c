/*
 * shimv2/oom.c: /tasks/oom from the agent's wait_oom answers, against a
 * fake proxy in this process that answers as a hostile guest would:
 * at once and with counts that jump by thousands, or with garbage.
 * What must hold: one call waiting at a time, at most one call a
 * second, at most HUSK_OOM_BURST events an answer, and nothing
 * published for an answer that does not decode.
 *
 * Linked with build/lib/libshimv2.a (shimv2/program.mk); sv_event_oom
 * is the test's own, so only oom.c comes from it.
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

enum { FLOOD, GARBAGE, HOLD, CANNOT };

static int mode, calls, waiting, max_waiting, events;
static struct ipc_conn *held;
static uint32_t held_id;

void sv_event_oom(struct sv *s, const struct sv_task *t)
{
	(void)s;
	assert_string_equal(t->id, "c1");
	events++;
}

static int fake_wait_oom(struct ipc_conn *c, struct ipc_msg *m,
			 void *params, void *arg, struct husk_err **err)
{
	msgpack_packer *pk;

	calls++;
	assert_true(ipc_str_is(ipc_map_get(m->params, "container_id"),
			       "c1"));
	if (mode == HOLD) {
		waiting++;
		if (waiting > max_waiting)
			max_waiting = waiting;
		held = c;
		held_id = m->msgid;
		return 0;
	}
	if (mode == CANNOT)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED, "container c1: "
				  "OOM kills are not watched");
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	if (mode == FLOOD)
		ipc_pack_kv_uint(pk, "oom_kills", (uint64_t)calls * 1000);
	else
		ipc_pack_kv_str(pk, "oom_kills", "\x1b[2Jmany");
	ipc_reply_send(c);
	return 0;
}

static const struct ipc_method fake_methods[] = {
	IPC_METHOD(AGENT_M_WAIT_OOM, IPC_M_REQUEST, fake_wait_oom),
	IPC_METHOD_END,
};


static int setup(void **state)
{
	calls = waiting = max_waiting = events = 0;
	held = NULL;
	*state = sv_fx_new(fake_methods);
	return 0;
}

static int teardown(void **state)
{
	return sv_fx_free(state);
}

static void test_flood(void **state)
{
	struct st *x = *state;

	mode = FLOOD;
	sv_oom_start(&x->s, &x->t);
	tl_run_for(x->loop, 2.5);
	/* At 0, 1 and 2 s; each answer a jump of 1000 kills. */
	assert_true(calls >= 1 && calls <= 3);
	assert_int_equal(events, calls * (int)HUSK_OOM_BURST);
}

static void test_garbage(void **state)
{
	struct st *x = *state;

	mode = GARBAGE;
	sv_oom_start(&x->s, &x->t);
	tl_run_for(x->loop, 2.0);
	/* At 0, then after 0.5 s and 1 s more: backing off. */
	assert_true(calls >= 1 && calls <= 3);
	assert_int_equal(events, 0);
}

/* An agent that cannot watch is not asked again. */
static void test_cannot(void **state)
{
	struct st *x = *state;

	mode = CANNOT;
	sv_oom_start(&x->s, &x->t);
	tl_run_until(x->loop, &calls, 1);
	tl_run_for(x->loop, 1.5);
	assert_int_equal(calls, 1);
	assert_int_equal(events, 0);
}

static void answer_held(uint64_t kills)
{
	msgpack_packer *pk = ipc_reply_begin(held, held_id);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_uint(pk, "oom_kills", kills);
	ipc_reply_send(held);
	waiting--;
}

static void test_long_poll(void **state)
{
	struct st *x = *state;

	mode = HOLD;
	sv_oom_start(&x->s, &x->t);
	tl_run_until(x->loop, &calls, 1);
	tl_run_for(x->loop, 0.2);
	assert_int_equal(calls, 1);     /* it waits */
	answer_held(2);
	tl_run_until(x->loop, &events, 2);
	/* The next call (a second after the first) says what was seen. */
	tl_run_until(x->loop, &calls, 2);
	assert_int_equal(max_waiting, 1);
	answer_held(1);                 /* went back: a new base */
	tl_run_until(x->loop, &calls, 3);
	answer_held(2);
	tl_run_until(x->loop, &events, 3);
	assert_int_equal(events, 3);
	assert_int_equal(max_waiting, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cannot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
