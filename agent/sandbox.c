/*
 * The sandbox (docs/agent-protocol.md, "Sandbox"): create_sandbox and
 * destroy_sandbox, the sandbox's resolv.conf, and the power button's
 * orderly end of every container.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/cleanup.h"
#include "agent/cgroup.h"
#include "agent/core.h"

static char *run_dir(struct agent *a)
{
	return a->host_mode ?
	       husk_xasprintf("%s/.husk-agent-sandbox", a->shared_dir) :
	       husk_xstrdup("/run/husk/sandbox");
}

static int write_resolv(struct agent *a, char **dns, struct husk_err **err)
{
	cleanup_free char *dir = run_dir(a), *text = husk_xstrdup("");
	unsigned char buf[16];
	int fd;

	for (int i = 0; dns[i]; i++) {
		char *t;

		if (inet_pton(AF_INET, dns[i], buf) != 1 &&
		    inet_pton(AF_INET6, dns[i], buf) != 1)
			return husk_error(err, HUSK_E_INVALID,
					  "params.dns[%d]: \"%s\" is not an IP address",
					  i, dns[i]);
		t = husk_xasprintf("%snameserver %s\n", text, dns[i]);
		free(text);
		text = t;
	}
	if (husk_mkdir_p(dir, 0755, err) < 0)
		return -1;
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open %s", dir);
	if (husk_write_atomic(fd, "resolv.conf", text, strlen(text), 0644,
			      err) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	a->core->resolv_conf = husk_xasprintf("%s/resolv.conf", dir);
	return 0;
}

int agent_m_create_sandbox(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err)
{
	struct ct_params *p = params;
	struct agent *a = arg;
	struct agent_core *core = a->core;

	if (core->sandbox)
		return husk_error(err, HUSK_E_EXISTS,
				  "sandbox %s already exists",
				  core->sandbox_id);
	if (husk_id_validate(p->sandbox_id, "params.sandbox_id", err) < 0)
		return -1;
	if (p->hostname && p->hostname[0] && !a->host_mode &&
	    sethostname(p->hostname, strlen(p->hostname)) < 0)
		return husk_error_sys(err, errno, "sethostname %s",
				      p->hostname);
	if (!a->host_mode && init_mount_share(err) < 0)
		return -1;
	if (p->dns && p->dns[0] && write_resolv(a, p->dns, err) < 0)
		return -1;
	core->sandbox = true;
	core->sandbox_id = husk_steal_ptr(p->sandbox_id);
	core->shared_pid_ns = p->shared_pid_ns;
	log_info("%s: sandbox %s", __func__, core->sandbox_id);
	ipc_reply_ok(c, m->msgid);
	return 0;
}

static void poweroff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	struct ipc_conn *c = agent_conn(a);

	/* Power off once the reply has left, or after a second anyway. */
	if (c && ipc_conn_queued(c) > 0 && w->repeat < 1.0) {
		w->repeat += 0.01;
		ev_timer_again(loop, w);
		return;
	}
	init_poweroff();
}

/* Seconds the containers get between SIGTERM and the power-off: well
 * inside the driver's default stop timeout (5 s). */
#define POWERDOWN_GRACE_MS 3000

static void powerdown_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;
	struct agent_core *core = a->core;
	bool alive = false;

	for (struct container *ct = core->containers; ct; ct = ct->next)
		alive |= ct_alive(ct);
	if (alive && husk_now_ms() < core->powerdown_deadline)
		return;
	ev_timer_stop(loop, w);
	while (core->containers) {
		struct husk_err *err = NULL;

		if (ct_remove(a, core->containers, true, &err) < 0) {
			log_warnx("%s: %s", __func__, err->msg);
			husk_err_free(err);
			break;
		}
	}
	log_info("%s: powering off", __func__);
	init_poweroff();
}

void ct_powerdown(struct agent *a)
{
	struct agent_core *core = a->core;
	int n = 0;

	if (core->powerdown_deadline)
		return;         /* pressed again: already going */
	core->powerdown_deadline = husk_now_ms() + POWERDOWN_GRACE_MS;
	for (struct container *ct = core->containers; ct; ct = ct->next) {
		if (ct->state == CT_PAUSED) {
			cg_freeze(ct->cg, false, NULL);
			ct->state = CT_RUNNING;
		}
		ct_kill_all(ct, SIGTERM);
		n++;
	}
	log_info("%s: SIGTERM to %d container(s), power-off in %d ms at "
		 "most", __func__, n, n ? POWERDOWN_GRACE_MS : 0);
	ev_timer_init(&core->powerdown_w, powerdown_cb, 0., 0.05);
	core->powerdown_w.data = a;
	ev_timer_again(core->loop, &core->powerdown_w);
}

int agent_m_destroy_sandbox(struct ipc_conn *c, struct ipc_msg *m,
			    void *params, void *arg, struct husk_err **err)
{
	const struct ct_params *p = params;
	struct agent *a = arg;
	struct agent_core *core = a->core;

	while (core->containers)
		if (ct_remove(a, core->containers, true, err) < 0)
			return -1;
	if (core->resolv_conf) {
		unlink(core->resolv_conf);
		free(core->resolv_conf);
		core->resolv_conf = NULL;
	}
	if (core->sandbox_pidns_fd >= 0)
		close(core->sandbox_pidns_fd);
	core->sandbox_pidns_fd = -1;
	free(core->sandbox_id);
	core->sandbox_id = NULL;
	core->sandbox = false;
	core->shared_pid_ns = false;
	/* What the containers wrote is on its way to the host before the
	 * answer: the runtime may then have QEMU quit without waiting for
	 * the guest to power itself off. */
	if (p->poweroff && !a->host_mode)
		sync();
	ipc_reply_ok(c, m->msgid);
	if (p->poweroff && !a->host_mode) {
		log_info("%s: powering off", __func__);
		ev_timer_init(&core->poweroff_w, poweroff_cb, 0., 0.01);
		core->poweroff_w.data = a;
		ev_timer_again(core->loop, &core->poweroff_w);
	}
	return 0;
}
