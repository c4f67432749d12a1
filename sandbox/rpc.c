/*
 * One call to a sandbox component, with JSON in and out: the runtime's
 * commands are short-lived and make few calls, so each call opens its
 * own connection (the hello included) and closes it.
 */
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libipc/ipc.h"
#include "sandbox.h"

int husk_rpc_call(const char *sock, const char *expect, const char *method,
		  const json_t *params, int timeout_ms, json_t **result,
		  const int *fds, int nfds, struct husk_err **err)
{
	struct ipc_client cl;
	struct ipc_msg resp;
	msgpack_packer *pk;
	json_t *empty = NULL;
	int rc;

	if (result)
		*result = NULL;
	if (ipc_client_connect(&cl, sock, "husk", expect, timeout_ms, err) < 0)
		return husk_error_wrap(err, "connect to %s", expect);
	pk = ipc_client_begin(&cl, method);
	if (!params)
		params = empty = json_object();
	rc = ipc_json_pack(pk, params, err);
	json_decref(empty);
	if (rc < 0) {
		ipc_client_close(&cl);
		return husk_error_wrap(err, "%s params", method);
	}
	rc = ipc_client_call(&cl, timeout_ms, fds, nfds, &resp, err);
	ipc_client_close(&cl);
	if (rc < 0)
		return husk_error_wrap(err, "%s %s", expect, method);
	log_debug("%s %s done", expect, method);
	if (result)
		*result = ipc_json_from_obj(resp.result);
	ipc_msg_free(&resp);
	return 0;
}
