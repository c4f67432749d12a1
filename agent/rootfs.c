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

static void do_bind(struct rctx *r, const struct spec_mount *m)
{
	struct husk_err *e = NULL;
	char sp[32], tp[32];
	struct stat st;
	int sfd, tfd;

	sfd = husk_open_beneath(r->sharedfd, m->source, O_PATH | O_CLOEXEC,
				0, &e);
	if (sfd < 0)
		child_fail(r->errfd, 0, "bind %s: source %s", m->dest,
			   e ? e->msg : m->source);
	if (fstat(sfd, &st) < 0)
		child_fail(r->errfd, errno, "stat %s", m->source);
	tfd = mkpath(r, m->dest, !S_ISDIR(st.st_mode));
	if (mount(fdpath(sfd, sp), fdpath(tfd, tp), NULL,
		  MS_BIND | (m->rec ? MS_REC : 0), NULL) < 0)
		child_fail(r->errfd, errno, "bind %s on %s", m->source,
			   m->dest);
	close(tfd);
	close(sfd);
	/* The new mount is reached by resolving the path again. */
	tfd = mkpath(r, m->dest, !S_ISDIR(st.st_mode));
	fdpath(tfd, tp);
	if (m->flags & ~MS_REC)
		remount_bind(r, tp, m->flags, m->dest);
	if (m->propagation &&
	    mount(NULL, tp, NULL, m->propagation, NULL) < 0)
		child_fail(r->errfd, errno, "propagation of %s", m->dest);
	close(tfd);
}

static void do_mount(struct rctx *r, const struct spec_mount *m)
{
	const char *type = m->type;
	char tp[32];
	int tfd;

	if (m->bind) {
		do_bind(r, m);
		return;
	}
	/* OCI "cgroup" means the hierarchy the guest has, read-only. */
	if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0) {
		tfd = mkpath(r, m->dest, false);
		if (strcmp(cg_version(), "v2") == 0) {
			if (mount("cgroup2", fdpath(tfd, tp), "cgroup2",
				  m->flags, NULL) < 0)
				child_fail(r->errfd, errno, "mount cgroup2 on %s",
					   m->dest);
		} else {
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
	if (mount(m->source ? m->source : type, fdpath(tfd, tp), type,
		  m->flags, m->data) < 0)
		child_fail(r->errfd, errno, "mount %s on %s", type, m->dest);
	close(tfd);
	if (strcmp(m->dest, "/dev") == 0 && strcmp(type, "tmpfs") == 0)
		r->dev_tmpfs = true;
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

static void extra_devices(struct rctx *r)
{
	for (size_t i = 0; i < r->s->ndevices; i++) {
		const struct spec_device *d = &r->s->devices[i];
		mode_t type = d->type == 'b' ? S_IFBLK :
			      d->type == 'p' ? S_IFIFO : S_IFCHR;
		cleanup_free char *dir = husk_xstrdup(d->path);
		char *base = strrchr(dir, '/');
		int dfd;

		*base++ = '\0';
		dfd = mkpath(r, dir, false);
		if (mknodat(dfd, base, type | (d->mode & 07777),
			    makedev(d->major, d->minor)) < 0 && errno != EEXIST)
			child_fail(r->errfd, errno, "mknod %s", d->path);
		if (fchownat(dfd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(r->errfd, errno, "chown %s", d->path);
		close(dfd);
	}
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
	if (fchdir(r->rootfd) < 0)
		child_fail(r->errfd, errno, "chdir to the rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(r->errfd, errno, "pivot_root");
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
	if (mount(NULL, "/", NULL, MS_REC | s->root_propagation, NULL) < 0)
		child_fail(errfd, errno, "make mounts private");
	r.sharedfd = open(a->shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (r.sharedfd < 0)
		child_fail(errfd, errno, "open %s", a->shared_dir);
	r.rootfd = bind_rootfs(&r);
	for (size_t i = 0; i < s->nmounts; i++)
		do_mount(&r, &s->mounts[i]);
	if (r.dev_tmpfs)
		default_devices(&r);
	extra_devices(&r);
	bind_resolv(&r);
	close(r.sharedfd);
	enter_root(&r);
	write_sysctls(&r);
	readonly_paths(&r);
	masked_paths(&r);
	if (s->root_readonly)
		remount_bind(&r, "/", MS_RDONLY, "/ read-only");
	if (s->hostname && s->hostname[0] &&
	    sethostname(s->hostname, strlen(s->hostname)) < 0)
		child_fail(errfd, errno, "sethostname");
}
