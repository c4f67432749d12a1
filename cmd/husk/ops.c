/* husk pause, resume, update, events: calls to the guest agent. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/proto_agent.h"

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
	rc = husk_ct_pause(ctx->root, &e, &c, pause, err);
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
	       O_CPUS, O_MEMS, O_PIDS, O_BLKIO, O_RT_PERIOD, O_RT_RUNTIME,
	       O_RDT, O_HELP };
	static const char opts[] =
		"resources|r= memory= memory-swap= memory-reservation= "
		"cpu-quota= cpu-period= cpu-share= cpuset-cpus= cpuset-mems= "
		"pids-limit= blkio-weight= cpu-rt-period= cpu-rt-runtime= "
		"l3-cache-schema|mem-bw-schema= help";
	json_t *res = json_object();
	struct husk_entry e;
	struct husk_container c;
	const char *file = NULL;
	int ch, rc = 0;

	optind = 1;
	opterr = 0;
	while (rc == 0 &&
	       (ch = husk_getopt(argc, argv, opts)) != -1) {
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
		/* As the config's linux.resources: the agent applies them
		 * or refuses naming the field. */
		case O_BLKIO: rc = set_num(res, "blockIO", "weight", optarg,
					   false, err); break;
		case O_RT_PERIOD: rc = set_num(res, "cpu", "realtimePeriod",
					       optarg, false, err); break;
		case O_RT_RUNTIME: rc = set_num(res, "cpu", "realtimeRuntime",
						optarg, false, err); break;
		case O_RDT:
			rc = husk_error(err, HUSK_E_INVALID, "update "
					"--l3-cache-schema, --mem-bw-schema: "
					"refused: Intel RDT is not available "
					"in a VM");
			break;
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
	rc = husk_ct_update(ctx->root, &e, &c, res, err);
	json_decref(res);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

static json_t *num(const json_t *o, const char *k1, const char *k2)
{
	return json_integer(json_integer_value(
		json_object_get(json_object_get(o, k1), k2)));
}

/* The agent's stats in the shape of runc's (types.Stats): what the
 * guest's cgroup knows, nothing made up (no per-CPU or device split). */
static json_t *runc_stats(const json_t *s)
{
	return json_pack("{s:{s:{s:o, s:o, s:o}}, s:{s:o, s:{s:o, s:o, s:o, "
			 "s:i}}, s:{s:o, s:o}, s:{s:[{s:s, s:o}, {s:s, s:o}]}}",
			 "cpu", "usage", "total", num(s, "cpu", "usage_ns"),
			 "kernel", num(s, "cpu", "system_ns"),
			 "user", num(s, "cpu", "user_ns"),
			 "memory", "cache", num(s, "memory", "cache"),
			 "usage", "limit", num(s, "memory", "limit"),
			 "usage", num(s, "memory", "usage"),
			 "max", num(s, "memory", "max_usage"), "failcnt", 0,
			 "pids", "current", num(s, "pids", "current"),
			 "limit", num(s, "pids", "limit"),
			 "blkio", "ioServiceBytesRecursive",
			 "op", "Read", "value", num(s, "io", "read_bytes"),
			 "op", "Write", "value", num(s, "io", "write_bytes"));
}

static int print_stats(struct husk_ctx *ctx, const struct husk_container *c,
		       struct husk_err **err)
{
	cleanup_free char *text = NULL;
	json_t *res = NULL, *ev;

	if (husk_agent_call(ctx->root, c->sandbox_id, AGENT_M_STATS_CONTAINER,
			    json_pack("{s:s}", "container_id", c->id), 10000,
			    &res, err) < 0)
		return -1;
	ev = json_pack("{s:s, s:s, s:o}", "type", "stats", "id", c->id,
		       "data", runc_stats(res));
	json_decref(res);
	text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ev);
	printf("%s\n", text ? text : "{}");
	fflush(stdout);
	return 0;
}

/* The container's status now; HUSK_ST_STOPPED + 1 once it is deleted. */
#define EV_GONE (HUSK_ST_STOPPED + 1)
static int current_status(struct husk_ctx *ctx, const char *id,
			  struct husk_err **err)
{
	struct husk_entry e;
	struct husk_container c;
	int live;

	if (husk_open_container(ctx, id, HUSK_LOCK_NONE, &e, &c, err) < 0) {
		if ((*err)->code != HUSK_E_NOT_FOUND)
			return -1;
		husk_err_clear(err);
		return EV_GONE;
	}
	live = husk_live_status(&c);
	husk_container_free(&c);
	husk_entry_close(&e);
	return live;
}

static bool gone(struct husk_ctx *ctx, const char *id)
{
	cleanup_err struct husk_err *e = NULL;

	return current_status(ctx, id, &e) == EV_GONE;
}

/* Wait up to ms for OOM kills; an event line for each, as runc's. */
static int wait_oom(struct husk_oom_watch *ow, int ms, struct husk_err **err)
{
	unsigned news;

	if (husk_oom_watch_wait(ow, ms, &news, err) < 0)
		return -1;
	for (unsigned i = 0; i < news; i++) {
		cleanup_free char *text = NULL;
		json_t *ev = json_pack("{s:s, s:s}", "type", "oom", "id",
				       ow->cid);

		text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(ev);
		printf("%s\n", text ? text : "{}");
	}
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
	struct husk_oom_watch ow;
	bool stats = false, oom;
	double interval = 5;
	int ch, rc = 0, live;

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
			/* runc takes Go durations: "5s", "500ms", "1m". */
			if (!strcmp(end, "ms"))
				interval /= 1000;
			else if (!strcmp(end, "m"))
				interval *= 60;
			else if (*end && strcmp(end, "s"))
				interval = -1;
			if (!(interval > 0 && interval < 1e6))
				return husk_usage_error(err, "events "
					"--interval: '%s' is not a positive "
					"duration (such as 5s or 500ms)",
					optarg);
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
	/*
	 * A stats event per interval until the container is deleted, and
	 * an oom event for each OOM kill as it comes (the agent's wait_oom
	 * long poll is also the wait between ticks).  A failed read is
	 * logged and the stream goes on, as runc's does; the state is
	 * looked at often so that a delete ends it soon.
	 */
	oom = husk_oom_watch_open(ctx->root, c.sandbox_id, c.id, 10000, &ow,
				  err) == 0;
	if (!oom) {
		log_warnx("events %s: no oom events: %s", c.id, (*err)->msg);
		husk_err_clear(err);
	}
	for (live = HUSK_ST_RUNNING; live != EV_GONE;) {
		uint64_t next = husk_now_ms() + (uint64_t)(interval * 1000);

		if (live != HUSK_ST_STOPPED && print_stats(ctx, &c, err) < 0) {
			log_warnx("events %s: %s", c.id, (*err)->msg);
			husk_err_clear(err);
		}
		do {
			uint64_t now = husk_now_ms();
			uint64_t left = next > now ? next - now : 0;

			if (oom && wait_oom(&ow, left < 1000 ? (int)left : 1000,
					    err) < 0) {
				/* The container or its sandbox went (the
				 * state says which); else it is worth a
				 * line. */
				if ((*err)->code != HUSK_E_NOT_FOUND &&
				    !gone(ctx, c.id))
					log_warnx("events %s: no more oom "
						  "events: %s", c.id,
						  (*err)->msg);
				husk_err_clear(err);
				husk_oom_watch_close(&ow);
				oom = false;
			} else if (!oom) {
				struct timespec ts = { 0, 200 * 1000 * 1000 };

				if (left < 200)
					ts.tv_nsec = (long)left * 1000000;
				nanosleep(&ts, NULL);
			}
			live = current_status(ctx, c.id, err);
			if (live < 0) {
				rc = -1;
				break;
			}
		} while (live != EV_GONE && husk_now_ms() < next);
		if (rc < 0)
			break;
	}
	if (oom)
		husk_oom_watch_close(&ow);
	husk_container_free(&c);
	return rc;
}
