/* libhusk/store.c: entries, flock locking between processes, atomic
 * state files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/store.h"
#include "libhusk/util.h"
#include "tests/unit/store_testlib.h"

static int setup(void **state)
{
	/* The root is created by husk_store_open, parents included. */
	return store_setup(state, "store", "run/husk");
}

static int teardown(void **state)
{
	return store_teardown(state);
}

static void test_open_mode(void **state)
{
	struct fix *f = *state;
	struct stat st;

	assert_int_equal(stat(f->root, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(f->s.root, f->root);
}

/* A root others could write to, or that is not ours, is refused; one
 * with the sticky or set-gid bit but no write for others is fine. */
static void test_open_root_checked(void **state)
{
	struct fix *f = *state;
	struct husk_store s2;
	struct husk_err *err = NULL;
	char root[160];

	snprintf(root, sizeof(root), "%s/shared", f->dir);
	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(chmod(root, 0777), 0);
	assert_int_equal(husk_store_open(&s2, root, &err), -1);
	assert_int_equal(err->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(err->msg, "is writable by others (mode "
				"0777): make it 0700"));
	assert_int_equal(s2.rootfd, -1);
	husk_err_clear(&err);
	assert_int_equal(chmod(root, 0730), 0);
	assert_int_equal(husk_store_open(&s2, root, &err), -1);
	assert_non_null(strstr(err->msg, "writable by its group"));
	husk_err_clear(&err);
	assert_int_equal(chmod(root, 0755), 0);
	assert_int_equal(husk_store_open(&s2, root, &err), 0);
	husk_store_close(&s2);
	if (geteuid() == 0) {
		assert_int_equal(chown(root, 65534, 0), 0);
		assert_int_equal(husk_store_open(&s2, root, &err), -1);
		assert_non_null(strstr(err->msg, "is owned by uid 65534, not "
					"by uid 0 (root)"));
		husk_err_clear(&err);
	}
}

static void test_create_get_remove(void **state)
{
	struct fix *f = *state;
	struct husk_entry e, g;
	struct husk_err *err = NULL;
	struct stat st;
	char path[160];

	assert_int_equal(husk_store_create(&f->s, "c1", HUSK_LOCK_EXCL, &e,
					   &err), 0);
	assert_null(err);
	assert_string_equal(e.id, "c1");
	assert_true(e.dirfd >= 0 && e.lockfd >= 0);
	snprintf(path, sizeof(path), "%s/c1", f->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	husk_entry_close(&e);
	assert_int_equal(e.dirfd, -1);

	/* create again: exists */
	assert_int_equal(husk_store_create(&f->s, "c1", HUSK_LOCK_EXCL, &e,
					   &err), -1);
	assert_int_equal(err->code, HUSK_E_EXISTS);
	assert_non_null(strstr(err->msg, "c1"));
	husk_err_clear(&err);

	assert_int_equal(husk_store_get(&f->s, "c1", HUSK_LOCK_SHARED, &g,
					&err), 0);
	husk_entry_close(&g);
	assert_int_equal(husk_store_get(&f->s, "c1", HUSK_LOCK_EXCL, &g,
					&err), 0);
	assert_int_equal(husk_entry_write(&g, "state.json", "{}", 2, &err), 0);
	assert_int_equal(mkdirat(g.dirfd, "sub", 0700), 0);
	assert_int_equal(husk_entry_remove(&g, &err), 0);
	assert_null(err);
	assert_int_equal(stat(path, &st), -1);

	assert_int_equal(husk_store_get(&f->s, "c1", HUSK_LOCK_NONE, &g,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	assert_string_equal(err->msg, "container c1 does not exist");
	husk_err_clear(&err);
}

static void test_bad_ids(void **state)
{
	struct fix *f = *state;
	struct husk_entry e;
	struct husk_err *err = NULL;

	assert_int_equal(husk_store_create(&f->s, "../evil", HUSK_LOCK_EXCL,
					   &e, &err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
	assert_int_equal(husk_store_get(&f->s, "..", HUSK_LOCK_NONE, &e,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_INVALID);
	husk_err_clear(&err);
	assert_int_equal(husk_store_get(&f->s, "", HUSK_LOCK_NONE, &e, &err),
			 -1);
	husk_err_clear(&err);
}

static void test_list(void **state)
{
	struct fix *f = *state;
	static const char *const ids[] = { "zeta", "alpha", "m-1", "Beta" };
	struct husk_err *err = NULL;
	struct husk_entry e;
	char **v = NULL;
	char path[160];
	int fd;

	assert_int_equal(husk_store_list(&f->s, &v, &err), 0);
	assert_null(v[0]);
	free(v);

	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(husk_store_create(&f->s, ids[i],
						   HUSK_LOCK_NONE, &e, &err),
				 0);
		husk_entry_close(&e);
	}
	/* noise that list must skip: a file, a dot dir, a symlink */
	fd = openat(f->s.rootfd, "file", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdirat(f->s.rootfd, ".hidden", 0700), 0);
	snprintf(path, sizeof(path), "%s/alpha", f->root);
	assert_int_equal(symlinkat(path, f->s.rootfd, "link"), 0);

	assert_int_equal(husk_store_list(&f->s, &v, &err), 0);
	assert_string_equal(v[0], "Beta");
	assert_string_equal(v[1], "alpha");
	assert_string_equal(v[2], "m-1");
	assert_string_equal(v[3], "zeta");
	assert_null(v[4]);
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void test_files(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	struct husk_entry e;
	char *data = NULL;
	size_t len = 0;

	assert_int_equal(husk_store_create(&f->s, "c2", HUSK_LOCK_EXCL, &e,
					   &err), 0);
	assert_int_equal(husk_entry_write(&e, "state.json", "{\"v\":1}", 7,
					  &err), 0);
	assert_int_equal(husk_entry_write(&e, "state.json", "{\"v\":2}", 7,
					  &err), 0);
	assert_int_equal(husk_entry_read(&e, "state.json", 4096, &data, &len,
					 &err), 0);
	assert_int_equal(len, 7);
	assert_string_equal(data, "{\"v\":2}");
	free(data);

	assert_int_equal(husk_entry_read(&e, "state.json", 3, &data, &len,
					 &err), -1);
	assert_int_equal(err->code, HUSK_E_TOO_LARGE);
	husk_err_clear(&err);
	assert_int_equal(husk_entry_read(&e, "nope", 10, &data, &len, &err),
			 -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	husk_err_clear(&err);
	/* the lock and escapes are not state files */
	assert_int_equal(husk_entry_write(&e, ".lock", "x", 1, &err), -1);
	husk_err_clear(&err);
	assert_int_equal(husk_entry_write(&e, "../x", "x", 1, &err), -1);
	husk_err_clear(&err);
	husk_entry_close(&e);
}

/* Whether pid waits for a lock: a "->" line of /proc/locks names it. */
static bool waits_for_lock(pid_t pid)
{
	char line[256], want[32];
	bool found = false;
	FILE *f = fopen("/proc/locks", "r");

	if (!f)
		return false;
	snprintf(want, sizeof(want), " %d ", (int)pid);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "->") && strstr(line, want);
	fclose(f);
	return found;
}

/* Wait until pid blocks on a lock; the bound (30 s) only ends a hang. */
static bool wait_lock_waiter(pid_t pid)
{
	for (int i = 0; i < 3000; i++) {
		if (waits_for_lock(pid))
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/*
 * A child takes the exclusive lock and holds it until told to go on;
 * the parent's non-blocking lock fails with HUSK_E_STATE and a blocking
 * one waits until the child lets go.
 */
static void test_lock_between_processes(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	struct husk_entry e;
	int ready[2], go[2], status;
	pid_t pid;
	char c;

	assert_int_equal(husk_store_create(&f->s, "locked", HUSK_LOCK_NONE,
					   &e, &err), 0);
	husk_entry_close(&e);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_entry ce;

		if (husk_store_get(&f->s, "locked", HUSK_LOCK_EXCL, &ce,
				   NULL) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		/* hold it until the parent really waits for it */
		if (!wait_lock_waiter(getppid()))
			_exit(3);
		husk_entry_close(&ce);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);

	assert_int_equal(husk_store_get(&f->s, "locked",
					HUSK_LOCK_EXCL | HUSK_LOCK_NB, &e,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_STATE);
	assert_string_equal(err->msg,
			    "container locked is locked by another command");
	husk_err_clear(&err);
	assert_int_equal(e.lockfd, -1);
	assert_int_equal(husk_store_get(&f->s, "locked",
					HUSK_LOCK_SHARED | HUSK_LOCK_NB, &e,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_STATE);
	husk_err_clear(&err);
	/* no lock asked: always fine */
	assert_int_equal(husk_store_get(&f->s, "locked", HUSK_LOCK_NONE, &e,
					&err), 0);
	husk_entry_close(&e);

	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(husk_store_get(&f->s, "locked", HUSK_LOCK_EXCL, &e,
					&err), 0);
	/* 0: the child saw us blocked before it let go */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	husk_entry_close(&e);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

/* A waiter that gets the lock after the holder removed the entry learns
 * that it is gone instead of working on a dead directory. */
static void test_lock_then_removed(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	struct husk_entry e;
	int ready[2], status;
	pid_t pid;
	char c;

	assert_int_equal(husk_store_create(&f->s, "doomed", HUSK_LOCK_NONE,
					   &e, &err), 0);
	husk_entry_close(&e);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_entry ce;

		if (husk_store_get(&f->s, "doomed", HUSK_LOCK_EXCL, &ce,
				   NULL) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		/* removed only once the parent waits for the lock */
		if (!wait_lock_waiter(getppid()))
			_exit(4);
		_exit(husk_entry_remove(&ce, NULL) < 0 ? 3 : 0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(husk_store_get(&f->s, "doomed", HUSK_LOCK_EXCL, &e,
					&err), -1);
	assert_int_equal(err->code, HUSK_E_NOT_FOUND);
	husk_err_clear(&err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ready[0]);
	close(ready[1]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_mode),
		T(test_open_root_checked),
		T(test_create_get_remove),
		T(test_bad_ids),
		T(test_list),
		T(test_files),
		T(test_lock_between_processes),
		T(test_lock_then_removed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
