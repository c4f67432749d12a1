/*
 * Private glue between conn.c and server.c: not part of libipc's API.
 */
#ifndef HUSK_IPC_CONN_INT_H
#define HUSK_IPC_CONN_INT_H

#include "ipc.h"

/* Called by conn.c when a server's connection closes (before on_close). */
void ipc_server_conn_gone(struct ipc_server *s, struct ipc_conn *c);
/* Tie a connection to its server (NULL unties it). */
void ipc_conn_set_server(struct ipc_conn *c, struct ipc_server *s);

/* Check a hello map {version, component} from the peer; on success
 * peer holds its component name. */
int ipc_hello_parse(const msgpack_object *map, const char *self,
		    const char *expect, char peer[IPC_COMPONENT_MAX + 1],
		    struct husk_err **err);

/* Frames to complete before the one that owns descriptors received
 * with data[0..n), given the framer's state before feeding data. */
int ipc_fds_skip(const struct ipc_framer *f, const char *data, size_t n);

#endif
