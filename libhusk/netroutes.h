/*
 * A network namespace's routes, listed for the guest: shared by the
 * runtime (sandbox/net.c) and husk-netmon.
 */
#ifndef HUSK_NETROUTES_H
#define HUSK_NETROUTES_H

#include <jansson.h>

#include "err.h"

struct nl_sock;

/* The namespace's routes as update_routes takes them: main table,
 * unicast, not the kernel's link routes, only through devices named in
 * devices (a JSON array of names; NULL: any but lo and taps). */
int husk_net_routes(struct nl_sock *sk, const json_t *devices, json_t **out,
		    struct husk_err **err);

#endif
