/*
 * The agent core's own state and the functions its files share:
 * main.c (set-up, channel, method table), init.c (PID 1 in the guest),
 * container.c (sandbox and containers), spawn.c (clone and the child
 * hand-shake), rootfs.c and process.c (what the child does before
 * execve), stream.c (stdio, flow control, exits and waits).
 */
#ifndef HUSK_AGENT_CORE_H
#define HUSK_AGENT_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <seccomp.h>

#include "agent/agent.h"
#include "agent/methods.h"
#include "agent/spec.h"

#include "libhusk/version.h"
#define AGENT_VERSION HUSK_VERSION
/* Largest write_stdin payload. */
#define AGENT_STDIN_MAX (1u << 20)
/* How long a child may take to report back (mounts on a slow share). */
#define AGENT_CHILD_TIMEOUT_MS 45000

enum ct_state { CT_CREATED, CT_RUNNING, CT_PAUSED, CT_STOPPED };

struct proc;

struct stream {
	struct proc *p;
	int no;                 /* 1 stdout (or the terminal), 2 stderr */
	int fd;                 /* -1 once closed */
	ev_io w;
	uint64_t inflight;      /* sent and not yet acknowledged */
	bool eof_sent;          /* the empty `output` went out */
};

/* A pending write_stdin (answered once written) or wait_process. */
struct pending {
	struct pending *next;
	struct ipc_conn *c;     /* referenced */
	uint32_t msgid;
	char *data;
	size_t len, off;
};

struct proc {
	struct proc *next;
	struct container *ct;
	char *exec_id;          /* "" for the init */
	pid_t pid;
	bool exited;
	int status;             /* exit code, or 128+signal */
	bool tty;
	int stdin_fd;           /* pipe or a dup of the terminal master */
	bool stdin_closing;     /* close once the queue is written */
	ev_io stdin_w;
	struct pending *writes;
	struct stream out[2];
	ev_timer grace;         /* streams still open after the exit */
	struct pending *waiters;
	/* Hand-shake with the container init until start_container. */
	int sync_fd, err_fd;
	struct spawn_wait *wait;        /* a report being waited for */
	bool exit_held;                 /* exited; handled after the wait */
};

struct container {
	struct container *next;
	struct agent *a;
	char *id;
	int state;
	int ns_flags;           /* namespaces the init made (CLONE_NEW*) */
	bool joined_pidns;      /* in the sandbox's pid namespace */
	long personality;       /* linux.personality, or -1 */
	struct cg *cg;
	struct oom_watch *oom;          /* NULL: OOM kills not watched */
	scmp_filter_ctx filter;         /* seccomp, for the init and execs */
	struct proc *init;
	struct proc *procs;     /* init first, then execs */
};

struct agent_core {
	struct ev_loop *loop;
	struct ipc_conn *conn;          /* the host connection, or NULL */
	struct ipc_server *server;      /* host mode */
	char *port_path;                /* VM mode: /dev/vportNpM */
	int port_fd;                    /* VM mode: open for good */
	int port_ep;                    /* VM mode: edge-triggered epoll
					 * of the port, or -1 */
	ev_io port_w;                   /* VM mode: port_ep readable */
	ev_timer reopen_w;              /* VM mode: retry the port */
	ev_child child_w;
	ev_timer poweroff_w;
	bool poweroff;
	ev_timer powerdown_w;           /* the power button's grace */
	uint64_t powerdown_deadline;    /* 0: not powering down */
	char *cgroup_root;
	int cap_last;                   /* /proc/sys/kernel/cap_last_cap */
	int self_pidns_fd;              /* our own pid namespace */
	/* sandbox */
	bool sandbox;
	char *sandbox_id;
	bool shared_pid_ns;
	int sandbox_pidns_fd;           /* first container's, or -1 */
	char *resolv_conf;              /* NULL when no dns was given */
	struct container *containers;
	/* oom.c: one inotify instance for every container's
	 * memory.events (v2), made at the first container. */
	bool oom_inotify;
	ev_io oom_inotify_w;
};

/* A message from the child to the agent over the error pipe. */
struct child_msg {
	int32_t errnum;
	int32_t ready;          /* 1: built, waiting for start */
	char msg[504];
};

/* main.c */
struct ipc_conn *agent_conn(struct agent *a);

/* init.c: PID 1 duties in the guest. */
int init_guest(struct agent *a, bool *debug, struct husk_err **err);
/* Returns the port's descriptor (non-blocking, cloexec). */
int init_find_port(const char *name, char **path, struct husk_err **err);
void init_poweroff(void) __attribute__((noreturn));
/* A virtio-9p share waiting since boot is mounted now (create_sandbox);
 * nothing to do otherwise. */
int init_mount_share(struct husk_err **err);
/* Watch the ACPI power button(s); `pressed` runs on a press.  Returns
 * how many were found (0: none, the host's stop then kills). */
int init_power_button(struct agent *a, struct ev_loop *loop,
		      void (*pressed)(struct agent *a));

/* container.c */
void ct_reaped(struct agent *a, pid_t pid, int wstatus);
struct container *ct_find(struct agent *a, const char *id);
struct proc *ct_proc(struct container *ct, const char *exec_id);
/* The container (and process) named by params' container_id (and
 * exec_id), or NULL with *err: no sandbox (state), or not found. */
struct container *ct_lookup(struct agent *a, const struct ct_params *p,
			    struct husk_err **err);
struct proc *ct_lookup_proc(struct agent *a, const struct ct_params *p,
			    struct husk_err **err);
bool ct_alive(struct container *ct);
void ct_kill_all(struct container *ct, int sig);
void ct_free(struct agent *a, struct container *ct);
/* SIGKILL every process (refused without force while any is alive),
 * wait for them, free the container. */
int ct_remove(struct agent *a, struct container *ct, bool force,
	      struct husk_err **err);

/* A request answered once a child has reported (spawn_done_fn). */
struct rpc_wait {
	struct agent *a;
	struct ipc_conn *c;     /* referenced */
	uint32_t msgid;
	char *what;             /* "create container c1": errors start so */
};
/* Takes what (malloc'ed). */
struct rpc_wait *rpc_wait_new(struct agent *a, struct ipc_conn *c,
			      const struct ipc_msg *m, char *what);
void rpc_wait_free(struct rpc_wait *w);
/* Answer the error, prefixed with what. */
void rpc_wait_fail(struct rpc_wait *w, const struct husk_err *e);
/* Answer {pid}. */
void rpc_wait_pid(struct rpc_wait *w, pid_t pid);

/* oom.c: count the container's OOM kills from now on (its cgroup
 * made); -1 with err when the cgroup cannot say (no memory
 * controller): the container works without. */
struct oom_watch;
int oom_watch_start(struct agent *a, struct container *ct,
		    struct husk_err **err);
/* Read the count now: a process of ct was reaped, and the kill that
 * ended it is counted (and its waiters answered) before its exit. */
void oom_check(struct container *ct);
/* The container goes: waiting wait_oom calls fail with not-found. */
void oom_watch_stop(struct container *ct);
uint64_t oom_kills(const struct container *ct);

/* sandbox.c: the power button: SIGTERM to every container, a grace,
 * then power off. */
void ct_powerdown(struct agent *a);

/* spawn.c: clone a container's init or an exec'd process. */
struct spawn {
	struct container *ct;
	const struct spec *spec;        /* init: the whole spec; exec: NULL */
	const struct spec_process *proc;
	scmp_filter_ctx filter;         /* may be NULL */
	struct proc *p;                 /* filled: pid, stdio, hand-shake */
	int tty_sock;                   /* terminal: the master comes here */
};
/*
 * The child's report comes in the event loop, never blocking it (a
 * child stuck on a hung share must not stop the agent).  Each spawn_*
 * returns -1 (err set, nothing pending) or 0; then done() is called
 * exactly once: r 1 (init built, waiting for start) or 0 (execve done)
 * on success, -1 with err on failure (the child was killed), or with
 * cancelled set when the process record goes first (proc_free): then
 * only reply.  The terminal, if any, is started before done().  done()
 * returns whether p still exists; a process that exited while its
 * report was awaited has its exit handled after done() (the answer to
 * the request goes out before the exit notification).
 */
typedef bool spawn_done_fn(struct proc *p, int r, const struct husk_err *err,
			   bool cancelled, void *arg);
int spawn_init(struct agent *a, struct spawn *sp, spawn_done_fn *done,
	       void *arg, struct husk_err **err);
int spawn_start(struct proc *p, spawn_done_fn *done, void *arg,
		struct husk_err **err);
int spawn_exec(struct agent *a, struct spawn *sp, spawn_done_fn *done,
	       void *arg, struct husk_err **err);
/* From proc_free: done() with cancelled.  (A child that dies while
 * its report is awaited leaves EOF, or its last words, in the pipe:
 * proc_exited leaves err_fd to the wait then.) */
void spawn_cancel(struct proc *p);

/* Child side (never return): report and _exit. */
void child_fail(int errfd, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void child_fail_err(int errfd, struct husk_err *e) __attribute__((noreturn));

/* rootfs.c (child): build and enter the container's root. */
void rootfs_setup(struct agent *a, const struct spec *s, int errfd);

/* process.c (child): find the executable in the container... */
char *proc_find_exe(const struct spec_process *p, int errfd);
/* ...then apply ids, caps, rlimits, no_new_privs, seccomp, execve;
 * personality is the container's (-1: none). */
void proc_exec(struct agent *a, const struct spec_process *p,
	       long personality, const char *exe, scmp_filter_ctx filter,
	       int errfd) __attribute__((noreturn));
/* Log the fields of a spec that were accepted but not applied. */
void proc_log_notes(const char *who, char *const *notes);

/* stream.c */
struct proc *proc_new(struct container *ct, const char *exec_id);
/* Take the parent's ends of the stdio (out: stdout, err: stderr or -1
 * for a terminal) and start relaying. */
void proc_stdio_start(struct proc *p, int in, int out, int err, bool tty);
void proc_exited(struct proc *p, int status);
/* The rest of proc_exited, held while a report was awaited. */
void proc_exit_finish(struct proc *p);
void proc_free(struct proc *p);
bool proc_done(const struct proc *p);
/* A new host connection: fresh windows, pending EOFs go out. */
void stream_conn_changed(struct agent *a);

#endif
