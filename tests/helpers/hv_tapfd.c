/*
 * hv_tapfd: open a tap inside a network namespace and hand it to
 * husk-hypervisor's hotplug_net, as the runtime will (tests/bats/
 * hypervisor.bats).
 *
 *   hv_tapfd NETNS TAP SOCKET ID MAC [MTU]
 *
 * NETNS is a name under /var/run/netns (ip netns add); TAP an existing
 * tap in it (ip tuntap add ... mode tap).  Prints the result as JSON,
 * or the error on stderr and exits 1.
 */
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/if_tun.h>

#include "libipc/ipc.h"
#include "libipc/proto_hv.h"

static int open_tap(const char *netns, const char *name)
{
	char path[256];
	struct ifreq ifr;
	int ns, fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", netns);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
		perror(path);
		return -1;
	}
	close(ns);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("/dev/net/tun");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct ipc_client cl;
	struct husk_err *e = NULL;
	struct ipc_msg resp;
	msgpack_packer *pk;
	json_t *j;
	char *s;
	int fd;

	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: hv_tapfd NETNS TAP SOCKET ID MAC [MTU]\n");
		return 100;
	}
	fd = open_tap(argv[1], argv[2]);
	if (fd < 0)
		return 111;
	if (ipc_client_connect(&cl, argv[3], "hv_tapfd", NULL, 5000, &e) < 0) {
		fprintf(stderr, "hv_tapfd: %s\n", e->msg);
		return 111;
	}
	pk = ipc_client_begin(&cl, HV_M_HOTPLUG_NET);
	msgpack_pack_map(pk, argc == 7 ? 3 : 2);
	ipc_pack_kv_str(pk, "id", argv[4]);
	ipc_pack_kv_str(pk, "mac", argv[5]);
	if (argc == 7)
		ipc_pack_kv_uint(pk, "mtu", strtoul(argv[6], NULL, 10));
	if (ipc_client_call(&cl, 60000, &fd, 1, &resp, &e) < 0) {
		fprintf(stderr, "hv_tapfd: %s\n", e->msg);
		return 1;
	}
	j = ipc_json_from_obj(resp.result);
	s = json_dumps(j, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(j);
	ipc_msg_free(&resp);
	ipc_client_close(&cl);
	close(fd);
	return 0;
}
