/*
 * husk-agent: the container engine inside the VM (PID 1), or on a host
 * for tests with --channel.  The host channel, then options, open, run
 * on libhusk/daemon.h; the method table is agent/methods.c.
 *
 * The agent does not confine itself (no seccomp, no capability cut): it
 * is the guest's init and builds containers, which needs every
 * privilege the guest has; the VM is its boundary (docs/agent.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"

#define PORT_NAME "agent.channel.0"
/* A host is looked for again this often: every 50 ms when the port's
 * wake-up cannot be watched, once a second as a safety net when it
 * can (wait_host). */
#define REOPEN_SECONDS 0.05
#define REOPEN_FALLBACK_SECONDS 1.0

static struct agent agent;
static struct agent_core core;

struct ipc_conn *agent_conn(struct agent *a)
{
	struct ipc_conn *c = a->core->conn;

	return c && !ipc_conn_closed(c) ? c : NULL;
}

/* ------------------------------------------------------------------ */
/* the host channel                                                    */

static void wait_host(struct agent *a);

static void on_ready(struct ipc_conn *c, void *arg)
{
	struct agent *a = arg;
	struct ipc_conn *old = a->core->conn;

	/* One host at a time: a new connection is the proxy coming back. */
	a->core->conn = c;
	if (old && old != c) {
		log_info("%s: a new host connection replaces the old one",
			 __func__);
		ipc_conn_close(old, NULL);
	}
	log_debug("%s: host %s connected", __func__,
		  ipc_conn_peer_component(c));
	stream_conn_changed(a);
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	struct agent *a = arg;

	if (why)
		log_info("%s: host connection closed: %s", __func__, why->msg);
	if (a->core->conn != c)
		return;
	a->core->conn = NULL;
	stream_conn_changed(a);
	if (!a->host_mode)
		wait_host(a);
}

static void conn_opts(struct ipc_conn_opts *o, struct agent *a)
{
	memset(o, 0, sizeof(*o));
	o->role = IPC_ROLE_SERVER;
	o->component = AGENT_COMPONENT;
	o->methods = agent_methods;
	/* The proxy reads no more from a guest (docs/proxy.md); a larger
	 * answer becomes an error the caller sees, not a cut channel. */
	o->max_frame_send = IPC_AGENT_FRAME_MAX;
	o->on_ready = on_ready;
	o->on_close = on_close;
	o->trusted = true;
	/* The port outlives the host's connections (reopen_port). */
	o->rehello = true;
	o->arg = a;
}

/*
 * VM mode: the virtio-serial port is a character device, not a socket.
 * It stays open for the agent's whole life: closing it tells QEMU the
 * guest left, and what a host sends meanwhile waits in QEMU until the
 * guest queues new buffers, which may be never.  While no host is
 * connected the port polls POLLHUP and reads EOF, so each connection
 * wraps a dup of the port, and the next host is waited for without
 * spinning on the HUP: the port is in an epoll set of its own,
 * edge-triggered, and the console driver wakes the port's waiters when
 * QEMU reports the host's side opened (or closed), so that set turns
 * readable at once and not on the next tick of a timer.  A timer looks
 * too, once a second, in case a wake-up was missed; every 50 ms when
 * the set could not be made.
 */
static bool try_port(struct agent *a, const char *how)
{
	struct pollfd pfd = { .fd = a->core->port_fd, .events = POLLIN };
	struct ipc_conn_opts o;
	struct husk_err *err = NULL;
	struct ipc_conn *c;
	int fd;

	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLHUP))
		return false;
	fd = fcntl(a->core->port_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		log_warn("%s: dup %s", __func__, a->core->port_path);
		return false;
	}
	conn_opts(&o, a);
	c = ipc_conn_new(a->core->loop, fd, &o, &err);
	if (!c) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
		return false;
	}
	log_info("%s: host present on %s (%s)", __func__, a->core->port_path,
		 how);
	a->core->conn = c;
	ev_io_stop(a->core->loop, &a->core->port_w);
	ev_timer_stop(a->core->loop, &a->core->reopen_w);
	return true;
}

static void wait_host(struct agent *a)
{
	struct agent_core *ac = a->core;

	if (ac->port_ep >= 0)
		ev_io_start(ac->loop, &ac->port_w);
	ev_timer_stop(ac->loop, &ac->reopen_w);
	ev_timer_set(&ac->reopen_w, ac->port_ep >= 0 ?
		     REOPEN_FALLBACK_SECONDS : REOPEN_SECONDS, 0.);
	ev_timer_start(ac->loop, &ac->reopen_w);
}

static void reopen_port(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;

	if (!try_port(a, "found by the timer"))
		wait_host(a);
}

static void port_woken(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent *a = w->data;
	struct epoll_event ev[4];

	/* Drain before looking, so that a wake-up after the look is a new
	 * edge and turns the set readable again. */
	for (int i = 0; i < 8 && epoll_wait(a->core->port_ep, ev, 4, 0) > 0;
	     i++)
		;
	try_port(a, "woken by the port");
}

/* The port in an edge-triggered set: EPOLLOUT too, as a port whose host
 * is there but has sent nothing polls only writable. */
static void port_watch(struct agent_core *ac)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLET,
	};

	ac->port_ep = epoll_create1(EPOLL_CLOEXEC);
	if (ac->port_ep >= 0 &&
	    epoll_ctl(ac->port_ep, EPOLL_CTL_ADD, ac->port_fd, &ev) == 0) {
		ev_io_init(&ac->port_w, port_woken, ac->port_ep, EV_READ);
		ac->port_w.data = &agent;
		return;
	}
	log_warn("%s: watch %s (looking for a host every %d ms instead)",
		 __func__, ac->port_path, (int)(REOPEN_SECONDS * 1000));
	if (ac->port_ep >= 0)
		close(ac->port_ep);
	ac->port_ep = -1;
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	ct_reaped(w->data, w->rpid, w->rstatus);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

#define XSTR(x) STR(x)
#define STR(x) #x

static char *channel;
static bool debug;

static const struct option agent_options[] = {
	{ "channel", required_argument, NULL, 'c' },
	{ "shared-dir", required_argument, NULL, 's' },
	{ "cgroup-root", required_argument, NULL, 'g' },
	{ "net", no_argument, NULL, 'n' },
	{ NULL, 0, NULL, 0 },
};

static int agent_option(struct husk_daemon *d, int key, const char *arg,
			struct husk_err **err)
{
	switch (key) {
	case 'c':
		if (strncmp(arg, "unix:", 5) != 0 || !arg[5])
			return husk_error(err, HUSK_E_INVALID, "--channel "
					  "`%s`: expected unix:PATH", arg);
		channel = (char *)arg + 5;
		break;
	case 's':
		agent.shared_dir = (char *)arg;
		break;
	case 'g':
		if (!arg[0] || arg[0] == '/' || strstr(arg, ".."))
			return husk_error(err, HUSK_E_INVALID, "--cgroup-root "
					  "`%s`: a relative name without ..",
					  arg);
		core.cgroup_root = (char *)arg;
		break;
	case 'n':
		agent.net_ok = true;
		break;
	}
	return 0;
}

static int agent_check(struct husk_daemon *d, struct husk_err **err)
{
	agent.host_mode = channel != NULL;
	if (!agent.host_mode && getpid() != 1)
		return husk_error(err, HUSK_E_INVALID, "without --channel it "
				  "must run as PID 1 in the guest");
	if (agent.host_mode && !agent.shared_dir)
		return husk_error(err, HUSK_E_INVALID, "--channel needs "
				  "--shared-dir");
	/* PID 1 takes no stop signal: the host stops the VM. */
	if (!agent.host_mode)
		d->flags |= HUSK_DAEMON_OWN_SIGNALS;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open, run (no confinement: see the top of this file)               */

/* PID 1 may start without 0, 1 and 2: fill them so that the pipes
 * handed to containers never land there. */
static void fill_std_fds(void)
{
	int fd;

	do
		fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= 2);
	if (fd > 2)
		close(fd);
}

static int read_cap_last(void)
{
	cleanup_free char *s = NULL;
	long long v;

	if (husk_read_file(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 32, &s,
			   NULL, NULL) < 0)
		return 40;
	s[strcspn(s, "\n")] = '\0';
	if (husk_parse_int(s, 0, 63, &v) < 0)
		return 40;
	return (int)v;
}

static int start_host_mode(const char *path, struct husk_err **err)
{
	struct ipc_server_opts so;

	memset(&so, 0, sizeof(so));
	conn_opts(&so.conn, &agent);
	core.server = ipc_server_new(core.loop, path, &so, err);
	if (!core.server)
		return -1;
	log_info("%s: listening on %s, shared dir %s", __func__, path,
		 agent.shared_dir);
	return 0;
}

static int start_vm_mode(struct husk_err **err)
{
	core.port_fd = init_find_port(PORT_NAME, &core.port_path, err);
	if (core.port_fd < 0)
		return -1;
	log_info("%s: agent channel %s", __func__, core.port_path);
	port_watch(&core);
	if (!try_port(&agent, "at start"))
		wait_host(&agent);
	return 0;
}

static int agent_open(struct husk_daemon *d, struct husk_err **err)
{
	static char *copy_roots[] = { "/run/husk", NULL };
	const char *dir;

	if (!agent.host_mode) {
		if (init_guest(&agent, &debug, err) < 0)
			return -1;
		if (debug && husk_log_get_level() < HUSK_LOG_DEBUG)
			husk_log_set_level(HUSK_LOG_DEBUG);
		/* init_guest logs to the console; --log still wins. */
		if (d->log_path && husk_log_open(d->log_path) < 0)
			return husk_error(err, HUSK_E_SYSTEM, "open log `%s`: "
					  "%s", d->log_path, strerror(errno));
		if (!agent.shared_dir)
			agent.shared_dir = AGENT_SHARED_DIR;
	} else {
		/* Orphans of our containers come back to us to be reaped. */
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	}
	dir = agent.shared_dir;
	agent.shared_dir = realpath(dir, NULL);
	if (!agent.shared_dir)
		return husk_error_sys(err, errno, "shared dir `%s`", dir);
	agent.copy_roots = copy_roots;
	fill_std_fds();
	core.cap_last = read_cap_last();
	core.self_pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (core.self_pidns_fd < 0)
		return husk_error_sys(err, errno, "open /proc/self/ns/pid");
	if (cg_init(err) < 0)
		return -1;
	core.loop = d->loop;
	ev_child_init(&core.child_w, child_cb, 0, 0);
	core.child_w.data = &agent;
	ev_child_start(core.loop, &core.child_w);
	ev_timer_init(&core.reopen_w, reopen_port, REOPEN_SECONDS, 0.);
	core.reopen_w.data = &agent;
	return 0;
}

static int agent_run(struct husk_daemon *d, struct husk_err **err)
{
	if (agent.host_mode)
		return start_host_mode(channel, err);
	if (start_vm_mode(err) < 0)
		return -1;
	init_power_button(&agent, core.loop, ct_powerdown);
	return 0;
}

static void agent_close(struct husk_daemon *d)
{
	if (core.server)
		ipc_server_free(core.server);
	free(agent.shared_dir);
}

/* PID 1 may not exit: the VM powers off instead. */
static void agent_on_fatal(struct husk_daemon *d, int code, const char *msg)
{
	if (agent.host_mode)
		return;
	fprintf(stderr, "husk-agent: %s\n", msg);
	init_poweroff();
}

static struct husk_daemon agent_daemon = {
	.name = "husk-agent",
	.tag = "agent",
	.version = AGENT_VERSION " (protocol " XSTR(IPC_PROTOCOL_VERSION) ")",
	.usage = "[--channel unix:PATH] [--shared-dir DIR]\n"
		 "[--cgroup-root NAME] [--net]",
	.options = agent_options,
	.option = agent_option,
	.check = agent_check,
	.open = agent_open,
	/* No confinement: the agent is the guest's init and builds
	 * containers with every privilege the guest has; the VM is its
	 * boundary (docs/agent.md). */
	.confine = NULL,
	.run = agent_run,
	.close = agent_close,
	.on_fatal = agent_on_fatal,
	.flags = HUSK_DAEMON_NO_SANDBOX_OPT | HUSK_DAEMON_NO_SECCOMP_OPT,
	.log_level = HUSK_LOG_INFO,
	.arg = &agent,
};

int main(int argc, char **argv)
{
	agent.core = &core;
	core.cgroup_root = "husk";
	core.sandbox_pidns_fd = -1;
	core.port_fd = -1;
	core.port_ep = -1;
	return husk_daemon_main(&agent_daemon, argc, argv);
}
