/* libipc/msgcheck.c and msg.c: the MessagePack validator, RPC message
 * parsing, error decoding and the message builders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libipc/ipc.h"

/* "94 00 01 a1 6d 80" -> bytes; returns the length. */
static size_t unhex(const char *hex, char *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (*hex) {
		if (*hex == ' ') {
			hex++;
			continue;
		}
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		assert_true(n < cap);
		out[n++] = (char)v;
		hex += 2;
	}
	return n;
}

static int check_hex(const char *hex, int *code)
{
	struct husk_err *err = NULL;
	char buf[256];
	size_t n = unhex(hex, buf, sizeof(buf));
	int r = ipc_msgpack_check(buf, n, &err);

	*code = err ? err->code : 0;
	assert_true((r == 0) == (err == NULL));
	husk_err_free(err);
	return r;
}

/* ------------------------------------------------------------------ */
/* ipc_msgpack_check                                                   */

/* One object of every format the validator knows, in one array. */
static const char every_format[] =
	"dc 00 1e"                      /* array16 of 30 */
	" c0 c2 c3 05 e0"               /* nil false true fixint -fixint */
	" cc ff cd ff ff ce ff ff ff ff cf 01 02 03 04 05 06 07 08"
	" d0 80 d1 80 00 d2 80 00 00 00 d3 80 00 00 00 00 00 00 00"
	" ca 3f 80 00 00 cb 3f f0 00 00 00 00 00 00"
	" a2 68 69 d9 01 61 da 00 01 62 db 00 00 00 01 63"
	" c4 01 00 c5 00 01 01 c6 00 00 00 01 02"
	" 91 01 dc 00 01 02 dd 00 00 00 01 03"
	" 81 a1 6b 01 de 00 01 a1 6b 02 df 00 00 00 01 a1 6b 03"
	" 90 80";

static void test_check_every_format(void **state)
{
	struct husk_err *err = NULL;
	msgpack_unpacked un;
	char buf[256];
	size_t n = unhex(every_format, buf, sizeof(buf));
	int code;

	assert_int_equal(check_hex(every_format, &code), 0);
	msgpack_unpacked_init(&un);
	assert_int_equal(msgpack_unpack_next(&un, buf, n, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(un.data.via.array.size, 30);
	msgpack_unpacked_destroy(&un);
	assert_int_equal(ipc_msgpack_check(buf, n, &err), 0);
}

static void test_check_every_prefix(void **state)
{
	static const char *const valid[] = {
		every_format,
		"94 00 01 a1 6d 80",
		"94 01 cf 00 00 00 00 ff ff ff ff c0 82 a1 61 01 a1 62 92 c3 c2",
		"93 02 a4 73 74 6f 70 81 a1 78 c4 03 01 02 03",
	};
	struct husk_err *err = NULL;
	char buf[256];

	for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
		size_t n = unhex(valid[v], buf, sizeof(buf));

		assert_int_equal(ipc_msgpack_check(buf, n, &err), 0);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(ipc_msgpack_check(buf, i, &err), -1);
			assert_int_equal(err->code, HUSK_E_PROTOCOL);
			husk_err_clear(&err);
		}
	}
}

static void test_check_trailing(void **state)
{
	int code;

	assert_int_equal(check_hex("c0 c0", &code), -1);
	assert_int_equal(code, HUSK_E_PROTOCOL);
	assert_int_equal(check_hex("94 00 01 a1 6d 80 00", &code), -1);
	assert_int_equal(check_hex("90 90", &code), -1);
}

static void test_check_refused_types(void **state)
{
	static const char *const bad[] = {
		"c1",                   /* never used */
		"c7 01 05 00", "c8 00 01 05 00", "c9 00 00 00 01 05 00",
		"d4 05 00", "d5 05 00 00", "d6 05 00 00 00 00",
		"d7 05 00 00 00 00 00 00 00 00",
		"d8 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
		"91 d4 05 00",          /* inside an array */
		"81 a1 6b c7 00 05",    /* as a map value */
	};
	int code;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(check_hex(bad[i], &code), -1);
		assert_int_equal(code, HUSK_E_PROTOCOL);
	}
}

static void test_check_depth(void **state)
{
	struct husk_err *err = NULL;
	msgpack_unpacked un;
	char buf[64];

	/* 32 nested one-element arrays around a nil: accepted, and the
	 * unpacker (whose own stack is 32 deep) agrees. */
	memset(buf, 0x91, 32);
	buf[32] = (char)0xc0;
	assert_int_equal(ipc_msgpack_check(buf, 33, &err), 0);
	msgpack_unpacked_init(&un);
	assert_int_equal(msgpack_unpack_next(&un, buf, 33, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	msgpack_unpacked_destroy(&un);

	memset(buf, 0x91, 33);
	buf[33] = (char)0xc0;
	assert_int_equal(ipc_msgpack_check(buf, 34, &err), -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
	assert_non_null(strstr(err->msg, "deeper"));
	husk_err_clear(&err);

	/* The 33rd level may be empty: still too deep. */
	memset(buf, 0x91, 32);
	buf[32] = (char)0x90;
	assert_int_equal(ipc_msgpack_check(buf, 33, &err), -1);
	husk_err_clear(&err);
	buf[32] = (char)0x80;
	assert_int_equal(ipc_msgpack_check(buf, 33, &err), -1);
	husk_err_clear(&err);
}

static void test_check_counts(void **state)
{
	int code;

	/* 5 bytes claiming 4 billion elements. */
	assert_int_equal(check_hex("dd ff ff ff ff", &code), -1);
	assert_int_equal(code, HUSK_E_PROTOCOL);
	assert_int_equal(check_hex("df ff ff ff ff", &code), -1);
	/* Two elements need two bytes; a map entry two more. */
	assert_int_equal(check_hex("92 c0", &code), -1);
	assert_int_equal(check_hex("92 c0 c0", &code), 0);
	assert_int_equal(check_hex("81 c0", &code), -1);
	assert_int_equal(check_hex("81 c0 c0", &code), 0);
	assert_int_equal(check_hex("dc 00 03 c0 c0", &code), -1);
	assert_int_equal(check_hex("de 00 02 c0 c0 c0", &code), -1);
	/* Lengths that overrun the buffer. */
	assert_int_equal(check_hex("db ff ff ff ff 61", &code), -1);
	assert_int_equal(check_hex("c6 ff ff ff ff 61", &code), -1);
	assert_int_equal(check_hex("da 00 02 61", &code), -1);
	assert_int_equal(check_hex("a3 61 62", &code), -1);
	assert_int_equal(check_hex("cb 00 00", &code), -1);
	assert_int_equal(check_hex("", &code), -1);
}

/* ------------------------------------------------------------------ */
/* ipc_msg_parse                                                       */

static int parse_bytes(const char *buf, size_t n, struct ipc_msg *m,
		       int *code, char **msg)
{
	struct husk_err *err = NULL;
	int r = ipc_msg_parse(m, buf, n, &err);

	*code = err ? err->code : 0;
	if (msg)
		*msg = err && err->msg ? strdup(err->msg) : NULL;
	husk_err_free(err);
	return r;
}

static int parse_hex(const char *hex, int *code)
{
	struct ipc_msg m;
	char buf[256];
	size_t n = unhex(hex, buf, sizeof(buf));
	int r = parse_bytes(buf, n, &m, code, NULL);

	/* Freed or not, a second free must be harmless. */
	ipc_msg_free(&m);
	return r;
}

struct shape_case {
	const char *hex;
	const char *why;
};

/* Each is rejected with HUSK_E_PROTOCOL. */
static const struct shape_case bad_shapes[] = {
	{ "80", "not an array" },
	{ "a1 6d", "a string" },
	{ "90", "empty array" },
	{ "94 a1 30 01 a1 6d 80", "type a string" },
	{ "94 c0 01 a1 6d 80", "type nil" },
	{ "94 03 01 a1 6d 80", "type 3" },
	{ "94 ff 01 a1 6d 80", "type -1" },
	{ "94 ca 00 00 00 00 01 a1 6d 80", "type a float" },
	{ "94 00 ff a1 6d 80", "msgid negative" },
	{ "94 00 a1 31 a1 6d 80", "msgid a string" },
	{ "94 00 cf 00 00 00 01 00 00 00 00 a1 6d 80", "msgid 2^32" },
	{ "94 00 cb 3f f0 00 00 00 00 00 00 a1 6d 80", "msgid a float" },
	{ "94 00 c0 a1 6d 80", "msgid nil" },
	{ "94 00 01 05 80", "method an integer" },
	{ "94 00 01 c0 80", "method nil" },
	{ "94 00 01 a0 80", "method empty" },
	{ "94 00 01 a3 61 00 62 80", "method with NUL" },
	{ "94 00 01 c4 01 6d 80", "method binary" },
	/* Method names are printable ASCII: no terminal escape, no line
	 * break, no space, no C1 control, no stray UTF-8 byte. */
	{ "94 00 01 a5 61 1b 5b 32 4a 80", "method with ESC [2J" },
	{ "94 00 01 a4 61 0d 0a 62 80", "method with CR LF" },
	{ "94 00 01 a3 61 20 62 80", "method with a space" },
	{ "94 00 01 a3 61 7f 62 80", "method with DEL" },
	{ "94 00 01 a3 61 c2 9b 80", "method with a C1 CSI" },
	{ "94 00 01 a2 61 ff 80", "method with a non-UTF-8 byte" },
	{ "93 02 a3 61 0a 62 80", "notify method with LF" },
	{ "94 00 01 a1 6d 90", "params an array" },
	{ "94 00 01 a1 6d c0", "params nil" },
	{ "94 00 01 a1 6d 05", "params an integer" },
	{ "93 00 01 a1 6d", "request of 3" },
	{ "95 00 01 a1 6d 80 c0", "request of 5" },
	{ "93 01 01 c0", "response of 3" },
	{ "95 01 01 c0 c0 c0", "response of 5" },
	{ "94 01 ff c0 c0", "response msgid negative" },
	{ "94 01 01 a1 78 c0", "error a string" },
	{ "94 01 01 90 c0", "error an array" },
	{ "94 01 01 05 c0", "error an integer" },
	{ "94 01 01 82 a4 63 6f 64 65 a1 78 a7 6d 65 73 73 61 67 65 a0 c0",
	  "error code a string" },
	{ "94 01 01 81 a7 6d 65 73 73 61 67 65 a0 c0", "error without code" },
	{ "94 01 01 82 a4 63 6f 64 65 02 a7 6d 65 73 73 61 67 65 05 c0",
	  "error message an integer" },
	{ "94 01 01 81 a4 63 6f 64 65 02 c0", "error without message" },
	{ "94 01 01 82 a4 63 6f 64 65 02 a7 6d 65 73 73 61 67 65 a0 01",
	  "error with a result" },
	{ "92 02 a1 6d", "notify of 2" },
	{ "94 02 a1 6d 80 c0", "notify of 4" },
	{ "93 02 05 80", "notify method an integer" },
	{ "93 02 a0 80", "notify method empty" },
	{ "93 02 a1 6d 90", "notify params an array" },
	{ "93 02 a1 6d c0", "notify params nil" },
	{ "93 02 a1 6d dd ff ff ff ff", "params count lies" },
	{ "94 00 01 a1 6d 80 c0", "trailing byte" },
};

static void test_parse_bad_shapes(void **state)
{
	for (size_t i = 0; i < sizeof(bad_shapes) / sizeof(bad_shapes[0]);
	     i++) {
		int code = 0;

		if (parse_hex(bad_shapes[i].hex, &code) != -1 ||
		    code != HUSK_E_PROTOCOL)
			fail_msg("accepted or wrong code (%d): %s", code,
				 bad_shapes[i].why);
	}
}

static void test_parse_good_shapes(void **state)
{
	static const char *const good[] = {
		"94 00 00 a1 6d 80",                    /* msgid 0 */
		"94 00 ce ff ff ff ff a1 6d 80",        /* msgid UINT32_MAX */
		"94 00 cd 01 00 a1 6d 81 a1 6b c0",
		"94 01 01 c0 c0",
		"94 01 01 c0 93 01 02 03",              /* any result */
		"94 01 01 82 a4 63 6f 64 65 02 a7 6d 65 73 73 61 67 65 a0 c0",
		/* An extra key and a negative code. */
		("94 01 01 83 a4 63 6f 64 65 ff a7 6d 65 73 73 61 67 65 a0"
		 " a1 78 c0 c0"),
		"93 02 a1 6d 80",
	};
	int code;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (parse_hex(good[i], &code) != 0)
			fail_msg("refused (%d): %s", code, good[i]);
}

static void test_parse_method_length(void **state)
{
	struct ipc_msg m;
	char buf[128], *msg = NULL;
	int code;

	/* [0, 1, "aaa..." (64), {}] is accepted; 65 is not. */
	for (int len = 63; len <= 65; len++) {
		size_t n = 0;

		buf[n++] = (char)0x94;
		buf[n++] = 0;
		buf[n++] = 1;
		buf[n++] = (char)0xd9;
		buf[n++] = (char)len;
		memset(buf + n, 'a', len);
		n += len;
		buf[n++] = (char)0x80;
		if (len <= IPC_METHOD_MAX) {
			assert_int_equal(parse_bytes(buf, n, &m, &code, NULL), 0);
			assert_int_equal(strlen(m.method), len);
		} else {
			assert_int_equal(parse_bytes(buf, n, &m, &code, &msg),
					 -1);
			assert_int_equal(code, HUSK_E_PROTOCOL);
			assert_non_null(strstr(msg, "method"));
			free(msg);
		}
		ipc_msg_free(&m);
	}
}

/* ------------------------------------------------------------------ */
/* Building and round trips                                            */

/* Finish b and parse its payload after checking the header. */
static void finish_parse(struct ipc_buf *b, struct ipc_msg *m)
{
	struct husk_err *err = NULL;
	const unsigned char *h;
	uint32_t len;

	assert_int_equal(ipc_buf_finish(b, 0, &err), 0);
	h = (const unsigned char *)b->sb.data;
	len = (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
	assert_int_equal(len, b->sb.size - IPC_FRAME_HDR);
	assert_int_equal(ipc_msg_parse(m, b->sb.data + IPC_FRAME_HDR, len,
				       &err), 0);
	assert_null(err);
}

static void test_roundtrip_request(void **state)
{
	struct ipc_buf b;
	struct ipc_msg m;
	msgpack_packer *pk;
	const msgpack_object *v;

	ipc_buf_init(&b);
	pk = ipc_pack_request(&b, 4000000000u, "create");
	msgpack_pack_map(pk, 6);
	ipc_pack_kv_str(pk, "id", "c1");
	ipc_pack_kv_int(pk, "n", -5);
	ipc_pack_kv_uint(pk, "u", UINT64_MAX);
	ipc_pack_kv_bool(pk, "t", true);
	ipc_pack_kv_bin(pk, "b", "\0\1", 2);
	ipc_pack_key(pk, "nil");
	ipc_pack_str(pk, NULL);
	finish_parse(&b, &m);

	assert_int_equal(m.type, IPC_REQUEST);
	assert_int_equal(m.msgid, 4000000000u);
	assert_string_equal(m.method, "create");
	assert_int_equal(m.params->via.map.size, 6);
	v = ipc_map_get(m.params, "id");
	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	assert_memory_equal(v->via.str.ptr, "c1", 2);
	assert_int_equal(ipc_map_get(m.params, "n")->via.i64, -5);
	assert_true(ipc_map_get(m.params, "u")->via.u64 == UINT64_MAX);
	assert_true(ipc_map_get(m.params, "t")->via.boolean);
	assert_int_equal(ipc_map_get(m.params, "b")->via.bin.size, 2);
	assert_int_equal(ipc_map_get(m.params, "nil")->type,
			 MSGPACK_OBJECT_NIL);
	assert_null(ipc_map_get(m.params, "absent"));
	assert_int_equal(m.nfds, 0);
	for (int i = 0; i < IPC_MAX_FDS; i++)
		assert_int_equal(m.fds[i], -1);
	ipc_msg_free(&m);

	/* The same buffer again: the begin functions start over. */
	pk = ipc_pack_notify(&b, "exit");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "status", 3);
	finish_parse(&b, &m);
	assert_int_equal(m.type, IPC_NOTIFY);
	assert_string_equal(m.method, "exit");
	assert_int_equal(ipc_map_get(m.params, "status")->via.u64, 3);
	ipc_msg_free(&m);
	ipc_buf_destroy(&b);
}

static void test_roundtrip_response(void **state)
{
	struct ipc_buf b;
	struct ipc_msg m;
	msgpack_packer *pk;

	ipc_buf_init(&b);
	pk = ipc_pack_response(&b, 7);
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, 1);
	msgpack_pack_int(pk, 2);
	finish_parse(&b, &m);
	assert_int_equal(m.type, IPC_RESPONSE);
	assert_int_equal(m.msgid, 7);
	assert_null(m.error);
	assert_int_equal(m.result->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(m.result->via.array.size, 2);
	ipc_msg_free(&m);
	ipc_buf_destroy(&b);
}

static void test_roundtrip_error(void **state)
{
	struct husk_err *err = NULL;
	struct ipc_buf b;
	struct ipc_msg m;

	ipc_buf_init(&b);
	ipc_pack_error(&b, 9, HUSK_E_NOT_FOUND, "no such container `c1`");
	finish_parse(&b, &m);
	assert_int_equal(m.type, IPC_RESPONSE);
	assert_int_equal(m.msgid, 9);
	assert_non_null(m.error);
	assert_int_equal(m.result->type, MSGPACK_OBJECT_NIL);
	assert_int_equal(ipc_error_decode(m.error, &err), -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	assert_string_equal(err->msg, "no such container `c1`");
	husk_err_free(err);
	ipc_msg_free(&m);

	/* NULL message: the code's name stands in. */
	ipc_pack_error(&b, 10, HUSK_E_TIMEOUT, NULL);
	finish_parse(&b, &m);
	err = NULL;
	ipc_error_decode(m.error, &err);
	assert_string_equal(err->msg, "timeout");
	husk_err_free(err);
	ipc_msg_free(&m);
	ipc_buf_destroy(&b);
}

/* An error map {code: <code>, message: <msg>} packed by hand. */
static void error_decode(void (*pack_code)(msgpack_packer *),
			 const char *msg, size_t msglen, struct husk_err **err)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked un;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	ipc_pack_key(&pk, "code");
	pack_code(&pk);
	ipc_pack_key(&pk, "message");
	msgpack_pack_str(&pk, msglen);
	msgpack_pack_str_body(&pk, msg, msglen);
	msgpack_unpacked_init(&un);
	assert_int_equal(msgpack_unpack_next(&un, sb.data, sb.size, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	ipc_error_decode(&un.data, err);
	msgpack_unpacked_destroy(&un);
	msgpack_sbuffer_destroy(&sb);
}

static void code_999(msgpack_packer *pk) { msgpack_pack_int(pk, 999); }
static void code_neg(msgpack_packer *pk) { msgpack_pack_int(pk, -3); }
static void code_zero(msgpack_packer *pk) { msgpack_pack_int(pk, 0); }
static void code_huge(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1ull << 40); }
static void code_inval(msgpack_packer *pk) { msgpack_pack_int(pk, HUSK_E_INVALID); }

static void test_error_decode_codes(void **state)
{
	struct husk_err *err = NULL;

	error_decode(code_999, "m", 1, &err);
	assert_int_equal(err->code, 999);
	husk_err_clear(&err);
	error_decode(code_neg, "m", 1, &err);
	assert_int_equal(err->code, HUSK_E_INTERNAL);
	husk_err_clear(&err);
	error_decode(code_zero, "m", 1, &err);
	assert_int_equal(err->code, HUSK_E_INTERNAL);
	husk_err_clear(&err);
	error_decode(code_huge, "m", 1, &err);
	assert_int_equal(err->code, HUSK_E_INTERNAL);
	husk_err_clear(&err);
	/* Not a map at all. */
	assert_int_equal(ipc_error_decode(NULL, &err), -1);
	assert_int_equal(err->code, HUSK_E_PROTOCOL);
	husk_err_clear(&err);
}

static void test_error_decode_message(void **state)
{
	struct husk_err *err = NULL;
	char *big;

	/* Controls are escaped, NUL included (it does not cut the text). */
	error_decode(code_inval, "bad\n\x1b[31mred\x7f\0x", 15, &err);
	assert_int_equal(err->code, HUSK_E_INVALID);
	assert_string_equal(err->msg, "bad\\x0a\\x1b[31mred\\x7f\\x00x");
	husk_err_clear(&err);
	/* A forged second line: CR LF and a fake log prefix stay on one
	 * line. */
	error_decode(code_inval, "x\r\nhusk: error: forged", 22, &err);
	assert_string_equal(err->msg, "x\\x0d\\x0ahusk: error: forged");
	assert_null(strchr(err->msg, '\n'));
	husk_err_clear(&err);
	/* Printable UTF-8 kept; C1 CSI (U+009B) and a lone byte escaped. */
	error_decode(code_inval, "caf\xc3\xa9 \xc2\x9b" "2J \xff", 12, &err);
	assert_string_equal(err->msg, "caf\xc3\xa9 \\xc2\\x9b2J \\xff");
	husk_err_clear(&err);

	big = malloc(IPC_ERRMSG_MAX + 100);
	memset(big, 'e', IPC_ERRMSG_MAX + 100);
	error_decode(code_inval, big, IPC_ERRMSG_MAX + 100, &err);
	assert_int_equal(strlen(err->msg), IPC_ERRMSG_MAX);
	husk_err_clear(&err);

	/* A two-byte character straddling the limit is dropped whole. */
	big[IPC_ERRMSG_MAX - 1] = (char)0xc3;
	big[IPC_ERRMSG_MAX] = (char)0xa9;
	error_decode(code_inval, big, IPC_ERRMSG_MAX + 100, &err);
	assert_int_equal(strlen(err->msg), IPC_ERRMSG_MAX - 1);
	husk_err_clear(&err);
	free(big);
}

static void test_buf_finish_limits(void **state)
{
	struct husk_err *err = NULL;
	struct ipc_buf b;
	msgpack_packer *pk;

	ipc_buf_init(&b);
	/* Nothing packed yet. */
	assert_int_equal(ipc_buf_finish(&b, 0, &err), -1);
	assert_int_equal(err->code, HUSK_E_INTERNAL);
	husk_err_clear(&err);

	pk = ipc_pack_request(&b, 1, "m");
	msgpack_pack_map(pk, 0);
	/* [0, 1, "m", {}] is 6 bytes. */
	assert_int_equal(b.sb.size, IPC_FRAME_HDR + 6);
	assert_int_equal(ipc_buf_finish(&b, 5, &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	assert_int_equal(ipc_buf_finish(&b, 6, &err), 0);
	ipc_buf_reset(&b);
	assert_int_equal(b.sb.size, IPC_FRAME_HDR);
	ipc_buf_destroy(&b);
}

static void test_long_error_packed_bounded(void **state)
{
	struct husk_err *err = NULL;
	struct ipc_buf b;
	struct ipc_msg m;
	char *big = malloc(IPC_ERRMSG_MAX * 2 + 1);

	memset(big, 'x', IPC_ERRMSG_MAX * 2);
	big[IPC_ERRMSG_MAX * 2] = '\0';
	ipc_buf_init(&b);
	ipc_pack_error(&b, 1, HUSK_E_INTERNAL, big);
	finish_parse(&b, &m);
	assert_int_equal(ipc_map_get(m.error, "message")->via.str.size,
			 IPC_ERRMSG_MAX);
	ipc_error_decode(m.error, &err);
	husk_err_free(err);
	ipc_msg_free(&m);
	ipc_buf_destroy(&b);
	free(big);
}

/* ------------------------------------------------------------------ */
/* Ownership                                                           */

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static void test_fds(void **state)
{
	struct ipc_msg m;
	char buf[16];
	size_t n = unhex("93 02 a1 6d 80", buf, sizeof(buf));
	int p[2], code, fd;

	assert_int_equal(parse_bytes(buf, n, &m, &code, NULL), 0);
	assert_int_equal(pipe(p), 0);
	m.fds[0] = p[0];
	m.fds[1] = p[1];
	m.nfds = 2;
	assert_int_equal(ipc_msg_take_fd(&m, 2), -1);
	assert_int_equal(ipc_msg_take_fd(&m, -1), -1);
	fd = ipc_msg_take_fd(&m, 1);
	assert_int_equal(fd, p[1]);
	assert_int_equal(ipc_msg_take_fd(&m, 1), -1);
	ipc_msg_free(&m);
	assert_false(fd_open(p[0]));
	assert_true(fd_open(p[1]));
	close(fd);
	ipc_msg_free(&m);
}

/* The message must not point into the buffer it was parsed from. */
static void test_msg_outlives_data(void **state)
{
	struct ipc_msg m;
	char *buf = malloc(64);
	size_t n = unhex("94 00 05 a4 6b 69 6c 6c 81 a3 73 69 67 a4 54 45 52 4d",
			 buf, 64);
	const msgpack_object *sig;
	int code;

	assert_int_equal(parse_bytes(buf, n, &m, &code, NULL), 0);
	memset(buf, 0, n);
	free(buf);
	assert_string_equal(m.method, "kill");
	sig = ipc_map_get(m.params, "sig");
	assert_non_null(sig);
	assert_memory_equal(sig->via.str.ptr, "TERM", 4);
	ipc_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_every_format),
		cmocka_unit_test(test_check_every_prefix),
		cmocka_unit_test(test_check_trailing),
		cmocka_unit_test(test_check_refused_types),
		cmocka_unit_test(test_check_depth),
		cmocka_unit_test(test_check_counts),
		cmocka_unit_test(test_parse_bad_shapes),
		cmocka_unit_test(test_parse_good_shapes),
		cmocka_unit_test(test_parse_method_length),
		cmocka_unit_test(test_roundtrip_request),
		cmocka_unit_test(test_roundtrip_response),
		cmocka_unit_test(test_roundtrip_error),
		cmocka_unit_test(test_error_decode_codes),
		cmocka_unit_test(test_error_decode_message),
		cmocka_unit_test(test_buf_finish_limits),
		cmocka_unit_test(test_long_error_packed_bounded),
		cmocka_unit_test(test_fds),
		cmocka_unit_test(test_msg_outlives_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
