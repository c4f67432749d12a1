/* husk state, husk list: what the store says, with live status. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "husk.h"
#include "libhusk/cleanup.h"

static bool want_help(int argc, char **argv, const char *verb)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		husk_cmd_usage(husk_cmd_find(verb), stdout);
		return true;
	}
	return false;
}

int cmd_state(struct husk_ctx *ctx, int argc, char **argv,
	      struct husk_err **err)
{
	struct husk_entry e;
	struct husk_container c;
	cleanup_free char *text = NULL;
	json_t *st;

	if (want_help(argc, argv, "state"))
		return 0;
	if (argc != 2 || argv[1][0] == '-')
		return husk_usage_error(err, "state needs exactly one "
					"container id");
	if (husk_open_container(ctx, argv[1], HUSK_LOCK_NONE, &e, &c,
				err) < 0)
		return -1;
	st = husk_container_oci_state(&c, husk_live_status(&c));
	text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(st);
	husk_container_free(&c);
	husk_entry_close(&e);
	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "encode state");
	printf("%s\n", text);
	return 0;
}

int cmd_list(struct husk_ctx *ctx, int argc, char **argv,
	     struct husk_err **err)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_strv char **ids = NULL;
	const char *format = "table";
	bool quiet = false;
	json_t *arr;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long_only(argc, argv, "+f:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find("list"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "list", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return husk_usage_error(err, "list takes no arguments");
	if (strcmp(format, "table") && strcmp(format, "json"))
		return husk_usage_error(err, "list --format: '%s' is not table "
					"or json", format);
	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	if (husk_store_list(&ctx->store, &ids, err) < 0)
		return -1;
	arr = json_array();
	if (!quiet && !strcmp(format, "table"))
		printf("%-20s %-8s %-10s %-40s %-30s %s\n", "ID", "PID",
		       "STATUS", "BUNDLE", "CREATED", "OWNER");
	for (char **id = ids; *id; id++) {
		struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
		struct husk_container ct;
		int live;

		if (husk_store_get(&ctx->store, *id, HUSK_LOCK_NONE, &e,
				   NULL) < 0)
			continue;
		if (husk_container_read(&e, &ct, NULL) < 0) {
			/* A container still being created has no state yet. */
			husk_entry_close(&e);
			continue;
		}
		live = husk_live_status(&ct);
		if (quiet)
			printf("%s\n", ct.id);
		else if (!strcmp(format, "table"))
			printf("%-20s %-8d %-10s %-40s %-30s %s\n", ct.id,
			       live == HUSK_ST_STOPPED ? 0 : (int)ct.shim.pid,
			       husk_status_name(live), ct.bundle, ct.created,
			       ct.owner && *ct.owner ? ct.owner : "root");
		else
			json_array_append_new(arr,
					      husk_container_oci_state(&ct,
								       live));
		husk_container_free(&ct);
		husk_entry_close(&e);
	}
	if (!quiet && !strcmp(format, "json")) {
		cleanup_free char *text = json_dumps(arr, JSON_COMPACT);

		printf("%s\n", text ? text : "[]");
	}
	json_decref(arr);
	return 0;
}
