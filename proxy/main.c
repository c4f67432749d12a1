/*
 * husk-proxy: one per sandbox, the only host process connected to the
 * sandbox's agent.  Set-up, then the loop (docs/proxy.md, husk-proxy(8)).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/version.h"
#include "proxy.h"

struct proxy *proxy;
static struct proxy px = { .frame_max = IPC_FRAME_MAX_DEFAULT, .ready_fd = -1 };

/* ------------------------------------------------------------------ */
/* Options                                                             */

static long long opt_uid = -1, opt_gid = -1;

static const struct option px_options[] = {
	{ "agent", required_argument, NULL, 'a' },
	{ "socket", required_argument, NULL, 's' },
	{ "uid", required_argument, NULL, 'u' },
	{ "gid", required_argument, NULL, 'g' },
	{ "frame-max", required_argument, NULL, 'f' },
	{ "poll-us", required_argument, NULL, 'p' },
	{ "ready-fd", required_argument, NULL, 'r' },
	{ NULL, 0, NULL, 0 },
};

static int px_option(struct husk_daemon *d, int key, const char *arg,
		     struct husk_err **err)
{
	uint64_t size;
	long long us;

	switch (key) {
	case 'a':
		if (strncmp(arg, "unix:", 5) != 0 || !arg[5])
			return husk_error(err, HUSK_E_INVALID, "--agent "
					  "`%s`: expected unix:PATH", arg);
		px.agent_path = (char *)arg + 5;
		break;
	case 's':
		px.socket_path = (char *)arg;
		break;
	case 'u':
		if (husk_parse_int(arg, 0, UINT32_MAX - 1, &opt_uid))
			return husk_error(err, HUSK_E_INVALID, "--uid `%s`: "
					  "not a uid", arg);
		break;
	case 'g':
		if (husk_parse_int(arg, 0, UINT32_MAX - 1, &opt_gid))
			return husk_error(err, HUSK_E_INVALID, "--gid `%s`: "
					  "not a gid", arg);
		break;
	case 'f':
		if (husk_parse_size(arg, &size) < 0 || size < 4096 ||
		    size > (256u << 20))
			return husk_error(err, HUSK_E_INVALID, "--frame-max "
					  "`%s`: 4096 bytes to 256M", arg);
		px.frame_max = (uint32_t)size;
		break;
	case 'p':
		if (husk_parse_int(arg, 0, 10000, &us))
			return husk_error(err, HUSK_E_INVALID, "--poll-us "
					  "`%s`: 0 to 10000 microseconds",
					  arg);
		d->poll_ns = (uint64_t)us * 1000;
		break;
	case 'r':
		if (husk_parse_int(arg, 3, 65535, &us))
			return husk_error(err, HUSK_E_INVALID, "--ready-fd "
					  "`%s`: a descriptor above 2", arg);
		px.ready_fd = (int)us;
		break;
	}
	return 0;
}

static int px_check(struct husk_daemon *d, struct husk_err **err)
{
	if (!px.agent_path || !px.socket_path)
		return husk_error(err, HUSK_E_INVALID, "--agent and --socket "
				  "are required");
	if ((opt_uid < 0) != (opt_gid < 0))
		return husk_error(err, HUSK_E_INVALID, "--uid and --gid go "
				  "together");
	px.set_ids = opt_uid >= 0;
	px.uid = (uid_t)opt_uid;
	px.gid = (gid_t)opt_gid;
	px.sandbox = (char *)d->sandbox;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open, (confine: confine.c), run                                     */

static int px_open(struct husk_daemon *d, struct husk_err **err)
{
	/* Clients: root (the runtime) and whoever the proxy runs as. */
	px.allowed[0] = 0;
	px.allowed[1] = px.set_ids ? px.uid : geteuid();
	px.loop = d->loop;
	px.evpoll = &d->evpoll;
	pstreams_init(&px.streams, &proxy_stream_ops, &px);
	proxy_agent_init(&px);
	if (proxy_server_start(&px, err) < 0)
		return -1;

	/* The channel socket is held by an O_PATH descriptor (reached
	 * through /proc/self/fd, whatever the length of its path and the
	 * modes of its directories); if it is not there yet, an agent path
	 * beyond sun_path is reached through its directory's descriptor:
	 * open it now, as the filter has no openat. */
	proxy_agent_hold_path(&px);
	if (px.agent_fd < 0) {
		struct sockaddr_un sa;
		struct husk_err *e2 = NULL;

		if (ipc_sockaddr(&sa, px.agent_path, &e2) < 0) {
			log_warnx("%s", e2->msg);
			husk_err_free(e2);
		}
	}
	return 0;
}

static int px_run(struct husk_daemon *d, struct husk_err **err)
{
	log_info("serving %s, agent at %s", px.socket_path,
		 px.agent_path);
	proxy_agent_start(&px);
	return 0;
}

static void px_stop(struct husk_daemon *d, int signum)
{
	px.shutting_down = true;
}

static void px_close(struct husk_daemon *d)
{
	px.shutting_down = true;
	proxy_agent_stop(&px);
	ipc_server_free(px.server);
	pstreams_free(&px.streams);
}

static struct husk_daemon proxy_daemon = {
	.name = "husk-proxy",
	.tag = "proxy",
	.version = HUSK_VERSION,
	.usage = "--agent unix:PATH --socket PATH [--uid UID --gid GID]\n"
		 "[--frame-max BYTES] [--poll-us MICROSECONDS] [--ready-fd FD]",
	.options = px_options,
	.option = px_option,
	.check = px_check,
	.open = px_open,
	.confine = proxy_confine,
	.run = px_run,
	.stop = px_stop,
	.close = px_close,
	.flags = HUSK_DAEMON_SIGHUP_STOPS | HUSK_DAEMON_SIGNALFD,
	.log_level = HUSK_LOG_INFO,
	.arg = &px,
	.poll_ns = HUSK_EVPOLL_MAX_NS,
};

int main(int argc, char **argv)
{
	proxy = &px;
	return husk_daemon_main(&proxy_daemon, argc, argv);
}
