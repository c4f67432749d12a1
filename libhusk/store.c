#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "store.h"
#include "util.h"

#define LOCK_NAME ".lock"

/*
 * The state says which processes delete kills, which mounts it undoes
 * and which namespace files it removes: a root another user can write
 * to (or owns) could plant a state that steers a root delete.
 */
static int root_check(int fd, const char *root, struct husk_err **err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return husk_error_sys(err, errno, "stat state root `%s`", root);
	if (st.st_uid != geteuid())
		return husk_error(err, HUSK_E_PERMISSION, "state root `%s` is "
				  "owned by uid %u, not by uid %u (%s): use "
				  "a directory of ours", root,
				  (unsigned)st.st_uid, (unsigned)geteuid(),
				  geteuid() == 0 ? "root" : "us");
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return husk_error(err, HUSK_E_PERMISSION, "state root `%s` is "
				  "writable by %s (mode %04o): make it 0700",
				  root, (st.st_mode & S_IWOTH) ? "others" :
				  "its group", (unsigned)(st.st_mode & 07777));
	return 0;
}

int husk_store_open(struct husk_store *s, const char *root,
		    struct husk_err **err)
{
	s->rootfd = -1;
	s->root = NULL;
	if (husk_mkdir_p(root, 0700, err) < 0)
		return husk_error_wrap(err, "state root");
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0)
		return husk_error_sys(err, errno, "open state root `%s`", root);
	if (root_check(s->rootfd, root, err) < 0) {
		close(s->rootfd);
		s->rootfd = -1;
		return -1;
	}
	s->root = husk_xstrdup(root);
	return 0;
}

void husk_store_close(struct husk_store *s)
{
	if (s->rootfd >= 0)
		close(s->rootfd);
	s->rootfd = -1;
	free(s->root);
	s->root = NULL;
}

static void entry_init(struct husk_entry *e, struct husk_store *s,
		       const char *id)
{
	e->store = s;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->dirfd = -1;
	e->lockfd = -1;
}

static int entry_lock(struct husk_entry *e, int lock, struct husk_err **err)
{
	int op;
	struct stat st;

	switch (lock & ~HUSK_LOCK_NB) {
	case HUSK_LOCK_NONE:
		return 0;
	case HUSK_LOCK_SHARED:
		op = LOCK_SH;
		break;
	case HUSK_LOCK_EXCL:
		op = LOCK_EX;
		break;
	default:
		return husk_error(err, HUSK_E_INTERNAL, "bad lock mode %d",
				  lock);
	}
	if (lock & HUSK_LOCK_NB)
		op |= LOCK_NB;
	while (flock(e->lockfd, op) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return husk_error(err, HUSK_E_STATE,
					  "container %s is locked by another "
					  "command", e->id);
		return husk_error_sys(err, errno, "lock container %s", e->id);
	}
	/* A remover held the lock while we waited and unlinked the entry:
	 * what we locked is gone. */
	if (fstat(e->lockfd, &st) < 0)
		return husk_error_sys(err, errno, "stat lock of %s", e->id);
	if (st.st_nlink == 0)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "container %s does not exist", e->id);
	return 0;
}

int husk_store_create(struct husk_store *s, const char *id, int lock,
		      struct husk_entry *e, struct husk_err **err)
{
	entry_init(e, s, "");
	if (husk_id_validate(id, "container id", err) < 0)
		return -1;
	entry_init(e, s, id);
	if (mkdirat(s->rootfd, id, 0700) < 0) {
		if (errno == EEXIST)
			return husk_error(err, HUSK_E_EXISTS,
					  "container %s already exists", id);
		return husk_error_sys(err, errno, "create container %s", id);
	}
	e->dirfd = openat(s->rootfd, id,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (e->dirfd < 0)
		goto fail_sys;
	e->lockfd = openat(e->dirfd, LOCK_NAME,
			   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			   0600);
	if (e->lockfd < 0)
		goto fail_sys;
	if (entry_lock(e, lock, err) < 0)
		goto fail;
	return 0;

fail_sys:
	husk_error_sys(err, errno, "create container %s", id);
fail:
	husk_entry_close(e);
	husk_rmtree_at(s->rootfd, id, NULL);
	return -1;
}

int husk_store_get(struct husk_store *s, const char *id, int lock,
		   struct husk_entry *e, struct husk_err **err)
{
	entry_init(e, s, "");
	if (husk_id_validate(id, "container id", err) < 0)
		return -1;
	entry_init(e, s, id);
	e->dirfd = openat(s->rootfd, id,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (e->dirfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
			return husk_error(err, HUSK_E_NOT_FOUND,
					  "container %s does not exist", id);
		return husk_error_sys(err, errno, "open container %s", id);
	}
	/* Never O_CREAT here: recreating the lock in a directory that a
	 * remover is emptying would make its rmdir fail. */
	e->lockfd = openat(e->dirfd, LOCK_NAME,
			   O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (e->lockfd < 0) {
		int saved = errno;

		husk_entry_close(e);
		if (saved == ENOENT)
			return husk_error(err, HUSK_E_NOT_FOUND,
					  "container %s does not exist", id);
		return husk_error_sys(err, saved, "open lock of container %s",
				      id);
	}
	if (entry_lock(e, lock, err) < 0) {
		husk_entry_close(e);
		return -1;
	}
	return 0;
}

void husk_entry_close(struct husk_entry *e)
{
	if (e->lockfd >= 0)
		close(e->lockfd);
	if (e->dirfd >= 0)
		close(e->dirfd);
	e->lockfd = -1;
	e->dirfd = -1;
}

int husk_entry_remove(struct husk_entry *e, struct husk_err **err)
{
	cleanup_closedir DIR *d = NULL;
	struct dirent *de;
	int fd;

	if (e->dirfd < 0)
		return husk_error(err, HUSK_E_INTERNAL,
				  "remove container %s: not open", e->id);
	fd = dup(e->dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return husk_error_sys(err, saved, "remove container %s",
				      e->id);
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (husk_rmtree_at(e->dirfd, de->d_name, err) < 0)
			return husk_error_wrap(err, "remove container %s",
					       e->id);
	}
	if (errno)
		return husk_error_sys(err, errno, "remove container %s",
				      e->id);
	if (unlinkat(e->store->rootfd, e->id, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		return husk_error_sys(err, errno, "remove container %s",
				      e->id);
	husk_entry_close(e);
	return 0;
}

/* Names of state files: plain names, never the lock or a temporary. */
static int check_name(const char *name, struct husk_err **err)
{
	if (!name || !*name || name[0] == '.' || strchr(name, '/'))
		return husk_error(err, HUSK_E_INVALID,
				  "bad state file name `%s`",
				  name ? name : "(null)");
	return 0;
}

int husk_entry_write(struct husk_entry *e, const char *name,
		     const void *data, size_t len, struct husk_err **err)
{
	if (check_name(name, err) < 0)
		return -1;
	if (husk_write_atomic(e->dirfd, name, data, len, 0600, err) < 0)
		return husk_error_wrap(err, "container %s", e->id);
	return 0;
}

int husk_entry_read(struct husk_entry *e, const char *name, size_t max,
		    char **out, size_t *len, struct husk_err **err)
{
	if (check_name(name, err) < 0)
		return -1;
	if (husk_read_file(e->dirfd, name, max, out, len, err) < 0)
		return husk_error_wrap(err, "container %s", e->id);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int husk_store_list(struct husk_store *s, char ***ids, struct husk_err **err)
{
	cleanup_closedir DIR *d = NULL;
	cleanup_strv char **v = NULL;
	struct dirent *de;
	size_t n = 0, cap = 16;
	int fd;

	fd = openat(s->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "list `%s`", s->root);
	d = fdopendir(fd);
	if (!d) {
		int saved = errno;

		close(fd);
		return husk_error_sys(err, saved, "list `%s`", s->root);
	}
	v = husk_xcalloc(cap + 1, sizeof(*v));
	while ((errno = 0, de = readdir(d))) {
		struct stat st;

		if (husk_id_validate(de->d_name, NULL, NULL) < 0)
			continue;
		if (fstatat(s->rootfd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			char **nv = reallocarray(v, cap * 2 + 1, sizeof(*v));

			if (!nv)
				return husk_error_sys(err, ENOMEM, "list");
			v = nv;
			cap *= 2;
		}
		v[n++] = husk_xstrdup(de->d_name);
		v[n] = NULL;
	}
	if (errno)
		return husk_error_sys(err, errno, "list `%s`", s->root);
	qsort(v, n, sizeof(*v), cmp_str);
	*ids = husk_steal_ptr(v);
	return 0;
}
