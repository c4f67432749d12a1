/*
 * One start for every husk daemon, as OpenBSD vmd's proc_run gives
 * every process the same life (STYLE.md, "One start for every
 * process").  A program fills a struct husk_daemon with its name, its
 * own options and four steps, and main() is one call:
 *
 *   options  the common ones (below) parsed here, the program's own
 *            through its getopt_long table and `option`, then `check`
 *   open     everything the program will use: sockets, files, children
 *   confine  the program's one confinement point (its confine.c)
 *   run      start the work; the skeleton then runs the libev loop
 *
 * Common options: --log FILE, --log-level LEVEL, --log-format text|json,
 * --sandbox ID, --no-seccomp, --help, --version.  The skeleton sets up
 * the log (tag "<tag>/<sandbox>"), ignores SIGPIPE, makes SIGTERM and
 * SIGINT (and SIGHUP with HUSK_DAEMON_SIGHUP_STOPS) end the loop, and
 * calls `confine` right after `open`, or, with HUSK_DAEMON_CONFINE_LATER,
 * when the program calls husk_daemon_confine() at the moment it names.
 *
 * Exit codes (docs/exit-codes.md): 100 for a bad command line; a step
 * that fails returns -1 with a struct husk_err and the process exits
 * with husk_err_exit_code(); anywhere later, husk_daemon_fatal() or
 * husk_daemon_fatal_err() is the one way out on a fatal error.
 */
#ifndef HUSK_DAEMON_H
#define HUSK_DAEMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <ev.h>

#include "err.h"
#include "evpoll.h"

/* husk_daemon.flags */
enum {
	/* SIGHUP ends the loop as SIGTERM and SIGINT do. */
	HUSK_DAEMON_SIGHUP_STOPS = 1 << 0,
	/* The program handles SIGTERM/SIGINT itself (a shim forwarding
	 * them, PID 1): the skeleton installs no stop watchers. */
	HUSK_DAEMON_OWN_SIGNALS = 1 << 1,
	/* `confine` is not called after `open`: the program calls
	 * husk_daemon_confine() itself, once, at the moment it names. */
	HUSK_DAEMON_CONFINE_LATER = 1 << 2,
	/* The loop takes signals through a signalfd (EVFLAG_SIGNALFD). */
	HUSK_DAEMON_SIGNALFD = 1 << 3,
	/* Common options the program does not take (then unknown). */
	HUSK_DAEMON_NO_SANDBOX_OPT = 1 << 4,
	HUSK_DAEMON_NO_SECCOMP_OPT = 1 << 5,
	/* Operands after the options are the program's (d->operands,
	 * for `check`); without it an operand is a usage error. */
	HUSK_DAEMON_OPERANDS = 1 << 6,
	/* "-name" means "--name" too (getopt_long_only), for programs
	 * called with Go's flag syntax (containerd's shims). */
	HUSK_DAEMON_LONG_ONLY = 1 << 7,
};

/* husk_daemon_parse()'s answers besides 0 and -1. */
enum {
	HUSK_DAEMON_HELP = 1,
	HUSK_DAEMON_VERSION = 2,
	HUSK_DAEMON_DONE = 3,           /* from open or run: no loop */
};

struct husk_daemon {
	/* ---- the program's part ---------------------------------- */
	const char *name;               /* "husk-proxy": messages, --version */
	const char *tag;                /* log tag before "/<sandbox>" */
	const char *version;            /* what --version prints after name */
	/* The program's own synopsis, lines after "usage: NAME " (the
	 * skeleton adds the common options and --help | --version). */
	const char *usage;
	/* getopt_long rows of the program's own options ({ NULL } ends;
	 * may be NULL); `val` is the key handed to `option`.  Keys from
	 * 0x1000 up are the skeleton's. */
	const struct option *options;
	/* One of those options; -1 with err is a usage error (exit 100,
	 * err's message first). */
	int (*option)(struct husk_daemon *d, int key, const char *arg,
		      struct husk_err **err);
	/* After all options: required ones, combinations; -1 with err is
	 * a usage error.  May set flags and call husk_daemon_set_tag(). */
	int (*check)(struct husk_daemon *d, struct husk_err **err);
	/* The steps; -1 with err exits with husk_err_exit_code(err).
	 * open or run returning HUSK_DAEMON_DONE ends the life there
	 * (no loop; close runs, the exit code is exit_code): a one-shot
	 * subcommand.  confine NULL: the program does not confine itself
	 * (say why where the struct is filled). */
	int (*open)(struct husk_daemon *d, struct husk_err **err);
	int (*confine)(struct husk_daemon *d, struct husk_err **err);
	int (*run)(struct husk_daemon *d, struct husk_err **err);
	/* After the loop ends (may be NULL): free, remove sockets. */
	void (*close)(struct husk_daemon *d);
	/* A stop signal arrived, before the loop is told to end. */
	void (*stop)(struct husk_daemon *d, int signum);
	/* A fatal error, before it is printed on stderr and the process
	 * exits: restore a terminal, tell a waiting parent. */
	void (*on_fatal)(struct husk_daemon *d, int code, const char *msg);
	unsigned flags;
	/* Defaults the command line may change. */
	int log_level;                  /* HUSK_LOG_*, e.g. HUSK_LOG_INFO */
	const char *sandbox;            /* --sandbox; NULL: tag alone */
	void *arg;                      /* the program's state */
	/* Poll up to this long before the loop sleeps (evpoll.h); 0:
	 * sleep at once.  An option of the program may change it.  Such
	 * a loop ends on a stop signal or when no watcher is left, not
	 * on an ev_break of the program's own, and must have no prepare
	 * or check watcher (each run would count as an event). */
	uint64_t poll_ns;

	/* ---- the skeleton's part (read it, do not set it) --------- */
	const char *log_path;           /* --log, NULL: stderr */
	int log_format;                 /* HUSK_LOG_TEXT or _JSON */
	bool no_seccomp;                /* --no-seccomp */
	bool seccomp_debug;             /* HUSK_SECCOMP_DEBUG=1 */
	bool confined;
	char **operands;                /* with HUSK_DAEMON_OPERANDS */
	int n_operands;
	/* Set by the program when its stderr is no longer its caller's
	 * (then a fatal message goes to the log only). */
	bool quiet_stderr;
	int exit_code;                  /* returned after the loop; 0 */
	struct ev_loop *loop;
	ev_signal stop_w[3];
	bool stopping;                  /* a stop signal came */
	struct husk_evpoll evpoll;
};

/* The whole life: parse, log, signals, loop, open, confine, run, the
 * loop, close.  Returns the exit code (or exits on a fatal error). */
int husk_daemon_main(struct husk_daemon *d, int argc, char **argv);

/* Options only (husk_daemon_main's first step, for tests): 0, or
 * HUSK_DAEMON_HELP / HUSK_DAEMON_VERSION when asked for, or -1 with err
 * (a usage error: an unknown option, a bad value, a missing one). */
int husk_daemon_parse(struct husk_daemon *d, int argc, char **argv,
		      struct husk_err **err);
/* The usage text (program's synopsis and the common options). */
void husk_daemon_usage(const struct husk_daemon *d, FILE *f);

/* The program's confinement point, for HUSK_DAEMON_CONFINE_LATER (and
 * what the skeleton itself calls otherwise): calls `confine` once; a
 * failure is fatal. */
void husk_daemon_confine(struct husk_daemon *d);

/* Replace the log tag ("shim/<cid>/<eid>"), printf-style. */
void husk_daemon_set_tag(struct husk_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The one way out on a fatal error, from any step or callback: the
 * message goes to the log (when the log is not stderr), the program's
 * on_fatal runs, "NAME: message" goes to stderr (unless quiet_stderr),
 * and the process exits with `code` (docs/exit-codes.md).
 */
void husk_daemon_fatal(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* The same with err's message and husk_err_exit_code(err). */
void husk_daemon_fatal_err(const struct husk_err *err)
	__attribute__((noreturn));

#endif
