/*
 * A sandbox's share: what virtiofsd serves to the guest (docs/share.md).
 *
 *   <sandbox>/share-stage   a tmpfs of its own (size and inode bound),
 *                           marked shared; only the host writes it
 *   <sandbox>/shared        a read-only bind of it: virtiofsd serves this
 *
 * The host builds each container's <cid>/rootfs and <cid>/mounts/<n> in
 * the staging tmpfs, beneath descriptors and without following a
 * symlink, and attaches every bind onto the descriptor it checked,
 * nosuid,nodev (and read-only for `ro` mounts and root.readonly) before
 * the bind propagates to the served view and to virtiofsd's namespace.
 * The guest can then write only inside binds that are writable; it
 * cannot plant anything where the host builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/mountat.h"
#include "libhusk/util.h"
#include "sandbox.h"

/* Unmount every mount stacked at path (lazily, with what is below it),
 * never following a symlink at its end; the parents of path are the
 * host's (the sandbox's state directory). */
static void umount_all(const char *path)
{
	for (int i = 0; i < 64; i++) {
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno != EINVAL && errno != ENOENT)
			log_warn("share: umount %s", path);
		return;
	}
}

int husk_share_setup(const struct husk_config *cfg,
		     const struct husk_sbx_paths *p, struct husk_err **err)
{
	cleanup_free char *opts = husk_xasprintf("mode=0755,size=%um,"
						 "nr_inodes=%u",
						 cfg->share_size_mb,
						 cfg->share_inodes);
	cleanup_close int sfd = -1, tfd = -1;

	if (mkdir(p->stage, 0700) < 0 && errno != EEXIST)
		return husk_error_sys(err, errno, "mkdir `%s`", p->stage);
	if (mkdir(p->shared, 0755) < 0 && errno != EEXIST)
		return husk_error_sys(err, errno, "mkdir `%s`", p->shared);
	/* A retry after a failed start finds them mounted already. */
	umount_all(p->shared);
	umount_all(p->stage);
	if (mount("husk-share", p->stage, "tmpfs",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
		return husk_error_sys(err, errno, "mount the share's tmpfs "
				      "(%s) on `%s`", opts, p->stage);
	/* Shared: the binds made in it later reach the served view, its
	 * peer, and virtiofsd's namespace, whose copies are slaves. */
	if (mount(NULL, p->stage, NULL, MS_SHARED, NULL) < 0)
		return husk_error_sys(err, errno, "make `%s` shared",
				      p->stage);
	sfd = open(p->stage, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return husk_error_sys(err, errno, "open `%s`", p->stage);
	tfd = open(p->shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0)
		return husk_error_sys(err, errno, "open `%s`", p->shared);
	/* The guest sees a read-only top: it can write only inside the
	 * binds that are writable themselves. */
	return husk_bind_fd(sfd, tfd, HUSK_BIND_RDONLY | HUSK_BIND_NOEXEC,
			    "the share's read-only view", err);
}

void husk_share_teardown(const struct husk_sbx_paths *p)
{
	/* The served view first: it is the peer whose copies are in
	 * virtiofsd's namespace; then the staging tmpfs and every bind in
	 * it.  MNT_DETACH takes the mounts below each along. */
	umount_all(p->shared);
	umount_all(p->stage);
	if (rmdir(p->stage) < 0 && errno != ENOENT)
		log_warn("share: rmdir %s", p->stage);
}

static bool has_opt(const json_t *opts, const char *o)
{
	size_t i;
	json_t *v;

	json_array_foreach(opts, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), o))
			return true;
	return false;
}

bool husk_mount_is_bind(const json_t *m)
{
	json_t *type = json_object_get(m, "type");
	json_t *opts = json_object_get(m, "options");

	return (json_is_string(type) &&
		!strcmp(json_string_value(type), "bind")) ||
	       has_opt(opts, "bind") || has_opt(opts, "rbind");
}

/* ro or rw, the last one given wins (as mount(8) reads options). */
static bool opts_readonly(const json_t *opts)
{
	bool ro = false;
	size_t i;
	json_t *v;

	json_array_foreach(opts, i, v) {
		const char *s = json_string_value(v);

		if (s && !strcmp(s, "ro"))
			ro = true;
		else if (s && !strcmp(s, "rw"))
			ro = false;
	}
	return ro;
}

/*
 * What reaches the share from the source's mount later: nothing (runc's
 * default for binds, rprivate), or the host's new mounts with a slave or
 * shared option (Kubernetes' HostToContainer, Bidirectional); nothing
 * goes the other way, the guest cannot mount on the host.
 */
static unsigned propagation(const json_t *opts)
{
	static const char *const from_host[] = { "rslave", "slave", "rshared",
						 "shared" };

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(from_host); i++)
		if (has_opt(opts, from_host[i]))
			return HUSK_BIND_SLAVE;
	return HUSK_BIND_PRIVATE;
}

/* The staging tmpfs, where the container's files are built; an error
 * when the sandbox has none (its served view may then be writable by
 * the guest, and nothing is built there). */
static int open_stage(const struct husk_sbx_paths *p, struct husk_err **err)
{
	int fd = open(p->stage, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		      O_CLOEXEC);

	if (fd < 0)
		return husk_error_sys(err, errno, "open the share `%s`",
				      p->stage);
	if (!husk_is_mount_root(fd)) {
		close(fd);
		return husk_error(err, HUSK_E_STATE, "the share `%s` is not "
				  "mounted (a sandbox started by an older "
				  "husk?): refusing to build in it", p->stage);
	}
	return fd;
}

/* One bind-mount source: an absolute host path, or one resolved beneath
 * the bundle (no symlink or ".." leaves it). */
static int open_source(const struct husk_bundle *b, int *bundlefd,
		       const char *src, size_t i, struct husk_err **err)
{
	int fd;

	/* The descriptor the bundle was checked with, where it has one. */
	if (i < b->nsrcs && b->srcs[i].fd >= 0) {
		fd = fcntl(b->srcs[i].fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return husk_error_sys(err, errno, "config.json: "
					      "mounts[%zu].source `%s`", i,
					      src);
		return fd;
	}
	if (src[0] == '/') {
		fd = open(src, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return husk_error_sys(err, errno, "config.json: "
					      "mounts[%zu].source `%s`", i,
					      src);
		return fd;
	}
	if (*bundlefd < 0) {
		*bundlefd = open(b->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (*bundlefd < 0)
			return husk_error_sys(err, errno, "open the bundle "
					      "`%s`", b->path);
	}
	fd = husk_open_beneath(*bundlefd, src, O_PATH, 0, err);
	if (fd < 0)
		return husk_error_wrap(err, "config.json: mounts[%zu].source "
				       "(beneath the bundle)", i);
	return fd;
}

/* A full tmpfs says which knob to turn. */
static int stage_error(struct husk_err **err)
{
	if (err && *err && (*err)->errnum == ENOSPC)
		return husk_error_wrap(err, "the share is full (raise "
				       "[hypervisor] share_inodes or "
				       "share_size_mb)");
	return -1;
}

static int share_mount(int mdir, const struct husk_bundle *b, int *bundlefd,
		       const json_t *m, size_t i, const char *where,
		       json_t *binds, bool *is_file, struct husk_err **err)
{
	const json_t *opts = json_object_get(m, "options");
	const char *src = json_string_value(json_object_get(m, "source"));
	cleanup_close int sfd = -1, tfd = -1;
	char name[24], what[48];
	unsigned flags = 0;
	struct stat st;

	if (!src)
		return husk_error(err, HUSK_E_INVALID, "config.json: "
				  "mounts[%zu].source: a bind mount needs a "
				  "source", i);
	sfd = open_source(b, bundlefd, src, i, err);
	if (sfd < 0)
		return -1;
	if (fstat(sfd, &st) < 0)
		return husk_error_sys(err, errno, "config.json: "
				      "mounts[%zu].source `%s`", i, src);
	*is_file = !S_ISDIR(st.st_mode);
	snprintf(name, sizeof(name), "%zu", i);
	snprintf(what, sizeof(what), "mounts[%zu]", i);
	tfd = *is_file ? husk_mkfile_at(mdir, name, 0644, err) :
			 husk_mkdir_beneath(mdir, name, 0755, err);
	if (tfd < 0) {
		stage_error(err);
		return husk_error_wrap(err, "config.json: mounts[%zu]: the "
				       "mount point in the share", i);
	}
	if (has_opt(opts, "rbind"))
		flags |= HUSK_BIND_REC;
	if (opts_readonly(opts))
		flags |= HUSK_BIND_RDONLY;
	flags |= propagation(opts);
	if (husk_bind_fd(sfd, tfd, flags, what, err) < 0)
		return husk_error_wrap(err, "config.json: source `%s`", src);
	json_array_append_new(binds, json_sprintf("%s/mounts/%s", where,
						  name));
	return 0;
}

/* Is mounts[i]'s destination at or below an earlier mount's (whose file
 * system, not the root's, then holds its mount point)? */
static bool dest_covered(const json_t *mounts, size_t i, const char *dest)
{
	for (size_t j = 0; j < i; j++) {
		const char *d = json_string_value(json_object_get(
			json_array_get(mounts, j), "destination"));
		size_t n = d ? strlen(d) : 0;

		while (n > 1 && d[n - 1] == '/')
			n--;
		if (n > 1 && !strncmp(dest, d, n) &&
		    (dest[n] == '/' || !dest[n]))
			return true;
	}
	return false;
}

/*
 * A read-only root cannot get mount points in the guest (the host's bind
 * refuses the agent's mkdir), so the host makes the missing ones in the
 * root file system first, beneath it, as runc does before it makes a
 * root read-only.  Those below another mount are the guest's to make.
 */
static int make_mount_point(int rootfd, const json_t *mounts, size_t i,
			    bool is_file, struct husk_err **err)
{
	const char *dest = json_string_value(json_object_get(
		json_array_get(mounts, i), "destination"));
	int fd;

	if (!dest || !strcmp(dest, "/") || dest_covered(mounts, i, dest))
		return 0;
	fd = husk_mkpath_in_root(rootfd, dest, is_file, err);
	if (fd < 0)
		return husk_error_wrap(err, "config.json: mounts[%zu]: "
				       "root.readonly is true and the mount "
				       "point is missing in the root file "
				       "system", i);
	close(fd);
	return 0;
}

int husk_share_container(const struct husk_sbx_paths *p, const char *cid,
			 const struct husk_bundle *b, json_t *binds,
			 struct husk_err **err)
{
	cleanup_close int stage = -1, dir = -1, mdir = -1, sfd = -1,
			  tfd = -1, bundlefd = -1;
	cleanup_free char *where = husk_xasprintf("%s/%s", p->stage, cid);
	json_t *mounts = json_object_get(b->spec, "mounts"), *m;
	bool ro = json_is_true(json_object_get(json_object_get(b->spec,
								"root"),
						"readonly"));
	size_t i;

	stage = open_stage(p, err);
	if (stage < 0)
		return -1;
	dir = husk_mkdir_beneath(stage, cid, 0755, err);
	if (dir < 0)
		return stage_error(err);
	sfd = b->rootfd >= 0 ? fcntl(b->rootfd, F_DUPFD_CLOEXEC, 3) :
			       open(b->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return husk_error_sys(err, errno, "open the root file system "
				      "`%s`", b->rootfs);
	json_array_foreach(mounts, i, m) {
		bool is_file = false;

		if (husk_mount_is_bind(m)) {
			if (mdir < 0) {
				mdir = husk_mkdir_beneath(dir, "mounts", 0755,
							  err);
				if (mdir < 0)
					return stage_error(err);
			}
			if (share_mount(mdir, b, &bundlefd, m, i, where,
					binds, &is_file, err) < 0)
				return -1;
		}
		if (ro && make_mount_point(sfd, mounts, i, is_file, err) < 0)
			return -1;
	}
	tfd = husk_mkdir_beneath(dir, "rootfs", 0755, err);
	if (tfd < 0)
		return stage_error(err);
	/* root.readonly holds on the host too: the agent's remount in the
	 * guest is only as strong as the guest. */
	if (husk_bind_fd(sfd, tfd, HUSK_BIND_REC | HUSK_BIND_PRIVATE |
			 (ro ? HUSK_BIND_RDONLY : 0), "the root file system",
			 err) < 0)
		return husk_error_wrap(err, "share the root file system");
	json_array_append_new(binds, json_sprintf("%s/rootfs", where));
	return 0;
}

/* Take off the binds of one container directory and remove it; its
 * entries are the host's (the tmpfs is read-only to the guest), and
 * nothing in it is followed anyway. */
static void unshare_in(int top, const char *top_path, const char *cid)
{
	cleanup_err struct husk_err *e = NULL;
	cleanup_close int dir = -1, mdir = -1;
	cleanup_closedir DIR *d = NULL;
	struct dirent *de;

	dir = openat(top, cid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (dir < 0) {
		if (errno != ENOENT)
			log_warn("open %s/%s",
				 top_path, cid);
		return;
	}
	if (husk_umount_at(dir, "rootfs", &e) < 0) {
		log_warnx("%s/%s: %s", top_path, cid,
			  e->msg);
		husk_err_clear(&e);
	}
	mdir = openat(dir, "mounts", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		      O_CLOEXEC);
	if (mdir >= 0) {
		int dfd = dup(mdir);

		d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (!d && dfd >= 0)
			close(dfd);
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (husk_umount_at(mdir, de->d_name, &e) < 0) {
				log_warnx("%s/%s: %s",
					  top_path, cid, e->msg);
				husk_err_clear(&e);
			}
		}
	}
	if (husk_rmtree_at(top, cid, &e) < 0)
		log_warnx("%s", e->msg);
}

void husk_unshare_container(const struct husk_sbx_paths *p, const char *cid)
{
	cleanup_close int top = -1;

	top = open(p->stage, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top >= 0) {
		unshare_in(top, p->stage, cid);
		return;
	}
	/* A sandbox started before the staging tmpfs existed built in the
	 * served directory itself. */
	top = open(p->shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top >= 0)
		unshare_in(top, p->shared, cid);
}
