/*
 * The params of update_interface and update_routes: nested maps and
 * arrays (addresses, routes), decoded into agent/net.h's structs, every
 * failure naming its field.  A fuzz target's and the unit tests' entry
 * (tests/unit/test_agent_net.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/net.h"

int net_mac_parse(const char *s, unsigned char mac[6])
{
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]))
			return -1;
		mac[i] = (unsigned char)strtoul((char[]){ s[0], s[1], 0 },
						NULL, 16);
		s += 2;
		if (i < 5 && *s++ != ':')
			return -1;
	}
	return *s ? -1 : 0;
}

int net_addr_parse(const char *s, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = AF_INET;
		a->prefix_len = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		a->family = AF_INET6;
		a->prefix_len = 128;
		return 0;
	}
	return -1;
}

int net_ifname_check(const char *name, const char *what,
		     struct husk_err **err)
{
	size_t n = strlen(name);

	if (n == 0 || n >= IFNAMSIZ)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: expected 1 to %d bytes", what,
				  IFNAMSIZ - 1);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return husk_error(err, HUSK_E_INVALID, "%s: \"%s\" is not a name",
				  what, name);
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: \"%s\" has a character interface names cannot hold",
					  what, name);
	return 0;
}

unsigned net_addr_bytes(int family)
{
	return family == AF_INET ? 4 : 16;
}

static int decode_addr_str(const msgpack_object *o, const char *what,
			   struct net_addr *a, struct husk_err **err)
{
	cleanup_free char *s = NULL;

	if (ipc_obj_str(o, what, INET6_ADDRSTRLEN, &s, err) < 0)
		return -1;
	if (net_addr_parse(s, a) < 0)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: \"%s\" is not an IPv4 or IPv6 address",
				  what, s);
	return 0;
}

/* The value of key in map, or NULL when absent or nil. */
static const msgpack_object *get(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = ipc_map_get(map, key);

	return v && v->type != MSGPACK_OBJECT_NIL ? v : NULL;
}

static int decode_iface_addr(const msgpack_object *o, const char *what,
			     struct net_addr *a, struct husk_err **err)
{
	char w[96];
	uint64_t plen;

	if (ipc_obj_map(o, what, 8, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.address", what);
	if (decode_addr_str(ipc_map_get(o, "address"), w, a, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.prefix_len", what);
	if (ipc_obj_uint(ipc_map_get(o, "prefix_len"), w, a->prefix_len,
			 &plen, err) < 0)
		return -1;
	a->prefix_len = (unsigned)plen;
	return 0;
}

void net_iface_free(struct net_iface *i)
{
	free(i->addrs);
	i->addrs = NULL;
	i->naddrs = 0;
}

int net_iface_decode(const msgpack_object *params, struct net_iface *out,
		     struct husk_err **err)
{
	const msgpack_object *o = ipc_map_get(params, "interface"), *v;
	cleanup_free char *name = NULL, *mac = NULL;
	char w[64];
	uint64_t mtu = 0;
	int n;

	memset(out, 0, sizeof(*out));
	out->up = true;
	if (ipc_obj_map(o, "interface", 16, err) < 0)
		return -1;
	if (ipc_obj_str(ipc_map_get(o, "name"), "interface.name", 64, &name,
			err) < 0 ||
	    net_ifname_check(name, "interface.name", err) < 0)
		return -1;
	snprintf(out->name, sizeof(out->name), "%s", name);
	if (ipc_obj_str(ipc_map_get(o, "mac"), "interface.mac", 32, &mac,
			err) < 0)
		return -1;
	if (net_mac_parse(mac, out->mac) < 0)
		return husk_error(err, HUSK_E_INVALID,
				  "interface.mac: \"%s\" is not a MAC address such as 02:00:00:00:00:01",
				  mac);
	if ((v = get(o, "mtu"))) {
		if (ipc_obj_uint(v, "interface.mtu", 65535, &mtu, err) < 0)
			return -1;
		if (mtu != 0 && mtu < 68)
			return husk_error(err, HUSK_E_INVALID,
					  "interface.mtu: %u is below 68",
					  (unsigned)mtu);
		out->mtu = (uint32_t)mtu;
	}
	if ((v = get(o, "up")) && ipc_obj_bool(v, "interface.up", &out->up,
					       err) < 0)
		return -1;
	if (!(v = get(o, "addresses")))
		return 0;
	n = ipc_obj_array(v, "interface.addresses", NET_MAX_ADDRS, err);
	if (n < 0)
		return -1;
	out->addrs = husk_xcalloc((size_t)n + 1, sizeof(*out->addrs));
	for (int i = 0; i < n; i++) {
		snprintf(w, sizeof(w), "interface.addresses[%d]", i);
		if (decode_iface_addr(&v->via.array.ptr[i], w, &out->addrs[i],
				      err) < 0) {
			net_iface_free(out);
			return -1;
		}
		out->naddrs++;
	}
	return 0;
}

/* "10.0.0.0/8", "fd00::/64", "10.0.0.1" (a host route), "" or
 * "default". */
static int decode_dest(const msgpack_object *o, const char *what,
		       struct net_route *r, struct husk_err **err)
{
	cleanup_free char *s = NULL;
	char *slash;
	long long plen;

	if (ipc_obj_str(o, what, INET6_ADDRSTRLEN + 4, &s, err) < 0)
		return -1;
	if (!*s || strcmp(s, "default") == 0) {
		r->is_default = true;
		return 0;
	}
	slash = strchr(s, '/');
	if (slash)
		*slash = '\0';
	if (net_addr_parse(s, &r->dest) < 0)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: \"%s\" is not an address", what, s);
	if (slash) {
		if (husk_parse_int(slash + 1, 0, r->dest.prefix_len, &plen) < 0)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: bad prefix length \"%s\"", what,
					  slash + 1);
		r->dest.prefix_len = (unsigned)plen;
	}
	if (r->dest.prefix_len == 0)
		r->is_default = true;
	return 0;
}

static int decode_route(const msgpack_object *o, const char *what,
			struct net_route *r, struct husk_err **err)
{
	cleanup_free char *dev = NULL;
	const msgpack_object *v;
	char w[96];
	uint64_t scope;

	memset(r, 0, sizeof(*r));
	r->scope = -1;
	if (ipc_obj_map(o, what, 16, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.dest", what);
	if (decode_dest(ipc_map_get(o, "dest"), w, r, err) < 0)
		return -1;
	if ((v = get(o, "gateway")) && !(v->type == MSGPACK_OBJECT_STR &&
					 v->via.str.size == 0)) {
		snprintf(w, sizeof(w), "%s.gateway", what);
		if (decode_addr_str(v, w, &r->gw, err) < 0)
			return -1;
		r->has_gw = true;
	}
	snprintf(w, sizeof(w), "%s.device", what);
	if (ipc_obj_str(ipc_map_get(o, "device"), w, 64, &dev, err) < 0 ||
	    net_ifname_check(dev, w, err) < 0)
		return -1;
	snprintf(r->device, sizeof(r->device), "%s", dev);
	if ((v = get(o, "source")) && !(v->type == MSGPACK_OBJECT_STR &&
					v->via.str.size == 0)) {
		snprintf(w, sizeof(w), "%s.source", what);
		if (decode_addr_str(v, w, &r->src, err) < 0)
			return -1;
		r->has_src = true;
	}
	if ((v = get(o, "scope"))) {
		snprintf(w, sizeof(w), "%s.scope", what);
		if (ipc_obj_uint(v, w, 255, &scope, err) < 0)
			return -1;
		r->scope = (int)scope;
	}
	/* One family for the whole route. */
	r->family = r->dest.family ? r->dest.family :
		    r->has_gw ? r->gw.family :
		    r->has_src ? r->src.family : AF_INET;
	if ((r->has_gw && r->gw.family != r->family) ||
	    (r->has_src && r->src.family != r->family))
		return husk_error(err, HUSK_E_INVALID,
				  "%s: dest, gateway and source mix IPv4 and IPv6",
				  what);
	if (r->is_default && !r->has_gw && r->scope < 0)
		log_debug("%s: default route without gateway",
			  what);
	return 0;
}

int net_routes_decode(const msgpack_object *params, struct net_route **out,
		      size_t *nout, struct husk_err **err)
{
	const msgpack_object *o = ipc_map_get(params, "routes");
	struct net_route *v;
	char w[64];
	int n;

	n = ipc_obj_array(o, "routes", NET_MAX_ROUTES, err);
	if (n < 0)
		return -1;
	v = husk_xcalloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; i < n; i++) {
		snprintf(w, sizeof(w), "routes[%d]", i);
		if (decode_route(&o->via.array.ptr[i], w, &v[i], err) < 0) {
			free(v);
			return -1;
		}
	}
	*out = v;
	*nout = (size_t)n;
	return 0;
}
