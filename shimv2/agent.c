/*
 * Calls to the pod's agent, through its proxy, answered in the loop.
 *
 * The agent is the guest's: it may answer a call only at its timeout,
 * or never.  The daemon answers containerd meanwhile (State, Delete,
 * Kill of another task, Shutdown): a call the guest delays holds only
 * the containerd call that asked for it.  One connection per sandbox,
 * opened at the first call and again at the first call after it
 * closed, carries the calls in the order they were made: a SIGTERM
 * and the SIGKILL after it reach the agent in that order.
 *
 * The answer is the guest's bytes: each caller decodes its own, as
 * the blocking calls did (ipc_json_from_obj, husk_oom_decode).
 */
#include <stdlib.h>
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_proxy.h"
#include "shimv2.h"

/* Seconds for the connection and its hello, at most (a call's own
 * timeout bounds it too). */
#define SV_AGENT_CONNECT_TIMEOUT 10.

/* One sandbox's connection. */
struct sv_agent {
	struct sv_agent *next;
	struct sv *s;
	char *sid, *proxy_sock;
	struct ipc_conn *conn;
	bool ready;                     /* the hello went through */
	struct sv_acall *calls;         /* in the order made */
	unsigned gen;                   /* connections lost so far */
};

struct sv_acall {
	struct sv_acall *next;
	struct sv_agent *a;
	char *method;
	json_t *params;
	double timeout;
	bool sent;
	unsigned gen;                   /* its agent's gen when made */
	uint32_t msgid;
	sv_agent_cb cb;
	void *arg;
};

static void unlink_call(struct sv_acall *c)
{
	for (struct sv_acall **p = &c->a->calls; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static void call_free(struct sv_acall *c)
{
	free(c->method);
	json_decref(c->params);
	free(c);
}

/* Out of the list, then told: the callback may make another call. */
static void finish(struct sv_acall *c, const msgpack_object *result,
		   const struct husk_err *err)
{
	sv_agent_cb cb = c->cb;
	void *arg = c->arg;

	unlink_call(c);
	call_free(c);
	cb(arg, result, err);
}

static void on_answer(struct ipc_conn *conn, struct ipc_msg *resp,
		      const struct husk_err *err, void *arg)
{
	struct sv_acall *c = arg;

	(void)conn;
	finish(c, err ? NULL : resp->result, err);
}

/* -1 with err set if it could not go (the call is still listed). */
static int send_call(struct sv_agent *a, struct sv_acall *c,
		     struct husk_err **err)
{
	msgpack_packer *pk = ipc_call_begin(a->conn, c->method);

	if (ipc_json_pack(pk, c->params, err) < 0)
		return -1;
	if (ipc_call_send(a->conn, c->timeout, NULL, 0, on_answer, c,
			  &c->msgid) < 0)
		return husk_error(err, HUSK_E_UNAVAILABLE, "%s: the proxy's "
				  "connection is closed", c->method);
	c->sent = true;
	return 0;
}

static void send_waiting(struct sv_agent *a)
{
	/* From the head again after each: a callback may cancel calls or
	 * make new ones.  Each turn sends one call or finishes it. */
	while (a->conn && a->ready) {
		struct sv_acall *c;
		struct husk_err *err = NULL;

		for (c = a->calls; c && c->sent; c = c->next)
			;
		if (!c)
			return;
		if (send_call(a, c, &err) < 0) {
			finish(c, NULL, err);
			husk_err_free(err);
		}
	}
}

static void on_ready(struct ipc_conn *conn, void *arg)
{
	struct sv_agent *a = arg;

	(void)conn;
	if (!a)
		return;
	a->ready = true;
	send_waiting(a);
}

/* Calls sent on it have had their answer (libipc fails them first);
 * those made before now and still waiting fail here.  Calls made by
 * the callbacks meanwhile (a newer generation) wait for the next
 * connection. */
static void fail_waiting(struct sv_agent *a, const struct husk_err *why)
{
	struct husk_err *e = NULL;
	unsigned gen = a->gen++;

	if (!why) {
		husk_error(&e, HUSK_E_UNAVAILABLE, "the proxy closed the "
			   "connection");
		why = e;
	}
	for (;;) {
		struct sv_acall *c;
		struct husk_err *w = NULL;

		for (c = a->calls; c && c->gen > gen; c = c->next)
			;
		if (!c)
			break;
		husk_error(&w, why->code, "%s: %s", c->method, why->msg);
		finish(c, NULL, w);
		husk_err_free(w);
	}
	husk_err_free(e);
}

static void on_close(struct ipc_conn *conn, const struct husk_err *why,
		     void *arg)
{
	struct sv_agent *a = arg;

	(void)conn;
	if (!a)
		return;
	a->conn = NULL;
	a->ready = false;
	if (why)
		log_debug("sandbox %s: the proxy: %s", a->sid, why->msg);
	fail_waiting(a, why);
}

static struct sv_agent *agent_get(struct sv *s, const char *sid,
				  struct husk_err **err)
{
	struct husk_sbx_paths p;
	struct sv_agent *a;

	for (a = s->agents; a; a = a->next)
		if (!strcmp(a->sid, sid))
			return a;
	if (husk_sandbox_paths(s->root, sid, &p, err) < 0)
		return NULL;
	a = husk_xcalloc(1, sizeof(*a));
	a->s = s;
	a->sid = husk_xstrdup(sid);
	a->proxy_sock = husk_xstrdup(p.proxy_sock);
	husk_sandbox_paths_free(&p);
	a->next = s->agents;
	s->agents = a;
	return a;
}

static int agent_connect(struct sv_agent *a, double timeout,
			 struct husk_err **err)
{
	struct ipc_conn_opts opts = {
		.role = IPC_ROLE_CLIENT,
		.component = SV_NAME,
		.expect_peer = PROXY_COMPONENT,
		.on_ready = on_ready,
		.on_close = on_close,
		/* it relays the guest's answers */
		.trusted = false,
		.arg = a,
	};

	if (timeout <= 0 || timeout > SV_AGENT_CONNECT_TIMEOUT)
		timeout = SV_AGENT_CONNECT_TIMEOUT;
	a->conn = ipc_conn_connect(a->s->loop, a->proxy_sock, timeout, &opts,
				   err);
	return a->conn ? 0 : -1;
}

struct sv_acall *sv_agent_call(struct sv *s, const char *sid,
			       const char *method, json_t *params,
			       double timeout, sv_agent_cb cb, void *arg,
			       struct husk_err **err)
{
	struct sv_agent *a = agent_get(s, sid, err);
	struct sv_acall *c, **tail;

	if (!a) {
		json_decref(params);
		return NULL;
	}
	if (!a->conn && agent_connect(a, timeout, err) < 0) {
		json_decref(params);
		return NULL;
	}
	c = husk_xcalloc(1, sizeof(*c));
	c->a = a;
	c->gen = a->gen;
	c->method = husk_xstrdup(method);
	c->params = params ? params : json_object();
	c->timeout = timeout;
	c->cb = cb;
	c->arg = arg;
	for (tail = &a->calls; *tail; tail = &(*tail)->next)
		;
	*tail = c;
	/* Never answered from here: the caller keeps c first. */
	if (a->ready && send_call(a, c, err) < 0) {
		unlink_call(c);
		call_free(c);
		return NULL;
	}
	return c;
}

/* c may have been answered (and freed) already: look for it. */
void sv_agent_cancel(struct sv *s, struct sv_acall *c)
{
	for (struct sv_agent *a = s->agents; a; a = a->next)
		for (struct sv_acall *x = a->calls; x; x = x->next) {
			if (x != c)
				continue;
			unlink_call(c);
			if (c->sent && a->conn)
				ipc_call_cancel(a->conn, c->msgid);
			call_free(c);
			return;
		}
}

void sv_agent_close_all(struct sv *s)
{
	struct husk_err *why = NULL;

	husk_error(&why, HUSK_E_UNAVAILABLE, "the shim is leaving");
	while (s->agents) {
		struct sv_agent *a = s->agents;

		s->agents = a->next;
		if (a->conn) {
			struct ipc_conn *conn = a->conn;

			/* Its calls fail through on_answer; on_close is
			 * ours to run. */
			ipc_conn_set_arg(conn, NULL);
			a->conn = NULL;
			ipc_conn_close(conn, why);
		}
		fail_waiting(a, why);
		free(a->sid);
		free(a->proxy_sock);
		free(a);
	}
	husk_err_free(why);
}
