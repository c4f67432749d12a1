/*
 * containerd-shim-husk-v2: containerd's shim v2 for husk
 * (docs/shimv2.md, containerd-shim-husk-v2(8)).  One daemon per pod
 * holds the pod's VM through the sandbox library and answers
 * containerd's Task service over ttrpc.
 *
 *   main.c     options; `start`, `delete` and the daemon
 *   start.c    `start` (socket, address file, the daemon started) and
 *              `delete` (clean-up after a dead daemon)
 *   task.c     the Task service's logic on the sandbox library
 *   pending.c  its calls that wait for the agent with state of their
 *              own: Start, Delete, Pause and Resume, Update
 *   proc.c     processes: husk-shim children, exits, waiters
 *   io.c       stdio: fifos, binary:// loggers, file://, terminals
 *   agent.c    calls to the pod's agent, answered in the loop
 *   oom.c      OOM kills in the guest: /tasks/oom
 *   rootfs.c   the rootfs mounts containerd gives in Create
 *   service.c  the ttrpc glue: protobuf in and out, events
 *   confine.c  the confinement profile
 */
#ifndef HUSK_SHIMV2_H
#define HUSK_SHIMV2_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <ev.h>
#include <jansson.h>
#include <msgpack.h>

#include "libhusk/err.h"
#include "libhusk/store.h"
#include "sandbox/sandbox.h"

#define SV_NAME "containerd-shim-husk-v2"
#define SV_DEFAULT_CONFIG "/etc/husk/husk.conf"
/* State root when HUSK_ROOT is not in the environment. */
#define SV_DEFAULT_ROOT "/run/husk-shimv2"
/* The daemons' sockets: <dir>/<hash>.sock, well under sun_path. */
#define SV_SOCK_DIR "/run/husk-shimv2-s"
#define SV_SOCK_MAX 106
/* The daemon's pid, in the bundle. */
#define SV_PID_FILE "shim.pid"

/* containerd's task status (api/types/task/task.proto). */
enum sv_status {
	SV_UNKNOWN = 0,
	SV_CREATED = 1,
	SV_RUNNING = 2,
	SV_STOPPED = 3,
	SV_PAUSED = 4,
};

struct sv_proc;
/* Someone waiting for a process's exit (a Wait call). */
struct sv_waiter {
	struct sv_waiter *next;
	void (*done)(void *arg, const struct sv_proc *p);
	void *arg;
};

/* One process's stdio as its husk-shim gets it, and what the daemon
 * keeps of it. */
struct sv_io {
	int fds[3];             /* the husk-shim's stdin, stdout, stderr */
	pid_t logger;           /* binary:// logger, 0 none */
	/* Terminal: the daemon holds the pty's master and copies between
	 * it and containerd's fifos. */
	int master;
	int tin, tout;          /* fifo to read from, fifo to write to */
	ev_io w_in, w_out;
	char *buf;              /* master -> tout, pending */
	size_t blen, boff;
	bool in_on, out_on;
	/* The process exited: its terminal's output still comes (a pty
	 * hands on data asynchronously); the exit is told once the master
	 * ends (EIO) or the timer fires. */
	ev_timer w_drain;
	void (*drained)(struct sv_proc *p);
	/* CloseIO with stdin a fifo the husk-shim reads: a read end of
	 * our own to see it empty before the agent is told (io.c). */
	int in_peek;
	ev_timer w_closein;
	unsigned closein_ticks, closein_quiet;
	void (*closein)(struct sv_proc *p);
};

struct sv_task;
struct sv_proc {
	struct sv_proc *next;
	struct sv_task *task;
	char *exec_id;          /* "" for the task's init */
	json_t *process;        /* an exec's OCI process until it starts */
	bool terminal;
	char *stdin_path, *stdout_path, *stderr_path;
	pid_t pid;              /* its husk-shim, 0 before start */
	void *starting;         /* its Start, waiting for the agent */
	int status;             /* enum sv_status */
	bool exited;
	uint32_t exit_status;
	struct timespec exited_at;
	ev_child child;
	struct sv_io io;
	struct sv_waiter *waiters;
};

struct sv_task {
	struct sv_task *next;
	char *id, *bundle;
	char *sandbox_id;
	struct husk_config cfg;
	bool cfg_loaded;
	char *rootfs;           /* mounted by us, NULL if not */
	struct sv_proc init;
	struct sv_proc *execs;
	struct sv_oom *oom;     /* OOM kills watched (oom.c), or NULL */
	void *deleting;         /* its Delete, waiting for the agent */
	void *updating;         /* its Update, waiting for the agent */
};

struct sv {
	struct ev_loop *loop;
	const char *ns, *id, *address, *ttrpc_address, *publish_binary;
	const char *bundle;
	char *root;             /* husk's state root */
	struct husk_store store;
	bool store_open;
	struct sv_task *tasks;
	struct sv_create_call *creating;        /* pending.c */
	struct sv_agent *agents;        /* agent.c: a connection a sandbox */
	bool shutdown;          /* asked; leave once no task is left */
	bool debug;
};

extern struct sv *sv;

/* start.c */
char *sv_root(const char *ns);
int sv_sock_path(const char *address, const char *ns, const char *id,
		 char **out, struct husk_err **err);
int sv_cmd_start(struct sv *s, int argc, char **argv, struct husk_err **err);
int sv_cmd_delete(struct sv *s, struct husk_err **err);

/* What Create and Exec are given. */
struct sv_create {
	const char *id, *bundle;
	bool terminal;
	const char *stdin, *stdout, *stderr;
	const char *config_path;        /* runtime options' ConfigPath */
	size_t nmounts;
	const struct sv_mount {
		const char *type, *source, *target;
		const char *const *options;
		size_t noptions;
	} *mounts;
};

/* task.c and pending.c: the Task service.  Every call returns -1 with
 * err set (its code says which gRPC status the glue answers). */
/* Delete: an exec, or a task (a member's container leaves the guest
 * first, remove_container answered from the loop); cb gets what the
 * process ended with, or err, once, now or from the loop. */
struct sv_deleted {
	uint32_t pid, status;
	struct timespec at;
};
typedef void (*sv_delete_cb)(void *arg, const struct sv_deleted *d,
			     const struct husk_err *err);
int sv_delete(struct sv *s, const char *id, const char *eid, sv_delete_cb cb,
	      void *arg, struct husk_err **err);
int sv_exec(struct sv *s, const char *id, const char *eid, bool terminal,
	    const char *in, const char *out, const char *errp,
	    const char *spec_json, size_t spec_len, struct husk_err **err);
/* A call to the agent: the blocking calls' bound before (seconds). */
#define SV_AGENT_TIMEOUT 10.0
/* A pause or resume: the guest freezes or thaws the container's
 * cgroup, as long as `husk pause` waits (husk_ct_pause). */
#define SV_PAUSE_TIMEOUT 30.0

/* agent.c: one call to the agent of sandbox sid, through its proxy;
 * cb gets the result (the guest's bytes, to decode) or err, once, from
 * the loop, unless the call is cancelled.  timeout in seconds, 0 for
 * none (a long poll: the connection's loss still ends it).  NULL with
 * err set if no call could be made. */
struct sv_acall;
typedef void (*sv_agent_cb)(void *arg, const msgpack_object *result,
			    const struct husk_err *err);
struct sv_acall *sv_agent_call(struct sv *s, const char *sid,
			       const char *method, json_t *params,
			       double timeout, sv_agent_cb cb, void *arg,
			       struct husk_err **err);
/* cb will not run (a no-op if it has run). */
void sv_agent_cancel(struct sv *s, struct sv_acall *c);
/* Leaving: every call fails, every connection closes. */
void sv_agent_close_all(struct sv *s);

/* The calls that reach the agent answer through cb (as above), the
 * others return -1 with err set and never call cb. */
/* pending.c: Start: the task's init (start_container) or an exec
 * (exec_process, then its husk-shim); cb gets the pid, or err, once,
 * from the loop. */
typedef void (*sv_start_cb)(void *arg, uint32_t pid,
			    const struct husk_err *err);
int sv_start(struct sv *s, const char *id, const char *eid, sv_start_cb cb,
	     void *arg, struct husk_err **err);
/* Create: cb gets the husk-shim's pid, at once for a pod's own
 * container or a lone one, from the loop for a pod's member (its
 * create_container, pending.c). */
int sv_create(struct sv *s, const struct sv_create *c, sv_start_cb cb,
	      void *arg, struct husk_err **err);
int sv_kill(struct sv *s, const char *id, const char *eid, uint32_t sig,
	    bool all, sv_agent_cb cb, void *arg, struct husk_err **err);
int sv_pause(struct sv *s, const char *id, bool pause, sv_agent_cb cb,
	     void *arg, struct husk_err **err);
/* Update: the VM grown first (the driver, then the agent onlining what
 * it added: still blocking), the agent's update_container answered
 * from the loop, the VM shrunk after. */
int sv_update(struct sv *s, const char *id, const char *res_json,
	      size_t len, sv_agent_cb cb, void *arg, struct husk_err **err);
/* The agent's stats of the container (its stats_container map). */
int sv_stats(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	     struct husk_err **err);
/* The guest's processes of the container (list_processes); cb gets a
 * NULL result at once when the task has exited. */
int sv_pids(struct sv *s, const char *id, sv_agent_cb cb, void *arg,
	    struct husk_err **err);
/* The process's pids from list_processes's result (n 0 for none). */
uint32_t *sv_pids_decode(const msgpack_object *result, size_t *n);
int sv_resize(struct sv *s, const char *id, const char *eid, uint32_t w,
	      uint32_t h, struct husk_err **err);
int sv_close_io(struct sv *s, const char *id, const char *eid,
		sv_agent_cb cb, void *arg, struct husk_err **err);
struct sv_proc *sv_find(struct sv *s, const char *id, const char *eid,
			struct husk_err **err);
/* task.c for pending.c: a task by id; its container's record, locked as
 * asked; a task out of the list and freed. */
struct sv_task *sv_task_find(struct sv *s, const char *id,
			     struct husk_err **err);
int sv_ct_open(struct sv *s, const char *id, int lock, struct husk_entry *e,
	       struct husk_container *c, struct husk_err **err);
void sv_task_drop(struct sv *s, struct sv_task *t);
void sv_task_free(struct sv_task *t);
/* A task whose husk-shim started: in the list, watched, told. */
void sv_task_created(struct sv *s, struct sv_task *t, pid_t shim);
/* pending.c: a member's Create waiting for the guest (its task not
 * yet in the list); whether id is one; all given up (leaving). */
struct husk_ct_pending;
int sv_create_wait(struct sv *s, struct sv_task *t,
		   struct husk_ct_pending *pc, sv_start_cb cb, void *arg,
		   struct husk_err **err);
bool sv_creating(struct sv *s, const char *id);
void sv_create_abandon(struct sv *s);
/* pending.c: the end of an agent call nobody waits for (arg: what it
 * was, malloc'd; a failure is logged). */
void sv_logged_done(void *arg, const msgpack_object *result,
		    const struct husk_err *err);
/* Add a waiter; answered at once if the process has exited. */
int sv_wait(struct sv *s, const char *id, const char *eid,
	    struct sv_waiter *w, struct husk_err **err);
/* Shutdown: true if the daemon may leave now (no task left). */
bool sv_shutdown(struct sv *s, bool now);
/* Every task's processes killed, their sandboxes destroyed (leaving). */
void sv_destroy_all(struct sv *s);

/* proc.c */
void sv_proc_init(struct sv_proc *p, struct sv_task *t, const char *eid);
void sv_proc_free(struct sv_proc *p);
/* Watch the husk-shim that stands for p (pid set). */
void sv_proc_watch(struct sv *s, struct sv_proc *p);
/* Kill the husk-shim (the VM is gone or going). */
void sv_proc_kill(struct sv_proc *p);
void sv_now(struct timespec *ts);

/* io.c: open what containerd gives (paths, fifo, binary://, file://)
 * into io->fds; for a terminal a pty whose slave the husk-shim gets. */
int sv_io_open(struct sv *s, struct sv_proc *p, struct husk_err **err);
/* After the husk-shim started: close our copies of its fds. */
void sv_io_started(struct sv *s, struct sv_proc *p);
/* CloseIO for a terminal (^D); false if not one (the agent's
 * close_stdin then). */
bool sv_io_close_stdin(struct sv_proc *p);
bool sv_io_close_stdin_later(struct sv *s, struct sv_proc *p,
			     void (*close_now)(struct sv_proc *p));
void sv_io_close(struct sv *s, struct sv_proc *p);
/* After the process exited: true if its terminal output still flows;
 * then done(p) is called once it has ended. */
bool sv_io_draining(struct sv *s, struct sv_proc *p,
		    void (*done)(struct sv_proc *p));
int sv_io_resize(struct sv_proc *p, unsigned w, unsigned h,
		 struct husk_err **err);

/* oom.c: /tasks/oom for each OOM kill of the task's container, from
 * its start on. */
struct sv_oom;
void sv_oom_start(struct sv *s, struct sv_task *t);
/* The init exited: the kills not yet told, before its exit event.
 * True if then(init) runs once they are (2 s at most, from the loop);
 * false if there is nothing to read.  Then the watch stops (if the
 * read failed, it goes on until the task is deleted). */
bool sv_oom_final(struct sv *s, struct sv_task *t,
		  void (*then)(struct sv_proc *p));
/* A final read still waiting is given up: then(init) runs now. */
void sv_oom_final_now(struct sv *s, struct sv_task *t);
void sv_oom_stop(struct sv *s, struct sv_task *t);

/* rootfs.c */
int sv_rootfs_mount(const struct sv_create *c, char **mounted,
		    struct husk_err **err);
void sv_rootfs_unmount(const char *path);

/* events, through service.c: the topic's message built from p. */
void sv_event_create(struct sv *s, const struct sv_task *t, uint32_t pid);
void sv_event_start(struct sv *s, const struct sv_proc *p);
void sv_event_exit(struct sv *s, const struct sv_proc *p);
void sv_event_delete(struct sv *s, const struct sv_proc *p);
void sv_event_exec_added(struct sv *s, const struct sv_proc *p);
void sv_event_exec_started(struct sv *s, const struct sv_proc *p);
void sv_event_paused(struct sv *s, const struct sv_task *t, bool paused);
void sv_event_oom(struct sv *s, const struct sv_task *t);

/* service.c: serve on the listening socket fd; returns when leaving. */
int sv_serve(struct sv *s, int lfd, struct husk_err **err);
/* The daemon leaves (after the current call is answered). */
void sv_leave(struct sv *s);

/* confine.c */
int sv_confine(struct sv *s, bool no_seccomp, struct husk_err **err);

#endif
