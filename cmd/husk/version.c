/* husk version, husk env: what this husk is and how it is configured. */
#include <stdio.h>

#include "husk.h"

int cmd_version(struct husk_ctx *ctx, int argc, char **argv,
		struct husk_err **err)
{
	if (argc > 1)
		return husk_usage_error(err, "version takes no arguments");
	printf("husk version %s\nspec: %s\n", HUSK_VERSION, HUSK_OCI_VERSION);
	return 0;
}

int cmd_env(struct husk_ctx *ctx, int argc, char **argv,
	    struct husk_err **err)
{
	if (argc > 1)
		return husk_usage_error(err, "env takes no arguments");
	husk_config_print(&ctx->cfg, stdout);
	return 0;
}
