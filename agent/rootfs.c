/*
 * The container's root file system, built in the child (already in its
 * own mount namespace) before pivot_root:
 *
 *   1. every mount private (or slave), so nothing leaks to the agent
 *   2. bind the rootfs from the shared directory onto itself
 *   3. the spec's mounts, in order; each target is resolved beneath the
 *      rootfs (no symlink leaves it) and mounted through its O_PATH
 *      descriptor; bind sources are resolved beneath the shared dir
 *   4. the default devices when /dev is a tmpfs, extra devices, and the
 *      sandbox's resolv.conf when the spec mounts none
 *   5. pivot_root, detach the old root
 *   6. sysctls, read-only paths, masked paths, read-only root, hostname
 *
 * Everything here runs in the child and fails through child_fail().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"

struct rctx {
	struct agent *a;
	const struct spec *s;
	int errfd;
	int sharedfd;           /* the shared directory */
	int rootfd;             /* the rootfs, on its own bind mount */
	bool dev_tmpfs;         /* the spec mounts a tmpfs on /dev */
	int *clones;            /* per mount: its bind source, cloned */
};

static const char *fdpath(int fd, char buf[static 32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

/* Open rel beneath the rootfs, creating missing directories (and the
 * last component as a file when as_file); returns an O_PATH fd.  Each
 * prefix is resolved beneath the root, so an image's symlinks stay in
 * it. */
static int mkpath(struct rctx *r, const char *rel, bool as_file)
{
	cleanup_free char *prefix = husk_xcalloc(1, strlen(rel) + 2);
	const char *p = rel;
	size_t plen = 0;
	int dirfd = fcntl(r->rootfd, F_DUPFD_CLOEXEC, 3);

	for (;;) {
		struct husk_err *e = NULL;
		size_t n;
		bool last;
		int fd;

		p += strspn(p, "/");
		if (!*p)
			return dirfd;
		n = strcspn(p, "/");
		last = !p[n + strspn(p + n, "/")];
		plen += (size_t)sprintf(prefix + plen, "/%.*s", (int)n, p);
		fd = husk_open_beneath(r->rootfd, prefix, O_PATH | O_CLOEXEC,
				       0, &e);
		if (fd < 0 && e && e->code == HUSK_E_NOT_FOUND) {
			char *comp = strndup(p, n);
			int cfd;

			if (last && as_file) {
				cfd = openat(dirfd, comp, O_CREAT | O_EXCL |
					     O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
					     0644);
				if (cfd >= 0)
					close(cfd);
			} else if (mkdirat(dirfd, comp, 0755) < 0 &&
				   errno != EEXIST) {
				child_fail(r->errfd, errno, "mkdir %s", prefix);
			}
			free(comp);
			husk_err_clear(&e);
			fd = husk_open_beneath(r->rootfd, prefix,
					       O_PATH | O_CLOEXEC, 0, &e);
		}
		if (fd < 0)
			child_fail(r->errfd, 0, "mount point %s: %s", rel,
				   e ? e->msg : "cannot open");
		close(dirfd);
		dirfd = fd;
		p += n;
	}
}

/* The flags a mount already has, to keep them on a bind remount. */
static unsigned long mnt_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	return f;
}

static void remount_bind(struct rctx *r, const char *path,
			 unsigned long flags, const char *what)
{
	flags |= mnt_flags(path);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
		child_fail(r->errfd, errno, "remount %s", what);
}

/*
 * Bind sources are cloned (open_tree) before "/" is made a slave: a
 * clone of a shared mount is a peer of it, so a bind keeps the
 * propagation its source has in the guest, changed only as the spec's
 * root propagation changes it (runc binds from the host's mounts as its
 * rootfsPropagation left them).  docker's `rshared` volumes of two
 * containers see each other's mounts that way, while nothing else the
 * container mounts can propagate out.
 */
static void clone_bind_sources(struct rctx *r)
{
	unsigned long rp = r->s->root_propagation;

	r->clones = husk_xcalloc(r->s->nmounts + 1, sizeof(int));
	for (size_t i = 0; i < r->s->nmounts; i++) {
		const struct spec_mount *m = &r->s->mounts[i];
		struct mount_attr at = { .propagation = rp & ~MS_REC };
		struct husk_err *e = NULL;
		int sfd, fd;

		r->clones[i] = -1;
		if (!m->bind)
			continue;
		sfd = husk_open_beneath(r->sharedfd, m->source,
					O_PATH | O_CLOEXEC, 0, &e);
		if (sfd < 0)
			child_fail(r->errfd, 0, "bind %s: source %s", m->dest,
				   e ? e->msg : m->source);
		fd = open_tree(sfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
			       AT_EMPTY_PATH | (m->rec ? AT_RECURSIVE : 0));
		if (fd < 0)
			child_fail(r->errfd, errno, "bind %s on %s", m->source,
				   m->dest);
		close(sfd);
		if ((rp & MS_REC) &&
		    mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &at,
				  sizeof(at)) < 0)
			child_fail(r->errfd, errno, "propagation of %s",
				   m->source);
		r->clones[i] = fd;
	}
}

/* rro, rnosuid...: the attributes for the mount and all below it. */
static void set_rattr(struct rctx *r, int tfd, const struct spec_mount *m)
{
	struct mount_attr at = { .attr_set = m->rattr_set,
				 .attr_clr = m->rattr_clr };

	if ((m->rattr_set || m->rattr_clr) &&
	    mount_setattr(tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &at,
			  sizeof(at)) < 0)
		child_fail(r->errfd, errno, "recursive options of %s",
			   m->dest);
}

static void do_bind(struct rctx *r, const struct spec_mount *m, int clone)
{
	char tp[32];
	struct stat st;
	int tfd;

	if (fstat(clone, &st) < 0)
		child_fail(r->errfd, errno, "stat %s", m->source);
	tfd = mkpath(r, m->dest, !S_ISDIR(st.st_mode));
	if (move_mount(clone, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH |
		       MOVE_MOUNT_T_EMPTY_PATH) < 0)
		child_fail(r->errfd, errno, "bind %s on %s", m->source,
			   m->dest);
	close(tfd);
	/* The new mount is reached by resolving the path again. */
	tfd = mkpath(r, m->dest, !S_ISDIR(st.st_mode));
	fdpath(tfd, tp);
	if (m->flags & ~MS_REC)
		remount_bind(r, tp, m->flags, m->dest);
	if (m->propagation &&
	    mount(NULL, tp, NULL, m->propagation, NULL) < 0)
		child_fail(r->errfd, errno, "propagation of %s", m->dest);
	set_rattr(r, tfd, m);
	close(tfd);
}

/* tmpcopyup: copy the tree at `from` into `to` (the new tmpfs) with
 * modes, owners and times; nothing is followed (the image's symlinks
 * are copied as links).  Bounded in depth. */
static void copy_tree(struct rctx *r, int from, int to, const char *what,
		      int depth)
{
	DIR *d;
	struct dirent *e;

	if (depth > 64)
		child_fail(r->errfd, 0, "tmpcopyup %s: nested too deep", what);
	d = fdopendir(dup(from));
	if (!d)
		child_fail(r->errfd, errno, "tmpcopyup %s", what);
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		struct timespec ts[2];
		struct stat st;
		int a = -1, b = -1;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(r->errfd, errno, "tmpcopyup %s/%s", what, n);
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(to, n, 0700) < 0)
				goto fail;
			a = openat(from, n, O_RDONLY | O_DIRECTORY |
				   O_NOFOLLOW | O_CLOEXEC);
			b = openat(to, n, O_RDONLY | O_DIRECTORY |
				   O_NOFOLLOW | O_CLOEXEC);
			if (a < 0 || b < 0)
				goto fail;
			copy_tree(r, a, b, what, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			char buf[65536];
			ssize_t k;

			a = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			b = openat(to, n, O_WRONLY | O_CREAT | O_EXCL |
				   O_NOFOLLOW | O_CLOEXEC, 0600);
			if (a < 0 || b < 0)
				goto fail;
			while ((k = read(a, buf, sizeof(buf))) > 0)
				if (husk_write_all(b, buf, (size_t)k) < 0)
					goto fail;
			if (k < 0)
				goto fail;
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t k = readlinkat(from, n, target,
					       sizeof(target) - 1);

			if (k < 0)
				goto fail;
			target[k] = '\0';
			if (symlinkat(target, to, n) < 0)
				goto fail;
		} else if (mknodat(to, n, st.st_mode & (S_IFMT | 07777),
				   st.st_rdev) < 0) {
			goto fail;
		}
		if (fchownat(to, n, st.st_uid, st.st_gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			goto fail;
		if (!S_ISLNK(st.st_mode) &&
		    fchmodat(to, n, st.st_mode & 07777, 0) < 0)
			goto fail;
		ts[0] = st.st_atim;
		ts[1] = st.st_mtim;
		utimensat(to, n, ts, AT_SYMLINK_NOFOLLOW);
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
		continue;
fail:
		child_fail(r->errfd, errno, "tmpcopyup %s/%s", what, n);
	}
	closedir(d);
}

static bool userns(const struct rctx *r)
{
	return r->s->ns_flags & CLONE_NEWUSER;
}

static void bind_sys(struct rctx *r, int tfd, const struct spec_mount *m)
{
	char tp[32];
	int fd;

	if (mount("/sys", fdpath(tfd, tp), NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(r->errfd, errno, "bind /sys on %s", m->dest);
	fd = mkpath(r, m->dest, false);
	remount_bind(r, fdpath(fd, tp), m->flags & ~MS_REC, m->dest);
	close(fd);
}

static void do_mount(struct rctx *r, size_t i)
{
	const struct spec_mount *m = &r->s->mounts[i];
	const char *type = m->type;
	char tp[32];
	int tfd, below = -1;

	if (m->bind) {
		do_bind(r, m, r->clones[i]);
		close(r->clones[i]);
		r->clones[i] = -1;
		return;
	}
	/* OCI "cgroup" means the hierarchy the guest has, read-only. */
	if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0) {
		bool v2 = strcmp(cg_version(), "v2") == 0;
		int rc = -1;

		tfd = mkpath(r, m->dest, false);
		/* Read-only is a property of the mount, set after: asked
		 * of the (shared) super block, a user namespace gets
		 * EBUSY. */
		if (v2)
			rc = mount("cgroup2", fdpath(tfd, tp), "cgroup2",
				   m->flags & ~MS_RDONLY, NULL);
		if (rc < 0 && v2 &&
		    !((errno == EPERM || errno == EBUSY) && userns(r)))
			child_fail(r->errfd, errno, "mount cgroup2 on %s",
				   m->dest);
		if (rc == 0 && (m->flags & MS_RDONLY)) {
			close(tfd);
			tfd = mkpath(r, m->dest, false);
			remount_bind(r, fdpath(tfd, tp), m->flags, m->dest);
		}
		if (rc < 0) {
			/* v1, or a user namespace without a cgroup
			 * namespace of its own: the guest's, bound. */
			if (mount("/sys/fs/cgroup", fdpath(tfd, tp), NULL,
				  MS_BIND | MS_REC, NULL) < 0)
				child_fail(r->errfd, errno, "bind cgroups on %s",
					   m->dest);
			close(tfd);
			tfd = mkpath(r, m->dest, false);
			remount_bind(r, fdpath(tfd, tp), m->flags | MS_RDONLY,
				     m->dest);
		}
		close(tfd);
		return;
	}
	tfd = mkpath(r, m->dest, false);
	if (m->copyup && strcmp(type, "tmpfs") == 0) {
		/* What the image has there, read from below the tmpfs. */
		below = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (below < 0)
			child_fail(r->errfd, errno, "tmpcopyup %s", m->dest);
	}
	if (mount(m->source ? m->source : type, fdpath(tfd, tp), type,
		  m->flags, m->data) < 0) {
		/* sysfs wants a network namespace of the user namespace's
		 * own; the container shares the VM's: bind the guest's,
		 * as runc does without one. */
		if (errno == EPERM && userns(r) && strcmp(type, "sysfs") == 0) {
			bind_sys(r, tfd, m);
			close(tfd);
			return;
		}
		child_fail(r->errfd, errno, "mount %s on %s", type, m->dest);
	}
	close(tfd);
	if (below >= 0) {
		int top;

		tfd = mkpath(r, m->dest, false);
		top = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (top < 0)
			child_fail(r->errfd, errno, "tmpcopyup %s", m->dest);
		copy_tree(r, below, top, m->dest, 0);
		close(top);
		close(tfd);
		close(below);
	}
	if (m->propagation || m->rattr_set || m->rattr_clr) {
		/* The new mount, by resolving the path again. */
		tfd = mkpath(r, m->dest, false);
		if (m->propagation &&
		    mount(NULL, fdpath(tfd, tp), NULL, m->propagation,
			  NULL) < 0)
			child_fail(r->errfd, errno, "propagation of %s",
				   m->dest);
		set_rattr(r, tfd, m);
		close(tfd);
	}
	if (strcmp(m->dest, "/dev") == 0 && strcmp(type, "tmpfs") == 0)
		r->dev_tmpfs = true;
}

static bool spec_lists_device(const struct spec *s, const char *path)
{
	for (size_t i = 0; i < s->ndevices; i++)
		if (strcmp(s->devices[i].path, path) == 0)
			return true;
	return false;
}

static void default_devices(struct rctx *r)
{
	static const char *const devs[] = {
		"null", "zero", "full", "random", "urandom", "tty",
	};
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
		{ "ptmx", "pts/ptmx" },
	};
	char rel[64], tp[32];
	int devfd = mkpath(r, "/dev", false), fd;

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(devs); i++) {
		snprintf(rel, sizeof(rel), "/dev/%s", devs[i]);
		if (spec_lists_device(r->s, rel))
			continue;       /* made by extra_devices, as given */
		fd = mkpath(r, rel, true);
		if (mount(rel, fdpath(fd, tp), NULL, MS_BIND, NULL) < 0)
			child_fail(r->errfd, errno, "bind %s", rel);
		close(fd);
	}
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(links); i++)
		if (symlinkat(links[i][1], devfd, links[i][0]) < 0 &&
		    errno != EEXIST)
			child_fail(r->errfd, errno, "symlink /dev/%s",
				   links[i][0]);
	close(devfd);
}

/* In a user namespace mknod of a device is refused: the guest's node
 * of the same path is bound instead (runc binds the host's), and must
 * be the device the spec names. */
static void bind_device(struct rctx *r, int dfd, const char *base,
			const struct spec_device *d)
{
	char sp[32], tp[32];
	struct stat st;
	int sfd, tfd, cfd;

	sfd = open(d->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		child_fail(r->errfd, errno, "%s: a user namespace cannot "
			   "mknod; the guest's %s to bind", d->path, d->path);
	if (fstat(sfd, &st) < 0 ||
	    (d->type == 'b' ? !S_ISBLK(st.st_mode) : !S_ISCHR(st.st_mode)) ||
	    major(st.st_rdev) != (unsigned)d->major ||
	    minor(st.st_rdev) != (unsigned)d->minor)
		child_fail(r->errfd, 0, "%s: the guest's node is not %c "
			   "%lld:%lld", d->path, d->type, (long long)d->major,
			   (long long)d->minor);
	cfd = openat(dfd, base, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC |
		     O_NOFOLLOW, 0600);
	if (cfd < 0 && errno != EEXIST)
		child_fail(r->errfd, errno, "create %s", d->path);
	if (cfd >= 0)
		close(cfd);
	tfd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0 || mount(fdpath(sfd, sp), fdpath(tfd, tp), NULL, MS_BIND,
			     NULL) < 0)
		child_fail(r->errfd, errno, "bind %s", d->path);
	close(tfd);
	close(sfd);
}

/* linux.devices, with the type, numbers, mode, uid and gid given; a
 * node the image already has is left as it is, as runc leaves it. */
static void extra_devices(struct rctx *r)
{
	mode_t old = umask(0);

	for (size_t i = 0; i < r->s->ndevices; i++) {
		const struct spec_device *d = &r->s->devices[i];
		mode_t type = d->type == 'b' ? S_IFBLK :
			      d->type == 'p' ? S_IFIFO : S_IFCHR;
		cleanup_free char *dir = husk_xstrdup(d->path);
		char *base = strrchr(dir, '/');
		int dfd;

		*base++ = '\0';
		dfd = mkpath(r, dir, false);
		if (userns(r) && d->type != 'p') {
			bind_device(r, dfd, base, d);
			close(dfd);
			continue;
		}
		if (mknodat(dfd, base, type | (d->mode & 07777),
			    makedev(d->major, d->minor)) < 0) {
			if (errno != EEXIST)
				child_fail(r->errfd, errno, "mknod %s",
					   d->path);
			close(dfd);
			continue;
		}
		if (fchownat(dfd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(r->errfd, errno, "chown %s", d->path);
		/* chown clears set-id bits: the mode goes last. */
		if (d->mode & 07000 &&
		    fchmodat(dfd, base, d->mode & 07777, 0) < 0)
			child_fail(r->errfd, errno, "chmod %s", d->path);
		close(dfd);
	}
	umask(old);
}

static void bind_resolv(struct rctx *r)
{
	const char *src = r->a->core->resolv_conf;
	char tp[32];
	int fd;

	if (!src)
		return;
	for (size_t i = 0; i < r->s->nmounts; i++)
		if (strcmp(r->s->mounts[i].dest, "/etc/resolv.conf") == 0)
			return;
	fd = mkpath(r, "/etc/resolv.conf", true);
	if (mount(src, fdpath(fd, tp), NULL, MS_BIND, NULL) < 0)
		child_fail(r->errfd, errno, "bind resolv.conf");
	close(fd);
	fd = mkpath(r, "/etc/resolv.conf", true);
	remount_bind(r, fdpath(fd, tp), MS_RDONLY | MS_NOSUID | MS_NODEV |
		     MS_NOEXEC, "/etc/resolv.conf");
	close(fd);
}

static void enter_root(struct rctx *r)
{
	int oldfd = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);

	if (oldfd < 0)
		child_fail(r->errfd, errno, "open the old root");
	if (fchdir(r->rootfd) < 0)
		child_fail(r->errfd, errno, "chdir to the rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(r->errfd, errno, "pivot_root");
	/* "." is still the new root (mount(2) does not cross the old
	 * root stacked on it); the old root by its descriptor. */
	if (fchdir(oldfd) < 0)
		child_fail(r->errfd, errno, "chdir to the old root");
	close(oldfd);
	/* Unmounting the old root must not propagate to the guest. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		child_fail(r->errfd, errno, "make the old root a slave");
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(r->errfd, errno, "detach the old root");
	if (chdir("/") < 0)
		child_fail(r->errfd, errno, "chdir /");
}

static void write_sysctls(struct rctx *r)
{
	for (size_t i = 0; i < r->s->nsysctl; i++) {
		char path[PATH_MAX];
		char *p;
		int fd;

		snprintf(path, sizeof(path), "/proc/sys/%s",
			 r->s->sysctl_keys[i]);
		for (p = path + 10; *p; p++)
			if (*p == '.')
				*p = '/';
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || husk_write_all(fd, r->s->sysctl_vals[i],
					     strlen(r->s->sysctl_vals[i])) < 0)
			child_fail(r->errfd, errno, "sysctl %s",
				   r->s->sysctl_keys[i]);
		close(fd);
	}
}

static void readonly_paths(struct rctx *r)
{
	for (char **p = r->s->readonly_paths; p && *p; p++) {
		if (mount(*p, *p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(r->errfd, errno, "read-only path %s", *p);
		}
		remount_bind(r, *p, MS_RDONLY, *p);
	}
}

/* Files are masked with the container's own /dev/null (a descriptor
 * from before pivot_root would name a detached mount). */
static void masked_paths(struct rctx *r)
{
	for (char **p = r->s->masked_paths; p && *p; p++) {
		struct stat st;

		if (lstat(*p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(r->errfd, errno, "masked path %s", *p);
		}
		if (S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", *p, "tmpfs", MS_RDONLY, "size=0") < 0)
				child_fail(r->errfd, errno, "mask %s", *p);
		} else if (mount("/dev/null", *p, NULL, MS_BIND, NULL) < 0) {
			child_fail(r->errfd, errno, "mask %s", *p);
		}
	}
}

/* Bind the rootfs onto itself and return an fd on that new mount. */
static int bind_rootfs(struct rctx *r)
{
	struct husk_err *e = NULL;
	char path[PATH_MAX], rp[32];
	struct stat a, b;
	ssize_t n;
	int fd, nfd;

	fd = husk_open_beneath(r->sharedfd, r->s->root_path,
			       O_PATH | O_DIRECTORY | O_CLOEXEC, 0, &e);
	if (fd < 0)
		child_fail(r->errfd, 0, "spec.root.path: %s",
			   e ? e->msg : "cannot open");
	n = readlink(fdpath(fd, rp), path, sizeof(path) - 1);
	if (n < 0)
		child_fail(r->errfd, errno, "readlink %s", rp);
	path[n] = '\0';
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(r->errfd, errno, "bind the rootfs %s", path);
	nfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (nfd < 0 || fstat(fd, &a) < 0 || fstat(nfd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		child_fail(r->errfd, 0, "the rootfs %s moved while mounting",
			   path);
	close(fd);
	return nfd;
}

void rootfs_setup(struct agent *a, const struct spec *s, int errfd)
{
	struct rctx r = { .a = a, .s = s, .errfd = errfd };
	unsigned long rp = s->root_propagation;

	r.sharedfd = open(a->shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (r.sharedfd < 0)
		child_fail(errfd, errno, "open %s", a->shared_dir);
	clone_bind_sources(&r);
	/* Nothing the container mounts may reach the guest, and pivot_root
	 * wants no shared mount around the new root: every mount a slave
	 * (or private for rprivate) until the root is the container's;
	 * the spec's propagation is applied after pivot_root. */
	if (mount(NULL, "/", NULL, rp == (MS_PRIVATE | MS_REC) ? rp :
		  MS_SLAVE | MS_REC, NULL) < 0)
		child_fail(errfd, errno, "set the propagation of /");
	r.rootfd = bind_rootfs(&r);
	for (size_t i = 0; i < s->nmounts; i++)
		do_mount(&r, i);
	free(r.clones);
	if (r.dev_tmpfs)
		default_devices(&r);
	extra_devices(&r);
	bind_resolv(&r);
	close(r.sharedfd);
	enter_root(&r);
	/* After pivot_root, so that "/" is the container's root and not
	 * the mount it came from (runc's order); from private, as runc's
	 * root was bound from a private parent. */
	if (s->has_root_propagation &&
	    (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0 ||
	     mount(NULL, "/", NULL, rp, NULL) < 0))
		child_fail(errfd, errno, "spec.linux.rootfsPropagation");
	write_sysctls(&r);
	readonly_paths(&r);
	masked_paths(&r);
	if (s->root_readonly)
		remount_bind(&r, "/", MS_RDONLY, "/ read-only");
	if (s->hostname && s->hostname[0] &&
	    sethostname(s->hostname, strlen(s->hostname)) < 0)
		child_fail(errfd, errno, "sethostname");
	if (s->domainname && s->domainname[0] &&
	    setdomainname(s->domainname, strlen(s->domainname)) < 0)
		child_fail(errfd, errno, "setdomainname");
}
