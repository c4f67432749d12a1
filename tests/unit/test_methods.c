/*
 * libipc's method rows (struct ipc_method): params decoded into the
 * row's struct before the handler runs (zeroed, or the row's defaults),
 * freed after it (ASan's leak check sees a miss: make unit-asan), bad
 * params answered without the handler, a handler's error sent as the
 * reply, IPC_M_ONCE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "ipc_testlib.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"

struct thing_params {
	char *name;
	int64_t n;
	char **tags;
	bool flag;
	char *note;             /* optional: NULL unless given */
	uint32_t size;          /* default 7 in the _D rows */
};

#define TP(m) offsetof(struct thing_params, m)
static const struct ipc_field thing_fields[] = {
	{ "name", IPC_F_STR, IPC_REQUIRED, TP(name), 0, 32 },
	{ "n", IPC_F_INT64, 0, TP(n), -100, 100 },
	{ "tags", IPC_F_STRV, 0, TP(tags), 16, 4 },
	{ "flag", IPC_F_BOOL, 0, TP(flag), 0, 0 },
	{ "note", IPC_F_STR, IPC_NULLABLE, TP(note), 0, 32 },
	{ "size", IPC_F_UINT32, 0, TP(size), 0, 1000 },
	{ NULL, 0, 0, 0, 0, 0 },
};
static const struct thing_params thing_defaults = { .size = 7 };

struct res {
	int done;
	int code;               /* 0 on success */
	char msg[256];
};

struct fx {
	struct ev_loop *loop;
	struct ipc_conn *cli, *srv;
	int ready;
	int ndone;
	struct res res[8];
	int runs;               /* handler runs */
	int notes;
	struct thing_params seen;       /* what the last handler got */
	char seen_name[64], seen_tag[64];
	char *stolen;           /* a string the handler took */
};

/* ---------------------------------------------------------- handlers */

static int h_thing(struct ipc_conn *c, struct ipc_msg *m, void *params,
		   void *arg, struct husk_err **err)
{
	struct thing_params *p = params;
	struct fx *f = arg;

	f->runs++;
	f->seen = *p;
	snprintf(f->seen_name, sizeof(f->seen_name), "%s", p->name);
	snprintf(f->seen_tag, sizeof(f->seen_tag), "%s",
		 p->tags && p->tags[0] ? p->tags[0] : "");
	/* Pointers die with the struct: keep none in f->seen. */
	f->seen.name = NULL;
	f->seen.tags = NULL;
	f->seen.note = p->note ? (char *)"set" : NULL;
	if (p->name[0] == 'x')
		return husk_error(err, HUSK_E_NOT_FOUND, "thing %s: no such "
				  "thing", p->name);
	if (p->name[0] == 'q')
		return -1;      /* no error said: libipc makes one */
	if (p->name[0] == 's') {
		/* Taking a string: the member is NULL after, libipc frees
		 * the rest. */
		free(f->stolen);
		f->stolen = husk_steal_ptr(p->name);
	}
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static int h_note(struct ipc_conn *c, struct ipc_msg *m, void *params,
		  void *arg, struct husk_err **err)
{
	struct fx *f = arg;

	f->notes++;
	return 0;
}

static const struct ipc_method methods[] = {
	IPC_METHOD_P("thing", IPC_M_REQUEST, thing_fields,
		     struct thing_params, h_thing),
	IPC_METHOD_D("dthing", IPC_M_REQUEST, thing_fields, thing_defaults,
		     h_thing),
	IPC_METHOD_P("one", IPC_M_REQUEST | IPC_M_ONCE, thing_fields,
		     struct thing_params, h_thing),
	IPC_METHOD_P("note", IPC_M_NOTIFY, thing_fields,
		     struct thing_params, h_note),
	IPC_METHOD_END,
};

/* ----------------------------------------------------------- fixture */

static void on_ready(struct ipc_conn *c, void *arg)
{
	struct fx *f = arg;

	f->ready++;
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	struct fx *f = arg;

	if (c == f->cli)
		f->cli = NULL;
	else
		f->srv = NULL;
}

static void on_result(struct ipc_conn *c, struct ipc_msg *resp,
		      const struct husk_err *err, void *arg)
{
	struct res *r = arg;
	struct fx *f = ipc_conn_arg(c);

	r->done = 1;
	f->ndone++;
	if (err) {
		r->code = err->code;
		snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
	}
}

static int setup(void **state)
{
	struct fx *f = husk_xcalloc(1, sizeof(*f));
	struct ipc_conn_opts o = {
		.on_ready = on_ready, .on_close = on_close, .arg = f,
	};
	int sv[2];

	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	o.role = IPC_ROLE_SERVER;
	o.component = "test-server";
	o.methods = methods;
	o.rehello = true;
	f->srv = ipc_conn_new(f->loop, sv[0], &o, NULL);
	o.role = IPC_ROLE_CLIENT;
	o.component = "test-client";
	o.methods = NULL;
	o.rehello = false;
	f->cli = ipc_conn_new(f->loop, sv[1], &o, NULL);
	assert_non_null(f->srv);
	assert_non_null(f->cli);
	tl_run_until(f->loop, &f->ready, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->cli)
		ipc_conn_close(f->cli, NULL);
	if (f->srv)
		ipc_conn_close(f->srv, NULL);
	ev_loop_destroy(f->loop);
	free(f->stolen);
	free(f);
	return 0;
}

/* Call method with params given as "k=v" pairs: v an integer, a
 * string, or [a string] for "tags"; "$k" packs a string as k. */
static void call(struct fx *f, const char *method, int slot, int npairs,
		 ...)
{
	msgpack_packer *pk = ipc_call_begin(f->cli, method);
	va_list ap;

	msgpack_pack_map(pk, (uint32_t)npairs);
	va_start(ap, npairs);
	for (int i = 0; i < npairs; i++) {
		const char *k = va_arg(ap, const char *);

		if (k[0] == '$')        /* a string where it should not be */
			ipc_pack_kv_str(pk, k + 1, va_arg(ap, const char *));
		else if (!strcmp(k, "n") || !strcmp(k, "size"))
			ipc_pack_kv_int(pk, k, va_arg(ap, int));
		else if (!strcmp(k, "tags")) {
			ipc_pack_key(pk, k);
			msgpack_pack_array(pk, 1);
			ipc_pack_str(pk, va_arg(ap, const char *));
		} else
			ipc_pack_kv_str(pk, k, va_arg(ap, const char *));
	}
	va_end(ap);
	assert_int_equal(ipc_call_send(f->cli, 0, NULL, 0, on_result,
				       &f->res[slot], NULL), 0);
}

static void wait_done(struct fx *f, int n)
{
	tl_run_until(f->loop, &f->ndone, n);
}

/* ------------------------------------------------------------- tests */

static void test_decoded_into_zeroed_struct(void **state)
{
	struct fx *f = *state;

	call(f, "thing", 0, 3, "name", "box", "n", -5, "tags", "red");
	wait_done(f, 1);
	assert_int_equal(f->res[0].code, 0);
	assert_int_equal(f->runs, 1);
	assert_string_equal(f->seen_name, "box");
	assert_int_equal(f->seen.n, -5);
	assert_string_equal(f->seen_tag, "red");
	/* What was not given is zero: the struct starts zeroed. */
	assert_false(f->seen.flag);
	assert_null(f->seen.note);
	assert_int_equal(f->seen.size, 0);
	/* The strings were freed after the handler (ASan's leak check
	 * fails this binary otherwise); one taken by the handler is its. */
	call(f, "thing", 1, 2, "name", "stolen", "note", "kept?");
	wait_done(f, 2);
	assert_int_equal(f->res[1].code, 0);
	assert_string_equal(f->stolen, "stolen");
	assert_non_null(f->seen.note);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;

	call(f, "dthing", 0, 1, "name", "a");
	wait_done(f, 1);
	assert_int_equal(f->res[0].code, 0);
	assert_int_equal(f->seen.size, 7);
	call(f, "dthing", 1, 2, "name", "a", "size", 0);
	wait_done(f, 2);
	assert_int_equal(f->seen.size, 0);
	assert_int_equal(f->runs, 2);
}

static void test_bad_params_never_reach_handler(void **state)
{
	struct fx *f = *state;

	call(f, "thing", 0, 1, "n", 1);
	call(f, "thing", 1, 2, "name", "a", "n", 101);
	call(f, "thing", 2, 2, "name", "a", "flag", "yes");
	call(f, "thing", 3, 2, "name", "a", "$n", "1");
	wait_done(f, 4);
	assert_int_equal(f->runs, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->res[i].code, HUSK_E_INVALID);
	assert_string_equal(f->res[0].msg, "params.name: missing");
	assert_string_equal(f->res[1].msg,
			    "params.n: 101 is out of range [-100, 100]");
	assert_non_null(strstr(f->res[2].msg, "params.flag"));
	assert_string_equal(f->res[3].msg,
			    "params.n: expected an integer, got a string");
	/* The connection stays, and the next good call runs. */
	call(f, "thing", 4, 1, "name", "ok");
	wait_done(f, 5);
	assert_int_equal(f->res[4].code, 0);
	assert_int_equal(f->runs, 1);
}

static void test_handler_error_is_the_reply(void **state)
{
	struct fx *f = *state;

	call(f, "thing", 0, 1, "name", "xylophone");
	call(f, "thing", 1, 1, "name", "quiet");
	wait_done(f, 2);
	assert_int_equal(f->runs, 2);
	assert_int_equal(f->res[0].code, HUSK_E_NOT_FOUND);
	assert_string_equal(f->res[0].msg, "thing xylophone: no such thing");
	assert_int_equal(f->res[1].code, HUSK_E_INTERNAL);
	assert_string_equal(f->res[1].msg, "thing failed");
	assert_non_null(f->srv);
}

static void test_once(void **state)
{
	struct fx *f = *state;
	msgpack_packer *pk;

	/* Refused params do not count as the one call. */
	call(f, "one", 0, 0);
	call(f, "one", 1, 1, "name", "first");
	call(f, "one", 2, 1, "name", "second");
	wait_done(f, 3);
	assert_int_equal(f->res[0].code, HUSK_E_INVALID);
	assert_int_equal(f->res[1].code, 0);
	assert_int_equal(f->res[2].code, HUSK_E_STATE);
	assert_string_equal(f->res[2].msg, "'one' may be sent only once");
	assert_int_equal(f->runs, 1);
	assert_string_equal(f->seen_name, "first");
	/* A new peer on the same channel (rehello) may call it again. */
	pk = ipc_call_begin(f->cli, "hello");
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "version", IPC_PROTOCOL_VERSION);
	ipc_pack_kv_str(pk, "component", "test-client");
	assert_int_equal(ipc_call_send(f->cli, 0, NULL, 0, on_result,
				       &f->res[3], NULL), 0);
	call(f, "one", 4, 1, "name", "again");
	wait_done(f, 5);
	assert_int_equal(f->res[3].code, 0);
	assert_int_equal(f->res[4].code, 0);
	assert_int_equal(f->runs, 2);
}

static void test_notification_bad_params(void **state)
{
	struct fx *f = *state;
	msgpack_packer *pk;

	pk = ipc_notify_begin(f->cli, "note");
	msgpack_pack_map(pk, 0);                /* name missing */
	assert_int_equal(ipc_notify_send(f->cli), 0);
	pk = ipc_notify_begin(f->cli, "note");
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_str(pk, "name", "fine");
	assert_int_equal(ipc_notify_send(f->cli), 0);
	tl_run_until(f->loop, &f->notes, 1);
	tl_run_for(f->loop, 0.05);
	assert_int_equal(f->notes, 1);
	assert_non_null(f->srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_decoded_into_zeroed_struct),
		T(test_defaults),
		T(test_bad_params_never_reach_handler),
		T(test_handler_error_is_the_reply),
		T(test_once),
		T(test_notification_bad_params),
#undef T
	};

	husk_log_init("test_methods", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
