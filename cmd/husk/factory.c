/*
 * husk factory init|status|destroy: the VM factory by hand
 * (docs/factory.md).  init makes the VM template the configuration
 * describes ([factory] template_path) and starts husk-cache when
 * [factory] cache > 0, status prints both as JSON, destroy removes it
 * all (the cache first: its VMs may be clones of the template).  Each
 * sub-verb is a row below; the work is the sandbox library's
 * (sandbox/factory.c, sandbox/cache.c), which sandboxes use too.
 */
#include <stdio.h>
#include <string.h>

#include "husk.h"
#include "libhusk/log.h"

static int factory_init(struct husk_ctx *ctx, struct husk_err **err)
{
	const struct husk_config *c = &ctx->cfg;
	bool made;

	if (!c->factory_template && !c->factory_cache)
		return husk_error(err, HUSK_E_INVALID, "factory init: [factory] "
				  "template is false and cache is 0 in %s: "
				  "nothing to make", c->source ? c->source :
				  "the built-in defaults");
	if (c->factory_template) {
		if (husk_factory_init(c, &made, err) < 0)
			return -1;
		printf("template %s at %s\n", made ? "made" : "present",
		       c->factory_template_path);
	}
	if (!c->factory_cache)
		return 0;
	/* The cache's directory is below the root: the store's. */
	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	return husk_cache_init(c, ctx->root, err);
}

static int factory_status(struct husk_ctx *ctx, struct husk_err **err)
{
	json_t *cache = NULL, *j = NULL;
	int rc;

	if (husk_factory_status(&ctx->cfg, &j, err) < 0)
		return -1;
	/* The root's cache, whatever this configuration says of it (a
	 * shim's husk.conf may be another file); one that this
	 * configuration wants and that does not answer is a failure. */
	if (husk_cache_status(ctx->root, &cache, err) < 0) {
		if (ctx->cfg.factory_cache) {
			json_decref(j);
			return -1;
		}
		husk_err_clear(err);
	}
	json_object_set_new(j, "cache", cache ? cache : json_null());
	rc = husk_print_json(j, err);
	json_decref(j);
	return rc;
}

static int factory_destroy(struct husk_ctx *ctx, struct husk_err **err)
{
	if (husk_cache_destroy(ctx->root, err) < 0)
		return -1;
	return husk_factory_destroy(&ctx->cfg, err);
}

static const struct factory_verb {
	const char *name;
	int (*fn)(struct husk_ctx *ctx, struct husk_err **err);
} verbs[] = {
	{ "init", factory_init },
	{ "status", factory_status },
	{ "destroy", factory_destroy },
};

int cmd_factory(struct husk_ctx *ctx, int argc, char **argv,
		struct husk_err **err)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		husk_cmd_usage(husk_cmd_find("factory"), stdout);
		return 0;
	}
	if (argc != 2)
		return husk_usage_error(err, "factory needs one of init, status, "
					"destroy (see husk help factory)");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(*verbs); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(ctx, err);
	return husk_usage_error(err, "factory: unknown subcommand `%s` (init, "
				"status, destroy)", argv[1]);
}
