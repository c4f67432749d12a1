/*
 * Container and sandbox state files.  Written atomically through the
 * store (readers never see half a file), read back with every field
 * checked: a state file is ours, but a damaged one must give an error,
 * not a crash.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "sandbox.h"

#define STATE_MAX (1u << 20)
/* The kernel's highest pid_max (PID_MAX_LIMIT on 64-bit). */
#define PID_LIMIT (4 * 1024 * 1024)

static const char *const status_names[] = {
	[HUSK_ST_CREATING] = "creating",
	[HUSK_ST_CREATED] = "created",
	[HUSK_ST_RUNNING] = "running",
	[HUSK_ST_PAUSED] = "paused",
	[HUSK_ST_STOPPED] = "stopped",
};

const char *husk_status_name(int st)
{
	if (st >= 0 && st <= HUSK_ST_STOPPED)
		return status_names[st];
	return "unknown";
}

static int status_parse(const char *s)
{
	for (int i = 0; i <= HUSK_ST_STOPPED; i++)
		if (!strcmp(status_names[i], s))
			return i;
	return -1;
}

int husk_proc_ref(pid_t pid, struct husk_proc_ref *out)
{
	out->pid = pid;
	out->start = husk_proc_starttime(pid);
	return out->start ? 0 : -1;
}

bool husk_proc_alive(const struct husk_proc_ref *p)
{
	struct husk_proc_ref now;
	char st;

	/* Without a start time the pid cannot be told from a reused one:
	 * a record without it (the process was gone when it was made, or
	 * the file is damaged) names no live process of ours. */
	if (p->pid <= 1 || p->start == 0)
		return false;
	if (husk_proc_ref(p->pid, &now) < 0)
		return false;
	if (now.start != p->start)
		return false;
	st = husk_proc_state(p->pid);
	return st && st != 'Z' && st != 'X';
}

int husk_live_status(const struct husk_container *c)
{
	switch (c->status) {
	case HUSK_ST_CREATED:
	case HUSK_ST_RUNNING:
	case HUSK_ST_PAUSED:
		if (!husk_proc_alive(&c->shim))
			return HUSK_ST_STOPPED;
		return c->status;
	default:
		return c->status;
	}
}

static json_t *proc_json(const struct husk_proc_ref *p)
{
	return json_pack("{s:i, s:I}", "pid", (int)p->pid, "start",
			 (json_int_t)p->start);
}

/* A recorded process: pid 0 is "none yet"; otherwise a pid the kernel
 * can hand out (never init) with the start time it had. */
static int proc_from(json_t *j, const char *field, struct husk_proc_ref *p,
		     struct husk_err **err)
{
	json_t *pid = json_object_get(j, "pid");
	json_t *start = json_object_get(j, "start");

	if (!json_is_integer(pid) || !json_is_integer(start))
		return husk_error(err, HUSK_E_INTERNAL, "%s: pid and start "
				  "must be integers", field);
	if (json_integer_value(pid) < 0 ||
	    json_integer_value(pid) > PID_LIMIT ||
	    json_integer_value(pid) == 1)
		return husk_error(err, HUSK_E_INTERNAL, "%s: pid %lld is not "
				  "a process husk starts", field,
				  (long long)json_integer_value(pid));
	if (json_integer_value(start) < 0)
		return husk_error(err, HUSK_E_INTERNAL, "%s: start %lld is "
				  "negative", field,
				  (long long)json_integer_value(start));
	p->pid = (pid_t)json_integer_value(pid);
	p->start = (unsigned long long)json_integer_value(start);
	return 0;
}

/* Absolute, and no ".", ".." or empty component to go elsewhere by. */
static bool path_clean(const char *path)
{
	const char *p = path;

	if (!path || path[0] != '/')
		return false;
	while (*p) {
		const char *q;
		size_t n;

		p++;
		q = strchrnul(p, '/');
		n = (size_t)(q - p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = q;
	}
	return true;
}

/* path is below dir (lexically; dir without a trailing slash). */
static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && path[n] == '/' && path[n + 1];
}

int husk_state_cgroup_check(const char *path, struct husk_err **err)
{
	if (!path_clean(path) || !path_below(path, "/sys/fs/cgroup")) {
		cleanup_free char *shown = husk_escape(path, strlen(path));

		return husk_error(err, HUSK_E_INVALID, "`%s` is not a "
				  "directory below /sys/fs/cgroup", shown);
	}
	return 0;
}

int husk_state_netns_check(const char *root, const char *sid,
			   const char *path, bool created,
			   struct husk_err **err)
{
	static const char *const places[] = { "/var/run/netns",
					      "/run/netns", "/proc", NULL };
	cleanup_free char *own = husk_xasprintf("%s/%s/netns", root, sid);
	cleanup_free char *cached = husk_xasprintf("%s/%s/" HUSK_VM_SUBDIR
						   "/netns", root, sid);
	cleanup_free char *shown = husk_escape(path, strlen(path));

	/* One husk made is unmounted and unlinked by delete: only ever its
	 * own file in the sandbox's directory. */
	if (created) {
		/* or the one a VM from the cache brought (sandbox/cache.c) */
		if (strcmp(path, own) && strcmp(path, cached))
			return husk_error(err, HUSK_E_INVALID, "network "
					  "namespace `%s` husk made is not "
					  "`%s`", shown, own);
		return 0;
	}
	if (path_clean(path)) {
		if (path_below(path, root))
			return 0;
		for (const char *const *pl = places; *pl; pl++)
			if (path_below(path, *pl))
				return 0;
	}
	return husk_error(err, HUSK_E_INVALID, "network namespace `%s` is not "
			  "below the state directory, /var/run/netns, "
			  "/run/netns or /proc", shown);
}

static int write_json(struct husk_entry *e, const char *name, json_t *j,
		      struct husk_err **err)
{
	cleanup_free char *text = json_dumps(j, JSON_COMPACT |
						JSON_PRESERVE_ORDER);

	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "encode %s", name);
	return husk_entry_write(e, name, text, strlen(text), err);
}

static json_t *read_json(struct husk_entry *e, const char *name,
			 struct husk_err **err)
{
	cleanup_free char *text = NULL;
	json_error_t jerr;
	size_t len;
	json_t *j;

	if (husk_entry_read(e, name, STATE_MAX, &text, &len, err) < 0)
		return NULL;
	j = json_loadb(text, len, 0, &jerr);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		husk_error(err, HUSK_E_INTERNAL, "%s of %s is damaged: %s",
			   name, e->id, j ? "not an object" : jerr.text);
		return NULL;
	}
	return j;
}

int husk_container_write(struct husk_entry *e, const struct husk_container *c,
			 struct husk_err **err)
{
	json_t *j;
	int rc;

	/* "o" steals a reference: the defaults are new, the members are
	 * the container's and get one of their own. */
	j = json_pack("{s:s, s:s, s:b, s:s, s:s, s:o, s:s, s:o, s:o, s:o, "
		      "s:s}",
		      "id", c->id, "sandbox_id", c->sandbox_id,
		      "is_sandbox", c->is_sandbox, "bundle", c->bundle,
		      "status", husk_status_name(c->status),
		      "shim", proc_json(&c->shim), "created", c->created,
		      "annotations", c->annotations ?
				     json_incref(c->annotations) :
				     json_object(),
		      "hooks", c->hooks ? json_incref(c->hooks) : json_null(),
		      "binds", c->binds ? json_incref(c->binds) :
				json_array(),
		      "owner", c->owner ? c->owner : "");
	if (j && c->cgroups)
		json_object_set(j, "cgroups", c->cgroups);
	if (j && c->dimms && json_array_size(c->dimms))
		json_object_set(j, "dimms", c->dimms);
	if (j && c->grown_vcpus)
		json_object_set_new(j, "grown_vcpus",
				    json_integer(c->grown_vcpus));
	if (j && c->sized_mb)
		json_object_set_new(j, "sized_mb", json_integer(c->sized_mb));
	if (j && c->sized_vcpus)
		json_object_set_new(j, "sized_vcpus",
				    json_integer(c->sized_vcpus));
	if (!j)
		return husk_error(err, HUSK_E_INTERNAL, "encode state of %s",
				  c->id);
	rc = write_json(e, "state.json", j, err);
	json_decref(j);
	return rc;
}

static char *jstrdup(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? husk_xstrdup(json_string_value(v)) : NULL;
}

/* The fields that name the container and what it runs: without them
 * right nothing else of the file can be trusted. */
static int container_core(struct husk_entry *e, json_t *j,
			  struct husk_container *c, struct husk_err **err)
{
	json_t *v;

	if (!c->id || strcmp(c->id, e->id))
		return husk_error(err, HUSK_E_INTERNAL, "id is not `%s`",
				  e->id);
	if (!c->sandbox_id)
		return husk_error(err, HUSK_E_INTERNAL, "sandbox_id missing");
	if (husk_id_validate(c->sandbox_id, "sandbox_id", err) < 0)
		return -1;
	if (c->is_sandbox && strcmp(c->sandbox_id, c->id))
		return husk_error(err, HUSK_E_INTERNAL, "a sandbox's "
				  "sandbox_id is not its id");
	if (!c->bundle || c->bundle[0] != '/')
		return husk_error(err, HUSK_E_INTERNAL, "bundle is not an "
				  "absolute path");
	if (!c->created)
		return husk_error(err, HUSK_E_INTERNAL, "created missing");
	v = json_object_get(j, "status");
	c->status = json_is_string(v) ? status_parse(json_string_value(v)) : -1;
	if (c->status < 0)
		return husk_error(err, HUSK_E_INTERNAL, "status unknown");
	return proc_from(json_object_get(j, "shim"), "shim", &c->shim, err);
}

/* Cgroup directories delete removes: each below /sys/fs/cgroup, else
 * left alone with a warning (the rest of the clean-up goes on). */
static json_t *cgroups_from(const char *id, json_t *v)
{
	json_t *out = json_array(), *d;
	size_t i;

	json_array_foreach(v, i, d) {
		cleanup_err struct husk_err *e = NULL;

		if (!json_is_string(d)) {
			log_warnx("state of %s: cgroups[%zu] is not a string: "
				  "ignored", id, i);
			continue;
		}
		if (husk_state_cgroup_check(json_string_value(d), &e) < 0) {
			log_warnx("state of %s: cgroups[%zu]: %s: left alone",
				  id, i, e->msg);
			continue;
		}
		json_array_append(out, d);
	}
	return out;
}

int husk_container_read(struct husk_entry *e, struct husk_container *c,
			struct husk_err **err)
{
	json_t *j, *v;

	memset(c, 0, sizeof(*c));
	j = read_json(e, "state.json", err);
	if (!j)
		return -1;
	c->id = jstrdup(j, "id");
	c->sandbox_id = jstrdup(j, "sandbox_id");
	c->bundle = jstrdup(j, "bundle");
	c->created = jstrdup(j, "created");
	c->owner = jstrdup(j, "owner");
	c->is_sandbox = json_is_true(json_object_get(j, "is_sandbox"));
	if (container_core(e, j, c, err) < 0) {
		json_decref(j);
		husk_container_free(c);
		return husk_error_wrap(err, "state of %s is damaged", e->id);
	}
	if ((v = json_object_get(j, "annotations")) && json_is_object(v))
		c->annotations = json_incref(v);
	if ((v = json_object_get(j, "hooks")) && json_is_object(v)) {
		cleanup_err struct husk_err *he = NULL;

		/* Hooks run as root at delete: only well-formed ones. */
		if (husk_hooks_validate(v, &he) == 0)
			c->hooks = json_incref(v);
		else
			log_warnx("state of %s: %s: hooks not run", e->id,
				  he->msg);
	}
	if ((v = json_object_get(j, "binds")) && json_is_array(v))
		c->binds = json_incref(v);
	if ((v = json_object_get(j, "cgroups")) && json_is_array(v))
		c->cgroups = cgroups_from(e->id, v);
	if ((v = json_object_get(j, "dimms")) && json_is_array(v))
		c->dimms = json_incref(v);
	v = json_object_get(j, "grown_vcpus");
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) <= 1024)
		c->grown_vcpus = (unsigned)json_integer_value(v);
	v = json_object_get(j, "sized_mb");
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) <= (1 << 22))
		c->sized_mb = (unsigned)json_integer_value(v);
	v = json_object_get(j, "sized_vcpus");
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) <= 1024)
		c->sized_vcpus = (unsigned)json_integer_value(v);
	json_decref(j);
	return 0;
}

void husk_container_free(struct husk_container *c)
{
	free(c->id);
	free(c->sandbox_id);
	free(c->bundle);
	free(c->created);
	free(c->owner);
	json_decref(c->annotations);
	json_decref(c->hooks);
	json_decref(c->binds);
	json_decref(c->cgroups);
	json_decref(c->dimms);
	memset(c, 0, sizeof(*c));
}

json_t *husk_container_oci_state(const struct husk_container *c, int status)
{
	json_t *st;

	st = json_pack("{s:s, s:s, s:s, s:i, s:s, s:o}",
		       "ociVersion", "1.0.2", "id", c->id,
		       "status", husk_status_name(status),
		       "pid", status == HUSK_ST_STOPPED ? 0 : (int)c->shim.pid,
		       "bundle", c->bundle,
		       "annotations", c->annotations ?
				      json_incref(c->annotations) :
				      json_object());
	if (st) {
		json_object_set_new(st, "created", json_string(c->created));
		json_object_set_new(st, "owner", json_string(c->owner ?
							     c->owner : ""));
	}
	return st;
}

int husk_sandbox_write(struct husk_entry *e, const struct husk_sandbox *s,
		       struct husk_err **err)
{
	json_t *j;
	int rc;

	j = json_pack("{s:s, s:o, s:o, s:s, s:s?, s:b}", "id", s->id,
		      "hypervisor", proc_json(&s->hv),
		      "proxy", proc_json(&s->proxy),
		      "accel", s->accel ? s->accel : "",
		      "netns", s->netns, "netns_created", s->netns_created);
	if (!j)
		return husk_error(err, HUSK_E_INTERNAL, "encode sandbox %s",
				  s->id);
	if (s->netmon.pid > 0)
		json_object_set_new(j, "netmon", proc_json(&s->netmon));
	if (json_array_size(s->cgroups))
		json_object_set(j, "cgroups", s->cgroups);
	if (s->clone_memory_mb)
		json_object_set_new(j, "clone", json_pack(
			"{s:i, s:i, s:b}", "vcpus", s->clone_vcpus,
			"memory_mb", s->clone_memory_mb,
			"finished", s->clone_finished));
	rc = write_json(e, "sandbox.json", j, err);
	json_decref(j);
	return rc;
}

static int sandbox_core(struct husk_entry *e, json_t *j,
			struct husk_sandbox *s, struct husk_err **err)
{
	if (!s->id || strcmp(s->id, e->id))
		return husk_error(err, HUSK_E_INTERNAL, "id is not `%s`",
				  e->id);
	if (proc_from(json_object_get(j, "hypervisor"), "hypervisor", &s->hv,
		      err) < 0 ||
	    proc_from(json_object_get(j, "proxy"), "proxy", &s->proxy,
		      err) < 0)
		return -1;
	if (json_object_get(j, "netmon") &&
	    proc_from(json_object_get(j, "netmon"), "netmon", &s->netmon,
		      err) < 0)
		return -1;
	return 0;
}

/*
 * The namespace delete scrubs of taps (and, if husk made it, unmounts
 * and unlinks): one in a place namespaces are kept, and never the
 * host's, else forgotten with a warning.
 */
static void netns_from(struct husk_entry *e, struct husk_sandbox *s)
{
	cleanup_err struct husk_err *ne = NULL;

	if (!s->netns)
		return;
	if (husk_state_netns_check(e->store->root, s->id, s->netns,
				   s->netns_created, &ne) < 0) {
		log_warnx("sandbox state of %s: %s: left alone", e->id,
			  ne->msg);
	} else if (husk_netns_is_host(s->netns)) {
		cleanup_free char *shown = husk_escape(s->netns,
						       strlen(s->netns));

		log_warnx("sandbox state of %s: network namespace `%s` is "
			  "the host's: left alone", e->id, shown);
	} else {
		return;
	}
	free(s->netns);
	s->netns = NULL;
	s->netns_created = false;
}

int husk_sandbox_read(struct husk_entry *e, struct husk_sandbox *s,
		      struct husk_err **err)
{
	json_t *j;

	memset(s, 0, sizeof(*s));
	j = read_json(e, "sandbox.json", err);
	if (!j)
		return -1;
	s->id = jstrdup(j, "id");
	s->accel = jstrdup(j, "accel");
	s->netns = jstrdup(j, "netns");
	s->netns_created = json_is_true(json_object_get(j, "netns_created"));
	{
		json_t *cl = json_object_get(j, "clone");
		json_int_t v = json_integer_value(json_object_get(cl, "vcpus"));
		json_int_t m = json_integer_value(json_object_get(cl,
								  "memory_mb"));

		if (v > 0 && v <= 1024 && m > 0 && m <= (1 << 22)) {
			s->clone_vcpus = (unsigned)v;
			s->clone_memory_mb = (unsigned)m;
			s->clone_finished = json_is_true(json_object_get(
				cl, "finished"));
		}
	}
	if (sandbox_core(e, j, s, err) < 0) {
		json_decref(j);
		husk_sandbox_free(s);
		return husk_error_wrap(err, "sandbox state of %s is damaged",
				       e->id);
	}
	netns_from(e, s);
	if (json_is_array(json_object_get(j, "cgroups")))
		s->cgroups = cgroups_from(e->id, json_object_get(j, "cgroups"));
	json_decref(j);
	return 0;
}

void husk_sandbox_free(struct husk_sandbox *s)
{
	free(s->id);
	free(s->accel);
	free(s->netns);
	json_decref(s->cgroups);
	memset(s, 0, sizeof(*s));
}
