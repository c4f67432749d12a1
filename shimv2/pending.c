/*
 * The Task calls that wait for the agent and keep state of their own
 * meanwhile (docs/shimv2.md, "Calls to the agent"): Start, Delete,
 * Pause and Resume, Update.  Each answers from the loop when the agent
 * answers; the process or task is then looked up again by its ids and
 * acted on only while it still carries that call's marker (starting,
 * deleting, updating), never through a kept pointer.  No store lock is
 * held across a wait.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "shimv2.h"

/* The end of a call nobody waits for: arg says what it was (malloc'd),
 * and a failure is logged. */
void sv_logged_done(void *arg, const msgpack_object *result,
		    const struct husk_err *err)
{
	char *what = arg;

	(void)result;
	if (err)
		log_info("%s: %s", what, err->msg);
	free(what);
}

/* A pod's member's Create waiting for the guest's create_container:
 * the host's half done (share, binds, hotplug), nothing locked; its
 * task joins the list only once the guest made the container and its
 * husk-shim started (husk_ct_create_finish). */
struct sv_create_call {
	struct sv_create_call *next;
	struct sv *s;
	struct sv_task *t;
	struct husk_ct_pending *pc;
	struct sv_acall *ac;
	sv_start_cb cb;
	void *arg;
};

static void create_unlink(struct sv_create_call *x)
{
	for (struct sv_create_call **p = &x->s->creating; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			return;
		}
}

/* The guest's answer, or err; the call ends here either way. */
static void create_end(struct sv_create_call *x, const struct husk_err *aerr)
{
	struct sv *s = x->s;
	struct sv_task *t = x->t;
	struct husk_create_opts o = { 0 };
	cleanup_err struct husk_err *err = NULL;
	pid_t shim = 0;

	create_unlink(x);
	o.detach = !t->init.terminal;
	o.stdio = t->init.io.fds;
	o.shim_pid = &shim;
	if (husk_ct_create_finish(&s->store, &t->cfg, x->pc, &o, aerr,
				  &err) < 0) {
		/* Deleted meanwhile but made in the guest: it goes there. */
		if (x->pc->orphan) {
			struct husk_err *e2 = NULL;
			char *what = husk_xasprintf("container %s: removing it "
						    "from the guest again",
						    t->id);

			if (!sv_agent_call(s, x->pc->sid,
					   AGENT_M_REMOVE_CONTAINER,
					   json_pack("{s:s, s:b}",
						     "container_id", t->id,
						     "force", 1),
					   SV_AGENT_TIMEOUT, sv_logged_done,
					   what, &e2)) {
				sv_logged_done(what, NULL, e2);
				husk_err_free(e2);
			}
		}
		sv_task_free(t);
		x->cb(x->arg, 0, err);
	} else {
		sv_task_created(s, t, shim);
		x->cb(x->arg, (uint32_t)shim, NULL);
	}
	husk_ct_pending_free(x->pc);
	free(x);
}

static void created(void *arg, const msgpack_object *result,
		    const struct husk_err *aerr)
{
	(void)result;
	create_end(arg, aerr);
}

int sv_create_wait(struct sv *s, struct sv_task *t,
		   struct husk_ct_pending *pc, sv_start_cb cb, void *arg,
		   struct husk_err **err)
{
	struct sv_create_call *x = husk_xcalloc(1, sizeof(*x));
	json_t *params = pc->params;

	pc->params = NULL;
	x->s = s;
	x->t = t;
	x->pc = pc;
	x->cb = cb;
	x->arg = arg;
	x->next = s->creating;
	s->creating = x;
	x->ac = sv_agent_call(s, pc->sid, AGENT_M_CREATE_CONTAINER, params,
			      HUSK_CREATE_TIMEOUT_MS / 1000.0, created, x,
			      err);
	if (!x->ac) {
		/* Not sent: the container goes, and the call fails. */
		struct husk_create_opts none = { 0 };
		struct husk_err *why = *err, *e2 = NULL;

		create_unlink(x);
		husk_ct_create_finish(&s->store, &t->cfg, pc, &none, why, &e2);
		husk_err_free(e2);
		sv_task_free(t);
		husk_ct_pending_free(pc);
		free(x);
		return -1;
	}
	return 0;
}

bool sv_creating(struct sv *s, const char *id)
{
	for (struct sv_create_call *x = s->creating; x; x = x->next)
		if (!strcmp(x->t->id, id))
			return true;
	return false;
}

void sv_create_abandon(struct sv *s)
{
	while (s->creating) {
		struct sv_create_call *x = s->creating;
		struct husk_err err = { .code = HUSK_E_UNAVAILABLE,
					.msg = (char *)"the shim is leaving" };

		sv_agent_cancel(s, x->ac);
		log_warnx("leaving: task %s, still being created, goes with "
			  "us", x->t->id);
		create_end(x, &err);
	}
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
			   SV_AGENT_TIMEOUT, sv_logged_done, what, &err)) {
		sv_logged_done(what, NULL, err);
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
	if (sv_ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) < 0)
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
	if (sv_ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, err) < 0)
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
	if (sv_ct_open(s, id, HUSK_LOCK_EXCL, &e, &c, NULL) == 0) {
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
	sv_task_drop(s, t);
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
	struct sv_task *t = sv_task_find(x->s, x->id, &err);
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
	struct sv_task *t = sv_task_find(s, id, err);
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
	if (sv_ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, NULL) == 0) {
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
	t = sv_task_find(x->s, x->id, &err);
	if (t && sv_ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) == 0) {
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
	struct sv_task *t = sv_task_find(s, id, err);
	struct husk_entry e;
	struct husk_container c;
	struct pause_call *x;
	int rc;

	if (!t)
		return -1;
	if (sv_ct_open(s, id, HUSK_LOCK_SHARED, &e, &c, err) < 0)
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
	struct sv_task *t = sv_task_find(x->s, x->id, &err);
	struct husk_entry e;
	struct husk_container c;

	if (t && t->updating == x)
		t->updating = NULL;
	if (aerr) {
		x->cb(x->arg, NULL, aerr);
		goto out;
	}
	/* Deleted meanwhile: nothing is left to shrink. */
	if (t && sv_ct_open(x->s, x->id, HUSK_LOCK_EXCL, &e, &c, &err) == 0) {
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
	struct sv_task *t = sv_task_find(s, id, err);
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
	if (sv_ct_open(s, id, HUSK_LOCK_EXCL, &e, &c, err) < 0) {
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
