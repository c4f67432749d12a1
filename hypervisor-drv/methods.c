/*
 * The driver's RPC methods (docs/hypervisor.md) and the VM they act on.
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

#define HV_QMP_TIMEOUT 10.      /* seconds for one QMP command */
#define HV_GREETING_TIMEOUT 30. /* QEMU start under a loaded TCG host */
#define HV_UNPLUG_TIMEOUT 30.   /* guest acknowledging a device_del */
#define HV_MAX_SUBS 16

/* An RPC request being answered by a chain of QMP commands. */
struct op {
	struct ipc_conn *c;
	uint32_t msgid;
	int dev;                /* index into hv.dev, -1 for none */
	uint32_t want, done;    /* vCPUs: how many, how many so far */
	json_t *cpus;           /* vCPUs: query-hotpluggable-cpus answer */
	int fd;                 /* net: the tap; block: the file; until sent */
	bool readonly, blkdev;  /* block: how it was opened, what it is */
	ev_timer timer;         /* unplug: waiting for DEVICE_DELETED */
	double timeout;         /* unplug: seconds for the guest */
	struct op *next;        /* in hv.unplugs or hv.untaken */
	hv_done_fn *done_cb;    /* internal callers (net.c): no reply */
	void *done_arg;
};

static struct {
	struct ev_loop *loop;
	struct hv_opts o;
	int state;                      /* enum hv_state */
	struct hv_config cfg;
	char *vfs_socket, *qemu_log, *vfs_log;
	pid_t qemu_pid, vfs_pid;
	uint64_t start_ms;
	struct qmp *qmp;
	char exit_reason[256];
	char shutdown_reason[48];       /* from QEMU's SHUTDOWN event */
	bool panicked, stopping;
	struct hv_device dev[HV_MAX_DEVICES];
	uint32_t vcpus, memory_mb, dimms, next_dev;
	struct op *start_op;            /* `start` waiting for QMP */
	struct op *stop_ops;            /* `stop`s waiting for the exit */
	struct op *unplugs;             /* waiting for DEVICE_DELETED */
	struct op *untaken;             /* unplugs waiting for the insert */
	ev_timer stop_timer;
	int stop_stage;                 /* 0 powerdown, 1 quit, 2 kill */
	ev_child child;
	ev_timer vfs_kill;
	struct ipc_conn *subs[HV_MAX_SUBS];
	bool confined;
	int uid_lock;                   /* QEMU's uid lease (jail.c) */
	uid_t qemu_uid;
	int next_fdset;                 /* QMP add-fd sets, from 1 */
} hv;

static const char *const state_names[] = {
	[HV_ST_NEW] = "new", [HV_ST_CREATED] = "created",
	[HV_ST_STARTING] = "starting", [HV_ST_RUNNING] = "running",
	[HV_ST_PAUSED] = "paused", [HV_ST_STOPPED] = "stopped",
};

/* ------------------------------------------------------------------ */
/* Operations in flight                                                */

static struct op *op_new(struct ipc_conn *c, const struct ipc_msg *m)
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

static void op_free(struct op *op)
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

static void op_fail(struct op *op, const struct husk_err *e)
{
	if (op->done_cb)
		op->done_cb(op->done_arg, e);
	else if (!ipc_conn_closed(op->c))
		ipc_reply_err(op->c, op->msgid, e);
	op_free(op);
}

static void op_ok(struct op *op)
{
	if (op->done_cb)
		op->done_cb(op->done_arg, NULL);
	else if (!ipc_conn_closed(op->c))
		ipc_reply_ok(op->c, op->msgid);
	op_free(op);
}

static void op_list_remove(struct op **list, struct op *op)
{
	for (struct op **p = list; *p; p = &(*p)->next)
		if (*p == op) {
			*p = op->next;
			return;
		}
}

/* ------------------------------------------------------------------ */
/* Devices and events                                                  */

static int dev_find(const char *id)
{
	for (int i = 0; i < HV_MAX_DEVICES; i++)
		if (hv.dev[i].used && !strcmp(hv.dev[i].id, id))
			return i;
	return -1;
}

static int dev_new(int kind, const char *id)
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

static void dev_release(int i)
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
static int port_take(void)
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

static const char *kind_name(int kind)
{
	switch (kind) {
	case HV_DEV_CPU: return "cpu";
	case HV_DEV_MEM: return "memory";
	case HV_DEV_BLOCK: return "block";
	case HV_DEV_NET: return "net";
	}
	return "?";
}

/* Send {event, key: value...} to every subscriber. */
static void emit(const char *event, const char *k1, const char *v1,
		 const char *k2, const char *v2)
{
	for (int i = 0; i < HV_MAX_SUBS; i++) {
		struct ipc_conn *c = hv.subs[i];
		msgpack_packer *pk;

		if (!c || ipc_conn_closed(c))
			continue;
		pk = ipc_notify_begin(c, "event");
		msgpack_pack_map(pk, 1 + (k1 != NULL) + (k2 != NULL));
		ipc_pack_kv_str(pk, "event", event);
		if (k1)
			ipc_pack_kv_str(pk, k1, v1);
		if (k2)
			ipc_pack_kv_str(pk, k2, v2);
		ipc_notify_send(c);
	}
	log_info("hv_event: %s%s%s%s%s", event, k1 ? " " : "", k1 ? v1 : "",
		 k2 ? " " : "", k2 ? v2 : "");
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
/* QEMU's life                                                         */

static void kill_vfs_later(void)
{
	if (hv.vfs_pid <= 0)
		return;
	/* virtiofsd leaves by itself once QEMU's end of the socket closes;
	 * this covers a virtiofsd QEMU never connected to. */
	kill(hv.vfs_pid, SIGTERM);
	ev_timer_set(&hv.vfs_kill, 1., 0.);
	ev_timer_start(hv.loop, &hv.vfs_kill);
}

static void on_vfs_kill(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (hv.vfs_pid > 0)
		kill(hv.vfs_pid, SIGKILL);
}

/* The last lines of a log, cleaned, for an error message. */
static void log_tail(const char *path, char *out, size_t n)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[512];
	off_t end;
	ssize_t r;

	out[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end < 0 || lseek(fd, end > 400 ? end - 400 : 0, SEEK_SET) < 0)
		return;
	r = read(fd, buf, sizeof(buf) - 1);
	if (r <= 0)
		return;
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
		r--;
	buf[r] = '\0';
	qmp_clean(out, n, buf);
}

static void qemu_gone(int status)
{
	struct husk_err *e = NULL;
	char tail[200];
	bool clean;

	if (WIFSIGNALED(status))
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "QEMU killed by signal %d", WTERMSIG(status));
	else if (hv.panicked)
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "guest panicked (QEMU exit %d)", WEXITSTATUS(status));
	else if (hv.shutdown_reason[0])
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "shutdown: %s (QEMU exit %d)", hv.shutdown_reason,
			 WEXITSTATUS(status));
	else
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "QEMU exited with status %d", WEXITSTATUS(status));
	clean = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		hv.shutdown_reason[0] && !hv.panicked;
	log_info("qemu_gone: pid %d: %s", (int)hv.qemu_pid, hv.exit_reason);
	hv.qemu_pid = 0;
	hv.state = HV_ST_STOPPED;
	ev_timer_stop(hv.loop, &hv.stop_timer);
	if (hv.qmp) {
		qmp_free(hv.qmp);
		hv.qmp = NULL;
	}
	kill_vfs_later();
	hv_state_write(0, hv.vfs_pid);
	hv_net_vm_gone();

	if (hv.start_op) {
		log_tail(hv.qemu_log, tail, sizeof(tail));
		husk_error(&e, HUSK_E_UNAVAILABLE, "start: %s%s%s",
			   hv.exit_reason, tail[0] ? ": " : "", tail);
		op_fail(hv.start_op, e);
		hv.start_op = NULL;
		husk_err_clear(&e);
	}
	husk_error(&e, HUSK_E_UNAVAILABLE, "the VM stopped: %s",
		   hv.exit_reason);
	while (hv.unplugs) {
		struct op *op = hv.unplugs;

		hv.unplugs = op->next;
		op_fail(op, e);
	}
	while (hv.untaken) {
		struct op *op = hv.untaken;

		hv.untaken = op->next;
		op_fail(op, e);
	}
	husk_err_free(e);
	while (hv.stop_ops) {
		struct op *op = hv.stop_ops;
		msgpack_packer *pk;

		hv.stop_ops = op->next;
		if (!ipc_conn_closed(op->c)) {
			pk = ipc_reply_begin(op->c, op->msgid);
			msgpack_pack_map(pk, 1);
			ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason);
			ipc_reply_send(op->c);
		}
		op_free(op);
	}
	emit(clean || hv.stopping ? "stopped" : "crashed", "reason",
	     hv.exit_reason, NULL, NULL);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	if (w->rpid == hv.qemu_pid) {
		qemu_gone(w->rstatus);
	} else if (w->rpid == hv.vfs_pid) {
		log_info("on_child: virtiofsd %d left (status 0x%x)",
			 (int)hv.vfs_pid, w->rstatus);
		hv.vfs_pid = 0;
		ev_timer_stop(loop, &hv.vfs_kill);
		hv_state_write(hv.qemu_pid, 0);
		/* After a SHUTDOWN it often leaves before QEMU is reaped. */
		if (hv.qemu_pid > 0 && !hv.shutdown_reason[0] && !hv.stopping)
			log_warnx("on_child: virtiofsd died under a running VM");
		if (hv.qemu_pid <= 0)
			hv_state_clear();
	}
}

/* The guest let a device go after its unplug had timed out (or without
 * one): its backend goes now, and the counts follow. */
/* The QMP command and arguments that remove device d's backend
 * (blk-, net- or mem-<id>); NULL for a vCPU, which has none. */
static const char *backend_del(const struct hv_device *d, json_t **args)
{
	char name[HV_DEV_ID_MAX + 16];

	switch (d->kind) {
	case HV_DEV_BLOCK:
		snprintf(name, sizeof(name), "blk-%s", d->id);
		*args = json_pack("{s:s}", "node-name", name);
		return "blockdev-del";
	case HV_DEV_NET:
		snprintf(name, sizeof(name), "net-%s", d->id);
		*args = json_pack("{s:s}", "id", name);
		return "netdev_del";
	case HV_DEV_MEM:
		snprintf(name, sizeof(name), "mem-%s", d->id);
		*args = json_pack("{s:s}", "id", name);
		return "object-del";
	}
	*args = NULL;
	return NULL;
}

/* Remove d's backend, answer unawaited: clean-up after a failed plug
 * or a removal nobody waits for. */
static void backend_drop(const struct hv_device *d)
{
	json_t *args;
	const char *cmd = backend_del(d, &args);

	if (cmd)
		qmp_call(hv.qmp, cmd, args, -1, HV_QMP_TIMEOUT, NULL, NULL);
}

static void dev_gone_late(int i)
{
	struct hv_device *d = &hv.dev[i];

	log_info("%s: the guest let %s go (no unplug waiting for it)",
		 __func__, d->id);
	backend_drop(d);
	if (d->kind == HV_DEV_MEM) {
		hv.memory_mb -= d->size_mb;
		hv.dimms--;
	} else if (d->kind == HV_DEV_CPU) {
		hv.vcpus--;
	}
	dev_release(i);
}

static void unplug_start(struct op *op, int dev);

/* The guest took a DIMM in (its _OST for the insertion): an unplug
 * that was waiting for that goes ahead.  An eject requested while the
 * guest still handles the insertion is lost (seen here). */
static void dimm_taken(const char *id)
{
	int i = dev_find(id);

	if (i < 0 || hv.dev[i].kind != HV_DEV_MEM)
		return;
	hv.dev[i].taken = true;
	for (struct op *op = hv.untaken; op; op = op->next)
		if (op->dev == i) {
			op_list_remove(&hv.untaken, op);
			ev_timer_stop(hv.loop, &op->timer);
			op->timer.data = NULL;
			unplug_start(op, i);
			return;
		}
}

static void on_untaken_timeout(struct ev_loop *loop, ev_timer *w,
			       int revents)
{
	struct op *op = w->data;
	struct hv_device *d = &hv.dev[op->dev];
	struct husk_err *e = NULL;

	op_list_remove(&hv.untaken, op);
	d->removing = false;
	husk_error(&e, HUSK_E_TIMEOUT, "unplug %s: the guest did not take "
		   "it in within %gs", d->id, op->timeout);
	op_fail(op, e);
	husk_err_free(e);
}

/* ACPI _OST status of an ejection request (ACPI spec, _OST). */
static const char *ost_status_name(json_int_t st)
{
	switch (st) {
	case 1: return "failure";
	case 2: return "unrecognized notify";
	case 0x80: return "ejection not supported";
	case 0x81: return "device in use by an application";
	case 0x82: return "device busy";
	case 0x83: return "ejection dependency busy";
	default: return "unknown status";
	}
}

/* The guest said no to a device_del: the unplug waiting on it fails at
 * once instead of at its timeout, and the device stays in use. */
static void acpi_ost(json_t *data)
{
	json_t *info = json_object_get(data, "info");
	json_t *d = json_object_get(info, "device");
	json_t *src = json_object_get(info, "source");
	json_t *st = json_object_get(info, "status");
	char id[HV_DEV_ID_MAX + 8];
	json_int_t status;
	int i;

	if (!json_is_string(d) || !json_is_integer(src) ||
	    !json_is_integer(st))
		return;
	if (json_integer_value(src) == 1 && json_integer_value(st) == 0) {
		qmp_clean(id, sizeof(id), json_string_value(d));
		dimm_taken(id);
		return;
	}
	if (json_integer_value(src) != 3)
		return;         /* not about an ejection request */
	status = json_integer_value(st);
	if (status == 0 || status == 0x84)
		return;         /* done, or in progress */
	qmp_clean(id, sizeof(id), json_string_value(d));
	i = dev_find(id);
	if (i < 0)
		return;
	for (struct op *op = hv.unplugs; op; op = op->next) {
		struct husk_err *e = NULL;

		if (op->dev != i)
			continue;
		op_list_remove(&hv.unplugs, op);
		hv.dev[i].removing = false;
		husk_error(&e, HUSK_E_STATE, "unplug %s: the guest refused to "
			   "release it (ACPI _OST 0x%x: %s)", id,
			   (unsigned)status, ost_status_name(status));
		log_warnx("%s", e->msg);
		op_fail(op, e);
		husk_err_free(e);
		return;
	}
}

static void qmp_event(struct qmp *q, const char *event, json_t *data,
		      void *arg)
{
	if (!strcmp(event, "SHUTDOWN")) {
		json_t *r = json_object_get(data, "reason");

		qmp_clean(hv.shutdown_reason, sizeof(hv.shutdown_reason),
			  json_is_string(r) ? json_string_value(r) : "?");
	} else if (!strcmp(event, "STOP")) {
		if (hv.state == HV_ST_RUNNING)
			hv.state = HV_ST_PAUSED;
		emit("paused", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "RESUME")) {
		if (hv.state == HV_ST_PAUSED)
			hv.state = HV_ST_RUNNING;
		emit("resumed", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "GUEST_PANICKED")) {
		hv.panicked = true;
		emit("panicked", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "ACPI_DEVICE_OST")) {
		acpi_ost(data);
	} else if (!strcmp(event, "DEVICE_DELETED")) {
		json_t *d = json_object_get(data, "device");
		char id[HV_DEV_ID_MAX + 8];
		int i;

		if (!json_is_string(d))
			return;         /* backends have a path only */
		qmp_clean(id, sizeof(id), json_string_value(d));
		i = dev_find(id);
		if (i < 0)
			return;
		emit("device_removed", "device", id, "kind",
		     kind_name(hv.dev[i].kind));
		for (struct op *op = hv.unplugs; op; op = op->next)
			if (op->dev == i) {
				/* Let the unplug chain finish its backend. */
				ev_feed_event(hv.loop, &op->timer, EV_CUSTOM);
				return;
			}
		dev_gone_late(i);
	}
}

static void qmp_closed(struct qmp *q, const struct husk_err *why, void *arg)
{
	/* EOF is how QEMU's exit looks here, and the child watcher reports
	 * it; anything else means QEMU broke the protocol: it is no longer
	 * under control, so it goes. */
	if (why && why->code != HUSK_E_UNAVAILABLE && hv.qemu_pid > 0) {
		log_warnx("qmp_closed: %s: killing QEMU", why->msg);
		kill(hv.qemu_pid, SIGKILL);
	}
}

static void started(struct qmp *q, void *arg)
{
	struct husk_err *e = NULL;
	struct op *op = hv.start_op;
	msgpack_packer *pk;

	hv.start_op = NULL;
	hv.state = HV_ST_RUNNING;
	log_info("started: QEMU %d ready in %llu ms (%s)", (int)hv.qemu_pid,
		 (unsigned long long)(husk_now_ms() - hv.start_ms),
		 hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
	if (!hv.confined) {
		if (hv_confine(hv.o.no_seccomp, hv.o.seccomp_debug, &e) < 0)
			fatalx("started: %s", e->msg);
		hv.confined = true;
	}
	if (!op)
		return;
	if (!ipc_conn_closed(op->c)) {
		pk = ipc_reply_begin(op->c, op->msgid);
		msgpack_pack_map(pk, 3);
		ipc_pack_kv_int(pk, "qemu_pid", hv.qemu_pid);
		ipc_pack_kv_int(pk, "virtiofsd_pid", hv.vfs_pid);
		ipc_pack_kv_str(pk, "accel",
				hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
		ipc_reply_send(op->c);
	}
	op_free(op);
}

static const struct qmp_ops qmp_ops = {
	.on_ready = started,
	.on_event = qmp_event,
	.on_close = qmp_closed,
};

/* A listening socket at path (replaced if stale) for virtiofsd or for
 * QEMU's agent channel. */
static int listen_socket(const char *path, struct husk_err **err)
{
	struct sockaddr_un sa;
	cleanup_close int fd = -1;

	if (ipc_sockaddr(&sa, path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 1) < 0)
		return husk_error_sys(err, errno, "bind %s", path);
	return husk_steal_fd(fd);
}

static int open_log(const char *path, struct husk_err **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return husk_error_sys(err, errno, "open %s", path);
	return fd;
}

static int start_virtiofsd(const struct hv_paths *p, struct husk_err **err)
{
	cleanup_close int lfd = -1, logfd = -1;
	char **argv;

	lfd = listen_socket(hv.vfs_socket, err);
	if (lfd < 0)
		return -1;
	logfd = open_log(hv.vfs_log, err);
	if (logfd < 0)
		return -1;
	argv = hv_virtiofsd_argv(&hv.cfg, p, 3);
	hv.vfs_pid = hv_spawn(argv, &lfd, 1, logfd, hv_vfs_filter, NULL, err);
	hv_argv_free(argv);
	if (hv.vfs_pid < 0) {
		hv.vfs_pid = 0;
		return -1;
	}
	log_info("start_virtiofsd: pid %d sharing %s", (int)hv.vfs_pid,
		 hv.cfg.shared_dir);
	return 0;
}

/* virtiofsd first (QEMU connects to it at start-up), then QEMU. */
static int start_vm(struct husk_err **err)
{
	struct hv_paths p = {
		.qemu = hv.o.qemu, .virtiofsd = hv.o.virtiofsd,
		.vfs_socket = hv.vfs_socket,
		.bios = "/usr/share/qemu/qboot.rom",
		.kernel = HV_JAIL_KERNEL,
		.initrd = HV_JAIL_INITRD,
	};
	struct hv_jail jail = {
		.kvm = hv.cfg.accel == HV_ACCEL_KVM,
		.kvm_gid = hv.cfg.kvm_gid,
		.root = hv.o.state_dir,
		.qemu = hv.o.qemu,
		.kernel = hv.cfg.kernel, .initrd = hv.cfg.initrd,
		.parent = getpid(),
	};
	int fds[4 + HV_MAX_NETS], nfds, sp[2] = { -1, -1 }, logfd = -1;
	int agent_fd = -1, vfs_fd = -1, con_fd = -1;
	char **argv;

	if (hv.uid_lock < 0) {
		hv.uid_lock = hv_uid_lease(hv.o.uid_lock_dir,
					   hv.o.qemu_uid_base,
					   hv.o.qemu_uid_count, &hv.qemu_uid,
					   err);
		if (hv.uid_lock < 0)
			return husk_error_wrap(err, "start: QEMU's uid");
		log_info("start_vm: QEMU runs as uid %u", (unsigned)hv.qemu_uid);
	}
	jail.uid = hv.qemu_uid;
	jail.gid = hv.qemu_uid;
	if (hv.cfg.console_log) {
		con_fd = hv_console_open(hv.loop, hv.cfg.console_log,
					 hv.cfg.console_max_kb, err);
		if (con_fd < 0)
			return -1;
	}
	if (hv.cfg.shared_dir) {
		if (start_virtiofsd(&p, err) < 0)
			goto fail;
		/* QEMU's end, connected here: it waits in the backlog
		 * until virtiofsd accepts. */
		vfs_fd = ipc_connect_path(hv.vfs_socket, 0, err);
		if (vfs_fd < 0)
			goto fail;
	}
	agent_fd = listen_socket(hv.cfg.agent_socket, err);
	if (agent_fd < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		husk_error_sys(err, errno, "socketpair");
		goto fail;
	}
	logfd = open_log(hv.qemu_log, err);
	if (logfd < 0)
		goto fail;
	/* At 3, 4, 5...: QMP, the agent socket, the taps, virtiofsd, the
	 * console. */
	fds[0] = sp[1];
	fds[1] = agent_fd;
	for (int i = 0; i < hv.cfg.nnets; i++)
		fds[2 + i] = hv.cfg.nets[i].fd;
	nfds = 2 + hv.cfg.nnets;
	if (vfs_fd >= 0)
		fds[nfds++] = vfs_fd;
	if (con_fd >= 0)
		fds[nfds++] = con_fd;
	argv = hv_qemu_argv(&hv.cfg, &p);
	if (husk_log_get_level() >= HUSK_LOG_DEBUG)
		for (char **a = argv; *a; a++)
			log_debug("start_vm: argv %s", *a);
	hv.start_ms = husk_now_ms();
	hv.qemu_pid = hv_spawn(argv, fds, nfds, logfd, hv_jail_enter, &jail,
			       err);
	hv_argv_free(argv);
	for (int i = 0; i < hv.cfg.nnets; i++) {
		close(hv.cfg.nets[i].fd);
		hv.cfg.nets[i].fd = -1;
	}
	if (hv.qemu_pid < 0) {
		hv.qemu_pid = 0;
		goto fail;
	}
	close(logfd);
	close(sp[1]);
	close(agent_fd);
	if (vfs_fd >= 0)
		close(vfs_fd);
	if (con_fd >= 0)
		close(con_fd);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	hv.qmp = qmp_new(hv.loop, sp[0], HV_GREETING_TIMEOUT, &qmp_ops, NULL);
	hv.state = HV_ST_STARTING;
	hv.vcpus = hv.cfg.vcpus;
	hv.memory_mb = hv.cfg.memory_mb;
	hv_state_write(hv.qemu_pid, hv.vfs_pid);
	log_info("start_vm: QEMU pid %d", (int)hv.qemu_pid);
	return 0;
fail: {
	int open_fds[] = { logfd, sp[0], sp[1], agent_fd, vfs_fd, con_fd };

	for (size_t i = 0; i < sizeof(open_fds) / sizeof(*open_fds); i++)
		if (open_fds[i] >= 0)
			close(open_fds[i]);
	}
	hv_console_close();
	kill_vfs_later();
	return -1;
}

/* ------------------------------------------------------------------ */
/* create                                                              */

struct create_params {
	char *kernel, *initrd, *kernel_params, *machine, *accel;
	char *shared_dir, *agent_socket, *console_log;
	uint32_t vcpus, max_vcpus, memory_mb, max_memory_mb, memory_slots;
	uint32_t pci_ports, console_log_max_kb;
	const msgpack_object *nets;
};

#define CP(f) offsetof(struct create_params, f)
static const struct ipc_field create_fields[] = {
	{ "kernel", IPC_F_STR, IPC_REQUIRED, CP(kernel), 0, 4096 },
	{ "initrd", IPC_F_STR, IPC_NULLABLE, CP(initrd), 0, 4096 },
	{ "kernel_params", IPC_F_STR, IPC_NULLABLE, CP(kernel_params), 0, 2048 },
	{ "machine", IPC_F_STR, IPC_NULLABLE, CP(machine), 0, 16 },
	{ "accel", IPC_F_STR, IPC_NULLABLE, CP(accel), 0, 16 },
	{ "shared_dir", IPC_F_STR, IPC_NULLABLE, CP(shared_dir), 0, 4096 },
	{ "agent_socket", IPC_F_STR, IPC_REQUIRED, CP(agent_socket), 0, 4096 },
	{ "console_log", IPC_F_STR, IPC_NULLABLE, CP(console_log), 0, 4096 },
	{ "console_log_max_kb", IPC_F_UINT32, 0, CP(console_log_max_kb), 0,
	  1u << 22 },
	{ "vcpus", IPC_F_UINT32, 0, CP(vcpus), 0, HV_MAX_VCPUS },
	{ "max_vcpus", IPC_F_UINT32, 0, CP(max_vcpus), 0, HV_MAX_VCPUS },
	{ "memory_mb", IPC_F_UINT32, 0, CP(memory_mb), 0, 1u << 22 },
	{ "max_memory_mb", IPC_F_UINT32, 0, CP(max_memory_mb), 0, 1u << 22 },
	{ "memory_slots", IPC_F_UINT32, 0, CP(memory_slots), 0, 32 },
	{ "pci_ports", IPC_F_UINT32, 0, CP(pci_ports), 0, HV_MAX_PORTS },
	{ "nets", IPC_F_ARRAY, IPC_NULLABLE, CP(nets), 0, HV_MAX_NETS },
	{ NULL },
};

static int valid_dev_id(const char *id, const char *what,
			struct husk_err **err)
{
	size_t n = strlen(id);

	if (n == 0 || n > HV_DEV_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_-") != n)
		return husk_error(err, HUSK_E_INVALID, "%s: '%s' is not 1-%d "
				  "bytes of [A-Za-z0-9_-]", what, id,
				  HV_DEV_ID_MAX);
	if (dev_find(id) >= 0)
		return husk_error(err, HUSK_E_EXISTS, "%s: device '%s' exists",
				  what, id);
	return 0;
}

static int valid_mac(const char *mac, const char *what, struct husk_err **err)
{
	unsigned b[6];
	char end;

	if (strlen(mac) != 17 ||
	    sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
		   &b[3], &b[4], &b[5], &end) != 6 || (b[0] & 1))
		return husk_error(err, HUSK_E_INVALID, "%s: '%s' is not a "
				  "unicast MAC address like 02:00:00:00:00:01",
				  what, mac);
	return 0;
}

static int readable_file(const char *path, const char *what,
			 struct husk_err **err)
{
	struct stat st;

	if (path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "%s: %s is not an "
				  "absolute path", what, path);
	if (stat(path, &st) < 0)
		return husk_error(err, HUSK_E_INVALID, "%s: %s: %s", what, path,
				  strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "%s: %s is not a file",
				  what, path);
	/* QEMU opens it as its own uid, with none of root's rights. */
	if (!(st.st_mode & S_IROTH))
		return husk_error(err, HUSK_E_INVALID, "%s: %s is not "
				  "readable by others (mode %04o), and QEMU "
				  "runs as an unprivileged user", what, path,
				  st.st_mode & 07777);
	return 0;
}

/* The parent folder of path must exist (QEMU creates the socket). */
static int valid_socket_path(const char *path, const char *what,
			     struct husk_err **err)
{
	cleanup_free char *dir = husk_xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct stat st;

	if (path[0] != '/' || !slash)
		return husk_error(err, HUSK_E_INVALID, "%s: %s is not an "
				  "absolute path", what, path);
	*slash = '\0';
	if (stat(dir[0] ? dir : "/", &st) < 0 || !S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "%s: folder %s missing",
				  what, dir);
	return 0;
}

struct create_net {
	char *id, *mac;
	uint32_t mtu, fd;
};

#define CN(f) offsetof(struct create_net, f)
static const struct ipc_field net_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, CN(id), 0, HV_DEV_ID_MAX },
	{ "mac", IPC_F_STR, IPC_REQUIRED, CN(mac), 0, 17 },
	{ "mtu", IPC_F_UINT32, 0, CN(mtu), 0, 65535 },
	/* Index of the tap among the descriptors sent with the request. */
	{ "fd", IPC_F_UINT32, 0, CN(fd), 0, IPC_MAX_FDS - 1 },
	{ NULL },
};

/* params.nets: [{id, mac, mtu?, fd?}], each naming a tap passed with
 * the request (fd defaults to the net's position). */
static int decode_nets(const msgpack_object *arr, struct ipc_msg *m,
		       struct hv_config *c, struct husk_err **err)
{
	for (uint32_t i = 0; arr && i < arr->via.array.size; i++) {
		struct create_net n = { .fd = i };
		struct hv_net *hn = &c->nets[c->nnets];
		char what[32];
		int rc = 0;

		snprintf(what, sizeof(what), "params.nets[%u]", i);
		if (ipc_decode(&arr->via.array.ptr[i], net_fields, &n, err) < 0)
			return husk_error_wrap(err, "%s", what);
		if (valid_dev_id(n.id, what, err) < 0 ||
		    valid_mac(n.mac, what, err) < 0)
			rc = -1;
		for (int j = 0; rc == 0 && j < c->nnets; j++)
			if (!strcmp(c->nets[j].id, n.id))
				rc = husk_error(err, HUSK_E_INVALID, "%s: id "
						"'%s' given twice", what, n.id);
		if (rc == 0 && (int)n.fd >= m->nfds)
			rc = husk_error(err, HUSK_E_INVALID, "%s: no descriptor "
					"%u came with the request (%d did)",
					what, n.fd, m->nfds);
		if (rc == 0) {
			snprintf(hn->id, sizeof(hn->id), "%s", n.id);
			snprintf(hn->mac, sizeof(hn->mac), "%s", n.mac);
			hn->mtu = n.mtu;
			hn->fd = ipc_msg_take_fd(m, (int)n.fd);
			if (hn->fd < 0)
				rc = husk_error(err, HUSK_E_INVALID, "%s: "
						"descriptor %u used twice",
						what, n.fd);
			else
				c->nnets++;
		}
		ipc_decode_free(net_fields, &n);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int resolve_accel(struct hv_config *c, const char *accel,
			 struct husk_err **err)
{
	char reason[200];
	gid_t kvm_gid = 0;
	int kvm_ok;

	if (!accel || !strcmp(accel, "auto"))
		c->accel_req = HV_ACCEL_AUTO;
	else if (!strcmp(accel, "kvm"))
		c->accel_req = HV_ACCEL_KVM;
	else if (!strcmp(accel, "tcg"))
		c->accel_req = HV_ACCEL_TCG;
	else
		return husk_error(err, HUSK_E_INVALID, "params.accel: '%s' is "
				  "not auto, kvm or tcg", accel);
	if (c->accel_req == HV_ACCEL_TCG) {
		c->accel = HV_ACCEL_TCG;
		snprintf(c->accel_reason, sizeof(c->accel_reason),
			 "tcg asked for");
		return 0;
	}
	kvm_ok = husk_accel_detect(reason, sizeof(reason));
	if (kvm_ok && hv_kvm_gid(hv.o.kvm_group, &kvm_gid, reason,
				 sizeof(reason)) < 0)
		kvm_ok = 0;
	c->kvm_gid = kvm_gid;
	if (c->accel_req == HV_ACCEL_KVM && !kvm_ok)
		return husk_error(err, HUSK_E_INVALID, "params.accel: kvm "
				  "cannot work on this host: %s", reason);
	c->accel = kvm_ok ? HV_ACCEL_KVM : HV_ACCEL_TCG;
	snprintf(c->accel_reason, sizeof(c->accel_reason), "%s%s",
		 c->accel_req == HV_ACCEL_KVM ? "kvm asked for; " : "", reason);
	return 0;
}

/* Fill and check c from params; every failure names its field. */
static int config_from_params(struct create_params *p, struct ipc_msg *m,
			      struct hv_config *c, struct husk_err **err)
{
	uint64_t host_mb = hv_host_mem_mb();

	if (readable_file(p->kernel, "params.kernel", err) < 0 ||
	    (p->initrd && readable_file(p->initrd, "params.initrd", err) < 0))
		return -1;
	if (!p->machine || !strcmp(p->machine, "q35"))
		c->machine = HV_MACHINE_Q35;
	else if (!strcmp(p->machine, "microvm"))
		c->machine = HV_MACHINE_MICROVM;
	else
		return husk_error(err, HUSK_E_INVALID, "params.machine: '%s' "
				  "is not q35 or microvm", p->machine);
	if (resolve_accel(c, p->accel, err) < 0)
		return -1;

	if (p->vcpus == 0)
		return husk_error(err, HUSK_E_INVALID, "params.vcpus: at least 1");
	if (p->max_vcpus == 0)
		p->max_vcpus = p->vcpus;
	if (p->max_vcpus < p->vcpus)
		return husk_error(err, HUSK_E_INVALID, "params.max_vcpus: %u is "
				  "below vcpus %u", p->max_vcpus, p->vcpus);
	if (p->memory_mb < 64)
		return husk_error(err, HUSK_E_INVALID, "params.memory_mb: %u is "
				  "below 64", p->memory_mb);
	if (p->max_memory_mb == 0)
		p->max_memory_mb = p->memory_mb;
	if (p->max_memory_mb < p->memory_mb)
		return husk_error(err, HUSK_E_INVALID, "params.max_memory_mb: "
				  "%u is below memory_mb %u", p->max_memory_mb,
				  p->memory_mb);
	if (host_mb && p->max_memory_mb > host_mb)
		return husk_error(err, HUSK_E_INVALID, "params.%s: %u MiB is "
				  "more than the host's %llu MiB",
				  p->max_memory_mb > p->memory_mb ?
				  "max_memory_mb" : "memory_mb",
				  p->max_memory_mb, (unsigned long long)host_mb);
	if ((p->max_memory_mb - p->memory_mb) % HV_MEM_BLOCK_MB)
		return husk_error(err, HUSK_E_INVALID, "params.max_memory_mb: "
				  "max_memory_mb - memory_mb must be a multiple "
				  "of %u", HV_MEM_BLOCK_MB);
	if (c->machine == HV_MACHINE_MICROVM &&
	    (p->max_vcpus > p->vcpus || p->max_memory_mb > p->memory_mb ||
	     p->pci_ports))
		return husk_error(err, HUSK_E_INVALID, "params.machine: microvm "
				  "has no hotplug: max_vcpus, max_memory_mb and "
				  "pci_ports must not exceed the boot values");
	if (p->max_memory_mb > p->memory_mb && p->memory_slots == 0)
		p->memory_slots = 4;
	if (p->shared_dir) {
		struct stat st;

		if (p->shared_dir[0] != '/' || stat(p->shared_dir, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			return husk_error(err, HUSK_E_INVALID, "params.shared_dir:"
					  " %s is not an existing folder",
					  p->shared_dir);
	}
	if (valid_socket_path(p->agent_socket, "params.agent_socket", err) < 0)
		return -1;
	if (p->console_log &&
	    valid_socket_path(p->console_log, "params.console_log", err) < 0)
		return -1;
	if (p->console_log_max_kb < 4)
		return husk_error(err, HUSK_E_INVALID, "params.console_log_max_kb:"
				  " %u is below 4", p->console_log_max_kb);
	if (decode_nets(p->nets, m, c, err) < 0)
		return -1;

	c->kernel = husk_steal_ptr(p->kernel);
	c->initrd = husk_steal_ptr(p->initrd);
	c->kernel_params = husk_steal_ptr(p->kernel_params);
	c->shared_dir = husk_steal_ptr(p->shared_dir);
	c->agent_socket = husk_steal_ptr(p->agent_socket);
	c->console_log = husk_steal_ptr(p->console_log);
	c->vcpus = p->vcpus;
	c->max_vcpus = p->max_vcpus;
	c->memory_mb = p->memory_mb;
	c->max_memory_mb = p->max_memory_mb;
	c->memory_slots = p->memory_slots;
	c->pci_ports = p->pci_ports;
	c->console_max_kb = p->console_log_max_kb;
	c->kernel_elf = hv_file_is_elf(c->kernel);
	if (c->machine == HV_MACHINE_MICROVM)
		c->tsc_khz = hv_host_tsc_khz();
	return 0;
}

static int do_create(struct ipc_msg *m, struct husk_err **err)
{
	struct create_params p = {
		.vcpus = 1, .memory_mb = 256, .pci_ports = 4,
		.console_log_max_kb = HV_CONSOLE_MAX_KB,
	};
	struct hv_config c = { 0 };
	int rc;

	if (hv.state != HV_ST_NEW)
		return husk_error(err, HUSK_E_STATE, "create: the VM is %s%s%s",
				  state_names[hv.state],
				  hv.exit_reason[0] ? ": " : "", hv.exit_reason);
	if (ipc_decode(m->params, create_fields, &p, err) < 0)
		return -1;
	rc = config_from_params(&p, m, &c, err);
	ipc_decode_free(create_fields, &p);
	if (rc < 0) {
		hv_config_free(&c);
		return -1;
	}
	if (c.machine == HV_MACHINE_MICROVM)
		c.pci_ports = 0;
	hv.cfg = c;
	hv.state = HV_ST_CREATED;
	for (int i = 0; i < c.nnets; i++) {
		int d = dev_new(HV_DEV_NET, c.nets[i].id);

		hv.dev[d].boot = true;
		snprintf(hv.dev[d].mac, sizeof(hv.dev[d].mac), "%s",
			 c.nets[i].mac);
	}
	log_info("create: %s, %s (%s), %u/%u vCPUs, %u/%u MiB",
		 c.machine == HV_MACHINE_Q35 ? "q35" : "microvm",
		 c.accel == HV_ACCEL_KVM ? "kvm" : "tcg", c.accel_reason,
		 c.vcpus, c.max_vcpus, c.memory_mb, c.max_memory_mb);
	return 0;
}

static void reply_created(struct ipc_conn *c, uint32_t msgid)
{
	msgpack_packer *pk = ipc_reply_begin(c, msgid);

	msgpack_pack_map(pk, 3);
	ipc_pack_kv_str(pk, "accel", hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
	ipc_pack_kv_str(pk, "accel_reason", hv.cfg.accel_reason);
	ipc_pack_kv_str(pk, "machine",
			hv.cfg.machine == HV_MACHINE_Q35 ? "q35" : "microvm");
	ipc_reply_send(c);
}

static void hv_dispatch_create(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	struct husk_err *e = NULL;

	if (do_create(m, &e) < 0) {
		ipc_reply_err(c, m->msgid, e);
		husk_err_free(e);
		return;
	}
	reply_created(c, m->msgid);
}

/* start: with create's params when nothing was created yet. */
static void hv_dispatch_start(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	struct husk_err *e = NULL;

	if (hv.state == HV_ST_NEW && m->params->via.map.size > 0 &&
	    do_create(m, &e) < 0)
		goto fail;
	if (hv.state != HV_ST_CREATED) {
		husk_error(&e, HUSK_E_STATE, "start: the VM is %s%s",
			   state_names[hv.state], hv.state == HV_ST_NEW ?
			   " (create it first)" : "");
		goto fail;
	}
	if (start_vm(&e) < 0) {
		/* Nothing ran; the config stays for another try. */
		goto fail;
	}
	hv.start_op = op_new(c, m);
	return;
fail:
	ipc_reply_err(c, m->msgid, e);
	husk_err_free(e);
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
		log_warnx("stop_next: QEMU %d did not stop: SIGKILL",
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

struct stop_params {
	uint32_t timeout_ms;
	bool force;
};

static const struct ipc_field stop_fields[] = {
	{ "timeout_ms", IPC_F_UINT32, 0, offsetof(struct stop_params,
						  timeout_ms), 0, 600000 },
	{ "force", IPC_F_BOOL, 0, offsetof(struct stop_params, force) },
	{ NULL },
};

static void hv_dispatch_stop(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	struct stop_params p = { .timeout_ms = 5000 };
	struct husk_err *e = NULL;
	struct op *op;

	if (ipc_decode(m->params, stop_fields, &p, &e) < 0) {
		ipc_reply_err(c, m->msgid, e);
		husk_err_free(e);
		return;
	}
	if (hv.qemu_pid <= 0) {
		msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

		if (hv.state == HV_ST_CREATED || hv.state == HV_ST_NEW)
			hv.state = HV_ST_STOPPED;
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason[0] ?
				hv.exit_reason : "never started");
		ipc_reply_send(c);
		return;
	}
	op = op_new(c, m);
	op->next = hv.stop_ops;
	hv.stop_ops = op;
	if (p.force) {
		hv.stopping = true;
		hv.stop_stage = 2;
		stop_next();
		return;
	}
	if (hv.stopping)
		return;         /* a stop is under way: answer with it */
	hv.stopping = true;
	hv.stop_stage = 0;
	hv.stop_timer.repeat = p.timeout_ms / 1000.;
	stop_next();
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

static void pause_resume(struct ipc_conn *c, struct ipc_msg *m, bool pause)
{
	struct op *op;

	if (hv.state != HV_ST_RUNNING && hv.state != HV_ST_PAUSED) {
		ipc_reply_error(c, m->msgid, HUSK_E_STATE, "%s: the VM is %s",
				pause ? "pause" : "resume",
				state_names[hv.state]);
		return;
	}
	op = op_new(c, m);
	op->want = pause;
	if (qmp_call(hv.qmp, pause ? "stop" : "cont", NULL, -1, HV_QMP_TIMEOUT,
		     pause_done, op) < 0) {
		struct husk_err *e = NULL;

		husk_error(&e, HUSK_E_UNAVAILABLE, "QEMU's monitor is closed");
		op_fail(op, e);
		husk_err_free(e);
	}
}

static void hv_dispatch_pause(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	pause_resume(c, m, true);
}

static void hv_dispatch_resume(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	pause_resume(c, m, false);
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

static void hv_dispatch_status(struct ipc_conn *c, struct ipc_msg *m, void *a)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);
	bool cfg = hv.state != HV_ST_NEW && hv.cfg.kernel;
	uint64_t up = hv.qemu_pid > 0 ? husk_now_ms() - hv.start_ms : 0;
	const char *state = state_names[hv.state];

	/* starting is running to callers: QEMU is there, QMP comes next. */
	if (hv.state == HV_ST_STARTING)
		state = "running";
	msgpack_pack_map(pk, 16);
	ipc_pack_kv_str(pk, "state", state);
	ipc_pack_kv_str(pk, "accel", !cfg ? "" :
			hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
	ipc_pack_kv_str(pk, "accel_reason", cfg ? hv.cfg.accel_reason : "");
	ipc_pack_kv_str(pk, "machine", !cfg ? "" :
			hv.cfg.machine == HV_MACHINE_Q35 ? "q35" : "microvm");
	ipc_pack_kv_int(pk, "qemu_pid", hv.qemu_pid);
	ipc_pack_kv_int(pk, "virtiofsd_pid", hv.vfs_pid);
	ipc_pack_kv_uint(pk, "qemu_uid", hv.uid_lock >= 0 ? hv.qemu_uid : 0);
	ipc_pack_kv_uint(pk, "console_bytes", hv_console_bytes());
	ipc_pack_kv_uint(pk, "uptime_ms", up);
	ipc_pack_kv_uint(pk, "vcpus", hv.qemu_pid > 0 ? hv.vcpus :
			 hv.cfg.vcpus);
	ipc_pack_kv_uint(pk, "max_vcpus", hv.cfg.max_vcpus);
	ipc_pack_kv_uint(pk, "memory_mb", hv.qemu_pid > 0 ? hv.memory_mb :
			 hv.cfg.memory_mb);
	ipc_pack_kv_uint(pk, "max_memory_mb", hv.cfg.max_memory_mb);
	ipc_pack_kv_str(pk, "agent_socket", cfg ? hv.cfg.agent_socket : "");
	ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason);
	ipc_pack_key(pk, "devices");
	pack_devices(pk);
	ipc_reply_send(c);
}

static void hv_dispatch_subscribe(struct ipc_conn *c, struct ipc_msg *m,
				  void *a)
{
	for (int i = 0; i < HV_MAX_SUBS; i++) {
		if (hv.subs[i] == c)
			break;
		if (hv.subs[i])
			continue;
		ipc_conn_ref(c);
		hv.subs[i] = c;
		log_debug("hv_dispatch_subscribe: subscribed (pid %d)",
			  (int)ipc_conn_peer_pid(c));
		ipc_reply_ok(c, m->msgid);
		return;
	}
	ipc_reply_error(c, m->msgid, HUSK_E_STATE, "subscribe: %s",
			"already subscribed, or too many subscribers");
}

/* ------------------------------------------------------------------ */
/* Hotplug                                                             */

static void op_fail_msg(struct op *op, int code, const char *msg)
{
	struct husk_err *e = NULL;

	husk_error(&e, code, "%s", msg);
	op_fail(op, e);
	husk_err_free(e);
}

/* Send a command for op; a closed monitor fails op. */
static void call(struct op *op, const char *cmd, json_t *args, int fd,
		 qmp_cb cb)
{
	if (!hv.qmp || qmp_call(hv.qmp, cmd, args, fd, HV_QMP_TIMEOUT, cb,
				op) < 0)
		op_fail_msg(op, HUSK_E_UNAVAILABLE, "QEMU's monitor is closed");
}

/* Hotplug needs a live VM with QMP up. */
static int hotplug_ready(const char *method, struct husk_err **err)
{
	if (hv.state != HV_ST_RUNNING && hv.state != HV_ST_PAUSED)
		return husk_error(err, HUSK_E_STATE, "%s: the VM is %s", method,
				  state_names[hv.state]);
	if (!qmp_ready(hv.qmp))
		return husk_error(err, HUSK_E_UNAVAILABLE, "%s: QEMU's monitor "
				  "is not ready", method);
	return 0;
}

static void reply_fail(struct ipc_conn *c, struct ipc_msg *m,
		       struct husk_err *e)
{
	ipc_reply_err(c, m->msgid, e);
	husk_err_free(e);
}

struct count_params {
	uint32_t count;
};

static const struct ipc_field count_fields[] = {
	{ "count", IPC_F_UINT32, 0, offsetof(struct count_params, count), 0,
	  HV_MAX_VCPUS },
	{ NULL },
};

static void reply_vcpus(struct op *op)
{
	msgpack_packer *pk;

	if (!ipc_conn_closed(op->c)) {
		pk = ipc_reply_begin(op->c, op->msgid);
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_uint(pk, "vcpus", hv.vcpus);
		ipc_reply_send(op->c);
	}
	op_free(op);
}

static void cpu_next(struct op *op);

static void cpu_added(struct qmp *q, json_t *ret, const struct husk_err *e,
		      void *arg)
{
	struct op *op = arg;

	if (e) {
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	hv.vcpus++;
	op->done++;
	op->dev = -1;
	cpu_next(op);
}

/* The next free slot of query-hotpluggable-cpus, lowest ids first
 * (QEMU lists them highest first). */
static void cpu_next(struct op *op)
{
	static const char *const keys[] = {
		"socket-id", "die-id", "core-id", "thread-id", "node-id", NULL,
	};
	json_t *slot = NULL, *type, *props, *args;
	char id[16];

	if (op->done == op->want) {
		reply_vcpus(op);
		return;
	}
	for (size_t i = json_array_size(op->cpus); i-- > 0;) {
		json_t *s = json_array_get(op->cpus, i);

		if (json_is_object(s) && !json_object_get(s, "qom-path")) {
			slot = s;
			break;
		}
	}
	type = json_object_get(slot, "type");
	props = json_object_get(slot, "props");
	if (!slot || !json_is_string(type) || !json_is_object(props)) {
		op_fail_msg(op, HUSK_E_INVALID, "hotplug_vcpu: QEMU has no "
			    "free vCPU slot");
		return;
	}
	json_object_set_new(slot, "qom-path", json_string("taken"));
	snprintf(id, sizeof(id), "cpu%u", hv.next_dev++);
	op->dev = dev_new(HV_DEV_CPU, id);
	if (op->dev < 0) {
		op_fail_msg(op, HUSK_E_TOO_LARGE, "too many devices");
		return;
	}
	args = json_pack("{s:O, s:s}", "driver", type, "id", id);
	for (int k = 0; keys[k]; k++) {
		json_t *v = json_object_get(props, keys[k]);

		if (json_is_integer(v))
			json_object_set(args, keys[k], v);
	}
	call(op, "device_add", args, -1, cpu_added);
}

static void cpus_listed(struct qmp *q, json_t *ret, const struct husk_err *e,
			void *arg)
{
	struct op *op = arg;

	if (e) {
		op_fail(op, e);
		return;
	}
	if (!json_is_array(ret)) {
		op_fail_msg(op, HUSK_E_PROTOCOL, "query-hotpluggable-cpus: "
			    "not a list");
		return;
	}
	op->cpus = json_deep_copy(ret);
	cpu_next(op);
}

static void hv_dispatch_hotplug_vcpu(struct ipc_conn *c, struct ipc_msg *m,
				     void *a)
{
	struct count_params p = { .count = 1 };
	struct husk_err *e = NULL;
	struct op *op;

	if (ipc_decode(m->params, count_fields, &p, &e) < 0 ||
	    hotplug_ready("hotplug_vcpu", &e) < 0)
		return reply_fail(c, m, e);
	if (p.count == 0 || hv.vcpus + p.count > hv.cfg.max_vcpus) {
		husk_error(&e, HUSK_E_INVALID, "params.count: %u more vCPUs "
			   "would make %u, max_vcpus is %u", p.count,
			   hv.vcpus + p.count, hv.cfg.max_vcpus);
		return reply_fail(c, m, e);
	}
	op = op_new(c, m);
	op->want = p.count;
	call(op, "query-hotpluggable-cpus", NULL, -1, cpus_listed);
}

static void unplug_cpu_next(struct op *op);

/* A memory change is done: count it, answer memory_mb and the DIMM's id.
 * A removed DIMM's slot is given back. */
static void reply_memory(struct op *op, const char *dev_id, int64_t delta_mb)
{
	char id[HV_DEV_ID_MAX + 1];
	msgpack_packer *pk;

	snprintf(id, sizeof(id), "%s", dev_id);     /* released below */
	hv.memory_mb = (uint32_t)((int64_t)hv.memory_mb + delta_mb);
	if (delta_mb > 0) {
		hv.dimms++;
	} else {
		hv.dimms--;
		dev_release(op->dev);
		op->dev = -1;
	}
	if (!ipc_conn_closed(op->c)) {
		pk = ipc_reply_begin(op->c, op->msgid);
		msgpack_pack_map(pk, 2);
		ipc_pack_kv_uint(pk, "memory_mb", hv.memory_mb);
		ipc_pack_kv_str(pk, "id", id);
		ipc_reply_send(op->c);
	}
	op_free(op);
}

/* Unplug: device_del, then DEVICE_DELETED (the guest let go), then the
 * backend.  A guest that never answers leaves the device "removing". */

static void unplug_backend_done(struct qmp *q, json_t *ret,
				const struct husk_err *e, void *arg)
{
	struct op *op = arg;
	int kind = hv.dev[op->dev].kind;

	if (e)
		log_warnx("unplug: backend of %s: %s", hv.dev[op->dev].id,
			  e->msg);
	if (kind == HV_DEV_MEM) {
		reply_memory(op, hv.dev[op->dev].id, -(int64_t)hv.dev[op->dev].size_mb);
		return;
	}
	dev_release(op->dev);
	op->dev = -1;
	if (kind != HV_DEV_CPU) {
		op_ok(op);
		return;
	}
	hv.vcpus--;
	if (++op->done < op->want) {
		unplug_cpu_next(op);
		return;
	}
	reply_vcpus(op);
}

static void on_unplug_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct op *op = w->data;
	struct hv_device *d = &hv.dev[op->dev];
	const char *cmd;
	json_t *args;

	ev_timer_stop(loop, w);
	op_list_remove(&hv.unplugs, op);
	if (!(revents & EV_CUSTOM)) {
		struct husk_err *e = NULL;

		husk_error(&e, HUSK_E_TIMEOUT, "unplug %s: the guest did not "
			   "release it in %gs", d->id, op->timeout);
		op_fail(op, e);
		husk_err_free(e);
		return;
	}
	cmd = backend_del(d, &args);
	if (cmd)
		call(op, cmd, args, -1, unplug_backend_done);
	else
		unplug_backend_done(NULL, NULL, NULL, op);
}

static void unplug_sent(struct qmp *q, json_t *ret, const struct husk_err *e,
			void *arg)
{
	struct op *op = arg;

	if (e) {
		op_fail(op, e);
		return;
	}
	hv.dev[op->dev].removing = true;
	ev_timer_init(&op->timer, on_unplug_event, op->timeout, 0.);
	op->timer.data = op;
	ev_timer_start(hv.loop, &op->timer);
	op->next = hv.unplugs;
	hv.unplugs = op;
}

static void unplug_start(struct op *op, int dev)
{
	op->dev = dev;
	call(op, "device_del", json_pack("{s:s}", "id", hv.dev[dev].id), -1,
	     unplug_sent);
}

static void unplug_cpu_next(struct op *op)
{
	for (int i = HV_MAX_DEVICES; i-- > 0;)
		if (hv.dev[i].used && hv.dev[i].kind == HV_DEV_CPU &&
		    !hv.dev[i].removing) {
			unplug_start(op, i);
			return;
		}
	op_fail_msg(op, HUSK_E_INVALID, "params.count: no hot-plugged vCPU "
		    "left to remove");
}

static void hv_dispatch_unplug_vcpu(struct ipc_conn *c, struct ipc_msg *m,
				    void *a)
{
	struct count_params p = { .count = 1 };
	struct husk_err *e = NULL;
	struct op *op;
	uint32_t n = 0;

	if (ipc_decode(m->params, count_fields, &p, &e) < 0 ||
	    hotplug_ready("unplug_vcpu", &e) < 0)
		return reply_fail(c, m, e);
	/* Seen here with QEMU 7.2: the eject of a TCG vCPU succeeds, but
	 * its address space stays registered, and the next change to the
	 * memory map (any device_add, a pc-dimm or a vCPU) frees it again
	 * and QEMU aborts ("double free or corruption"), taking the
	 * sandbox with it.  Later QEMUs destroy a removed vCPU's address
	 * spaces. */
	if (hv.cfg.accel != HV_ACCEL_KVM) {
		ipc_reply_error(c, m->msgid, HUSK_E_NOT_IMPLEMENTED,
				"unplug_vcpu: not under TCG (QEMU 7.2 keeps a "
				"removed TCG vCPU's address space and aborts at "
				"the next device_add)");
		return;
	}
	for (int i = 0; i < HV_MAX_DEVICES; i++)
		n += hv.dev[i].used && hv.dev[i].kind == HV_DEV_CPU &&
		     !hv.dev[i].removing;
	if (p.count == 0 || p.count > n) {
		husk_error(&e, HUSK_E_INVALID, "params.count: %u, but %u "
			   "hot-plugged vCPUs can be removed", p.count, n);
		return reply_fail(c, m, e);
	}
	op = op_new(c, m);
	op->want = p.count;
	unplug_cpu_next(op);
}

/* Memory: a backend object, then a pc-dimm on it. */

struct mem_params {
	uint32_t size_mb;
};

static const struct ipc_field mem_fields[] = {
	{ "size_mb", IPC_F_UINT32, IPC_REQUIRED,
	  offsetof(struct mem_params, size_mb), 0, 1u << 22 },
	{ NULL },
};

static void dimm_added(struct qmp *q, json_t *ret, const struct husk_err *e,
		       void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];

	if (e) {
		backend_drop(d);
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	reply_memory(op, d->id, d->size_mb);
}

static void membackend_added(struct qmp *q, json_t *ret,
			     const struct husk_err *e, void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];
	char name[HV_DEV_ID_MAX + 16];

	if (e) {
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	snprintf(name, sizeof(name), "mem-%s", d->id);
	call(op, "device_add", json_pack("{s:s, s:s, s:s}", "driver", "pc-dimm",
					 "id", d->id, "memdev", name),
	     -1, dimm_added);
}

static void hv_dispatch_hotplug_memory(struct ipc_conn *c, struct ipc_msg *m,
				       void *a)
{
	struct mem_params p = { 0 };
	struct husk_err *e = NULL;
	char id[16], name[32];
	struct op *op;
	int dev;

	if (ipc_decode(m->params, mem_fields, &p, &e) < 0 ||
	    hotplug_ready("hotplug_memory", &e) < 0)
		return reply_fail(c, m, e);
	if (p.size_mb == 0 || p.size_mb % HV_MEM_BLOCK_MB)
		husk_error(&e, HUSK_E_INVALID, "params.size_mb: %u is not a "
			   "positive multiple of %u", p.size_mb,
			   HV_MEM_BLOCK_MB);
	else if (hv.memory_mb + p.size_mb > hv.cfg.max_memory_mb)
		husk_error(&e, HUSK_E_INVALID, "params.size_mb: %u more MiB "
			   "would make %u, max_memory_mb is %u", p.size_mb,
			   hv.memory_mb + p.size_mb, hv.cfg.max_memory_mb);
	else if (hv.dimms >= hv.cfg.memory_slots)
		husk_error(&e, HUSK_E_INVALID, "params.size_mb: all %u memory "
			   "slots are used", hv.cfg.memory_slots);
	if (e)
		return reply_fail(c, m, e);
	snprintf(id, sizeof(id), "dimm%u", hv.next_dev++);
	dev = dev_new(HV_DEV_MEM, id);
	if (dev < 0) {
		ipc_reply_error(c, m->msgid, HUSK_E_TOO_LARGE, "too many devices");
		return;
	}
	hv.dev[dev].size_mb = p.size_mb;
	op = op_new(c, m);
	op->dev = dev;
	snprintf(name, sizeof(name), "mem-%s", id);
	/* Shared when virtiofsd must map it, like the boot memory. */
	call(op, "object-add",
	     json_pack("{s:s, s:s, s:I, s:b}", "qom-type", hv.cfg.shared_dir ?
		       "memory-backend-memfd" : "memory-backend-ram",
		       "id", name, "size", (json_int_t)p.size_mb << 20,
		       "share", hv.cfg.shared_dir != NULL),
	     -1, membackend_added);
}

/* Block and net devices: a backend, then a virtio device on a spare
 * pcie-root-port; a failed device_add takes the backend away again. */

struct dev_params {
	char *id, *path, *mac;
	bool readonly;
	uint32_t mtu;
	uint32_t timeout_ms;    /* unplug: for the guest to let go */
};

#define DP(f) offsetof(struct dev_params, f)
static const struct ipc_field block_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, DP(id), 0, HV_DEV_ID_MAX },
	{ "path", IPC_F_STR, IPC_REQUIRED, DP(path), 0, 4096 },
	{ "readonly", IPC_F_BOOL, 0, DP(readonly) },
	{ NULL },
};

static const struct ipc_field net_hp_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, DP(id), 0, HV_DEV_ID_MAX },
	{ "mac", IPC_F_STR, IPC_REQUIRED, DP(mac), 0, 17 },
	{ "mtu", IPC_F_UINT32, 0, DP(mtu), 0, 65535 },
	{ NULL },
};

static const struct ipc_field id_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, DP(id), 0, HV_DEV_ID_MAX },
	{ "timeout_ms", IPC_F_UINT32, 0, DP(timeout_ms), 0, 600000 },
	{ NULL },
};

static void device_added(struct qmp *q, json_t *ret, const struct husk_err *e,
			 void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];

	if (!e) {
		log_info("hotplug: %s %s on rp%d", kind_name(d->kind), d->id,
			 d->port);
		op_ok(op);
		return;
	}
	backend_drop(d);
	dev_release(op->dev);
	op_fail(op, e);
}

static void backend_added(struct qmp *q, json_t *ret, const struct husk_err *e,
			  void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];
	char name[HV_DEV_ID_MAX + 16], bus[16];
	json_t *args;

	if (e) {
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	snprintf(bus, sizeof(bus), "rp%d", d->port);
	if (d->kind == HV_DEV_BLOCK) {
		snprintf(name, sizeof(name), "blk-%s", d->id);
		args = json_pack("{s:s, s:s, s:s, s:s}", "driver",
				 "virtio-blk-pci", "id", d->id, "drive", name,
				 "bus", bus);
	} else {
		snprintf(name, sizeof(name), "net-%s", d->id);
		args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "driver",
				 "virtio-net-pci", "id", d->id, "netdev", name,
				 "mac", d->mac, "bus", bus);
		if (d->size_mb)         /* the MTU, for a net device */
			json_object_set_new(args, "host_mtu",
					    json_integer(d->size_mb));
	}
	call(op, "device_add", args, -1, device_added);
}

static void fd_given(struct qmp *q, json_t *ret, const struct husk_err *e,
		     void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];
	char name[HV_DEV_ID_MAX + 16], fdname[HV_DEV_ID_MAX + 16];

	if (e) {
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	snprintf(name, sizeof(name), "net-%s", d->id);
	snprintf(fdname, sizeof(fdname), "fd-%s", d->id);
	/* netdev_add consumes the named descriptor. */
	call(op, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap",
					 "id", name, "fd", fdname),
	     -1, backend_added);
}

/* Shared checks; returns the new device's index or -1. */
static int hotplug_dev_prepare(const char *method, int kind,
			       const char *id, struct husk_err **err)
{
	int dev, port;

	if (hotplug_ready(method, err) < 0)
		return -1;
	if (hv.cfg.machine != HV_MACHINE_Q35)
		return husk_error(err, HUSK_E_INVALID, "%s: microvm has no "
				  "PCI hotplug", method);
	if (valid_dev_id(id, "params.id", err) < 0)
		return -1;
	port = port_take();
	if (port < 0)
		return husk_error(err, HUSK_E_INVALID, "%s: all %u hotplug "
				  "ports are used (pci_ports)", method,
				  hv.cfg.pci_ports);
	dev = dev_new(kind, id);
	if (dev < 0)
		return husk_error(err, HUSK_E_TOO_LARGE, "too many devices");
	hv.dev[dev].port = port;
	return dev;
}

/* The file is QEMU's now (in fd set d->fdset): the block node opens
 * it through /dev/fdset/N, so QEMU never opens a host path. */
static void fd_added(struct qmp *q, json_t *ret, const struct husk_err *e,
		     void *arg)
{
	struct op *op = arg;
	struct hv_device *d = &hv.dev[op->dev];
	char name[HV_DEV_ID_MAX + 16], file[32];
	json_int_t set = 0;

	if (e) {
		dev_release(op->dev);
		op_fail(op, e);
		return;
	}
	if (json_unpack(ret, "{s:I}", "fdset-id", &set) < 0 || set <= 0 ||
	    set > INT32_MAX) {
		dev_release(op->dev);
		op_fail_msg(op, HUSK_E_PROTOCOL, "add-fd: no fdset-id in "
			    "QEMU's answer");
		return;
	}
	d->fdset = (int)set;
	close(op->fd);
	op->fd = -1;
	snprintf(name, sizeof(name), "blk-%s", d->id);
	snprintf(file, sizeof(file), "/dev/fdset/%d", d->fdset);
	call(op, "blockdev-add",
	     json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b}}", "driver", "raw",
		       "node-name", name, "read-only", op->readonly, "file",
		       "driver", op->blkdev ? "host_device" : "file",
		       "filename", file, "read-only", op->readonly),
	     -1, backend_added);
}

/*
 * The driver opens the file (QEMU's uid could not, and must not name
 * host paths) and hands it over with add-fd; its access mode is the
 * one QEMU asks the fd set for.
 */
static void hv_dispatch_hotplug_block(struct ipc_conn *c, struct ipc_msg *m,
				      void *a)
{
	struct dev_params p = { 0 };
	struct husk_err *e = NULL;
	cleanup_close int fd = -1;
	struct stat st;
	struct op *op;
	int dev;

	if (ipc_decode(m->params, block_fields, &p, &e) < 0)
		return reply_fail(c, m, e);
	if (p.path[0] != '/')
		husk_error(&e, HUSK_E_INVALID, "params.path: %s is not an "
			   "absolute path", p.path);
	else if ((fd = open(p.path, (p.readonly ? O_RDONLY : O_RDWR) |
			    O_NOCTTY | O_CLOEXEC)) < 0)
		husk_error(&e, HUSK_E_INVALID, "params.path: open %s: %s",
			   p.path, strerror(errno));
	else if (fstat(fd, &st) < 0 ||
		 !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		husk_error(&e, HUSK_E_INVALID, "params.path: %s is not a "
			   "file or block device", p.path);
	dev = e ? -1 : hotplug_dev_prepare("hotplug_block", HV_DEV_BLOCK,
					   p.id, &e);
	if (dev < 0) {
		ipc_decode_free(block_fields, &p);
		return reply_fail(c, m, e);
	}
	hv.dev[dev].path = husk_steal_ptr(p.path);
	op = op_new(c, m);
	op->dev = dev;
	op->readonly = p.readonly;
	op->blkdev = S_ISBLK(st.st_mode);
	op->fd = husk_steal_fd(fd);
	call(op, "add-fd", json_pack("{s:i}", "fdset-id", ++hv.next_fdset),
	     op->fd, fd_added);
	ipc_decode_free(block_fields, &p);
}

static void hv_dispatch_hotplug_net(struct ipc_conn *c, struct ipc_msg *m,
				    void *a)
{
	struct dev_params p = { 0 };
	struct husk_err *e = NULL;
	char fdname[HV_DEV_ID_MAX + 16];
	struct op *op;
	int dev = -1;

	if (ipc_decode(m->params, net_hp_fields, &p, &e) < 0)
		return reply_fail(c, m, e);
	if (m->nfds != 1)
		husk_error(&e, HUSK_E_INVALID, "hotplug_net: one tap descriptor "
			   "must come with the request (%d did)", m->nfds);
	else if (valid_mac(p.mac, "params.mac", &e) == 0)
		dev = hotplug_dev_prepare("hotplug_net", HV_DEV_NET, p.id, &e);
	if (dev < 0) {
		ipc_decode_free(net_hp_fields, &p);
		return reply_fail(c, m, e);
	}
	snprintf(hv.dev[dev].mac, sizeof(hv.dev[dev].mac), "%s", p.mac);
	hv.dev[dev].size_mb = p.mtu;
	op = op_new(c, m);
	op->dev = dev;
	op->fd = ipc_msg_take_fd(m, 0);
	snprintf(fdname, sizeof(fdname), "fd-%s", p.id);
	/* getfd takes the tap over QMP's socket (SCM_RIGHTS). */
	call(op, "getfd", json_pack("{s:s}", "fdname", fdname), op->fd,
	     fd_given);
	ipc_decode_free(net_hp_fields, &p);
}

static void unplug_dev(struct ipc_conn *c, struct ipc_msg *m,
		       const char *method, int kind)
{
	struct dev_params p = { 0 };
	struct husk_err *e = NULL;
	struct op *op;
	int dev;

	if (ipc_decode(m->params, id_fields, &p, &e) < 0 ||
	    hotplug_ready(method, &e) < 0)
		return reply_fail(c, m, e);
	dev = dev_find(p.id);
	if (dev < 0 || hv.dev[dev].kind != kind)
		husk_error(&e, HUSK_E_NOT_FOUND, "params.id: no %s device '%s'",
			   kind_name(kind), p.id);
	else if (hv.dev[dev].removing)
		husk_error(&e, HUSK_E_STATE, "params.id: '%s' is being removed",
			   p.id);
	else if (p.timeout_ms && p.timeout_ms < 100)
		husk_error(&e, HUSK_E_INVALID, "params.timeout_ms: %u is below "
			   "100", p.timeout_ms);
	ipc_decode_free(id_fields, &p);
	if (e)
		return reply_fail(c, m, e);
	op = op_new(c, m);
	if (p.timeout_ms)
		op->timeout = p.timeout_ms / 1000.;
	if (kind == HV_DEV_MEM && !hv.dev[dev].taken) {
		hv.dev[dev].removing = true;
		op->dev = dev;
		ev_timer_init(&op->timer, on_untaken_timeout,
			      op->timeout, 0.);
		op->timer.data = op;
		ev_timer_start(hv.loop, &op->timer);
		op->next = hv.untaken;
		hv.untaken = op;
		return;
	}
	unplug_start(op, dev);
}

static void hv_dispatch_unplug_memory(struct ipc_conn *c, struct ipc_msg *m,
				      void *a)
{
	/* The guest gives the DIMM up only if it can offline every block
	 * of it: hot-plugged memory is onlined movable for that
	 * (memhp_default_state in the kernel command line). */
	unplug_dev(c, m, "unplug_memory", HV_DEV_MEM);
}

static void hv_dispatch_unplug_block(struct ipc_conn *c, struct ipc_msg *m,
				     void *a)
{
	unplug_dev(c, m, "unplug_block", HV_DEV_BLOCK);
}

static void hv_dispatch_unplug_net(struct ipc_conn *c, struct ipc_msg *m,
				   void *a)
{
	unplug_dev(c, m, "unplug_net", HV_DEV_NET);
}

/* For net.c: the same chains without an RPC request behind them;
 * done(arg, error or NULL) is called once, possibly before this
 * returns.  hv_hotplug_net owns tapfd whatever happens. */
int hv_hotplug_check(const char *method, struct husk_err **err)
{
	return hotplug_ready(method, err);
}

int hv_hotplug_net(const char *id, const char *mac, uint32_t mtu, int tapfd,
		   hv_done_fn *done, void *arg, struct husk_err **err)
{
	char fdname[HV_DEV_ID_MAX + 16];
	struct op *op;
	int dev;

	if (valid_mac(mac, "mac", err) < 0 ||
	    (dev = hotplug_dev_prepare("net_attach", HV_DEV_NET, id,
				       err)) < 0) {
		close(tapfd);
		return -1;
	}
	snprintf(hv.dev[dev].mac, sizeof(hv.dev[dev].mac), "%s", mac);
	hv.dev[dev].size_mb = mtu;
	op = husk_xcalloc(1, sizeof(*op));
	op->timeout = HV_UNPLUG_TIMEOUT;
	op->dev = dev;
	op->fd = tapfd;
	op->done_cb = done;
	op->done_arg = arg;
	snprintf(fdname, sizeof(fdname), "fd-%s", id);
	call(op, "getfd", json_pack("{s:s}", "fdname", fdname), op->fd,
	     fd_given);
	return 0;
}

int hv_unplug_net(const char *id, hv_done_fn *done, void *arg,
		  struct husk_err **err)
{
	struct op *op;
	int dev;

	if (hotplug_ready("net_detach", err) < 0)
		return -1;
	dev = dev_find(id);
	if (dev < 0 || hv.dev[dev].kind != HV_DEV_NET)
		return husk_error(err, HUSK_E_NOT_FOUND, "no net device '%s'",
				  id);
	if (hv.dev[dev].removing)
		return husk_error(err, HUSK_E_STATE, "'%s' is being removed",
				  id);
	op = husk_xcalloc(1, sizeof(*op));
	op->timeout = HV_UNPLUG_TIMEOUT;
	op->dev = -1;
	op->fd = -1;
	op->done_cb = done;
	op->done_arg = arg;
	unplug_start(op, dev);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

static const struct ipc_method method_table[] = {
	{ "create", IPC_M_REQUEST, hv_dispatch_create },
	{ "start", IPC_M_REQUEST, hv_dispatch_start },
	{ "stop", IPC_M_REQUEST, hv_dispatch_stop },
	{ "pause", IPC_M_REQUEST, hv_dispatch_pause },
	{ "resume", IPC_M_REQUEST, hv_dispatch_resume },
	{ "status", IPC_M_REQUEST, hv_dispatch_status },
	{ "subscribe", IPC_M_REQUEST, hv_dispatch_subscribe },
	{ "hotplug_vcpu", IPC_M_REQUEST, hv_dispatch_hotplug_vcpu },
	{ "unplug_vcpu", IPC_M_REQUEST, hv_dispatch_unplug_vcpu },
	{ "hotplug_memory", IPC_M_REQUEST, hv_dispatch_hotplug_memory },
	{ "unplug_memory", IPC_M_REQUEST, hv_dispatch_unplug_memory },
	{ "hotplug_block", IPC_M_REQUEST, hv_dispatch_hotplug_block },
	{ "unplug_block", IPC_M_REQUEST, hv_dispatch_unplug_block },
	{ "hotplug_net", IPC_M_REQUEST, hv_dispatch_hotplug_net },
	{ "unplug_net", IPC_M_REQUEST, hv_dispatch_unplug_net },
	{ "net_attach", IPC_M_REQUEST, hv_dispatch_net_attach },
	{ "net_detach", IPC_M_REQUEST, hv_dispatch_net_detach },
	{ "net_list", IPC_M_REQUEST, hv_dispatch_net_list },
	{ NULL },
};

const struct ipc_method *const hv_methods = method_table;

/* ------------------------------------------------------------------ */
/* Set-up and the end                                                  */

void hv_init(struct ev_loop *loop, const struct hv_opts *o)
{
	hv.loop = loop;
	hv.o = *o;
	hv.uid_lock = -1;
	hv.vfs_socket = husk_xasprintf("%s/virtiofsd.sock", o->state_dir);
	hv.qemu_log = husk_xasprintf("%s/qemu.log", o->state_dir);
	hv.vfs_log = husk_xasprintf("%s/virtiofsd.log", o->state_dir);
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
		log_info("hv_shutdown: killing QEMU %d", (int)hv.qemu_pid);
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
