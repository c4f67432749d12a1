#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"

static struct {
	char tag[96];
	int level;
	int format;
	int fd;
	bool own_fd;
} lg = { "husk", HUSK_LOG_INFO, HUSK_LOG_TEXT, STDERR_FILENO, false };

static const char *const level_names[] = { "error", "warning", "info",
					   "debug" };

void husk_log_init(const char *tag, int level, int format)
{
	husk_log_set_tag(tag);
	lg.level = level;
	lg.format = format;
}

void husk_log_set_tag(const char *tag)
{
	snprintf(lg.tag, sizeof(lg.tag), "%s", tag ? tag : "husk");
}

void husk_log_set_level(int level)
{
	lg.level = level;
}

int husk_log_get_level(void)
{
	return lg.level;
}

void husk_log_set_format(int format)
{
	lg.format = format;
}

int husk_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	husk_log_set_fd(fd);
	lg.own_fd = true;
	return 0;
}

void husk_log_set_fd(int fd)
{
	if (lg.own_fd && lg.fd >= 0 && lg.fd != fd)
		close(lg.fd);
	lg.fd = fd;
	lg.own_fd = false;
}

int husk_log_get_fd(void)
{
	return lg.fd;
}

int husk_log_level_parse(const char *s)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "error"))
		return HUSK_LOG_ERROR;
	if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
		return HUSK_LOG_WARN;
	if (!strcasecmp(s, "info"))
		return HUSK_LOG_INFO;
	if (!strcasecmp(s, "debug"))
		return HUSK_LOG_DEBUG;
	return -1;
}

int husk_log_format_parse(const char *s)
{
	if (s && !strcmp(s, "text"))
		return HUSK_LOG_TEXT;
	if (s && !strcmp(s, "json"))
		return HUSK_LOG_JSON;
	return -1;
}

/* JSON string escaping into out (bounded); returns bytes written. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (ch < 0x20 || ch == 0x7f) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = '\0';
	return n;
}

/* A logrus text value: bare when it is all [A-Za-z0-9-._/@^+], else
 * double-quoted with Go's escapes (\" \\ \n \t \r \xNN). */
static size_t logfmt_value(char *out, size_t cap, const char *s)
{
	size_t n = 0;
	bool bare = *s != '\0';

	for (const char *p = s; *p && bare; p++)
		bare = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || strchr("-._/@^+", *p);
	if (bare) {
		snprintf(out, cap, "%s", s);
		return strlen(out);
	}
	out[n++] = '"';
	for (; *s && n + 6 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch == '\n' || ch == '\t' || ch == '\r') {
			out[n++] = '\\';
			out[n++] = ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r';
		} else if (ch < 0x20 || ch == 0x7f) {
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

void husk_vlog(int level, const char *fmt, va_list ap)
{
	char raw[4096], msg[8192], line[16384 + 256], ts[64];
	struct timeval tv;
	struct tm tm;
	int saved = errno, n;

	if (level > lg.level || lg.fd < 0)
		return;
	if (level < 0)
		level = 0;
	if (level > HUSK_LOG_DEBUG)
		level = HUSK_LOG_DEBUG;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* Messages carry names and errors from peers and the guest: no
	 * byte of theirs may move a terminal's cursor or forge a line. */
	husk_escape_buf(raw, strlen(raw), msg, sizeof(msg));
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t)n, ".%06ldZ", (long)tv.tv_usec);

	if (lg.format == HUSK_LOG_JSON) {
		char emsg[16384], etag[200];

		json_escape(emsg, sizeof(emsg), msg);
		json_escape(etag, sizeof(etag), lg.tag);
		n = snprintf(line, sizeof(line),
			     "{\"level\":\"%s\",\"msg\":\"%s\",\"time\":\"%s\","
			     "\"tag\":\"%s\"}\n",
			     level_names[level], emsg, ts, etag);
	} else {
		char qmsg[8192], qtag[200];

		/* runc's (logrus') text shape, then our tag and pid. */
		logfmt_value(qmsg, sizeof(qmsg), msg);
		logfmt_value(qtag, sizeof(qtag), lg.tag);
		n = snprintf(line, sizeof(line), "time=\"%s\" level=%s msg=%s "
			     "tag=%s pid=%d\n", ts, level_names[level], qmsg,
			     qtag, (int)getpid());
	}
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* One write per line so concurrent writers do not interleave. */
	if (write(lg.fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

void husk_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	husk_vlog(level, fmt, ap);
	va_end(ap);
}

/* func, then the message, then strerror(errnum) when errnum. */
static void vlog_fn(int level, int errnum, const char *func, const char *fmt,
		    va_list ap)
{
	char buf[4096];

	if (level > lg.level || lg.fd < 0)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (errnum)
		husk_log(level, "%s: %s: %s", func, buf, strerror(errnum));
	else
		husk_log(level, "%s: %s", func, buf);
}

void husk_log_fn(int level, int with_errno, const char *func,
		 const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog_fn(level, with_errno ? saved : 0, func, fmt, ap);
	va_end(ap);
	errno = saved;
}

void husk_fatal_fn(int with_errno, const char *func, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog_fn(HUSK_LOG_ERROR, with_errno ? saved : 0, func, fmt, ap);
	va_end(ap);
	exit(HUSK_EXIT_SYSTEM);
}
