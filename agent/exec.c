/*
 * Processes in a running container (docs/agent-protocol.md,
 * "Processes"): exec_process and signal_process.  Their streams and
 * exits are stream.c's.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/core.h"

/* The exec's execve went through (r 0), or not (the record stays until
 * its child is reaped, and goes with remove_container). */
static bool exec_done(struct proc *p, int r, const struct husk_err *e,
		      bool cancelled, void *arg)
{
	struct rpc_wait *w = arg;

	if (p->err_fd >= 0)
		close(p->err_fd);
	p->err_fd = -1;
	if (cancelled || r < 0) {
		rpc_wait_fail(w, e);
	} else if (r != 0) {
		struct husk_err *e2 = NULL;

		husk_error(&e2, HUSK_E_INTERNAL, "process %d reported ready",
			   (int)p->pid);
		rpc_wait_fail(w, e2);
		husk_err_free(e2);
		kill(p->pid, SIGKILL);
	} else {
		rpc_wait_pid(w, p->pid);
	}
	rpc_wait_free(w);
	return true;
}

int agent_m_exec_process(struct ipc_conn *c, struct ipc_msg *m, void *params,
			 void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct spec_process sproc;
	struct spawn sp = { 0 };
	struct container *ct;
	struct rpc_wait *w;
	struct proc *pr;

	ct = ct_lookup(arg, p, err);
	if (!ct)
		return -1;
	if (!p->exec_id[0])
		return husk_error(err, HUSK_E_INVALID,
				  "params.exec_id: empty (\"\" is the init)");
	if (husk_id_validate(p->exec_id, "params.exec_id", err) < 0)
		return -1;
	if (ct_proc(ct, p->exec_id))
		return husk_error(err, HUSK_E_EXISTS,
				  "process %s/%s already exists", ct->id,
				  p->exec_id);
	/* A created container's namespaces and root are built (its init
	 * waits before execve): runc execs into it too. */
	if (ct->state != CT_RUNNING && ct->state != CT_CREATED)
		return husk_error(err, HUSK_E_STATE, "container %s is %s",
				  ct->id, ct->state == CT_PAUSED ? "paused" :
				  "not running");
	if (spec_process_decode(p->process, "params.process", &sproc,
				err) < 0)
		return -1;
	proc_log_notes(ct->id, sproc.notes);
	pr = proc_new(ct, p->exec_id);
	sp.ct = ct;
	sp.proc = &sproc;
	sp.filter = ct->filter;
	sp.p = pr;
	pr->next = ct->init->next;
	ct->init->next = pr;
	w = rpc_wait_new(arg, c, m, husk_xasprintf("exec in %s", ct->id));
	if (spawn_exec(arg, &sp, exec_done, w, err) < 0) {
		rpc_wait_fail(w, *err);
		husk_err_free(*err);
		*err = NULL;
		rpc_wait_free(w);
		/* Keep the record until its child is reaped: it is gone
		 * with remove_container like any exec. */
		if (pr->pid <= 0) {
			ct->init->next = pr->next;
			proc_free(pr);
		}
	}
	spec_process_free(&sproc);
	return 0;
}

int agent_m_signal_process(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct container *ct;
	struct proc *pr;

	ct = ct_lookup(arg, p, err);
	if (!ct)
		return -1;
	pr = ct_proc(ct, p->exec_id);
	if (!pr)
		return husk_error(err, HUSK_E_NOT_FOUND,
				  "process %s/%s: no such process", ct->id,
				  p->exec_id);
	if (p->all) {
		ct_kill_all(ct, (int)p->signal);
	} else if (pr->exited || pr->pid <= 0) {
		return husk_error(err, HUSK_E_STATE,
				  "process %s/%s has exited", ct->id,
				  p->exec_id);
	} else if (kill(pr->pid, (int)p->signal) < 0) {
		return husk_error(err, HUSK_E_SYSTEM, "kill %d: %s",
				  (int)pr->pid, strerror(errno));
	}
	ipc_reply_ok(c, m->msgid);
	return 0;
}
