/*
 * agent/oci_seccomp.c: decoding OCI linux.seccomp, building the filter,
 * and what a process that loads it sees.
 *
 * Linked with build/lib/libagent.a (agent/program.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "libhusk/cleanup.h"
#include "tests/unit/agent_testlib.h"
#include "agent/oci_seccomp.h"

static int setup(void **state)
{
	*state = at_new();
	return 0;
}

static int teardown(void **state)
{
	at_free(*state);
	return 0;
}

/* The shape of Docker's and containerd's default profile, cut down:
 * an allow-list with a default errno, argument conditions, names this
 * libseccomp may not know, and more than one architecture. */
static const char default_profile[] =
	"{'defaultAction': 'SCMP_ACT_ERRNO', 'defaultErrnoRet': 1,"
	" 'architectures': ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64',"
	"   'SCMP_ARCH_X32'],"
	" 'flags': ['SECCOMP_FILTER_FLAG_SPEC_ALLOW'],"
	" 'syscalls': ["
	"  {'names': ['read', 'write', 'exit', 'exit_group', 'getpid',"
	"    'rt_sigreturn', 'rt_sigprocmask', 'brk', 'mmap', 'munmap',"
	"    'futex', 'close', 'fstat', 'newfstatat', 'openat',"
	"    'wait4', 'kill', 'sigaltstack', 'madvise', 'mprotect', 'gettid',"
	"    'no_such_syscall_2099'],"
	"   'action': 'SCMP_ACT_ALLOW'},"
	"  {'names': ['personality'], 'action': 'SCMP_ACT_ALLOW',"
	"   'args': [{'index': 0, 'value': 0, 'op': 'SCMP_CMP_EQ'}]},"
	"  {'names': ['personality'], 'action': 'SCMP_ACT_ALLOW',"
	"   'args': [{'index': 0, 'value': 4294967295, 'op': 'SCMP_CMP_EQ'}]},"
	"  {'names': ['socket'], 'action': 'SCMP_ACT_ALLOW',"
	"   'args': [{'index': 0, 'value': 1, 'op': 'SCMP_CMP_EQ'}]},"
	"  {'names': ['getcwd'], 'action': 'SCMP_ACT_ERRNO', 'errnoRet': 38},"
	"  {'names': ['socket'], 'action': 'SCMP_ACT_ERRNO', 'errnoRet': 97,"
	"   'args': [{'index': 0, 'value': 10, 'op': 'SCMP_CMP_EQ'},"
	"            {'index': 0, 'value': 17, 'op': 'SCMP_CMP_EQ'}]},"
	"  {'names': ['mkdirat'], 'action': 'SCMP_ACT_ERRNO',"
	"   'comment': 'same as the default: skipped'},"
	"  {'names': ['umask'], 'action': 'SCMP_ACT_ERRNO', 'errnoRet': 22,"
	"   'args': [{'index': 0, 'value': 18, 'valueTwo': 18,"
	"             'op': 'SCMP_CMP_MASKED_EQ'}]}"
	" ]}";

static void test_decode_build(void **state)
{
	struct at *t = *state;
	struct oci_seccomp *s = NULL;
	scmp_filter_ctx ctx = NULL;

	if (oci_seccomp_decode(at_json(t, default_profile), &s, &t->err) < 0)
		fail_msg("decode: %s", t->err->msg);
	assert_int_equal(s->def_action, SCMP_ACT_ERRNO(1));
	assert_int_equal(s->narches, 3);
	assert_true(s->spec_allow);
	assert_int_equal(s->nrules, 8);
	/* The unknown name is gone, the others resolved. */
	assert_int_equal(s->rules[0].nsys, 21);
	assert_int_equal(s->rules[4].action, SCMP_ACT_ERRNO(38));
	assert_int_equal(s->rules[5].nargs, 2);
	assert_int_equal(s->rules[7].args[0].op, SCMP_CMP_MASKED_EQ);
	assert_int_equal(s->rules[7].args[0].datum_a, 18);
	assert_int_equal(s->rules[7].args[0].datum_b, 18);
	if (oci_seccomp_build(s, &ctx, &t->err) < 0)
		fail_msg("build: %s", t->err->msg);
	assert_int_equal(seccomp_arch_exist(ctx, SCMP_ARCH_AARCH64), 0);
	assert_int_equal(seccomp_arch_exist(ctx, SCMP_ARCH_X32), 0);
	seccomp_release(ctx);
	oci_seccomp_free(s);
}

/* Run fn in a child that loaded the filter; its exit status is fn's. */
static int in_child(const char *profile, struct at *t, int (*fn)(void))
{
	struct oci_seccomp *s = NULL;
	scmp_filter_ctx ctx = NULL;
	int status;
	pid_t pid;

	if (oci_seccomp_decode(at_json(t, profile), &s, &t->err) < 0)
		fail_msg("decode: %s", t->err->msg);
	if (oci_seccomp_build(s, &ctx, &t->err) < 0)
		fail_msg("build: %s", t->err->msg);
	oci_seccomp_free(s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* What the agent's core does when the spec asks for
		 * no_new_privs (the filter leaves it to the caller). */
		signal(SIGSYS, SIG_DFL);  /* cmocka catches it */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    seccomp_load(ctx) < 0)
			_exit(100);
		_exit(fn());
	}
	seccomp_release(ctx);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 200 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int probe_default(void)
{
	char buf[64];
	int fd;

	/* The allow-list. */
	if (getpid() <= 0)
		return 1;
	/* Rule: getcwd -> ENOSYS. */
	if (syscall(SYS_getcwd, buf, sizeof(buf)) != -1 || errno != ENOSYS)
		return 2;
	/* Not listed: the default errno. */
	if (syscall(SYS_mkdir, "/tmp/husk-seccomp-test", 0700) != -1 ||
	    errno != EPERM)
		return 3;
	if (syscall(SYS_mkdirat, AT_FDCWD, "/tmp/husk-seccomp-test", 0700) !=
	    -1 || errno != EPERM)
		return 4;
	/* Conditions on one argument are ORed: AF_INET6 and AF_PACKET are
	 * refused with EAFNOSUPPORT, AF_UNIX goes through. */
	if (syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0) != -1 ||
	    errno != EAFNOSUPPORT)
		return 5;
	if (syscall(SYS_socket, AF_PACKET, SOCK_DGRAM, 0) != -1 ||
	    errno != EAFNOSUPPORT)
		return 6;
	fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return 7;
	close(fd);
	/* personality(0xffffffff) is a query: allowed by its condition;
	 * personality(PER_LINUX32) is not listed. */
	if (syscall(SYS_personality, 0xffffffffUL) == -1)
		return 8;
	if (syscall(SYS_personality, PER_LINUX32) != -1 || errno != EPERM)
		return 9;
	/* MASKED_EQ: (mask & 18) == 18 -> EINVAL; umask is not otherwise
	 * allowed, so 0 gets the default EPERM. */
	if (syscall(SYS_umask, 022) != -1 || errno != EINVAL)
		return 10;
	if (syscall(SYS_umask, 0) != -1 || errno != EPERM)
		return 11;
	return 0;
}

static void test_load_default(void **state)
{
	assert_int_equal(in_child(default_profile, *state, probe_default), 0);
}

static int probe_kill(void)
{
	syscall(SYS_getppid);
	return 1;
}

static void test_load_kill_and_trap(void **state)
{
	struct at *t = *state;

	assert_int_equal(in_child(
		"{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': ["
		" {'names': ['getppid'], 'action': 'SCMP_ACT_KILL_PROCESS'}]}",
		t, probe_kill), 200 + SIGSYS);
	assert_int_equal(in_child(
		"{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': ["
		" {'names': ['getppid'], 'action': 'SCMP_ACT_TRAP'}]}",
		t, probe_kill), 200 + SIGSYS);
	/* A rule equal to the default is dropped, not refused. */
	assert_int_equal(in_child(
		"{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': ["
		" {'names': ['getppid'], 'action': 'SCMP_ACT_ALLOW'}],"
		" 'listenerPath': ''}",
		t, probe_kill), 1);
}

static void test_errors(void **state)
{
	struct at *t = *state;
	struct oci_seccomp *s = NULL;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "[]", "linux.seccomp: expected a map, got an array" },
		{ "{}", "linux.seccomp.defaultAction: missing" },
		{ "{'defaultAction': 'SCMP_ACT_FOO'}",
		  "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"" },
		{ "{'defaultAction': 1}",
		  "linux.seccomp.defaultAction: expected a string, got an integer" },
		{ "{'defaultAction': 'SCMP_ACT_NOTIFY'}",
		  "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported by husk-agent" },
		{ "{'defaultAction': 'SCMP_ACT_ERRNO', 'defaultErrnoRet': 5000}",
		  "linux.seccomp.defaultErrnoRet: 5000 is out of range [0, 4095]" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'architectures': ['SCMP_ARCH_VAX']}",
		  "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\"" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'flags': ['SECCOMP_FILTER_FLAG_NEW_LISTENER']}",
		  "linux.seccomp.flags[0]: flag \"SECCOMP_FILTER_FLAG_NEW_LISTENER\" is not supported by husk-agent" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'listenerPath': '/run/x'}",
		  "linux.seccomp.listenerPath: not supported by husk-agent" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read']}]}",
		  "linux.seccomp.syscalls[0].action: missing" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': [], 'action': 'SCMP_ACT_KILL'}]}",
		  "linux.seccomp.syscalls[0].names: empty" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': [1], 'action': 'SCMP_ACT_KILL'}]}",
		  "linux.seccomp.syscalls[0].names[0]: expected a string, got an integer" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'errnoRet': 1}]}",
		  "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_NOTIFY'}]}",
		  "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported by husk-agent" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'includes': {}}]}",
		  "linux.seccomp.syscalls[0].includes: not supported by husk-agent" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'args': [{'index': 6, 'value': 1, 'op': 'SCMP_CMP_EQ'}]}]}",
		  "linux.seccomp.syscalls[0].args[0].index: 6 is out of range [0, 5]" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'args': [{'index': 0, 'value': 1, 'op': 'SCMP_CMP_XX'}]}]}",
		  "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_XX\"" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'args': [{'index': 0, 'op': 'SCMP_CMP_EQ'}]}]}",
		  "linux.seccomp.syscalls[0].args[0].value: missing" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'args': [{'index': 0, 'value': -1, 'op': 'SCMP_CMP_EQ'}]}]}",
		  "linux.seccomp.syscalls[0].args[0].value: -1 is out of range [0, 18446744073709551615]" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_KILL', 'args': [1,2,3,4,5,6,7]}]}",
		  "linux.seccomp.syscalls[0].args: array of 7 elements is longer than 6" },
		{ "{'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['read'], 'action': 'SCMP_ACT_ERRNO'}, {'names': ['x'], 'action': 'bad'}]}",
		  "linux.seccomp.syscalls[1].action: unknown action \"bad\"" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(oci_seccomp_decode(at_json(t, cases[i].json),
						    &s, &t->err), -1);
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
	}
}

static void test_limits(void **state)
{
	struct at *t = *state;
	struct oci_seccomp *s = NULL;

	/* 513 names in one entry. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "defaultAction", "SCMP_ACT_ALLOW");
	ipc_pack_key(&t->pk, "syscalls");
	msgpack_pack_array(&t->pk, 1);
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "action", "SCMP_ACT_KILL");
	ipc_pack_key(&t->pk, "names");
	msgpack_pack_array(&t->pk, 513);
	for (int i = 0; i < 513; i++)
		ipc_pack_str(&t->pk, "read");
	assert_int_equal(oci_seccomp_decode(at_obj(t), &s, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "linux.seccomp.syscalls[0].names: array of 513 elements is longer than 512");

	/* 4097 entries. */
	msgpack_pack_map(&t->pk, 2);
	ipc_pack_kv_str(&t->pk, "defaultAction", "SCMP_ACT_ALLOW");
	ipc_pack_key(&t->pk, "syscalls");
	msgpack_pack_array(&t->pk, 4097);
	for (int i = 0; i < 4097; i++)
		msgpack_pack_nil(&t->pk);
	assert_int_equal(oci_seccomp_decode(at_obj(t), &s, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "linux.seccomp.syscalls: array of 4097 elements is longer than 4096");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decode_build, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_kill_and_trap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
