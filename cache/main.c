/*
 * husk-cache: keeps [factory] cache VMs booted ahead below
 * <root>/.factory and hands one to each new sandbox over
 * <root>/.factory/cache.sock (docs/factory-cache.md, husk-cache(8)).
 * Started by `husk factory init`, stopped by `husk factory destroy`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>

#include "cache/cache.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/version.h"
#include "libipc/ipc.h"
#include "libipc/proto_cache.h"

struct cache cache = { .booter_fd = -1 };

static const struct option cache_options[] = {
	{ "root", required_argument, NULL, 'r' },
	{ "config", required_argument, NULL, 'c' },
	{ NULL, 0, NULL, 0 },
};

static int cache_option(struct husk_daemon *d, int key, const char *arg,
			struct husk_err **err)
{
	switch (key) {
	case 'r': cache.root = arg; break;
	case 'c': cache.config_path = arg; break;
	}
	return 0;
}

static int cache_check(struct husk_daemon *d, struct husk_err **err)
{
	if (!cache.root)
		return husk_error(err, HUSK_E_INVALID, "--root is required");
	if (cache.root[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "--root `%s`: not an "
				  "absolute path", cache.root);
	return 0;
}

/* <root>/.factory/cache.json: both pids with their start times, so
 * that `husk factory destroy` stops them without the socket. */
static int write_record(struct husk_err **err)
{
	struct husk_proc_ref me, b;
	cleanup_free char *text = NULL;
	json_t *j;

	husk_proc_ref(getpid(), &me);
	husk_proc_ref(cache.booter_pid, &b);
	/* agent_timeout bounds a boot: how long destroy waits for one
	 * that runs to end. */
	j = json_pack("{s:{s:i, s:I}, s:{s:i, s:I}, s:i, s:i}",
		      "server", "pid", (int)me.pid, "start",
		      (json_int_t)me.start, "booter", "pid", (int)b.pid,
		      "start", (json_int_t)b.start, "cache", cache.pool.size,
		      "agent_timeout", cache.cfg.agent_timeout);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return husk_write_atomic(AT_FDCWD, cache.record, text, strlen(text),
				 0600, err);
}

static int cache_open(struct husk_daemon *d, struct husk_err **err)
{
	struct ipc_server_opts so = { 0 };
	char prefix[CACHE_NAME_MAX - 11];
	uint32_t epoch;

	cache.loop = d->loop;
	husk_config_defaults(&cache.cfg);
	if (husk_config_load(&cache.cfg, cache.config_path,
			     cache.config_path != NULL, err) < 0)
		return -1;
	if (!cache.cfg.factory_cache)
		return husk_error(err, HUSK_E_INVALID, "[factory] cache is 0 "
				  "in %s: no VM to keep",
				  cache.cfg.source ?: "the defaults");
	if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch))
		return husk_error_sys(err, errno, "getrandom");
	snprintf(prefix, sizeof(prefix), "vm-%08x-", epoch);
	cache_pool_init(&cache.pool, cache.cfg.factory_cache, prefix);
	cache.fingerprint = husk_cache_fingerprint(&cache.cfg);
	cache.fdir = husk_xasprintf("%s/" HUSK_FACTORY_DIR, cache.root);
	cache.sock = husk_xasprintf("%s/" HUSK_CACHE_SOCK, cache.fdir);
	cache.record = husk_xasprintf("%s/" HUSK_CACHE_RECORD, cache.fdir);
	if (husk_mkdir_p(cache.fdir, 0700, err) < 0)
		return -1;
	/* First, so that the booter holds neither the listening socket
	 * nor anything else of the server's. */
	if (cache_booter_start(&cache.cfg, cache.fdir, &cache.booter_fd,
			       &cache.booter_pid, err) < 0)
		return -1;
	if (write_record(err) < 0)
		return -1;
	ev_io_init(&cache.booter_w, cache_booter_cb, cache.booter_fd,
		   EV_READ);
	ev_io_start(d->loop, &cache.booter_w);
	ev_init(&cache.wake_w, NULL);

	so.conn.component = CACHE_COMPONENT;
	so.conn.methods = cache_methods;
	/* Root's tools (the runtime, its containerd shim, husk-ipc):
	 * siblings.  Nobody else may connect (uid checked). */
	so.conn.trusted = true;
	cache.srv = ipc_server_new(d->loop, cache.sock, &so, err);
	return cache.srv ? 0 : -1;
}

static int cache_run(struct husk_daemon *d, struct husk_err **err)
{
	log_info("serving %s: %u VMs (booter pid %d)", cache.sock,
		 cache.pool.size, (int)cache.booter_pid);
	cache_kick();
	return 0;
}

static void cache_close(struct husk_daemon *d)
{
	ipc_server_free(cache.srv);
	/* The booter reads EOF and stops the VMs not taken. */
	if (cache.booter_fd >= 0)
		close(cache.booter_fd);
	free(cache.fingerprint);
	free(cache.fdir);
	free(cache.sock);
	free(cache.record);
	husk_config_free(&cache.cfg);
}

static struct husk_daemon cache_daemon = {
	.name = "husk-cache",
	.tag = "cache",
	.version = HUSK_VERSION,
	.usage = "--root DIR [--config FILE]",
	.options = cache_options,
	.option = cache_option,
	.check = cache_check,
	.open = cache_open,
	.confine = cache_confine,
	.run = cache_run,
	.close = cache_close,
	.flags = HUSK_DAEMON_NO_SANDBOX_OPT,
	.log_level = HUSK_LOG_INFO,
};

int main(int argc, char **argv)
{
	return husk_daemon_main(&cache_daemon, argc, argv);
}
