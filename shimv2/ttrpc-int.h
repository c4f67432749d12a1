/*
 * Private glue between ttrpc.c, ttrpc_server.c and ttrpc_client.c.
 */
#ifndef HUSK_SHIMV2_TTRPC_INT_H
#define HUSK_SHIMV2_TTRPC_INT_H

#include "shimv2/ttrpc.h"

/* Bounds on what a Request may carry besides its payload. */
#define TTRPC_NAME_MAX	256
#define TTRPC_META_MAX	64
/* Fields of a message at any depth, and its nesting (see pb_walk). */
#define TTRPC_MAX_FIELDS	65536
#define TTRPC_MAX_DEPTH		32

/* Frames waiting to be written, in order. */
struct ttrpc_wbuf {
	struct ttrpc_wbuf *next;
	size_t len, off;
	uint8_t data[];
};

struct ttrpc_wq {
	struct ttrpc_wbuf *head, *tail;
	size_t bytes;
};

/* Queue one frame holding m packed. */
int ttrpc_wq_push(struct ttrpc_wq *q, uint32_t stream, uint8_t type,
		  const ProtobufCMessage *m, struct husk_err **err);
/* Write what the socket takes now; -1 when the socket failed. */
int ttrpc_wq_flush(struct ttrpc_wq *q, int fd, struct husk_err **err);
void ttrpc_wq_free(struct ttrpc_wq *q);

/* O_NONBLOCK on fd (the loop must never block on one socket). */
int ttrpc_set_nonblock(int fd, struct husk_err **err);

/* A frame has begun but not ended. */
bool ttrpc_reader_partial(const struct ttrpc_reader *r);

#endif
