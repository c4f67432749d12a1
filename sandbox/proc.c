/*
 * Starting and stopping the sandbox's helper processes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/spawn.h"
#include "libhusk/util.h"
#include "sandbox.h"

/*
 * The child gets its own session (a terminal's signals for the caller
 * must not reach the sandbox's helpers), /dev/null as stdin, the log as
 * stdout and stderr, and only the descriptors asked for.
 */
pid_t husk_spawn(char *const argv[], const char *log, const int *keep_fds,
		 int nkeep, struct husk_err **err)
{
	struct husk_exec x = {
		.argv = argv,
		.in_fd = -1,
		.out_fd = -1,
		.fds = keep_fds,
		.nfds = nkeep,
		.new_session = true,
		.reap_on_error = true,
	};
	pid_t pid;

	if (log) {
		x.out_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
				0600);
		if (x.out_fd < 0)
			return husk_error_sys(err, errno, "open the log `%s`",
					      log);
	}
	pid = husk_fork_exec(&x, err);
	if (x.out_fd >= 0)
		close(x.out_fd);
	return pid;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Reap if it is our child; harmless otherwise.  Never pid 0 or -1 (a
 * record of "none"): that would reap any child of ours. */
static void reap(pid_t pid)
{
	if (pid <= 1)
		return;
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}

static bool wait_gone(const struct husk_proc_ref *p, unsigned ms)
{
	/* Woken by its exit (a pidfd), not by a timer; the identity is
	 * checked once the descriptor holds the pid. */
	int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);

	if (fd >= 0) {
		struct pollfd pf = { fd, POLLIN, 0 };
		uint64_t deadline = husk_now_ms() + ms;

		while (husk_proc_alive(p)) {
			uint64_t now = husk_now_ms();

			if (now >= deadline ||
			    (poll(&pf, 1, (int)(deadline - now)) < 0 &&
			     errno != EINTR))
				break;
			reap(p->pid);
		}
		close(fd);
		reap(p->pid);
		return !husk_proc_alive(p);
	}
	for (unsigned t = 0; t < ms; t += 10) {
		reap(p->pid);
		if (!husk_proc_alive(p))
			return true;
		sleep_ms(10);
	}
	reap(p->pid);
	return !husk_proc_alive(p);
}

void husk_proc_stop(const struct husk_proc_ref *p, unsigned ms)
{
	if (!husk_proc_alive(p)) {
		reap(p->pid);
		return;
	}
	kill(p->pid, SIGTERM);
	if (wait_gone(p, ms))
		return;
	kill(p->pid, SIGKILL);
	wait_gone(p, 2000);
}

int husk_sock_path(const char *dir, const char *name, char **out,
		   struct husk_err **err)
{
	/* Any length: libipc reaches a path longer than sun_path through
	 * its directory (ipc_sockaddr). */
	(void)err;
	*out = husk_xasprintf("%s/%s", dir, name);
	return 0;
}
