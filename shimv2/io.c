/*
 * A process's stdio as containerd names it, made into the husk-shim's
 * stdin, stdout and stderr:
 *   - a path: a fifo containerd (or ctr) reads or writes.  Opened
 *     without blocking on a peer that never comes: stdout and stderr
 *     write-only if a reader is there, else read-write; stdin read-only
 *     (it ends when containerd's writer has come and gone, or at
 *     CloseIO);
 *   - binary:///path?k=v: a logger started with stdout's pipe at fd 3,
 *     stderr's at fd 4 and fd 5 to close once it is ready;
 *   - file:///path: appended to;
 *   - a terminal: a pty of ours whose slave is the husk-shim's stdio (it
 *     takes it as its terminal: raw mode, the size) and whose master we
 *     copy from and to the fifos.  ResizePty sizes the master and tells
 *     the husk-shim with SIGWINCH.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/spawn.h"
#include "libhusk/util.h"
#include "shimv2.h"

#define TTY_CHUNK 16384
#define LOGGER_READY_MS 10000

static void set_block(int fd, bool nonblock)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, nonblock ? fl | O_NONBLOCK :
		      fl & ~O_NONBLOCK);
}

static int open_out_fifo(const char *path, struct husk_err **err)
{
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

	/* No reader yet: we hold one, so neither we nor the reader wait. */
	if (fd < 0 && errno == ENXIO)
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open the output `%s`",
				      path);
	set_block(fd, false);
	return fd;
}

/*
 * Read-only without blocking, and no writer of ours: poll(2) reports a
 * fifo neither readable nor hung up until a writer has come, so the
 * husk-shim (or our terminal copy) waits for containerd's writer and
 * sees the end of the input only once that writer has gone.
 */
static int open_in_fifo(const char *path, struct husk_err **err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return husk_error_sys(err, errno, "open the input `%s`", path);
	return fd;
}

/* %XX of a URI. */
static char *unescape(const char *s, size_t n)
{
	char *out = husk_xcalloc(1, n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (s[i] == '%' && i + 2 < n &&
		    sscanf(s + i + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	return out;
}

/* binary:///path?a=b&c: the logger, its args (key, then the value
 * unless empty), CONTAINER_ID and CONTAINER_NAMESPACE. */
static int start_logger(struct sv *s, struct sv_proc *p, const char *uri,
			struct husk_err **err)
{
	const char *rest = uri + strlen("binary://");
	const char *q = strchr(rest, '?');
	cleanup_free char *path = unescape(rest, q ? (size_t)(q - rest) :
					   strlen(rest));
	char *argv[34];
	char *owned[34];
	int n = 0, no = 0, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	int ready[2] = { -1, -1 }, rc = -1;
	char b;
	pid_t pid;

	if (path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "%s: the logger's path "
				  "is not absolute", uri);
	argv[n++] = path;
	for (const char *a = q ? q + 1 : NULL; a && *a && n < 32;) {
		const char *amp = strchr(a, '&');
		size_t len = amp ? (size_t)(amp - a) : strlen(a);
		const char *eq = memchr(a, '=', len);

		owned[no++] = argv[n++] = unescape(a, eq ? (size_t)(eq - a) :
						   len);
		if (eq && eq + 1 < a + len)
			owned[no++] = argv[n++] = unescape(eq + 1, (size_t)
							   (a + len - eq - 1));
		a = amp ? amp + 1 : NULL;
	}
	argv[n] = NULL;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0 ||
	    pipe2(ready, O_CLOEXEC) < 0) {
		husk_error_sys(err, errno, "pipe");
		goto out;
	}
	{
		/* stdin /dev/null, stdout and stderr ours; stdout, stderr
		 * and the ready pipe at 3, 4 and 5; the container's id and
		 * namespace in the environment (containerd's contract). */
		extern char **environ;
		int fds[3] = { out[0], er[0], ready[1] };
		size_t ne = 0;
		char **env;
		struct husk_exec x = {
			.argv = argv,
			.in_fd = -1,
			.out_fd = HUSK_FD_INHERIT,
			.fds = fds,
			.nfds = 3,
			.fds_from_3 = true,
			.reap_on_error = true,
		};

		while (environ[ne])
			ne++;
		env = husk_xcalloc(ne + 3, sizeof(char *));
		ne = 0;
		for (char **e = environ; *e; e++)
			if (strncmp(*e, "CONTAINER_ID=", 13) &&
			    strncmp(*e, "CONTAINER_NAMESPACE=", 20))
				env[ne++] = *e;
		env[ne] = husk_xasprintf("CONTAINER_ID=%s", p->task->id);
		env[ne + 1] = husk_xasprintf("CONTAINER_NAMESPACE=%s", s->ns);
		x.envp = env;
		pid = husk_fork_exec(&x, err);
		free(env[ne]);
		free(env[ne + 1]);
		free(env);
		if (pid < 0) {
			husk_error_wrap(err, "the logger");
			goto out;
		}
	}
	close(ready[1]);
	ready[1] = -1;
	/* Ready: fd 5 closed (or a byte); a logger that dies says so too.
	 * Bounded: the loop waits meanwhile. */
	for (;;) {
		struct pollfd pf = { ready[0], POLLIN, 0 };
		int r = poll(&pf, 1, LOGGER_READY_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			husk_error(err, HUSK_E_TIMEOUT, "the logger %s did not "
				   "close descriptor 5 (ready) within %d s",
				   path, LOGGER_READY_MS / 1000);
			goto out;
		}
		while (read(ready[0], &b, 1) < 0 && errno == EINTR)
			;
		break;
	}
	if (waitpid(pid, NULL, WNOHANG) == pid) {
		husk_error(err, HUSK_E_UNAVAILABLE, "the logger %s exited "
			   "before it was ready", path);
		goto out;
	}
	p->io.logger = pid;
	p->io.fds[1] = out[1];
	p->io.fds[2] = er[1];
	out[1] = er[1] = -1;
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0) close(out[i]);
		if (er[i] >= 0) close(er[i]);
		if (ready[i] >= 0) close(ready[i]);
	}
	for (int i = 0; i < no; i++)
		free(owned[i]);
	return rc;
}

static int open_file_uri(const char *uri, struct husk_err **err)
{
	cleanup_free char *path = unescape(uri + strlen("file://"),
					   strlen(uri + strlen("file://")));
	cleanup_free char *dir = husk_xstrdup(path);
	char *slash = strrchr(dir, '/');
	int fd;

	if (path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "%s: not an absolute "
				  "path", uri);
	if (slash && slash != dir) {
		*slash = '\0';
		if (husk_mkdir_p(dir, 0755, err) < 0)
			return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return husk_error_sys(err, errno, "open `%s`", path);
	return fd;
}

static int open_pty(struct sv_proc *p, struct husk_err **err)
{
	int master, slave;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		return husk_error_sys(err, errno, "openpty");
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	set_block(master, true);
	p->io.master = master;
	for (int i = 0; i < 3; i++)
		p->io.fds[i] = i ? slave : fcntl(slave, F_DUPFD_CLOEXEC, 3);
	p->io.fds[2] = p->io.fds[1];
	return 0;
}

int sv_io_open(struct sv *s, struct sv_proc *p, struct husk_err **err)
{
	const char *out = p->stdout_path, *er = p->stderr_path;
	int fd;

	if (p->terminal) {
		if (open_pty(p, err) < 0)
			return -1;
		if (p->stdin_path) {
			p->io.tin = open_in_fifo(p->stdin_path, err);
			if (p->io.tin < 0)
				goto fail;
			set_block(p->io.tin, true);
		}
		if (out) {
			p->io.tout = open_out_fifo(out, err);
			if (p->io.tout < 0)
				goto fail;
			set_block(p->io.tout, true);
		}
		return 0;
	}
	if (p->stdin_path) {
		p->io.fds[0] = open_in_fifo(p->stdin_path, err);
		if (p->io.fds[0] < 0)
			goto fail;
	}
	if (out && !strncmp(out, "binary://", 9))
		return start_logger(s, p, out, err) < 0 ? (sv_io_close(s, p),
							   -1) : 0;
	if (out && !strncmp(out, "file://", 7)) {
		fd = open_file_uri(out, err);
		if (fd < 0)
			goto fail;
		p->io.fds[1] = fd;
		p->io.fds[2] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		return 0;
	}
	if (out && (p->io.fds[1] = open_out_fifo(out, err)) < 0)
		goto fail;
	if (er && (p->io.fds[2] = open_out_fifo(er, err)) < 0)
		goto fail;
	return 0;
fail:
	sv_io_close(s, p);
	return -1;
}

/* ---------------------------------------------------- the terminal */

static void tty_flush(struct sv *s, struct sv_proc *p);
static void tty_eof(struct sv_proc *p);

static void drain_end(struct ev_loop *loop, struct sv_proc *p)
{
	void (*done)(struct sv_proc *) = p->io.drained;

	if (!done)
		return;
	p->io.drained = NULL;
	ev_timer_stop(loop, &p->io.w_drain);
	done(p);
}

static void drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sv_proc *p = w->data;

	(void)revents;
	log_warnx("%s: the terminal's output did not end within 2 s of the "
		  "exit", p->task->id);
	drain_end(loop, p);
}

bool sv_io_draining(struct sv *s, struct sv_proc *p,
		    void (*done)(struct sv_proc *p))
{
	if (!p->terminal || !p->io.out_on)
		return false;
	p->io.drained = done;
	ev_timer_init(&p->io.w_drain, drain_timeout, 2., 0.);
	p->io.w_drain.data = p;
	/* After a blocking call into sandbox/ the loop's clock is old. */
	ev_now_update(s->loop);
	ev_timer_start(s->loop, &p->io.w_drain);
	return true;
}

static void master_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sv_proc *p = w->data;
	struct sv_io *io = &p->io;
	ssize_t n;

	(void)revents;
	if (w->fd == io->master) {
		/* master readable: to stdout's fifo */
		n = read(io->master, io->buf, TTY_CHUNK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			/* EIO: every slave is closed and all read. */
			ev_io_stop(loop, w);
			io->out_on = false;
			drain_end(loop, p);
			return;
		}
		io->blen = (size_t)n;
		io->boff = 0;
		if (io->tout < 0) {
			io->blen = 0;
			return;
		}
		ev_io_stop(loop, w);
		ev_io_set(w, io->tout, EV_WRITE);
		ev_io_start(loop, w);
		return;
	}
	/* stdout's fifo writable */
	n = write(io->tout, io->buf + io->boff, io->blen - io->boff);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* Nobody reads: the output is dropped, the process goes on. */
		close(io->tout);
		io->tout = -1;
		n = (ssize_t)(io->blen - io->boff);
	}
	io->boff += (size_t)n;
	if (io->boff < io->blen)
		return;
	ev_io_stop(loop, w);
	ev_io_set(w, io->master, EV_READ);
	ev_io_start(loop, w);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sv_proc *p = w->data;
	struct sv_io *io = &p->io;
	char buf[4096];
	ssize_t n;

	(void)revents;
	n = read(io->tin, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* containerd's writer came and went. */
		tty_eof(p);
		return;
	}
	/* The master takes a little at a time: blocking there for a
	 * moment is fine, a terminal's input is small. */
	set_block(io->master, false);
	if (husk_write_all(io->master, buf, (size_t)n) < 0)
		log_debug("write to the terminal: %s",
			  strerror(errno));
	set_block(io->master, true);
}

void sv_io_started(struct sv *s, struct sv_proc *p)
{
	struct sv_io *io = &p->io;

	/* The husk-shim has them; ours would hold the pipes and fifos
	 * open after it is gone.  But a read end of stdin's fifo, which
	 * keeps no writer waiting, tells CloseIO when it is empty. */
	if (!p->terminal && io->fds[0] >= 0) {
		io->in_peek = io->fds[0];
		io->fds[0] = -1;
	}
	for (int i = 0; i < 3; i++) {
		if (io->fds[i] >= 0 && (i == 0 || io->fds[i] != io->fds[i - 1]))
			close(io->fds[i]);
		io->fds[i] = -1;
	}
	if (!p->terminal)
		return;
	io->buf = husk_xcalloc(1, TTY_CHUNK);
	ev_io_init(&io->w_out, master_cb, io->master, EV_READ);
	io->w_out.data = p;
	ev_io_start(s->loop, &io->w_out);
	io->out_on = true;
	if (io->tin >= 0) {
		set_block(io->tin, true);
		ev_io_init(&io->w_in, stdin_cb, io->tin, EV_READ);
		io->w_in.data = p;
		ev_io_start(s->loop, &io->w_in);
		io->in_on = true;
	}
}

static void tty_eof(struct sv_proc *p)
{
	static const char eof = 4;

	if (ev_is_active(&p->io.w_in))
		ev_io_stop(sv->loop, &p->io.w_in);
	p->io.in_on = false;
	if (p->io.master >= 0 && write(p->io.master, &eof, 1) < 0)
		log_debug("^D: %s", strerror(errno));
}

bool sv_io_close_stdin(struct sv_proc *p)
{
	if (!p->terminal)
		return false;
	/* The terminal's end of file, as the agent's close_stdin does. */
	if (p->io.in_on)
		tty_eof(p);
	return true;
}

/*
 * CloseIO of a process whose stdin the husk-shim relays from a fifo.
 * The husk-shim closes the process's stdin itself after the last bytes,
 * on its own connection, once the fifo's writers are gone, which ctr's
 * and containerd's are before they send CloseIO.  The agent's
 * close_stdin would come by another connection and could overtake
 * those bytes: it is sent only once the fifo has stayed empty for
 * CLOSEIN_QUIET ticks, for a writer that stays (or after CLOSEIN_MAX
 * ticks with bytes nobody reads).
 */
#define CLOSEIN_TICK 0.05
#define CLOSEIN_QUIET 10
#define CLOSEIN_MAX 200

static void closein_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sv_proc *p = w->data;
	struct sv_io *io = &p->io;
	void (*close_now)(struct sv_proc *) = io->closein;
	int n = 0;

	(void)revents;
	if (ioctl(io->in_peek, FIONREAD, &n) < 0)
		n = 0;
	io->closein_ticks++;
	if (n > 0)
		io->closein_quiet = 0;
	else
		io->closein_quiet++;
	if (io->closein_quiet < CLOSEIN_QUIET &&
	    io->closein_ticks < CLOSEIN_MAX)
		return;
	ev_timer_stop(loop, w);
	io->closein = NULL;
	close(io->in_peek);
	io->in_peek = -1;
	if (close_now)
		close_now(p);
}

bool sv_io_close_stdin_later(struct sv *s, struct sv_proc *p,
			     void (*close_now)(struct sv_proc *p))
{
	struct sv_io *io = &p->io;

	if (p->terminal || io->in_peek < 0)
		return false;
	if (io->closein)
		return true;            /* a CloseIO before it */
	io->closein = close_now;
	io->closein_ticks = io->closein_quiet = 0;
	ev_timer_init(&io->w_closein, closein_cb, CLOSEIN_TICK, CLOSEIN_TICK);
	io->w_closein.data = p;
	ev_timer_start(s->loop, &io->w_closein);
	return true;
}

/* What the master still holds, written out (the process has exited:
 * its terminal's last output comes before its exit event). */
static void tty_flush(struct sv *s, struct sv_proc *p)
{
	struct sv_io *io = &p->io;
	ssize_t n;

	(void)s;
	if (io->master < 0 || !io->buf)
		return;
	if (io->tout >= 0 && io->boff < io->blen) {
		set_block(io->tout, false);
		husk_write_all(io->tout, io->buf + io->boff,
			       io->blen - io->boff);
	}
	io->blen = io->boff = 0;
	while ((n = read(io->master, io->buf, TTY_CHUNK)) > 0) {
		if (io->tout >= 0) {
			set_block(io->tout, false);
			husk_write_all(io->tout, io->buf, (size_t)n);
		}
	}
}

void sv_io_close(struct sv *s, struct sv_proc *p)
{
	struct sv_io *io = &p->io;

	if (ev_is_active(&io->w_out))
		ev_io_stop(s->loop, &io->w_out);
	if (ev_is_active(&io->w_in))
		ev_io_stop(s->loop, &io->w_in);
	if (ev_is_active(&io->w_drain))
		ev_timer_stop(s->loop, &io->w_drain);
	io->drained = NULL;
	if (ev_is_active(&io->w_closein))
		ev_timer_stop(s->loop, &io->w_closein);
	io->closein = NULL;
	if (io->in_peek >= 0)
		close(io->in_peek);
	io->in_peek = -1;
	tty_flush(s, p);
	for (int i = 0; i < 3; i++) {
		if (io->fds[i] >= 0 && (i == 0 || io->fds[i] != io->fds[i - 1]))
			close(io->fds[i]);
		io->fds[i] = -1;
	}
	if (io->master >= 0) close(io->master);
	if (io->tin >= 0) close(io->tin);
	if (io->tout >= 0) close(io->tout);
	io->master = io->tin = io->tout = -1;
	free(io->buf);
	io->buf = NULL;
	/* The logger sees the end of both pipes and leaves; not waited
	 * for (it may flush for a while): the loop reaps it. */
	io->logger = 0;
}

int sv_io_resize(struct sv_proc *p, unsigned w, unsigned h,
		 struct husk_err **err)
{
	struct winsize ws = { .ws_row = (unsigned short)h,
			      .ws_col = (unsigned short)w };

	if (p->io.master < 0)
		return husk_error(err, HUSK_E_STATE, "process %s has no "
				  "terminal open", p->exec_id);
	if (ioctl(p->io.master, TIOCSWINSZ, &ws) < 0)
		return husk_error_sys(err, errno, "resize the terminal");
	/* The husk-shim reads its terminal's size on SIGWINCH and sends
	 * it to the guest. */
	if (p->pid > 0 && !p->exited)
		kill(p->pid, SIGWINCH);
	return 0;
}
