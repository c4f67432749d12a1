/*
 * Internal to libipc's codec (msg.c, params.c, json.c): small helpers
 * those files share.  Not part of the public API in ipc.h.
 */
#ifndef HUSK_IPC_CODEC_H
#define HUSK_IPC_CODEC_H

#include <stddef.h>

#include <msgpack.h>

/* "a string", "an integer", ... for error messages. */
const char *ipc_type_name(const msgpack_object *o);

/* The largest length <= max at which s (len bytes) can be cut without
 * splitting a UTF-8 sequence. */
size_t ipc_utf8_cut(const char *s, size_t len, size_t max);

#endif
