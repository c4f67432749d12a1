/*
 * Both ends of husk's ttrpc against containerd's own programs
 * (tests/bats/ttrpc.bats):
 *
 *   ttrpc_peer serve SOCKET       a Task service with State and Start
 *                                 (anything else: Unimplemented) on
 *                                 SOCKET ("@name": abstract), for
 *                                 `ctr shim`; runs until killed
 *   ttrpc_peer publish ADDR NS    TaskCreate, TaskStart, TaskExit and
 *                                 TaskDelete of container "c1" through
 *                                 the events publisher to containerd's
 *                                 ttrpc ADDR; exits 0 once containerd
 *                                 took them all, 1 after 30 s
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "shimv2/events.h"
#include "shimv2/ttrpc.h"
#include "shimv2/proto/task.pb-c.h"

#define SVC "containerd.task.v2.Task"

static void h_state(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StateRequest *req = (const Task__StateRequest *)m;
	Task__StateResponse r = TASK__STATE_RESPONSE__INIT;

	r.id = req->id;
	r.exec_id = req->exec_id;
	r.bundle = "/run/husk-test/bundle";
	r.pid = 4242;
	r.status = TASK__STATUS__RUNNING;
	r.stdout = "/run/husk-test/stdout";
	ttrpc_reply(call, &r.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StartRequest *req = (const Task__StartRequest *)m;

	if (strcmp(req->id, "missing") == 0) {
		ttrpc_reply_status(call, TTRPC_NOT_FOUND,
				   "container %s: not found", req->id);
		return;
	}
	Task__StartResponse r = TASK__START_RESPONSE__INIT;

	r.pid = 4343;
	ttrpc_reply(call, &r.base);
}

static const struct ttrpc_method methods[] = {
	{ SVC, "State", &task__state_request__descriptor, h_state },
	{ SVC, "Start", &task__start_request__descriptor, h_start },
};

/* A listening socket; "@name" is abstract, with its trailing NUL in
 * the address if nul (ctr 1.6, built with Go 1.19, dials it so). */
static int listen_on(const char *name, bool nul)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (strlen(name) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ttrpc_peer: socket name too long\n");
		return -1;
	}
	strcpy(sa.sun_path, name);
	len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (name[0] != '@' || nul)
		len++;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    listen(fd, 16) < 0) {
		perror("ttrpc_peer: listen");
		return -1;
	}
	return fd;
}

static int serve(const char *name)
{
	struct ev_loop *loop = ev_default_loop(0);
	int n = name[0] == '@' ? 2 : 1;

	for (int i = 0; i < n; i++) {
		cleanup_err struct husk_err *err = NULL;
		struct ttrpc_server *s;
		int fd = listen_on(name, i == 1);

		if (fd < 0)
			return 111;
		s = ttrpc_server_new(loop, methods, HUSK_ARRAY_SIZE(methods),
				     NULL);
		if (!s || ttrpc_server_listen_fd(s, fd, &err) < 0) {
			fprintf(stderr, "ttrpc_peer: %s\n",
				err ? err->msg : "out of memory");
			return 111;
		}
	}
	printf("ready\n");
	fflush(stdout);
	ev_run(loop, 0);
	return 0;
}

static void drained(struct events_pub *p, void *arg)
{
	ev_break(arg, EVBREAK_ALL);
}

static void give_up(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static int publish(const char *addr, const char *ns)
{
	cleanup_err struct husk_err *err = NULL;
	struct ev_loop *loop = ev_default_loop(0);
	Events__TaskIO io = EVENTS__TASK_IO__INIT;
	Events__TaskCreate c = EVENTS__TASK_CREATE__INIT;
	Events__TaskStart st = EVENTS__TASK_START__INIT;
	Events__TaskExit ex = EVENTS__TASK_EXIT__INIT;
	Events__TaskDelete d = EVENTS__TASK_DELETE__INIT;
	Gpb__Timestamp ts;
	struct timespec now;
	struct events_pub *p;
	ev_timer limit;
	int rc;

	p = events_pub_new(loop, addr, ns, 0, &err);
	if (!p) {
		fprintf(stderr, "ttrpc_peer: %s\n", err->msg);
		return 100;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ttrpc_timestamp_set(&ts, &now);
	io.stdout = "/run/husk-test/stdout";
	c.container_id = st.container_id = ex.container_id =
		d.container_id = "c1";
	c.bundle = "/run/husk-test/bundle";
	c.io = &io;
	c.pid = st.pid = ex.pid = d.pid = 4242;
	ex.id = d.id = "c1";
	ex.exit_status = d.exit_status = 3;
	ex.exited_at = d.exited_at = &ts;
	if (events_publish(p, &c.base, &err) < 0 ||
	    events_publish(p, &st.base, &err) < 0 ||
	    events_publish(p, &ex.base, &err) < 0 ||
	    events_publish(p, &d.base, &err) < 0) {
		fprintf(stderr, "ttrpc_peer: %s\n", err->msg);
		return 1;
	}
	events_on_drained(p, drained, loop);
	ev_timer_init(&limit, give_up, 30., 0.);
	ev_timer_start(loop, &limit);
	ev_run(loop, 0);
	rc = events_pending(p) == 0 && events_dropped(p) == 0 ? 0 : 1;
	if (rc)
		fprintf(stderr, "ttrpc_peer: %zu event(s) pending, %zu "
			"dropped\n", events_pending(p), events_dropped(p));
	events_pub_free(p);
	return rc;
}

int main(int argc, char **argv)
{
	husk_log_init("ttrpc_peer", HUSK_LOG_INFO, HUSK_LOG_TEXT);
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if (argc == 4 && strcmp(argv[1], "publish") == 0)
		return publish(argv[2], argv[3]);
	fprintf(stderr, "usage: ttrpc_peer serve SOCKET | "
		"publish ADDRESS NAMESPACE\n");
	return 100;
}
