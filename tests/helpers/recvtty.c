/*
 * recvtty: the other end of --console-socket, for tests.  Listens on a
 * unix socket, takes the pty master that husk's shim sends, writes the
 * given input to it, and copies what the terminal prints to stdout until
 * the terminal closes or the timeout passes.
 *
 *   recvtty SOCKET [INPUT] [TIMEOUT-SECONDS]
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libhusk/util.h"
#include "libipc/ipc.h"

int main(int argc, char **argv)
{
	struct husk_err *err = NULL;
	int lfd, c, fds[1], nfds = 0, timeout = 60;
	bool trunc = false;
	char name[256], buf[4096];
	uint64_t deadline;
	ssize_t n;

	if (argc < 2) {
		fprintf(stderr, "usage: recvtty SOCKET [INPUT] [TIMEOUT]\n");
		return 100;
	}
	if (argc > 3)
		timeout = atoi(argv[3]);
	lfd = ipc_listen_path(argv[1], &err);
	if (lfd < 0) {
		fprintf(stderr, "recvtty: %s\n", err->msg);
		return 111;
	}
	/* The listener is non-blocking: wait for the shim. */
	{
		struct pollfd p = { lfd, POLLIN, 0 };

		if (poll(&p, 1, timeout * 1000) <= 0) {
			fprintf(stderr, "recvtty: nobody connected\n");
			return 1;
		}
	}
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		perror("recvtty: accept");
		return 111;
	}
	n = ipc_recv_fds(c, name, sizeof(name) - 1, fds, &nfds, 1, &trunc);
	if (n < 0 || nfds != 1) {
		fprintf(stderr, "recvtty: no descriptor received\n");
		return 1;
	}
	name[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "recvtty: got the master of %s\n", name);
	if (argc > 2 && husk_write_all(fds[0], argv[2], strlen(argv[2])) < 0)
		perror("recvtty: write");
	deadline = husk_now_ms() + (uint64_t)timeout * 1000;
	for (;;) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		uint64_t now = husk_now_ms();

		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			break;
		n = read(fds[0], buf, sizeof(buf));
		if (n <= 0)
			break;	/* EIO: the other side closed */
		if (husk_write_all(1, buf, (size_t)n) < 0)
			break;
	}
	return 0;
}
