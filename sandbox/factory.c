/*
 * VM templates (docs/factory.md): a template VM booted once, its RAM a
 * file on a tmpfs of its own at [factory] template_path, its device
 * state saved by migration with x-ignore-shared; clones map the file
 * private (clone.c).  A manifest says what made the template, and a
 * template whose files or makers changed is refused and rebuilt, never
 * booted.
 *
 *   <template_path>/            tmpfs, 0700, root's
 *       manifest.json           what made it (husk_factory_want)
 *       memory                  the guest's RAM (0666: QEMU's uid opens it)
 *       state                   device state (save_template)
 *       share/                  empty: the 9p export the template has
 *                               and never mounts (a clone's is its own)
 *       vm/                     the template driver's state directory
 *   <template_path>.lock        flock: one maker at a time
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"

#define MANIFEST_VERSION 1
#define MANIFEST_MAX (64 * 1024)
#define TMPFS_MAGIC_ 0x01021994

void husk_tmpl_paths(const struct husk_config *cfg, struct husk_tmpl_paths *p)
{
	const char *d = cfg->factory_template_path;

	p->dir = husk_xstrdup(d);
	p->lock = husk_xasprintf("%s.lock", d);
	p->memory = husk_xasprintf("%s/memory", d);
	p->state = husk_xasprintf("%s/state", d);
	p->manifest = husk_xasprintf("%s/manifest.json", d);
	p->vm = husk_xasprintf("%s/vm", d);
	p->hv_sock = husk_xasprintf("%s/vm/hv.sock", d);
	p->agent_sock = husk_xasprintf("%s/vm/agent.sock", d);
	p->hv_log = husk_xasprintf("%s/vm/hypervisor.log", d);
	p->console_log = husk_xasprintf("%s/vm/console.log", d);
	p->driver = husk_xasprintf("%s/vm/driver.pid", d);
	p->share = husk_xasprintf("%s/share", d);
}

void husk_tmpl_paths_free(struct husk_tmpl_paths *p)
{
	char **v[] = { &p->dir, &p->lock, &p->memory, &p->state,
		       &p->manifest, &p->vm, &p->hv_sock, &p->agent_sock,
		       &p->hv_log, &p->console_log, &p->driver, &p->share };

	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
		free(*v[i]);
		*v[i] = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* The manifest                                                        */

/* A file's identity: path, size and mtime (ns), so that a rebuilt
 * kernel, initrd, QEMU or driver under the same path is seen. */
static json_t *file_id(const char *path, const char *what,
		       struct husk_err **err)
{
	struct stat st;

	if (!path || !path[0])
		return json_null();
	if (stat(path, &st) < 0) {
		husk_error_sys(err, errno, "%s `%s`", what, path);
		return NULL;
	}
	return json_pack("{s:s, s:I, s:I}", "path", path,
			 "size", (json_int_t)st.st_size,
			 "mtime_ns", (json_int_t)st.st_mtim.tv_sec * 1000000000 +
				     st.st_mtim.tv_nsec);
}

unsigned husk_tmpl_max_memory(const struct husk_config *cfg)
{
	/* As hv_create_params: whole 128 MiB blocks above the boot size. */
	unsigned base = cfg->factory_memory_mb;

	if (cfg->max_memory_mb <= base)
		return base;
	return base + (cfg->max_memory_mb - base) / 128 * 128;
}

json_t *husk_factory_want(const struct husk_config *cfg,
			  struct husk_err **err)
{
	json_t *files = json_object(), *j;
	static const char *const names[] = {
		"kernel", "initrd", "qemu", "hypervisor",
	};
	const char *paths[] = {
		cfg->kernel, cfg->initrd, cfg->qemu_path, cfg->hypervisor_path,
	};

	for (size_t i = 0; i < 4; i++) {
		json_t *id = file_id(paths[i], names[i], err);

		if (!id) {
			json_decref(files);
			return NULL;
		}
		json_object_set_new(files, names[i], id);
	}
	/* Everything that shapes QEMU's command line or the guest's boot
	 * but the boot size, which clones change by hotplug. */
	j = json_pack("{s:i, s:o, s:{s:s, s:s, s:s, s:i, s:i, s:i, s:s},"
		      " s:i, s:i}",
		      "version", MANIFEST_VERSION, "files", files,
		      "config", "machine", cfg->machine_type,
		      "accel", cfg->accel, "kernel_params", cfg->kernel_params,
		      "max_vcpus", cfg->max_vcpus,
		      "max_memory_mb", husk_tmpl_max_memory(cfg),
		      "memory_slots", cfg->memory_slots,
		      "share", cfg->shared_fs,
		      "vcpus", 1, "memory_mb", cfg->factory_memory_mb);
	if (!j)
		husk_error(err, HUSK_E_SYSTEM, "the template's manifest");
	return j;
}

static bool same(const json_t *a, const json_t *b)
{
	return a && b && json_equal(a, b);
}

/* A value for a message: strings bare, the rest as JSON. */
static char *show(const json_t *v)
{
	if (json_is_string(v) && json_string_length(v))
		return husk_xstrdup(json_string_value(v));
	if (json_is_string(v))
		return husk_xstrdup("\"\"");
	if (!v)
		return husk_xstrdup("(none)");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) ?:
	       husk_xstrdup("?");
}

static int file_size_is(const char *dir, const char *name, json_int_t want,
			char *why, size_t n)
{
	cleanup_free char *path = husk_xasprintf("%s/%s", dir, name);
	struct stat st;

	if (lstat(path, &st) < 0) {
		snprintf(why, n, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "%s is not a regular file", path);
		return -1;
	}
	if (want <= 0 || st.st_size != want) {
		snprintf(why, n, "%s has %lld bytes, the manifest says %lld "
			 "(truncated or damaged)", path,
			 (long long)st.st_size, (long long)want);
		return -1;
	}
	return 0;
}

/* FNV-1a over a file: a damaged device state is refused before QEMU
 * reads it (a failed load would fail the sandbox, not rebuild). */
int husk_factory_hash(const char *path, char *hex, size_t n)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t h = 0xcbf29ce484222325ULL;
	unsigned char buf[65536];
	ssize_t r;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0)
			return -1;
		for (ssize_t i = 0; i < r; i++) {
			h ^= buf[i];
			h *= 0x100000001b3ULL;
		}
	}
	snprintf(hex, n, "%016llx", (unsigned long long)h);
	return 0;
}

int husk_factory_compare(const json_t *have, const json_t *want,
			 const char *dir, char *why, size_t n)
{
	const json_t *hc = json_object_get(have, "config");
	const json_t *wc = json_object_get(want, "config");
	const json_t *hf = json_object_get(have, "files");
	const json_t *wf = json_object_get(want, "files");
	const char *key;
	json_t *wv;

	if (!json_is_object(have) || !json_is_object(hc) ||
	    !json_is_object(hf) ||
	    json_integer_value(json_object_get(have, "version")) !=
	    MANIFEST_VERSION) {
		snprintf(why, n, "%s/manifest.json is not a version %d "
			 "manifest", dir, MANIFEST_VERSION);
		return HUSK_TMPL_STALE;
	}
	/* What the sandbox asks for differs: it boots cold. */
	json_object_foreach((json_t *)wc, key, wv) {
		json_t *hv = json_object_get(hc, key);

		if (!same(hv, wv)) {
			cleanup_free char *a = show(hv), *b = show(wv);

			snprintf(why, n, "[hypervisor] %s: the template has "
				 "%s, this sandbox %s", key, a, b);
			return HUSK_TMPL_DIFFERS;
		}
	}
	if (!same(json_object_get(have, "memory_mb"),
		  json_object_get(want, "memory_mb"))) {
		snprintf(why, n, "[hypervisor] memory_mb: the template boots "
			 "with %lld MiB, this configuration %lld",
			 json_integer_value(json_object_get(have, "memory_mb")),
			 json_integer_value(json_object_get(want,
							    "memory_mb")));
		return HUSK_TMPL_DIFFERS;
	}
	json_object_foreach((json_t *)wf, key, wv) {
		json_t *hv = json_object_get(hf, key);
		json_t *hp = json_is_object(hv) ? json_object_get(hv, "path")
						: NULL;
		json_t *wp = json_is_object(wv) ? json_object_get(wv, "path")
						: NULL;

		if (!(!hp && !wp) && !same(hp, wp)) {
			cleanup_free char *a = show(hp), *b = show(wp);

			snprintf(why, n, "%s: the template was made with %s, "
				 "this sandbox uses %s", key, a, b);
			return HUSK_TMPL_DIFFERS;
		}
		/* Same path, another file: the template is stale. */
		if (wp && !same(hv, wv)) {
			cleanup_free char *b = show(wp);

			snprintf(why, n, "%s %s changed since the template "
				 "was made (size or mtime)", key, b);
			return HUSK_TMPL_STALE;
		}
	}
	if (file_size_is(dir, "memory", json_integer_value(
				 json_object_get(have, "memory_bytes")),
			 why, n) < 0 ||
	    file_size_is(dir, "state", json_integer_value(
				 json_object_get(have, "state_bytes")),
			 why, n) < 0)
		return HUSK_TMPL_STALE;
	{
		cleanup_free char *path = husk_xasprintf("%s/state", dir);
		const char *sum = json_string_value(json_object_get(
			have, "state_fnv1a64"));
		char hex[24];

		if (!sum || husk_factory_hash(path, hex, sizeof(hex)) < 0 ||
		    strcmp(hex, sum)) {
			snprintf(why, n, "%s: its content is not what the "
				 "manifest says (damaged)", path);
			return HUSK_TMPL_STALE;
		}
	}
	return HUSK_TMPL_OK;
}

static bool is_mounted_tmpfs(const char *dir)
{
	struct statfs sf;
	struct stat st, up;
	cleanup_free char *parent = husk_xasprintf("%s/..", dir);

	if (statfs(dir, &sf) < 0 || (unsigned long)sf.f_type != TMPFS_MAGIC_)
		return false;
	/* Its own file system, not a folder in /run's tmpfs. */
	return stat(dir, &st) == 0 && stat(parent, &up) == 0 &&
	       st.st_dev != up.st_dev;
}

/* The template as it is: HUSK_TMPL_ABSENT, or compare's answer, with
 * the manifest read (*have). */
int husk_factory_check(const struct husk_config *cfg, json_t **have,
		       json_t **want, char *why, size_t n,
		       struct husk_err **err)
{
	struct husk_tmpl_paths p;
	cleanup_free char *buf = NULL;
	json_error_t je;
	size_t len;
	int rc;

	*have = NULL;
	*want = husk_factory_want(cfg, err);
	if (!*want)
		return -1;
	husk_tmpl_paths(cfg, &p);
	if (!is_mounted_tmpfs(p.dir)) {
		snprintf(why, n, "no template at %s", p.dir);
		rc = HUSK_TMPL_ABSENT;
		goto out;
	}
	if (husk_read_file_flags(AT_FDCWD, p.manifest, O_NOFOLLOW,
				 MANIFEST_MAX, &buf, &len, NULL) < 0) {
		snprintf(why, n, "%s: missing or unreadable (an unfinished "
			 "or damaged template)", p.manifest);
		rc = HUSK_TMPL_STALE;
		goto out;
	}
	*have = json_loadb(buf, len, 0, &je);
	rc = husk_factory_compare(*have, *want, p.dir, why, n);
out:
	husk_tmpl_paths_free(&p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Lock, destroy                                                       */

int husk_factory_lock(const struct husk_config *cfg, int op,
		      struct husk_err **err)
{
	struct husk_tmpl_paths p;
	cleanup_free char *parent = NULL;
	int fd = -1;
	char *slash;

	husk_tmpl_paths(cfg, &p);
	parent = husk_xstrdup(p.dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (husk_mkdir_p(parent, 0700, err) < 0)
		goto out;
	fd = open(p.lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		husk_error_sys(err, errno, "open `%s`", p.lock);
		goto out;
	}
	while (flock(fd, op) < 0) {
		if (errno == EINTR)
			continue;
		husk_error_sys(err, errno, "lock `%s`", p.lock);
		close(fd);
		fd = -1;
		break;
	}
out:
	husk_tmpl_paths_free(&p);
	return fd;
}

/* The template driver of an init that did not finish (killed husk). */
static void stop_leftover_driver(const struct husk_tmpl_paths *p)
{
	cleanup_free char *buf = NULL;
	struct husk_proc_ref ref = { 0 };
	long long pid = 0, start = 0;
	size_t len;

	if (husk_read_file_flags(AT_FDCWD, p->driver, O_NOFOLLOW, 64, &buf,
				 &len, NULL) < 0 ||
	    sscanf(buf, "%lld %lld", &pid, &start) != 2 || pid <= 1)
		return;
	ref.pid = (pid_t)pid;
	ref.start = (unsigned long long)start;
	if (husk_proc_alive(&ref)) {
		log_info("template: stopping the driver %lld left by an "
			 "unfinished init", pid);
		husk_proc_stop(&ref, 3000);
	}
}

/* Everything of the template goes; the caller holds the lock. */
int husk_factory_remove(const struct husk_config *cfg, struct husk_err **err)
{
	struct husk_tmpl_paths p;
	int rc = 0, tries = 0;

	husk_tmpl_paths(cfg, &p);
	stop_leftover_driver(&p);
	/* Lazily: running clones keep the RAM they mapped. */
	while (is_mounted_tmpfs(p.dir) && tries++ < 16)
		if (umount2(p.dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			rc = husk_error_sys(err, errno, "unmount `%s`", p.dir);
			goto out;
		}
	if (rmdir(p.dir) < 0 && errno != ENOENT) {
		/* Files of a template made without its tmpfs: not ours to
		 * remove blindly. */
		rc = husk_error_sys(err, errno, "remove `%s`", p.dir);
	}
out:
	husk_tmpl_paths_free(&p);
	return rc;
}

int husk_factory_destroy(const struct husk_config *cfg, struct husk_err **err)
{
	struct husk_tmpl_paths p;
	cleanup_close int lock = husk_factory_lock(cfg, LOCK_EX, err);
	cleanup_free char *parent = NULL;
	char *slash;
	int rc;

	if (lock < 0)
		return -1;
	rc = husk_factory_remove(cfg, err);
	if (rc < 0)
		return -1;
	husk_tmpl_paths(cfg, &p);
	unlink(p.lock);
	parent = husk_xstrdup(p.dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		/* Only when empty: the cache may keep its files there. */
		rmdir(parent);
	}
	husk_tmpl_paths_free(&p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Status                                                              */

static json_t *file_bytes(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return json_null();
	/* Allocated, not apparent: what the template holds in RAM. */
	return json_pack("{s:I, s:I}", "size", (json_int_t)st.st_size,
			 "allocated", (json_int_t)st.st_blocks * 512);
}

int husk_factory_status(const struct husk_config *cfg, json_t **out,
			struct husk_err **err)
{
	struct husk_tmpl_paths p;
	json_t *have = NULL, *want = NULL, *t;
	char why[512];
	int rc;

	rc = husk_factory_check(cfg, &have, &want, why, sizeof(why), err);
	if (rc < 0)
		return -1;
	husk_tmpl_paths(cfg, &p);
	if (rc == HUSK_TMPL_ABSENT) {
		t = json_null();
	} else {
		t = json_pack("{s:s, s:b, s:s, s:o, s:o, s:o}",
			      "path", p.dir, "usable", rc == HUSK_TMPL_OK,
			      "reason", rc == HUSK_TMPL_OK ? "" : why,
			      "manifest", have ? json_incref(have) : json_null(),
			      "memory", file_bytes(p.memory),
			      "state", file_bytes(p.state));
		if (rc == HUSK_TMPL_DIFFERS)
			json_object_set_new(t, "differs", json_true());
	}
	*out = json_pack("{s:b, s:s, s:o}", "enabled", cfg->factory_template,
			 "template_path", p.dir, "template", t);
	json_decref(have);
	json_decref(want);
	husk_tmpl_paths_free(&p);
	return 0;
}
