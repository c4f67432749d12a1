/*
 * The VM cache's side in the sandbox library (docs/factory-cache.md):
 * a new sandbox takes a VM husk-cache booted ahead and adopts its
 * directory, and the cache's booter boots and stops VMs with the same
 * code a cold sandbox uses.
 *
 * A cached VM is a store entry below <root>/.factory: its directory
 * holds what a cold sandbox's holds (the driver's and the proxy's
 * sockets and logs, the share's tmpfs and view, a network namespace
 * husk made).  Taking it renames that directory to
 * <root>/<sid>/factory-vm, one rename on the same file system (a
 * directory holding mount points may move; the mount points themselves
 * could not), and husk_sandbox_paths() finds every path below it.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "libipc/proto_cache.h"
#include "sandbox.h"

/* Everything of the configuration that reaches the driver, QEMU, the
 * proxy or the guest: a VM booted with another value is not the VM this
 * sandbox would have booted. */
char *husk_cache_fingerprint(const struct husk_config *c)
{
	return husk_xasprintf("%s|%s|%s|%s|%s|%s|%s|%s|%u|%u|%u|%u|%u|%u|%d"
			      "|%u|%u|%u|%u|%u|%s|%s|%s|%s|%u|%s|%d|%u|%s|%d"
			      "|%s",
			      c->hypervisor_path, c->qemu_path,
			      c->virtiofsd_path, c->kernel, c->initrd,
			      c->machine_type, c->accel, c->kernel_params,
			      c->vcpus, c->max_vcpus, c->memory_mb,
			      c->max_memory_mb, c->memory_slots,
			      c->tcg_cache_mb, (int)c->console_log,
			      c->console_log_max_kb,
			      c->share_size_mb, c->share_inodes,
			      c->qemu_uid_base, c->qemu_uid_count,
			      c->kvm_group, c->agent_log_level,
			      c->proxy_path, c->proxy_user, c->proxy_poll_us,
			      c->network_model, (int)c->debug,
			      c->agent_timeout, c->shared_fs,
			      (int)c->factory_template,
			      c->factory_template_path);
}

/* The spec's network namespace: *path the one it names, NULL when it
 * asks for a new one.  False when it has none (the host's). */
static bool spec_netns(const json_t *spec, const char **path)
{
	json_t *nss = json_object_get(json_object_get(spec, "linux"),
				      "namespaces"), *ns;
	size_t i;

	*path = NULL;
	json_array_foreach(nss, i, ns) {
		if (strcmp(json_string_value(json_object_get(ns, "type")) ?:
			   "", "network"))
			continue;
		*path = json_string_value(json_object_get(ns, "path"));
		if (*path && !**path)
			*path = NULL;
		return true;
	}
	return false;
}

static int ref_decode(const json_t *j, struct husk_proc_ref *r)
{
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	json_int_t start = json_integer_value(json_object_get(j, "start"));

	if (pid <= 1 || pid > 0x3fffffff || start <= 0)
		return -1;
	r->pid = (pid_t)pid;
	r->start = (unsigned long long)start;
	return 0;
}

/* The answer to take: a VM name of ours ("vm-N") and its helpers. */
static int take_decode(const json_t *res, char **name,
		       struct husk_proc_ref *hv, struct husk_proc_ref *proxy,
		       const char **accel, struct husk_err **err)
{
	const char *n = json_string_value(json_object_get(res, "name"));

	*accel = json_string_value(json_object_get(res, "accel")) ?: "?";
	if (!n || strncmp(n, "vm-", 3) || husk_id_validate(n, NULL, NULL) < 0)
		return husk_error(err, HUSK_E_PROTOCOL, "take: bad `name`");
	if (ref_decode(json_object_get(res, "hv"), hv) < 0 ||
	    ref_decode(json_object_get(res, "proxy"), proxy) < 0)
		return husk_error(err, HUSK_E_PROTOCOL, "take: bad `hv` or "
				  "`proxy`");
	*name = husk_xstrdup(n);
	return 0;
}

/* The cached VM's own record, as the booter wrote it (root's, below
 * the 0700 factory directory), which must name the helpers the daemon
 * answered with. */
static int vm_record(const char *fdir, const char *name,
		     const struct husk_proc_ref *hv,
		     const struct husk_proc_ref *proxy, struct husk_sandbox *vs,
		     struct husk_err **err)
{
	struct husk_store st;
	struct husk_entry e;
	int rc = -1;

	memset(vs, 0, sizeof(*vs));
	if (husk_store_open(&st, fdir, err) < 0)
		return -1;
	if (husk_store_get(&st, name, HUSK_LOCK_SHARED, &e, err) == 0) {
		rc = husk_sandbox_read(&e, vs, err);
		husk_entry_close(&e);
	}
	husk_store_close(&st);
	if (rc == 0 && (vs->hv.pid != hv->pid || vs->hv.start != hv->start ||
			vs->proxy.pid != proxy->pid ||
			vs->proxy.start != proxy->start)) {
		husk_sandbox_free(vs);
		return husk_error(err, HUSK_E_STATE, "its record names other "
				  "helpers than the daemon's answer");
	}
	return rc;
}

/* Back to a sandbox that boots cold: husk_net_prepare sets its
 * namespace again. */
static void forget_vm(struct husk_sandbox *s)
{
	memset(&s->hv, 0, sizeof(s->hv));
	memset(&s->proxy, 0, sizeof(s->proxy));
	free(s->netns);
	s->netns = NULL;
	s->netns_created = false;
}

int husk_cache_take(struct husk_entry *e, const struct husk_config *cfg,
		    const char *root, const char *sid, const json_t *spec,
		    struct husk_sandbox *s, struct husk_err **err)
{
	cleanup_free char *fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR, root);
	cleanup_free char *sock = husk_xasprintf("%s/" HUSK_CACHE_SOCK, fdir);
	cleanup_free char *fp = NULL, *name = NULL, *src = NULL, *acc = NULL;
	cleanup_err struct husk_err *te = NULL;
	struct husk_proc_ref hv, proxy;
	struct husk_sandbox vs;
	const char *why, *accel = NULL, *given = NULL;
	json_t *params, *res = NULL;
	int rc;

	if (!cfg->factory_cache)
		return 0;
	/*
	 * A cached VM's driver lives in the namespace the cache made.  A
	 * sandbox that asks for a new one adopts that one; one that names
	 * its own (CNI's) has the driver make its taps there
	 * (husk_net_adopt); the host's cannot be served.
	 */
	why = NULL;
	if (!spec_netns(spec, &given))
		why = "config.json has no network namespace (the host's)";
	else if (given && cfg->netmon_enable)
		why = "husk-netmon would watch the cached VM's namespace, not "
		      "the one config.json names";
	else if (given && !strcmp(cfg->machine_type, "microvm"))
		why = "a cached microvm is running: the links of the "
		      "namespace config.json names could only be hot-plugged, "
		      "which microvm cannot";
	if (!why && given) {
		/* The checks a cold sandbox makes, with their errors. */
		if (husk_net_prepare(e, cfg, root, sid, spec, s, err) < 0)
			return -1;
		if (!s->netns)
			why = "config.json names the host's network namespace";
	}
	if (why) {
		log_info("sandbox %s: boots cold, not from the VM cache: %s",
			 sid, why);
		return 0;
	}
	fp = husk_cache_fingerprint(cfg);
	params = json_pack("{s:s}", "fingerprint", fp);
	rc = husk_rpc_call(sock, CACHE_COMPONENT, CACHE_M_TAKE, params, 10000,
			   &res, NULL, 0, &te);
	json_decref(params);
	if (rc == 0)
		rc = take_decode(res, &name, &hv, &proxy, &accel, &te);
	if (rc < 0) {
		/* No daemon, a dead one, an empty cache, another
		 * configuration: the sandbox does not wait for any of it. */
		log_warnx("sandbox %s: boots cold: the VM cache (%s): %s", sid,
			  sock, te->msg);
		json_decref(res);
		forget_vm(s);
		return 0;
	}
	acc = husk_xstrdup(accel);      /* accel is res's */
	json_decref(res);
	src = husk_xasprintf("%s/%s", fdir, name);
	if (vm_record(fdir, name, &hv, &proxy, &vs, &te) < 0) {
		cleanup_err struct husk_err *se = NULL;

		/* Ours now (the daemon forgot it): stopped where it is. */
		if (husk_cache_vm_stop(fdir, name, &se) < 0)
			log_warnx("%s", se->msg);
		log_warnx("sandbox %s: boots cold: the cached VM %s: %s", sid,
			  name, te->msg);
		forget_vm(s);
		return 0;
	}
	/* Recorded before the move: whatever fails next, delete --force
	 * finds the helpers.  What else the VM's record says of it comes
	 * with it (a clone's boot size: it is finished at take). */
	free(s->id);
	s->id = husk_xstrdup(sid);
	s->hv = hv;
	s->proxy = proxy;
	free(s->accel);
	s->accel = husk_xstrdup(vs.accel ? vs.accel : acc);
	s->clone_vcpus = vs.clone_vcpus;
	s->clone_memory_mb = vs.clone_memory_mb;
	s->clone_finished = vs.clone_finished;
	husk_sandbox_free(&vs);
	if (!given) {
		free(s->netns);
		s->netns = husk_xasprintf("%s/%s/" HUSK_VM_SUBDIR "/netns",
					  root, sid);
		s->netns_created = true;
	}
	if (husk_sandbox_write(e, s, err) < 0)
		return -1;
	if (renameat(AT_FDCWD, src, e->dirfd, HUSK_VM_SUBDIR) < 0) {
		cleanup_err struct husk_err *se = NULL;
		int saved = errno;

		/* Still the cache's directory: stopped there, and this
		 * sandbox boots its own. */
		if (husk_cache_vm_stop(fdir, name, &se) < 0)
			log_warnx("%s", se->msg);
		forget_vm(s);
		log_warnx("sandbox %s: boots cold: move the cached VM `%s`: "
			  "%s", sid, src, strerror(saved));
		return husk_sandbox_write(e, s, err) < 0 ? -1 : 0;
	}
	/* The cache's record of it is stale now. */
	{
		cleanup_free char *old = husk_xasprintf(HUSK_VM_SUBDIR
							"/sandbox.json");
		cleanup_free char *lock = husk_xasprintf(HUSK_VM_SUBDIR
							 "/.lock");

		unlinkat(e->dirfd, old, 0);
		unlinkat(e->dirfd, lock, 0);
	}
	/* Its taps in the namespace the sandbox was given. */
	if (given && husk_net_adopt(root, sid, s->netns, err) < 0)
		return husk_error_wrap(err, "sandbox %s: the cached VM %s",
				       sid, name);
	log_info("sandbox %s: VM %s from the cache (%s)", sid, name, s->accel);
	return 1;
}

/* ------------------------------------------------------------------ */
/* The booter's side (cache/booter.c)                                  */

int husk_cache_boot(const struct husk_config *cfg, const char *fdir,
		    const char *name, struct husk_sandbox *s,
		    struct husk_err **err)
{
	/* The namespace husk_net_prepare makes for a spec that asks for a
	 * new one: what a sandbox taking the VM adopts. */
	json_t *spec = json_pack("{s:{s:[{s:s}]}}", "linux", "namespaces",
				 "type", "network");
	struct husk_store st;
	struct husk_entry e;
	int ready = -1, rc = -1;

	memset(s, 0, sizeof(*s));
	if (husk_store_open(&st, fdir, err) < 0) {
		json_decref(spec);
		return -1;
	}
	if (husk_store_create(&st, name, HUSK_LOCK_EXCL, &e, err) < 0)
		goto out_store;
	/*
	 * The hook for templates: husk_sandbox_launch is where a sandbox
	 * starts its VM, cold today; when it clones a template, the cache
	 * holds clones with no change here.
	 */
	if (husk_net_prepare(&e, cfg, fdir, name, spec, s, err) == 0 &&
	    husk_sandbox_launch(&e, cfg, fdir, name, s, &ready, err) == 0 &&
	    husk_sandbox_wait_agent(cfg, fdir, name, s, ready, err) == 0)
		rc = 0;
	if (ready >= 0)
		close(ready);
	if (rc < 0) {
		husk_sandbox_stop(fdir, s, true, NULL);
		husk_entry_remove(&e, NULL);
		husk_sandbox_free(s);
		memset(s, 0, sizeof(*s));
	} else {
		husk_entry_close(&e);
	}
out_store:
	husk_store_close(&st);
	json_decref(spec);
	return rc;
}

int husk_cache_vm_stop(const char *fdir, const char *name,
		       struct husk_err **err)
{
	struct husk_sandbox s = { 0 };
	struct husk_err *ge = NULL;
	struct husk_store st;
	struct husk_entry e;
	int rc;

	if (husk_store_open(&st, fdir, err) < 0)
		return -1;
	if (husk_store_get(&st, name, HUSK_LOCK_EXCL, &e, &ge) < 0) {
		husk_store_close(&st);
		rc = ge->code == HUSK_E_NOT_FOUND ? 0 : -1;
		if (rc < 0 && err && !*err)
			*err = ge;
		else
			husk_err_free(ge);
		return rc;
	}
	/* A record the boot had not written yet: nothing was started. */
	if (husk_sandbox_read(&e, &s, NULL) < 0)
		memset(&s, 0, sizeof(s));
	if (!s.id)
		s.id = husk_xstrdup(name);
	husk_sandbox_stop(fdir, &s, true, NULL);
	husk_sandbox_free(&s);
	rc = husk_entry_remove(&e, err);
	if (rc < 0)
		husk_entry_close(&e);
	husk_store_close(&st);
	return rc;
}

int husk_cache_sweep(const char *fdir, struct husk_err **err)
{
	struct husk_store st;
	char **ids = NULL;
	int n = 0, rc = 0;

	if (husk_store_open(&st, fdir, err) < 0)
		return -1;
	if (husk_store_list(&st, &ids, err) < 0) {
		husk_store_close(&st);
		return -1;
	}
	husk_store_close(&st);
	for (char **id = ids; *id; id++) {
		cleanup_err struct husk_err *e = NULL;

		if (husk_cache_vm_stop(fdir, *id, &e) < 0) {
			log_warnx("cached VM %s: %s", *id, e->msg);
			rc = -1;
		} else {
			n++;
		}
		free(*id);
	}
	free(ids);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "some cached VMs below "
				  "`%s` could not be removed (logged)", fdir);
	return n;
}

/* ------------------------------------------------------------------ */
/* husk factory init|status|destroy's part (cmd/husk/factory.c)        */

/* The daemon's pids from <root>/.factory/cache.json (zeros: none). */
static unsigned read_record(const char *fdir, struct husk_proc_ref *server,
			    struct husk_proc_ref *booter)
{
	json_int_t t;
	cleanup_free char *path = husk_xasprintf("%s/" HUSK_CACHE_RECORD,
						 fdir);
	json_t *j = json_load_file(path, 0, NULL);
	json_t *s = json_object_get(j, "server"), *b = json_object_get(j,
								       "booter");

	memset(server, 0, sizeof(*server));
	memset(booter, 0, sizeof(*booter));
	if (json_integer_value(json_object_get(s, "pid")) > 1) {
		server->pid = (pid_t)json_integer_value(json_object_get(s,
								       "pid"));
		server->start = (unsigned long long)json_integer_value(
			json_object_get(s, "start"));
	}
	if (json_integer_value(json_object_get(b, "pid")) > 1) {
		booter->pid = (pid_t)json_integer_value(json_object_get(b,
								       "pid"));
		booter->start = (unsigned long long)json_integer_value(
			json_object_get(b, "start"));
	}
	t = json_integer_value(json_object_get(j, "agent_timeout"));
	json_decref(j);
	/* The boot's bound, [agent] timeout (1-3600 s; 60 by default). */
	return t >= 1 && t <= 3600 ? (unsigned)t : 60;
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Stop the daemon (both halves) and every VM it kept; remove the
 * directory.  Works on a dead daemon's leftovers as on a live one. */
int husk_cache_destroy(const char *root, struct husk_err **err)
{
	cleanup_free char *fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR, root);
	struct husk_proc_ref server, booter;
	unsigned boot_s;
	int n;

	if (!dir_exists(fdir))
		return 0;
	boot_s = read_record(fdir, &server, &booter);
	husk_proc_stop(&server, 5000);
	/* Mid-boot it finishes the boot first (it holds SIGTERM off while
	 * a command runs, cache/booter.c), so that everything it started
	 * is in the VM's record, which the sweep reads.  A boot ends
	 * within [agent] timeout. */
	husk_proc_stop(&booter, (boot_s + 10) * 1000);
	n = husk_cache_sweep(fdir, err);
	if (n < 0)
		return -1;
	if (n)
		log_info("factory: %d cached VMs stopped", n);
	if (husk_rmtree_at(AT_FDCWD, fdir, err) < 0)
		return husk_error_wrap(err, "remove `%s`", fdir);
	return 0;
}

/* Start husk-cache and wait until it answers (its VMs boot after). */
int husk_cache_init(const struct husk_config *cfg, const char *root,
		    struct husk_err **err)
{
	cleanup_free char *fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR,
						 root);
	cleanup_free char *sock = husk_xasprintf("%s/" HUSK_CACHE_SOCK, fdir);
	cleanup_free char *log = husk_xasprintf("%s/cache.log", fdir);
	cleanup_free char *exe = husk_xasprintf("%s/husk-cache",
						husk_exe_dir());
	struct husk_proc_ref server, booter;
	char *argv[] = { exe, "--root", (char *)root, "--log-level",
			 cfg->debug ? "debug" : "info",
			 cfg->source ? "--config" : NULL,
			 cfg->source, NULL };
	uint64_t deadline;
	pid_t pid;

	if (dir_exists(fdir)) {
		read_record(fdir, &server, &booter);
		if (husk_proc_alive(&server))
			return husk_error(err, HUSK_E_EXISTS, "factory: the "
					  "cache daemon runs already (pid %d): "
					  "`husk factory destroy` first",
					  (int)server.pid);
		/* A daemon that died: its leftovers go first. */
		log_info("factory: a dead cache daemon's leftovers removed");
		if (husk_cache_destroy(root, err) < 0)
			return -1;
	}
	if (husk_mkdir_p(fdir, 0700, err) < 0)
		return -1;
	pid = husk_spawn(argv, log, NULL, 0, err);
	if (pid < 0)
		return husk_error_wrap(err, "factory: start husk-cache");
	deadline = husk_now_ms() + 10000;
	for (;;) {
		cleanup_err struct husk_err *e = NULL;
		struct timespec ts = { 0, 5 * 1000000L };
		int status;

		if (husk_rpc_call(sock, CACHE_COMPONENT, CACHE_M_STATUS, NULL,
				  1000, NULL, NULL, 0, &e) == 0)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return husk_error(err, HUSK_E_UNAVAILABLE, "factory: "
					  "husk-cache exited at start (status "
					  "%d): see %s", WIFEXITED(status) ?
					  WEXITSTATUS(status) : 128 +
					  WTERMSIG(status), log);
		if (husk_now_ms() >= deadline)
			return husk_error(err, HUSK_E_TIMEOUT, "factory: "
					  "husk-cache did not answer within "
					  "10 s (%s): see %s", e->msg, log);
		nanosleep(&ts, NULL);
	}
	log_info("factory: husk-cache (pid %d) keeps %u VMs booted",
		 (int)pid, cfg->factory_cache);
	return 0;
}

int husk_cache_status(const char *root, json_t **out, struct husk_err **err)
{
	cleanup_free char *sock = husk_xasprintf("%s/" HUSK_FACTORY_DIR "/"
						 HUSK_CACHE_SOCK, root);

	*out = NULL;
	if (husk_rpc_call(sock, CACHE_COMPONENT, CACHE_M_STATUS, NULL, 10000,
			  out, NULL, 0, err) < 0)
		return husk_error_wrap(err, "factory: the cache daemon does "
				       "not answer on %s", sock);
	return 0;
}
