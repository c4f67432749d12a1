/*
 * OOM kills from the guest (docs/agent-protocol.md, "OOM kills"): the
 * agent's wait_oom answers with the container's kill count, and the
 * callers (husk events, containerd-shim-husk-v2) report one event per
 * kill they had not seen.  The answer comes from the guest: it is
 * decoded here, once, and what it can make a caller report is bounded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_proxy.h"
#include "sandbox.h"

static const struct ipc_field oom_result_fields[] = {
	{ "oom_kills", IPC_F_UINT64, IPC_REQUIRED, 0, 0, UINT64_MAX },
	{ NULL, 0, 0, 0, 0, 0 },
};

int husk_oom_decode(const struct msgpack_object *result, uint64_t *kills,
		    struct husk_err **err)
{
	uint64_t v = 0;

	if (!result || result->type != MSGPACK_OBJECT_MAP)
		return husk_error(err, HUSK_E_PROTOCOL, "wait_oom: the result "
				  "is not a map");
	if (ipc_decode(result, oom_result_fields, &v, err) < 0)
		return husk_error_wrap(err, "wait_oom result");
	*kills = v;
	return 0;
}

unsigned husk_oom_news(uint64_t *seen, uint64_t kills, uint64_t *dropped)
{
	uint64_t n;

	*dropped = 0;
	/* The agent's count only grows: a smaller one is a guest that
	 * lies or an agent that started again; either way, news start
	 * from it. */
	if (kills <= *seen) {
		*seen = kills;
		return 0;
	}
	n = kills - *seen;
	*seen = kills;
	if (n > HUSK_OOM_BURST) {
		*dropped = n - HUSK_OOM_BURST;
		n = HUSK_OOM_BURST;
	}
	return (unsigned)n;
}

/* ------------------------------------------------------------------ */
/* A blocking watch, for husk events                                   */

/* wait: the agent answers at timeout_ms if nothing came; else it
 * answers now, and timeout_ms bounds the whole call. */
static int oom_call(struct husk_oom_watch *w, bool wait, int timeout_ms,
		    uint64_t *kills, struct husk_err **err)
{
	struct ipc_msg resp;
	msgpack_packer *pk = ipc_client_begin(w->cl, AGENT_M_WAIT_OOM);
	int rc;

	msgpack_pack_map(pk, wait ? 3 : 1);
	ipc_pack_kv_str(pk, "container_id", w->cid);
	if (wait) {
		ipc_pack_kv_uint(pk, "seen", w->seen);
		ipc_pack_kv_uint(pk, "timeout_ms", (uint64_t)timeout_ms);
	}
	/* The agent answers at its timeout; ours leaves room for a
	 * loaded host. */
	if (ipc_client_call(w->cl, wait ? timeout_ms + HUSK_OOM_CALL_SLACK_MS :
			    timeout_ms, NULL, 0, &resp, err) < 0)
		return -1;
	rc = husk_oom_decode(resp.result, kills, err);
	ipc_msg_free(&resp);
	return rc;
}

int husk_oom_watch_open(const char *root, const char *sid, const char *cid,
			int timeout_ms, struct husk_oom_watch *w,
			struct husk_err **err)
{
	struct husk_sbx_paths p;
	uint64_t kills;
	int rc;

	memset(w, 0, sizeof(*w));
	w->cl = husk_xcalloc(1, sizeof(*w->cl));
	w->cl->fd = -1;
	if (husk_sandbox_paths(root, sid, &p, err) < 0) {
		husk_oom_watch_close(w);
		return -1;
	}
	rc = ipc_client_connect(w->cl, p.proxy_sock, "husk", PROXY_COMPONENT,
				timeout_ms, err);
	husk_sandbox_paths_free(&p);
	if (rc < 0) {
		husk_oom_watch_close(w);
		return husk_error_wrap(err, "connect to %s", PROXY_COMPONENT);
	}
	w->cid = husk_xstrdup(cid);
	/* Kills before the watch are not news. */
	if (oom_call(w, false, timeout_ms, &kills, err) < 0) {
		husk_oom_watch_close(w);
		return -1;
	}
	w->seen = kills;
	return 0;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int husk_oom_watch_wait(struct husk_oom_watch *w, int timeout_ms,
			unsigned *news, struct husk_err **err)
{
	uint64_t kills, dropped, now;

	*news = 0;
	if (timeout_ms < 1)
		timeout_ms = 1;
	now = husk_now_ms();
	if (now < w->last_ms + HUSK_OOM_MIN_GAP_MS) {
		uint64_t gap = w->last_ms + HUSK_OOM_MIN_GAP_MS - now;

		sleep_ms(gap < (uint64_t)timeout_ms ? gap :
			 (uint64_t)timeout_ms);
		if (gap >= (uint64_t)timeout_ms)
			return 0;
		timeout_ms -= (int)gap;
	}
	w->last_ms = husk_now_ms();
	if (oom_call(w, true, timeout_ms, &kills, err) < 0)
		return -1;
	*news = husk_oom_news(&w->seen, kills, &dropped);
	if (dropped)
		log_warnx("container %s: %llu OOM kills not reported (more "
			  "than %u in one answer)", w->cid,
			  (unsigned long long)dropped, HUSK_OOM_BURST);
	return 0;
}

void husk_oom_watch_close(struct husk_oom_watch *w)
{
	/* A client the proxy dropped has no descriptor but still its
	 * buffers. */
	if (w->cl)
		ipc_client_close(w->cl);
	free(w->cl);
	w->cl = NULL;
	free(w->cid);
	w->cid = NULL;
}
