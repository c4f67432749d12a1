/* libipc/json.c: JSON <-> MessagePack. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "libipc/ipc.h"

struct t {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked un;
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

/* What ipc_json_from_obj makes of what was packed, as compact text. */
static char *render(struct t *t)
{
	json_t *j = ipc_json_from_obj(obj(t));
	char *s;

	assert_non_null(j);
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

static void expect_render(struct t *t, const char *want)
{
	char *s = render(t);

	assert_string_equal(s, want);
	free(s);
}

/* text -> json -> msgpack -> json equals the first json. */
static void roundtrip(struct t *t, const char *text)
{
	struct husk_err *err = NULL;
	json_error_t jerr;
	json_t *in, *out;

	in = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	assert_non_null(in);
	assert_int_equal(ipc_json_pack(&t->pk, in, &err), 0);
	assert_int_equal(ipc_msgpack_check(t->sb.data, t->sb.size, &err), 0);
	out = ipc_json_from_obj(obj(t));
	if (!out)
		fail_msg("no JSON back for %s", text);
	if (!json_equal(in, out))
		fail_msg("round trip changed %s", text);
	json_decref(in);
	json_decref(out);
}

static void test_roundtrips(void **state)
{
	static const char *const docs[] = {
		"{}", "[]", "null", "true", "false", "0", "-1", "1.5",
		"\"\"", "\"caf\\u00e9 \\u2603 \\ud83d\\ude00\"",
		"\"nul\\u0000inside\"",
		"9223372036854775807", "-9223372036854775808",
		"{\"id\": \"c1\", \"args\": [\"sh\", \"-c\", \"exit 3\"],"
		" \"env\": {\"A\": \"1\"}, \"tty\": false, \"uid\": 0,"
		" \"mem\": 1.25e9, \"none\": null,"
		" \"deep\": [[[{\"x\": [1, {\"y\": []}]}]]]}",
	};
	struct t *t = *state;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		roundtrip(t, docs[i]);
}

static void test_depth(void **state)
{
	struct t *t = *state;
	struct husk_err *err = NULL;
	char text[80];
	json_t *j;

	/* 32 nested arrays pack; 33 do not. */
	memset(text, '[', 32);
	memset(text + 32, ']', 32);
	text[64] = '\0';
	roundtrip(t, text);
	memset(text, '[', 33);
	memset(text + 33, ']', 33);
	text[66] = '\0';
	j = json_loads(text, 0, NULL);
	assert_int_equal(ipc_json_pack(&t->pk, j, &err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_free(err);
	json_decref(j);
}

static void pack_bin(msgpack_packer *pk, const char *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

static void test_bin(void **state)
{
	struct t *t = *state;

	pack_bin(&t->pk, "plain text", 10);
	expect_render(t, "\"plain text\"");
	pack_bin(&t->pk, "caf\xc3\xa9", 5);
	expect_render(t, "\"caf\xc3\xa9\"");
	/* NUL, bad UTF-8, overlong, surrogate, truncated: base64. */
	pack_bin(&t->pk, "a\0b", 3);
	expect_render(t, "{\"base64\":\"YQBi\"}");
	pack_bin(&t->pk, "\xff", 1);
	expect_render(t, "{\"base64\":\"/w==\"}");
	pack_bin(&t->pk, "\xc0\xaf", 2);
	expect_render(t, "{\"base64\":\"wK8=\"}");
	pack_bin(&t->pk, "\xed\xa0\x80", 3);
	expect_render(t, "{\"base64\":\"7aCA\"}");
	pack_bin(&t->pk, "ok\xe2\x98", 4);
	expect_render(t, "{\"base64\":\"b2vimA==\"}");
	pack_bin(&t->pk, "", 0);
	expect_render(t, "\"\"");
	/* Invalid UTF-8 in a str is shown the same way. */
	msgpack_pack_str(&t->pk, 2);
	msgpack_pack_str_body(&t->pk, "\xfe\xff", 2);
	expect_render(t, "{\"base64\":\"/v8=\"}");
}

static void test_numbers(void **state)
{
	struct t *t = *state;

	msgpack_pack_uint64(&t->pk, UINT64_MAX);
	expect_render(t, "1.8446744073709552e19");
	msgpack_pack_uint64(&t->pk, INT64_MAX);
	expect_render(t, "9223372036854775807");
	msgpack_pack_int64(&t->pk, INT64_MIN);
	expect_render(t, "-9223372036854775808");
	msgpack_pack_float(&t->pk, 0.5f);
	expect_render(t, "0.5");
	msgpack_pack_double(&t->pk, INFINITY);
	expect_render(t, "null");
}

static void test_keys(void **state)
{
	struct t *t = *state;

	msgpack_pack_map(&t->pk, 4);
	msgpack_pack_int(&t->pk, 1);
	ipc_pack_str(&t->pk, "one");
	msgpack_pack_nil(&t->pk);
	msgpack_pack_true(&t->pk);
	msgpack_pack_array(&t->pk, 2);
	msgpack_pack_int(&t->pk, 1);
	ipc_pack_str(&t->pk, "a");
	msgpack_pack_false(&t->pk);
	ipc_pack_kv_str(&t->pk, "s", "v");
	expect_render(t, "{\"1\":\"one\",\"[1,\\\"a\\\"]\":false,"
		      "\"null\":true,\"s\":\"v\"}");
}

/* Maps as keys of maps as keys...: each level's key text is cut, so
 * the quoting cannot double at every level. */
static void test_keys_nested(void **state)
{
	struct t *t = *state;
	char *text;

	for (int i = 0; i < 31; i++)
		msgpack_pack_map(&t->pk, 1);
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_str(&t->pk, "a\"b", "v");
	for (int i = 0; i < 31; i++)
		msgpack_pack_nil(&t->pk);
	text = render(t);
	assert_true(strlen(text) < 4 * 256);
	free(text);

	/* A long key is cut to 256 bytes of its JSON text. */
	msgpack_pack_map(&t->pk, 1);
	msgpack_pack_array(&t->pk, 200);
	for (int i = 0; i < 200; i++)
		msgpack_pack_int(&t->pk, 1);
	msgpack_pack_nil(&t->pk);
	text = render(t);
	assert_int_equal(strlen(text), 256 + strlen("{\"\":null}"));
	free(text);
}

#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_roundtrips),
		T(test_depth),
		T(test_bin),
		T(test_numbers),
		T(test_keys),
		T(test_keys_nested),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
