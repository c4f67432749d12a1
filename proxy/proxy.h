/*
 * husk-proxy: the one host process connected to a sandbox's agent,
 * multiplexing it among many clients (docs/proxy.md).
 *
 *   main.c     options, open, run on libhusk/daemon.h
 *   agent.c    the agent connection: connect, reconnect, what it may send
 *   client.c   clients: forwarding with rewritten ids, proxy methods
 *   stream.c   output streams: buffering, subscribers, windows (no I/O)
 *   confine.c  the confinement profile
 */
#ifndef HUSK_PROXY_H
#define HUSK_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libhusk/evpoll.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"

#define PROXY_AGENT_COMPONENT AGENT_COMPONENT

/* The agent's per-stream window (docs/agent-protocol.md). */
#define PROXY_WINDOW (256u * 1024u)
/* Processes the proxy keeps stream state for (live and finished). */
#define PROXY_MAX_PROCS 4096
/*
 * Bounds on what a hostile guest can make the proxy hold (docs/proxy.md,
 * "Bounds").  Output is counted by what it holds in memory: each
 * buffered chunk's size plus PROXY_CHUNK_COST, small outputs being
 * appended to the last chunk while it has room (a chunk for them is
 * PROXY_CHUNK_MIN bytes), so a flood of 1-byte outputs weighs about
 * what its bytes do.
 */
#define PROXY_CHUNK_MIN 1024u
#define PROXY_CHUNK_COST 64u
/* An output message is relayed as the agent sent it (no repacking of
 * its data) when nothing of its stream waits before it and it is at
 * most this much longer than its data: the envelope, the two ids and
 * the keys take up to 309 bytes, so junk the agent adds costs the
 * subscriber's queue no more than a repacked message would. */
#define PROXY_RELAY_SLACK (2u * HUSK_ID_MAX + 64u)
/* Output held for processes nobody subscribed to, and for every
 * process; beyond either the agent is cut off. */
#define PROXY_UNSUB_BYTES_MAX (32u << 20)
#define PROXY_HELD_BYTES_MAX (64u << 20)
/* One stream's bytes held (buffered and delivered but not acknowledged)
 * across agent connections: each new connection starts a fresh window,
 * the bytes of the old one are still here. */
#define PROXY_STREAM_HELD_MAX (2u * PROXY_WINDOW)
/* Entries for processes the proxy never saw created (output for them
 * is plausible only in small numbers, e.g. after a proxy restart). */
#define PROXY_UNKNOWN_PROCS_MAX 64
/* Calls in flight to the agent: per client and in all (calls of clients
 * that left count until answered or the connection ends). */
#define PROXY_CLIENT_CALLS_MAX 1024
#define PROXY_CALLS_MAX 8192
/* Write-queue watermarks of client connections (ipc_conn_queued: bytes
 * plus a cost per message). */
#define PROXY_WQ_HIGH (512u * 1024u)
#define PROXY_WQ_LOW (128u * 1024u)
/* A client's write queue past this (replies to a client that does not
 * read), or the clients' queues past PROXY_CLIENTS_QUEUE_MAX in all:
 * the client (the largest queue) is disconnected. */
#define PROXY_CLIENT_QUEUE_MAX (8u << 20)
#define PROXY_CLIENTS_QUEUE_MAX (64u << 20)
/* Reconnect backoff, seconds; a connection that lasted less than
 * PROXY_STABLE_SECS does not reset it (a guest that resets its channel
 * over and over gets a connect every PROXY_RETRY_MAX seconds). */
#define PROXY_RETRY_MIN 0.05
#define PROXY_RETRY_MAX 2.0
#define PROXY_STABLE_SECS 10.0
/* Log lines about the agent connection (connected, closed, cut off):
 * at most PROXY_LOG_BURST per PROXY_LOG_INTERVAL seconds. */
#define PROXY_LOG_BURST 10
#define PROXY_LOG_INTERVAL 60.0

/* ------------------------------------------------------------------ */
/* stream.c: output of the sandbox's processes                         */

struct pchunk {
	struct pchunk *next;
	uint32_t len, cap;
	char data[];
};

/* One of a process's two output streams (1 stdout, 2 stderr). */
struct pout {
	struct pchunk *head, *tail;  /* received, not yet delivered */
	uint64_t buffered;           /* bytes in the chunks */
	uint64_t held;               /* what the chunks cost (PROXY_CHUNK_COST) */
	uint64_t inflight;           /* delivered to the subscriber, not acked */
	uint64_t agent_unacked;      /* from this agent connection, not acked */
	uint64_t total;              /* bytes received, for proxy_status */
	bool eof_received;
	bool eof_delivered;          /* to the current subscriber */
};

struct pproc {
	struct pproc *next, *prev;
	char *cid, *eid;
	bool known;                  /* seen created, or subscribed to */
	void *sub;                   /* the subscribing client, or NULL */
	struct pout out[2];
};

/* What the stream table does to the world; the proxy wires these to its
 * connections, the fuzz target and unit tests to recorders. */
struct pstream_ops {
	/* Is the subscriber ready to take more (write queue low)? */
	bool (*can_deliver)(void *sub, void *arg);
	/* Send output (len 0: end of stream) to the subscriber. */
	void (*deliver)(void *sub, const struct pproc *p, int stream,
			const char *data, uint32_t len, void *arg);
	/* Acknowledge n bytes of the stream to the agent. */
	void (*ack)(const struct pproc *p, int stream, uint64_t n,
		    void *arg);
	/* Optional: relay the agent's output message as it is (raw, the
	 * frame's payload) to the subscriber; 0 when it went, else it is
	 * buffered and delivered later. */
	int (*relay)(void *sub, const char *raw, uint32_t len, void *arg);
};

struct pstreams {
	struct pproc *head;
	size_t nprocs;
	size_t nunknown;             /* entries not known */
	uint64_t unsub_bytes;        /* buffered in unsubscribed processes */
	uint64_t unsub_held;         /* ... what they cost */
	uint64_t held;               /* what every chunk costs */
	const struct pstream_ops *ops;
	void *arg;
};

/* Decoded params of output and output_ack. */
struct pout_params {
	char *container_id;
	char *exec_id;
	uint32_t stream;
	struct ipc_bin data;         /* output */
	uint64_t bytes;              /* output_ack */
};

int pstream_decode_output(const msgpack_object *params,
			  struct pout_params *o, struct husk_err **err);
int pstream_decode_ack(const msgpack_object *params, struct pout_params *o,
		       struct husk_err **err);
void pstream_params_free(struct pout_params *o);

void pstreams_init(struct pstreams *t, const struct pstream_ops *ops,
		   void *arg);
void pstreams_free(struct pstreams *t);
struct pproc *pstreams_find(struct pstreams *t, const char *cid,
			    const char *eid);
/* Output from the agent (raw: the message as received, or NULL).  -1
 * with *err when the agent broke a rule (window, caps, stream after its
 * end): the caller cuts it off. */
int pstreams_output(struct pstreams *t, const msgpack_object *params,
		    const char *raw, uint32_t raw_len, struct husk_err **err);
/* A process the proxy saw created (create_container, exec_process). */
int pstreams_register(struct pstreams *t, const char *cid, const char *eid,
		      struct husk_err **err);
int pstreams_subscribe(struct pstreams *t, void *sub, const char *cid,
		       const char *eid, struct husk_err **err);
int pstreams_unsubscribe(struct pstreams *t, void *sub, const char *cid,
			 const char *eid, struct husk_err **err);
/* An output_ack from a client. */
int pstreams_client_ack(struct pstreams *t, void *sub,
			const msgpack_object *params, struct husk_err **err);
/* The subscriber can take more: deliver what waits for it. */
void pstreams_flush(struct pstreams *t, void *sub);
/* A client went away: drop its subscriptions. */
void pstreams_drop_sub(struct pstreams *t, void *sub);
/* The agent connection ended: forget what it had in flight. */
void pstreams_agent_reset(struct pstreams *t);
/* A container (NULL: every one) was removed in the guest. */
void pstreams_remove(struct pstreams *t, const char *cid);
/* One message from the agent other than a response: only output is
 * legal.  -1 with *err means cut the agent off.  (No sockets: this is
 * what tests/fuzz/fuzz_proxy.c feeds.) */
int pstreams_agent_msg(struct pstreams *t, const struct ipc_msg *m,
		       struct husk_err **err);
/* For proxy_status: processes sub subscribed to (NULL: anyone). */
size_t pstreams_count_sub(const struct pstreams *t, void *sub);

/* ------------------------------------------------------------------ */
/* The proxy                                                           */

struct pclient;

struct proxy {
	struct ev_loop *loop;
	char *agent_path;
	char *socket_path;
	char *sandbox;
	int ready_fd;                   /* --ready-fd, or -1 */
	uint32_t frame_max;
	uid_t allowed[2];
	bool set_ids;                /* --uid/--gid: run as them, confined */
	uid_t uid;
	gid_t gid;

	struct ipc_server *server;
	struct ipc_conn *agent;      /* NULL when not connected */
	bool agent_ready;            /* hello done */
	bool agent_paused_clients;   /* agent queue high: clients paused */
	char agent_reason[256];      /* why the last connection ended */
	int agent_fd;                /* O_PATH of the channel socket, or -1 */
	ev_timer retry;
	double retry_delay;
	double ready_at;             /* when the hello of this one was done */
	struct ipc_ratelimit log_rl; /* lines about the agent connection */
	uint64_t connects;           /* successful hellos, for proxy_status */

	struct pstreams streams;
	struct pclient *clients;
	size_t nclients;
	size_t ncalls;               /* forwarded calls not yet answered */
	struct pcall *calls;         /* every forwarded call */
	bool shutting_down;
	const struct husk_evpoll *evpoll; /* the loop's polling (daemon) */
};

/* A call forwarded to the agent. */
struct pcall {
	struct pcall *next, *prev;   /* proxy.calls */
	struct pclient *client;      /* NULL once the client is gone */
	uint32_t client_msgid;
	uint32_t agent_msgid;
	bool failed;                 /* agent closed; waits for the reason */
	/* What the reply means to the stream table. */
	int kind;                    /* enum pcall_kind */
	char *cid, *eid;
};

enum pcall_kind {
	PCALL_PLAIN = 0,
	PCALL_REMOVE_CONTAINER,
	PCALL_DESTROY_SANDBOX,
};

struct pclient {
	struct pclient *next, *prev;
	struct ipc_conn *conn;
	pid_t pid;
	size_t ncalls;
	bool blocked;                /* write queue above the high mark */
};

extern struct proxy *proxy;

/* agent.c */
void proxy_agent_init(struct proxy *p);
void proxy_agent_start(struct proxy *p);
void proxy_agent_stop(struct proxy *p);
/* Cut the agent off: log the reason; its calls fail with it. */
void proxy_agent_cut(struct proxy *p, const struct husk_err *why);
/* Before confinement: hold the channel socket by an O_PATH descriptor,
 * so that reconnecting needs no search permission on its directories
 * once the proxy runs as another user. */
void proxy_agent_hold_path(struct proxy *p);

/* client.c */
extern const struct pstream_ops proxy_stream_ops;
int proxy_server_start(struct proxy *p, struct husk_err **err);
/* The agent connection c ended: every call forwarded on it fails. */
void proxy_calls_fail(struct proxy *p, struct ipc_conn *c,
		      const char *reason);
void proxy_clients_pause(struct proxy *p, bool pause);

/* confine.c */
struct husk_daemon;
int proxy_confine(struct husk_daemon *d, struct husk_err **err);

#endif
