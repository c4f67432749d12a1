/*
 * The guest's serial console, read by the driver and written to
 * console.log with a bound (docs/hypervisor.md, "Console").
 *
 * The guest writes its console as fast as the emulated UART goes, and
 * a hostile one never stops: QEMU gets one end of a socketpair as the
 * serial chardev, and the driver copies what arrives to the log.  When
 * the log reaches max_kb it becomes console.log.1 (replacing an older
 * one) and a new console.log starts, so the disk holds at most twice
 * the bound and the newest output is kept.  One read of at most
 * CON_CHUNK bytes per loop turn, into a fixed buffer: the flood costs
 * no memory and the RPC clients get their turns in between.  Once the
 * log cannot be written (a full disk), output is read and dropped, so
 * the guest never blocks on its console.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

#define CON_CHUNK (64 * 1024)

static struct {
	struct ev_loop *loop;
	ev_io io;
	int fd;                 /* console.log, -1 when it cannot be */
	char *path, *old;       /* console.log, console.log.1 */
	uint64_t max, size;     /* bytes: the bound, in the current log */
	uint64_t total;         /* bytes the guest wrote */
	bool warned;
} con = { .fd = -1 };

static int log_open(void)
{
	int fd = open(con.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
		      O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 && !con.warned) {
		log_warn("console: open %s (output dropped)", con.path);
		con.warned = true;
	}
	return fd;
}

/* console.log becomes console.log.1; a new one starts. */
static void rotate(void)
{
	if (con.fd >= 0)
		close(con.fd);
	if (rename(con.path, con.old) < 0 && errno != ENOENT &&
	    !con.warned) {
		log_warn("console: rename %s", con.path);
		con.warned = true;
	}
	con.fd = log_open();
	con.size = 0;
}

static void put(const char *buf, size_t n)
{
	while (n > 0) {
		size_t room = con.max - con.size, len = n < room ? n : room;
		ssize_t w;

		if (room == 0) {
			rotate();
			continue;
		}
		if (con.fd >= 0) {
			w = write(con.fd, buf, len);
			if (w < 0) {
				if (!con.warned)
					log_warn("console: write %s (output "
						 "dropped)", con.path);
				con.warned = true;
				close(con.fd);
				con.fd = -1;
			}
		}
		con.size += len;
		buf += len;
		n -= len;
	}
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	static char buf[CON_CHUNK];
	ssize_t n = read(w->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* QEMU is gone (or its end broke): nothing more comes. */
		hv_console_close();
		return;
	}
	con.total += (uint64_t)n;
	put(buf, (size_t)n);
}

int hv_console_open(struct ev_loop *loop, const char *path, uint32_t max_kb,
		    struct husk_err **err)
{
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return husk_error_sys(err, errno, "socketpair");
	/* Nothing goes back to the guest's UART; no shutdown(SHUT_WR)
	 * either: QEMU would read the EOF as a disconnect and stop
	 * writing. */
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	free(con.path);
	free(con.old);
	con.path = husk_xstrdup(path);
	con.old = husk_xasprintf("%s.1", path);
	con.max = (uint64_t)max_kb << 10;
	con.size = con.total = 0;
	con.loop = loop;
	con.fd = log_open();
	ev_io_init(&con.io, on_read, sp[0], EV_READ);
	ev_io_start(loop, &con.io);
	return sp[1];
}

void hv_console_close(void)
{
	if (!con.loop || con.io.fd < 0)
		return;
	ev_io_stop(con.loop, &con.io);
	close(con.io.fd);
	con.io.fd = -1;
	if (con.fd >= 0)
		close(con.fd);
	con.fd = -1;
}

uint64_t hv_console_bytes(void)
{
	return con.total;
}
