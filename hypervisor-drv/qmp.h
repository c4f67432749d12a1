/*
 * A QMP client (QEMU's JSON monitor) on libev, with jansson.
 *
 * QEMU runs device emulation that the guest drives, so every byte that
 * comes back on QMP is treated as hostile: lines are bounded
 * (QMP_LINE_MAX), each line must be one JSON object of a known shape,
 * an id must be one we sent, and strings passed on are cut and cleaned.
 * A violation closes the monitor (the caller then kills QEMU).
 *
 * Commands are sent one at a time, in order, each with its own timeout;
 * a descriptor can ride along with a command (SCM_RIGHTS, for getfd).
 */
#ifndef HUSK_HV_QMP_H
#define HUSK_HV_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <jansson.h>

#include "libhusk/err.h"

#define QMP_LINE_MAX (256 * 1024)
#define QMP_ERRDESC_MAX 512      /* bytes of QEMU's error text kept */
#define QMP_EVENT_MAX 64         /* bytes of an event name */

/* ------------------------------------------------------------------ */
/* Lines and messages (no I/O; unit-tested and fuzzed)                 */

struct qmp_lines {
	char *buf;
	size_t len, cap;
};

/* Called for each complete line (without its \r\n); a negative return
 * stops feeding and is returned. */
typedef int (*qmp_line_cb)(void *arg, const char *line, size_t len);

void qmp_lines_init(struct qmp_lines *l);
void qmp_lines_free(struct qmp_lines *l);
/* 0, or -1 with *err when a line exceeds QMP_LINE_MAX (nothing is
 * allocated beyond that) or the callback failed. */
int qmp_lines_feed(struct qmp_lines *l, const char *data, size_t n,
		   qmp_line_cb cb, void *arg, struct husk_err **err);

enum qmp_kind {
	QMP_GREETING = 0,
	QMP_RETURN = 1,
	QMP_ERROR = 2,
	QMP_EVENT = 3,
};

struct qmp_in {
	int kind;               /* enum qmp_kind */
	int64_t id;             /* return, error: the id; -1 if absent */
	json_t *root;           /* owns everything below */
	json_t *ret;            /* return: its value (borrowed) */
	char err_class[64];     /* error: cleaned, cut */
	char err_desc[QMP_ERRDESC_MAX];
	char event[QMP_EVENT_MAX];
	json_t *data;           /* event: data object or NULL (borrowed) */
};

/* Parse one line.  On failure (not JSON, not an object, no known key,
 * wrong types) returns -1 with HUSK_E_PROTOCOL and in is left empty. */
int qmp_parse(const char *line, size_t len, struct qmp_in *in,
	      struct husk_err **err);
void qmp_in_free(struct qmp_in *in);

/* One command line: {"execute": cmd, "arguments": args, "id": id}\n.
 * args may be NULL (not stolen).  Returns malloc'ed text or NULL. */
char *qmp_build(const char *cmd, const json_t *args, int64_t id,
		size_t *len);

/* Copy s into out (n bytes), cut, with control and non-ASCII bytes
 * replaced by '?', so QEMU's text can go into logs and errors. */
void qmp_clean(char *out, size_t n, const char *s);

/* ------------------------------------------------------------------ */
/* The client                                                          */

struct qmp;

struct qmp_ops {
	/* Greeting read and capabilities negotiated. */
	void (*on_ready)(struct qmp *q, void *arg);
	/* An asynchronous event; data may be NULL. */
	void (*on_event)(struct qmp *q, const char *event, json_t *data,
			 void *arg);
	/* The monitor is gone (EOF, error, protocol violation); pending
	 * commands have failed before this runs.  why may be NULL.  Do
	 * not qmp_free() from here: the client is still on the stack. */
	void (*on_close)(struct qmp *q, const struct husk_err *why,
			 void *arg);
};

/* ret is the "return" value (borrowed) or NULL with err set: QEMU's
 * error (HUSK_E_INVALID with its class and text), a timeout or the
 * monitor closing (HUSK_E_UNAVAILABLE). */
typedef void (*qmp_cb)(struct qmp *q, json_t *ret, const struct husk_err *err,
		       void *arg);

/* Take a connected stream socket to QEMU's monitor; the greeting must
 * arrive within timeout seconds. */
struct qmp *qmp_new(struct ev_loop *loop, int fd, double timeout,
		    const struct qmp_ops *ops, void *arg);
/*
 * Queue a command.  args (may be NULL) is stolen.  fd >= 0 is sent
 * with the command (and stays the caller's).  timeout in seconds.
 * cb may be NULL.  Returns 0, or -1 when the monitor is closed (cb is
 * not called then).
 */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, int fd,
	     double timeout, qmp_cb cb, void *arg);
bool qmp_ready(const struct qmp *q);
/* Close: pending commands fail (callbacks run), on_close does not. */
void qmp_free(struct qmp *q);

#endif
