/*
 * The OCI seccomp profile (linux.seccomp) turned into a libseccomp
 * filter.  Decoded and built in the agent before fork, so that every
 * error names its field before anything runs; the child only loads it,
 * as its last step before execve.  Implemented in oci_seccomp.c.
 */
#ifndef HUSK_AGENT_OCI_SECCOMP_H
#define HUSK_AGENT_OCI_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <seccomp.h>

#include "libhusk/err.h"

#define SC_MAX_ARGS 6
#define SC_MAX_ARCHES 32

/* The decoded profile (tests/unit/test_agent_seccomp.c reads it). */
struct sc_rule {
	uint32_t action;
	size_t nsys;
	int *nrs;                       /* resolved syscall numbers */
	char **names;                   /* the same, for errors */
	unsigned nargs;
	struct scmp_arg_cmp args[SC_MAX_ARGS];
	size_t index;                   /* in syscalls[], for errors */
};

struct oci_seccomp {
	uint32_t def_action;
	size_t narches;
	uint32_t arches[SC_MAX_ARCHES];
	bool log, tsync, spec_allow;
	size_t nrules;
	struct sc_rule *rules;
};

/* Decode linux.seccomp: defaultAction, defaultErrnoRet, architectures,
 * flags, syscalls[] {names, action, errnoRet, args[] {index, value,
 * valueTwo, op}}.  Unknown actions, ops or architectures fail naming
 * the field; unknown syscall names are skipped (as runc does). */
int oci_seccomp_decode(const msgpack_object *o, struct oci_seccomp **out,
		       struct husk_err **err);
void oci_seccomp_free(struct oci_seccomp *s);
/* Build the filter (not loaded).  Release with seccomp_release(). */
int oci_seccomp_build(const struct oci_seccomp *s, scmp_filter_ctx *out,
		      struct husk_err **err);

#endif
