/*
 * Clients of the proxy: the runtime's short commands, the shims, the
 * debug client.  A request for any method the proxy does not serve
 * itself is forwarded to the agent under a new id (libipc's call table
 * is the proxy-side id table) and the answer goes back under the
 * client's id.  A client that leaves loses its subscriptions; answers
 * to its calls that arrive later are dropped.
 *
 * A client that does not read what it is sent stops being read (its
 * write queue passed the high mark) and stops getting output, so that
 * neither its replies nor its streams grow the proxy without bound; the
 * agent connection is never held up by it.
 */
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "proxy.h"

static struct pclient *client_of(struct ipc_conn *c)
{
	return ipc_conn_arg(c);
}

/* ---------------------------------------------------- stream ops */

static bool ops_can_deliver(void *sub, void *arg)
{
	struct pclient *cl = sub;

	return !ipc_conn_closed(cl->conn) &&
	       ipc_conn_queued(cl->conn) < PROXY_WQ_HIGH;
}

static void ops_deliver(void *sub, const struct pproc *p, int stream,
			const char *data, uint32_t len, void *arg)
{
	struct pclient *cl = sub;
	msgpack_packer *pk = ipc_notify_begin(cl->conn, AGENT_N_OUTPUT);

	if (!pk)
		return;
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_str(pk, "container_id", p->cid);
	ipc_pack_kv_str(pk, "exec_id", p->eid);
	ipc_pack_kv_uint(pk, "stream", stream);
	ipc_pack_kv_bin(pk, "data", data, len);
	ipc_notify_send(cl->conn);
}

static void ops_ack(const struct pproc *p, int stream, uint64_t n,
		    void *arg)
{
	struct proxy *px = arg;
	msgpack_packer *pk;

	if (!px->agent || !px->agent_ready)
		return;
	pk = ipc_notify_begin(px->agent, AGENT_N_OUTPUT_ACK);
	if (!pk)
		return;
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_str(pk, "container_id", p->cid);
	ipc_pack_kv_str(pk, "exec_id", p->eid);
	ipc_pack_kv_uint(pk, "stream", stream);
	ipc_pack_kv_uint(pk, "bytes", n);
	ipc_notify_send(px->agent);
}

static int ops_relay(void *sub, const char *raw, uint32_t len, void *arg)
{
	struct pclient *cl = sub;

	return ipc_conn_send_payload(cl->conn, raw, len);
}

const struct pstream_ops proxy_stream_ops = {
	.can_deliver = ops_can_deliver,
	.deliver = ops_deliver,
	.ack = ops_ack,
	.relay = ops_relay,
};

/* ------------------------------------------------------ forwarding */

static void call_free(struct proxy *p, struct pcall *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		p->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	if (call->client)
		call->client->ncalls--;
	p->ncalls--;
	free(call->cid);
	free(call->eid);
	free(call);
}

/*
 * Replies are queued whether the client reads or not (the agent answers
 * the calls a client made before it stopped reading), and their size is
 * the guest's choice: a client whose queue passes
 * PROXY_CLIENT_QUEUE_MAX, or the largest queue when all of them pass
 * PROXY_CLIENTS_QUEUE_MAX, is disconnected.
 */
static void client_check_queue(struct proxy *p, struct pclient *cl)
{
	struct pclient *big = cl;
	size_t q = ipc_conn_queued(cl->conn), total = 0;
	struct husk_err *why = NULL;

	if (q <= PROXY_WQ_HIGH)
		return;
	for (struct pclient *o = p->clients; o; o = o->next) {
		total += ipc_conn_queued(o->conn);
		if (ipc_conn_queued(o->conn) > ipc_conn_queued(big->conn))
			big = o;
	}
	if (q > PROXY_CLIENT_QUEUE_MAX)
		husk_error(&why, HUSK_E_TOO_LARGE, "write queue over %u bytes "
			   "(%zu bytes in %zu messages): not reading",
			   PROXY_CLIENT_QUEUE_MAX, q,
			   ipc_conn_queued_msgs(cl->conn));
	else if (total > PROXY_CLIENTS_QUEUE_MAX) {
		cl = big;
		husk_error(&why, HUSK_E_TOO_LARGE, "clients' write queues "
			   "over %u bytes in all, this one the largest (%zu "
			   "bytes)", PROXY_CLIENTS_QUEUE_MAX,
			   ipc_conn_queued(cl->conn));
	} else {
		return;
	}
	log_warnx("client pid %d cut off: %s",
		  (int)cl->pid, why->msg);
	ipc_conn_close(cl->conn, why);
	husk_err_free(why);
}

static void call_reply_result(struct pcall *call, struct ipc_msg *resp)
{
	struct ipc_conn *c = call->client->conn;
	msgpack_packer *pk = ipc_reply_begin(c, call->client_msgid);

	if (!pk)
		return;
	msgpack_pack_object(pk, *resp->result);
	ipc_reply_send(c);
}

/* What a successful answer means to the stream table. */
static void call_effects(struct proxy *p, const struct pcall *call)
{
	switch (call->kind) {
	case PCALL_REMOVE_CONTAINER:
		pstreams_remove(&p->streams, call->cid);
		break;
	case PCALL_DESTROY_SANDBOX:
		pstreams_remove(&p->streams, NULL);
		break;
	}
}

static void call_done(struct ipc_conn *c, struct ipc_msg *resp,
		      const struct husk_err *err, void *arg)
{
	struct proxy *p = proxy;
	struct pcall *call = arg;

	if (!resp && err && err->code == HUSK_E_UNAVAILABLE &&
	    p->agent == c) {
		/* The connection is closing; agent_on_close has the reason
		 * and answers the client then. */
		call->failed = true;
		return;
	}
	if (!err)
		call_effects(p, call);
	if (call->client) {
		if (err)
			ipc_reply_err(call->client->conn, call->client_msgid,
				      err);
		else
			call_reply_result(call, resp);
		/* May close the client, which unties its calls. */
		client_check_queue(p, call->client);
	} else {
		log_debug("answer %u for a client that left "
			  "dropped", call->agent_msgid);
	}
	call_free(p, call);
}

void proxy_calls_fail(struct proxy *p, struct ipc_conn *c,
		      const char *reason)
{
	struct pcall *call, *next;

	for (call = p->calls; call; call = next) {
		next = call->next;
		if (!call->failed)
			ipc_call_cancel(c, call->agent_msgid);
		if (call->client)
			ipc_reply_error(call->client->conn,
					call->client_msgid, HUSK_E_UNAVAILABLE,
					"agent connection closed: %s", reason);
		call_free(p, call);
	}
}

/* The container (and exec) id a forwarded call names, if valid. */
static char *param_id(const struct ipc_msg *m, const char *key)
{
	const msgpack_object *o = ipc_map_get(m->params, key);
	struct husk_err *err = NULL;
	char *s = NULL;

	if (!o || ipc_obj_str(o, key, HUSK_ID_MAX, &s, &err) < 0) {
		husk_err_free(err);
		return NULL;
	}
	if (s[0] && husk_id_validate(s, key, &err) < 0) {
		husk_err_free(err);
		free(s);
		return NULL;
	}
	return s;
}

/* Streams of a process exist as soon as the agent may write them; know
 * them before the answer, which output may overtake. */
static void call_classify(struct proxy *p, struct pcall *call,
			  const struct ipc_msg *m)
{
	struct husk_err *err = NULL;
	bool create = strcmp(m->method, AGENT_M_CREATE_CONTAINER) == 0;
	bool exec = strcmp(m->method, AGENT_M_EXEC_PROCESS) == 0;

	if (strcmp(m->method, AGENT_M_DESTROY_SANDBOX) == 0) {
		call->kind = PCALL_DESTROY_SANDBOX;
		return;
	}
	if (!create && !exec && strcmp(m->method, AGENT_M_REMOVE_CONTAINER) != 0)
		return;
	call->cid = param_id(m, "container_id");
	if (!call->cid)
		return;
	if (!create && !exec) {
		call->kind = PCALL_REMOVE_CONTAINER;
		return;
	}
	call->eid = exec ? param_id(m, "exec_id") : husk_xstrdup("");
	if (call->eid && pstreams_register(&p->streams, call->cid, call->eid,
					   &err) < 0) {
		log_warnx("%s", err->msg);
		husk_err_free(err);
	}
}

/* "*": every agent method is forwarded, its answer relayed back. */
static int proxy_m_forward(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err)
{
	struct proxy *p = proxy;
	struct pclient *cl = client_of(c);
	struct pcall *call;
	msgpack_packer *pk;

	if (!p->agent || !p->agent_ready)
		return husk_error(err, HUSK_E_UNAVAILABLE,
				  "agent not connected: %s", p->agent_reason);
	if (strcmp(m->method, AGENT_N_OUTPUT) == 0 ||
	    strcmp(m->method, AGENT_N_OUTPUT_ACK) == 0)
		return husk_error(err, HUSK_E_INVALID, "%s is a notification",
				  m->method);
	if (cl->ncalls >= PROXY_CLIENT_CALLS_MAX ||
	    p->ncalls >= PROXY_CALLS_MAX)
		return husk_error(err, HUSK_E_UNAVAILABLE,
				  "too many calls in flight");
	call = husk_xcalloc(1, sizeof(*call));
	call->client = cl;
	call->client_msgid = m->msgid;
	call_classify(p, call, m);
	pk = ipc_call_begin(p->agent, m->method);
	if (pk)
		msgpack_pack_object(pk, *m->params);
	if (!pk || ipc_call_send(p->agent, 0., NULL, 0, call_done, call,
				 &call->agent_msgid) < 0) {
		free(call->cid);
		free(call->eid);
		free(call);
		return husk_error(err, HUSK_E_UNAVAILABLE,
				  "cannot forward %s to the agent", m->method);
	}
	call->next = p->calls;
	if (p->calls)
		p->calls->prev = call;
	p->calls = call;
	p->ncalls++;
	cl->ncalls++;
	return 0;
}

/* ------------------------------------------------- proxy methods */

struct sub_params {
	char *container_id;
	char *exec_id;
};

static const struct ipc_field sub_fields[] = {
	{ "container_id", IPC_F_STR, IPC_REQUIRED,
	  offsetof(struct sub_params, container_id), 0, HUSK_ID_MAX },
	{ "exec_id", IPC_F_STR, 0, offsetof(struct sub_params, exec_id), 0,
	  HUSK_ID_MAX },
	{ NULL },
};

typedef int sub_fn(struct pstreams *t, void *sub, const char *cid,
		   const char *eid, struct husk_err **err);

/* subscribe, unsubscribe: the ids checked (no exec_id is the init's),
 * then fn. */
static int sub_apply(struct ipc_conn *c, struct ipc_msg *m,
		     const struct sub_params *s, sub_fn *fn,
		     struct husk_err **err)
{
	const char *eid = s->exec_id ? s->exec_id : "";

	if (husk_id_validate(s->container_id, "params.container_id",
			     err) < 0 ||
	    (eid[0] && husk_id_validate(eid, "params.exec_id", err) < 0) ||
	    fn(&proxy->streams, client_of(c), s->container_id, eid, err) < 0)
		return -1;
	log_debug("%s: %s/%s, pid %d", m->method, s->container_id, eid,
		  (int)client_of(c)->pid);
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static int proxy_m_subscribe(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	return sub_apply(c, m, params, pstreams_subscribe, err);
}

static int proxy_m_unsubscribe(struct ipc_conn *c, struct ipc_msg *m,
			       void *params, void *arg, struct husk_err **err)
{
	return sub_apply(c, m, params, pstreams_unsubscribe, err);
}

/* Its row has no params table: pstreams_client_ack decodes (a fuzz
 * target's entry), and a bad ack is only logged. */
static int proxy_m_output_ack(struct ipc_conn *c, struct ipc_msg *m,
			      void *params, void *arg, struct husk_err **errp)
{
	struct husk_err *err = NULL;

	if (pstreams_client_ack(&proxy->streams, client_of(c), m->params,
				&err) < 0) {
		/* A client acknowledging what it never got is confused, not
		 * dangerous: say so and keep it. */
		log_warnx("pid %d: %s",
			  (int)client_of(c)->pid, err->msg);
		husk_err_free(err);
	}
	return 0;
}

static size_t clients_queued(const struct proxy *p)
{
	size_t n = 0;

	for (const struct pclient *cl = p->clients; cl; cl = cl->next)
		n += ipc_conn_queued(cl->conn);
	return n;
}

/* Calls still waiting for an answer whose client left. */
static size_t orphans(const struct proxy *p)
{
	size_t n = 0;

	for (const struct pcall *call = p->calls; call; call = call->next)
		if (!call->client)
			n++;
	return n;
}

static int proxy_m_status(struct ipc_conn *c, struct ipc_msg *m, void *params,
			  void *arg, struct husk_err **err)
{
	struct proxy *p = proxy;
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	if (!pk)
		return 0;
	msgpack_pack_map(pk, 19);
	ipc_pack_kv_bool(pk, "agent_connected", p->agent_ready);
	ipc_pack_kv_str(pk, "agent", p->agent_path);
	ipc_pack_kv_str(pk, "sandbox", p->sandbox ? p->sandbox : "");
	ipc_pack_kv_str(pk, "last_error",
			p->agent_ready ? "" : p->agent_reason);
	ipc_pack_kv_uint(pk, "connects", p->connects);
	ipc_pack_kv_uint(pk, "clients", p->nclients);
	ipc_pack_kv_uint(pk, "streams", p->streams.nprocs);
	ipc_pack_kv_uint(pk, "subscribed",
			 pstreams_count_sub(&p->streams, client_of(c)));
	ipc_pack_kv_uint(pk, "subscriptions",
			 pstreams_count_sub(&p->streams, NULL));
	ipc_pack_kv_uint(pk, "calls", p->ncalls);
	ipc_pack_kv_uint(pk, "unsubscribed_bytes", p->streams.unsub_bytes);
	ipc_pack_kv_uint(pk, "orphaned_calls", orphans(p));
	ipc_pack_kv_uint(pk, "unknown_streams", p->streams.nunknown);
	ipc_pack_kv_uint(pk, "held_bytes", p->streams.held);
	ipc_pack_kv_uint(pk, "queued_bytes", clients_queued(p));
	ipc_pack_kv_uint(pk, "reconnect_delay_ms",
			 (uint64_t)(p->retry_delay * 1000 + 0.5));
	ipc_pack_kv_uint(pk, "poll_window_us",
			 p->evpoll ? p->evpoll->window_ns / 1000 : 0);
	ipc_pack_kv_uint(pk, "poll_caught", p->evpoll ? p->evpoll->caught : 0);
	ipc_pack_kv_uint(pk, "poll_missed", p->evpoll ? p->evpoll->missed : 0);
	ipc_reply_send(c);
	return 0;
}

/* What a client may call: the proxy's own methods, else the agent's. */
static const struct ipc_method client_methods[] = {
	IPC_METHOD(PROXY_M_STATUS, IPC_M_REQUEST, proxy_m_status),
	IPC_METHOD_P(PROXY_M_SUBSCRIBE, IPC_M_REQUEST, sub_fields,
		     struct sub_params, proxy_m_subscribe),
	IPC_METHOD_P(PROXY_M_UNSUBSCRIBE, IPC_M_REQUEST, sub_fields,
		     struct sub_params, proxy_m_unsubscribe),
	IPC_METHOD(AGENT_N_OUTPUT_ACK, IPC_M_NOTIFY, proxy_m_output_ack),
	IPC_METHOD("*", IPC_M_REQUEST, proxy_m_forward),
	IPC_METHOD_END,
};

/* -------------------------------------------------- connections */

static void client_apply_pause(struct proxy *p, struct pclient *cl)
{
	ipc_conn_pause_read(cl->conn, cl->blocked || p->agent_paused_clients);
}

void proxy_clients_pause(struct proxy *p, bool pause)
{
	p->agent_paused_clients = pause;
	for (struct pclient *cl = p->clients; cl; cl = cl->next)
		client_apply_pause(p, cl);
}

static void client_on_accept(struct ipc_server *s, struct ipc_conn *c,
			     void *arg)
{
	struct proxy *p = proxy;
	struct pclient *cl = husk_xcalloc(1, sizeof(*cl));

	cl->conn = c;
	cl->pid = ipc_conn_peer_pid(c);
	cl->next = p->clients;
	if (p->clients)
		p->clients->prev = cl;
	p->clients = cl;
	p->nclients++;
	ipc_conn_set_arg(c, cl);
	log_debug("pid %d", (int)cl->pid);
	if (p->agent_paused_clients)
		client_apply_pause(p, cl);
}

static void client_on_queue(struct ipc_conn *c, bool above, void *arg)
{
	struct pclient *cl = client_of(c);

	cl->blocked = above;
	client_apply_pause(proxy, cl);
	if (!above)
		pstreams_flush(&proxy->streams, cl);
}

static void client_on_close(struct ipc_conn *c, const struct husk_err *why,
			    void *arg)
{
	struct proxy *p = proxy;
	struct pclient *cl = client_of(c);

	if (!cl)
		return;
	if (why)
		log_info("pid %d: %s", (int)cl->pid,
			 why->msg);
	pstreams_drop_sub(&p->streams, cl);
	for (struct pcall *call = p->calls; call; call = call->next)
		if (call->client == cl)
			call->client = NULL;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		p->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	p->nclients--;
	ipc_conn_set_arg(c, NULL);
	free(cl);
}

int proxy_server_start(struct proxy *p, struct husk_err **err)
{
	struct ipc_server_opts o = {
		.conn = {
			.role = IPC_ROLE_SERVER,
			.component = PROXY_COMPONENT,
			.methods = client_methods,
			.max_frame = p->frame_max,
			.wq_high = PROXY_WQ_HIGH,
			.wq_low = PROXY_WQ_LOW,
			.on_queue = client_on_queue,
			.on_close = client_on_close,
			.trusted = false,
			.arg = p,
		},
		.allowed_uids = p->allowed,
		.nallowed = 2,
		.on_accept = client_on_accept,
	};

	p->server = ipc_server_new(p->loop, p->socket_path, &o, err);
	return p->server ? 0 : -1;
}
