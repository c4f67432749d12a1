/*
 * Logging for daemons, vmd style: log_warn() appends strerror(errno),
 * log_warnx() does not; fatal()/fatalx() log and exit(HUSK_EXIT_SYSTEM).
 * Messages start with the function's name by convention.  Every line
 * carries the process tag ("proxy/<sandbox>").  Output is runc's: text
 * lines in logrus' shape, with the tag and pid as extra fields,
 *   time="2026-11-22T13:00:00.000000Z" level=info msg="..." tag=husk pid=1
 * or JSON lines (--log-format json)
 *   {"level":"info","msg":"...","time":"2026-11-22T13:00:00.000000Z"}
 * with an extra "tag" key.
 */
#ifndef HUSK_LOG_H
#define HUSK_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum husk_log_level {
	HUSK_LOG_ERROR = 0,
	HUSK_LOG_WARN = 1,
	HUSK_LOG_INFO = 2,
	HUSK_LOG_DEBUG = 3,
};

enum husk_log_format {
	HUSK_LOG_TEXT = 0,
	HUSK_LOG_JSON = 1,
};

/*
 * Set the tag, level and format.  Logs go to stderr until
 * husk_log_open() or husk_log_set_fd() points them elsewhere.
 */
void husk_log_init(const char *tag, int level, int format);
void husk_log_set_tag(const char *tag);
void husk_log_set_level(int level);
int husk_log_get_level(void);
void husk_log_set_format(int format);
/* Append to a file (created 0600).  Returns -1 with errno on failure. */
int husk_log_open(const char *path);
/* Log to an already open descriptor (not closed by the logger). */
void husk_log_set_fd(int fd);
int husk_log_get_fd(void);

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int husk_log_level_parse(const char *s);
/* "text", "json" -> format; -1 if unknown. */
int husk_log_format_parse(const char *s);

void husk_vlog(int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void husk_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
