/*
 * QMP client: see qmp.h.  The parsing half (qmp_lines_*, qmp_parse,
 * qmp_build) does no I/O so that the unit tests and the fuzz target can
 * drive it with any bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

/* Debug lines about events, at most this many a minute. */
#define QMP_EVENT_LOG_BURST 30

/* ------------------------------------------------------------------ */
/* Lines                                                               */

void qmp_lines_init(struct qmp_lines *l)
{
	memset(l, 0, sizeof(*l));
}

void qmp_lines_free(struct qmp_lines *l)
{
	free(l->buf);
	memset(l, 0, sizeof(*l));
}

static int lines_emit(const char *p, size_t n, qmp_line_cb cb, void *arg,
		      struct husk_err **err)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return 0;
	if (cb(arg, p, n) < 0)
		return husk_error(err, HUSK_E_PROTOCOL, "qmp: line refused");
	return 0;
}

/* Room for need bytes in the partial-line buffer, never past the cap
 * plus one (for the '\r' QEMU ends lines with). */
static int lines_reserve(struct qmp_lines *l, size_t need,
			 struct husk_err **err)
{
	size_t cap;

	if (need > QMP_LINE_MAX + 1)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "qmp: line longer than %u bytes",
				  QMP_LINE_MAX);
	if (need <= l->cap)
		return 0;
	cap = l->cap ? l->cap : 4096;
	while (cap < need)
		cap *= 2;
	if (cap > QMP_LINE_MAX + 1)
		cap = QMP_LINE_MAX + 1;
	l->buf = realloc(l->buf, cap);
	if (!l->buf)
		abort();
	l->cap = cap;
	return 0;
}

int qmp_lines_feed(struct qmp_lines *l, const char *data, size_t n,
		   qmp_line_cb cb, void *arg, struct husk_err **err)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;

		if (l->len == 0 && nl) {
			/* A whole line in the input: no copy. */
			if (take > QMP_LINE_MAX + 1)
				return lines_reserve(l, take, err);
			if (lines_emit(data, take, cb, arg, err) < 0)
				return -1;
		} else {
			if (lines_reserve(l, l->len + take, err) < 0)
				return -1;
			memcpy(l->buf + l->len, data, take);
			l->len += take;
			if (nl) {
				size_t len = l->len;

				l->len = 0;
				if (lines_emit(l->buf, len, cb, arg, err) < 0)
					return -1;
			}
		}
		if (!nl)
			break;
		take++;
		data += take;
		n -= take;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

void qmp_clean(char *out, size_t n, const char *s)
{
	size_t i = 0;

	if (n == 0)
		return;
	for (; s && *s && i + 1 < n; s++, i++) {
		unsigned char ch = (unsigned char)*s;

		out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[i] = '\0';
}

void qmp_in_free(struct qmp_in *in)
{
	json_decref(in->root);
	memset(in, 0, sizeof(*in));
	in->id = -1;
}

static int bad(struct qmp_in *in, struct husk_err **err, const char *what)
{
	qmp_in_free(in);
	return husk_error(err, HUSK_E_PROTOCOL, "qmp: %s", what);
}

/* Our ids are small non-negative integers; anything else is not ours. */
static int parse_id(json_t *root, int64_t *id)
{
	json_t *j = json_object_get(root, "id");

	*id = -1;
	if (!j)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*id = json_integer_value(j);
	return 0;
}

int qmp_parse(const char *line, size_t len, struct qmp_in *in,
	      struct husk_err **err)
{
	json_error_t jerr;
	json_t *j;

	memset(in, 0, sizeof(*in));
	in->id = -1;
	if (len > QMP_LINE_MAX)
		return bad(in, err, "line too long");
	in->root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!in->root)
		return bad(in, err, "not JSON");
	if (!json_is_object(in->root))
		return bad(in, err, "not an object");

	if ((j = json_object_get(in->root, "QMP"))) {
		if (!json_is_object(j))
			return bad(in, err, "greeting is not an object");
		in->kind = QMP_GREETING;
		return 0;
	}
	if ((j = json_object_get(in->root, "event"))) {
		json_t *data = json_object_get(in->root, "data");

		if (!json_is_string(j) || json_string_length(j) == 0 ||
		    json_string_length(j) >= QMP_EVENT_MAX)
			return bad(in, err, "event name");
		if (data && !json_is_object(data))
			return bad(in, err, "event data is not an object");
		in->kind = QMP_EVENT;
		qmp_clean(in->event, sizeof(in->event), json_string_value(j));
		in->data = data;
		return 0;
	}
	if (parse_id(in->root, &in->id) < 0)
		return bad(in, err, "id is not ours");
	if ((j = json_object_get(in->root, "return"))) {
		in->kind = QMP_RETURN;
		in->ret = j;
		return 0;
	}
	if ((j = json_object_get(in->root, "error"))) {
		json_t *cls = json_object_get(j, "class");
		json_t *desc = json_object_get(j, "desc");

		if (!json_is_object(j) || !json_is_string(cls) ||
		    !json_is_string(desc))
			return bad(in, err, "error without class and desc");
		in->kind = QMP_ERROR;
		qmp_clean(in->err_class, sizeof(in->err_class),
			  json_string_value(cls));
		qmp_clean(in->err_desc, sizeof(in->err_desc),
			  json_string_value(desc));
		return 0;
	}
	return bad(in, err, "no QMP, event, return or error key");
}

char *qmp_build(const char *cmd, const json_t *args, int64_t id, size_t *len)
{
	json_t *o = json_object();
	char *s, *line;
	size_t n;

	json_object_set_new(o, "execute", json_string(cmd));
	if (args)
		json_object_set(o, "arguments", (json_t *)args);
	json_object_set_new(o, "id", json_integer(id));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return NULL;
	n = strlen(s);
	line = husk_xmalloc(n + 2);
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	free(s);
	if (len)
		*len = n + 1;
	return line;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */

struct qmp_cmd {
	struct qmp_cmd *next;
	int64_t id;
	char name[48];
	char *line;
	size_t len, off;
	int fd;                 /* dup'ed; sent with the first byte */
	double timeout;
	qmp_cb cb;
	void *arg;
};

struct qmp {
	struct ev_loop *loop;
	int fd;
	ev_io rio, wio;
	ev_timer timer;         /* greeting, then the command in flight */
	struct qmp_lines lines;
	const struct qmp_ops *ops;
	void *arg;
	bool greeted, ready, closed;
	int64_t next_id;
	struct qmp_cmd *head, *tail;    /* head is in flight once sent */
	bool head_sent;
	struct ipc_ratelimit ev_rl;     /* debug lines about events */
};

static void qmp_close(struct qmp *q, const struct husk_err *why, bool notify);
static int push_caps(struct qmp *q);

static void cmd_free(struct qmp_cmd *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	free(c);
}

/* Pop the command in flight and answer it. */
static void cmd_finish(struct qmp *q, json_t *ret, const struct husk_err *e)
{
	struct qmp_cmd *c = q->head;

	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	q->head_sent = false;
	ev_timer_stop(q->loop, &q->timer);
	if (c->cb)
		c->cb(q, ret, e, c->arg);
	cmd_free(c);
}

static void send_next(struct qmp *q)
{
	if (q->closed || !q->head || q->head_sent)
		return;
	q->head_sent = true;
	ev_timer_stop(q->loop, &q->timer);
	ev_timer_set(&q->timer, q->head->timeout, 0.);
	ev_timer_start(q->loop, &q->timer);
	ev_io_start(q->loop, &q->wio);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qmp *q = w->data;
	struct qmp_cmd *c = q->head;
	ssize_t n;

	if (!c || !q->head_sent || c->off == c->len) {
		ev_io_stop(loop, w);
		return;
	}
	if (c->fd >= 0 && c->off == 0) {
		n = ipc_send_fds(q->fd, c->line, c->len, &c->fd, 1);
		if (n > 0) {
			close(c->fd);
			c->fd = -1;
		}
	} else {
		n = send(q->fd, c->line + c->off, c->len - c->off,
			 MSG_NOSIGNAL);
	}
	if (n < 0) {
		struct husk_err *e = NULL;

		if (errno == EAGAIN || errno == EINTR)
			return;
		husk_error_sys(&e, errno, "qmp: send %s", c->name);
		qmp_close(q, e, true);
		husk_err_free(e);
		return;
	}
	c->off += (size_t)n;
	if (c->off == c->len)
		ev_io_stop(loop, w);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct qmp *q = w->data;
	struct husk_err *e = NULL;

	if (!q->greeted) {
		husk_error(&e, HUSK_E_TIMEOUT, "qmp: no greeting from QEMU");
		qmp_close(q, e, true);
	} else if (q->head && q->head_sent) {
		/* A late reply carries an id we no longer wait for and is
		 * dropped; the monitor stays usable. */
		husk_error(&e, HUSK_E_TIMEOUT, "qmp: %s: no answer in %.1fs",
			   q->head->name, q->head->timeout);
		log_warnx("%s", e->msg);
		cmd_finish(q, NULL, e);
		send_next(q);
	}
	husk_err_free(e);
}

static void on_caps(struct qmp *q, json_t *ret, const struct husk_err *e,
		    void *arg)
{
	if (e) {
		qmp_close(q, e, true);
		return;
	}
	q->ready = true;
	if (q->ops->on_ready)
		q->ops->on_ready(q, q->arg);
}

static int on_line(void *arg, const char *line, size_t len)
{
	struct qmp *q = arg;
	struct qmp_in in;
	struct husk_err *e = NULL;

	if (qmp_parse(line, len, &in, &e) < 0) {
		qmp_close(q, e, true);
		husk_err_free(e);
		return -1;
	}
	switch (in.kind) {
	case QMP_GREETING:
		if (q->greeted) {
			husk_error(&e, HUSK_E_PROTOCOL, "qmp: second greeting");
			break;
		}
		q->greeted = true;
		ev_timer_stop(q->loop, &q->timer);
		/* The negotiation goes first, ahead of queued commands. */
		if (push_caps(q) < 0)
			husk_error(&e, HUSK_E_INTERNAL, "qmp: capabilities");
		send_next(q);
		break;
	case QMP_EVENT: {
		unsigned n = 0;

		/* Some events the guest can cause at will (ACPI _OST). */
		if (husk_log_get_level() >= HUSK_LOG_DEBUG &&
		    ipc_ratelimit(&q->ev_rl, ev_now(q->loop), &n))
			log_debug("qmp: event %s%s", in.event, n ?
				  " (earlier event lines suppressed)" : "");
		}
		if (q->ops->on_event && q->ready)
			q->ops->on_event(q, in.event, in.data, q->arg);
		break;
	case QMP_RETURN:
	case QMP_ERROR:
		if (!q->head || !q->head_sent || in.id != q->head->id) {
			/* A command that timed out answering late. */
			log_debug("qmp: dropped answer with id %lld",
				  (long long)in.id);
			break;
		}
		if (in.kind == QMP_RETURN) {
			cmd_finish(q, in.ret, NULL);
		} else {
			husk_error(&e, HUSK_E_INVALID, "%s: %s (%s)",
				   q->head->name, in.err_desc, in.err_class);
			cmd_finish(q, NULL, e);
			husk_err_clear(&e);
		}
		send_next(q);
		break;
	}
	qmp_in_free(&in);
	if (e) {
		qmp_close(q, e, true);
		husk_err_free(e);
		return -1;
	}
	return q->closed ? -1 : 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qmp *q = w->data;
	struct husk_err *e = NULL;
	char buf[16384];
	ssize_t n;

	n = recv(q->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			husk_error(&e, HUSK_E_UNAVAILABLE,
				   "qmp: QEMU closed the monitor");
		else
			husk_error_sys(&e, errno, "qmp: recv");
		qmp_close(q, e, true);
		husk_err_free(e);
		return;
	}
	if (qmp_lines_feed(&q->lines, buf, (size_t)n, on_line, q, &e) < 0) {
		if (!q->closed)
			qmp_close(q, e, true);
		husk_err_free(e);
	}
}

struct qmp *qmp_new(struct ev_loop *loop, int fd, double timeout,
		    const struct qmp_ops *ops, void *arg)
{
	struct qmp *q = husk_xcalloc(1, sizeof(*q));

	q->loop = loop;
	q->ev_rl.interval = 60.;
	q->ev_rl.burst = QMP_EVENT_LOG_BURST;
	q->fd = fd;
	q->ops = ops;
	q->arg = arg;
	q->next_id = 1;
	qmp_lines_init(&q->lines);
	ev_io_init(&q->rio, on_readable, fd, EV_READ);
	ev_io_init(&q->wio, on_writable, fd, EV_WRITE);
	ev_timer_init(&q->timer, on_timer, timeout, 0.);
	q->rio.data = q->wio.data = q->timer.data = q;
	ev_io_start(loop, &q->rio);
	ev_timer_start(loop, &q->timer);
	return q;
}

static struct qmp_cmd *cmd_new(struct qmp *q, const char *cmd, json_t *args,
			       int fd, double timeout, qmp_cb cb, void *arg)
{
	struct qmp_cmd *c = husk_xcalloc(1, sizeof(*c));

	c->id = q->next_id++;
	snprintf(c->name, sizeof(c->name), "%s", cmd);
	c->line = qmp_build(cmd, args, c->id, &c->len);
	json_decref(args);
	c->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
	c->timeout = timeout > 0 ? timeout : 30.;
	c->cb = cb;
	c->arg = arg;
	if (!c->line || (fd >= 0 && c->fd < 0)) {
		cmd_free(c);
		return NULL;
	}
	return c;
}

static int push_caps(struct qmp *q)
{
	struct qmp_cmd *c = cmd_new(q, "qmp_capabilities", NULL, -1, 10.,
				    on_caps, NULL);

	if (!c)
		return -1;
	c->next = q->head;
	q->head = c;
	if (!q->tail)
		q->tail = c;
	return 0;
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, int fd,
	     double timeout, qmp_cb cb, void *arg)
{
	struct qmp_cmd *c;

	if (q->closed) {
		json_decref(args);
		return -1;
	}
	c = cmd_new(q, cmd, args, fd, timeout, cb, arg);
	if (!c)
		return -1;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	if (q->greeted)
		send_next(q);
	return 0;
}

bool qmp_ready(const struct qmp *q)
{
	return q && q->ready && !q->closed;
}

/* Fail everything queued, stop the watchers; tell the owner if asked. */
static void qmp_close(struct qmp *q, const struct husk_err *why, bool notify)
{
	struct husk_err *gone = NULL;

	if (q->closed)
		return;
	q->closed = true;
	q->ready = false;
	ev_io_stop(q->loop, &q->rio);
	ev_io_stop(q->loop, &q->wio);
	ev_timer_stop(q->loop, &q->timer);
	husk_error(&gone, HUSK_E_UNAVAILABLE, "qmp: monitor closed");
	while (q->head) {
		q->head_sent = true;
		cmd_finish(q, NULL, gone);
	}
	husk_err_free(gone);
	if (q->fd >= 0) {
		close(q->fd);
		q->fd = -1;
	}
	if (notify && q->ops->on_close)
		q->ops->on_close(q, why, q->arg);
}

void qmp_free(struct qmp *q)
{
	if (!q)
		return;
	qmp_close(q, NULL, false);
	qmp_lines_free(&q->lines);
	free(q);
}
