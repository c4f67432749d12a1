/*
 * Fuzz the framer with hostile read boundaries: the first byte says how
 * many chunk sizes follow, those bytes are the sizes (cycled), and the
 * rest is the stream, fed chunk by chunk into a framer whose complete
 * frames go to ipc_msg_parse.  A failure resets the framer and feeding
 * goes on, as a server would do with a new connection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libipc/ipc.h"

struct sink {
	uint32_t max;
	unsigned frames;
};

static int on_frame(void *arg, const char *data, uint32_t len)
{
	struct sink *s = arg;
	struct husk_err *err = NULL;
	struct ipc_msg m;

	if (len == 0 || len > s->max)
		abort();
	s->frames++;
	if (ipc_msg_parse(&m, data, len, &err) < 0)
		husk_err_free(err);
	ipc_msg_free(&m);
	/* Now and then refuse, to walk the callback-failure path. */
	return (s->frames % 7 == 0) ? -1 : 0;
}

/* A connection's reader (libipc/conn.c) splits its own buffer in place
 * and parses without a copy, into a zone it keeps (every other frame
 * here), or without one. */
static msgpack_zone *zone;

static int on_frame_ref(void *arg, const char *data, uint32_t len)
{
	struct sink *s = arg;
	struct husk_err *err = NULL;
	struct ipc_msg m;
	int r;

	if (len == 0 || len > s->max)
		abort();
	s->frames++;
	if (!zone)
		zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (s->frames % 2)
		r = ipc_msg_parse_zone(&m, data, len, zone, &err);
	else
		r = ipc_msg_parse_ref(&m, data, len, &err);
	if (r < 0)
		husk_err_free(err);
	else if (m.raw != data || m.raw_len != len)
		abort();
	ipc_msg_free(&m);
	msgpack_zone_clear(zone);
	return 0;
}

static void split_all(const uint8_t *data, size_t size)
{
	struct sink s = { .max = 4096 };
	struct husk_err *err = NULL;
	size_t need = 0;
	ssize_t used;

	used = ipc_frames_split((const char *)data, size, s.max, on_frame_ref,
				&s, &need, &err);
	if (used < 0) {
		husk_err_free(err);
		return;
	}
	if ((size_t)used > size || need < IPC_FRAME_HDR ||
	    need > IPC_FRAME_HDR + (size_t)s.max || size - used >= need)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink s = { .max = 4096 };
	struct ipc_framer f;
	const uint8_t *sizes;
	size_t nsizes, i = 0;

	if (size < 1)
		return 0;
	nsizes = data[0] % 16;
	if (size < 1 + nsizes)
		return 0;
	sizes = data + 1;
	data += 1 + nsizes;
	size -= 1 + nsizes;
	split_all(data, size);

	ipc_framer_init(&f, s.max);
	while (size > 0) {
		struct husk_err *err = NULL;
		size_t n = nsizes ? sizes[i++ % nsizes] : size;

		if (n == 0)
			n = 1;
		if (n > size)
			n = size;
		if (ipc_framer_feed(&f, data, n, on_frame, &s, &err) < 0) {
			husk_err_free(err);
			ipc_framer_reset(&f);
		}
		if (f.buf && f.len > s.max)
			abort();
		data += n;
		size -= n;
	}
	(void)ipc_framer_partial(&f);
	ipc_framer_free(&f);
	return 0;
}
