/*
 * The agent connection: the proxy is its client (it sends the hello),
 * and everything that comes back is hostile input.  Responses are
 * matched to the calls the proxy forwarded by libipc's call table (an
 * answer to an id never asked, or asked and answered, ends the
 * connection there); the only notification the agent may send is
 * output, checked by the stream table.  Anything else cuts it off.
 *
 * When the connection ends, for whatever reason, pending calls fail
 * with the reason, subscriptions stay, and the proxy reconnects with a
 * backoff: a VM that restarts comes back on the same channel socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "proxy.h"

static int proxy_m_output(struct ipc_conn *c, struct ipc_msg *m,
			  void *params, void *arg, struct husk_err **err);

/* What the agent may send on its own.  Its output is decoded by
 * pstreams_agent_msg (a fuzz target's entry), not by a table: a bad one
 * cuts the agent's connection. */
static const struct ipc_method agent_methods[] = {
	/* As a request too: pstreams_agent_msg refuses it (a request from
	 * the guest cuts it off), where libipc would answer it with an
	 * error, as often as the guest asks. */
	IPC_METHOD(AGENT_N_OUTPUT, IPC_M_NOTIFY | IPC_M_REQUEST,
		   proxy_m_output),
	/* Anything else (output_ack, requests, unknown names) is refused
	 * by pstreams_agent_msg, which names it in the log. */
	IPC_METHOD("*", IPC_M_NOTIFY | IPC_M_REQUEST, proxy_m_output),
	IPC_METHOD_END,
};

/* A guest that resets its channel over and over must not fill the log:
 * lines about the connection go through one rate limit. */
static bool agent_log_ok(struct proxy *p, const char **note)
{
	unsigned held = 0;

	if (!ipc_ratelimit(&p->log_rl, ev_now(p->loop), &held))
		return false;
	*note = held ? " (earlier agent connection lines suppressed: rate "
		       "limit)" : "";
	return true;
}

void proxy_agent_cut(struct proxy *p, const struct husk_err *why)
{
	const char *note;

	if (!p->agent)
		return;
	if (agent_log_ok(p, &note))
		log_warnx("cutting the agent off: %s%s",
			  why->msg, note);
	ipc_conn_close(p->agent, why);
}

static int proxy_m_output(struct ipc_conn *c, struct ipc_msg *m,
			  void *params, void *arg, struct husk_err **errp)
{
	struct husk_err *err = NULL;

	if (proxy->agent != c)
		return 0;
	if (pstreams_agent_msg(&proxy->streams, m, &err) < 0) {
		husk_error_wrap(&err, "agent broke the protocol");
		proxy_agent_cut(proxy, err);
		husk_err_free(err);
	}
	return 0;
}

static void agent_on_queue(struct ipc_conn *c, bool above, void *arg)
{
	/* An agent that does not read: stop reading the clients that feed
	 * it, rather than queue their calls without bound. */
	if (proxy->agent == c)
		proxy_clients_pause(proxy, above);
}

/*
 * --ready-fd: a pipe husk gave us; "ok" goes on it once the agent first
 * answers, so that husk waits on that event instead of polling ping
 * (sandbox/vm.c).  Our death closes it: husk sees EOF.
 */
static int ready_fd = -1;

static void ready_fd_take(int fd)
{
	if (fd < 0)
		return;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		log_warnx("--ready-fd %d: %s: ignored", fd, strerror(errno));
	else
		ready_fd = fd;
}

static void ready_fd_say(void)
{
	if (ready_fd < 0)
		return;
	if (write(ready_fd, "ok\n", 3) < 0)
		log_debug("%s", strerror(errno));
	close(ready_fd);
	ready_fd = -1;
}

static void agent_on_ready(struct ipc_conn *c, void *arg)
{
	struct proxy *p = proxy;

	const char *note;

	p->agent_ready = true;
	p->ready_at = ev_now(p->loop);
	p->connects++;
	if (agent_log_ok(p, &note))
		log_info("connected to %s (%s)%s",
			 p->agent_path, ipc_conn_peer_component(c), note);
	ready_fd_say();
}

static void schedule_retry(struct proxy *p)
{
	if (p->shutting_down)
		return;
	ev_timer_stop(p->loop, &p->retry);
	ev_timer_set(&p->retry, p->retry_delay, 0.);
	ev_timer_start(p->loop, &p->retry);
	p->retry_delay *= 2;
	if (p->retry_delay > PROXY_RETRY_MAX)
		p->retry_delay = PROXY_RETRY_MAX;
}

static void agent_on_close(struct ipc_conn *c, const struct husk_err *why,
			   void *arg)
{
	struct proxy *p = proxy;
	bool was_ready = p->agent_ready;
	const char *note;

	if (p->agent != c)
		return;
	if (p->shutting_down) {
		p->agent = NULL;
		return;
	}
	snprintf(p->agent_reason, sizeof(p->agent_reason), "%s",
		 why ? why->msg : "end of file");
	if (was_ready && agent_log_ok(p, &note))
		log_warnx("agent connection closed: %s%s",
			  p->agent_reason, note);
	else if (!was_ready)
		log_debug("connecting to %s failed: %s",
			  p->agent_path, p->agent_reason);
	p->agent = NULL;
	p->agent_ready = false;
	pstreams_agent_reset(&p->streams);
	proxy_calls_fail(p, c, p->agent_reason);
	if (p->agent_paused_clients)
		proxy_clients_pause(p, false);
	/* Only a connection that held for a while starts the backoff over:
	 * one that a guest resets at once keeps it growing. */
	if (was_ready && ev_now(p->loop) - p->ready_at >= PROXY_STABLE_SECS)
		p->retry_delay = PROXY_RETRY_MIN;
	schedule_retry(p);
}

/* One non-blocking attempt; the backoff between attempts is ours, so
 * that a channel that is gone for long costs a connect every few
 * seconds, not a busy retry. */
static int try_connect(int fd, const struct sockaddr_un *sa)
{
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
	    errno == EINPROGRESS)
		return 0;
	return -1;
}

static int connect_once(struct proxy *p, struct husk_err **err)
{
	const char *path = p->agent_path;
	struct sockaddr_un sa;
	int fd, rc;

	if (p->agent_fd >= 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d",
			 p->agent_fd);
	} else if (ipc_sockaddr(&sa, path, err) < 0) {
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	rc = try_connect(fd, &sa);
	/* The socket held was bound anew (a new channel): its path may
	 * lead to the new one. */
	if (rc < 0 && errno == ECONNREFUSED && p->agent_fd >= 0 &&
	    ipc_sockaddr(&sa, path, NULL) == 0)
		rc = try_connect(fd, &sa);
	if (rc < 0) {
		husk_error_sys(err, errno, "connect `%s`", path);
		close(fd);
		return -1;
	}
	return fd;
}

void proxy_agent_start(struct proxy *p)
{
	struct ipc_conn_opts o = {
		.role = IPC_ROLE_CLIENT,
		.component = PROXY_COMPONENT,
		.expect_peer = PROXY_AGENT_COMPONENT,
		.methods = agent_methods,
		/* what the guest may send us; what we forward to it is
		 * bounded like the clients' frames */
		.max_frame = IPC_AGENT_FRAME_MAX,
		.max_frame_send = p->frame_max,
		.on_queue = agent_on_queue,
		.on_ready = agent_on_ready,
		.on_close = agent_on_close,
		.trusted = false,
		.arg = p,
	};
	struct husk_err *err = NULL;
	struct ipc_conn *c = NULL;
	int fd;

	if (p->agent || p->shutting_down)
		return;
	fd = connect_once(p, &err);
	if (fd >= 0)
		c = ipc_conn_new(p->loop, fd, &o, &err);
	if (fd < 0 || !c) {
		snprintf(p->agent_reason, sizeof(p->agent_reason), "%s",
			 err->msg);
		log_debug("%s", err->msg);
		husk_err_free(err);
		schedule_retry(p);
		return;
	}
	p->agent = c;
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	proxy_agent_start(proxy);
}

void proxy_agent_hold_path(struct proxy *p)
{
	struct stat st;
	int fd = open(p->agent_path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		log_debug("%s: %s (reached by path)",
			  p->agent_path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		log_warnx("%s is not a socket",
			  p->agent_path);
		close(fd);
		return;
	}
	p->agent_fd = fd;
}

void proxy_agent_init(struct proxy *p)
{
	p->agent_fd = -1;
	ready_fd_take(p->ready_fd);
	p->log_rl.interval = PROXY_LOG_INTERVAL;
	p->log_rl.burst = PROXY_LOG_BURST;
	p->retry_delay = PROXY_RETRY_MIN;
	ev_timer_init(&p->retry, retry_cb, 0., 0.);
	snprintf(p->agent_reason, sizeof(p->agent_reason), "connecting");
}

void proxy_agent_stop(struct proxy *p)
{
	ev_timer_stop(p->loop, &p->retry);
	if (p->agent)
		ipc_conn_close(p->agent, NULL);
}
