/*
 * husk-proxy: one per sandbox, the only host process connected to the
 * sandbox's agent.  Set-up, then the loop (docs/proxy.md, husk-proxy(8)).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "proxy.h"

struct proxy *proxy;

static const char usage_text[] =
	"usage: husk-proxy --agent unix:PATH --socket PATH [--sandbox ID]\n"
	"                  [--log FILE] [--log-level LEVEL] [--uid UID --gid GID]\n"
	"                  [--frame-max BYTES] [--no-seccomp]\n";

static void __attribute__((noreturn)) usage(const char *why)
{
	if (why)
		fprintf(stderr, "husk-proxy: %s\n", why);
	fputs(usage_text, stderr);
	exit(HUSK_EXIT_USAGE);
}

struct options {
	const char *log;
	int log_level;
	bool set_ids;
	bool no_seccomp;
	long long uid, gid;
};

static void parse_args(struct proxy *p, struct options *o, int argc,
		       char **argv)
{
	static const struct option longopts[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "socket", required_argument, NULL, 's' },
		{ "sandbox", required_argument, NULL, 'S' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "frame-max", required_argument, NULL, 'f' },
		{ "no-seccomp", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_err *err = NULL;
	uint64_t size;
	int ch;

	o->uid = o->gid = -1;
	o->log_level = HUSK_LOG_INFO;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (strncmp(optarg, "unix:", 5) != 0 || !optarg[5])
				usage("--agent: expected unix:PATH");
			p->agent_path = optarg + 5;
			break;
		case 's':
			p->socket_path = optarg;
			break;
		case 'S':
			if (husk_id_validate(optarg, "--sandbox", &err) < 0)
				usage(err->msg);
			p->sandbox = optarg;
			break;
		case 'l':
			o->log = optarg;
			break;
		case 'L':
			o->log_level = husk_log_level_parse(optarg);
			if (o->log_level < 0)
				usage("--log-level: error, warn, info or debug");
			break;
		case 'u':
			if (husk_parse_int(optarg, 0, UINT32_MAX - 1, &o->uid))
				usage("--uid: not a uid");
			break;
		case 'g':
			if (husk_parse_int(optarg, 0, UINT32_MAX - 1, &o->gid))
				usage("--gid: not a gid");
			break;
		case 'f':
			if (husk_parse_size(optarg, &size) < 0 || size < 4096 ||
			    size > (256u << 20))
				usage("--frame-max: 4096 bytes to 256M");
			p->frame_max = (uint32_t)size;
			break;
		case 'N':
			o->no_seccomp = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			usage(NULL);
		}
	}
	if (optind != argc)
		usage("unexpected argument");
	if (!p->agent_path || !p->socket_path)
		usage("--agent and --socket are required");
	if ((o->uid < 0) != (o->gid < 0))
		usage("--uid and --gid go together");
	o->set_ids = o->uid >= 0;
}

static void shutdown_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d, leaving", w->signum);
	proxy->shutting_down = true;
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static struct proxy px = { .frame_max = IPC_FRAME_MAX_DEFAULT };
	struct options o = { 0 };
	struct husk_err *err = NULL;
	ev_signal sigterm, sigint, sighup;
	char *tag;

	proxy = &px;
	parse_args(&px, &o, argc, argv);
	tag = husk_xasprintf("proxy/%s", px.sandbox ? px.sandbox : "-");
	husk_log_init(tag, o.log_level, HUSK_LOG_TEXT);
	if (o.log && husk_log_open(o.log) < 0) {
		fprintf(stderr, "husk-proxy: open `%s`: %s\n", o.log,
			strerror(errno));
		return HUSK_EXIT_SYSTEM;
	}
	signal(SIGPIPE, SIG_IGN);
	/* strftime reads /etc/localtime once; do it before the filter. */
	tzset();

	/* Clients: root (the runtime) and whoever the proxy runs as. */
	px.allowed[0] = 0;
	px.allowed[1] = o.set_ids ? (uid_t)o.uid : geteuid();

	px.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
	if (!px.loop)
		fatalx("cannot create the event loop");
	pstreams_init(&px.streams, &proxy_stream_ops, &px);
	proxy_agent_init(&px);
	if (proxy_server_start(&px, &err) < 0)
		goto fail;

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
	if (proxy_confine(&px, o.set_ids, (uid_t)o.uid, (gid_t)o.gid,
			  o.no_seccomp, &err) < 0)
		goto fail;

	ev_signal_init(&sigterm, shutdown_cb, SIGTERM);
	ev_signal_init(&sigint, shutdown_cb, SIGINT);
	ev_signal_init(&sighup, shutdown_cb, SIGHUP);
	ev_signal_start(px.loop, &sigterm);
	ev_signal_start(px.loop, &sigint);
	ev_signal_start(px.loop, &sighup);

	log_info("serving %s, agent at %s", px.socket_path,
		 px.agent_path);
	proxy_agent_start(&px);
	ev_run(px.loop, 0);

	px.shutting_down = true;
	proxy_agent_stop(&px);
	ipc_server_free(px.server);
	pstreams_free(&px.streams);
	free(tag);
	return 0;
fail:
	if (o.log)
		log_warnx("%s", err->msg);
	fprintf(stderr, "husk-proxy: %s\n", err->msg);
	return husk_err_exit_code(err);
}
