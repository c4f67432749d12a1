/*
 * What a connection sends: replies, calls matched to their answers by
 * msgid (with timeouts), notifications, and the hello every connection
 * starts with.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/log.h"
#include "conn-int.h"
#include "ipc.h"

/* ------------------------------------------------------------ replies */

msgpack_packer *ipc_reply_begin(struct ipc_conn *c, uint32_t msgid)
{
	ipc_buf_reset(&c->out);
	c->out_msgid = msgid;
	return ipc_pack_response(&c->out, msgid);
}

int ipc_reply_send(struct ipc_conn *c)
{
	struct husk_err *e = NULL;

	if (ipc_buf_finish(&c->out, c->o.max_frame_send, &e) < 0) {
		/* Tell the caller rather than leave it waiting. */
		int r = ipc_reply_err(c, c->out_msgid, e);

		husk_err_free(e);
		(void)r;
		return -1;
	}
	return conn_queue(c, c->out.sb.data, c->out.sb.size, NULL, 0, true);
}

int ipc_reply_error(struct ipc_conn *c, uint32_t msgid, int code,
		    const char *fmt, ...)
{
	char msg[IPC_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ipc_buf_reset(&c->out);
	ipc_pack_error(&c->out, msgid, code, msg);
	return conn_send_out(c, NULL, 0);
}

int ipc_reply_err(struct ipc_conn *c, uint32_t msgid,
		  const struct husk_err *e)
{
	return ipc_reply_error(c, msgid, e ? e->code : HUSK_E_INTERNAL, "%s",
			       e && e->msg ? e->msg : "error");
}

int ipc_reply_ok(struct ipc_conn *c, uint32_t msgid)
{
	msgpack_pack_map(ipc_reply_begin(c, msgid), 0);
	return ipc_reply_send(c);
}

/* -------------------------------------------------------------- calls */

msgpack_packer *ipc_call_begin(struct ipc_conn *c, const char *method)
{
	size_t n = strnlen(method, IPC_METHOD_MAX);

	ipc_buf_reset(&c->out);
	c->out_msgid = conn_next_msgid(c);

	memcpy(c->out_method, method, n);
	c->out_method[n] = '\0';
	return ipc_pack_request(&c->out, c->out_msgid, method);
}

static void call_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = w->data;
	struct ipc_conn *c = p->c;
	struct husk_err *e = NULL;

	conn_pending_unlink(c, p);
	conn_recent_add(c, p->msgid);
	husk_error(&e, HUSK_E_TIMEOUT, "call '%s' to %s timed out after %gs",
		   p->method, conn_peer_name(c), p->timeout);
	ipc_conn_ref(c);
	p->cb(c, NULL, e, p->arg);
	ipc_conn_unref(c);
	husk_err_free(e);
	free(p);
}

int ipc_call_send(struct ipc_conn *c, double timeout, const int *fds,
		  int nfds, ipc_result_cb cb, void *arg, uint32_t *msgid)
{
	struct pending *p;

	if (c->closed || !cb)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	if (conn_send_out(c, fds, nfds) < 0) {
		free(p);
		return -1;
	}
	p->c = c;
	p->msgid = c->out_msgid;
	p->cb = cb;
	p->arg = arg;
	memcpy(p->method, c->out_method, sizeof(p->method));
	if (timeout > 0) {
		ev_timer_init(&p->timer, call_timeout_cb, timeout, 0.);
		p->timer.data = p;
		p->timed = true;
		p->timeout = timeout;
		ev_timer_start(c->loop, &p->timer);
	}
	p->next = c->pending;
	if (p->next)
		p->next->prev = p;
	c->pending = p;
	if (msgid)
		*msgid = p->msgid;
	return 0;
}

void ipc_call_cancel(struct ipc_conn *c, uint32_t msgid)
{
	struct pending *p = conn_pending_find(c, msgid);

	if (!p)
		return;
	conn_pending_unlink(c, p);
	conn_recent_add(c, msgid);
	free(p);
}

msgpack_packer *ipc_notify_begin(struct ipc_conn *c, const char *method)
{
	ipc_buf_reset(&c->out);
	return ipc_pack_notify(&c->out, method);
}

int ipc_notify_send(struct ipc_conn *c)
{
	return conn_send_out(c, NULL, 0);
}

/* ------------------------------------------------------------- hello */

static void hello_ready(struct ipc_conn *c, const char *peer)
{
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->ready = true;
	ev_timer_stop(c->loop, &c->hello_timer);
	if (c->o.on_ready)
		c->o.on_ready(c, c->o.arg);
}

/*
 * Both ends check the other's hello (params or result): the version,
 * then the component when one is expected.
 */
int ipc_hello_parse(const msgpack_object *map, const char *self,
		    const char *expect, char peer[IPC_COMPONENT_MAX + 1],
		    struct husk_err **err)
{
	const msgpack_object *v = map ? ipc_map_get(map, "version") : NULL;
	const msgpack_object *n = map ? ipc_map_get(map, "component") : NULL;
	cleanup_free char *name = NULL;
	uint64_t version;

	if (!v || !n)
		return husk_error(err, HUSK_E_INVALID,
				  "hello needs version and component");
	if (ipc_obj_uint(v, "params.version", UINT32_MAX, &version, err) < 0 ||
	    ipc_obj_name(n, "params.component", IPC_COMPONENT_MAX, &name,
			err) < 0)
		return -1;
	if (version != IPC_PROTOCOL_VERSION)
		return husk_error(err, HUSK_E_VERSION,
				  "protocol version mismatch: %s speaks "
				  "version %llu, %s speaks version %d", name,
				  (unsigned long long)version, self,
				  IPC_PROTOCOL_VERSION);
	if (expect && expect[0] && strcmp(expect, name) != 0)
		return husk_error(err, HUSK_E_PERMISSION,
				  "%s expects to talk to %s, not to %s",
				  self, expect, name);
	snprintf(peer, IPC_COMPONENT_MAX + 1, "%s", name);
	return 0;
}

void conn_server_hello(struct ipc_conn *c, struct ipc_msg *m)
{
	cleanup_err struct husk_err *e = NULL;
	char peer[IPC_COMPONENT_MAX + 1];
	msgpack_packer *pk;

	if (ipc_hello_parse(m->params, c->component, c->expect, peer,
			    &e) < 0) {
		log_warnx("peer pid %d: %s", (int)c->peer_pid,
			  e->msg);
		ipc_reply_err(c, m->msgid, e);
		conn_close_after_flush_why(c, e);
		return;
	}
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", c->component);
	if (ipc_reply_send(c) < 0)
		return;
	hello_ready(c, peer);
}

static void hello_done(struct ipc_conn *c, struct ipc_msg *resp,
		       const struct husk_err *err, void *arg)
{
	cleanup_err struct husk_err *e = NULL;
	char peer[IPC_COMPONENT_MAX + 1];

	if (c->closed)
		return;
	if (err) {
		log_warnx("%s refused us: %s", c->path ?
			  c->path : "peer", err->msg);
		ipc_conn_close(c, err);
		return;
	}
	if (ipc_hello_parse(resp->result, c->component, c->expect, peer,
			    &e) < 0) {
		conn_violation(c, e);
		return;
	}
	hello_ready(c, peer);
}

void conn_send_hello(struct ipc_conn *c)
{
	msgpack_packer *pk = ipc_call_begin(c, "hello");

	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", c->component);
	ipc_call_send(c, 0, NULL, 0, hello_done, NULL, NULL);
}

void conn_hello_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_conn *c = w->data;
	cleanup_err struct husk_err *e = NULL;

	if (c->flushing) {
		ipc_conn_close(c, c->flush_why);
		return;
	}
	if (c->connecting)
		husk_error(&e, HUSK_E_TIMEOUT, "connect to `%s` timed out",
			   c->path);
	else
		husk_error(&e, HUSK_E_TIMEOUT, "no hello within %gs",
			   c->hello_timer.repeat);
	log_warnx("pid %d: %s", (int)c->peer_pid, e->msg);
	ipc_conn_close(c, e);
}

