/*
 * One call to a containerd-shim-husk-v2 daemon, as containerd would make
 * it, for what ctr cannot ask (tests/bats/shimv2-cli.bats):
 *
 *   shimv2_call SOCKET update ID RESOURCES-JSON
 *   shimv2_call SOCKET checkpoint ID
 *   shimv2_call SOCKET connect ID
 *   shimv2_call SOCKET state ID [EXEC-ID]
 *   shimv2_call SOCKET shutdown ID
 *
 * Prints "ok" and what the answer holds (key=value lines), or
 * "error CODE: message" and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "shimv2/proto/task.pb-c.h"
#include "shimv2/ttrpc.h"

#define SVC "containerd.task.v2.Task"

static const char *what;
static int rc = 1;

static void done(void *arg, int code, const char *msg, const uint8_t *p,
		 size_t n)
{
	(void)arg;
	if (code != TTRPC_OK) {
		printf("error %d: %s\n", code, msg ? msg : "");
		ev_break(EV_DEFAULT, EVBREAK_ALL);
		return;
	}
	printf("ok\n");
	if (!strcmp(what, "connect")) {
		Task__ConnectResponse *r =
			task__connect_response__unpack(NULL, n, p);

		if (r) {
			printf("shim_pid=%u\ntask_pid=%u\nversion=%s\n",
			       r->shim_pid, r->task_pid, r->version);
			task__connect_response__free_unpacked(r, NULL);
		}
	} else if (!strcmp(what, "state")) {
		Task__StateResponse *r = task__state_response__unpack(NULL, n, p);

		if (r) {
			printf("pid=%u\nstatus=%d\nexit_status=%u\n", r->pid,
			       (int)r->status, r->exit_status);
			task__state_response__free_unpacked(r, NULL);
		}
	}
	rc = 0;
	ev_break(EV_DEFAULT, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = EV_DEFAULT;
	struct husk_err *err = NULL;
	struct ttrpc_client *c;
	Task__UpdateTaskRequest up = TASK__UPDATE_TASK_REQUEST__INIT;
	Task__CheckpointTaskRequest ck = TASK__CHECKPOINT_TASK_REQUEST__INIT;
	Task__ConnectRequest co = TASK__CONNECT_REQUEST__INIT;
	Task__StateRequest st = TASK__STATE_REQUEST__INIT;
	Task__ShutdownRequest sh = TASK__SHUTDOWN_REQUEST__INIT;
	Gpb__Any any = GPB__ANY__INIT;
	const ProtobufCMessage *req;
	const char *method;

	if (argc < 4) {
		fprintf(stderr, "usage: shimv2_call SOCKET update|checkpoint|"
			"connect|state|shutdown ID [ARG]\n");
		return 2;
	}
	what = argv[2];
	if (!strcmp(what, "update") && argc == 5) {
		up.id = argv[3];
		any.type_url = "types.containerd.io/opencontainers/"
			       "runtime-spec/1/LinuxResources";
		any.value.data = (uint8_t *)argv[4];
		any.value.len = strlen(argv[4]);
		up.resources = &any;
		req = &up.base;
		method = "Update";
	} else if (!strcmp(what, "checkpoint")) {
		ck.id = argv[3];
		ck.path = "/tmp/nowhere";
		req = &ck.base;
		method = "Checkpoint";
	} else if (!strcmp(what, "connect")) {
		co.id = argv[3];
		req = &co.base;
		method = "Connect";
	} else if (!strcmp(what, "state")) {
		st.id = argv[3];
		st.exec_id = argc > 4 ? argv[4] : "";
		req = &st.base;
		method = "State";
	} else if (!strcmp(what, "shutdown")) {
		sh.id = argv[3];
		req = &sh.base;
		method = "Shutdown";
	} else {
		fprintf(stderr, "shimv2_call: unknown call %s\n", what);
		return 2;
	}
	c = ttrpc_client_connect(loop, argv[1], &err);
	if (!c || ttrpc_client_call(c, SVC, method, req, 0, done, NULL,
				    &err) < 0) {
		printf("error: %s\n", err->msg);
		return 1;
	}
	ev_run(loop, 0);
	ttrpc_client_free(c);
	return rc;
}
