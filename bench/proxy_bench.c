/*
 * proxy_bench: request latency over one connection, for bench/proxy.sh.
 *
 *   proxy_bench SOCKET COUNT
 *
 * Says hello, then sends COUNT pings one after the other and prints
 * "min p50 p99 mean" in microseconds.  Run against husk-proxy and
 * straight against the agent, it shows what the hop costs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct husk_err *err = NULL;
	struct ipc_client cl;
	struct ipc_msg resp;
	uint64_t *t, sum = 0;
	long long n;

	if (argc != 3 || husk_parse_int(argv[2], 1, 10000000, &n) < 0) {
		fprintf(stderr, "usage: proxy_bench SOCKET COUNT\n");
		return 100;
	}
	if (ipc_client_connect(&cl, argv[1], "husk-ipc", NULL, 5000,
			       &err) < 0) {
		fprintf(stderr, "proxy_bench: %s\n", err->msg);
		return 112;
	}
	t = calloc(n, sizeof(*t));
	for (long long i = 0; i < n; i++) {
		uint64_t t0 = husk_now_ns();
		msgpack_packer *pk = ipc_client_begin(&cl, AGENT_M_PING);

		msgpack_pack_map(pk, 0);
		if (ipc_client_call(&cl, 5000, NULL, 0, &resp, &err) < 0) {
			fprintf(stderr, "proxy_bench: ping: %s\n", err->msg);
			return 1;
		}
		ipc_msg_free(&resp);
		t[i] = husk_now_ns() - t0;
		sum += t[i];
	}
	qsort(t, n, sizeof(*t), cmp_u64);
	printf("%.1f %.1f %.1f %.1f\n", t[0] / 1e3, t[n / 2] / 1e3,
	       t[n * 99 / 100] / 1e3, sum / 1e3 / n);
	ipc_client_close(&cl);
	free(t);
	return 0;
}
