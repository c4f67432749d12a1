/* libhusk/util.c: ids, paths that must not leave their root, atomic
 * files, rmtree, parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"

/* A fresh temporary directory per test, removed afterwards. */
struct tmp {
	char path[64];
	int fd;
};

static int tmp_setup(void **state)
{
	struct tmp *t = husk_xcalloc(1, sizeof(*t));

	snprintf(t->path, sizeof(t->path), "/tmp/husk-test-util.XXXXXX");
	if (!mkdtemp(t->path))
		return -1;
	t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = t;
	return t->fd < 0 ? -1 : 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;

	husk_rmtree_at(AT_FDCWD, t->path, NULL);
	close(t->fd);
	free(t);
	return 0;
}

static void write_file(int dirfd, const char *name, const char *s)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(husk_write_all(fd, s, strlen(s)), 0);
	close(fd);
}

/* ------------------------------------------------------------ ids */

static void test_id_valid(void **state)
{
	char id[HUSK_ID_MAX + 1];

	(void)state;
	assert_int_equal(husk_id_validate("abc", "id", NULL), 0);
	assert_int_equal(husk_id_validate("a", "id", NULL), 0);
	assert_int_equal(husk_id_validate("A-b_c.d+e9", "id", NULL), 0);
	assert_int_equal(husk_id_validate("0123", "id", NULL), 0);
	assert_int_equal(husk_id_validate("a..b", "id", NULL), 0);
	memset(id, 'x', HUSK_ID_MAX);
	id[HUSK_ID_MAX] = '\0';
	assert_int_equal(husk_id_validate(id, "id", NULL), 0);
}

static void test_id_invalid(void **state)
{
	static const char *const bad[] = {
		"", "/", "..", ".", ".hidden", "-rf", "a/b", "a b", " a",
		"a\n", "caf\xc3\xa9", "\xe2\x98\x83", "a\\b", "a:b", "a*",
		NULL,
	};
	char id[HUSK_ID_MAX + 2];
	struct husk_err *err = NULL;

	(void)state;
	for (const char *const *b = bad; *b; b++) {
		assert_int_equal(husk_id_validate(*b, "container id", &err),
				 -1);
		assert_non_null(err);
		assert_int_equal(err->code, HUSK_E_INVALID);
		assert_non_null(strstr(err->msg, "container id"));
		husk_err_clear(&err);
	}
	assert_int_equal(husk_id_validate(NULL, "id", NULL), -1);
	memset(id, 'x', HUSK_ID_MAX + 1);
	id[HUSK_ID_MAX + 1] = '\0';
	assert_int_equal(husk_id_validate(id, "id", &err), -1);
	assert_non_null(strstr(err->msg, "longer"));
	husk_err_clear(&err);
}

/* ------------------------------------------------------ path join */

static void expect_join(const char *root, const char *rel, const char *want)
{
	cleanup_free char *out = NULL;
	struct husk_err *err = NULL;

	assert_int_equal(husk_path_join(root, rel, &out, &err), 0);
	assert_null(err);
	assert_string_equal(out, want);
}

static void expect_escape(const char *root, const char *rel)
{
	char *out = NULL;
	struct husk_err *err = NULL;

	assert_int_equal(husk_path_join(root, rel, &out, &err), -1);
	assert_null(out);
	assert_non_null(err);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
}

static void expect_clean(const char *in, const char *want)
{
	cleanup_free char *out = husk_path_clean_abs(in);

	assert_string_equal(out, want);
}

/* --root spelled any way names one directory (cmd/husk/main.c). */
static void test_path_clean_abs(void **state)
{
	(void)state;
	expect_clean("/", "/");
	expect_clean("", "/");
	expect_clean("/run/husk", "/run/husk");
	expect_clean("/run/husk/", "/run/husk");
	expect_clean("//run///husk//", "/run/husk");
	expect_clean("/run/./husk/.", "/run/husk");
	expect_clean("/tmp/a/bundle/../root", "/tmp/a/root");
	expect_clean("/tmp/a/b/../../root/x/..", "/tmp/root");
	expect_clean("/..", "/");
	expect_clean("/../../tmp", "/tmp");
	expect_clean("/a/..", "/");
	expect_clean("/a/...", "/a/...");
	expect_clean("/a/..b/.c", "/a/..b/.c");
	expect_clean("relative/./x", "/relative/x");
}

static void test_path_join(void **state)
{
	(void)state;
	expect_join("/r", "a/b", "/r/a/b");
	expect_join("/r/", "a/b/", "/r/a/b");
	expect_join("/r//", "a//b///", "/r/a/b");
	expect_join("/r", "", "/r");
	expect_join("/r", ".", "/r");
	expect_join("/r", "a/..", "/r");
	expect_join("/r", "a/./b/../c", "/r/a/c");
	/* absolute rel is taken under root */
	expect_join("/r", "/etc/passwd", "/r/etc/passwd");
	expect_join("/r", "///etc", "/r/etc");
	expect_join("/", "a", "/a");
	expect_join("/", "/", "/");
	expect_join("rel/root", "x", "rel/root/x");
	expect_join("/r", "..a/b..", "/r/..a/b..");
}

static void test_path_join_escape(void **state)
{
	(void)state;
	expect_escape("/r", "..");
	expect_escape("/r", "../x");
	expect_escape("/r", "a/../../x");
	expect_escape("/r", "/../x");
	expect_escape("/r", "a/./b/../../..");
	expect_escape("/r", "./../");
	expect_escape("/r", "a/b/c/../../../../r/x");
	expect_escape("/", "..");
}

/* ---------------------------------------------- open beneath a root */

/*
 * A hostile tree: symlinks to the real /etc/passwd, absolute and
 * relative, and "../" tricks.  Opening them below root must either fail
 * or land on root's own etc/passwd ("inside"), never the host's.
 */
static void hostile_tree(int rootfd)
{
	assert_int_equal(mkdirat(rootfd, "etc", 0755), 0);
	write_file(rootfd, "etc/passwd", "inside\n");
	assert_int_equal(mkdirat(rootfd, "d", 0755), 0);
	assert_int_equal(symlinkat("/etc/passwd", rootfd, "abs"), 0);
	assert_int_equal(symlinkat("../../../../../../etc/passwd", rootfd,
				   "d/rel"), 0);
	assert_int_equal(symlinkat("/etc", rootfd, "etclink"), 0);
	assert_int_equal(symlinkat("/proc/self/root/etc/passwd", rootfd,
				   "magic"), 0);
}

static void assert_not_host(int fd)
{
	char buf[64] = { 0 };

	if (fd < 0)
		return;
	assert_true(husk_read_all(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, "inside\n");
}

typedef int (*open_fn)(int, const char *, int, mode_t, struct husk_err **);

static void check_beneath(open_fn fn, int rootfd)
{
	static const char *const tricks[] = {
		"abs", "d/rel", "etclink/passwd", "magic",
		"../../../../etc/passwd", "d/../../etc/passwd",
		"/../../etc/passwd", NULL,
	};

	for (const char *const *t = tricks; *t; t++) {
		struct husk_err *err = NULL;
		int fd = fn(rootfd, *t, O_RDONLY, 0, &err);

		assert_true(fd >= 0 || err != NULL);
		assert_not_host(fd);
		husk_err_clear(&err);
	}
}

static void test_open_beneath(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	int fd;

	hostile_tree(t->fd);
	check_beneath(husk_open_beneath, t->fd);

	fd = husk_open_beneath(t->fd, "etc/passwd", O_RDONLY, 0, &err);
	assert_true(fd >= 0);
	assert_not_host(fd);

	/* O_CREAT makes the last component only */
	fd = husk_open_beneath(t->fd, "d/new", O_WRONLY | O_CREAT, 0600,
			       &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(faccessat(t->fd, "d/new", F_OK, 0), 0);
	fd = husk_open_beneath(t->fd, "nodir/new", O_WRONLY | O_CREAT, 0600,
			       &err);
	assert_int_equal(fd, -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	husk_err_clear(&err);

	/* creating through a symlink that points out must not write out */
	fd = husk_open_beneath(t->fd, "etclink/husk-should-not-exist",
			       O_WRONLY | O_CREAT, 0600, &err);
	if (fd >= 0)
		close(fd);
	husk_err_clear(&err);
	assert_int_equal(access("/etc/husk-should-not-exist", F_OK), -1);

	fd = husk_open_beneath(t->fd, "", O_RDONLY | O_DIRECTORY, 0, &err);
	assert_true(fd >= 0);
	close(fd);
}

static void test_open_beneath_walk(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	int fd;

	hostile_tree(t->fd);
	check_beneath(husk_open_beneath_walk, t->fd);

	/* the walk refuses every symlink, with a message naming it */
	fd = husk_open_beneath_walk(t->fd, "abs", O_RDONLY, 0, &err);
	assert_int_equal(fd, -1);
	assert_int_equal(err->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(err->msg, "symlink"));
	husk_err_clear(&err);
	fd = husk_open_beneath_walk(t->fd, "etclink/passwd", O_RDONLY, 0,
				    &err);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err->msg, "symlink"));
	husk_err_clear(&err);
	/* ".." above the root is refused, not clamped */
	fd = husk_open_beneath_walk(t->fd, "../etc/passwd", O_RDONLY, 0,
				    &err);
	assert_int_equal(fd, -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);

	fd = husk_open_beneath_walk(t->fd, "d/../etc/./passwd", O_RDONLY, 0,
				    &err);
	assert_true(fd >= 0);
	assert_not_host(fd);
	fd = husk_open_beneath_walk(t->fd, "d/made", O_RDWR | O_CREAT, 0600,
				    &err);
	assert_true(fd >= 0);
	close(fd);
	fd = husk_open_beneath_walk(t->fd, "abs", O_WRONLY | O_CREAT, 0600,
				    &err);
	assert_int_equal(fd, -1);
	husk_err_clear(&err);
}

/* --------------------------------------------------- atomic files */

static int count_entries(int dirfd)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_atomic(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	char *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_int_equal(husk_write_atomic(t->fd, "state.json", "{\"a\":1}",
					   7, 0600, &err), 0);
	assert_int_equal(husk_read_file(t->fd, "state.json", 1024, &data,
					&len, &err), 0);
	assert_int_equal(len, 7);
	assert_string_equal(data, "{\"a\":1}");
	free(data);

	assert_int_equal(husk_write_atomic(t->fd, "state.json", "new", 3,
					   0640, &err), 0);
	assert_int_equal(husk_read_file(t->fd, "state.json", 1024, &data,
					&len, &err), 0);
	assert_string_equal(data, "new");
	free(data);
	assert_int_equal(fstatat(t->fd, "state.json", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* no temporary left beside it */
	assert_int_equal(count_entries(t->fd), 1);

	/* a path with a directory part, and an empty file */
	assert_int_equal(mkdirat(t->fd, "sub", 0700), 0);
	assert_int_equal(husk_write_atomic(t->fd, "sub/x", "", 0, 0600, &err),
			 0);
	assert_int_equal(husk_read_file(t->fd, "sub/x", 10, &data, &len,
					&err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);

	assert_int_equal(husk_write_atomic(t->fd, "nodir/x", "a", 1, 0600,
					   &err), -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	husk_err_clear(&err);
}

static void test_read_file_max(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	char big[10000];
	char *data = NULL;
	size_t len;

	memset(big, 'z', sizeof(big));
	assert_int_equal(husk_write_atomic(t->fd, "big", big, sizeof(big),
					   0600, &err), 0);
	assert_int_equal(husk_read_file(t->fd, "big", sizeof(big), &data,
					&len, &err), 0);
	assert_int_equal(len, sizeof(big));
	assert_int_equal(data[len], '\0');
	free(data);
	data = NULL;
	assert_int_equal(husk_read_file(t->fd, "big", sizeof(big) - 1, &data,
					&len, &err), -1);
	assert_null(data);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	assert_int_equal(husk_read_file(t->fd, "big", 0, &data, &len, &err),
			 -1);
	husk_err_clear(&err);
	assert_int_equal(husk_read_file(t->fd, "missing", 10, &data, &len,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	assert_non_null(strstr(err->msg, "missing"));
	husk_err_clear(&err);
}

/* ---------------------------------------------------------- rmtree */

static void test_rmtree(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	char outside[80];
	int ofd;

	/* a directory outside the tree, reachable by a symlink inside */
	snprintf(outside, sizeof(outside), "%s-outside", t->path);
	assert_int_equal(mkdir(outside, 0700), 0);
	ofd = open(outside, O_RDONLY | O_DIRECTORY);
	assert_true(ofd >= 0);
	write_file(ofd, "keep", "survives\n");

	assert_int_equal(mkdirat(t->fd, "tree", 0700), 0);
	assert_int_equal(mkdirat(t->fd, "tree/a", 0700), 0);
	assert_int_equal(mkdirat(t->fd, "tree/a/b", 0000), 0);
	write_file(t->fd, "tree/a/f", "x");
	assert_int_equal(symlinkat(outside, t->fd, "tree/a/out"), 0);
	assert_int_equal(symlinkat(outside, t->fd, "tree/out2"), 0);

	assert_int_equal(husk_rmtree_at(t->fd, "tree", &err), 0);
	assert_null(err);
	assert_int_equal(faccessat(t->fd, "tree", F_OK, AT_SYMLINK_NOFOLLOW),
			 -1);
	assert_int_equal(faccessat(ofd, "keep", F_OK, 0), 0);

	/* a symlink given as the top is removed, not followed */
	assert_int_equal(symlinkat(outside, t->fd, "top"), 0);
	assert_int_equal(husk_rmtree_at(t->fd, "top", &err), 0);
	assert_int_equal(faccessat(ofd, "keep", F_OK, 0), 0);
	/* missing is fine; a plain file goes too */
	assert_int_equal(husk_rmtree_at(t->fd, "nothing", &err), 0);
	write_file(t->fd, "plain", "p");
	assert_int_equal(husk_rmtree_at(t->fd, "plain", &err), 0);
	assert_int_equal(faccessat(t->fd, "plain", F_OK, 0), -1);

	close(ofd);
	husk_rmtree_at(AT_FDCWD, outside, NULL);
}

static void test_mkdir_p(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	char path[128], file[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b//c/", t->path);
	assert_int_equal(husk_mkdir_p(path, 0700, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* existing is fine */
	assert_int_equal(husk_mkdir_p(path, 0755, &err), 0);
	/* a file in the way is not */
	snprintf(file, sizeof(file), "%s/f", t->path);
	write_file(AT_FDCWD, file, "");
	assert_int_equal(husk_mkdir_p(file, 0700, &err), -1);
	assert_int_equal(err->code, HUSK_E_EXISTS);
	husk_err_clear(&err);
	snprintf(file, sizeof(file), "%s/f/sub", t->path);
	assert_int_equal(husk_mkdir_p(file, 0700, &err), -1);
	husk_err_clear(&err);
}

/* ---------------------------------------------------------- parsing */

static void test_parse_int(void **state)
{
	long long v;

	(void)state;
	assert_int_equal(husk_parse_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(husk_parse_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(husk_parse_int("0", 0, 0, &v), 0);
	assert_int_equal(husk_parse_int("100", 0, 100, &v), 0);
	assert_int_equal(husk_parse_int("101", 0, 100, &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(husk_parse_int("-1", 0, 100, &v), -1);
	assert_int_equal(husk_parse_int("", 0, 100, &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(husk_parse_int(" 1", 0, 100, &v), -1);
	assert_int_equal(husk_parse_int("1 ", 0, 100, &v), -1);
	assert_int_equal(husk_parse_int("1x", 0, 100, &v), -1);
	assert_int_equal(husk_parse_int("0x10", 0, 100, &v), -1);
	assert_int_equal(husk_parse_int(NULL, 0, 100, &v), -1);
	assert_int_equal(husk_parse_int("9223372036854775807", 0, INT64_MAX,
					&v), 0);
	assert_int_equal(husk_parse_int("9223372036854775808", 0, INT64_MAX,
					&v), -1);
	assert_int_equal(errno, ERANGE);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(husk_parse_size("4096", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(husk_parse_size("512M", &v), 0);
	assert_true(v == 512ull << 20);
	assert_int_equal(husk_parse_size("2G", &v), 0);
	assert_true(v == 2ull << 30);
	assert_int_equal(husk_parse_size("1k", &v), 0);
	assert_true(v == 1024);
	assert_int_equal(husk_parse_size("3T", &v), 0);
	assert_true(v == 3ull << 40);
	assert_int_equal(husk_parse_size("8MiB", &v), 0);
	assert_true(v == 8ull << 20);
	assert_int_equal(husk_parse_size("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(husk_parse_size("16777215T", &v), 0);
	assert_int_equal(husk_parse_size("16777216T", &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(husk_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(husk_parse_size("", &v), -1);
	assert_int_equal(husk_parse_size("M", &v), -1);
	assert_int_equal(husk_parse_size("-1", &v), -1);
	assert_int_equal(husk_parse_size("1X", &v), -1);
	assert_int_equal(husk_parse_size("1MM", &v), -1);
	assert_int_equal(husk_parse_size(" 1", &v), -1);
}

static void test_clock_alloc(void **state)
{
	uint64_t a = husk_now_ns(), b;
	char *s;

	(void)state;
	b = husk_now_ns();
	assert_true(b >= a);
	assert_true(husk_now_ms() >= a / 1000000u);
	s = husk_xasprintf("%s-%d", "x", 7);
	assert_string_equal(s, "x-7");
	free(s);
	s = husk_xstrdup("dup");
	assert_string_equal(s, "dup");
	free(s);
}

static void test_io_all(void **state)
{
	int p[2];
	char buf[8] = { 0 };

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(husk_write_all(p[1], "hello", 5), 0);
	close(p[1]);
	assert_int_equal(husk_read_all(p[0], buf, sizeof(buf)), 5);
	assert_string_equal(buf, "hello");
	close(p[0]);
	assert_int_equal(husk_write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
}

/* A fifo, a directory, a device and a symlink where a file is read:
 * refused at once (a fifo must not block), each named. */
static void test_read_file_kinds(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	char *data = NULL;

	assert_int_equal(mkfifoat(t->fd, "fifo", 0600), 0);
	assert_int_equal(husk_read_file(t->fd, "fifo", 10, &data, NULL, &err),
			 -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	assert_non_null(strstr(err->msg, "`fifo` is a fifo, not a regular "
				"file"));
	husk_err_clear(&err);
	assert_int_equal(mkdirat(t->fd, "dir", 0700), 0);
	assert_int_equal(husk_read_file(t->fd, "dir", 10, &data, NULL, &err),
			 -1);
	assert_non_null(strstr(err->msg, "is a directory"));
	husk_err_clear(&err);
	assert_int_equal(husk_read_file(AT_FDCWD, "/dev/zero", 10, &data,
					NULL, &err), -1);
	assert_non_null(strstr(err->msg, "is a character device"));
	husk_err_clear(&err);
	write_file(t->fd, "f", "x");
	assert_int_equal(symlinkat("f", t->fd, "link"), 0);
	assert_int_equal(husk_read_file_flags(t->fd, "link", O_NOFOLLOW, 10,
					      &data, NULL, &err), -1);
	assert_non_null(strstr(err->msg, "`link` is a symbolic link"));
	husk_err_clear(&err);
	/* Without O_NOFOLLOW a link to a file is read. */
	assert_int_equal(husk_read_file(t->fd, "link", 10, &data, NULL, &err),
			 0);
	assert_string_equal(data, "x");
	free(data);
}

/* ------------------------------------------------------------ escape */

static void esc_is(const char *in, size_t len, const char *want)
{
	char *got = husk_escape(in, len);

	if (strcmp(got, want))
		fail_msg("escape: got \"%s\", want \"%s\"", got, want);
	free(got);
}

static void test_escape(void **state)
{
	char buf[16];

	(void)state;
	esc_is("plain text", 10, "plain text");
	esc_is("tab\tkept", 8, "tab\tkept");
	/* ESC sequences: clear screen, colour, OSC title, cursor up. */
	esc_is("\x1b[2J\x1b[31mred", 12, "\\x1b[2J\\x1b[31mred");
	esc_is("\x1b]0;pwned\x07", 10, "\\x1b]0;pwned\\x07");
	esc_is("a\x1b[1Ab", 6, "a\\x1b[1Ab");
	/* CR LF injection: a forged log line stays on this one. */
	esc_is("ok\r\n2026 husk: error: x", 23,
		      "ok\\x0d\\x0a2026 husk: error: x");
	esc_is("\b\b\bfake", 7, "\\x08\\x08\\x08fake");
	/* Every C0 control but tab, and DEL. */
	for (unsigned c = 1; c < 0x20; c++) {
		char in[1] = { (char)c }, want[8];

		if (c == '\t')
			continue;
		snprintf(want, sizeof(want), "\\x%02x", c);
		esc_is(in, 1, want);
	}
	esc_is("\x7f", 1, "\\x7f");
	/* A NUL inside the given length does not end the text. */
	esc_is("a\0b", 3, "a\\x00b");
	/* UTF-8: printable kept, C1 controls (U+009B CSI, U+0085 NEL)
	 * escaped, bytes that are not UTF-8 escaped one by one. */
	esc_is("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80", 14,
		      "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80");
	esc_is("\xc2\x9b" "2J\xc2\x85", 6, "\\xc2\\x9b2J\\xc2\\x85");
	esc_is("\x9b" "2J", 3, "\\x9b2J");
	esc_is("\xff\xfe", 2, "\\xff\\xfe");
	esc_is("\xc0\xaf", 2, "\\xc0\\xaf");          /* overlong / */
	esc_is("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");   /* surrogate */
	esc_is("\xe2\x98", 2, "\\xe2\\x98");          /* cut short */
	esc_is("", 0, "");
	/* Bounded: cut on a whole escape, always terminated. */
	assert_int_equal(husk_escape_buf("\x1b\x1b\x1b\x1b", 4, buf, 10),
			 8);
	assert_string_equal(buf, "\\x1b\\x1b");
	assert_int_equal(husk_escape_buf("abc\xc3\xa9", 5, buf, 5), 3);
	assert_string_equal(buf, "abc");
	/* Names: printable ASCII without space. */
	assert_true(husk_is_name("husk-agent", 10));
	assert_false(husk_is_name("", 0));
	assert_false(husk_is_name("a b", 3));
	assert_false(husk_is_name("a\x1b", 2));
	assert_false(husk_is_name("caf\xc3\xa9", 5));
}

static void test_id_invalid_shown_escaped(void **state)
{
	struct husk_err *err = NULL;

	(void)state;
	assert_int_equal(husk_id_validate("a\x1b[2Jb", "container id", &err),
			 -1);
	assert_non_null(strstr(err->msg, "`a\\x1b[2Jb`"));
	assert_null(strchr(err->msg, '\x1b'));
	husk_err_clear(&err);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_id_invalid),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_path_join_escape),
		T(test_open_beneath),
		T(test_open_beneath_walk),
		T(test_write_atomic),
		T(test_read_file_max),
		T(test_read_file_kinds),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_id_invalid_shown_escaped),
		T(test_rmtree),
		T(test_mkdir_p),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_clock_alloc),
		cmocka_unit_test(test_io_all),
		cmocka_unit_test(test_path_clean_abs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
