/*
 * husk, the OCI runtime CLI: shared definitions of the verbs.
 * main.c holds the command table and the global options; each verb has
 * its own file, crun style.
 */
#ifndef HUSK_CLI_H
#define HUSK_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "libhusk/err.h"
#include "libhusk/store.h"
#include "sandbox/sandbox.h"

#include "libhusk/version.h"
#define HUSK_OCI_VERSION "1.0.2"
#define HUSK_DEFAULT_ROOT "/run/husk"
#define HUSK_DEFAULT_CONFIG "/etc/husk/husk.conf"
/* exec's own failures (runc's), apart from the process's statuses. */
#define HUSK_EXIT_EXEC 255

struct husk_ctx {
	const char *root;
	const char *config_path;
	bool config_given;
	const char *log_path;
	int log_format;
	bool debug;
	bool systemd_cgroup;
	struct husk_config cfg;
	struct husk_store store;
	bool store_open;
	int fail_exit;          /* a verb's exit code for any error, or 0 */
};

/* A verb: argv[0] is the verb's name. */
struct husk_cmd {
	const char *name;
	int (*fn)(struct husk_ctx *ctx, int argc, char **argv,
		  struct husk_err **err);
	const char *args;
	const char *summary;
};

/* j on stdout, indented, in its keys' order. */
int husk_print_json(const json_t *j, struct husk_err **err);

/* Usage error (exit 100): sets err with HUSK_E_INVALID and marks it. */
int husk_usage_error(struct husk_err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool husk_err_is_usage(const struct husk_err *err);

/* Open the state store under --root (once). */
int husk_ctx_store(struct husk_ctx *ctx, struct husk_err **err);

/* common.c */
int husk_open_container(struct husk_ctx *ctx, const char *id, int lock,
			struct husk_entry *e, struct husk_container *c,
			struct husk_err **err);
int husk_parse_signal(const char *s, struct husk_err **err);
int husk_bad_option(struct husk_err **err, const char *verb,
		    const char *opt);
/*
 * getopt_long_only over a verb's options written as one spec: entries
 * separated by spaces, an entry's names (runc's) by '|', '=' after an
 * entry that takes a value: "process|p= tty|t help".  Returns the
 * entry's place in spec, from 1 (an enum in the same order names
 * them), '?' for an unknown option or a missing value, -1 after the
 * last option; optarg as getopt's.  The caller sets optind = 1 first.
 */
#define HUSK_OPTS_MAX 48
int husk_getopt(int argc, char **argv, const char *spec);

/* spec.c: runc's default config.json. */
json_t *husk_default_spec(void);

/* The verbs. */
int cmd_create(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_start(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_factory(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_run(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_state(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_kill(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_delete(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_list(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_ps(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_exec(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_pause(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_resume(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_update(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_events(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_spec(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_version(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_check(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_env(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_network(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_factory(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_help(struct husk_ctx *, int, char **, struct husk_err **);
int cmd_refused(struct husk_ctx *, int, char **, struct husk_err **);

const struct husk_cmd *husk_cmd_find(const char *name);
void husk_cmd_usage(const struct husk_cmd *cmd, FILE *out);

#endif
