/*
 * husk-agent: the container engine inside the VM (PID 1), or on a host
 * for tests with --channel.  Set-up, the host channel, then the loop;
 * the method table is agent/methods.c.
 *
 * The agent does not confine itself (no seccomp, no capability cut): it
 * is the guest's init and builds containers, which needs every
 * privilege the guest has; the VM is its boundary (docs/agent.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup.h"
#include "agent/core.h"

#define PORT_NAME "agent.channel.0"
#define REOPEN_SECONDS 0.05

static struct agent agent;
static struct agent_core core;

struct ipc_conn *agent_conn(struct agent *a)
{
	struct ipc_conn *c = a->core->conn;

	return c && !ipc_conn_closed(c) ? c : NULL;
}

/* ------------------------------------------------------------------ */
/* the host channel                                                    */

static void reopen_port(struct ev_loop *loop, ev_timer *w, int revents);

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
	if (!a->host_mode) {
		ev_timer_set(&a->core->reopen_w, REOPEN_SECONDS, 0.);
		ev_timer_start(a->core->loop, &a->core->reopen_w);
	}
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
 * wraps a dup of the port, and after it ends a timer looks (without
 * spinning on the HUP) for the next host before wrapping it again.
 */
static void reopen_port(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	struct pollfd pfd = { .fd = a->core->port_fd, .events = POLLIN };
	struct ipc_conn_opts o;
	struct husk_err *err = NULL;
	struct ipc_conn *c;
	int fd;

	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLHUP))
		goto retry;
	fd = fcntl(a->core->port_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		log_warn("%s: dup %s", __func__, a->core->port_path);
		goto retry;
	}
	conn_opts(&o, a);
	c = ipc_conn_new(loop, fd, &o, &err);
	if (!c) {
		log_warnx("%s: %s", __func__, err->msg);
		husk_err_free(err);
		goto retry;
	}
	log_debug("%s: host present on %s", __func__, a->core->port_path);
	a->core->conn = c;
	return;
retry:
	ev_timer_set(w, REOPEN_SECONDS, 0.);
	ev_timer_start(loop, w);
}

/* Host mode: SIGTERM and SIGINT end the loop, so that an operator (or
 * a sanitizer's leak check) sees a clean exit. */
static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("%s: signal %d, stopping", __func__, w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	ct_reaped(w->data, w->rpid, w->rstatus);
}

/* ------------------------------------------------------------------ */
/* set-up                                                              */

static const char usage[] =
	"usage: husk-agent [--channel unix:PATH] [--shared-dir DIR]\n"
	"                  [--log-level error|warn|info|debug]\n"
	"                  [--cgroup-root NAME] [--net] [--help] [--version]\n";

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

static int parse_args(int argc, char **argv, char **channel, int *level)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'c' },
		{ "shared-dir", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "cgroup-root", required_argument, NULL, 'g' },
		{ "net", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (strncmp(optarg, "unix:", 5) != 0 || !optarg[5]) {
				fprintf(stderr, "husk-agent: --channel takes unix:PATH\n");
				return -1;
			}
			*channel = optarg + 5;
			break;
		case 's':
			agent.shared_dir = optarg;
			break;
		case 'l':
			*level = husk_log_level_parse(optarg);
			if (*level < 0) {
				fprintf(stderr, "husk-agent: bad --log-level %s\n",
					optarg);
				return -1;
			}
			break;
		case 'g':
			if (!optarg[0] || optarg[0] == '/' ||
			    strstr(optarg, "..")) {
				fprintf(stderr, "husk-agent: bad --cgroup-root %s\n",
					optarg);
				return -1;
			}
			core.cgroup_root = optarg;
			break;
		case 'n':
			agent.net_ok = true;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(HUSK_EXIT_OK);
		case 'V':
			printf("husk-agent %s (protocol %d)\n", AGENT_VERSION,
			       IPC_PROTOCOL_VERSION);
			exit(HUSK_EXIT_OK);
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "husk-agent: unexpected argument %s\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static int start_host_mode(const char *channel, struct husk_err **err)
{
	struct ipc_server_opts so;

	memset(&so, 0, sizeof(so));
	conn_opts(&so.conn, &agent);
	core.server = ipc_server_new(core.loop, channel, &so, err);
	if (!core.server)
		return -1;
	log_info("%s: listening on %s, shared dir %s", __func__, channel,
		 agent.shared_dir);
	return 0;
}

static int start_vm_mode(struct husk_err **err)
{
	core.port_fd = init_find_port(PORT_NAME, &core.port_path, err);
	if (core.port_fd < 0)
		return -1;
	log_info("%s: agent channel %s", __func__, core.port_path);
	reopen_port(core.loop, &core.reopen_w, 0);
	return 0;
}

int main(int argc, char **argv)
{
	static char *copy_roots[] = { "/run/husk", NULL };
	struct husk_err *err = NULL;
	char *channel = NULL;
	int level = HUSK_LOG_INFO;
	bool debug = false;

	agent.core = &core;
	core.cgroup_root = "husk";
	core.sandbox_pidns_fd = -1;
	core.port_fd = -1;
	if (parse_args(argc, argv, &channel, &level) < 0) {
		fputs(usage, stderr);
		return HUSK_EXIT_USAGE;
	}
	agent.host_mode = channel != NULL;
	husk_log_init("agent", level, HUSK_LOG_TEXT);
	if (!agent.host_mode) {
		if (getpid() != 1) {
			fprintf(stderr, "husk-agent: without --channel it must run as PID 1 in the guest\n");
			return HUSK_EXIT_USAGE;
		}
		if (init_guest(&agent, &debug, &err) < 0)
			goto fatal;
		if (debug && level < HUSK_LOG_DEBUG)
			husk_log_set_level(HUSK_LOG_DEBUG);
		if (!agent.shared_dir)
			agent.shared_dir = AGENT_SHARED_DIR;
	} else {
		if (!agent.shared_dir) {
			fprintf(stderr, "husk-agent: --channel needs --shared-dir\n");
			return HUSK_EXIT_USAGE;
		}
		/* Orphans of our containers come back to us to be reaped. */
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	}
	agent.shared_dir = realpath(agent.shared_dir, NULL);
	if (!agent.shared_dir) {
		husk_error_sys(&err, errno, "shared dir");
		goto fatal;
	}
	agent.copy_roots = copy_roots;
	fill_std_fds();
	signal(SIGPIPE, SIG_IGN);
	core.cap_last = read_cap_last();
	core.self_pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (core.self_pidns_fd < 0) {
		husk_error_sys(&err, errno, "open /proc/self/ns/pid");
		goto fatal;
	}
	if (cg_init(&err) < 0)
		goto fatal;
	core.loop = EV_DEFAULT;
	ev_child_init(&core.child_w, child_cb, 0, 0);
	core.child_w.data = &agent;
	ev_child_start(core.loop, &core.child_w);
	ev_timer_init(&core.reopen_w, reopen_port, REOPEN_SECONDS, 0.);
	core.reopen_w.data = &agent;
	if ((agent.host_mode ? start_host_mode(channel, &err) :
	     start_vm_mode(&err)) < 0)
		goto fatal;
	if (!agent.host_mode)
		init_power_button(&agent, core.loop, ct_powerdown);
	if (agent.host_mode) {
		static ev_signal term_w, int_w;

		ev_signal_init(&term_w, stop_cb, SIGTERM);
		ev_signal_init(&int_w, stop_cb, SIGINT);
		ev_signal_start(core.loop, &term_w);
		ev_signal_start(core.loop, &int_w);
	}
	ev_run(core.loop, 0);
	if (core.server)
		ipc_server_free(core.server);
	free(agent.shared_dir);
	return HUSK_EXIT_OK;
fatal:
	log_warnx("husk-agent: %s", err ? err->msg : "failed");
	if (!agent.host_mode)
		init_poweroff();
	return husk_err_exit_code(err);
}
