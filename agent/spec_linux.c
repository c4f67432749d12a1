/*
 * OCI runtime spec decoding, the linux object: namespaces and id maps,
 * sysctl, devices, propagation, personality, resources (cgroup_res.c)
 * and seccomp (oci_seccomp.c).  Part of the fuzz target with spec.c:
 * nothing here runs a system call.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/spec_int.h"

static int decode_namespaces(const msgpack_object *lx, struct spec *s,
			     struct husk_err **err)
{
	static const struct {
		const char *name;
		int flag;
	} ns[] = {
		{ "pid", CLONE_NEWPID }, { "mount", CLONE_NEWNS },
		{ "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
		{ "cgroup", CLONE_NEWCGROUP }, { "user", CLONE_NEWUSER },
		{ "network", 0 },
	};
	const msgpack_object *a;
	char what[WHAT_MAX];
	int n;

	n = spec_opt_array(lx, "namespaces", "spec.linux", 16, &a, err);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const msgpack_object *e = &a->via.array.ptr[i];
		cleanup_free char *type = NULL, *path = NULL;
		size_t k;

		spec_setwhat(what, "spec.linux.namespaces[%d]", i);
		if (ipc_obj_map(e, what, 4, err) < 0 ||
		    spec_opt_str(e, "type", what, 32, &type, err) < 0 ||
		    spec_opt_str(e, "path", what, 4096, &path, err) < 0)
			return -1;
		if (!type)
			return husk_error(err, HUSK_E_INVALID, "%s.type: missing",
					  what);
		for (k = 0; k < HUSK_ARRAY_SIZE(ns); k++)
			if (strcmp(type, ns[k].name) == 0)
				break;
		if (k == HUSK_ARRAY_SIZE(ns))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.type: \"%s\" is not supported",
					  what, type);
		/* The VM is the sandbox's network namespace: a host path
		 * names nothing in the guest. */
		if (ns[k].flag == 0)
			continue;
		if (path && path[0])
			return husk_error(err, HUSK_E_INVALID,
					  "%s.path: joining a %s namespace by path is not supported (use create_sandbox shared_pid_ns)",
					  what, type);
		s->ns_flags |= ns[k].flag;
	}
	if (!(s->ns_flags & CLONE_NEWNS))
		return husk_error(err, HUSK_E_INVALID,
				  "spec.linux.namespaces: a mount namespace is required");
	return 0;
}

/* linux.uidMappings / gidMappings: {containerID, hostID, size}, as
 * /proc/PID/uid_map takes them (at most 340 lines). */
static int decode_idmaps(const msgpack_object *lx, const char *key,
			 struct spec_idmap **out, size_t *nout,
			 struct husk_err **err)
{
	static const char *const f[] = { "containerID", "hostID", "size" };
	const msgpack_object *a;
	char what[WHAT_MAX], w2[WHAT_MAX];
	int n;

	n = spec_opt_array(lx, key, "spec.linux", 340, &a, err);
	if (n <= 0)
		return n;
	*out = husk_xcalloc((size_t)n, sizeof(**out));
	for (int i = 0; i < n; i++) {
		const msgpack_object *m = &a->via.array.ptr[i];
		struct spec_idmap *im = &(*out)[i];
		uint64_t v[3];

		spec_setwhat(what, "spec.linux.%s[%d]", key, i);
		if (ipc_obj_map(m, what, 8, err) < 0)
			return -1;
		for (int k = 0; k < 3; k++) {
			spec_path_of(w2, what, f[k]);
			if (ipc_obj_uint(ipc_map_get(m, f[k]), w2, UINT32_MAX,
					 &v[k], err) < 0)
				return -1;
		}
		if (v[2] == 0 || v[0] + v[2] > (1ull << 32) ||
		    v[1] + v[2] > (1ull << 32))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.size: %" PRIu64 " ids from %" PRIu64 " (container) and %" PRIu64 " (host) leave the 32-bit id range or are none",
					  what, v[2], v[0], v[1]);
		im->container_id = (uint32_t)v[0];
		im->host_id = (uint32_t)v[1];
		im->size = (uint32_t)v[2];
		(*nout)++;
	}
	return 0;
}

/* A user namespace needs both maps, and the maps need one. */
static int check_userns(struct spec *s, struct husk_err **err)
{
	bool userns = s->ns_flags & CLONE_NEWUSER;

	if (!userns && (s->nuid_maps || s->ngid_maps))
		return husk_error(err, HUSK_E_INVALID,
				  "spec.linux.%s: given without a user namespace in spec.linux.namespaces",
				  s->nuid_maps ? "uidMappings" : "gidMappings");
	if (userns && (!s->nuid_maps || !s->ngid_maps))
		return husk_error(err, HUSK_E_INVALID,
				  "spec.linux.%s: a user namespace needs it",
				  !s->nuid_maps ? "uidMappings" : "gidMappings");
	return 0;
}

static int decode_sysctl(const msgpack_object *lx, struct spec *s,
			 struct husk_err **err)
{
	const msgpack_object *m;
	char what[WHAT_MAX];
	size_t n;

	if (spec_opt_map(lx, "sysctl", "spec.linux", &m, err) < 0)
		return -1;
	if (!m)
		return 0;
	n = m->via.map.size;
	s->sysctl_keys = husk_xcalloc(n + 1, sizeof(char *));
	s->sysctl_vals = husk_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		char *k;

		spec_setwhat(what, "spec.linux.sysctl key %zu", i);
		if (ipc_obj_str(&kv->key, what, 256, &s->sysctl_keys[i],
				err) < 0)
			return -1;
		k = s->sysctl_keys[i];
		if (!k[0] || strstr(k, "..") || k[0] == '.' || k[0] == '/' ||
		    strchr(k, '/'))
			return husk_error(err, HUSK_E_INVALID,
					  "spec.linux.sysctl: bad key \"%s\"",
					  k);
		spec_setwhat(what, "spec.linux.sysctl.%s", k);
		if (ipc_obj_str(&kv->val, what, 4096, &s->sysctl_vals[i],
				err) < 0)
			return -1;
		s->nsysctl++;
	}
	return 0;
}

static int decode_devices(const msgpack_object *lx, struct spec *s,
			  struct husk_err **err)
{
	const msgpack_object *a;
	char what[WHAT_MAX], w2[WHAT_MAX];
	int n;

	n = spec_opt_array(lx, "devices", "spec.linux", 256, &a, err);
	if (n <= 0)
		return n;
	s->devices = husk_xcalloc((size_t)n, sizeof(*s->devices));
	for (int i = 0; i < n; i++) {
		const msgpack_object *d = &a->via.array.ptr[i];
		struct spec_device *dv = &s->devices[i];
		cleanup_free char *type = NULL;
		uint64_t v;

		s->ndevices++;
		spec_setwhat(what, "spec.linux.devices[%d]", i);
		if (ipc_obj_map(d, what, 16, err) < 0 ||
		    spec_opt_str(d, "path", what, 4096, &dv->path, err) < 0 ||
		    spec_opt_str(d, "type", what, 4, &type, err) < 0)
			return -1;
		if (!dv->path || strncmp(dv->path, "/dev/", 5) != 0 ||
		    strstr(dv->path, ".."))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.path: must be below /dev", what);
		if (!type || strlen(type) != 1 || !strchr("cbpu", type[0]))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.type: expected c, b, u or p", what);
		dv->type = type[0] == 'u' ? 'c' : type[0];
		dv->mode = 0666;
		if (dv->type != 'p') {
			spec_path_of(w2, what, "major");
			if (ipc_obj_int(ipc_map_get(d, "major"), w2, 0, 4095,
					&dv->major, err) < 0)
				return -1;
			spec_path_of(w2, what, "minor");
			if (ipc_obj_int(ipc_map_get(d, "minor"), w2, 0,
					(1 << 20) - 1, &dv->minor, err) < 0)
				return -1;
		}
		if (spec_member(d, "fileMode")) {
			spec_path_of(w2, what, "fileMode");
			/* Type bits (S_IFCHR...) may come along: the type
			 * is `type`'s. */
			if (ipc_obj_uint(spec_member(d, "fileMode"), w2, 0177777,
					 &v, err) < 0)
				return -1;
			dv->mode = (uint32_t)v & 07777;
		}
		if (spec_member(d, "uid")) {
			spec_path_of(w2, what, "uid");
			if (ipc_obj_uint(spec_member(d, "uid"), w2, UINT32_MAX - 1,
					 &v, err) < 0)
				return -1;
			dv->uid = (uint32_t)v;
		}
		if (spec_member(d, "gid")) {
			spec_path_of(w2, what, "gid");
			if (ipc_obj_uint(spec_member(d, "gid"), w2, UINT32_MAX - 1,
					 &v, err) < 0)
				return -1;
			dv->gid = (uint32_t)v;
		}
	}
	return 0;
}

/* Propagation names, as in mounts[].options and rootfsPropagation. */
static const struct {
	const char *name;
	unsigned long flags;
} propagations[] = {
	{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC },
	{ "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
	{ "shared", MS_SHARED }, { "rshared", MS_SHARED | MS_REC },
	{ "unbindable", MS_UNBINDABLE },
	{ "runbindable", MS_UNBINDABLE | MS_REC },
};

static int decode_propagation(const msgpack_object *lx, struct spec *s,
			      struct husk_err **err)
{
	cleanup_free char *p = NULL;

	/* runc's default: the container sees the guest's later mounts
	 * under what it was given, and none of its own leak out. */
	s->root_propagation = MS_SLAVE | MS_REC;
	if (spec_opt_str(lx, "rootfsPropagation", "spec.linux", 32, &p, err) < 0)
		return -1;
	if (!p || !p[0])
		return 0;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(propagations); i++)
		if (strcmp(p, propagations[i].name) == 0) {
			s->root_propagation = propagations[i].flags;
			s->has_root_propagation = true;
			return 0;
		}
	return husk_error(err, HUSK_E_INVALID,
			  "spec.linux.rootfsPropagation: \"%s\" is not one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable",
			  p);
}

/* linux.personality: {domain: LINUX or LINUX32, flags: []}. */
static int decode_personality(const msgpack_object *lx, struct spec *s,
			      struct husk_err **err)
{
	const msgpack_object *pm;
	cleanup_free char *dom = NULL;
	cleanup_strv char **flags = NULL;
	const char *what = "spec.linux.personality";

	if (spec_opt_map(lx, "personality", "spec.linux", &pm, err) < 0)
		return -1;
	if (!pm)
		return 0;
	if (spec_opt_str(pm, "domain", what, 16, &dom, err) < 0 ||
	    spec_opt_strv(pm, "flags", what, 16, &flags, err) < 0)
		return -1;
	if (dom && strcmp(dom, "LINUX") == 0)
		s->personality = 0x0000;         /* PER_LINUX */
	else if (dom && strcmp(dom, "LINUX32") == 0)
		s->personality = 0x0008;         /* PER_LINUX32 */
	else
		return husk_error(err, HUSK_E_INVALID,
				  "%s.domain: expected LINUX or LINUX32", what);
	s->has_personality = true;
	/* The spec defines no flag names yet; runc ignores them too. */
	if (flags && flags[0])
		spec_note_add(&s->notes, "spec.linux.personality.flags",
			 "no flags are defined by the spec; ignored");
	return 0;
}

/* The device rules runc would give the cgroup: the spec's, then its
 * linux.devices, then the devices every container may use. */
static void add_device_rules(struct spec *s)
{
	char *types = husk_xcalloc(s->ndevices + 1, 1);
	int64_t *maj = husk_xcalloc(s->ndevices + 1, sizeof(*maj));
	int64_t *min = husk_xcalloc(s->ndevices + 1, sizeof(*min));

	for (size_t i = 0; i < s->ndevices; i++) {
		types[i] = s->devices[i].type;
		maj[i] = s->devices[i].major;
		min[i] = s->devices[i].minor;
	}
	cg_resources_add_devices(&s->res, types, maj, min, s->ndevices);
	free(types);
	free(maj);
	free(min);
}

int spec_decode_linux(const msgpack_object *root, struct spec *s,
		      struct husk_err **err)
{
	static const char *const known[] = {
		"namespaces", "uidMappings", "gidMappings", "timeOffsets",
		"devices", "cgroupsPath", "rootfsPropagation", "resources",
		"intelRdt", "sysctl", "seccomp", "maskedPaths",
		"readonlyPaths", "mountLabel", "personality", NULL,
	};
	const msgpack_object *lx, *o;

	if (spec_opt_map(root, "linux", "spec", &lx, err) < 0)
		return -1;
	if (!lx)
		return husk_error(err, HUSK_E_INVALID,
				  "spec.linux: missing (namespaces are required)");
	spec_note_unknown(lx, known, "spec.linux", &s->notes);
	if (spec_refuse_nonempty(lx, "timeOffsets", "spec.linux",
			    "time namespaces are not supported", err) < 0)
		return -1;
	spec_note_nonempty(lx, "mountLabel", "spec.linux",
		      "the guest kernel runs no SELinux; the VM is the boundary",
		      &s->notes);
	spec_note_nonempty(lx, "intelRdt", "spec.linux",
		      "the VM has no resctrl file system (cache and memory "
		      "bandwidth allocation are the host's)", &s->notes);
	if (decode_namespaces(lx, s, err) < 0 ||
	    decode_sysctl(lx, s, err) < 0 ||
	    decode_devices(lx, s, err) < 0 ||
	    decode_propagation(lx, s, err) < 0 ||
	    decode_personality(lx, s, err) < 0 ||
	    decode_idmaps(lx, "uidMappings", &s->uid_maps, &s->nuid_maps,
			  err) < 0 ||
	    decode_idmaps(lx, "gidMappings", &s->gid_maps, &s->ngid_maps,
			  err) < 0 ||
	    spec_opt_strv(lx, "maskedPaths", "spec.linux", SPEC_MAX_LIST,
		     &s->masked_paths, err) < 0 ||
	    spec_opt_strv(lx, "readonlyPaths", "spec.linux", SPEC_MAX_LIST,
		     &s->readonly_paths, err) < 0 ||
	    spec_opt_str(lx, "cgroupsPath", "spec.linux", 4096, &s->cgroups_path,
		    err) < 0)
		return -1;
	if (check_userns(s, err) < 0)
		return -1;
	if (spec_opt_map(lx, "resources", "spec.linux", &o, err) < 0)
		return -1;
	if (o) {
		if (cg_resources_decode(o, &s->res, err) < 0)
			return husk_error_wrap(err, "spec.linux.resources");
		s->has_resources = true;
		add_device_rules(s);
	}
	if (spec_opt_map(lx, "seccomp", "spec.linux", &o, err) < 0)
		return -1;
	if (o && oci_seccomp_decode(o, &s->seccomp, err) < 0)
		return husk_error_wrap(err, "spec.linux.seccomp");
	return 0;
}
