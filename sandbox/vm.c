/*
 * A sandbox's VM and its helpers: husk-hypervisor (QEMU, virtiofsd) and
 * husk-proxy (the agent channel), started for the first container of a
 * sandbox and stopped with it.  Every step is recorded in sandbox.json
 * before the next one, so that delete --force finds whatever was
 * started, whichever step failed or whichever process died.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"
#include "libipc/proto_proxy.h"

int husk_sandbox_paths(const char *root, const char *sid,
		       struct husk_sbx_paths *p, struct husk_err **err)
{
	struct stat st;

	memset(p, 0, sizeof(*p));
	p->dir = husk_xasprintf("%s/%s/" HUSK_VM_SUBDIR, root, sid);
	/* A VM from the cache brought its own directory (sandbox/cache.c):
	 * every path of the VM is below it.  <root>/<sid> is root's and
	 * 0700, and nothing the guest writes is on this path. */
	if (lstat(p->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(p->dir);
		p->dir = husk_xasprintf("%s/%s", root, sid);
	}
	if (husk_sock_path(p->dir, "hv.sock", &p->hv_sock, err) < 0 ||
	    husk_sock_path(p->dir, "proxy.sock", &p->proxy_sock, err) < 0 ||
	    husk_sock_path(p->dir, "agent.sock", &p->agent_sock, err) < 0) {
		husk_sandbox_paths_free(p);
		return -1;
	}
	p->shared = husk_xasprintf("%s/shared", p->dir);
	p->stage = husk_xasprintf("%s/share-stage", p->dir);
	p->hv_log = husk_xasprintf("%s/hypervisor.log", p->dir);
	p->proxy_log = husk_xasprintf("%s/proxy.log", p->dir);
	p->console_log = husk_xasprintf("%s/console.log", p->dir);
	return 0;
}

void husk_sandbox_paths_free(struct husk_sbx_paths *p)
{
	free(p->dir);
	free(p->hv_sock);
	free(p->proxy_sock);
	free(p->agent_sock);
	free(p->shared);
	free(p->stage);
	free(p->hv_log);
	free(p->proxy_log);
	free(p->console_log);
	memset(p, 0, sizeof(*p));
}

/* Wait for a helper's socket to answer; fail early if it died. */
int husk_wait_ready(const char *what, pid_t pid, const char *sock,
		      const char *expect, const char *method,
		      unsigned timeout_s, const char *log,
		      struct husk_err **err)
{
	uint64_t deadline = husk_now_ms() + (uint64_t)timeout_s * 1000;
	int status;

	for (;;) {
		cleanup_err struct husk_err *e = NULL;

		if (husk_rpc_call(sock, expect, method, NULL, 1000, NULL,
				  NULL, 0, &e) == 0)
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return husk_error(err, HUSK_E_UNAVAILABLE, "%s exited "
					  "during start-up (status %d): see %s",
					  what, WIFEXITED(status) ?
					  WEXITSTATUS(status) :
					  128 + WTERMSIG(status), log);
		if (husk_now_ms() >= deadline)
			return husk_error(err, HUSK_E_TIMEOUT, "%s did not "
					  "answer within %u s (%s): see %s",
					  what, timeout_s,
					  e && e->msg ? e->msg : "?", log);
		{
			/* Until the driver binds its socket (tens of ms):
			 * a failed connect costs next to nothing. */
			struct timespec ts = { 0, 5 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
}

static json_t *hv_create_params(const struct husk_config *cfg,
				const struct husk_sbx_paths *p)
{
	/* Memory is hot-plugged in 128 MiB blocks: the room above the boot
	 * size must be a whole number of them. */
	unsigned max_mb = cfg->memory_mb +
			  (cfg->max_memory_mb - cfg->memory_mb) / 128 * 128;
	unsigned max_cpus = cfg->max_vcpus, slots = cfg->memory_slots;
	bool microvm = !strcmp(cfg->machine_type, "microvm");
	json_t *j;

	/* microvm has no hotplug at all: the VM boots at its final size,
	 * and the ceilings are that size. */
	if (microvm) {
		max_mb = cfg->memory_mb;
		max_cpus = cfg->vcpus;
		slots = 0;
	}
	j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:s,"
		      " s:s, s:s, s:s, s:s}",
		      "kernel", cfg->kernel, "initrd", cfg->initrd,
		      "kernel_params", cfg->kernel_params,
		      "vcpus", cfg->vcpus, "max_vcpus", max_cpus,
		      "memory_mb", cfg->memory_mb,
		      "max_memory_mb", max_mb,
		      "memory_slots", slots,
		      "machine", cfg->machine_type,
		      "accel", cfg->accel, "shared_dir", p->shared,
		      "shared_fs", cfg->shared_fs,
		      "agent_socket", p->agent_sock);
	if (j)
		json_object_set_new(j, "tcg_cache_mb",
				    json_integer(cfg->tcg_cache_mb));
	if (j && microvm)
		json_object_set_new(j, "pci_ports", json_integer(0));
	if (j && cfg->console_log) {
		json_object_set_new(j, "console_log",
				    json_string(p->console_log));
		json_object_set_new(j, "console_log_max_kb",
				    json_integer(cfg->console_log_max_kb));
	}
	return j;
}

int husk_sandbox_cgroup_enter(struct husk_entry *e, struct husk_sandbox *s,
			      pid_t pid, struct husk_err **err)
{
	if (!s->cgroups_path)
		return 0;
	if (!s->cgroups)
		s->cgroups = json_array();
	if (husk_cgroup_enter(s->cgroups_path, pid, s->cgroups, err) < 0)
		return husk_error_wrap(err, "[runtime] sandbox_cgroup_only");
	return husk_sandbox_write(e, s, err);
}

static int start_hypervisor(const struct husk_config *cfg,
			    const struct husk_sbx_paths *p, const char *root,
			    const char *sid,
			    struct husk_sandbox *s, struct husk_entry *e,
			    const json_t *tmpl, struct husk_err **err)
{
	cleanup_free char *uids = husk_xasprintf("%u:%u", cfg->qemu_uid_base,
						 cfg->qemu_uid_count);
	char *argv[] = { cfg->hypervisor_path, "--socket", p->hv_sock,
			 "--sandbox", (char *)sid, "--state-dir", p->dir,
			 "--qemu", cfg->qemu_path, "--virtiofsd",
			 cfg->virtiofsd_path, "--log-level",
			 cfg->debug ? "debug" : "info", "--qemu-uids", uids,
			 cfg->kvm_group[0] ? "--kvm-group" : NULL,
			 cfg->kvm_group, NULL };
	json_t *params, *res = NULL;
	pid_t pid;
	int rc, saved, left;

	/* The driver, QEMU and virtiofsd live in the sandbox's network
	 * namespace, where the driver makes its taps (docs/network.md). */
	if (husk_netns_enter(s->netns, &saved, err) < 0)
		return -1;
	pid = husk_spawn(argv, p->hv_log, NULL, 0, err);
	left = husk_netns_leave(saved, err);
	if (pid < 0)
		return husk_error_wrap(err, "start the hypervisor driver");
	husk_proc_ref(pid, &s->hv);
	/* Recorded even when we could not get back: the rollback stops it. */
	if (husk_sandbox_write(e, s, err) < 0 || left < 0)
		return -1;
	/* Before it starts virtiofsd and QEMU, which stay with it. */
	if (husk_sandbox_cgroup_enter(e, s, pid, err) < 0)
		return -1;
	if (husk_wait_ready(HV_COMPONENT, pid, p->hv_sock, HV_COMPONENT,
		       HV_M_STATUS, 10, p->hv_log, err) < 0)
		return -1;
	if (tmpl) {
		params = husk_clone_params(cfg, tmpl, p->agent_sock,
					   p->console_log, p->shared);
		s->clone_vcpus = (unsigned)json_integer_value(
			json_object_get(tmpl, "vcpus"));
		s->clone_memory_mb = (unsigned)json_integer_value(
			json_object_get(tmpl, "memory_mb"));
	} else {
		params = hv_create_params(cfg, p);
	}
	rc = husk_rpc_call(p->hv_sock, HV_COMPONENT, HV_M_CREATE, params,
			   30000, NULL, NULL, 0, err);
	json_decref(params);
	if (rc < 0)
		return -1;
	/* A cold boot's links go on QEMU's command line (a clone's are
	 * hot-plugged: its devices are the template's). */
	if (!tmpl && husk_net_coldplug(cfg, root, sid, s, err) < 0)
		return -1;
	if (husk_rpc_call(p->hv_sock, HV_COMPONENT, HV_M_START, NULL,
			  60000, &res, NULL, 0, err) < 0)
		return -1;
	json_decref(res);
	if (husk_rpc_call(p->hv_sock, HV_COMPONENT, HV_M_STATUS, NULL,
			  10000, &res, NULL, 0, err) < 0)
		return -1;
	free(s->accel);
	s->accel = husk_xstrdup(json_string_value(json_object_get(res,
								  "accel")) ?:
				"?");
	log_info("sandbox %s: VM %s with %s (%s)", sid,
		 tmpl ? "cloned from the template" : "started", s->accel,
		 json_string_value(json_object_get(res, "accel_reason")) ?:
		 "");
	json_decref(res);
	return husk_sandbox_write(e, s, err);
}

/*
 * [proxy] user: "" is HUSK_PROXY_USER when that user exists (`make
 * install` creates it), else root; "root" is root; else a user name or
 * UID:GID, which must resolve.  *set is false for root.
 */
int husk_proxy_ids(const char *spec, bool *set, uid_t *uid, gid_t *gid,
		   struct husk_err **err)
{
	const char *name = spec && spec[0] ? spec : HUSK_PROXY_USER;
	const char *colon = strchr(name, ':');
	struct passwd *pw;
	long long u, g;

	*set = false;
	if (!strcmp(name, "root"))
		return 0;
	if (colon) {
		cleanup_free char *us = husk_xstrdup(name);

		us[colon - name] = '\0';
		if (husk_parse_int(us, 0, UINT32_MAX - 1, &u) < 0 ||
		    husk_parse_int(colon + 1, 0, UINT32_MAX - 1, &g) < 0)
			return husk_error(err, HUSK_E_INVALID, "[proxy] user: "
					  "`%s` is not UID:GID", name);
		*uid = (uid_t)u;
		*gid = (gid_t)g;
	} else {
		errno = 0;
		pw = getpwnam(name);
		if (!pw && (!spec || !spec[0]))
			return 0;       /* no such user installed: root */
		if (!pw)
			return husk_error(err, HUSK_E_INVALID, "[proxy] user: "
					  "no user `%s`%s", name, errno ?
					  " (lookup failed)" : "");
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	*set = *uid != 0;
	return 0;
}

/*
 * The proxy, started as soon as the driver has QEMU running: it
 * connects to the agent channel while the guest boots.  It says "ok"
 * on the pipe it gets (--ready-fd, proxy/agent.c) once the
 * agent first answers; *ready is our end.
 */
static int start_proxy(const struct husk_config *cfg,
		       const struct husk_sbx_paths *p, const char *sid,
		       struct husk_sandbox *s, struct husk_entry *e,
		       int *ready, struct husk_err **err)
{
	cleanup_free char *agent = husk_xasprintf("unix:%s", p->agent_sock);
	char uid_s[16], gid_s[16], fd_s[16], poll_s[16];
	char *argv[] = { cfg->proxy_path, "--agent", agent, "--socket",
			 p->proxy_sock, "--sandbox", (char *)sid,
			 "--log-level", cfg->debug ? "debug" : "info",
			 "--poll-us", poll_s, "--ready-fd", fd_s,
			 NULL, NULL, NULL, NULL, NULL };
	int pfd[2];
	bool set;
	uid_t uid;
	gid_t gid;
	pid_t pid;

	snprintf(poll_s, sizeof(poll_s), "%u", cfg->proxy_poll_us);
	if (husk_proxy_ids(cfg->proxy_user, &set, &uid, &gid, err) < 0)
		return -1;
	if (set) {
		/* The proxy reaches the channel socket by a descriptor it
		 * opens as root; connecting still needs write permission
		 * on the socket itself.  The sandbox directory is root's
		 * and 0700: nothing but us can swap what is chowned. */
		if (fchownat(AT_FDCWD, p->agent_sock, uid, gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			return husk_error_sys(err, errno, "chown `%s` to the "
					      "proxy user", p->agent_sock);
		snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)uid);
		snprintf(gid_s, sizeof(gid_s), "%u", (unsigned)gid);
		argv[13] = "--uid";
		argv[14] = uid_s;
		argv[15] = "--gid";
		argv[16] = gid_s;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return husk_error_sys(err, errno, "pipe");
	snprintf(fd_s, sizeof(fd_s), "%d", pfd[1]);
	pid = husk_spawn(argv, p->proxy_log, &pfd[1], 1, err);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return husk_error_wrap(err, "start the proxy");
	}
	*ready = pfd[0];
	husk_proc_ref(pid, &s->proxy);
	if (husk_sandbox_write(e, s, err) < 0)
		return -1;
	return husk_sandbox_cgroup_enter(e, s, pid, err);
}

/*
 * The wait for the guest to boot: the proxy's "ok" once the agent
 * answered it, or EOF when the proxy died.  No polling: the guest
 * under TCG needs the CPU more than we do.
 */
static int wait_agent(const struct husk_config *cfg,
		      const struct husk_sbx_paths *p,
		      const struct husk_sandbox *s, int fd,
		      struct husk_err **err)
{
	uint64_t deadline = husk_now_ms() + (uint64_t)cfg->agent_timeout *
					    1000;
	char buf[8];
	size_t have = 0;
	int status;

	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		uint64_t now = husk_now_ms();
		ssize_t n;
		int r;

		if (now >= deadline)
			return husk_error(err, HUSK_E_TIMEOUT, "waiting for "
					  "the guest agent: no answer within "
					  "%u s (the guest's console is in %s, "
					  "the proxy's log in %s)",
					  cfg->agent_timeout, p->console_log,
					  p->proxy_log);
		r = poll(&pf, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return husk_error_sys(err, errno, "poll the proxy");
		if (r <= 0)
			continue;
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0 && (have += (size_t)n) < 3)
			continue;
		break;
	}
	if (have >= 3 && !memcmp(buf, "ok\n", 3))
		return 0;
	/* EOF: the proxy is gone, or leaving (an error path: a short
	 * bounded wait for its status). */
	for (int i = 0; i < 100; i++) {
		struct timespec ts = { 0, 10 * 1000000L };

		if (waitpid(s->proxy.pid, &status, WNOHANG) == s->proxy.pid)
			break;
		status = -1;
		nanosleep(&ts, NULL);
	}
	if (status != -1)
		return husk_error(err, HUSK_E_UNAVAILABLE, "husk-proxy exited "
				  "during start-up (status %d): see %s",
				  WIFEXITED(status) ? WEXITSTATUS(status) :
				  128 + WTERMSIG(status), p->proxy_log);
	return husk_error(err, HUSK_E_UNAVAILABLE, "husk-proxy closed its "
			  "ready pipe without a word: see %s", p->proxy_log);
}

int husk_sandbox_launch(struct husk_entry *e, const struct husk_config *cfg,
			const char *root, const char *sid,
			struct husk_sandbox *s, int *ready,
			struct husk_err **err)
{
	struct husk_sbx_paths p;
	json_t *tmpl = NULL;
	int rc = -1, tlock = -1;

	*ready = -1;
	if (cfg->factory_template &&
	    husk_factory_prepare(cfg, &tmpl, &tlock, err) < 0)
		return husk_error_wrap(err, "[factory] template");
	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		goto out_tmpl;
	free(s->id);
	s->id = husk_xstrdup(sid);
	if (husk_sandbox_write(e, s, err) < 0)
		goto out;
	if (husk_share_setup(cfg, &p, err) < 0)
		goto out;
	if (start_hypervisor(cfg, &p, root, sid, s, e, tmpl, err) < 0)
		goto out;
	/* QEMU has mapped the RAM file and read the state: a rebuild of
	 * the template may go ahead. */
	if (tlock >= 0) {
		close(tlock);
		tlock = -1;
	}
	rc = start_proxy(cfg, &p, sid, s, e, ready, err);
out:
	husk_sandbox_paths_free(&p);
out_tmpl:
	if (tlock >= 0)
		close(tlock);
	json_decref(tmpl);
	return rc;
}

int husk_sandbox_ready(struct husk_entry *e, const struct husk_config *cfg,
		       const char *root, const char *sid,
		       const char *hostname, struct husk_sandbox *s,
		       int ready, struct husk_err **err)
{
	struct husk_sbx_paths p;
	json_t *params;
	int rc = -1;

	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		return -1;
	/* ready -1: a VM from the cache, whose agent answered there (a
	 * clone among them is reseeded, clocked and sized here, at take). */
	if ((ready >= 0 && wait_agent(cfg, &p, s, ready, err) < 0) ||
	    husk_clone_finish(e, cfg, root, s, err) < 0)
		goto out;
	params = json_pack("{s:s, s:s}", "sandbox_id", sid, "hostname",
			   hostname ? hostname : sid);
	rc = husk_rpc_call(p.proxy_sock, PROXY_COMPONENT,
			   AGENT_M_CREATE_SANDBOX, params, 30000, NULL, NULL,
			   0, err);
	json_decref(params);
out:
	husk_sandbox_paths_free(&p);
	return rc;
}

int husk_sandbox_wait_agent(const struct husk_config *cfg, const char *root,
			    const char *sid, const struct husk_sandbox *s,
			    int ready, struct husk_err **err)
{
	struct husk_sbx_paths p;
	int rc;

	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		return -1;
	rc = wait_agent(cfg, &p, s, ready, err);
	husk_sandbox_paths_free(&p);
	return rc;
}

int husk_sandbox_start(struct husk_entry *e, const struct husk_config *cfg,
		       const char *root, const char *sid,
		       const char *hostname, struct husk_sandbox *s,
		       struct husk_err **err)
{
	int ready, rc;

	rc = husk_sandbox_launch(e, cfg, root, sid, s, &ready, err);
	if (rc == 0)
		rc = husk_sandbox_ready(e, cfg, root, sid, hostname, s, ready,
					err);
	if (rc == 0)
		rc = husk_net_setup(e, cfg, root, sid, s, err);
	if (ready >= 0)
		close(ready);
	return rc;
}

/*
 * A VM from the cache came with a network namespace the cache made for
 * it (<dir>/netns); a sandbox whose own namespace was made elsewhere
 * recorded that one instead, so this one goes here (a bind mount of
 * nsfs: unmounted, then unlinked).
 */
static void vm_netns_release(const struct husk_sbx_paths *p,
			     const struct husk_sandbox *s)
{
	size_t n = strlen(p->dir), m = strlen("/" HUSK_VM_SUBDIR);
	cleanup_free char *ns = NULL;

	if (n < m || strcmp(p->dir + n - m, "/" HUSK_VM_SUBDIR))
		return;
	ns = husk_xasprintf("%s/netns", p->dir);
	if (s->netns && !strcmp(s->netns, ns))
		return;         /* the sandbox's own: husk_net_release's */
	if (umount2(ns, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		log_warn("umount %s", ns);
	if (unlink(ns) < 0 && errno != ENOENT)
		log_warn("unlink %s", ns);
}

int husk_sandbox_stop(const char *root, const struct husk_sandbox *s,
		      bool force, struct husk_err **err)
{
	struct husk_sbx_paths p;
	bool synced = false;

	if (husk_sandbox_paths(root, s->id, &p, err) < 0)
		return -1;
	husk_proc_stop(&s->netmon, 1000);
	/* Forced, the proxy has nothing left to do: it leaves while the
	 * driver stops QEMU (husk_proc_stop below waits for it). */
	if (force && husk_proc_alive(&s->proxy))
		kill(s->proxy.pid, SIGTERM);
	if (!force && husk_proc_alive(&s->proxy)) {
		cleanup_err struct husk_err *e = NULL;
		json_t *params = json_pack("{s:b}", "poweroff", 1);

		if (husk_rpc_call(p.proxy_sock, PROXY_COMPONENT,
				  AGENT_M_DESTROY_SANDBOX, params, 10000, NULL,
				  NULL, 0, &e) < 0)
			log_debug("%s", e->msg);
		else
			synced = true;
		json_decref(params);
	}
	if (husk_proc_alive(&s->hv)) {
		cleanup_err struct husk_err *e = NULL;
		/* The agent answered destroy_sandbox once the guest had
		 * synced: nothing is left to lose, QEMU may quit at once
		 * rather than wait for the guest's own power-off. */
		json_t *params = json_pack("{s:i}", "timeout_ms",
					   force || synced ? 0 : 3000);

		if (husk_rpc_call(p.hv_sock, HV_COMPONENT, HV_M_STOP, params,
				  10000, NULL, NULL, 0, &e) < 0)
			log_debug("%s", e->msg);
		json_decref(params);
	}
	/* The driver's children (QEMU, virtiofsd) die with it. */
	husk_proc_stop(&s->proxy, 1000);
	husk_proc_stop(&s->hv, 3000);
	husk_net_release(s);
	vm_netns_release(&p, s);
	husk_share_teardown(&p);
	husk_sandbox_paths_free(&p);
	/* Once they are gone: QEMU, killed with the driver, may still be
	 * exiting (a cgroup with a process left stays). */
	husk_cgroup_remove(s->cgroups, 3000);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Containers' files in the share                                      */

/*
 * The spec as the guest gets it: the root and bind mounts point into the
 * share (relative paths, docs/agent-protocol.md), the hooks stay on the
 * host, and namespace paths (host paths) are dropped: the guest's
 * containers share the VM's network, and joining a pod's namespaces is
 * the agent's job.
 */
json_t *husk_guest_spec(const json_t *spec, const char *cid)
{
	json_t *g = json_deep_copy(spec), *mounts, *m, *nss, *ns, *lnx;
	size_t i;

	json_object_del(g, "hooks");
	json_object_set_new(json_object_get(g, "root"), "path",
			    json_sprintf("%s/rootfs", cid));
	mounts = json_object_get(g, "mounts");
	json_array_foreach(mounts, i, m) {
		if (husk_mount_is_bind(m)) {
			json_object_set_new(m, "source",
					    json_sprintf("%s/mounts/%zu", cid,
							 i));
			json_object_set_new(m, "type", json_string("bind"));
		}
	}
	lnx = json_object_get(g, "linux");
	nss = json_object_get(lnx, "namespaces");
	for (i = json_array_size(nss); i-- > 0;) {
		ns = json_array_get(nss, i);
		if (!strcmp(json_string_value(json_object_get(ns, "type")) ?: "",
			    "network"))
			json_array_remove(nss, i);
		else
			json_object_del(ns, "path");
	}
	json_object_del(lnx, "cgroupsPath");
	return g;
}
