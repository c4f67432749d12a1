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

static void oq_ack(struct shim *s, struct oqueue *q, uint64_t n)
{
	msgpack_packer *pk = ipc_notify_begin(s->conn, AGENT_N_OUTPUT_ACK);

	if (!pk)
		return;
	pack_ids(s, pk, 2);
	ipc_pack_kv_uint(pk, "stream", q->num);
	ipc_pack_kv_uint(pk, "bytes", n);
	ipc_notify_send(s->conn);
}

static void oq_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim *s = shim;
	struct oqueue *q = w->data;
	uint64_t done = 0;
	struct ochunk *c;

	while ((c = q->head)) {
		size_t want = c->len - c->off;
		ssize_t n;

		/* A terminal stays blocking (it is shared with our caller):
		 * write what poll said fits, a piece at a time. */
		if (q->is_tty && want > 4096)
			want = 4096;
		if (q->broken)
			n = (ssize_t)want;
		else
			n = write(q->fd, c->data + c->off, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* Our reader is gone (EPIPE, EIO): discard from now
			 * on, as a process writing to a closed pipe would
			 * lose it, but keep acknowledging so it is not
			 * stalled. */
			log_debug("stream %d: %s", q->num,
				  strerror(errno));
			q->broken = true;
			continue;
		}
		c->off += n;
		done += n;
		q->queued -= n;
		if (c->off == c->len) {
			q->head = c->next;
			if (!q->head)
				q->tail = NULL;
			free(c);
		}
		if (q->is_tty)
			break;
	}
	if (done)
		oq_ack(s, q, done);
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
	ch = husk_xmalloc(sizeof(*ch) + o.data.len);
	ch->next = NULL;
	ch->len = o.data.len;
	ch->off = 0;
	memcpy(ch->data, o.data.p, o.data.len);
	if (q->tail)
		q->tail->next = ch;
	else
		q->head = ch;
	q->tail = ch;
	q->queued += o.data.len;
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

	s->in_busy = false;
	if (err) {
		if (peer_lost(s, resp, err, "write_stdin"))
			return;
		/* The process closed its stdin or exited: stop relaying. */
		log_debug("%s", err->msg);
		s->in_closed = true;
		return;
	}
	if (!s->in_closed)
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
	if (ipc_call_send(s->conn, 0., NULL, 0, stdin_done, NULL, NULL) == 0) {
		/* one write in flight: the agent's answer paces us */
		s->in_busy = true;
		ev_io_stop(loop, w);
	}
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
	for (int i = 0; i < 2; i++) {
		ev_io_init(&s->out[i].w, oq_write_cb, s->out[i].fd, EV_WRITE);
		s->out[i].w.data = &s->out[i];
	}
	return 0;
}
