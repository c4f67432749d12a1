/* libipc/params.c: typed getters and table-driven params decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "libipc/ipc.h"

/* Pack with pk, then obj() unpacks what was packed. */
struct t {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked un;
	struct husk_err *err;
};

static int t_setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	msgpack_sbuffer_init(&t->sb);
	msgpack_packer_init(&t->pk, &t->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&t->un);
	*state = t;
	return 0;
}

static int t_teardown(void **state)
{
	struct t *t = *state;

	msgpack_unpacked_destroy(&t->un);
	msgpack_sbuffer_destroy(&t->sb);
	husk_err_free(t->err);
	free(t);
	return 0;
}

static const msgpack_object *obj(struct t *t)
{
	assert_int_equal(msgpack_unpack_next(&t->un, t->sb.data, t->sb.size,
					     NULL), MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_clear(&t->sb);
	return &t->un.data;
}

/* The last call failed with HUSK_E_INVALID and this message. */
static void expect_err(struct t *t, const char *msg)
{
	assert_non_null(t->err);
	assert_int_equal(t->err->code, HUSK_E_INVALID);
	assert_string_equal(t->err->msg, msg);
	husk_err_clear(&t->err);
}

static void pack_str_n(msgpack_packer *pk, char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Getters                                                             */

/* The hello's component: a name, or refused without echoing it. */
static void test_name(void **state)
{
	static const char *const bad[] = { "husk\x1b[2J", "a\r\nb", "a b",
					   "caf\xc3\xa9", "x\x7f", NULL };
	struct t *t = *state;
	char *s = NULL;

	ipc_pack_str(&t->pk, "husk-agent");
	assert_int_equal(ipc_obj_name(obj(t), "params.component", 64, &s,
				      &t->err), 0);
	assert_string_equal(s, "husk-agent");
	free(s);
	for (const char *const *b = bad; *b; b++) {
		ipc_pack_str(&t->pk, *b);
		assert_int_equal(ipc_obj_name(obj(t), "params.component", 64,
					      &s, &t->err), -1);
		expect_err(t, "params.component: not a name (empty, or a "
			   "control, space or non-ASCII byte)");
	}
	ipc_pack_str(&t->pk, "");
	assert_int_equal(ipc_obj_name(obj(t), "params.component", 64, &s,
				      &t->err), -1);
	husk_err_clear(&t->err);
	pack_str_n(&t->pk, 'a', 65);
	assert_int_equal(ipc_obj_name(obj(t), "params.component", 64, &s,
				      &t->err), -1);
	expect_err(t, "params.component: string of 65 bytes is longer than "
		   "64");
}

static void test_str(void **state)
{
	struct t *t = *state;
	const msgpack_object *o;
	char *s = NULL;

	pack_str_n(&t->pk, 'a', 128);
	o = obj(t);
	assert_int_equal(ipc_obj_str(o, "params.name", 128, &s, &t->err), 0);
	assert_int_equal(strlen(s), 128);
	free(s);
	assert_int_equal(ipc_obj_str(o, "params.name", 127, &s, &t->err), -1);
	expect_err(t, "params.name: string of 128 bytes is longer than 127");

	pack_str_n(&t->pk, 'a', 300);
	assert_int_equal(ipc_obj_str(obj(t), "params.name", 128, &s,
				     &t->err), -1);
	expect_err(t, "params.name: string of 300 bytes is longer than 128");

	msgpack_pack_str(&t->pk, 3);
	msgpack_pack_str_body(&t->pk, "a\0b", 3);
	assert_int_equal(ipc_obj_str(obj(t), "params.x", 10, &s, &t->err), -1);
	expect_err(t, "params.x: string contains a NUL byte");

	msgpack_pack_int(&t->pk, 5);
	assert_int_equal(ipc_obj_str(obj(t), "params.container_id", 10, &s,
				     &t->err), -1);
	expect_err(t, "params.container_id: expected a string, got an integer");

	msgpack_pack_bin(&t->pk, 1);
	msgpack_pack_bin_body(&t->pk, "a", 1);
	assert_int_equal(ipc_obj_str(obj(t), "params.x", 10, &s, &t->err), -1);
	expect_err(t, "params.x: expected a string, got binary data");

	assert_int_equal(ipc_obj_str(NULL, "params.x", 10, &s, &t->err), -1);
	expect_err(t, "params.x: missing");

	/* The empty string is a string. */
	msgpack_pack_str(&t->pk, 0);
	assert_int_equal(ipc_obj_str(obj(t), "params.x", 0, &s, &t->err), 0);
	assert_string_equal(s, "");
	free(s);
}

static int get_int(struct t *t, int64_t min, int64_t max, int64_t *v)
{
	return ipc_obj_int(obj(t), "params.n", min, max, v, &t->err);
}

static void test_int_bounds(void **state)
{
	struct t *t = *state;
	int64_t v;

	msgpack_pack_int64(&t->pk, -10);
	assert_int_equal(get_int(t, -10, 10, &v), 0);
	assert_int_equal(v, -10);
	msgpack_pack_int64(&t->pk, 10);
	assert_int_equal(get_int(t, -10, 10, &v), 0);
	assert_int_equal(v, 10);
	msgpack_pack_int64(&t->pk, -11);
	assert_int_equal(get_int(t, -10, 10, &v), -1);
	expect_err(t, "params.n: -11 is out of range [-10, 10]");
	msgpack_pack_int64(&t->pk, 11);
	assert_int_equal(get_int(t, -10, 10, &v), -1);
	expect_err(t, "params.n: 11 is out of range [-10, 10]");

	/* A positive minimum and a negative maximum. */
	msgpack_pack_int64(&t->pk, 4);
	assert_int_equal(get_int(t, 5, 10, &v), -1);
	expect_err(t, "params.n: 4 is out of range [5, 10]");
	msgpack_pack_int64(&t->pk, 0);
	assert_int_equal(get_int(t, -5, -1, &v), -1);
	expect_err(t, "params.n: 0 is out of range [-5, -1]");

	/* The whole int64 range, and a uint64 past it. */
	msgpack_pack_int64(&t->pk, INT64_MIN);
	assert_int_equal(get_int(t, INT64_MIN, INT64_MAX, &v), 0);
	assert_true(v == INT64_MIN);
	msgpack_pack_int64(&t->pk, INT64_MAX);
	assert_int_equal(get_int(t, INT64_MIN, INT64_MAX, &v), 0);
	assert_true(v == INT64_MAX);
	msgpack_pack_uint64(&t->pk, (uint64_t)INT64_MAX + 1);
	assert_int_equal(get_int(t, INT64_MIN, INT64_MAX, &v), -1);
	expect_err(t, "params.n: 9223372036854775808 is out of range "
		   "[-9223372036854775808, 9223372036854775807]");

	msgpack_pack_double(&t->pk, 1.0);
	assert_int_equal(get_int(t, 0, 10, &v), -1);
	expect_err(t, "params.n: expected an integer, got a float");
	msgpack_pack_str(&t->pk, 1);
	msgpack_pack_str_body(&t->pk, "1", 1);
	assert_int_equal(get_int(t, 0, 10, &v), -1);
	expect_err(t, "params.n: expected an integer, got a string");
}

static void test_uint_bounds(void **state)
{
	struct t *t = *state;
	uint64_t v;

	msgpack_pack_uint64(&t->pk, 65535);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 65535, &v,
				      &t->err), 0);
	assert_int_equal(v, 65535);
	msgpack_pack_uint64(&t->pk, 65536);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 65535, &v,
				      &t->err), -1);
	expect_err(t, "params.uid: 65536 is out of range [0, 65535]");
	msgpack_pack_uint64(&t->pk, 70000);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 65535, &v,
				      &t->err), -1);
	expect_err(t, "params.uid: 70000 is out of range [0, 65535]");
	msgpack_pack_int64(&t->pk, -1);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 65535, &v,
				      &t->err), -1);
	expect_err(t, "params.uid: -1 is out of range [0, 65535]");
	msgpack_pack_uint64(&t->pk, 0);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 0, &v, &t->err), 0);
	msgpack_pack_uint64(&t->pk, UINT64_MAX);
	assert_int_equal(ipc_obj_uint(obj(t), "params.x", UINT64_MAX, &v,
				      &t->err), 0);
	assert_true(v == UINT64_MAX);
	msgpack_pack_true(&t->pk);
	assert_int_equal(ipc_obj_uint(obj(t), "params.uid", 1, &v, &t->err), -1);
	expect_err(t, "params.uid: expected an integer, got a boolean");
}

static void test_bool_bin(void **state)
{
	struct t *t = *state;
	const char *p;
	size_t len;
	bool b = false;

	msgpack_pack_true(&t->pk);
	assert_int_equal(ipc_obj_bool(obj(t), "params.t", &b, &t->err), 0);
	assert_true(b);
	msgpack_pack_int(&t->pk, 1);
	assert_int_equal(ipc_obj_bool(obj(t), "params.t", &b, &t->err), -1);
	expect_err(t, "params.t: expected a boolean, got an integer");
	msgpack_pack_nil(&t->pk);
	assert_int_equal(ipc_obj_bool(obj(t), "params.t", &b, &t->err), -1);
	expect_err(t, "params.t: expected a boolean, got nil");

	msgpack_pack_bin(&t->pk, 4);
	msgpack_pack_bin_body(&t->pk, "\0\1\2\3", 4);
	assert_int_equal(ipc_obj_bin(obj(t), "params.data", 4, &p, &len,
				     &t->err), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(p, "\0\1\2\3", 4);
	assert_int_equal(ipc_obj_bin(&t->un.data, "params.data", 3, &p, &len,
				     &t->err), -1);
	expect_err(t, "params.data: 4 bytes is longer than 3");
	msgpack_pack_str(&t->pk, 1);
	msgpack_pack_str_body(&t->pk, "a", 1);
	assert_int_equal(ipc_obj_bin(obj(t), "params.data", 4, &p, &len,
				     &t->err), -1);
	expect_err(t, "params.data: expected binary data, got a string");
}

static void test_array_map_counts(void **state)
{
	struct t *t = *state;
	const msgpack_object *o;

	msgpack_pack_array(&t->pk, 3);
	for (int i = 0; i < 3; i++)
		msgpack_pack_int(&t->pk, i);
	o = obj(t);
	assert_int_equal(ipc_obj_array(o, "params.a", 3, &t->err), 3);
	assert_int_equal(ipc_obj_array(o, "params.a", 2, &t->err), -1);
	expect_err(t, "params.a: array of 3 elements is longer than 2");
	assert_int_equal(ipc_obj_map(o, "params.a", 3, &t->err), -1);
	expect_err(t, "params.a: expected a map, got an array");

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_int(&t->pk, "a", 1);
	ipc_pack_kv_int(&t->pk, "a", 2);
	o = obj(t);
	assert_int_equal(ipc_obj_map(o, "params.m", 2, &t->err), 2);
	assert_int_equal(ipc_obj_map(o, "params.m", 1, &t->err), -1);
	expect_err(t, "params.m: map of 2 elements is longer than 1");
	/* ipc_map_get returns the first of duplicates. */
	assert_int_equal(ipc_map_get(o, "a")->via.u64, 1);
	assert_null(ipc_map_get(o, "b"));
	assert_null(ipc_map_get(NULL, "a"));
	assert_int_equal(ipc_obj_array(o, "params.m", 5, &t->err), -1);
	expect_err(t, "params.m: expected an array, got a map");
}

/* ------------------------------------------------------------------ */
/* ipc_decode                                                          */

struct all {
	char *name;
	int64_t i64;
	int32_t i32;
	uint64_t u64;
	uint32_t u32;
	bool flag;
	struct ipc_bin data;
	char **env;
	const msgpack_object *labels;
	const msgpack_object *list;
	const msgpack_object *any;
	char *opt;
};

static const struct ipc_field all_fields[] = {
	{ "name", IPC_F_STR, IPC_REQUIRED, offsetof(struct all, name), 0, 16 },
	{ "i64", IPC_F_INT64, 0, offsetof(struct all, i64), INT64_MIN,
	  UINT64_MAX },
	{ "i32", IPC_F_INT32, 0, offsetof(struct all, i32), INT64_MIN,
	  UINT64_MAX },
	{ "u64", IPC_F_UINT64, 0, offsetof(struct all, u64), 0, UINT64_MAX },
	{ "u32", IPC_F_UINT32, 0, offsetof(struct all, u32), 0, UINT64_MAX },
	{ "flag", IPC_F_BOOL, IPC_NULLABLE, offsetof(struct all, flag), 0, 0 },
	{ "data", IPC_F_BIN, 0, offsetof(struct all, data), 0, 8 },
	{ "env", IPC_F_STRV, 0, offsetof(struct all, env), 8, 4 },
	{ "labels", IPC_F_MAP, 0, offsetof(struct all, labels), 0, 2 },
	{ "list", IPC_F_ARRAY, 0, offsetof(struct all, list), 0, 2 },
	{ "any", IPC_F_ANY, 0, offsetof(struct all, any), 0, 0 },
	{ "opt", IPC_F_STR, IPC_NULLABLE, offsetof(struct all, opt), 0, 16 },
	{ 0 },
};

static void pack_env(msgpack_packer *pk, int n, int nul_at)
{
	ipc_pack_key(pk, "env");
	msgpack_pack_array(pk, n);
	for (int i = 0; i < n; i++) {
		if (i == nul_at) {
			msgpack_pack_str(pk, 3);
			msgpack_pack_str_body(pk, "A\0B", 3);
		} else {
			ipc_pack_str(pk, "A=1");
		}
	}
}

/* Every field with a good value; `skip` leaves one key out, `bad`
 * makes that one wrong (type), `extra` adds a key after the others. */
static void pack_all(struct t *t, const char *skip, const char *bad,
		     const char *extra)
{
	msgpack_packer *pk = &t->pk;
	int n = 12 - (skip != NULL) + (extra != NULL);

	msgpack_pack_map(pk, n);
	if (!skip || strcmp(skip, "name"))
		ipc_pack_kv_str(pk, "name", "box");
	ipc_pack_kv_int(pk, "i64", INT64_MIN);
	ipc_pack_kv_int(pk, "i32", INT32_MIN);
	ipc_pack_kv_uint(pk, "u64", UINT64_MAX);
	ipc_pack_kv_uint(pk, "u32", UINT32_MAX);
	if (bad && !strcmp(bad, "flag"))
		ipc_pack_kv_int(pk, "flag", 1);
	else
		ipc_pack_kv_bool(pk, "flag", true);
	ipc_pack_kv_bin(pk, "data", "12345678", 8);
	pack_env(pk, 4, bad && !strcmp(bad, "env") ? 3 : -1);
	ipc_pack_key(pk, "labels");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_str(pk, "k", "v");
	ipc_pack_key(pk, "list");
	msgpack_pack_array(pk, 0);
	ipc_pack_key(pk, "any");
	msgpack_pack_double(pk, 0.5);
	ipc_pack_kv_str(pk, "unknown", "ignored");
	if (extra)
		ipc_pack_kv_str(pk, extra, "again");
}

static void test_decode_all(void **state)
{
	struct t *t = *state;
	struct all a = { .flag = false };

	pack_all(t, NULL, NULL, NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), 0);
	assert_string_equal(a.name, "box");
	assert_true(a.i64 == INT64_MIN);
	assert_int_equal(a.i32, INT32_MIN);
	assert_true(a.u64 == UINT64_MAX);
	assert_int_equal(a.u32, UINT32_MAX);
	assert_true(a.flag);
	assert_int_equal(a.data.len, 8);
	assert_memory_equal(a.data.p, "12345678", 8);
	assert_string_equal(a.env[0], "A=1");
	assert_string_equal(a.env[3], "A=1");
	assert_null(a.env[4]);
	assert_int_equal(a.labels->via.map.size, 1);
	assert_int_equal(a.list->via.array.size, 0);
	assert_int_equal(a.any->type, MSGPACK_OBJECT_FLOAT64);
	assert_null(a.opt);
	ipc_decode_free(all_fields, &a);
	assert_null(a.name);
	assert_null(a.env);
	ipc_decode_free(all_fields, &a);
}

/* A failure after strings were decoded frees them (ASan checks). */
static void test_decode_failure_frees(void **state)
{
	struct t *t = *state;
	struct all a = { 0 };

	pack_all(t, NULL, "env", NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.env[3]: string contains a NUL byte");
	assert_null(a.name);
	assert_null(a.env);

	pack_all(t, NULL, NULL, "name");
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.name: given twice");
	assert_null(a.name);
	assert_null(a.env);

	pack_all(t, "name", NULL, NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.name: missing");
	assert_null(a.env);

	pack_all(t, NULL, "flag", NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.flag: expected a boolean, got an integer");
	assert_null(a.name);
}

static void test_decode_nullable(void **state)
{
	struct t *t = *state;
	struct all a = { .flag = true, .opt = strdup("default") };

	/* nil leaves the default of a nullable field... */
	msgpack_pack_map(&t->pk, 3);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_key(&t->pk, "flag");
	msgpack_pack_nil(&t->pk);
	ipc_pack_kv_str(&t->pk, "opt", NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), 0);
	assert_true(a.flag);
	assert_string_equal(a.opt, "default");
	ipc_decode_free(all_fields, &a);

	/* ...and is a type error elsewhere. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_kv_str(&t->pk, "i64", NULL);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.i64: expected an integer, got nil");

	/* A required field given as nil is not missing when nullable. */
	static const struct ipc_field req_null[] = {
		{ "x", IPC_F_STR, IPC_REQUIRED | IPC_NULLABLE, 0, 0, 8 },
		{ 0 },
	};
	char *x = NULL;

	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_str(&t->pk, "x", NULL);
	assert_int_equal(ipc_decode(obj(t), req_null, &x, &t->err), 0);
	assert_null(x);
	msgpack_pack_map(&t->pk, 0);
	assert_int_equal(ipc_decode(obj(t), req_null, &x, &t->err), -1);
	expect_err(t, "params.x: missing");
}

/* A decoded string replaces (and frees) an allocated default. */
static void test_decode_replaces_default(void **state)
{
	struct t *t = *state;
	struct all a = { .name = strdup("old"), .opt = strdup("old") };

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "new");
	ipc_pack_kv_str(&t->pk, "opt", "new");
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), 0);
	assert_string_equal(a.name, "new");
	assert_string_equal(a.opt, "new");
	ipc_decode_free(all_fields, &a);
}

struct narrow {
	int32_t i32;
	uint32_t u32;
	int64_t small;
};

static const struct ipc_field narrow_fields[] = {
	{ "i32", IPC_F_INT32, 0, offsetof(struct narrow, i32), INT64_MIN,
	  UINT64_MAX },
	{ "u32", IPC_F_UINT32, 0, offsetof(struct narrow, u32), 0, UINT64_MAX },
	{ "small", IPC_F_INT64, 0, offsetof(struct narrow, small), -3, 3 },
	{ 0 },
};

static int decode_one(struct t *t, const char *k, int64_t v, bool neg)
{
	struct narrow n = { 0 };

	msgpack_pack_map(&t->pk, 1);
	ipc_pack_key(&t->pk, k);
	if (neg)
		msgpack_pack_int64(&t->pk, v);
	else
		msgpack_pack_uint64(&t->pk, (uint64_t)v);
	return ipc_decode(obj(t), narrow_fields, &n, &t->err);
}

/* The member's width bounds the value even when the table does not. */
static void test_decode_narrow(void **state)
{
	struct t *t = *state;

	assert_int_equal(decode_one(t, "i32", INT32_MAX, false), 0);
	assert_int_equal(decode_one(t, "i32", (int64_t)INT32_MAX + 1, false),
			 -1);
	expect_err(t, "params.i32: 2147483648 is out of range "
		   "[-2147483648, 2147483647]");
	assert_int_equal(decode_one(t, "i32", INT32_MIN, true), 0);
	assert_int_equal(decode_one(t, "i32", (int64_t)INT32_MIN - 1, true),
			 -1);
	husk_err_clear(&t->err);
	assert_int_equal(decode_one(t, "u32", UINT32_MAX, false), 0);
	assert_int_equal(decode_one(t, "u32", (int64_t)UINT32_MAX + 1, false),
			 -1);
	expect_err(t, "params.u32: 4294967296 is out of range [0, 4294967295]");
	assert_int_equal(decode_one(t, "u32", -1, true), -1);
	expect_err(t, "params.u32: -1 is out of range [0, 4294967295]");
	assert_int_equal(decode_one(t, "small", 3, false), 0);
	assert_int_equal(decode_one(t, "small", -3, true), 0);
	assert_int_equal(decode_one(t, "small", 4, false), -1);
	expect_err(t, "params.small: 4 is out of range [-3, 3]");
	assert_int_equal(decode_one(t, "small", -4, true), -1);
	expect_err(t, "params.small: -4 is out of range [-3, 3]");
}

static void test_decode_bounds(void **state)
{
	struct t *t = *state;
	struct all a = { 0 };

	/* STRV: at most 4 strings of at most 8 bytes. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	pack_env(&t->pk, 5, -1);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.env: array of 5 elements is longer than 4");
	assert_null(a.name);

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_key(&t->pk, "env");
	msgpack_pack_array(&t->pk, 2);
	pack_str_n(&t->pk, 'e', 8);
	pack_str_n(&t->pk, 'e', 9);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.env[1]: string of 9 bytes is longer than 8");

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_key(&t->pk, "env");
	msgpack_pack_array(&t->pk, 1);
	msgpack_pack_int(&t->pk, 1);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.env[0]: expected a string, got an integer");

	/* STR max: exactly 16 is fine, 17 is not. */
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_key(&t->pk, "name");
	pack_str_n(&t->pk, 'n', 16);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), 0);
	ipc_decode_free(all_fields, &a);
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_key(&t->pk, "name");
	pack_str_n(&t->pk, 'n', 17);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.name: string of 17 bytes is longer than 16");

	/* BIN, MAP and ARRAY maxima. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_kv_bin(&t->pk, "data", "123456789", 9);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.data: 9 bytes is longer than 8");
	assert_null(a.name);

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_key(&t->pk, "labels");
	msgpack_pack_map(&t->pk, 3);
	for (int i = 0; i < 3; i++)
		ipc_pack_kv_int(&t->pk, "k", i);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.labels: map of 3 elements is longer than 2");

	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "n");
	ipc_pack_key(&t->pk, "list");
	msgpack_pack_array(&t->pk, 3);
	for (int i = 0; i < 3; i++)
		msgpack_pack_nil(&t->pk);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params.list: array of 3 elements is longer than 2");

	/* params itself must be a map. */
	msgpack_pack_array(&t->pk, 0);
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), -1);
	expect_err(t, "params: expected a map, got an array");
	assert_int_equal(ipc_decode(NULL, all_fields, &a, &t->err), -1);
	expect_err(t, "params: expected a map, got nothing");
}

/* Keys that are not strings cannot name a field and are skipped. */
static void test_decode_odd_keys(void **state)
{
	struct t *t = *state;
	struct all a = { 0 };

	msgpack_pack_map(&t->pk, 3);
	msgpack_pack_int(&t->pk, 1);
	msgpack_pack_int(&t->pk, 2);
	msgpack_pack_bin(&t->pk, 4);
	msgpack_pack_bin_body(&t->pk, "name", 4);
	msgpack_pack_int(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "name", "ok");
	assert_int_equal(ipc_decode(obj(t), all_fields, &a, &t->err), 0);
	assert_string_equal(a.name, "ok");
	ipc_decode_free(all_fields, &a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_str),
		T(test_name),
		T(test_int_bounds),
		T(test_uint_bounds),
		T(test_bool_bin),
		T(test_array_map_counts),
		T(test_decode_all),
		T(test_decode_failure_frees),
		T(test_decode_nullable),
		T(test_decode_replaces_default),
		T(test_decode_narrow),
		T(test_decode_bounds),
		T(test_decode_odd_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
