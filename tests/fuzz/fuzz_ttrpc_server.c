/*
 * Fuzz containerd-shim-husk-v2's ttrpc server as a peer drives it: the
 * input is written as is into one end of a socketpair whose other end
 * the server serves, with methods that answer at once (Start), with a
 * status (Kill), with a large payload that fills the write queue and
 * pauses reading (Big), or later, out of order (Wait: held, answered
 * newest first once three are held, the rest after the peer is gone).
 * The peer reads what comes back; every frame must be a response that
 * decodes.  Then the peer shuts its side and the server must close.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "libhusk/log.h"
#include "shimv2/ttrpc.h"
#include "shimv2/proto/task.pb-c.h"

#define SVC "containerd.task.v2.Task"
#define MAX_HELD 64

struct ctx {
	struct ttrpc_call *held[MAX_HELD];
	int nheld;
	int closed;
};

static uint8_t big[300 * 1024];

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StartRequest *req = (const Task__StartRequest *)m;
	Task__StartResponse r = TASK__START_RESPONSE__INIT;

	if (!req || !req->id)
		abort();
	r.pid = strlen(req->id);
	ttrpc_reply(call, &r.base);
}

static void h_kill(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	ttrpc_reply_status(call, TTRPC_NOT_FOUND, "process %s not found",
			   ((const Task__KillRequest *)m)->exec_id);
}

static void h_big(struct ttrpc_call *call, const ProtobufCMessage *m,
		  void *arg)
{
	size_t n;
	const uint8_t *p = ttrpc_call_payload(call, &n);

	(void)p;
	ttrpc_reply_bytes(call, big, n < 8 ? sizeof(big) : n * 1024 %
			  sizeof(big));
}

static void answer_held(struct ctx *c)
{
	while (c->nheld > 0) {
		Task__WaitResponse r = TASK__WAIT_RESPONSE__INIT;

		r.exit_status = c->nheld;
		ttrpc_reply(c->held[--c->nheld], &r.base);
	}
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	struct ctx *c = arg;

	if (c->nheld == MAX_HELD) {
		ttrpc_reply_status(call, TTRPC_RESOURCE_EXHAUSTED, "held");
		return;
	}
	c->held[c->nheld++] = call;
	if (c->nheld == 3)
		answer_held(c);
}

static const struct ttrpc_method methods[] = {
	{ SVC, "Start", &task__start_request__descriptor, h_start },
	{ SVC, "Kill", &task__kill_request__descriptor, h_kill },
	{ SVC, "Wait", &task__wait_request__descriptor, h_wait },
	{ SVC, "Big", NULL, h_big },
};

static int on_response(void *arg, const struct ttrpc_hdr *h,
		       const uint8_t *payload, struct husk_err **err)
{
	Ttrpc__Response *resp;

	if (h->type != TTRPC_TYPE_RESPONSE)
		abort();
	if (ttrpc_response_decode(payload, h->len, &resp, err) < 0)
		abort();
	ttrpc__response__free_unpacked(resp, NULL);
	return 0;
}

static void conn_gone(struct ttrpc_server *s, void *arg)
{
	((struct ctx *)arg)->closed = 1;
}

/* Read what the server wrote; -1 at end of file. */
static int drain(int fd, struct ttrpc_reader *r)
{
	uint8_t buf[65536];

	for (;;) {
		struct husk_err *err = NULL;
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (ttrpc_reader_feed(r, buf, n, on_response, NULL, &err) < 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ev_loop *loop;
	struct ctx c = { 0 };
	struct ttrpc_server *s;
	struct ttrpc_reader r;
	size_t off = 0;
	int sv[2], eof = 0;

	if (!loop) {
		husk_log_init("fuzz", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
		loop = ev_loop_new(EVFLAG_AUTO);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0, sv) < 0)
		abort();
	s = ttrpc_server_new(loop, methods, 4, &c);
	ttrpc_server_on_conn_close(s, conn_gone, &c);
	if (!ttrpc_server_add_fd(s, sv[0], NULL))
		abort();
	ttrpc_reader_init(&r);
	/* Write, serve, read, until the input is in; then end it and wait
	 * for the server to close. */
	for (int i = 0; i < 100000 && !c.closed; i++) {
		if (off < size) {
			ssize_t w = send(sv[1], data + off, size - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0)
				off += w;
			else if (w < 0 && errno != EAGAIN)
				break;
		} else if (!eof) {
			shutdown(sv[1], SHUT_WR);
			eof = 1;
		}
		ev_run(loop, EVRUN_NOWAIT);
		if (drain(sv[1], &r) < 0)
			break;
	}
	if (!c.closed && eof)
		abort();	/* end of file must close the connection */
	answer_held(&c);	/* into nothing */
	ttrpc_server_free(s);
	ttrpc_reader_free(&r);
	close(sv[1]);
	return 0;
}
