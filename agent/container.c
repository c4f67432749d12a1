/*
 * Containers: the container methods of docs/agent-protocol.md
 * ("Containers"), the container records, and the dispatch of reaped
 * children to them.  The sandbox's methods are in sandbox.c, exec and
 * signals in exec.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"
#include "agent/oci_seccomp.h"

struct rpc_wait *rpc_wait_new(struct agent *a, struct ipc_conn *c,
				     const struct ipc_msg *m, char *what)
{
	struct rpc_wait *w = husk_xcalloc(1, sizeof(*w));

	ipc_conn_ref(c);
	w->a = a;
	w->c = c;
	w->msgid = m->msgid;
	w->what = what;
	return w;
}

void rpc_wait_free(struct rpc_wait *w)
{
	ipc_conn_unref(w->c);
	free(w->what);
	free(w);
}

void rpc_wait_fail(struct rpc_wait *w, const struct husk_err *e)
{
	struct husk_err *e2 = NULL;

	if (ipc_conn_closed(w->c))
		return;
	husk_error(&e2, e ? e->code : HUSK_E_INTERNAL, "%s: %s", w->what,
		   e && e->msg ? e->msg : "failed");
	ipc_reply_err(w->c, w->msgid, e2);
	husk_err_free(e2);
}

void rpc_wait_pid(struct rpc_wait *w, pid_t pid)
{
	msgpack_packer *pk;

	if (ipc_conn_closed(w->c))
		return;
	pk = ipc_reply_begin(w->c, w->msgid);
	msgpack_pack_map(pk, 1);
	ipc_pack_kv_int(pk, "pid", pid);
	ipc_reply_send(w->c);
}

struct container *ct_find(struct agent *a, const char *id)
{
	for (struct container *ct = a->core->containers; ct; ct = ct->next)
		if (strcmp(ct->id, id) == 0)
			return ct;
	return NULL;
}

struct proc *ct_proc(struct container *ct, const char *exec_id)
{
	for (struct proc *p = ct->procs; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

struct container *ct_lookup(struct agent *a, const struct ct_params *p,
			    struct husk_err **err)
{
	struct container *ct;

	if (!a->core->sandbox) {
		husk_error(err, HUSK_E_STATE,
			   "no sandbox: call create_sandbox first");
		return NULL;
	}
	ct = ct_find(a, p->container_id);
	if (!ct)
		husk_error(err, HUSK_E_NOT_FOUND,
			   "container %s: no such container", p->container_id);
	return ct;
}

struct proc *ct_lookup_proc(struct agent *a, const struct ct_params *p,
			    struct husk_err **err)
{
	struct container *ct = ct_lookup(a, p, err);
	struct proc *pr;

	if (!ct)
		return NULL;
	pr = ct_proc(ct, p->exec_id);
	if (!pr)
		husk_error(err, HUSK_E_NOT_FOUND,
			   "process %s/%s: no such process", ct->id,
			   p->exec_id);
	return pr;
}

static int status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

void ct_reaped(struct agent *a, pid_t pid, int wstatus)
{
	for (struct container *ct = a->core->containers; ct; ct = ct->next) {
		for (struct proc *p = ct->procs; p; p = p->next) {
			if (p->pid != pid || p->exited)
				continue;
			if (p == ct->init)
				ct->state = CT_STOPPED;
			/* A kill is counted before the exit it caused. */
			oom_check(ct);
			proc_exited(p, status_of(wstatus));
			return;
		}
	}
	log_debug("%s: reaped orphan %d", __func__, (int)pid);
}

/* Reap what has exited now, outside the loop (blocking paths). */
static void reap_now(struct agent *a)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		ct_reaped(a, pid, st);
}

bool ct_alive(struct container *ct)
{
	for (struct proc *p = ct->procs; p; p = p->next)
		if (p->pid > 0 && !p->exited)
			return true;
	return false;
}

void ct_kill_all(struct container *ct, int sig)
{
	pid_t *pids = NULL;
	size_t n = 0;
	struct husk_err *err = NULL;

	if (cg_pids(ct->cg, &pids, &n, &err) < 0) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
	}
	for (size_t i = 0; i < n; i++)
		kill(pids[i], sig);
	free(pids);
	for (struct proc *p = ct->procs; p; p = p->next)
		if (p->pid > 0 && !p->exited)
			kill(p->pid, sig);
}

/* SIGKILL everything and wait (bounded) until our children are reaped
 * and the cgroup is empty. */
static int ct_stop(struct agent *a, struct container *ct,
		   struct husk_err **err)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	uint64_t deadline = husk_now_ms() + 10000;

	for (bool thawed = false;; thawed = true) {
		pid_t *pids = NULL;
		size_t n = 0;

		ct_kill_all(ct, SIGKILL);
		/* Frozen (paused, or by someone else): SIGKILL is pending
		 * and takes effect once thawed. */
		if (!thawed) {
			cg_freeze(ct->cg, false, NULL);
			if (ct->state == CT_PAUSED)
				ct->state = CT_RUNNING;
		}
		reap_now(a);
		if (cg_pids(ct->cg, &pids, &n, NULL) < 0)
			n = 0;
		free(pids);
		if (!ct_alive(ct) && n == 0)
			return 0;
		if (husk_now_ms() > deadline)
			return husk_error(err, HUSK_E_TIMEOUT,
					  "container %s: processes still alive after SIGKILL",
					  ct->id);
		nanosleep(&ts, NULL);
	}
}

void ct_free(struct agent *a, struct container *ct)
{
	struct agent_core *core = a->core;
	struct container **pp;
	struct proc *p;
	struct husk_err *err = NULL;

	for (pp = &core->containers; *pp; pp = &(*pp)->next)
		if (*pp == ct) {
			*pp = ct->next;
			break;
		}
	while ((p = ct->procs)) {
		ct->procs = p->next;
		proc_free(p);
	}
	/* Before the cgroup goes: v1 signals the eventfd at its removal. */
	oom_watch_stop(ct);
	if (ct->cg && cg_destroy(ct->cg, &err) < 0) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
	}
	if (ct->filter)
		seccomp_release(ct->filter);
	free(ct->id);
	free(ct);
}

int ct_remove(struct agent *a, struct container *ct, bool force,
	      struct husk_err **err)
{
	if (ct_alive(ct)) {
		if (!force)
			return husk_error(err, HUSK_E_STATE,
					  "container %s has live processes (use force)",
					  ct->id);
	}
	if (ct_stop(a, ct, err) < 0)
		return -1;
	if (a->core->sandbox_pidns_fd >= 0 && !ct->joined_pidns &&
	    (ct->ns_flags & CLONE_NEWPID) && a->core->shared_pid_ns) {
		/* The sandbox's pid namespace died with this init. */
		close(a->core->sandbox_pidns_fd);
		a->core->sandbox_pidns_fd = -1;
	}
	ct_free(a, ct);
	return 0;
}

/* ------------------------------------------------------------------ */
/* containers                                                          */

/* Sysctls a container may set: those its namespaces own (net.* only in
 * a VM, where the network namespace is the sandbox's own). */
static int check_sysctls(struct agent *a, const struct spec *s,
			 struct husk_err **err)
{
	static const char *const ipc_ok[] = {
		"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni",
		"kernel.shm_rmid_forced",
	};

	for (size_t i = 0; i < s->nsysctl; i++) {
		const char *k = s->sysctl_keys[i];
		bool ok = false;

		if (s->ns_flags & CLONE_NEWIPC) {
			for (size_t j = 0; j < HUSK_ARRAY_SIZE(ipc_ok); j++)
				ok = ok || strcmp(k, ipc_ok[j]) == 0;
			ok = ok || strncmp(k, "fs.mqueue.", 10) == 0;
		}
		if (!a->host_mode && strncmp(k, "net.", 4) == 0)
			ok = true;
		if (!ok)
			return husk_error(err, HUSK_E_INVALID,
					  "spec.linux.sysctl.%s: not a namespaced sysctl of this container",
					  k);
	}
	return 0;
}

static struct container *ct_new(struct agent *a, const char *id,
				const struct spec *s)
{
	struct container *ct = husk_xcalloc(1, sizeof(*ct));

	ct->a = a;
	ct->id = husk_xstrdup(id);
	ct->ns_flags = s->ns_flags;
	ct->personality = s->has_personality ? (long)s->personality : -1;
	ct->init = proc_new(ct, "");
	ct->procs = ct->init;
	return ct;
}

/* An init that will not be: killed and reaped now, before its
 * container (and cgroup) goes. */
static void kill_reap(struct agent *a, struct proc *p)
{
	int st;

	if (p->pid <= 0 || p->exited)
		return;
	kill(p->pid, SIGKILL);
	if (waitpid(p->pid, &st, 0) == p->pid)
		ct_reaped(a, p->pid, st);
}

/* The init reported: built (r 1), or not. */
static bool create_done(struct proc *p, int r, const struct husk_err *e,
			bool cancelled, void *arg)
{
	struct rpc_wait *w = arg;
	struct agent *a = w->a;
	struct agent_core *core = a->core;
	struct container *ct = p->ct;
	bool alive = !cancelled;

	if (cancelled) {
		rpc_wait_fail(w, e);
	} else if (r != 1) {
		struct husk_err *e2 = NULL;

		if (r == 0)
			husk_error(&e2, HUSK_E_INTERNAL, "container init "
				   "exited before it was built");
		rpc_wait_fail(w, e2 ? e2 : e);
		husk_err_free(e2);
		kill_reap(a, p);
		ct_free(a, ct);
		alive = false;
	} else {
		if (core->shared_pid_ns && core->sandbox_pidns_fd < 0 &&
		    (ct->ns_flags & CLONE_NEWPID) && !ct->joined_pidns) {
			char path[64];

			snprintf(path, sizeof(path), "/proc/%d/ns/pid",
				 (int)p->pid);
			core->sandbox_pidns_fd = open(path,
						      O_RDONLY | O_CLOEXEC);
		}
		ct->state = CT_CREATED;
		log_info("%s: container %s, init pid %d", __func__, ct->id,
			 (int)p->pid);
		rpc_wait_pid(w, p->pid);
	}
	rpc_wait_free(w);
	return alive;
}

/* Build the container and clone its init; create_done answers. */
static int create_ct(struct agent *a, const char *id,
		     const msgpack_object *spec_obj, struct rpc_wait *w,
		     struct husk_err **err)
{
	struct agent_core *core = a->core;
	struct spec *s = NULL;
	struct container *ct;
	struct spawn sp = { 0 };
	cleanup_free char *cgname = NULL;
	cleanup_err struct husk_err *oerr = NULL;
	int r = -1;

	if (husk_id_validate(id, "params.container_id", err) < 0)
		return -1;
	if (ct_find(a, id))
		return husk_error(err, HUSK_E_EXISTS,
				  "container %s already exists", id);
	if (spec_decode(spec_obj, &s, err) < 0 || check_sysctls(a, s, err) < 0)
		goto out;
	proc_log_notes(id, s->notes);
	proc_log_notes(id, s->proc.notes);
	ct = ct_new(a, id, s);
	cgname = husk_xasprintf("%s/%s/%s", core->cgroup_root,
				core->sandbox_id, id);
	if (cg_create(cgname, s->has_resources ? &s->res : NULL, &ct->cg,
		      err) < 0)
		goto fail;
	if (oom_watch_start(a, ct, &oerr) < 0)
		log_warnx("container %s: OOM kills not watched: %s", id,
			  oerr->msg);
	if (s->seccomp &&
	    oci_seccomp_build(s->seccomp, &ct->filter, err) < 0)
		goto fail;
	sp.ct = ct;
	sp.spec = s;
	sp.proc = &s->proc;
	sp.filter = ct->filter;
	sp.p = ct->init;
	ct->next = core->containers;
	core->containers = ct;
	if (spawn_init(a, &sp, create_done, w, err) < 0) {
		kill_reap(a, ct->init);
		goto fail;
	}
	r = 0;
	goto out;
fail:
	ct_free(a, ct);
out:
	spec_free(s);
	return r;
}

int agent_m_create_container(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct agent *a = arg;
	struct rpc_wait *w;

	if (!a->core->sandbox)
		return husk_error(err, HUSK_E_STATE,
				  "no sandbox: call create_sandbox first");
	w = rpc_wait_new(a, c, m, husk_xasprintf("create container %s",
						 p->container_id));
	if (create_ct(a, p->container_id, p->spec, w, err) < 0) {
		rpc_wait_fail(w, *err);
		husk_err_free(*err);
		*err = NULL;
		rpc_wait_free(w);
	}
	return 0;
}

/* The init's execve went through (r 0), or not. */
static bool start_done(struct proc *p, int r, const struct husk_err *e,
		       bool cancelled, void *arg)
{
	struct rpc_wait *w = arg;

	if (p->sync_fd >= 0)
		close(p->sync_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->sync_fd = p->err_fd = -1;
	if (cancelled || r < 0) {
		rpc_wait_fail(w, e);
	} else if (r != 0) {
		struct husk_err *e2 = NULL;

		husk_error(&e2, HUSK_E_INTERNAL, "process %d reported twice",
			   (int)p->pid);
		rpc_wait_fail(w, e2);
		husk_err_free(e2);
		kill(p->pid, SIGKILL);
	} else {
		if (p->ct->state == CT_CREATED)
			p->ct->state = CT_RUNNING;
		if (!ipc_conn_closed(w->c))
			ipc_reply_ok(w->c, w->msgid);
	}
	rpc_wait_free(w);
	return true;
}

int agent_m_start_container(struct ipc_conn *c, struct ipc_msg *m,
			    void *params, void *arg, struct husk_err **err)
{
	struct container *ct = ct_lookup(arg, params, err);
	struct rpc_wait *w;

	if (!ct)
		return -1;
	if (ct->state != CT_CREATED)
		return husk_error(err, HUSK_E_STATE,
				  "container %s is not in the created state",
				  ct->id);
	w = rpc_wait_new(arg, c, m, husk_xasprintf("start container %s",
						   ct->id));
	if (spawn_start(ct->init, start_done, w, err) < 0) {
		rpc_wait_fail(w, *err);
		husk_err_free(*err);
		*err = NULL;
		rpc_wait_free(w);
	}
	return 0;
}

int agent_m_remove_container(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct container *ct = ct_lookup(arg, p, err);

	if (!ct || ct_remove(arg, ct, p->force, err) < 0)
		return -1;
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static int pause_resume(struct ipc_conn *c, struct ipc_msg *m,
			const struct ct_params *p, struct agent *a,
			bool pause, struct husk_err **err)
{
	struct container *ct = ct_lookup(a, p, err);

	if (!ct)
		return -1;
	if (ct->state != (pause ? CT_RUNNING : CT_PAUSED))
		return husk_error(err, HUSK_E_STATE, "container %s is not %s",
				  ct->id, pause ? "running" : "paused");
	if (cg_freeze(ct->cg, pause, err) < 0)
		return -1;
	ct->state = pause ? CT_PAUSED : CT_RUNNING;
	ipc_reply_ok(c, m->msgid);
	return 0;
}

int agent_m_pause_container(struct ipc_conn *c, struct ipc_msg *m,
			    void *params, void *arg, struct husk_err **err)
{
	return pause_resume(c, m, params, arg, true, err);
}

int agent_m_resume_container(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	return pause_resume(c, m, params, arg, false, err);
}

int agent_m_update_container(struct ipc_conn *c, struct ipc_msg *m,
			     void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct container *ct = ct_lookup(arg, p, err);
	struct cg_resources r;
	int rc = -1;

	if (!ct)
		return -1;
	cg_resources_init(&r);
	if (cg_resources_decode(p->resources, &r, err) < 0) {
		husk_error_wrap(err, "params.resources");
		goto out;
	}
	/* Device rules are the container's from its spec (with its
	 * linux.devices, which an update does not carry); runc's update
	 * leaves them too. */
	if (r.ndevice_rules) {
		log_info("container %s: update: linux.resources.devices: kept "
			 "as created; not applied", ct->id);
		r.ndevice_rules = 0;
	}
	if (cg_update(ct->cg, &r, err) < 0)
		goto out;
	ipc_reply_ok(c, m->msgid);
	rc = 0;
out:
	cg_resources_free(&r);
	return rc;
}

/* Pack into a scratch buffer first, so that a failure half-way still
 * gives a well-formed error reply. */
static void reply_packed(struct ipc_conn *c, uint32_t msgid,
			 const char *key, msgpack_sbuffer *sb)
{
	msgpack_packer *pk = ipc_reply_begin(c, msgid);

	if (key) {
		msgpack_pack_map(pk, 1);
		ipc_pack_key(pk, key);
	}
	pk->callback(pk->data, sb->data, sb->size);
	ipc_reply_send(c);
}

int agent_m_stats_container(struct ipc_conn *c, struct ipc_msg *m,
			    void *params, void *arg, struct husk_err **err)
{
	struct container *ct = ct_lookup(arg, params, err);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc = -1;

	if (!ct)
		return -1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (cg_stats_pack(ct->cg, &pk, err) == 0) {
		reply_packed(c, m->msgid, NULL, &sb);
		rc = 0;
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int agent_m_list_processes(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err)
{
	struct container *ct = ct_lookup(arg, params, err);
	cleanup_free pid_t *pids = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n = 0;
	int rc = 0;

	if (!ct || cg_pids(ct->cg, &pids, &n, err) < 0)
		return -1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (procinfo_pack(&pk, pids, n) < 0)
		rc = husk_error(err, HUSK_E_SYSTEM,
				"read the processes of %s", ct->id);
	else
		reply_packed(c, m->msgid, "processes", &sb);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}
