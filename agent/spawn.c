/*
 * Cloning a container's processes and the hand-shake with them.
 *
 * The agent clones the child itself (raw clone(2), fork-like, with the
 * spec's CLONE_NEW* flags), so the child is in its namespaces from its
 * first instruction; on cgroup v2 (the guest) with clone3 and
 * CLONE_INTO_CGROUP, so it is born in its cgroup too.  To join the
 * sandbox's pid namespace (a pod that shares one) the agent
 * setns(CLONE_NEWPID)s its pid_for_children there around the clone and
 * back to its own: no intermediate process.
 *
 * Two cloexec pipes tie the child to the agent:
 *   sync  agent -> child: '1' once the child is in its cgroup, '2'
 *         (init only) on start_container;
 *   err   child -> agent: one struct child_msg on failure (naming what
 *         failed), {ready = 1} when the init is built and waits for '2',
 *         and EOF when execve succeeded.
 *
 * A terminal comes from the container's own devpts, as runc's does: the
 * child opens /dev/ptmx once it is in its root (init) or mount
 * namespace (exec), makes the peer its controlling terminal and stdio,
 * and sends the master back over a third channel (a socketpair,
 * SCM_RIGHTS) before it reports; the agent takes it after the report.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"

void child_fail(int errfd, int errnum, const char *fmt, ...)
{
	struct child_msg cm = { .errnum = errnum };
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cm.msg, sizeof(cm.msg), fmt, ap);
	va_end(ap);
	n = strlen(cm.msg);
	if (errnum && n + 3 < sizeof(cm.msg))
		snprintf(cm.msg + n, sizeof(cm.msg) - n, ": %s",
			 strerror(errnum));
	(void)!write(errfd, &cm, sizeof(cm));
	_exit(127);
}

void child_fail_err(int errfd, struct husk_err *e)
{
	child_fail(errfd, 0, "%s", e && e->msg ? e->msg : "failed");
}

/* The child's ends of its stdio, and the agent's; for a terminal, the
 * socketpair the child sends the pty master over instead. */
struct stdio {
	int child[3];
	int parent_in, parent_out, parent_err;
	int tty_child, tty_parent;
};

static void stdio_close(struct stdio *io)
{
	for (int i = 0; i < 3; i++)
		if (io->child[i] >= 0 && (i == 0 || io->child[i] != io->child[0]))
			close(io->child[i]);
	for (int *fd = &io->parent_in; fd <= &io->parent_err; fd++)
		if (*fd >= 0)
			close(*fd);
	if (io->tty_child >= 0)
		close(io->tty_child);
	if (io->tty_parent >= 0)
		close(io->tty_parent);
	io->child[0] = io->child[1] = io->child[2] = -1;
	io->parent_in = io->parent_out = io->parent_err = -1;
	io->tty_child = io->tty_parent = -1;
}

static int stdio_make(const struct spec_process *p, struct stdio *io,
		      struct husk_err **err)
{
	int fds[2];

	io->child[0] = io->child[1] = io->child[2] = -1;
	io->parent_in = io->parent_out = io->parent_err = -1;
	io->tty_child = io->tty_parent = -1;
	if (p->terminal) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
			       fds) < 0)
			return husk_error_sys(err, errno, "socketpair");
		io->tty_parent = fds[0];
		io->tty_child = fds[1];
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		if (pipe2(fds, O_CLOEXEC) < 0) {
			stdio_close(io);
			return husk_error_sys(err, errno, "pipe");
		}
		if (i == 0) {
			io->child[0] = fds[0];
			io->parent_in = fds[1];
		} else {
			io->child[i] = fds[1];
			*(i == 1 ? &io->parent_out : &io->parent_err) = fds[0];
		}
	}
	return 0;
}

/* Child: the first steps, common to init and exec. */
static void child_begin(struct stdio *io, bool tty, int errfd)
{
	sigset_t all;

	/* Dispositions and the mask survive execve: undo the agent's. */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (setsid() < 0)
		child_fail(errfd, errno, "setsid");
	if (tty)
		return;         /* child_tty, once in the container */
	for (int i = 0; i < 3; i++)
		if (dup2(io->child[i], i) < 0)
			child_fail(errfd, errno, "dup2 stdio");
}

/* Child, in the container's root: a pty from its /dev/ptmx, the peer as
 * controlling terminal and stdio (owned by the process's user, as runc
 * does), the master sent to the agent over sock. */
static void child_tty(const struct spec_process *p, int sock, int errfd)
{
	struct winsize ws = { .ws_row = (unsigned short)p->rows,
			      .ws_col = (unsigned short)p->cols };
	char byte = 'm';
	struct stat st;
	int m, s;

	/* The image may have put anything there: only the pty
	 * multiplexer (5:2) will do. */
	m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (m < 0)
		child_fail(errfd, errno, "terminal: open /dev/ptmx in the "
			   "container");
	if (fstat(m, &st) < 0 || !S_ISCHR(st.st_mode) ||
	    major(st.st_rdev) != 5 || minor(st.st_rdev) != 2)
		child_fail(errfd, 0, "terminal: /dev/ptmx in the container "
			   "is not the pty multiplexer");
	if (fcntl(m, F_SETFL, O_RDWR) < 0)
		child_fail(errfd, errno, "terminal: /dev/ptmx");
	if (unlockpt(m) < 0)
		child_fail(errfd, errno, "terminal: unlock the pty");
	/* The peer by the master, not by a path the container controls. */
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		child_fail(errfd, errno, "terminal: open the pty's peer");
	if (fchown(s, p->uid, (gid_t)-1) < 0)
		child_fail(errfd, errno, "terminal: chown the pty to %u",
			   p->uid);
	if (ws.ws_row && ws.ws_col)
		ioctl(m, TIOCSWINSZ, &ws);
	if (ioctl(s, TIOCSCTTY, 0) < 0)
		child_fail(errfd, errno, "set the controlling terminal");
	for (int i = 0; i < 3; i++)
		if (dup2(s, i) < 0)
			child_fail(errfd, errno, "dup2 stdio");
	close(s);
	if (ipc_send_fds(sock, &byte, 1, &m, 1) != 1)
		child_fail(errfd, errno, "terminal: send the pty master");
	close(m);
	close(sock);
}

/* Agent: the master the child sent before it reported (so it waits in
 * the socket); its stdio then starts. */
static int take_tty(struct proc *pr, int sock, struct husk_err **err)
{
	int fds[1], nfds = 0, in;
	bool trunc = false;
	char byte;
	ssize_t n;

	do
		n = ipc_recv_fds(sock, &byte, 1, fds, &nfds, 1, &trunc);
	while (n < 0 && errno == EINTR);
	close(sock);
	if (n != 1 || nfds != 1) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return husk_error(err, HUSK_E_INTERNAL, "process %d sent no "
				  "terminal", (int)pr->pid);
	}
	in = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
	if (in < 0) {
		close(fds[0]);
		return husk_error_sys(err, errno, "dup the pty master");
	}
	proc_stdio_start(pr, in, fds[0], -1, true);
	return 0;
}

static int wait_byte(int fd, char want)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && c == want ? 0 : -1;
}

/* Parse what the child wrote: 1 ready, 0 EOF (exec'd), -1 error, 2 not
 * yet (the agent's end is non-blocking). */
static int report_read(int fd, pid_t pid, struct husk_err **err)
{
	struct child_msg cm;
	ssize_t n;

	do
		n = read(fd, &cm, sizeof(cm));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 2;
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(cm))   /* one write below PIPE_BUF */
		return husk_error(err, HUSK_E_INTERNAL,
				  "short report from process %d", (int)pid);
	if (cm.ready)
		return 1;
	cm.msg[sizeof(cm.msg) - 1] = '\0';
	return husk_error(err, cm.errnum == ENOENT ? HUSK_E_NOT_FOUND :
			  cm.errnum == EACCES || cm.errnum == EPERM ?
			  HUSK_E_PERMISSION : HUSK_E_SYSTEM, "%s", cm.msg);
}

struct spawn_wait {
	struct proc *p;
	int tty_sock;           /* terminal: the master comes here */
	spawn_done_fn *done;
	void *arg;
	ev_io w;
	ev_timer t;
};

static struct ev_loop *wait_loop(struct proc *p)
{
	return p->ct->a->core->loop;
}

static void wait_finish(struct proc *p, int r, struct husk_err *e,
			bool cancelled)
{
	struct spawn_wait *w = p->wait;

	p->wait = NULL;
	ev_io_stop(wait_loop(p), &w->w);
	ev_timer_stop(wait_loop(p), &w->t);
	if (r >= 0 && !cancelled && w->tty_sock >= 0 &&
	    take_tty(p, husk_steal_fd(w->tty_sock), &e) < 0)
		r = -1;
	if (w->tty_sock >= 0)
		close(w->tty_sock);
	if (r < 0 && !cancelled && p->pid > 0 && !p->exited)
		kill(p->pid, SIGKILL);
	if (w->done(p, r, e, cancelled, w->arg) && !cancelled &&
	    p->exit_held)
		proc_exit_finish(p);
	husk_err_free(e);
	free(w);
}

static void on_report(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proc *p = io->data;
	struct husk_err *e = NULL;
	int r = report_read(p->err_fd, p->pid, &e);

	if (r != 2)
		wait_finish(p, r, e, false);
}

static void on_report_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proc *p = t->data;
	struct husk_err *e = NULL;

	husk_error(&e, HUSK_E_TIMEOUT, "process %d did not report within "
		   "%d ms", (int)p->pid, AGENT_CHILD_TIMEOUT_MS);
	wait_finish(p, -1, e, false);
}

/* Wait in the loop for p's report on p->err_fd. */
static void wait_start(struct proc *p, int tty_sock, spawn_done_fn *done,
		       void *arg)
{
	struct spawn_wait *w = husk_xcalloc(1, sizeof(*w));
	int fl = fcntl(p->err_fd, F_GETFL);

	if (fl >= 0)
		fcntl(p->err_fd, F_SETFL, fl | O_NONBLOCK);
	w->p = p;
	w->tty_sock = tty_sock;
	w->done = done;
	w->arg = arg;
	ev_io_init(&w->w, on_report, p->err_fd, EV_READ);
	w->w.data = p;
	ev_timer_init(&w->t, on_report_timeout,
		      AGENT_CHILD_TIMEOUT_MS / 1000., 0.);
	w->t.data = p;
	p->wait = w;
	ev_io_start(wait_loop(p), &w->w);
	ev_timer_start(wait_loop(p), &w->t);
}

void spawn_cancel(struct proc *p)
{
	struct husk_err *e = NULL;

	if (!p->wait)
		return;
	husk_error(&e, HUSK_E_STATE, "the container was removed");
	wait_finish(p, -1, e, true);
}

/*
 * clone3's arguments (linux/sched.h, CLONE_ARGS_SIZE_VER2), spelled out
 * here: that header and glibc's <sched.h> do not mix.
 */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
	uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/*
 * Fork-like, with the spec's namespaces.  With cgfd (cgroup v2, the
 * guest's), the child is born in its cgroup (clone3 CLONE_INTO_CGROUP,
 * Linux 5.7): no migration afterwards, whose write lock on the cgroup
 * threadgroup rwsem waits for an RCU grace period, 12-16 ms of every
 * process a container starts under TCG.  *in_cg says whether it was.
 */
static pid_t raw_clone(int flags, int cgfd, bool *in_cg)
{
	*in_cg = false;
	if (cgfd >= 0) {
		struct clone3_args ca = {
			.flags = (uint64_t)(unsigned)flags | CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)cgfd,
		};
		long pid = syscall(SYS_clone3, &ca, sizeof(ca));

		if (pid >= 0) {
			*in_cg = true;
			return (pid_t)pid;
		}
		/* An older kernel: migrate after the fork, as below. */
		if (errno != ENOSYS && errno != E2BIG)
			return -1;
	}
	return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL,
			      NULL, NULL, NULL);
}

static void set_oom_score_adj(pid_t pid, const struct spec_process *p)
{
	char path[64], val[16];
	int fd;

	if (!p->has_oom_score_adj)
		return;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	snprintf(val, sizeof(val), "%d", p->oom_score_adj);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || husk_write_all(fd, val, strlen(val)) < 0)
		log_warn("%s: %s", __func__, path);
	if (fd >= 0)
		close(fd);
}

/* /proc/PID/{uid,gid}_map in one write, as the kernel wants it.  The
 * agent holds CAP_SETUID and CAP_SETGID where the child's namespace
 * was made, so setgroups stays "allow" (runc writes "deny" only for
 * an unprivileged writer). */
static int write_idmap(pid_t pid, const char *file,
		       const struct spec_idmap *m, size_t n,
		       struct husk_err **err)
{
	char path[64], *buf = husk_xcalloc(n, 40);
	size_t len = 0;
	int fd, r = 0;

	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(buf + len, "%u %u %u\n",
				       m[i].container_id, m[i].host_id,
				       m[i].size);
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		r = husk_error_sys(err, errno, "spec.linux.%s: write %s",
				   file[0] == 'u' ? "uidMappings" :
				   "gidMappings", path);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* Child, once its maps are written: root of its user namespace, so
 * that what it makes is owned by a mapped id (runc's order). */
static void become_ns_root(int errfd)
{
	if (setgroups(0, NULL) < 0)
		child_fail(errfd, errno, "setgroups in the user namespace");
	if (setresgid(0, 0, 0) < 0)
		child_fail(errfd, errno, "setgid 0 in the user namespace "
			   "(is gid 0 in spec.linux.gidMappings?)");
	if (setresuid(0, 0, 0) < 0)
		child_fail(errfd, errno, "setuid 0 in the user namespace "
			   "(is uid 0 in spec.linux.uidMappings?)");
}

/*
 * Clone with the hand-shake pipes and stdio in place; the child runs
 * body().  On return the child is in its cgroup and has been told so.
 */
static int spawn_common(struct agent *a, struct spawn *sp, int flags,
			int pidns_fd,
			void (*body)(struct agent *, struct spawn *, int, int),
			struct husk_err **err)
{
	struct agent_core *core = a->core;
	struct stdio io;
	int syncp[2] = { -1, -1 }, errp[2] = { -1, -1 }, cgfd;
	bool in_cg;
	pid_t pid;

	sp->tty_sock = -1;
	if (stdio_make(sp->proc, &io, err) < 0)
		return -1;
	if (pipe2(syncp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		husk_error_sys(err, errno, "pipe");
		goto fail;
	}
	if (pidns_fd >= 0 && setns(pidns_fd, CLONE_NEWPID) < 0) {
		husk_error_sys(err, errno, "join the sandbox pid namespace");
		goto fail;
	}
	cgfd = cg_open_dir(sp->ct->cg);
	pid = raw_clone(flags, cgfd, &in_cg);
	if (pid == 0) {
		if (cgfd >= 0)
			close(cgfd);
		close(syncp[1]);
		close(errp[0]);
		if (io.tty_parent >= 0)
			close(io.tty_parent);
		child_begin(&io, sp->proc->terminal, errp[1]);
		sp->tty_sock = io.tty_child;
		body(a, sp, syncp[0], errp[1]);
		_exit(127);
	}
	if (pidns_fd >= 0 && setns(core->self_pidns_fd, CLONE_NEWPID) < 0)
		husk_daemon_fatal(HUSK_EXIT_SYSTEM, "%s: back to our pid "
				  "namespace: %s", __func__, strerror(errno));
	if (cgfd >= 0)
		close(cgfd);
	if (pid < 0) {
		husk_error_sys(err, errno, "clone");
		goto fail;
	}
	close(syncp[0]);
	close(errp[1]);
	sp->p->pid = pid;
	sp->p->sync_fd = syncp[1];
	sp->p->err_fd = errp[0];
	for (int i = 0; i < 3; i++)
		if (io.child[i] >= 0 && (i == 0 || io.child[i] != io.child[0]))
			close(io.child[i]);
	if (io.tty_child >= 0)
		close(io.tty_child);
	sp->tty_sock = io.tty_parent;   /* take_tty, after the report */
	if (!sp->proc->terminal)
		proc_stdio_start(sp->p, io.parent_in, io.parent_out,
				 io.parent_err, false);
	if (!in_cg && cg_attach(sp->ct->cg, pid, err) < 0) {
		kill(pid, SIGKILL);
		return -1;
	}
	set_oom_score_adj(pid, sp->proc);
	if (sp->spec && (sp->spec->ns_flags & CLONE_NEWUSER) &&
	    (write_idmap(pid, "uid_map", sp->spec->uid_maps,
			 sp->spec->nuid_maps, err) < 0 ||
	     write_idmap(pid, "gid_map", sp->spec->gid_maps,
			 sp->spec->ngid_maps, err) < 0)) {
		kill(pid, SIGKILL);
		return -1;
	}
	if (husk_write_all(sp->p->sync_fd, "1", 1) < 0) {
		kill(pid, SIGKILL);
		return husk_error_sys(err, errno, "release process %d",
				      (int)pid);
	}
	return 0;
fail:
	stdio_close(&io);
	for (int i = 0; i < 2; i++) {
		if (syncp[i] >= 0)
			close(syncp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return -1;
}

static void init_body(struct agent *a, struct spawn *sp, int syncfd,
		      int errfd)
{
	struct child_msg ready = { .ready = 1 };
	cleanup_free char *exe = NULL;

	if (wait_byte(syncfd, '1') < 0)
		_exit(127);
	if (sp->spec->ns_flags & CLONE_NEWUSER)
		become_ns_root(errfd);
	if ((sp->spec->ns_flags & CLONE_NEWCGROUP) &&
	    unshare(CLONE_NEWCGROUP) < 0)
		child_fail(errfd, errno, "unshare the cgroup namespace");
	rootfs_setup(a, sp->spec, errfd);
	if (sp->proc->terminal)
		child_tty(sp->proc, sp->tty_sock, errfd);
	exe = proc_find_exe(sp->proc, errfd);
	if (write(errfd, &ready, sizeof(ready)) != (ssize_t)sizeof(ready))
		_exit(127);
	if (wait_byte(syncfd, '2') < 0)
		_exit(127);
	proc_exec(a, sp->proc, sp->ct->personality, exe, sp->filter, errfd);
}

int spawn_init(struct agent *a, struct spawn *sp, spawn_done_fn *done,
	       void *arg, struct husk_err **err)
{
	struct agent_core *core = a->core;
	int flags = sp->spec->ns_flags & ~CLONE_NEWCGROUP;
	int pidns_fd = -1;

	if ((flags & CLONE_NEWPID) && core->shared_pid_ns &&
	    core->sandbox_pidns_fd >= 0) {
		pidns_fd = core->sandbox_pidns_fd;
		flags &= ~CLONE_NEWPID;
		sp->ct->joined_pidns = true;
	}
	if (spawn_common(a, sp, flags, pidns_fd, init_body, err) < 0) {
		if (sp->tty_sock >= 0)
			close(husk_steal_fd(sp->tty_sock));
		return -1;
	}
	wait_start(sp->p, husk_steal_fd(sp->tty_sock), done, arg);
	return 0;
}

int spawn_start(struct proc *p, spawn_done_fn *done, void *arg,
		struct husk_err **err)
{
	if (p->wait)
		return husk_error(err, HUSK_E_STATE, "process %d is still "
				  "being set up", (int)p->pid);
	if (p->sync_fd < 0 || p->err_fd < 0)
		return husk_error(err, HUSK_E_STATE, "process %d was started "
				  "already, or has exited", (int)p->pid);
	if (husk_write_all(p->sync_fd, "2", 1) < 0)
		return husk_error_sys(err, errno, "start process %d",
				      (int)p->pid);
	wait_start(p, -1, done, arg);
	return 0;
}

/* Namespaces an exec joins, beside the pid one. */
static const struct {
	int flag;
	const char *name;
} exec_ns[] = {
	/* The user namespace first: it owns the others. */
	{ CLONE_NEWUSER, "user" },
	{ CLONE_NEWIPC, "ipc" }, { CLONE_NEWUTS, "uts" },
	{ CLONE_NEWCGROUP, "cgroup" }, { CLONE_NEWNS, "mnt" },
};
#define EXEC_NS_N (sizeof(exec_ns) / sizeof(exec_ns[0]))

struct exec_ctx {
	int nsfd[EXEC_NS_N];
};
static struct exec_ctx exec_ctx;

static void exec_body(struct agent *a, struct spawn *sp, int syncfd,
		      int errfd)
{
	cleanup_free char *exe = NULL;

	for (size_t i = 0; i < EXEC_NS_N; i++) {
		if (exec_ctx.nsfd[i] < 0)
			continue;
		if (setns(exec_ctx.nsfd[i], exec_ns[i].flag) < 0)
			child_fail(errfd, errno, "join the %s namespace",
				   exec_ns[i].name);
		if (exec_ns[i].flag == CLONE_NEWUSER)
			become_ns_root(errfd);
	}
	if (wait_byte(syncfd, '1') < 0)
		_exit(127);
	if (sp->proc->terminal)
		child_tty(sp->proc, sp->tty_sock, errfd);
	exe = proc_find_exe(sp->proc, errfd);
	proc_exec(a, sp->proc, sp->ct->personality, exe, sp->filter, errfd);
}

static int open_ns(pid_t pid, const char *name, struct husk_err **err)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open %s", path);
	return fd;
}

int spawn_exec(struct agent *a, struct spawn *sp, spawn_done_fn *done,
	       void *arg, struct husk_err **err)
{
	struct container *ct = sp->ct;
	pid_t ipid = ct->init->pid;
	int pidns_fd = -1, r = -1;

	for (size_t i = 0; i < EXEC_NS_N; i++)
		exec_ctx.nsfd[i] = -1;
	if (ct->init->exited)
		return husk_error(err, HUSK_E_STATE,
				  "container %s: its init has exited", ct->id);
	if ((ct->ns_flags & CLONE_NEWPID) || ct->joined_pidns) {
		pidns_fd = open_ns(ipid, "pid", err);
		if (pidns_fd < 0)
			return -1;
	}
	for (size_t i = 0; i < EXEC_NS_N; i++) {
		if (!(ct->ns_flags & exec_ns[i].flag))
			continue;
		exec_ctx.nsfd[i] = open_ns(ipid, exec_ns[i].name, err);
		if (exec_ctx.nsfd[i] < 0)
			goto out;
	}
	if (spawn_common(a, sp, 0, pidns_fd, exec_body, err) < 0) {
		if (sp->tty_sock >= 0)
			close(husk_steal_fd(sp->tty_sock));
		goto out;
	}
	/* No start step for an exec: it runs on as soon as it is in its
	 * cgroup, and reports execve's outcome. */
	close(sp->p->sync_fd);
	sp->p->sync_fd = -1;
	wait_start(sp->p, husk_steal_fd(sp->tty_sock), done, arg);
	r = 0;
out:
	if (pidns_fd >= 0)
		close(pidns_fd);
	for (size_t i = 0; i < EXEC_NS_N; i++)
		if (exec_ctx.nsfd[i] >= 0)
			close(exec_ctx.nsfd[i]);
	return r;
}
