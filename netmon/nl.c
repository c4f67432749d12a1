/*
 * rtnetlink for husk-netmon: the notification socket, and the one
 * decoder of what comes through it.  The kernel is the only sender
 * (the socket checks nl_pid 0), but the walk is bounded and checked as
 * if it were not: a bad length ends it.
 */
#include <errno.h>
#include <string.h>

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "libhusk/nettc.h"
#include "netmon/netmon.h"

/* IFLA_IFNAME of an RTM_*LINK message, NUL-terminated into name; false
 * when it has none. */
static bool link_name(const struct nlmsghdr *h, char name[IFNAMSIZ])
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	/* int: RTA_NEXT goes below zero on an unaligned last attribute,
	 * where RTA_OK then stops. */
	int left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	const struct rtattr *a = IFLA_RTA(ifi);

	for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		size_t n = RTA_PAYLOAD(a);

		if (a->rta_type != IFLA_IFNAME)
			continue;
		if (n == 0 || n > IFNAMSIZ)
			return false;
		memcpy(name, RTA_DATA(a), n);
		name[n - 1] = '\0';
		return true;
	}
	return false;
}

static unsigned classify_one(const struct nlmsghdr *h)
{
	char name[IFNAMSIZ];

	switch (h->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK: {
		const struct ifinfomsg *ifi = NLMSG_DATA(h);

		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
			return 0;
		if (ifi->ifi_flags & IFF_LOOPBACK)
			return 0;
		if (link_name(h, name) && husk_net_is_tap(name))
			return 0;
		/* A link's addresses and routes go with it. */
		return NM_LINK | (h->nlmsg_type == RTM_DELLINK ? NM_ROUTE : 0);
	}
	case RTM_NEWADDR:
	case RTM_DELADDR: {
		const struct ifaddrmsg *ifa = NLMSG_DATA(h);

		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
			return 0;
		/* The guest makes its own link-local addresses. */
		if (ifa->ifa_scope == RT_SCOPE_HOST ||
		    (ifa->ifa_family == AF_INET6 &&
		     ifa->ifa_scope == RT_SCOPE_LINK))
			return 0;
		/* Link routes come and go with addresses. */
		return NM_ADDR | NM_ROUTE;
	}
	case RTM_NEWROUTE:
	case RTM_DELROUTE: {
		const struct rtmsg *rt = NLMSG_DATA(h);

		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rt)))
			return 0;
		if (rt->rtm_table != RT_TABLE_MAIN ||
		    rt->rtm_type != RTN_UNICAST)
			return 0;
		return NM_ROUTE;
	}
	case NLMSG_ERROR:
	case NLMSG_OVERRUN:
		return NM_ALL;
	}
	return 0;
}

unsigned nm_classify(const void *buf, size_t len)
{
	const char *p = buf;
	unsigned what = 0;

	/* Each message must fit whole in what is left; the walk stops at
	 * the first one that does not (NLMSG_NEXT would step past the end
	 * of an unaligned last message). */
	while (len >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)p;
		size_t step = NLMSG_ALIGN(h->nlmsg_len);

		if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len)
			break;
		what |= classify_one(h);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return what;
}

int nm_nl_open(struct nl_sock **events, struct nl_sock **dumps,
	       struct husk_err **err)
{
	int rc;

	*events = nl_socket_alloc();
	*dumps = nl_socket_alloc();
	if (!*events || !*dumps)
		return husk_error(err, HUSK_E_SYSTEM, "nl_socket_alloc");
	nl_socket_disable_seq_check(*events);
	rc = nl_connect(*events, NETLINK_ROUTE);
	if (rc >= 0)
		rc = nl_socket_add_memberships(*events, RTNLGRP_LINK,
					       RTNLGRP_IPV4_IFADDR,
					       RTNLGRP_IPV6_IFADDR,
					       RTNLGRP_IPV4_ROUTE,
					       RTNLGRP_IPV6_ROUTE, 0);
	if (rc >= 0)
		rc = nl_socket_set_nonblocking(*events);
	if (rc >= 0)
		rc = nl_connect(*dumps, NETLINK_ROUTE);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "rtnetlink: %s",
				  nl_geterror(rc));
	return 0;
}
