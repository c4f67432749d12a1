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

/* A per-device blockIO entry: a weight (and leaf weight) or a rate;
 * 0 is "not given". */
struct cg_blkdev {
	int64_t major, minor;
	uint64_t value;                 /* weight, or the rate */
	uint64_t leaf;                  /* leafWeight (weightDevice only) */
};

enum { CG_RBPS, CG_WBPS, CG_RIOPS, CG_WIOPS, CG_NTHROTTLE };

/* hugepageLimits[] (page size, bytes) and network.priorities[]
 * (interface, priority). */
struct cg_named {
	char *name;
	uint64_t value;
};

struct cg_kv {
	char *key, *val;
};

/* A linux.resources.devices rule: type 'a', 'b' or 'c', -1 for a
 * wildcard number, access as CG_DEV_* bits. */
enum { CG_DEV_MKNOD = 1, CG_DEV_READ = 2, CG_DEV_WRITE = 4 };
struct cg_devrule {
	bool allow;
	char type;
	int64_t major, minor;
	unsigned access;
};

/* OCI linux.resources.  Every number starts CG_UNSET (pointers NULL,
 * counts 0) and only what was given is written; cgroup_limits.c
 * writes what the guest has a file for and logs the rest. */
struct cg_resources {
	int64_t memory_limit;           /* bytes; -1 unlimited */
	int64_t memory_reservation;     /* bytes */
	int64_t memory_swap;            /* bytes (memory+swap); -1 unlimited */
	int64_t memory_swappiness;      /* 0..100 */
	int64_t memory_oom_kill_disable; /* 1: disableOOMKiller true */
	bool memory_check_before_update;
	int64_t cpu_shares;             /* v1 shares (v2: converted to weight) */
	int64_t cpu_quota;              /* microseconds per period; -1 none */
	int64_t cpu_period;             /* microseconds */
	int64_t cpu_rt_runtime, cpu_rt_period; /* microseconds */
	int64_t cpu_burst;              /* microseconds */
	int64_t cpu_idle;               /* 0 or 1 */
	int64_t pids_limit;             /* -1 unlimited */
	char *cpuset_cpus;              /* "0-1" */
	char *cpuset_mems;
	int64_t blkio_weight, blkio_leaf_weight;        /* 10..1000 */
	struct cg_blkdev *weight_devs;
	size_t nweight_devs;
	struct cg_blkdev *throttle[CG_NTHROTTLE];
	size_t nthrottle[CG_NTHROTTLE];
	struct cg_named *hugepages;
	size_t nhugepages;
	int64_t net_classid;
	struct cg_named *net_prios;
	size_t nnet_prios;
	size_t nrdma;                   /* rdma entries (not applied) */
	struct cg_devrule *dev_rules;   /* devices[], then what
					 * cg_resources_add_devices adds */
	size_t ndevice_rules;
	struct cg_kv *unified;
	size_t nunified;
	char **notes;                   /* fields ignored, for the log */
};

void cg_resources_init(struct cg_resources *r);
/* Decode an OCI linux.resources map (cgroup_res.c): every field of
 * runtime-spec 1.0.2 (and the later burst, idle, checkBeforeUpdate) is
 * accepted when well-formed; types and bounds fail naming the field,
 * and so does a key the spec does not have. */
int cg_resources_decode(const msgpack_object *o, struct cg_resources *r,
			struct husk_err **err);
void cg_resources_free(struct cg_resources *r);
/* When r has device rules: append an allow rule for each of the spec's
 * linux.devices (type, major, minor), then runc's always-allowed
 * devices (mknod of any, null, zero, full, random, urandom, tty, ptmx,
 * pts, tun), as runc does. */
void cg_resources_add_devices(struct cg_resources *r, const char *types,
			      const int64_t *majors, const int64_t *minors,
			      size_t n);

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
/* v2: the cgroup's directory, open (O_CLOEXEC), for clone3's
 * CLONE_INTO_CGROUP and the device program's attach; -1 on v1. */
int cg_open_dir(const struct cg *cg);
/* Write r (cgroup_limits.c).  A setting with no file in this
 * hierarchy, or for a block device the guest does not have, is logged
 * once (naming the cgroup) and skipped. */
int cg_update(struct cg *cg, const struct cg_resources *r,
	      struct husk_err **err);
/* Freeze or thaw, waiting (bounded) until the state is reached. */
int cg_freeze(struct cg *cg, bool frozen, struct husk_err **err);
/* Pids in the cgroup (malloc'ed array). */
int cg_pids(struct cg *cg, pid_t **pids, size_t *n, struct husk_err **err);
/* Pack the stats map of docs/agent-protocol.md (stats_container). */
int cg_stats_pack(struct cg *cg, msgpack_packer *pk, struct husk_err **err);
/* cgroup_oom.c: OOM kills, as the kernel counts them.  The memory
 * controller's directory (NULL: none). */
const char *cg_memory_dir(const struct cg *cg);
/* The cgroup's OOM kill count (v2 memory.events, v1 memory.oom_control
 * `oom_kill`): 0, 1 when the file has no such line (a v1 kernel before
 * 4.13: count the notifications instead), -1 when unreadable. */
int cg_oom_kills(const struct cg *cg, uint64_t *n);
/* v2: the memory.events file to watch with inotify; -1 on v1. */
int cg_oom_events_path(const struct cg *cg, char *buf, size_t size);
/* v1: an eventfd (non-blocking, cloexec) that the kernel signals when
 * the cgroup runs out of memory (cgroup.event_control). */
int cg_oom_eventfd(const struct cg *cg, struct husk_err **err);
/* The value of `key N` in a flat keyed file's text; false if absent. */
bool cg_keyed_find(const char *text, const char *key, uint64_t *v);

/* Remove the (empty) cgroup and free cg (and its device program). */
int cg_destroy(struct cg *cg, struct husk_err **err);

/* Pack an array of process records (list_processes) read from /proc. */
int procinfo_pack(msgpack_packer *pk, const pid_t *pids, size_t n);

#endif
