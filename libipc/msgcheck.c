/*
 * A MessagePack validator that runs before the unpacker sees a frame.
 *
 * msgpack-c allocates an object per array or map element as soon as it
 * reads a container header, trusting the count: a 5-byte array32 header
 * claiming 4 billion elements would make it ask for ~100 GB.  Every
 * element takes at least one byte, so a count larger than the bytes
 * left is a lie, and refusing it bounds the unpacker's memory by a
 * small multiple of the frame size.  The walk is iterative with a fixed
 * stack, so hostile nesting cannot exhaust ours either.
 */
#include <inttypes.h>
#include <stdint.h>

#include "ipc.h"

enum mp_kind {
	MP_SCALAR,      /* n = payload bytes after the header */
	MP_CONTAINER,   /* n = elements that follow (2 per map entry) */
};

struct mp_head {
	int kind;
	uint64_t n;
	size_t hdr;     /* bytes of the header itself */
	const char *what;
};

static uint64_t mp_be(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < w; i++)
		v = v << 8 | p[i];
	return v;
}

/* Header whose length or count sits in the w bytes after the type. */
static int mp_sized(struct mp_head *h, const uint8_t *p, size_t left,
		    unsigned w, int kind, unsigned mult, const char *what)
{
	if (left < 1 + (size_t)w)
		return -1;
	h->kind = kind;
	h->n = mp_be(p + 1, w) * mult;
	h->hdr = 1 + w;
	h->what = what;
	return 0;
}

static int mp_fixed(struct mp_head *h, unsigned payload)
{
	h->kind = MP_SCALAR;
	h->n = payload;
	h->hdr = 1;
	h->what = "scalar";
	return 0;
}

/*
 * Decode the header at p (left > 0 bytes available).  Returns 0, -1
 * when the header itself is truncated, -2 for a type we refuse.
 */
static int mp_read_head(const uint8_t *p, size_t left, struct mp_head *h)
{
	uint8_t b = p[0];

	if (b <= 0x7f || b >= 0xe0)
		return mp_fixed(h, 0);
	if (b <= 0x8f) {
		h->kind = MP_CONTAINER;
		h->n = 2u * (b & 0x0f);
		h->hdr = 1;
		h->what = "map";
		return 0;
	}
	if (b <= 0x9f) {
		h->kind = MP_CONTAINER;
		h->n = b & 0x0f;
		h->hdr = 1;
		h->what = "array";
		return 0;
	}
	if (b <= 0xbf)
		return mp_fixed(h, b & 0x1f);

	switch (b) {
	case 0xc0: case 0xc2: case 0xc3:
		return mp_fixed(h, 0);
	case 0xc4: return mp_sized(h, p, left, 1, MP_SCALAR, 1, "bin");
	case 0xc5: return mp_sized(h, p, left, 2, MP_SCALAR, 1, "bin");
	case 0xc6: return mp_sized(h, p, left, 4, MP_SCALAR, 1, "bin");
	case 0xca: return mp_fixed(h, 4);
	case 0xcb: return mp_fixed(h, 8);
	case 0xcc: case 0xd0: return mp_fixed(h, 1);
	case 0xcd: case 0xd1: return mp_fixed(h, 2);
	case 0xce: case 0xd2: return mp_fixed(h, 4);
	case 0xcf: case 0xd3: return mp_fixed(h, 8);
	case 0xd9: return mp_sized(h, p, left, 1, MP_SCALAR, 1, "str");
	case 0xda: return mp_sized(h, p, left, 2, MP_SCALAR, 1, "str");
	case 0xdb: return mp_sized(h, p, left, 4, MP_SCALAR, 1, "str");
	case 0xdc: return mp_sized(h, p, left, 2, MP_CONTAINER, 1, "array");
	case 0xdd: return mp_sized(h, p, left, 4, MP_CONTAINER, 1, "array");
	case 0xde: return mp_sized(h, p, left, 2, MP_CONTAINER, 2, "map");
	case 0xdf: return mp_sized(h, p, left, 4, MP_CONTAINER, 2, "map");
	default:
		/* 0xc1 (never used), ext8/16/32 and fixext1..16. */
		return -2;
	}
}

int ipc_msgpack_check(const char *data, size_t len, struct husk_err **err)
{
	const uint8_t *p = (const uint8_t *)data;
	uint64_t rem[IPC_MAX_DEPTH + 1];
	struct mp_head h;
	size_t pos = 0, left;
	int depth = 0, r;

	if (len == 0)
		return husk_error(err, HUSK_E_PROTOCOL, "empty message");
	rem[0] = 1;
	while (depth >= 0) {
		if (rem[depth] == 0) {
			depth--;
			continue;
		}
		rem[depth]--;
		if (pos >= len)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "message truncated at byte %zu", pos);
		r = mp_read_head(p + pos, len - pos, &h);
		if (r == -2)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "type 0x%02x at byte %zu is not accepted",
					  p[pos], pos);
		if (r < 0)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "message truncated at byte %zu", pos);
		pos += h.hdr;
		left = len - pos;
		if (h.kind == MP_SCALAR) {
			if (h.n > left)
				return husk_error(err, HUSK_E_PROTOCOL,
						  "%s of %" PRIu64 " bytes at byte %zu overruns the message",
						  h.what, h.n, pos - h.hdr);
			pos += h.n;
			continue;
		}
		if (h.n > left)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "%s at byte %zu claims %" PRIu64 " items but %zu bytes are left",
					  h.what, pos - h.hdr, h.n, left);
		if (depth + 1 > IPC_MAX_DEPTH)
			return husk_error(err, HUSK_E_PROTOCOL,
					  "nesting deeper than %d at byte %zu",
					  IPC_MAX_DEPTH, pos - h.hdr);
		rem[++depth] = h.n;
	}
	if (pos != len)
		return husk_error(err, HUSK_E_PROTOCOL,
				  "%zu bytes of garbage after the message",
				  len - pos);
	return 0;
}
