/*
 * Output the guest can drive, written to files with a bound
 * (docs/hypervisor.md, "Console and logs"): the guest's serial console
 * (console.log), and QEMU's and virtiofsd's stdout and stderr
 * (qemu.log, virtiofsd.log), which carry messages a guest can provoke
 * (a broken virtio queue, a failed request) as often as it likes.
 *
 * The children write into a socketpair or a pipe whose other end the
 * driver reads.  When a log reaches its bound it becomes <log>.1
 * (replacing an older one) and a new one starts, so the disk holds at
 * most twice the bound and the newest output is kept.  One read of at
 * most SINK_CHUNK bytes per loop turn, into a fixed buffer: a flood
 * costs no memory and the RPC clients get their turns in between.  A
 * log that cannot be written (a full disk) is dropped with one warning
 * and reading goes on, so the writer never blocks.
 *
 * The log is renamed and opened again relative to its directory, held
 * open from the start: a VM from the cache moves with its directory
 * into the sandbox that takes it, and its logs follow; the path the
 * driver was given may name another VM's directory by then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

#define SINK_CHUNK (64 * 1024)

struct hv_sink {
	struct ev_loop *loop;
	ev_io io;               /* io.fd -1 once closed */
	int fd;                 /* the log, -1 when it cannot be written */
	int dirfd;              /* its directory, -1 if it could not open */
	char *path;             /* <log> as given, for messages */
	char *name, *old;       /* <log> and <log>.1 in dirfd */
	uint64_t max, size;     /* bytes: the bound, in the current log */
	uint64_t total;         /* bytes read in all */
	bool warned;
};

static void warn_once(struct hv_sink *s, const char *what)
{
	if (!s->warned)
		log_warn("sink: %s %s (output dropped)", what, s->path);
	s->warned = true;
}

/* Appends: a driver restarted on the same directory keeps what the
 * previous one wrote, and its size counts. */
static void log_open(struct hv_sink *s, bool trunc)
{
	struct stat st;

	s->fd = s->dirfd < 0 ? -1 :
		openat(s->dirfd, s->name, O_WRONLY | O_CREAT | O_APPEND |
		       O_NOFOLLOW | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0600);
	s->size = 0;
	if (s->fd < 0)
		warn_once(s, "open");
	else if (fstat(s->fd, &st) == 0)
		s->size = (uint64_t)st.st_size;
}

static void rotate(struct hv_sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0 && renameat(s->dirfd, s->name, s->dirfd, s->old) < 0 &&
	    errno != ENOENT)
		warn_once(s, "rename");
	log_open(s, true);
}

static void put(struct hv_sink *s, const char *buf, size_t n)
{
	while (n > 0) {
		uint64_t room = s->size < s->max ? s->max - s->size : 0;
		size_t len = n < room ? n : (size_t)room;

		if (room == 0) {
			rotate(s);
			/* A log that cannot be opened: count and drop. */
			if (s->fd < 0)
				s->size = 0;
			continue;
		}
		if (s->fd >= 0 && write(s->fd, buf, len) < 0) {
			warn_once(s, "write");
			close(s->fd);
			s->fd = -1;
		}
		s->size += len;
		buf += len;
		n -= len;
	}
}

/* One read; false once nothing more can come. */
static bool read_once(struct hv_sink *s)
{
	static char buf[SINK_CHUNK];
	ssize_t n = read(s->io.fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return errno == EINTR;
	if (n <= 0) {
		/* Every writer is gone (or the channel broke). */
		ev_io_stop(s->loop, &s->io);
		close(s->io.fd);
		s->io.fd = -1;
		return false;
	}
	s->total += (uint64_t)n;
	put(s, buf, (size_t)n);
	return true;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	read_once(w->data);
}

struct hv_sink *hv_sink_new(struct ev_loop *loop, const char *path,
			    uint32_t max_kb, bool sock, int *peer,
			    struct husk_err **err)
{
	struct hv_sink *s;
	int p[2];

	if (sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) :
	    pipe2(p, O_CLOEXEC)) {
		husk_error_sys(err, errno, sock ? "socketpair" : "pipe");
		return NULL;
	}
	/* Nothing goes back on a console socket, but no shutdown(SHUT_WR)
	 * either: QEMU would read the EOF as a disconnect and stop
	 * writing. */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	s = husk_xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->path = husk_xstrdup(path);
	{
		cleanup_free char *dir = husk_xstrdup(path);
		char *slash = strrchr(dir, '/');

		s->name = husk_xstrdup(slash ? slash + 1 : path);
		if (slash == dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		s->dirfd = open(slash ? dir : ".", O_PATH | O_DIRECTORY |
				O_CLOEXEC);
	}
	s->old = husk_xasprintf("%s.1", s->name);
	s->max = (uint64_t)max_kb << 10;
	log_open(s, false);
	ev_io_init(&s->io, on_read, p[0], EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	*peer = p[1];
	return s;
}

void hv_sink_drain(struct hv_sink *s)
{
	while (s && s->io.fd >= 0 && read_once(s))
		;
}

void hv_sink_free(struct hv_sink *s)
{
	if (!s)
		return;
	if (s->io.fd >= 0) {
		ev_io_stop(s->loop, &s->io);
		close(s->io.fd);
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	free(s->name);
	free(s->old);
	free(s);
}

uint64_t hv_sink_bytes(const struct hv_sink *s)
{
	return s ? s->total : 0;
}
