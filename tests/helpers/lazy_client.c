/*
 * lazy_client: a client of husk-proxy that makes calls and never reads
 * the answers (tests/bats/proxy.bats: the cap on a client's write
 * queue).
 *
 *   lazy_client SOCKET METHOD N [SECONDS]
 *
 * Says hello, sends N requests of METHOD with params {}, then waits
 * without reading until the proxy closes the connection: exits 0 when
 * it does (within SECONDS, default 60), 1 if not.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

int main(int argc, char **argv)
{
	struct ipc_client cl;
	struct husk_err *err = NULL;
	struct pollfd pfd;
	long long n, secs = 60;

	if ((argc != 4 && argc != 5) ||
	    husk_parse_int(argv[3], 1, 100000, &n) < 0 ||
	    (argc == 5 && husk_parse_int(argv[4], 1, 3600, &secs) < 0)) {
		fprintf(stderr, "usage: lazy_client SOCKET METHOD N "
				"[SECONDS]\n");
		return 100;
	}
	husk_log_init("lazy_client", HUSK_LOG_WARN, HUSK_LOG_TEXT);
	if (ipc_client_connect(&cl, argv[1], "lazy-client", NULL, 5000,
			       &err) < 0) {
		fprintf(stderr, "lazy_client: %s\n", err->msg);
		return 111;
	}
	for (long long i = 0; i < n; i++) {
		struct ipc_buf b;
		msgpack_packer *pk;

		ipc_buf_init(&b);
		pk = ipc_pack_request(&b, (uint32_t)(1000 + i), argv[2]);
		msgpack_pack_map(pk, 0);
		if (ipc_buf_finish(&b, IPC_FRAME_MAX_DEFAULT, &err) < 0 ||
		    husk_write_all(cl.fd, b.sb.data, b.sb.size) < 0) {
			fprintf(stderr, "lazy_client: cannot send\n");
			return 111;
		}
		ipc_buf_destroy(&b);
	}
	printf("sent %lld\n", n);
	fflush(stdout);
	pfd.fd = cl.fd;
	pfd.events = POLLRDHUP;
	if (poll(&pfd, 1, (int)secs * 1000) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
		printf("closed by the proxy\n");
		return 0;
	}
	printf("still open\n");
	return 1;
}
