/*
 * Errors carried up the call chain, crun style: a function that can fail
 * takes `struct husk_err **err`, returns a negative value, and leaves a
 * message that names what failed.  Callers may add context on the way up;
 * main() prints once.  The code is one of the stable HUSK_E_* codes that
 * also cross process boundaries as RPC errors (docs/protocol.md).
 */
#ifndef HUSK_ERR_H
#define HUSK_ERR_H

#include <stdarg.h>

/* Stable error codes; never renumber, only append (docs/protocol.md). */
enum husk_errcode {
	HUSK_E_OK = 0,
	HUSK_E_INTERNAL = 1,        /* a bug or broken invariant */
	HUSK_E_INVALID = 2,         /* invalid argument or params */
	HUSK_E_UNKNOWN_METHOD = 3,  /* no such RPC method */
	HUSK_E_NOT_FOUND = 4,       /* no such container, process, file... */
	HUSK_E_EXISTS = 5,          /* already exists */
	HUSK_E_STATE = 6,           /* not allowed in the current state */
	HUSK_E_PERMISSION = 7,      /* peer or caller not allowed */
	HUSK_E_TIMEOUT = 8,         /* no answer in time */
	HUSK_E_UNAVAILABLE = 9,     /* peer gone, connection closed */
	HUSK_E_VERSION = 10,        /* protocol version mismatch */
	HUSK_E_NOT_IMPLEMENTED = 11,/* method known but not implemented */
	HUSK_E_TOO_LARGE = 12,      /* frame, string or array over its limit */
	HUSK_E_PROTOCOL = 13,       /* malformed message */
	HUSK_E_SYSTEM = 14,         /* a system call failed (errno set) */
	HUSK_E_NO_HELLO = 15,       /* request before the hello */
	HUSK_E_CANCELLED = 16,      /* call abandoned (shutdown) */
	HUSK_E__MAX
};

struct husk_err {
	int code;       /* enum husk_errcode */
	int errnum;     /* errno when code == HUSK_E_SYSTEM, else 0 */
	char *msg;      /* full message, context first */
};

/* Name of a code ("invalid", "not-found", ...), never NULL. */
const char *husk_errcode_name(int code);

/*
 * Set *err (if err is non-NULL and *err is NULL) and return -1.
 * husk_error_sys appends ": strerror(errnum)" and uses HUSK_E_SYSTEM
 * unless errnum maps to a more specific code (ENOENT -> NOT_FOUND,
 * EEXIST -> EXISTS, EACCES/EPERM -> PERMISSION, ETIMEDOUT -> TIMEOUT).
 */
int husk_error(struct husk_err **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int husk_verror(struct husk_err **err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int husk_error_sys(struct husk_err **err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix context: "ctx: old message".  Returns -1 for tail calls. */
int husk_error_wrap(struct husk_err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void husk_err_free(struct husk_err *err);
/* Frees *err and sets it to NULL. */
void husk_err_clear(struct husk_err **err);

/*
 * Fixed exit codes for every husk binary (docs/exit-codes.md and each
 * man page).  husk-shim exits with its process's status instead.
 */
enum husk_exit {
	HUSK_EXIT_OK = 0,
	HUSK_EXIT_FAIL = 1,       /* the operation failed (runc's 1) */
	HUSK_EXIT_USAGE = 100,    /* bad command line */
	HUSK_EXIT_SYSTEM = 111,   /* a system call or resource failed */
	HUSK_EXIT_PEER = 112,     /* a peer (proxy, agent, VM) went away */
};

/* Exit code for an error: USAGE for invalid, SYSTEM for system... */
int husk_err_exit_code(const struct husk_err *err);

#endif
