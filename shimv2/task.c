/*
 * The Task service on the sandbox library, as the husk CLI's verbs
 * drive it (cmd/husk): Create is husk_ct_create with containerd's stdio
 * for the init's husk-shim, Start husk_ct_start, Exec husk_ct_exec,
 * Delete husk_ct_destroy, and so on.  Create runs to its end in the
 * loop; Kill, Stats, Pids and CloseIO answer when the agent does
 * (agent.c), and so do Start, Delete, Pause and Update, which keep
 * state of their own between (pending.c); Wait answers at the exit.
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

struct sv_task *sv_task_find(struct sv *s, const char *id,
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
	struct sv_task *t = sv_task_find(s, id, err);

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

int sv_ct_open(struct sv *s, const char *id, int lock, struct husk_entry *e,
	       struct husk_container *c, struct husk_err **err)
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

void sv_task_free(struct sv_task *t)
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

void sv_task_drop(struct sv *s, struct sv_task *t)
{
	for (struct sv_task **pp = &s->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	sv_task_free(t);
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

void sv_task_created(struct sv *s, struct sv_task *t, pid_t shim)
{
	t->init.pid = shim;
	sv_io_started(s, &t->init);
	sv_proc_watch(s, &t->init);
	t->next = s->tasks;
	s->tasks = t;
	sv_event_create(s, t, (uint32_t)shim);
}

int sv_create(struct sv *s, const struct sv_create *c, sv_start_cb cb,
	      void *arg, struct husk_err **err)
{
	struct husk_create_opts o = { 0 };
	struct husk_ct_pending *pc = NULL;
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
	if (sv_creating(s, c->id))
		return husk_error(err, HUSK_E_EXISTS, "task %s is being "
				  "created", c->id);
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
	/* A pod's member waits for the guest's create_container from the
	 * loop (pending.c); the pod's own container boots the VM first. */
	if (strcmp(t->sandbox_id, c->id))
		o.pending = &pc;
	if (husk_ct_create(&s->store, &t->cfg, c->id, c->bundle, &o,
			   err) < 0)
		goto fail;
	if (pc)
		return sv_create_wait(s, t, pc, cb, arg, err);
	sv_task_created(s, t, shim);
	cb(arg, (uint32_t)shim, NULL);
	return 0;
fail:
	sv_task_free(t);
	return -1;
}

int sv_exec(struct sv *s, const char *id, const char *eid, bool terminal,
	    const char *in, const char *out, const char *errp,
	    const char *spec_json, size_t spec_len, struct husk_err **err)
{
	struct sv_task *t = sv_task_find(s, id, err);
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

int sv_stats(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	     struct husk_err **err)
{
	struct sv_task *t = sv_task_find(s, id, err);

	if (!t)
		return -1;
	return sv_agent_call(s, t->sandbox_id, "stats_container",
			     json_pack("{s:s}", "container_id", id),
			     SV_AGENT_TIMEOUT, cb, arg, err) ? 0 : -1;
}

int sv_pids(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	    struct husk_err **err)
{
	struct sv_task *t = sv_task_find(s, id, err);

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
	if (close_stdin_call(sv, p, sv_logged_done, what, &e) < 0) {
		sv_logged_done(what, NULL, e);
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
	return s->tasks == NULL && s->creating == NULL;
}

void sv_destroy_all(struct sv *s)
{
	/* Members before their pod's own container. */
	sv_create_abandon(s);
	while (s->tasks) {
		struct sv_task *t = s->tasks, *pick = NULL;
		struct husk_entry e;
		struct husk_container c;

		for (t = s->tasks; t; t = t->next)
			if (strcmp(t->id, t->sandbox_id))
				pick = t;
		t = pick ? pick : s->tasks;
		log_warnx("leaving: task %s goes with us", t->id);
		if (sv_ct_open(s, t->id, HUSK_LOCK_EXCL, &e, &c, NULL) == 0) {
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
			sv_task_drop(s, t);
	}
}
