/*
 * The shim's one-shot commands.  `start` runs in the bundle directory:
 * a container that joins a pod gets the pod's daemon's address; any
 * other starts a daemon, detached from containerd's stdout and stderr
 * (containerd reads both to their end), with the listening socket at
 * descriptor 3.  `delete` cleans up after a daemon that died.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "shimv2.h"
#include "shimv2/proto/task.pb-c.h"
#include "shimv2/ttrpc.h"

char *sv_root(const char *ns)
{
	const char *r = getenv("HUSK_ROOT");

	(void)ns;
	return husk_xstrdup(r && *r == '/' ? r : SV_DEFAULT_ROOT);
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	/* A separator, so that ("ab", "c") and ("a", "bc") differ. */
	h ^= 0xff;
	h *= 0x100000001b3ULL;
	return h;
}

/*
 * One socket per pod, named by containerd's address, the namespace and
 * the pod's id, so that a container joining the pod finds it, and two
 * containerds never share one.  The name is a hash: its length does not
 * depend on the ids (sun_path holds 108 bytes).
 */
int sv_sock_path(const char *address, const char *ns, const char *id,
		 char **out, struct husk_err **err)
{
	uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
	const char *parts[] = { address ? address : "", ns, id };

	for (size_t i = 0; i < 3; i++) {
		a = fnv1a(a, parts[i]);
		b = fnv1a(b, parts[2 - i]);
	}
	*out = husk_xasprintf("%s/%016llx%016llx.sock", SV_SOCK_DIR,
			      (unsigned long long)a, (unsigned long long)b);
	if (strlen(*out) >= SV_SOCK_MAX) {
		free(*out);
		*out = NULL;
		return husk_error(err, HUSK_E_INVALID, "socket path too long");
	}
	return 0;
}

static int listen_unix(const char *path, struct husk_err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return husk_error_sys(err, e, "bind `%s`", path);
	}
	if (chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		close(fd);
		unlink(path);
		return husk_error_sys(err, e, "listen on `%s`", path);
	}
	return fd;
}

/* Does a daemon answer at path? */
static bool sock_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int write_address(const char *addr, struct husk_err **err)
{
	if (husk_write_atomic(AT_FDCWD, "address", addr, strlen(addr), 0644,
			      err) < 0)
		return husk_error_wrap(err, "the bundle's address file");
	return 0;
}

/* The pod this bundle's container belongs to (its own id if none). */
static int bundle_pod(const char *id, char **sid, struct husk_err **err)
{
	json_error_t jerr;
	json_t *spec = json_load_file("config.json", 0, &jerr);
	int rc;

	if (!spec)
		return husk_error(err, HUSK_E_INVALID, "config.json in the "
				  "bundle: %s", jerr.text);
	rc = husk_pod_membership(spec, id, sid, err);
	json_decref(spec);
	return rc;
}

/* The daemon: this program again, with no action, detached from our
 * session and stdio, the listening socket at 3. */
static int spawn_daemon(struct sv *s, int lfd, pid_t *out,
			struct husk_err **err)
{
	char *argv[12];
	int n = 0, null;
	pid_t pid;

	argv[n++] = (char *)SV_NAME;
	argv[n++] = "-namespace";
	argv[n++] = (char *)s->ns;
	argv[n++] = "-id";
	argv[n++] = (char *)s->id;
	argv[n++] = "-address";
	argv[n++] = (char *)s->address;
	if (s->publish_binary) {
		argv[n++] = "-publish-binary";
		argv[n++] = (char *)s->publish_binary;
	}
	if (s->debug)
		argv[n++] = "-debug";
	argv[n] = NULL;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return husk_error_sys(err, errno, "open /dev/null");
	pid = fork();
	if (pid < 0) {
		close(null);
		return husk_error_sys(err, errno, "fork the daemon");
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(null, 2) < 0 || dup2(lfd, 3) < 0)
			_exit(127);
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(null);
	*out = pid;
	return 0;
}

int sv_cmd_start(struct sv *s, int argc, char **argv, struct husk_err **err)
{
	cleanup_free char *sid = NULL, *path = NULL, *addr = NULL;
	char buf[32];
	pid_t pid = 0;
	int lfd, n;

	(void)argc;
	(void)argv;
	if (bundle_pod(s->id, &sid, err) < 0)
		return -1;
	if (sv_sock_path(s->address, s->ns, sid, &path, err) < 0)
		return -1;
	addr = husk_xasprintf("unix://%s", path);
	if (strcmp(sid, s->id)) {
		/* One daemon, one VM per pod. */
		if (!sock_alive(path))
			return husk_error(err, HUSK_E_NOT_FOUND, "container %s "
					  "joins pod %s, whose shim does not "
					  "answer at %s", s->id, sid, path);
	} else {
		if (husk_mkdir_p(SV_SOCK_DIR, 0711, err) < 0)
			return -1;
		if (sock_alive(path))
			return husk_error(err, HUSK_E_EXISTS, "a shim for %s "
					  "already answers at %s", s->id,
					  path);
		/* A dead daemon's socket. */
		unlink(path);
		lfd = listen_unix(path, err);
		if (lfd < 0)
			return -1;
		if (spawn_daemon(s, lfd, &pid, err) < 0) {
			close(lfd);
			unlink(path);
			return -1;
		}
		close(lfd);
		/* For `delete`, should containerd give up on it. */
		n = snprintf(buf, sizeof(buf), "%d", (int)pid);
		if (husk_write_atomic(AT_FDCWD, SV_PID_FILE, buf, (size_t)n,
				      0644, err) < 0)
			return husk_error_wrap(err, "the bundle's %s",
					       SV_PID_FILE);
	}
	if (write_address(addr, err) < 0)
		return -1;
	printf("%s", addr);
	fflush(stdout);
	return 0;
}

/* What the daemon at the bundle's address says of the task: 1 it has
 * it, 0 it does not (deleted), -1 no answer within 3 s. */
struct ask {
	int answer;
};

static void asked(void *arg, int code, const char *msg, const uint8_t *p,
		  size_t n)
{
	struct ask *a = arg;

	(void)msg;
	(void)p;
	(void)n;
	a->answer = code == TTRPC_OK ? 1 : code == TTRPC_NOT_FOUND ? 0 : -1;
	ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static void ask_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

/* One call to the daemon at addr, answered within 3 s or not at all. */
static int ask_daemon(const char *addr, const char *method,
		      const ProtobufCMessage *req)
{
	struct ev_loop *loop = EV_DEFAULT;
	struct ttrpc_client *c = ttrpc_client_connect(loop, addr, NULL);
	struct ask a = { -1 };
	ev_timer t;

	if (!c)
		return -1;
	if (ttrpc_client_call(c, "containerd.task.v2.Task", method, req,
			      3000000000LL, asked, &a, NULL) == 0) {
		ev_timer_init(&t, ask_timeout, 3., 0.);
		ev_timer_start(loop, &t);
		ev_run(loop, 0);
		ev_timer_stop(loop, &t);
	}
	ttrpc_client_free(c);
	return a.answer;
}

/* The daemon has the task (1), has it not (0: it was deleted, or never
 * created; the daemon is then asked to shut down, which it does once
 * no task is left, as after containerd's own Shutdown), or does not
 * answer (-1). */
static int daemon_has_task(struct sv *s)
{
	cleanup_free char *addr = NULL;
	Task__StateRequest req = TASK__STATE_REQUEST__INIT;
	Task__ShutdownRequest sd = TASK__SHUTDOWN_REQUEST__INIT;
	size_t len;
	int rc;

	if (husk_read_file(AT_FDCWD, "address", 4096, &addr, &len, NULL) < 0)
		return -1;
	addr[strcspn(addr, "\n")] = '\0';
	req.id = (char *)s->id;
	req.exec_id = "";
	rc = ask_daemon(addr, "State", &req.base);
	if (rc == 0) {
		sd.id = (char *)s->id;
		ask_daemon(addr, "Shutdown", &sd.base);
	}
	return rc;
}

/*
 * containerd calls `delete` whenever it closes its connection to a
 * daemon: after a Delete (the daemon goes on for the pod's other
 * tasks, or is leaving), and when it lost the daemon (killed, or a call
 * it gave up on).  The pid `start` wrote goes only in the last case: the
 * daemon does not answer, or it still holds the task containerd gave
 * up on; and only if it is still this program serving this id.
 */
static void kill_daemon(struct sv *s)
{
	cleanup_free char *text = NULL, *cmd = NULL, *idarg = NULL;
	char path[64];
	size_t len = 0;
	long long v;
	struct husk_proc_ref ref;

	if (husk_read_file(AT_FDCWD, SV_PID_FILE, 32, &text, &len, NULL) < 0)
		return;
	if (daemon_has_task(s) == 0)
		return;
	text[strcspn(text, "\n")] = '\0';
	if (husk_parse_int(text, 2, INT32_MAX, &v) < 0)
		return;
	snprintf(path, sizeof(path), "/proc/%lld/cmdline", v);
	if (husk_read_file(AT_FDCWD, path, 8192, &cmd, &len, NULL) < 0)
		return;
	for (size_t i = 0; i + 1 < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	idarg = husk_xasprintf(" -id %s ", s->id);
	if (strncmp(cmd, SV_NAME " ", strlen(SV_NAME) + 1) ||
	    !strstr(cmd, idarg) ||
	    husk_proc_ref((pid_t)v, &ref) < 0)
		return;
	log_warnx("delete %s: its daemon %lld is still there: stopped", s->id,
		  v);
	husk_proc_stop(&ref, 2000);
}

/*
 * After a daemon died: the task's container (with its VM and every
 * member, for a pod's own container) goes, whatever state it is in, as
 * `husk delete --force` does; then the rootfs we mounted and the
 * daemon's socket.  DeleteResponse on stdout: SIGKILL's status, now.
 */
int sv_cmd_delete(struct sv *s, struct husk_err **err)
{
	Task__DeleteResponse r = TASK__DELETE_RESPONSE__INIT;
	Gpb__Timestamp ts = GPB__TIMESTAMP__INIT;
	struct husk_store st = { .rootfd = -1 };
	struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
	struct husk_container c;
	struct husk_config cfg;
	cleanup_free char *root = sv_root(s->ns), *rootfs = NULL;
	cleanup_free char *path = NULL;
	struct timespec now;
	uint8_t *buf = NULL;
	size_t n = 0;
	const char *cpath = getenv("HUSK_CONFIG");

	if (s->bundle && chdir(s->bundle) < 0)
		return husk_error_sys(err, errno, "-bundle `%s`", s->bundle);
	kill_daemon(s);
	husk_config_defaults(&cfg);
	if (husk_config_load(&cfg, cpath && *cpath ? cpath :
			     SV_DEFAULT_CONFIG, false, err) < 0)
		return -1;
	if (husk_store_open(&st, root, NULL) == 0) {
		if (husk_store_get(&st, s->id, HUSK_LOCK_EXCL, &e, NULL) == 0) {
			if (husk_container_read(&e, &c, NULL) == 0) {
				cleanup_err struct husk_err *e2 = NULL;

				if (husk_ct_destroy(&st, &cfg, &e, &c, true,
						    &e2) < 0)
					log_warnx("delete %s: %s", s->id,
						  e2->msg);
				husk_container_free(&c);
			} else {
				husk_entry_remove(&e, NULL);
			}
			husk_entry_close(&e);
		}
		husk_store_close(&st);
	}
	husk_config_free(&cfg);
	/* The rootfs the daemon mounted from Create's mounts. */
	if (umount2("rootfs", MNT_DETACH) < 0 && errno != EINVAL &&
	    errno != ENOENT)
		log_warn("delete %s: unmount the rootfs", s->id);
	if (sv_sock_path(s->address, s->ns, s->id, &path, NULL) == 0 &&
	    !sock_alive(path))
		unlink(path);

	sv_now(&now);
	r.exit_status = 128 + SIGKILL;
	ttrpc_timestamp_set(&ts, &now);
	r.exited_at = &ts;
	if (ttrpc_pack(&r.base, &buf, &n, err) < 0)
		return -1;
	if (husk_write_all(1, buf, n) < 0) {
		free(buf);
		return husk_error_sys(err, errno, "write the DeleteResponse");
	}
	free(buf);
	return 0;
}
