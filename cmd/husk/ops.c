/* husk ps, pause, resume, update, events: calls to the guest agent. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

/* Open a container that must be in one of the states in mask. */
static int open_live(struct husk_ctx *ctx, const char *id, unsigned mask,
		     int lock, struct husk_entry *e, struct husk_container *c,
		     struct husk_err **err)
{
	int live;

	if (husk_open_container(ctx, id, lock, e, c, err) < 0)
		return -1;
	live = husk_live_status(c);
	if (!(mask & (1u << live))) {
		husk_error(err, HUSK_E_STATE, "container %s is %s", c->id,
			   husk_status_name(live));
		husk_container_free(c);
		husk_entry_close(e);
		return -1;
	}
	return live;
}

#define LIVE_MASK ((1u << HUSK_ST_CREATED) | (1u << HUSK_ST_RUNNING) | \
		   (1u << HUSK_ST_PAUSED))

static int one_id(int argc, char **argv, const char *verb,
		  struct husk_err **err)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		husk_cmd_usage(husk_cmd_find(verb), stdout);
		return 1;
	}
	if (argc != 2 || argv[1][0] == '-')
		return husk_usage_error(err, "%s needs exactly one container "
					"id", verb);
	return 0;
}

int cmd_ps(struct husk_ctx *ctx, int argc, char **argv,
	   struct husk_err **err)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "table";
	struct husk_entry e;
	struct husk_container c;
	json_t *res = NULL, *procs, *p;
	size_t i;
	int ch, rc;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long_only(argc, argv, "+f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			format = optarg;
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find("ps"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "ps", argv[optind - 1]);
		}
	}
	if (strcmp(format, "table") && strcmp(format, "json"))
		return husk_usage_error(err, "ps --format: '%s' is not table "
					"or json", format);
	if (optind != argc - 1)
		return husk_usage_error(err, "ps needs exactly one container "
					"id");
	if (open_live(ctx, argv[optind], LIVE_MASK, HUSK_LOCK_SHARED, &e, &c,
		      err) < 0)
		return -1;
	if (!strcmp(format, "json")) {
		/* runc prints host pids as a JSON array, and engines look
		 * them up on the host (`docker top` runs ps(1) and keeps the
		 * rows with those pids): the guest's pids would pick
		 * unrelated host processes.  The host process standing for
		 * the container is its shim. */
		printf("[%d]\n", (int)c.shim.pid);
		husk_container_free(&c);
		husk_entry_close(&e);
		return 0;
	}
	rc = husk_agent_call(ctx->root, c.sandbox_id, "list_processes",
			     json_pack("{s:s}", "container_id", c.id), 10000,
			     &res, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (rc < 0)
		return -1;
	procs = json_object_get(res, "processes");
	{
		printf("%-8s %-8s %-6s %-5s %s\n", "PID", "PPID", "UID",
		       "STAT", "CMD");
		json_array_foreach(procs, i, p) {
			json_t *args = json_object_get(p, "args"), *a;
			size_t k;

			printf("%-8" JSON_INTEGER_FORMAT " %-8"
			       JSON_INTEGER_FORMAT " %-6" JSON_INTEGER_FORMAT
			       " %-5s",
			       json_integer_value(json_object_get(p, "pid")),
			       json_integer_value(json_object_get(p, "ppid")),
			       json_integer_value(json_object_get(p, "uid")),
			       json_string_value(json_object_get(p, "state"))
			       ?: "?");
			if (json_array_size(args))
				json_array_foreach(args, k, a)
					printf(" %s", json_string_value(a) ?: "");
			else
				printf(" [%s]", json_string_value(
					json_object_get(p, "comm")) ?: "?");
			printf("\n");
		}
	}
	json_decref(res);
	return 0;
}

static int pause_resume(struct husk_ctx *ctx, int argc, char **argv,
			bool pause, struct husk_err **err)
{
	const char *verb = pause ? "pause" : "resume";
	struct husk_entry e;
	struct husk_container c;
	int rc = one_id(argc, argv, verb, err);

	if (rc)
		return rc < 0 ? -1 : 0;
	if (open_live(ctx, argv[1], 1u << (pause ? HUSK_ST_RUNNING :
					    HUSK_ST_PAUSED),
		      HUSK_LOCK_EXCL, &e, &c, err) < 0)
		return -1;
	rc = husk_agent_call(ctx->root, c.sandbox_id,
			     pause ? "pause_container" : "resume_container",
			     json_pack("{s:s}", "container_id", c.id), 30000,
			     NULL, err);
	if (rc == 0) {
		c.status = pause ? HUSK_ST_PAUSED : HUSK_ST_RUNNING;
		rc = husk_container_write(&e, &c, err);
	}
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

int cmd_pause(struct husk_ctx *ctx, int argc, char **argv,
	      struct husk_err **err)
{
	return pause_resume(ctx, argc, argv, true, err);
}

int cmd_resume(struct husk_ctx *ctx, int argc, char **argv,
	       struct husk_err **err)
{
	return pause_resume(ctx, argc, argv, false, err);
}

static int set_num(json_t *res, const char *group, const char *key,
		   const char *val, bool size, struct husk_err **err)
{
	json_t *g = json_object_get(res, group);
	long long n;
	uint64_t u;

	if (size && husk_parse_size(val, &u) == 0 && u <= INT64_MAX)
		n = (long long)u;
	else if (husk_parse_int(val, -1, INT64_MAX, &n) < 0)
		return husk_usage_error(err, "update: '%s' is not a valid "
					"value for %s.%s", val, group, key);
	if (!g) {
		g = json_object();
		json_object_set_new(res, group, g);
	}
	json_object_set_new(g, key, json_integer(n));
	return 0;
}

int cmd_update(struct husk_ctx *ctx, int argc, char **argv,
	       struct husk_err **err)
{
	enum { O_RES = 1, O_MEM, O_SWAP, O_RESV, O_QUOTA, O_PERIOD, O_SHARES,
	       O_CPUS, O_MEMS, O_PIDS, O_HELP };
	static const struct option opts[] = {
		{ "resources", required_argument, NULL, O_RES },
		{ "r", required_argument, NULL, O_RES },
		{ "memory", required_argument, NULL, O_MEM },
		{ "memory-swap", required_argument, NULL, O_SWAP },
		{ "memory-reservation", required_argument, NULL, O_RESV },
		{ "cpu-quota", required_argument, NULL, O_QUOTA },
		{ "cpu-period", required_argument, NULL, O_PERIOD },
		{ "cpu-share", required_argument, NULL, O_SHARES },
		{ "cpuset-cpus", required_argument, NULL, O_CPUS },
		{ "cpuset-mems", required_argument, NULL, O_MEMS },
		{ "pids-limit", required_argument, NULL, O_PIDS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	json_t *res = json_object();
	struct husk_entry e;
	struct husk_container c;
	const char *file = NULL;
	int ch, rc = 0;

	optind = 1;
	opterr = 0;
	while (rc == 0 &&
	       (ch = getopt_long_only(argc, argv, "+", opts, NULL)) != -1) {
		switch (ch) {
		case O_RES: file = optarg; break;
		case O_MEM: rc = set_num(res, "memory", "limit", optarg, true,
					 err); break;
		case O_SWAP: rc = set_num(res, "memory", "swap", optarg, true,
					  err); break;
		case O_RESV: rc = set_num(res, "memory", "reservation", optarg,
					  true, err); break;
		case O_QUOTA: rc = set_num(res, "cpu", "quota", optarg, false,
					   err); break;
		case O_PERIOD: rc = set_num(res, "cpu", "period", optarg,
					    false, err); break;
		case O_SHARES: rc = set_num(res, "cpu", "shares", optarg,
					    false, err); break;
		case O_PIDS: rc = set_num(res, "pids", "limit", optarg, false,
					  err); break;
		case O_CPUS:
		case O_MEMS:
			if (!json_object_get(res, "cpu"))
				json_object_set_new(res, "cpu", json_object());
			json_object_set_new(json_object_get(res, "cpu"),
					    ch == O_CPUS ? "cpus" : "mems",
					    json_string(optarg));
			break;
		case O_HELP:
			json_decref(res);
			husk_cmd_usage(husk_cmd_find("update"), stdout);
			return 0;
		default:
			rc = husk_bad_option(err, "update", argv[optind - 1]);
		}
	}
	if (rc == 0 && optind != argc - 1)
		rc = husk_usage_error(err, "update needs exactly one container "
				      "id");
	if (rc == 0 && file) {
		json_error_t jerr;

		json_decref(res);
		res = !strcmp(file, "-") ? json_loadf(stdin, 0, &jerr) :
					   json_load_file(file, 0, &jerr);
		if (!res || !json_is_object(res))
			rc = husk_error(err, HUSK_E_INVALID, "update "
					"--resources %s: %s", file,
					res ? "not a JSON object" : jerr.text);
	}
	if (rc < 0) {
		json_decref(res);
		return -1;
	}
	if (open_live(ctx, argv[optind], LIVE_MASK, HUSK_LOCK_EXCL, &e, &c,
		      err) < 0) {
		json_decref(res);
		return -1;
	}
	/* Kata's way: the VM grows before a larger limit applies, and
	 * gives back hot-plugged memory after a smaller one did. */
	rc = husk_ct_resize(ctx->root, &c, res, false, err);
	if (husk_container_write(&e, &c, rc < 0 ? NULL : err) < 0)
		rc = -1;
	if (rc == 0)
		rc = husk_agent_call(ctx->root, c.sandbox_id,
				     "update_container",
				     json_pack("{s:s, s:O}", "container_id",
					       c.id, "resources", res),
				     30000, NULL, err);
	if (rc == 0 && husk_ct_resize(ctx->root, &c, res, true, err) == 0)
		rc = husk_container_write(&e, &c, err);
	json_decref(res);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

static int print_stats(struct husk_ctx *ctx, const struct husk_container *c,
		       struct husk_err **err)
{
	cleanup_free char *text = NULL;
	json_t *res = NULL, *ev;

	if (husk_agent_call(ctx->root, c->sandbox_id, "stats_container",
			    json_pack("{s:s}", "container_id", c->id), 10000,
			    &res, err) < 0)
		return -1;
	ev = json_pack("{s:s, s:s, s:o}", "type", "stats", "id", c->id,
		       "data", res);
	text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ev);
	printf("%s\n", text ? text : "{}");
	fflush(stdout);
	return 0;
}

int cmd_events(struct husk_ctx *ctx, int argc, char **argv,
	       struct husk_err **err)
{
	static const struct option opts[] = {
		{ "stats", no_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_entry e;
	struct husk_container c;
	bool stats = false;
	double interval = 5;
	int ch, rc = 0;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long_only(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			stats = true;
			break;
		case 'i': {
			char *end;

			interval = strtod(optarg, &end);
			/* runc takes Go durations: "5s", "500ms". */
			if (!strcmp(end, "ms"))
				interval /= 1000;
			else if (*end && strcmp(end, "s"))
				interval = -1;
			if (interval <= 0)
				return husk_usage_error(err, "events "
					"--interval: '%s' is not a positive "
					"duration", optarg);
			break;
		}
		case 'h':
			husk_cmd_usage(husk_cmd_find("events"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "events", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return husk_usage_error(err, "events needs exactly one "
					"container id");
	if (open_live(ctx, argv[optind], LIVE_MASK, HUSK_LOCK_NONE, &e, &c,
		      err) < 0)
		return -1;
	husk_entry_close(&e);
	if (stats) {
		rc = print_stats(ctx, &c, err);
		husk_container_free(&c);
		return rc;
	}
	/* Until the container stops: a stats event per interval. */
	while (rc == 0 && husk_live_status(&c) != HUSK_ST_STOPPED) {
		struct timespec ts = { (time_t)interval,
				       (long)((interval - (time_t)interval) *
					      1e9) };

		rc = print_stats(ctx, &c, err);
		if (rc == 0)
			nanosleep(&ts, NULL);
	}
	husk_container_free(&c);
	return rc;
}
