/*
 * agent/oom.c and cgroup_oom.c: counting a container's OOM kills and
 * answering wait_oom.  A v2 cgroup is faked with a directory of plain
 * files (inotify sees a write to memory.events as the kernel's
 * notification); a real v1 memory cgroup, when the host has one we may
 * write (root), is run out of memory for real.
 *
 * Linked with build/lib/libagent.a (agent/program.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "agent/cgroup_int.h"
#include "agent/core.h"
#include "tests/unit/agent_testlib.h"
#include "tests/unit/ipc_testlib.h"

struct ot {
	struct ev_loop *loop;
	struct agent a;
	struct agent_core core;
	struct container ct;
	struct cg cg;
	char *dir;
	struct ipc_conn *srv, *cli;
	int ready, answers;
	int64_t kills;          /* the last answer; -1 an error */
	int code;
	char msg[256];
};

/* main.c's, which the method table's other handlers reach. */
struct ipc_conn *agent_conn(struct agent *a)
{
	return a->core->conn;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct ot *o = calloc(1, sizeof(*o));

	o->loop = ev_loop_new(EVFLAG_AUTO);
	o->a.core = &o->core;
	o->core.loop = o->loop;
	o->core.sandbox = true;
	o->ct.a = &o->a;
	o->ct.id = "c1";
	o->core.containers = &o->ct;
	o->dir = tl_tmpdir();
	o->cg.name = "husk/sb/c1";
	o->cg.v2 = o->dir;
	o->cg.dev_prog = -1;
	o->ct.cg = &o->cg;
	*state = o;
	return 0;
}

static int teardown(void **state)
{
	struct ot *o = *state;

	oom_watch_stop(&o->ct);
	if (o->cli)
		ipc_conn_close(o->cli, NULL);
	if (o->srv)
		ipc_conn_close(o->srv, NULL);
	if (o->core.oom_inotify) {
		ev_io_stop(o->loop, &o->core.oom_inotify_w);
		close(o->core.oom_inotify_w.fd);
	}
	ev_loop_destroy(o->loop);
	tl_rmdir(o->dir);
	free(o);
	return 0;
}

static void test_count_files(void **state)
{
	struct ot *o = *state;
	struct cg v1 = { .name = "v1", .dev_prog = -1 };
	uint64_t n = 9;

	assert_int_equal(cg_oom_kills(&o->cg, &n), -1);        /* no file */
	write_file(o->dir, "memory.events",
		   "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\n"
		   "oom_group_kill 7\n");
	assert_int_equal(cg_oom_kills(&o->cg, &n), 0);
	assert_true(n == 3);
	/* v1: memory.oom_control; an old kernel has no oom_kill line. */
	v1.v1[C_MEMORY] = o->dir;
	write_file(o->dir, "memory.oom_control",
		   "oom_kill_disable 0\nunder_oom 0\n");
	assert_int_equal(cg_oom_kills(&v1, &n), 1);
	write_file(o->dir, "memory.oom_control",
		   "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n");
	assert_int_equal(cg_oom_kills(&v1, &n), 0);
	assert_true(n == 5);
	assert_true(cg_keyed_find("a 1\nb 2", "b", &n) && n == 2);
	assert_false(cg_keyed_find("ab 1\n", "a", &n));
}

static int64_t kills_now(struct ot *o)
{
	return (int64_t)oom_kills(&o->ct);
}

/* Run the loop until the container's count is want. */
static void run_until_kills(struct ot *o, uint64_t want)
{
	double end = ev_time() + TEST_DEADLINE;
	ev_timer wake;

	ev_timer_init(&wake, tl_wake, 0.02, 0.02);
	ev_timer_start(o->loop, &wake);
	while (oom_kills(&o->ct) != want && ev_time() < end)
		ev_run(o->loop, EVRUN_ONCE);
	ev_timer_stop(o->loop, &wake);
	assert_int_equal(kills_now(o), want);
}

static void test_watch_v2(void **state)
{
	struct ot *o = *state;

	/* Kills before the watch belong to an earlier cgroup. */
	write_file(o->dir, "memory.events", "oom 1\noom_kill 1\n");
	assert_int_equal(oom_watch_start(&o->a, &o->ct, NULL), 0);
	assert_int_equal(kills_now(o), 0);
	write_file(o->dir, "memory.events", "oom 2\noom_kill 3\n");
	run_until_kills(o, 2);
	/* Another change, no new kill. */
	write_file(o->dir, "memory.events", "max 9\noom 2\noom_kill 3\n");
	tl_run_for(o->loop, 0.1);
	assert_int_equal(kills_now(o), 2);
	/* A reap reads the count without waiting for the notification. */
	ev_io_stop(o->loop, &o->core.oom_inotify_w);
	write_file(o->dir, "memory.events", "oom 3\noom_kill 4\n");
	oom_check(&o->ct);
	assert_int_equal(kills_now(o), 3);
}

static void test_watch_no_memory(void **state)
{
	struct ot *o = *state;
	struct cg none = { .name = "none", .dev_prog = -1 };
	struct husk_err *err = NULL;

	o->ct.cg = &none;
	assert_int_equal(oom_watch_start(&o->a, &o->ct, &err), -1);
	assert_non_null(strstr(err->msg, "no memory controller"));
	husk_err_free(err);
	assert_null(o->ct.oom);
	o->ct.cg = &o->cg;
}

/* ------------------------------------------------------------------ */
/* wait_oom over a connection                                          */

static void cli_ready(struct ipc_conn *c, void *arg)
{
	((struct ot *)arg)->ready++;
}

static void answered(struct ipc_conn *c, struct ipc_msg *resp,
		     const struct husk_err *err, void *arg)
{
	struct ot *o = arg;
	const msgpack_object *v;

	o->answers++;
	o->kills = -1;
	o->code = err ? err->code : 0;
	snprintf(o->msg, sizeof(o->msg), "%s", err ? err->msg : "");
	if (!err && (v = ipc_map_get(resp->result, "oom_kills")) &&
	    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		o->kills = (int64_t)v->via.u64;
}

static void connect_pair(struct ot *o)
{
	struct ipc_conn_opts so = {
		.role = IPC_ROLE_SERVER, .component = AGENT_COMPONENT,
		.methods = agent_methods, .trusted = true, .arg = &o->a,
	};
	struct ipc_conn_opts co = {
		.role = IPC_ROLE_CLIENT, .component = "test",
		.on_ready = cli_ready, .trusted = true, .arg = o,
	};
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	o->srv = ipc_conn_new(o->loop, sv[0], &so, NULL);
	o->cli = ipc_conn_new(o->loop, sv[1], &co, NULL);
	assert_non_null(o->srv);
	assert_non_null(o->cli);
	tl_run_until(o->loop, &o->ready, 1);
}

/* wait_oom {container_id: cid, seen (if >= 0), timeout_ms (if > 0)} */
static void call(struct ot *o, const char *cid, int64_t seen, int timeout)
{
	msgpack_packer *pk = ipc_call_begin(o->cli, AGENT_M_WAIT_OOM);

	msgpack_pack_map(pk, 1 + (seen >= 0) + (timeout > 0));
	ipc_pack_kv_str(pk, "container_id", cid);
	if (seen >= 0)
		ipc_pack_kv_uint(pk, "seen", (uint64_t)seen);
	if (timeout > 0)
		ipc_pack_kv_uint(pk, "timeout_ms", (uint64_t)timeout);
	assert_int_equal(ipc_call_send(o->cli, 5., NULL, 0, answered, o,
				       NULL), 0);
}

static void test_wait_oom(void **state)
{
	struct ot *o = *state;
	int n;

	write_file(o->dir, "memory.events", "oom_kill 0\n");
	assert_int_equal(oom_watch_start(&o->a, &o->ct, NULL), 0);
	connect_pair(o);
	/* No seen: the count now. */
	call(o, "c1", -1, 0);
	tl_run_until(o->loop, &o->answers, 1);
	assert_int_equal(o->kills, 0);
	/* A long poll: no answer until a kill. */
	call(o, "c1", 0, 0);
	call(o, "c1", 1, 0);
	tl_run_for(o->loop, 0.1);
	assert_int_equal(o->answers, 1);
	write_file(o->dir, "memory.events", "oom_kill 1\n");
	tl_run_until(o->loop, &o->answers, 2);
	assert_int_equal(o->kills, 1);
	tl_run_for(o->loop, 0.05);
	assert_int_equal(o->answers, 2);        /* seen 1 still waits */
	write_file(o->dir, "memory.events", "oom_kill 3\n");
	tl_run_until(o->loop, &o->answers, 3);
	assert_int_equal(o->kills, 3);
	/* Behind the count: answered at once. */
	call(o, "c1", 0, 0);
	tl_run_until(o->loop, &o->answers, 4);
	assert_int_equal(o->kills, 3);
	/* The timeout answers with the count as it is. */
	call(o, "c1", 3, 50);
	tl_run_until(o->loop, &o->answers, 5);
	assert_int_equal(o->kills, 3);
	/* Bad calls. */
	call(o, "c9", 0, 0);
	tl_run_until(o->loop, &o->answers, 6);
	assert_int_equal(o->code, HUSK_E_NOT_FOUND);
	assert_string_equal(o->msg, "container c9: no such container");
	call(o, "c1", 0, 86400001);
	tl_run_until(o->loop, &o->answers, 7);
	assert_int_equal(o->code, HUSK_E_INVALID);
	assert_non_null(strstr(o->msg, "timeout_ms"));
	/* At most AGENT_OOM_WAITERS_MAX wait. */
	for (n = 0; n < (int)AGENT_OOM_WAITERS_MAX + 1; n++)
		call(o, "c1", 3, 0);
	tl_run_until(o->loop, &o->answers, 8);
	assert_int_equal(o->code, HUSK_E_UNAVAILABLE);
	assert_non_null(strstr(o->msg, "more than 64 wait_oom calls"));
	/* The container goes: every waiting call fails, naming it. */
	oom_watch_stop(&o->ct);
	tl_run_until(o->loop, &o->answers, 8 + (int)AGENT_OOM_WAITERS_MAX);
	assert_int_equal(o->code, HUSK_E_NOT_FOUND);
	assert_string_equal(o->msg, "container c1: removed");
	/* A container whose OOM kills are not watched says so. */
	call(o, "c1", 0, 0);
	tl_run_until(o->loop, &o->answers, 9 + (int)AGENT_OOM_WAITERS_MAX);
	assert_int_equal(o->code, HUSK_E_NOT_IMPLEMENTED);
}

/* A waiter whose connection went is dropped, not answered, and leaves
 * room for the next host's calls. */
static void test_wait_oom_conn_gone(void **state)
{
	struct ot *o = *state;

	write_file(o->dir, "memory.events", "oom_kill 0\n");
	assert_int_equal(oom_watch_start(&o->a, &o->ct, NULL), 0);
	connect_pair(o);
	for (int n = 0; n < (int)AGENT_OOM_WAITERS_MAX; n++)
		call(o, "c1", 0, 0);
	tl_run_for(o->loop, 0.1);
	ipc_conn_close(o->cli, NULL);
	o->cli = NULL;
	tl_run_for(o->loop, 0.05);
	o->srv = NULL;          /* closed by its peer */
	o->answers = 0;
	o->ready = 0;
	connect_pair(o);
	call(o, "c1", 0, 0);
	tl_run_for(o->loop, 0.1);
	assert_int_equal(o->answers, 0);        /* waiting, not refused */
	write_file(o->dir, "memory.events", "oom_kill 1\n");
	tl_run_until(o->loop, &o->answers, 1);
	assert_int_equal(o->kills, 1);
}

/* ------------------------------------------------------------------ */
/* A real v1 memory cgroup                                             */

static void test_live_v1(void **state)
{
	struct ot *o = *state;
	struct cg_resources r;
	struct cg *cg = NULL;
	struct husk_err *err = NULL;
	char name[64];
	pid_t child;
	int st;

	if (geteuid() != 0 || access(CG_MOUNT "/memory", W_OK) != 0)
		skip();
	if (cg_init(&err) < 0 || cgs.version != 1 || !cgs.v1_base[C_MEMORY]) {
		husk_err_free(err);
		skip();
	}
	snprintf(name, sizeof(name), "husk-oomtest-%d/c1", (int)getpid());
	cg_resources_init(&r);
	r.memory_limit = 16 << 20;
	r.memory_swap = 16 << 20;
	if (cg_create(name, &r, &cg, &err) < 0)
		fail_msg("cg_create: %s", err->msg);
	o->ct.cg = cg;
	assert_int_equal(oom_watch_start(&o->a, &o->ct, NULL), 0);
	assert_true(o->ct.oom != NULL);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		size_t n = 64 << 20;
		char *p;

		if (cg_attach(cg, getpid(), NULL) < 0)
			_exit(3);
		p = malloc(n);
		/* Touched from user space: the cgroup's OOM killer. */
		for (size_t i = 0; p && i < n; i += 4096)
			p[i] = 1;
		_exit(0);
	}
	/* The eventfd, then the count read again until the kill shows. */
	run_until_kills(o, 1);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	oom_watch_stop(&o->ct);
	o->ct.cg = &o->cg;
	assert_int_equal(cg_destroy(cg, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_count_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_watch_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_no_memory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_oom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_oom_conn_gone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_live_v1, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
