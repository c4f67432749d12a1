/*
 * OCI linux.resources decoded into struct cg_resources, once, before
 * any cgroup is touched: every type and bound is checked here and an
 * error names the field (`linux.resources.blockIO.weight: 5 is out of
 * range [10, 1000]`).  Every member of runtime-spec 1.0.2 is accepted
 * (as runc accepts it); whether the guest can apply it is
 * cgroup_limits.c's business (device rules: cgroup_dev.c, which also
 * decodes them).  As the spec asks, a key this code does
 * not know is not an error: it is noted and logged when applied.
 * Nothing here runs a system call (it is part of the spec fuzz target).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/cgroup_int.h"

#define RES_MAX_DEVS 1024
#define RES_NOTES_MAX 64

void cg_resources_init(struct cg_resources *r)
{
	memset(r, 0, sizeof(*r));
	r->memory_limit = CG_UNSET;
	r->memory_reservation = CG_UNSET;
	r->memory_swap = CG_UNSET;
	r->memory_swappiness = CG_UNSET;
	r->memory_oom_kill_disable = CG_UNSET;
	r->cpu_shares = CG_UNSET;
	r->cpu_quota = CG_UNSET;
	r->cpu_period = CG_UNSET;
	r->cpu_rt_runtime = CG_UNSET;
	r->cpu_rt_period = CG_UNSET;
	r->cpu_burst = CG_UNSET;
	r->cpu_idle = CG_UNSET;
	r->pids_limit = CG_UNSET;
	r->blkio_weight = CG_UNSET;
	r->blkio_leaf_weight = CG_UNSET;
	r->net_classid = CG_UNSET;
}

void cg_resources_free(struct cg_resources *r)
{
	if (!r)
		return;
	free(r->cpuset_cpus);
	free(r->cpuset_mems);
	free(r->weight_devs);
	for (int i = 0; i < CG_NTHROTTLE; i++)
		free(r->throttle[i]);
	for (size_t i = 0; i < r->nhugepages; i++)
		free(r->hugepages[i].name);
	free(r->hugepages);
	for (size_t i = 0; i < r->nnet_prios; i++)
		free(r->net_prios[i].name);
	free(r->net_prios);
	for (size_t i = 0; i < r->nunified; i++) {
		free(r->unified[i].key);
		free(r->unified[i].val);
	}
	free(r->unified);
	free(r->dev_rules);
	husk_cleanup_strvp(&r->notes);
	cg_resources_init(r);
}

/* A map key for an error message: printable ASCII, bounded. */
static void key_text(const msgpack_object *k, char *buf, size_t size)
{
	size_t i, n;

	if (k->type != MSGPACK_OBJECT_STR) {
		snprintf(buf, size, "<%s key>", "non-string");
		return;
	}
	n = k->via.str.size < size - 1 ? k->via.str.size : size - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k->via.str.ptr[i];

		buf[i] = isprint(c) ? (char)c : '?';
	}
	buf[n] = '\0';
}

/* Remember that `what` was not applied, for the log at apply time. */
static void note(struct cg_resources *r, const char *what, const char *why)
{
	size_t n = 0;
	char **v;

	while (r->notes && r->notes[n])
		n++;
	if (n >= RES_NOTES_MAX)
		return;
	v = husk_xcalloc(n + 2, sizeof(char *));
	if (n)
		memcpy(v, r->notes, n * sizeof(char *));
	v[n] = husk_xasprintf("%s: %s", what, why);
	free(r->notes);
	r->notes = v;
}

static void unknown_key(struct cg_resources *r, const char *what)
{
	note(r, what, "not a runtime-spec field this agent knows; ignored");
}

/* "0-3,5": digits, commas and dashes only. */
static int decode_cpuset(const msgpack_object *o, const char *what,
			 char **out, struct husk_err **err)
{
	char *s = NULL;

	if (ipc_obj_str(o, what, CG_CPUSET_MAX, &s, err) < 0)
		return -1;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != ',' && *p != '-') {
			free(s);
			return husk_error(err, HUSK_E_INVALID,
					  "%s: expected a list such as \"0-3,5\"",
					  what);
		}
	free(*out);
	*out = NULL;
	if (*s)
		*out = s;
	else
		free(s);
	return 0;
}

/* An OCI limit where 0 means "leave as it is" and -1 "unlimited". */
static int decode_limit(const msgpack_object *o, const char *what,
			int64_t *out, struct husk_err **err)
{
	int64_t v;

	if (ipc_obj_int(o, what, -1, INT64_MAX, &v, err) < 0)
		return -1;
	*out = v == 0 ? CG_UNSET : v;
	return 0;
}

/* A uint64 the spec gives as optional, where engines send -1 cast to
 * uint64 (2^64 - 1) for "not set", as runc reads it. */
static int decode_u64_or_unset(const msgpack_object *o, const char *what,
			       uint64_t max, int64_t *out,
			       struct husk_err **err)
{
	uint64_t u;

	if ((o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == -1) ||
	    (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	     o->via.u64 == UINT64_MAX)) {
		*out = CG_UNSET;
		return 0;
	}
	if (ipc_obj_uint(o, what, max, &u, err) < 0)
		return -1;
	*out = (int64_t)u;
	return 0;
}

/*
 * Every non-nil member of the map m at linux.resources.<name> (at most
 * maxn of them) through fn, with its path for errors.
 */
typedef int member_fn(const msgpack_object *k, const msgpack_object *v,
		      const char *what, struct cg_resources *r,
		      struct husk_err **err);

static int each_member(const msgpack_object *m, const char *name,
		       uint32_t maxn, struct cg_resources *r, member_fn *fn,
		       struct husk_err **err)
{
	char what[128], key[64];

	snprintf(what, sizeof(what), "linux.resources.%s", name);
	if (ipc_obj_map(m, what, maxn, err) < 0)
		return -1;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		const msgpack_object *v = &m->via.map.ptr[i].val;

		key_text(k, key, sizeof(key));
		snprintf(what, sizeof(what), "linux.resources.%s.%s", name,
			 key);
		if (v->type != MSGPACK_OBJECT_NIL && fn(k, v, what, r, err) < 0)
			return -1;
	}
	return 0;
}

/* One member of linux.resources.memory (what: its path). */
static int memory_member(const msgpack_object *k, const msgpack_object *v,
			 const char *what, struct cg_resources *r,
			 struct husk_err **err)
{
	int64_t ignored;
	bool b;

	if (ipc_str_is(k, "limit")) {
		if (decode_limit(v, what, &r->memory_limit, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "reservation")) {
		if (decode_limit(v, what, &r->memory_reservation,
				 err) < 0)
			return -1;
	} else if (ipc_str_is(k, "swap")) {
		if (decode_limit(v, what, &r->memory_swap, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "kernel") ||
		   ipc_str_is(k, "kernelTCP")) {
		/* Deprecated by the kernel and the runtime spec;
		 * accepted and ignored, as runc does. */
		if (ipc_obj_int(v, what, INT64_MIN, INT64_MAX,
				&ignored, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "useHierarchy")) {
		/* Always on in the kernels husk supports. */
		if (ipc_obj_bool(v, what, &b, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "swappiness")) {
		if (decode_u64_or_unset(v, what, 100,
					&r->memory_swappiness,
					err) < 0)
			return -1;
	} else if (ipc_str_is(k, "disableOOMKiller")) {
		if (ipc_obj_bool(v, what, &b, err) < 0)
			return -1;
		r->memory_oom_kill_disable = b ? 1 : CG_UNSET;
	} else if (ipc_str_is(k, "checkBeforeUpdate")) {
		if (ipc_obj_bool(v, what, &b, err) < 0)
			return -1;
		r->memory_check_before_update = b;
	} else {
		unknown_key(r, what);
	}
	return 0;
}

/* One member of linux.resources.cpu (what: its path). */
static int cpu_member(const msgpack_object *k, const msgpack_object *v,
		      const char *what, struct cg_resources *r,
		      struct husk_err **err)
{
	uint64_t u;
	int64_t s;

	if (ipc_str_is(k, "shares")) {
		if (ipc_obj_uint(v, what, 262144, &u, err) < 0)
			return -1;
		if (u == 1)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: 1 is out of range [2, 262144]",
					  what);
		r->cpu_shares = u ? (int64_t)u : CG_UNSET;
	} else if (ipc_str_is(k, "quota")) {
		if (ipc_obj_int(v, what, -1, INT64_MAX / 1000, &s,
				err) < 0)
			return -1;
		if (s > 0 && s < 1000)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: %" PRId64 " is below the kernel's minimum of 1000 microseconds",
					  what, s);
		r->cpu_quota = s ? s : CG_UNSET;
	} else if (ipc_str_is(k, "period")) {
		if (ipc_obj_uint(v, what, 1000000, &u, err) < 0)
			return -1;
		if (u > 0 && u < 1000)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: %" PRIu64 " is out of range [1000, 1000000]",
					  what, u);
		r->cpu_period = u ? (int64_t)u : CG_UNSET;
	} else if (ipc_str_is(k, "cpus")) {
		if (decode_cpuset(v, what, &r->cpuset_cpus, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "mems")) {
		if (decode_cpuset(v, what, &r->cpuset_mems, err) < 0)
			return -1;
	} else if (ipc_str_is(k, "realtimeRuntime")) {
		if (ipc_obj_int(v, what, -1, INT64_MAX, &s, err) < 0)
			return -1;
		r->cpu_rt_runtime = s ? s : CG_UNSET;
	} else if (ipc_str_is(k, "realtimePeriod")) {
		if (ipc_obj_uint(v, what, INT64_MAX, &u, err) < 0)
			return -1;
		r->cpu_rt_period = u ? (int64_t)u : CG_UNSET;
	} else if (ipc_str_is(k, "burst")) {
		/* 0 is a real value here: no burst. */
		if (ipc_obj_uint(v, what, INT64_MAX, &u, err) < 0)
			return -1;
		r->cpu_burst = (int64_t)u;
	} else if (ipc_str_is(k, "idle")) {
		if (ipc_obj_int(v, what, 0, 1, &s, err) < 0)
			return -1;
		r->cpu_idle = s;
	} else {
		unknown_key(r, what);
	}
	return 0;
}

/* One member of linux.resources.pids (what: its path). */
static int pids_member(const msgpack_object *k, const msgpack_object *v,
		       const char *what, struct cg_resources *r,
		       struct husk_err **err)
{
	int64_t s;

	if (!ipc_str_is(k, "limit")) {
		unknown_key(r, what);
		return 0;
	}
	if (ipc_obj_int(v, what, INT64_MIN, INT64_MAX, &s, err) < 0)
		return -1;
	r->pids_limit = s == 0 ? CG_UNSET : s < 0 ? -1 : s;
	return 0;
}

/* A blkio weight: 10..1000, 0 "not given". */
static int decode_weight(const msgpack_object *o, const char *what,
			 int64_t *out, struct husk_err **err)
{
	uint64_t u;

	if (ipc_obj_uint(o, what, 1000, &u, err) < 0)
		return -1;
	if (u > 0 && u < 10)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: %" PRIu64 " is out of range [10, 1000]",
				  what, u);
	*out = u ? (int64_t)u : CG_UNSET;
	return 0;
}

/* weightDevice[] (weights) or a throttle list (rate). */
static int decode_blkdevs(const msgpack_object *a, const char *what,
			  bool weights, struct cg_blkdev **out, size_t *nout,
			  struct husk_err **err)
{
	char w[160];
	int n = ipc_obj_array(a, what, RES_MAX_DEVS, err);

	if (n < 0)
		return -1;
	*out = husk_xcalloc((size_t)n + 1, sizeof(**out));
	for (int i = 0; i < n; i++) {
		const msgpack_object *d = &a->via.array.ptr[i];
		struct cg_blkdev *bd = &(*out)[*nout];
		const msgpack_object *v;
		int64_t x;

		snprintf(w, sizeof(w), "%s[%d]", what, i);
		if (ipc_obj_map(d, w, 16, err) < 0)
			return -1;
		snprintf(w, sizeof(w), "%s[%d].major", what, i);
		if (ipc_obj_int(ipc_map_get(d, "major"), w, 0, 4095, &bd->major,
				err) < 0)
			return -1;
		snprintf(w, sizeof(w), "%s[%d].minor", what, i);
		if (ipc_obj_int(ipc_map_get(d, "minor"), w, 0, (1 << 20) - 1,
				&bd->minor, err) < 0)
			return -1;
		if (!weights) {
			snprintf(w, sizeof(w), "%s[%d].rate", what, i);
			if (ipc_obj_uint(ipc_map_get(d, "rate"), w, UINT64_MAX,
					 &bd->value, err) < 0)
				return -1;
			(*nout)++;
			continue;
		}
		v = ipc_map_get(d, "weight");
		if (v && v->type != MSGPACK_OBJECT_NIL) {
			snprintf(w, sizeof(w), "%s[%d].weight", what, i);
			if (decode_weight(v, w, &x, err) < 0)
				return -1;
			bd->value = x == CG_UNSET ? 0 : (uint64_t)x;
		}
		v = ipc_map_get(d, "leafWeight");
		if (v && v->type != MSGPACK_OBJECT_NIL) {
			snprintf(w, sizeof(w), "%s[%d].leafWeight", what, i);
			if (decode_weight(v, w, &x, err) < 0)
				return -1;
			bd->leaf = x == CG_UNSET ? 0 : (uint64_t)x;
		}
		(*nout)++;
	}
	return 0;
}

/* One member of linux.resources.blockIO (what: its path). */
static int blkio_member(const msgpack_object *k, const msgpack_object *v,
			const char *what, struct cg_resources *r,
			struct husk_err **err)
{
	static const char *const thr[CG_NTHROTTLE] = {
		"throttleReadBpsDevice", "throttleWriteBpsDevice",
		"throttleReadIOPSDevice", "throttleWriteIOPSDevice",
	};
	bool known = false;

	if (ipc_str_is(k, "weight")) {
		if (decode_weight(v, what, &r->blkio_weight, err) < 0)
			return -1;
		return 0;
	}
	if (ipc_str_is(k, "leafWeight")) {
		if (decode_weight(v, what, &r->blkio_leaf_weight,
				  err) < 0)
			return -1;
		return 0;
	}
	if (ipc_str_is(k, "weightDevice")) {
		free(r->weight_devs);
		r->weight_devs = NULL;
		r->nweight_devs = 0;
		if (decode_blkdevs(v, what, true, &r->weight_devs,
				   &r->nweight_devs, err) < 0)
			return -1;
		return 0;
	}
	for (int t = 0; t < CG_NTHROTTLE; t++) {
		if (!ipc_str_is(k, thr[t]))
			continue;
		known = true;
		free(r->throttle[t]);
		r->throttle[t] = NULL;
		r->nthrottle[t] = 0;
		if (decode_blkdevs(v, what, false, &r->throttle[t],
				   &r->nthrottle[t], err) < 0)
			return -1;
	}
	if (!known)
		unknown_key(r, what);
	return 0;
}

/* "2MB", "1GB", "64KB": what the kernel names hugetlb.<size>.* by. */
static bool page_size_ok(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && n < 8 && s[0] != '0' &&
	       (strcmp(s + n, "KB") == 0 || strcmp(s + n, "MB") == 0 ||
		strcmp(s + n, "GB") == 0);
}

static int decode_hugepages(const msgpack_object *a, struct cg_resources *r,
			    struct husk_err **err)
{
	const char *what = "linux.resources.hugepageLimits";
	char w[128];
	int n = ipc_obj_array(a, what, 64, err);

	if (n < 0)
		return -1;
	r->hugepages = husk_xcalloc((size_t)n + 1, sizeof(*r->hugepages));
	for (int i = 0; i < n; i++) {
		const msgpack_object *h = &a->via.array.ptr[i];
		struct cg_named *hp = &r->hugepages[r->nhugepages];

		snprintf(w, sizeof(w), "%s[%d]", what, i);
		if (ipc_obj_map(h, w, 8, err) < 0)
			return -1;
		snprintf(w, sizeof(w), "%s[%d].pageSize", what, i);
		if (ipc_obj_str(ipc_map_get(h, "pageSize"), w, 16, &hp->name,
				err) < 0)
			return -1;
		r->nhugepages++;
		if (!page_size_ok(hp->name))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: \"%s\" is not a size such as \"2MB\"",
					  w, hp->name);
		snprintf(w, sizeof(w), "%s[%d].limit", what, i);
		if (ipc_obj_uint(ipc_map_get(h, "limit"), w, UINT64_MAX,
				 &hp->value, err) < 0)
			return -1;
	}
	return 0;
}

/* An interface name as net_prio.ifpriomap takes it. */
static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 15)
		return false;
	for (; *s; s++)
		if (!isgraph((unsigned char)*s) || *s == '/' || *s == ':')
			return false;
	return true;
}

/* One member of linux.resources.network (what: its path). */
static int network_member(const msgpack_object *k, const msgpack_object *v,
			  const char *what, struct cg_resources *r,
			  struct husk_err **err)
{
	const msgpack_object *a;
	uint64_t u;
	int n;

	if (ipc_str_is(k, "classID")) {
		if (ipc_obj_uint(v, what, UINT32_MAX, &u, err) < 0)
			return -1;
		r->net_classid = (int64_t)u;
		return 0;
	}
	if (!ipc_str_is(k, "priorities")) {
		unknown_key(r, what);
		return 0;
	}
	a = v;
	n = ipc_obj_array(a, what, 256, err);
	if (n < 0)
		return -1;
	r->net_prios = husk_xcalloc((size_t)n + 1,
				    sizeof(*r->net_prios));
	for (int j = 0; j < n; j++) {
		const msgpack_object *p = &a->via.array.ptr[j];
		struct cg_named *np = &r->net_prios[r->nnet_prios];
		char w[160];

		snprintf(w, sizeof(w), "%s[%d]", what, j);
		if (ipc_obj_map(p, w, 8, err) < 0)
			return -1;
		snprintf(w, sizeof(w), "%s[%d].name", what, j);
		if (ipc_obj_str(ipc_map_get(p, "name"), w, 64,
				&np->name, err) < 0)
			return -1;
		r->nnet_prios++;
		if (!ifname_ok(np->name))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: bad interface name", w);
		snprintf(w, sizeof(w), "%s[%d].priority", what, j);
		if (ipc_obj_uint(ipc_map_get(p, "priority"), w,
				 UINT32_MAX, &np->value, err) < 0)
			return -1;
	}
	return 0;
}

static int decode_rdma(const msgpack_object *m, struct cg_resources *r,
		       struct husk_err **err)
{
	char what[160], key[64];
	uint64_t u;

	if (ipc_obj_map(m, "linux.resources.rdma", 64, err) < 0)
		return -1;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		const msgpack_object *v = &m->via.map.ptr[i].val;
		static const char *const fields[] = { "hcaHandles",
						      "hcaObjects" };

		key_text(k, key, sizeof(key));
		snprintf(what, sizeof(what), "linux.resources.rdma.%s", key);
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: expected a device name", what);
		if (ipc_obj_map(v, what, 8, err) < 0)
			return -1;
		for (size_t f = 0; f < HUSK_ARRAY_SIZE(fields); f++) {
			const msgpack_object *x = ipc_map_get(v, fields[f]);
			char w[200];

			if (!x || x->type == MSGPACK_OBJECT_NIL)
				continue;
			snprintf(w, sizeof(w), "%s.%s", what, fields[f]);
			if (ipc_obj_uint(x, w, UINT32_MAX, &u, err) < 0)
				return -1;
		}
		r->nrdma++;
	}
	return 0;
}

/* v2 files that are the agent's to manage, not the spec's. */
static bool unified_key_ok(const char *k)
{
	static const char *const mine[] = {
		"cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
		"cgroup.freeze", "cgroup.kill", "cgroup.type",
	};
	const char *dot = strchr(k, '.');

	if (!dot || dot == k || !dot[1] || strchr(k, '/') ||
	    strstr(k, ".."))
		return false;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(mine); i++)
		if (strcmp(k, mine[i]) == 0)
			return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && !strchr("._-", *k))
			return false;
	return true;
}

static int decode_unified(const msgpack_object *m, struct cg_resources *r,
			  struct husk_err **err)
{
	char what[128], key[64];

	if (ipc_obj_map(m, "linux.resources.unified", 256, err) < 0)
		return -1;
	r->unified = husk_xcalloc(m->via.map.size + 1, sizeof(*r->unified));
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		struct cg_kv *kv = &r->unified[r->nunified];

		key_text(&m->via.map.ptr[i].key, key, sizeof(key));
		snprintf(what, sizeof(what), "linux.resources.unified.%s", key);
		if (ipc_obj_str(&m->via.map.ptr[i].key, what, 64, &kv->key,
				err) < 0)
			return -1;
		if (ipc_obj_str(&m->via.map.ptr[i].val, what, 4096, &kv->val,
				err) < 0) {
			free(kv->key);
			kv->key = NULL;
			return -1;
		}
		r->nunified++;
		if (!unified_key_ok(kv->key))
			return husk_error(err, HUSK_E_INVALID,
					  "%s: not a cgroup v2 file a container may set",
					  what);
	}
	return 0;
}

int cg_resources_decode(const msgpack_object *o, struct cg_resources *r,
			struct husk_err **err)
{
	static const char *const once[] = {
		"memory", "cpu", "pids", "devices", "blockIO",
		"hugepageLimits", "network", "rdma", "unified",
	};
	unsigned seen = 0;
	char what[128], key[64];

	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (ipc_obj_map(o, "linux.resources", 64, err) < 0)
		goto fail;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;
		int rc = 0;

		key_text(k, key, sizeof(key));
		snprintf(what, sizeof(what), "linux.resources.%s", key);
		for (size_t j = 0; j < HUSK_ARRAY_SIZE(once); j++)
			if (ipc_str_is(k, once[j])) {
				if (seen & (1u << j)) {
					husk_error(err, HUSK_E_INVALID,
						   "%s: given twice", what);
					goto fail;
				}
				seen |= 1u << j;
			}
		if (v->type == MSGPACK_OBJECT_NIL)
			continue;
		if (ipc_str_is(k, "memory"))
			rc = each_member(v, "memory", 64, r, memory_member,
					 err);
		else if (ipc_str_is(k, "cpu"))
			rc = each_member(v, "cpu", 64, r, cpu_member, err);
		else if (ipc_str_is(k, "pids"))
			rc = each_member(v, "pids", 16, r, pids_member, err);
		else if (ipc_str_is(k, "devices"))
			rc = cg_devrules_decode(v, r, err);
		else if (ipc_str_is(k, "blockIO"))
			rc = each_member(v, "blockIO", 16, r, blkio_member,
					 err);
		else if (ipc_str_is(k, "hugepageLimits"))
			rc = decode_hugepages(v, r, err);
		else if (ipc_str_is(k, "network"))
			rc = each_member(v, "network", 8, r, network_member,
					 err);
		else if (ipc_str_is(k, "rdma"))
			rc = decode_rdma(v, r, err);
		else if (ipc_str_is(k, "unified"))
			rc = decode_unified(v, r, err);
		else
			unknown_key(r, what);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	cg_resources_free(r);
	return -1;
}
