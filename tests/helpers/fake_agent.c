/*
 * fake_agent: a stand-in for husk-agent on a unix socket, for the proxy
 * and shim tests (tests/bats/proxy.bats, shim.bats).
 *
 *   fake_agent --socket PATH [--mode MODE]
 *
 * It speaks the subset of docs/agent-protocol.md the proxy and shim
 * use: ping, version, create_sandbox, destroy_sandbox, create_container
 * {container_id, spec: {process: {args, terminal}}}, start_container,
 * remove_container, exec_process, signal_process, wait_process,
 * write_stdin, close_stdin, tty_winresize, and output/output_ack with
 * the 256 KiB window.  Processes run on the host (fork + exec of
 * process.args, pipes or a pty).
 *
 * A hostile MODE makes it misbehave when it gets "ping" with params
 * {hostile: true}: garbage, oversize, unsolicited, dup-answer,
 * malformed, flood, window, bad-notify, request, after-eof, and for the
 * proxy's bounds (docs/proxy.md): flood1 (1-byte outputs for 100000
 * made-up processes), eof-ghosts (ends of streams for as many), drip
 * (a full window of 1-byte outputs on both streams of container c1),
 * big (a frame just over IPC_AGENT_FRAME_MAX), window-reset (a full
 * window of c1, then the agent drops the connection), flap (drop every
 * connection once its hello is done, from then on).  Mode fat answers
 * every request "fat" with 900 KiB.  Any other ping is answered
 * normally, so a test can check the proxy works first.
 */
#include <errno.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <getopt.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"

#define WINDOW (256u * 1024u)
#define CHUNK (64u * 1024u)

struct fstream {
	int fd;
	ev_io w;
	uint64_t unacked;
	bool eof;
	struct fproc *proc;
	int num;
};

struct waiter {
	struct waiter *next;
	struct ipc_conn *c;
	uint32_t msgid;
};

struct fproc {
	struct fproc *next;
	char *cid, *eid;
	char **argv;
	bool terminal;
	pid_t pid;
	int in_fd;                 /* stdin (or the pty master) */
	int pty;                   /* pty master, -1 without a terminal */
	struct fstream out[2];
	bool exited;
	int status;
	ev_child child;
	struct waiter *waiters;
};

static struct ev_loop *loop;
static struct ipc_conn *host;   /* the one host connection */
static struct fproc *procs;
static const char *mode = "normal";
static bool flapping;

static struct fproc *find(const char *cid, const char *eid)
{
	for (struct fproc *p = procs; p; p = p->next)
		if (strcmp(p->cid, cid) == 0 && strcmp(p->eid, eid) == 0)
			return p;
	return NULL;
}

static void send_output(struct fproc *p, int num, const char *data,
			size_t len)
{
	msgpack_packer *pk;

	if (!host || !(pk = ipc_notify_begin(host, AGENT_N_OUTPUT)))
		return;
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_str(pk, "container_id", p->cid);
	ipc_pack_kv_str(pk, "exec_id", p->eid);
	ipc_pack_kv_uint(pk, "stream", num);
	ipc_pack_kv_bin(pk, "data", data, len);
	ipc_notify_send(host);
}

static void maybe_done(struct fproc *p)
{
	struct waiter *w;

	if (!p->exited || !p->out[0].eof || !p->out[1].eof)
		return;
	while ((w = p->waiters)) {
		msgpack_packer *pk = ipc_reply_begin(w->c, w->msgid);

		p->waiters = w->next;
		if (pk) {
			msgpack_pack_map(pk, 1);
			ipc_pack_kv_int(pk, "status", p->status);
			ipc_reply_send(w->c);
		}
		ipc_conn_unref(w->c);
		free(w);
	}
}

static void stream_eof(struct fstream *s)
{
	ev_io_stop(loop, &s->w);
	if (s->fd >= 0 && !(s->proc->pty >= 0 && s->num == 1))
		close(s->fd);
	s->fd = -1;
	s->eof = true;
	send_output(s->proc, s->num, "", 0);
	maybe_done(s->proc);
}

static void stream_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct fstream *s = w->data;
	static char buf[CHUNK];
	size_t room = WINDOW - s->unacked;
	ssize_t n;

	n = read(s->fd, buf, room < CHUNK ? room : CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {           /* EOF, or EIO from a pty whose slave closed */
		stream_eof(s);
		return;
	}
	s->unacked += n;
	send_output(s->proc, s->num, buf, n);
	if (s->unacked >= WINDOW)
		ev_io_stop(loop, &s->w);
}

static void child_cb(struct ev_loop *l, ev_child *w, int revents)
{
	struct fproc *p = w->data;

	ev_child_stop(loop, w);
	p->exited = true;
	p->status = WIFSIGNALED(w->rstatus) ? 128 + WTERMSIG(w->rstatus)
					    : WEXITSTATUS(w->rstatus);
	maybe_done(p);
}

static int spawn(struct fproc *p, struct husk_err **err)
{
	int in[2], out[2], errp[2], master = -1;
	pid_t pid;

	if (p->terminal) {
		pid = forkpty(&master, NULL, NULL, NULL);
		if (pid == 0) {
			/* Test processes die with the fake agent. */
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			execvp(p->argv[0], p->argv);
			_exit(127);
		}
		if (pid < 0)
			return husk_error_sys(err, errno, "forkpty");
		p->pty = p->in_fd = p->out[0].fd = master;
		p->out[1].eof = true;   /* a terminal has one stream */
		send_output(p, 2, "", 0);
	} else {
		if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
		    pipe2(errp, O_CLOEXEC))
			return husk_error_sys(err, errno, "pipe");
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			dup2(in[0], 0);
			dup2(out[1], 1);
			dup2(errp[1], 2);
			signal(SIGPIPE, SIG_DFL);
			execvp(p->argv[0], p->argv);
			_exit(127);
		}
		close(in[0]);
		close(out[1]);
		close(errp[1]);
		p->in_fd = in[1];
		p->out[0].fd = out[0];
		p->out[1].fd = errp[0];
	}
	p->pid = pid;
	for (int i = 0; i < 2; i++) {
		struct fstream *s = &p->out[i];

		if (s->eof)
			continue;
		fcntl(s->fd, F_SETFL, O_NONBLOCK);
		ev_io_init(&s->w, stream_cb, s->fd, EV_READ);
		s->w.data = s;
		ev_io_start(loop, &s->w);
	}
	ev_child_init(&p->child, child_cb, pid, 0);
	p->child.data = p;
	ev_child_start(loop, &p->child);
	return 0;
}

/* ------------------------------------------------------------ params */

struct pparams {
	char *container_id;
	char *exec_id;
	const msgpack_object *spec;
	const msgpack_object *process;
	int64_t signal;
	struct ipc_bin data;
	uint64_t rows, cols, bytes;
	uint32_t stream;
	bool hostile;
};

#define F(k, t, m, mx) { k, t, 0, offsetof(struct pparams, m), 0, mx }
static const struct ipc_field pfields[] = {
	F("container_id", IPC_F_STR, container_id, 128),
	F("exec_id", IPC_F_STR, exec_id, 128),
	F("spec", IPC_F_MAP, spec, 1000),
	F("process", IPC_F_MAP, process, 1000),
	{ "signal", IPC_F_INT64, 0, offsetof(struct pparams, signal), 1, 64 },
	F("data", IPC_F_BIN, data, 1u << 20),
	F("rows", IPC_F_UINT64, rows, 65535),
	F("cols", IPC_F_UINT64, cols, 65535),
	F("bytes", IPC_F_UINT64, bytes, UINT64_MAX),
	F("stream", IPC_F_UINT32, stream, 2),
	F("hostile", IPC_F_BOOL, hostile, 0),
	{ NULL },
};

static char **argv_of(const msgpack_object *process)
{
	const msgpack_object *a = ipc_map_get(process, "args");
	char **v;

	if (!a || a->type != MSGPACK_OBJECT_ARRAY || !a->via.array.size)
		return NULL;
	v = husk_xcalloc(a->via.array.size + 1, sizeof(*v));
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *s = &a->via.array.ptr[i];

		if (s->type != MSGPACK_OBJECT_STR)
			return NULL;
		v[i] = strndup(s->via.str.ptr, s->via.str.size);
	}
	return v;
}

static struct fproc *proc_new(const char *cid, const char *eid,
			      const msgpack_object *process)
{
	struct fproc *p = husk_xcalloc(1, sizeof(*p));
	const msgpack_object *t = ipc_map_get(process, "terminal");

	p->cid = husk_xstrdup(cid);
	p->eid = husk_xstrdup(eid);
	p->argv = argv_of(process);
	p->terminal = t && t->type == MSGPACK_OBJECT_BOOLEAN && t->via.boolean;
	p->pty = p->in_fd = p->out[0].fd = p->out[1].fd = -1;
	for (int i = 0; i < 2; i++) {
		p->out[i].proc = p;
		p->out[i].num = i + 1;
	}
	p->next = procs;
	procs = p;
	return p;
}

/* ----------------------------------------------------------- hostile */

static void send_raw(const void *data, size_t len)
{
	ipc_conn_send_frame(host, data, len, NULL, 0);
}

static void send_packed(struct ipc_buf *b)
{
	ipc_buf_finish(b, 256u << 20, NULL);
	send_raw(b->sb.data, b->sb.size);
	ipc_buf_destroy(b);
}

static void ignore_result(struct ipc_conn *c, struct ipc_msg *resp,
			  const struct husk_err *err, void *arg)
{
}

/* Output for made-up processes: n of them, len bytes each (0: the end
 * of the stream). */
static void ghosts(const char *prefix, int n, size_t len)
{
	for (int i = 0; i < n && host; i++) {
		struct fproc fake = { .eid = "" };
		char cid[48];

		snprintf(cid, sizeof(cid), "%s%d", prefix, i);
		fake.cid = cid;
		send_output(&fake, 1, "x", len);
	}
}

static void hostile_bounds(struct ipc_conn *c, uint32_t msgid)
{
	static char zero[CHUNK];
	struct fproc c1 = { .cid = "c1", .eid = "" };

	if (strcmp(mode, "flood1") == 0) {
		ghosts("ghost1-", 100000, 1);
	} else if (strcmp(mode, "eof-ghosts") == 0) {
		ghosts("ghost0-", 100000, 0);
	} else if (strcmp(mode, "drip") == 0) {
		for (unsigned i = 0; i < WINDOW && host; i++) {
			send_output(&c1, 1, "o", 1);
			send_output(&c1, 2, "e", 1);
		}
		ipc_reply_ok(c, msgid);
	} else if (strcmp(mode, "big") == 0) {
		uint32_t n = IPC_AGENT_FRAME_MAX + 1;
		char hdr[8] = { (char)(n >> 24), (char)(n >> 16),
				(char)(n >> 8), (char)n, 'x', 'x', 'x', 'x' };

		send_raw(hdr, sizeof(hdr));
	} else if (strcmp(mode, "window-reset") == 0) {
		for (unsigned i = 0; i < WINDOW / CHUNK && host; i++)
			send_output(&c1, 1, zero, sizeof(zero));
		ipc_conn_close_after_flush(c);
	} else if (strcmp(mode, "flap") == 0) {
		flapping = true;
		ipc_conn_close_after_flush(c);
	}
}

static void hostile(struct ipc_conn *c, uint32_t msgid)
{
	struct ipc_buf b;
	msgpack_packer *pk;
	static char zero[CHUNK];

	fprintf(stderr, "fake_agent: hostile mode %s\n", mode);
	if (strcmp(mode, "garbage") == 0) {
		send_raw("\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1", 9);
	} else if (strcmp(mode, "oversize") == 0) {
		send_raw("\x10\x00\x00\x00xxxx", 8);
	} else if (strcmp(mode, "unsolicited") == 0) {
		ipc_buf_init(&b);
		pk = ipc_pack_response(&b, 0x7777777);
		msgpack_pack_map(pk, 0);
		send_packed(&b);
	} else if (strcmp(mode, "dup-answer") == 0) {
		ipc_reply_ok(c, msgid);
		ipc_reply_ok(c, msgid);
	} else if (strcmp(mode, "malformed") == 0) {
		ipc_buf_init(&b);
		msgpack_pack_array(&b.pk, 2);
		msgpack_pack_int(&b.pk, 7);
		msgpack_pack_int(&b.pk, 1);
		send_packed(&b);
	} else if (strcmp(mode, "flood") == 0) {
		/* output for ever more processes nobody created */
		for (int i = 0; i < 200 && host; i++) {
			struct fproc fake = { .cid = NULL, .eid = "" };
			char cid[32];

			snprintf(cid, sizeof(cid), "ghost%d", i);
			fake.cid = cid;
			send_output(&fake, 1, zero, sizeof(zero));
		}
	} else if (strcmp(mode, "window") == 0) {
		/* 512 KiB of one stream without waiting for an ack */
		struct fproc fake = { .cid = "w", .eid = "" };

		for (int i = 0; i < 8 && host; i++)
			send_output(&fake, 1, zero, sizeof(zero));
	} else if (strcmp(mode, "after-eof") == 0) {
		struct fproc fake = { .cid = "late", .eid = "" };

		send_output(&fake, 1, "", 0);
		send_output(&fake, 1, "boo", 3);
	} else if (strcmp(mode, "bad-notify") == 0) {
		pk = ipc_notify_begin(c, AGENT_N_OUTPUT_ACK);
		msgpack_pack_map(pk, 0);
		ipc_notify_send(c);
	} else if (strcmp(mode, "request") == 0) {
		pk = ipc_call_begin(c, AGENT_M_PING);
		msgpack_pack_map(pk, 0);
		ipc_call_send(c, 0, NULL, 0, ignore_result, NULL, NULL);
	} else if (strcmp(mode, "output-request") == 0) {
		/* output as a request, not a notification: each would get
		 * an error reply queued to us, read or not */
		pk = ipc_call_begin(c, AGENT_N_OUTPUT);
		msgpack_pack_map(pk, 0);
		ipc_call_send(c, 0, NULL, 0, ignore_result, NULL, NULL);
	} else if (strcmp(mode, "hello-back") == 0) {
		/* the host said hello; saying it back, as a notification
		 * (each was a log line) */
		pk = ipc_notify_begin(c, "hello");
		msgpack_pack_map(pk, 0);
		ipc_notify_send(c);
	} else {
		hostile_bounds(c, msgid);
	}
}

/* ----------------------------------------------------------- methods */

#define HANDLER(fn) \
	static int fn(struct ipc_conn *c, struct ipc_msg *m, void *params, \
		      void *arg, struct husk_err **err)

static const char *eid_of(const struct pparams *q)
{
	return q->exec_id ? q->exec_id : "";
}

/* The process params name, or NULL with the error. */
static struct fproc *proc_of(const struct pparams *q, struct husk_err **err)
{
	struct fproc *p = q->container_id ? find(q->container_id, eid_of(q)) :
			  NULL;

	if (!p)
		husk_error(err, HUSK_E_NOT_FOUND, "no process %s/%s",
			   q->container_id ? q->container_id : "?",
			   eid_of(q));
	return p;
}

static int reply_ok(struct ipc_conn *c, struct ipc_msg *m)
{
	ipc_reply_ok(c, m->msgid);
	return 0;
}

HANDLER(fake_m_output_ack)
{
	const struct pparams *q = params;
	struct fproc *p = q->container_id ?
			  find(q->container_id, eid_of(q)) : NULL;

	if (p && q->stream >= 1 && q->bytes <= p->out[q->stream - 1].unacked) {
		struct fstream *s = &p->out[q->stream - 1];

		s->unacked -= q->bytes;
		if (!s->eof && s->unacked < WINDOW)
			ev_io_start(loop, &s->w);
	} else {
		fprintf(stderr, "fake_agent: bad output_ack\n");
	}
	return 0;
}

HANDLER(fake_m_ping)
{
	const struct pparams *q = params;

	if (q->hostile && strcmp(mode, "normal") != 0) {
		hostile(c, m->msgid);
		return 0;
	}
	return reply_ok(c, m);
}

HANDLER(fake_m_version)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_map(pk, 2);
	ipc_pack_kv_str(pk, "agent_version", "fake");
	ipc_pack_kv_int(pk, "protocol", 1);
	ipc_reply_send(c);
	return 0;
}

HANDLER(fake_m_sandbox)
{
	return reply_ok(c, m);
}

/* create_container and exec_process */
HANDLER(fake_m_create)
{
	const struct pparams *q = params;
	bool exec = strcmp(m->method, AGENT_M_EXEC_PROCESS) == 0;
	const msgpack_object *proc = exec ? q->process :
		(q->spec ? ipc_map_get(q->spec, "process") : NULL);
	msgpack_packer *pk;
	struct fproc *p;

	if (!q->container_id || find(q->container_id, eid_of(q)) || !proc)
		return husk_error(err, HUSK_E_INVALID, "bad %s", m->method);
	p = proc_new(q->container_id, eid_of(q), proc);
	if (!p->argv)
		return husk_error(err, HUSK_E_INVALID, "process.args");
	if (exec && spawn(p, err) < 0)
		return -1;
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "pid", exec ? p->pid : 1);
	ipc_reply_send(c);
	return 0;
}

HANDLER(fake_m_start_container)
{
	struct fproc *p = proc_of(params, err);

	if (!p)
		return -1;
	if (p->pid || spawn(p, err) < 0) {
		husk_err_free(*err);
		*err = NULL;
		return husk_error(err, HUSK_E_STATE, "started");
	}
	return reply_ok(c, m);
}

HANDLER(fake_m_remove_container)
{
	return proc_of(params, err) ? reply_ok(c, m) : -1;
}

HANDLER(fake_m_signal_process)
{
	const struct pparams *q = params;
	struct fproc *p = proc_of(q, err);

	if (!p)
		return -1;
	if (p->pid > 0 && !p->exited)
		kill(p->pid, (int)q->signal);
	return reply_ok(c, m);
}

HANDLER(fake_m_wait_process)
{
	struct fproc *p = proc_of(params, err);
	struct waiter *w;

	if (!p)
		return -1;
	w = husk_xcalloc(1, sizeof(*w));
	w->c = c;
	w->msgid = m->msgid;
	ipc_conn_ref(c);
	w->next = p->waiters;
	p->waiters = w;
	maybe_done(p);
	return 0;
}

HANDLER(fake_m_write_stdin)
{
	const struct pparams *q = params;
	struct fproc *p = proc_of(q, err);
	msgpack_packer *pk;

	if (!p)
		return -1;
	if (p->in_fd < 0 ||
	    husk_write_all(p->in_fd, q->data.p, q->data.len) < 0)
		return husk_error(err, HUSK_E_STATE, "stdin closed");
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_uint(pk, "len", q->data.len);
	ipc_reply_send(c);
	return 0;
}

HANDLER(fake_m_close_stdin)
{
	struct fproc *p = proc_of(params, err);

	if (!p)
		return -1;
	if (p->pty >= 0)
		husk_write_all(p->pty, "\004", 1);
	else if (p->in_fd >= 0)
		close(p->in_fd);
	p->in_fd = -1;
	return reply_ok(c, m);
}

HANDLER(fake_m_tty_winresize)
{
	const struct pparams *q = params;
	struct fproc *p = proc_of(q, err);
	struct winsize ws = { .ws_row = q->rows, .ws_col = q->cols };

	if (!p)
		return -1;
	if (p->pty >= 0)
		ioctl(p->pty, TIOCSWINSZ, &ws);
	return reply_ok(c, m);
}

/* "*": in mode fat every other request gets 900 KiB. */
HANDLER(fake_m_other)
{
	static char fat[900u << 10];
	msgpack_packer *pk;

	if (strcmp(m->method, "fat") != 0 || strcmp(mode, "fat") != 0)
		return husk_error(err, HUSK_E_UNKNOWN_METHOD,
				  "unknown method %s", m->method);
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_bin(pk, "data", fat, sizeof(fat));
	ipc_reply_send(c);
	return 0;
}

#define REQ IPC_M_REQUEST
#define ROW(name, flags, fn) \
	IPC_METHOD_P(name, flags, pfields, struct pparams, fn)

static const struct ipc_method methods[] = {
	ROW(AGENT_N_OUTPUT_ACK, IPC_M_NOTIFY, fake_m_output_ack),
	ROW(AGENT_M_PING, REQ, fake_m_ping),
	ROW(AGENT_M_VERSION, REQ, fake_m_version),
	ROW(AGENT_M_CREATE_SANDBOX, REQ, fake_m_sandbox),
	ROW(AGENT_M_DESTROY_SANDBOX, REQ, fake_m_sandbox),
	ROW(AGENT_M_CREATE_CONTAINER, REQ, fake_m_create),
	ROW(AGENT_M_EXEC_PROCESS, REQ, fake_m_create),
	ROW(AGENT_M_START_CONTAINER, REQ, fake_m_start_container),
	ROW(AGENT_M_REMOVE_CONTAINER, REQ, fake_m_remove_container),
	ROW(AGENT_M_SIGNAL_PROCESS, REQ, fake_m_signal_process),
	ROW(AGENT_M_WAIT_PROCESS, REQ, fake_m_wait_process),
	ROW(AGENT_M_WRITE_STDIN, REQ, fake_m_write_stdin),
	ROW(AGENT_M_CLOSE_STDIN, REQ, fake_m_close_stdin),
	ROW(AGENT_M_TTY_WINRESIZE, REQ, fake_m_tty_winresize),
	ROW("*", REQ, fake_m_other),
	IPC_METHOD_END,
};

static void on_accept(struct ipc_server *s, struct ipc_conn *c, void *arg)
{
	/* One host connection at a time: a new one replaces the old. */
	if (host)
		ipc_conn_close(host, NULL);
	host = c;
}

/* flap: every host connection is dropped once its hello is done. */
static void on_ready(struct ipc_conn *c, void *arg)
{
	if (flapping)
		ipc_conn_close_after_flush(c);
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	if (why)
		fprintf(stderr, "fake_agent: host connection: %s\n", why->msg);
	if (host == c)
		host = NULL;
}

static void quit_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	struct husk_err *err = NULL;
	struct ipc_server *srv;
	ev_signal sterm, sint;
	static const uid_t any_uid[] = { 0, 65534 };
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch == 's')
			sock = optarg;
		else if (ch == 'm')
			mode = optarg;
		else
			return 100;
	}
	if (!sock) {
		fprintf(stderr, "usage: fake_agent --socket PATH [--mode M]\n");
		return 100;
	}
	husk_log_init("fake_agent", HUSK_LOG_WARN, HUSK_LOG_TEXT);
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);

	struct ipc_server_opts o = {
		.conn = {
			.component = AGENT_COMPONENT,
			.methods = methods,
			.max_frame = 8u << 20,
			.on_ready = on_ready,
			.on_close = on_close,
		},
		.on_accept = on_accept,
		/* QEMU's channel socket checks nobody; a proxy running
		 * as nobody must get through */
		.allowed_uids = any_uid,
		.nallowed = 2,
	};
	srv = ipc_server_new(loop, sock, &o, &err);
	if (!srv) {
		fprintf(stderr, "fake_agent: %s\n", err->msg);
		return 111;
	}
	ev_signal_init(&sterm, quit_cb, SIGTERM);
	ev_signal_init(&sint, quit_cb, SIGINT);
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	ev_run(loop, 0);
	ipc_server_free(srv);
	for (struct fproc *p = procs; p; p = p->next)
		if (p->pid > 0 && !p->exited)
			kill(p->pid, SIGKILL);
	return 0;
}
