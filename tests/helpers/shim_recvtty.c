/*
 * shim_recvtty: the receiving end of --console-socket, like runc's
 * recvtty, for tests/bats/shim.bats.
 *
 *   shim_recvtty SOCKET
 *
 * Listens on SOCKET, takes one connection and the pty master it sends
 * (SCM_RIGHTS), prints "name: <bytes sent with it>" on stderr, sets
 * the pty's size to 33x77 as a terminal emulator would, then
 * copies its stdin to the master and the master to its stdout until the
 * master hangs up.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "libhusk/util.h"
#include "libipc/ipc.h"

int main(int argc, char **argv)
{
	struct husk_err *err = NULL;
	char buf[4096];
	int lfd, c, fds[IPC_MAX_FDS], nfds = 0;
	bool truncated, in_open = true;
	ssize_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: shim_recvtty SOCKET\n");
		return 100;
	}
	lfd = ipc_listen_path(argv[1], &err);
	if (lfd < 0) {
		fprintf(stderr, "shim_recvtty: %s\n", err->msg);
		return 111;
	}
	struct pollfd lp = { .fd = lfd, .events = POLLIN };
	poll(&lp, 1, -1);
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	n = c < 0 ? -1 : ipc_recv_fds(c, buf, sizeof(buf) - 1, fds, &nfds,
				      IPC_MAX_FDS, &truncated);
	if (n <= 0 || nfds != 1) {
		fprintf(stderr, "shim_recvtty: no descriptor received\n");
		return 1;
	}
	buf[n] = 0;
	fprintf(stderr, "name: %s\n", buf);
	/* as a terminal emulator would: the shim should pass it on */
	struct winsize ws = { .ws_row = 33, .ws_col = 77 };
	ioctl(fds[0], TIOCSWINSZ, &ws);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fds[0], .events = POLLIN },
			{ .fd = in_open ? 0 : -1, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 111;
		if (p[0].revents) {
			n = read(fds[0], buf, sizeof(buf));
			if (n <= 0)
				return 0;       /* EIO: the slave side is gone */
			husk_write_all(1, buf, n);
		}
		if (p[1].revents) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0)
				in_open = false;
			else
				husk_write_all(fds[0], buf, n);
		}
	}
}
