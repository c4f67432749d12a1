/*
 * The driver's RPC methods (docs/hypervisor.md) and the VM they act on:
 * requests in flight, devices, events to subscribers; stop, pause,
 * resume, status, subscribe; the method table (state.h lists the
 * files that serve the rest).
 *
 * One VM per driver.  States: new -> created -> starting -> running
 * <-> paused -> stopped (final).  Handlers decode params once into a
 * struct, check them against the VM's limits, then either answer at
 * once or start a chain of QMP commands that answers when it ends
 * (struct op).  QEMU's exit is seen by a child watcher and ends every
 * chain in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "libhusk/accel.h"
#include "hv.h"
#include "qmp.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#include "methods.h"
#include "state.h"

struct hv_vm hv;

const char *const state_names[] = {
	[HV_ST_NEW] = "new", [HV_ST_CREATED] = "created",
	[HV_ST_STARTING] = "starting", [HV_ST_RUNNING] = "running",
	[HV_ST_PAUSED] = "paused", [HV_ST_STOPPED] = "stopped",
};

/* ------------------------------------------------------------------ */
/* Operations in flight                                                */

struct op *op_new(struct ipc_conn *c, const struct ipc_msg *m)
{
	struct op *op = husk_xcalloc(1, sizeof(*op));

	ipc_conn_ref(c);
	op->c = c;
	op->msgid = m->msgid;
	op->dev = -1;
	op->fd = -1;
	op->timeout = HV_UNPLUG_TIMEOUT;
	return op;
}

void op_free(struct op *op)
{
	if (op->timer.data)
		ev_timer_stop(hv.loop, &op->timer);
	if (op->fd >= 0)
		close(op->fd);
	json_decref(op->cpus);
	if (op->c)
		ipc_conn_unref(op->c);
	free(op);
}

void op_fail(struct op *op, const struct husk_err *e)
{
	if (op->done_cb)
		op->done_cb(op->done_arg, e);
	else if (!ipc_conn_closed(op->c))
		ipc_reply_err(op->c, op->msgid, e);
	op_free(op);
}

void op_ok(struct op *op)
{
	if (op->done_cb)
		op->done_cb(op->done_arg, NULL);
	else if (!ipc_conn_closed(op->c))
		ipc_reply_ok(op->c, op->msgid);
	op_free(op);
}

void op_list_remove(struct op **list, struct op *op)
{
	for (struct op **p = list; *p; p = &(*p)->next)
		if (*p == op) {
			*p = op->next;
			return;
		}
}

/* ------------------------------------------------------------------ */
/* Devices and events                                                  */

int dev_find(const char *id)
{
	for (int i = 0; i < HV_MAX_DEVICES; i++)
		if (hv.dev[i].used && !strcmp(hv.dev[i].id, id))
			return i;
	return -1;
}

int dev_new(int kind, const char *id)
{
	for (int i = 0; i < HV_MAX_DEVICES; i++) {
		if (hv.dev[i].used)
			continue;
		memset(&hv.dev[i], 0, sizeof(hv.dev[i]));
		hv.dev[i].used = true;
		hv.dev[i].kind = kind;
		hv.dev[i].port = -1;
		snprintf(hv.dev[i].id, sizeof(hv.dev[i].id), "%s", id);
		return i;
	}
	return -1;
}

void dev_release(int i)
{
	/* After the backend's removal (QMP keeps the order): the set's
	 * descriptor closes in QEMU. */
	if (hv.dev[i].fdset > 0 && hv.qmp)
		qmp_call(hv.qmp, "remove-fd", json_pack("{s:i}", "fdset-id",
							 hv.dev[i].fdset),
			 -1, HV_QMP_TIMEOUT, NULL, NULL);
	free(hv.dev[i].path);
	memset(&hv.dev[i], 0, sizeof(hv.dev[i]));
}

/* A free pcie-root-port, or -1. */
int port_take(void)
{
	for (uint32_t p = 0; p < hv.cfg.pci_ports; p++) {
		bool busy = false;

		for (int i = 0; i < HV_MAX_DEVICES; i++)
			busy |= hv.dev[i].used && hv.dev[i].port == (int)p;
		if (!busy)
			return (int)p;
	}
	return -1;
}

const char *kind_name(int kind)
{
	switch (kind) {
	case HV_DEV_CPU: return "cpu";
	case HV_DEV_MEM: return "memory";
	case HV_DEV_BLOCK: return "block";
	case HV_DEV_NET: return "net";
	}
	return "?";
}

/* Send {event, key: value...} to every subscriber.  Most events are
 * QEMU's, as often as it likes: their log lines are rate-limited, and
 * a subscriber that leaves HV_SUB_QUEUED_MAX bytes unread is cut off. */
void emit(const char *event, const char *k1, const char *v1,
		 const char *k2, const char *v2)
{
	unsigned suppressed = 0;

	for (int i = 0; i < HV_MAX_SUBS; i++) {
		struct ipc_conn *c = hv.subs[i];
		msgpack_packer *pk;

		if (!c || ipc_conn_closed(c))
			continue;
		if (ipc_conn_queued(c) > HV_SUB_QUEUED_MAX) {
			struct husk_err *e = NULL;

			husk_error(&e, HUSK_E_TOO_LARGE, "a subscriber left "
				   "%u KiB of events unread",
				   HV_SUB_QUEUED_MAX >> 10);
			log_warnx("%s: cut off", e->msg);
			hv.subs_cut++;
			ipc_conn_close(c, e);
			husk_err_free(e);
			continue;
		}
		pk = ipc_notify_begin(c, HV_N_EVENT);
		msgpack_pack_map(pk, 1 + (k1 != NULL) + (k2 != NULL));
		ipc_pack_kv_str(pk, "event", event);
		if (k1)
			ipc_pack_kv_str(pk, k1, v1);
		if (k2)
			ipc_pack_kv_str(pk, k2, v2);
		ipc_notify_send(c);
	}
	if (ipc_ratelimit(&hv.event_rl, ev_now(hv.loop), &suppressed))
		log_info("%s%s%s%s%s%s", event, k1 ? " " : "", k1 ? v1 : "",
			 k2 ? " " : "", k2 ? v2 : "", suppressed ?
			 " (earlier event lines suppressed)" : "");
}

void hv_conn_closed(struct ipc_conn *c)
{
	for (int i = 0; i < HV_MAX_SUBS; i++)
		if (hv.subs[i] == c) {
			hv.subs[i] = NULL;
			ipc_conn_unref(c);
		}
}

/* ------------------------------------------------------------------ */
/* stop, pause, resume, status, subscribe                              */

/* Each stage gets its time, then the next, harder one. */
static void stop_next(void)
{
	double wait = 2.;

	if (hv.qemu_pid <= 0)
		return;
	switch (hv.stop_stage++) {
	case 0:
		/* ACPI power button: the agent powers the guest off. */
		if (hv.state == HV_ST_RUNNING && qmp_ready(hv.qmp) &&
		    qmp_call(hv.qmp, "system_powerdown", NULL, -1,
			     HV_QMP_TIMEOUT, NULL, NULL) == 0) {
			wait = hv.stop_timer.repeat;
			break;
		}
		hv.stop_stage++;
		/* fall through */
	case 1:
		/* QEMU leaves cleanly, flushing its block devices. */
		if (qmp_ready(hv.qmp) &&
		    qmp_call(hv.qmp, "quit", NULL, -1, HV_QMP_TIMEOUT, NULL,
			     NULL) == 0)
			break;
		hv.stop_stage++;
		/* fall through */
	default:
		log_warnx("QEMU %d did not stop: SIGKILL",
			  (int)hv.qemu_pid);
		kill(hv.qemu_pid, SIGKILL);
		return;
	}
	ev_timer_stop(hv.loop, &hv.stop_timer);
	ev_timer_set(&hv.stop_timer, wait, 0.);
	ev_timer_start(hv.loop, &hv.stop_timer);
}

static void on_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	stop_next();
}

static const struct ipc_field stop_fields[] = {
	{ "timeout_ms", IPC_F_UINT32, 0, offsetof(struct stop_params,
						  timeout_ms), 0, 600000 },
	{ "force", IPC_F_BOOL, 0, offsetof(struct stop_params, force) },
	{ NULL },
};
static const struct stop_params stop_defaults = { .timeout_ms = 5000 };

int hv_m_stop(struct ipc_conn *c, struct ipc_msg *m, void *params, void *arg,
	      struct husk_err **err)
{
	const struct stop_params *p = params;
	struct op *op;

	if (hv.qemu_pid <= 0) {
		msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

		if (hv.state == HV_ST_CREATED || hv.state == HV_ST_NEW)
			hv.state = HV_ST_STOPPED;
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason[0] ?
				hv.exit_reason : "never started");
		ipc_reply_send(c);
		return 0;
	}
	op = op_new(c, m);
	op->next = hv.stop_ops;
	hv.stop_ops = op;
	if (p->force) {
		hv.stopping = true;
		hv.stop_stage = 2;
		stop_next();
		return 0;
	}
	if (hv.stopping)
		return 0;       /* a stop is under way: answer with it */
	hv.stopping = true;
	/* No time for the guest: no power button, QEMU quits at once. */
	hv.stop_stage = p->timeout_ms ? 0 : 1;
	hv.stop_timer.repeat = p->timeout_ms / 1000.;
	stop_next();
	return 0;
}

static void pause_done(struct qmp *q, json_t *ret, const struct husk_err *e,
		       void *arg)
{
	struct op *op = arg;

	if (e) {
		op_fail(op, e);
		return;
	}
	/* The STOP/RESUME event may come after the answer. */
	if (hv.state == HV_ST_RUNNING || hv.state == HV_ST_PAUSED)
		hv.state = op->want ? HV_ST_PAUSED : HV_ST_RUNNING;
	op_ok(op);
}

static int pause_resume(struct ipc_conn *c, struct ipc_msg *m, bool pause,
			struct husk_err **err)
{
	struct op *op;

	if (hv.state != HV_ST_RUNNING && hv.state != HV_ST_PAUSED)
		return husk_error(err, HUSK_E_STATE, "%s: the VM is %s",
				  pause ? "pause" : "resume",
				  state_names[hv.state]);
	op = op_new(c, m);
	op->want = pause;
	if (qmp_call(hv.qmp, pause ? "stop" : "cont", NULL, -1, HV_QMP_TIMEOUT,
		     pause_done, op) < 0) {
		struct husk_err *e = NULL;

		husk_error(&e, HUSK_E_UNAVAILABLE, "QEMU's monitor is closed");
		op_fail(op, e);
		husk_err_free(e);
	}
	return 0;
}

int hv_m_pause(struct ipc_conn *c, struct ipc_msg *m, void *params,
	       void *arg, struct husk_err **err)
{
	return pause_resume(c, m, true, err);
}

int hv_m_resume(struct ipc_conn *c, struct ipc_msg *m, void *params,
		void *arg, struct husk_err **err)
{
	return pause_resume(c, m, false, err);
}

static void pack_devices(msgpack_packer *pk)
{
	int n = 0;

	for (int i = 0; i < HV_MAX_DEVICES; i++)
		n += hv.dev[i].used;
	msgpack_pack_array(pk, n);
	for (int i = 0; i < HV_MAX_DEVICES; i++) {
		const struct hv_device *d = &hv.dev[i];

		if (!d->used)
			continue;
		msgpack_pack_map(pk, 5);
		ipc_pack_kv_str(pk, "id", d->id);
		ipc_pack_kv_str(pk, "kind", kind_name(d->kind));
		ipc_pack_kv_bool(pk, "hotplugged", !d->boot);
		ipc_pack_kv_bool(pk, "removing", d->removing);
		switch (d->kind) {
		case HV_DEV_BLOCK:
			ipc_pack_kv_str(pk, "path", d->path);
			break;
		case HV_DEV_NET:
			ipc_pack_kv_str(pk, "mac", d->mac);
			break;
		case HV_DEV_MEM:
			ipc_pack_kv_uint(pk, "size_mb", d->size_mb);
			break;
		default:
			ipc_pack_kv_int(pk, "port", d->port);
			break;
		}
	}
}

int hv_m_status(struct ipc_conn *c, struct ipc_msg *m, void *params,
		void *arg, struct husk_err **err)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);
	bool cfg = hv.state != HV_ST_NEW && hv.cfg.kernel;
	uint64_t up = hv.qemu_pid > 0 ? husk_now_ms() - hv.start_ms : 0;
	const char *state = state_names[hv.state];

	/* starting is running to callers: QEMU is there, QMP comes next. */
	if (hv.state == HV_ST_STARTING)
		state = "running";
	msgpack_pack_map(pk, 20);
	ipc_pack_kv_str(pk, "state", state);
	ipc_pack_kv_str(pk, "accel", !cfg ? "" :
			hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
	ipc_pack_kv_str(pk, "accel_reason", cfg ? hv.cfg.accel_reason : "");
	ipc_pack_kv_str(pk, "machine", !cfg ? "" :
			hv.cfg.machine == HV_MACHINE_Q35 ? "q35" : "microvm");
	ipc_pack_kv_int(pk, "qemu_pid", hv.qemu_pid);
	ipc_pack_kv_int(pk, "virtiofsd_pid", hv.vfs_pid);
	ipc_pack_kv_str(pk, "shared_fs", !cfg || !hv.cfg.shared_dir ? "" :
			hv.cfg.shared_fs == HV_FS_9P ? "virtio-9p" :
			"virtio-fs");
	ipc_pack_kv_uint(pk, "qemu_uid", hv.uid_lock >= 0 ? hv.qemu_uid : 0);
	ipc_pack_kv_uint(pk, "console_bytes", hv_sink_bytes(hv.con));
	ipc_pack_kv_uint(pk, "uptime_ms", up);
	ipc_pack_kv_uint(pk, "vcpus", hv.qemu_pid > 0 ? hv.vcpus :
			 hv.cfg.vcpus);
	ipc_pack_kv_uint(pk, "max_vcpus", hv.cfg.max_vcpus);
	ipc_pack_kv_uint(pk, "memory_mb", hv.qemu_pid > 0 ? hv.memory_mb :
			 hv.cfg.memory_mb);
	ipc_pack_kv_uint(pk, "max_memory_mb", hv.cfg.max_memory_mb);
	ipc_pack_kv_str(pk, "agent_socket", cfg ? hv.cfg.agent_socket : "");
	ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason);
	ipc_pack_kv_uint(pk, "qemu_events", hv.qemu_events);
	ipc_pack_kv_uint(pk, "event_lines_held", hv.event_rl.held);
	ipc_pack_kv_uint(pk, "subscribers_cut", hv.subs_cut);
	ipc_pack_key(pk, "devices");
	pack_devices(pk);
	ipc_reply_send(c);
	return 0;
}

/* Once per connection (IPC_M_ONCE): a connection is one subscriber. */
int hv_m_subscribe(struct ipc_conn *c, struct ipc_msg *m, void *params,
		   void *arg, struct husk_err **err)
{
	for (int i = 0; i < HV_MAX_SUBS; i++) {
		if (hv.subs[i])
			continue;
		ipc_conn_ref(c);
		hv.subs[i] = c;
		log_debug("subscribed (pid %d)",
			  (int)ipc_conn_peer_pid(c));
		ipc_reply_ok(c, m->msgid);
		return 0;
	}
	return husk_error(err, HUSK_E_STATE, "subscribe: %s",
			  "too many subscribers");
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

#define REQ IPC_M_REQUEST

static const struct ipc_method method_table[] = {
	/* VM life: create once per driver (its state says so: a second
	 * create, from any connection, answers `state`). */
	IPC_METHOD_D(HV_M_CREATE, REQ, hv_create_fields, hv_create_defaults,
		     hv_m_create),
	IPC_METHOD(HV_M_START, REQ, hv_m_start),
	IPC_METHOD_D(HV_M_STOP, REQ, stop_fields, stop_defaults, hv_m_stop),
	IPC_METHOD(HV_M_PAUSE, REQ, hv_m_pause),
	IPC_METHOD(HV_M_RESUME, REQ, hv_m_resume),
	IPC_METHOD(HV_M_STATUS, REQ, hv_m_status),
	IPC_METHOD(HV_M_SUBSCRIBE, REQ | IPC_M_ONCE, hv_m_subscribe),
	/* Hot-plug */
	IPC_METHOD_D(HV_M_HOTPLUG_VCPU, REQ, hv_count_fields,
		     hv_count_defaults, hv_m_hotplug_vcpu),
	IPC_METHOD_D(HV_M_UNPLUG_VCPU, REQ, hv_count_fields,
		     hv_count_defaults, hv_m_unplug_vcpu),
	IPC_METHOD_P(HV_M_HOTPLUG_MEMORY, REQ, hv_mem_fields,
		     struct mem_params, hv_m_hotplug_memory),
	IPC_METHOD_P(HV_M_UNPLUG_MEMORY, REQ, hv_id_fields,
		     struct dev_params, hv_m_unplug_memory),
	IPC_METHOD_P(HV_M_HOTPLUG_BLOCK, REQ, hv_block_fields,
		     struct dev_params, hv_m_hotplug_block),
	IPC_METHOD_P(HV_M_UNPLUG_BLOCK, REQ, hv_id_fields,
		     struct dev_params, hv_m_unplug_block),
	IPC_METHOD_P(HV_M_HOTPLUG_NET, REQ, hv_net_hp_fields,
		     struct dev_params, hv_m_hotplug_net),
	IPC_METHOD_P(HV_M_UNPLUG_NET, REQ, hv_id_fields,
		     struct dev_params, hv_m_unplug_net),
	/* Network links (husk-netmon) */
	IPC_METHOD_P(HV_M_NET_ATTACH, REQ, hv_name_fields,
		     struct name_params, hv_m_net_attach),
	IPC_METHOD_P(HV_M_NET_DETACH, REQ, hv_name_fields,
		     struct name_params, hv_m_net_detach),
	IPC_METHOD(HV_M_NET_LIST, REQ, hv_m_net_list),
	/* templates (template.c) */
	IPC_METHOD_P(HV_M_SAVE_TEMPLATE, REQ, hv_save_fields,
		     struct save_params, hv_m_save_template),
	IPC_METHOD(HV_M_NET_NAMESPACE, REQ, hv_m_net_namespace),
	IPC_METHOD_END,
};

const struct ipc_method *const hv_methods = method_table;

/* ------------------------------------------------------------------ */
/* Set-up and the end                                                  */

void hv_init(struct ev_loop *loop, const struct hv_opts *o)
{
	hv.loop = loop;
	hv.o = *o;
	hv.uid_lock = -1;
	hv.incoming_fd = -1;
	hv.save_fd = -1;
	hv.event_rl.interval = 60.;
	hv.event_rl.burst = HV_EVENT_LOG_BURST;
	hv.vfs_socket = husk_xasprintf("%s/virtiofsd.sock", o->state_dir);
	hv.qemu_log = husk_xasprintf("%s/qemu.log", o->state_dir);
	hv.vfs_log = husk_xasprintf("%s/virtiofsd.log", o->state_dir);
	hv.vm_name = husk_xasprintf("%s/vm", o->state_dir);
	ev_child_init(&hv.child, on_child, 0, 0);
	ev_child_start(loop, &hv.child);
	ev_timer_init(&hv.stop_timer, on_stop_timer, 5., 0.);
	ev_timer_init(&hv.vfs_kill, on_vfs_kill, 1., 0.);
	hv_net_init(loop);
}

/* A previous driver's VM is gone: this driver reports that and runs
 * no other VM. */
void hv_set_gone(const char *why)
{
	hv.state = HV_ST_STOPPED;
	snprintf(hv.exit_reason, sizeof(hv.exit_reason), "%s", why);
}

void hv_shutdown(void)
{
	int status;

	hv_net_vm_gone();
	if (hv.qemu_pid > 0) {
		log_info("killing QEMU %d", (int)hv.qemu_pid);
		kill(hv.qemu_pid, SIGKILL);
		if (waitpid(hv.qemu_pid, &status, 0) == hv.qemu_pid)
			hv.qemu_pid = 0;
	}
	if (hv.vfs_pid > 0) {
		kill(hv.vfs_pid, SIGKILL);
		if (waitpid(hv.vfs_pid, &status, 0) == hv.vfs_pid)
			hv.vfs_pid = 0;
	}
	unlink(hv.vfs_socket);
	if (hv.cfg.agent_socket)
		unlink(hv.cfg.agent_socket);
	hv_state_clear();
}
