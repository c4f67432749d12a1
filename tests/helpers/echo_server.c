/*
 * A tiny component for husk-ipc's tests: listens on argv[1] as
 * "husk-echo" and serves
 *   echo       returns its params
 *   fail       an error, code not-found
 *   notify_me  replies {}, then sends three "tick" {n} notifications
 *   sleep      {ms}: answers {"slept": ms} after ms milliseconds
 *   hang_up    closes the connection without answering
 *   note       (a notification) prints "note PARAMS-JSON" on stderr
 * until SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>
#include <jansson.h>

#include "libhusk/err.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

struct sleeper {
	ev_timer t;
	struct ipc_conn *c;
	uint32_t msgid;
	int64_t ms;
};

static void echo(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_object(pk, *m->params);
	ipc_reply_send(c);
}

static void fail(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	ipc_reply_error(c, m->msgid, HUSK_E_NOT_FOUND,
			"no such thing as %s", "a free lunch");
}

static void notify_me(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	ipc_reply_ok(c, m->msgid);
	for (int i = 1; i <= 3; i++) {
		msgpack_packer *pk = ipc_notify_begin(c, "tick");

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "n", i);
		ipc_notify_send(c);
	}
}

static void sleep_done(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sleeper *s = (struct sleeper *)t;

	if (!ipc_conn_closed(s->c)) {
		msgpack_packer *pk = ipc_reply_begin(s->c, s->msgid);

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "slept", s->ms);
		ipc_reply_send(s->c);
	}
	ipc_conn_unref(s->c);
	free(s);
}

static void do_sleep(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct ev_loop *loop = arg;
	struct husk_err *err = NULL;
	struct sleeper *s;
	struct {
		int64_t ms;
	} p = { 0 };
	static const struct ipc_field fields[] = {
		{ "ms", IPC_F_INT64, IPC_REQUIRED, 0, 0, 600000 },
		{ NULL, 0, 0, 0, 0, 0 },
	};

	if (ipc_decode(m->params, fields, &p, &err) < 0) {
		ipc_reply_err(c, m->msgid, err);
		husk_err_free(err);
		return;
	}
	s = husk_xcalloc(1, sizeof(*s));
	s->c = c;
	s->msgid = m->msgid;
	s->ms = p.ms;
	ipc_conn_ref(c);
	ev_timer_init(&s->t, sleep_done, (double)p.ms / 1000.0, 0);
	ev_timer_start(loop, &s->t);
}

static void hang_up(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	ipc_conn_close(c, NULL);
}

static void note(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	json_t *j = ipc_json_from_obj(m->params);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	fprintf(stderr, "note %s\n", s ? s : "?");
	free(s);
	json_decref(j);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct ipc_method methods[] = {
		{ "echo", IPC_M_REQUEST, echo },
		{ "fail", IPC_M_REQUEST, fail },
		{ "notify_me", IPC_M_REQUEST, notify_me },
		{ "sleep", IPC_M_REQUEST, do_sleep },
		{ "hang_up", IPC_M_REQUEST | IPC_M_NOTIFY, hang_up },
		{ "note", IPC_M_NOTIFY, note },
		{ NULL, 0, NULL },
	};
	struct ipc_server_opts o = {
		.conn = {
			.component = "husk-echo",
			.methods = methods,
			.arg = loop,
		},
	};
	struct husk_err *err = NULL;
	struct ipc_server *s;
	ev_signal sigterm, sigint;

	if (argc != 2) {
		fprintf(stderr, "usage: echo_server SOCKET\n");
		return HUSK_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	s = ipc_server_new(loop, argv[1], &o, &err);
	if (!s) {
		fprintf(stderr, "echo_server: %s\n", err->msg);
		return husk_err_exit_code(err);
	}
	ev_signal_init(&sigterm, on_signal, SIGTERM);
	ev_signal_start(loop, &sigterm);
	ev_signal_init(&sigint, on_signal, SIGINT);
	ev_signal_start(loop, &sigint);
	ev_run(loop, 0);
	ipc_server_free(s);
	return 0;
}
