/*
 * husk factory init|status|destroy: the VM factory (docs/factory.md).
 * This file has the cache's part (docs/factory-cache.md): init starts
 * husk-cache when [factory] cache > 0, status asks it for its VMs,
 * destroy stops it and removes every VM it kept, its socket and its
 * directory, whether it is alive or died.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/proto_cache.h"

/* The daemon's pids from <root>/.factory/cache.json (zeros: none). */
static void read_record(const char *fdir, struct husk_proc_ref *server,
			struct husk_proc_ref *booter)
{
	cleanup_free char *path = husk_xasprintf("%s/" HUSK_CACHE_RECORD,
						 fdir);
	json_t *j = json_load_file(path, 0, NULL);
	json_t *s = json_object_get(j, "server"), *b = json_object_get(j,
								       "booter");

	memset(server, 0, sizeof(*server));
	memset(booter, 0, sizeof(*booter));
	if (json_integer_value(json_object_get(s, "pid")) > 1) {
		server->pid = (pid_t)json_integer_value(json_object_get(s,
								       "pid"));
		server->start = (unsigned long long)json_integer_value(
			json_object_get(s, "start"));
	}
	if (json_integer_value(json_object_get(b, "pid")) > 1) {
		booter->pid = (pid_t)json_integer_value(json_object_get(b,
								       "pid"));
		booter->start = (unsigned long long)json_integer_value(
			json_object_get(b, "start"));
	}
	json_decref(j);
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Stop the daemon (both halves) and every VM it kept; remove the
 * directory.  Works on a dead daemon's leftovers as on a live one. */
static int cache_destroy(const char *root, struct husk_err **err)
{
	cleanup_free char *fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR, root);
	struct husk_proc_ref server, booter;
	int n;

	if (!dir_exists(fdir))
		return 0;
	read_record(fdir, &server, &booter);
	husk_proc_stop(&server, 5000);
	/* Mid-boot it would finish the boot first: what it started is in
	 * the VM's record, which the sweep reads. */
	husk_proc_stop(&booter, 5000);
	n = husk_cache_sweep(fdir, err);
	if (n < 0)
		return -1;
	if (n)
		log_info("factory: %d cached VMs stopped", n);
	if (husk_rmtree_at(AT_FDCWD, fdir, err) < 0)
		return husk_error_wrap(err, "remove `%s`", fdir);
	return 0;
}

/* Start husk-cache and wait until it answers (its VMs boot after). */
static int cache_init(struct husk_ctx *ctx, struct husk_err **err)
{
	cleanup_free char *fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR,
						 ctx->root);
	cleanup_free char *sock = husk_xasprintf("%s/" HUSK_CACHE_SOCK, fdir);
	cleanup_free char *log = husk_xasprintf("%s/cache.log", fdir);
	cleanup_free char *exe = husk_xasprintf("%s/husk-cache",
						husk_exe_dir());
	struct husk_proc_ref server, booter;
	char *argv[] = { exe, "--root", (char *)ctx->root, "--log-level",
			 ctx->cfg.debug ? "debug" : "info",
			 ctx->cfg.source ? "--config" : NULL,
			 ctx->cfg.source, NULL };
	uint64_t deadline;
	pid_t pid;

	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	if (dir_exists(fdir)) {
		read_record(fdir, &server, &booter);
		if (husk_proc_alive(&server))
			return husk_error(err, HUSK_E_EXISTS, "factory: the "
					  "cache daemon runs already (pid %d): "
					  "`husk factory destroy` first",
					  (int)server.pid);
		/* A daemon that died: its leftovers go first. */
		log_info("factory: a dead cache daemon's leftovers removed");
		if (cache_destroy(ctx->root, err) < 0)
			return -1;
	}
	if (husk_mkdir_p(fdir, 0700, err) < 0)
		return -1;
	pid = husk_spawn(argv, log, NULL, 0, err);
	if (pid < 0)
		return husk_error_wrap(err, "factory: start husk-cache");
	deadline = husk_now_ms() + 10000;
	for (;;) {
		cleanup_err struct husk_err *e = NULL;
		struct timespec ts = { 0, 5 * 1000000L };
		int status;

		if (husk_rpc_call(sock, CACHE_COMPONENT, CACHE_M_STATUS, NULL,
				  1000, NULL, NULL, 0, &e) == 0)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return husk_error(err, HUSK_E_UNAVAILABLE, "factory: "
					  "husk-cache exited at start (status "
					  "%d): see %s", WIFEXITED(status) ?
					  WEXITSTATUS(status) : 128 +
					  WTERMSIG(status), log);
		if (husk_now_ms() >= deadline)
			return husk_error(err, HUSK_E_TIMEOUT, "factory: "
					  "husk-cache did not answer within "
					  "10 s (%s): see %s", e->msg, log);
		nanosleep(&ts, NULL);
	}
	log_info("factory: husk-cache (pid %d) keeps %u VMs booted",
		 (int)pid, ctx->cfg.factory_cache);
	return 0;
}

static int cache_status(struct husk_ctx *ctx, struct husk_err **err)
{
	cleanup_free char *sock = husk_xasprintf("%s/" HUSK_FACTORY_DIR "/"
						 HUSK_CACHE_SOCK, ctx->root);
	cleanup_free char *text = NULL;
	json_t *res = NULL, *out;

	if (husk_rpc_call(sock, CACHE_COMPONENT, CACHE_M_STATUS, NULL, 10000,
			  &res, NULL, 0, err) < 0)
		return husk_error_wrap(err, "factory: the cache daemon does "
				       "not answer on %s", sock);
	out = json_pack("{s:o}", "cache", res);
	text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(out);
	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "encode JSON");
	printf("%s\n", text);
	return 0;
}

int cmd_factory(struct husk_ctx *ctx, int argc, char **argv,
		struct husk_err **err)
{
	const char *verb = argc == 2 ? argv[1] : NULL;

	if (verb && (!strcmp(verb, "--help") || !strcmp(verb, "-h"))) {
		husk_cmd_usage(husk_cmd_find("factory"), stdout);
		return 0;
	}
	if (!verb)
		return husk_usage_error(err, "factory needs one of init, "
					"status, destroy");
	if (!strcmp(verb, "init")) {
		if (ctx->cfg.factory_template)
			return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
					  "factory init: [factory] template = "
					  "true: VM templates are not "
					  "implemented yet");
		if (!ctx->cfg.factory_cache)
			return husk_error(err, HUSK_E_INVALID, "factory init: "
					  "[factory] cache is 0 in %s: "
					  "nothing to start",
					  ctx->cfg.source ?: "the defaults");
		return cache_init(ctx, err);
	}
	if (!strcmp(verb, "status"))
		return cache_status(ctx, err);
	if (!strcmp(verb, "destroy"))
		return cache_destroy(ctx->root, err);
	return husk_usage_error(err, "factory: unknown subcommand `%s` "
				"(init, status, destroy)", verb);
}
