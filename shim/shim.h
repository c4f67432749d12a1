/*
 * husk-shim: stands in for one container process on the host
 * (docs/shim.md).
 *
 *   main.c     options, open, leaving (on libhusk/daemon.h)
 *   io.c       the proxy connection: subscribe, wait, stdin, output, signals
 *   tty.c      raw mode, window size, the --console-socket pty
 *   decode.c   what the shim reads from the proxy (guest data), decoded
 *   confine.c  the confinement profile
 */
#ifndef HUSK_SHIM_H
#define HUSK_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>

#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"

#define SHIM_COMPONENT "husk-shim"
#define SHIM_PROXY_COMPONENT PROXY_COMPONENT
/* The agent's per-stream window; the proxy never has more than this in
 * flight to us per stream, so anything beyond twice it is a bug. */
#define SHIM_WINDOW (256u * 1024u)
#define SHIM_QUEUE_MAX (2 * SHIM_WINDOW)
/* Written output is acknowledged once a loop turn, or as soon as this
 * much is written (io.c, oq_written). */
#define SHIM_ACK_BATCH (SHIM_WINDOW / 2)
/* write_stdin takes at most 1 MiB; reading 64 KiB keeps latency low. */
#define SHIM_STDIN_CHUNK (64u * 1024u)
/* write_stdin calls in flight at once (the agent holds at most this
 * many chunks of ours). */
#define SHIM_STDIN_INFLIGHT 4

struct ochunk {
	struct ochunk *next;
	uint32_t len, off;
	char data[];
};

/* One of the process's output streams, written to one of our fds. */
struct oqueue {
	int num;                /* 1 stdout, 2 stderr */
	int fd;
	bool is_tty;            /* blocking fd: write small pieces */
	int saved_flags;        /* to restore O_NONBLOCK at exit, -1 none */
	ev_io w;
	struct ochunk *head, *tail;
	uint64_t queued;
	uint64_t unacked;       /* written, not acknowledged yet */
	bool eof;               /* end received */
	bool broken;            /* our reader went away: discard */
	bool done;              /* end received and everything written */
};

struct shim {
	struct ev_loop *loop;
	const char *proxy_path;
	const char *cid, *eid;
	bool terminal;
	const char *console_socket;
	/* --ready-fd: "ok" once subscribed, else why we failed, then
	 * closed; -1 when not asked for or already told. */
	int ready_fd;

	struct ipc_conn *conn;
	bool subscribed;

	/* stdin relay */
	int in_fd;
	ev_io in_w;
	int in_flight;          /* write_stdin calls not answered yet */
	bool in_closed;

	struct oqueue out[2];
	ev_prepare ack_prep;    /* acks before the loop waits */

	/* the terminal we put in raw mode, and the one we read sizes from */
	int raw_fd;
	struct termios saved_tio;
	int size_fd;
	unsigned short rows, cols;
	ev_timer size_poll;     /* console socket: no SIGWINCH reaches us */
	int pty_slave;

	bool have_status;
	int status;
	bool leaving;
};

extern struct shim *shim;

/* Decoded output notification (decode.c). */
struct shim_output {
	char *container_id;
	char *exec_id;
	uint32_t stream;
	struct ipc_bin data;
};

int shim_decode_output(const msgpack_object *params, struct shim_output *o,
		       struct husk_err **err);
void shim_output_free(struct shim_output *o);
int shim_decode_status(const msgpack_object *result, int *status,
		       struct husk_err **err);

/* io.c */
int shim_connect(struct shim *s, struct husk_err **err);
void shim_signals_start(struct shim *s);
void shim_send_winsize(struct shim *s);
/* Tell --ready-fd's reader that we relay now. */
void shim_ready(struct shim *s);
/* Leave when the process is gone and its output is written. */
void shim_check_done(struct shim *s);

/* tty.c */
int shim_tty_setup(struct shim *s, struct husk_err **err);
void shim_tty_restore(struct shim *s);
/* Current size of the terminal; false when there is none. */
bool shim_tty_size(struct shim *s, unsigned short *rows,
		   unsigned short *cols);
void shim_tty_start(struct shim *s);

/* main.c: shim_exit leaves with the process's status; shim_fail is
 * husk_daemon_fatal (libhusk/daemon.h) */
void shim_exit(struct shim *s, int code) __attribute__((noreturn));
void shim_fail(struct shim *s, int code, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

/* confine.c: the confinement point, after open */
struct husk_daemon;
int shim_confine(struct husk_daemon *d, struct husk_err **err);

#endif
