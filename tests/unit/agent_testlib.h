/*
 * Helpers shared by the agent unit tests (test_agent_*): MessagePack
 * objects written as JSON (single quotes allowed, for readable C
 * strings) and error checks.
 */
#ifndef HUSK_TEST_AGENT_TESTLIB_H
#define HUSK_TEST_AGENT_TESTLIB_H

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "libhusk/err.h"
#include "libipc/ipc.h"

struct at {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked un;
	struct husk_err *err;
};

static inline struct at *at_new(void)
{
	struct at *t = calloc(1, sizeof(*t));

	msgpack_sbuffer_init(&t->sb);
	msgpack_packer_init(&t->pk, &t->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&t->un);
	return t;
}

static inline void at_free(struct at *t)
{
	msgpack_unpacked_destroy(&t->un);
	msgpack_sbuffer_destroy(&t->sb);
	husk_err_free(t->err);
	free(t);
}

/* cmocka setup and teardown: a struct at as the state. */
static inline int at_setup(void **state)
{
	*state = at_new();
	return 0;
}

static inline int at_teardown(void **state)
{
	at_free(*state);
	return 0;
}

/* Unpack what t->pk packed since the last call. */
static inline const msgpack_object *at_obj(struct at *t)
{
	assert_int_equal(msgpack_unpack_next(&t->un, t->sb.data, t->sb.size,
					     NULL), MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_clear(&t->sb);
	return &t->un.data;
}

/* JSON (with ' for ") -> MessagePack object. */
static inline const msgpack_object *at_json(struct at *t, const char *js)
{
	char *s = strdup(js);
	json_error_t je;
	json_t *j;

	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	j = json_loads(s, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad test JSON: %s: %s", je.text, s);
	free(s);
	assert_int_equal(ipc_json_pack(&t->pk, j, NULL), 0);
	json_decref(j);
	return at_obj(t);
}

/* The last call failed with this code and message. */
static inline void at_expect_err(struct at *t, int code, const char *msg)
{
	if (!t->err)
		fail_msg("expected error \"%s\", got success", msg);
	if (strcmp(t->err->msg, msg) != 0)
		fail_msg("expected error \"%s\", got \"%s\"", msg, t->err->msg);
	assert_int_equal(t->err->code, code);
	husk_err_clear(&t->err);
}

/* The value at key of map, failing the test when absent. */
static inline const msgpack_object *at_get(const msgpack_object *map,
					   const char *key)
{
	const msgpack_object *v = ipc_map_get(map, key);

	if (!v)
		fail_msg("no key \"%s\"", key);
	return v;
}

static inline uint64_t at_uint(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = at_get(map, key);

	assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return v->via.u64;
}

static inline int at_str_eq(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR && strlen(s) == o->via.str.size &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

#endif
