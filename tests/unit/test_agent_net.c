/*
 * agent/net.c: params of the network methods, and (as root) the netlink
 * side in a network namespace the test makes for itself.
 *
 * Linked with build/lib/libagent.a (agent/program.mk); the steps the
 * handlers are built from are declared in agent/net.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <sys/wait.h>

#include <netlink/netlink.h>
#include <netlink/cache.h>

#include "libhusk/cleanup.h"
#include "agent/net.h"
#include "tests/unit/agent_testlib.h"

static int setup(void **state)
{
	*state = at_new();
	return 0;
}

static int teardown(void **state)
{
	at_free(*state);
	return 0;
}

static void test_mac(void **state)
{
	unsigned char m[6];
	static const char *const bad[] = {
		"", "02:00:00:00:00", "02:00:00:00:00:0", "02:00:00:00:00:001",
		"02-00-00-00-00-01", "0g:00:00:00:00:01", "02:00:00:00:00:01 ",
	};

	(void)state;
	assert_int_equal(net_mac_parse("02:aB:00:ff:10:01", m), 0);
	assert_int_equal(m[1], 0xab);
	assert_int_equal(m[3], 0xff);
	assert_int_equal(m[5], 0x01);
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++)
		assert_int_equal(net_mac_parse(bad[i], m), -1);
}

static void test_ifname(void **state)
{
	struct at *t = *state;
	static const char *const bad[] = {
		"", "0123456789abcdef", ".", "..", "a/b", "a:1", "a b", "a\tb",
	};

	assert_int_equal(net_ifname_check("eth0", "n", &t->err), 0);
	assert_int_equal(net_ifname_check("0123456789abcde", "n", &t->err), 0);
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(bad); i++) {
		assert_int_equal(net_ifname_check(bad[i], "n", &t->err), -1);
		assert_int_equal(t->err->code, HUSK_E_INVALID);
		husk_err_clear(&t->err);
	}
}

static void test_iface_decode(void **state)
{
	struct at *t = *state;
	struct net_iface w;

	assert_int_equal(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01',"
		" 'mtu': 1400, 'up': false, 'addresses': ["
		"  {'address': '10.0.0.2', 'prefix_len': 24},"
		"  {'address': 'fd00::2', 'prefix_len': 64}]}}"), &w,
		&t->err), 0);
	assert_string_equal(w.name, "eth0");
	assert_int_equal(w.mac[5], 1);
	assert_int_equal(w.mtu, 1400);
	assert_false(w.up);
	assert_int_equal(w.naddrs, 2);
	assert_int_equal(w.addrs[0].family, AF_INET);
	assert_int_equal(w.addrs[0].prefix_len, 24);
	assert_int_equal(w.addrs[1].family, AF_INET6);
	assert_int_equal(w.addrs[1].bytes[15], 2);
	net_iface_free(&w);

	/* The least: name and mac; up by default. */
	assert_int_equal(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01',"
		" 'mtu': null}}"), &w, &t->err), 0);
	assert_true(w.up);
	assert_int_equal(w.mtu, 0);
	assert_int_equal(w.naddrs, 0);
	net_iface_free(&w);
}

static void test_iface_decode_errors(void **state)
{
	struct at *t = *state;
	struct net_iface w;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "{}", "interface: missing" },
		{ "{'interface': []}", "interface: expected a map, got an array" },
		{ "{'interface': {'mac': '02:00:00:00:00:01'}}",
		  "interface.name: missing" },
		{ "{'interface': {'name': 'a-very-long-name', 'mac': '02:00:00:00:00:01'}}",
		  "interface.name: expected 1 to 15 bytes" },
		{ "{'interface': {'name': 'eth0'}}", "interface.mac: missing" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00'}}",
		  "interface.mac: \"02:00\" is not a MAC address such as 02:00:00:00:00:01" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'mtu': 10}}",
		  "interface.mtu: 10 is below 68" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'mtu': 70000}}",
		  "interface.mtu: 70000 is out of range [0, 65535]" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'up': 1}}",
		  "interface.up: expected a boolean, got an integer" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'addresses': [{'address': '10.0.0.300', 'prefix_len': 24}]}}",
		  "interface.addresses[0].address: \"10.0.0.300\" is not an IPv4 or IPv6 address" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'addresses': [{'address': '10.0.0.3', 'prefix_len': 33}]}}",
		  "interface.addresses[0].prefix_len: 33 is out of range [0, 32]" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'addresses': [{'address': 'fd00::1', 'prefix_len': 129}]}}",
		  "interface.addresses[0].prefix_len: 129 is out of range [0, 128]" },
		{ "{'interface': {'name': 'eth0', 'mac': '02:00:00:00:00:01', 'addresses': [{'address': 'fd00::1'}]}}",
		  "interface.addresses[0].prefix_len: missing" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(net_iface_decode(at_json(t, cases[i].json), &w,
						  &t->err), -1);
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
	}
}

static void test_routes_decode(void **state)
{
	struct at *t = *state;
	struct net_route *v = NULL;
	size_t n = 0;

	assert_int_equal(net_routes_decode(at_json(t,
		"{'routes': ["
		" {'dest': 'default', 'gateway': '10.0.0.1', 'device': 'eth0'},"
		" {'dest': '', 'gateway': 'fd00::1', 'device': 'eth0'},"
		" {'dest': '10.0.0.0/24', 'device': 'eth0', 'source': '10.0.0.2',"
		"  'scope': 253},"
		" {'dest': '192.168.1.7', 'device': 'eth0', 'gateway': ''}]}"),
		&v, &n, &t->err), 0);
	assert_int_equal(n, 4);
	assert_true(v[0].is_default && v[0].has_gw);
	assert_int_equal(v[0].family, AF_INET);
	assert_true(v[1].is_default);
	assert_int_equal(v[1].family, AF_INET6);
	assert_false(v[2].is_default);
	assert_int_equal(v[2].dest.prefix_len, 24);
	assert_true(v[2].has_src);
	assert_int_equal(v[2].scope, 253);
	assert_int_equal(v[3].dest.prefix_len, 32);
	assert_false(v[3].has_gw);
	assert_int_equal(v[3].scope, -1);
	free(v);
}

static void test_routes_decode_errors(void **state)
{
	struct at *t = *state;
	struct net_route *v = NULL;
	size_t n = 0;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "{}", "routes: missing" },
		{ "{'routes': [{'dest': 'default', 'gateway': '10.0.0.1'}]}",
		  "routes[0].device: missing" },
		{ "{'routes': [{'gateway': '10.0.0.1', 'device': 'eth0'}]}",
		  "routes[0].dest: missing" },
		{ "{'routes': [{'dest': '10.0.0.0/33', 'device': 'eth0'}]}",
		  "routes[0].dest: bad prefix length \"33\"" },
		{ "{'routes': [{'dest': '10.0.0.0/', 'device': 'eth0'}]}",
		  "routes[0].dest: bad prefix length \"\"" },
		{ "{'routes': [{'dest': 'nowhere', 'device': 'eth0'}]}",
		  "routes[0].dest: \"nowhere\" is not an address" },
		{ "{'routes': [{'dest': 'default', 'gateway': 'fd00::1', 'device': 'eth0', 'source': '10.0.0.2'}]}",
		  "routes[0]: dest, gateway and source mix IPv4 and IPv6" },
		{ "{'routes': [{'dest': '10.0.0.0/8', 'gateway': 'fd00::1', 'device': 'eth0'}]}",
		  "routes[0]: dest, gateway and source mix IPv4 and IPv6" },
		{ "{'routes': [{'dest': 'default', 'device': 'eth0', 'scope': 256}]}",
		  "routes[0].scope: 256 is out of range [0, 255]" },
		{ "{'routes': [{'dest': 'default', 'device': 'e/0'}]}",
		  "routes[0].device: \"e/0\" has a character interface names cannot hold" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(net_routes_decode(at_json(t, cases[i].json), &v,
						   &n, &t->err), -1);
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
	}
}

/* ------------------------------------------------------------------ */
/* Netlink, in a namespace of our own                                  */

#define CHECK(cond, ...)                                                \
	do {                                                            \
		if (!(cond)) {                                          \
			fprintf(stderr, "net child, line %d: ", __LINE__); \
			fprintf(stderr, __VA_ARGS__);                   \
			fprintf(stderr, "\n");                          \
			return 1;                                       \
		}                                                       \
	} while (0)

static const msgpack_object *find_by(const msgpack_object *arr,
				     const char *key, const char *val)
{
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *v = ipc_map_get(&arr->via.array.ptr[i], key);

		if (v && at_str_eq(v, val))
			return &arr->via.array.ptr[i];
	}
	return NULL;
}

static bool has_addr(const msgpack_object *iface, const char *addr,
		     uint64_t plen)
{
	const msgpack_object *a = ipc_map_get(iface, "addresses");

	for (uint32_t i = 0; a && i < a->via.array.size; i++) {
		const msgpack_object *e = &a->via.array.ptr[i];

		if (at_str_eq(ipc_map_get(e, "address"), addr) &&
		    ipc_map_get(e, "prefix_len")->via.u64 == plen)
			return true;
	}
	return false;
}

/* Everything after unshare: returns 0 or the failing line. */
static int net_child(void)
{
	struct at *t = at_new();
	struct nl_sock *sk;
	struct nl_cache *links = NULL, *addrs = NULL, *routes = NULL;
	struct net_iface w;
	struct net_route *rv = NULL;
	const msgpack_object *ifs, *eth, *rts, *def;
	size_t nr = 0;
	int idx = 0;

	CHECK(system("ip link add husk-a type veth peer name husk-b && "
		     "ip link set husk-a address 02:00:00:00:00:42 && "
		     "ip link set husk-b up && ip addr add 192.0.2.9/24 dev husk-a")
	      == 0, "ip link add (veth)");
	sk = nl_open(&t->err);
	CHECK(sk, "nl_open");

	/* Renamed, MTU set, 192.0.2.9 replaced, up. */
	CHECK(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth7', 'mac': '02:00:00:00:00:42',"
		" 'mtu': 1400, 'addresses': ["
		"  {'address': '10.9.0.2', 'prefix_len': 24},"
		"  {'address': '10.9.1.2', 'prefix_len': 24},"
		"  {'address': 'fd00:9::2', 'prefix_len': 64}]}}"), &w,
		&t->err) == 0, "decode");
	CHECK(iface_apply(sk, &w, &idx, &t->err) == 0, "iface_apply: %s",
	      t->err->msg);
	/* Again: nothing to change, nothing fails. */
	CHECK(iface_apply(sk, &w, &idx, &t->err) == 0, "iface_apply 2: %s",
	      t->err->msg);
	net_iface_free(&w);

	/* What list_interfaces answers. */
	CHECK(snapshot(sk, &links, &addrs, NULL, &t->err) == 0, "snapshot");
	pack_interfaces(&t->pk, links, addrs);
	ifs = ipc_map_get(at_obj(t), "interfaces");
	CHECK(ifs && ifs->type == MSGPACK_OBJECT_ARRAY, "no interfaces array");
	eth = find_by(ifs, "name", "eth7");
	CHECK(eth, "no eth7 in list_interfaces");
	CHECK(at_str_eq(ipc_map_get(eth, "mac"), "02:00:00:00:00:42"), "mac");
	CHECK(ipc_map_get(eth, "mtu")->via.u64 == 1400, "mtu");
	CHECK(ipc_map_get(eth, "up")->via.boolean, "up");
	CHECK(has_addr(eth, "10.9.0.2", 24), "10.9.0.2/24");
	CHECK(has_addr(eth, "10.9.1.2", 24), "10.9.1.2/24");
	CHECK(has_addr(eth, "fd00:9::2", 64), "fd00:9::2/64");
	CHECK(!has_addr(eth, "192.0.2.9", 24), "old address kept");
	CHECK(!find_by(ifs, "name", "husk-a"), "old name kept");
	nl_cache_free(links);
	links = NULL;

	/* Unknown MAC: not found. */
	CHECK(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth8', 'mac': '02:00:00:00:00:99'}}"),
		&w, &t->err) == 0, "decode 2");
	CHECK(iface_apply(sk, &w, &idx, &t->err) < 0 &&
	      t->err->code == HUSK_E_NOT_FOUND, "unknown MAC");
	husk_err_clear(&t->err);
	net_iface_free(&w);

	/* NICs at boot with the kernel's names, swapped: the one that
	 * holds the wanted name is moved aside, then gets its own. */
	CHECK(system("ip link add eth8 type veth peer name eth9 && "
		     "ip link set eth8 address 02:00:00:00:00:51 && "
		     "ip link set eth9 address 02:00:00:00:00:52") == 0,
	      "ip link add (eth8/eth9)");
	CHECK(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth9', 'mac': '02:00:00:00:00:51'}}"),
		&w, &t->err) == 0, "decode 3");
	CHECK(iface_apply(sk, &w, &idx, &t->err) == 0, "swap 1: %s",
	      t->err->msg);
	net_iface_free(&w);
	CHECK(net_iface_decode(at_json(t,
		"{'interface': {'name': 'eth8', 'mac': '02:00:00:00:00:52'}}"),
		&w, &t->err) == 0, "decode 4");
	CHECK(iface_apply(sk, &w, &idx, &t->err) == 0, "swap 2: %s",
	      t->err->msg);
	net_iface_free(&w);
	CHECK(system("ip -o link show eth9 | grep -q 02:00:00:00:00:51 && "
		     "ip -o link show eth8 | grep -q 02:00:00:00:00:52") == 0,
	      "names not swapped");
	/* A name held by what is not a NIC stays refused. */
	CHECK(net_iface_decode(at_json(t,
		"{'interface': {'name': 'lo', 'mac': '02:00:00:00:00:51'}}"),
		&w, &t->err) == 0, "decode 5");
	CHECK(iface_apply(sk, &w, &idx, &t->err) < 0 &&
	      t->err->code == HUSK_E_EXISTS, "lo taken");
	husk_err_clear(&t->err);
	net_iface_free(&w);

	/* Gateway route listed first: it still goes in after the device
	 * route that makes its gateway reachable. */
	CHECK(net_routes_decode(at_json(t,
		"{'routes': ["
		" {'dest': 'default', 'gateway': '10.9.5.1', 'device': 'eth7'},"
		" {'dest': '10.9.5.0/24', 'device': 'eth7'},"
		" {'dest': '10.50.0.0/16', 'gateway': '10.9.0.1',"
		"  'device': 'eth7', 'source': '10.9.0.2'}]}"),
		&rv, &nr, &t->err) == 0, "routes decode");
	CHECK(routes_apply(sk, rv, nr, &t->err) == 0, "routes_apply: %s",
	      t->err->msg);
	free(rv);
	/* What list_routes and update_routes answer. */
	CHECK(snapshot(sk, &links, NULL, &routes, &t->err) == 0, "snapshot");
	pack_routes(&t->pk, routes, links);
	rts = ipc_map_get(at_obj(t), "routes");
	CHECK(rts && rts->type == MSGPACK_OBJECT_ARRAY, "no routes array");
	def = find_by(rts, "dest", "default");
	CHECK(def, "no default route");
	CHECK(at_str_eq(ipc_map_get(def, "gateway"), "10.9.5.1"), "gateway");
	CHECK(at_str_eq(ipc_map_get(def, "device"), "eth7"), "device");
	def = find_by(rts, "dest", "10.50.0.0/16");
	CHECK(def, "no 10.50.0.0/16");
	CHECK(at_str_eq(ipc_map_get(def, "source"), "10.9.0.2"), "source");
	CHECK(find_by(rts, "dest", "10.9.5.0/24"), "no device route");
	/* The kernel's own subnet route stays. */
	CHECK(find_by(rts, "dest", "10.9.0.0/24"), "kernel route removed");
	nl_cache_free(links);
	nl_cache_free(routes);
	links = routes = NULL;

	/* Replacing with a shorter list removes what is not in it. */
	CHECK(net_routes_decode(at_json(t,
		"{'routes': [{'dest': '10.9.5.0/24', 'device': 'eth7'}]}"),
		&rv, &nr, &t->err) == 0, "routes decode 2");
	CHECK(routes_apply(sk, rv, nr, &t->err) == 0, "routes_apply 2: %s",
	      t->err->msg);
	free(rv);
	CHECK(snapshot(sk, &links, NULL, &routes, &t->err) == 0, "snapshot");
	pack_routes(&t->pk, routes, links);
	rts = ipc_map_get(at_obj(t), "routes");
	CHECK(rts && rts->type == MSGPACK_OBJECT_ARRAY, "no routes array");
	CHECK(!find_by(rts, "dest", "default"), "default route kept");
	CHECK(find_by(rts, "dest", "10.9.5.0/24"), "listed route gone");
	/* An unknown device fails before anything changes. */
	CHECK(net_routes_decode(at_json(t,
		"{'routes': [{'dest': '10.7.0.0/16', 'device': 'nosuch0'}]}"),
		&rv, &nr, &t->err) == 0, "routes decode 3");
	CHECK(routes_apply(sk, rv, nr, &t->err) < 0 &&
	      t->err->code == HUSK_E_NOT_FOUND, "unknown device");
	free(rv);
	nl_cache_free(links);
	nl_cache_free(routes);
	nl_cache_free(addrs);
	nl_socket_free(sk);
	at_free(t);
	return 0;
}

static void test_netlink(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0 || system("ip -V >/dev/null 2>&1") != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			_exit(77);
		_exit(net_child());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	if (WEXITSTATUS(status) != 0)
		fail_msg("net child failed (status %d)", WEXITSTATUS(status));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac),
		cmocka_unit_test_setup_teardown(test_ifname, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iface_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iface_decode_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_routes_decode, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_routes_decode_errors, setup,
						teardown),
		cmocka_unit_test(test_netlink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
