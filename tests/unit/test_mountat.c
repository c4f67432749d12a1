/*
 * libhusk/mountat.c: directories made beneath a descriptor refuse
 * planted symlinks, binds carry nosuid,nodev,ro to the copies that
 * propagate from them, and unmounting never follows a symlink.  Run as
 * root in a mount namespace of their own (skipped otherwise).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/mountat.h"
#include "libhusk/util.h"

static bool have_ns;

struct tmp {
	char path[64];
	int fd;
};

static char *at(const struct tmp *t, const char *rel)
{
	return husk_xasprintf("%s/%s", t->path, rel);
}

static int tmp_setup(void **state)
{
	struct tmp *t = husk_xcalloc(1, sizeof(*t));

	snprintf(t->path, sizeof(t->path), "/tmp/husk-test-mountat.XXXXXX");
	if (!mkdtemp(t->path))
		return -1;
	t->fd = open(t->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	*state = t;
	return t->fd < 0 ? -1 : 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;

	/* Lazily, everything below it: what a test left mounted goes
	 * with the namespace anyway. */
	if (have_ns) {
		for (int i = 0; i < 8; i++) {
			FILE *f = fopen("/proc/self/mountinfo", "re");
			char line[4096];
			bool any = false;

			while (f && fgets(line, sizeof(line), f)) {
				char mnt[4096];

				if (sscanf(line, "%*s %*s %*s %*s %4095s",
					   mnt) == 1 &&
				    !strncmp(mnt, t->path, strlen(t->path))) {
					umount2(mnt, MNT_DETACH);
					any = true;
				}
			}
			if (f)
				fclose(f);
			if (!any)
				break;
		}
	}
	husk_rmtree_at(AT_FDCWD, t->path, NULL);
	close(t->fd);
	free(t);
	return 0;
}

static void touch(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

/* The mount options field of path's line in mountinfo. */
static char *mnt_opts(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], *res = NULL;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char mnt[4096], opts[512];

		if (sscanf(line, "%*s %*s %*s %*s %4095s %511s", mnt,
			   opts) == 2 && !strcmp(mnt, path)) {
			free(res);
			res = husk_xstrdup(opts);
		}
	}
	fclose(f);
	return res;
}

static bool has_word(const char *list, const char *w)
{
	cleanup_free char *c = husk_xasprintf(",%s,", list);
	cleanup_free char *k = husk_xasprintf(",%s,", w);

	return strstr(c, k) != NULL;
}

#define NEED_NS() do { if (!have_ns) { skip(); return; } } while (0)

/* -------------------------------------------------- making targets */

static void test_mkdir_beneath_makes_and_reopens(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *p = at(t, "a/b/c");
	struct stat st;
	int fd;

	fd = husk_mkdir_beneath(t->fd, "a/b/./c", 0750, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	fd = husk_mkdir_beneath(t->fd, "a/b/c", 0750, &err);
	assert_true(fd >= 0);
	close(fd);
}

static void test_mkdir_beneath_refuses_symlinks(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *victim = at(t, "victim");
	cleanup_free char *link = at(t, "ctr/mounts");
	cleanup_free char *made = at(t, "victim/7");
	cleanup_free char *ctr = at(t, "ctr");

	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(mkdir(ctr, 0755), 0);
	/* The guest's plant: ctr/mounts -> a host directory. */
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(husk_mkdir_beneath(t->fd, "ctr/mounts/7", 0755,
					    &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(err->msg, "symlink"));
	husk_err_clear(&err);
	assert_int_equal(access(made, F_OK), -1);

	/* A symlink at the last component is refused the same way. */
	assert_int_equal(husk_mkdir_beneath(t->fd, "ctr/mounts", 0755, &err),
			 -1);
	assert_int_equal(err->code, HUSK_E_PERMISSION);
	husk_err_clear(&err);
}

static void test_mkdir_beneath_refuses_dotdot_and_absolute(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;

	assert_int_equal(husk_mkdir_beneath(t->fd, "a/../../x", 0755, &err),
			 -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
	assert_int_equal(husk_mkdir_beneath(t->fd, "/tmp/x", 0755, &err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
}

static void test_mkfile_at(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *victim = at(t, "victim");
	cleanup_free char *link = at(t, "f");
	cleanup_free char *dir = at(t, "d");
	struct stat st;
	int fd;

	fd = husk_mkfile_at(t->fd, "g", 0644, &err);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	close(fd);
	/* Again: the existing file is fine. */
	fd = husk_mkfile_at(t->fd, "g", 0644, &err);
	assert_true(fd >= 0);
	close(fd);

	/* A symlink to a host file is not created through nor used. */
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(husk_mkfile_at(t->fd, "f", 0644, &err), -1);
	husk_err_clear(&err);
	assert_int_equal(access(victim, F_OK), -1);
	touch(victim);
	assert_int_equal(husk_mkfile_at(t->fd, "f", 0644, &err), -1);
	assert_int_equal(err->code, HUSK_E_PERMISSION);
	husk_err_clear(&err);

	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(husk_mkfile_at(t->fd, "d", 0644, &err), -1);
	husk_err_clear(&err);
	assert_int_equal(husk_mkfile_at(t->fd, "../x", 0644, &err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
}

/* An image's absolute symlink is resolved inside the image: the mount
 * point is made there, never on the host. */
static void test_mkpath_in_root_stays_inside(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *root = at(t, "root"), *victim = at(t, "victim");
	cleanup_free char *link = at(t, "root/var");
	cleanup_free char *in = husk_xasprintf("%s%s/run/x", root, victim);
	cleanup_free char *f = at(t, "root/etc/hosts");
	cleanup_free char *out = at(t, "victim/run");
	cleanup_close int rfd = -1;
	struct stat st;
	int fd;

	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkdir(victim, 0755), 0);
	/* var -> <tmp>/victim, absolute: on the host it leaves the root. */
	assert_int_equal(symlink(victim, link), 0);
	rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* The link's target as the image has it (inside the root). */
	fd = husk_mkdir_beneath(rfd, victim + 1, 0755, &err);
	assert_true(fd >= 0);
	close(fd);
	fd = husk_mkpath_in_root(rfd, "/var/../var/run/x", false, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(in, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(access(out, F_OK), -1);
	/* A link whose target the image lacks: refused, nothing made. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(symlink("/nowhere", link), 0);
	assert_int_equal(husk_mkpath_in_root(rfd, "/var/y", false, &err), -1);
	husk_err_clear(&err);

	fd = husk_mkpath_in_root(rfd, "/etc/hosts", true, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(f, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	/* "/.." is "/": refused as text rather than clamped. */
	assert_int_equal(husk_mkpath_in_root(rfd, "/../x", false, &err), -1);
	husk_err_clear(&err);
}

/* ----------------------------------------------------------- binds */

static void test_bind_fd_ro_nosuid_nodev(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *src = at(t, "src"), *dst = at(t, "dst");
	cleanup_free char *f = at(t, "dst/f"), *sf = at(t, "src/f");
	cleanup_free char *opts = NULL;
	cleanup_close int sfd = -1, tfd = -1;

	NEED_NS();
	assert_int_equal(mkdir(src, 0755), 0);
	sfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	tfd = husk_mkdir_beneath(t->fd, "dst", 0755, &err);
	assert_true(sfd >= 0 && tfd >= 0);
	assert_int_equal(husk_bind_fd(sfd, tfd, HUSK_BIND_RDONLY, "test",
				      &err), 0);
	opts = mnt_opts(dst);
	assert_non_null(opts);
	assert_true(has_word(opts, "ro"));
	assert_true(has_word(opts, "nosuid"));
	assert_true(has_word(opts, "nodev"));
	assert_int_equal(open(f, O_CREAT | O_WRONLY, 0644), -1);
	assert_int_equal(errno, EROFS);
	/* The source itself stays writable. */
	touch(sf);
	assert_int_equal(husk_umount_at(t->fd, "dst", &err), 1);
	assert_null(mnt_opts(dst));
}

static void test_bind_fd_recursive_ro(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *src = at(t, "src"), *sub = at(t, "src/sub");
	cleanup_free char *dsub = at(t, "dst/sub");
	cleanup_free char *opts = NULL, *f = at(t, "dst/sub/f");
	cleanup_close int sfd = -1, tfd = -1;

	NEED_NS();
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(mount("tmpfs", sub, "tmpfs", 0, "size=64k"), 0);
	sfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	tfd = husk_mkdir_beneath(t->fd, "dst", 0755, &err);
	assert_int_equal(husk_bind_fd(sfd, tfd, HUSK_BIND_REC |
				      HUSK_BIND_RDONLY, "test", &err), 0);
	opts = mnt_opts(dsub);
	assert_non_null(opts);
	assert_true(has_word(opts, "ro"));
	assert_true(has_word(opts, "nodev"));
	assert_int_equal(open(f, O_CREAT | O_WRONLY, 0644), -1);
	assert_int_equal(errno, EROFS);
	/* One lazy unmount takes the submount along. */
	assert_int_equal(husk_umount_at(t->fd, "dst", &err), 1);
	assert_null(mnt_opts(dsub));
}

/*
 * The share's layout: a shared staging tmpfs, its read-only bind as the
 * served view.  A read-only bind made in staging reaches the view
 * read-only (the attributes were set before it was attached), the view's
 * top refuses writes, and unmounting in staging clears the view.
 */
static void test_bind_fd_propagates_attributes(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *stage = at(t, "stage"), *view = at(t, "view");
	cleanup_free char *src = at(t, "src"), *vm = at(t, "view/c/m");
	cleanup_free char *vtop = at(t, "view/planted");
	cleanup_free char *vf = at(t, "view/c/m/f"), *opts = NULL;
	cleanup_close int sfd = -1, vfd = -1, srcfd = -1, cfd = -1, mfd = -1;

	NEED_NS();
	assert_int_equal(mkdir(stage, 0700), 0);
	assert_int_equal(mkdir(view, 0755), 0);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mount("t", stage, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(mount(NULL, stage, NULL, MS_SHARED, NULL), 0);
	sfd = open(stage, O_PATH | O_DIRECTORY | O_CLOEXEC);
	vfd = open(view, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(husk_bind_fd(sfd, vfd, HUSK_BIND_RDONLY, "view",
				      &err), 0);
	/* The top of the view is read-only: nothing can be planted. */
	assert_int_equal(symlink("/etc", vtop), -1);
	assert_int_equal(errno, EROFS);

	cfd = husk_mkdir_beneath(sfd, "c", 0755, &err);
	mfd = husk_mkdir_beneath(cfd, "m", 0755, &err);
	srcfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(mfd >= 0 && srcfd >= 0);
	assert_int_equal(husk_bind_fd(srcfd, mfd, HUSK_BIND_RDONLY, "vol",
				      &err), 0);
	opts = mnt_opts(vm);
	assert_non_null(opts);
	assert_true(has_word(opts, "ro"));
	assert_true(has_word(opts, "nosuid"));
	assert_int_equal(open(vf, O_CREAT | O_WRONLY, 0644), -1);
	assert_int_equal(errno, EROFS);

	assert_int_equal(husk_umount_at(cfd, "m", &err), 1);
	assert_null(mnt_opts(vm));
}

/* A source on a shared mount: a private bind gets none of its later
 * mounts, a slave bind gets them. */
static void test_bind_fd_propagation_from_source(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *src = at(t, "src"), *sub = at(t, "src/sub");
	cleanup_free char *priv = at(t, "priv/sub"), *slave = at(t, "slave/sub");
	cleanup_close int sfd = -1, pfd = -1, lfd = -1;
	cleanup_free char *o = NULL;

	NEED_NS();
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mount("t", src, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(mount(NULL, src, NULL, MS_SHARED, NULL), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	sfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	pfd = husk_mkdir_beneath(t->fd, "priv", 0755, &err);
	lfd = husk_mkdir_beneath(t->fd, "slave", 0755, &err);
	assert_int_equal(husk_bind_fd(sfd, pfd, HUSK_BIND_REC |
				      HUSK_BIND_PRIVATE, "p", &err), 0);
	assert_int_equal(husk_bind_fd(sfd, lfd, HUSK_BIND_REC |
				      HUSK_BIND_SLAVE, "s", &err), 0);
	assert_int_equal(mount("t", sub, "tmpfs", 0, "size=64k"), 0);
	o = mnt_opts(slave);
	assert_non_null(o);
	assert_null(mnt_opts(priv));
}

/* -------------------------------------------------------- unmounts */

static void test_umount_at_never_follows(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *victim = at(t, "victim"), *link = at(t, "link");
	cleanup_free char *opts = NULL;

	NEED_NS();
	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(mount("t", victim, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(husk_umount_at(t->fd, "link", &err), 0);
	opts = mnt_opts(victim);
	assert_non_null(opts);
	/* Missing and plain directories are no mount: 0. */
	assert_int_equal(husk_umount_at(t->fd, "missing", &err), 0);
	assert_int_equal(husk_umount_at(t->fd, "victim", &err), 1);
}

static void test_umount_at_stacked(void **state)
{
	struct tmp *t = *state;
	struct husk_err *err = NULL;
	cleanup_free char *m = at(t, "m");

	NEED_NS();
	assert_int_equal(mkdir(m, 0755), 0);
	assert_int_equal(mount("t", m, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(mount("t", m, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(husk_umount_at(t->fd, "m", &err), 2);
	assert_null(mnt_opts(m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_mkdir_beneath_makes_and_reopens, tmp_setup,
			tmp_teardown),
		cmocka_unit_test_setup_teardown(
			test_mkdir_beneath_refuses_symlinks, tmp_setup,
			tmp_teardown),
		cmocka_unit_test_setup_teardown(
			test_mkdir_beneath_refuses_dotdot_and_absolute,
			tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_mkfile_at, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(
			test_mkpath_in_root_stays_inside, tmp_setup,
			tmp_teardown),
		cmocka_unit_test_setup_teardown(test_bind_fd_ro_nosuid_nodev,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_bind_fd_recursive_ro,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
			test_bind_fd_propagates_attributes, tmp_setup,
			tmp_teardown),
		cmocka_unit_test_setup_teardown(
			test_bind_fd_propagation_from_source, tmp_setup,
			tmp_teardown),
		cmocka_unit_test_setup_teardown(test_umount_at_never_follows,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_umount_at_stacked,
						tmp_setup, tmp_teardown),
	};

	/* A mount namespace of our own, private: nothing a test mounts
	 * reaches the host, and it all goes when we exit. */
	have_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
