#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "util.h"

/* Deep enough for any state or rootfs tree we remove; a deeper one is
 * refused rather than exhausting descriptors. */
#define RMTREE_DEPTH_MAX 256

static bool id_char_ok(unsigned char c)
{
	return isascii(c) && (isalnum(c) || c == '_' || c == '.' || c == '+' ||
			      c == '-');
}

int husk_id_validate(const char *id, const char *what, struct husk_err **err)
{
	size_t len;

	if (!what)
		what = "id";
	if (!id || !*id)
		return husk_error(err, HUSK_E_INVALID, "%s is empty", what);
	len = strnlen(id, HUSK_ID_MAX + 1);
	if (len > HUSK_ID_MAX)
		return husk_error(err, HUSK_E_INVALID,
				  "%s is longer than %d bytes", what,
				  HUSK_ID_MAX);
	if (id[0] == '.' || id[0] == '-')
		return husk_error(err, HUSK_E_INVALID,
				  "%s `%s` must not start with '%c'", what, id,
				  id[0]);
	for (size_t i = 0; i < len; i++)
		if (!id_char_ok((unsigned char)id[i])) {
			/* The id may come from a damaged state file or a
			 * peer: shown escaped. */
			cleanup_free char *shown = husk_escape(id, len);

			return husk_error(err, HUSK_E_INVALID,
					  "%s `%s`: only A-Z a-z 0-9 _ . + - "
					  "are allowed", what, shown);
		}
	return 0;
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if
 * it is not one (overlong forms, surrogates and values over U+10FFFF
 * included); *cp gets its value. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t v, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		v = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		v = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		v = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

size_t husk_escape_buf(const char *s, size_t len, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0;

	if (cap == 0)
		return 0;
	while (i < len) {
		uint32_t cp = 0;
		size_t n = utf8_seq(p + i, len - i, &cp);
		/* Tab is kept: it moves the cursor and nothing else. */
		bool ctl = n == 0 || (cp < 0x20 && cp != '\t') || cp == 0x7f ||
			   (cp >= 0x80 && cp <= 0x9f);

		if (!ctl) {
			if (o + n >= cap)
				break;
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
			continue;
		}
		/* A C1 control is escaped byte by byte, as is a byte
		 * that starts no character. */
		if (n == 0)
			n = 1;
		if (o + 4 * n >= cap)
			break;
		for (size_t k = 0; k < n; k++)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x",
					      p[i + k]);
		i += n;
	}
	out[o] = '\0';
	return o;
}

char *husk_escape(const char *s, size_t len)
{
	size_t cap = len * 4 + 1;
	char *out = husk_xmalloc(cap);

	husk_escape_buf(s, len, out, cap);
	return out;
}

bool husk_is_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int mkdir_one(const char *path, mode_t mode, struct husk_err **err)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return husk_error_sys(err, errno, "mkdir `%s`", path);
	if (stat(path, &st) < 0)
		return husk_error_sys(err, errno, "stat `%s`", path);
	if (!S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_EXISTS,
				  "`%s` exists and is not a directory", path);
	return 0;
}

int husk_mkdir_p(const char *path, mode_t mode, struct husk_err **err)
{
	cleanup_free char *p = NULL;
	char *s;

	if (!path || !*path)
		return husk_error(err, HUSK_E_INVALID, "mkdir: empty path");
	p = husk_xstrdup(path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (s[-1] != '/' && mkdir_one(p, mode, err) < 0)
			return -1;
		*s = '/';
	}
	return mkdir_one(p, mode, err);
}

int husk_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t husk_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Split "a/b/name" into a descriptor for "a/b" (below dirfd) and
 * "name"; *base points into name. */
static int open_parent(int dirfd, const char *name, const char **base,
		       struct husk_err **err)
{
	const char *slash = strrchr(name, '/');
	cleanup_free char *dir = NULL;
	int fd;

	if (!slash) {
		*base = name;
		fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return husk_error_sys(err, errno, "open directory of `%s`",
					      name);
		return fd;
	}
	*base = slash + 1;
	dir = slash == name ? husk_xstrdup("/") :
		strndup(name, (size_t)(slash - name));
	if (!dir)
		return husk_error_sys(err, ENOMEM, "open `%s`", name);
	fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open `%s`", dir);
	return fd;
}

int husk_write_atomic(int dirfd, const char *name, const void *data,
		      size_t len, mode_t mode, struct husk_err **err)
{
	cleanup_close int dfd = -1;
	cleanup_close int fd = -1;
	char tmp[NAME_MAX + 1];
	const char *base;

	dfd = open_parent(dirfd, name, &base, err);
	if (dfd < 0)
		return -1;
	if (!*base || strlen(base) > NAME_MAX - 16)
		return husk_error(err, HUSK_E_INVALID, "bad file name `%s`",
				  name);
	/* O_EXCL on a fresh name: a stale temporary from a crash, or a
	 * hostile file planted there, is never written through. */
	for (int tries = 0; fd < 0; tries++) {
		snprintf(tmp, sizeof(tmp), ".%s.%08lx", base,
			 (unsigned long)(husk_now_ns() ^ (uint64_t)getpid() ^
					 (uint64_t)tries * 2654435761u) &
				 0xffffffffUL);
		fd = openat(dfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    mode);
		if (fd < 0 && (errno != EEXIST || tries > 100))
			return husk_error_sys(err, errno, "create `%s`", tmp);
	}
	if (fchmod(fd, mode) < 0 || husk_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		int e = errno;

		unlinkat(dfd, tmp, 0);
		return husk_error_sys(err, e, "write `%s`", name);
	}
	if (close(husk_steal_fd(fd)) < 0) {
		int e = errno;

		unlinkat(dfd, tmp, 0);
		return husk_error_sys(err, e, "close `%s`", name);
	}
	if (renameat(dfd, tmp, dfd, base) < 0) {
		int e = errno;

		unlinkat(dfd, tmp, 0);
		return husk_error_sys(err, e, "rename to `%s`", name);
	}
	/* The rename is durable only once the directory is. */
	if (fsync(dfd) < 0)
		return husk_error_sys(err, errno, "fsync directory of `%s`",
				      name);
	return 0;
}

static const char *file_kind(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFDIR: return "a directory";
	case S_IFIFO: return "a fifo";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFSOCK: return "a socket";
	case S_IFLNK: return "a symbolic link";
	}
	return "not a file";
}

int husk_read_file(int dirfd, const char *name, size_t max, char **out,
		   size_t *len, struct husk_err **err)
{
	return husk_read_file_flags(dirfd, name, 0, max, out, len, err);
}

int husk_read_file_flags(int dirfd, const char *name, int extra_flags,
			 size_t max, char **out, size_t *len,
			 struct husk_err **err)
{
	cleanup_close int fd = -1;
	struct stat st;
	cleanup_free char *buf = NULL;
	size_t cap = 4096, have = 0, lim;

	/* One byte past max tells "exactly max" from "larger". */
	lim = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;
	/* Non-blocking open: a fifo planted where a file belongs must not
	 * hang us; then only a regular file is read. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
		    extra_flags);
	if (fd < 0) {
		if (errno == ELOOP && (extra_flags & O_NOFOLLOW))
			return husk_error(err, HUSK_E_INVALID, "`%s` is a "
					  "symbolic link, not a file", name);
		return husk_error_sys(err, errno, "open `%s`", name);
	}
	if (fstat(fd, &st) < 0)
		return husk_error_sys(err, errno, "stat `%s`", name);
	if (!S_ISREG(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "`%s` is %s, not a "
				  "regular file", name, file_kind(st.st_mode));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return husk_error_sys(err, errno, "open `%s`", name);
	if (cap > lim)
		cap = lim;
	buf = husk_xmalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (have == cap) {
			if (have > max)
				break;
			cap = cap > lim / 2 ? lim : cap * 2;
			buf = realloc(husk_steal_ptr(buf), cap + 1);
			if (!buf)
				return husk_error_sys(err, ENOMEM, "read `%s`",
						      name);
		}
		n = read(fd, buf + have, cap - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return husk_error_sys(err, errno, "read `%s`", name);
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have > max)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "`%s` is larger than %zu bytes", name, max);
	buf[have] = '\0';
	if (len)
		*len = have;
	*out = husk_steal_ptr(buf);
	return 0;
}

static int rmtree_fd(int dirfd, const char *name, int depth,
		     struct husk_err **err);

/* STATX_ATTR_MOUNT_ROOT (Linux 5.8); older kernels leave it clear. */
static bool is_mount_root(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & 0x2000) &&
	       (stx.stx_attributes & 0x2000);
}

/* Empty the directory fd (owned by the caller). */
static int rmtree_contents(int fd, const char *name, int depth,
			   struct husk_err **err)
{
	cleanup_closedir DIR *d = NULL;
	struct dirent *de;
	int dfd;

	dfd = dup(fd);
	if (dfd < 0)
		return husk_error_sys(err, errno, "dup for `%s`", name);
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return husk_error_sys(err, errno, "opendir `%s`", name);
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rmtree_fd(fd, de->d_name, depth + 1, err) < 0)
			return husk_error_wrap(err, "in `%s`", name);
	}
	if (errno)
		return husk_error_sys(err, errno, "readdir `%s`", name);
	return 0;
}

static int rmtree_fd(int dirfd, const char *name, int depth,
		     struct husk_err **err)
{
	cleanup_close int fd = -1;

	if (depth > RMTREE_DEPTH_MAX)
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "remove `%s`: tree deeper than %d", name,
				  RMTREE_DEPTH_MAX);
	/* Anything that does not open as a real directory (file, symlink,
	 * socket) is unlinked itself, never followed. */
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR && errno != ELOOP)
			return husk_error_sys(err, errno, "open `%s`", name);
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return husk_error_sys(err, errno, "unlink `%s`", name);
		return 0;
	}
	/* Never descend into a mount point: a bind mount left behind (a
	 * container's root file system in a sandbox's share) would
	 * otherwise have the user's files deleted through it. */
	if (is_mount_root(fd))
		return husk_error(err, HUSK_E_STATE, "remove `%s`: it is a "
				  "mount point (still mounted)", name);
	if (rmtree_contents(fd, name, depth, err) < 0)
		return -1;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return husk_error_sys(err, errno, "rmdir `%s`", name);
	return 0;
}

int husk_rmtree_at(int dirfd, const char *name, struct husk_err **err)
{
	return rmtree_fd(dirfd, name, 0, err);
}

/*
 * in's components as text into out (room for strlen(in) + 1), as
 * "a/b/c" (maybe ""): empty ones and "." dropped, ".." taking the
 * previous one back.  A ".." with nothing before it is dropped and
 * counted in *escapes.
 */
static void clean_components(const char *in, char *out, unsigned *escapes)
{
	size_t o = 0;
	const char *p = in;

	while (*p) {
		const char *q;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		q = strchrnul(p, '/');
		n = (size_t)(q - p);
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (o == 0)
				(*escapes)++;
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p = q;
	}
	out[o] = '\0';
}

/* rel's components resolved, refusing to go above the start: a
 * malloc'ed "a/b/c" (maybe ""). */
static int normalize_rel(const char *rel, char **out, struct husk_err **err)
{
	char *res = husk_xmalloc(strlen(rel) + 1);
	unsigned escapes = 0;

	clean_components(rel, res, &escapes);
	if (escapes) {
		free(res);
		return husk_error(err, HUSK_E_INVALID,
				  "path `%s` leaves its root", rel);
	}
	*out = res;
	return 0;
}

char *husk_path_clean_abs(const char *path)
{
	char *out = husk_xmalloc(strlen(path) + 2);
	unsigned escapes = 0;

	/* ".." at the root stays there, as the kernel's lookup does. */
	out[0] = '/';
	clean_components(path, out + 1, &escapes);
	return out;
}

int husk_path_join(const char *root, const char *rel, char **out,
		   struct husk_err **err)
{
	cleanup_free char *norm = NULL;
	size_t rootlen;

	if (!root || !*root)
		return husk_error(err, HUSK_E_INVALID, "path join: empty root");
	if (normalize_rel(rel ? rel : "", &norm, err) < 0)
		return -1;
	rootlen = strlen(root);
	while (rootlen > 1 && root[rootlen - 1] == '/')
		rootlen--;
	if (!*norm)
		*out = strndup(root, rootlen);
	else if (rootlen == 1 && root[0] == '/')
		*out = husk_xasprintf("/%s", norm);
	else
		*out = husk_xasprintf("%.*s/%s", (int)rootlen, root, norm);
	if (!*out)
		return husk_error_sys(err, ENOMEM, "path join");
	return 0;
}

static int open_beneath_openat2(int rootfd, const char *rel, int flags,
				mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	/* EAGAIN: a rename raced the lookup; the kernel asks us to retry. */
	for (int i = 0; i < 16; i++) {
		fd = (int)syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how,
				  sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	return fd;
}

int husk_open_beneath_walk(int rootfd, const char *rel, int flags,
			   mode_t mode, struct husk_err **err)
{
	cleanup_free char *norm = NULL;
	cleanup_close int cur = -1;
	char *p, *slash;
	int fd;

	if (normalize_rel(rel, &norm, err) < 0)
		return -1;
	if (!*norm) {
		fd = openat(rootfd, ".", (flags & ~O_CREAT) | O_CLOEXEC);
		if (fd < 0)
			return husk_error_sys(err, errno, "open `%s`", rel);
		return fd;
	}
	cur = dup(rootfd);
	if (cur < 0)
		return husk_error_sys(err, errno, "dup");
	p = norm;
	while ((slash = strchr(p, '/'))) {
		int next;

		*slash = '\0';
		next = openat(cur, p,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			int e = errno;
			struct stat st;

			if (fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				return husk_error(err, HUSK_E_PERMISSION,
						  "open `%s`: `%s` is a symlink",
						  rel, p);
			return husk_error_sys(err, e, "open `%s` at `%s`", rel,
					      p);
		}
		close(cur);
		cur = next;
		p = slash + 1;
	}
	fd = openat(cur, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		if (errno == ELOOP)
			return husk_error(err, HUSK_E_PERMISSION,
					  "open `%s`: `%s` is a symlink", rel, p);
		return husk_error_sys(err, errno, "open `%s`", rel);
	}
	return fd;
}

int husk_open_beneath(int rootfd, const char *rel, int flags, mode_t mode,
		      struct husk_err **err)
{
	static int have_openat2 = -1;
	int fd;

	if (!rel)
		return husk_error(err, HUSK_E_INVALID, "open: no path");
	if (have_openat2 != 0) {
		fd = open_beneath_openat2(rootfd, rel, flags, mode);
		if (fd >= 0) {
			have_openat2 = 1;
			return fd;
		}
		/* ENOSYS: an old kernel, or a seccomp profile that denies
		 * openat2 with ENOSYS to ask for the walk. */
		if (errno != ENOSYS)
			return husk_error_sys(err, errno, "open `%s`", rel);
		have_openat2 = 0;
	}
	return husk_open_beneath_walk(rootfd, rel, flags, mode, err);
}

int husk_parse_int(const char *s, long long min, long long max,
		   long long *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s)) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		errno = EINVAL;
		return -1;
	}
	if (v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int husk_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || !isdigit((unsigned char)*s)) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	/* "512M", "512MB", "512MiB" all mean the same binary unit. */
	if (shift && (!strcmp(end, "B") || !strcmp(end, "iB")))
		end += strlen(end);
	else if (!shift && !strcmp(end, "B"))
		end++;
	if (*end) {
		errno = EINVAL;
		return -1;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		errno = ERANGE;
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

uint64_t husk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t husk_now_ms(void)
{
	return husk_now_ns() / 1000000u;
}

static void __attribute__((noreturn)) oom(size_t n)
{
	static const char msg[] = "husk: out of memory\n";

	(void)n;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* aborting anyway */
	}
	abort();
}

char *husk_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom(strlen(s));
	return p;
}

void *husk_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *husk_xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (!p)
		oom(n * m);
	return p;
}

char *husk_xasprintf(const char *fmt, ...)
{
	char *p;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		oom(0);
	return p;
}
