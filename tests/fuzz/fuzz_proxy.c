/*
 * Fuzz what husk-proxy reads from the guest: a byte stream from the
 * agent cut into frames, parsed, and fed to the stream table
 * (pstreams_agent_msg) the way proxy/agent.c does, with subscribers,
 * client acks and reconnects mixed in.  The table's own invariants are
 * checked after every step; a broken rule ends the "connection" the way
 * the proxy cuts the agent off (reset, and carry on).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static int sub_a, sub_b;
static unsigned budget;

static bool can_deliver(void *sub, void *arg)
{
	/* A subscriber that stalls now and then. */
	return (budget++ % 5) != 0;
}

static void deliver(void *sub, const struct pproc *p, int stream,
		    const char *data, uint32_t len, void *arg)
{
	if (sub != &sub_a && sub != &sub_b)
		abort();
	if (len && !data)
		abort();
}

static void ack(const struct pproc *p, int stream, uint64_t n, void *arg)
{
	if (n == 0 || n > PROXY_WINDOW)
		abort();
}

/* What is relayed as it is must be an output message the shim's
 * decoder would read, no larger than its data and the slack. */
static int relay(void *sub, const char *raw, uint32_t len, void *arg)
{
	struct husk_err *err = NULL;
	struct pout_params o;
	struct ipc_msg m;

	if (sub != &sub_a && sub != &sub_b)
		abort();
	if (ipc_msg_parse_ref(&m, raw, len, &err) < 0 ||
	    m.type != IPC_NOTIFY || strcmp(m.method, AGENT_N_OUTPUT) != 0 ||
	    pstream_decode_output(m.params, &o, &err) < 0)
		abort();
	if (o.data.len == 0 || len > o.data.len + PROXY_RELAY_SLACK)
		abort();
	pstream_params_free(&o);
	ipc_msg_free(&m);
	/* A subscriber whose queue refuses now and then. */
	return (budget++ % 3) == 0 ? -1 : 0;
}

static const struct pstream_ops ops = { can_deliver, deliver, ack, relay };

static void check(const struct pstreams *t)
{
	uint64_t unsub = 0, unsub_held = 0, held = 0;
	size_t n = 0, unknown = 0;

	for (const struct pproc *p = t->head; p; p = p->next, n++) {
		for (int s = 0; s < 2; s++) {
			const struct pout *o = &p->out[s];

			if (o->agent_unacked > PROXY_WINDOW ||
			    o->agent_unacked > o->buffered + o->inflight)
				abort();
			if (!p->sub) {
				unsub += o->buffered;
				unsub_held += o->held;
			}
			held += o->held;
			if (o->buffered + o->inflight > PROXY_STREAM_HELD_MAX)
				abort();
		}
		if (!p->known)
			unknown++;
	}
	if (n != t->nprocs || unsub != t->unsub_bytes || n > PROXY_MAX_PROCS ||
	    unsub_held != t->unsub_held || held != t->held ||
	    held > PROXY_HELD_BYTES_MAX + PROXY_CHUNK_MIN + PROXY_CHUNK_COST ||
	    unknown != t->nunknown || unknown > PROXY_UNKNOWN_PROCS_MAX)
		abort();
}

/* A client's ack of everything in flight on p's stream s. */
static void client_ack_all(struct pstreams *t, struct pproc *p, int s)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked un;
	struct husk_err *err = NULL;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	ipc_pack_kv_str(&pk, "container_id", p->cid);
	ipc_pack_kv_str(&pk, "exec_id", p->eid);
	ipc_pack_kv_uint(&pk, "stream", s);
	ipc_pack_kv_uint(&pk, "bytes", p->out[s - 1].inflight);
	msgpack_unpacked_init(&un);
	if (msgpack_unpack_next(&un, sb.data, sb.size, NULL) ==
	    MSGPACK_UNPACK_SUCCESS)
		pstreams_client_ack(t, p->sub, &un.data, &err);
	husk_err_free(err);
	msgpack_unpacked_destroy(&un);
	msgpack_sbuffer_destroy(&sb);
}

struct ctx {
	struct pstreams *t;
	unsigned step;
};

static int on_frame(void *arg, const char *data, uint32_t len)
{
	struct ctx *x = arg;
	struct pstreams *t = x->t;
	struct husk_err *err = NULL;
	struct ipc_msg m;

	if (ipc_msg_parse(&m, data, len, &err) < 0) {
		husk_err_free(err);
		return -1;      /* the proxy disconnects */
	}
	if (m.type != IPC_RESPONSE && pstreams_agent_msg(t, &m, &err) < 0) {
		husk_err_free(err);
		err = NULL;
		pstreams_agent_reset(t);        /* cut off, reconnected */
	}
	ipc_msg_free(&m);
	check(t);

	/* What clients do meanwhile, chosen by the step number. */
	x->step++;
	if (t->head) {
		struct pproc *p = t->head;

		if (x->step % 3 == 0)
			pstreams_subscribe(t, x->step & 8 ? &sub_a : &sub_b,
					   p->cid, p->eid, &err);
		husk_err_clear(&err);
		if (p->sub && x->step % 2 == 0)
			client_ack_all(t, p, 1 + (x->step & 1));
		if (x->step % 7 == 0)
			pstreams_drop_sub(t, &sub_a);
		if (x->step % 11 == 0)
			pstreams_flush(t, &sub_b);
		if (x->step % 13 == 0)
			pstreams_remove(t, p->cid);
		check(t);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pstreams t;
	struct ipc_framer f;
	struct husk_err *err = NULL;
	struct ctx x = { &t, 0 };

	pstreams_init(&t, &ops, NULL);
	ipc_framer_init(&f, 1u << 20);
	if (ipc_framer_feed(&f, data, size, on_frame, &x, &err) < 0)
		husk_err_free(err);
	ipc_framer_free(&f);
	pstreams_drop_sub(&t, &sub_a);
	pstreams_drop_sub(&t, &sub_b);
	check(&t);
	pstreams_free(&t);
	return 0;
}
