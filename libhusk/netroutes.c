/*
 * A network namespace's routes as the agent's update_routes takes them
 * (see netroutes.h): read by the runtime when it sets a sandbox up and
 * by husk-netmon when the namespace changes.
 */
#include <arpa/inet.h>
#include <string.h>

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "nettc.h"
#include "netroutes.h"

static bool in_list(const json_t *names, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(names, i, v)
		if (!strcmp(json_string_value(v) ?: "", name))
			return true;
	return false;
}

static json_t *addr_json(struct nl_addr *a, bool with_prefix)
{
	char buf[INET6_ADDRSTRLEN];
	int fam = nl_addr_get_family(a);

	if ((fam != AF_INET && fam != AF_INET6) ||
	    !inet_ntop(fam, nl_addr_get_binary_addr(a), buf, sizeof(buf)))
		return NULL;
	if (with_prefix)
		return json_sprintf("%s/%u", buf, nl_addr_get_prefixlen(a));
	return json_string(buf);
}

int husk_net_routes(struct nl_sock *sk, const json_t *devices, json_t **out,
		    struct husk_err **err)
{
	struct nl_cache *routes = NULL, *links = NULL;
	struct nl_object *o;
	json_t *arr;
	int rc;

	rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc >= 0)
		rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes);
	if (rc < 0) {
		if (links)
			nl_cache_free(links);
		return husk_error(err, HUSK_E_SYSTEM, "list routes: %s",
				  nl_geterror(rc));
	}
	arr = json_array();
	for (o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh;
		struct nl_addr *dst = rtnl_route_get_dst(r), *gw, *src;
		char dev[IFNAMSIZ];
		json_t *j;

		/* The kernel's link routes come with the addresses. */
		if (rtnl_route_get_table(r) != RT_TABLE_MAIN ||
		    rtnl_route_get_type(r) != RTN_UNICAST ||
		    rtnl_route_get_protocol(r) == RTPROT_KERNEL ||
		    rtnl_route_get_nnexthops(r) != 1)
			continue;
		nh = rtnl_route_nexthop_n(r, 0);
		if (!rtnl_link_i2name(links, rtnl_route_nh_get_ifindex(nh),
				      dev, sizeof(dev)) ||
		    !strcmp(dev, "lo") || husk_net_is_tap(dev) ||
		    (devices && !in_list(devices, dev)))
			continue;
		j = json_object();
		if (!dst || nl_addr_get_prefixlen(dst) == 0)
			json_object_set_new(j, "dest", json_string("default"));
		else
			json_object_set_new(j, "dest", addr_json(dst, true));
		gw = rtnl_route_nh_get_gateway(nh);
		if (gw)
			json_object_set_new(j, "gateway", addr_json(gw, false));
		src = rtnl_route_get_pref_src(r);
		if (src)
			json_object_set_new(j, "source", addr_json(src, false));
		json_object_set_new(j, "device", json_string(dev));
		json_object_set_new(j, "scope",
				    json_integer(rtnl_route_get_scope(r)));
		if (!json_object_get(j, "dest") ||
		    (gw && !json_object_get(j, "gateway")))
			json_decref(j);
		else
			json_array_append_new(arr, j);
	}
	nl_cache_free(routes);
	nl_cache_free(links);
	*out = arr;
	return 0;
}
