/*
 * Taps and tc mirred filters with libnl-route (see nettc.h).
 */
#include <errno.h>
#include <string.h>

#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>

#include "log.h"
#include "nettc.h"

/* TC_HANDLE(0xffff, 0), spelled out: the macro shifts a signed int. */
#define INGRESS_HANDLE 0xffff0000u

bool husk_net_is_tap(const char *ifname)
{
	size_t n = strlen(ifname), s = strlen(HUSK_TAP_SUFFIX);

	return n > s && !strcmp(ifname + n - s, HUSK_TAP_SUFFIX);
}

static struct rtnl_qdisc *ingress_new(int ifindex)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();

	if (!q)
		return NULL;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	if (rtnl_tc_set_kind(TC_CAST(q), "ingress") < 0) {
		rtnl_qdisc_put(q);
		return NULL;
	}
	return q;
}

int husk_tc_redirect(struct nl_sock *sk, int from, int to,
		     struct husk_err **err)
{
	struct rtnl_qdisc *q = ingress_new(from);
	struct rtnl_cls *cls = NULL;
	struct rtnl_act *act = NULL;
	int rc;

	if (!q)
		return husk_error(err, HUSK_E_SYSTEM, "ingress qdisc: no memory");
	rc = rtnl_qdisc_add(sk, q, NLM_F_CREATE);
	rtnl_qdisc_put(q);
	if (rc < 0 && rc != -NLE_EXIST)
		return husk_error(err, HUSK_E_SYSTEM, "ingress qdisc on link "
				  "%d: %s", from, nl_geterror(rc));
	cls = rtnl_cls_alloc();
	act = rtnl_act_alloc();
	if (!cls || !act) {
		rc = -NLE_NOMEM;
		goto out;
	}
	rtnl_tc_set_ifindex(TC_CAST(cls), from);
	rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
	if ((rc = rtnl_tc_set_kind(TC_CAST(cls), "u32")) < 0)
		goto out;
	rtnl_cls_set_prio(cls, HUSK_TC_PRIO);
	rtnl_cls_set_protocol(cls, ETH_P_ALL);
	/* match u8 0 0: every frame */
	if ((rc = rtnl_u32_add_key_uint8(cls, 0, 0, 0, 0)) < 0)
		goto out;
	/* A u32 node acts only when terminal; else it looks for a link. */
	if ((rc = rtnl_u32_set_cls_terminal(cls)) < 0)
		goto out;
	if ((rc = rtnl_tc_set_kind(TC_CAST(act), "mirred")) < 0)
		goto out;
	rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
	rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
	rtnl_mirred_set_ifindex(act, (uint32_t)to);
	if ((rc = rtnl_u32_add_action(cls, act)) < 0)
		goto out;
	rc = rtnl_cls_add(sk, cls, NLM_F_CREATE | NLM_F_EXCL);
out:
	if (act)
		rtnl_act_put(act);
	if (cls)
		rtnl_cls_put(cls);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "tc filter from link %d "
				  "to %d: %s", from, to, nl_geterror(rc));
	return 0;
}

int husk_tc_unredirect(struct nl_sock *sk, int ifindex)
{
	struct nl_cache *cache = NULL;
	struct nl_object *o;
	int n = 0, others = 0;

	if (rtnl_cls_alloc_cache(sk, ifindex, INGRESS_HANDLE, &cache) < 0)
		return 0;       /* no ingress qdisc, or the link is gone */
	for (o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_cls *c = (struct rtnl_cls *)o;
		int rc;

		if (rtnl_cls_get_prio(c) != HUSK_TC_PRIO) {
			others++;
			continue;
		}
		rc = rtnl_cls_delete(sk, c, 0);
		if (rc < 0 && rc != -NLE_OBJ_NOTFOUND)
			log_warnx("link %d: %s", ifindex,
				  nl_geterror(rc));
		else
			n++;
	}
	nl_cache_free(cache);
	if (!others) {
		struct rtnl_qdisc *q = ingress_new(ifindex);

		if (q) {
			if (rtnl_qdisc_delete(sk, q) == 0)
				n++;
			rtnl_qdisc_put(q);
		}
	}
	return n;
}

int husk_link_delete(struct nl_sock *sk, const char *name)
{
	struct rtnl_link *l = rtnl_link_alloc();
	int rc;

	if (!l)
		return -1;
	rtnl_link_set_name(l, name);
	rc = rtnl_link_delete(sk, l);
	rtnl_link_put(l);
	if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV) {
		log_warnx("%s: %s", name, nl_geterror(rc));
		return -1;
	}
	return 0;
}

int husk_net_scrub(struct nl_sock *sk, struct husk_err **err)
{
	struct nl_cache *links = NULL;
	struct nl_object *o;
	int rc, n = 0;

	rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "list links: %s",
				  nl_geterror(rc));
	for (o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		const char *name = rtnl_link_get_name(l);

		if (name && husk_net_is_tap(name)) {
			if (husk_link_delete(sk, name) == 0)
				n++;
			continue;
		}
		if (rtnl_link_get_flags(l) & IFF_LOOPBACK)
			continue;
		n += husk_tc_unredirect(sk, rtnl_link_get_ifindex(l));
	}
	nl_cache_free(links);
	return n;
}
