/*
 * husk-shim: one per container process.  Options, open (confine.c),
 * then the loop on libhusk/daemon.h; it leaves with the process's exit
 * status (docs/shim.md, husk-shim(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/version.h"
#include "shim.h"

struct shim *shim;
static struct shim sh = { .eid = "", .ready_fd = -1 };

/* ------------------------------------------------------------------ */
/* Options                                                             */

static const struct option sh_options[] = {
	{ "proxy", required_argument, NULL, 'p' },
	{ "container", required_argument, NULL, 'c' },
	{ "exec-id", required_argument, NULL, 'e' },
	{ "terminal", no_argument, NULL, 't' },
	{ "console-socket", required_argument, NULL, 'C' },
	{ "ready-fd", required_argument, NULL, 'R' },
	{ NULL, 0, NULL, 0 },
};

static int ready_fd_parse(const char *arg, struct husk_err **err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 3 || v > 1023 ||
	    fcntl((int)v, F_GETFD) < 0)
		return husk_error(err, HUSK_E_INVALID, "--ready-fd `%s`: an "
				  "open descriptor above 2", arg);
	fcntl((int)v, F_SETFD, FD_CLOEXEC);
	sh.ready_fd = (int)v;
	return 0;
}

static int sh_option(struct husk_daemon *d, int key, const char *arg,
		     struct husk_err **err)
{
	switch (key) {
	case 'p':
		sh.proxy_path = arg;
		break;
	case 'c':
		if (husk_id_validate(arg, "--container", err) < 0)
			return -1;
		sh.cid = arg;
		break;
	case 'e':
		if (husk_id_validate(arg, "--exec-id", err) < 0)
			return -1;
		sh.eid = arg;
		break;
	case 't':
		sh.terminal = true;
		break;
	case 'C':
		sh.console_socket = arg;
		break;
	case 'R':
		return ready_fd_parse(arg, err);
	}
	return 0;
}

static int sh_check(struct husk_daemon *d, struct husk_err **err)
{
	if (!sh.proxy_path || !sh.cid)
		return husk_error(err, HUSK_E_INVALID, "--proxy and "
				  "--container are required");
	if (sh.console_socket && !sh.terminal)
		return husk_error(err, HUSK_E_INVALID, "--console-socket "
				  "needs --terminal");
	husk_daemon_set_tag(d, "shim/%s%s%s", sh.cid, sh.eid[0] ? "/" : "",
			    sh.eid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open (confine: confine.c); the shim has no run step: open starts it  */

/*
 * With --console-socket the process's terminal is the pty we hand over:
 * nothing of our caller's stdio is ours to keep.  A caller that reads
 * `husk create`'s output to its end (an engine, `$(...)`) would wait for
 * us as long as the container lives.  Our stdin becomes /dev/null, our
 * stdout and stderr the log (or /dev/null).
 */
static int drop_stdio(struct husk_daemon *d, struct husk_err **err)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out = husk_log_get_fd() > 2 ? husk_log_get_fd() : null;

	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0)
		return husk_error(err, HUSK_E_SYSTEM, "put /dev/null on "
				  "stdio: %s", strerror(errno));
	if (null > 2)
		close(null);
	d->quiet_stderr = true;
	return 0;
}

static int sh_open(struct husk_daemon *d, struct husk_err **err)
{
	if (sh.console_socket && drop_stdio(d, err) < 0)
		return -1;
	sh.loop = d->loop;
	/* Signals first: one that arrives while we connect is forwarded
	 * once the loop runs, not lost. */
	shim_signals_start(&sh);
	if (shim_tty_setup(&sh, err) < 0)
		return -1;
	if (shim_connect(&sh, err) < 0) {
		if ((*err)->code == HUSK_E_UNAVAILABLE ||
		    (*err)->code == HUSK_E_NOT_FOUND)
			husk_daemon_fatal(HUSK_EXIT_PEER, "lost the proxy: %s",
					  (*err)->msg);
		return husk_error_wrap(err, "lost the proxy");
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Leaving                                                             */

void shim_exit(struct shim *s, int code)
{
	s->leaving = true;
	shim_tty_restore(s);
	exit(code);
}

/* husk_daemon_fatal for the shim's callbacks. */
void shim_fail(struct shim *s, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	husk_daemon_fatal(code, "%s", msg);
}

static void sh_on_fatal(struct husk_daemon *d, int code, const char *msg)
{
	shim_tty_restore(&sh);
	/* Whoever started us and waits for the ready line gets the reason
	 * instead (our stderr may be a log nobody reads). */
	if (sh.ready_fd >= 0) {
		dprintf(sh.ready_fd, "%s\n", msg);
		close(sh.ready_fd);
		sh.ready_fd = -1;
	}
}

/* The loop only ends through shim_exit. */
static void sh_close(struct husk_daemon *d)
{
	husk_daemon_fatal(HUSK_EXIT_SYSTEM, "event loop ended");
}

static struct husk_daemon shim_daemon = {
	.name = "husk-shim",
	.tag = "shim",
	.version = HUSK_VERSION,
	.usage = "--proxy PATH --container ID [--exec-id EID]\n"
		 "[--terminal] [--console-socket PATH] [--ready-fd FD]",
	.options = sh_options,
	.option = sh_option,
	.check = sh_check,
	.open = sh_open,
	.confine = shim_confine,
	.close = sh_close,
	.on_fatal = sh_on_fatal,
	/* Signals are the process's: the shim forwards them (io.c). */
	.flags = HUSK_DAEMON_OWN_SIGNALS | HUSK_DAEMON_SIGNALFD |
		 HUSK_DAEMON_NO_SANDBOX_OPT,
	.log_level = HUSK_LOG_WARN,
	.arg = &sh,
};

int main(int argc, char **argv)
{
	shim = &sh;
	return husk_daemon_main(&shim_daemon, argc, argv);
}
