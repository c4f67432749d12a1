/*
 * Fuzz what containerd-shim-husk-v2 decodes from its ttrpc sockets: the
 * first byte says how many chunk sizes follow, those bytes are the read
 * sizes (cycled), and the rest is the stream, fed into the frame reader.
 * A request frame goes to ttrpc_request_decode and its payload to the
 * decoder of every message the shim's methods take (ttrpc_decode, as
 * the server does, and the events service's ForwardRequest); a response
 * frame to ttrpc_response_decode (the events client).  A reader error
 * ends the stream, as it ends the connection; a pause feeds the rest
 * again, as the server does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shimv2/ttrpc.h"
#include "shimv2/proto/events.pb-c.h"
#include "shimv2/proto/task.pb-c.h"

static const ProtobufCMessageDescriptor *const payloads[] = {
	&task__create_task_request__descriptor,
	&task__delete_request__descriptor,
	&task__exec_process_request__descriptor,
	&task__resize_pty_request__descriptor,
	&task__state_request__descriptor,
	&task__kill_request__descriptor,
	&task__close_iorequest__descriptor,
	&task__pids_request__descriptor,
	&task__checkpoint_task_request__descriptor,
	&task__update_task_request__descriptor,
	&task__start_request__descriptor,
	&task__wait_request__descriptor,
	&task__stats_request__descriptor,
	&task__connect_request__descriptor,
	&task__shutdown_request__descriptor,
	&task__pause_request__descriptor,
	&task__resume_request__descriptor,
	&task__runtime_options__descriptor,
	&events__forward_request__descriptor,
	&gpb__empty__descriptor,
};

static void decode_payload(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		struct husk_err *err = NULL;
		ProtobufCMessage *m;

		if (ttrpc_decode(payloads[i], p, n, &m, &err) < 0) {
			if (m || !err)
				abort();
			husk_err_free(err);
			continue;
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static int on_frame(void *arg, const struct ttrpc_hdr *h,
		    const uint8_t *payload, struct husk_err **err)
{
	unsigned *frames = arg;

	if (h->len > TTRPC_MAX_MSG)
		abort();
	(*frames)++;
	if (h->type == TTRPC_TYPE_REQUEST) {
		Ttrpc__Request *req;
		struct husk_err *e = NULL;

		if (ttrpc_request_decode(payload, h->len, &req, &e) < 0) {
			if (req || !e)
				abort();
			husk_err_free(e);
			return 0;
		}
		if (!req->service[0] || !req->method[0])
			abort();
		decode_payload(req->payload.data, req->payload.len);
		ttrpc__request__free_unpacked(req, NULL);
	} else {
		Ttrpc__Response *resp;
		struct husk_err *e = NULL;

		if (ttrpc_response_decode(payload, h->len, &resp, &e) < 0) {
			husk_err_free(e);
			return 0;
		}
		if (resp->status)
			(void)ttrpc_code_name(resp->status->code);
		ttrpc__response__free_unpacked(resp, NULL);
	}
	/* Now and then refuse, to walk the callback-failure path, or
	 * pause, as the server does when its answers are not taken. */
	if (*frames % 11 == 0)
		return husk_error(err, HUSK_E_PROTOCOL, "refused");
	return *frames % 5 == 0 ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ttrpc_reader r;
	const uint8_t *sizes;
	size_t nsizes, i = 0;
	unsigned frames = 0;

	if (size < 1)
		return 0;
	nsizes = data[0] % 16;
	if (size < 1 + nsizes)
		return 0;
	sizes = data + 1;
	data += 1 + nsizes;
	size -= 1 + nsizes;

	ttrpc_reader_init(&r);
	while (size > 0) {
		struct husk_err *err = NULL;
		size_t n = nsizes ? sizes[i++ % nsizes] : size;

		if (n == 0)
			n = 1;
		if (n > size)
			n = size;
		size_t used;
		int rc = ttrpc_reader_feed_some(&r, data, n, on_frame,
						&frames, &used, &err);

		if (rc < 0) {
			husk_err_free(err);
			break;
		}
		if (used > n || (rc == 0 && used != n) ||
		    (rc > 0 && used == 0))
			abort();
		if (r.buf && r.h.len > TTRPC_MAX_MSG)
			abort();
		/* After a pause the rest is fed again. */
		data += used;
		size -= used;
	}
	ttrpc_reader_free(&r);
	return 0;
}
