/*
 * What the shim reads from the proxy comes from the guest: decode it
 * once, here, with every type and bound checked (fuzzed by
 * tests/fuzz/fuzz_proxy_shim.c).
 */
#include <string.h>

#include "libhusk/util.h"
#include "shim.h"

#define FIELD(k, t, m, mx) \
	{ k, t, IPC_REQUIRED, offsetof(struct shim_output, m), 0, mx }

static const struct ipc_field output_fields[] = {
	FIELD("container_id", IPC_F_STR, container_id, HUSK_ID_MAX),
	FIELD("exec_id", IPC_F_STR, exec_id, HUSK_ID_MAX),
	FIELD("stream", IPC_F_UINT32, stream, 2),
	FIELD("data", IPC_F_BIN, data, UINT32_MAX),
	{ NULL },
};

int shim_decode_output(const msgpack_object *params, struct shim_output *o,
		       struct husk_err **err)
{
	memset(o, 0, sizeof(*o));
	if (ipc_decode(params, output_fields, o, err) < 0)
		return husk_error_wrap(err, "output");
	if (o->stream < 1) {
		shim_output_free(o);
		return husk_error(err, HUSK_E_INVALID,
				  "output: params.stream: must be 1 or 2");
	}
	return 0;
}

void shim_output_free(struct shim_output *o)
{
	ipc_decode_free(output_fields, o);
}

struct wait_result {
	int64_t status;
};

static const struct ipc_field wait_fields[] = {
	{ "status", IPC_F_INT64, IPC_REQUIRED,
	  offsetof(struct wait_result, status), 0, 255 },
	{ NULL },
};

int shim_decode_status(const msgpack_object *result, int *status,
		       struct husk_err **err)
{
	struct wait_result r = { 0 };

	if (ipc_obj_map(result, "result", 16, err) < 0 ||
	    ipc_decode(result, wait_fields, &r, err) < 0)
		return husk_error_wrap(err, "wait_process");
	*status = (int)r.status;
	return 0;
}
