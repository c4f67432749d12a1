/*
 * The Task service on the sandbox library, as the husk CLI's verbs
 * drive it (cmd/husk): Create is husk_ct_create with containerd's stdio
 * for the init's husk-shim, Start husk_ct_start, Exec husk_ct_exec,
 * Delete husk_ct_destroy, and so on.  The calls that reach the agent
 * (Start, Exec's start, Kill, Pause, ...) answer from the loop when it
 * answers (agent.c); Create, Delete and Update still run to their end
 * in the loop, one at a time; Wait answers at the exit.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "shimv2.h"

static struct sv_task *task_find(struct sv *s, const char *id,
				 struct husk_err **err)
{
	for (struct sv_task *t = s->tasks; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	husk_error(err, HUSK_E_NOT_FOUND, "task %s not found", id);
	return NULL;
}

struct sv_proc *sv_find(struct sv *s, const char *id, const char *eid,
			struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);

	if (!t)
		return NULL;
	if (!eid || !*eid)
		return &t->init;
	for (struct sv_proc *p = t->execs; p; p = p->next)
		if (!strcmp(p->exec_id, eid))
			return p;
	husk_error(err, HUSK_E_NOT_FOUND, "process %s of task %s not found",
		   eid, id);
	return NULL;
}

/* The container's record, locked as asked. */
static int ct_open(struct sv *s, const char *id, int lock,
		   struct husk_entry *e, struct husk_container *c,
		   struct husk_err **err)
{
	e->dirfd = e->lockfd = -1;
	if (husk_store_get(&s->store, id, lock, e, err) < 0)
		return -1;
	if (husk_container_read(e, c, err) < 0) {
		husk_entry_close(e);
		return -1;
	}
	return 0;
}

static void task_free(struct sv_task *t)
{
	sv_oom_stop(sv, t);
	while (t->execs) {
		struct sv_proc *p = t->execs;

		t->execs = p->next;
		sv_proc_free(p);
		free(p);
	}
	sv_proc_free(&t->init);
	if (t->rootfs) {
		sv_rootfs_unmount(t->rootfs);
		free(t->rootfs);
	}
	if (t->cfg_loaded)
		husk_config_free(&t->cfg);
	free(t->id);
	free(t->bundle);
	free(t->sandbox_id);
	free(t);
}

static void task_unlink(struct sv *s, struct sv_task *t)
{
	for (struct sv_task **pp = &s->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			return;
		}
}

/* The husk configuration: Create's ConfigPath (CRI's runtime options),
 * else HUSK_CONFIG from the environment, else the default file, which
 * may be missing. */
static int task_config(struct sv_task *t, const char *path,
		       struct husk_err **err)
{
	const char *env = getenv("HUSK_CONFIG");
	bool must = true;

	if (!path || !*path) {
		path = env && *env ? env : SV_DEFAULT_CONFIG;
		must = env && *env;
	}
	husk_config_defaults(&t->cfg);
	t->cfg_loaded = true;
	if (husk_config_load(&t->cfg, path, must, err) < 0)
		return husk_error_wrap(err, "husk configuration");
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? husk_xstrdup(s) : NULL;
}

int sv_create(struct sv *s, const struct sv_create *c, uint32_t *pid,
	      struct husk_err **err)
{
	struct husk_create_opts o = { 0 };
	struct sv_task *t;
	pid_t shim = 0;
	json_error_t jerr;
	cleanup_free char *cpath = NULL;
	json_t *spec;

	if (husk_id_validate(c->id, "task id", err) < 0)
		return -1;
	for (t = s->tasks; t; t = t->next)
		if (!strcmp(t->id, c->id))
			return husk_error(err, HUSK_E_EXISTS, "task %s "
					  "already exists", c->id);
	if (!c->bundle || c->bundle[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "bundle '%s' is not an "
				  "absolute path", c->bundle ? c->bundle : "");
	t = husk_xcalloc(1, sizeof(*t));
	t->id = husk_xstrdup(c->id);
	t->bundle = husk_xstrdup(c->bundle);
	sv_proc_init(&t->init, t, "");
	t->init.terminal = c->terminal;
	t->init.stdin_path = dup_or_null(c->stdin);
	t->init.stdout_path = dup_or_null(c->stdout);
	t->init.stderr_path = dup_or_null(c->stderr);
	if (task_config(t, c->config_path, err) < 0)
		goto fail;
	cpath = husk_xasprintf("%s/config.json", c->bundle);
	spec = json_load_file(cpath, 0, &jerr);
	if (!spec) {
		husk_error(err, HUSK_E_INVALID, "%s: %s", cpath, jerr.text);
		goto fail;
	}
	if (husk_pod_membership(spec, c->id, &t->sandbox_id, err) < 0) {
		json_decref(spec);
		goto fail;
	}
	json_decref(spec);
	if (c->nmounts && sv_rootfs_mount(c, &t->rootfs, err) < 0)
		goto fail;
	if (sv_io_open(s, &t->init, err) < 0)
		goto fail;
	/* A terminal's slave is the husk-shim's stdin: it takes it as its
	 * own terminal (raw mode, the size). */
	o.detach = !c->terminal;
	o.stdio = t->init.io.fds;
	o.shim_pid = &shim;
	if (husk_ct_create(&s->store, &t->cfg, c->id, c->bundle, &o,
			   err) < 0)
		goto fail;
	t->init.pid = shim;
	sv_io_started(s, &t->init);
	sv_proc_watch(s, &t->init);
	t->next = s->tasks;
	s->tasks = t;
	*pid = (uint32_t)shim;
	sv_event_create(s, t, (uint32_t)shim);
	return 0;
fail:
	task_free(t);
	return -1;
}

/* The end of a call nobody waits for: arg says what it was (malloc'd),
 * and a failure is logged. */
static void logged_done(void *arg, const msgpack_object *result,
			const struct husk_err *err)
{
	char *what = arg;

	(void)result;
	if (err)
		log_info("%s: %s", what, err->msg);
	free(what);
}

/* A Start waiting for the agent: start_container for a task's init,
 * exec_process for an exec, whose husk-shim starts once the process is
 * there.  Answered from the loop: the process is looked up again by
 * its ids, and is this Start's only while it still points at it. */
struct start_call {
	struct sv *s;
	char *id, *eid, *sid;
	sv_start_cb cb;
	void *arg;
};

static void start_call_free(struct start_call *x)
{
	free(x->id);
	free(x->eid);
	free(x->sid);
	free(x);
}

static struct sv_proc *start_find(struct start_call *x)
{
	struct sv_proc *p = sv_find(x->s, x->id, x->eid, NULL);

	if (!p || p->starting != x)
		return NULL;
	p->starting = NULL;
	return p;
}

/* The exec started in the guest but not here (its husk-shim did not
 * start, or containerd deleted it meanwhile): it goes. */
static void exec_undo(struct start_call *x)
{
	struct husk_err *err = NULL;
	char *what = husk_xasprintf("exec %s/%s: killing it again", x->id,
				    x->eid);

	if (!sv_agent_call(x->s, x->sid, AGENT_M_SIGNAL_PROCESS,
			   json_pack("{s:s, s:s, s:i}", "container_id", x->id,
				     "exec_id", x->eid, "signal", SIGKILL),
			   SV_AGENT_TIMEOUT, logged_done, what, &err)) {
		logged_done(what, NULL, err);
		husk_err_free(err);
	}
}

static void exec_started(void *arg, const msgpack_object *result,
			 const struct husk_err *aerr)
{
	struct start_call *x = arg;
	cleanup_err struct husk_err *err = NULL;
	struct sv_proc *p = start_find(x);
	pid_t shim;

	(void)result;
	if (aerr) {
		if (p)
			sv_io_close(x->s, p);
		x->cb(x->arg, 0, aerr);
		goto out;
	}
	if (!p) {
		husk_error(&err, HUSK_E_NOT_FOUND, "exec %s of task %s was "
			   "deleted while it started", x->eid, x->id);
		exec_undo(x);
		goto fail;
	}
	shim = husk_shim_start_io(&p->task->cfg, x->s->root, x->sid, x->id,
				  x->eid, p->terminal, NULL, p->io.fds, &err);
	if (shim < 0) {
		sv_io_close(x->s, p);
		exec_undo(x);
		goto fail;
	}
	p->pid = shim;
	p->status = SV_RUNNING;
	sv_io_started(x->s, p);
	sv_proc_watch(x->s, p);
	sv_event_exec_started(x->s, p);
	x->cb(x->arg, (uint32_t)shim, NULL);
	goto out;
fail:
	x->cb(x->arg, 0, err);
out:
	start_call_free(x);
}

static void init_started(void *arg, const msgpack_object *result,
			 const struct husk_err *aerr)
{
	struct start_call *x = arg;
	cleanup_err struct husk_err *err = NULL;
	struct sv_proc *p = start_find(x);
	struct husk_entry e;
	struct husk_container c;
	int rc;

	(void)result;
	if (aerr) {
		x->cb(x->arg, 0, aerr);
		goto out;
	}
	if (!p) {
		husk_error(&err, HUSK_E_NOT_FOUND, "task %s was deleted while "
			   "it started", x->id);
		goto fail;
	}
	if (ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) < 0)
		goto fail;
	rc = husk_ct_started(&x->s->store, &p->task->cfg, &e, &c, &err);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (rc < 0)
		goto fail;
	/* Its husk-shim may have exited meanwhile (the VM died): its exit
	 * was told, and a start after it would not be true. */
	if (!p->exited) {
		p->status = SV_RUNNING;
		sv_event_start(x->s, p);
		sv_oom_start(x->s, p->task);
	}
	x->cb(x->arg, (uint32_t)p->pid, NULL);
	goto out;
fail:
	x->cb(x->arg, 0, err);
out:
	start_call_free(x);
}

int sv_start(struct sv *s, const char *id, const char *eid, sv_start_cb cb,
	     void *arg, struct husk_err **err)
{
	struct sv_proc *p = sv_find(s, id, eid, err);
	struct husk_entry e;
	struct husk_container c;
	struct start_call *x;
	json_t *params;
	bool exec;
	int rc;

	if (!p)
		return -1;
	exec = *p->exec_id;
	if (p->starting)
		return husk_error(err, HUSK_E_STATE, "process %s%s%s is "
				  "starting", id, exec ? "/" : "",
				  p->exec_id);
	if (p->exited || p->status != SV_CREATED)
		return husk_error(err, HUSK_E_STATE, "process %s%s%s is %s, "
				  "not created", id, exec ? "/" : "",
				  p->exec_id, p->exited ? "stopped" :
				  "running");
	if (ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, err) < 0)
		return -1;
	rc = exec ? husk_ct_exec_check(&c, err) :
		husk_ct_start_check(&p->task->cfg, &c, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (rc < 0)
		return -1;
	if (exec) {
		if (sv_io_open(s, p, err) < 0)
			return -1;
		params = json_pack("{s:s, s:s, s:O}", "container_id", id,
				   "exec_id", p->exec_id, "process",
				   p->process);
	} else {
		params = json_pack("{s:s}", "container_id", id);
	}
	x = husk_xcalloc(1, sizeof(*x));
	x->s = s;
	x->id = husk_xstrdup(id);
	x->eid = husk_xstrdup(p->exec_id);
	x->sid = husk_xstrdup(p->task->sandbox_id);
	x->cb = cb;
	x->arg = arg;
	if (!sv_agent_call(s, p->task->sandbox_id, exec ?
			   AGENT_M_EXEC_PROCESS : AGENT_M_START_CONTAINER,
			   params, HUSK_START_TIMEOUT_MS / 1000.0, exec ?
			   exec_started : init_started, x, err)) {
		if (exec)
			sv_io_close(s, p);
		start_call_free(x);
		return -1;
	}
	p->starting = x;
	return 0;
}

int sv_exec(struct sv *s, const char *id, const char *eid, bool terminal,
	    const char *in, const char *out, const char *errp,
	    const char *spec_json, size_t spec_len, struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);
	struct sv_proc *p;
	json_error_t jerr;
	json_t *proc;

	if (!t)
		return -1;
	if (!eid || !*eid)
		return husk_error(err, HUSK_E_INVALID, "exec of task %s: no "
				  "exec id", id);
	if (husk_id_validate(eid, "exec id", err) < 0)
		return -1;
	for (p = t->execs; p; p = p->next)
		if (!strcmp(p->exec_id, eid))
			return husk_error(err, HUSK_E_EXISTS, "exec %s of "
					  "task %s already exists", eid, id);
	if (t->init.exited)
		return husk_error(err, HUSK_E_STATE, "task %s has exited", id);
	proc = json_loadb(spec_json, spec_len, 0, &jerr);
	if (!proc || !json_is_object(proc)) {
		json_decref(proc);
		return husk_error(err, HUSK_E_INVALID, "exec %s: the process "
				  "spec: %s", eid, proc ? "not an object" :
				  jerr.text);
	}
	if (husk_process_validate(proc, err) < 0) {
		json_decref(proc);
		return -1;
	}
	/* The spec's own terminal flag is the one the agent reads. */
	json_object_set_new(proc, "terminal", json_boolean(terminal));
	p = husk_xcalloc(1, sizeof(*p));
	sv_proc_init(p, t, eid);
	p->process = proc;
	p->terminal = terminal;
	p->stdin_path = dup_or_null(in);
	p->stdout_path = dup_or_null(out);
	p->stderr_path = dup_or_null(errp);
	p->next = t->execs;
	t->execs = p;
	sv_event_exec_added(s, p);
	return 0;
}

int sv_kill(struct sv *s, const char *id, const char *eid, uint32_t sig,
	    bool all, sv_agent_cb cb, void *arg, struct husk_err **err)
{
	struct sv_proc *p = sv_find(s, id, eid, err);

	if (!p)
		return -1;
	if (sig > 64)
		return husk_error(err, HUSK_E_INVALID, "signal %u", sig);
	/* containerd takes "not found" as "already finished". */
	if (p->exited)
		return husk_error(err, HUSK_E_NOT_FOUND, "process %s%s%s "
				  "already finished", id, *eid ? "/" : "",
				  eid ? eid : "");
	if (p->pid <= 0)
		return husk_error(err, HUSK_E_STATE, "process %s/%s is not "
				  "started", id, eid);
	return sv_agent_call(s, p->task->sandbox_id, "signal_process",
			     json_pack("{s:s, s:s, s:i, s:b}", "container_id",
				     id, "exec_id", p->exec_id, "signal",
				     (int)sig, "all", all && !*p->exec_id),
			     SV_AGENT_TIMEOUT, cb, arg, err) ? 0 : -1;
}

/* The rest of a task's Delete, once the agent removed a member's
 * container (agent_done) or for the pod's own: husk's container on the
 * host, the husk-shims, the task. */
static void delete_task(struct sv *s, struct sv_task *t, bool agent_done,
			struct sv_deleted *d)
{
	struct sv_proc *p = &t->init;
	struct husk_entry e;
	struct husk_container c;
	const char *id = t->id;

	/* The pod's own container takes its members with it (CRI deletes
	 * them first; ctr may not): their processes end here, each with its
	 * exit, while their husk-shims are still ours to reap. */
	if (!strcmp(t->sandbox_id, id))
		for (struct sv_task *m = s->tasks; m; m = m->next) {
			if (m == t || strcmp(m->sandbox_id, id))
				continue;
			for (struct sv_proc *x = m->execs; x; x = x->next)
				sv_proc_kill(x);
			sv_proc_kill(&m->init);
		}
	if (ct_open(s, id, HUSK_LOCK_EXCL, &e, &c, NULL) == 0) {
		cleanup_err struct husk_err *e2 = NULL;
		int rc = agent_done ?
			husk_ct_destroy_host(&s->store, &t->cfg, &e, &c, true,
					     &e2) :
			husk_ct_destroy(&s->store, &t->cfg, &e, &c, true,
					&e2);

		if (rc < 0)
			log_warnx("delete %s: %s", id, e2->msg);
		husk_container_free(&c);
		husk_entry_close(&e);
	}
	for (struct sv_proc *x = t->execs; x; x = x->next)
		sv_proc_kill(x);
	sv_proc_kill(p);
	d->pid = (uint32_t)p->pid;
	d->status = p->exit_status;
	d->at = p->exited_at;
	sv_event_delete(s, p);
	task_unlink(s, t);
	task_free(t);
}

/* A member's Delete waiting for the agent's remove_container. */
struct delete_call {
	struct sv *s;
	char *id;
	sv_delete_cb cb;
	void *arg;
};

static void removed(void *arg, const msgpack_object *result,
		    const struct husk_err *aerr)
{
	struct delete_call *x = arg;
	cleanup_err struct husk_err *err = NULL;
	struct sv_task *t = task_find(x->s, x->id, &err);
	struct sv_deleted d;

	(void)result;
	/* As husk_ct_destroy: the guest's answer does not stop the rest
	 * (a dead VM cannot answer). */
	if (aerr)
		log_debug("delete %s: %s", x->id, aerr->msg);
	if (t && t->deleting == x) {
		t->deleting = NULL;
		delete_task(x->s, t, true, &d);
		x->cb(x->arg, &d, NULL);
	} else {
		/* The pod's own Delete, or the daemon's leaving, took it. */
		if (t)
			husk_error(&err, HUSK_E_NOT_FOUND, "task %s went "
				   "while it was deleted", x->id);
		x->cb(x->arg, NULL, err);
	}
	free(x->id);
	free(x);
}

int sv_delete(struct sv *s, const char *id, const char *eid, sv_delete_cb cb,
	      void *arg, struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);
	struct sv_deleted d;
	struct sv_proc *p;
	struct husk_entry e;
	struct husk_container c;
	struct delete_call *x;
	json_t *params;

	if (!t)
		return -1;
	if (t->deleting)
		return husk_error(err, HUSK_E_STATE, "task %s is being "
				  "deleted", id);
	if (eid && *eid) {
		struct sv_proc **pp;

		for (pp = &t->execs; *pp; pp = &(*pp)->next)
			if (!strcmp((*pp)->exec_id, eid))
				break;
		if (!*pp)
			return husk_error(err, HUSK_E_NOT_FOUND, "process %s "
					  "of task %s not found", eid, id);
		p = *pp;
		if (p->pid > 0 && !p->exited)
			return husk_error(err, HUSK_E_STATE, "process %s of "
					  "task %s is running", eid, id);
		d.pid = (uint32_t)p->pid;
		d.status = p->exit_status;
		d.at = p->exited_at;
		*pp = p->next;
		sv_proc_free(p);
		free(p);
		cb(arg, &d, NULL);
		return 0;
	}
	p = &t->init;
	if (p->status != SV_CREATED && !p->exited)
		return husk_error(err, HUSK_E_STATE, "task %s is running: "
				  "kill it first", id);
	/* A member's container in the guest goes first, answered from the
	 * loop; the pod's own goes with the VM. */
	params = NULL;
	if (ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, NULL) == 0) {
		params = husk_ct_remove_params(&c);
		husk_container_free(&c);
		husk_entry_close(&e);
	}
	if (params) {
		struct husk_err *e2 = NULL;

		x = husk_xcalloc(1, sizeof(*x));
		x->s = s;
		x->id = husk_xstrdup(id);
		x->cb = cb;
		x->arg = arg;
		if (sv_agent_call(s, t->sandbox_id, AGENT_M_REMOVE_CONTAINER,
				  params, HUSK_REMOVE_TIMEOUT_MS / 1000.0,
				  removed, x, &e2)) {
			t->deleting = x;
			return 0;
		}
		/* No proxy to ask: the rest goes on without it. */
		log_debug("delete %s: %s", id, e2->msg);
		husk_err_free(e2);
		free(x->id);
		free(x);
	}
	delete_task(s, t, params != NULL, &d);
	cb(arg, &d, NULL);
	return 0;
}

/* A pause or resume the agent is doing. */
struct pause_call {
	struct sv *s;
	char *id;
	bool pause;
	sv_agent_cb cb;
	void *arg;
};

static void pause_done(void *arg, const msgpack_object *result,
		       const struct husk_err *aerr)
{
	struct pause_call *x = arg;
	cleanup_err struct husk_err *err = NULL;
	struct husk_entry e;
	struct husk_container c;
	struct sv_task *t;

	if (aerr) {
		x->cb(x->arg, NULL, aerr);
		goto out;
	}
	/* Answered from the loop: the task may have gone meanwhile. */
	t = task_find(x->s, x->id, &err);
	if (t && ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) == 0) {
		int rc = husk_ct_paused(&e, &c, x->pause, &err);

		husk_container_free(&c);
		husk_entry_close(&e);
		if (rc == 0) {
			if (!t->init.exited)
				t->init.status = x->pause ? SV_PAUSED :
					SV_RUNNING;
			sv_event_paused(x->s, t, x->pause);
		}
	}
	x->cb(x->arg, err ? NULL : result, err);
out:
	free(x->id);
	free(x);
}

int sv_pause(struct sv *s, const char *id, bool pause, sv_agent_cb cb,
	     void *arg, struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);
	struct husk_entry e;
	struct husk_container c;
	struct pause_call *x;
	int rc;

	if (!t)
		return -1;
	if (ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, err) < 0)
		return -1;
	rc = husk_ct_pause_check(&c, pause, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (rc < 0)
		return -1;
	x = husk_xcalloc(1, sizeof(*x));
	x->s = s;
	x->id = husk_xstrdup(id);
	x->pause = pause;
	x->cb = cb;
	x->arg = arg;
	if (!sv_agent_call(s, t->sandbox_id, pause ? AGENT_M_PAUSE_CONTAINER :
			   AGENT_M_RESUME_CONTAINER,
			   json_pack("{s:s}", "container_id", id),
			   SV_PAUSE_TIMEOUT, pause_done, x, err)) {
		free(x->id);
		free(x);
		return -1;
	}
	return 0;
}

/* An Update waiting for the agent's update_container: the VM grew
 * before it, and shrinks after. */
struct update_call {
	struct sv *s;
	char *id;
	json_t *res;
	sv_agent_cb cb;
	void *arg;
};

static void updated(void *arg, const msgpack_object *result,
		    const struct husk_err *aerr)
{
	struct update_call *x = arg;
	cleanup_err struct husk_err *err = NULL;
	struct sv_task *t = task_find(x->s, x->id, &err);
	struct husk_entry e;
	struct husk_container c;

	if (t && t->updating == x)
		t->updating = NULL;
	if (aerr) {
		x->cb(x->arg, NULL, aerr);
		goto out;
	}
	/* Deleted meanwhile: nothing is left to shrink. */
	if (t && ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) == 0) {
		husk_ct_update_shrink(x->s->root, &e, &c, x->res, &err);
		husk_container_free(&c);
		husk_entry_close(&e);
	}
	x->cb(x->arg, err ? NULL : result, err);
out:
	json_decref(x->res);
	free(x->id);
	free(x);
}

int sv_update(struct sv *s, const char *id, const char *res_json,
	      size_t len, sv_agent_cb cb, void *arg, struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);
	struct husk_entry e;
	struct husk_container c;
	struct update_call *x;
	json_error_t jerr;
	json_t *res, *params;
	int rc;

	if (!t)
		return -1;
	/* One at a time: each step sizes the VM from what the last one
	 * left. */
	if (t->updating)
		return husk_error(err, HUSK_E_STATE, "task %s is being "
				  "updated", id);
	res = json_loadb(res_json, len, 0, &jerr);
	if (!res || !json_is_object(res)) {
		json_decref(res);
		return husk_error(err, HUSK_E_INVALID, "update %s: the "
				  "resources: %s", id, res ? "not a JSON "
				  "object" : jerr.text);
	}
	if (ct_open(s, id, HUSK_LOCK_EXCL, &e, &c, err) < 0) {
		json_decref(res);
		return -1;
	}
	rc = husk_ct_update_grow(s->root, &e, &c, res, err);
	params = rc < 0 ? NULL : husk_ct_update_params(&c, res);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (rc < 0) {
		json_decref(res);
		return -1;
	}
	x = husk_xcalloc(1, sizeof(*x));
	x->s = s;
	x->id = husk_xstrdup(id);
	x->res = res;
	x->cb = cb;
	x->arg = arg;
	if (!sv_agent_call(s, t->sandbox_id, AGENT_M_UPDATE_CONTAINER, params,
			   HUSK_UPDATE_TIMEOUT_MS / 1000.0, updated, x, err)) {
		json_decref(res);
		free(x->id);
		free(x);
		return -1;
	}
	t->updating = x;
	return 0;
}

int sv_stats(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	     struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);

	if (!t)
		return -1;
	return sv_agent_call(s, t->sandbox_id, "stats_container",
			     json_pack("{s:s}", "container_id", id),
			     SV_AGENT_TIMEOUT, cb, arg, err) ? 0 : -1;
}

int sv_pids(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	    struct husk_err **err)
{
	struct sv_task *t = task_find(s, id, err);

	if (!t)
		return -1;
	if (t->init.exited) {
		cb(arg, NULL, NULL);
		return 0;
	}
	return sv_agent_call(s, t->sandbox_id, "list_processes",
			     json_pack("{s:s}", "container_id", id),
			     SV_AGENT_TIMEOUT, cb, arg, err) ? 0 : -1;
}

uint32_t *sv_pids_decode(const msgpack_object *result, size_t *n)
{
	json_t *res = result ? ipc_json_from_obj(result) : NULL;
	json_t *procs = json_object_get(res, "processes"), *pr;
	uint32_t *pids;
	size_t i;

	*n = 0;
	pids = husk_xcalloc(json_array_size(procs) + 1, sizeof(uint32_t));
	json_array_foreach(procs, i, pr) {
		json_int_t v = json_integer_value(json_object_get(pr, "pid"));

		if (v > 0 && v <= INT32_MAX)
			pids[(*n)++] = (uint32_t)v;
	}
	json_decref(res);
	return pids;
}

int sv_resize(struct sv *s, const char *id, const char *eid, uint32_t w,
	      uint32_t h, struct husk_err **err)
{
	struct sv_proc *p = sv_find(s, id, eid, err);

	if (!p)
		return -1;
	if (!p->terminal)
		return husk_error(err, HUSK_E_STATE, "process %s%s%s has no "
				  "terminal", id, eid && *eid ? "/" : "",
				  eid ? eid : "");
	if (w > 0xffff || h > 0xffff)
		return husk_error(err, HUSK_E_INVALID, "terminal size %ux%u",
				  w, h);
	return sv_io_resize(p, w, h, err);
}

static int close_stdin_call(struct sv *s, struct sv_proc *p,
			    sv_agent_cb cb, void *arg, struct husk_err **err)
{
	return sv_agent_call(s, p->task->sandbox_id, "close_stdin",
			     json_pack("{s:s, s:s}", "container_id",
				     p->task->id, "exec_id", p->exec_id),
			     SV_AGENT_TIMEOUT, cb, arg, err) ? 0 : -1;
}

/* A deferred CloseIO (io.c): the process may have gone meanwhile. */
static void close_stdin_now(struct sv_proc *p)
{
	struct husk_err *e = NULL;
	char *what;

	if (p->exited || p->pid <= 0)
		return;
	what = husk_xasprintf("close_stdin %s/%s", p->task->id, p->exec_id);
	if (close_stdin_call(sv, p, logged_done, what, &e) < 0) {
		logged_done(what, NULL, e);
		husk_err_free(e);
	}
}

int sv_close_io(struct sv *s, const char *id, const char *eid,
		sv_agent_cb cb, void *arg, struct husk_err **err)
{
	struct sv_proc *p = sv_find(s, id, eid, err);

	if (!p)
		return -1;
	if (p->exited || p->pid <= 0 || sv_io_close_stdin(p) ||
	    sv_io_close_stdin_later(s, p, close_stdin_now)) {
		cb(arg, NULL, NULL);
		return 0;
	}
	return close_stdin_call(s, p, cb, arg, err);
}

int sv_wait(struct sv *s, const char *id, const char *eid,
	    struct sv_waiter *w, struct husk_err **err)
{
	struct sv_proc *p = sv_find(s, id, eid, err);

	if (!p)
		return -1;
	if (p->exited) {
		w->done(w->arg, p);
		return 0;
	}
	w->next = p->waiters;
	p->waiters = w;
	return 0;
}

bool sv_shutdown(struct sv *s, bool now)
{
	(void)now;
	return s->tasks == NULL;
}

void sv_destroy_all(struct sv *s)
{
	/* Members before their pod's own container. */
	while (s->tasks) {
		struct sv_task *t = s->tasks, *pick = NULL;
		struct husk_entry e;
		struct husk_container c;

		for (t = s->tasks; t; t = t->next)
			if (strcmp(t->id, t->sandbox_id))
				pick = t;
		t = pick ? pick : s->tasks;
		log_warnx("leaving: task %s goes with us", t->id);
		if (ct_open(s, t->id, HUSK_LOCK_EXCL, &e, &c, NULL) == 0) {
			cleanup_err struct husk_err *e2 = NULL;

			if (husk_ct_destroy(&s->store, &t->cfg, &e, &c, true,
					    &e2) < 0)
				log_warnx("destroy %s: %s", t->id, e2->msg);
			husk_container_free(&c);
			husk_entry_close(&e);
		}
		for (struct sv_proc *x = t->execs; x; x = x->next)
			sv_proc_kill(x);
		sv_proc_kill(&t->init);
		task_unlink(s, t);
		task_free(t);
	}
}
