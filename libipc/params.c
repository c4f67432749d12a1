/*
 * Params: typed getters over msgpack objects and the table-driven
 * decoder that turns a params map into a handler's C struct.  Every
 * failure is HUSK_E_INVALID and names the field, so that the peer's
 * error says what to fix ("params.uid: 70000 is out of range ...").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/util.h"
#include "codec.h"
#include "ipc.h"

const char *ipc_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "a boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "an integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "a float";
	case MSGPACK_OBJECT_STR:
		return "a string";
	case MSGPACK_OBJECT_BIN:
		return "binary data";
	case MSGPACK_OBJECT_ARRAY:
		return "an array";
	case MSGPACK_OBJECT_MAP:
		return "a map";
	default:
		return "an ext value";
	}
}

bool ipc_str_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

const msgpack_object *ipc_map_get(const msgpack_object *map,
				  const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (ipc_str_is(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	return NULL;
}

/* o must be there and of type t; `expected` names t for the error. */
static int obj_expect(const msgpack_object *o, const char *what, int t,
		      const char *expected, struct husk_err **err)
{
	if (!o)
		return husk_error(err, HUSK_E_INVALID, "%s: missing", what);
	if ((int)o->type != t)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: expected %s, got %s", what, expected,
				  ipc_type_name(o));
	return 0;
}

int ipc_obj_str(const msgpack_object *o, const char *what, size_t maxlen,
		char **out, struct husk_err **err)
{
	char *s;

	if (obj_expect(o, what, MSGPACK_OBJECT_STR, "a string", err) < 0)
		return -1;
	if (o->via.str.size > maxlen)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: string of %u bytes is longer than %zu",
				  what, o->via.str.size, maxlen);
	/* An empty string may come with a NULL pointer. */
	if (o->via.str.size &&
	    memchr(o->via.str.ptr, '\0', o->via.str.size))
		return husk_error(err, HUSK_E_INVALID,
				  "%s: string contains a NUL byte", what);
	s = malloc((size_t)o->via.str.size + 1);
	if (!s)
		return husk_error_sys(err, ENOMEM, "%s", what);
	if (o->via.str.size)
		memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	*out = s;
	return 0;
}

int ipc_obj_name(const msgpack_object *o, const char *what, size_t maxlen,
		 char **out, struct husk_err **err)
{
	if (obj_expect(o, what, MSGPACK_OBJECT_STR, "a string", err) < 0)
		return -1;
	if (o->via.str.size > maxlen)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: string of %u bytes is longer than %zu",
				  what, o->via.str.size, maxlen);
	if (!husk_is_name(o->via.str.ptr, o->via.str.size))
		return husk_error(err, HUSK_E_INVALID, "%s: not a name (empty, "
				  "or a control, space or non-ASCII byte)",
				  what);
	return ipc_obj_str(o, what, maxlen, out, err);
}

static int obj_integer(const msgpack_object *o, const char *what,
		       struct husk_err **err)
{
	if (!o)
		return husk_error(err, HUSK_E_INVALID, "%s: missing", what);
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: expected an integer, got %s", what,
				  ipc_type_name(o));
	return 0;
}

int ipc_obj_int(const msgpack_object *o, const char *what, int64_t min,
		int64_t max, int64_t *out, struct husk_err **err)
{
	if (obj_integer(o, what, err) < 0)
		return -1;
	/* Compare as unsigned first: a uint64 may not fit in int64_t. */
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (max < 0 || o->via.u64 > (uint64_t)max ||
		    (min >= 0 && o->via.u64 < (uint64_t)min))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: %" PRIu64 " is out of range [%" PRId64 ", %" PRId64 "]",
					  what, o->via.u64, min, max);
		*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->via.i64 < min || o->via.i64 > max)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
				  what, o->via.i64, min, max);
	*out = o->via.i64;
	return 0;
}

int ipc_obj_uint(const msgpack_object *o, const char *what, uint64_t max,
		 uint64_t *out, struct husk_err **err)
{
	if (obj_integer(o, what, err) < 0)
		return -1;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %" PRId64 " is out of range [0, %" PRIu64 "]",
				  what, o->via.i64, max);
	if (o->via.u64 > max)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %" PRIu64 " is out of range [0, %" PRIu64 "]",
				  what, o->via.u64, max);
	*out = o->via.u64;
	return 0;
}

int ipc_obj_bool(const msgpack_object *o, const char *what, bool *out,
		 struct husk_err **err)
{
	if (obj_expect(o, what, MSGPACK_OBJECT_BOOLEAN, "a boolean", err) < 0)
		return -1;
	*out = o->via.boolean;
	return 0;
}

int ipc_obj_bin(const msgpack_object *o, const char *what, size_t maxlen,
		const char **p, size_t *len, struct husk_err **err)
{
	if (obj_expect(o, what, MSGPACK_OBJECT_BIN, "binary data", err) < 0)
		return -1;
	if (o->via.bin.size > maxlen)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %u bytes is longer than %zu", what,
				  o->via.bin.size, maxlen);
	*p = o->via.bin.ptr;
	*len = o->via.bin.size;
	return 0;
}

/* Counts are uint32 on the wire; the int return of the getters below
 * must not wrap. */
static int obj_count(uint32_t n, const char *what, const char *kind,
		     size_t maxn, struct husk_err **err)
{
	if (n > maxn || n > INT32_MAX)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %s of %u elements is longer than %zu",
				  what, kind, n, maxn);
	return (int)n;
}

int ipc_obj_array(const msgpack_object *o, const char *what, size_t maxn,
		  struct husk_err **err)
{
	if (obj_expect(o, what, MSGPACK_OBJECT_ARRAY, "an array", err) < 0)
		return -1;
	return obj_count(o->via.array.size, what, "array", maxn, err);
}

int ipc_obj_map(const msgpack_object *o, const char *what, size_t maxn,
		struct husk_err **err)
{
	if (obj_expect(o, what, MSGPACK_OBJECT_MAP, "a map", err) < 0)
		return -1;
	return obj_count(o->via.map.size, what, "map", maxn, err);
}

/* ------------------------------------------------------------------ */
/* Table-driven decoding                                               */

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* An array of strings, each at most maxlen bytes, NULL-terminated. */
static int decode_strv(const msgpack_object *o, const char *what,
		       size_t maxn, size_t maxlen, char ***out,
		       struct husk_err **err)
{
	char elem[224];
	char **v = NULL;
	int n;

	n = ipc_obj_array(o, what, maxn, err);
	if (n < 0)
		return -1;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return husk_error_sys(err, ENOMEM, "%s", what);
	for (int i = 0; i < n; i++) {
		snprintf(elem, sizeof(elem), "%s[%d]", what, i);
		if (ipc_obj_str(&o->via.array.ptr[i], elem, maxlen, &v[i],
				err) < 0) {
			strv_free(v);
			return -1;
		}
	}
	*out = v;
	return 0;
}

static int64_t clamp_max_i64(uint64_t max)
{
	return max > INT64_MAX ? INT64_MAX : (int64_t)max;
}

static int decode_int(const struct ipc_field *f, const msgpack_object *o,
		      const char *what, char *dst, struct husk_err **err)
{
	int64_t lo = f->min, hi = clamp_max_i64(f->max), v;

	if (f->type == IPC_F_INT32) {
		/* The table may say more than the member can hold. */
		if (lo < INT32_MIN)
			lo = INT32_MIN;
		if (hi > INT32_MAX)
			hi = INT32_MAX;
	}
	if (ipc_obj_int(o, what, lo, hi, &v, err) < 0)
		return -1;
	if (f->type == IPC_F_INT32)
		*(int32_t *)dst = (int32_t)v;
	else
		*(int64_t *)dst = v;
	return 0;
}

static int decode_uint(const struct ipc_field *f, const msgpack_object *o,
		       const char *what, char *dst, struct husk_err **err)
{
	uint64_t max = f->max, v;

	if (f->type == IPC_F_UINT32 && max > UINT32_MAX)
		max = UINT32_MAX;
	if (ipc_obj_uint(o, what, max, &v, err) < 0)
		return -1;
	if (f->type == IPC_F_UINT32)
		*(uint32_t *)dst = (uint32_t)v;
	else
		*(uint64_t *)dst = v;
	return 0;
}

static int decode_str(const struct ipc_field *f, const msgpack_object *o,
		      const char *what, char *dst, struct husk_err **err)
{
	char *s;

	if (ipc_obj_str(o, what, f->max, &s, err) < 0)
		return -1;
	free(*(char **)dst);
	*(char **)dst = s;
	return 0;
}

static int decode_strv_field(const struct ipc_field *f,
			     const msgpack_object *o, const char *what,
			     char *dst, struct husk_err **err)
{
	size_t maxlen = f->min > 0 ? (size_t)f->min : 0;
	char **v = NULL;

	if (decode_strv(o, what, f->max, maxlen, &v, err) < 0)
		return -1;
	strv_free(*(char ***)dst);
	*(char ***)dst = v;
	return 0;
}

static int decode_bin(const struct ipc_field *f, const msgpack_object *o,
		      const char *what, char *dst, struct husk_err **err)
{
	struct ipc_bin *b = (struct ipc_bin *)dst;
	const char *p;
	size_t len;

	if (ipc_obj_bin(o, what, f->max, &p, &len, err) < 0)
		return -1;
	b->p = p;
	b->len = (uint32_t)len;
	return 0;
}

static int decode_field(const struct ipc_field *f, const msgpack_object *o,
			const char *what, void *out, struct husk_err **err)
{
	char *dst = (char *)out + f->off;
	int n;

	switch (f->type) {
	case IPC_F_STR:
		return decode_str(f, o, what, dst, err);
	case IPC_F_INT64:
	case IPC_F_INT32:
		return decode_int(f, o, what, dst, err);
	case IPC_F_UINT64:
	case IPC_F_UINT32:
		return decode_uint(f, o, what, dst, err);
	case IPC_F_BOOL:
		return ipc_obj_bool(o, what, (bool *)dst, err);
	case IPC_F_BIN:
		return decode_bin(f, o, what, dst, err);
	case IPC_F_STRV:
		return decode_strv_field(f, o, what, dst, err);
	case IPC_F_MAP:
		n = ipc_obj_map(o, what, f->max, err);
		break;
	case IPC_F_ARRAY:
		n = ipc_obj_array(o, what, f->max, err);
		break;
	case IPC_F_ANY:
		n = 0;
		break;
	default:
		return husk_error(err, HUSK_E_INTERNAL,
				  "%s: unknown field type %d", what, f->type);
	}
	if (n < 0)
		return -1;
	*(const msgpack_object **)dst = o;
	return 0;
}

static bool field_is_owned(const struct ipc_field *f)
{
	return f->type == IPC_F_STR || f->type == IPC_F_STRV;
}

static void free_field(const struct ipc_field *f, void *out)
{
	char *dst = (char *)out + f->off;

	if (f->type == IPC_F_STR) {
		free(*(char **)dst);
		*(char **)dst = NULL;
	} else if (f->type == IPC_F_STRV) {
		strv_free(*(char ***)dst);
		*(char ***)dst = NULL;
	}
}

void ipc_decode_free(const struct ipc_field *fields, void *out)
{
	for (const struct ipc_field *f = fields; f->key; f++)
		free_field(f, out);
}

static long find_field(const struct ipc_field *fields, size_t nf,
		       const msgpack_object *k)
{
	if (k->type != MSGPACK_OBJECT_STR)
		return -1;
	for (size_t i = 0; i < nf; i++) {
		size_t n = k->via.str.size;

		if (strlen(fields[i].key) == n &&
		    (n == 0 || memcmp(fields[i].key, k->via.str.ptr, n) == 0))
			return (long)i;
	}
	return -1;
}

enum { F_UNSEEN, F_SEEN, F_STORED };

/* One key/value of the map; seen[] tracks what this call stored. */
static int decode_kv(const struct ipc_field *fields, size_t nf,
		     const msgpack_object_kv *kv, unsigned char *seen,
		     void *out, struct husk_err **err)
{
	const struct ipc_field *f;
	char what[192];
	long i;

	i = find_field(fields, nf, &kv->key);
	if (i < 0)
		return 0;       /* unknown keys are for newer peers */
	f = &fields[i];
	snprintf(what, sizeof(what), "params.%s", f->key);
	if (seen[i] != F_UNSEEN)
		return husk_error(err, HUSK_E_INVALID, "%s: given twice", what);
	seen[i] = F_SEEN;
	if (kv->val.type == MSGPACK_OBJECT_NIL && (f->flags & IPC_NULLABLE))
		return 0;
	if (decode_field(f, &kv->val, what, out, err) < 0)
		return -1;
	seen[i] = F_STORED;
	return 0;
}

int ipc_decode(const msgpack_object *map, const struct ipc_field *fields,
	       void *out, struct husk_err **err)
{
	cleanup_free unsigned char *seen = NULL;
	size_t nf = 0, i;

	while (fields[nf].key)
		nf++;
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return husk_error(err, HUSK_E_INVALID,
				  "params: expected a map, got %s",
				  map ? ipc_type_name(map) : "nothing");
	seen = calloc(nf + 1, 1);
	if (!seen)
		return husk_error_sys(err, ENOMEM, "params");
	for (i = 0; i < map->via.map.size; i++)
		if (decode_kv(fields, nf, &map->via.map.ptr[i], seen, out,
			      err) < 0)
			goto fail;
	for (i = 0; i < nf; i++)
		if ((fields[i].flags & IPC_REQUIRED) && seen[i] == F_UNSEEN) {
			husk_error(err, HUSK_E_INVALID, "params.%s: missing",
				   fields[i].key);
			goto fail;
		}
	return 0;
fail:
	/* Only what this call allocated: defaults stay the caller's. */
	for (i = 0; i < nf; i++)
		if (seen[i] == F_STORED && field_is_owned(&fields[i]))
			free_field(&fields[i], out);
	return -1;
}
