/* libhusk/spawn.c: husk_fork_exec's new fields (environment, network
 * namespace, working directory) and the spawner: a process it starts is
 * still the caller's child, with the caller's descriptors at their
 * numbers, its environment and working directory of the moment, and
 * without a seccomp filter the caller loaded after the spawner began. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/confine.h"
#include "libhusk/err.h"
#include "libhusk/spawn.h"

/* Runs `sh -c script` with the pipe's write end at its own number (or
 * at 3), returns what it wrote there and its exit status in *st. */
static char *run_sh(const char *script, bool from_3, const char *cwd,
		    int *st, pid_t *pidp)
{
	static char out[4096];
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	int p[2];
	struct husk_exec x = {
		.argv = argv,
		.in_fd = -1,
		.out_fd = HUSK_FD_INHERIT,
		.nfds = 1,
		.fds_from_3 = from_3,
		.reap_on_error = true,
		.cwd = cwd,
	};
	struct husk_err *err = NULL;
	size_t have = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	x.fds = &p[1];
	pid = husk_fork_exec(&x, &err);
	if (pid < 0)
		fail_msg("husk_fork_exec: %s", err->msg);
	close(p[1]);
	while ((n = read(p[0], out + have, sizeof(out) - 1 - have)) > 0)
		have += (size_t)n;
	close(p[0]);
	out[have] = '\0';
	while (have && out[have - 1] == '\n')
		out[--have] = '\0';
	/* Our child, whoever cloned it. */
	assert_int_equal(waitpid(pid, st, 0), pid);
	if (pidp)
		*pidp = pid;
	return out;
}

static void expect_error(struct husk_exec *x, const char *want)
{
	struct husk_err *err = NULL;

	assert_int_equal(husk_fork_exec(x, &err), -1);
	assert_non_null(err);
	if (!strstr(err->msg, want))
		fail_msg("error `%s` lacks `%s`", err->msg, want);
	husk_err_free(err);
	/* reap_on_error: nothing left to reap (the spawner, when there is
	 * one, is a child that has not exited) */
	assert_true(waitpid(-1, NULL, WNOHANG) <= 0);
}

static void checks(bool spawner)
{
	char script[128], *out, dir[] = "/tmp/husk-spawn.XXXXXX";
	char *envp[] = { "ONLY=this", NULL };
	char *missing[] = { "/nonexistent/husk-x", NULL };
	char *sh_env[] = { "/bin/sh", "-c", "echo \"$ONLY:$HOME\" >&3",
			   NULL };
	struct husk_exec x = { .in_fd = -1, .out_fd = -1,
			       .reap_on_error = true };
	int st, p[2];
	pid_t pid;

	/* The descriptor at its own number, the parent is us. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	close(p[1]);
	snprintf(script, sizeof(script), "echo $PPID >&%d; exit 3", 7);
	{
		int q[2], w;

		assert_int_equal(pipe2(q, O_CLOEXEC), 0);
		/* put the write end at 7 for the script */
		w = dup3(q[1], 7, O_CLOEXEC);
		assert_int_equal(w, 7);
		close(q[1]);
		{
			char *argv[] = { "/bin/sh", "-c", script, NULL };
			struct husk_exec y = {
				.argv = argv, .in_fd = -1,
				.out_fd = HUSK_FD_INHERIT, .fds = &w,
				.nfds = 1, .reap_on_error = true,
			};
			struct husk_err *err = NULL;
			char buf[64] = "";
			ssize_t n;

			pid = husk_fork_exec(&y, &err);
			if (pid < 0)
				fail_msg("%s", err->msg);
			close(w);
			n = read(q[0], buf, sizeof(buf) - 1);
			assert_true(n > 0);
			buf[n] = '\0';
			assert_int_equal(atoi(buf), getpid());
			close(q[0]);
			assert_int_equal(waitpid(pid, &st, 0), pid);
			assert_true(WIFEXITED(st));
			assert_int_equal(WEXITSTATUS(st), 3);
		}
	}
	/* At 3, in a working directory given, then in ours of the moment. */
	assert_non_null(mkdtemp(dir));
	out = run_sh("pwd >&3", true, dir, &st, NULL);
	assert_string_equal(out, dir);
	assert_int_equal(chdir(dir), 0);
	out = run_sh("pwd >&3", true, NULL, &st, NULL);
	assert_string_equal(out, dir);
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(rmdir(dir), 0);
	/* The environment of the moment, or the one given. */
	setenv("HUSK_SPAWN_T", spawner ? "s" : "f", 1);
	out = run_sh("echo $HUSK_SPAWN_T >&3", true, NULL, &st, NULL);
	assert_string_equal(out, spawner ? "s" : "f");
	unsetenv("HUSK_SPAWN_T");
	{
		int q[2];
		char buf[64] = "";
		ssize_t n;
		struct husk_err *err = NULL;

		assert_int_equal(pipe2(q, O_CLOEXEC), 0);
		x.argv = sh_env;
		x.envp = envp;
		x.fds = &q[1];
		x.nfds = 1;
		x.fds_from_3 = true;
		pid = husk_fork_exec(&x, &err);
		assert_true(pid > 0);
		close(q[1]);
		n = read(q[0], buf, sizeof(buf) - 1);
		assert_true(n > 0);
		buf[n] = '\0';
		assert_string_equal(buf, "this:\n");
		close(q[0]);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		x.envp = NULL;
		x.fds = NULL;
		x.nfds = 0;
		x.fds_from_3 = false;
	}
	/* Failures are the call's, named, and reaped. */
	x.argv = missing;
	expect_error(&x, "exec `/nonexistent/husk-x`: No such file");
	x.argv = sh_env;
	x.cwd = "/nonexistent/dir";
	expect_error(&x, "change to the directory `/nonexistent/dir`");
	x.cwd = NULL;
	x.netns = "/nonexistent/ns";
	expect_error(&x, "enter the network namespace `/nonexistent/ns`");
	x.netns = NULL;
}

static void test_fork_exec(void **state)
{
	(void)state;
	checks(false);
}

static int no_setup(void *arg)
{
	(void)arg;
	return 0;
}

/* In a child of the test: the spawner is for the rest of a process's
 * life, and the filter loaded here must not stay with the runner. */
static void test_spawner(void **state)
{
	pid_t t;
	int st;

	(void)state;
	t = fork();
	assert_true(t >= 0);
	if (t == 0) {
		static const struct husk_errno_rule deny[] = {
			{ "uname", EPERM }, { NULL, 0 },
		};
		char *argv[] = { "/bin/sh", "-c", "exit 0", NULL };
		struct husk_exec x = { .argv = argv, .in_fd = -1,
				       .out_fd = -1, .setup = no_setup };
		struct husk_err *err = NULL;
		char *out;
		pid_t sp;

		if (husk_spawner_start(-1, &err) < 0)
			fail_msg("%s", err->msg);
		sp = husk_spawner_pid();
		assert_true(sp > 0);
		{
			/* ps and pgrep -f tell it from us */
			char path[64], buf[256] = "";
			ssize_t n;
			int fd;

			snprintf(path, sizeof(path), "/proc/%d/comm", (int)sp);
			/* its title is set once it runs */
			for (int i = 0; i < 200; i++) {
				fd = open(path, O_RDONLY);
				n = read(fd, buf, sizeof(buf) - 1);
				close(fd);
				buf[n > 0 ? n : 0] = '\0';
				if (!strcmp(buf, "husk-spawner\n"))
					break;
				usleep(10000);
			}
			assert_string_equal(buf, "husk-spawner\n");
			snprintf(path, sizeof(path), "/proc/%d/cmdline",
				 (int)sp);
			fd = open(path, O_RDONLY);
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			assert_true(n > 0);
			buf[n] = '\0';
			assert_non_null(strstr(buf, ": spawner"));
		}
		/* A second one is refused. */
		assert_int_equal(husk_spawner_start(-1, &err), -1);
		husk_err_free(err);
		err = NULL;
		checks(true);
		/* The network namespace we are in now, not the spawner's
		 * (husk-netmon is started inside the sandbox's). */
		{
			char want[64] = "";
			ssize_t n;

			assert_int_equal(unshare(CLONE_NEWNET), 0);
			n = readlink("/proc/self/ns/net", want,
				     sizeof(want) - 1);
			assert_true(n > 0);
			want[n] = '\0';
			out = run_sh("readlink /proc/self/ns/net >&3", true,
				     NULL, &st, NULL);
			assert_string_equal(out, want);
		}
		/* A filter loaded now stays ours: the spawned process has
		 * none, and uname works there. */
		if (husk_seccomp_deny_only("t", deny, &err) < 0)
			fail_msg("%s", err->msg);
		out = run_sh("grep '^Seccomp:' /proc/self/status >&3; "
			     "uname -s >&3", true, NULL, &st, NULL);
		assert_string_equal(out, "Seccomp:\t0\nLinux");
		/* Arguments past what one call carries: refused, named. */
		{
			size_t big = 200 * 1024;
			char *huge = malloc(big + 1);
			char *hargv[] = { "/bin/true", huge, NULL };
			struct husk_exec h = { .argv = hargv, .in_fd = -1,
					       .out_fd = -1 };

			memset(huge, 'a', big);
			huge[big] = '\0';
			assert_int_equal(husk_fork_exec(&h, &err), -1);
			assert_non_null(strstr(err->msg, "over the spawner's"));
			husk_err_free(err);
			err = NULL;
			free(huge);
		}
		/* setup callbacks do not cross */
		expect_error(&x, "cannot go through the spawner");
		/* A spawner gone is an error, not a hang. */
		assert_int_equal(kill(sp, SIGKILL), 0);
		assert_int_equal(waitpid(sp, NULL, 0), sp);
		x.setup = NULL;
		assert_int_equal(husk_fork_exec(&x, &err), -1);
		assert_non_null(strstr(err->msg, "spawner"));
		husk_err_free(err);
		_exit(0);
	}
	assert_int_equal(waitpid(t, &st, 0), t);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_exec),
		cmocka_unit_test(test_spawner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
