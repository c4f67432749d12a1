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
#include "libhusk/util.h"
#include "sandbox.h"

#define STATE_MAX (1u << 20)

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
	char path[64], buf[1024], *p;
	cleanup_fclose FILE *f = NULL;
	unsigned long long start = 0;
	int field;

	out->pid = pid;
	out->start = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return -1;
	/* comm may hold spaces and parentheses: fields restart after the
	 * last ')'.  starttime is field 22; after ") " comes field 3. */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 2;
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", &start) != 1)
		return -1;
	out->start = start;
	return 0;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	cleanup_fclose FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

bool husk_proc_alive(const struct husk_proc_ref *p)
{
	struct husk_proc_ref now;
	char st;

	if (p->pid <= 0)
		return false;
	if (husk_proc_ref(p->pid, &now) < 0)
		return false;
	if (p->start && now.start != p->start)
		return false;
	st = proc_state(p->pid);
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

static int proc_from(json_t *j, struct husk_proc_ref *p)
{
	json_t *pid = json_object_get(j, "pid");
	json_t *start = json_object_get(j, "start");

	if (!json_is_integer(pid) || !json_is_integer(start) ||
	    json_integer_value(pid) < 0 || json_integer_value(pid) > INT32_MAX)
		return -1;
	p->pid = (pid_t)json_integer_value(pid);
	p->start = (unsigned long long)json_integer_value(start);
	return 0;
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
	v = json_object_get(j, "status");
	c->status = json_is_string(v) ? status_parse(json_string_value(v)) : -1;
	if (!c->id || !c->sandbox_id || !c->bundle || !c->created ||
	    c->status < 0 || proc_from(json_object_get(j, "shim"), &c->shim)) {
		json_decref(j);
		husk_container_free(c);
		return husk_error(err, HUSK_E_INTERNAL, "state of %s is "
				  "damaged", e->id);
	}
	if ((v = json_object_get(j, "annotations")) && json_is_object(v))
		c->annotations = json_incref(v);
	if ((v = json_object_get(j, "hooks")) && json_is_object(v))
		c->hooks = json_incref(v);
	if ((v = json_object_get(j, "binds")) && json_is_array(v))
		c->binds = json_incref(v);
	if ((v = json_object_get(j, "cgroups")) && json_is_array(v))
		c->cgroups = json_incref(v);
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
	rc = write_json(e, "sandbox.json", j, err);
	json_decref(j);
	return rc;
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
	if (json_object_get(j, "netmon"))
		proc_from(json_object_get(j, "netmon"), &s->netmon);
	if (!s->id || proc_from(json_object_get(j, "hypervisor"), &s->hv) ||
	    proc_from(json_object_get(j, "proxy"), &s->proxy)) {
		json_decref(j);
		husk_sandbox_free(s);
		return husk_error(err, HUSK_E_INTERNAL, "sandbox state of %s "
				  "is damaged", e->id);
	}
	json_decref(j);
	return 0;
}

void husk_sandbox_free(struct husk_sandbox *s)
{
	free(s->id);
	free(s->accel);
	free(s->netns);
	memset(s, 0, sizeof(*s));
}
