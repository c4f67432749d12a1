/*
 * Making a template VM and starting sandboxes as its clones
 * (docs/factory.md).  The template boots once through a driver of its
 * own, its RAM a file on the template's tmpfs; once its agent answers
 * the driver pauses it and saves its device state (save_template), and
 * QEMU goes.  A clone's driver starts QEMU over the same file mapped
 * private with -incoming defer and loads that state; then the guest's
 * RNG is reseeded, its clock set and its size plugged in
 * (husk_clone_finish).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"
#include "libipc/proto_proxy.h"

#define TMPL_SEED_BYTES 64

/* ------------------------------------------------------------------ */
/* Making the template                                                 */

static int tmpfs_up(const struct husk_config *cfg,
		    const struct husk_tmpl_paths *p, struct husk_err **err)
{
	cleanup_free char *opts = NULL;
	cleanup_close int fd = -1;

	if (husk_mkdir_p(p->dir, 0700, err) < 0)
		return -1;
	/* Its own bound: the RAM, then logs and the state (KBs). */
	opts = husk_xasprintf("mode=0700,size=%um,nr_inodes=256",
			      cfg->factory_memory_mb + 32);
	if (mount("husk-template", p->dir, "tmpfs",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
		return husk_error_sys(err, errno, "mount a tmpfs on `%s`",
				      p->dir);
	fd = open(p->memory, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
		  O_NOFOLLOW, 0600);
	/* QEMU opens it as its own uid, read-write (docs/factory.md); the
	 * tmpfs's root is root's and 0700, so no host user reaches it. */
	if (fd < 0 || fchmod(fd, 0666) < 0 ||
	    ftruncate(fd, (off_t)cfg->factory_memory_mb << 20) < 0)
		return husk_error_sys(err, errno, "create `%s`", p->memory);
	if (mkdir(p->vm, 0700) < 0)
		return husk_error_sys(err, errno, "mkdir `%s`", p->vm);
	if (mkdir(p->share, 0755) < 0)
		return husk_error_sys(err, errno, "mkdir `%s`", p->share);
	return 0;
}

static json_t *template_create_params(const struct husk_config *cfg,
				      const struct husk_tmpl_paths *p)
{
	/* The clone's command line must have the same 9p device; the
	 * guest mounts it only at create_sandbox, after the snapshot. */
	return json_pack("{s:s, s:s?, s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s,"
			 " s:s, s:s, s:s, s:b, s:s, s:s, s:i}",
			 "kernel", cfg->kernel, "initrd", cfg->initrd,
			 "kernel_params", cfg->kernel_params,
			 "vcpus", 1, "max_vcpus", cfg->max_vcpus,
			 "memory_mb", cfg->factory_memory_mb,
			 "max_memory_mb", husk_tmpl_max_memory(cfg),
			 "memory_slots", cfg->memory_slots,
			 "machine", cfg->machine_type, "accel", cfg->accel,
			 "agent_socket", p->agent_sock,
			 "console_log", p->console_log,
			 "memory_file", p->memory, "template", 1,
			 "shared_dir", p->share, "shared_fs", cfg->shared_fs,
			 "tcg_cache_mb", cfg->tcg_cache_mb);
}

static pid_t template_driver(const struct husk_config *cfg,
			     const struct husk_tmpl_paths *p,
			     struct husk_proc_ref *ref, struct husk_err **err)
{
	cleanup_free char *uids = husk_xasprintf("%u:%u", cfg->qemu_uid_base,
						 cfg->qemu_uid_count);
	char *argv[] = { cfg->hypervisor_path, "--socket", p->hv_sock,
			 "--sandbox", "template", "--state-dir", p->vm,
			 "--qemu", cfg->qemu_path, "--virtiofsd",
			 cfg->virtiofsd_path, "--log-level",
			 cfg->debug ? "debug" : "info", "--qemu-uids", uids,
			 cfg->kvm_group[0] ? "--kvm-group" : NULL,
			 cfg->kvm_group, NULL };
	cleanup_free char *line = NULL;
	cleanup_close int dfd = -1;
	pid_t pid;

	pid = husk_spawn(argv, p->hv_log, NULL, 0, err);
	if (pid < 0)
		return husk_error_wrap(err, "start the template's driver");
	husk_proc_ref(pid, ref);
	/* For a destroy after an init that did not finish. */
	line = husk_xasprintf("%d %llu\n", (int)pid, ref->start);
	dfd = open(p->vm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || husk_write_atomic(dfd, "driver.pid", line,
					 strlen(line), 0600, err) < 0) {
		husk_proc_stop(ref, 3000);
		return dfd < 0 ? husk_error_sys(err, errno, "open `%s`",
						p->vm) : -1;
	}
	return pid;
}

static int write_manifest(const struct husk_config *cfg,
			  const struct husk_tmpl_paths *p, json_int_t state,
			  struct husk_err **err)
{
	json_t *m = husk_factory_want(cfg, err);
	cleanup_free char *txt = NULL;
	cleanup_close int dfd = -1;
	char when[32], hex[24];
	time_t now = time(NULL);
	struct tm tm;

	if (!m)
		return -1;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
		 gmtime_r(&now, &tm));
	json_object_set_new(m, "memory_bytes",
			    json_integer((json_int_t)cfg->factory_memory_mb
					 << 20));
	json_object_set_new(m, "state_bytes", json_integer(state));
	if (husk_factory_hash(p->state, hex, sizeof(hex)) < 0) {
		json_decref(m);
		return husk_error_sys(err, errno, "read `%s`", p->state);
	}
	json_object_set_new(m, "state_fnv1a64", json_string(hex));
	json_object_set_new(m, "created", json_string(when));
	txt = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(m);
	dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!txt || dfd < 0)
		return husk_error_sys(err, errno ?: ENOMEM, "write `%s`",
				      p->manifest);
	/* Written last, so a template without it is one that failed. */
	return husk_write_atomic(dfd, "manifest.json", txt, strlen(txt),
				 0600, err);
}

/* Boot, wait for the agent, save; the caller holds the lock. */
static int make_template(const struct husk_config *cfg,
			 struct husk_err **err)
{
	struct husk_tmpl_paths p;
	struct husk_proc_ref drv = { 0 };
	json_t *params, *res = NULL;
	uint64_t t0 = husk_now_ms();
	json_int_t state = 0;
	int rc = -1;

	husk_tmpl_paths(cfg, &p);
	if (husk_factory_remove(cfg, err) < 0 || tmpfs_up(cfg, &p, err) < 0)
		goto out;
	if (template_driver(cfg, &p, &drv, err) < 0)
		goto out;
	if (husk_wait_ready(HV_COMPONENT, drv.pid, p.hv_sock, HV_COMPONENT,
			    HV_M_STATUS, 10, p.hv_log, err) < 0)
		goto out;
	params = template_create_params(cfg, &p);
	rc = husk_rpc_call(p.hv_sock, HV_COMPONENT, HV_M_START, params,
			   60000, NULL, NULL, 0, err);
	json_decref(params);
	if (rc < 0)
		goto out;
	/* One call that waits for the boot: the agent answers once the
	 * guest opened its port; then we leave, and the guest's agent
	 * waits for the next host, which will be a clone's proxy. */
	rc = husk_rpc_call(p.agent_sock, AGENT_COMPONENT, AGENT_M_PING, NULL,
			   (int)cfg->agent_timeout * 1000, NULL, NULL, 0, err);
	if (rc < 0) {
		husk_error_wrap(err, "the template's agent (console: %s)",
				p.console_log);
		goto out;
	}
	params = json_pack("{s:s}", "path", p.state);
	rc = husk_rpc_call(p.hv_sock, HV_COMPONENT, HV_M_SAVE_TEMPLATE,
			   params, 60000, &res, NULL, 0, err);
	json_decref(params);
	state = json_integer_value(json_object_get(res, "state_bytes"));
	json_decref(res);
	if (rc < 0)
		goto out;
	params = json_pack("{s:b}", "force", 1);
	rc = husk_rpc_call(p.hv_sock, HV_COMPONENT, HV_M_STOP, params, 10000,
			   NULL, NULL, 0, err);
	json_decref(params);
	if (rc < 0)
		goto out;
	husk_proc_stop(&drv, 3000);
	drv.pid = 0;
	rc = write_manifest(cfg, &p, state, err);
	if (rc == 0)
		log_info("template made at %s in %llu ms (%lld bytes of device "
			 "state)", p.dir,
			 (unsigned long long)(husk_now_ms() - t0),
			 (long long)state);
out:
	if (drv.pid > 0)
		husk_proc_stop(&drv, 3000);
	if (rc < 0) {
		cleanup_err struct husk_err *e = NULL;

		husk_error_wrap(err, "make the VM template at %s", p.dir);
		husk_factory_remove(cfg, &e);
	}
	husk_tmpl_paths_free(&p);
	return rc;
}

/* A configuration no template can serve: why, or NULL. */
static const char *no_template(const struct husk_config *cfg)
{
	if (!cfg->kernel || !cfg->kernel[0])
		return "no [hypervisor] kernel";
	/* A clone is sized by hotplug, which microvm has not. */
	if (strcmp(cfg->machine_type, "q35"))
		return "[hypervisor] machine_type is not q35: a clone is "
		       "sized by hotplug";
	/* virtiofsd maps guest RAM: it would not see a clone's pages, and
	 * QEMU refuses to migrate vhost-user-fs. */
	if (strcmp(cfg->shared_fs, "virtio-9p"))
		return "[hypervisor] shared_fs is virtio-fs, which cannot "
		       "serve a clone (virtio-9p can)";
	return NULL;
}

int husk_factory_init(const struct husk_config *cfg, bool *made,
		      struct husk_err **err)
{
	cleanup_close int lock = -1;
	json_t *have = NULL, *want = NULL;
	const char *cannot = no_template(cfg);
	char why[512];
	int rc;

	*made = false;
	if (cannot)
		return husk_error(err, HUSK_E_INVALID, "factory init: %s",
				  cannot);
	lock = husk_factory_lock(cfg, LOCK_EX, err);
	if (lock < 0)
		return -1;
	rc = husk_factory_check(cfg, &have, &want, why, sizeof(why), err);
	json_decref(have);
	json_decref(want);
	if (rc < 0)
		return -1;
	if (rc == HUSK_TMPL_OK)
		return 0;
	if (rc != HUSK_TMPL_ABSENT)
		log_warnx("the template is not usable (%s): making it again",
			  why);
	if (make_template(cfg, err) < 0)
		return -1;
	*made = true;
	return 0;
}

int husk_factory_prepare(const struct husk_config *cfg, json_t **manifest,
			 int *lockp, struct husk_err **err)
{
	cleanup_close int lock = -1;
	json_t *have = NULL, *want = NULL;
	const char *cannot = no_template(cfg);
	char why[512];
	int rc;

	*manifest = NULL;
	*lockp = -1;
	if (cannot) {
		log_info("booting cold: %s", cannot);
		return 0;
	}
	for (int pass = 0; pass < 2; pass++) {
		lock = husk_factory_lock(cfg, pass ? LOCK_EX : LOCK_SH, err);
		if (lock < 0)
			return -1;
		rc = husk_factory_check(cfg, &have, &want, why, sizeof(why),
					err);
		json_decref(want);
		if (rc < 0)
			return -1;
		if (rc == HUSK_TMPL_OK) {
			*manifest = have;
			*lockp = lock;
			lock = -1;
			return 0;
		}
		json_decref(have);
		have = NULL;
		if (rc == HUSK_TMPL_DIFFERS) {
			log_info("booting cold: the VM template does not fit "
				 "this sandbox: %s", why);
			return 0;
		}
		if (pass == 0) {
			/* To make it: the exclusive lock, then look again
			 * (another sandbox may have made it meanwhile). */
			close(lock);
			lock = -1;
			continue;
		}
		if (rc == HUSK_TMPL_STALE)
			log_warnx("the VM template is refused (%s): making it "
				  "again", why);
		else
			log_info("no VM template yet: making it");
		if (make_template(cfg, err) < 0)
			return -1;
		rc = husk_factory_check(cfg, &have, &want, why, sizeof(why),
					err);
		json_decref(want);
		if (rc != HUSK_TMPL_OK) {
			json_decref(have);
			return rc < 0 ? -1 : husk_error(err, HUSK_E_INTERNAL,
							"the template just "
							"made is not usable: "
							"%s", why);
		}
		/* Shared from here: other clones may start meanwhile. */
		if (flock(lock, LOCK_SH) < 0) {
			json_decref(have);
			return husk_error_sys(err, errno, "lock the template");
		}
		*manifest = have;
		*lockp = lock;
		lock = -1;
		return 0;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* A clone                                                             */

json_t *husk_clone_params(const struct husk_config *cfg, const json_t *tmpl,
			  const char *agent_sock, const char *console_log,
			  const char *shared)
{
	const json_t *c = json_object_get(tmpl, "config");
	struct husk_tmpl_paths p;
	json_t *j;

	husk_tmpl_paths(cfg, &p);
	/* The template's command line, to the device: only the backends
	 * (sockets, logs) and the RAM's sharing differ. */
	j = json_pack("{s:s, s:s?, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O,"
		      " s:s, s:s, s:s}",
		      "kernel", cfg->kernel, "initrd", cfg->initrd,
		      "kernel_params", cfg->kernel_params,
		      "vcpus", json_object_get(tmpl, "vcpus"),
		      "memory_mb", json_object_get(tmpl, "memory_mb"),
		      "max_vcpus", json_object_get(c, "max_vcpus"),
		      "max_memory_mb", json_object_get(c, "max_memory_mb"),
		      "memory_slots", json_object_get(c, "memory_slots"),
		      "machine", json_object_get(c, "machine"),
		      "accel", json_object_get(c, "accel"),
		      "agent_socket", agent_sock,
		      "memory_file", p.memory, "incoming", p.state);
	/* The template's 9p device, serving this sandbox's share. */
	if (j)
		json_object_set_new(j, "shared_dir", json_string(shared));
	if (j)
		json_object_set_new(j, "shared_fs", json_string("virtio-9p"));
	/* TCG's code cache is the clone's own, not in the saved state. */
	if (j)
		json_object_set_new(j, "tcg_cache_mb",
				    json_integer(cfg->tcg_cache_mb));
	if (j && cfg->console_log) {
		json_object_set_new(j, "console_log", json_string(console_log));
		json_object_set_new(j, "console_log_max_kb",
				    json_integer(cfg->console_log_max_kb));
	}
	husk_tmpl_paths_free(&p);
	return j;
}

/* ------------------------------------------------------------------ */
/* A clone's first steps                                               */

/* reseed_random_dev takes bytes (msgpack bin), which JSON cannot say. */
static int reseed(const char *sock, struct husk_err **err)
{
	unsigned char seed[TMPL_SEED_BYTES];
	struct ipc_client cl;
	struct ipc_msg resp;
	msgpack_packer *pk;
	int rc;

	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return husk_error_sys(err, errno, "getrandom");
	if (ipc_client_connect(&cl, sock, "husk", PROXY_COMPONENT, 10000,
			       err) < 0) {
		explicit_bzero(seed, sizeof(seed));
		return husk_error_wrap(err, "connect to %s", PROXY_COMPONENT);
	}
	pk = ipc_client_begin(&cl, AGENT_M_RESEED_RANDOM_DEV);
	msgpack_pack_map(pk, 1);
	ipc_pack_str(pk, "data");
	msgpack_pack_bin(pk, sizeof(seed));
	msgpack_pack_bin_body(pk, seed, sizeof(seed));
	explicit_bzero(seed, sizeof(seed));
	rc = ipc_client_call(&cl, 10000, NULL, 0, &resp, err);
	ipc_client_close(&cl);
	if (rc < 0)
		return husk_error_wrap(err, "%s", AGENT_M_RESEED_RANDOM_DEV);
	ipc_msg_free(&resp);
	return 0;
}

int husk_clone_finish(struct husk_entry *e, const struct husk_config *cfg,
		      const char *root, struct husk_sandbox *s,
		      struct husk_err **err)
{
	struct husk_sbx_paths p;
	unsigned mem = 0, cpus = 0;
	struct timeval tv;
	json_t *params;
	int rc = -1;

	if (!s->clone_memory_mb || s->clone_finished)
		return 0;
	if (husk_sandbox_paths(root, s->id, &p, err) < 0)
		return -1;
	/* Every clone woke with the template's RNG state: first of all,
	 * new entropy from the host's. */
	if (reseed(p.proxy_sock, err) < 0)
		goto out;
	/* Its clock stopped when the template was saved. */
	gettimeofday(&tv, NULL);
	params = json_pack("{s:I, s:I}", "sec", (json_int_t)tv.tv_sec,
			   "usec", (json_int_t)tv.tv_usec);
	rc = husk_rpc_call(p.proxy_sock, PROXY_COMPONENT,
			   AGENT_M_SET_GUEST_DATETIME, params, 10000, NULL,
			   NULL, 0, err);
	json_decref(params);
	if (rc < 0)
		goto out;
	if (cfg->memory_mb > s->clone_memory_mb)
		mem = (cfg->memory_mb - s->clone_memory_mb + 127) / 128 * 128;
	if (cfg->vcpus > s->clone_vcpus)
		cpus = cfg->vcpus - s->clone_vcpus;
	rc = husk_sandbox_grow(root, s->id, mem, cpus, NULL, NULL, err);
	if (rc < 0)
		goto out;
	s->clone_finished = true;
	rc = husk_sandbox_write(e, s, err);
out:
	husk_sandbox_paths_free(&p);
	if (rc < 0)
		husk_error_wrap(err, "the clone's first steps");
	return rc;
}
