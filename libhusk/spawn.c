/*
 * fork and exec with an errno pipe (see spawn.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "spawn.h"
#include "util.h"

extern char **environ;

static bool kept(int fd, const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

/* Every descriptor above 2 but the kept ones becomes close-on-exec
 * (in a child: the errno pipe must live until execv), or is closed. */
static void others(const int *fds, int n, bool close_them)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d) {
		for (int fd = 3; fd < 4096; fd++)
			if (!kept(fd, fds, n))
				close_them ? close(fd) :
					     fcntl(fd, F_SETFD, FD_CLOEXEC);
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) ||
		    kept(fd, fds, n))
			continue;
		if (close_them)
			close(fd);
		else
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

/* The child's side; returns only on failure, *step saying where
 * (STEP_*). */
enum { STEP_EXEC, STEP_SETUP, STEP_NETNS, STEP_CWD, STEP_SPAWNER };

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
		others(x->fds, x->nfds, false);
	}
	if (x->netns) {
		int fd;

		*step = STEP_NETNS;
		fd = open(x->netns, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			return;
		close(fd);
	}
	if (x->cwd) {
		*step = STEP_CWD;
		if (chdir(x->cwd) < 0)
			return;
	}
	if (x->setup) {
		*step = STEP_SETUP;
		if (x->setup(x->arg) < 0)
			return;
	}
	*step = STEP_EXEC;
	execve(x->exec_path ? x->exec_path : x->argv[0], x->argv,
	       x->envp ? x->envp : environ);
}

/* The error of a child that failed at step (errno e). */
static pid_t child_error(const struct husk_exec *x, int step, int e,
			 struct husk_err **err)
{
	switch (step) {
	case STEP_SETUP:
		return husk_error_sys(err, e, "%s `%s`",
				      x->setup_what ? x->setup_what :
				      "set up the child for", x->argv[0]);
	case STEP_NETNS:
		return husk_error_sys(err, e, "enter the network namespace "
				      "`%s` for `%s`", x->netns, x->argv[0]);
	case STEP_CWD:
		return husk_error_sys(err, e, "change to the directory `%s` "
				      "for `%s`", x->cwd, x->argv[0]);
	case STEP_SPAWNER:
		return husk_error_sys(err, e, "the spawner, for `%s`",
				      x->argv[0]);
	default:
		return husk_error_sys(err, e, "exec `%s`", x->exec_path ?
				      x->exec_path : x->argv[0]);
	}
}

static pid_t spawner_call(const struct husk_exec *x, struct husk_err **err);
static int spawner_fd = -1;
static pid_t spawner_pid;

pid_t husk_fork_exec(const struct husk_exec *x, struct husk_err **err)
{
	pid_t parent = getpid(), pid;
	int pfd[2], msg[2] = { 0, 0 };  /* STEP_*, errno */
	ssize_t n;

	if (x->nfds > HUSK_SPAWN_MAX_FDS)
		return husk_error(err, HUSK_E_INVALID, "%s: %d descriptors "
				  "to pass, at most %d", x->argv[0], x->nfds,
				  HUSK_SPAWN_MAX_FDS);
	if (spawner_fd >= 0)
		return spawner_call(x, err);
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
	return child_error(x, msg[0], msg[1], err);
}

/* ------------------------------------------------------------------ */
/* The spawner (spawn.h)                                               */

#define SPAWN_MAGIC 0x68737031u         /* "hsp1" */
#define SPAWN_MSG_MAX (128 * 1024)
/* 0-2, stdio, in/out, the kept ones (each at most once), the working
 * directory, the network namespace */
#define SPAWN_FDS_MAX (3 + 3 + 2 + HUSK_SPAWN_MAX_FDS + 2)
#define TARGET_CWD (-1)
#define TARGET_NETNS (-2)

struct spawn_req {
	uint32_t magic;
	int32_t parent;
	uint8_t new_session, die_with_parent, fds_from_3, has_stdio;
	uint8_t has_netns, has_cwd, has_exec_path, pad;
	int32_t in_fd, out_fd, stdio[3];
	int32_t nfds, fds[HUSK_SPAWN_MAX_FDS];
	uint32_t nargv, nenv;
	/* The descriptors sent with the message, in order: each one's
	 * number in the caller, or TARGET_*. */
	int32_t nsent, target[SPAWN_FDS_MAX];
	/* Then nargv + nenv NUL-terminated strings, the netns path, the
	 * working directory and the path executed when they are set. */
};

struct spawn_rep {
	int32_t pid;            /* -1: no process */
	int32_t step;           /* STEP_* of a failure */
	int32_t errnum;         /* 0: it runs */
};

struct sbuf {
	char *p;
	size_t len;
	bool full;
};

static void sbuf_add(struct sbuf *b, const char *s)
{
	size_t n = strlen(s) + 1;

	if (b->full || b->len + n > SPAWN_MSG_MAX) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static bool target_has(const struct spawn_req *r, int fd)
{
	for (int i = 0; i < r->nsent; i++)
		if (r->target[i] == fd)
			return true;
	return false;
}

/* Sends fd along as the caller's number `fd` (once); the last two
 * places are the directory's and the namespace's. */
static void send_fd(struct spawn_req *r, int *sent, int fd)
{
	if (fd < 0 || target_has(r, fd) || r->nsent >= SPAWN_FDS_MAX - 2 ||
	    fcntl(fd, F_GETFD) < 0)
		return;
	sent[r->nsent] = fd;
	r->target[r->nsent++] = fd;
}

static pid_t spawner_call(const struct husk_exec *x, struct husk_err **err)
{
	char *const *env = x->envp ? x->envp : environ;
	struct sbuf b = { husk_xmalloc(SPAWN_MSG_MAX), 0, false };
	struct spawn_req *r = (struct spawn_req *)b.p;
	int sent[SPAWN_FDS_MAX], cwd = -1, net = -1;
	char cbuf[CMSG_SPACE(sizeof(int) * SPAWN_FDS_MAX)];
	struct spawn_rep rep;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;
	pid_t pid = -1;

	if (x->setup) {
		husk_error(err, HUSK_E_INVALID, "`%s`: a setup step cannot "
			   "go through the spawner", x->argv[0]);
		goto out;
	}
	memset(r, 0, sizeof(*r));
	b.len = sizeof(*r);
	r->magic = SPAWN_MAGIC;
	r->parent = (int32_t)getpid();
	r->new_session = x->new_session;
	r->die_with_parent = x->die_with_parent;
	r->fds_from_3 = x->fds_from_3;
	r->has_stdio = x->stdio != NULL;
	r->in_fd = x->in_fd;
	r->out_fd = x->out_fd;
	for (int i = 0; i < 3; i++) {
		r->stdio[i] = x->stdio ? x->stdio[i] : -1;
		send_fd(r, sent, i);
		send_fd(r, sent, r->stdio[i]);
	}
	send_fd(r, sent, x->in_fd);
	send_fd(r, sent, x->out_fd);
	r->nfds = x->nfds;
	for (int i = 0; i < x->nfds; i++) {
		r->fds[i] = x->fds[i];
		send_fd(r, sent, x->fds[i]);
	}
	/* Where the caller is now: its working directory and network
	 * namespace (a helper started inside a sandbox's, as netmon is). */
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (cwd < 0 || net < 0) {
		husk_error_sys(err, errno, "spawner: open the working "
			       "directory and the network namespace");
		goto out;
	}
	sent[r->nsent] = cwd;
	r->target[r->nsent++] = TARGET_CWD;
	sent[r->nsent] = net;
	r->target[r->nsent++] = TARGET_NETNS;
	for (char *const *a = x->argv; *a; a++, r->nargv++)
		sbuf_add(&b, *a);
	for (char *const *e = env; e && *e; e++, r->nenv++)
		sbuf_add(&b, *e);
	if (x->netns) {
		r->has_netns = 1;
		sbuf_add(&b, x->netns);
	}
	if (x->cwd) {
		r->has_cwd = 1;
		sbuf_add(&b, x->cwd);
	}
	if (x->exec_path) {
		r->has_exec_path = 1;
		sbuf_add(&b, x->exec_path);
	}
	if (b.full) {
		husk_error(err, HUSK_E_TOO_LARGE, "`%s`: arguments and "
			   "environment over the spawner's %d KiB",
			   x->argv[0], SPAWN_MSG_MAX / 1024);
		goto out;
	}
	iov.iov_base = b.p;
	iov.iov_len = b.len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)r->nsent);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)r->nsent);
	memcpy(CMSG_DATA(cm), sent, sizeof(int) * (size_t)r->nsent);
	do
		n = sendmsg(spawner_fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		husk_error_sys(err, errno, "`%s`: send to the spawner",
			       x->argv[0]);
		goto out;
	}
	do
		n = recv(spawner_fd, &rep, sizeof(rep), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rep)) {
		husk_error(err, HUSK_E_SYSTEM, "`%s`: the spawner %s",
			   x->argv[0], n == 0 ? "is gone" :
			   "answered out of turn");
		goto out;
	}
	if (rep.pid > 0 && !rep.errnum) {
		pid = rep.pid;
		goto out;
	}
	if (rep.pid > 0 && x->reap_on_error)
		while (waitpid(rep.pid, NULL, 0) < 0 && errno == EINTR)
			;
	child_error(x, rep.step, rep.errnum, err);
out:
	if (cwd >= 0)
		close(cwd);
	if (net >= 0)
		close(net);
	free(b.p);
	return pid;
}

/* In the clone: the descriptors at the caller's numbers, its working
 * directory and namespace, then child(). */
static void spawned(const struct spawn_req *r, char **argv, char **env,
		    const char **strs, int *rfd, int nrfd, int w)
{
	struct husk_exec x = {
		.argv = argv,
		.in_fd = r->in_fd,
		.out_fd = r->out_fd,
		.stdio = r->has_stdio ? r->stdio : NULL,
		.fds = r->fds,
		.nfds = r->nfds,
		.fds_from_3 = r->fds_from_3,
		.new_session = r->new_session,
		.die_with_parent = r->die_with_parent,
		.envp = env,
		.netns = strs[0],
		.cwd = strs[1],
		.exec_path = strs[2],
	};
	int msg[2] = { STEP_SPAWNER, 0 }, hi = 3, cwdfd = -1, netfd = -1;

	for (int i = 0; i < nrfd; i++)
		if (r->target[i] >= hi)
			hi = r->target[i] + 1;
	/* Every source above every target first, so that placing one
	 * never clobbers another. */
	w = fcntl(w, F_DUPFD_CLOEXEC, hi);
	if (w < 0)
		_exit(127);
	for (int i = 0; i < nrfd; i++) {
		int h = fcntl(rfd[i], F_DUPFD_CLOEXEC, hi);

		if (h < 0)
			goto fail;
		close(rfd[i]);
		rfd[i] = h;
	}
	for (int i = 0; i < nrfd; i++) {
		if (r->target[i] == TARGET_CWD) {
			cwdfd = rfd[i];
		} else if (r->target[i] == TARGET_NETNS) {
			netfd = rfd[i];
		} else {
			if (dup2(rfd[i], r->target[i]) < 0)
				goto fail;
			close(rfd[i]);
		}
	}
	if (cwdfd < 0 || netfd < 0 || fchdir(cwdfd) < 0)
		goto fail;
	{
		struct stat a, b;

		if (fstat(netfd, &a) < 0)
			goto fail;
		if ((stat("/proc/thread-self/ns/net", &b) < 0 ||
		     a.st_ino != b.st_ino || a.st_dev != b.st_dev) &&
		    setns(netfd, CLONE_NEWNET) < 0)
			goto fail;
	}
	close(cwdfd);
	close(netfd);
	child(&x, r->parent, &msg[0]);
fail:
	msg[1] = errno;
	if (write(w, msg, sizeof(msg)) < 0)
		_exit(127);
	_exit(127);
}

/* One call: the message checked, the process cloned, the answer. */
static void spawner_one(int sock, char *buf, ssize_t n, int *rfd, int nrfd)
{
	const struct spawn_req *r = (const struct spawn_req *)buf;
	struct spawn_rep rep = { -1, STEP_SPAWNER, EPROTO };
	char **argv = NULL, **env = NULL;
	const char *p = buf + sizeof(*r), *end = buf + n;
	/* netns, cwd, exec_path, in that order when present */
	const char *strs[3] = { NULL, NULL, NULL };
	uint8_t has[3];
	int pfd[2] = { -1, -1 }, msg[2];
	ssize_t m;

	if (n < (ssize_t)sizeof(*r) || r->magic != SPAWN_MAGIC ||
	    r->nsent != nrfd || r->nsent > SPAWN_FDS_MAX || r->nfds < 0 ||
	    r->nfds > HUSK_SPAWN_MAX_FDS || r->nargv < 1 ||
	    r->nargv > SPAWN_MSG_MAX / 2 || r->nenv > SPAWN_MSG_MAX / 2)
		goto reply;
	has[0] = r->has_netns;
	has[1] = r->has_cwd;
	has[2] = r->has_exec_path;
	argv = calloc(r->nargv + 1, sizeof(char *));
	env = calloc(r->nenv + 1, sizeof(char *));
	if (!argv || !env) {
		rep.errnum = ENOMEM;
		goto reply;
	}
	for (uint32_t i = 0; i < r->nargv + r->nenv + 3; i++) {
		const char *z;

		if (i >= r->nargv + r->nenv && !has[i - r->nargv - r->nenv])
			continue;
		if (p >= end || !(z = memchr(p, '\0', (size_t)(end - p))))
			goto reply;
		if (i < r->nargv)
			argv[i] = (char *)p;
		else if (i < r->nargv + r->nenv)
			env[i - r->nargv] = (char *)p;
		else
			strs[i - r->nargv - r->nenv] = p;
		p = z + 1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rep.errnum = errno;
		goto reply;
	}
	/* fork-like, but the caller's child: CLONE_PARENT. */
	rep.pid = (int32_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL,
				   NULL, NULL, NULL);
	if (rep.pid == 0) {
		close(sock);
		close(pfd[0]);
		spawned(r, argv, env, strs, rfd, nrfd, pfd[1]);
	}
	if (rep.pid < 0) {
		rep.errnum = errno;
		goto reply;
	}
	close(pfd[1]);
	pfd[1] = -1;
	do
		m = read(pfd[0], msg, sizeof(msg));
	while (m < 0 && errno == EINTR);
	if (m == (ssize_t)sizeof(msg)) {
		rep.step = msg[0];
		rep.errnum = msg[1] ? msg[1] : EIO;
	} else {
		rep.step = STEP_EXEC;
		rep.errnum = 0;
	}
reply:
	for (int i = 0; i < 2; i++)
		if (pfd[i] >= 0)
			close(pfd[i]);
	for (int i = 0; i < nrfd; i++)
		close(rfd[i]);
	free(argv);
	free(env);
	while (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0 &&
	       errno == EINTR)
		;
}

/* The spawner's command line and name are its own, so that ps and
 * pgrep -f tell it from the caller it was forked from: the argv area
 * is overwritten in place (as setproctitle does; the environment after
 * it is left alone). */
static void spawner_title(void)
{
	extern char *program_invocation_name, *program_invocation_short_name;
	char area[4096], title[128];
	char *argv0 = program_invocation_name;
	ssize_t n;
	size_t t;
	int fd;

	/* The command line first, the name last: once the name shows, so
	 * does the title. */
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, area, sizeof(area)) : -1;
	if (fd >= 0)
		close(fd);
	if (n >= 2 && argv0 && !memcmp(argv0, area, strlen(argv0) + 1)) {
		t = (size_t)snprintf(title, sizeof(title), "%s: spawner",
				     program_invocation_short_name);
		if (t >= (size_t)n)
			t = (size_t)n - 1;
		memset(argv0, 0, (size_t)n);
		memcpy(argv0, title, t);
	}
	prctl(PR_SET_NAME, "husk-spawner", 0, 0, 0);
}

static void spawner_main(int sock, int log_fd, pid_t parent)
{
	char cbuf[CMSG_SPACE(sizeof(int) * SPAWN_FDS_MAX)];
	char *buf = malloc(SPAWN_MSG_MAX);
	const int keep[2] = { sock, log_fd };
	sigset_t none;

	if (!buf || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    getppid() != parent)
		_exit(0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	spawner_title();
	/* Nothing of the caller's but the socket (and the log). */
	others(keep, log_fd >= 0 ? 2 : 1, true);
	for (;;) {
		struct iovec iov = { buf, SPAWN_MSG_MAX };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		int rfd[SPAWN_FDS_MAX], nrfd = 0;
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(int));
				if (nrfd < SPAWN_FDS_MAX)
					rfd[nrfd++] = fd;
				else
					close(fd);
			}
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			n = 0;  /* refused as malformed */
		spawner_one(sock, buf, n, rfd, nrfd);
	}
}

int husk_spawner_start(int log_fd, struct husk_err **err)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (spawner_fd >= 0)
		return husk_error(err, HUSK_E_STATE, "a spawner runs already");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return husk_error_sys(err, errno, "spawner: socketpair");
	/* Room for the largest call (within the host's wmem_max). */
	for (int i = 0; i < 2; i++) {
		int sz = 2 * SPAWN_MSG_MAX;

		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return husk_error_sys(err, e, "fork the spawner");
	}
	if (pid == 0) {
		close(sv[0]);
		spawner_main(sv[1], log_fd, parent);
		_exit(0);
	}
	close(sv[1]);
	spawner_fd = sv[0];
	spawner_pid = pid;
	return 0;
}

pid_t husk_spawner_pid(void)
{
	return spawner_pid;
}
