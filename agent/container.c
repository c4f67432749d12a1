/*
 * The sandbox and its containers: the method handlers of
 * docs/agent-protocol.md ("Sandbox", "Containers", exec and signals),
 * the container records, and the dispatch of reaped children to them.
 */
#include <arpa/inet.h>
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

/* Everything the container methods take; each handler's table says
 * which members it reads. */
struct params {
	char *sandbox_id;
	char *hostname;
	char **dns;
	bool shared_pid_ns;
	bool poweroff;
	char *container_id;
	char *exec_id;
	const msgpack_object *spec;
	const msgpack_object *process;
	const msgpack_object *resources;
	bool force;
	bool all;
	int64_t signal;
};

#define P(m) offsetof(struct params, m)
#define F_CID { "container_id", IPC_F_STR, IPC_REQUIRED, P(container_id), 0, HUSK_ID_MAX }
#define F_EID { "exec_id", IPC_F_STR, IPC_REQUIRED, P(exec_id), 0, HUSK_ID_MAX }
#define F_END { NULL, 0, 0, 0, 0, 0 }

static const struct ipc_field f_sandbox[] = {
	{ "sandbox_id", IPC_F_STR, IPC_REQUIRED, P(sandbox_id), 0, HUSK_ID_MAX },
	{ "hostname", IPC_F_STR, IPC_NULLABLE, P(hostname), 0, 64 },
	{ "dns", IPC_F_STRV, IPC_NULLABLE, P(dns), 64, 16 },
	{ "shared_pid_ns", IPC_F_BOOL, IPC_NULLABLE, P(shared_pid_ns), 0, 0 },
	F_END,
};
static const struct ipc_field f_destroy[] = {
	{ "poweroff", IPC_F_BOOL, IPC_NULLABLE, P(poweroff), 0, 0 },
	F_END,
};
static const struct ipc_field f_create[] = {
	F_CID,
	{ "spec", IPC_F_MAP, IPC_REQUIRED, P(spec), 0, 1024 },
	F_END,
};
static const struct ipc_field f_cid[] = { F_CID, F_END };
static const struct ipc_field f_remove[] = {
	F_CID,
	{ "force", IPC_F_BOOL, IPC_NULLABLE, P(force), 0, 0 },
	F_END,
};
static const struct ipc_field f_update[] = {
	F_CID,
	{ "resources", IPC_F_MAP, IPC_REQUIRED, P(resources), 0, 1024 },
	F_END,
};
static const struct ipc_field f_proc[] = { F_CID, F_EID, F_END };
static const struct ipc_field f_exec[] = {
	F_CID, F_EID,
	{ "process", IPC_F_MAP, IPC_REQUIRED, P(process), 0, 1024 },
	F_END,
};
static const struct ipc_field f_signal[] = {
	F_CID, F_EID,
	/* 0 checks that the process is there, as kill(2)'s does. */
	{ "signal", IPC_F_INT64, IPC_REQUIRED, P(signal), 0, 64 },
	{ "all", IPC_F_BOOL, IPC_NULLABLE, P(all), 0, 0 },
	F_END,
};

/* Decode params; on failure answer and return -1. */
static int decode(struct ipc_conn *c, struct ipc_msg *m,
		  const struct ipc_field *f, struct params *p)
{
	struct husk_err *err = NULL;

	memset(p, 0, sizeof(*p));
	if (ipc_decode(m->params, f, p, &err) < 0) {
		ipc_reply_err(c, m->msgid, err);
		husk_err_free(err);
		return -1;
	}
	return 0;
}

static void reply_err(struct ipc_conn *c, uint32_t msgid,
		      struct husk_err *err)
{
	ipc_reply_err(c, msgid, err);
	husk_err_free(err);
}

/* A request answered once a child has reported (spawn_done_fn). */
struct rpc_wait {
	struct agent *a;
	struct ipc_conn *c;     /* referenced */
	uint32_t msgid;
	char *what;             /* "create container c1": errors start so */
};

static struct rpc_wait *rpc_wait_new(struct agent *a, struct ipc_conn *c,
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

static void rpc_wait_free(struct rpc_wait *w)
{
	ipc_conn_unref(w->c);
	free(w->what);
	free(w);
}

static void rpc_wait_fail(struct rpc_wait *w, const struct husk_err *e)
{
	struct husk_err *e2 = NULL;

	if (ipc_conn_closed(w->c))
		return;
	husk_error(&e2, e ? e->code : HUSK_E_INTERNAL, "%s: %s", w->what,
		   e && e->msg ? e->msg : "failed");
	reply_err(w->c, w->msgid, e2);
}

static void rpc_wait_pid(struct rpc_wait *w, pid_t pid)
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

/* The container named by params, answering the error when there is
 * none. */
static struct container *lookup(struct agent *a, struct ipc_conn *c,
				struct ipc_msg *m, const struct params *p)
{
	struct container *ct;

	if (!a->core->sandbox) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"no sandbox: call create_sandbox first");
		return NULL;
	}
	ct = ct_find(a, p->container_id);
	if (!ct)
		ipc_reply_error(c, m->msgid, HUSK_E_NOT_FOUND,
				"container %s: no such container",
				p->container_id);
	return ct;
}

struct proc *ct_lookup_proc(struct agent *a, struct ipc_conn *c,
			    struct ipc_msg *m)
{
	struct params p;
	struct container *ct;
	struct proc *pr = NULL;

	if (decode(c, m, f_proc, &p) < 0)
		return NULL;
	ct = lookup(a, c, m, &p);
	if (ct) {
		pr = ct_proc(ct, p.exec_id);
		if (!pr)
			ipc_reply_error(c, m->msgid, HUSK_E_NOT_FOUND,
					"process %s/%s: no such process",
					ct->id, p.exec_id);
	}
	ipc_decode_free(f_proc, &p);
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

static bool ct_alive(struct container *ct)
{
	for (struct proc *p = ct->procs; p; p = p->next)
		if (p->pid > 0 && !p->exited)
			return true;
	return false;
}

static void ct_kill_all(struct container *ct, int sig)
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

static void ct_free(struct agent *a, struct container *ct)
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
	if (ct->cg && cg_destroy(ct->cg, &err) < 0) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
	}
	if (ct->filter)
		seccomp_release(ct->filter);
	free(ct->id);
	free(ct);
}

static int remove_ct(struct agent *a, struct container *ct, bool force,
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
/* sandbox                                                             */

static char *run_dir(struct agent *a)
{
	return a->host_mode ?
	       husk_xasprintf("%s/.husk-agent-sandbox", a->shared_dir) :
	       husk_xstrdup("/run/husk/sandbox");
}

static int write_resolv(struct agent *a, char **dns, struct husk_err **err)
{
	cleanup_free char *dir = run_dir(a), *text = husk_xstrdup("");
	unsigned char buf[16];
	int fd;

	for (int i = 0; dns[i]; i++) {
		char *t;

		if (inet_pton(AF_INET, dns[i], buf) != 1 &&
		    inet_pton(AF_INET6, dns[i], buf) != 1)
			return husk_error(err, HUSK_E_INVALID,
					  "params.dns[%d]: \"%s\" is not an IP address",
					  i, dns[i]);
		t = husk_xasprintf("%snameserver %s\n", text, dns[i]);
		free(text);
		text = t;
	}
	if (husk_mkdir_p(dir, 0755, err) < 0)
		return -1;
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open %s", dir);
	if (husk_write_atomic(fd, "resolv.conf", text, strlen(text), 0644,
			      err) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	a->core->resolv_conf = husk_xasprintf("%s/resolv.conf", dir);
	return 0;
}

void ct_m_create_sandbox(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct agent *a = arg;
	struct agent_core *core = a->core;
	struct husk_err *err = NULL;
	struct params p;

	if (decode(c, m, f_sandbox, &p) < 0)
		return;
	if (core->sandbox) {
		ipc_reply_error(c, m->msgid, HUSK_E_EXISTS,
				"sandbox %s already exists", core->sandbox_id);
		goto out;
	}
	if (husk_id_validate(p.sandbox_id, "params.sandbox_id", &err) < 0)
		goto fail;
	if (p.hostname && p.hostname[0] && !a->host_mode &&
	    sethostname(p.hostname, strlen(p.hostname)) < 0) {
		husk_error_sys(&err, errno, "sethostname %s", p.hostname);
		goto fail;
	}
	if (p.dns && p.dns[0] && write_resolv(a, p.dns, &err) < 0)
		goto fail;
	core->sandbox = true;
	core->sandbox_id = husk_steal_ptr(p.sandbox_id);
	core->shared_pid_ns = p.shared_pid_ns;
	log_info("%s: sandbox %s", __func__, core->sandbox_id);
	ipc_reply_ok(c, m->msgid);
	goto out;
fail:
	reply_err(c, m->msgid, err);
out:
	ipc_decode_free(f_sandbox, &p);
}

static void poweroff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	struct ipc_conn *c = agent_conn(a);

	/* Power off once the reply has left, or after a second anyway. */
	if (c && ipc_conn_queued(c) > 0 && w->repeat < 1.0) {
		w->repeat += 0.01;
		ev_timer_again(loop, w);
		return;
	}
	init_poweroff();
}

/* Seconds the containers get between SIGTERM and the power-off: well
 * inside the driver's default stop timeout (5 s). */
#define POWERDOWN_GRACE_MS 3000

static void powerdown_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	struct agent_core *core = a->core;
	bool alive = false;

	for (struct container *ct = core->containers; ct; ct = ct->next)
		alive |= ct_alive(ct);
	if (alive && husk_now_ms() < core->powerdown_deadline)
		return;
	ev_timer_stop(loop, w);
	while (core->containers) {
		struct husk_err *err = NULL;

		if (remove_ct(a, core->containers, true, &err) < 0) {
			log_warnx("%s: %s", __func__, err->msg);
			husk_err_free(err);
			break;
		}
	}
	log_info("%s: powering off", __func__);
	init_poweroff();
}

void ct_powerdown(struct agent *a)
{
	struct agent_core *core = a->core;
	int n = 0;

	if (core->powerdown_deadline)
		return;         /* pressed again: already going */
	core->powerdown_deadline = husk_now_ms() + POWERDOWN_GRACE_MS;
	for (struct container *ct = core->containers; ct; ct = ct->next) {
		if (ct->state == CT_PAUSED) {
			cg_freeze(ct->cg, false, NULL);
			ct->state = CT_RUNNING;
		}
		ct_kill_all(ct, SIGTERM);
		n++;
	}
	log_info("%s: SIGTERM to %d container(s), power-off in %d ms at "
		 "most", __func__, n, n ? POWERDOWN_GRACE_MS : 0);
	ev_timer_init(&core->powerdown_w, powerdown_cb, 0., 0.05);
	core->powerdown_w.data = a;
	ev_timer_again(core->loop, &core->powerdown_w);
}

void ct_m_destroy_sandbox(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct agent *a = arg;
	struct agent_core *core = a->core;
	struct husk_err *err = NULL;
	struct params p;

	if (decode(c, m, f_destroy, &p) < 0)
		return;
	while (core->containers) {
		if (remove_ct(a, core->containers, true, &err) < 0) {
			reply_err(c, m->msgid, err);
			return;
		}
	}
	if (core->resolv_conf) {
		unlink(core->resolv_conf);
		free(core->resolv_conf);
		core->resolv_conf = NULL;
	}
	if (core->sandbox_pidns_fd >= 0)
		close(core->sandbox_pidns_fd);
	core->sandbox_pidns_fd = -1;
	free(core->sandbox_id);
	core->sandbox_id = NULL;
	core->sandbox = false;
	core->shared_pid_ns = false;
	ipc_reply_ok(c, m->msgid);
	if (p.poweroff && !a->host_mode) {
		log_info("%s: powering off", __func__);
		ev_timer_init(&core->poweroff_w, poweroff_cb, 0., 0.01);
		core->poweroff_w.data = a;
		ev_timer_again(core->loop, &core->poweroff_w);
	}
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

void ct_m_create_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct agent *a = arg;
	struct husk_err *err = NULL;
	struct rpc_wait *w;
	struct params p;

	if (decode(c, m, f_create, &p) < 0)
		return;
	if (!a->core->sandbox) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"no sandbox: call create_sandbox first");
		goto out;
	}
	w = rpc_wait_new(a, c, m, husk_xasprintf("create container %s",
						 p.container_id));
	if (create_ct(a, p.container_id, p.spec, w, &err) < 0) {
		rpc_wait_fail(w, err);
		husk_err_free(err);
		rpc_wait_free(w);
	}
out:
	ipc_decode_free(f_create, &p);
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

void ct_m_start_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct container *ct;
	struct params p;

	if (decode(c, m, f_cid, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (!ct)
		goto out;
	if (ct->state != CT_CREATED) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"container %s is not in the created state",
				ct->id);
	} else {
		struct rpc_wait *w = rpc_wait_new(arg, c, m, husk_xasprintf(
			"start container %s", ct->id));

		if (spawn_start(ct->init, start_done, w, &err) < 0) {
			rpc_wait_fail(w, err);
			husk_err_free(err);
			rpc_wait_free(w);
		}
	}
out:
	ipc_decode_free(f_cid, &p);
}

void ct_m_remove_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct container *ct;
	struct params p;

	if (decode(c, m, f_remove, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (ct && remove_ct(arg, ct, p.force, &err) < 0)
		reply_err(c, m->msgid, err);
	else if (ct)
		ipc_reply_ok(c, m->msgid);
	ipc_decode_free(f_remove, &p);
}

static void pause_resume(struct ipc_conn *c, struct ipc_msg *m, void *arg,
			 bool pause)
{
	struct husk_err *err = NULL;
	struct container *ct;
	struct params p;

	if (decode(c, m, f_cid, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (!ct)
		goto out;
	if (ct->state != (pause ? CT_RUNNING : CT_PAUSED)) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"container %s is not %s", ct->id,
				pause ? "running" : "paused");
	} else if (cg_freeze(ct->cg, pause, &err) < 0) {
		reply_err(c, m->msgid, err);
	} else {
		ct->state = pause ? CT_PAUSED : CT_RUNNING;
		ipc_reply_ok(c, m->msgid);
	}
out:
	ipc_decode_free(f_cid, &p);
}

void ct_m_pause_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	pause_resume(c, m, arg, true);
}

void ct_m_resume_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	pause_resume(c, m, arg, false);
}

void ct_m_update_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct cg_resources r;
	struct container *ct;
	struct params p;

	if (decode(c, m, f_update, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (!ct)
		goto out;
	cg_resources_init(&r);
	if (cg_resources_decode(p.resources, &r, &err) < 0) {
		husk_error_wrap(&err, "params.resources");
		reply_err(c, m->msgid, err);
		goto done;
	}
	/* Device rules are the container's from its spec (with its
	 * linux.devices, which an update does not carry); runc's update
	 * leaves them too. */
	if (r.ndevice_rules) {
		log_info("container %s: update: linux.resources.devices: kept "
			 "as created; not applied", ct->id);
		r.ndevice_rules = 0;
	}
	if (cg_update(ct->cg, &r, &err) < 0) {
		reply_err(c, m->msgid, err);
	} else {
		ipc_reply_ok(c, m->msgid);
	}
done:
	cg_resources_free(&r);
out:
	ipc_decode_free(f_update, &p);
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

void ct_m_stats_container(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct container *ct;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct params p;

	if (decode(c, m, f_cid, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (ct) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (cg_stats_pack(ct->cg, &pk, &err) < 0)
			reply_err(c, m->msgid, err);
		else
			reply_packed(c, m->msgid, NULL, &sb);
		msgpack_sbuffer_destroy(&sb);
	}
	ipc_decode_free(f_cid, &p);
}

void ct_m_list_processes(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct container *ct;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct params p;
	pid_t *pids = NULL;
	size_t n = 0;

	if (decode(c, m, f_cid, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (ct && cg_pids(ct->cg, &pids, &n, &err) < 0) {
		reply_err(c, m->msgid, err);
	} else if (ct) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (procinfo_pack(&pk, pids, n) < 0)
			ipc_reply_error(c, m->msgid, HUSK_E_SYSTEM,
					"read the processes of %s", ct->id);
		else
			reply_packed(c, m->msgid, "processes", &sb);
		msgpack_sbuffer_destroy(&sb);
	}
	free(pids);
	ipc_decode_free(f_cid, &p);
}

/* The exec's execve went through (r 0), or not (the record stays until
 * its child is reaped, and goes with remove_container). */
static bool exec_done(struct proc *p, int r, const struct husk_err *e,
		      bool cancelled, void *arg)
{
	struct rpc_wait *w = arg;

	if (p->err_fd >= 0)
		close(p->err_fd);
	p->err_fd = -1;
	if (cancelled || r < 0) {
		rpc_wait_fail(w, e);
	} else if (r != 0) {
		struct husk_err *e2 = NULL;

		husk_error(&e2, HUSK_E_INTERNAL, "process %d reported ready",
			   (int)p->pid);
		rpc_wait_fail(w, e2);
		husk_err_free(e2);
		kill(p->pid, SIGKILL);
	} else {
		rpc_wait_pid(w, p->pid);
	}
	rpc_wait_free(w);
	return true;
}

void ct_m_exec_process(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct husk_err *err = NULL;
	struct spec_process sproc;
	struct spawn sp = { 0 };
	struct container *ct;
	struct rpc_wait *w;
	struct proc *pr;
	struct params p;

	if (decode(c, m, f_exec, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (!ct)
		goto out;
	if (!p.exec_id[0] ||
	    husk_id_validate(p.exec_id, "params.exec_id", &err) < 0) {
		if (!err)
			husk_error(&err, HUSK_E_INVALID,
				   "params.exec_id: empty (\"\" is the init)");
		reply_err(c, m->msgid, err);
		goto out;
	}
	if (ct_proc(ct, p.exec_id)) {
		ipc_reply_error(c, m->msgid, HUSK_E_EXISTS,
				"process %s/%s already exists", ct->id,
				p.exec_id);
		goto out;
	}
	/* A created container's namespaces and root are built (its init
	 * waits before execve): runc execs into it too. */
	if (ct->state != CT_RUNNING && ct->state != CT_CREATED) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"container %s is %s", ct->id,
				ct->state == CT_PAUSED ? "paused" :
				"not running");
		goto out;
	}
	if (spec_process_decode(p.process, "params.process", &sproc,
				&err) < 0) {
		reply_err(c, m->msgid, err);
		goto out;
	}
	proc_log_notes(ct->id, sproc.notes);
	pr = proc_new(ct, p.exec_id);
	sp.ct = ct;
	sp.proc = &sproc;
	sp.filter = ct->filter;
	sp.p = pr;
	pr->next = ct->init->next;
	ct->init->next = pr;
	w = rpc_wait_new(arg, c, m, husk_xasprintf("exec in %s", ct->id));
	if (spawn_exec(arg, &sp, exec_done, w, &err) < 0) {
		rpc_wait_fail(w, err);
		husk_err_free(err);
		rpc_wait_free(w);
		/* Keep the record until its child is reaped: it is gone
		 * with remove_container like any exec. */
		if (pr->pid <= 0) {
			ct->init->next = pr->next;
			proc_free(pr);
		}
	}
	spec_process_free(&sproc);
out:
	ipc_decode_free(f_exec, &p);
}

void ct_m_signal_process(struct ipc_conn *c, struct ipc_msg *m, void *arg)
{
	struct container *ct;
	struct proc *pr = NULL;
	struct params p;

	if (decode(c, m, f_signal, &p) < 0)
		return;
	ct = lookup(arg, c, m, &p);
	if (!ct)
		goto out;
	pr = ct_proc(ct, p.exec_id);
	if (!pr) {
		ipc_reply_error(c, m->msgid, HUSK_E_NOT_FOUND,
				"process %s/%s: no such process", ct->id,
				p.exec_id);
	} else if (p.all) {
		ct_kill_all(ct, (int)p.signal);
		ipc_reply_ok(c, m->msgid);
	} else if (pr->exited || pr->pid <= 0) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE,
				"process %s/%s has exited", ct->id, p.exec_id);
	} else if (kill(pr->pid, (int)p.signal) < 0) {
		ipc_reply_error(c, m->msgid, HUSK_E_SYSTEM, "kill %d: %s",
				(int)pr->pid, strerror(errno));
	} else {
		ipc_reply_ok(c, m->msgid);
	}
out:
	ipc_decode_free(f_signal, &p);
}
