/*
 * A container's life on the host: create (sandbox or a place in a pod's
 * sandbox, share its files, create it in the guest, start its shim),
 * start, and destroy (whatever state it is in and whatever died first).
 * Used by the CLI verbs and, later, the containerd shim.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "libhusk/spawn.h"
#include "libhusk/util.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"

/* CRI annotations that put a container into an existing sandbox. */
static const struct {
	const char *type_key, *sandbox_key;
} cri_keys[] = {
	{ "io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-id" },
	{ "io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.SandboxID" },
};

int husk_pod_membership(const json_t *spec, const char *id, char **sid,
			struct husk_err **err)
{
	for (size_t i = 0; i < sizeof(cri_keys) / sizeof(cri_keys[0]); i++) {
		const char *type = husk_spec_annotation(spec,
							cri_keys[i].type_key);
		const char *sb = husk_spec_annotation(spec,
						      cri_keys[i].sandbox_key);

		if (!type)
			continue;
		if (!strcmp(type, "sandbox")) {
			*sid = husk_xstrdup(id);
			return 0;
		}
		if (strcmp(type, "container"))
			return husk_error(err, HUSK_E_INVALID, "annotation %s: "
					  "'%s' is neither sandbox nor "
					  "container", cri_keys[i].type_key,
					  type);
		if (!sb || !*sb)
			return husk_error(err, HUSK_E_INVALID, "annotation %s "
					  "is container but %s is missing",
					  cri_keys[i].type_key,
					  cri_keys[i].sandbox_key);
		if (husk_id_validate(sb, "sandbox id", err) < 0)
			return -1;
		*sid = husk_xstrdup(sb);
		return 0;
	}
	*sid = husk_xstrdup(id);
	return 0;
}

static char *now_rfc3339(void)
{
	struct timespec ts;
	struct tm tm;
	char buf[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return husk_xasprintf("%s.%09ldZ", buf, ts.tv_nsec);
}

/* How long the shim has to connect to the proxy and subscribe (it
 * retries the connection for 10 s itself). */
#define SHIM_READY_MS 30000

/*
 * Wait for the shim's ready line: "ok" once it relays, else the reason
 * it failed.  So a create that returns success has a shim that holds
 * the terminal or the stdio, and a failing one says why.
 */
static int shim_wait_ready(pid_t pid, int fd, struct husk_err **err)
{
	char buf[512];
	size_t have = 0;
	uint64_t deadline = husk_now_ms() + SHIM_READY_MS;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t now = husk_now_ms();
		ssize_t n;
		int r;

		if (now >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return husk_error(err, HUSK_E_TIMEOUT, "the shim did not "
					  "get ready within %d s",
					  SHIM_READY_MS / 1000);
		}
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return husk_error_sys(err, errno, "poll the shim");
		if (r <= 0)
			continue;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (have += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	buf[have] = '\0';
	if (!strcmp(buf, "ok\n"))
		return 0;
	/* It failed and is leaving (or died without a word). */
	waitpid(pid, NULL, 0);
	buf[strcspn(buf, "\n")] = '\0';
	return husk_error(err, HUSK_E_UNAVAILABLE, "husk-shim: %s",
			  *buf ? buf : "exited before it was ready");
}

/*
 * The shim is a child of the creating command (not a daemon): when the
 * command exits it is reparented to the caller's subreaper (containerd's
 * shim, for example), which then reaps it and gets the container's exit
 * status, as with runc's init process.  Without a console socket it
 * keeps our stdio, as runc's init does; with one it keeps none of it.
 * We return once it relays.
 */
static pid_t spawn_shim(const struct husk_config *cfg, const char *proxy,
			const char *cid, const char *eid, bool terminal,
			const char *console, const int *stdio,
			const char *netns, const char *log,
			struct husk_err **err)
{
	char *argv[18], readyarg[16];
	struct husk_exec x = {
		.argv = argv,
		/* The caller's stdio, and the ready pipe. */
		.in_fd = HUSK_FD_INHERIT,
		.out_fd = HUSK_FD_INHERIT,
		.stdio = stdio,
		.nfds = 1,
		.reap_on_error = true,
		.netns = netns,
	};
	int n = 0, ready[2];
	ssize_t r;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return husk_error_sys(err, errno, "pipe");
	snprintf(readyarg, sizeof(readyarg), "%d", ready[1]);
	argv[n++] = cfg->shim_path;
	argv[n++] = "--proxy";
	argv[n++] = (char *)proxy;
	argv[n++] = "--container";
	argv[n++] = (char *)cid;
	if (eid && *eid) {
		argv[n++] = "--exec-id";
		argv[n++] = (char *)eid;
	}
	if (terminal)
		argv[n++] = "--terminal";
	if (console) {
		argv[n++] = "--console-socket";
		argv[n++] = (char *)console;
	}
	argv[n++] = "--log";
	argv[n++] = (char *)log;
	argv[n++] = "--ready-fd";
	argv[n++] = readyarg;
	argv[n] = NULL;
	x.fds = &ready[1];
	pid = husk_fork_exec(&x, err);
	close(ready[1]);
	if (pid < 0) {
		close(ready[0]);
		return -1;
	}
	r = shim_wait_ready(pid, ready[0], err);
	close(ready[0]);
	return r < 0 ? -1 : pid;
}

pid_t husk_shim_start(const struct husk_config *cfg, const char *root,
		      const char *sid, const char *cid, const char *eid,
		      bool terminal, const char *console,
		      struct husk_err **err)
{
	return husk_shim_start_io(cfg, root, sid, cid, eid, terminal, console,
				  NULL, err);
}

/* A shim in network namespace netns (NULL: ours). */
static pid_t shim_start(const struct husk_config *cfg, const char *root,
			const char *sid, const char *cid, const char *eid,
			bool terminal, const char *console, const int *stdio,
			const char *netns, struct husk_err **err)
{
	struct husk_sbx_paths p;
	cleanup_free char *log = NULL;
	pid_t pid;

	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		return -1;
	log = husk_xasprintf("%s/shim-%s%s%s.log", p.dir, cid,
			     eid && *eid ? "-" : "", eid ? eid : "");
	pid = spawn_shim(cfg, p.proxy_sock, cid, eid, terminal, console, stdio,
			 netns, log, err);
	husk_sandbox_paths_free(&p);
	return pid;
}

pid_t husk_shim_start_io(const struct husk_config *cfg, const char *root,
			 const char *sid, const char *cid, const char *eid,
			 bool terminal, const char *console, const int *stdio,
			 struct husk_err **err)
{
	return shim_start(cfg, root, sid, cid, eid, terminal, console, stdio,
			  NULL, err);
}

static int agent_call(const char *root, const char *sid, const char *method,
		      json_t *params, int timeout_ms, json_t **res,
		      struct husk_err **err)
{
	struct husk_sbx_paths p;
	int rc;

	if (husk_sandbox_paths(root, sid, &p, err) < 0) {
		json_decref(params);
		return -1;
	}
	rc = husk_rpc_call(p.proxy_sock, PROXY_COMPONENT, method, params,
			   timeout_ms, res, NULL, 0, err);
	json_decref(params);
	husk_sandbox_paths_free(&p);
	return rc;
}

int husk_agent_call(const char *root, const char *sid, const char *method,
		    json_t *params, int timeout_ms, json_t **res,
		    struct husk_err **err)
{
	return agent_call(root, sid, method, params, timeout_ms, res, err);
}

static int write_pid_file(const char *path, pid_t pid, struct husk_err **err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", (int)pid);

	if (husk_write_atomic(AT_FDCWD, path, buf, (size_t)n, 0644, err) < 0)
		return husk_error_wrap(err, "pid file");
	return 0;
}

/* How ct_destroy goes about it. */
enum {
	/* the sandbox's VM goes next: what the container added to it, and
	 * the container in the guest, are not worth giving back */
	CT_VM_GOING = 1,
	/* the caller asked the agent's remove_container itself */
	CT_AGENT_DONE = 2,
};

static int ct_destroy(struct husk_store *st, const struct husk_config *cfg,
		      struct husk_entry *e, struct husk_container *c,
		      bool force, int how, struct husk_err **err);

/* The end of a create once the guest has the container: its husk-shim,
 * the spec's cgroup, the hooks, for the sandbox's own container its
 * network, status created; e locked exclusively.  On failure the
 * caller destroys what there is. */
static int create_tail(struct husk_store *st, const struct husk_config *cfg,
		       struct husk_entry *e, struct husk_container *c,
		       const struct husk_bundle *b, struct husk_sandbox *sb,
		       bool terminal, const struct husk_create_opts *o,
		       struct husk_err **err)
{
	json_t *state;
	int rc;

	/* The container's pid is in the sandbox's network namespace, as a
	 * runc container's is: a hook that finds the namespace through
	 * /proc/PID/ns/net (docker's libnetwork-setkey) finds this one. */
	c->shim.pid = shim_start(cfg, st->root, c->sandbox_id, c->id, "",
				 terminal, o->console_socket, o->stdio,
				 sb->netns, err);
	if (c->shim.pid < 0) {
		c->shim.pid = 0;
		return -1;
	}
	husk_proc_ref(c->shim.pid, &c->shim);
	if (o->shim_pid)
		*o->shim_pid = c->shim.pid;
	c->cgroups = json_array();
	if (husk_cgroup_enter(json_string_value(json_object_get(
			json_object_get(b->spec, "linux"), "cgroupsPath")),
			      c->shim.pid, c->cgroups, err) < 0)
		return -1;
	if (husk_container_write(e, c, err) < 0)
		return -1;
	if (o->pid_file && write_pid_file(o->pid_file, c->shim.pid, err) < 0)
		return -1;

	/* As runc 1.1 runs them: all three see "creating" and the
	 * container's pid; prestart and createRuntime in the bundle and the
	 * sandbox's network namespace, createContainer in the root file
	 * system (the guest's namespaces are out of a host hook's reach). */
	state = husk_container_oci_state(c, HUSK_ST_CREATING);
	rc = husk_hooks_run(c->hooks, "prestart", state, cfg->hook_timeout,
			    sb->netns, b->path, err);
	if (rc == 0)
		rc = husk_hooks_run(c->hooks, "createRuntime", state,
				    cfg->hook_timeout, sb->netns, b->path, err);
	/* The sandbox's links go to the VM after those hooks, which may
	 * have made them (docker's veth): as Kata runs them before it
	 * scans the namespace. */
	if (rc == 0 && c->is_sandbox)
		rc = husk_net_setup(e, cfg, st->root, c->sandbox_id, sb, err);
	if (rc == 0)
		rc = husk_hooks_run(c->hooks, "createContainer", state,
				    cfg->hook_timeout, NULL, b->rootfs, err);
	json_decref(state);
	if (rc < 0)
		return -1;
	c->status = HUSK_ST_CREATED;
	return husk_container_write(e, c, err);
}

int husk_ct_create(struct husk_store *st, const struct husk_config *cfg,
		   const char *id, const char *bundle,
		   const struct husk_create_opts *o, struct husk_err **err)
{
	struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
	struct husk_entry se = { .dirfd = -1, .lockfd = -1 };
	struct husk_container c = { 0 };
	struct husk_sandbox sb = { 0 };
	struct husk_bundle b = { 0 };
	struct husk_sbx_paths p = { 0 };
	cleanup_free char *sid = NULL;
	json_t *gspec = NULL, *params, *hooks;
	/* A copy whose numbers annotations and limits may change; its
	 * strings stay the caller's. */
	struct husk_config lcfg = *cfg;
	unsigned grow_mb = 0, grow_cpus = 0;
	bool terminal, own;
	int rc = -1, ready = -1;

	if (husk_id_validate(id, "container id", err) < 0)
		return -1;
	if (husk_bundle_load(bundle, &b, err) < 0)
		return -1;
	terminal = json_is_true(json_object_get(json_object_get(b.spec,
								"process"),
						"terminal"));
	if (terminal && !o->console_socket && o->detach) {
		husk_error(err, HUSK_E_INVALID, "process.terminal is true: a "
			   "detached container needs --console-socket");
		goto out_bundle;
	}
	if (!terminal && o->console_socket) {
		husk_error(err, HUSK_E_INVALID, "--console-socket needs "
			   "process.terminal true in config.json");
		goto out_bundle;
	}
	if (husk_pod_membership(b.spec, id, &sid, err) < 0)
		goto out_bundle;
	own = !strcmp(sid, id);
	if (husk_config_annotations(&lcfg, b.spec, err) < 0)
		goto out_bundle;
	husk_spec_sizing(b.spec, &grow_mb, &grow_cpus);
	if (own) {
		/* The sandbox's own limits size the VM at boot. */
		lcfg.memory_mb += grow_mb;
		lcfg.vcpus += grow_cpus;
		if (lcfg.memory_mb > lcfg.max_memory_mb)
			lcfg.memory_mb = lcfg.max_memory_mb;
		if (lcfg.vcpus > lcfg.max_vcpus)
			lcfg.vcpus = lcfg.max_vcpus;
	}

	if (husk_store_create(st, id, HUSK_LOCK_EXCL, &e, err) < 0)
		goto out_bundle;
	c.id = husk_xstrdup(id);
	c.sandbox_id = husk_xstrdup(sid);
	c.is_sandbox = own;
	c.bundle = husk_xstrdup(b.path);
	c.status = HUSK_ST_CREATING;
	c.created = now_rfc3339();
	c.annotations = json_incref(json_object_get(b.spec, "annotations"));
	hooks = json_object_get(b.spec, "hooks");
	c.hooks = hooks ? json_incref(hooks) : NULL;
	c.binds = json_array();
	c.sized_mb = grow_mb;
	c.sized_vcpus = grow_cpus;
	if (husk_container_write(&e, &c, err) < 0)
		goto fail;

	if (own) {
		/* A VM booted ahead (docs/factory-cache.md), or our own. */
		int cached = husk_cache_take(&e, &lcfg, st->root, sid, b.spec,
					     &sb, err);

		if (cached < 0)
			goto fail;
		if (cached && lcfg.sandbox_cgroup_only)
			log_info("sandbox %s: a VM from the cache stays in the "
				 "cache's cgroup ([runtime] "
				 "sandbox_cgroup_only)", sid);
		else if (lcfg.sandbox_cgroup_only)
			sb.cgroups_path = json_string_value(json_object_get(
				json_object_get(b.spec, "linux"),
				"cgroupsPath"));
		if (!cached &&
		    husk_net_prepare(&e, cfg, st->root, sid, b.spec, &sb,
				     err) < 0)
			goto fail;
		if (!cached &&
		    husk_sandbox_launch(&e, &lcfg, st->root, sid, &sb, &ready,
					err) < 0)
			goto fail;
	} else {
		if (husk_store_get(st, sid, HUSK_LOCK_EXCL, &se, err) < 0) {
			husk_error_wrap(err, "sandbox %s", sid);
			goto fail;
		}
		if (husk_sandbox_read(&se, &sb, err) < 0)
			goto fail;
		if (!husk_proc_alive(&sb.proxy)) {
			husk_error(err, HUSK_E_UNAVAILABLE, "sandbox %s has no "
				   "running proxy", sid);
			goto fail;
		}
		/* A container joining a pod brings its limits by hotplug,
		 * and gives them back when it goes. */
		c.dimms = json_array();
		if (husk_sandbox_grow(st->root, sid, grow_mb, grow_cpus,
				      c.dimms, &c.grown_vcpus, err) < 0)
			goto fail;
	}
	if (husk_sandbox_paths(st->root, sid, &p, err) < 0)
		goto fail;
	if (husk_share_container(&p, id, &b, c.binds, err) < 0) {
		/* Record the binds made so far: the clean-up undoes them. */
		husk_container_write(&e, &c, NULL);
		goto fail;
	}
	if (husk_container_write(&e, &c, err) < 0)
		goto fail;
	/* The container's files are in the share before the guest has
	 * booted: only now does the start wait for the agent. */
	if (own && husk_sandbox_ready(&e, &lcfg, st->root, sid,
				      json_string_value(json_object_get(
					      b.spec, "hostname")),
				      &sb, ready, err) < 0)
		goto fail;

	gspec = husk_guest_spec(b.spec, id);
	params = json_pack("{s:s, s:O}", "container_id", id, "spec", gspec);
	if (!own && o->pending) {
		/* The caller makes the call and finishes: nothing locked
		 * meanwhile (husk_ct_create_finish). */
		struct husk_ct_pending *pc = husk_xcalloc(1, sizeof(*pc));

		pc->id = husk_xstrdup(id);
		pc->sid = sid;
		sid = NULL;
		pc->b = b;
		memset(&b, 0, sizeof(b));
		b.rootfd = -1;
		pc->terminal = terminal;
		pc->params = params;
		*o->pending = pc;
		rc = 0;
		goto out;
	}
	if (agent_call(st->root, sid, AGENT_M_CREATE_CONTAINER, params,
		       HUSK_CREATE_TIMEOUT_MS, NULL, err) < 0)
		goto fail;
	if (create_tail(st, &lcfg, &e, &c, &b, &sb, terminal, o, err) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	rc = -1;
	{
		cleanup_err struct husk_err *e2 = NULL;

		husk_entry_close(&se);
		if (husk_ct_destroy(st, cfg, &e, &c, true, &e2) < 0)
			log_warnx("clean-up after failure: %s",
				  e2->msg);
	}
out:
	if (ready >= 0)
		close(ready);
	json_decref(gspec);
	husk_sandbox_paths_free(&p);
	husk_sandbox_free(&sb);
	husk_container_free(&c);
	husk_entry_close(&se);
	husk_entry_close(&e);
out_bundle:
	husk_bundle_free(&b);
	return rc;
}

void husk_ct_pending_free(struct husk_ct_pending *pc)
{
	if (!pc)
		return;
	free(pc->id);
	free(pc->sid);
	husk_bundle_free(&pc->b);
	json_decref(pc->params);
	free(pc);
}

int husk_ct_create_finish(struct husk_store *st,
			  const struct husk_config *cfg,
			  struct husk_ct_pending *pc,
			  const struct husk_create_opts *o,
			  const struct husk_err *agent_err,
			  struct husk_err **err)
{
	struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
	struct husk_entry se = { .dirfd = -1, .lockfd = -1 };
	struct husk_container c = { 0 };
	struct husk_sandbox sb = { 0 };
	int rc = -1;

	/* Deleted meanwhile (`husk delete --force`, or its pod's delete):
	 * what the guest made is the caller's to remove. */
	if (husk_store_get(st, pc->id, HUSK_LOCK_EXCL, &e, NULL) < 0 ||
	    husk_container_read(&e, &c, NULL) < 0) {
		pc->orphan = !agent_err;
		husk_entry_close(&e);
		return husk_error(err, HUSK_E_NOT_FOUND, "container %s was "
				  "deleted while the guest created it",
				  pc->id);
	}
	if (c.status != HUSK_ST_CREATING || strcmp(c.sandbox_id, pc->sid)) {
		pc->orphan = !agent_err;
		husk_error(err, HUSK_E_STATE, "container %s changed while the "
			   "guest created it (%s)", pc->id,
			   husk_status_name(c.status));
		goto out;
	}
	if (agent_err) {
		husk_error(err, agent_err->code, "%s", agent_err->msg);
		goto fail;
	}
	if (husk_store_get(st, pc->sid, HUSK_LOCK_EXCL, &se, err) < 0) {
		husk_error_wrap(err, "sandbox %s", pc->sid);
		goto fail;
	}
	if (husk_sandbox_read(&se, &sb, err) < 0 ||
	    create_tail(st, cfg, &e, &c, &pc->b, &sb, pc->terminal, o,
			err) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	{
		cleanup_err struct husk_err *e2 = NULL;

		husk_entry_close(&se);
		/* The guest's failure: nothing there to remove (or, at
		 * its timeout, a guest not answering). */
		if (ct_destroy(st, cfg, &e, &c, true,
			       agent_err ? CT_AGENT_DONE : 0, &e2) < 0)
			log_warnx("clean-up after failure: %s", e2->msg);
	}
out:
	husk_sandbox_free(&sb);
	husk_container_free(&c);
	husk_entry_close(&se);
	husk_entry_close(&e);
	return rc;
}

/* startContainer hooks: before the process runs, with "created" and
 * the container's root file system as working directory (runc runs them
 * in the container just before exec).  A failure fails the start. */
static int start_hooks(const struct husk_config *cfg,
		       const struct husk_container *c, struct husk_err **err)
{
	struct husk_bundle b = { 0 };
	json_t *state;
	int rc;

	if (!json_array_size(json_object_get(c->hooks, "startContainer")))
		return 0;
	if (husk_bundle_load(c->bundle, &b, err) < 0)
		return husk_error_wrap(err, "startContainer hooks need the "
				       "bundle's root file system");
	state = husk_container_oci_state(c, HUSK_ST_CREATED);
	rc = husk_hooks_run(c->hooks, "startContainer", state,
			    cfg->hook_timeout, NULL, b.rootfs, err);
	json_decref(state);
	husk_bundle_free(&b);
	return rc;
}

int husk_ct_start_check(const struct husk_config *cfg,
			const struct husk_container *c, struct husk_err **err)
{
	int live = husk_live_status(c);

	if (live != HUSK_ST_CREATED)
		return husk_error(err, HUSK_E_STATE, "container %s is %s, not "
				  "created", c->id, husk_status_name(live));
	return start_hooks(cfg, c, err);
}

int husk_ct_started(struct husk_store *st, const struct husk_config *cfg,
		    struct husk_entry *e, struct husk_container *c,
		    struct husk_err **err)
{
	struct husk_sandbox sb = { 0 };
	struct husk_entry se = { .dirfd = -1, .lockfd = -1 };
	json_t *state;

	c->status = HUSK_ST_RUNNING;
	if (husk_container_write(e, c, err) < 0)
		return -1;
	/* Poststart hooks run after the process started; a failing one is
	 * logged and the container keeps running (OCI runtime spec). */
	if (!c->is_sandbox &&
	    husk_store_get(st, c->sandbox_id, HUSK_LOCK_NONE, &se, NULL) == 0) {
		husk_sandbox_read(&se, &sb, NULL);
		husk_entry_close(&se);
	} else if (c->is_sandbox) {
		husk_sandbox_read(e, &sb, NULL);
	}
	state = husk_container_oci_state(c, HUSK_ST_RUNNING);
	husk_hooks_run(c->hooks, "poststart", state, cfg->hook_timeout,
		       sb.netns, c->bundle, NULL);
	json_decref(state);
	husk_sandbox_free(&sb);
	return 0;
}

int husk_ct_start(struct husk_store *st, const struct husk_config *cfg,
		  struct husk_entry *e, struct husk_container *c,
		  struct husk_err **err)
{
	if (husk_ct_start_check(cfg, c, err) < 0)
		return -1;
	if (agent_call(st->root, c->sandbox_id, AGENT_M_START_CONTAINER,
		       json_pack("{s:s}", "container_id", c->id),
		       HUSK_START_TIMEOUT_MS, NULL, err) < 0)
		return -1;
	return husk_ct_started(st, cfg, e, c, err);
}

/* Containers of the store that live in sandbox sid (other than it). */
static int members(struct husk_store *st, const char *sid, char ***out,
		   struct husk_err **err)
{
	cleanup_strv char **ids = NULL;
	char **res;
	size_t n = 0, k = 0;

	if (husk_store_list(st, &ids, err) < 0)
		return -1;
	while (ids[n])
		n++;
	res = husk_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
		struct husk_container c;

		if (!strcmp(ids[i], sid) ||
		    husk_store_get(st, ids[i], HUSK_LOCK_NONE, &e, NULL) < 0)
			continue;
		if (husk_container_read(&e, &c, NULL) == 0) {
			if (!strcmp(c.sandbox_id, sid))
				res[k++] = husk_xstrdup(ids[i]);
			husk_container_free(&c);
		}
		husk_entry_close(&e);
	}
	*out = res;
	return 0;
}

int husk_ct_destroy(struct husk_store *st, const struct husk_config *cfg,
		    struct husk_entry *e, struct husk_container *c, bool force,
		    struct husk_err **err)
{
	return ct_destroy(st, cfg, e, c, force, 0, err);
}

json_t *husk_ct_remove_params(const struct husk_container *c)
{
	if (c->is_sandbox)
		return NULL;
	return json_pack("{s:s, s:b}", "container_id", c->id, "force", 1);
}

int husk_ct_destroy_host(struct husk_store *st, const struct husk_config *cfg,
			 struct husk_entry *e, struct husk_container *c,
			 bool force, struct husk_err **err)
{
	return ct_destroy(st, cfg, e, c, force, CT_AGENT_DONE, err);
}

static int ct_destroy(struct husk_store *st, const struct husk_config *cfg,
		      struct husk_entry *e, struct husk_container *c,
		      bool force, int how, struct husk_err **err)
{
	struct husk_sbx_paths p = { 0 };
	struct husk_sandbox sb = { 0 };
	cleanup_strv char **others = NULL;
	bool have_sb = false;
	json_t *state;
	int rc;

	if (c->is_sandbox) {
		if (members(st, c->id, &others, err) < 0)
			return -1;
		if (others[0] && !force)
			return husk_error(err, HUSK_E_STATE, "sandbox %s still "
					  "holds container %s: delete it first "
					  "(or use --force)", c->id,
					  others[0]);
		for (char **o = others; *o; o++) {
			struct husk_entry oe = { .dirfd = -1, .lockfd = -1 };
			struct husk_container oc;
			cleanup_err struct husk_err *e2 = NULL;

			if (husk_store_get(st, *o, HUSK_LOCK_EXCL, &oe,
					   &e2) < 0)
				continue;
			if (husk_container_read(&oe, &oc, &e2) == 0) {
				ct_destroy(st, cfg, &oe, &oc, true,
					   CT_VM_GOING, &e2);
				husk_container_free(&oc);
			} else {
				husk_entry_remove(&oe, NULL);
			}
			husk_entry_close(&oe);
		}
		have_sb = husk_sandbox_read(e, &sb, NULL) == 0;
	}
	if (husk_sandbox_paths(st->root, c->sandbox_id, &p, err) < 0)
		return -1;

	/* The container in the guest, while the guest is there to ask.  The
	 * sandbox's own container, and its members, go with the VM. */
	if (!c->is_sandbox && !(how & (CT_VM_GOING | CT_AGENT_DONE))) {
		cleanup_err struct husk_err *e2 = NULL;

		if (agent_call(st->root, c->sandbox_id,
			       AGENT_M_REMOVE_CONTAINER,
			       husk_ct_remove_params(c),
			       HUSK_REMOVE_TIMEOUT_MS, NULL, &e2) < 0)
			log_debug("%s", e2->msg);
	}
	husk_proc_stop(&c->shim, force ? 500 : 2000);
	if (!c->is_sandbox && !(how & CT_VM_GOING))
		husk_sandbox_shrink(st->root, c->sandbox_id, c->dimms,
				    c->grown_vcpus);
	husk_cgroup_remove(c->cgroups, 0);
	if (have_sb)
		husk_sandbox_stop(st->root, &sb, force, NULL);
	husk_unshare_container(&p, c->id);
	husk_sandbox_free(&sb);
	husk_sandbox_paths_free(&p);

	/* Poststop hooks run once the container is gone, state included
	 * (as runc 1.1 does), in the host's namespace: the sandbox's is
	 * gone too.  Their failures are logged. */
	state = husk_container_oci_state(c, HUSK_ST_STOPPED);
	rc = husk_entry_remove(e, err);
	husk_hooks_run(c->hooks, "poststop", state, cfg->hook_timeout, NULL,
		       NULL, NULL);
	json_decref(state);
	return rc;
}
