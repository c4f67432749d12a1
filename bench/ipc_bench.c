/*
 * libipc against raw sockets, between two processes:
 *   rpc     request/response round trips (libev server, blocking client)
 *   stream  64 KiB notifications, ipc_conn on both ends
 *   raw     the same payload sizes as read/write ping-pong and a plain
 *           write stream on a socketpair
 * Prints one table with the ratio libipc/raw.  Each pair runs in
 * ROUNDS alternating rounds and the best round counts, so that a busy
 * machine disturbs the comparison less.
 *
 *   ipc_bench [seconds per test [rpc|stream]]
 * (default 2 s, or IPC_BENCH_SECS; both parts).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#define RPC_PAYLOAD 64
#define CHUNK (64u << 10)
#define ROUNDS 4

static double secs = 2.0;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct husk_err *e)
{
	fprintf(stderr, "ipc_bench: %s: %s\n", what,
		e && e->msg ? e->msg : strerror(errno));
	exit(111);
}

/* ------------------------------------------------ latency statistics */

struct lat {
	double *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, double x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 65536;
		l->v = realloc(l->v, l->cap * sizeof(double));
		if (!l->v)
			die("realloc", NULL);
	}
	l->v[l->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double lat_pct(struct lat *l, double p)
{
	if (!l->n)
		return 0;
	qsort(l->v, l->n, sizeof(double), cmp_double);
	return l->v[(size_t)(p * (l->n - 1))];
}

/* ------------------------------------------------------ the server */

static uint64_t stream_bytes;

static int h_echo(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	const msgpack_object *d = ipc_map_get(m->params, "data");
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_bin(pk, "data", d ? d->via.bin.ptr : "",
			d && d->type == MSGPACK_OBJECT_BIN ? d->via.bin.size : 0);
	ipc_reply_send(c);
	return 0;
}

static int h_chunk(struct ipc_conn *c, struct ipc_msg *m,
		   void *params, void *arg, struct husk_err **err)
{
	const msgpack_object *d = ipc_map_get(m->params, "data");

	if (d && d->type == MSGPACK_OBJECT_BIN)
		stream_bytes += d->via.bin.size;
	return 0;
}

static int h_done(struct ipc_conn *c, struct ipc_msg *m,
		  void *params, void *arg, struct husk_err **err)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_map(pk, 1);
	ipc_pack_kv_uint(pk, "bytes", stream_bytes);
	ipc_reply_send(c);
	stream_bytes = 0;
	return 0;
}

static const struct ipc_method methods[] = {
	IPC_METHOD("echo", IPC_M_REQUEST, h_echo),
	IPC_METHOD("chunk", IPC_M_NOTIFY, h_chunk),
	IPC_METHOD("done", IPC_M_REQUEST, h_done),
	IPC_METHOD_END,
};

static pid_t start_server(const char *path)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		struct ipc_server_opts so = {
			.conn = { .component = "bench-server",
				  .methods = methods, .trusted = true },
		};
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
		struct husk_err *e = NULL;

		if (!ipc_server_new(loop, path, &so, &e))
			die("ipc_server_new", e);
		ev_run(loop, 0);
		_exit(0);
	}
	return pid;
}

/* ------------------------------------------------------------- rpc */

struct result {
	double rate;            /* round trips/s or MiB/s */
	double p50, p99;        /* microseconds */
};

static struct result bench_rpc(const char *path)
{
	static char payload[RPC_PAYLOAD];
	struct ipc_client cl;
	struct husk_err *e = NULL;
	struct lat l = { 0 };
	struct result r;
	double t0, end, t;
	size_t n = 0;

	if (ipc_client_connect(&cl, path, "bench-client", NULL, 5000, &e) < 0)
		die("ipc_client_connect", e);
	t0 = now();
	end = t0 + secs;
	do {
		msgpack_packer *pk = ipc_client_begin(&cl, "echo");
		struct ipc_msg m;
		double s = now();

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_bin(pk, "data", payload, sizeof(payload));
		if (ipc_client_call(&cl, 5000, NULL, 0, &m, &e) < 0)
			die("call", e);
		ipc_msg_free(&m);
		t = now();
		lat_add(&l, (t - s) * 1e6);
		n++;
	} while (t < end);
	ipc_client_close(&cl);
	r.rate = n / (t - t0);
	r.p50 = lat_pct(&l, 0.50);
	r.p99 = lat_pct(&l, 0.99);
	free(l.v);
	return r;
}

/* Same request and answer sizes as bench_rpc, as plain reads/writes. */
static struct result bench_raw_rpc(void)
{
	char buf[RPC_PAYLOAD + 64] = { 0 };
	size_t len = RPC_PAYLOAD + 32;  /* header + envelope, about */
	struct lat l = { 0 };
	struct result r;
	double t0, end, t;
	size_t n = 0;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", NULL);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		while (husk_read_all(sv[1], buf, len) == (ssize_t)len)
			if (husk_write_all(sv[1], buf, len) < 0)
				break;
		_exit(0);
	}
	close(sv[1]);
	t0 = now();
	end = t0 + secs;
	do {
		double s = now();

		if (husk_write_all(sv[0], buf, len) < 0 ||
		    husk_read_all(sv[0], buf, len) != (ssize_t)len)
			die("raw ping-pong", NULL);
		t = now();
		lat_add(&l, (t - s) * 1e6);
		n++;
	} while (t < end);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	r.rate = n / (t - t0);
	r.p50 = lat_pct(&l, 0.50);
	r.p99 = lat_pct(&l, 0.99);
	free(l.v);
	return r;
}

/* ---------------------------------------------------------- stream */

struct streamer {
	struct ev_loop *loop;
	struct ipc_conn *c;
	double t0, end;
	bool above, finished, asked;
	uint64_t bytes;
	double t1;
};

static char chunk[CHUNK];

static void done_cb(struct ipc_conn *c, struct ipc_msg *resp,
		    const struct husk_err *err, void *arg)
{
	struct streamer *s = arg;
	const msgpack_object *b;

	if (err)
		die("done", err);
	b = ipc_map_get(resp->result, "bytes");
	s->bytes = b ? b->via.u64 : 0;
	s->t1 = now();
	s->finished = true;
	ev_break(s->loop, EVBREAK_ALL);
}

/* Send until the queue is above its high watermark or time is up. */
static void pump(struct streamer *s)
{
	while (!s->above && !s->asked) {
		msgpack_packer *pk;

		if (now() >= s->end) {
			s->asked = true;
			msgpack_pack_map(ipc_call_begin(s->c, "done"), 0);
			if (ipc_call_send(s->c, 30, NULL, 0, done_cb, s,
					  NULL) < 0)
				die("call done", NULL);
			return;
		}
		pk = ipc_notify_begin(s->c, "chunk");
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_bin(pk, "data", chunk, sizeof(chunk));
		if (ipc_notify_send(s->c) < 0)
			die("notify", NULL);
	}
}

static void s_ready(struct ipc_conn *c, void *arg)
{
	struct streamer *s = arg;

	s->t0 = now();
	s->end = s->t0 + secs;
	pump(s);
}

static void s_queue(struct ipc_conn *c, bool above, void *arg)
{
	struct streamer *s = arg;

	s->above = above;
	if (!above && s->t0 > 0)
		pump(s);
}

static void s_close(struct ipc_conn *c, const struct husk_err *why,
		    void *arg)
{
	struct streamer *s = arg;

	if (!s->finished)
		die("stream connection closed", why);
}

static struct result bench_stream(const char *path)
{
	struct streamer s = { .loop = ev_loop_new(EVFLAG_AUTO) };
	struct ipc_conn_opts o = {
		.component = "bench-client",
		.on_ready = s_ready,
		.on_queue = s_queue,
		.on_close = s_close,
		.trusted = true,
		.arg = &s,
	};
	struct husk_err *e = NULL;
	struct result r = { 0 };

	s.c = ipc_conn_connect(s.loop, path, 5, &o, &e);
	if (!s.c)
		die("ipc_conn_connect", e);
	ev_run(s.loop, 0);
	s.finished = true;
	ipc_conn_close(s.c, NULL);
	ev_loop_destroy(s.loop);
	r.rate = s.bytes / (s.t1 - s.t0) / (1 << 20);
	return r;
}

static struct result bench_raw_stream(void)
{
	struct result r = { 0 };
	uint64_t total = 0;
	double t0, t1, end;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", NULL);
	pid = fork();
	if (pid == 0) {
		static char buf[CHUNK];
		uint64_t got = 0;
		ssize_t n;

		close(sv[0]);
		while ((n = read(sv[1], buf, sizeof(buf))) > 0)
			got += (uint64_t)n;
		husk_write_all(sv[1], &got, sizeof(got));
		_exit(0);
	}
	close(sv[1]);
	t0 = now();
	end = t0 + secs;
	do {
		if (husk_write_all(sv[0], chunk, sizeof(chunk)) < 0)
			die("raw write", NULL);
	} while (now() < end);
	shutdown(sv[0], SHUT_WR);
	if (husk_read_all(sv[0], &total, sizeof(total)) != sizeof(total))
		die("raw read", NULL);
	t1 = now();
	close(sv[0]);
	waitpid(pid, NULL, 0);
	r.rate = total / (t1 - t0) / (1 << 20);
	return r;
}

static void best(struct result *b, struct result r)
{
	if (r.rate > b->rate)
		*b = r;
}

int main(int argc, char **argv)
{
	const char *env = getenv("IPC_BENCH_SECS");
	char dir[] = "/tmp/husk-bench.XXXXXX";
	struct result rpc = { 0 }, raw = { 0 }, st = { 0 }, rawst = { 0 };
	const char *only = argc > 2 ? argv[2] : "";
	char path[64];
	pid_t srv;

	if (argc > 1)
		secs = atof(argv[1]);
	else if (env)
		secs = atof(env);
	if (secs <= 0)
		secs = 2.0;
	husk_log_init("ipc_bench", HUSK_LOG_WARN, HUSK_LOG_TEXT);
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		die("mkdtemp", NULL);
	snprintf(path, sizeof(path), "%s/bench.sock", dir);
	srv = start_server(path);

	secs /= ROUNDS;
	for (int i = 0; i < ROUNDS; i++) {
		if (strcmp(only, "stream") != 0) {
			best(&rpc, bench_rpc(path));
			best(&raw, bench_raw_rpc());
		}
		if (strcmp(only, "rpc") != 0) {
			best(&st, bench_stream(path));
			best(&rawst, bench_raw_stream());
		}
	}
	secs *= ROUNDS;

	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	unlink(path);
	rmdir(dir);

	printf("== ipc_bench (%.1fs per test in %d rounds, best round; two "
	       "processes, unix sockets)\n", secs, ROUNDS);
	printf("%-34s %12s %12s %7s\n", "", "libipc", "raw", "ratio");
	printf("%-34s %12.0f %12.0f %7.2f\n", "rpc round trips/s (64 B)",
	       rpc.rate, raw.rate, rpc.rate / raw.rate);
	printf("%-34s %12.1f %12.1f %7.2f\n", "rpc latency p50 (us)", rpc.p50,
	       raw.p50, rpc.p50 / raw.p50);
	printf("%-34s %12.1f %12.1f %7.2f\n", "rpc latency p99 (us)", rpc.p99,
	       raw.p99, rpc.p99 / raw.p99);
	printf("%-34s %12.0f %12.0f %7.2f\n", "stream 64 KiB notify (MiB/s)",
	       st.rate, rawst.rate, st.rate / rawst.rate);
	return 0;
}
