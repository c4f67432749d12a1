/*
 * hostile_mp.c: the little MessagePack guest/hostile.c needs, written
 * out by hand (the image has no msgpack-c; and an attacker wants to
 * write bytes no library would).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"

void
put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL) {
			say("hostile: out of memory\n");
			_exit(1);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void
put_be(struct buf *b, uint8_t tag, uint64_t v, int bytes)
{
	uint8_t x[9];

	x[0] = tag;
	for (int i = 0; i < bytes; i++)
		x[1 + i] = v >> (8 * (bytes - 1 - i));
	put(b, x, 1 + bytes);
}

void
put_uint(struct buf *b, uint64_t v)
{
	uint8_t c = v;

	if (v < 128)
		put(b, &c, 1);
	else if (v <= 0xffffffffu)
		put_be(b, 0xce, v, 4);
	else
		put_be(b, 0xcf, v, 8);
}

void
put_strn(struct buf *b, const char *s, size_t n)
{
	uint8_t c = 0xa0 | n;

	if (n < 32)
		put(b, &c, 1);
	else
		put_be(b, 0xdb, n, 4);
	put(b, s, n);
}

void put_str(struct buf *b, const char *s) { put_strn(b, s, strlen(s)); }

void
put_hdr(struct buf *b, uint8_t fix, unsigned n)
{
	uint8_t c = fix | n;	/* n < 16 everywhere here */

	put(b, &c, 1);
}

void put_nil(struct buf *b) { put(b, "\xc0", 1); }

/* Start a frame: 4 bytes for the length, written by frame_end. */
size_t
frame_begin(struct buf *b)
{
	put(b, "\0\0\0\0", 4);
	return b->len;
}

void
frame_end(struct buf *b, size_t start)
{
	uint32_t n = b->len - start;
	uint8_t *h = b->p + start - 4;

	h[0] = n >> 24;
	h[1] = n >> 16;
	h[2] = n >> 8;
	h[3] = n;
}

uint64_t
rd_be(struct rd *r, int bytes)
{
	uint64_t v = 0;

	if (r->p == NULL || r->end - r->p < bytes) {
		r->p = NULL;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v = v << 8 | *r->p++;
	return v;
}

uint8_t rd_u8(struct rd *r) { return rd_be(r, 1); }

uint64_t
rd_uint(struct rd *r)
{
	uint8_t c = rd_u8(r);

	if (c < 0x80)
		return c;
	switch (c) {
	case 0xcc: return rd_be(r, 1);
	case 0xcd: return rd_be(r, 2);
	case 0xce: return rd_be(r, 4);
	case 0xcf: return rd_be(r, 8);
	}
	r->p = NULL;
	return 0;
}

uint32_t
rd_count(struct rd *r, uint8_t fix, uint8_t c16)
{
	uint8_t c = rd_u8(r);

	if ((c & 0xf0) == fix)
		return c & 0x0f;
	if (c == c16)
		return rd_be(r, 2);
	if (c == c16 + 1)
		return rd_be(r, 4);
	r->p = NULL;
	return 0;
}

const char *
rd_str(struct rd *r, size_t *n)
{
	uint8_t c = rd_u8(r);
	const char *s;

	if ((c & 0xe0) == 0xa0)
		*n = c & 0x1f;
	else if (c == 0xd9)
		*n = rd_be(r, 1);
	else if (c == 0xda)
		*n = rd_be(r, 2);
	else if (c == 0xdb)
		*n = rd_be(r, 4);
	else
		r->p = NULL;
	if (r->p == NULL || (size_t)(r->end - r->p) < *n) {
		r->p = NULL;
		return NULL;
	}
	s = (const char *)r->p;
	r->p += *n;
	return s;
}

/* Skip one object; the host is trusted to nest sanely, depth is capped
 * anyway. */
void
rd_skip(struct rd *r, int depth)
{
	uint8_t c;
	uint64_t n = 0;
	size_t len;

	if (r->p == NULL || r->p >= r->end || depth > 32) {
		r->p = NULL;
		return;
	}
	c = *r->p;
	if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb)) {
		rd_str(r, &len);
		return;
	}
	if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd) {
		n = rd_count(r, 0x90, 0xdc);
		while (r->p && n--)
			rd_skip(r, depth + 1);
		return;
	}
	if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf) {
		n = rd_count(r, 0x80, 0xde) * 2ull;
		while (r->p && n--)
			rd_skip(r, depth + 1);
		return;
	}
	r->p++;
	switch (c) {
	case 0xc4: n = rd_be(r, 1); break;
	case 0xc5: n = rd_be(r, 2); break;
	case 0xc6: n = rd_be(r, 4); break;
	case 0xcc: case 0xd0: n = 1; break;
	case 0xcd: case 0xd1: n = 2; break;
	case 0xca: case 0xce: case 0xd2: n = 4; break;
	case 0xcb: case 0xcf: case 0xd3: n = 8; break;
	}
	if (r->p == NULL || (uint64_t)(r->end - r->p) < n) {
		r->p = NULL;
		return;
	}
	r->p += n;
}
