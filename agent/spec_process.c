/*
 * OCI `process` decoding (spec.process, and exec_process's `process`):
 * user, capabilities, rlimits, I/O priority, scheduler and the rest,
 * with the helpers of spec.c.  Like spec.c, a fuzz target: nothing here
 * runs a system call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cap-ng.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/spec_int.h"

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{ "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE },
	{ "RLIMIT_CPU", RLIMIT_CPU }, { "RLIMIT_DATA", RLIMIT_DATA },
	{ "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
	{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_NPROC", RLIMIT_NPROC }, { "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
	{ "RLIMIT_STACK", RLIMIT_STACK },
};

static int decode_rlimits(const msgpack_object *proc, const char *parent,
			  struct spec_process *p, struct husk_err **err)
{
	const msgpack_object *a;
	char what[WHAT_MAX];
	int n;

	n = spec_opt_array(proc, "rlimits", parent, 64, &a, err);
	if (n <= 0)
		return n;
	p->rlimits = husk_xcalloc((size_t)n, sizeof(*p->rlimits));
	for (int i = 0; i < n; i++) {
		const msgpack_object *r = &a->via.array.ptr[i];
		struct spec_rlimit *rl = &p->rlimits[i];
		cleanup_free char *type = NULL;
		size_t k;

		spec_setwhat(what, "%s.rlimits[%d]", parent, i);
		if (ipc_obj_map(r, what, 8, err) < 0)
			return -1;
		if (spec_opt_str(r, "type", what, 64, &type, err) < 0)
			return -1;
		for (k = 0; type && k < HUSK_ARRAY_SIZE(rlimit_names); k++)
			if (strcmp(type, rlimit_names[k].name) == 0)
				break;
		if (!type || k == HUSK_ARRAY_SIZE(rlimit_names))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.type: unknown rlimit \"%s\"",
					  what, type ? type : "");
		rl->resource = rlimit_names[k].resource;
		char w2[WHAT_MAX];
		spec_path_of(w2, what, "soft");
		if (ipc_obj_uint(ipc_map_get(r, "soft"), w2, UINT64_MAX,
				 &rl->soft, err) < 0)
			return -1;
		spec_path_of(w2, what, "hard");
		if (ipc_obj_uint(ipc_map_get(r, "hard"), w2, UINT64_MAX,
				 &rl->hard, err) < 0)
			return -1;
		if (rl->soft > rl->hard)
			return husk_error(err, HUSK_E_INVALID,
					  "%s: soft limit above the hard limit",
					  what);
		p->nrlimits++;
	}
	return 0;
}

static const char *const capset_names[CAPSET_N] = {
	"bounding", "effective", "inheritable", "permitted", "ambient",
};

static int decode_caps(const msgpack_object *proc, const char *parent,
		       struct spec_process *p, struct husk_err **err)
{
	const msgpack_object *caps;
	char what[WHAT_MAX];

	if (spec_opt_map(proc, "capabilities", parent, &caps, err) < 0)
		return -1;
	if (!caps)
		return 0;
	p->has_caps = true;
	spec_path_of(what, parent, "capabilities");
	for (int s = 0; s < CAPSET_N; s++) {
		cleanup_strv char **names = NULL;

		if (spec_opt_strv(caps, capset_names[s], what, 64, &names, err) < 0)
			return -1;
		for (int i = 0; names && names[i]; i++) {
			const char *n = names[i];
			int cap;

			if (strncasecmp(n, "CAP_", 4) == 0)
				n += 4;
			cap = capng_name_to_capability(n);
			if (cap < 0 || cap > 63)
				return husk_error(err, HUSK_E_INVALID,
						  "%s.%s[%d]: unknown capability \"%s\"",
						  what, capset_names[s], i,
						  names[i]);
			p->caps[s] |= 1ull << cap;
		}
	}
	return 0;
}

static int decode_user(const msgpack_object *proc, const char *parent,
		       struct spec_process *p, struct husk_err **err)
{
	const msgpack_object *u, *a;
	char what[WHAT_MAX], w2[WHAT_MAX];
	uint64_t v;
	int n;

	if (spec_opt_map(proc, "user", parent, &u, err) < 0)
		return -1;
	if (!u)
		return 0;
	spec_path_of(what, parent, "user");
	spec_note_nonempty(u, "username", what,
		      "a Windows field; Linux takes the numeric ids",
		      &p->notes);
	spec_path_of(w2, what, "uid");
	if (ipc_obj_uint(ipc_map_get(u, "uid"), w2, UINT32_MAX - 1, &v,
			 err) < 0)
		return -1;
	p->uid = (uint32_t)v;
	spec_path_of(w2, what, "gid");
	if (ipc_obj_uint(ipc_map_get(u, "gid"), w2, UINT32_MAX - 1, &v,
			 err) < 0)
		return -1;
	p->gid = (uint32_t)v;
	if (spec_member(u, "umask")) {
		spec_path_of(w2, what, "umask");
		if (ipc_obj_uint(ipc_map_get(u, "umask"), w2, 0777, &v,
				 err) < 0)
			return -1;
		p->umask = (int64_t)v;
	}
	n = spec_opt_array(u, "additionalGids", what, 256, &a, err);
	if (n < 0)
		return -1;
	p->gids = husk_xcalloc((size_t)n + 1, sizeof(*p->gids));
	for (int i = 0; i < n; i++) {
		spec_setwhat(w2, "%s.additionalGids[%d]", what, i);
		if (ipc_obj_uint(&a->via.array.ptr[i], w2, UINT32_MAX - 1, &v,
				 err) < 0)
			return -1;
		p->gids[p->ngids++] = (gid_t)v;
	}
	return 0;
}

/* process.ioPriority: {class, priority}, for ioprio_set(2). */
static int decode_io_priority(const msgpack_object *proc, const char *parent,
			      struct spec_process *p, struct husk_err **err)
{
	static const char *const classes[] = {
		NULL, "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE",
	};
	const msgpack_object *io;
	cleanup_free char *cls = NULL;
	char what[WHAT_MAX], w2[WHAT_MAX];
	uint64_t v = 0;

	if (spec_opt_map(proc, "ioPriority", parent, &io, err) < 0)
		return -1;
	if (!io)
		return 0;
	spec_path_of(what, parent, "ioPriority");
	if (spec_opt_str(io, "class", what, 32, &cls, err) < 0)
		return -1;
	for (int i = 1; cls && i < 4; i++)
		if (strcmp(cls, classes[i]) == 0)
			p->io_class = i;
	if (!p->io_class)
		return husk_error(err, HUSK_E_INVALID,
				  "%s.class: expected IOPRIO_CLASS_RT, _BE or _IDLE",
				  what);
	if (spec_member(io, "priority")) {
		spec_path_of(w2, what, "priority");
		if (ipc_obj_uint(spec_member(io, "priority"), w2, 7, &v, err) < 0)
			return -1;
	}
	p->io_prio = (int)v;
	return 0;
}

/* process.scheduler: a policy for sched_setattr(2). */
static int decode_scheduler(const msgpack_object *proc, const char *parent,
			    struct spec_process *p, struct husk_err **err)
{
	static const struct {
		const char *name;
		int policy;
	} pols[] = {
		{ "SCHED_OTHER", 0 }, { "SCHED_FIFO", 1 }, { "SCHED_RR", 2 },
		{ "SCHED_BATCH", 3 }, { "SCHED_IDLE", 5 },
		{ "SCHED_DEADLINE", 6 },
	};
	static const char *const times[] = { "runtime", "deadline", "period" };
	const msgpack_object *sc;
	cleanup_free char *pol = NULL;
	cleanup_strv char **flags = NULL;
	char what[WHAT_MAX], w2[WHAT_MAX];
	size_t k;
	uint64_t u;
	int64_t i;

	if (spec_opt_map(proc, "scheduler", parent, &sc, err) < 0)
		return -1;
	if (!sc)
		return 0;
	spec_path_of(what, parent, "scheduler");
	if (spec_opt_str(sc, "policy", what, 32, &pol, err) < 0)
		return -1;
	for (k = 0; pol && k < HUSK_ARRAY_SIZE(pols); k++)
		if (strcmp(pol, pols[k].name) == 0)
			break;
	if (!pol || k == HUSK_ARRAY_SIZE(pols))
		return husk_error(err, HUSK_E_INVALID,
				  "%s.policy: unknown policy \"%s\"", what,
				  pol ? pol : "");
	p->has_sched = true;
	p->sched_policy = pols[k].policy;
	if (spec_member(sc, "nice")) {
		spec_path_of(w2, what, "nice");
		if (ipc_obj_int(spec_member(sc, "nice"), w2, -20, 19, &i, err) < 0)
			return -1;
		p->sched_nice = (int)i;
	}
	if (spec_member(sc, "priority")) {
		spec_path_of(w2, what, "priority");
		if (ipc_obj_int(spec_member(sc, "priority"), w2, 0, 99, &i,
				err) < 0)
			return -1;
		p->sched_priority = (int)i;
	}
	for (int t = 0; t < 3; t++) {
		if (!spec_member(sc, times[t]))
			continue;
		spec_path_of(w2, what, times[t]);
		if (ipc_obj_uint(spec_member(sc, times[t]), w2, UINT64_MAX, &u,
				 err) < 0)
			return -1;
		p->sched_times[t] = u;
	}
	if (spec_opt_strv(sc, "flags", what, 16, &flags, err) < 0)
		return -1;
	for (int f = 0; flags && flags[f]; f++) {
		static const struct {
			const char *name;
			uint64_t bit;
		} fl[] = {
			{ "SCHED_FLAG_RESET_ON_FORK", 0x01 },
			{ "SCHED_FLAG_RECLAIM", 0x02 },
			{ "SCHED_FLAG_DL_OVERRUN", 0x04 },
			{ "SCHED_FLAG_KEEP_POLICY", 0x08 },
			{ "SCHED_FLAG_KEEP_PARAMS", 0x10 },
			{ "SCHED_FLAG_UTIL_CLAMP_MIN", 0x20 },
			{ "SCHED_FLAG_UTIL_CLAMP_MAX", 0x40 },
		};
		size_t j;

		for (j = 0; j < HUSK_ARRAY_SIZE(fl); j++)
			if (strcmp(flags[f], fl[j].name) == 0)
				break;
		if (j == HUSK_ARRAY_SIZE(fl))
			return husk_error(err, HUSK_E_INVALID,
					  "%s.flags[%d]: unknown flag \"%s\"",
					  what, f, flags[f]);
		p->sched_flags |= fl[j].bit;
	}
	return 0;
}

int spec_process_decode(const msgpack_object *o, const char *what,
			struct spec_process *p, struct husk_err **err)
{
	static const char *const known[] = {
		"terminal", "consoleSize", "cwd", "env", "args",
		"commandLine", "rlimits", "apparmorProfile", "capabilities",
		"noNewPrivileges", "oomScoreAdj", "scheduler", "selinuxLabel",
		"ioPriority", "user", NULL,
	};
	const msgpack_object *cs;
	char w2[WHAT_MAX];

	memset(p, 0, sizeof(*p));
	p->umask = -1;
	if (ipc_obj_map(o, what, SPEC_MAX_LIST, err) < 0)
		return -1;
	spec_note_unknown(o, known, what, &p->notes);
	if (spec_opt_bool(o, "terminal", what, &p->terminal, err) < 0 ||
	    spec_opt_strv(o, "args", what, SPEC_MAX_ARGS, &p->args, err) < 0 ||
	    spec_opt_strv(o, "env", what, SPEC_MAX_ARGS, &p->env, err) < 0 ||
	    spec_opt_str(o, "cwd", what, 4096, &p->cwd, err) < 0 ||
	    spec_opt_bool(o, "noNewPrivileges", what, &p->no_new_privs, err) < 0 ||
	    decode_user(o, what, p, err) < 0 ||
	    decode_caps(o, what, p, err) < 0 ||
	    decode_rlimits(o, what, p, err) < 0)
		goto fail;
	if (!p->args || !p->args[0] || !p->args[0][0]) {
		husk_error(err, HUSK_E_INVALID, "%s.args: missing or empty",
			   what);
		goto fail;
	}
	if (!p->env)
		p->env = husk_xcalloc(1, sizeof(char *));
	if (!p->cwd)
		p->cwd = husk_xstrdup("/");
	if (p->cwd[0] != '/') {
		husk_error(err, HUSK_E_INVALID,
			   "%s.cwd: \"%s\" is not an absolute path", what,
			   p->cwd);
		goto fail;
	}
	if (spec_opt_map(o, "consoleSize", what, &cs, err) < 0)
		goto fail;
	if (cs) {
		uint64_t v;

		spec_path_of(w2, what, "consoleSize.height");
		if (ipc_obj_uint(ipc_map_get(cs, "height"), w2, 65535, &v,
				 err) < 0)
			goto fail;
		p->rows = (uint32_t)v;
		spec_path_of(w2, what, "consoleSize.width");
		if (ipc_obj_uint(ipc_map_get(cs, "width"), w2, 65535, &v,
				 err) < 0)
			goto fail;
		p->cols = (uint32_t)v;
	}
	if (spec_member(o, "oomScoreAdj")) {
		int64_t v;

		spec_path_of(w2, what, "oomScoreAdj");
		if (ipc_obj_int(ipc_map_get(o, "oomScoreAdj"), w2, -1000, 1000,
				&v, err) < 0)
			goto fail;
		p->has_oom_score_adj = true;
		p->oom_score_adj = (int)v;
	}
	spec_note_nonempty(o, "apparmorProfile", what,
		      "the guest kernel runs no AppArmor; the VM is the "
		      "boundary", &p->notes);
	spec_note_nonempty(o, "selinuxLabel", what,
		      "the guest kernel runs no SELinux; the VM is the "
		      "boundary", &p->notes);
	spec_note_nonempty(o, "commandLine", what, "a Windows field",
		      &p->notes);
	if (decode_io_priority(o, what, p, err) < 0 ||
	    decode_scheduler(o, what, p, err) < 0)
		goto fail;
	return 0;
fail:
	spec_process_free(p);
	return -1;
}

void spec_process_free(struct spec_process *p)
{
	husk_cleanup_strvp(&p->args);
	husk_cleanup_strvp(&p->env);
	free(p->cwd);
	free(p->gids);
	free(p->rlimits);
	husk_cleanup_strvp(&p->notes);
	memset(p, 0, sizeof(*p));
}

const char *spec_getenv(char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

