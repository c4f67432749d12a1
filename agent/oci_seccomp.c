/*
 * OCI linux.seccomp -> libseccomp filter.  Decoding checks everything
 * and resolves syscall names once; building makes a filter context that
 * the container's process loads last, just before execve.  What is
 * honoured and what is refused: docs/agent.md, "Seccomp profiles".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/oci_seccomp.h"

#define SC_MAX_RULES 4096
#define SC_MAX_NAMES 512
#define SC_MAX_FLAGS 16
#define SC_NAME_MAX 64
#define SC_ERRNO_MAX 4095       /* the kernel's MAX_ERRNO */

static const struct {
	const char *oci;
	uint32_t token;
} arch_map[] = {
	{ "SCMP_ARCH_X86", SCMP_ARCH_X86 },
	{ "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
	{ "SCMP_ARCH_X32", SCMP_ARCH_X32 },
	{ "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
	{ "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },
	{ "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
	{ "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },
	{ "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
	{ "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },
	{ "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
	{ "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 },
	{ "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
	{ "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },
	{ "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
	{ "SCMP_ARCH_S390", SCMP_ARCH_S390 },
	{ "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
#ifdef SCMP_ARCH_PARISC
	{ "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },
	{ "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
#endif
#ifdef SCMP_ARCH_RISCV64
	{ "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
#endif
#ifdef SCMP_ARCH_LOONGARCH64
	{ "SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64 },
#endif
};

static const struct {
	const char *oci;
	enum scmp_compare op;
} op_map[] = {
	{ "SCMP_CMP_NE", SCMP_CMP_NE },
	{ "SCMP_CMP_LT", SCMP_CMP_LT },
	{ "SCMP_CMP_LE", SCMP_CMP_LE },
	{ "SCMP_CMP_EQ", SCMP_CMP_EQ },
	{ "SCMP_CMP_GE", SCMP_CMP_GE },
	{ "SCMP_CMP_GT", SCMP_CMP_GT },
	{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* A key for an error message: printable ASCII, bounded. */
static void sc_key_text(const msgpack_object *k, char *buf, size_t size)
{
	size_t n;

	if (k->type != MSGPACK_OBJECT_STR) {
		snprintf(buf, size, "<non-string key>");
		return;
	}
	n = k->via.str.size < size - 1 ? k->via.str.size : size - 1;
	for (size_t i = 0; i < n; i++) {
		char c = k->via.str.ptr[i];

		buf[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	buf[n] = '\0';
}

static int sc_refuse(const char *what, struct husk_err **err)
{
	return husk_error(err, HUSK_E_INVALID,
			  "%s: not supported by husk-agent", what);
}

/* An action name and its errno (errno_obj may be NULL). */
static int decode_action(const msgpack_object *o, const char *what,
			 const msgpack_object *errno_obj, const char *ewhat,
			 uint32_t def_errno, uint32_t *out,
			 struct husk_err **err)
{
	uint64_t e = def_errno;
	bool has_errno = errno_obj && errno_obj->type != MSGPACK_OBJECT_NIL;
	char name[64];

	if (o->type != MSGPACK_OBJECT_STR)
		return ipc_obj_str(o, what, 0, NULL, err);
	if (has_errno &&
	    ipc_obj_uint(errno_obj, ewhat, SC_ERRNO_MAX, &e, err) < 0)
		return -1;
	if (ipc_str_is(o, "SCMP_ACT_ERRNO")) {
		*out = SCMP_ACT_ERRNO((uint32_t)e);
		return 0;
	}
	if (ipc_str_is(o, "SCMP_ACT_TRACE")) {
		*out = SCMP_ACT_TRACE((uint32_t)e);
		return 0;
	}
	if (has_errno)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno",
				  ewhat);
	if (ipc_str_is(o, "SCMP_ACT_KILL") ||
	    ipc_str_is(o, "SCMP_ACT_KILL_THREAD"))
		*out = SCMP_ACT_KILL_THREAD;
	else if (ipc_str_is(o, "SCMP_ACT_KILL_PROCESS"))
		*out = SCMP_ACT_KILL_PROCESS;
	else if (ipc_str_is(o, "SCMP_ACT_TRAP"))
		*out = SCMP_ACT_TRAP;
	else if (ipc_str_is(o, "SCMP_ACT_ALLOW"))
		*out = SCMP_ACT_ALLOW;
	else if (ipc_str_is(o, "SCMP_ACT_LOG"))
		*out = SCMP_ACT_LOG;
	else if (ipc_str_is(o, "SCMP_ACT_NOTIFY"))
		return husk_error(err, HUSK_E_INVALID,
				  "%s: SCMP_ACT_NOTIFY is not supported by husk-agent",
				  what);
	else {
		sc_key_text(o, name, sizeof(name));
		return husk_error(err, HUSK_E_INVALID,
				  "%s: unknown action \"%s\"", what, name);
	}
	return 0;
}

static int decode_arches(const msgpack_object *o, struct oci_seccomp *s,
			 struct husk_err **err)
{
	char what[96], name[64];
	int n = ipc_obj_array(o, "linux.seccomp.architectures", SC_MAX_ARCHES,
			      err);

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const msgpack_object *a = &o->via.array.ptr[i];
		bool found = false;

		snprintf(what, sizeof(what), "linux.seccomp.architectures[%d]",
			 i);
		if (a->type != MSGPACK_OBJECT_STR)
			return ipc_obj_str(a, what, 0, NULL, err);
		for (size_t j = 0; j < HUSK_ARRAY_SIZE(arch_map) && !found; j++)
			if (ipc_str_is(a, arch_map[j].oci)) {
				s->arches[s->narches++] = arch_map[j].token;
				found = true;
			}
		if (!found) {
			sc_key_text(a, name, sizeof(name));
			return husk_error(err, HUSK_E_INVALID,
					  "%s: unknown architecture \"%s\"",
					  what, name);
		}
	}
	return 0;
}

static int decode_flags(const msgpack_object *o, struct oci_seccomp *s,
			struct husk_err **err)
{
	char what[96], name[64];
	int n = ipc_obj_array(o, "linux.seccomp.flags", SC_MAX_FLAGS, err);

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const msgpack_object *f = &o->via.array.ptr[i];

		snprintf(what, sizeof(what), "linux.seccomp.flags[%d]", i);
		if (f->type != MSGPACK_OBJECT_STR)
			return ipc_obj_str(f, what, 0, NULL, err);
		if (ipc_str_is(f, "SECCOMP_FILTER_FLAG_LOG"))
			s->log = true;
		else if (ipc_str_is(f, "SECCOMP_FILTER_FLAG_TSYNC"))
			s->tsync = true;
		else if (ipc_str_is(f, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"))
			s->spec_allow = true;
		else {
			/* NEW_LISTENER, TSYNC_ESRCH, WAIT_KILLABLE_RECV: the
			 * notify API, which husk does not offer. */
			sc_key_text(f, name, sizeof(name));
			return husk_error(err, HUSK_E_INVALID,
					  "%s: flag \"%s\" is not supported by husk-agent",
					  what, name);
		}
	}
	return 0;
}

static int decode_arg(const msgpack_object *o, const char *what,
		      struct scmp_arg_cmp *a, struct husk_err **err)
{
	const msgpack_object *index = NULL, *value = NULL, *two = NULL,
			     *op = NULL;
	char w[256], key[64], name[64];
	uint64_t idx, v1, v2 = 0;
	bool found = false;

	if (ipc_obj_map(o, what, 8, err) < 0)
		return -1;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object **slot =
			ipc_str_is(k, "index") ? &index :
			ipc_str_is(k, "value") ? &value :
			ipc_str_is(k, "valueTwo") ? &two :
			ipc_str_is(k, "op") ? &op : NULL;

		sc_key_text(k, key, sizeof(key));
		snprintf(w, sizeof(w), "%s.%s", what, key);
		if (!slot)
			return sc_refuse(w, err);
		if (*slot)
			return husk_error(err, HUSK_E_INVALID, "%s: given twice",
					  w);
		*slot = &o->via.map.ptr[i].val;
	}
	snprintf(w, sizeof(w), "%s.index", what);
	if (ipc_obj_uint(index, w, SC_MAX_ARGS - 1, &idx, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.value", what);
	if (ipc_obj_uint(value, w, UINT64_MAX, &v1, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.valueTwo", what);
	if (two && two->type != MSGPACK_OBJECT_NIL &&
	    ipc_obj_uint(two, w, UINT64_MAX, &v2, err) < 0)
		return -1;
	snprintf(w, sizeof(w), "%s.op", what);
	if (!op || op->type != MSGPACK_OBJECT_STR)
		return ipc_obj_str(op, w, 0, NULL, err);
	for (size_t j = 0; j < HUSK_ARRAY_SIZE(op_map) && !found; j++)
		if (ipc_str_is(op, op_map[j].oci)) {
			a->op = op_map[j].op;
			found = true;
		}
	if (!found) {
		sc_key_text(op, name, sizeof(name));
		return husk_error(err, HUSK_E_INVALID,
				  "%s: unknown operator \"%s\"", w, name);
	}
	/* MASKED_EQ: (arg & value) == valueTwo; libseccomp wants the mask
	 * first, as OCI gives it. */
	a->arg = (unsigned)idx;
	a->datum_a = v1;
	a->datum_b = v2;
	return 0;
}

static void rule_free(struct sc_rule *r)
{
	for (size_t i = 0; i < r->nsys; i++)
		free(r->names[i]);
	free(r->names);
	free(r->nrs);
}

static int decode_rule(const msgpack_object *o, size_t index,
		       uint32_t def_errno, struct sc_rule *r,
		       struct husk_err **err)
{
	const msgpack_object *names = NULL, *action = NULL, *eret = NULL,
			     *args = NULL;
	char what[96], w[160], key[64];
	int n;

	snprintf(what, sizeof(what), "linux.seccomp.syscalls[%zu]", index);
	r->index = index;
	if (ipc_obj_map(o, what, 16, err) < 0)
		return -1;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;
		const msgpack_object **slot =
			ipc_str_is(k, "names") ? &names :
			ipc_str_is(k, "action") ? &action :
			ipc_str_is(k, "errnoRet") ? &eret :
			ipc_str_is(k, "args") ? &args : NULL;

		sc_key_text(k, key, sizeof(key));
		snprintf(w, sizeof(w), "%s.%s", what, key);
		if (ipc_str_is(k, "comment"))
			continue;
		if (!slot)
			return sc_refuse(w, err);
		if (*slot)
			return husk_error(err, HUSK_E_INVALID, "%s: given twice",
					  w);
		*slot = v;
	}
	snprintf(w, sizeof(w), "%s.action", what);
	{
		char ew[160];

		snprintf(ew, sizeof(ew), "%s.errnoRet", what);
		if (!action)
			return husk_error(err, HUSK_E_INVALID, "%s: missing", w);
		if (decode_action(action, w, eret, ew, def_errno, &r->action,
				  err) < 0)
			return -1;
	}
	snprintf(w, sizeof(w), "%s.names", what);
	n = ipc_obj_array(names, w, SC_MAX_NAMES, err);
	if (n < 0)
		return -1;
	if (n == 0)
		return husk_error(err, HUSK_E_INVALID, "%s: empty", w);
	r->nrs = husk_xcalloc((size_t)n, sizeof(*r->nrs));
	r->names = husk_xcalloc((size_t)n, sizeof(*r->names));
	for (int i = 0; i < n; i++) {
		char nw[192], *name = NULL;
		int nr;

		snprintf(nw, sizeof(nw), "%s[%d]", w, i);
		if (ipc_obj_str(&names->via.array.ptr[i], nw, SC_NAME_MAX, &name,
				err) < 0)
			return -1;
		nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			/* A profile written for newer kernels names syscalls
			 * this libseccomp does not know; runc skips them. */
			log_debug("oci_seccomp: %s: unknown syscall \"%s\" skipped",
				  nw, name);
			free(name);
			continue;
		}
		r->nrs[r->nsys] = nr;
		r->names[r->nsys++] = name;
	}
	if (args && args->type != MSGPACK_OBJECT_NIL) {
		snprintf(w, sizeof(w), "%s.args", what);
		n = ipc_obj_array(args, w, SC_MAX_ARGS, err);
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++) {
			char aw[192];

			snprintf(aw, sizeof(aw), "%s[%d]", w, i);
			if (decode_arg(&args->via.array.ptr[i], aw,
				       &r->args[i], err) < 0)
				return -1;
		}
		r->nargs = (unsigned)n;
	}
	return 0;
}

void oci_seccomp_free(struct oci_seccomp *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nrules; i++)
		rule_free(&s->rules[i]);
	free(s->rules);
	free(s);
}

int oci_seccomp_decode(const msgpack_object *o, struct oci_seccomp **out,
		       struct husk_err **err)
{
	const msgpack_object *def = NULL, *deferr = NULL, *arches = NULL,
			     *flags = NULL, *syscalls = NULL;
	struct oci_seccomp *s = NULL;
	uint64_t def_errno = EPERM;
	char w[96], key[64];
	int n;

	if (ipc_obj_map(o, "linux.seccomp", 16, err) < 0)
		return -1;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;
		const msgpack_object **slot =
			ipc_str_is(k, "defaultAction") ? &def :
			ipc_str_is(k, "defaultErrnoRet") ? &deferr :
			ipc_str_is(k, "architectures") ? &arches :
			ipc_str_is(k, "flags") ? &flags :
			ipc_str_is(k, "syscalls") ? &syscalls : NULL;

		sc_key_text(k, key, sizeof(key));
		snprintf(w, sizeof(w), "linux.seccomp.%s", key);
		if (!slot) {
			/* listenerPath and listenerMetadata belong to the
			 * notify API; empty ones say nothing. */
			if ((ipc_str_is(k, "listenerPath") ||
			     ipc_str_is(k, "listenerMetadata")) &&
			    (v->type == MSGPACK_OBJECT_NIL ||
			     (v->type == MSGPACK_OBJECT_STR && !v->via.str.size)))
				continue;
			return sc_refuse(w, err);
		}
		if (*slot)
			return husk_error(err, HUSK_E_INVALID, "%s: given twice",
					  w);
		*slot = v->type == MSGPACK_OBJECT_NIL ? NULL : v;
	}
	if (deferr && ipc_obj_uint(deferr, "linux.seccomp.defaultErrnoRet",
				   SC_ERRNO_MAX, &def_errno, err) < 0)
		return -1;
	s = husk_xcalloc(1, sizeof(*s));
	if (!def) {
		husk_error(err, HUSK_E_INVALID,
			   "linux.seccomp.defaultAction: missing");
		goto fail;
	}
	if (decode_action(def, "linux.seccomp.defaultAction", NULL, NULL,
			  (uint32_t)def_errno, &s->def_action, err) < 0)
		goto fail;
	if (arches && decode_arches(arches, s, err) < 0)
		goto fail;
	if (flags && decode_flags(flags, s, err) < 0)
		goto fail;
	if (syscalls) {
		n = ipc_obj_array(syscalls, "linux.seccomp.syscalls",
				  SC_MAX_RULES, err);
		if (n < 0)
			goto fail;
		s->rules = husk_xcalloc((size_t)n + 1, sizeof(*s->rules));
		for (int i = 0; i < n; i++) {
			/* Each rule's errno defaults to EPERM, not to
			 * defaultErrnoRet (runtime-spec). */
			int rc = decode_rule(&syscalls->via.array.ptr[i],
					     (size_t)i, EPERM,
					     &s->rules[s->nrules], err);

			s->nrules++;
			if (rc < 0)
				goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	oci_seccomp_free(s);
	return -1;
}

static int add_rule(scmp_filter_ctx ctx, const struct sc_rule *r,
		    size_t i, struct husk_err **err)
{
	bool same_index = false;
	int rc;

	for (unsigned a = 0; a < r->nargs; a++)
		for (unsigned b = a + 1; b < r->nargs; b++)
			if (r->args[a].arg == r->args[b].arg)
				same_index = true;
	if (!same_index) {
		rc = seccomp_rule_add_array(ctx, r->action, r->nrs[i], r->nargs,
					    r->nargs ? r->args : NULL);
	} else {
		/* libseccomp ANDs conditions and refuses two on one
		 * argument; runc makes each its own rule (OR). */
		rc = 0;
		for (unsigned a = 0; a < r->nargs && rc == 0; a++)
			rc = seccomp_rule_add_array(ctx, r->action, r->nrs[i], 1,
						    &r->args[a]);
	}
	if (rc == -EEXIST)
		return husk_error(err, HUSK_E_INVALID,
				  "linux.seccomp.syscalls[%zu]: the rule for \"%s\" conflicts with an earlier one",
				  r->index, r->names[i]);
	if (rc < 0)
		return husk_error_sys(err, -rc,
				      "linux.seccomp.syscalls[%zu]: add rule for \"%s\"",
				      r->index, r->names[i]);
	return 0;
}

int oci_seccomp_build(const struct oci_seccomp *s, scmp_filter_ctx *out,
		      struct husk_err **err)
{
	scmp_filter_ctx ctx;
	uint32_t native = seccomp_arch_native();
	int rc;

	ctx = seccomp_init(s->def_action);
	if (!ctx)
		return husk_error(err, HUSK_E_INVALID,
				  "linux.seccomp.defaultAction: refused by libseccomp");
	/* no_new_privs is the spec's call (process.noNewPrivileges), made
	 * by the agent core; libseccomp would set it behind our back. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc == 0 && s->log)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
	if (rc == 0 && s->tsync)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0 && s->spec_allow)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1);
	if (rc < 0) {
		husk_error_sys(err, -rc, "linux.seccomp.flags");
		goto fail;
	}
	for (size_t i = 0; i < s->narches; i++) {
		if (s->arches[i] == native)
			continue;
		rc = seccomp_arch_add(ctx, s->arches[i]);
		if (rc < 0 && rc != -EEXIST) {
			husk_error_sys(err, -rc, "linux.seccomp.architectures[%zu]",
				       i);
			goto fail;
		}
	}
	for (size_t i = 0; i < s->nrules; i++) {
		const struct sc_rule *r = &s->rules[i];

		/* libseccomp refuses a rule that repeats the default. */
		if (r->action == s->def_action)
			continue;
		for (size_t j = 0; j < r->nsys; j++)
			if (add_rule(ctx, r, j, err) < 0)
				goto fail;
	}
	*out = ctx;
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}
