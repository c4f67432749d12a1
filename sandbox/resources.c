/*
 * Sizing a sandbox's VM from its containers' limits, as Kata does: the
 * configured size is the base, and each container's memory limit and
 * CPU quota are added on top (at boot for the sandbox's own container,
 * by hotplug for a container joining a pod).  Also the annotations that
 * may override a small, safe subset of the configuration, and the host
 * cgroup the shim goes into (the spec's cgroupsPath).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"
#include "libipc/proto_proxy.h"

#define MEM_BLOCK_MB 128

void husk_spec_sizing(const json_t *spec, unsigned *mem_mb, unsigned *vcpus)
{
	json_t *res = json_object_get(json_object_get(spec, "linux"),
				      "resources");
	json_t *mem = json_object_get(json_object_get(res, "memory"), "limit");
	json_t *cpu = json_object_get(res, "cpu");
	json_int_t quota = json_integer_value(json_object_get(cpu, "quota"));
	json_int_t period = json_integer_value(json_object_get(cpu, "period"));

	*mem_mb = 0;
	*vcpus = 0;
	if (json_is_integer(mem) && json_integer_value(mem) > 0) {
		json_int_t mb = (json_integer_value(mem) - 1) / (1 << 20) + 1;

		/* Hot-plugged memory comes in blocks. */
		mb = (mb + MEM_BLOCK_MB - 1) / MEM_BLOCK_MB * MEM_BLOCK_MB;
		*mem_mb = mb > UINT_MAX ? UINT_MAX : (unsigned)mb;
	}
	if (quota > 0) {
		if (period <= 0)
			period = 100000;
		*vcpus = (unsigned)((quota - 1) / period + 1);
	}
}

/* Annotations that may change the configuration, and their bounds. */
static const struct {
	const char *key;
	size_t off;
	unsigned min;
	size_t max_off;         /* bound by another key, or 0 */
	unsigned max;
} overrides[] = {
	{ "io.husk.config.hypervisor.vcpus",
	  offsetof(struct husk_config, vcpus), 1,
	  offsetof(struct husk_config, max_vcpus), 0 },
	{ "io.husk.config.hypervisor.memory_mb",
	  offsetof(struct husk_config, memory_mb), 64,
	  offsetof(struct husk_config, max_memory_mb), 0 },
	{ "io.husk.config.agent.timeout",
	  offsetof(struct husk_config, agent_timeout), 1, 0, 3600 },
};

int husk_config_annotations(struct husk_config *cfg, const json_t *spec,
			    struct husk_err **err)
{
	json_t *ann = json_object_get(spec, "annotations"), *v;
	const char *key;

	json_object_foreach(ann, key, v) {
		const char *s = json_string_value(v);
		bool known = false;
		long long n;

		if (strncmp(key, "io.husk.", 8))
			continue;
		if (!strcmp(key, "io.husk.config.hypervisor.machine_type")) {
			if (!s || (strcmp(s, "q35") && strcmp(s, "microvm")))
				return husk_error(err, HUSK_E_INVALID,
						  "annotation %s: '%s' is not "
						  "q35 or microvm", key,
						  s ? s : "?");
			free(cfg->machine_type);
			cfg->machine_type = husk_xstrdup(s);
			continue;
		}
		for (size_t i = 0; i < HUSK_ARRAY_SIZE(overrides); i++) {
			unsigned *field, max;

			if (strcmp(key, overrides[i].key))
				continue;
			known = true;
			field = (unsigned *)((char *)cfg + overrides[i].off);
			max = overrides[i].max_off ?
			      *(unsigned *)((char *)cfg +
					    overrides[i].max_off) :
			      overrides[i].max;
			if (!s || husk_parse_int(s, overrides[i].min, max,
						 &n) < 0)
				return husk_error(err, HUSK_E_INVALID,
						  "annotation %s: '%s' is not "
						  "a whole number in [%u, %u]",
						  key, s ? s : "?",
						  overrides[i].min, max);
			*field = (unsigned)n;
		}
		if (!known)
			return husk_error(err, HUSK_E_INVALID, "annotation %s: "
					  "not one husk lets a container "
					  "change (see husk.conf(5))", key);
	}
	return 0;
}

/* Beyond any VM QEMU can make (240 vCPUs, 4 TiB in husk.conf). */
#define GUEST_CPUS_MAX		4096
#define GUEST_MEM_KB_MAX	(1LL << 40)

/* A count from get_guest_details: an integer in [0, max], or an error
 * naming it (the text from the guest is printed as JSON, escaped). */
static int guest_number(const json_t *details, const char *key,
			json_int_t max, json_int_t *out, struct husk_err **err)
{
	json_t *v = json_object_get(details, key);
	cleanup_free char *txt = NULL;

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= max) {
		*out = json_integer_value(v);
		return 0;
	}
	txt = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	return husk_error(err, HUSK_E_PROTOCOL, "the guest reports %s %.64s: "
			  "not an integer in [0, %lld]", key,
			  txt ? txt : "(missing)", (long long)max);
}

/*
 * A microvm sandbox cannot grow (no hotplug): a container's limits then
 * hold in the guest's cgroups only, as they do where Kata runs on a
 * hypervisor without hotplug.  1 for such a sandbox, 0 for one that
 * can grow, -1 when the driver cannot be asked.
 */
static int no_hotplug(const struct husk_sbx_paths *p, const char *sid,
		      struct husk_err **err)
{
	json_t *st = NULL;
	const char *m;
	int none;

	if (husk_rpc_call(p->hv_sock, HV_COMPONENT, HV_M_STATUS, NULL, 10000,
			  &st, NULL, 0, err) < 0)
		return husk_error_wrap(err, "grow sandbox %s", sid);
	m = json_string_value(json_object_get(st, "machine"));
	none = m && !strcmp(m, "microvm");
	json_decref(st);
	if (none)
		log_info("sandbox %s: microvm has no hotplug; the VM keeps its "
			 "size and the container's limits hold in the guest",
			 sid);
	return none;
}

int husk_sandbox_grow(const char *root, const char *sid, unsigned mem_mb,
		      unsigned vcpus, json_t *dimms, unsigned *vcpus_added,
		      struct husk_err **err)
{
	struct husk_sbx_paths p;
	json_int_t want_cpus, want_kb;
	json_t *before = NULL;
	uint64_t deadline;
	int rc = 0;

	if (!mem_mb && !vcpus)
		return 0;
	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		return -1;
	rc = no_hotplug(&p, sid, err);
	if (rc != 0) {
		husk_sandbox_paths_free(&p);
		return rc < 0 ? -1 : 0;
	}
	if (husk_rpc_call(p.proxy_sock, PROXY_COMPONENT,
			  AGENT_M_GET_GUEST_DETAILS, NULL, 10000, &before,
			  NULL, 0, err) < 0) {
		husk_sandbox_paths_free(&p);
		return -1;
	}
	/* The guest is hostile: numbers it makes up must not overflow the
	 * sums below. */
	if (guest_number(before, "online_cpus", GUEST_CPUS_MAX, &want_cpus,
			 err) < 0 ||
	    guest_number(before, "mem_online_kb", GUEST_MEM_KB_MAX, &want_kb,
			 err) < 0) {
		json_decref(before);
		husk_sandbox_paths_free(&p);
		return husk_error_wrap(err, "grow sandbox %s", sid);
	}
	want_cpus += vcpus;
	want_kb += (json_int_t)mem_mb * 1024;
	json_decref(before);
	if (vcpus) {
		json_t *params = json_pack("{s:i}", "count", vcpus);

		rc = husk_rpc_call(p.hv_sock, HV_COMPONENT, HV_M_HOTPLUG_VCPU,
				   params, 30000, NULL, NULL, 0, err);
		if (rc == 0 && vcpus_added)
			*vcpus_added = vcpus;
		json_decref(params);
	}
	if (rc == 0 && mem_mb) {
		json_t *params = json_pack("{s:i}", "size_mb", mem_mb);
		json_t *r = NULL, *id;

		rc = husk_rpc_call(p.hv_sock, HV_COMPONENT,
				   HV_M_HOTPLUG_MEMORY, params, 30000, &r, NULL,
				   0, err);
		id = json_object_get(r, "id");
		if (rc == 0 && dimms && json_is_string(id))
			json_array_append_new(dimms, json_pack("{s:O, s:i}",
							       "id", id,
							       "size_mb",
							       mem_mb));
		json_decref(r);
		json_decref(params);
	}
	/* The guest sees the new CPUs and memory blocks only once its ACPI
	 * handler ran (seconds under TCG): online them until all are. */
	deadline = husk_now_ms() + 60000;
	while (rc == 0) {
		json_t *r = NULL;

		rc = husk_rpc_call(p.proxy_sock, PROXY_COMPONENT,
				   AGENT_M_ONLINE_CPU_MEM, NULL, 30000, &r,
				   NULL, 0, err);
		if (rc == 0 &&
		    json_integer_value(json_object_get(r, "online_cpus")) >=
		    want_cpus &&
		    json_integer_value(json_object_get(r, "mem_online_kb")) >=
		    want_kb) {
			json_decref(r);
			break;
		}
		json_decref(r);
		if (rc == 0 && husk_now_ms() > deadline)
			rc = husk_error(err, HUSK_E_TIMEOUT, "the guest did not "
					"bring the new CPUs and memory online "
					"within 60 s");
		if (rc == 0) {
			struct timespec ts = { 0, 200 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	husk_sandbox_paths_free(&p);
	if (rc < 0)
		return husk_error_wrap(err, "grow sandbox %s by %u MiB and %u "
				       "vCPUs", sid, mem_mb, vcpus);
	return 0;
}

/* Unplug DIMMs of dimms ({id, size_mb}), newest first, while they fit
 * in want_mb; those gone leave the array.  Returns the MiB given back. */
static unsigned unplug_dimms(const char *hv_sock, const char *sid,
			     json_t *dimms, unsigned want_mb)
{
	unsigned freed = 0;

	for (size_t i = json_array_size(dimms); i-- > 0;) {
		json_t *d = json_array_get(dimms, i), *params;
		json_int_t size = json_integer_value(json_object_get(d,
								     "size_mb"));
		const char *id = json_string_value(json_object_get(d, "id"));
		struct husk_err *err = NULL;

		if (!id || size <= 0 || (json_int_t)(want_mb - freed) < size)
			continue;
		params = json_pack("{s:s}", "id", id);
		if (husk_rpc_call(hv_sock, HV_COMPONENT, HV_M_UNPLUG_MEMORY,
				  params, 40000, NULL, NULL, 0, &err) < 0) {
			log_warnx("shrink sandbox %s: DIMM %s stays: %s", sid,
				  id, err->msg);
			husk_err_free(err);
		} else {
			freed += (unsigned)size;
			json_array_remove(dimms, i);
		}
		json_decref(params);
	}
	return freed;
}

/* Unplug n hot-plugged vCPUs; false (logged) when they stay. */
static bool unplug_vcpus(const char *hv_sock, const char *sid, unsigned n)
{
	json_t *params = json_pack("{s:i}", "count", n);
	struct husk_err *err = NULL;
	bool ok = true;

	if (husk_rpc_call(hv_sock, HV_COMPONENT, HV_M_UNPLUG_VCPU, params,
			  40000, NULL, NULL, 0, &err) < 0) {
		log_info("sandbox %s: %u vCPU(s) stay: %s", sid, n, err->msg);
		husk_err_free(err);
		ok = false;
	}
	json_decref(params);
	return ok;
}

void husk_sandbox_shrink(const char *root, const char *sid, json_t *dimms,
			 unsigned vcpus)
{
	struct husk_sbx_paths p;
	struct husk_err *err = NULL;

	if (!vcpus && json_array_size(dimms) == 0)
		return;
	if (husk_sandbox_paths(root, sid, &p, &err) < 0) {
		log_warnx("shrink sandbox %s: %s", sid, err->msg);
		husk_err_free(err);
		return;
	}
	unplug_dimms(p.hv_sock, sid, dimms, UINT_MAX);
	if (vcpus)
		unplug_vcpus(p.hv_sock, sid, vcpus);
	husk_sandbox_paths_free(&p);
}

/* The sizes an update asks for; a limit it does not name keeps its
 * current size. */
static void update_sizing(const struct husk_container *c, const json_t *res,
			  unsigned *mem_mb, unsigned *vcpus)
{
	json_t *spec = json_pack("{s:{s:O}}", "linux", "resources", res);
	json_t *cpu = json_object_get(res, "cpu");

	husk_spec_sizing(spec, mem_mb, vcpus);
	json_decref(spec);
	if (!json_object_get(json_object_get(res, "memory"), "limit"))
		*mem_mb = c->sized_mb;
	if (!json_object_get(cpu, "quota"))
		*vcpus = c->sized_vcpus;
}

int husk_ct_resize(const char *root, struct husk_container *c,
		   const json_t *resources, bool after, struct husk_err **err)
{
	struct husk_sbx_paths p;
	unsigned mem_mb, vcpus, added = 0;
	int rc = 0;

	update_sizing(c, resources, &mem_mb, &vcpus);
	if (!c->dimms)
		c->dimms = json_array();
	if (!after) {
		unsigned gmb = mem_mb > c->sized_mb ? mem_mb - c->sized_mb : 0;
		unsigned gcpu = vcpus > c->sized_vcpus ?
				vcpus - c->sized_vcpus : 0;
		size_t had = json_array_size(c->dimms);

		if (!gmb && !gcpu)
			return 0;
		rc = husk_sandbox_grow(root, c->sandbox_id, gmb, gcpu, c->dimms,
				       &added, err);
		if (json_array_size(c->dimms) > had)
			c->sized_mb += gmb;
		c->sized_vcpus += added;
		c->grown_vcpus += added;
		return rc;
	}
	if (mem_mb >= c->sized_mb &&
	    (vcpus >= c->sized_vcpus || !c->grown_vcpus))
		return 0;
	if (husk_sandbox_paths(root, c->sandbox_id, &p, err) < 0)
		return -1;
	if (mem_mb < c->sized_mb)
		c->sized_mb -= unplug_dimms(p.hv_sock, c->sandbox_id, c->dimms,
					    c->sized_mb - mem_mb);
	if (vcpus < c->sized_vcpus && c->grown_vcpus) {
		unsigned n = c->sized_vcpus - vcpus;

		if (n > c->grown_vcpus)
			n = c->grown_vcpus;
		if (unplug_vcpus(p.hv_sock, c->sandbox_id, n)) {
			c->sized_vcpus -= n;
			c->grown_vcpus -= n;
		}
	}
	husk_sandbox_paths_free(&p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The shim's host cgroup                                              */

/* Hierarchies to place a process in: the v2 root, or every v1
 * controller's mount. */
static int hierarchies(char ***out)
{
	cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], **v = NULL;
	size_t n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char mnt[1024], fstype[64], *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2"))
			continue;
		/* In a hybrid set-up the v2 mount holds no controllers:
		 * the v1 ones are where limits live. */
		if (!strcmp(fstype, "cgroup2") &&
		    strcmp(mnt, "/sys/fs/cgroup"))
			continue;
		v = realloc(v, (n + 2) * sizeof(*v));
		if (!v)
			return -1;
		v[n++] = husk_xstrdup(mnt);
		v[n] = NULL;
	}
	*out = v;
	return v ? 0 : -1;
}

/* cpuset directories start empty in v1: copy the parent's. */
static void cpuset_inherit(const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	cleanup_free char *parent = husk_xstrdup(dir);
	char *slash = strrchr(parent, '/');

	if (!slash)
		return;
	*slash = '\0';
	for (size_t i = 0; i < 2; i++) {
		cleanup_free char *from = husk_xasprintf("%s/%s", parent,
							 files[i]);
		cleanup_free char *to = husk_xasprintf("%s/%s", dir, files[i]);
		char *val = NULL;
		size_t len;
		int fd;

		if (access(to, F_OK) < 0 ||
		    husk_read_file(AT_FDCWD, from, 4096, &val, &len, NULL) < 0)
			continue;
		/* cgroupfs files take a plain write (no temp file, no
		 * rename). */
		fd = open(to, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || husk_write_all(fd, val, len) < 0)
			log_warn("%s", to);
		if (fd >= 0)
			close(fd);
		free(val);
	}
}

/* mkdir each missing level of dir below the hierarchy h, recording
 * what was made so that delete removes exactly that. */
static int mkdir_each(const char *h, const char *dir, json_t *made)
{
	cleanup_free char *p = husk_xstrdup(dir);
	char *c = p + strlen(h);

	while (c) {
		c = strchr(c + 1, '/');
		if (c)
			*c = '\0';
		if (mkdir(p, 0755) == 0) {
			json_array_append_new(made, json_string(p));
			if (strstr(h, "cpuset"))
				cpuset_inherit(p);
		} else if (errno != EEXIST) {
			log_warn("mkdir %s", p);
			return -1;
		}
		if (c)
			*c = '/';
	}
	return 0;
}

int husk_cgroup_enter(const char *path, pid_t pid, json_t *made,
		      struct husk_err **err)
{
	cleanup_strv char **hs = NULL;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

	if (!path || !*path)
		return 0;
	if (strchr(path, ':')) {
		/* systemd's slice:prefix:name needs systemd's API. */
		log_info("cgroupsPath %s is systemd's form: the shim stays in "
			 "husk's cgroup", path);
		return 0;
	}
	if (strstr(path, ".."))
		return husk_error(err, HUSK_E_INVALID, "config.json: "
				  "linux.cgroupsPath '%s' has '..'", path);
	if (hierarchies(&hs) < 0)
		return husk_error_sys(err, errno, "find cgroup mounts");
	for (char **h = hs; *h; h++) {
		cleanup_free char *dir = husk_xasprintf("%s/%s", *h,
							path[0] == '/' ?
							path + 1 : path);
		cleanup_free char *procs = husk_xasprintf("%s/cgroup.procs",
							  dir);
		int fd;

		if (mkdir_each(*h, dir, made) < 0)
			continue;
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, buf, (size_t)n) < 0)
			log_warn("%s", procs);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

void husk_cgroup_remove(const json_t *made, unsigned ms)
{
	uint64_t deadline = husk_now_ms() + ms;
	size_t i = json_array_size(made);

	/* Deepest last made, first removed; a cgroup still in use stays
	 * (EBUSY: tried again until the deadline, while what was stopped
	 * finishes exiting and is reaped). */
	while (i-- > 0) {
		const char *dir = json_string_value(json_array_get(made, i));

		if (!dir)
			continue;
		while (rmdir(dir) < 0 && errno == EBUSY &&
		       husk_now_ms() < deadline) {
			struct timespec ts = { 0, 20 * 1000000L };

			nanosleep(&ts, NULL);
		}
		if (access(dir, F_OK) == 0)
			log_debug("%s: %s", dir, strerror(errno));
	}
}
