/*
 * The shim's side of the proxy connection.  Once connected it
 * subscribes to the process's output, waits for the process (no
 * timeout), relays stdin one write_stdin at a time, writes output to
 * its own stdout/stderr acknowledging what it wrote, and forwards the
 * signals it gets.  It leaves with the process's status once both
 * streams ended and everything is written.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "shim.h"

static void pack_ids(struct shim *s, msgpack_packer *pk, size_t extra)
{
	msgpack_pack_map(pk, 2 + extra);
	ipc_pack_kv_str(pk, "container_id", s->cid);
	ipc_pack_kv_str(pk, "exec_id", s->eid);
}

/* A call failed.  The proxy closing is on_close's to report; an agent
 * gone (the VM) is a lost peer too. */
static bool peer_lost(struct shim *s, struct ipc_msg *resp,
		      const struct husk_err *err, const char *what)
{
	if (!resp)
		return true;    /* closing: proxy_on_close says why */
	if (err->code == HUSK_E_UNAVAILABLE)
		shim_fail(s, HUSK_EXIT_PEER, "lost the agent: %s: %s", what,
			  err->msg);
	return false;
}

/* ---------------------------------------------------------- output */

static void oq_ack(struct shim *s, struct oqueue *q)
{
	msgpack_packer *pk;

	if (!q->unacked || !s->conn)
		return;
	pk = ipc_notify_begin(s->conn, AGENT_N_OUTPUT_ACK);
	if (!pk)
		return;
	pack_ids(s, pk, 2);
	ipc_pack_kv_uint(pk, "stream", q->num);
	ipc_pack_kv_uint(pk, "bytes", q->unacked);
	ipc_notify_send(s->conn);
	q->unacked = 0;
}

static void ack_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	oq_ack(shim, &shim->out[0]);
	oq_ack(shim, &shim->out[1]);
	ev_prepare_stop(loop, w);
}

/*
 * n more bytes written out.  Acks go in batches: what is written in one
 * turn of the loop (the messages one read brought) is acknowledged
 * once, before the loop waits again (an ev_prepare), or as soon as
 * SHIM_ACK_BATCH is reached.  Never later: the agent may be waiting
 * for that ack (the bytes still in the channel count in its window).
 */
static void oq_written(struct shim *s, struct oqueue *q, size_t n)
{
	q->unacked += n;
	if (q->unacked >= SHIM_ACK_BATCH)
		oq_ack(s, q);
	else if (!ev_is_active(&s->ack_prep))
		ev_prepare_start(s->loop, &s->ack_prep);
}

/* Write what the fd takes of p[0..n): the bytes taken, 0 when it is
 * full.  A reader gone (EPIPE, EIO) takes everything from now on: as a
 * process writing to a closed pipe would lose it, but still
 * acknowledged so that the process is not stalled. */
static size_t oq_put(struct oqueue *q, const char *p, size_t n)
{
	ssize_t w;

	/* A terminal stays blocking (it is shared with our caller): write
	 * what poll said fits, a piece at a time. */
	if (q->is_tty && n > 4096)
		n = 4096;
	while (!q->broken) {
		w = write(q->fd, p, n);
		if (w >= 0)
			return (size_t)w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		log_debug("stream %d: %s", q->num, strerror(errno));
		q->broken = true;
	}
	return n;
}

static void oq_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim *s = shim;
	struct oqueue *q = w->data;
	struct ochunk *c;

	while ((c = q->head)) {
		size_t n = oq_put(q, c->data + c->off, c->len - c->off);

		if (n == 0)
			break;
		c->off += n;
		q->queued -= n;
		oq_written(s, q, n);
		if (c->off == c->len) {
			q->head = c->next;
			if (!q->head)
				q->tail = NULL;
			free(c);
		}
		if (q->is_tty)
			break;
	}
	if (!q->head) {
		ev_io_stop(loop, &q->w);
		if (q->eof && !q->done) {
			q->done = true;
			shim_check_done(s);
		}
	}
}

/* Its row has no params table: shim_decode_output (a fuzz target's
 * entry) decodes, and a bad output from the proxy ends the shim. */
static int shim_m_output(struct ipc_conn *c, struct ipc_msg *m, void *params,
			 void *arg, struct husk_err **errp)
{
	struct shim *s = shim;
	struct husk_err *err = NULL;
	struct shim_output o;
	struct oqueue *q;
	struct ochunk *ch;
	size_t off = 0;

	if (shim_decode_output(m->params, &o, &err) < 0)
		shim_fail(s, HUSK_EXIT_PEER, "bad output from the proxy: %s",
			  err->msg);
	if (strcmp(o.container_id, s->cid) || strcmp(o.exec_id, s->eid)) {
		log_warnx("output for %s/%s ignored",
			  o.container_id, o.exec_id);
		goto out;
	}
	q = &s->out[o.stream - 1];
	if (q->eof)
		shim_fail(s, HUSK_EXIT_PEER, "output on stream %u after its "
			  "end", o.stream);
	if (o.data.len == 0) {
		q->eof = true;
		ev_feed_event(s->loop, &q->w, EV_WRITE);
		goto out;
	}
	if (q->queued + o.data.len > SHIM_QUEUE_MAX)
		shim_fail(s, HUSK_EXIT_PEER, "the proxy overran the output "
			  "window of stream %u", o.stream);
	/* Nothing waits before it: straight from the message to the fd,
	 * and only what the fd does not take is kept.  (A terminal is
	 * written when poll says so.) */
	if (!q->head && !q->is_tty) {
		off = oq_put(q, o.data.p, o.data.len);
		if (off)
			oq_written(s, q, off);
		if (off == o.data.len)
			goto out;
	}
	ch = husk_xmalloc(sizeof(*ch) + o.data.len - off);
	ch->next = NULL;
	ch->len = o.data.len - off;
	ch->off = 0;
	memcpy(ch->data, o.data.p + off, ch->len);
	if (q->tail)
		q->tail->next = ch;
	else
		q->head = ch;
	q->tail = ch;
	q->queued += ch->len;
	ev_io_start(s->loop, &q->w);
out:
	shim_output_free(&o);
	return 0;
}

void shim_check_done(struct shim *s)
{
	/* With a terminal there is one stream; an end of stderr is not
	 * waited for. */
	bool err_done = s->out[1].done || s->terminal;

	if (s->have_status && s->out[0].done && err_done)
		shim_exit(s, s->status);
}

/* ----------------------------------------------------------- stdin */

static void stdin_done(struct ipc_conn *c, struct ipc_msg *resp,
		       const struct husk_err *err, void *arg)
{
	struct shim *s = shim;

	s->in_flight--;
	if (err) {
		if (peer_lost(s, resp, err, "write_stdin"))
			return;
		/* The process closed its stdin or exited: stop relaying. */
		log_debug("%s", err->msg);
		s->in_closed = true;
		return;
	}
	if (!s->in_closed && s->in_flight < SHIM_STDIN_INFLIGHT)
		ev_io_start(s->loop, &s->in_w);
}

static void close_stdin_done(struct ipc_conn *c, struct ipc_msg *resp,
			     const struct husk_err *err, void *arg)
{
	if (err && !peer_lost(shim, resp, err, "close_stdin"))
		log_debug("%s", err->msg);
}

static void stdin_eof(struct shim *s)
{
	msgpack_packer *pk;

	ev_io_stop(s->loop, &s->in_w);
	s->in_closed = true;
	pk = ipc_call_begin(s->conn, AGENT_M_CLOSE_STDIN);
	if (!pk)
		return;
	pack_ids(s, pk, 0);
	ipc_call_send(s->conn, 0., NULL, 0, close_stdin_done, NULL, NULL);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim *s = shim;
	static char buf[SHIM_STDIN_CHUNK];
	msgpack_packer *pk;
	ssize_t n;

	n = read(s->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF, or EIO from a console whose master was closed */
		stdin_eof(s);
		return;
	}
	pk = ipc_call_begin(s->conn, AGENT_M_WRITE_STDIN);
	if (!pk)
		return;
	pack_ids(s, pk, 1);
	ipc_pack_kv_bin(pk, "data", buf, n);
	/* A few writes in flight, answered in order once written: the
	 * agent's answers pace us without a round trip per chunk. */
	if (ipc_call_send(s->conn, 0., NULL, 0, stdin_done, NULL, NULL) == 0 &&
	    ++s->in_flight >= SHIM_STDIN_INFLIGHT)
		ev_io_stop(loop, w);
}

/* --------------------------------------------------- wait, signals */

static void wait_done(struct ipc_conn *c, struct ipc_msg *resp,
		      const struct husk_err *err, void *arg)
{
	struct shim *s = shim;
	struct husk_err *e = NULL;

	if (err) {
		if (peer_lost(s, resp, err, "wait_process"))
			return;
		shim_fail(s, husk_err_exit_code(err), "wait_process: %s",
			  err->msg);
	}
	if (shim_decode_status(resp->result, &s->status, &e) < 0)
		shim_fail(s, HUSK_EXIT_PEER, "%s", e->msg);
	s->have_status = true;
	log_debug("status %d", s->status);
	shim_check_done(s);
}

static void ignore_done(struct ipc_conn *c, struct ipc_msg *resp,
			const struct husk_err *err, void *arg)
{
	if (err && !peer_lost(shim, resp, err, arg))
		log_warnx("%s: %s", (const char *)arg, err->msg);
}

void shim_send_winsize(struct shim *s)
{
	unsigned short rows, cols;
	msgpack_packer *pk;

	if (!s->subscribed || !shim_tty_size(s, &rows, &cols))
		return;
	if (rows == s->rows && cols == s->cols)
		return;
	s->rows = rows;
	s->cols = cols;
	pk = ipc_call_begin(s->conn, AGENT_M_TTY_WINRESIZE);
	if (!pk)
		return;
	pack_ids(s, pk, 2);
	ipc_pack_kv_uint(pk, "rows", rows);
	ipc_pack_kv_uint(pk, "cols", cols);
	ipc_call_send(s->conn, 0., NULL, 0, ignore_done, "tty_winresize",
		      NULL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct shim *s = shim;
	msgpack_packer *pk;

	if (w->signum == SIGWINCH) {
		shim_send_winsize(s);
		return;
	}
	log_debug("forwarding signal %d", w->signum);
	pk = ipc_call_begin(s->conn, AGENT_M_SIGNAL_PROCESS);
	if (!pk)
		return;
	pack_ids(s, pk, 1);
	ipc_pack_kv_int(pk, "signal", w->signum);
	ipc_call_send(s->conn, 0., NULL, 0, ignore_done, "signal_process",
		      NULL);
}

/* Faults are the shim's own (and SIGSYS is seccomp's), SIGKILL and
 * SIGSTOP cannot be caught, SIGCHLD and SIGPIPE are about the shim. */
static bool forwarded(int sig)
{
	switch (sig) {
	case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE:
	case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP:
	case SIGSYS:
		return false;
	}
	return sig < 32 || (sig >= SIGRTMIN && sig <= SIGRTMAX);
}

void shim_signals_start(struct shim *s)
{
	static ev_signal ws[65];
	struct sigaction sa;

	signal(SIGPIPE, SIG_IGN);
	for (int sig = 1; sig < 65 && sig <= SIGRTMAX; sig++) {
		if (!forwarded(sig))
			continue;
		ev_signal_init(&ws[sig], signal_cb, sig);
		ev_signal_start(s->loop, &ws[sig]);
		/* A shell starts background jobs with SIGINT and SIGQUIT
		 * ignored; the process should still get them.  (Blocked now,
		 * so the default action cannot strike.) */
		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
			sa.sa_handler = SIG_DFL;
			sigaction(sig, &sa, NULL);
		}
	}
}

/* ------------------------------------------------------ connection */

void shim_ready(struct shim *s)
{
	if (s->ready_fd < 0)
		return;
	if (write(s->ready_fd, "ok\n", 3) < 0)
		log_debug("%s", strerror(errno));
	close(s->ready_fd);
	s->ready_fd = -1;
}

static void subscribe_done(struct ipc_conn *c, struct ipc_msg *resp,
			   const struct husk_err *err, void *arg)
{
	struct shim *s = shim;
	msgpack_packer *pk;

	if (err) {
		if (peer_lost(s, resp, err, "subscribe"))
			return;
		shim_fail(s, husk_err_exit_code(err), "subscribe to %s/%s: %s",
			  s->cid, s->eid, err->msg);
	}
	s->subscribed = true;
	shim_ready(s);
	pk = ipc_call_begin(s->conn, AGENT_M_WAIT_PROCESS);
	pack_ids(s, pk, 0);
	ipc_call_send(s->conn, 0., NULL, 0, wait_done, NULL, NULL);
	shim_send_winsize(s);
	shim_tty_start(s);
	if (s->in_fd >= 0)
		ev_io_start(s->loop, &s->in_w);
	else
		stdin_eof(s);
}

static void proxy_on_ready(struct ipc_conn *c, void *arg)
{
	struct shim *s = shim;
	msgpack_packer *pk = ipc_call_begin(c, PROXY_M_SUBSCRIBE);

	pack_ids(s, pk, 0);
	ipc_call_send(c, 0., NULL, 0, subscribe_done, NULL, NULL);
}

static void proxy_on_close(struct ipc_conn *c, const struct husk_err *why,
			   void *arg)
{
	shim->conn = NULL;
	shim_fail(shim, HUSK_EXIT_PEER, "lost the proxy: %s",
		  why ? why->msg : "connection closed");
}

/* What the proxy sends the shim on its own. */
static const struct ipc_method proxy_methods[] = {
	IPC_METHOD(AGENT_N_OUTPUT, IPC_M_NOTIFY, shim_m_output),
	IPC_METHOD_END,
};

int shim_connect(struct shim *s, struct husk_err **err)
{
	struct ipc_conn_opts o = {
		.role = IPC_ROLE_CLIENT,
		.component = SHIM_COMPONENT,
		.expect_peer = SHIM_PROXY_COMPONENT,
		.methods = proxy_methods,
		.on_ready = proxy_on_ready,
		.on_close = proxy_on_close,
		/* the proxy relays guest data */
		.trusted = false,
		.arg = s,
	};
	int fd = ipc_connect_path(s->proxy_path, 10000, err);

	if (fd < 0)
		return -1;
	s->conn = ipc_conn_new(s->loop, fd, &o, err);
	if (!s->conn)
		return -1;
	ev_io_init(&s->in_w, stdin_cb, s->in_fd, EV_READ);
	ev_prepare_init(&s->ack_prep, ack_prepare_cb);
	for (int i = 0; i < 2; i++) {
		ev_io_init(&s->out[i].w, oq_write_cb, s->out[i].fd, EV_WRITE);
		s->out[i].w.data = &s->out[i];
	}
	return 0;
}
