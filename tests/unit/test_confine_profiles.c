/*
 * Each program's own confinement profile (proxy, shim, netmon, the
 * hypervisor driver, husk-cache's server), applied in a child as the program applies it:
 * what the program needs after confining still works (or fails with
 * the errno its profile gives), and a syscall outside its list kills
 * the child with SIGSYS.  (confine.bats does the same for the shared
 * code with a probe; the bats files see each program run confined.)
 *
 * Linked with the programs' archives (their program.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "libhusk/daemon.h"

#include "proxy/proxy.h"
#include "shim/shim.h"
#include "netmon/netmon.h"
#include "hypervisor-drv/hv.h"
#include "cache/cache.h"

enum prog { P_PROXY, P_SHIM, P_NETMON, P_HV, P_CACHE };

/* In the child: confine as prog does, then its job's syscalls.  Exit
 * codes name the step that went wrong; reaching the end is a bug too. */
static int child(enum prog prog, int okfd)
{
	struct proxy p = { 0 };
	struct husk_daemon d = { .arg = &p };
	struct husk_err *err = NULL;
	int fd, rc = -1;

	switch (prog) {
	case P_PROXY:
		rc = proxy_confine(&d, &err);
		break;
	case P_SHIM:
		rc = shim_confine(&d, &err);
		break;
	case P_NETMON:
		rc = nm_confine(&d, &err);
		break;
	case P_HV:
		rc = hv_confine(&d, &err);
		break;
	case P_CACHE:
		rc = cache_confine(&d, &err);
		break;
	}
	if (rc < 0)
		return 10;
	/* The base set: what every libev loop does. */
	if (write(okfd, "c", 1) != 1)
		return 11;
	switch (prog) {
	case P_PROXY:
		/* reconnecting to the agent, removing its socket */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 20;
		close(fd);
		if (unlink("/nonexistent/husk-test") == 0 || errno != ENOENT)
			return 21;
		break;
	case P_SHIM: {
		struct winsize ws;

		/* the window size of its terminal (not one here) */
		if (ioctl(okfd, TIOCGWINSZ, &ws) == 0 || errno != ENOTTY)
			return 30;
		break;
	}
	case P_NETMON:
		/* no new sockets, no files: refused, not killed */
		if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || errno != EACCES)
			return 40;
		if (open("/etc/hostname", O_RDONLY) >= 0 || errno != EACCES)
			return 41;
		break;
	case P_HV:
		if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || errno != EACCES)
			return 50;
		if (prctl(PR_SET_NAME, "x") == 0 || errno != EPERM)
			return 51;
		break;
	case P_CACHE: {
		char buf[64];

		/* a VM's helpers alive or not: /proc read-only */
		fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
			return 60;
		close(fd);
		if (prctl(PR_SET_NAME, "x") == 0 || errno != EPERM)
			return 61;
		break;
	}
	}
	if (write(okfd, "j", 1) != 1)
		return 12;
	/* Outside every profile, and harmless if it were not. */
	syscall(SYS_ptrace, PTRACE_PEEKDATA, 1, NULL, NULL);
	return 13;
}

static void run_profile(enum prog prog)
{
	int p[2], status;
	char buf[4] = { 0 };
	pid_t pid;

#if defined(__SANITIZE_ADDRESS__)
	/* ASan's runtime makes syscalls of its own that no profile lists. */
	skip();
#endif
	if (geteuid() != 0)
		skip();
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(child(prog, p[1]));
	}
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 2);
	close(p[0]);
	if (WIFEXITED(status))
		fail_msg("child exited %d: not killed", WEXITSTATUS(status));
	/* confined, did its job, then was killed for the syscall */
	assert_string_equal(buf, "cj");
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void test_proxy(void **state)
{
	run_profile(P_PROXY);
}

static void test_shim(void **state)
{
	run_profile(P_SHIM);
}

static void test_netmon(void **state)
{
	run_profile(P_NETMON);
}

static void test_hypervisor(void **state)
{
	run_profile(P_HV);
}

static void test_cache(void **state)
{
	run_profile(P_CACHE);
}

/* husk-cache's server opens files only to read them: a write kills. */
static void test_cache_no_write(void **state)
{
	int status;
	pid_t pid;

#if defined(__SANITIZE_ADDRESS__)
	skip();
#endif
	if (geteuid() != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct husk_daemon d = { 0 };
		struct husk_err *err = NULL;

		if (cache_confine(&d, &err) < 0)
			_exit(10);
		open("/dev/null", O_WRONLY | O_CLOEXEC);
		_exit(11);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy),
		cmocka_unit_test(test_shim),
		cmocka_unit_test(test_netmon),
		cmocka_unit_test(test_hypervisor),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_no_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
