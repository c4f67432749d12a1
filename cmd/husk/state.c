/* husk state, husk list: what the store says, with live status. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

/* The bundle's root.path made absolute, as runc reports it ("" if the
 * bundle no longer says).  The bundle is the caller's: still, never
 * block on a FIFO put where config.json was. */
static char *bundle_rootfs(const char *bundle)
{
	cleanup_free char *path = husk_xasprintf("%s/config.json", bundle);
	cleanup_free char *buf = NULL;
	cleanup_close int fd = -1;
	const char *root;
	struct stat st;
	json_t *spec;
	ssize_t n;
	char *out;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (1 << 22))
		return husk_xstrdup("");
	buf = husk_xcalloc(1, (size_t)st.st_size + 1);
	n = husk_read_all(fd, buf, (size_t)st.st_size);
	if (n < 0)
		return husk_xstrdup("");
	spec = json_loadb(buf, (size_t)n, 0, NULL);
	root = json_string_value(json_object_get(json_object_get(spec, "root"),
						 "path"));
	if (!root || !*root)
		out = husk_xstrdup("");
	else if (root[0] == '/')
		out = husk_xstrdup(root);
	else
		out = husk_xasprintf("%s/%s", bundle, root);
	json_decref(spec);
	return out;
}

/* runc's owner: the user owning the container's state directory. */
static char *state_owner(const struct husk_entry *e,
			 const struct husk_container *c)
{
	struct passwd *pw;
	struct stat st;

	if (c->owner && *c->owner)
		return husk_xstrdup(c->owner);
	if (fstat(e->dirfd, &st) < 0)
		return husk_xstrdup("");
	pw = getpwuid(st.st_uid);
	if (pw)
		return husk_xstrdup(pw->pw_name);
	return husk_xasprintf("#%u", (unsigned)st.st_uid);
}

/* runc's state and list object: ociVersion, id, pid, status, bundle,
 * rootfs, created, annotations (when there are any), owner. */
static json_t *runc_state(const struct husk_entry *e,
			  const struct husk_container *c, int live)
{
	cleanup_free char *rootfs = c->bundle ? bundle_rootfs(c->bundle) :
						husk_xstrdup("");
	cleanup_free char *owner = state_owner(e, c);
	json_t *st = json_object();

	json_object_set_new(st, "ociVersion", json_string(HUSK_OCI_VERSION));
	json_object_set_new(st, "id", json_string(c->id));
	json_object_set_new(st, "pid", json_integer(live == HUSK_ST_STOPPED ?
						    0 : c->shim.pid));
	json_object_set_new(st, "status",
			    json_string(husk_status_name(live)));
	json_object_set_new(st, "bundle", json_string(c->bundle ?: ""));
	json_object_set_new(st, "rootfs", json_string(rootfs));
	json_object_set_new(st, "created", json_string(c->created ?: ""));
	if (json_object_size(c->annotations))
		json_object_set(st, "annotations", c->annotations);
	json_object_set_new(st, "owner", json_string(owner));
	return st;
}

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
	st = runc_state(&e, &c, husk_live_status(&c));
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
		else if (!strcmp(format, "table")) {
			cleanup_free char *owner = state_owner(&e, &ct);

			printf("%-20s %-8d %-10s %-40s %-30s %s\n", ct.id,
			       live == HUSK_ST_STOPPED ? 0 : (int)ct.shim.pid,
			       husk_status_name(live), ct.bundle, ct.created,
			       owner);
		} else
			json_array_append_new(arr, runc_state(&e, &ct, live));
		husk_container_free(&ct);
		husk_entry_close(&e);
	}
	if (!quiet && !strcmp(format, "json")) {
		cleanup_free char *text = json_dumps(arr, JSON_COMPACT |
						    JSON_PRESERVE_ORDER);

		printf("%s\n", text ? text : "[]");
	}
	json_decref(arr);
	return 0;
}
