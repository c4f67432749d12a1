/*
 * Logging for daemons, vmd style: log_warn() appends strerror(errno),
 * log_warnx() does not; fatal()/fatalx() log and exit(HUSK_EXIT_SYSTEM).
 * Messages start with the calling function's name, which the
 * macros add.  Every line
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

/*
 * The daemons' log calls: the message is "function: " and the format's
 * text, the function being the caller's (__func__), so a message never
 * names the wrong one.  log_warn and fatal add ": strerror(errno)".
 */
void husk_log_fn(int level, int with_errno, const char *func,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void husk_fatal_fn(int with_errno, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define log_warn(...) husk_log_fn(HUSK_LOG_WARN, 1, __func__, __VA_ARGS__)
#define log_warnx(...) husk_log_fn(HUSK_LOG_WARN, 0, __func__, __VA_ARGS__)
#define log_info(...) husk_log_fn(HUSK_LOG_INFO, 0, __func__, __VA_ARGS__)
#define log_debug(...) husk_log_fn(HUSK_LOG_DEBUG, 0, __func__, __VA_ARGS__)
#define fatal(...) husk_fatal_fn(1, __func__, __VA_ARGS__)
#define fatalx(...) husk_fatal_fn(0, __func__, __VA_ARGS__)

#endif
