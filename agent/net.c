/*
 * Networking in the guest: update_interface, update_routes,
 * list_interfaces and list_routes over rtnetlink with libnl-route-3.
 * The host names interfaces by MAC (the guest kernel picks the names);
 * see docs/agent.md, "Networking in the guest".  Their params are
 * decoded by net_params.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <net/if_arp.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/agent.h"
#include "agent/methods.h"
#include "agent/net.h"

/* ------------------------------------------------------------------ */
/* Netlink                                                             */

static int nl_fail(struct husk_err **err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int nl_fail(struct husk_err **err, int nlerr, const char *fmt, ...)
{
	cleanup_free char *what = NULL;
	va_list ap;
	int code;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_EXIST:
		code = HUSK_E_EXISTS;
		break;
	case NLE_NODEV:
	case NLE_OBJ_NOTFOUND:
	case NLE_NOADDR:
		code = HUSK_E_NOT_FOUND;
		break;
	case NLE_PERM:
		code = HUSK_E_PERMISSION;
		break;
	case NLE_INVAL:
	case NLE_RANGE:
		code = HUSK_E_INVALID;
		break;
	default:
		code = HUSK_E_SYSTEM;
	}
	return husk_error(err, code, "%s: %s", what ? what : "netlink",
			  nl_geterror(nlerr));
}

static void sock_freep(struct nl_sock **sk)
{
	if (*sk)
		nl_socket_free(*sk);
}

static void cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}

static void nlobj_putp(void *p)
{
	struct nl_object **o = p;

	if (*o)
		nl_object_put(*o);
}

static void nladdr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}

#define cleanup_sock  __attribute__((cleanup(sock_freep)))
#define cleanup_cache __attribute__((cleanup(cache_freep)))
#define cleanup_nlobj __attribute__((cleanup(nlobj_putp)))
#define cleanup_nladdr __attribute__((cleanup(nladdr_putp)))

struct nl_sock *nl_open(struct husk_err **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	int rc;

	if (!sk) {
		husk_error_sys(err, ENOMEM, "netlink socket");
		return NULL;
	}
	rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		nl_fail(err, rc, "netlink connect");
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

static struct nl_addr *addr_build(const struct net_addr *a)
{
	struct nl_addr *n = nl_addr_build(a->family, a->bytes,
					  net_addr_bytes(a->family));

	if (n)
		nl_addr_set_prefixlen(n, a->prefix_len);
	return n;
}

static void pack_nladdr(msgpack_packer *pk, struct nl_addr *a, bool prefix)
{
	char buf[INET6_ADDRSTRLEN + 8] = "";
	int fam = a ? nl_addr_get_family(a) : 0;

	if (a && (fam == AF_INET || fam == AF_INET6) &&
	    nl_addr_get_len(a) == net_addr_bytes(fam) &&
	    inet_ntop(fam, nl_addr_get_binary_addr(a), buf, sizeof(buf)) &&
	    prefix)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%u",
			 nl_addr_get_prefixlen(a));
	ipc_pack_str(pk, buf);
}

static void mac_text(struct rtnl_link *l, char *buf, size_t size)
{
	struct nl_addr *a = rtnl_link_get_addr(l);
	const unsigned char *m;

	buf[0] = '\0';
	if (!a || nl_addr_get_len(a) != 6)
		return;
	m = nl_addr_get_binary_addr(a);
	snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
}

static bool is_ip(int family)
{
	return family == AF_INET || family == AF_INET6;
}

/* {name, mac, mtu, up, addresses: [{address, prefix_len}]} */
static void pack_iface(msgpack_packer *pk, struct rtnl_link *l,
		       struct nl_cache *addrs)
{
	int idx = rtnl_link_get_ifindex(l);
	const char *name = rtnl_link_get_name(l);
	char mac[32];
	uint32_t n = 0;

	mac_text(l, mac, sizeof(mac));
	msgpack_pack_map(pk, 5);
	ipc_pack_kv_str(pk, "name", name ? name : "");
	ipc_pack_kv_str(pk, "mac", mac);
	ipc_pack_kv_uint(pk, "mtu", rtnl_link_get_mtu(l));
	ipc_pack_kv_bool(pk, "up", rtnl_link_get_flags(l) & IFF_UP);
	ipc_pack_key(pk, "addresses");
	for (struct nl_object *o = nl_cache_get_first(addrs); o;
	     o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		if (rtnl_addr_get_ifindex(a) == idx &&
		    is_ip(rtnl_addr_get_family(a)))
			n++;
	}
	msgpack_pack_array(pk, n);
	for (struct nl_object *o = nl_cache_get_first(addrs); o;
	     o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		if (rtnl_addr_get_ifindex(a) != idx ||
		    !is_ip(rtnl_addr_get_family(a)))
			continue;
		msgpack_pack_map(pk, 2);
		ipc_pack_key(pk, "address");
		pack_nladdr(pk, rtnl_addr_get_local(a), false);
		ipc_pack_kv_uint(pk, "prefix_len", rtnl_addr_get_prefixlen(a));
	}
}

static struct rtnl_link *link_by_mac(struct nl_cache *links,
				     const unsigned char mac[6])
{
	for (struct nl_object *o = nl_cache_get_first(links); o;
	     o = nl_cache_get_next(o)) {
		struct nl_addr *a = rtnl_link_get_addr((struct rtnl_link *)o);

		if (a && nl_addr_get_len(a) == 6 &&
		    memcmp(nl_addr_get_binary_addr(a), mac, 6) == 0) {
			nl_object_get(o);
			return (struct rtnl_link *)o;
		}
	}
	return NULL;
}

static bool addr_wanted(const struct net_iface *w, struct rtnl_addr *a)
{
	struct nl_addr *l = rtnl_addr_get_local(a);
	int fam = rtnl_addr_get_family(a);

	if (!l || nl_addr_get_len(l) != net_addr_bytes(fam))
		return false;
	for (size_t i = 0; i < w->naddrs; i++)
		if (w->addrs[i].family == fam &&
		    (int)w->addrs[i].prefix_len == rtnl_addr_get_prefixlen(a) &&
		    memcmp(w->addrs[i].bytes, nl_addr_get_binary_addr(l),
			   net_addr_bytes(fam)) == 0)
			return true;
	return false;
}

/* IPv6 link-local addresses belong to the kernel (neighbour discovery
 * needs them); they stay whatever the list says. */
static bool addr_kernel_owned(struct rtnl_addr *a)
{
	struct nl_addr *l = rtnl_addr_get_local(a);
	const unsigned char *b;

	if (rtnl_addr_get_family(a) != AF_INET6 || !l ||
	    nl_addr_get_len(l) != 16)
		return false;
	b = nl_addr_get_binary_addr(l);
	return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
}

static int iface_addrs(struct nl_sock *sk, int idx, const struct net_iface *w,
		       struct husk_err **err)
{
	cleanup_cache struct nl_cache *addrs = NULL;
	int rc;

	rc = rtnl_addr_alloc_cache(sk, &addrs);
	if (rc < 0)
		return nl_fail(err, rc, "interface.addresses: list");
	for (struct nl_object *o = nl_cache_get_first(addrs); o;
	     o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		if (rtnl_addr_get_ifindex(a) != idx ||
		    !is_ip(rtnl_addr_get_family(a)) || addr_kernel_owned(a) ||
		    addr_wanted(w, a))
			continue;
		rc = rtnl_addr_delete(sk, a, 0);
		if (rc < 0 && rc != -NLE_NOADDR && rc != -NLE_OBJ_NOTFOUND)
			return nl_fail(err, rc, "interface.addresses: remove");
	}
	/* Removing a primary IPv4 address takes its secondaries along:
	 * look again before adding. */
	rc = nl_cache_refill(sk, addrs);
	if (rc < 0)
		return nl_fail(err, rc, "interface.addresses: list");
	for (size_t i = 0; i < w->naddrs; i++) {
		cleanup_nlobj struct rtnl_addr *a = NULL;
		cleanup_nladdr struct nl_addr *local = NULL;
		bool have = false;

		for (struct nl_object *o = nl_cache_get_first(addrs); o && !have;
		     o = nl_cache_get_next(o)) {
			struct rtnl_addr *c = (struct rtnl_addr *)o;
			struct net_iface one = { .naddrs = 1,
						 .addrs = &w->addrs[i] };

			have = rtnl_addr_get_ifindex(c) == idx &&
			       addr_wanted(&one, c);
		}
		if (have)
			continue;
		a = rtnl_addr_alloc();
		local = addr_build(&w->addrs[i]);
		if (!a || !local)
			return husk_error_sys(err, ENOMEM, "interface.addresses");
		rtnl_addr_set_ifindex(a, idx);
		rtnl_addr_set_family(a, w->addrs[i].family);
		rc = rtnl_addr_set_local(a, local);
		if (rc == 0)
			rtnl_addr_set_prefixlen(a, (int)w->addrs[i].prefix_len);
		if (rc == 0)
			rc = rtnl_addr_add(sk, a, 0);
		if (rc < 0 && rc != -NLE_EXIST)
			return nl_fail(err, rc, "interface.addresses[%zu]: add",
				       i);
	}
	return 0;
}

/* A NIC that holds a name another is to take: down, renamed hk<index>
 * (a name no spec gives: update_interface finds NICs by MAC). */
static int move_aside(struct nl_sock *sk, struct rtnl_link *l,
		      struct husk_err **err)
{
	cleanup_nlobj struct rtnl_link *down = rtnl_link_alloc(),
				       *change = rtnl_link_alloc();
	char name[IFNAMSIZ];
	int rc;

	if (!down || !change)
		return husk_error_sys(err, ENOMEM, "interface");
	snprintf(name, sizeof(name), "hk%d", rtnl_link_get_ifindex(l));
	/* The kernel renames only links that are down. */
	rtnl_link_unset_flags(down, IFF_UP);
	rc = rtnl_link_change(sk, l, down, 0);
	if (rc == 0) {
		rtnl_link_set_name(change, name);
		rc = rtnl_link_change(sk, l, change, 0);
	}
	if (rc < 0)
		return nl_fail(err, rc, "interface: move %s aside as %s",
			       rtnl_link_get_name(l) ?: "?", name);
	log_info("interface %s moved aside as %s: its name is wanted",
		 rtnl_link_get_name(l) ?: "?", name);
	return 0;
}

int iface_apply(struct nl_sock *sk, const struct net_iface *w,
		int *ifindex, struct husk_err **err)
{
	cleanup_cache struct nl_cache *links = NULL;
	cleanup_nlobj struct rtnl_link *link = NULL, *other = NULL,
				       *down = NULL, *change = NULL;
	const char *cur;
	int rc;

	rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc < 0)
		return nl_fail(err, rc, "interface: list links");
	link = link_by_mac(links, w->mac);
	if (!link)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "interface.mac: no interface has MAC %02x:%02x:%02x:%02x:%02x:%02x",
				  w->mac[0], w->mac[1], w->mac[2], w->mac[3],
				  w->mac[4], w->mac[5]);
	*ifindex = rtnl_link_get_ifindex(link);
	cur = rtnl_link_get_name(link);
	change = rtnl_link_alloc();
	if (!change)
		return husk_error_sys(err, ENOMEM, "interface");
	if (!cur || strcmp(cur, w->name) != 0) {
		other = rtnl_link_get_by_name(links, w->name);
		/* NICs present at boot carry the kernel's names (eth0,
		 * eth1...) until each is given its own: one may hold the
		 * name another is to take.  Any NIC is moved aside (hkN,
		 * its index) and renamed again when its turn comes; lo and
		 * the like are not ours to move. */
		if (other && rtnl_link_get_arptype(other) == ARPHRD_ETHER &&
		    rtnl_link_get_ifindex(other) != *ifindex) {
			rc = move_aside(sk, other, err);
			if (rc < 0)
				return rc;
		} else if (other) {
			return husk_error(err, HUSK_E_EXISTS,
					  "interface.name: another interface is called \"%s\"",
					  w->name);
		}
		/* The kernel renames only links that are down. */
		down = rtnl_link_alloc();
		if (!down)
			return husk_error_sys(err, ENOMEM, "interface");
		rtnl_link_unset_flags(down, IFF_UP);
		rc = rtnl_link_change(sk, link, down, 0);
		if (rc < 0)
			return nl_fail(err, rc, "interface: set %s down",
				       cur ? cur : "?");
		rtnl_link_set_name(change, w->name);
	}
	if (w->mtu)
		rtnl_link_set_mtu(change, w->mtu);
	if (w->up)
		rtnl_link_set_flags(change, IFF_UP);
	else
		rtnl_link_unset_flags(change, IFF_UP);
	rc = rtnl_link_change(sk, link, change, 0);
	if (rc < 0)
		return nl_fail(err, rc, "interface \"%s\": rename, mtu or up",
			       w->name);
	return iface_addrs(sk, *ifindex, w, err);
}

/* ------------------------------------------------------------------ */
/* Routes                                                              */

/* Ours to replace: the main table's unicast routes, except the ones the
 * kernel makes for an address's subnet. */
static bool route_ours(struct rtnl_route *r)
{
	return rtnl_route_get_table(r) == RT_TABLE_MAIN &&
	       rtnl_route_get_type(r) == RTN_UNICAST &&
	       rtnl_route_get_protocol(r) != RTPROT_KERNEL &&
	       is_ip(rtnl_route_get_family(r));
}

static bool route_listed(struct rtnl_route *r)
{
	return rtnl_route_get_table(r) == RT_TABLE_MAIN &&
	       rtnl_route_get_type(r) == RTN_UNICAST &&
	       is_ip(rtnl_route_get_family(r));
}

static int route_add(struct nl_sock *sk, const struct net_route *nr,
		     int idx, size_t i, struct husk_err **err)
{
	cleanup_nlobj struct rtnl_route *r = rtnl_route_alloc();
	cleanup_nladdr struct nl_addr *dst = NULL;
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct net_addr def = { .family = nr->family };
	int rc;

	if (!r || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		return husk_error_sys(err, ENOMEM, "routes[%zu]", i);
	}
	rtnl_route_set_family(r, (uint8_t)nr->family);
	rtnl_route_set_table(r, RT_TABLE_MAIN);
	rtnl_route_set_protocol(r, RTPROT_BOOT);
	rtnl_route_set_type(r, RTN_UNICAST);
	rtnl_route_set_scope(r, (uint8_t)(nr->scope >= 0 ? nr->scope :
				 nr->has_gw ? RT_SCOPE_UNIVERSE :
				 RT_SCOPE_LINK));
	dst = addr_build(nr->is_default ? &def : &nr->dest);
	rtnl_route_nh_set_ifindex(nh, idx);
	if (nr->has_gw) {
		cleanup_nladdr struct nl_addr *gw = addr_build(&nr->gw);

		if (gw)
			rtnl_route_nh_set_gateway(nh, gw);
	}
	rtnl_route_add_nexthop(r, nh);
	if (!dst)
		return husk_error_sys(err, ENOMEM, "routes[%zu]", i);
	rc = rtnl_route_set_dst(r, dst);
	if (rc == 0 && nr->has_src) {
		cleanup_nladdr struct nl_addr *src = addr_build(&nr->src);

		rc = src ? rtnl_route_set_pref_src(r, src) : -NLE_NOMEM;
	}
	if (rc == 0)
		rc = rtnl_route_add(sk, r, NLM_F_REPLACE);
	if (rc < 0)
		return nl_fail(err, rc, "routes[%zu]: add", i);
	return 0;
}

int routes_apply(struct nl_sock *sk, const struct net_route *v,
		 size_t n, struct husk_err **err)
{
	cleanup_cache struct nl_cache *links = NULL, *routes = NULL;
	cleanup_free int *idx = husk_xcalloc(n + 1, sizeof(*idx));
	int rc;

	rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc < 0)
		return nl_fail(err, rc, "routes: list links");
	/* Every device must exist before anything is removed. */
	for (size_t i = 0; i < n; i++) {
		idx[i] = rtnl_link_name2i(links, v[i].device);
		if (idx[i] <= 0)
			return husk_error(err, HUSK_E_NOT_FOUND,
					  "routes[%zu].device: no interface \"%s\"",
					  i, v[i].device);
	}
	rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes);
	if (rc < 0)
		return nl_fail(err, rc, "routes: list");
	for (struct nl_object *o = nl_cache_get_first(routes); o;
	     o = nl_cache_get_next(o)) {
		if (!route_ours((struct rtnl_route *)o))
			continue;
		rc = rtnl_route_delete(sk, (struct rtnl_route *)o, 0);
		if (rc < 0 && rc != -NLE_OBJ_NOTFOUND)
			return nl_fail(err, rc, "routes: remove an old route");
	}
	/* A gateway must be reachable when its route goes in: device
	 * routes first. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++)
			if (v[i].has_gw == (pass == 1) &&
			    route_add(sk, &v[i], idx[i], i, err) < 0)
				return -1;
	return 0;
}

/* {dest, gateway?, device, source?, scope} */
static void pack_route(msgpack_packer *pk, struct rtnl_route *r,
		       struct nl_cache *links)
{
	struct rtnl_nexthop *nh = rtnl_route_get_nnexthops(r) > 0 ?
				  rtnl_route_nexthop_n(r, 0) : NULL;
	struct nl_addr *dst = rtnl_route_get_dst(r);
	struct nl_addr *gw = nh ? rtnl_route_nh_get_gateway(nh) : NULL;
	struct nl_addr *src = rtnl_route_get_pref_src(r);
	char dev[IFNAMSIZ] = "";

	if (nh && !rtnl_link_i2name(links, rtnl_route_nh_get_ifindex(nh), dev,
				    sizeof(dev)))
		dev[0] = '\0';
	msgpack_pack_map(pk, 3 + (gw != NULL) + (src != NULL));
	ipc_pack_key(pk, "dest");
	if (!dst || nl_addr_get_prefixlen(dst) == 0)
		ipc_pack_str(pk, "default");
	else
		pack_nladdr(pk, dst, true);
	if (gw) {
		ipc_pack_key(pk, "gateway");
		pack_nladdr(pk, gw, false);
	}
	ipc_pack_kv_str(pk, "device", dev);
	if (src) {
		ipc_pack_key(pk, "source");
		pack_nladdr(pk, src, false);
	}
	ipc_pack_kv_uint(pk, "scope", rtnl_route_get_scope(r));
}

/* ------------------------------------------------------------------ */
/* Handlers                                                            */

/* In host mode these would rewire the host's network. */
static int net_refused(struct agent *a, struct ipc_msg *m,
		       struct husk_err **err)
{
	if (!a->host_mode || a->net_ok)
		return 0;
	return husk_error(err, HUSK_E_PERMISSION,
			  "%s: refused in host mode (it would change the host's network; run the agent in its own network namespace with net_ok)",
			  m->method);
}

/* list_interfaces' result: {interfaces: [...]} */
void pack_interfaces(msgpack_packer *pk, struct nl_cache *links,
		     struct nl_cache *addrs)
{
	msgpack_pack_map(pk, 1);
	ipc_pack_key(pk, "interfaces");
	msgpack_pack_array(pk, (uint32_t)nl_cache_nitems(links));
	for (struct nl_object *o = nl_cache_get_first(links); o;
	     o = nl_cache_get_next(o))
		pack_iface(pk, (struct rtnl_link *)o, addrs);
}

/* list_routes' and update_routes' result: {routes: [...]}, the routes
 * route_listed keeps. */
void pack_routes(msgpack_packer *pk, struct nl_cache *routes,
		 struct nl_cache *links)
{
	uint32_t n = 0;

	for (struct nl_object *o = nl_cache_get_first(routes); o;
	     o = nl_cache_get_next(o))
		n += route_listed((struct rtnl_route *)o);
	msgpack_pack_map(pk, 1);
	ipc_pack_key(pk, "routes");
	msgpack_pack_array(pk, n);
	for (struct nl_object *o = nl_cache_get_first(routes); o;
	     o = nl_cache_get_next(o))
		if (route_listed((struct rtnl_route *)o))
			pack_route(pk, (struct rtnl_route *)o, links);
}

int snapshot(struct nl_sock *sk, struct nl_cache **links,
	     struct nl_cache **addrs, struct nl_cache **routes,
	     struct husk_err **err)
{
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, links);

	if (rc == 0 && addrs)
		rc = rtnl_addr_alloc_cache(sk, addrs);
	if (rc == 0 && routes)
		rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, routes);
	if (rc < 0)
		return nl_fail(err, rc, "netlink dump");
	return 0;
}

int agent_m_update_interface(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_cache struct nl_cache *links = NULL, *addrs = NULL;
	struct net_iface w;
	struct rtnl_link *l;
	msgpack_packer *pk;
	int idx = 0, rc;

	if (net_refused(arg, m, err) < 0 ||
	    net_iface_decode(m->params, &w, err) < 0)
		return -1;
	rc = !(sk = nl_open(err)) || iface_apply(sk, &w, &idx, err) < 0 ||
	     snapshot(sk, &links, &addrs, NULL, err) < 0 ? -1 : 0;
	net_iface_free(&w);
	if (rc < 0)
		return -1;
	l = rtnl_link_get(links, idx);
	if (!l)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "interface: gone while being configured");
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_key(pk, "interface");
	pack_iface(pk, l, addrs);
	rtnl_link_put(l);
	ipc_reply_send(c);
	return 0;
}

int agent_m_list_interfaces(struct ipc_conn *c, struct ipc_msg *m,
			    void *params, void *arg, struct husk_err **err)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_cache struct nl_cache *links = NULL, *addrs = NULL;

	if (net_refused(arg, m, err) < 0 || !(sk = nl_open(err)) ||
	    snapshot(sk, &links, &addrs, NULL, err) < 0)
		return -1;
	pack_interfaces(ipc_reply_begin(c, m->msgid), links, addrs);
	ipc_reply_send(c);
	return 0;
}

static int reply_routes(struct ipc_conn *c, struct ipc_msg *m,
			struct nl_sock *sk, struct husk_err **err)
{
	cleanup_cache struct nl_cache *links = NULL, *routes = NULL;

	if (snapshot(sk, &links, NULL, &routes, err) < 0)
		return -1;
	pack_routes(ipc_reply_begin(c, m->msgid), routes, links);
	ipc_reply_send(c);
	return 0;
}

int agent_m_update_routes(struct ipc_conn *c, struct ipc_msg *m,
			  void *params, void *arg, struct husk_err **err)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_free struct net_route *v = NULL;
	size_t n = 0;

	if (net_refused(arg, m, err) < 0 ||
	    net_routes_decode(m->params, &v, &n, err) < 0 ||
	    !(sk = nl_open(err)) || routes_apply(sk, v, n, err) < 0)
		return -1;
	return reply_routes(c, m, sk, err);
}

int agent_m_list_routes(struct ipc_conn *c, struct ipc_msg *m, void *params,
			void *arg, struct husk_err **err)
{
	cleanup_sock struct nl_sock *sk = NULL;

	if (net_refused(arg, m, err) < 0 || !(sk = nl_open(err)))
		return -1;
	return reply_routes(c, m, sk, err);
}
