/*
 * Hotplug (docs/hypervisor.md): vCPUs, memory, block and net devices
 * plugged into a running VM and unplugged again, each a chain of QMP
 * commands (struct op) that answers when it ends.
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

const struct ipc_field hv_count_fields[] = {
	{ "count", IPC_F_UINT32, 0, offsetof(struct count_params, count), 0,
	  HV_MAX_VCPUS },
	{ NULL },
};
const struct count_params hv_count_defaults = { .count = 1 };

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
	hv.dev[op->dev].plugged = true;
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

int hv_m_hotplug_vcpu(struct ipc_conn *c, struct ipc_msg *m, void *params,
		      void *arg, struct husk_err **err)
{
	const struct count_params *p = params;
	struct op *op;

	if (hotplug_ready("hotplug_vcpu", err) < 0)
		return -1;
	if (p->count == 0 || hv.vcpus + p->count > hv.cfg.max_vcpus)
		return husk_error(err, HUSK_E_INVALID, "params.count: %u more "
				  "vCPUs would make %u, max_vcpus is %u",
				  p->count, hv.vcpus + p->count,
				  hv.cfg.max_vcpus);
	op = op_new(c, m);
	op->want = p->count;
	call(op, "query-hotpluggable-cpus", NULL, -1, cpus_listed);
	return 0;
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

void unplug_start(struct op *op, int dev)
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

int hv_m_unplug_vcpu(struct ipc_conn *c, struct ipc_msg *m, void *params,
		     void *arg, struct husk_err **err)
{
	const struct count_params *p = params;
	struct op *op;
	uint32_t n = 0;

	if (hotplug_ready("unplug_vcpu", err) < 0)
		return -1;
	/* Seen here with QEMU 7.2: the eject of a TCG vCPU succeeds, but
	 * its address space stays registered, and the next change to the
	 * memory map (any device_add, a pc-dimm or a vCPU) frees it again
	 * and QEMU aborts ("double free or corruption"), taking the
	 * sandbox with it.  Later QEMUs destroy a removed vCPU's address
	 * spaces. */
	if (hv.cfg.accel != HV_ACCEL_KVM)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
				  "unplug_vcpu: not under TCG (QEMU 7.2 keeps a "
				  "removed TCG vCPU's address space and aborts "
				  "at the next device_add)");
	for (int i = 0; i < HV_MAX_DEVICES; i++)
		n += hv.dev[i].used && hv.dev[i].kind == HV_DEV_CPU &&
		     !hv.dev[i].removing;
	if (p->count == 0 || p->count > n)
		return husk_error(err, HUSK_E_INVALID, "params.count: %u, but "
				  "%u hot-plugged vCPUs can be removed",
				  p->count, n);
	op = op_new(c, m);
	op->want = p->count;
	unplug_cpu_next(op);
	return 0;
}

/* Memory: a backend object, then a pc-dimm on it. */

const struct ipc_field hv_mem_fields[] = {
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
	d->plugged = true;
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

int hv_m_hotplug_memory(struct ipc_conn *c, struct ipc_msg *m, void *params,
			void *arg, struct husk_err **err)
{
	const struct mem_params *p = params;
	char id[16], name[32];
	struct op *op;
	int dev;

	if (hotplug_ready("hotplug_memory", err) < 0)
		return -1;
	if (p->size_mb == 0 || p->size_mb % HV_MEM_BLOCK_MB)
		return husk_error(err, HUSK_E_INVALID, "params.size_mb: %u "
				  "is not a positive multiple of %u",
				  p->size_mb, HV_MEM_BLOCK_MB);
	if (hv.memory_mb + p->size_mb > hv.cfg.max_memory_mb)
		return husk_error(err, HUSK_E_INVALID, "params.size_mb: %u "
				  "more MiB would make %u, max_memory_mb is %u",
				  p->size_mb, hv.memory_mb + p->size_mb,
				  hv.cfg.max_memory_mb);
	if (hv.dimms >= hv.cfg.memory_slots)
		return husk_error(err, HUSK_E_INVALID, "params.size_mb: all "
				  "%u memory slots are used",
				  hv.cfg.memory_slots);
	snprintf(id, sizeof(id), "dimm%u", hv.next_dev++);
	dev = dev_new(HV_DEV_MEM, id);
	if (dev < 0)
		return husk_error(err, HUSK_E_TOO_LARGE, "too many devices");
	hv.dev[dev].size_mb = p->size_mb;
	op = op_new(c, m);
	op->dev = dev;
	snprintf(name, sizeof(name), "mem-%s", id);
	/* Shared when virtiofsd must map it, like the boot memory. */
	call(op, "object-add",
	     json_pack("{s:s, s:s, s:I, s:b}", "qom-type",
		       hv_uses_virtiofsd(&hv.cfg) ?
		       "memory-backend-memfd" : "memory-backend-ram",
		       "id", name, "size", (json_int_t)p->size_mb << 20,
		       "share", hv_uses_virtiofsd(&hv.cfg)),
	     -1, membackend_added);
	return 0;
}

/* Block and net devices: a backend, then a virtio device on a spare
 * pcie-root-port; a failed device_add takes the backend away again. */

#define DP(f) offsetof(struct dev_params, f)
const struct ipc_field hv_block_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, DP(id), 0, HV_DEV_ID_MAX },
	{ "path", IPC_F_STR, IPC_REQUIRED, DP(path), 0, 4096 },
	{ "readonly", IPC_F_BOOL, 0, DP(readonly) },
	{ NULL },
};

const struct ipc_field hv_net_hp_fields[] = {
	{ "id", IPC_F_STR, IPC_REQUIRED, DP(id), 0, HV_DEV_ID_MAX },
	{ "mac", IPC_F_STR, IPC_REQUIRED, DP(mac), 0, 17 },
	{ "mtu", IPC_F_UINT32, 0, DP(mtu), 0, 65535 },
	{ NULL },
};

const struct ipc_field hv_id_fields[] = {
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
		d->plugged = true;
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
				  "PCI hotplug (machine_type q35 has)",
				  method);
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
int hv_m_hotplug_block(struct ipc_conn *c, struct ipc_msg *m, void *params,
		       void *arg, struct husk_err **err)
{
	struct dev_params *p = params;
	cleanup_close int fd = -1;
	struct stat st;
	struct op *op;
	int dev;

	if (p->path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "params.path: %s is not "
				  "an absolute path", p->path);
	/* Serving a 9p share, QEMU keeps CAP_DAC_OVERRIDE and has its
	 * /proc/self/fd: it could open our read-only descriptor again for
	 * writing through its magic link. */
	if (p->readonly && hv_uses_9p(&hv.cfg))
		return husk_error(err, HUSK_E_INVALID, "params.readonly: QEMU "
				  "serves this VM's share over virtio-9p and "
				  "could reopen a read-only disk for writing; "
				  "not offered (virtio-fs sandboxes have it)");
	fd = open(p->path, (p->readonly ? O_RDONLY : O_RDWR) | O_NOCTTY |
		  O_CLOEXEC);
	if (fd < 0)
		return husk_error(err, HUSK_E_INVALID, "params.path: open %s: "
				  "%s", p->path, strerror(errno));
	if (fstat(fd, &st) < 0 ||
	    !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return husk_error(err, HUSK_E_INVALID, "params.path: %s is not "
				  "a file or block device", p->path);
	dev = hotplug_dev_prepare("hotplug_block", HV_DEV_BLOCK, p->id, err);
	if (dev < 0)
		return -1;
	hv.dev[dev].path = husk_steal_ptr(p->path);
	op = op_new(c, m);
	op->dev = dev;
	op->readonly = p->readonly;
	op->blkdev = S_ISBLK(st.st_mode);
	op->fd = husk_steal_fd(fd);
	call(op, "add-fd", json_pack("{s:i}", "fdset-id", ++hv.next_fdset),
	     op->fd, fd_added);
	return 0;
}

int hv_m_hotplug_net(struct ipc_conn *c, struct ipc_msg *m, void *params,
		     void *arg, struct husk_err **err)
{
	const struct dev_params *p = params;
	char fdname[HV_DEV_ID_MAX + 16];
	struct op *op;
	int dev;

	if (m->nfds != 1)
		return husk_error(err, HUSK_E_INVALID, "hotplug_net: one tap "
				  "descriptor must come with the request (%d "
				  "did)", m->nfds);
	if (valid_mac(p->mac, "params.mac", err) < 0)
		return -1;
	dev = hotplug_dev_prepare("hotplug_net", HV_DEV_NET, p->id, err);
	if (dev < 0)
		return -1;
	snprintf(hv.dev[dev].mac, sizeof(hv.dev[dev].mac), "%s", p->mac);
	hv.dev[dev].size_mb = p->mtu;
	op = op_new(c, m);
	op->dev = dev;
	op->fd = ipc_msg_take_fd(m, 0);
	snprintf(fdname, sizeof(fdname), "fd-%s", p->id);
	/* getfd takes the tap over QMP's socket (SCM_RIGHTS). */
	call(op, "getfd", json_pack("{s:s}", "fdname", fdname), op->fd,
	     fd_given);
	return 0;
}

static int unplug_dev(struct ipc_conn *c, struct ipc_msg *m,
		      const struct dev_params *p, const char *method,
		      int kind, struct husk_err **err)
{
	struct op *op;
	int dev;

	if (hotplug_ready(method, err) < 0)
		return -1;
	dev = dev_find(p->id);
	if (dev < 0 || hv.dev[dev].kind != kind)
		return husk_error(err, HUSK_E_NOT_FOUND, "params.id: no %s "
				  "device '%s'", kind_name(kind), p->id);
	if (hv.dev[dev].removing)
		return husk_error(err, HUSK_E_STATE, "params.id: '%s' is being "
				  "removed", p->id);
	if (p->timeout_ms && p->timeout_ms < 100)
		return husk_error(err, HUSK_E_INVALID, "params.timeout_ms: %u "
				  "is below 100", p->timeout_ms);
	op = op_new(c, m);
	if (p->timeout_ms)
		op->timeout = p->timeout_ms / 1000.;
	if (kind == HV_DEV_MEM && !hv.dev[dev].taken) {
		hv.dev[dev].removing = true;
		op->dev = dev;
		ev_timer_init(&op->timer, on_untaken_timeout,
			      op->timeout, 0.);
		op->timer.data = op;
		ev_timer_start(hv.loop, &op->timer);
		op->next = hv.untaken;
		hv.untaken = op;
		return 0;
	}
	unplug_start(op, dev);
	return 0;
}

int hv_m_unplug_memory(struct ipc_conn *c, struct ipc_msg *m, void *params,
		       void *arg, struct husk_err **err)
{
	/* The guest gives the DIMM up only if it can offline every block
	 * of it: hot-plugged memory is onlined movable for that
	 * (memhp_default_state in the kernel command line). */
	return unplug_dev(c, m, params, "unplug_memory", HV_DEV_MEM, err);
}

int hv_m_unplug_block(struct ipc_conn *c, struct ipc_msg *m, void *params,
		      void *arg, struct husk_err **err)
{
	return unplug_dev(c, m, params, "unplug_block", HV_DEV_BLOCK, err);
}

int hv_m_unplug_net(struct ipc_conn *c, struct ipc_msg *m, void *params,
		    void *arg, struct husk_err **err)
{
	return unplug_dev(c, m, params, "unplug_net", HV_DEV_NET, err);
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

