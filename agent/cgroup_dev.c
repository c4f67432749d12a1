/*
 * linux.resources.devices in the guest's cgroup v2: a
 * BPF_PROG_TYPE_CGROUP_DEVICE program built from the rules (plus
 * linux.devices and runc's always-allowed devices, see
 * cg_resources_add_devices) and attached to the container's cgroup,
 * which is how cgroup v2 says which device nodes a cgroup may open or
 * make.  The program looks at the rules last to first and the first
 * that matches decides (a later rule overrides an earlier one, as
 * writing them to v1's devices.allow/deny in order does); a device no
 * rule matches is allowed, as in a cgroup with no rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/cgroup_int.h"

#define ALL_ACCESS (CG_DEV_MKNOD | CG_DEV_READ | CG_DEV_WRITE)

/* linux.resources.devices: [{allow, type, major, minor, access}]. */
int cg_devrules_decode(const msgpack_object *a, struct cg_resources *r,
		       struct husk_err **err)
{
	const char *what = "linux.resources.devices";
	char w[128];
	int n = ipc_obj_array(a, what, 4096, err);

	if (n < 0)
		return -1;
	free(r->dev_rules);
	r->ndevice_rules = 0;
	r->dev_rules = husk_xcalloc((size_t)n + 16, sizeof(*r->dev_rules));
	for (int i = 0; i < n; i++) {
		const msgpack_object *d = &a->via.array.ptr[i];
		struct cg_devrule *dr = &r->dev_rules[i];
		cleanup_free char *type = NULL, *access = NULL;
		const msgpack_object *v;

		snprintf(w, sizeof(w), "%s[%d]", what, i);
		if (ipc_obj_map(d, w, 16, err) < 0)
			return -1;
		snprintf(w, sizeof(w), "%s[%d].allow", what, i);
		if (ipc_obj_bool(ipc_map_get(d, "allow"), w, &dr->allow,
				 err) < 0)
			return -1;
		v = ipc_map_get(d, "type");
		snprintf(w, sizeof(w), "%s[%d].type", what, i);
		if (v && v->type != MSGPACK_OBJECT_NIL &&
		    (ipc_obj_str(v, w, 4, &type, err) < 0))
			return -1;
		if (type && strcmp(type, "a") && strcmp(type, "b") &&
		    strcmp(type, "c"))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: expected a, b or c", w);
		dr->type = type ? type[0] : 'a';
		v = ipc_map_get(d, "access");
		snprintf(w, sizeof(w), "%s[%d].access", what, i);
		if (v && v->type != MSGPACK_OBJECT_NIL &&
		    ipc_obj_str(v, w, 8, &access, err) < 0)
			return -1;
		if (access && access[strspn(access, "rwm")])
			return husk_error(err, HUSK_E_INVALID,
					  "%s: expected letters of \"rwm\"", w);
		/* Absent: all of them, as runc reads it. */
		dr->access = access ? 0 : CG_DEV_MKNOD | CG_DEV_READ |
					  CG_DEV_WRITE;
		for (const char *c = access; c && *c; c++)
			dr->access |= *c == 'm' ? CG_DEV_MKNOD :
				      *c == 'r' ? CG_DEV_READ : CG_DEV_WRITE;
		for (int f = 0; f < 2; f++) {
			const char *name = f ? "minor" : "major";
			int64_t *x = f ? &dr->minor : &dr->major;

			*x = -1;
			v = ipc_map_get(d, name);
			if (!v || v->type == MSGPACK_OBJECT_NIL)
				continue;
			snprintf(w, sizeof(w), "%s[%d].%s", what, i, name);
			if (ipc_obj_int(v, w, -1, INT32_MAX, x, err) < 0)
				return -1;
		}
		r->ndevice_rules++;
	}
	return 0;
}

void cg_resources_add_devices(struct cg_resources *r, const char *types,
			      const int64_t *majors, const int64_t *minors,
			      size_t n)
{
	static const struct cg_devrule always[] = {
		{ true, 'c', -1, -1, CG_DEV_MKNOD },
		{ true, 'b', -1, -1, CG_DEV_MKNOD },
		{ true, 'c', 1, 3, 7 }, { true, 'c', 1, 8, 7 },
		{ true, 'c', 1, 7, 7 }, { true, 'c', 5, 0, 7 },
		{ true, 'c', 1, 5, 7 }, { true, 'c', 1, 9, 7 },
		{ true, 'c', 136, -1, 7 }, { true, 'c', 5, 2, 7 },
		{ true, 'c', 10, 200, 7 },
	};
	struct cg_devrule *v;
	size_t k;

	if (!r->ndevice_rules)
		return;
	v = husk_xcalloc(r->ndevice_rules + n + HUSK_ARRAY_SIZE(always),
			 sizeof(*v));
	memcpy(v, r->dev_rules, r->ndevice_rules * sizeof(*v));
	k = r->ndevice_rules;
	for (size_t i = 0; i < n; i++) {
		if (types[i] == 'p')
			continue;
		v[k++] = (struct cg_devrule){ true, types[i] == 'b' ? 'b' :
					      'c', majors[i], minors[i], 7 };
	}
	memcpy(v + k, always, sizeof(always));
	k += HUSK_ARRAY_SIZE(always);
	free(r->dev_rules);
	r->dev_rules = v;
	r->ndevice_rules = k;
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src,
			    int16_t off, int32_t imm)
{
	struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src,
			      .off = off, .imm = imm };

	return i;
}

/* r0..r6 as the program uses them: r1 the context (struct
 * bpf_cgroup_dev_ctx), r2 the device type, r3 the access asked for,
 * r4 major, r5 minor, r6 scratch. */
#define LDX_W(dst, off) insn(BPF_LDX | BPF_MEM | BPF_W, dst, 1, off, 0)
#define MOV_X(dst, src) insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV_K(dst, k)   insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, k)
#define AND_K(dst, k)   insn(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, k)
#define RSH_K(dst, k)   insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, k)
#define JNE_K(dst, k)   insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, k)
#define JEQ_K(dst, k)   insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0, k)
#define EXIT()          insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

struct cg_dev_prog *cg_dev_program(const struct cg_devrule *rules, size_t n)
{
	/* 6 to start, at most 9 per rule, 2 to end. */
	struct cg_dev_prog *p = husk_xcalloc(1, sizeof(*p));
	struct bpf_insn *v = husk_xcalloc(8 + 9 * n, sizeof(*v));
	size_t k = 0;

	v[k++] = LDX_W(2, 0);
	v[k++] = MOV_X(3, 2);
	v[k++] = AND_K(2, 0xffff);
	v[k++] = RSH_K(3, 16);
	v[k++] = LDX_W(4, 4);
	v[k++] = LDX_W(5, 8);
	for (size_t i = n; i-- > 0;) {
		const struct cg_devrule *r = &rules[i];
		size_t jumps[4], nj = 0;

		if (r->type != 'a') {
			jumps[nj++] = k;
			v[k++] = JNE_K(2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK :
				       BPF_DEVCG_DEV_CHAR);
		}
		/* An allow rule covers a request within its access; a
		 * deny rule, one that asks for any of its access. */
		if ((r->access & ALL_ACCESS) != ALL_ACCESS) {
			v[k++] = MOV_X(6, 3);
			if (r->allow) {
				v[k++] = AND_K(6, ~r->access & ALL_ACCESS);
				jumps[nj++] = k;
				v[k++] = JNE_K(6, 0);
			} else {
				v[k++] = AND_K(6, r->access & ALL_ACCESS);
				jumps[nj++] = k;
				v[k++] = JEQ_K(6, 0);
			}
		}
		if (r->major >= 0) {
			jumps[nj++] = k;
			v[k++] = JNE_K(4, (int32_t)r->major);
		}
		if (r->minor >= 0) {
			jumps[nj++] = k;
			v[k++] = JNE_K(5, (int32_t)r->minor);
		}
		v[k++] = MOV_K(0, r->allow ? 1 : 0);
		v[k++] = EXIT();
		/* Each "no match" jumps past this rule. */
		for (size_t j = 0; j < nj; j++)
			v[jumps[j]].off = (int16_t)(k - jumps[j] - 1);
		/* A rule that matches everything (docker's first, "deny
		 * all") ends it: the verifier refuses code it cannot
		 * reach. */
		if (!nj)
			goto done;
	}
	v[k++] = MOV_K(0, 1);
	v[k++] = EXIT();
done:
	p->insns = v;
	p->n = k;
	return p;
}

void cg_dev_program_free(struct cg_dev_prog *p)
{
	if (!p)
		return;
	free(p->insns);
	free(p);
}

static long bpf(int cmd, union bpf_attr *a)
{
	return syscall(SYS_bpf, cmd, a, sizeof(*a));
}

int cg_dev_apply(struct cg *cg, const struct cg_devrule *rules, size_t n,
		 struct husk_err **err)
{
	const char *what = "linux.resources.devices";
	struct cg_dev_prog *p;
	union bpf_attr a;
	char log[4096] = "";
	int prog, dir;

	if (!cg->v2) {
		log_info("cgroup %s: %s: not applied on cgroup v1 (host mode)",
			 cg->name, what);
		return 0;
	}
	p = cg_dev_program(rules, n);
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)p->insns;
	a.insn_cnt = (uint32_t)p->n;
	a.license = (uint64_t)(uintptr_t)"GPL";
	/* Without the verifier's log: writing it took a third to two
	 * thirds of a load in the guest under TCG (30-69 ms with it,
	 * 17-26 without).  Only a refused program is loaded again with
	 * it, for the message (as libbpf does). */
	prog = (int)bpf(BPF_PROG_LOAD, &a);
	if (prog < 0 && errno != ENOMEM && errno != EPERM) {
		int e = errno;

		a.log_buf = (uint64_t)(uintptr_t)log;
		a.log_size = sizeof(log);
		a.log_level = 1;
		prog = (int)bpf(BPF_PROG_LOAD, &a);
		if (prog < 0 && errno == ENOSPC) {
			/* a log too long to keep: the first answer */
			log[0] = '\0';
			errno = e;
		}
	}
	cg_dev_program_free(p);
	if (prog < 0)
		return husk_error_sys(err, errno, "%s: load the device program "
				      "(%zu rules)%s%.200s", what, n,
				      log[0] ? ": " : "", log);
	dir = cg_open_dir(cg);
	if (dir < 0) {
		close(prog);
		return husk_error_sys(err, errno, "%s: open `%s`", what,
				      cg->v2);
	}
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)dir;
	a.attach_bpf_fd = (uint32_t)prog;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	if (bpf(BPF_PROG_ATTACH, &a) < 0) {
		husk_error_sys(err, errno, "%s: attach the device program to "
			       "`%s`", what, cg->v2);
		close(prog);
		close(dir);
		return -1;
	}
	/* The new program first, then the old one goes: no moment
	 * without one. */
	if (cg->dev_prog >= 0) {
		memset(&a, 0, sizeof(a));
		a.target_fd = (uint32_t)dir;
		a.attach_bpf_fd = (uint32_t)cg->dev_prog;
		a.attach_type = BPF_CGROUP_DEVICE;
		if (bpf(BPF_PROG_DETACH, &a) < 0)
			log_warn("%s: detach the old device program of %s",
				 __func__, cg->name);
		close(cg->dev_prog);
	}
	close(dir);
	cg->dev_prog = prog;
	return 0;
}
