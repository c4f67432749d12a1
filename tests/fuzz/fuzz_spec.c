/*
 * libFuzzer target: the agent's OCI spec decoder (agent/spec.c), fed
 * one MessagePack object that passed ipc_msgpack_check, as
 * create_container's `spec` (and, separately, exec_process's `process`).
 * agent/program.mk adds agent/spec.c (and the cgroup and seccomp
 * decoders it calls) to FUZZ_EXTRA_SRC.
 */
#include <stddef.h>
#include <stdint.h>

#include "libipc/ipc.h"
#include "agent/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct husk_err *err = NULL;
	struct spec_process p;
	struct spec *s = NULL;
	msgpack_unpacked un;

	if (ipc_msgpack_check((const char *)data, size, &err) < 0) {
		husk_err_free(err);
		return 0;
	}
	msgpack_unpacked_init(&un);
	if (msgpack_unpack_next(&un, (const char *)data, size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&un);
		return 0;
	}
	if (spec_decode(&un.data, &s, &err) == 0) {
		/* What the agent reads back from a decoded spec. */
		(void)spec_getenv(s->proc.env, "PATH");
		spec_free(s);
	}
	husk_err_clear(&err);
	if (spec_process_decode(&un.data, "process", &p, &err) == 0)
		spec_process_free(&p);
	husk_err_clear(&err);
	msgpack_unpacked_destroy(&un);
	return 0;
}
