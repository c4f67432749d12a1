/*
 * Mounts beneath a directory descriptor (mountat.h).  Needs Linux 5.12
 * (mount_setattr); husk's hosts have it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "mountat.h"
#include "util.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif

/* Mounts stacked on one mount point that husk_umount_at takes off
 * before giving up (husk stacks none; a loop must still end). */
#define UMOUNT_STACK_MAX 64

bool husk_is_mount_root(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Why openat(dirfd, name, O_NOFOLLOW...) failed, as an error that says
 * "symlink" when it was one (ELOOP or ENOTDIR, depending on flags). */
static int open_error(int dirfd, const char *name, const char *rel, int e,
		      struct husk_err **err)
{
	struct stat st;

	if ((e == ELOOP || e == ENOTDIR) &&
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return husk_error(err, HUSK_E_PERMISSION, "`%s`: `%s` is a "
				  "symlink (not followed)", rel, name);
	return husk_error_sys(err, e, "open `%s` at `%s`", rel, name);
}

int husk_mkdir_beneath(int dirfd, const char *rel, mode_t mode,
		       struct husk_err **err)
{
	cleanup_free char *copy = husk_xstrdup(rel);
	cleanup_close int cur = -1;
	char *save = NULL, *comp;
	int fd;

	if (rel[0] == '/')
		return husk_error(err, HUSK_E_INVALID, "`%s`: an absolute "
				  "path where one beneath a directory is "
				  "needed", rel);
	cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return husk_error_sys(err, errno, "open the directory of `%s`",
				      rel);
	for (comp = strtok_r(copy, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, ".."))
			return husk_error(err, HUSK_E_INVALID, "`%s`: `..` "
					  "is not allowed", rel);
		fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST)
				return husk_error_sys(err, errno, "mkdir `%s` "
						      "in `%s`", comp, rel);
			fd = openat(cur, comp, O_PATH | O_DIRECTORY |
				    O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0)
			return open_error(cur, comp, rel, errno, err);
		close(cur);
		cur = fd;
	}
	fd = cur;
	cur = -1;
	return fd;
}

int husk_mkfile_at(int dirfd, const char *name, mode_t mode,
		   struct husk_err **err)
{
	struct stat st;
	int fd;

	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return husk_error(err, HUSK_E_INVALID, "`%s` is not a file "
				  "name", name);
	fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
		    O_CLOEXEC, mode);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return husk_error_sys(err, errno, "create `%s`", name);
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open `%s`", name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return husk_error(err, HUSK_E_PERMISSION, "`%s` is not a "
				  "regular file", name);
	}
	return fd;
}

int husk_mkpath_in_root(int rootfd, const char *path, bool as_file,
			struct husk_err **err)
{
	cleanup_free char *norm = NULL, *prefix = NULL;
	cleanup_close int dirfd = -1;
	char *save = NULL, *comp, *next;
	size_t plen = 0;

	if (husk_path_join("/", path, &norm, err) < 0)
		return -1;
	prefix = husk_xcalloc(1, strlen(norm) + 2);
	dirfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (dirfd < 0)
		return husk_error_sys(err, errno, "dup");
	for (comp = strtok_r(norm, "/", &save); comp; comp = next) {
		struct husk_err *e = NULL;
		int fd;

		next = strtok_r(NULL, "/", &save);
		plen += (size_t)sprintf(prefix + plen, "/%s", comp);
		fd = husk_open_beneath(rootfd, prefix, O_PATH, 0, &e);
		if (fd < 0 && e->code == HUSK_E_NOT_FOUND) {
			husk_err_clear(&e);
			if (!next && as_file) {
				fd = openat(dirfd, comp, O_CREAT | O_EXCL |
					    O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
					    0644);
				if (fd < 0 && errno != EEXIST)
					return husk_error_sys(err, errno,
							      "create `%s`",
							      prefix);
				if (fd >= 0)
					close(fd);
			} else if (mkdirat(dirfd, comp, 0755) < 0 &&
				   errno != EEXIST) {
				return husk_error_sys(err, errno, "mkdir `%s`",
						      prefix);
			}
			fd = husk_open_beneath(rootfd, prefix, O_PATH, 0, &e);
		}
		if (fd < 0) {
			husk_error(err, e ? e->code : HUSK_E_SYSTEM, "mount "
				   "point `%s`: %s", path,
				   e ? e->msg : "cannot open");
			husk_err_free(e);
			return -1;
		}
		close(dirfd);
		dirfd = fd;
	}
	return husk_steal_fd(dirfd);
}

int husk_bind_fd(int srcfd, int tfd, unsigned flags, const char *what,
		 struct husk_err **err)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};
	unsigned rec = (flags & HUSK_BIND_REC) ? AT_RECURSIVE : 0;
	cleanup_close int tree = -1;

	if (flags & HUSK_BIND_RDONLY)
		attr.attr_set |= MOUNT_ATTR_RDONLY;
	if (flags & HUSK_BIND_NOEXEC)
		attr.attr_set |= MOUNT_ATTR_NOEXEC;
	if (flags & HUSK_BIND_SLAVE)
		attr.propagation = MS_SLAVE;
	else if (flags & HUSK_BIND_PRIVATE)
		attr.propagation = MS_PRIVATE;
	tree = open_tree(srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
			 AT_EMPTY_PATH | rec);
	if (tree < 0)
		return husk_error_sys(err, errno, "bind %s: clone the source",
				      what);
	/* Detached, so the attributes are there before any copy of the
	 * mount propagates to a peer or a slave. */
	if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &attr,
			  sizeof(attr)) < 0)
		return husk_error_sys(err, errno, "bind %s: set nosuid,nodev%s",
				      what, (flags & HUSK_BIND_RDONLY) ?
				      ",ro" : "");
	if (move_mount(tree, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH |
		       MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return husk_error_sys(err, errno, "bind %s: attach", what);
	return 0;
}

int husk_umount_at(int dirfd, const char *name, struct husk_err **err)
{
	int n;

	for (n = 0; n < UMOUNT_STACK_MAX; n++) {
		cleanup_close int fd = -1;
		char p[32];

		fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				return n;
			return husk_error_sys(err, errno, "open `%s` to "
					      "unmount it", name);
		}
		if (!husk_is_mount_root(fd))
			return n;
		/* The magic link reaches the mount the descriptor is on,
		 * whatever the path to it holds now. */
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if (umount2(p, MNT_DETACH) < 0)
			return husk_error_sys(err, errno, "unmount `%s`", name);
	}
	return husk_error(err, HUSK_E_STATE, "unmount `%s`: more than %d "
			  "mounts stacked on it", name, UMOUNT_STACK_MAX);
}
