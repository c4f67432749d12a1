/*
 * A task's processes.  Each runs in the guest and has a husk-shim on
 * the host, our child, that stands for it: it relays the stdio we gave
 * it and exits with the process's status (128+N for a signal).  Its
 * exit is the process's: recorded, published once, and given to every
 * waiter.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "shimv2.h"

void sv_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

void sv_proc_init(struct sv_proc *p, struct sv_task *t, const char *eid)
{
	memset(p, 0, sizeof(*p));
	p->task = t;
	p->exec_id = husk_xstrdup(eid ? eid : "");
	p->status = SV_CREATED;
	for (int i = 0; i < 3; i++)
		p->io.fds[i] = -1;
	p->io.master = p->io.tin = p->io.tout = p->io.in_peek = -1;
}

static void answer_waiters(struct sv_proc *p)
{
	while (p->waiters) {
		struct sv_waiter *w = p->waiters;

		p->waiters = w->next;
		w->done(w->arg, p);
	}
}

/* The exit told: the event (a process that never started, an exec
 * whose Start failed, gets none), its waiters. */
static void proc_told(struct sv_proc *p)
{
	sv_io_close(sv, p);
	if (p->pid > 0)
		sv_event_exit(sv, p);
	p->status = SV_STOPPED;
	answer_waiters(p);
}

/* After the OOM kills: told once what its terminal still holds
 * reached containerd's fifo. */
static void proc_drain(struct sv_proc *p)
{
	if (sv_io_draining(sv, p, proc_told))
		return;
	proc_told(p);
}

/* The process is gone: its status now; told after the task's OOM kills
 * and its terminal's output. */
static void proc_exited(struct sv *s, struct sv_proc *p, uint32_t status,
			bool drain)
{
	if (p->exited)
		return;
	p->exited = true;
	p->exit_status = status;
	sv_now(&p->exited_at);
	if (ev_is_active(&p->child))
		ev_child_stop(s->loop, &p->child);
	if (!drain) {
		proc_told(p);
		return;
	}
	/* An OOM kill that ended the task is told before its exit. */
	if (p == &p->task->init && sv_oom_final(s, p->task, proc_drain))
		return;
	proc_drain(p);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct sv_proc *p = w->data;
	int st = w->rstatus;
	uint32_t status = WIFEXITED(st) ? (uint32_t)WEXITSTATUS(st) :
			  WIFSIGNALED(st) ? 128u + (uint32_t)WTERMSIG(st) :
			  255u;

	(void)loop;
	(void)revents;
	if (WIFSTOPPED(st) || WIFCONTINUED(st))
		return;
	log_info("%s%s%s exited with %u", p->task->id,
		 p->exec_id[0] ? "/" : "", p->exec_id, status);
	proc_exited(sv, p, status, true);
}

void sv_proc_watch(struct sv *s, struct sv_proc *p)
{
	ev_child_init(&p->child, child_cb, p->pid, 0);
	p->child.data = p;
	ev_child_start(s->loop, &p->child);
}

/*
 * The process goes with its container or VM (delete, the daemon
 * leaving): its husk-shim is killed and reaped here, so that the loop
 * never reports a pid we may have freed; a process that had not exited
 * yet gets SIGKILL's status.
 */
void sv_proc_kill(struct sv_proc *p)
{
	int st;

	/* Exited, its OOM kills still being read: given up, told now. */
	if (p == &p->task->init)
		sv_oom_final_now(sv, p->task);
	if (p->io.drained) {
		/* Exited, its terminal still draining: told now. */
		p->io.drained = NULL;
		proc_told(p);
		return;
	}
	if (p->exited || p->pid <= 0) {
		if (!p->exited && p->pid <= 0) {
			p->exited = true;
			p->exit_status = 128 + SIGKILL;
			sv_now(&p->exited_at);
			p->status = SV_STOPPED;
			answer_waiters(p);
		}
		return;
	}
	kill(p->pid, SIGKILL);
	if (waitpid(p->pid, &st, 0) == p->pid)
		proc_exited(sv, p, WIFEXITED(st) ? (uint32_t)WEXITSTATUS(st) :
			    128u + (uint32_t)WTERMSIG(st), false);
	else
		proc_exited(sv, p, 128 + SIGKILL, false);
}

void sv_proc_free(struct sv_proc *p)
{
	if (ev_is_active(&p->child))
		ev_child_stop(sv->loop, &p->child);
	sv_io_close(sv, p);
	answer_waiters(p);
	json_decref(p->process);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
}
