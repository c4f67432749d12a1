/*
 * fork and exec with the child's failure reported back: the one way
 * husk starts a helper process (the runtime's helpers and shims, the
 * driver's QEMU and virtiofsd).  A close-on-exec pipe carries the step
 * that failed and its errno from the child, so that a missing binary or
 * a refused setup is an error of the call, not a child that exits 127.
 */
#ifndef HUSK_SPAWN_H
#define HUSK_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

/* in_fd/out_fd: leave the caller's descriptor as it is. */
#define HUSK_FD_INHERIT (-2)
#define HUSK_SPAWN_MAX_FDS 16

struct husk_exec {
	char *const *argv;              /* argv[0] is the path executed */
	int in_fd;                      /* stdin: -1 is /dev/null */
	int out_fd;                     /* stdout and stderr: -1 is /dev/null */
	/* When set, instead of in_fd and out_fd: the child's 0, 1 and 2
	 * (each above 2, or -1 to leave the caller's). */
	const int *stdio;
	/* Descriptors the child keeps (at most HUSK_SPAWN_MAX_FDS), at
	 * their own numbers, or at 3, 4, ... with fds_from_3; no other
	 * descriptor above 2 survives the exec. */
	const int *fds;
	int nfds;
	bool fds_from_3;
	bool new_session;               /* setsid: a terminal's ^C stays ours */
	/* SIGKILL when the caller dies (and when it died before the
	 * child could ask). */
	bool die_with_parent;
	/* Run in the child last before exec; -1 with errno fails the
	 * call, the error saying setup_what ("confine the child for"). */
	int (*setup)(void *arg);
	void *arg;
	const char *setup_what;
	/* On failure, wait for the child (else the caller's child
	 * watcher reaps it). */
	bool reap_on_error;
	/* The environment (NULL: the caller's environ). */
	char *const *envp;
	/* The file executed when it is not argv[0] (an OCI hook's path,
	 * whose args[0] may be another name); NULL: argv[0]. */
	const char *exec_path;
	/* Entered in the child before the exec when set: a network
	 * namespace by path (setns), then a working directory. */
	const char *netns;
	const char *cwd;
};

/* Returns the child's pid, or -1 with err ("exec `argv[0]`: ..."). */
pid_t husk_fork_exec(const struct husk_exec *x, struct husk_err **err);

/*
 * A spawner: a child of the caller, forked now, that starts each later
 * husk_fork_exec's process for it (libhusk/spawn.c).  It clones with
 * CLONE_PARENT, so the process is still the caller's child (the
 * caller's waitpid, child watcher and PR_SET_PDEATHSIG work as
 * before), but it inherits the spawner's confinement, not what the
 * caller loads after this call: a daemon that must start programs with
 * their own needs (QEMU, hooks) can then confine itself to its own.
 * The caller's descriptors named in the call, its stdio, environment,
 * working directory and network namespace are sent along with each
 * call (SCM_RIGHTS), so the process starts as the caller's own fork
 * would.  `setup` callbacks cannot cross: such a call fails.  The
 * spawner keeps only its socket (and the log's descriptor, log_fd, or
 * -1), dies with the caller (PR_SET_PDEATHSIG), and leaves when the
 * caller's end closes.
 */
int husk_spawner_start(int log_fd, struct husk_err **err);
/* Its pid, or 0 when none runs. */
pid_t husk_spawner_pid(void);

#endif
