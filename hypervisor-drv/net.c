/*
 * The sandbox's links, mirrored into the VM (docs/network.md).  The
 * driver runs in the sandbox's network namespace; for each link asked
 * for it makes a tap (tap<N>_husk), redirects the link's ingress to the
 * tap and the tap's to the link with tc mirred filters, and hot-plugs
 * the tap as a virtio-net device with the link's MAC and MTU.  All of it
 * goes when the link is detached or the VM stops.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "hv.h"
#include "methods.h"
#include "libhusk/cleanup.h"
#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/nettc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#define HV_MAX_LINKS 16

enum { L_FREE = 0, L_ATTACHING, L_ATTACHED, L_DETACHING };

struct hv_link {
	int state;
	char name[IFNAMSIZ], tap[IFNAMSIZ];
	char mac[18];
	uint32_t mtu;
	int ifindex, tap_ifindex;
	struct ipc_conn *c;     /* the request being answered */
	uint32_t msgid;
};

static struct {
	struct nl_sock *sk;
	struct hv_link links[HV_MAX_LINKS];
	unsigned next_tap;
} net;

/* The rtnetlink socket is opened before confinement and kept; the
 * profile keeps CAP_NET_ADMIN for what goes through it. */
void hv_net_init(struct ev_loop *loop)
{
	int rc;

	net.sk = nl_socket_alloc();
	if (!net.sk)
		husk_daemon_fatal(HUSK_EXIT_SYSTEM, "hv_net_init: no memory");
	rc = nl_connect(net.sk, NETLINK_ROUTE);
	if (rc < 0) {
		log_warnx("rtnetlink: %s (no networking)",
			  nl_geterror(rc));
		nl_socket_free(net.sk);
		net.sk = NULL;
	}
}

static struct hv_link *link_find(const char *name)
{
	for (int i = 0; i < HV_MAX_LINKS; i++)
		if (net.links[i].state != L_FREE &&
		    !strcmp(net.links[i].name, name))
			return &net.links[i];
	return NULL;
}

static const char *link_tap(int ifindex)
{
	for (int i = 0; i < HV_MAX_LINKS; i++)
		if (net.links[i].state == L_ATTACHED &&
		    net.links[i].ifindex == ifindex)
			return net.links[i].tap;
	return NULL;
}

static void link_undo(struct hv_link *l)
{
	if (l->ifindex > 0)
		husk_tc_unredirect(net.sk, l->ifindex);
	if (l->tap[0])
		husk_link_delete(net.sk, l->tap);
}

static void link_release(struct hv_link *l)
{
	if (l->c)
		ipc_conn_unref(l->c);
	memset(l, 0, sizeof(*l));
}

/* [{address, prefix_len}] of ifindex; IPv6 link-local addresses are the
 * guest kernel's to make. */
static void pack_addresses(msgpack_packer *pk, struct nl_cache *addrs,
			   int ifindex)
{
	struct nl_object *o;
	uint32_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			msgpack_pack_array(pk, n);
		for (o = nl_cache_get_first(addrs); o;
		     o = nl_cache_get_next(o)) {
			struct rtnl_addr *a = (struct rtnl_addr *)o;
			struct nl_addr *local = rtnl_addr_get_local(a);
			char buf[INET6_ADDRSTRLEN];
			int fam = rtnl_addr_get_family(a);

			if (rtnl_addr_get_ifindex(a) != ifindex || !local ||
			    (fam != AF_INET && fam != AF_INET6) ||
			    (fam == AF_INET6 &&
			     rtnl_addr_get_scope(a) == RT_SCOPE_LINK))
				continue;
			if (!pass) {
				n++;
				continue;
			}
			inet_ntop(fam, nl_addr_get_binary_addr(local), buf,
				  sizeof(buf));
			msgpack_pack_map(pk, 2);
			ipc_pack_kv_str(pk, "address", buf);
			ipc_pack_kv_uint(pk, "prefix_len",
					 (uint64_t)rtnl_addr_get_prefixlen(a));
		}
	}
}

static void mac_str(struct rtnl_link *l, char out[18])
{
	struct nl_addr *a = rtnl_link_get_addr(l);
	const unsigned char *b;

	out[0] = '\0';
	if (!a || nl_addr_get_len(a) != 6)
		return;
	b = nl_addr_get_binary_addr(a);
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2],
		 b[3], b[4], b[5]);
}

/* {name, mac, mtu, addresses, tap} */
static void pack_link(msgpack_packer *pk, const struct hv_link *l)
{
	struct nl_cache *addrs = NULL;

	msgpack_pack_map(pk, 5);
	ipc_pack_kv_str(pk, "name", l->name);
	ipc_pack_kv_str(pk, "mac", l->mac);
	ipc_pack_kv_uint(pk, "mtu", l->mtu);
	ipc_pack_key(pk, "addresses");
	if (rtnl_addr_alloc_cache(net.sk, &addrs) < 0) {
		msgpack_pack_array(pk, 0);
	} else {
		pack_addresses(pk, addrs, l->ifindex);
		nl_cache_free(addrs);
	}
	ipc_pack_kv_str(pk, "tap", l->tap);
}

/* A tap, up with the link's MTU; returns its descriptor.  tun: a
 * /dev/net/tun the caller opened in the links' namespace (a tap is made
 * in the namespace /dev/net/tun was opened in), taken; -1: ours. */
static int tap_open(struct hv_link *l, int tun, struct husk_err **err)
{
	struct rtnl_link *tl = NULL, *chg = NULL;
	struct ifreq ifr = { 0 };
	cleanup_close int fd = tun;
	int rc;

	snprintf(l->tap, sizeof(l->tap), "tap%u%s", net.next_tap++,
		 HUSK_TAP_SUFFIX);
	if (fd < 0)
		fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open /dev/net/tun");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", l->tap);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rc = errno;
		l->tap[0] = '\0';
		return husk_error_sys(err, rc, "create tap %s", ifr.ifr_name);
	}
	rc = rtnl_link_get_kernel(net.sk, 0, l->tap, &tl);
	if (rc >= 0 && !(chg = rtnl_link_alloc()))
		rc = -NLE_NOMEM;
	if (rc >= 0) {
		l->tap_ifindex = rtnl_link_get_ifindex(tl);
		rtnl_link_set_mtu(chg, l->mtu);
		rtnl_link_set_flags(chg, IFF_UP);
		rc = rtnl_link_change(net.sk, tl, chg, 0);
	}
	if (tl)
		rtnl_link_put(tl);
	if (chg)
		rtnl_link_put(chg);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "bring tap %s up with "
				  "MTU %u: %s", l->tap, l->mtu,
				  nl_geterror(rc));
	return husk_steal_fd(fd);
}

static void attach_done(void *arg, const struct husk_err *e)
{
	struct hv_link *l = arg;
	msgpack_packer *pk;

	if (e) {
		log_warnx("%s: %s", l->name, e->msg);
		link_undo(l);
		if (!ipc_conn_closed(l->c))
			ipc_reply_err(l->c, l->msgid, e);
		link_release(l);
		return;
	}
	l->state = L_ATTACHED;
	log_info("%s (%s, mtu %u) through %s", l->name, l->mac,
		 l->mtu, l->tap);
	if (!ipc_conn_closed(l->c)) {
		pk = ipc_reply_begin(l->c, l->msgid);
		pack_link(pk, l);
		ipc_reply_send(l->c);
	}
	ipc_conn_unref(l->c);
	l->c = NULL;
}

const struct ipc_field hv_name_fields[] = {
	{ "name", IPC_F_STR, IPC_REQUIRED, offsetof(struct name_params, name),
	  1, IFNAMSIZ - 1 },
	{ NULL },
};

/* Which links can be mirrored: Ethernet-like ones other than husk's
 * taps (veth, macvlan, ...; not lo, tunnels or the like). */
static int link_eligible(struct rtnl_link *rl, const char *name,
			 struct husk_err **err)
{
	if (husk_net_is_tap(name))
		return husk_error(err, HUSK_E_INVALID, "params.name: %s is one "
				  "of husk's taps", name);
	if (rtnl_link_get_arptype(rl) != ARPHRD_ETHER)
		return husk_error(err, HUSK_E_INVALID, "params.name: %s is not "
				  "an Ethernet link (type %u)", name,
				  rtnl_link_get_arptype(rl));
	return 0;
}

int hv_m_net_attach(struct ipc_conn *c, struct ipc_msg *m, void *params,
		    void *arg, struct husk_err **err)
{
	const struct name_params *p = params;
	struct rtnl_link *rl = NULL;
	struct hv_link *l = NULL;
	int rc, fd, tun = -1;
	bool cold;

	if (m->nfds > 1)
		return husk_error(err, HUSK_E_INVALID, "net_attach: at most "
				  "one descriptor, a /dev/net/tun (%d came)",
				  m->nfds);
	if (m->nfds == 1)
		tun = ipc_msg_take_fd(m, 0);
	if (!net.sk) {
		husk_error(err, HUSK_E_UNAVAILABLE, "net_attach: no rtnetlink "
			   "socket (see the driver's log)");
		goto out;
	}
	/* Before QEMU starts, the tap goes on its command line. */
	cold = hv_before_start();
	if (!cold && hv_hotplug_check("net_attach", err) < 0)
		goto out;
	if (link_find(p->name)) {
		husk_error(err, HUSK_E_EXISTS, "params.name: %s is attached "
			   "already", p->name);
		goto out;
	}
	rc = rtnl_link_get_kernel(net.sk, 0, p->name, &rl);
	if (rc < 0) {
		husk_error(err, HUSK_E_NOT_FOUND, "params.name: no link %s in "
			   "the sandbox's network namespace (%s)", p->name,
			   nl_geterror(rc));
		goto out;
	}
	if (link_eligible(rl, p->name, err) < 0)
		goto out;
	for (int i = 0; i < HV_MAX_LINKS && !l; i++)
		if (net.links[i].state == L_FREE)
			l = &net.links[i];
	if (!l) {
		husk_error(err, HUSK_E_TOO_LARGE, "net_attach: %d links are "
			   "attached already", HV_MAX_LINKS);
		goto out;
	}
	l->state = L_ATTACHING;
	snprintf(l->name, sizeof(l->name), "%s", p->name);
	l->ifindex = rtnl_link_get_ifindex(rl);
	l->mtu = rtnl_link_get_mtu(rl);
	mac_str(rl, l->mac);
	fd = tap_open(l, tun, err);
	tun = -1;
	if (fd < 0 || husk_tc_redirect(net.sk, l->ifindex, l->tap_ifindex,
				       err) < 0 ||
	    husk_tc_redirect(net.sk, l->tap_ifindex, l->ifindex, err) < 0) {
		if (fd >= 0)
			close(fd);
		link_undo(l);
		link_release(l);
		goto out;
	}
	ipc_conn_ref(c);
	l->c = c;
	l->msgid = m->msgid;
	if (cold) {
		if (hv_coldplug_net(l->tap, l->mac, l->mtu, fd, err) < 0) {
			link_undo(l);
			link_release(l);
			goto out;
		}
		attach_done(l, NULL);
		rtnl_link_put(rl);
		return 0;
	}
	/* The device id is the tap's name: net_detach finds it by that. */
	if (hv_hotplug_net(l->tap, l->mac, l->mtu, fd, attach_done, l,
			   err) < 0) {
		link_undo(l);
		link_release(l);
		goto out;
	}
	rtnl_link_put(rl);
	return 0;
out:
	if (rl)
		rtnl_link_put(rl);
	if (tun >= 0)
		close(tun);
	return -1;
}

/*
 * The links to mirror live in another namespace than ours: a VM booted
 * ahead by husk-cache, in a namespace of its own, then taken by a
 * sandbox whose namespace was made elsewhere (CNI's;
 * docs/factory-cache.md).  The rtnetlink socket that comes with the
 * request, opened there, replaces ours; each net_attach then brings a
 * /dev/net/tun opened there, so that its tap is made there too.
 */
int hv_m_net_namespace(struct ipc_conn *c, struct ipc_msg *m, void *params,
		       void *arg, struct husk_err **err)
{
	struct nl_sock *sk;
	int fd, rc;

	if (m->nfds != 1)
		return husk_error(err, HUSK_E_INVALID, "net_namespace: one "
				  "rtnetlink socket must come with the request "
				  "(%d did)", m->nfds);
	for (int i = 0; i < HV_MAX_LINKS; i++)
		if (net.links[i].state != L_FREE)
			return husk_error(err, HUSK_E_STATE, "net_namespace: "
					  "%s is attached", net.links[i].name);
	fd = ipc_msg_take_fd(m, 0);
	sk = nl_socket_alloc();
	if (!sk) {
		close(fd);
		return husk_error(err, HUSK_E_SYSTEM, "net_namespace: no "
				  "memory");
	}
	rc = nl_socket_set_fd(sk, NETLINK_ROUTE, fd);
	if (rc < 0) {
		nl_socket_free(sk);
		close(fd);
		return husk_error(err, HUSK_E_INVALID, "net_namespace: not an "
				  "rtnetlink socket: %s", nl_geterror(rc));
	}
	if (net.sk)
		nl_socket_free(net.sk);
	net.sk = sk;
	log_info("links from now on in the namespace of the socket given "
		 "(pid %d)", (int)ipc_conn_peer_pid(c));
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static void detach_done(void *arg, const struct husk_err *e)
{
	struct hv_link *l = arg;

	if (e)
		log_warnx("%s: unplug: %s (tap and filters go "
			  "anyway)", l->name, e->msg);
	link_undo(l);
	log_info("%s (%s) gone", l->name, l->tap);
	if (l->c && !ipc_conn_closed(l->c))
		ipc_reply_ok(l->c, l->msgid);
	link_release(l);
}

int hv_m_net_detach(struct ipc_conn *c, struct ipc_msg *m, void *params,
		    void *arg, struct husk_err **err)
{
	const struct name_params *p = params;
	struct husk_err *e = NULL;
	struct hv_link *l = link_find(p->name);

	if (!l || l->state != L_ATTACHED)
		return husk_error(err, l ? HUSK_E_STATE : HUSK_E_NOT_FOUND,
				  "params.name: %s is not attached%s",
				  l ? l->name : "the link",
				  l ? " (being changed)" : "");
	l->state = L_DETACHING;
	ipc_conn_ref(c);
	l->c = c;
	l->msgid = m->msgid;
	/* QEMU not started: off its command line, nothing to unplug. */
	if (hv_before_start()) {
		hv_coldplug_drop(l->tap);
		detach_done(l, NULL);
		return 0;
	}
	if (hv_unplug_net(l->tap, detach_done, l, &e) < 0) {
		/* No VM to unplug from: the rest still goes. */
		detach_done(l, e);
		husk_err_free(e);
	}
	return 0;
}

/* [{name, mac, mtu, up, running, addresses, tap?}] of every link but
 * lo and husk's taps. */
int hv_m_net_list(struct ipc_conn *c, struct ipc_msg *m, void *params,
		  void *arg, struct husk_err **err)
{
	struct nl_cache *links = NULL, *addrs = NULL;
	struct nl_object *o;
	msgpack_packer *pk;
	uint32_t n = 0;
	int rc;

	if (!net.sk)
		return husk_error(err, HUSK_E_UNAVAILABLE, "net_list: no "
				  "rtnetlink socket");
	rc = rtnl_link_alloc_cache(net.sk, AF_UNSPEC, &links);
	if (rc >= 0)
		rc = rtnl_addr_alloc_cache(net.sk, &addrs);
	if (rc < 0) {
		if (links)
			nl_cache_free(links);
		return husk_error(err, HUSK_E_SYSTEM, "net_list: %s",
				  nl_geterror(rc));
	}
	for (o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		const char *name = rtnl_link_get_name(l);

		n += name && !(rtnl_link_get_flags(l) & IFF_LOOPBACK) &&
		     !husk_net_is_tap(name);
	}
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_key(pk, "links");
	msgpack_pack_array(pk, n);
	for (o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		const char *name = rtnl_link_get_name(l);
		unsigned flags = rtnl_link_get_flags(l);
		const char *tap = link_tap(rtnl_link_get_ifindex(l));
		char mac[18];

		if (!name || (flags & IFF_LOOPBACK) || husk_net_is_tap(name))
			continue;
		mac_str(l, mac);
		msgpack_pack_map(pk, 7 + (tap != NULL));
		ipc_pack_kv_str(pk, "name", name);
		ipc_pack_kv_str(pk, "mac", mac);
		ipc_pack_kv_uint(pk, "mtu", rtnl_link_get_mtu(l));
		ipc_pack_kv_bool(pk, "up", flags & IFF_UP);
		ipc_pack_kv_bool(pk, "running", flags & IFF_RUNNING);
		ipc_pack_kv_bool(pk, "ethernet",
				 rtnl_link_get_arptype(l) == ARPHRD_ETHER);
		ipc_pack_key(pk, "addresses");
		pack_addresses(pk, addrs, rtnl_link_get_ifindex(l));
		if (tap)
			ipc_pack_kv_str(pk, "tap", tap);
	}
	ipc_reply_send(c);
	nl_cache_free(addrs);
	nl_cache_free(links);
	return 0;
}

void hv_net_vm_gone(void)
{
	for (int i = 0; i < HV_MAX_LINKS; i++) {
		struct hv_link *l = &net.links[i];

		/* Links being attached or detached finish in their
		 * callbacks, which the VM's end fails. */
		if (l->state != L_ATTACHED)
			continue;
		link_undo(l);
		log_info("%s: %s and its filters removed",
			 l->name, l->tap);
		link_release(l);
	}
}
