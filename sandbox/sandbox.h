/*
 * The sandbox library: what the runtime CLI (cmd/husk) and the
 * containerd shim share.  A sandbox is one VM with its helpers
 * (husk-hypervisor, husk-proxy) and a state directory; containers live
 * in a sandbox, each with a husk-shim per process on the host.
 *
 * State under the root (--root, /run/husk):
 *   <root>/<id>/state.json      every container (atomic writes, flock)
 *   <root>/<sandbox>/sandbox.json   the sandbox's helpers
 *   <root>/<sandbox>/{hv,proxy,agent}.sock, *.log, shared/, share-stage/
 */
#ifndef HUSK_SANDBOX_H
#define HUSK_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "libhusk/err.h"
#include "libhusk/store.h"

/* ------------------------------------------------------------ config */

/* Effective configuration: husk.conf(5) over the built-in defaults. */
struct husk_config {
	char *source;                   /* file read, or NULL */
	/* [hypervisor] */
	char *hypervisor_path;          /* husk-hypervisor */
	char *qemu_path;
	char *virtiofsd_path;
	char *kernel;
	char *initrd;
	char *machine_type;
	char *accel;                    /* auto|kvm|tcg */
	char *kernel_params;
	char *shared_fs;                /* virtio-fs|virtio-9p */
	unsigned vcpus, max_vcpus;
	unsigned memory_mb, max_memory_mb, memory_slots;
	unsigned tcg_cache_mb;          /* TCG: QEMU's translation cache */
	bool console_log;
	unsigned share_size_mb;         /* the share's tmpfs (docs/share.md) */
	unsigned share_inodes;
	unsigned console_log_max_kb;    /* rotated once at this size */
	unsigned qemu_uid_base, qemu_uid_count; /* QEMU's uids, one each */
	char *kvm_group;                /* "" : /dev/kvm's own group */
	/* [agent] */
	unsigned agent_timeout;         /* seconds */
	char *agent_log_level;
	/* [proxy] */
	char *proxy_path;
	char *proxy_user;               /* name, "uid:gid", "root" or "" */
	unsigned proxy_poll_us;         /* --poll-us */
	/* [shim] */
	char *shim_path;
	/* [netmon] */
	bool netmon_enable;
	char *netmon_path;
	/* [runtime] */
	char *network_model;            /* tcfilter|macvtap|none */
	bool host_network;              /* allow a spec without a netns */
	bool sandbox_cgroup_only;       /* the VM's processes in the
					 * sandbox container's host cgroup */
	bool debug;
	unsigned hook_timeout;          /* seconds, when a hook has none */
	/* [factory] */
	bool factory_template;
	char *factory_template_path;    /* a tmpfs husk mounts (factory.c) */
	unsigned factory_memory_mb;     /* [hypervisor] memory_mb as read */
	unsigned factory_cache;          /* VMs husk-cache keeps booted */
};

/* [factory] template_path's default (docs/factory.md). */
#define HUSK_FACTORY_PATH "/run/husk-factory/template"

void husk_config_defaults(struct husk_config *c);
int husk_config_load(struct husk_config *c, const char *path, bool must,
		     struct husk_err **err);
void husk_config_free(struct husk_config *c);
int husk_config_print(const struct husk_config *c, FILE *out);
/* Directory the running binary lives in (for sibling helpers). */
const char *husk_exe_dir(void);
/* The user `make install` creates for the proxy; [proxy] user "" means
 * this one when it exists. */
#define HUSK_PROXY_USER "husk-proxy"
/* [factory] cache's bound. */
#define HUSK_CACHE_MAX 16
/* The ids [proxy] user names; *set is false for root. */
int husk_proxy_ids(const char *spec, bool *set, uid_t *uid, gid_t *gid,
		   struct husk_err **err);

/* ------------------------------------------------------------ bundle */

/*
 * A bundle as checked.  The root and every bind source are resolved
 * once (relative ones beneath the bundle, never out of it) and kept as
 * O_PATH descriptors: mount from those (/proc/self/fd/N, open_tree),
 * not from the paths, so what was checked is what is mounted.
 */
struct husk_bundle {
	char *path;     /* absolute bundle directory */
	char *rootfs;   /* absolute root file system, resolved */
	int rootfd;     /* O_PATH of rootfs, a directory, not the host's */
	json_t *spec;   /* config.json, validated */
	size_t nsrcs;   /* = the number of spec mounts */
	struct husk_bundle_src {
		int fd;         /* O_PATH of mounts[i]'s bind source, or -1 */
		char *path;     /* its absolute path, or NULL */
	} *srcs;
};

int husk_bundle_load(const char *bundle, struct husk_bundle *b,
		     struct husk_err **err);
void husk_bundle_free(struct husk_bundle *b);
/* Check every field husk reads; the error names the field. */
int husk_spec_validate(const json_t *spec, struct husk_err **err);
/* An OCI process object (exec --process); errors say "process.x". */
int husk_process_validate(const json_t *process, struct husk_err **err);
/* The spec's "hooks" object alone (state.json keeps it for delete). */
int husk_hooks_validate(const json_t *hooks, struct husk_err **err);
const char *husk_spec_annotation(const json_t *spec, const char *key);
bool husk_cap_known(const char *name);

/* ------------------------------------------------------------- state */

enum husk_status {
	HUSK_ST_CREATING = 0,
	HUSK_ST_CREATED,
	HUSK_ST_RUNNING,
	HUSK_ST_PAUSED,
	HUSK_ST_STOPPED,
};

const char *husk_status_name(int st);

struct husk_proc_ref {
	pid_t pid;
	unsigned long long start;       /* /proc/<pid>/stat starttime */
};

/* state.json of one container. */
struct husk_container {
	char *id;
	char *sandbox_id;
	bool is_sandbox;
	char *bundle;
	int status;                     /* as recorded; see husk_live_status */
	struct husk_proc_ref shim;      /* the container's pid for callers */
	char *created;                  /* RFC 3339 */
	json_t *annotations;            /* object */
	json_t *hooks;                  /* spec's hooks, kept for poststop */
	json_t *binds;                  /* array: host paths mounted in share */
	json_t *cgroups;                /* array: host cgroup dirs husk made */
	/* What was hot-plugged into the VM for this container (joining a
	 * pod, or `update`), to give back when it goes or shrinks: DIMMs
	 * (array of {id, size_mb}) and vCPUs. */
	json_t *dimms;
	unsigned grown_vcpus;
	/* What its limits account for in the VM now (MiB, vCPUs). */
	unsigned sized_mb, sized_vcpus;
	char *owner;
};

/* sandbox.json: the sandbox's helpers. */
struct husk_sandbox {
	char *id;
	struct husk_proc_ref hv, proxy;
	char *accel;
	char *netns;                    /* path, or NULL */
	bool netns_created;
	struct husk_proc_ref netmon;    /* pid 0: none */
	/* A clone of the template (clone.c): the size it booted with,
	 * 0 for a cold boot; finished once reseeded, clocked and sized. */
	unsigned clone_vcpus, clone_memory_mb;
	bool clone_finished;
	/* [runtime] sandbox_cgroup_only: the spec's linux.cgroupsPath the
	 * driver (so QEMU and virtiofsd), the proxy and netmon go into as
	 * they start (the caller's string, not kept), and the directories
	 * made for them, removed once they are gone. */
	const char *cgroups_path;
	json_t *cgroups;
};

int husk_container_read(struct husk_entry *e, struct husk_container *c,
			struct husk_err **err);
int husk_container_write(struct husk_entry *e, const struct husk_container *c,
			 struct husk_err **err);
void husk_container_free(struct husk_container *c);
json_t *husk_container_oci_state(const struct husk_container *c,
				 int status);
int husk_sandbox_read(struct husk_entry *e, struct husk_sandbox *s,
		      struct husk_err **err);
int husk_sandbox_write(struct husk_entry *e, const struct husk_sandbox *s,
		       struct husk_err **err);
void husk_sandbox_free(struct husk_sandbox *s);

/* Checks on paths a state file names, so that a damaged file cannot
 * steer delete: a cgroup directory husk made (below /sys/fs/cgroup, no
 * "..") and a network namespace (the one husk made at
 * <root>/<sid>/netns, or one below the state directory, /var/run/netns,
 * /run/netns or /proc).  The error shows the path escaped. */
int husk_state_cgroup_check(const char *path, struct husk_err **err);
int husk_state_netns_check(const char *root, const char *sid,
			   const char *path, bool created,
			   struct husk_err **err);

/* Is the process still the one recorded (pid reuse checked by start
 * time; a zombie counts as gone)? */
bool husk_proc_alive(const struct husk_proc_ref *p);
int husk_proc_ref(pid_t pid, struct husk_proc_ref *out);
/* The status as it is now: a created/running/paused container whose
 * shim is gone is stopped. */
int husk_live_status(const struct husk_container *c);

/* ------------------------------------------------------------ helpers */

/* fork+exec a helper detached from our session: stdin /dev/null,
 * stdout and stderr to log (appended), every other descriptor closed
 * except keep_fds (libhusk/spawn.h).  Returns the pid. */
pid_t husk_spawn(char *const argv[], const char *log, const int *keep_fds,
		 int nkeep, struct husk_err **err);
/* SIGTERM, wait up to ms, then SIGKILL; only if p is still that process. */
void husk_proc_stop(const struct husk_proc_ref *p, unsigned ms);
/* Socket path in a sandbox directory, checked against sun_path's size. */
int husk_sock_path(const char *dir, const char *name, char **out,
		   struct husk_err **err);

/* --------------------------------------------------------- the VM */

struct husk_sbx_paths {
	char *dir;              /* <root>/<sandbox> */
	char *hv_sock, *proxy_sock, *agent_sock;
	char *shared;           /* what virtiofsd serves: read-only view */
	char *stage;            /* the share's tmpfs, where the host builds */
	char *hv_log, *proxy_log, *console_log;
};

int husk_sandbox_paths(const char *root, const char *sid,
		       struct husk_sbx_paths *p, struct husk_err **err);
void husk_sandbox_paths_free(struct husk_sbx_paths *p);

/* Start the VM and the helpers of a new sandbox (its entry e locked);
 * every started process is recorded in sandbox.json as it starts. */
int husk_sandbox_start(struct husk_entry *e, const struct husk_config *cfg,
		       const char *root, const char *sid,
		       const char *hostname, struct husk_sandbox *s,
		       struct husk_err **err);
/* [runtime] sandbox_cgroup_only: pid into s->cgroups_path (nothing
 * without it), the directories made recorded in sandbox.json. */
int husk_sandbox_cgroup_enter(struct husk_entry *e, struct husk_sandbox *s,
			      pid_t pid, struct husk_err **err);
/* husk_sandbox_start in two halves, so that the caller prepares the
 * container's host side while the guest boots: launch starts the
 * driver, QEMU and the proxy (*ready: the proxy's ready pipe, to
 * close), ready waits for the agent on it and creates the sandbox in
 * the guest; its network comes after (husk_net_setup: husk_ct_create
 * runs the prestart and createRuntime hooks, which may add links,
 * first). */
int husk_sandbox_launch(struct husk_entry *e, const struct husk_config *cfg,
			const char *root, const char *sid,
			struct husk_sandbox *s, int *ready,
			struct husk_err **err);
int husk_sandbox_ready(struct husk_entry *e, const struct husk_config *cfg,
		       const char *root, const char *sid,
		       const char *hostname, struct husk_sandbox *s,
		       int ready, struct husk_err **err);
/* The wait for the guest's agent on the proxy's ready pipe (the first
 * half of husk_sandbox_ready; husk-cache boots VMs ahead with it). */
int husk_sandbox_wait_agent(const struct husk_config *cfg, const char *root,
			    const char *sid, const struct husk_sandbox *s,
			    int ready, struct husk_err **err);
/* Stop the VM and helpers, whatever state they are in, and unmount the
 * share.  force skips the polite steps. */
int husk_sandbox_stop(const char *root, const struct husk_sandbox *s,
		      bool force, struct husk_err **err);

/* ------------------------------------------------------- VM cache */
/* sandbox/cache.c; docs/factory-cache.md */

/* A sandbox's VM lives in <root>/<sid>/HUSK_VM_SUBDIR when it came from
 * the cache (the cached VM's directory renamed there), else in
 * <root>/<sid> itself; husk_sandbox_paths says which. */
#define HUSK_VM_SUBDIR "factory-vm"
/* The cache's directory below a root: its socket, its record and the
 * cached VMs, each a store entry (ids cannot start with '.'). */
#define HUSK_FACTORY_DIR ".factory"
#define HUSK_CACHE_SOCK "cache.sock"
#define HUSK_CACHE_RECORD "cache.json"

/* What a VM booted ahead must share with the sandbox that takes it: the
 * configuration that reaches the driver, QEMU and the guest. */
char *husk_cache_fingerprint(const struct husk_config *cfg);
/* For a new sandbox: take a VM from the cache when [factory] cache is
 * set and the spec can use one (a network namespace husk makes).
 * 1: adopted (s records its helpers and network namespace; the agent
 * has answered, so husk_sandbox_ready takes ready -1); 0: boot cold
 * (logged why); -1 with err: a failure after the VM was ours (s
 * records what to stop). */
int husk_cache_take(struct husk_entry *e, const struct husk_config *cfg,
		    const char *root, const char *sid, const json_t *spec,
		    struct husk_sandbox *s, struct husk_err **err);
/* Boot one VM ahead as entry `name` of the store below the factory
 * directory fdir (husk-cache's booter); s gets its helpers. */
int husk_cache_boot(const struct husk_config *cfg, const char *fdir,
		    const char *name, struct husk_sandbox *s,
		    struct husk_err **err);
/* Stop a cached VM and remove its directory (a missing one is fine). */
int husk_cache_vm_stop(const char *fdir, const char *name,
		       struct husk_err **err);
/* Every cached VM below fdir stopped and removed; returns how many. */
int husk_cache_sweep(const char *fdir, struct husk_err **err);
/* husk factory init, status, destroy: start husk-cache for the store at
 * root and wait until it answers (a dead one's leftovers removed
 * first); its cache_status answer; the daemon, its VMs and its
 * directory gone, whether it was alive or not. */
int husk_cache_init(const struct husk_config *cfg, const char *root,
		    struct husk_err **err);
int husk_cache_status(const char *root, json_t **out, struct husk_err **err);
int husk_cache_destroy(const char *root, struct husk_err **err);

/* The spec as the guest gets it (docs/agent-protocol.md). */
json_t *husk_guest_spec(const json_t *spec, const char *cid);

/* sandbox/share.c; docs/share.md */
/* The share's tmpfs (staging) and its read-only view (served). */
int husk_share_setup(const struct husk_config *cfg,
		     const struct husk_sbx_paths *p, struct husk_err **err);
/* Unmount the view and the tmpfs with every bind in them. */
void husk_share_teardown(const struct husk_sbx_paths *p);
/* Is this spec mount a bind (type bind, or option bind/rbind)? */
bool husk_mount_is_bind(const json_t *m);
/* Bind the container's root and bind-mount sources into the share,
 * beneath descriptors, nosuid,nodev, read-only where the spec says;
 * every mount made is appended to binds (so that a failure half-way
 * still gets undone). */
int husk_share_container(const struct husk_sbx_paths *p, const char *cid,
			 const struct husk_bundle *b, json_t *binds,
			 struct husk_err **err);
void husk_unshare_container(const struct husk_sbx_paths *p, const char *cid);

/* ----------------------------------------------------------- factory */

/* VM templates (factory.c, clone.c; docs/factory.md). */
struct husk_tmpl_paths {
	char *dir, *lock, *memory, *state, *manifest, *vm;
	char *hv_sock, *agent_sock, *hv_log, *console_log, *driver;
	char *share;
};
void husk_tmpl_paths(const struct husk_config *cfg, struct husk_tmpl_paths *p);
void husk_tmpl_paths_free(struct husk_tmpl_paths *p);
enum {
	HUSK_TMPL_OK = 0,
	HUSK_TMPL_DIFFERS,      /* made for another configuration: boot cold */
	HUSK_TMPL_STALE,        /* damaged, or its makers changed: rebuild */
	HUSK_TMPL_ABSENT,
};
/* The manifest a template made for cfg would have (no sizes yet). */
json_t *husk_factory_want(const struct husk_config *cfg,
			  struct husk_err **err);
/* have (a manifest read) against want, and the files in dir: one of
 * HUSK_TMPL_OK/DIFFERS/STALE, with why filled for the last two. */
int husk_factory_compare(const json_t *have, const json_t *want,
			 const char *dir, char *why, size_t n);
/* The template as it stands: HUSK_TMPL_*, or -1 with *err. */
int husk_factory_check(const struct husk_config *cfg, json_t **have,
		       json_t **want, char *why, size_t n,
		       struct husk_err **err);
/* The state file's checksum, as the manifest keeps it (hex). */
int husk_factory_hash(const char *path, char *hex, size_t n);
unsigned husk_tmpl_max_memory(const struct husk_config *cfg);
/* flock (LOCK_SH/LOCK_EX) of <template_path>.lock: the descriptor. */
int husk_factory_lock(const struct husk_config *cfg, int op,
		      struct husk_err **err);
/* Remove the template (caller holds the lock): driver, tmpfs, folder. */
int husk_factory_remove(const struct husk_config *cfg, struct husk_err **err);
int husk_factory_init(const struct husk_config *cfg, bool *made,
		      struct husk_err **err);
int husk_factory_status(const struct husk_config *cfg, json_t **out,
			struct husk_err **err);
int husk_factory_destroy(const struct husk_config *cfg, struct husk_err **err);
/* For a new sandbox: *manifest is the template to clone (made first when
 * there is none, or a damaged one), NULL to boot cold (logged why);
 * *lock is held until the clone's QEMU has its files. */
int husk_factory_prepare(const struct husk_config *cfg, json_t **manifest,
			 int *lock, struct husk_err **err);
/* create params for a clone of the template tmpl (its manifest). */
json_t *husk_clone_params(const struct husk_config *cfg, const json_t *tmpl,
			  const char *agent_sock, const char *console_log,
			  const char *shared);
/* A clone's first steps once its agent answers: the guest's RNG
 * reseeded from the host's, its clock set, vCPUs and memory plugged up
 * to cfg's size.  Nothing for a cold sandbox. */
int husk_clone_finish(struct husk_entry *e, const struct husk_config *cfg,
		      const char *root, struct husk_sandbox *s,
		      struct husk_err **err);
/* wait_ready of vm.c: a helper's socket answers, or it died. */
int husk_wait_ready(const char *what, pid_t pid, const char *sock,
		    const char *expect, const char *method,
		    unsigned timeout_s, const char *log,
		    struct husk_err **err);

/* One call to a component's socket with JSON params and result. */
int husk_rpc_call(const char *sock, const char *expect, const char *method,
		  const json_t *params, int timeout_ms, json_t **result,
		  const int *fds, int nfds, struct husk_err **err);

/* -------------------------------------------------------- lifecycle */

struct husk_create_opts {
	const char *pid_file;
	const char *console_socket;
	bool detach;            /* no terminal of ours to hand the shim */
	/* The shim's stdin, stdout, stderr (-1: ours); NULL: all ours. */
	const int *stdio;
	pid_t *shim_pid;        /* out, may be NULL */
	/* A pod's member only, and not NULL: husk_ct_create stops before
	 * the agent's create_container, with nothing locked, and leaves
	 * the call here for the caller to make (bounded by
	 * HUSK_CREATE_TIMEOUT_MS) and then husk_ct_create_finish. */
	struct husk_ct_pending **pending;
};

/* A member's create between the host's half and the guest's. */
struct husk_ct_pending {
	char *id, *sid;
	struct husk_bundle b;
	bool terminal;
	json_t *params;         /* create_container's; the caller takes it */
	/* set by husk_ct_create_finish: the container was deleted meanwhile
	 * but the guest has it (remove_container is the caller's) */
	bool orphan;
};

/* The sandbox a container belongs to, from the CRI annotations of
 * containerd and CRI-O (its own id when it is a sandbox). */
int husk_pod_membership(const json_t *spec, const char *id, char **sid,
			struct husk_err **err);
int husk_ct_create(struct husk_store *st, const struct husk_config *cfg,
		   const char *id, const char *bundle,
		   const struct husk_create_opts *o, struct husk_err **err);
/* The agent's bound on create_container (ms). */
#define HUSK_CREATE_TIMEOUT_MS 60000
/* The rest of a member's create once the agent answered create_container
 * (agent_err its failure): the container's record locked again, and
 * still "creating", its husk-shim, cgroup and hooks as husk_ct_create
 * does (o the same options); a failure destroys the container. */
int husk_ct_create_finish(struct husk_store *st,
			  const struct husk_config *cfg,
			  struct husk_ct_pending *pc,
			  const struct husk_create_opts *o,
			  const struct husk_err *agent_err,
			  struct husk_err **err);
void husk_ct_pending_free(struct husk_ct_pending *pc);
/* The agent's bound on start_container and exec_process (ms). */
#define HUSK_START_TIMEOUT_MS 60000
int husk_ct_start(struct husk_store *st, const struct husk_config *cfg,
		  struct husk_entry *e, struct husk_container *c,
		  struct husk_err **err);
/* Its two halves, for a caller that makes the agent's start_container
 * call itself: whether c is created, then its startContainer hooks
 * (a failing one fails the start); and, once the agent started it, the
 * status recorded in e (locked exclusively) and the poststart hooks. */
int husk_ct_start_check(const struct husk_config *cfg,
			const struct husk_container *c, struct husk_err **err);
int husk_ct_started(struct husk_store *st, const struct husk_config *cfg,
		    struct husk_entry *e, struct husk_container *c,
		    struct husk_err **err);
/* Remove everything of the container (and, for a sandbox, its members
 * and VM), then its state; e must be locked exclusively. */
int husk_ct_destroy(struct husk_store *st, const struct husk_config *cfg,
		    struct husk_entry *e, struct husk_container *c,
		    bool force, struct husk_err **err);
/* Its two halves, for a caller that makes the agent's call itself: the
 * params of remove_container (bounded by HUSK_REMOVE_TIMEOUT_MS), NULL
 * for a sandbox's own container, which goes with its VM; then all the
 * rest, on the host. */
#define HUSK_REMOVE_TIMEOUT_MS 10000
json_t *husk_ct_remove_params(const struct husk_container *c);
int husk_ct_destroy_host(struct husk_store *st, const struct husk_config *cfg,
			 struct husk_entry *e, struct husk_container *c,
			 bool force, struct husk_err **err);
/* A shim for process eid ("" for init) of container cid. */
pid_t husk_shim_start(const struct husk_config *cfg, const char *root,
		      const char *sid, const char *cid, const char *eid,
		      bool terminal, const char *console,
		      struct husk_err **err);
/* The same with the shim's stdin, stdout and stderr given (-1 or NULL:
 * ours), e.g. a containerd shim's fifos. */
pid_t husk_shim_start_io(const struct husk_config *cfg, const char *root,
			 const char *sid, const char *cid, const char *eid,
			 bool terminal, const char *console, const int *stdio,
			 struct husk_err **err);
/* Start process eid (an OCI process object) in a created or running
 * container and its shim; if the shim cannot start, the process is
 * killed again.  Returns the shim's pid. */
/* Whether an exec may go into c: created or running. */
int husk_ct_exec_check(const struct husk_container *c, struct husk_err **err);
pid_t husk_ct_exec(const struct husk_config *cfg, const char *root,
		   const struct husk_container *c, const char *eid,
		   const json_t *process, const char *console,
		   const int *stdio, struct husk_err **err);
/* pause_container or resume_container, and the status recorded. */
int husk_ct_pause(const char *root, struct husk_entry *e,
		  struct husk_container *c, bool pause, struct husk_err **err);
/* Its two halves, for a caller that makes the agent's call itself:
 * whether c is running (to pause) or paused (to resume), and the new
 * status recorded in e once the agent did it. */
int husk_ct_pause_check(const struct husk_container *c, bool pause,
			struct husk_err **err);
int husk_ct_paused(struct husk_entry *e, struct husk_container *c,
		   bool pause, struct husk_err **err);
/* New linux.resources for a live container: the VM grows first, the
 * agent applies them, the VM shrinks after (husk_ct_resize); c's record
 * is written to e. */
int husk_ct_update(const char *root, struct husk_entry *e,
		   struct husk_container *c, const json_t *resources,
		   struct husk_err **err);
/* Its three steps, for a caller that makes the agent's call itself:
 * the VM grown (and c written to e), update_container's params
 * (bounded by HUSK_UPDATE_TIMEOUT_MS), the VM shrunk (and c written). */
#define HUSK_UPDATE_TIMEOUT_MS 30000
int husk_ct_update_grow(const char *root, struct husk_entry *e,
			struct husk_container *c, const json_t *res,
			struct husk_err **err);
json_t *husk_ct_update_params(const struct husk_container *c,
			      const json_t *res);
int husk_ct_update_shrink(const char *root, struct husk_entry *e,
			  struct husk_container *c, const json_t *res,
			  struct husk_err **err);
/* A call to the guest agent through the sandbox's proxy (params are
 * consumed). */
int husk_agent_call(const char *root, const char *sid, const char *method,
		    json_t *params, int timeout_ms, json_t **res,
		    struct husk_err **err);

/* --------------------------------------------------------- OOM kills */
/* sandbox/oom.c; the agent's wait_oom (docs/agent-protocol.md) */

/* The most OOM events one wait_oom answer may make a caller report: a
 * guest that says its count jumped by millions gets this many. */
#define HUSK_OOM_BURST 16u
/* The least time between two wait_oom calls of one watch: a guest that
 * answers at once makes at most HUSK_OOM_BURST events a second. */
#define HUSK_OOM_MIN_GAP_MS 1000
/* How much longer than the agent's own timeout a caller waits. */
#define HUSK_OOM_CALL_SLACK_MS 10000

/* wait_oom's result {oom_kills: uint}, from the guest. */
struct msgpack_object;
int husk_oom_decode(const struct msgpack_object *result, uint64_t *kills,
		    struct husk_err **err);
/* Kills between *seen and kills to report, at most HUSK_OOM_BURST
 * (*dropped: the rest); *seen becomes kills (a smaller count is taken
 * as the new base, with nothing to report). */
unsigned husk_oom_news(uint64_t *seen, uint64_t kills, uint64_t *dropped);

/* A blocking watch of one container's OOM kills (husk events): one
 * connection to the sandbox's proxy; open takes the count now, each
 * wait says how many kills came since (at most HUSK_OOM_BURST). */
struct husk_oom_watch {
	struct ipc_client *cl;
	char *cid;
	uint64_t seen;
	uint64_t last_ms;       /* when the last call went */
};
int husk_oom_watch_open(const char *root, const char *sid, const char *cid,
			int timeout_ms, struct husk_oom_watch *w,
			struct husk_err **err);
int husk_oom_watch_wait(struct husk_oom_watch *w, int timeout_ms,
			unsigned *news, struct husk_err **err);
void husk_oom_watch_close(struct husk_oom_watch *w);

/* ----------------------------------------------------------- network */
/* sandbox/net.c; docs/network.md */

/* The sandbox's network namespace from the spec: the given path, a new
 * one husk makes (recorded in sandbox.json before anything else), or
 * the host's when [runtime] host_network allows it. */
int husk_net_prepare(struct husk_entry *e, const struct husk_config *cfg,
		     const char *root, const char *sid, const json_t *spec,
		     struct husk_sandbox *s, struct husk_err **err);
/* Enter the namespace at path; *saved gets the caller's (-1 if path is
 * NULL), for husk_netns_leave. */
int husk_netns_enter(const char *path, int *saved, struct husk_err **err);
/* Back to the saved namespace (and close it).  -1 with err (kept if
 * already set) when that fails: the caller is still in the other
 * namespace and must stop what it was doing. */
int husk_netns_leave(int saved, struct husk_err **err);
/* Does path name the host's network namespace (init's) or the caller's
 * own?  False when it cannot be looked at. */
bool husk_netns_is_host(const char *path);
/* Between the driver's create and start: every Ethernet link of the
 * sandbox's namespace attached, each tap on QEMU's command line (the
 * guest finds its NICs at boot; microvm has no hotplug). */
int husk_net_coldplug(const struct husk_config *cfg, const char *root,
		      const char *sid, const struct husk_sandbox *s,
		      struct husk_err **err);
/* Every Ethernet link of the sandbox's namespace mirrored into the VM
 * (those attached at boot given to the guest, the others hot-plugged),
 * its addresses and the namespace's routes given to the guest; then
 * husk-netmon started when configured. */
int husk_net_setup(struct husk_entry *e, const struct husk_config *cfg,
		   const char *root, const char *sid, struct husk_sandbox *s,
		   struct husk_err **err);
/* After the VM and its driver are gone: taps and filters a dead driver
 * left, and the namespace if husk made it. */
void husk_net_release(const struct husk_sandbox *s);
/* One link: net_attach, then update_interface with over's fields
 * (addresses, mtu) on top of the link's.  *iface gets the interface as
 * given to the guest. */
int husk_net_add_iface(const char *root, const char *sid, const char *netns,
		       const json_t *over, json_t **iface,
		       struct husk_err **err);
/* The driver's links from now on those of the namespace at netns (it
 * lives in another one: a VM from the cache; docs/factory-cache.md). */
int husk_net_adopt(const char *root, const char *sid, const char *netns,
		   struct husk_err **err);
int husk_net_del_iface(const char *root, const char *sid, const char *name,
		       struct husk_err **err);
/* husk_net_routes (libhusk/netroutes.h) for the sandbox, sent to the
 * agent. */
int husk_net_sync_routes(const char *root, const char *sid,
			 const char *netns, struct husk_err **err);

/* ------------------------------------------------------------ sizing */

/* Memory (MiB, in 128 MiB blocks) and vCPUs a container's limits add to
 * its sandbox's VM (0 when it sets none). */
void husk_spec_sizing(const json_t *spec, unsigned *mem_mb, unsigned *vcpus);
/* Apply the io.husk.config.* annotations (docs in husk.conf(5)). */
int husk_config_annotations(struct husk_config *cfg, const json_t *spec,
			    struct husk_err **err);
/* Hot-plug memory and vCPUs into a running sandbox and online them;
 * what was plugged, even on failure, goes to dimms (DIMM ids appended)
 * and *vcpus_added. */
int husk_sandbox_grow(const char *root, const char *sid, unsigned mem_mb,
		      unsigned vcpus, json_t *dimms, unsigned *vcpus_added,
		      struct husk_err **err);
/* Give back what husk_sandbox_grow added: unplug the DIMMs (the guest
 * may refuse one it cannot offline; those gone leave dimms) and the
 * vCPUs (not under TCG).
 * Best effort: what cannot go is logged and stays with the sandbox. */
void husk_sandbox_shrink(const char *root, const char *sid, json_t *dimms,
			 unsigned vcpus);
/* `update` with new resources (the OCI linux.resources object): grow
 * the VM before the agent applies them (after == false), shrink it
 * after (after == true), by what the container's limits account for
 * (c->sized_*); c's record is updated (the caller writes it).  Growing
 * beyond the VM's maximum fails; shrinking is best effort. */
int husk_ct_resize(const char *root, struct husk_container *c,
		   const json_t *resources, bool after, struct husk_err **err);
/* Put pid into the host cgroup path (linux.cgroupsPath) in every
 * hierarchy; directories made are appended to made. */
int husk_cgroup_enter(const char *path, pid_t pid, json_t *made,
		      struct husk_err **err);
/* The directories made, deepest first; a busy one is tried again for up
 * to ms (processes just stopped may take a moment to exit and be
 * reaped). */
void husk_cgroup_remove(const json_t *made, unsigned ms);

/* ------------------------------------------------------------- hooks */

/* Run the hooks of one kind (e.g. "prestart") with the OCI state on
 * stdin, in netns (NULL: ours) with cwd as working directory (NULL:
 * ours); stops at the first failure (its error names the hook), except
 * for poststart and poststop, whose failures are logged and the others
 * still run (OCI runtime spec). */
int husk_hooks_run(const json_t *hooks, const char *kind,
		   const json_t *state, unsigned default_timeout,
		   const char *netns, const char *cwd, struct husk_err **err);

#endif
