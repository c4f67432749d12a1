/*
 * Fuzz the message decoder at the edge: ipc_msgpack_check against the
 * unpacker, ipc_msg_parse, then everything a handler would do with the
 * params (ipc_decode over every field type, the getters, JSON).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "libipc/ipc.h"

struct every {
	char *s;
	int64_t i64;
	int32_t i32;
	uint64_t u64;
	uint32_t u32;
	bool b;
	struct ipc_bin bin;
	char **strv;
	const msgpack_object *map;
	const msgpack_object *arr;
	const msgpack_object *any;
	char *opt;
};

#define F(k, t, fl, m, lo, hi) { k, t, fl, offsetof(struct every, m), lo, hi }
static const struct ipc_field fields[] = {
	F("s", IPC_F_STR, 0, s, 0, 64),
	F("i64", IPC_F_INT64, 0, i64, -1000, 1000),
	F("i32", IPC_F_INT32, IPC_NULLABLE, i32, INT64_MIN, UINT64_MAX),
	F("u64", IPC_F_UINT64, 0, u64, 0, UINT64_MAX),
	F("u32", IPC_F_UINT32, 0, u32, 0, 70000),
	F("b", IPC_F_BOOL, IPC_NULLABLE, b, 0, 0),
	F("bin", IPC_F_BIN, 0, bin, 0, 32),
	F("v", IPC_F_STRV, 0, strv, 16, 8),
	F("m", IPC_F_MAP, 0, map, 0, 4),
	F("a", IPC_F_ARRAY, 0, arr, 0, 4),
	F("x", IPC_F_ANY, 0, any, 0, 0),
	F("o", IPC_F_STR, IPC_REQUIRED | IPC_NULLABLE, opt, 0, 8),
	{ 0 },
};

/* What ipc_msgpack_check accepts, msgpack-c must unpack. */
static void check_agrees(const uint8_t *data, size_t size)
{
	struct husk_err *err = NULL;
	msgpack_unpacked un;
	msgpack_unpack_return r;

	if (ipc_msgpack_check((const char *)data, size, &err) < 0) {
		husk_err_free(err);
		return;
	}
	msgpack_unpacked_init(&un);
	r = msgpack_unpack_next(&un, (const char *)data, size, NULL);
	if (r != MSGPACK_UNPACK_SUCCESS)
		abort();
	msgpack_unpacked_destroy(&un);
}

/* JSON back to msgpack must make something the validator accepts. */
static void json_both_ways(const msgpack_object *o)
{
	struct husk_err *err = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	json_t *j = ipc_json_from_obj(o);
	char *text;

	if (!j)
		return;
	text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	free(text);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (ipc_json_pack(&pk, j, &err) == 0 &&
	    ipc_msgpack_check(sb.data, sb.size, &err) < 0)
		abort();
	husk_err_free(err);
	msgpack_sbuffer_destroy(&sb);
	json_decref(j);
}

static void getters(const msgpack_object *params)
{
	struct husk_err *err = NULL;
	const char *p;
	size_t len;
	char *s = NULL;
	int64_t i;
	uint64_t u;
	bool b;

	if (ipc_obj_str(ipc_map_get(params, "s"), "s", 8, &s, &err) == 0)
		free(s);
	husk_err_clear(&err);
	ipc_obj_int(ipc_map_get(params, "i64"), "i", INT64_MIN, 5, &i, &err);
	husk_err_clear(&err);
	ipc_obj_uint(ipc_map_get(params, "u64"), "u", 5, &u, &err);
	husk_err_clear(&err);
	ipc_obj_bool(ipc_map_get(params, "b"), "b", &b, &err);
	husk_err_clear(&err);
	ipc_obj_bin(ipc_map_get(params, "bin"), "bin", 4, &p, &len, &err);
	husk_err_clear(&err);
	ipc_obj_array(ipc_map_get(params, "a"), "a", 2, &err);
	husk_err_clear(&err);
	ipc_obj_map(ipc_map_get(params, "m"), "m", 2, &err);
	husk_err_clear(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct husk_err *err = NULL;
	struct every e = { 0 };
	struct ipc_msg m;

	check_agrees(data, size);
	if (ipc_msg_parse(&m, (const char *)data, size, &err) < 0) {
		husk_err_free(err);
		ipc_msg_free(&m);
		return 0;
	}
	if (m.params) {
		if (ipc_decode(m.params, fields, &e, &err) == 0)
			ipc_decode_free(fields, &e);
		husk_err_clear(&err);
		getters(m.params);
	}
	if (m.error) {
		ipc_error_decode(m.error, &err);
		if (!err || !err->msg || strlen(err->msg) > IPC_ERRMSG_MAX)
			abort();
		husk_err_clear(&err);
	}
	json_both_ways(&m.un.data);
	ipc_msg_free(&m);
	return 0;
}
