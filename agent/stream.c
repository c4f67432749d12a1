/*
 * A container process as the host sees it: its stdio relayed as
 * `output` notifications with a window per stream (docs/agent-protocol.md,
 * "Output and flow control"), write_stdin answered once written, and
 * its exit, answered to wait_process only after both streams' EOF went
 * out on the same connection.
 *
 * Output goes to the current host connection only; while there is none
 * the agent stops reading (the process blocks on a full pipe).  A new
 * connection starts every stream with a fresh window.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/core.h"

#define GRACE_SECONDS 1.0

static void stream_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void stdin_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void proc_check_done(struct proc *p);

static struct ev_loop *loop_of(struct proc *p)
{
	return p->ct->a->core->loop;
}

struct proc *proc_new(struct container *ct, const char *exec_id)
{
	struct proc *p = husk_xcalloc(1, sizeof(*p));

	p->ct = ct;
	p->exec_id = husk_xstrdup(exec_id);
	p->stdin_fd = p->sync_fd = p->err_fd = -1;
	for (int i = 0; i < 2; i++) {
		p->out[i].p = p;
		p->out[i].no = i + 1;
		p->out[i].fd = -1;
		ev_io_init(&p->out[i].w, stream_io_cb, -1, EV_READ);
		p->out[i].w.data = &p->out[i];
	}
	ev_io_init(&p->stdin_w, stdin_io_cb, -1, EV_WRITE);
	p->stdin_w.data = p;
	ev_timer_init(&p->grace, grace_cb, GRACE_SECONDS, 0.);
	p->grace.data = p;
	return p;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Read only while a host is connected and the window has room. */
static void stream_update(struct stream *s)
{
	struct ev_loop *loop = loop_of(s->p);
	bool want = s->fd >= 0 && agent_conn(s->p->ct->a) &&
		    s->inflight < AGENT_OUTPUT_WINDOW;

	if (want && !ev_is_active(&s->w))
		ev_io_start(loop, &s->w);
	else if (!want && ev_is_active(&s->w))
		ev_io_stop(loop, &s->w);
}

static int send_output(struct stream *s, const void *data, size_t len)
{
	struct ipc_conn *c = agent_conn(s->p->ct->a);
	msgpack_packer *pk;

	if (!c)
		return -1;
	pk = ipc_notify_begin(c, "output");
	if (!pk)
		return -1;
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_str(pk, "container_id", s->p->ct->id);
	ipc_pack_kv_str(pk, "exec_id", s->p->exec_id);
	ipc_pack_kv_uint(pk, "stream", (uint64_t)s->no);
	/* The data goes from the read buffer, not copied into the message. */
	ipc_pack_key(pk, "data");
	msgpack_pack_bin(pk, len);
	return ipc_notify_send_tail(c, data, len);
}

/* Close the read side; the EOF goes out now or when a host is back. */
static void stream_close(struct stream *s)
{
	if (s->fd >= 0) {
		ev_io_stop(loop_of(s->p), &s->w);
		close(s->fd);
		s->fd = -1;
	}
	if (!s->eof_sent && send_output(s, "", 0) == 0)
		s->eof_sent = true;
}

/* Messages sent per wake-up of a stream while its window has room: a
 * full pipe is taken in one turn of the loop, not one a turn. */
#define READS_PER_WAKEUP 4

static void stream_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *s = w->data;
	static char buf[AGENT_OUTPUT_CHUNK];

	for (int i = 0; i < READS_PER_WAKEUP &&
	     s->inflight < AGENT_OUTPUT_WINDOW; i++) {
		size_t room = AGENT_OUTPUT_WINDOW - s->inflight;
		ssize_t n;

		if (room > sizeof(buf))
			room = sizeof(buf);
		n = read(s->fd, buf, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* EIO: the terminal's last slave is closed. */
			stream_close(s);
			proc_check_done(s->p);
			return;
		}
		if (send_output(s, buf, (size_t)n) < 0) {
			log_warnx("%s: output of %s/%s lost (no host)",
				  __func__, s->p->ct->id, s->p->exec_id);
			break;
		}
		s->inflight += (uint64_t)n;
		if ((size_t)n < room)
			break;
	}
	stream_update(s);
}

void proc_stdio_start(struct proc *p, int in, int out, int err, bool tty)
{
	p->tty = tty;
	p->stdin_fd = in;
	set_nonblock(in);
	ev_io_set(&p->stdin_w, in, EV_WRITE);
	p->out[0].fd = out;
	p->out[1].fd = err;
	for (int i = 0; i < 2; i++) {
		if (p->out[i].fd < 0) {
			stream_close(&p->out[i]);
			continue;
		}
		set_nonblock(p->out[i].fd);
		ev_io_set(&p->out[i].w, p->out[i].fd, EV_READ);
		stream_update(&p->out[i]);
	}
}

void stream_conn_changed(struct agent *a)
{
	for (struct container *ct = a->core->containers; ct; ct = ct->next) {
		for (struct proc *p = ct->procs; p; p = p->next) {
			for (int i = 0; i < 2; i++) {
				struct stream *s = &p->out[i];

				s->inflight = 0;
				if (s->fd < 0 && !s->eof_sent)
					stream_close(s);
				stream_update(s);
			}
		}
	}
}

/* ------------------------------------------------------------------ */
/* exits and waits                                                     */

bool proc_done(const struct proc *p)
{
	return p->exited && p->out[0].eof_sent && p->out[1].eof_sent;
}

static void answer_waiters(struct proc *p)
{
	struct pending *w;

	while ((w = p->waiters)) {
		p->waiters = w->next;
		if (!ipc_conn_closed(w->c)) {
			msgpack_packer *pk = ipc_reply_begin(w->c, w->msgid);

			if (pk) {
				msgpack_pack_map(pk, 1);
				ipc_pack_kv_int(pk, "status", p->status);
				ipc_reply_send(w->c);
			}
		}
		ipc_conn_unref(w->c);
		free(w);
	}
}

static void proc_check_done(struct proc *p)
{
	if (proc_done(p)) {
		ev_timer_stop(loop_of(p), &p->grace);
		answer_waiters(p);
	}
}

/* Streams still open a second after the exit are held by someone else
 * (a daemonised child): take what is there and end them. */
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proc *p = w->data;

	for (int i = 0; i < 2; i++) {
		struct stream *s = &p->out[i];

		if (s->fd >= 0 && s->inflight >= AGENT_OUTPUT_WINDOW &&
		    agent_conn(p->ct->a)) {
			/* Waiting for the host's acks, not for a writer. */
			ev_timer_set(&p->grace, GRACE_SECONDS, 0.);
			ev_timer_start(loop, &p->grace);
			continue;
		}
		stream_close(s);
	}
	proc_check_done(p);
}

static void fail_writes(struct proc *p, const char *why)
{
	struct pending *w;

	while ((w = p->writes)) {
		p->writes = w->next;
		if (!ipc_conn_closed(w->c))
			ipc_reply_error(w->c, w->msgid, HUSK_E_STATE, "%s", why);
		ipc_conn_unref(w->c);
		free(w->data);
		free(w);
	}
}

static void stdin_close(struct proc *p)
{
	ev_io_stop(loop_of(p), &p->stdin_w);
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	p->stdin_fd = -1;
}

void proc_exited(struct proc *p, int status)
{
	p->exited = true;
	p->status = status;
	log_debug("%s: %s/%s (pid %d) exited with %d", __func__, p->ct->id,
		  p->exec_id, (int)p->pid, status);
	/* A report still awaited reads what is left in the pipe, and its
	 * answer goes out before the exit does. */
	if (p->wait) {
		p->exit_held = true;
		return;
	}
	proc_exit_finish(p);
}

void proc_exit_finish(struct proc *p)
{
	p->exit_held = false;
	fail_writes(p, "the process has exited");
	stdin_close(p);
	if (p->sync_fd >= 0)
		close(p->sync_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->sync_fd = p->err_fd = -1;
	if (!proc_done(p))
		ev_timer_start(loop_of(p), &p->grace);
	proc_check_done(p);
}

void proc_free(struct proc *p)
{
	struct pending *w;

	spawn_cancel(p);
	fail_writes(p, "the container was removed");
	while ((w = p->waiters)) {
		p->waiters = w->next;
		if (!ipc_conn_closed(w->c))
			ipc_reply_error(w->c, w->msgid, HUSK_E_STATE,
					"the container was removed");
		ipc_conn_unref(w->c);
		free(w);
	}
	stdin_close(p);
	for (int i = 0; i < 2; i++) {
		ev_io_stop(loop_of(p), &p->out[i].w);
		if (p->out[i].fd >= 0)
			close(p->out[i].fd);
	}
	ev_timer_stop(loop_of(p), &p->grace);
	if (p->sync_fd >= 0)
		close(p->sync_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	free(p->exec_id);
	free(p);
}

/* ------------------------------------------------------------------ */
/* handlers                                                            */

int agent_m_wait_process(struct ipc_conn *c, struct ipc_msg *m, void *params,
			 void *arg, struct husk_err **err)
{
	struct proc *p = ct_lookup_proc(arg, params, err);
	struct pending *w;

	if (!p)
		return -1;
	if (proc_done(p)) {
		msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "status", p->status);
		ipc_reply_send(c);
		return 0;
	}
	w = husk_xcalloc(1, sizeof(*w));
	w->c = c;
	w->msgid = m->msgid;
	ipc_conn_ref(c);
	w->next = p->waiters;
	p->waiters = w;
	return 0;
}

static void stdin_pump(struct proc *p)
{
	struct pending *w;

	while ((w = p->writes)) {
		ssize_t n = write(p->stdin_fd, w->data + w->off,
				  w->len - w->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ev_io_start(loop_of(p), &p->stdin_w);
			return;
		}
		if (n < 0) {
			fail_writes(p, errno == EPIPE ?
				    "stdin is closed by the process" :
				    "write to stdin failed");
			break;
		}
		w->off += (size_t)n;
		if (w->off < w->len)
			continue;
		p->writes = w->next;
		if (!ipc_conn_closed(w->c)) {
			msgpack_packer *pk = ipc_reply_begin(w->c, w->msgid);

			msgpack_pack_map(pk, 1);
			ipc_pack_kv_uint(pk, "len", w->len);
			ipc_reply_send(w->c);
		}
		ipc_conn_unref(w->c);
		free(w->data);
		free(w);
	}
	ev_io_stop(loop_of(p), &p->stdin_w);
	if (p->stdin_closing) {
		/* A terminal has no separate stdin to close: send the EOF
		 * character (the line discipline's ^D) instead. */
		if (p->tty && p->stdin_fd >= 0)
			(void)!write(p->stdin_fd, "\004", 1);
		stdin_close(p);
	}
}

static void stdin_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	stdin_pump(w->data);
}

int agent_m_write_stdin(struct ipc_conn *c, struct ipc_msg *m, void *params,
			void *arg, struct husk_err **err)
{
	const struct ct_params *pp = params;
	struct proc *p = ct_lookup_proc(arg, pp, err);
	struct pending *w, **tail;

	if (!p)
		return -1;
	if (p->stdin_fd < 0 || p->stdin_closing)
		return husk_error(err, HUSK_E_STATE, "%s/%s: stdin is closed",
				  p->ct->id, p->exec_id);
	w = husk_xcalloc(1, sizeof(*w));
	w->c = c;
	w->msgid = m->msgid;
	w->len = pp->data.len;
	w->data = husk_xmalloc(w->len ? w->len : 1);
	memcpy(w->data, pp->data.p, w->len);
	ipc_conn_ref(c);
	for (tail = &p->writes; *tail; tail = &(*tail)->next)
		;
	*tail = w;
	if (!ev_is_active(&p->stdin_w))
		stdin_pump(p);
	return 0;
}

int agent_m_close_stdin(struct ipc_conn *c, struct ipc_msg *m, void *params,
			void *arg, struct husk_err **err)
{
	struct proc *p = ct_lookup_proc(arg, params, err);

	if (!p)
		return -1;
	if (p->stdin_fd >= 0 && !p->stdin_closing) {
		p->stdin_closing = true;
		if (!ev_is_active(&p->stdin_w))
			stdin_pump(p);
	}
	ipc_reply_ok(c, m->msgid);
	return 0;
}

int agent_m_tty_winresize(struct ipc_conn *c, struct ipc_msg *m,
			  void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *pp = params;
	struct proc *p = ct_lookup_proc(arg, pp, err);
	struct winsize ws = { 0 };

	if (!p)
		return -1;
	if (!p->tty || p->out[0].fd < 0)
		return husk_error(err, HUSK_E_STATE, "%s/%s: no terminal",
				  p->ct->id, p->exec_id);
	ws.ws_row = (unsigned short)pp->rows;
	ws.ws_col = (unsigned short)pp->cols;
	if (ioctl(p->out[0].fd, TIOCSWINSZ, &ws) < 0)
		return husk_error(err, HUSK_E_SYSTEM, "TIOCSWINSZ: %s",
				  strerror(errno));
	ipc_reply_ok(c, m->msgid);
	return 0;
}

/* The flow-control ack (a notification): its row has no params table,
 * because a bad one is the host breaking the protocol, which drops the
 * connection. */
struct ack_params {
	char *container_id;
	char *exec_id;
	int64_t stream;
	uint64_t bytes;
};

static const struct ipc_field ack_fields[] = {
	{ "container_id", IPC_F_STR, IPC_REQUIRED,
	  offsetof(struct ack_params, container_id), 0, HUSK_ID_MAX },
	{ "exec_id", IPC_F_STR, IPC_REQUIRED,
	  offsetof(struct ack_params, exec_id), 0, HUSK_ID_MAX },
	{ "stream", IPC_F_INT64, IPC_REQUIRED,
	  offsetof(struct ack_params, stream), 1, 2 },
	{ "bytes", IPC_F_UINT64, IPC_REQUIRED,
	  offsetof(struct ack_params, bytes), 0, UINT32_MAX },
	{ NULL, 0, 0, 0, 0, 0 },
};

int agent_m_output_ack(struct ipc_conn *c, struct ipc_msg *m, void *params,
		       void *arg, struct husk_err **errp)
{
	struct ack_params pp = { 0 };
	struct husk_err *err = NULL;
	struct container *ct;
	struct proc *p;
	struct stream *s;

	if (ipc_decode(m->params, ack_fields, &pp, &err) < 0) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
		ipc_conn_close(c, NULL);
		return 0;
	}
	ct = ct_find(arg, pp.container_id);
	p = ct ? ct_proc(ct, pp.exec_id) : NULL;
	/* An ack for a process already removed is a harmless race. */
	if (p && c == agent_conn(arg)) {
		s = &p->out[pp.stream - 1];
		if (pp.bytes > s->inflight) {
			struct husk_err *e = NULL;

			husk_error(&e, HUSK_E_PROTOCOL,
				   "output_ack of %llu bytes beyond the %llu sent",
				   (unsigned long long)pp.bytes,
				   (unsigned long long)s->inflight);
			log_warnx("%s: %s", __func__, e->msg);
			ipc_conn_close(c, e);
			husk_err_free(e);
		} else {
			s->inflight -= pp.bytes;
			stream_update(s);
		}
	}
	ipc_decode_free(ack_fields, &pp);
	return 0;
}
