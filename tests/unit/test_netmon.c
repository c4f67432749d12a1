/*
 * husk-netmon: rtnetlink notification -> which kind of sync it asks
 * for (nm_classify).  Linked with build/lib/libnetmon.a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "netmon/netmon.h"

struct msgbuf {
	char b[1024];
	size_t len;
};

static struct nlmsghdr *add(struct msgbuf *m, int type, const void *body,
			    size_t blen)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(m->b + m->len);

	memset(h, 0, NLMSG_SPACE(blen));
	h->nlmsg_type = (uint16_t)type;
	h->nlmsg_len = (uint32_t)NLMSG_LENGTH(blen);
	memcpy(NLMSG_DATA(h), body, blen);
	m->len += NLMSG_ALIGN(h->nlmsg_len);
	return h;
}

static void add_attr(struct msgbuf *m, struct nlmsghdr *h, int type,
		     const void *data, size_t n)
{
	struct rtattr *a = (struct rtattr *)((char *)h +
					     NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = (unsigned short)type;
	a->rta_len = (unsigned short)RTA_LENGTH(n);
	memcpy(RTA_DATA(a), data, n);
	m->len -= NLMSG_ALIGN(h->nlmsg_len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
	m->len += NLMSG_ALIGN(h->nlmsg_len);
}

static unsigned link_msg(int type, unsigned flags, const char *name)
{
	struct msgbuf m = { .len = 0 };
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = flags };
	struct nlmsghdr *h = add(&m, type, &ifi, sizeof(ifi));

	if (name)
		add_attr(&m, h, IFLA_IFNAME, name, strlen(name) + 1);
	return nm_classify(m.b, m.len);
}

static void test_links(void **state)
{
	assert_int_equal(link_msg(RTM_NEWLINK, IFF_UP, "eth1"), NM_LINK);
	assert_int_equal(link_msg(RTM_DELLINK, IFF_UP, "eth1"),
			 NM_LINK | NM_ROUTE);
	assert_int_equal(link_msg(RTM_NEWLINK, IFF_UP, NULL), NM_LINK);
	/* lo and husk's own taps never matter */
	assert_int_equal(link_msg(RTM_NEWLINK, IFF_UP | IFF_LOOPBACK, "lo"),
			 0);
	assert_int_equal(link_msg(RTM_NEWLINK, IFF_UP, "tap0_husk"), 0);
	assert_int_equal(link_msg(RTM_DELLINK, 0, "tap12_husk"), 0);
	/* a name that only looks like a tap's */
	assert_int_equal(link_msg(RTM_NEWLINK, 0, "_husk"), NM_LINK);
}

static unsigned addr_msg(int type, int family, int scope)
{
	struct msgbuf m = { .len = 0 };
	struct ifaddrmsg ifa = { .ifa_family = (uint8_t)family,
				 .ifa_scope = (uint8_t)scope,
				 .ifa_prefixlen = 24, .ifa_index = 2 };

	add(&m, type, &ifa, sizeof(ifa));
	return nm_classify(m.b, m.len);
}

static void test_addresses(void **state)
{
	assert_int_equal(addr_msg(RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE),
			 NM_ADDR | NM_ROUTE);
	assert_int_equal(addr_msg(RTM_DELADDR, AF_INET6, RT_SCOPE_UNIVERSE),
			 NM_ADDR | NM_ROUTE);
	assert_int_equal(addr_msg(RTM_NEWADDR, AF_INET6, RT_SCOPE_LINK), 0);
	assert_int_equal(addr_msg(RTM_NEWADDR, AF_INET, RT_SCOPE_HOST), 0);
}

static unsigned route_msg(int type, int table, int rtype)
{
	struct msgbuf m = { .len = 0 };
	struct rtmsg rt = { .rtm_family = AF_INET, .rtm_table = (uint8_t)table,
			    .rtm_type = (uint8_t)rtype };

	add(&m, type, &rt, sizeof(rt));
	return nm_classify(m.b, m.len);
}

static void test_routes(void **state)
{
	assert_int_equal(route_msg(RTM_NEWROUTE, RT_TABLE_MAIN, RTN_UNICAST),
			 NM_ROUTE);
	assert_int_equal(route_msg(RTM_DELROUTE, RT_TABLE_MAIN, RTN_UNICAST),
			 NM_ROUTE);
	assert_int_equal(route_msg(RTM_NEWROUTE, RT_TABLE_LOCAL, RTN_LOCAL), 0);
	assert_int_equal(route_msg(RTM_NEWROUTE, RT_TABLE_MAIN, RTN_MULTICAST),
			 0);
}

static void test_batch_and_garbage(void **state)
{
	struct msgbuf m = { .len = 0 };
	struct ifinfomsg ifi = { 0 };
	struct rtmsg rt = { .rtm_table = RT_TABLE_MAIN,
			    .rtm_type = RTN_UNICAST };
	struct nlmsghdr *h;

	add(&m, RTM_NEWLINK, &ifi, sizeof(ifi));
	add(&m, RTM_NEWROUTE, &rt, sizeof(rt));
	assert_int_equal(nm_classify(m.b, m.len), NM_LINK | NM_ROUTE);
	/* truncated: the walk stops, what came before counts */
	assert_int_equal(nm_classify(m.b, m.len - 4), NM_LINK);
	/* a header claiming more than there is */
	h = (struct nlmsghdr *)m.b;
	h->nlmsg_len = 100000;
	assert_int_equal(nm_classify(m.b, m.len), 0);
	/* a body shorter than its header type needs */
	h->nlmsg_len = NLMSG_LENGTH(2);
	h->nlmsg_type = RTM_NEWADDR;
	assert_int_equal(nm_classify(m.b, NLMSG_ALIGN(h->nlmsg_len)), 0);
	/* an IFLA_IFNAME longer than IFNAMSIZ is not a name */
	{
		struct msgbuf m2 = { .len = 0 };
		char longname[40];

		memset(longname, 'a', sizeof(longname));
		memcpy(longname + 30, "_husk", 6);
		h = add(&m2, RTM_NEWLINK, &ifi, sizeof(ifi));
		add_attr(&m2, h, IFLA_IFNAME, longname, 36);
		assert_int_equal(nm_classify(m2.b, m2.len), NM_LINK);
	}
	/* overrun: everything */
	{
		struct msgbuf m3 = { .len = 0 };
		struct nlmsgerr ne = { .error = -ENOBUFS };

		add(&m3, NLMSG_ERROR, &ne, sizeof(ne));
		assert_int_equal(nm_classify(m3.b, m3.len), NM_ALL);
	}
	assert_int_equal(nm_classify(NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_batch_and_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
