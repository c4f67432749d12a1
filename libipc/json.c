/*
 * JSON <-> MessagePack for the debug client and the CLI: what a human
 * types becomes params, and any reply can be printed.  Both directions
 * recurse, bounded by IPC_MAX_DEPTH like the wire format itself.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "ipc.h"

static int json_pack_at(msgpack_packer *pk, const json_t *j, int depth,
			struct husk_err **err);

static int json_pack_object(msgpack_packer *pk, const json_t *j, int depth,
			    struct husk_err **err)
{
	const char *k;
	json_t *v;

	msgpack_pack_map(pk, json_object_size(j));
	/* The iteration macros take a non-const object; nothing is changed. */
	json_object_foreach((json_t *)j, k, v) {
		ipc_pack_str(pk, k);
		if (json_pack_at(pk, v, depth + 1, err) < 0)
			return -1;
	}
	return 0;
}

static int json_pack_array(msgpack_packer *pk, const json_t *j, int depth,
			   struct husk_err **err)
{
	size_t n = json_array_size(j);

	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++)
		if (json_pack_at(pk, json_array_get(j, i), depth + 1, err) < 0)
			return -1;
	return 0;
}

static int json_pack_at(msgpack_packer *pk, const json_t *j, int depth,
			struct husk_err **err)
{
	if (!j)
		return husk_error(err, HUSK_E_INVALID, "JSON: missing value");
	switch (json_typeof(j)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (depth >= IPC_MAX_DEPTH)
			return husk_error(err, HUSK_E_INVALID,
					  "JSON nested deeper than %d",
					  IPC_MAX_DEPTH);
		if (json_is_object(j))
			return json_pack_object(pk, j, depth, err);
		return json_pack_array(pk, j, depth, err);
	case JSON_STRING:
		/* json_string_length: strings may hold NUL (\u0000). */
		msgpack_pack_str(pk, json_string_length(j));
		msgpack_pack_str_body(pk, json_string_value(j),
				      json_string_length(j));
		return 0;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		return 0;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		return 0;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		return 0;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		return 0;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		return 0;
	}
	return husk_error(err, HUSK_E_INVALID, "JSON: unknown type");
}

int ipc_json_pack(msgpack_packer *pk, const struct json_t *j,
		  struct husk_err **err)
{
	return json_pack_at(pk, j, 0, err);
}

/* ------------------------------------------------------------------ */
/* MessagePack -> JSON                                                 */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF; NUL only when nul_ok (binary with NUL is not text). */
static bool utf8_clean(const unsigned char *s, size_t len, bool nul_ok)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c == 0 && !nul_ok)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static char *base64(const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out, *o;
	size_t i;

	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];

		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Bytes as a JSON string when they are clean text, else {"base64": }. */
static json_t *json_bytes(const char *p, size_t len, bool nul_ok)
{
	json_t *o;
	char *b;

	/* msgpack-c may give an empty string a NULL pointer. */
	if (len == 0)
		return json_string("");
	if (utf8_clean((const unsigned char *)p, len, nul_ok))
		return json_stringn(p, len);
	b = base64((const unsigned char *)p, len);
	if (!b)
		return NULL;
	o = json_pack("{s:s}", "base64", b);
	free(b);
	return o;
}

static json_t *json_from_at(const msgpack_object *o, int depth);

/*
 * Keys that are not strings are shown as their JSON text, cut to this
 * many bytes.  Uncut, a key that is a map whose key is a map... would
 * be quoted again at every level, doubling its escapes each time: 32
 * levels of that from a few hundred bytes of input exhaust memory.
 */
#define JSON_KEY_MAX 256

/* A map key as text: strings as they are, anything else as JSON. */
static char *json_key(const msgpack_object *k, int depth)
{
	json_t *j;
	char *s;

	if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 0)
		return strdup("");
	if (k->type == MSGPACK_OBJECT_STR &&
	    utf8_clean((const unsigned char *)k->via.str.ptr, k->via.str.size,
		       false))
		return strndup(k->via.str.ptr, k->via.str.size);
	j = json_from_at(k, depth);
	if (!j)
		return NULL;
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	json_decref(j);
	if (s)
		s[ipc_utf8_cut(s, strlen(s), JSON_KEY_MAX)] = '\0';
	return s;
}

static json_t *json_from_map(const msgpack_object *o, int depth)
{
	json_t *m = json_object();

	if (!m)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		char *k = json_key(&kv->key, depth + 1);
		json_t *v = json_from_at(&kv->val, depth + 1);

		int r;

		if (!k || !v) {
			free(k);
			json_decref(v);
			json_decref(m);
			return NULL;
		}
		/* set_new takes v even when it fails. */
		r = json_object_set_new(m, k, v);
		free(k);
		if (r < 0) {
			json_decref(m);
			return NULL;
		}
	}
	return m;
}

static json_t *json_from_array(const msgpack_object *o, int depth)
{
	json_t *a = json_array();

	if (!a)
		return NULL;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		if (json_array_append_new(a, json_from_at(&o->via.array.ptr[i],
							  depth + 1)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* jansson refuses NaN and infinities: they become null. */
static json_t *json_from_double(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static json_t *json_from_at(const msgpack_object *o, int depth)
{
	if (depth > IPC_MAX_DEPTH)
		return NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		/* jansson integers are signed: larger ones become reals. */
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_from_double(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_bytes(o->via.str.ptr, o->via.str.size, true);
	case MSGPACK_OBJECT_BIN:
		return json_bytes(o->via.bin.ptr, o->via.bin.size, false);
	case MSGPACK_OBJECT_ARRAY:
		return json_from_array(o, depth);
	case MSGPACK_OBJECT_MAP:
		return json_from_map(o, depth);
	default:
		return json_null();
	}
}

struct json_t *ipc_json_from_obj(const msgpack_object *o)
{
	return json_from_at(o, 0);
}
