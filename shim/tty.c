/*
 * Terminals.  With --terminal the process has a pty in the guest, which
 * does the line discipline; the host side only relays bytes, so
 * whatever host terminal is in the way is put in raw mode.
 *
 *   - our stdin is a tty: raw mode on it (restored when leaving), its
 *     window size forwarded at start and on SIGWINCH;
 *   - --console-socket PATH: as runc does, a new pty pair, the master
 *     sent over the unix socket at PATH (one SCM_RIGHTS message whose
 *     bytes are the pty's name), and the shim relays between the slave
 *     and the agent.  The master's holder resizes the master; no
 *     SIGWINCH reaches the shim, so the size is polled.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shim.h"

#define SIZE_POLL 0.25

bool shim_tty_size(struct shim *s, unsigned short *rows,
		   unsigned short *cols)
{
	struct winsize ws;

	if (s->size_fd < 0 || ioctl(s->size_fd, TIOCGWINSZ, &ws) < 0)
		return false;
	if (ws.ws_row == 0 && ws.ws_col == 0)
		return false;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return true;
}

static int make_raw(struct shim *s, int fd, struct husk_err **err)
{
	struct termios tio;

	if (tcgetattr(fd, &tio) < 0)
		return husk_error_sys(err, errno, "tcgetattr");
	if (fd == 0) {
		s->saved_tio = tio;
		s->raw_fd = fd;
	}
	cfmakeraw(&tio);
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return husk_error_sys(err, errno, "tcsetattr");
	return 0;
}

/*
 * Open a pty pair and pass the master to whoever listens on path (the
 * caller of `husk create --console-socket`).  Keeps the slave.
 */
static int console_socket(struct shim *s, struct husk_err **err)
{
	cleanup_close int master = -1, sock = -1;
	char name[128];
	int slave = -1;

	if (openpty(&master, &slave, name, NULL, NULL) < 0)
		return husk_error_sys(err, errno, "openpty");
	s->pty_slave = slave;
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	sock = ipc_connect_path(s->console_socket, 0, err);
	if (sock < 0)
		return husk_error_wrap(err, "--console-socket");
	if (ipc_send_fds(sock, name, strlen(name), &master, 1) < 0)
		return husk_error_sys(err, errno, "send the pty master to `%s`",
				      s->console_socket);
	if (make_raw(s, slave, err) < 0)
		return -1;
	fcntl(slave, F_SETFL, fcntl(slave, F_GETFL) | O_NONBLOCK);
	s->in_fd = slave;
	s->size_fd = slave;
	for (int i = 0; i < 2; i++) {
		s->out[i].num = i + 1;
		s->out[i].fd = slave;
		s->out[i].is_tty = false;
		s->out[i].saved_flags = -1;
	}
	return 0;
}

/* Output fds that are pipes or files go non-blocking (restored when
 * leaving); a shared terminal stays as it is. */
static void out_setup(struct oqueue *q, int fd, int num)
{
	q->num = num;
	q->fd = fd;
	q->saved_flags = -1;
	q->is_tty = isatty(fd);
	if (!q->is_tty) {
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK) &&
		    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
			q->saved_flags = fl;
	}
}

int shim_tty_setup(struct shim *s, struct husk_err **err)
{
	s->raw_fd = -1;
	s->size_fd = -1;
	s->pty_slave = -1;
	/* Console mode: stdio is /dev/null and the log (main.c), and the
	 * pty is all we relay. */
	if (s->console_socket)
		return console_socket(s, err);
	s->in_fd = fcntl(0, F_GETFD) < 0 ? -1 : 0;
	out_setup(&s->out[0], 1, 1);
	out_setup(&s->out[1], 2, 2);
	if (!s->terminal)
		return 0;
	if (isatty(0)) {
		s->size_fd = 0;
		return make_raw(s, 0, err);
	}
	if (isatty(1))
		s->size_fd = 1;
	return 0;
}

void shim_tty_restore(struct shim *s)
{
	if (s->raw_fd >= 0)
		tcsetattr(s->raw_fd, TCSADRAIN, &s->saved_tio);
	s->raw_fd = -1;
	for (int i = 0; i < 2; i++)
		if (s->out[i].saved_flags >= 0)
			fcntl(s->out[i].fd, F_SETFL, s->out[i].saved_flags);
}

static void size_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	shim_send_winsize(shim);
}

void shim_tty_start(struct shim *s)
{
	if (s->pty_slave < 0)
		return;
	ev_timer_init(&s->size_poll, size_poll_cb, SIZE_POLL, SIZE_POLL);
	ev_timer_start(s->loop, &s->size_poll);
}
