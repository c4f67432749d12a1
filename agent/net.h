/*
 * The agent's network methods (net.c): params decoded into these
 * structs before anything touches netlink.  Exposed for the unit tests.
 */
#ifndef HUSK_AGENT_NET_H
#define HUSK_AGENT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <net/if.h>
#include <msgpack.h>

#include "libhusk/err.h"

#define NET_MAX_ADDRS 64
#define NET_MAX_ROUTES 1024

struct net_addr {
	int family;                     /* AF_INET, AF_INET6 */
	unsigned char bytes[16];
	unsigned prefix_len;
};

struct net_iface {
	char name[IFNAMSIZ];
	unsigned char mac[6];
	uint32_t mtu;                   /* 0: leave it */
	bool up;                        /* default true */
	size_t naddrs;
	struct net_addr *addrs;
};

struct net_route {
	bool is_default;
	struct net_addr dest;           /* family 0 for a default route */
	bool has_gw;
	struct net_addr gw;
	char device[IFNAMSIZ];
	bool has_src;
	struct net_addr src;
	int scope;                      /* -1: chosen from the gateway */
	int family;                     /* of the route as a whole */
};

/* "aa:bb:cc:dd:ee:ff" (either case). */
int net_mac_parse(const char *s, unsigned char mac[6]);
/* An IPv4 or IPv6 address (inet_pton); prefix_len set to the full
 * length. */
int net_addr_parse(const char *s, struct net_addr *a);
/* Bytes of an address of family (AF_INET: 4, else 16). */
unsigned net_addr_bytes(int family);
/* 1..15 bytes, no '/', ':' or white space, not "." or "..". */
int net_ifname_check(const char *name, const char *what,
		     struct husk_err **err);

/* update_interface params: {interface: {...}}. */
int net_iface_decode(const msgpack_object *params, struct net_iface *out,
		     struct husk_err **err);
void net_iface_free(struct net_iface *i);
/* update_routes params: {routes: [...]}. */
int net_routes_decode(const msgpack_object *params, struct net_route **out,
		      size_t *n, struct husk_err **err);

/* The netlink side the handlers are built from (net.c; declared here
 * for tests/unit/test_agent_net.c). */
struct nl_sock;
struct nl_cache;
/* A connected rtnetlink socket of the agent's namespace. */
struct nl_sock *nl_open(struct husk_err **err);
/* Apply one interface (ifindex: the link's index); its addresses are
 * made the given ones. */
int iface_apply(struct nl_sock *sk, const struct net_iface *w,
		int *ifindex, struct husk_err **err);
/* Make the main table's routes the given ones. */
int routes_apply(struct nl_sock *sk, const struct net_route *v,
		 size_t n, struct husk_err **err);
/* list_interfaces' and list_routes' results. */
void pack_interfaces(msgpack_packer *pk, struct nl_cache *links,
		     struct nl_cache *addrs);
void pack_routes(msgpack_packer *pk, struct nl_cache *routes,
		 struct nl_cache *links);
/* The namespace's links, addresses and routes (NULL: not wanted). */
int snapshot(struct nl_sock *sk, struct nl_cache **links,
	     struct nl_cache **addrs, struct nl_cache **routes,
	     struct husk_err **err);

#endif
