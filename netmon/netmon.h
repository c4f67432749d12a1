/*
 * husk-netmon: watches the sandbox's network namespace and gets the VM
 * in step with it (docs/network.md).
 *
 *   main.c      the sync with driver and agent; options, open, run
 *               (libhusk/daemon.h)
 *   nl.c        rtnetlink notifications: which kind of change they are
 *   confine.c   the profile: no capabilities, seccomp
 */
#ifndef HUSK_NETMON_H
#define HUSK_NETMON_H

#include <stdbool.h>
#include <stddef.h>

#include "libhusk/err.h"

/* What a batch of notifications asks to resync. */
enum {
	NM_LINK = 1u << 0,
	NM_ADDR = 1u << 1,
	NM_ROUTE = 1u << 2,
	NM_ALL = NM_LINK | NM_ADDR | NM_ROUTE,
};

/* Classify the rtnetlink messages in buf (one datagram): an OR of NM_*
 * for the changes that matter.  lo and husk's own taps (*_husk) are
 * ignored; malformed messages end the walk (what was seen counts). */
unsigned nm_classify(const void *buf, size_t len);

struct nl_sock;
/* A socket subscribed to link, address and route notifications
 * (non-blocking), and one for dumps. */
int nm_nl_open(struct nl_sock **events, struct nl_sock **dumps,
	       struct husk_err **err);

/* confine.c: the program's confinement point, after nm_open */
struct husk_daemon;
int nm_confine(struct husk_daemon *d, struct husk_err **err);

#endif
