/*
 * Container cgroups in the guest: cgroup v2 (what the guest mounts) and
 * cgroup v1 (what a host running the agent in host mode may have), behind
 * one interface.  Implemented in cgroup.c.
 */
#ifndef HUSK_AGENT_CGROUP_H
#define HUSK_AGENT_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "libhusk/err.h"

#define CG_UNSET INT64_MIN

/* OCI linux.resources, the parts husk honours.  Every member starts
 * CG_UNSET (or NULL) and only set members are written. */
struct cg_resources {
	int64_t memory_limit;           /* bytes; -1 unlimited */
	int64_t memory_reservation;     /* bytes */
	int64_t memory_swap;            /* bytes (memory+swap); -1 unlimited */
	int64_t cpu_shares;             /* v1 shares (v2: converted to weight) */
	int64_t cpu_quota;              /* microseconds per period; -1 none */
	int64_t cpu_period;             /* microseconds */
	int64_t pids_limit;             /* -1 unlimited */
	char *cpuset_cpus;              /* "0-1" */
	char *cpuset_mems;
};

void cg_resources_init(struct cg_resources *r);
/* Decode an OCI linux.resources map.  Members husk cannot honour but
 * that are present and non-empty (blockIO weights, hugepage limits,
 * rdma, network classes) fail with an error naming the field; "devices"
 * rules are accepted (the guest's /dev is built by the agent). */
int cg_resources_decode(const msgpack_object *o, struct cg_resources *r,
			struct husk_err **err);
void cg_resources_free(struct cg_resources *r);

/* Find the hierarchy: cgroup2 at /sys/fs/cgroup, or v1 controllers under
 * /sys/fs/cgroup/<controller>.  Called once at start-up (after the guest
 * mounts /sys/fs/cgroup). */
int cg_init(struct husk_err **err);
/* "v1" or "v2". */
const char *cg_version(void);

struct cg;

/* Create the cgroup `name` (a relative path such as
 * "husk/<sandbox>/<container>") and apply r (may be NULL). */
int cg_create(const char *name, const struct cg_resources *r,
	      struct cg **out, struct husk_err **err);
int cg_attach(struct cg *cg, pid_t pid, struct husk_err **err);
int cg_update(struct cg *cg, const struct cg_resources *r,
	      struct husk_err **err);
/* Freeze or thaw, waiting (bounded) until the state is reached. */
int cg_freeze(struct cg *cg, bool frozen, struct husk_err **err);
/* Pids in the cgroup (malloc'ed array). */
int cg_pids(struct cg *cg, pid_t **pids, size_t *n, struct husk_err **err);
/* Pack the stats map of docs/agent-protocol.md (stats_container). */
int cg_stats_pack(struct cg *cg, msgpack_packer *pk, struct husk_err **err);
/* Remove the (empty) cgroup and free cg. */
int cg_destroy(struct cg *cg, struct husk_err **err);

/* Pack an array of process records (list_processes) read from /proc. */
int procinfo_pack(msgpack_packer *pk, const pid_t *pids, size_t n);

#endif
