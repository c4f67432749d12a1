/*
 * Fuzz what husk-shim decodes from the proxy (guest data relayed):
 * frames, the output notification's params and wait_process's result.
 */
#include <stdint.h>
#include <stdlib.h>

#include "shim/shim.h"

static int on_frame(void *arg, const char *data, uint32_t len)
{
	struct husk_err *err = NULL;
	struct shim_output o;
	struct ipc_msg m;
	int status;

	if (ipc_msg_parse(&m, data, len, &err) < 0) {
		husk_err_free(err);
		return -1;
	}
	if (m.type == IPC_NOTIFY) {
		if (shim_decode_output(m.params, &o, &err) == 0) {
			if (o.stream < 1 || o.stream > 2 || !o.container_id ||
			    !o.exec_id || (o.data.len && !o.data.p))
				abort();
			shim_output_free(&o);
		}
	} else if (m.type == IPC_RESPONSE && m.result) {
		if (shim_decode_status(m.result, &status, &err) == 0 &&
		    (status < 0 || status > 255))
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

	ipc_framer_init(&f, 1u << 20);
	if (ipc_framer_feed(&f, data, size, on_frame, NULL, &err) < 0)
		husk_err_free(err);
	ipc_framer_free(&f);
	return 0;
}
