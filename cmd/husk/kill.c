/* husk kill, husk delete. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "husk.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/proto_agent.h"

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
	else if (sig == 0)
		/* runc's kill 0 asks whether the process is there; the shim
		 * lives exactly as long as the process does. */
		rc = 0;
	else
		rc = husk_agent_call(ctx->root, c.sandbox_id,
				     AGENT_M_SIGNAL_PROCESS,
				     json_pack("{s:s, s:s, s:i, s:b}",
					       "container_id", c.id,
					       "exec_id", "", "signal", sig,
					       "all", all), 10000, NULL, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

/*
 * What a create that died half-way leaves: a directory with no lock
 * (killed between mkdir and the lock), or an entry with no readable
 * state.json.  Helpers a damaged entry records in sandbox.json are
 * stopped before it goes.  Gone already is fine: --force is idempotent.
 */
static int delete_leftover(struct husk_ctx *ctx, const char *id,
			   struct husk_err **err)
{
	struct husk_entry e;
	struct husk_sandbox sb;
	struct stat st;

	if (husk_store_get(&ctx->store, id, HUSK_LOCK_EXCL, &e, NULL) == 0) {
		if (husk_sandbox_read(&e, &sb, NULL) == 0) {
			husk_sandbox_stop(ctx->root, &sb, true, NULL);
			husk_sandbox_free(&sb);
		}
		if (husk_entry_remove(&e, err) < 0) {
			husk_entry_close(&e);
			return -1;
		}
		return 0;
	}
	if (fstatat(ctx->store.rootfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return husk_error_sys(err, errno, "delete %s", id);
	}
	if (!S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_STATE, "delete %s: `%s/%s` is "
				  "not a state directory; not removed", id,
				  ctx->root, id);
	return husk_rmtree_at(ctx->store.rootfd, id, err);
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
	if (husk_id_validate(argv[optind], "container id", err) < 0)
		return -1;
	if (husk_open_container(ctx, argv[optind], HUSK_LOCK_EXCL, &e, &c,
				err) < 0) {
		/* runc's delete --force of an id that is not there (or only
		 * half there, or whose state is damaged) succeeds. */
		if (!force || !ctx->store_open)
			return -1;
		if (*err && (*err)->code != HUSK_E_NOT_FOUND)
			log_warnx("%s: removing its state only", (*err)->msg);
		husk_err_clear(err);
		return delete_leftover(ctx, argv[optind], err);
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
