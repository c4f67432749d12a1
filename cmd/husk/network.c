/*
 * husk network add-iface|del-iface|list-ifaces|update-routes|list-routes
 * ID: the sandbox's interfaces and routes by hand, for engines and
 * operators (docs/network.md).  JSON in (a file argument or stdin), JSON
 * out.  ID may be any container of the sandbox.
 */
#include <stdio.h>
#include <string.h>

#include "husk.h"
#include "libipc/proto_agent.h"

static json_t *read_json_arg(const char *path, struct husk_err **err)
{
	json_error_t je;
	json_t *j;

	if (path && strcmp(path, "-"))
		j = json_load_file(path, 0, &je);
	else
		j = json_loadf(stdin, 0, &je);
	if (!j)
		husk_error(err, HUSK_E_INVALID, "%s:%d: %s", path ? path :
			   "stdin", je.line, je.text);
	return j;
}

int cmd_network(struct husk_ctx *ctx, int argc, char **argv,
		struct husk_err **err)
{
	struct husk_entry e, se = { .dirfd = -1, .lockfd = -1 };
	struct husk_container c;
	struct husk_sandbox sb = { 0 };
	const char *verb, *sid;
	json_t *in = NULL, *out = NULL;
	int rc = -1;

	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		husk_cmd_usage(husk_cmd_find("network"), stdout);
		return 0;
	}
	if (argc < 3 || argc > 4)
		return husk_usage_error(err, "network needs a subcommand and a "
					"container id (see husk help "
					"network)");
	verb = argv[1];
	if (strcmp(verb, "add-iface") && strcmp(verb, "del-iface") &&
	    strcmp(verb, "update-routes") && argc == 4)
		return husk_usage_error(err, "network %s takes no file", verb);
	if (husk_open_container(ctx, argv[2], HUSK_LOCK_NONE, &e, &c,
				err) < 0)
		return -1;
	sid = c.sandbox_id;
	if (husk_store_get(&ctx->store, sid, HUSK_LOCK_NONE, &se, err) < 0 ||
	    husk_sandbox_read(&se, &sb, err) < 0) {
		husk_error_wrap(err, "sandbox %s", sid);
		goto out;
	}
	if (!husk_proc_alive(&sb.proxy) || !husk_proc_alive(&sb.hv)) {
		husk_error(err, HUSK_E_STATE, "sandbox %s is not running", sid);
		goto out;
	}
	if (!strcmp(verb, "add-iface")) {
		if (!(in = read_json_arg(argc == 4 ? argv[3] : NULL, err)))
			goto out;
		if (!json_is_object(in)) {
			husk_error(err, HUSK_E_INVALID, "add-iface: an "
				   "interface object is expected");
			goto out;
		}
		rc = husk_net_add_iface(ctx->root, sid, sb.netns, in, &out,
					err);
	} else if (!strcmp(verb, "del-iface")) {
		const char *name;

		if (!(in = read_json_arg(argc == 4 ? argv[3] : NULL, err)))
			goto out;
		name = json_string_value(json_object_get(in, "name"));
		if (!name) {
			husk_error(err, HUSK_E_INVALID, "del-iface: \"name\" "
				   "(a string) is missing");
			goto out;
		}
		rc = husk_net_del_iface(ctx->root, sid, name, err);
		if (rc == 0)
			out = json_incref(in);
	} else if (!strcmp(verb, "list-ifaces")) {
		rc = husk_agent_call(ctx->root, sid, AGENT_M_LIST_INTERFACES,
				     NULL, 30000, &out, err);
	} else if (!strcmp(verb, "list-routes")) {
		rc = husk_agent_call(ctx->root, sid, AGENT_M_LIST_ROUTES, NULL,
				     30000, &out, err);
	} else if (!strcmp(verb, "update-routes")) {
		if (!(in = read_json_arg(argc == 4 ? argv[3] : NULL, err)))
			goto out;
		if (!json_is_array(in)) {
			husk_error(err, HUSK_E_INVALID, "update-routes: an "
				   "array of routes is expected");
			goto out;
		}
		rc = husk_agent_call(ctx->root, sid, AGENT_M_UPDATE_ROUTES,
				     json_pack("{s:O}", "routes", in), 30000,
				     &out, err);
	} else {
		husk_usage_error(err, "network: unknown subcommand '%s'",
				 verb);
		goto out;
	}
	if (rc == 0 && out)
		rc = husk_print_json(out, err);
out:
	json_decref(in);
	json_decref(out);
	husk_sandbox_free(&sb);
	husk_entry_close(&se);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}
