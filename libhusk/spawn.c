/*
 * fork and exec with an errno pipe (see spawn.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "spawn.h"

static bool kept(int fd, const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

/* In the child: every descriptor above 2 but the kept ones becomes
 * close-on-exec (the errno pipe must live until execv). */
static void others_cloexec(const int *fds, int n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d) {
		for (int fd = 3; fd < 4096; fd++)
			if (!kept(fd, fds, n))
				fcntl(fd, F_SETFD, FD_CLOEXEC);
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] != '.' && fd > 2 && !kept(fd, fds, n))
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}

/* In the child: fds[i] at 3 + i, the rest close-on-exec. */
static int fds_from_3(const int *fds, int n)
{
	int high[HUSK_SPAWN_MAX_FDS];

	/* Two passes so that a target number never clobbers a source. */
	for (int i = 0; i < n; i++) {
		high[i] = fcntl(fds[i], F_DUPFD, 64);
		if (high[i] < 0)
			return -1;
	}
	for (int i = 0; i < n; i++) {
		if (dup2(high[i], 3 + i) < 0)
			return -1;
		close(high[i]);
	}
	if (syscall(SYS_close_range, 3 + n, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3 + n; fd < 4096; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

static int stdio_to(int fd, int first, int last)
{
	int null = -1;

	if (fd == HUSK_FD_INHERIT)
		return 0;
	if (fd < 0) {
		null = open("/dev/null", first ? O_WRONLY : O_RDONLY);
		if (null < 0)
			return -1;
		fd = null;
	}
	for (int t = first; t <= last; t++)
		if (fd != t && dup2(fd, t) < 0)
			return -1;
	if (null > last)
		close(null);
	return 0;
}

/* The child's side; returns only on failure, *step saying where. */
static void child(const struct husk_exec *x, pid_t parent, int *step)
{
	sigset_t none;

	/* libev blocks the signals it watches; the child must not
	 * inherit that, nor our handlers. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (x->die_with_parent &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
		_exit(127);
	if (x->new_session)
		setsid();
	if (x->stdio) {
		for (int i = 0; i < 3; i++)
			if (x->stdio[i] >= 0 && dup2(x->stdio[i], i) < 0)
				return;
	} else if (stdio_to(x->in_fd, 0, 0) < 0 ||
		   stdio_to(x->out_fd, 1, 2) < 0) {
		return;
	}
	if (x->fds_from_3) {
		if (fds_from_3(x->fds, x->nfds) < 0)
			return;
	} else {
		for (int i = 0; i < x->nfds; i++)
			if (fcntl(x->fds[i], F_SETFD, 0) < 0)
				return;
		others_cloexec(x->fds, x->nfds);
	}
	if (x->setup) {
		*step = 1;
		if (x->setup(x->arg) < 0)
			return;
		*step = 0;
	}
	execv(x->argv[0], x->argv);
}

pid_t husk_fork_exec(const struct husk_exec *x, struct husk_err **err)
{
	pid_t parent = getpid(), pid;
	int pfd[2], msg[2] = { 0, 0 };  /* step (1: setup), errno */
	ssize_t n;

	if (x->nfds > HUSK_SPAWN_MAX_FDS)
		return husk_error(err, HUSK_E_INVALID, "%s: %d descriptors "
				  "to pass, at most %d", x->argv[0], x->nfds,
				  HUSK_SPAWN_MAX_FDS);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return husk_error_sys(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(pfd[0]);
		close(pfd[1]);
		return husk_error_sys(err, e, "fork for `%s`", x->argv[0]);
	}
	if (pid == 0) {
		/* Out of the way of the numbers the child's descriptors
		 * are given. */
		int w = fcntl(pfd[1], F_DUPFD_CLOEXEC, 64);

		close(pfd[0]);
		if (w >= 0)
			child(x, parent, &msg[0]);
		msg[1] = errno;
		if (w >= 0 && write(w, msg, sizeof(msg)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n != sizeof(msg))
		return pid;
	if (x->reap_on_error)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	if (msg[0])
		return husk_error_sys(err, msg[1], "%s `%s`",
				      x->setup_what ? x->setup_what :
				      "set up the child for", x->argv[0]);
	return husk_error_sys(err, msg[1], "exec `%s`", x->argv[0]);
}
