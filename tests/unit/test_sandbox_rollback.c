/* sandbox/lifecycle.c: a create that fails part-way, because the
 * hypervisor driver, the proxy or the agent fails, leaves no state
 * directory, no process and no mount.  The fakes are this very binary,
 * started by husk_ct_create as the driver or the proxy (main() tells
 * by its arguments), speaking libipc on the socket it is given. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "sandbox/sandbox.h"

/* ------------------------------------------------------------ fakes */

/* The method the fake answers with an error (HUSK_FAKE_FAIL). */
static const char *fake_fail;

static int fake_answer(struct ipc_conn *c, struct ipc_msg *m,
		       void *params, void *arg, struct husk_err **err)
{
	const char *method = m->method;

	(void)arg;
	if (fake_fail && !strcmp(fake_fail, method)) {
		ipc_reply_error(c, m->msgid, HUSK_E_INTERNAL,
				"fake: %s fails", method);
		return 0;
	}
	if (!strcmp(method, "status")) {
		msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

		msgpack_pack_map(pk, 1);
		ipc_pack_kv_str(pk, "accel", "tcg");
		ipc_reply_send(c);
		return 0;
	}
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static void fake_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static int fake_main(const char *component, const char *sock, int ready_fd)
{
	/* Every method is answered: "ok", or the error asked for. */
	static const struct ipc_method methods[] = {
		IPC_METHOD("*", IPC_M_REQUEST, fake_answer),
		IPC_METHOD_END,
	};
	struct ev_loop *loop = ev_default_loop(0);
	struct ipc_server_opts o = { .conn = { .component = component,
					       .methods = methods } };
	struct husk_err *err = NULL;
	struct ipc_server *s;
	ev_signal term;

	fake_fail = getenv("HUSK_FAKE_FAIL");
	signal(SIGPIPE, SIG_IGN);
	s = ipc_server_new(loop, sock, &o, &err);
	if (!s) {
		fprintf(stderr, "fake %s: %s\n", component, err->msg);
		return 1;
	}
	ev_signal_init(&term, fake_signal, SIGTERM);
	ev_signal_start(loop, &term);
	/* The proxy's word that the agent answered (sandbox/vm.c). */
	if (ready_fd >= 0 && write(ready_fd, "ok\n", 3) < 0)
		return 1;
	ev_run(loop, 0);
	ipc_server_free(s);
	return 0;
}

/* ---------------------------------------------------------- fixture */

static char self[PATH_MAX];

/* A string of the configuration, owned by it (husk_config_free). */
static void setstr(char **field, const char *value)
{
	free(*field);
	*field = husk_xstrdup(value);
}
/* The share is a mount: made in a namespace of our own, so that a
 * failing test leaves nothing on the host (root only, as husk). */
static bool have_ns;

static int children(bool kill_them);

struct fix {
	char dir[64];
	char root[96];
	char bundle[96];
	struct husk_store s;
	struct husk_config cfg;
};

static int setup(void **state)
{
	struct fix *f;
	char path[160];
	static const char spec[] =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"args\":[\"/bin/true\"],\"cwd\":\"/\"},"
		"\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
		"{\"type\":\"mount\"}]}}";

	if (!have_ns) {
		*state = NULL;
		return 0;
	}
	f = husk_xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-sbrb.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	snprintf(f->bundle, sizeof(f->bundle), "%s/bundle", f->dir);
	snprintf(path, sizeof(path), "%s/rootfs", f->bundle);
	if (mkdir(f->bundle, 0700) < 0 || mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/config.json", f->bundle);
	if (husk_write_atomic(AT_FDCWD, path, spec, sizeof(spec) - 1, 0600,
			      NULL) < 0)
		return -1;
	if (husk_store_open(&f->s, f->root, NULL) < 0)
		return -1;
	husk_config_defaults(&f->cfg);
	setstr(&f->cfg.hypervisor_path, self);
	setstr(&f->cfg.proxy_path, self);
	setstr(&f->cfg.shim_path, "/bin/false");
	setstr(&f->cfg.proxy_user, "root");
	f->cfg.host_network = true;
	setstr(&f->cfg.network_model, "none");
	f->cfg.netmon_enable = false;
	f->cfg.agent_timeout = 10;
	husk_log_set_level(HUSK_LOG_ERROR);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (!f)
		return 0;
	unsetenv("HUSK_FAKE_FAIL");
	if (children(true))
		while (waitpid(-1, NULL, 0) > 0)
			;
	husk_store_close(&f->s);
	husk_rmtree_at(AT_FDCWD, f->dir, NULL);
	husk_config_free(&f->cfg);
	free(f);
	return 0;
}

/* Children of ours still alive (zombies are reaped first); kill: and
 * end them (teardown: a failed test must not leave its fakes running). */
static int children(bool kill_them)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[300], buf[512], *p;
		int ppid;
		FILE *fp;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (!(fp = fopen(path, "r")))
			continue;
		p = fgets(buf, sizeof(buf), fp) ? strrchr(buf, ')') : NULL;
		fclose(fp);
		if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
		    ppid == getpid()) {
			if (kill_them)
				kill(atoi(de->d_name), SIGKILL);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Mounts below the test's directory. */
static int mounts_below(const char *dir)
{
	FILE *fp = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t len = strlen(dir);
	int n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char mnt[PATH_MAX];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    !strncmp(mnt, dir, len))
			n++;
	}
	fclose(fp);
	return n;
}

static void create_fails(struct fix *f, const char *want)
{
	struct husk_create_opts o = { .detach = true };
	struct husk_err *err = NULL;
	struct stat st;
	char path[160];

	if (!f) {
		skip();
		return;
	}
	assert_int_equal(children(false), 0);
	if (husk_ct_create(&f->s, &f->cfg, "c1", f->bundle, &o, &err) == 0)
		fail_msg("create succeeded");
	if (!strstr(err->msg, want))
		fail_msg("'%s' lacks '%s'", err->msg, want);
	husk_err_clear(&err);
	assert_int_equal(mounts_below(f->dir), 0);
	assert_int_equal(children(false), 0);
	snprintf(path, sizeof(path), "%s/c1", f->root);
	if (lstat(path, &st) == 0)
		fail_msg("%s is left", path);
	assert_int_equal(errno, ENOENT);
}

/* A driver that is no program at all, and one that exits at once. */
static void test_driver_missing(void **state)
{
	struct fix *f = *state;

	setstr(&f->cfg.hypervisor_path, "/nonexistent/husk-hypervisor");
	create_fails(f, "start the hypervisor driver");
}

static void test_driver_exits(void **state)
{
	struct fix *f = *state;

	setstr(&f->cfg.hypervisor_path, "/bin/false");
	create_fails(f, "husk-hypervisor exited during start-up");
}

/* A driver that refuses to start the VM. */
static void test_driver_fails(void **state)
{
	struct fix *f = *state;

	setenv("HUSK_FAKE_FAIL", "start", 1);
	create_fails(f, "fake: start fails");
}

static void test_proxy_exits(void **state)
{
	struct fix *f = *state;

	setstr(&f->cfg.proxy_path, "/bin/false");
	create_fails(f, "husk-proxy exited during start-up");
}

static void test_proxy_fails(void **state)
{
	struct fix *f = *state;

	setenv("HUSK_FAKE_FAIL", "create_sandbox", 1);
	create_fails(f, "fake: create_sandbox fails");
}

/* The agent's error comes back through the proxy. */
static void test_agent_fails(void **state)
{
	struct fix *f = *state;

	setenv("HUSK_FAKE_FAIL", "create_container", 1);
	create_fails(f, "fake: create_container fails");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_driver_missing),
		T(test_driver_exits),
		T(test_driver_fails),
		T(test_proxy_exits),
		T(test_proxy_fails),
		T(test_agent_fails),
	};
	ssize_t n;

	/* Started as a fake: the driver gets --qemu, the proxy --agent. */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--socket")) {
			bool hv = false;
			int ready_fd = -1;

			for (int j = 1; j < argc; j++)
				if (!strcmp(argv[j], "--qemu"))
					hv = true;
				else if (!strcmp(argv[j], "--ready-fd") &&
					 j + 1 < argc)
					ready_fd = atoi(argv[j + 1]);
			return fake_main(hv ? "husk-hypervisor" :
					 "husk-proxy", argv[i + 1], ready_fd);
		}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	have_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
