/*
 * The ttrpc face of the Task service: each containerd.task.v2.Task
 * method decoded (shimv2/ttrpc.h), handed to task.c, answered; and the
 * events, built from our records and published to containerd
 * (shimv2/events.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/version.h"
#include "libipc/ipc.h"
#include "shimv2.h"
#include "shimv2/events.h"
#include "shimv2/proto/events.pb-c.h"
#include "shimv2/proto/metrics.pb-c.h"
#include "shimv2/proto/task.pb-c.h"
#include "shimv2/ttrpc.h"

#define SVC "containerd.task.v2.Task"
#define URL_PROCESS "types.containerd.io/opencontainers/runtime-spec/1/Process"
#define URL_RESOURCES \
	"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
#define URL_OPTIONS "runtimeoptions.v1.Options"
#define URL_METRICS "io.containerd.cgroups.v1.Metrics"

static struct ttrpc_server *server;
static struct events_pub *pub;
static ev_timer leave_timer;

/* ------------------------------------------------------------ events */

static void publish(const ProtobufCMessage *m)
{
	struct husk_err *err = NULL;

	if (!pub)
		return;
	if (events_publish(pub, m, &err) < 0) {
		log_warnx("publish %s: %s", m->descriptor->name, err->msg);
		husk_err_free(err);
	}
}

void sv_event_create(struct sv *s, const struct sv_task *t, uint32_t pid)
{
	Events__TaskCreate e = EVENTS__TASK_CREATE__INIT;
	Events__TaskIO io = EVENTS__TASK_IO__INIT;

	(void)s;
	io.stdin = t->init.stdin_path ? t->init.stdin_path : "";
	io.stdout = t->init.stdout_path ? t->init.stdout_path : "";
	io.stderr = t->init.stderr_path ? t->init.stderr_path : "";
	io.terminal = t->init.terminal;
	e.container_id = t->id;
	e.bundle = t->bundle;
	e.io = &io;
	e.pid = pid;
	publish(&e.base);
}

void sv_event_oom(struct sv *s, const struct sv_task *t)
{
	Events__TaskOOM e = EVENTS__TASK_OOM__INIT;

	(void)s;
	e.container_id = t->id;
	publish(&e.base);
}

void sv_event_start(struct sv *s, const struct sv_proc *p)
{
	Events__TaskStart e = EVENTS__TASK_START__INIT;

	(void)s;
	e.container_id = p->task->id;
	e.pid = (uint32_t)p->pid;
	publish(&e.base);
}

void sv_event_exit(struct sv *s, const struct sv_proc *p)
{
	Events__TaskExit e = EVENTS__TASK_EXIT__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;

	(void)s;
	e.container_id = p->task->id;
	e.id = *p->exec_id ? p->exec_id : p->task->id;
	e.pid = (uint32_t)p->pid;
	e.exit_status = p->exit_status;
	ttrpc_timestamp_set(&ts, &p->exited_at);
	e.exited_at = &ts;
	publish(&e.base);
}

void sv_event_delete(struct sv *s, const struct sv_proc *p)
{
	Events__TaskDelete e = EVENTS__TASK_DELETE__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;

	(void)s;
	e.container_id = p->task->id;
	e.id = p->task->id;
	e.pid = (uint32_t)p->pid;
	e.exit_status = p->exit_status;
	ttrpc_timestamp_set(&ts, &p->exited_at);
	e.exited_at = &ts;
	publish(&e.base);
}

void sv_event_exec_added(struct sv *s, const struct sv_proc *p)
{
	Events__TaskExecAdded e = EVENTS__TASK_EXEC_ADDED__INIT;

	(void)s;
	e.container_id = p->task->id;
	e.exec_id = p->exec_id;
	publish(&e.base);
}

void sv_event_exec_started(struct sv *s, const struct sv_proc *p)
{
	Events__TaskExecStarted e = EVENTS__TASK_EXEC_STARTED__INIT;

	(void)s;
	e.container_id = p->task->id;
	e.exec_id = p->exec_id;
	e.pid = (uint32_t)p->pid;
	publish(&e.base);
}

void sv_event_paused(struct sv *s, const struct sv_task *t, bool paused)
{
	Events__TaskPaused e = EVENTS__TASK_PAUSED__INIT;
	Events__TaskResumed r = EVENTS__TASK_RESUMED__INIT;

	(void)s;
	e.container_id = r.container_id = t->id;
	publish(paused ? &e.base : &r.base);
}

/* ---------------------------------------------------------- methods */

static void answer_err(struct ttrpc_call *call, const struct husk_err *err)
{
	log_debug("%s: %s", ttrpc_call_method(call), err->msg);
	ttrpc_reply_err(call, err);
}

static void reply_err(struct ttrpc_call *call, struct husk_err *err)
{
	answer_err(call, err);
	husk_err_free(err);
}

static void create_done(void *arg, uint32_t pid, const struct husk_err *err)
{
	struct ttrpc_call *call = arg;
	Task__CreateTaskResponse r = TASK__CREATE_TASK_RESPONSE__INIT;

	if (err)
		return answer_err(call, err);
	r.pid = pid;
	ttrpc_reply(call, &r.base);
}

static void h_create(struct ttrpc_call *call, const ProtobufCMessage *m,
		     void *arg)
{
	const Task__CreateTaskRequest *req = (const void *)m;
	Task__RuntimeOptions *opts = NULL;
	struct sv_mount *mounts = NULL;
	struct sv_create c = { 0 };
	struct husk_err *err = NULL;
	int rc = -1;

	if (req->checkpoint && *req->checkpoint) {
		ttrpc_reply_status(call, TTRPC_UNIMPLEMENTED, "restoring from "
				   "a checkpoint is not supported by husk "
				   "(a VM's processes cannot be "
				   "checkpointed)");
		return;
	}
	if (req->options && req->options->type_url &&
	    !strcmp(req->options->type_url, URL_OPTIONS) &&
	    ttrpc_any_unpack(req->options, URL_OPTIONS,
			     &task__runtime_options__descriptor,
			     (ProtobufCMessage **)&opts, &err) < 0)
		goto out;
	c.id = req->id;
	c.bundle = req->bundle;
	c.terminal = req->terminal;
	c.stdin = req->stdin;
	c.stdout = req->stdout;
	c.stderr = req->stderr;
	c.config_path = opts ? opts->config_path : NULL;
	c.nmounts = req->n_rootfs;
	mounts = husk_xcalloc(req->n_rootfs + 1, sizeof(*mounts));
	for (size_t i = 0; i < req->n_rootfs; i++) {
		mounts[i].type = req->rootfs[i]->type;
		mounts[i].source = req->rootfs[i]->source;
		mounts[i].target = req->rootfs[i]->target;
		mounts[i].options = (const char *const *)req->rootfs[i]->options;
		mounts[i].noptions = req->rootfs[i]->n_options;
	}
	c.mounts = mounts;
	rc = sv_create(arg, &c, create_done, call, &err);
out:
	free(mounts);
	if (opts)
		protobuf_c_message_free_unpacked(&opts->base, NULL);
	if (rc < 0)
		reply_err(call, err);
}

static void start_done(void *arg, uint32_t pid, const struct husk_err *err)
{
	struct ttrpc_call *call = arg;
	Task__StartResponse r = TASK__START_RESPONSE__INIT;

	if (err)
		return answer_err(call, err);
	r.pid = pid;
	ttrpc_reply(call, &r.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StartRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_start(arg, req->id, req->exec_id, start_done, call, &err) < 0)
		return reply_err(call, err);
}

static void delete_done(void *arg, const struct sv_deleted *d,
			const struct husk_err *err)
{
	struct ttrpc_call *call = arg;
	Task__DeleteResponse r = TASK__DELETE_RESPONSE__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;

	if (err)
		return answer_err(call, err);
	r.pid = d->pid;
	r.exit_status = d->status;
	ttrpc_timestamp_set(&ts, &d->at);
	r.exited_at = &ts;
	ttrpc_reply(call, &r.base);
}

static void h_delete(struct ttrpc_call *call, const ProtobufCMessage *m,
		     void *arg)
{
	const Task__DeleteRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_delete(arg, req->id, req->exec_id, delete_done, call, &err) < 0)
		return reply_err(call, err);
}

static void h_state(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StateRequest *req = (const void *)m;
	Task__StateResponse r = TASK__STATE_RESPONSE__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;
	struct husk_err *err = NULL;
	struct sv_proc *p = sv_find(arg, req->id, req->exec_id, &err);

	if (!p)
		return reply_err(call, err);
	r.id = p->task->id;
	r.bundle = p->task->bundle;
	r.pid = (uint32_t)p->pid;
	r.status = (Task__Status)p->status;
	r.stdin = p->stdin_path ? p->stdin_path : "";
	r.stdout = p->stdout_path ? p->stdout_path : "";
	r.stderr = p->stderr_path ? p->stderr_path : "";
	r.terminal = p->terminal;
	r.exec_id = p->exec_id;
	if (p->exited) {
		r.exit_status = p->exit_status;
		ttrpc_timestamp_set(&ts, &p->exited_at);
		r.exited_at = &ts;
	}
	ttrpc_reply(call, &r.base);
}

static void pids_done(void *arg, const msgpack_object *result,
		      const struct husk_err *err)
{
	struct ttrpc_call *call = arg;
	Task__PidsResponse r = TASK__PIDS_RESPONSE__INIT;
	Task__ProcessInfo *infos, **ptrs;
	uint32_t *pids;
	size_t n;

	if (err)
		return answer_err(call, err);
	pids = sv_pids_decode(result, &n);
	infos = husk_xcalloc(n + 1, sizeof(*infos));
	ptrs = husk_xcalloc(n + 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		task__process_info__init(&infos[i]);
		infos[i].pid = pids[i];
		ptrs[i] = &infos[i];
	}
	r.n_processes = n;
	r.processes = ptrs;
	ttrpc_reply(call, &r.base);
	free(ptrs);
	free(infos);
	free(pids);
}

static void h_pids(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	const Task__PidsRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_pids(arg, req->id, pids_done, call, &err) < 0)
		return reply_err(call, err);
}

/* The agent's answer to a call whose reply is empty. */
static void empty_done(void *arg, const msgpack_object *result,
		       const struct husk_err *err)
{
	struct ttrpc_call *call = arg;

	(void)result;
	if (err)
		return answer_err(call, err);
	ttrpc_reply(call, NULL);
}

static void h_pause(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__PauseRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_pause(arg, req->id, true, empty_done, call, &err) < 0)
		return reply_err(call, err);
}

static void h_resume(struct ttrpc_call *call, const ProtobufCMessage *m,
		     void *arg)
{
	const Task__ResumeRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_pause(arg, req->id, false, empty_done, call, &err) < 0)
		return reply_err(call, err);
}

static void h_checkpoint(struct ttrpc_call *call, const ProtobufCMessage *m,
			 void *arg)
{
	(void)m;
	(void)arg;
	ttrpc_reply_status(call, TTRPC_UNIMPLEMENTED, "Checkpoint is not "
			   "supported by husk: a container's processes live "
			   "in a VM, which husk cannot checkpoint");
}

static void h_kill(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	const Task__KillRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_kill(arg, req->id, req->exec_id, req->signal, req->all,
		    empty_done, call, &err) < 0)
		return reply_err(call, err);
}

static void h_exec(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	const Task__ExecProcessRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (!req->spec || !req->spec->type_url ||
	    strcmp(req->spec->type_url, URL_PROCESS)) {
		ttrpc_reply_status(call, TTRPC_INVALID_ARGUMENT, "exec %s: "
				   "the spec is not a %s", req->exec_id,
				   URL_PROCESS);
		return;
	}
	if (sv_exec(arg, req->id, req->exec_id, req->terminal, req->stdin,
		    req->stdout, req->stderr,
		    (const char *)req->spec->value.data, req->spec->value.len,
		    &err) < 0)
		return reply_err(call, err);
	ttrpc_reply(call, NULL);
}

static void h_resize(struct ttrpc_call *call, const ProtobufCMessage *m,
		     void *arg)
{
	const Task__ResizePtyRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_resize(arg, req->id, req->exec_id, req->width, req->height,
		      &err) < 0)
		return reply_err(call, err);
	ttrpc_reply(call, NULL);
}

static void h_closeio(struct ttrpc_call *call, const ProtobufCMessage *m,
		      void *arg)
{
	const Task__CloseIORequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (!req->stdin) {
		ttrpc_reply(call, NULL);
		return;
	}
	if (sv_close_io(arg, req->id, req->exec_id, empty_done, call,
			&err) < 0)
		return reply_err(call, err);
}

static void h_update(struct ttrpc_call *call, const ProtobufCMessage *m,
		     void *arg)
{
	const Task__UpdateTaskRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	/* containerd sends the OCI LinuxResources as JSON in the Any. */
	if (!req->resources || !req->resources->type_url ||
	    strcmp(req->resources->type_url, URL_RESOURCES)) {
		ttrpc_reply_status(call, TTRPC_INVALID_ARGUMENT, "update %s: "
				   "the resources are not a %s", req->id,
				   URL_RESOURCES);
		return;
	}
	if (sv_update(arg, req->id, (const char *)req->resources->value.data,
		      req->resources->value.len, empty_done, call, &err) < 0)
		return reply_err(call, err);
}

struct wait_ctx {
	struct sv_waiter w;
	struct ttrpc_call *call;
};

static void wait_done(void *arg, const struct sv_proc *p)
{
	struct wait_ctx *wc = arg;
	Task__WaitResponse r = TASK__WAIT_RESPONSE__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;

	if (p->exited) {
		r.exit_status = p->exit_status;
		ttrpc_timestamp_set(&ts, &p->exited_at);
		r.exited_at = &ts;
		ttrpc_reply(wc->call, &r.base);
	} else {
		ttrpc_reply_status(wc->call, TTRPC_NOT_FOUND, "process %s "
				   "went before it exited", p->exec_id);
	}
	free(wc);
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *m,
		   void *arg)
{
	const Task__WaitRequest *req = (const void *)m;
	struct husk_err *err = NULL;
	struct wait_ctx *wc = husk_xcalloc(1, sizeof(*wc));

	wc->call = call;
	wc->w.done = wait_done;
	wc->w.arg = wc;
	if (sv_wait(arg, req->id, req->exec_id, &wc->w, &err) < 0) {
		free(wc);
		return reply_err(call, err);
	}
}

static void stats_done(void *arg, const msgpack_object *result,
		       const struct husk_err *err)
{
	struct ttrpc_call *call = arg;
	Task__StatsResponse r = TASK__STATS_RESPONSE__INIT;
	Cgroups1__Metrics mt = CGROUPS1__METRICS__INIT;
	Cgroups1__PidsStat pids = CGROUPS1__PIDS_STAT__INIT;
	Cgroups1__CPUStat cpu = CGROUPS1__CPUSTAT__INIT;
	Cgroups1__CPUUsage usage = CGROUPS1__CPUUSAGE__INIT;
	Cgroups1__MemoryStat mem = CGROUPS1__MEMORY_STAT__INIT;
	Cgroups1__MemoryEntry mu = CGROUPS1__MEMORY_ENTRY__INIT;
	Cgroups1__BlkIOStat blk = CGROUPS1__BLK_IOSTAT__INIT;
	Cgroups1__BlkIOEntry rd = CGROUPS1__BLK_IOENTRY__INIT;
	Cgroups1__BlkIOEntry wr = CGROUPS1__BLK_IOENTRY__INIT;
	Cgroups1__BlkIOEntry *ios[2] = { &rd, &wr };
	Gpb__Any any = GPB__ANY__INIT;
	struct husk_err *e = NULL;
	json_t *st;

#define U(a, b) ((uint64_t)json_integer_value(json_object_get( \
		 json_object_get(st, a), b)))
	if (err)
		return answer_err(call, err);
	st = ipc_json_from_obj(result);
	/* What the guest's cgroup knows, nothing made up. */
	pids.current = U("pids", "current");
	pids.limit = U("pids", "limit");
	usage.total = U("cpu", "usage_ns");
	usage.kernel = U("cpu", "system_ns");
	usage.user = U("cpu", "user_ns");
	cpu.usage = &usage;
	mem.cache = U("memory", "cache");
	mu.usage = U("memory", "usage");
	mu.limit = U("memory", "limit");
	mu.max = U("memory", "max_usage");
	mem.usage = &mu;
	rd.op = "Read";
	rd.value = U("io", "read_bytes");
	wr.op = "Write";
	wr.value = U("io", "write_bytes");
	blk.n_io_service_bytes_recursive = 2;
	blk.io_service_bytes_recursive = ios;
	mt.pids = &pids;
	mt.cpu = &cpu;
	mt.memory = &mem;
	mt.blkio = &blk;
#undef U
	json_decref(st);
	if (ttrpc_any_pack(&any, URL_METRICS, &mt.base, &e) < 0)
		return reply_err(call, e);
	r.stats = &any;
	ttrpc_reply(call, &r.base);
	ttrpc_any_clear(&any);
}

static void h_stats(struct ttrpc_call *call, const ProtobufCMessage *m,
		    void *arg)
{
	const Task__StatsRequest *req = (const void *)m;
	struct husk_err *err = NULL;

	if (sv_stats(arg, req->id, stats_done, call, &err) < 0)
		return reply_err(call, err);
}

static void h_connect(struct ttrpc_call *call, const ProtobufCMessage *m,
		      void *arg)
{
	const Task__ConnectRequest *req = (const void *)m;
	Task__ConnectResponse r = TASK__CONNECT_RESPONSE__INIT;
	struct sv_proc *p = sv_find(arg, req->id, "", NULL);

	r.shim_pid = (uint32_t)getpid();
	r.task_pid = p ? (uint32_t)p->pid : 0;
	r.version = HUSK_VERSION;
	ttrpc_reply(call, &r.base);
}

static void leave_now(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void drained(struct events_pub *p, void *arg)
{
	struct sv *s = arg;

	(void)p;
	leave_now(s->loop, NULL, 0);
}

void sv_leave(struct sv *s)
{
	/* The last events go out first, for at most 5 s. */
	ev_timer_init(&leave_timer, leave_now, 5., 0.);
	ev_now_update(s->loop);         /* a blocking call may precede */
	ev_timer_start(s->loop, &leave_timer);
	if (pub)
		events_on_drained(pub, drained, s);
}

static void h_shutdown(struct ttrpc_call *call, const ProtobufCMessage *m,
		       void *arg)
{
	const Task__ShutdownRequest *req = (const void *)m;
	struct sv *s = arg;
	bool now = req->now;    /* the reply frees the request */

	ttrpc_reply(call, NULL);
	/* A pod's daemon stays while any of its tasks does. */
	if (sv_shutdown(s, now)) {
		log_info("shutdown: no task left, leaving");
		s->shutdown = true;
		sv_leave(s);
	}
}

static const struct ttrpc_method methods[] = {
	{ SVC, "State", &task__state_request__descriptor, h_state },
	{ SVC, "Create", &task__create_task_request__descriptor, h_create },
	{ SVC, "Start", &task__start_request__descriptor, h_start },
	{ SVC, "Delete", &task__delete_request__descriptor, h_delete },
	{ SVC, "Pids", &task__pids_request__descriptor, h_pids },
	{ SVC, "Pause", &task__pause_request__descriptor, h_pause },
	{ SVC, "Resume", &task__resume_request__descriptor, h_resume },
	{ SVC, "Checkpoint", &task__checkpoint_task_request__descriptor,
	  h_checkpoint },
	{ SVC, "Kill", &task__kill_request__descriptor, h_kill },
	{ SVC, "Exec", &task__exec_process_request__descriptor, h_exec },
	{ SVC, "ResizePty", &task__resize_pty_request__descriptor, h_resize },
	{ SVC, "CloseIO", &task__close_iorequest__descriptor, h_closeio },
	{ SVC, "Update", &task__update_task_request__descriptor, h_update },
	{ SVC, "Wait", &task__wait_request__descriptor, h_wait },
	{ SVC, "Stats", &task__stats_request__descriptor, h_stats },
	{ SVC, "Connect", &task__connect_request__descriptor, h_connect },
	{ SVC, "Shutdown", &task__shutdown_request__descriptor, h_shutdown },
};

int sv_serve(struct sv *s, int lfd, struct husk_err **err)
{
	server = ttrpc_server_new(s->loop, methods,
				  sizeof(methods) / sizeof(methods[0]), s);
	if (!server)
		return husk_error(err, HUSK_E_INTERNAL, "ttrpc server");
	if (ttrpc_server_listen_fd(server, lfd, err) < 0)
		return -1;
	if (s->ttrpc_address && *s->ttrpc_address) {
		pub = events_pub_new(s->loop, s->ttrpc_address, s->ns, 0, err);
		if (!pub)
			return -1;
	} else {
		log_warnx("no TTRPC_ADDRESS: events are not published");
	}
	return 0;
}
