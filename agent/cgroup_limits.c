/*
 * Writing OCI linux.resources (decoded by cgroup_res.c) to a cgroup:
 * the memory, cpu, cpuset and pids limits fail when their file is
 * missing (they are what engines rely on); the rest (block I/O weights
 * and throttles, hugetlb, net_cls/net_prio, realtime, burst, idle,
 * swappiness, the OOM killer) is written where the hierarchy has the
 * file and the device exists in the guest, and otherwise logged once
 * and skipped.  docs/agent.md, "OCI linux.resources", has the table.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/cgroup_int.h"

#define F_MEM_LIMIT "linux.resources.memory.limit"
#define F_MEM_RES   "linux.resources.memory.reservation"
#define F_MEM_SWAP  "linux.resources.memory.swap"
#define F_SHARES    "linux.resources.cpu.shares"
#define F_QUOTA     "linux.resources.cpu.quota"
#define F_PERIOD    "linux.resources.cpu.period"
#define F_CPUS      "linux.resources.cpu.cpus"
#define F_MEMS      "linux.resources.cpu.mems"
#define F_PIDS      "linux.resources.pids.limit"

/* OCI swap is memory+swap; v2's memory.swap.max is swap alone. */
static int v2_swap(const struct cg_resources *r, int64_t *out,
		   struct husk_err **err)
{
	if (r->memory_swap == -1) {
		*out = -1;
		return 0;
	}
	if (r->memory_limit == CG_UNSET || r->memory_limit == -1)
		return husk_error(err, HUSK_E_INVALID,
				  F_MEM_SWAP ": needs a memory.limit on cgroup v2");
	if (r->memory_swap < r->memory_limit)
		return husk_error(err, HUSK_E_INVALID,
				  F_MEM_SWAP ": %" PRId64 " is below memory.limit %" PRId64,
				  r->memory_swap, r->memory_limit);
	*out = r->memory_swap - r->memory_limit;
	return 0;
}

static int v2_update(const char *d, const struct cg_resources *r,
		     struct husk_err **err)
{
	char buf[64];

	if (r->memory_limit != CG_UNSET &&
	    cg_write_i64(d, "memory.max", r->memory_limit, "max",
			 F_MEM_LIMIT, err) < 0)
		return -1;
	if (r->memory_reservation != CG_UNSET &&
	    cg_write_i64(d, "memory.low", r->memory_reservation, "max",
			 F_MEM_RES, err) < 0)
		return -1;
	if (r->memory_swap != CG_UNSET) {
		int64_t swap = 0;

		if (v2_swap(r, &swap, err) < 0)
			return -1;
		/* Without swap accounting "unlimited" is what we have. */
		if (!(swap < 0 && !cg_file_exists(d, "memory.swap.max")) &&
		    cg_write_i64(d, "memory.swap.max", swap, "max",
				 F_MEM_SWAP, err) < 0)
			return -1;
	}
	if (r->cpu_shares != CG_UNSET) {
		uint64_t w = 1 + ((uint64_t)(r->cpu_shares - 2) * 9999) / 262142;

		snprintf(buf, sizeof(buf), "%" PRIu64, w);
		if (cg_write(d, "cpu.weight", buf, F_SHARES, err) < 0)
			return -1;
	}
	if (r->cpu_quota != CG_UNSET || r->cpu_period != CG_UNSET) {
		char quota[32] = "max";

		if (r->cpu_quota > 0)
			snprintf(quota, sizeof(quota), "%" PRId64, r->cpu_quota);
		if (r->cpu_quota == CG_UNSET) {
			char cur[64];

			/* Keep the quota, change the period. */
			if (cg_read_small(d, "cpu.max", cur, sizeof(cur)) > 0)
				snprintf(quota, sizeof(quota), "%.*s",
					 (int)strcspn(cur, " "), cur);
		}
		if (r->cpu_period != CG_UNSET)
			snprintf(buf, sizeof(buf), "%s %" PRId64, quota,
				 r->cpu_period);
		else
			snprintf(buf, sizeof(buf), "%s", quota);
		if (cg_write(d, "cpu.max", buf,
			     r->cpu_quota != CG_UNSET ? F_QUOTA : F_PERIOD,
			     err) < 0)
			return -1;
	}
	if (r->pids_limit != CG_UNSET &&
	    cg_write_i64(d, "pids.max", r->pids_limit, "max", F_PIDS,
			 err) < 0)
		return -1;
	if (r->cpuset_cpus &&
	    cg_write(d, "cpuset.cpus", r->cpuset_cpus, F_CPUS, err) < 0)
		return -1;
	if (r->cpuset_mems &&
	    cg_write(d, "cpuset.mems", r->cpuset_mems, F_MEMS, err) < 0)
		return -1;
	return 0;
}

static int v1_memory(const struct cg *cg, const struct cg_resources *r,
		     struct husk_err **err)
{
	const char *d = cg->v1[C_MEMORY];
	bool swap_first = false;
	int64_t swap = r->memory_swap;

	if (r->memory_limit == CG_UNSET && r->memory_reservation == CG_UNSET &&
	    swap == CG_UNSET)
		return 0;
	if (cg_need_v1(cg, C_MEMORY, r->memory_limit != CG_UNSET ? F_MEM_LIMIT :
		    swap != CG_UNSET ? F_MEM_SWAP : F_MEM_RES, err) < 0)
		return -1;
	if (swap != CG_UNSET && !cg_file_exists(d, "memory.memsw.limit_in_bytes")) {
		if (swap != -1)
			return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
					  F_MEM_SWAP ": the kernel has no swap accounting");
		swap = CG_UNSET;
	}
	if (swap != CG_UNSET) {
		if (r->memory_limit > 0 && swap > 0 && swap < r->memory_limit)
			return husk_error(err, HUSK_E_INVALID,
					  F_MEM_SWAP ": %" PRId64 " is below memory.limit %" PRId64,
					  swap, r->memory_limit);
		/* memory <= memory+swap at every step: raise memsw first,
		 * lower it last. */
		uint64_t cur = cg_read_u64(d, "memory.memsw.limit_in_bytes");
		swap_first = swap == -1 || (uint64_t)swap > cur;
	}
	if (swap_first && cg_write_i64(d, "memory.memsw.limit_in_bytes", swap,
				       "-1", F_MEM_SWAP, err) < 0)
		return -1;
	if (r->memory_limit != CG_UNSET &&
	    cg_write_i64(d, "memory.limit_in_bytes", r->memory_limit, "-1",
			 F_MEM_LIMIT, err) < 0)
		return -1;
	if (swap != CG_UNSET && !swap_first &&
	    cg_write_i64(d, "memory.memsw.limit_in_bytes", swap, "-1",
			 F_MEM_SWAP, err) < 0)
		return -1;
	if (r->memory_reservation != CG_UNSET &&
	    cg_write_i64(d, "memory.soft_limit_in_bytes",
			 r->memory_reservation, "-1", F_MEM_RES, err) < 0)
		return -1;
	return 0;
}

static int v1_update(const struct cg *cg, const struct cg_resources *r,
		     struct husk_err **err)
{
	if (v1_memory(cg, r, err) < 0)
		return -1;
	if (r->cpu_shares != CG_UNSET &&
	    (cg_need_v1(cg, C_CPU, F_SHARES, err) < 0 ||
	     cg_write_i64(cg->v1[C_CPU], "cpu.shares", r->cpu_shares, NULL,
			  F_SHARES, err) < 0))
		return -1;
	if (r->cpu_period != CG_UNSET &&
	    (cg_need_v1(cg, C_CPU, F_PERIOD, err) < 0 ||
	     cg_write_i64(cg->v1[C_CPU], "cpu.cfs_period_us", r->cpu_period,
			  NULL, F_PERIOD, err) < 0))
		return -1;
	if (r->cpu_quota != CG_UNSET &&
	    (cg_need_v1(cg, C_CPU, F_QUOTA, err) < 0 ||
	     cg_write_i64(cg->v1[C_CPU], "cpu.cfs_quota_us", r->cpu_quota,
			  "-1", F_QUOTA, err) < 0))
		return -1;
	if (r->pids_limit != CG_UNSET &&
	    (cg_need_v1(cg, C_PIDS, F_PIDS, err) < 0 ||
	     cg_write_i64(cg->v1[C_PIDS], "pids.max", r->pids_limit, "max",
			  F_PIDS, err) < 0))
		return -1;
	if (r->cpuset_cpus &&
	    (cg_need_v1(cg, C_CPUSET, F_CPUS, err) < 0 ||
	     cg_write(cg->v1[C_CPUSET], "cpuset.cpus", r->cpuset_cpus, F_CPUS,
		      err) < 0))
		return -1;
	if (r->cpuset_mems &&
	    (cg_need_v1(cg, C_CPUSET, F_MEMS, err) < 0 ||
	     cg_write(cg->v1[C_CPUSET], "cpuset.mems", r->cpuset_mems, F_MEMS,
		      err) < 0))
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* What the guest may not have: written where it can be, else logged   */

/* Write when dir has the file; otherwise one log line and success. */
static int opt_write(const struct cg *cg, const char *dir, const char *file,
		     const char *val, const char *what, struct husk_err **err)
{
	if (!dir || !cg_file_exists(dir, file)) {
		log_info("cgroup %s: %s: no `%s` in this %s hierarchy; "
			 "not applied", cg->name, what, file,
			 cg->v2 ? "cgroup v2" : "cgroup v1");
		return 0;
	}
	return cg_write(dir, file, val, what, err);
}

static int opt_write_i64(const struct cg *cg, const char *dir,
			 const char *file, int64_t v, const char *what,
			 struct husk_err **err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return opt_write(cg, dir, file, buf, what, err);
}

static void not_here(const struct cg *cg, const char *what, const char *why)
{
	log_info("cgroup %s: %s: %s; not applied", cg->name, what, why);
}

/* A block device the guest has: /sys/dev/block/MAJ:MIN. */
static bool blkdev_here(const struct cg_blkdev *d)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/dev/block/%" PRId64 ":%" PRId64,
		 d->major, d->minor);
	return access(path, F_OK) == 0;
}

/* blkio weight (10..1000) as v2's io.weight (1..10000), as runc maps it. */
static uint64_t io_weight(uint64_t w)
{
	return 1 + (w - 10) * 9999 / 990;
}

#define F_BLKIO "linux.resources.blockIO"

static const char *const thr_names[CG_NTHROTTLE] = {
	"throttleReadBpsDevice", "throttleWriteBpsDevice",
	"throttleReadIOPSDevice", "throttleWriteIOPSDevice",
};

static int blkio_update(const struct cg *cg, const struct cg_resources *r,
			struct husk_err **err)
{
	static const char *const v1_thr[CG_NTHROTTLE] = {
		"blkio.throttle.read_bps_device",
		"blkio.throttle.write_bps_device",
		"blkio.throttle.read_iops_device",
		"blkio.throttle.write_iops_device",
	};
	static const char *const v2_thr[CG_NTHROTTLE] = {
		"rbps", "wbps", "riops", "wiops",
	};
	const char *d = cg->v2 ? cg->v2 : cg->v1[C_BLKIO];
	/* BFQ takes blkio's own 1..1000 scale; iocost's io.weight its
	 * 1..10000 one. */
	bool bfq = d && cg_file_exists(d, cg->v2 ? "io.bfq.weight" :
				       "blkio.bfq.weight");
	const char *wfile = cg->v2 ? (bfq ? "io.bfq.weight" : "io.weight") :
			    (bfq ? "blkio.bfq.weight" : "blkio.weight");
	char what[160], val[96];

	if (r->blkio_weight != CG_UNSET) {
		uint64_t w = (uint64_t)r->blkio_weight;

		if (cg->v2 && !bfq)
			snprintf(val, sizeof(val), "default %" PRIu64,
				 io_weight(w));
		else
			snprintf(val, sizeof(val), "%" PRIu64, w);
		if (opt_write(cg, d, wfile, val, F_BLKIO ".weight", err) < 0)
			return -1;
	}
	if (r->blkio_leaf_weight != CG_UNSET) {
		if (cg->v2)
			not_here(cg, F_BLKIO ".leafWeight",
				 "cgroup v2 has no leaf weights");
		else if (opt_write_i64(cg, d, "blkio.leaf_weight",
				       r->blkio_leaf_weight,
				       F_BLKIO ".leafWeight", err) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->nweight_devs; i++) {
		const struct cg_blkdev *bd = &r->weight_devs[i];

		snprintf(what, sizeof(what), F_BLKIO ".weightDevice %" PRId64
			 ":%" PRId64, bd->major, bd->minor);
		if (!blkdev_here(bd)) {
			not_here(cg, what, "no such block device in the guest");
			continue;
		}
		if (bd->value) {
			uint64_t w = cg->v2 && !bfq ? io_weight(bd->value) :
				     bd->value;

			snprintf(val, sizeof(val), "%" PRId64 ":%" PRId64
				 " %" PRIu64, bd->major, bd->minor, w);
			if (opt_write(cg, d, cg->v2 ? wfile : bfq ?
				      "blkio.bfq.weight_device" :
				      "blkio.weight_device", val, what,
				      err) < 0)
				return -1;
		}
		if (bd->leaf) {
			snprintf(val, sizeof(val), "%" PRId64 ":%" PRId64
				 " %" PRIu64, bd->major, bd->minor, bd->leaf);
			if (cg->v2)
				not_here(cg, what, "cgroup v2 has no leaf weights");
			else if (opt_write(cg, d, "blkio.leaf_weight_device",
					   val, what, err) < 0)
				return -1;
		}
	}
	for (int t = 0; t < CG_NTHROTTLE; t++) {
		for (size_t i = 0; i < r->nthrottle[t]; i++) {
			const struct cg_blkdev *bd = &r->throttle[t][i];
			char rate[32];

			snprintf(what, sizeof(what), F_BLKIO ".%s %" PRId64
				 ":%" PRId64, thr_names[t], bd->major,
				 bd->minor);
			if (!blkdev_here(bd)) {
				not_here(cg, what,
					 "no such block device in the guest");
				continue;
			}
			/* 0 lifts the limit, as in v1. */
			if (bd->value)
				snprintf(rate, sizeof(rate), "%" PRIu64,
					 bd->value);
			else
				snprintf(rate, sizeof(rate), cg->v2 ? "max" :
					 "0");
			if (cg->v2)
				snprintf(val, sizeof(val), "%" PRId64 ":%"
					 PRId64 " %s=%s", bd->major, bd->minor,
					 v2_thr[t], rate);
			else
				snprintf(val, sizeof(val), "%" PRId64 ":%"
					 PRId64 " %s", bd->major, bd->minor,
					 rate);
			if (opt_write(cg, d, cg->v2 ? "io.max" : v1_thr[t],
				      val, what, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int extras_update(struct cg *cg, const struct cg_resources *r,
			 struct husk_err **err)
{
	const char *mem = cg->v2 ? cg->v2 : cg->v1[C_MEMORY];
	const char *cpu = cg->v2 ? cg->v2 : cg->v1[C_CPU];
	char file[64], what[160], val[96];

	for (char **n = r->notes; n && *n; n++)
		log_info("cgroup %s: %s", cg->name, *n);
	if (r->memory_swappiness != CG_UNSET) {
		if (cg->v2)
			not_here(cg, "linux.resources.memory.swappiness",
				 "cgroup v2 has no per-cgroup swappiness");
		else if (opt_write_i64(cg, mem, "memory.swappiness",
				       r->memory_swappiness,
				       "linux.resources.memory.swappiness",
				       err) < 0)
			return -1;
	}
	if (r->memory_oom_kill_disable == 1) {
		if (cg->v2)
			not_here(cg, "linux.resources.memory.disableOOMKiller",
				 "cgroup v2 cannot disable the OOM killer");
		else if (opt_write(cg, mem, "memory.oom_control", "1",
				   "linux.resources.memory.disableOOMKiller",
				   err) < 0)
			return -1;
	}
	/* The period first: the kernel checks runtime against it. */
	if (r->cpu_rt_period != CG_UNSET) {
		if (cg->v2)
			not_here(cg, "linux.resources.cpu.realtimePeriod",
				 "cgroup v2 has no realtime group scheduling");
		else if (opt_write_i64(cg, cpu, "cpu.rt_period_us",
				       r->cpu_rt_period,
				       "linux.resources.cpu.realtimePeriod",
				       err) < 0)
			return -1;
	}
	if (r->cpu_rt_runtime != CG_UNSET) {
		if (cg->v2)
			not_here(cg, "linux.resources.cpu.realtimeRuntime",
				 "cgroup v2 has no realtime group scheduling");
		else if (opt_write_i64(cg, cpu, "cpu.rt_runtime_us",
				       r->cpu_rt_runtime,
				       "linux.resources.cpu.realtimeRuntime",
				       err) < 0)
			return -1;
	}
	if (r->cpu_burst != CG_UNSET &&
	    opt_write_i64(cg, cpu, cg->v2 ? "cpu.max.burst" :
			  "cpu.cfs_burst_us", r->cpu_burst,
			  "linux.resources.cpu.burst", err) < 0)
		return -1;
	if (r->cpu_idle != CG_UNSET &&
	    opt_write_i64(cg, cpu, "cpu.idle", r->cpu_idle,
			  "linux.resources.cpu.idle", err) < 0)
		return -1;
	if (blkio_update(cg, r, err) < 0)
		return -1;
	for (size_t i = 0; i < r->nhugepages; i++) {
		snprintf(file, sizeof(file), "hugetlb.%s.%s",
			 r->hugepages[i].name,
			 cg->v2 ? "max" : "limit_in_bytes");
		snprintf(what, sizeof(what),
			 "linux.resources.hugepageLimits[%zu]", i);
		snprintf(val, sizeof(val), "%" PRIu64, r->hugepages[i].value);
		if (opt_write(cg, cg->v2 ? cg->v2 : cg->v1[C_HUGETLB], file,
			      val, what, err) < 0)
			return -1;
	}
	if (r->net_classid != CG_UNSET) {
		if (cg->v2)
			not_here(cg, "linux.resources.network.classID",
				 "cgroup v2 has no net_cls controller");
		else if (opt_write_i64(cg, cg->v1[C_NET_CLS], "net_cls.classid",
				       r->net_classid,
				       "linux.resources.network.classID",
				       err) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->nnet_prios; i++) {
		snprintf(what, sizeof(what),
			 "linux.resources.network.priorities[%zu]", i);
		snprintf(val, sizeof(val), "%s %" PRIu64, r->net_prios[i].name,
			 r->net_prios[i].value);
		if (cg->v2)
			not_here(cg, what, "cgroup v2 has no net_prio controller");
		else if (opt_write(cg, cg->v1[C_NET_PRIO], "net_prio.ifpriomap",
				   val, what, err) < 0)
			return -1;
	}
	if (r->nrdma)
		not_here(cg, "linux.resources.rdma",
			 "no RDMA device is passed into the VM");
	if (r->ndevice_rules &&
	    cg_dev_apply(cg, r->dev_rules, r->ndevice_rules, err) < 0)
		return -1;
	if (r->nunified && !cg->v2)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
				  "linux.resources.unified: needs cgroup v2 "
				  "(this hierarchy is v1)");
	for (size_t i = 0; i < r->nunified; i++) {
		snprintf(what, sizeof(what), "linux.resources.unified.%s",
			 r->unified[i].key);
		if (cg_write(cg->v2, r->unified[i].key, r->unified[i].val,
			     what, err) < 0)
			return -1;
	}
	return 0;
}

/* memory.checkBeforeUpdate: a new limit below what the cgroup uses
 * fails instead of setting off the OOM killer. */
static int check_before_update(const struct cg *cg,
			       const struct cg_resources *r,
			       struct husk_err **err)
{
	uint64_t cur;

	if (!r->memory_check_before_update || r->memory_limit <= 0)
		return 0;
	cur = cg->v2 ? cg_read_u64(cg->v2, "memory.current") :
	      cg_read_u64(cg->v1[C_MEMORY], "memory.usage_in_bytes");
	if (cur > (uint64_t)r->memory_limit)
		return husk_error(err, HUSK_E_INVALID,
				  F_MEM_LIMIT ": %" PRId64 " is below the "
				  "current usage of %" PRIu64 " bytes "
				  "(checkBeforeUpdate)", r->memory_limit, cur);
	return 0;
}

int cg_update(struct cg *cg, const struct cg_resources *r,
	      struct husk_err **err)
{
	if (!r)
		return 0;
	if (check_before_update(cg, r, err) < 0)
		return -1;
	if (cg->v2 ? v2_update(cg->v2, r, err) < 0 :
	    v1_update(cg, r, err) < 0)
		return -1;
	return extras_update(cg, r, err);
}
