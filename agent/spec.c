/*
 * OCI runtime spec decoding: the host's config.json, carried as
 * MessagePack, turned into struct spec once, with every type, bound and
 * unsupported feature checked here (the process object in
 * spec_process.c, the linux object in spec_linux.c).  Errors name the
 * field with its full path ("spec.process.rlimits[2].type: unknown
 * rlimit ...").
 * This is a fuzz target (tests/fuzz/fuzz_spec.c): nothing here runs a
 * system call.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/spec_int.h"

/* A present, non-nil member of map, or NULL. */
const msgpack_object *spec_member(const msgpack_object *map,
				    const char *key)
{
	const msgpack_object *o = ipc_map_get(map, key);

	return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

/* Field names are cut at WHAT_MAX; vsnprintf keeps that quiet. */
void spec_setwhat(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, WHAT_MAX, fmt, ap);
	va_end(ap);
}

void spec_path_of(char *buf, const char *parent, const char *key)
{
	spec_setwhat(buf, "%s.%s", parent, key);
}

int spec_opt_str(const msgpack_object *map, const char *key,
		   const char *parent, size_t maxlen, char **out,
		   struct husk_err **err)
{
	const msgpack_object *o = spec_member(map, key);
	char what[WHAT_MAX];

	if (!o)
		return 0;
	spec_path_of(what, parent, key);
	free(*out);
	*out = NULL;
	return ipc_obj_str(o, what, maxlen, out, err);
}

int spec_opt_bool(const msgpack_object *map, const char *key,
		    const char *parent, bool *out, struct husk_err **err)
{
	const msgpack_object *o = spec_member(map, key);
	char what[WHAT_MAX];

	if (!o)
		return 0;
	spec_path_of(what, parent, key);
	return ipc_obj_bool(o, what, out, err);
}

int spec_opt_map(const msgpack_object *map, const char *key,
		   const char *parent, const msgpack_object **out,
		   struct husk_err **err)
{
	const msgpack_object *o = spec_member(map, key);
	char what[WHAT_MAX];

	*out = NULL;
	if (!o)
		return 0;
	spec_path_of(what, parent, key);
	if (ipc_obj_map(o, what, SPEC_MAX_LIST, err) < 0)
		return -1;
	*out = o;
	return 0;
}

/* Returns the count (0 when absent) or -1. */
int spec_opt_array(const msgpack_object *map, const char *key,
		     const char *parent, size_t maxn,
		     const msgpack_object **out, struct husk_err **err)
{
	const msgpack_object *o = spec_member(map, key);
	char what[WHAT_MAX];

	*out = NULL;
	if (!o)
		return 0;
	spec_path_of(what, parent, key);
	*out = o;
	return ipc_obj_array(o, what, maxn, err);
}

int spec_opt_strv(const msgpack_object *map, const char *key,
		    const char *parent, size_t maxn, char ***out,
		    struct husk_err **err)
{
	const msgpack_object *a;
	char what[WHAT_MAX];
	char **v;
	int n;

	n = spec_opt_array(map, key, parent, maxn, &a, err);
	if (n < 0)
		return -1;
	v = husk_xcalloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; i < n; i++) {
		spec_setwhat(what, "%s.%s[%d]", parent, key, i);
		if (ipc_obj_str(&a->via.array.ptr[i], what, SPEC_MAX_STR,
				&v[i], err) < 0) {
			husk_cleanup_strvp(&v);
			return -1;
		}
	}
	husk_cleanup_strvp(out);
	*out = v;
	return 0;
}

/* A member that husk does not implement must be absent or empty. */
int spec_refuse_nonempty(const msgpack_object *map, const char *key,
			   const char *parent, const char *why,
			   struct husk_err **err)
{
	const msgpack_object *o = spec_member(map, key);

	if (!o)
		return 0;
	if ((o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0) ||
	    (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0) ||
	    (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 0))
		return 0;
	return husk_error(err, HUSK_E_INVALID, "%s.%s: %s", parent, key, why);
}

/* Append "what: why" to a notes list (logged when the container is
 * made): a field accepted but not applicable in the VM. */
void spec_note_add(char ***notes, const char *what, const char *why)
{
	size_t n = 0;
	char **v;

	while (*notes && (*notes)[n])
		n++;
	if (n >= 64)
		return;
	v = husk_xcalloc(n + 2, sizeof(char *));
	if (n)
		memcpy(v, *notes, n * sizeof(char *));
	v[n] = husk_xasprintf("%s: %s", what, why);
	free(*notes);
	*notes = v;
}

/* A member present and not empty is noted as not applied. */
void spec_note_nonempty(const msgpack_object *map, const char *key,
			  const char *parent, const char *why, char ***notes)
{
	const msgpack_object *o = spec_member(map, key);
	char what[WHAT_MAX];

	if (!o)
		return;
	if ((o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0) ||
	    (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0) ||
	    (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 0))
		return;
	spec_path_of(what, parent, key);
	spec_note_add(notes, what, why);
}

void spec_note_unknown(const msgpack_object *map,
			const char *const *known, const char *parent,
			char ***notes)
{
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		char what[WHAT_MAX], name[64];
		size_t j, n;

		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		for (j = 0; known[j]; j++)
			if (ipc_str_is(k, known[j]))
				break;
		if (known[j])
			continue;
		/* Printable and bounded, for the log. */
		n = k->via.str.size < sizeof(name) - 1 ? k->via.str.size :
		    sizeof(name) - 1;
		for (j = 0; j < n; j++)
			name[j] = k->via.str.ptr[j] > ' ' &&
				  k->via.str.ptr[j] < 0x7f ?
				  k->via.str.ptr[j] : '?';
		name[n] = '\0';
		spec_path_of(what, parent, name);
		spec_note_add(notes, what, "not a runtime-spec field this "
			      "agent knows; ignored");
	}
}

/* ------------------------------------------------------------------ */
/* mounts                                                              */

static const struct {
	const char *name;
	unsigned long set, clear;
	int kind;       /* 0 flag, 1 bind, 2 rbind, 3 propagation,
			 * 4 tmpcopyup, 5 recursive attribute
			 * (MOUNT_ATTR_*: set, clear) */
} mount_opts[] = {
	{ "ro", MS_RDONLY, 0, 0 }, { "rw", 0, MS_RDONLY, 0 },
	{ "nosuid", MS_NOSUID, 0, 0 }, { "suid", 0, MS_NOSUID, 0 },
	{ "nodev", MS_NODEV, 0, 0 }, { "dev", 0, MS_NODEV, 0 },
	{ "noexec", MS_NOEXEC, 0, 0 }, { "exec", 0, MS_NOEXEC, 0 },
	{ "sync", MS_SYNCHRONOUS, 0, 0 }, { "async", 0, MS_SYNCHRONOUS, 0 },
	{ "dirsync", MS_DIRSYNC, 0, 0 }, { "mand", MS_MANDLOCK, 0, 0 },
	{ "nomand", 0, MS_MANDLOCK, 0 }, { "atime", 0, MS_NOATIME, 0 },
	{ "noatime", MS_NOATIME, 0, 0 }, { "diratime", 0, MS_NODIRATIME, 0 },
	{ "nodiratime", MS_NODIRATIME, 0, 0 },
	{ "relatime", MS_RELATIME, 0, 0 }, { "norelatime", 0, MS_RELATIME, 0 },
	{ "strictatime", MS_STRICTATIME, 0, 0 },
	{ "nostrictatime", 0, MS_STRICTATIME, 0 },
	{ "lazytime", MS_LAZYTIME, 0, 0 }, { "defaults", 0, 0, 0 },
	{ "bind", MS_BIND, 0, 1 }, { "rbind", MS_BIND | MS_REC, 0, 2 },
	{ "private", MS_PRIVATE, 0, 3 },
	{ "rprivate", MS_PRIVATE | MS_REC, 0, 3 },
	{ "slave", MS_SLAVE, 0, 3 }, { "rslave", MS_SLAVE | MS_REC, 0, 3 },
	{ "shared", MS_SHARED, 0, 3 }, { "rshared", MS_SHARED | MS_REC, 0, 3 },
	{ "unbindable", MS_UNBINDABLE, 0, 3 },
	{ "runbindable", MS_UNBINDABLE | MS_REC, 0, 3 },
	{ "nosymfollow", MS_NOSYMFOLLOW, 0, 0 },
	{ "symfollow", 0, MS_NOSYMFOLLOW, 0 },
	/* runc's extension: a tmpfs starts with what the image has at
	 * its destination. */
	{ "tmpcopyup", 0, 0, 4 },
	/* runtime-spec 1.1's recursive options, for the whole tree of a
	 * mount (mount_setattr(2)); an atime mode replaces the old one. */
	{ "rro", MOUNT_ATTR_RDONLY, 0, 5 }, { "rrw", 0, MOUNT_ATTR_RDONLY, 5 },
	{ "rnosuid", MOUNT_ATTR_NOSUID, 0, 5 },
	{ "rsuid", 0, MOUNT_ATTR_NOSUID, 5 },
	{ "rnodev", MOUNT_ATTR_NODEV, 0, 5 }, { "rdev", 0, MOUNT_ATTR_NODEV, 5 },
	{ "rnoexec", MOUNT_ATTR_NOEXEC, 0, 5 },
	{ "rexec", 0, MOUNT_ATTR_NOEXEC, 5 },
	{ "rnodiratime", MOUNT_ATTR_NODIRATIME, 0, 5 },
	{ "rdiratime", 0, MOUNT_ATTR_NODIRATIME, 5 },
	{ "rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0, 5 },
	{ "rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW, 5 },
	{ "rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, 5 },
	{ "rnorelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, 5 },
	{ "rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME, 5 },
	{ "ratime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, 5 },
	{ "rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME, 5 },
	{ "rnostrictatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, 5 },
};

static void data_append(char **data, const char *opt)
{
	char *n;

	if (!*data) {
		*data = husk_xstrdup(opt);
		return;
	}
	n = husk_xasprintf("%s,%s", *data, opt);
	free(*data);
	*data = n;
}

static int decode_mount_opts(const msgpack_object *m, const char *what,
			     struct spec_mount *mt, struct husk_err **err)
{
	cleanup_strv char **opts = NULL;

	if (spec_opt_strv(m, "options", what, 64, &opts, err) < 0)
		return -1;
	for (int i = 0; opts && opts[i]; i++) {
		size_t k;

		for (k = 0; k < HUSK_ARRAY_SIZE(mount_opts); k++)
			if (strcmp(opts[i], mount_opts[k].name) == 0)
				break;
		if (k == HUSK_ARRAY_SIZE(mount_opts)) {
			if (strchr(opts[i], ','))
				return husk_error(err, HUSK_E_INVALID,
						  "%s.options[%d]: \"%s\" holds a comma",
						  what, i, opts[i]);
			data_append(&mt->data, opts[i]);
			continue;
		}
		switch (mount_opts[k].kind) {
		case 0:
			mt->flags = (mt->flags | mount_opts[k].set) &
				    ~mount_opts[k].clear;
			break;
		case 1:
		case 2:
			mt->bind = true;
			mt->rec = mount_opts[k].kind == 2;
			break;
		case 4:
			mt->copyup = true;
			break;
		case 5:
			if (mount_opts[k].clear == MOUNT_ATTR__ATIME) {
				mt->rattr_set &= ~MOUNT_ATTR__ATIME;
				mt->rattr_clr |= MOUNT_ATTR__ATIME;
				mt->rattr_set |= mount_opts[k].set;
				break;
			}
			mt->rattr_set = (mt->rattr_set | mount_opts[k].set) &
					~mount_opts[k].clear;
			mt->rattr_clr = (mt->rattr_clr | mount_opts[k].clear) &
					~mount_opts[k].set;
			break;
		default:
			mt->propagation = mount_opts[k].set;
			break;
		}
	}
	return 0;
}

static int decode_mounts(const msgpack_object *root, struct spec *s,
			 struct husk_err **err)
{
	const msgpack_object *a;
	char what[WHAT_MAX];
	int n;

	n = spec_opt_array(root, "mounts", "spec", SPEC_MAX_LIST, &a, err);
	if (n <= 0)
		return n;
	s->mounts = husk_xcalloc((size_t)n, sizeof(*s->mounts));
	for (int i = 0; i < n; i++) {
		const msgpack_object *m = &a->via.array.ptr[i];
		struct spec_mount *mt = &s->mounts[i];

		s->nmounts++;
		spec_setwhat(what, "spec.mounts[%d]", i);
		if (ipc_obj_map(m, what, 16, err) < 0 ||
		    spec_opt_str(m, "destination", what, 4096, &mt->dest, err) < 0 ||
		    spec_opt_str(m, "type", what, 64, &mt->type, err) < 0 ||
		    spec_opt_str(m, "source", what, 4096, &mt->source, err) < 0 ||
		    decode_mount_opts(m, what, mt, err) < 0)
			return -1;
		if (!mt->dest || mt->dest[0] != '/')
			return husk_error(err, HUSK_E_INVALID,
					  "%s.destination: missing or not absolute",
					  what);
		if (mt->type && strcmp(mt->type, "bind") == 0)
			mt->bind = true;
		if (!mt->bind && !mt->type)
			return husk_error(err, HUSK_E_INVALID,
					  "%s.type: missing", what);
		if (mt->bind && !mt->source)
			return husk_error(err, HUSK_E_INVALID,
					  "%s.source: missing for a bind mount",
					  what);
		if (spec_refuse_nonempty(m, "uidMappings", what,
				    "idmapped mounts are not supported",
				    err) < 0 ||
		    spec_refuse_nonempty(m, "gidMappings", what,
				    "idmapped mounts are not supported",
				    err) < 0)
			return -1;
	}
	return 0;
}

int spec_decode(const msgpack_object *o, struct spec **out,
		struct husk_err **err)
{
	/* Other platforms' sections (windows, solaris, vm, zos) are
	 * noted like any unknown key. */
	static const char *const known[] = {
		"ociVersion", "process", "root", "hostname", "domainname",
		"mounts", "hooks", "annotations", "linux", NULL,
	};
	struct spec *s = husk_xcalloc(1, sizeof(*s));
	const msgpack_object *proc, *root;

	cg_resources_init(&s->res);
	if (ipc_obj_map(o, "spec", SPEC_MAX_LIST, err) < 0)
		goto fail;
	spec_note_unknown(o, known, "spec", &s->notes);
	proc = spec_member(o, "process");
	if (!proc) {
		husk_error(err, HUSK_E_INVALID, "spec.process: missing");
		goto fail;
	}
	if (spec_process_decode(proc, "spec.process", &s->proc, err) < 0)
		goto fail;
	if (spec_opt_map(o, "root", "spec", &root, err) < 0)
		goto fail;
	if (!root) {
		husk_error(err, HUSK_E_INVALID, "spec.root: missing");
		goto fail;
	}
	if (spec_opt_str(root, "path", "spec.root", 4096, &s->root_path, err) < 0 ||
	    spec_opt_bool(root, "readonly", "spec.root", &s->root_readonly,
		     err) < 0)
		goto fail;
	if (!s->root_path || !s->root_path[0]) {
		husk_error(err, HUSK_E_INVALID, "spec.root.path: missing");
		goto fail;
	}
	if (spec_opt_str(o, "hostname", "spec", 64, &s->hostname, err) < 0 ||
	    spec_opt_str(o, "domainname", "spec", 64, &s->domainname, err) < 0 ||
	    decode_mounts(o, s, err) < 0 || spec_decode_linux(o, s, err) < 0)
		goto fail;
	if (s->hostname && s->hostname[0] && !(s->ns_flags & CLONE_NEWUTS)) {
		husk_error(err, HUSK_E_INVALID,
			   "spec.hostname: needs a uts namespace");
		goto fail;
	}
	if (s->domainname && s->domainname[0] &&
	    !(s->ns_flags & CLONE_NEWUTS)) {
		husk_error(err, HUSK_E_INVALID,
			   "spec.domainname: needs a uts namespace");
		goto fail;
	}
	/* hooks run on the host; annotations are the host's business. */
	*out = s;
	return 0;
fail:
	spec_free(s);
	return -1;
}

void spec_free(struct spec *s)
{
	if (!s)
		return;
	spec_process_free(&s->proc);
	free(s->root_path);
	free(s->hostname);
	free(s->domainname);
	husk_cleanup_strvp(&s->notes);
	free(s->uid_maps);
	free(s->gid_maps);
	for (size_t i = 0; i < s->nmounts; i++) {
		free(s->mounts[i].dest);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		free(s->mounts[i].data);
	}
	free(s->mounts);
	cg_resources_free(&s->res);
	oci_seccomp_free(s->seccomp);
	husk_cleanup_strvp(&s->sysctl_keys);
	husk_cleanup_strvp(&s->sysctl_vals);
	husk_cleanup_strvp(&s->masked_paths);
	husk_cleanup_strvp(&s->readonly_paths);
	free(s->cgroups_path);
	for (size_t i = 0; i < s->ndevices; i++)
		free(s->devices[i].path);
	free(s->devices);
	free(s);
}
