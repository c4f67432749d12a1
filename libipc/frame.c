/*
 * Frames: a 4-byte big-endian length, then that many bytes.
 *
 * The decoder is fed whatever read() returned.  The length is checked
 * against the maximum before any allocation, so a peer announcing 4 GiB
 * costs us nothing but the four bytes it sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

void ipc_framer_init(struct ipc_framer *f, uint32_t max)
{
	memset(f, 0, sizeof(*f));
	f->max = max ? max : IPC_FRAME_MAX_DEFAULT;
}

void ipc_framer_reset(struct ipc_framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->hdr_have = 0;
	f->len = 0;
	f->have = 0;
}

void ipc_framer_free(struct ipc_framer *f)
{
	ipc_framer_reset(f);
}

bool ipc_framer_partial(const struct ipc_framer *f)
{
	return f->hdr_have > 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The header is complete: check the length before anything else. */
static int framer_check_len(struct ipc_framer *f, struct husk_err **err)
{
	f->len = be32(f->hdr);
	f->have = 0;
	if (f->len == 0)
		return husk_error(err, HUSK_E_PROTOCOL, "empty frame");
	if (f->len > f->max)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "frame of %u bytes is over the limit of %u",
				  f->len, f->max);
	return 0;
}

/*
 * Hand a complete frame to the callback.  The framer is back at "no
 * frame" before the call, so that the callback may reset or free it.
 */
static int framer_deliver(struct ipc_framer *f, const char *data,
			  uint32_t len, ipc_frame_cb cb, void *arg)
{
	char *owned = f->buf;
	int ret;

	f->buf = NULL;
	f->hdr_have = 0;
	f->len = 0;
	f->have = 0;
	ret = cb(arg, data, len);
	free(owned);
	return ret < 0 ? ret : 0;
}

int ipc_framer_feed(struct ipc_framer *f, const void *data, size_t n,
		    ipc_frame_cb cb, void *arg, struct husk_err **err)
{
	const char *p = data;
	size_t take;
	int ret;

	while (n > 0) {
		if (f->hdr_have < IPC_FRAME_HDR) {
			take = IPC_FRAME_HDR - f->hdr_have;
			if (take > n)
				take = n;
			memcpy(f->hdr + f->hdr_have, p, take);
			f->hdr_have += take;
			p += take;
			n -= take;
			if (f->hdr_have < IPC_FRAME_HDR)
				break;
			if (framer_check_len(f, err) < 0)
				return -1;
			/* A whole frame in the input needs no copy. */
			if (n >= f->len) {
				take = f->len;
				ret = framer_deliver(f, p, f->len, cb, arg);
				if (ret < 0)
					return ret;
				p += take;
				n -= take;
				continue;
			}
			f->buf = malloc(f->len);
			if (!f->buf)
				return husk_error_sys(err, ENOMEM,
						      "frame of %u bytes",
						      f->len);
		}
		take = f->len - f->have;
		if (take > n)
			take = n;
		memcpy(f->buf + f->have, p, take);
		f->have += take;
		p += take;
		n -= take;
		if (f->have == f->len) {
			ret = framer_deliver(f, f->buf, f->len, cb, arg);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

ssize_t ipc_frames_split(const char *buf, size_t n, uint32_t max,
			 ipc_frame_cb cb, void *arg, size_t *need,
			 struct husk_err **err)
{
	size_t pos = 0;

	for (;;) {
		uint32_t len;
		int ret;

		if (n - pos < IPC_FRAME_HDR) {
			*need = IPC_FRAME_HDR;
			return (ssize_t)pos;
		}
		len = be32((const uint8_t *)buf + pos);
		if (len == 0)
			return husk_error(err, HUSK_E_PROTOCOL, "empty frame");
		if (len > max)
			return husk_error(err, HUSK_E_TOO_LARGE,
					  "frame of %u bytes is over the limit "
					  "of %u", len, max);
		if (n - pos - IPC_FRAME_HDR < len) {
			*need = IPC_FRAME_HDR + (size_t)len;
			return (ssize_t)pos;
		}
		ret = cb(arg, buf + pos + IPC_FRAME_HDR, len);
		if (ret < 0)
			return ret;
		pos += IPC_FRAME_HDR + (size_t)len;
	}
}
