#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char *const code_names[HUSK_E__MAX] = {
	[HUSK_E_OK] = "ok",
	[HUSK_E_INTERNAL] = "internal",
	[HUSK_E_INVALID] = "invalid",
	[HUSK_E_UNKNOWN_METHOD] = "unknown-method",
	[HUSK_E_NOT_FOUND] = "not-found",
	[HUSK_E_EXISTS] = "exists",
	[HUSK_E_STATE] = "state",
	[HUSK_E_PERMISSION] = "permission",
	[HUSK_E_TIMEOUT] = "timeout",
	[HUSK_E_UNAVAILABLE] = "unavailable",
	[HUSK_E_VERSION] = "version",
	[HUSK_E_NOT_IMPLEMENTED] = "not-implemented",
	[HUSK_E_TOO_LARGE] = "too-large",
	[HUSK_E_PROTOCOL] = "protocol",
	[HUSK_E_SYSTEM] = "system",
	[HUSK_E_NO_HELLO] = "no-hello",
	[HUSK_E_CANCELLED] = "cancelled",
};

const char *husk_errcode_name(int code)
{
	if (code >= 0 && code < HUSK_E__MAX && code_names[code])
		return code_names[code];
	return "unknown";
}

int husk_verror(struct husk_err **err, int code, const char *fmt, va_list ap)
{
	struct husk_err *e;

	if (!err || *err)
		return -1;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->code = code;
	if (vasprintf(&e->msg, fmt, ap) < 0)
		e->msg = NULL;
	*err = e;
	return -1;
}

int husk_error(struct husk_err **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	husk_verror(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

static int errno_code(int errnum)
{
	switch (errnum) {
	case ENOENT:
	case ESRCH:
		return HUSK_E_NOT_FOUND;
	case EEXIST:
		return HUSK_E_EXISTS;
	case EACCES:
	case EPERM:
		return HUSK_E_PERMISSION;
	case ETIMEDOUT:
		return HUSK_E_TIMEOUT;
	case EINVAL:
		return HUSK_E_INVALID;
	case E2BIG:
	case EMSGSIZE:
	case ENAMETOOLONG:
		return HUSK_E_TOO_LARGE;
	case ENOSYS:
	case EOPNOTSUPP:
		return HUSK_E_NOT_IMPLEMENTED;
	case ECONNREFUSED:
	case ECONNRESET:
	case EPIPE:
		return HUSK_E_UNAVAILABLE;
	default:
		return HUSK_E_SYSTEM;
	}
}

int husk_error_sys(struct husk_err **err, int errnum, const char *fmt, ...)
{
	char *head = NULL;
	va_list ap;

	if (!err || *err)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&head, fmt, ap) < 0)
		head = NULL;
	va_end(ap);
	husk_error(err, errno_code(errnum), "%s: %s", head ? head : "?",
		   strerror(errnum));
	if (*err)
		(*err)->errnum = errnum;
	free(head);
	return -1;
}

int husk_error_wrap(struct husk_err **err, const char *fmt, ...)
{
	char *ctx = NULL, *msg = NULL;
	va_list ap;

	if (!err || !*err)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		ctx = NULL;
	va_end(ap);
	if (ctx && asprintf(&msg, "%s: %s", ctx,
			    (*err)->msg ? (*err)->msg : "?") >= 0) {
		free((*err)->msg);
		(*err)->msg = msg;
	}
	free(ctx);
	return -1;
}

void husk_err_free(struct husk_err *err)
{
	if (!err)
		return;
	free(err->msg);
	free(err);
}

void husk_err_clear(struct husk_err **err)
{
	if (err) {
		husk_err_free(*err);
		*err = NULL;
	}
}

int husk_err_exit_code(const struct husk_err *err)
{
	if (!err)
		return HUSK_EXIT_OK;
	switch (err->code) {
	case HUSK_E_SYSTEM:
		return HUSK_EXIT_SYSTEM;
	case HUSK_E_UNAVAILABLE:
		return HUSK_EXIT_PEER;
	default:
		return HUSK_EXIT_FAIL;
	}
}
