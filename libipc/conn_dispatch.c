/*
 * Dispatch of what the peer sends: responses to their pending calls,
 * requests and notifications through the connection's method rows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/log.h"
#include "conn-int.h"
#include "ipc.h"

/* ---------------------------------------------------------- dispatch */

static void handle_response(struct ipc_conn *c, struct ipc_msg *m)
{
	struct pending *p = conn_pending_find(c, m->msgid);
	cleanup_err struct husk_err *e = NULL;

	if (!p) {
		if (conn_recent_has(c, m->msgid)) {
			log_debug("late answer to %u dropped",
				  m->msgid);
			return;
		}
		husk_error(&e, HUSK_E_PROTOCOL,
			   "response to unknown msgid %u", m->msgid);
		if (c->o.trusted)
			log_warnx("bug: peer %s: %s",
				  conn_peer_name(c), e->msg);
		else
			conn_violation(c, e);
		return;
	}
	conn_pending_unlink(c, p);
	if (m->error)
		ipc_error_decode(m->error, &e);
	p->cb(c, m, e, p->arg);
	free(p);
}

static size_t conn_nmethods(const struct ipc_conn *c)
{
	size_t n = 0;

	while (c->o.methods && c->o.methods[n].name)
		n++;
	return n;
}

static const struct ipc_method *method_find(const struct ipc_conn *c,
					    const char *name, size_t *idx)
{
	const struct ipc_method *any = NULL;
	size_t any_i = 0;

	if (!c->o.methods)
		return NULL;
	for (size_t i = 0; c->o.methods[i].name; i++) {
		const struct ipc_method *me = &c->o.methods[i];

		if (strcmp(me->name, name) == 0) {
			*idx = i;
			return me;
		}
		if (!any && strcmp(me->name, "*") == 0) {
			any = me;
			any_i = i;
		}
	}
	*idx = any_i;
	return any;
}

/* Refuse m: an error reply for a request, a log line for a notification
 * (an untrusted peer's through a rate limit: it can send them without
 * end). */
static void refuse(struct ipc_conn *c, struct ipc_msg *m, int code,
		   const char *why)
{
	static struct ipc_ratelimit rl = { .interval = 60., .burst = 20 };
	unsigned held = 0;

	if (m->type == IPC_REQUEST)
		ipc_reply_error(c, m->msgid, code, "%s", why);
	else if (c->o.trusted || ipc_ratelimit(&rl, ev_now(c->loop), &held))
		log_warnx("peer %s: notification dropped: %s%s",
			  conn_peer_name(c), why, held ? " (earlier lines "
			  "like this suppressed)" : "");
}

static void dispatch_before_hello(struct ipc_conn *c, struct ipc_msg *m)
{
	cleanup_err struct husk_err *e = NULL;

	if (c->o.role == IPC_ROLE_SERVER && m->type == IPC_REQUEST &&
	    strcmp(m->method, "hello") == 0) {
		conn_server_hello(c, m);
		return;
	}
	husk_error(&e, HUSK_E_NO_HELLO, "'%s' before the hello", m->method);
	log_warnx("peer pid %d: %s; disconnecting",
		  (int)c->peer_pid, e->msg);
	if (m->type == IPC_REQUEST)
		ipc_reply_err(c, m->msgid, e);
	conn_close_after_flush_why(c, e);
}

/*
 * A failure to answer: the error reply of a request; a notification has
 * no one to answer, so its failure is logged (a sibling's as the bug it
 * is).
 */
static void method_failed(struct ipc_conn *c, struct ipc_msg *m,
			  const struct husk_err *e, const char *stage)
{
	if (m->type == IPC_REQUEST)
		ipc_reply_err(c, m->msgid, e);
	else
		log_warnx("%speer %s: notification '%s' "
			  "%s: %s", c->o.trusted ? "bug: " : "",
			  conn_peer_name(c), m->method, stage,
			  e && e->msg ? e->msg : "failed");
}

/*
 * Run a method row: decode the params into a zeroed struct of the row's
 * size (or a copy of its defaults), run the handler, send the error it
 * returns, free the struct.  Bad params never reach the handler.  A
 * once-only method counts as called when its handler ran.
 */
static void call_method(struct ipc_conn *c, const struct ipc_method *me,
			struct ipc_msg *m, size_t idx)
{
	cleanup_err struct husk_err *e = NULL;
	void *params = NULL;

	if (me->size) {
		params = calloc(1, me->size);
		if (!params) {
			husk_error_sys(&e, ENOMEM, "%s", m->method);
			method_failed(c, m, e, "dropped");
			return;
		}
		if (me->defaults)
			memcpy(params, me->defaults, me->size);
	}
	if (me->params && ipc_decode(m->params, me->params, params, &e) < 0) {
		method_failed(c, m, e, "refused");
		free(params);
		return;
	}
	if (me->flags & IPC_M_ONCE)
		c->once_used[idx] = 1;
	/* The handler may close the connection; the reply needs it. */
	ipc_conn_ref(c);
	if (me->fn(c, m, params, c->o.arg, &e) < 0) {
		if (!e)
			husk_error(&e, HUSK_E_INTERNAL, "%s failed", m->method);
		if (!c->closed)
			method_failed(c, m, e, "failed");
	}
	if (me->params)
		ipc_decode_free(me->params, params);
	free(params);
	ipc_conn_unref(c);
}

void conn_dispatch(struct ipc_conn *c, struct ipc_msg *m)
{
	const struct ipc_method *me;
	char why[IPC_METHOD_MAX + 64];
	size_t idx = 0;

	if (m->type == IPC_RESPONSE) {
		handle_response(c, m);
		return;
	}
	if (!c->ready) {
		dispatch_before_hello(c, m);
		return;
	}
	if (strcmp(m->method, "hello") == 0) {
		if (c->o.rehello && c->o.role == IPC_ROLE_SERVER &&
		    m->type == IPC_REQUEST) {
			log_info("peer %s says hello again: "
				 "a new peer on the same channel",
				 conn_peer_name(c));
			/* A new peer may call its once-only methods again. */
			memset(c->once_used, 0, conn_nmethods(c) + 1);
			conn_server_hello(c, m);
			return;
		}
		/* We said hello: a peer that says it back breaks the
		 * protocol (a guest would get an error reply queued for
		 * each, read or not). */
		if (c->o.role == IPC_ROLE_CLIENT) {
			cleanup_err struct husk_err *e = NULL;

			husk_error(&e, HUSK_E_PROTOCOL, "a hello from the "
				   "server's side");
			conn_violation(c, e);
			return;
		}
		refuse(c, m, HUSK_E_STATE, "hello already done");
		return;
	}
	me = method_find(c, m->method, &idx);
	if (!me) {
		if (m->type == IPC_REQUEST)
			ipc_reply_error(c, m->msgid, HUSK_E_UNKNOWN_METHOD,
					"unknown method '%s'", m->method);
		else
			log_debug("peer %s: unknown "
				  "notification '%s' dropped", conn_peer_name(c),
				  m->method);
		return;
	}
	if (!(me->flags & (m->type == IPC_REQUEST ? IPC_M_REQUEST :
			   IPC_M_NOTIFY))) {
		snprintf(why, sizeof(why), "'%s' is not allowed as a %s",
			 m->method, m->type == IPC_REQUEST ? "request" :
			 "notification");
		refuse(c, m, HUSK_E_PROTOCOL, why);
		return;
	}
	if (me->flags & IPC_M_ONCE) {
		if (c->once_used[idx]) {
			snprintf(why, sizeof(why), "'%s' may be sent only once",
				 m->method);
			refuse(c, m, HUSK_E_STATE, why);
			return;
		}
	}
	call_method(c, me, m, idx);
}

