/*
 * libFuzzer target: the agent's decoders of host-sent OCI objects,
 * oci_seccomp_decode (and building what it accepts) and
 * cg_resources_decode, fed one MessagePack object that passed
 * ipc_msgpack_check, as the agent would get it inside a spec.
 *
 * agent/program.mk adds agent/cgroup.c and agent/oci_seccomp.c to
 * FUZZ_EXTRA_SRC, so the fuzz rule links them with the libraries.
 */
#include <stddef.h>
#include <stdint.h>

#include "libipc/ipc.h"
#include "agent/cgroup.h"
#include "agent/oci_seccomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct husk_err *err = NULL;
	struct oci_seccomp *s = NULL;
	struct cg_resources r;
	msgpack_unpacked un;
	scmp_filter_ctx ctx = NULL;

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
	if (oci_seccomp_decode(&un.data, &s, &err) == 0) {
		if (oci_seccomp_build(s, &ctx, &err) == 0)
			seccomp_release(ctx);
		oci_seccomp_free(s);
	}
	husk_err_clear(&err);
	cg_resources_init(&r);
	if (cg_resources_decode(&un.data, &r, &err) == 0)
		cg_resources_free(&r);
	husk_err_clear(&err);
	msgpack_unpacked_destroy(&un);
	return 0;
}
