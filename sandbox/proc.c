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
#include "libhusk/util.h"
#include "sandbox.h"

static bool kept(int fd, const int *keep, int n)
{
	for (int i = 0; i < n; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

/* In the child: close every descriptor above 2 but the kept ones. */
static void close_others(const int *keep, int nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int dfd;

	if (!d) {
		for (int fd = 3; fd < 1024; fd++)
			if (!kept(fd, keep, nkeep))
				close(fd);
		return;
	}
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd <= 2 || fd == dfd ||
		    kept(fd, keep, nkeep))
			continue;
		close(fd);
	}
	closedir(d);
}

/*
 * fork + exec: the child gets its own session (a terminal's signals for
 * the caller must not reach the sandbox's helpers), /dev/null as stdin,
 * the log as stdout and stderr, and only the descriptors asked for.
 * An exec failure comes back through a close-on-exec pipe.
 */
pid_t husk_spawn(char *const argv[], const char *log, const int *keep_fds,
		 int nkeep, struct husk_err **err)
{
	int pipefd[2], child_errno = 0;
	sigset_t all;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return husk_error_sys(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return husk_error_sys(err, errno, "fork for `%s`", argv[0]);
	}
	if (pid == 0) {
		int fd;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		setsid();
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		fd = open(log ? log : "/dev/null",
			  O_WRONLY | O_APPEND | O_CREAT, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		for (int i = 0; i < nkeep; i++)
			fcntl(keep_fds[i], F_SETFD, 0);
		{
			int keep[HUSK_SPAWN_MAX_FDS + 1];

			if (nkeep > HUSK_SPAWN_MAX_FDS)
				nkeep = HUSK_SPAWN_MAX_FDS;
			if (nkeep > 0)
				memcpy(keep, keep_fds,
				       sizeof(int) * (size_t)nkeep);
			keep[nkeep] = pipefd[1];
			close_others(keep, nkeep + 1);
		}
		execv(argv[0], argv);
		child_errno = errno;
		if (write(pipefd[1], &child_errno, sizeof(child_errno)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pipefd[1]);
	do {
		n = read(pipefd[0], &child_errno, sizeof(child_errno));
	} while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == sizeof(child_errno)) {
		waitpid(pid, NULL, 0);
		return husk_error_sys(err, child_errno, "exec `%s`", argv[0]);
	}
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
