/*
 * Fuzz what containerd-shim-husk-v2 and husk events decode from the
 * agent's wait_oom answers (guest bytes, relayed by the proxy): frames
 * to ipc_msg_parse, each response's result to husk_oom_decode, and the
 * count to husk_oom_news, whose bounds must hold whatever came before.
 */
#include <stdint.h>
#include <stdlib.h>

#include "libipc/ipc.h"
#include "sandbox/sandbox.h"

static uint64_t seen;

static int on_frame(void *arg, const char *data, uint32_t len)
{
	struct husk_err *err = NULL;
	struct ipc_msg m;
	uint64_t kills, before, dropped;
	unsigned n;

	if (ipc_msg_parse(&m, data, len, &err) < 0) {
		husk_err_free(err);
		return 0;
	}
	if (m.type == IPC_RESPONSE && m.result &&
	    husk_oom_decode(m.result, &kills, &err) == 0) {
		before = seen;
		n = husk_oom_news(&seen, kills, &dropped);
		if (n > HUSK_OOM_BURST || seen != kills)
			abort();
		if (kills > before && n + dropped != kills - before)
			abort();
		if (kills <= before && (n || dropped))
			abort();
	}
	husk_err_free(err);
	ipc_msg_free(&m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_framer f;
	struct husk_err *err = NULL;

	seen = 0;
	ipc_framer_init(&f, IPC_AGENT_FRAME_MAX);
	if (ipc_framer_feed(&f, data, size, on_frame, NULL, &err) < 0)
		husk_err_free(err);
	ipc_framer_free(&f);
	return 0;
}
