/*
 * sandbox/oom.c: the decoder of the agent's wait_oom answer (which the
 * guest writes) and the bound on the events one answer may make.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "tests/unit/agent_testlib.h"

static int decode(struct at *t, const char *json, uint64_t *kills)
{
	return husk_oom_decode(at_json(t, json), kills, &t->err);
}

static void test_decode(void **state)
{
	struct at *t = *state;
	uint64_t k = 7;

	assert_int_equal(decode(t, "{'oom_kills': 0}", &k), 0);
	assert_true(k == 0);
	assert_int_equal(decode(t, "{'oom_kills': 3, 'later': 'x'}", &k), 0);
	assert_true(k == 3);
	/* The largest a uint64 holds. */
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_uint(&t->pk, "oom_kills", UINT64_MAX);
	assert_int_equal(husk_oom_decode(at_obj(t), &k, &t->err), 0);
	assert_true(k == UINT64_MAX);
}

static void test_decode_refused(void **state)
{
	struct at *t = *state;
	uint64_t k = 7;

	assert_int_equal(decode(t, "{}", &k), -1);
	assert_non_null(strstr(t->err->msg, "oom_kills"));
	husk_err_clear(&t->err);
	assert_int_equal(decode(t, "{'oom_kills': -1}", &k), -1);
	assert_non_null(strstr(t->err->msg, "oom_kills"));
	husk_err_clear(&t->err);
	assert_int_equal(decode(t, "{'oom_kills': '3'}", &k), -1);
	husk_err_clear(&t->err);
	assert_int_equal(decode(t, "{'oom_kills': 1.5}", &k), -1);
	husk_err_clear(&t->err);
	/* A key given twice (JSON cannot say it). */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_uint(&t->pk, "oom_kills", 1);
	ipc_pack_kv_uint(&t->pk, "oom_kills", 2);
	assert_int_equal(husk_oom_decode(at_obj(t), &k, &t->err), -1);
	husk_err_clear(&t->err);
	assert_true(k == 7);
}

static void test_decode_not_a_map(void **state)
{
	struct at *t = *state;
	uint64_t k = 7;

	assert_int_equal(decode(t, "[1]", &k), -1);
	at_expect_err(t, HUSK_E_PROTOCOL, "wait_oom: the result is not a map");
	assert_int_equal(husk_oom_decode(NULL, &k, &t->err), -1);
	at_expect_err(t, HUSK_E_PROTOCOL, "wait_oom: the result is not a map");
	assert_true(k == 7);
}

static void test_news(void **state)
{
	uint64_t seen = 0, dropped = 9;

	(void)state;
	assert_int_equal(husk_oom_news(&seen, 0, &dropped), 0);
	assert_true(dropped == 0);
	assert_int_equal(husk_oom_news(&seen, 2, &dropped), 2);
	assert_true(seen == 2 && dropped == 0);
	assert_int_equal(husk_oom_news(&seen, 2, &dropped), 0);
	/* A jump by millions: HUSK_OOM_BURST events, the rest dropped. */
	assert_int_equal(husk_oom_news(&seen, 2000002, &dropped),
			 HUSK_OOM_BURST);
	assert_true(seen == 2000002);
	assert_true(dropped == 2000000 - HUSK_OOM_BURST);
	assert_int_equal(husk_oom_news(&seen, UINT64_MAX, &dropped),
			 HUSK_OOM_BURST);
	assert_true(seen == UINT64_MAX);
	/* A count that went back: the new base, nothing to report. */
	assert_int_equal(husk_oom_news(&seen, 1, &dropped), 0);
	assert_true(seen == 1 && dropped == 0);
	assert_int_equal(husk_oom_news(&seen, 2, &dropped), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decode, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_refused, at_setup,
						at_teardown),
		cmocka_unit_test_setup_teardown(test_decode_not_a_map,
						at_setup, at_teardown),
		cmocka_unit_test(test_news),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
