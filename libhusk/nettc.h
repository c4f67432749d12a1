/*
 * The tap side of a sandbox's network (docs/network.md): a tap per
 * mirrored link, named tap<N>_husk, and tc ingress filters that redirect
 * every frame from the link to the tap and back (Kata's tcfilter
 * model).  Shared by the hypervisor driver, which sets them up, and the
 * runtime, which removes whatever a killed driver left behind.
 */
#ifndef HUSK_NETTC_H
#define HUSK_NETTC_H

#include <stdbool.h>

#include "err.h"

struct nl_sock;

#define HUSK_TAP_SUFFIX "_husk"
/* Filters husk adds carry this priority, so that clean-up finds them
 * and leaves other filters alone. */
#define HUSK_TC_PRIO 49152

/* A tap of husk's (name ends in _husk)? */
bool husk_net_is_tap(const char *ifname);
/* An ingress qdisc on `from` (added when missing) and a u32 match-all
 * filter redirecting its frames to `to`'s egress. */
int husk_tc_redirect(struct nl_sock *sk, int from, int to,
		     struct husk_err **err);
/* Remove husk's filters from ifindex's ingress, and the ingress qdisc
 * when no other filter is left on it.  Returns how many went. */
int husk_tc_unredirect(struct nl_sock *sk, int ifindex);
/* Delete a link by name; 0 when gone or never there. */
int husk_link_delete(struct nl_sock *sk, const char *name);
/* Every tap of husk's and every filter of husk's in the current
 * network namespace, removed.  Returns how many objects went, or -1. */
int husk_net_scrub(struct nl_sock *sk, struct husk_err **err);

#endif
