/* libipc/peer.c and server.c: credentials, socket modes, fd passing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ipc_testlib.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"

struct fx {
	struct ev_loop *loop;
	char *dir;
	char *path;
	struct ipc_server *srv;
	struct ipc_conn *cli;
	int ready, closed, accepted;
	int srv_ready;
	int close_code;
};

static void on_ready(struct ipc_conn *c, void *arg)
{
	struct fx *f = arg;

	if (c == f->cli)
		f->ready++;
	else
		f->srv_ready++;
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	struct fx *f = arg;

	if (c == f->cli) {
		f->closed++;
		f->close_code = why ? why->code : -1;
		f->cli = NULL;
	}
}

static void on_accept(struct ipc_server *s, struct ipc_conn *c, void *arg)
{
	struct fx *f = arg;

	f->accepted++;
}

static int setup(void **state)
{
	struct fx *f = husk_xcalloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->dir = tl_tmpdir();
	f->path = husk_xasprintf("%s/test.sock", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->cli)
		ipc_conn_close(f->cli, NULL);
	ipc_server_free(f->srv);
	ev_loop_destroy(f->loop);
	free(f->path);
	tl_rmdir(f->dir);
	free(f);
	return 0;
}

static struct ipc_conn_opts copts(struct fx *f, const char *name)
{
	struct ipc_conn_opts o = {
		.component = name,
		.on_ready = on_ready,
		.on_close = on_close,
		.arg = f,
	};
	return o;
}

static void start_server(struct fx *f, const uid_t *allowed, size_t n)
{
	struct ipc_server_opts so = {
		.conn = copts(f, "test-server"),
		.allowed_uids = allowed,
		.nallowed = n,
		.on_accept = on_accept,
	};
	struct husk_err *e = NULL;

	f->srv = ipc_server_new(f->loop, f->path, &so, &e);
	if (!f->srv)
		fail_msg("ipc_server_new: %s", e->msg);
}

static void connect_client(struct fx *f)
{
	struct ipc_conn_opts co = copts(f, "test-client");

	f->cli = ipc_conn_connect(f->loop, f->path, 2.0, &co, NULL);
	assert_non_null(f->cli);
}

static void test_uid_allowed(void **state)
{
	uid_t us = geteuid();
	uid_t list[] = { us + 1, us };

	assert_true(ipc_uid_allowed(us, NULL, 0));
	assert_false(ipc_uid_allowed(us + 1, NULL, 0));
	assert_true(ipc_uid_allowed(us, list, 2));
	assert_false(ipc_uid_allowed(us, list, 1));
}

static void test_peer_rejected(void **state)
{
	struct fx *f = *state;
	uid_t other = geteuid() + 4242;

	start_server(f, &other, 1);
	connect_client(f);
	tl_run_until(f->loop, &f->closed, 1);
	assert_int_equal(f->ready, 0);
	assert_int_equal(f->accepted, 0);
	assert_int_equal(ipc_server_nconns(f->srv), 0);
}

static void test_peer_allowed(void **state)
{
	struct fx *f = *state;
	uid_t us = geteuid();

	start_server(f, &us, 1);
	connect_client(f);
	tl_run_until(f->loop, &f->ready, 1);
	tl_run_until(f->loop, &f->srv_ready, 1);
	assert_int_equal(f->accepted, 1);
	assert_int_equal(ipc_server_nconns(f->srv), 1);
	assert_string_equal(ipc_conn_peer_component(f->cli), "test-server");
	/* Freeing the server closes its side; the client sees EOF. */
	ipc_server_free(f->srv);
	f->srv = NULL;
	tl_run_until(f->loop, &f->closed, 1);
	assert_int_equal(access(f->path, F_OK), -1);
}

/* The client starts before the server and retries until it is there. */
static void test_connect_retry(void **state)
{
	struct fx *f = *state;

	connect_client(f);
	tl_run_for(f->loop, 0.05);
	assert_int_equal(f->closed, 0);
	start_server(f, NULL, 0);
	tl_run_until(f->loop, &f->ready, 1);
}

static void test_connect_timeout(void **state)
{
	struct fx *f = *state;
	struct ipc_conn_opts co = copts(f, "test-client");

	f->cli = ipc_conn_connect(f->loop, f->path, 0.05, &co, NULL);
	assert_non_null(f->cli);
	tl_run_until(f->loop, &f->closed, 1);
	assert_int_equal(f->close_code, HUSK_E_TIMEOUT);
}

static void test_socket_mode(void **state)
{
	struct fx *f = *state;
	struct stat st;

	start_server(f, NULL, 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_dir_mode_refused(void **state)
{
	struct fx *f = *state;
	cleanup_free char *d = husk_xasprintf("%s/open", f->dir);
	cleanup_free char *p = husk_xasprintf("%s/open/x.sock", f->dir);
	struct husk_err *e = NULL;

	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(chmod(d, 0755), 0);
	assert_int_equal(ipc_listen_path(p, &e), -1);
	assert_int_equal(e->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(e->msg, "0755"));
	husk_err_clear(&e);
	assert_int_equal(access(p, F_OK), -1);
	/* Not a directory at all. */
	assert_int_equal(ipc_listen_path("/dev/null/x.sock", &e), -1);
	husk_err_clear(&e);
}

static void test_stale_socket(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	int fd, fd2;

	fd = ipc_listen_path(f->path, &e);
	assert_true(fd >= 0);
	/* A live server is not stolen from. */
	assert_int_equal(ipc_listen_path(f->path, &e), -1);
	assert_int_equal(e->code, HUSK_E_EXISTS);
	husk_err_clear(&e);
	/* A dead one's socket is replaced. */
	close(fd);
	fd2 = ipc_listen_path(f->path, &e);
	assert_true(fd2 >= 0);
	close(fd2);
}

static void test_connect_path(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	int lfd, fd;

	assert_int_equal(ipc_connect_path(f->path, 30, &e), -1);
	assert_int_equal(e->code, HUSK_E_UNAVAILABLE);
	husk_err_clear(&e);
	lfd = ipc_listen_path(f->path, &e);
	assert_true(lfd >= 0);
	fd = ipc_connect_path(f->path, 1000, &e);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
}

/* A path longer than sun_path: listen, connect and the event-loop
 * connection all reach it through its directory. */
static void test_long_path(void **state)
{
	struct fx *f = *state;
	struct husk_err *e = NULL;
	char *dir = husk_xasprintf("%s/%0120d", f->dir, 0);
	char *path = husk_xasprintf("%s/test.sock", dir);
	struct stat st;
	int lfd, fd;

	assert_true(strlen(path) > 108);
	assert_int_equal(mkdir(dir, 0700), 0);
	lfd = ipc_listen_path(path, &e);
	if (lfd < 0)
		fail_msg("ipc_listen_path: %s", e->msg);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = ipc_connect_path(path, 1000, &e);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
	/* The event loop's connect, and a server there. */
	free(f->path);
	f->path = path;
	start_server(f, NULL, 0);
	connect_client(f);
	tl_run_until(f->loop, &f->ready, 1);
	tl_run_until(f->loop, &f->srv_ready, 1);
	assert_int_equal(f->accepted, 1);
	ipc_server_free(f->srv);
	f->srv = NULL;
	tl_run_until(f->loop, &f->closed, 1);
	rmdir(dir);
	free(dir);
}

/*
 * A full descriptor table: accept4 fails with EMFILE while the peer
 * stays queued, so the listening socket stays readable.  The server
 * must stop watching it (a few loop iterations, not thousands), then
 * accept the peer once a descriptor is free again.
 */
static void test_accept_emfile_pauses(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa;
	struct rlimit old, rl;
	int fill[4096], nfill = 0, peer;
	unsigned before, spins;

	start_server(f, NULL, 0);
	assert_int_equal(ipc_sockaddr(&sa, f->path, NULL), 0);
	peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(peer >= 0);
	assert_int_equal(connect(peer, (struct sockaddr *)&sa, sizeof(sa)),
			 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (nfill < 4096) {
		int d = dup(0);

		if (d < 0) {
			assert_int_equal(errno, EMFILE);
			break;
		}
		fill[nfill++] = d;
	}
	before = ev_iteration(f->loop);
	tl_run_for(f->loop, 0.3);
	spins = ev_iteration(f->loop) - before;
	/* tl_run_for wakes every 10 ms: about 30 iterations when paused,
	 * one per failed accept otherwise. */
	if (spins > 200)
		fail_msg("the loop ran %u times in 0.3 s on EMFILE", spins);
	assert_int_equal(f->accepted, 0);
	while (nfill > 0)
		close(fill[--nfill]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* Accepting resumes after IPC_ACCEPT_PAUSE. */
	tl_run_until(f->loop, &f->accepted, 1);
	assert_int_equal(ipc_server_nconns(f->srv), 1);
	close(peer);
}

static void test_send_recv_fds(void **state)
{
	int sv[2], p[2], fds[IPC_MAX_FDS], nfds = 0;
	int many[IPC_MAX_FDS];
	bool trunc = true;
	char buf[8];
	pid_t pid;
	uid_t uid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	assert_int_equal(ipc_peer_cred(sv[0], &pid, &uid, NULL, NULL), 0);
	assert_int_equal(pid, getpid());
	assert_int_equal(uid, geteuid());
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(ipc_send_fds(sv[0], "ab", 2, &p[1], 1), 2);
	assert_int_equal(ipc_recv_fds(sv[1], buf, sizeof(buf), fds, &nfds,
				      IPC_MAX_FDS, &trunc), 2);
	assert_int_equal(nfds, 1);
	assert_false(trunc);
	assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(fds[0], "z", 1), 1);
	assert_int_equal(read(p[0], buf, 1), 1);
	assert_int_equal(buf[0], 'z');
	close(fds[0]);

	/* More than the receiver has room for: the rest are closed. */
	for (int i = 0; i < IPC_MAX_FDS; i++)
		many[i] = p[0];
	nfds = 0;
	assert_int_equal(ipc_send_fds(sv[0], "c", 1, many, 3), 1);
	assert_int_equal(ipc_recv_fds(sv[1], buf, sizeof(buf), fds, &nfds, 2,
				      &trunc), 1);
	assert_int_equal(nfds, 2);
	assert_true(trunc);
	close(fds[0]);
	close(fds[1]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* The server's directory moved away and a new socket made at its old
 * path (a cached VM taken, a new one of the same name): freeing the
 * server leaves the new one alone; its own, still there, goes. */
static void test_free_spares_a_new_socket(void **state)
{
	struct fx *f = *state;
	char *moved = husk_xasprintf("%s/moved.sock", f->dir);
	struct ipc_server_opts so = { .conn = copts(f, "other") };
	struct husk_err *e = NULL;
	struct ipc_server *other;
	struct stat st;

	start_server(f, NULL, 0);
	assert_int_equal(rename(f->path, moved), 0);
	other = ipc_server_new(f->loop, f->path, &so, &e);
	assert_non_null(other);
	ipc_server_free(f->srv);
	f->srv = NULL;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	ipc_server_free(other);
	assert_int_equal(lstat(f->path, &st), -1);
	unlink(moved);
	free(moved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_uid_allowed),
		T(test_peer_rejected),
		T(test_peer_allowed),
		T(test_connect_retry),
		T(test_connect_timeout),
		T(test_socket_mode),
		T(test_dir_mode_refused),
		T(test_stale_socket),
		T(test_connect_path),
		T(test_long_path),
		T(test_send_recv_fds),
		T(test_accept_emfile_pauses),
		T(test_free_spares_a_new_socket),
#undef T
	};

	husk_log_init("test_peer", HUSK_LOG_ERROR, HUSK_LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
