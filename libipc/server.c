/*
 * Servers: a listening unix socket on the loop; every accepted peer is
 * checked by SO_PEERCRED before anything is read from it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../libhusk/log.h"
#include "../libhusk/util.h"
#include "conn-int.h"
#include "ipc.h"

struct srv_conn {
	struct srv_conn *next, *prev;
	struct ipc_conn *c;
};

struct ipc_server {
	struct ev_loop *loop;
	int fd;
	char *path;             /* unlinked on free; NULL for adopted fds */
	dev_t dev;              /* the socket file we bound there */
	ino_t ino;
	ev_io lio;
	ev_timer pause;         /* accepting stopped: table full */
	struct ipc_ratelimit rl;
	struct ipc_server_opts o;
	uid_t *allowed;
	struct srv_conn *conns;
	size_t nconns;
};

/*
 * Accepting fails on a full descriptor table (or short memory) with the
 * peer still queued, so the listening socket stays readable: stop
 * watching it for IPC_ACCEPT_PAUSE seconds, or until one of our
 * connections closes, rather than spin.
 */
static void accept_pause(struct ipc_server *s, int e)
{
	unsigned held = 0;

	ev_io_stop(s->loop, &s->lio);
	if (ev_is_active(&s->pause))
		return;
	if (ipc_ratelimit(&s->rl, ev_now(s->loop), &held))
		log_warnx("%s: %s; accepting paused for "
			  "%.1f s (%zu connections)%s",
			  s->path ? s->path : "socket", strerror(e),
			  IPC_ACCEPT_PAUSE, s->nconns,
			  held ? " (earlier lines like this suppressed)" : "");
	ev_timer_set(&s->pause, IPC_ACCEPT_PAUSE, 0.);
	ev_timer_start(s->loop, &s->pause);
}

static void accept_resume(struct ipc_server *s)
{
	ev_timer_stop(s->loop, &s->pause);
	ev_io_start(s->loop, &s->lio);
}

static void pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	accept_resume(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_server *s = w->data;

	for (int i = 0; i < 64; i++) {
		struct husk_err *e = NULL;
		struct srv_conn *sc;
		struct ipc_conn *c;
		uid_t uid;
		pid_t pid;
		int fd;

		fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(s, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("%s",
					 s->path ? s->path : "accept");
			return;
		}
		if (ipc_peer_cred(fd, &pid, &uid, NULL, &e) < 0) {
			log_warnx("%s", e->msg);
			husk_err_free(e);
			close(fd);
			continue;
		}
		if (!ipc_uid_allowed(uid, s->allowed, s->o.nallowed)) {
			log_warnx("refusing pid %d uid %u on "
				  "%s: uid not allowed", (int)pid,
				  (unsigned)uid, s->path ? s->path : "socket");
			close(fd);
			continue;
		}
		c = ipc_conn_new(loop, fd, &s->o.conn, &e);
		if (!c) {
			log_warnx("%s", e->msg);
			husk_err_free(e);
			continue;
		}
		sc = husk_xcalloc(1, sizeof(*sc));
		sc->c = c;
		sc->next = s->conns;
		if (sc->next)
			sc->next->prev = sc;
		s->conns = sc;
		s->nconns++;
		ipc_conn_set_server(c, s);
		if (s->o.on_accept)
			s->o.on_accept(s, c, s->o.conn.arg);
	}
}

void ipc_server_conn_gone(struct ipc_server *s, struct ipc_conn *c)
{
	for (struct srv_conn *sc = s->conns; sc; sc = sc->next) {
		if (sc->c != c)
			continue;
		if (sc->prev)
			sc->prev->next = sc->next;
		else
			s->conns = sc->next;
		if (sc->next)
			sc->next->prev = sc->prev;
		s->nconns--;
		free(sc);
		/* A descriptor came free: try the waiting peers now. */
		if (ev_is_active(&s->pause))
			accept_resume(s);
		return;
	}
}

struct ipc_server *ipc_server_new_fd(struct ev_loop *loop, int listen_fd,
				     const struct ipc_server_opts *o,
				     struct husk_err **err)
{
	struct ipc_server *s;

	if (!o || !o->conn.component) {
		close(listen_fd);
		husk_error(err, HUSK_E_INVALID,
			   "ipc_server_new: a component name is needed");
		return NULL;
	}
	s = husk_xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->fd = listen_fd;
	s->o = *o;
	s->o.conn.role = IPC_ROLE_SERVER;
	if (o->nallowed) {
		s->allowed = husk_xcalloc(o->nallowed, sizeof(uid_t));
		memcpy(s->allowed, o->allowed_uids, o->nallowed * sizeof(uid_t));
	}
	s->o.allowed_uids = s->allowed;
	ev_io_init(&s->lio, accept_cb, listen_fd, EV_READ);
	s->lio.data = s;
	ev_timer_init(&s->pause, pause_cb, IPC_ACCEPT_PAUSE, 0.);
	s->pause.data = s;
	s->rl.interval = 60.;
	s->rl.burst = 5;
	ev_io_start(loop, &s->lio);
	return s;
}

struct ipc_server *ipc_server_new(struct ev_loop *loop, const char *path,
				  const struct ipc_server_opts *o,
				  struct husk_err **err)
{
	struct ipc_server *s;
	struct stat st;
	int fd = ipc_listen_path(path, err);

	if (fd < 0)
		return NULL;
	s = ipc_server_new_fd(loop, fd, o, err);
	if (!s) {
		unlink(path);
		return NULL;
	}
	s->path = husk_xstrdup(path);
	if (lstat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	return s;
}

/* The path names the socket we bound, not another one made there since
 * (a VM's directory moved, and a new one of the same name made). */
static bool still_ours(const struct ipc_server *s)
{
	struct stat st;

	return s->ino && lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_dev == s->dev && st.st_ino == s->ino;
}

void ipc_server_free(struct ipc_server *s)
{
	if (!s)
		return;
	ev_io_stop(s->loop, &s->lio);
	ev_timer_stop(s->loop, &s->pause);
	close(s->fd);
	if (s->path && still_ours(s))
		unlink(s->path);
	while (s->conns) {
		struct ipc_conn *c = s->conns->c;

		/* Closing unlinks it from the list (ipc_server_conn_gone). */
		ipc_conn_close(c, NULL);
	}
	free(s->allowed);
	free(s->path);
	free(s);
}

size_t ipc_server_nconns(const struct ipc_server *s)
{
	return s->nconns;
}
