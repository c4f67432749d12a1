/*
 * husk: the OCI runtime CLI.  runc's command line (global options, then
 * a verb and its options); one file per verb; errors travel up as
 * struct husk_err and main() prints them once, to stderr and to --log.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

static const struct husk_cmd commands[] = {
	{ "create", cmd_create, "[OPTIONS] ID",
	  "create a container (its VM, or a place in its pod's VM)" },
	{ "start", cmd_start, "ID", "run the created container's process" },
	{ "run", cmd_run, "[OPTIONS] ID", "create and start a container" },
	{ "state", cmd_state, "ID", "print the OCI state of a container" },
	{ "kill", cmd_kill, "[--all] ID [SIGNAL]",
	  "send a signal to the container's process (default TERM)" },
	{ "delete", cmd_delete, "[--force] ID",
	  "delete a container and what it holds" },
	{ "list", cmd_list, "[--format table|json] [--quiet]",
	  "list containers" },
	{ "ps", cmd_ps, "[--format table|json] ID [PS-OPTIONS]",
	  "list the processes of a container" },
	{ "exec", cmd_exec, "[OPTIONS] ID [COMMAND [ARG...]]",
	  "run another process in a container" },
	{ "pause", cmd_pause, "ID", "freeze a container's processes" },
	{ "resume", cmd_resume, "ID", "thaw a paused container" },
	{ "update", cmd_update, "[OPTIONS] ID",
	  "change a container's resource limits" },
	{ "events", cmd_events, "[--stats] [--interval D] ID",
	  "print container events and statistics" },
	{ "spec", cmd_spec, "[--bundle DIR]",
	  "write a default config.json" },
	{ "version", cmd_version, "", "print version information" },
	{ "check", cmd_check, "",
	  "check that this host can run husk (hypervisor, accelerator...)" },
	{ "env", cmd_env, "", "print the effective configuration" },
	{ "network", cmd_network,
	  "add-iface|del-iface|list-ifaces|update-routes|list-routes ID "
	  "[FILE]", "the sandbox's interfaces and routes, as JSON" },
	{ "factory", cmd_factory, "init|status|destroy",
	  "the VM factory: a template VM, VMs booted ahead (docs/factory.md)" },
	{ "help", cmd_help, "[COMMAND]", "show help" },
	{ "checkpoint", cmd_refused, "ID", "refused: see husk(8)" },
	{ "restore", cmd_refused, "ID", "refused: see husk(8)" },
	{ NULL, NULL, NULL, NULL },
};

const struct husk_cmd *husk_cmd_find(const char *name)
{
	for (const struct husk_cmd *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

void husk_cmd_usage(const struct husk_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: husk [GLOBAL OPTIONS] %s %s\n\n%s\n"
		"(see husk(8) for the options)\n", cmd->name, cmd->args,
		cmd->summary);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: husk [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\n"
		"husk runs OCI containers in lightweight virtual machines.\n\n"
		"global options:\n"
		"  --root DIR          state directory (default %s)\n"
		"  --config FILE       configuration (default %s)\n"
		"  --log FILE          log file (default stderr)\n"
		"  --log-format FMT    text or json\n"
		"  --debug             debug logging\n"
		"  --systemd-cgroup    accepted for runc compatibility\n"
		"  --help, --version\n\ncommands:\n",
		HUSK_DEFAULT_ROOT, HUSK_DEFAULT_CONFIG);
	for (const struct husk_cmd *c = commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

static const char usage_mark[] = "usage: ";

int husk_usage_error(struct husk_err **err, const char *fmt, ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	return husk_error(err, HUSK_E_INVALID, "%s%s", usage_mark,
			  msg ? msg : "?");
}

bool husk_err_is_usage(const struct husk_err *err)
{
	return err && err->code == HUSK_E_INVALID && err->msg &&
	       !strncmp(err->msg, usage_mark, sizeof(usage_mark) - 1);
}

int husk_ctx_store(struct husk_ctx *ctx, struct husk_err **err)
{
	if (ctx->store_open)
		return 0;
	if (husk_store_open(&ctx->store, ctx->root, err) < 0)
		return husk_error_wrap(err, "state directory");
	ctx->store_open = true;
	return 0;
}

int cmd_help(struct husk_ctx *ctx, int argc, char **argv,
	     struct husk_err **err)
{
	const struct husk_cmd *c;

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	c = husk_cmd_find(argv[1]);
	if (!c)
		return husk_usage_error(err, "unknown command '%s'", argv[1]);
	husk_cmd_usage(c, stdout);
	return 0;
}

/* runc verbs a VM runtime cannot offer: a clear error, not "unknown". */
int cmd_refused(struct husk_ctx *ctx, int argc, char **argv,
		struct husk_err **err)
{
	(void)ctx;
	(void)argc;
	return husk_error(err, HUSK_E_INVALID, "%s: refused: husk cannot "
			  "checkpoint or restore a container (CRIU works on "
			  "host processes, and the container's run inside "
			  "a VM)", argv[0]);
}

enum { OPT_ROOT = 256, OPT_LOG, OPT_LOG_FORMAT, OPT_DEBUG, OPT_SYSTEMD,
       OPT_CONFIG, OPT_HELP, OPT_VERSION, OPT_IGNORED };

static const struct option global_opts[] = {
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "systemd-cgroup", no_argument, NULL, OPT_SYSTEMD },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	/* runc options that mean nothing for a VM runtime. */
	{ "criu", required_argument, NULL, OPT_IGNORED },
	{ "rootless", required_argument, NULL, OPT_IGNORED },
	{ NULL, 0, NULL, 0 },
};

static int parse_global(struct husk_ctx *ctx, int argc, char **argv,
			struct husk_err **err)
{
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long_only(argc, argv, "+hv", global_opts,
				     NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			ctx->root = optarg;
			break;
		case OPT_LOG:
			ctx->log_path = optarg;
			break;
		case OPT_LOG_FORMAT:
			ctx->log_format = husk_log_format_parse(optarg);
			if (ctx->log_format < 0)
				return husk_usage_error(err, "--log-format: "
							"'%s' is not text or "
							"json", optarg);
			break;
		case OPT_DEBUG:
			ctx->debug = true;
			break;
		case OPT_SYSTEMD:
			ctx->systemd_cgroup = true;
			break;
		case OPT_CONFIG:
			ctx->config_path = optarg;
			ctx->config_given = true;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case 'v':
		case OPT_VERSION:
			return cmd_version(ctx, 0, NULL, err) < 0 ? -1 : 1;
		case OPT_IGNORED:
			break;
		case ':':
			return husk_usage_error(err, "%s needs a value",
						argv[optind - 1]);
		default:
			return husk_usage_error(err, "unknown option '%s'",
						argv[optind - 1]);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct husk_ctx ctx = {
		.root = HUSK_DEFAULT_ROOT,
		.config_path = HUSK_DEFAULT_CONFIG,
		.log_format = HUSK_LOG_TEXT,
	};
	cleanup_err struct husk_err *err = NULL;
	cleanup_free char *abs_root = NULL;
	const struct husk_cmd *cmd;
	const char *env_conf, *msg;
	bool usage_err;
	int rc;

	husk_log_init("husk", HUSK_LOG_WARN, HUSK_LOG_TEXT);
	env_conf = getenv("HUSK_CONFIG");
	if (env_conf && *env_conf) {
		ctx.config_path = env_conf;
		ctx.config_given = true;
	}
	rc = parse_global(&ctx, argc, argv, &err);
	if (rc > 0)
		return 0;
	if (rc == 0 && ctx.log_path && husk_log_open(ctx.log_path) < 0)
		rc = husk_error_sys(&err, errno, "open log `%s`",
				    ctx.log_path);
	if (rc == 0) {
		husk_log_set_format(ctx.log_format);
		husk_config_defaults(&ctx.cfg);
		rc = husk_config_load(&ctx.cfg, ctx.config_path,
				      ctx.config_given, &err);
		if (ctx.debug || ctx.cfg.debug)
			husk_log_set_level(HUSK_LOG_DEBUG);
	}
	/* Helpers run elsewhere and mountinfo speaks in absolute paths:
	 * the root must be absolute from here on, and spelled one way
	 * (as runc's filepath.Abs does: "." and ".." resolved as text),
	 * since the state records paths below it that a later command,
	 * given the same root spelled another way, checks against its
	 * own (a network namespace husk made is only ever its own file). */
	if (rc == 0) {
		char cwd[PATH_MAX];
		cleanup_free char *joined = NULL;

		if (ctx.root[0] == '/')
			joined = husk_xstrdup(ctx.root);
		else if (!getcwd(cwd, sizeof(cwd)))
			rc = husk_error_sys(&err, errno, "getcwd");
		else
			joined = husk_xasprintf("%s/%s", cwd, ctx.root);
		if (rc == 0)
			ctx.root = abs_root = husk_path_clean_abs(joined);
	}
	if (rc == 0 && optind >= argc) {
		usage(stderr);
		return HUSK_EXIT_USAGE;
	}
	if (rc == 0) {
		cmd = husk_cmd_find(argv[optind]);
		if (!cmd)
			rc = husk_usage_error(&err, "unknown command '%s' "
					      "(see husk --help)",
					      argv[optind]);
		else
			rc = cmd->fn(&ctx, argc - optind, argv + optind, &err);
	}
	if (ctx.store_open)
		husk_store_close(&ctx.store);
	husk_config_free(&ctx.cfg);
	if (rc >= 0 && !err)
		return rc;
	usage_err = husk_err_is_usage(err);
	msg = !err || !err->msg ? "failed" :
	      usage_err ? err->msg + sizeof(usage_mark) - 1 : err->msg;
	/* containerd shows the last line of --log when a runtime fails. */
	if (ctx.log_path)
		husk_log(HUSK_LOG_ERROR, "%s", msg);
	fprintf(stderr, "husk: %s\n", msg);
	if (ctx.fail_exit)
		return ctx.fail_exit;
	if (usage_err)
		return HUSK_EXIT_USAGE;
	return err ? husk_err_exit_code(err) : HUSK_EXIT_FAIL;
}
