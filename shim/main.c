/*
 * husk-shim: one per container process.  Set-up, then the loop; it
 * leaves with the process's exit status (docs/shim.md, husk-shim(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "shim.h"

struct shim *shim;

static const char usage_text[] =
	"usage: husk-shim --proxy PATH --container ID [--exec-id EID]\n"
	"                 [--terminal] [--console-socket PATH]\n"
	"                 [--log FILE] [--log-level LEVEL] [--ready-fd FD]\n"
	"                 [--no-seccomp]\n";

static void __attribute__((noreturn)) usage(const char *why)
{
	if (why)
		fprintf(stderr, "husk-shim: %s\n", why);
	fputs(usage_text, stderr);
	exit(HUSK_EXIT_USAGE);
}

void shim_exit(struct shim *s, int code)
{
	s->leaving = true;
	shim_tty_restore(s);
	exit(code);
}

void shim_fail(struct shim *s, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	shim_tty_restore(s);
	if (husk_log_get_fd() != 2)
		log_warnx("%s", msg);
	/* Whoever started us and waits for the ready line gets the reason
	 * instead (our stderr may be a log nobody reads). */
	if (s->ready_fd >= 0) {
		dprintf(s->ready_fd, "%s\n", msg);
		close(s->ready_fd);
		s->ready_fd = -1;
	}
	if (!s->detached_stdio)
		fprintf(stderr, "husk-shim: %s\n", msg);
	shim_exit(s, code);
}

static int ready_fd_parse(const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 3 || v > 1023 ||
	    fcntl((int)v, F_GETFD) < 0)
		usage("--ready-fd: an open descriptor above 2");
	fcntl((int)v, F_SETFD, FD_CLOEXEC);
	return (int)v;
}

/*
 * With --console-socket the process's terminal is the pty we hand over:
 * nothing of our caller's stdio is ours to keep.  A caller that reads
 * `husk create`'s output to its end (an engine, `$(...)`) would wait for
 * us as long as the container lives.  Our stdin becomes /dev/null, our
 * stdout and stderr the log (or /dev/null).
 */
static void drop_stdio(struct shim *s)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out = husk_log_get_fd() > 2 ? husk_log_get_fd() : null;

	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0) {
		fprintf(stderr, "husk-shim: put /dev/null on stdio: %s\n",
			strerror(errno));
		exit(HUSK_EXIT_SYSTEM);
	}
	if (null > 2)
		close(null);
	s->detached_stdio = true;
}

struct options {
	const char *log;
	int log_level;
};

static void parse_args(struct shim *s, struct options *o, int argc,
		       char **argv)
{
	static const struct option longopts[] = {
		{ "proxy", required_argument, NULL, 'p' },
		{ "container", required_argument, NULL, 'c' },
		{ "exec-id", required_argument, NULL, 'e' },
		{ "terminal", no_argument, NULL, 't' },
		{ "console-socket", required_argument, NULL, 'C' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "no-seccomp", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_err *err = NULL;
	int ch;

	o->log_level = HUSK_LOG_WARN;
	s->eid = "";
	s->ready_fd = -1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			s->proxy_path = optarg;
			break;
		case 'c':
			if (husk_id_validate(optarg, "--container", &err) < 0)
				usage(err->msg);
			s->cid = optarg;
			break;
		case 'e':
			if (husk_id_validate(optarg, "--exec-id", &err) < 0)
				usage(err->msg);
			s->eid = optarg;
			break;
		case 't':
			s->terminal = true;
			break;
		case 'C':
			s->console_socket = optarg;
			break;
		case 'l':
			o->log = optarg;
			break;
		case 'L':
			o->log_level = husk_log_level_parse(optarg);
			if (o->log_level < 0)
				usage("--log-level: error, warn, info or debug");
			break;
		case 'R':
			s->ready_fd = ready_fd_parse(optarg);
			break;
		case 'N':
			s->no_seccomp = true;
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
	if (!s->proxy_path || !s->cid)
		usage("--proxy and --container are required");
	if (s->console_socket && !s->terminal)
		usage("--console-socket needs --terminal");
}

int main(int argc, char **argv)
{
	static struct shim sh;
	struct options o = { 0 };
	struct husk_err *err = NULL;
	static char tag[HUSK_ID_MAX * 2 + 8];

	shim = &sh;
	parse_args(&sh, &o, argc, argv);
	snprintf(tag, sizeof(tag), "shim/%s%s%s", sh.cid,
		 sh.eid[0] ? "/" : "", sh.eid);
	husk_log_init(tag, o.log_level, HUSK_LOG_TEXT);
	if (o.log && husk_log_open(o.log) < 0) {
		fprintf(stderr, "husk-shim: open `%s`: %s\n", o.log,
			strerror(errno));
		return HUSK_EXIT_SYSTEM;
	}
	tzset();
	if (sh.console_socket)
		drop_stdio(&sh);

	sh.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
	if (!sh.loop) {
		fprintf(stderr, "husk-shim: cannot create the event loop\n");
		return HUSK_EXIT_SYSTEM;
	}
	/* Signals first: one that arrives while we connect is forwarded
	 * once the loop runs, not lost. */
	shim_signals_start(&sh);
	if (shim_tty_setup(&sh, &err) < 0)
		shim_fail(&sh, husk_err_exit_code(err), "%s", err->msg);
	if (shim_connect(&sh, &err) < 0)
		shim_fail(&sh, err->code == HUSK_E_UNAVAILABLE ||
			       err->code == HUSK_E_NOT_FOUND ?
			       HUSK_EXIT_PEER : husk_err_exit_code(err),
			  "lost the proxy: %s", err->msg);
	if (shim_confine(&sh, &err) < 0)
		shim_fail(&sh, husk_err_exit_code(err), "%s", err->msg);

	ev_run(sh.loop, 0);
	/* The loop only ends through shim_exit. */
	shim_fail(&sh, HUSK_EXIT_SYSTEM, "event loop ended");
}
