/*
 * What agent/cgroup.c (the hierarchy, files, freezing, stats),
 * cgroup_res.c (decoding OCI linux.resources) and cgroup_limits.c
 * (writing them) share.  Not an interface: the rest of the agent uses
 * cgroup.h.
 */
#ifndef HUSK_AGENT_CGROUP_INT_H
#define HUSK_AGENT_CGROUP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "libhusk/err.h"
#include "agent/cgroup.h"

#define CG_MOUNT "/sys/fs/cgroup"
#define CG_NAME_MAX 1024
#define CG_CPUSET_MAX 1024
#define CG_FILE_MAX (4u << 20)

enum {
	C_MEMORY, C_CPU, C_CPUACCT, C_PIDS, C_FREEZER, C_CPUSET, C_BLKIO,
	C_HUGETLB, C_NET_CLS, C_NET_PRIO,
	CG_NCTRL
};

extern const char *const cg_v1_names[CG_NCTRL];

struct cg {
	char *name;
	char *v2;                       /* absolute directory (v2) */
	char *v1[CG_NCTRL];             /* absolute directory (v1); NULL
					 * when the controller is missing */
	int dev_prog;                   /* v2 device program, or -1 */
};

/* cgroup_dev.c: decode linux.resources.devices into r->dev_rules... */
int cg_devrules_decode(const msgpack_object *a, struct cg_resources *r,
		       struct husk_err **err);
/* ...and make them a cgroup v2 device program (struct bpf_insn, n of
 * them). */
struct cg_dev_prog {
	void *insns;
	size_t n;
};
struct cg_dev_prog *cg_dev_program(const struct cg_devrule *rules, size_t n);
void cg_dev_program_free(struct cg_dev_prog *p);
/* Load and attach it (replacing the one cg had); v1: logged. */
int cg_dev_apply(struct cg *cg, const struct cg_devrule *rules, size_t n,
		 struct husk_err **err);

/* Files of a cgroup directory. */
int cg_read_small(const char *dir, const char *file, char *buf, size_t size);
bool cg_file_exists(const char *dir, const char *file);
/* Write val to dir/file; `what` names the OCI field for the error. */
int cg_write(const char *dir, const char *file, const char *val,
	     const char *what, struct husk_err **err);
/* v < 0 writes `unlimited` (when not NULL). */
int cg_write_i64(const char *dir, const char *file, int64_t v,
		 const char *unlimited, const char *what,
		 struct husk_err **err);
/* The v1 controller's directory exists, or an error naming `what`. */
int cg_need_v1(const struct cg *cg, int ctrl, const char *what,
	       struct husk_err **err);
uint64_t cg_keyed_value(const char *text, const char *key);
uint64_t cg_read_u64(const char *dir, const char *file);
char *cg_read_text(const char *dir, const char *file);

/* cgroup.c's state and steps, reached by tests/unit/test_agent_cgroup.c. */
struct cg_hier {
	int version;                    /* 0 until cg_init, then 1 or 2 */
	char *v2_base;                  /* v2: the hierarchy's root */
	char *v1_base[CG_NCTRL];        /* v1: our own cgroup per controller */
};
extern struct cg_hier cgs;
/* Our own cgroup in the v1 hierarchy of ctrl, from /proc/self/cgroup
 * (text). */
char *self_path(const char *text, const char *ctrl);
/* cg_init with the hierarchy mounted at mnt. */
int cg_init_at(const char *mnt, struct husk_err **err);
int cg_name_check(const char *name, struct husk_err **err);
bool frozen_is(const struct cg *cg, bool frozen);
/* rmdir dir and its parents while empty, down to baselen bytes of it. */
int cg_rmdirs(const char *dir, size_t baselen, struct husk_err **err);

#endif
