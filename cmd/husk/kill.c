/* husk kill, husk delete. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "husk.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

int cmd_kill(struct husk_ctx *ctx, int argc, char **argv,
	     struct husk_err **err)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_entry e;
	struct husk_container c;
	bool all = false;
	int sig = SIGTERM, rc, live, ch;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long_only(argc, argv, "+ah", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			all = true;
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find("kill"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "kill", argv[optind - 1]);
		}
	}
	if (optind != argc - 1 && optind != argc - 2)
		return husk_usage_error(err, "kill needs a container id and "
					"maybe a signal");
	if (optind == argc - 2) {
		sig = husk_parse_signal(argv[optind + 1], err);
		if (sig < 0)
			return -1;
	}
	if (husk_open_container(ctx, argv[optind], HUSK_LOCK_SHARED, &e, &c,
				err) < 0)
		return -1;
	live = husk_live_status(&c);
	if (live != HUSK_ST_CREATED && live != HUSK_ST_RUNNING &&
	    live != HUSK_ST_PAUSED)
		rc = husk_error(err, HUSK_E_STATE, "container %s is %s: "
				"nothing to signal", c.id,
				husk_status_name(live));
	else
		rc = husk_agent_call(ctx->root, c.sandbox_id, "signal_process",
				     json_pack("{s:s, s:s, s:i, s:b}",
					       "container_id", c.id,
					       "exec_id", "", "signal", sig,
					       "all", all), 10000, NULL, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

int cmd_delete(struct husk_ctx *ctx, int argc, char **argv,
	       struct husk_err **err)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_entry e;
	struct husk_container c;
	bool force = false;
	int rc, live, ch;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long_only(argc, argv, "+fh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			force = true;
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find("delete"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "delete",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return husk_usage_error(err, "delete needs exactly one "
					"container id");
	if (husk_open_container(ctx, argv[optind], HUSK_LOCK_EXCL, &e, &c,
				err) < 0) {
		/* A create that died before writing any state leaves an
		 * empty entry: --force clears it, as runc does. */
		if (force && *err && (*err)->code != HUSK_E_NOT_FOUND &&
		    husk_store_get(&ctx->store, argv[optind], HUSK_LOCK_EXCL,
				   &e, NULL) == 0) {
			log_warnx("%s: removing its state only", (*err)->msg);
			husk_err_clear(err);
			rc = husk_entry_remove(&e, err);
			husk_entry_close(&e);
			return rc;
		}
		return -1;
	}
	live = husk_live_status(&c);
	if (!force && live != HUSK_ST_STOPPED && live != HUSK_ST_CREATED)
		rc = husk_error(err, HUSK_E_STATE, "container %s is %s: stop "
				"it first or use --force", c.id,
				husk_status_name(live));
	else
		rc = husk_ct_destroy(&ctx->store, &ctx->cfg, &e, &c, force,
				     err);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}
