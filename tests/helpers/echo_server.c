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

static int echo(struct ipc_conn *c, struct ipc_msg *m,
		void *params, void *arg, struct husk_err **err)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_object(pk, *m->params);
	ipc_reply_send(c);
	return 0;
}

static int fail(struct ipc_conn *c, struct ipc_msg *m,
		void *params, void *arg, struct husk_err **err)
{
	ipc_reply_error(c, m->msgid, HUSK_E_NOT_FOUND,
			"no such thing as %s", "a free lunch");
	return 0;
}

static int notify_me(struct ipc_conn *c, struct ipc_msg *m,
		     void *params, void *arg, struct husk_err **err)
{
	ipc_reply_ok(c, m->msgid);
	for (int i = 1; i <= 3; i++) {
		msgpack_packer *pk = ipc_notify_begin(c, "tick");

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_int(pk, "n", i);
		ipc_notify_send(c);
	}
	return 0;
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

struct sleep_params {
	int64_t ms;
};

static const struct ipc_field sleep_fields[] = {
	{ "ms", IPC_F_INT64, IPC_REQUIRED, 0, 0, 600000 },
	{ NULL, 0, 0, 0, 0, 0 },
};

static int do_sleep(struct ipc_conn *c, struct ipc_msg *m,
		    void *params, void *arg, struct husk_err **err)
{
	const struct sleep_params *p = params;
	struct ev_loop *loop = arg;
	struct sleeper *s;

	s = husk_xcalloc(1, sizeof(*s));
	s->c = c;
	s->msgid = m->msgid;
	s->ms = p->ms;
	ipc_conn_ref(c);
	ev_timer_init(&s->t, sleep_done, (double)p->ms / 1000.0, 0);
	ev_timer_start(loop, &s->t);
	return 0;
}

static int hang_up(struct ipc_conn *c, struct ipc_msg *m,
		   void *params, void *arg, struct husk_err **err)
{
	ipc_conn_close(c, NULL);
	return 0;
}

static int note(struct ipc_conn *c, struct ipc_msg *m,
		void *params, void *arg, struct husk_err **err)
{
	json_t *j = ipc_json_from_obj(m->params);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	fprintf(stderr, "note %s\n", s ? s : "?");
	free(s);
	json_decref(j);
	return 0;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct ipc_method methods[] = {
		IPC_METHOD("echo", IPC_M_REQUEST, echo),
		IPC_METHOD("fail", IPC_M_REQUEST, fail),
		IPC_METHOD("notify_me", IPC_M_REQUEST, notify_me),
		IPC_METHOD_P("sleep", IPC_M_REQUEST, sleep_fields,
			     struct sleep_params, do_sleep),
		IPC_METHOD("hang_up", IPC_M_REQUEST | IPC_M_NOTIFY, hang_up),
		IPC_METHOD("note", IPC_M_NOTIFY, note),
		IPC_METHOD_END,
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
