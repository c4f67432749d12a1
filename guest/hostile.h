/* guest/hostile.h: what guest/hostile.c shares with hostile_mp.c. */
#ifndef HUSK_GUEST_HOSTILE_H
#define HUSK_GUEST_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#include "initlib.h"

/* MessagePack out: a growing buffer (out of memory ends the program). */
struct buf {
	uint8_t *p;
	size_t len, cap;
};

void put(struct buf *b, const void *p, size_t n);
void put_be(struct buf *b, uint8_t tag, uint64_t v, int bytes);
void put_uint(struct buf *b, uint64_t v);
void put_strn(struct buf *b, const char *s, size_t n);
void put_str(struct buf *b, const char *s);
void put_hdr(struct buf *b, uint8_t fix, unsigned n);
void put_nil(struct buf *b);
size_t frame_begin(struct buf *b);
void frame_end(struct buf *b, size_t start);

/* MessagePack in: a reader that fails (p = NULL) on anything it does
 * not expect. */
struct rd {
	const uint8_t *p, *end;
};

uint64_t rd_be(struct rd *r, int bytes);
uint8_t rd_u8(struct rd *r);
uint64_t rd_uint(struct rd *r);
uint32_t rd_count(struct rd *r, uint8_t fix, uint8_t c16);
const char *rd_str(struct rd *r, size_t *n);
void rd_skip(struct rd *r, int depth);

#endif
