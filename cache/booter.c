/*
 * The booter: husk-cache's privileged half.  It is forked before the
 * server confines itself and keeps root's privileges, because what it
 * starts (the driver, QEMU, virtiofsd, the proxy) would inherit any
 * filter, bounding set or no_new_privs it had.  It reads fixed-size
 * commands from the server on a socketpair and nothing else; each names
 * a cached VM ("vm-N", checked), which it boots or stops with the
 * sandbox library exactly as a sandbox would (sandbox/cache.c).  When
 * the server is gone (EOF), it stops the VMs no sandbox took and exits.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

/* The VMs booted and not given away: stopped when the server goes. */
struct live {
	char names[HUSK_CACHE_MAX * 2][CACHE_NAME_MAX];
	unsigned n;
};

static void live_add(struct live *l, const char *name)
{
	if (l->n < sizeof(l->names) / sizeof(l->names[0]))
		snprintf(l->names[l->n++], CACHE_NAME_MAX, "%s", name);
}

static void live_del(struct live *l, const char *name)
{
	for (unsigned i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name)) {
			memmove(l->names[i], l->names[l->n - 1],
				CACHE_NAME_MAX);
			l->n--;
			return;
		}
}

/* The helpers of VMs given away are still our children: reap them as
 * they exit (a sandbox's delete counts a zombie as gone). */
static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static bool name_ok(const char *name)
{
	return !strncmp(name, "vm-", 3) &&
	       husk_id_validate(name, NULL, NULL) == 0;
}

static void boot(const struct husk_config *cfg, const char *fdir,
		 struct live *l, const char *name, struct cache_answer *a)
{
	struct husk_sandbox s;
	cleanup_err struct husk_err *e = NULL;

	if (husk_cache_boot(cfg, fdir, name, &s, &e) < 0) {
		snprintf(a->msg, sizeof(a->msg), "%s", e->msg);
		return;
	}
	live_add(l, name);
	a->ok = 1;
	a->hv_pid = s.hv.pid;
	a->hv_start = s.hv.start;
	a->proxy_pid = s.proxy.pid;
	a->proxy_start = s.proxy.start;
	snprintf(a->accel, sizeof(a->accel), "%s", s.accel ? s.accel : "?");
	husk_sandbox_free(&s);
}

static void stop(const char *fdir, struct live *l, const char *name,
		 struct cache_answer *a)
{
	cleanup_err struct husk_err *e = NULL;

	live_del(l, name);
	if (husk_cache_vm_stop(fdir, name, &e) < 0) {
		snprintf(a->msg, sizeof(a->msg), "%s", e->msg);
		return;
	}
	a->ok = 1;
}

/* A stop signal: the booter stops its VMs and leaves, as when the
 * server goes. */
static volatile sig_atomic_t booter_stop;

static void on_stop(int sig)
{
	(void)sig;
	booter_stop = 1;
}

static void __attribute__((noreturn))
booter_main(const struct husk_config *cfg, const char *fdir, int fd)
{
	struct live l = { .n = 0 };
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t none, stops;

	/* Signals as a plain process: the server's loop is not ours.  A
	 * stop signal is taken only while waiting for a command: a boot
	 * stopped between starting a helper and recording it would leave
	 * that helper to nobody (`husk factory destroy` waits for the
	 * boot instead); then the VMs not handed out are stopped. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	sigprocmask(SIG_SETMASK, &stops, NULL);
	log_info("booter: pid %d", (int)getpid());
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		struct timespec tick = { 1, 0 };
		struct cache_answer a;
		struct cache_cmd c;
		ssize_t n;

		reap();
		if (booter_stop) {
			log_info("booter: stopped by a signal");
			break;
		}
		if (ppoll(&pf, 1, &tick, &none) <= 0)
			continue;
		n = recv(fd, &c, sizeof(c), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		c.name[CACHE_NAME_MAX - 1] = '\0';
		if (n != sizeof(c) || !name_ok(c.name)) {
			log_warnx("booter: a bad command from the server "
				  "(%zd bytes): ignored", n);
			continue;
		}
		memset(&a, 0, sizeof(a));
		a.op = c.op;
		memcpy(a.name, c.name, sizeof(a.name));
		switch (c.op) {
		case CACHE_OP_BOOT:
			boot(cfg, fdir, &l, c.name, &a);
			break;
		case CACHE_OP_STOP:
			stop(fdir, &l, c.name, &a);
			break;
		case CACHE_OP_FORGET:
			live_del(&l, c.name);
			break;
		default:
			log_warnx("booter: unknown command %u: ignored",
				  (unsigned)c.op);
			break;
		}
		if ((c.op == CACHE_OP_BOOT || c.op == CACHE_OP_STOP) &&
		    send(fd, &a, sizeof(a), MSG_NOSIGNAL) < 0 &&
		    errno != EPIPE)
			log_warn("booter: answer the server");
	}
	/* The server is gone (or we were stopped): nobody will hand these
	 * out. */
	for (unsigned i = 0; i < l.n; i++) {
		cleanup_err struct husk_err *e = NULL;

		if (husk_cache_vm_stop(fdir, l.names[i], &e) < 0)
			log_warnx("booter: %s: %s", l.names[i], e->msg);
		else
			log_info("booter: %s stopped", l.names[i]);
	}
	reap();
	_exit(0);
}

int cache_booter_start(const struct husk_config *cfg, const char *fdir,
		       int *fd, pid_t *pid, struct husk_err **err)
{
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return husk_error_sys(err, errno, "socketpair");
	*pid = fork();
	if (*pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return husk_error_sys(err, errno, "fork the booter");
	}
	if (*pid == 0) {
		close(sp[0]);
		booter_main(cfg, fdir, sp[1]);
	}
	close(sp[1]);
	*fd = sp[0];
	return 0;
}
