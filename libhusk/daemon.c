/*
 * The daemon skeleton (daemon.h): the common options, the log, the stop
 * signals, the loop, the confinement point and the fatal exit, written
 * once for every husk daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

/* Keys of the common options: above any program's. */
enum {
	OPT_LOG = 0x1000,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_SANDBOX,
	OPT_NO_SECCOMP,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option common_opts[] = {
	{ "log", required_argument, NULL, OPT_LOG },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "sandbox", required_argument, NULL, OPT_SANDBOX },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
};
#define N_COMMON (sizeof(common_opts) / sizeof(common_opts[0]))

/* The running daemon, for husk_daemon_fatal() from any callback. */
static struct husk_daemon *running;
/* The program named its tag itself (husk_daemon_set_tag). */
static bool tag_set;

static bool takes(const struct husk_daemon *d, int key)
{
	if (key == OPT_SANDBOX)
		return !(d->flags & HUSK_DAEMON_NO_SANDBOX_OPT);
	if (key == OPT_NO_SECCOMP)
		return !(d->flags & HUSK_DAEMON_NO_SECCOMP_OPT);
	return true;
}

/* Lines of `text` after a first-line prefix, each indented to `ind`. */
static void put_lines(FILE *f, const char *text, int ind)
{
	const char *p = text, *nl;

	while (*p) {
		nl = strchr(p, '\n');
		if (p != text)
			fprintf(f, "%*s", ind, "");
		fprintf(f, "%.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		if (!nl)
			break;
		p = nl + 1;
	}
}

void husk_daemon_usage(const struct husk_daemon *d, FILE *f)
{
	int ind = (int)strlen("usage: ") + (int)strlen(d->name) + 1;
	char common[256];

	snprintf(common, sizeof(common), "%s[--log FILE] [--log-level LEVEL]\n"
		 "[--log-format text|json]%s",
		 takes(d, OPT_SANDBOX) ? "[--sandbox ID] " : "",
		 takes(d, OPT_NO_SECCOMP) ? " [--no-seccomp]" : "");
	fprintf(f, "usage: %s ", d->name);
	if (d->usage && d->usage[0]) {
		put_lines(f, d->usage, ind);
		fprintf(f, "%*s", ind, "");
	}
	put_lines(f, common, ind);
	fprintf(f, "       %s --help | --version\n", d->name);
}

static int common_option(struct husk_daemon *d, int key, const char *arg,
			 struct husk_err **err)
{
	int v;

	switch (key) {
	case OPT_LOG:
		if (!arg[0])
			return husk_error(err, HUSK_E_INVALID,
					  "--log: an empty path");
		d->log_path = arg;
		return 0;
	case OPT_LOG_LEVEL:
		v = husk_log_level_parse(arg);
		if (v < 0)
			return husk_error(err, HUSK_E_INVALID, "--log-level "
					  "`%s`: error, warn, info or debug",
					  arg);
		d->log_level = v;
		return 0;
	case OPT_LOG_FORMAT:
		v = husk_log_format_parse(arg);
		if (v < 0)
			return husk_error(err, HUSK_E_INVALID, "--log-format "
					  "`%s`: text or json", arg);
		d->log_format = v;
		return 0;
	case OPT_SANDBOX:
		if (husk_id_validate(arg, "--sandbox", err) < 0)
			return -1;
		d->sandbox = arg;
		return 0;
	case OPT_NO_SECCOMP:
		d->no_seccomp = true;
		return 0;
	}
	return husk_error(err, HUSK_E_INVALID, "unknown option");
}

/* getopt's '?': an unknown long option (optopt 0), a value given to
 * one that takes none, or an unknown letter. */
static int unknown(const char *arg, struct husk_err **err)
{
	const char *eq = strchr(arg, '=');

	if (optopt == 0)
		return husk_error(err, HUSK_E_INVALID, "unknown option `%s`",
				  arg);
	if (eq && arg[0] == '-')
		return husk_error(err, HUSK_E_INVALID, "`%.*s` takes no value",
				  (int)(eq - arg), arg);
	return husk_error(err, HUSK_E_INVALID, "unknown option `-%c`",
			  optopt);
}

int husk_daemon_parse(struct husk_daemon *d, int argc, char **argv,
		      struct husk_err **err)
{
	struct option *all;
	size_t n = 0, np = 0;
	int key, rc = 0;

	for (const struct option *o = d->options; o && o->name; o++)
		np++;
	all = husk_xcalloc(np + N_COMMON + 1, sizeof(*all));
	for (size_t i = 0; i < N_COMMON; i++)
		if (takes(d, common_opts[i].val))
			all[n++] = common_opts[i];
	for (size_t i = 0; i < np; i++)
		all[n++] = d->options[i];

	d->log_format = HUSK_LOG_TEXT;
	/* Our own messages, not getopt's: one shape for every error. */
	opterr = 0;
	optind = 0;
	while (rc == 0 &&
	       (key = (d->flags & HUSK_DAEMON_LONG_ONLY ? getopt_long_only :
		       getopt_long)(argc, argv, ":h", all, NULL)) != -1) {
		switch (key) {
		case 'h':
		case OPT_HELP:
			rc = HUSK_DAEMON_HELP;
			break;
		case OPT_VERSION:
			rc = HUSK_DAEMON_VERSION;
			break;
		case ':':
			rc = husk_error(err, HUSK_E_INVALID, "%s needs a value",
					argv[optind - 1]);
			break;
		case '?':
			rc = unknown(argv[optind - 1], err);
			break;
		default:
			if (key >= OPT_LOG && key <= OPT_VERSION)
				rc = common_option(d, key, optarg, err);
			else if (d->option)
				rc = d->option(d, key, optarg, err);
			else
				rc = husk_error(err, HUSK_E_INVALID,
						"unknown option");
		}
	}
	free(all);
	if (rc != 0)
		return rc;
	d->operands = argv + optind;
	d->n_operands = argc - optind;
	if (optind < argc && !(d->flags & HUSK_DAEMON_OPERANDS))
		return husk_error(err, HUSK_E_INVALID, "unexpected argument "
				  "`%s`", argv[optind]);
	if (d->check && d->check(d, err) < 0)
		return -1;
	return 0;
}

void husk_daemon_set_tag(struct husk_daemon *d, const char *fmt, ...)
{
	char tag[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tag, sizeof(tag), fmt, ap);
	va_end(ap);
	husk_log_set_tag(tag);
	tag_set = true;
}

static void __attribute__((noreturn))
vfatal(int code, const char *fmt, va_list ap)
{
	struct husk_daemon *d = running;
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (husk_log_get_fd() != STDERR_FILENO)
		husk_log(HUSK_LOG_ERROR, "%s", msg);
	if (d && d->on_fatal)
		d->on_fatal(d, code, msg);
	if (!d || !d->quiet_stderr)
		fprintf(stderr, "%s: %s\n", d ? d->name : "husk", msg);
	exit(code);
}

void husk_daemon_fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(code, fmt, ap);
	va_end(ap);
}

void husk_daemon_fatal_err(const struct husk_err *err)
{
	husk_daemon_fatal(husk_err_exit_code(err), "%s",
			  err && err->msg ? err->msg : "failed");
}

void husk_daemon_confine(struct husk_daemon *d)
{
	struct husk_err *err = NULL;

	if (d->confined)
		return;
	if (d->confine && d->confine(d, &err) < 0)
		husk_daemon_fatal_err(err);
	d->confined = true;
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct husk_daemon *d = w->data;

	log_info("%s: stopping", strsignal(w->signum));
	if (d->stop)
		d->stop(d, w->signum);
	d->stopping = true;
	ev_break(loop, EVBREAK_ALL);
}

static void stop_signals(struct husk_daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	if (d->flags & HUSK_DAEMON_OWN_SIGNALS)
		return;
	for (size_t i = 0; i < 3; i++) {
		if (sigs[i] == SIGHUP && !(d->flags & HUSK_DAEMON_SIGHUP_STOPS))
			continue;
		ev_signal_init(&d->stop_w[i], on_stop, sigs[i]);
		d->stop_w[i].data = d;
		ev_signal_start(d->loop, &d->stop_w[i]);
	}
}

/* The loop: plain, or polling before it sleeps (poll_ns). */
static void husk_daemon_loop(struct husk_daemon *d)
{
	if (d->poll_ns)
		log_debug("polling up to %llu us before sleeping",
			  (unsigned long long)d->poll_ns / 1000);
	husk_evpoll_run(d->loop, &d->evpoll, d->poll_ns, &d->stopping);
}

int husk_daemon_main(struct husk_daemon *d, int argc, char **argv)
{
	struct husk_err *err = NULL;
	int rc;

	running = d;
	tag_set = false;
	husk_log_init(d->tag, d->log_level, HUSK_LOG_TEXT);
	rc = husk_daemon_parse(d, argc, argv, &err);
	if (rc == HUSK_DAEMON_HELP) {
		husk_daemon_usage(d, stdout);
		return HUSK_EXIT_OK;
	}
	if (rc == HUSK_DAEMON_VERSION) {
		printf("%s %s\n", d->name, d->version);
		return HUSK_EXIT_OK;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", d->name, err->msg);
		husk_daemon_usage(d, stderr);
		husk_err_free(err);
		return HUSK_EXIT_USAGE;
	}

	husk_log_set_level(d->log_level);
	husk_log_set_format(d->log_format);
	if (d->sandbox && !tag_set)
		husk_daemon_set_tag(d, "%s/%s", d->tag, d->sandbox);
	if (d->log_path && husk_log_open(d->log_path) < 0)
		husk_daemon_fatal(HUSK_EXIT_SYSTEM, "open log `%s`: %s",
				  d->log_path, strerror(errno));
	d->seccomp_debug = husk_seccomp_debug_env();
	/* strftime reads /etc/localtime once; do it before any filter. */
	tzset();
	/* A peer that goes away is an error on the write, not a death. */
	signal(SIGPIPE, SIG_IGN);
	d->loop = ev_default_loop(EVFLAG_AUTO |
				  (d->flags & HUSK_DAEMON_SIGNALFD ?
				   EVFLAG_SIGNALFD : 0));
	if (!d->loop)
		husk_daemon_fatal(HUSK_EXIT_SYSTEM, "cannot create the event "
				  "loop");
	stop_signals(d);

	rc = d->open ? d->open(d, &err) : 0;
	if (rc < 0)
		husk_daemon_fatal_err(err);
	if (rc != HUSK_DAEMON_DONE) {
		if (!(d->flags & HUSK_DAEMON_CONFINE_LATER))
			husk_daemon_confine(d);
		rc = d->run ? d->run(d, &err) : 0;
		if (rc < 0)
			husk_daemon_fatal_err(err);
	}
	if (rc != HUSK_DAEMON_DONE)
		husk_daemon_loop(d);

	if (d->close)
		d->close(d);
	running = NULL;
	return d->exit_code;
}
