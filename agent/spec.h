/*
 * The OCI runtime spec as the agent uses it: decoded once from the
 * MessagePack the host sends (spec.c) into these structs, so that the
 * container and process code never touches msgpack.  Everything husk
 * cannot honour fails here with an error naming the field.
 */
#ifndef HUSK_AGENT_SPEC_H
#define HUSK_AGENT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "libhusk/err.h"
#include "agent/cgroup.h"
#include "agent/oci_seccomp.h"

#define SPEC_MAX_ARGS 4096
#define SPEC_MAX_STR 65536
#define SPEC_MAX_LIST 1024

enum { CAPSET_BOUNDING, CAPSET_EFFECTIVE, CAPSET_INHERITABLE,
       CAPSET_PERMITTED, CAPSET_AMBIENT, CAPSET_N };

struct spec_rlimit {
	int resource;           /* RLIMIT_* */
	uint64_t soft, hard;
};

struct spec_process {
	bool terminal;
	uint32_t rows, cols;            /* consoleSize; 0 when absent */
	uint32_t uid, gid;
	gid_t *gids;                    /* additionalGids */
	size_t ngids;
	int64_t umask;                  /* -1: leave as is */
	char **args;                    /* at least one */
	char **env;                     /* NULL-terminated, may be empty */
	char *cwd;                      /* absolute */
	bool has_caps;                  /* capabilities given */
	uint64_t caps[CAPSET_N];        /* bit per CAP_* */
	struct spec_rlimit *rlimits;
	size_t nrlimits;
	bool no_new_privs;
	bool has_oom_score_adj;
	int oom_score_adj;
	int io_class;                   /* IOPRIO_CLASS_*; 0: not given */
	int io_prio;                    /* 0..7 */
	bool has_sched;                 /* scheduler given */
	int sched_policy;               /* SCHED_* */
	int sched_nice, sched_priority;
	uint64_t sched_flags;
	uint64_t sched_times[3];        /* runtime, deadline, period (ns) */
	char **notes;                   /* fields not applied, for the log */
};

struct spec_mount {
	char *dest;                     /* absolute, inside the container */
	char *type;                     /* may be NULL for a bind */
	char *source;
	bool bind, rec;
	unsigned long flags;            /* MS_* except bind/propagation */
	unsigned long propagation;      /* MS_PRIVATE, ... or 0 */
	char *data;                     /* options the kernel parses */
	bool copyup;                    /* tmpcopyup (a tmpfs only) */
	uint64_t rattr_set, rattr_clr;  /* MOUNT_ATTR_* for the whole tree */
};

struct spec_device {
	char *path;
	char type;                      /* 'c', 'b', 'p' */
	int64_t major, minor;
	uint32_t mode, uid, gid;
};

/* One line of /proc/PID/uid_map or gid_map. */
struct spec_idmap {
	uint32_t container_id, host_id, size;
};

struct spec {
	struct spec_process proc;
	char *root_path;                /* relative to the shared dir */
	bool root_readonly;
	char *hostname;
	struct spec_mount *mounts;
	size_t nmounts;
	int ns_flags;                   /* CLONE_NEW* to create */
	bool has_resources;
	struct cg_resources res;
	struct oci_seccomp *seccomp;    /* NULL: none */
	char **sysctl_keys, **sysctl_vals;
	size_t nsysctl;
	char **masked_paths;
	char **readonly_paths;
	char *cgroups_path;
	struct spec_device *devices;
	size_t ndevices;
	unsigned long root_propagation; /* MS_* (| MS_REC) for "/" */
	bool has_root_propagation;      /* rootfsPropagation given */
	char *domainname;
	bool has_personality;
	unsigned long personality;      /* PER_LINUX or PER_LINUX32 */
	char **notes;                   /* fields not applied, for the log */
	struct spec_idmap *uid_maps, *gid_maps; /* with CLONE_NEWUSER */
	size_t nuid_maps, ngid_maps;
};

/* Decode a whole config.json (a map). */
int spec_decode(const msgpack_object *o, struct spec **out,
		struct husk_err **err);
void spec_free(struct spec *s);

/* Decode an OCI process object (also what exec_process carries); `what`
 * prefixes the field names in errors ("process"). */
int spec_process_decode(const msgpack_object *o, const char *what,
			struct spec_process *p, struct husk_err **err);
void spec_process_free(struct spec_process *p);

/* The value of NAME in a NULL-terminated "NAME=value" list, or NULL. */
const char *spec_getenv(char *const *env, const char *name);

#endif
