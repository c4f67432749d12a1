/*
 * create and start: their params decoded and checked (every failure
 * names its field), the accelerator chosen, then start_vm (life.c).
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
/* create                                                              */

#define CP(f) offsetof(struct create_params, f)
const struct ipc_field hv_create_fields[] = {
	{ "kernel", IPC_F_STR, IPC_REQUIRED, CP(kernel), 0, 4096 },
	{ "initrd", IPC_F_STR, IPC_NULLABLE, CP(initrd), 0, 4096 },
	{ "kernel_params", IPC_F_STR, IPC_NULLABLE, CP(kernel_params), 0, 2048 },
	{ "machine", IPC_F_STR, IPC_NULLABLE, CP(machine), 0, 16 },
	{ "accel", IPC_F_STR, IPC_NULLABLE, CP(accel), 0, 16 },
	{ "shared_dir", IPC_F_STR, IPC_NULLABLE, CP(shared_dir), 0, 4096 },
	{ "shared_fs", IPC_F_STR, IPC_NULLABLE, CP(shared_fs), 0, 16 },
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
	{ "tcg_cache_mb", IPC_F_UINT32, 0, CP(tcg_cache_mb), 0,
	  HV_TCG_TB_MB_MAX },
	{ "nets", IPC_F_ARRAY, IPC_NULLABLE, CP(nets), 0, HV_MAX_NETS },
	{ "memory_file", IPC_F_STR, IPC_NULLABLE, CP(memory_file), 0, 4096 },
	{ "template", IPC_F_BOOL, 0, CP(template_vm), 0, 0 },
	{ "incoming", IPC_F_STR, IPC_NULLABLE, CP(incoming), 0, 4096 },
	{ NULL },
};

const struct create_params hv_create_defaults = {
	.vcpus = 1, .memory_mb = 256, .pci_ports = 4,
	.tcg_cache_mb = HV_TCG_TB_MB,
	.console_log_max_kb = HV_CONSOLE_MAX_KB,
};

int valid_dev_id(const char *id, const char *what,
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

int valid_mac(const char *mac, const char *what, struct husk_err **err)
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
			hn->port = -1;
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
	if (!p->shared_fs || !strcmp(p->shared_fs, "virtio-fs"))
		c->shared_fs = HV_FS_VIRTIOFS;
	else if (!strcmp(p->shared_fs, "virtio-9p"))
		c->shared_fs = HV_FS_9P;
	else
		return husk_error(err, HUSK_E_INVALID, "params.shared_fs: '%s' "
				  "is not virtio-fs or virtio-9p", p->shared_fs);
	if (c->shared_fs == HV_FS_9P && !p->shared_dir)
		return husk_error(err, HUSK_E_INVALID, "params.shared_fs: "
				  "virtio-9p needs a shared_dir to serve");
	if (valid_socket_path(p->agent_socket, "params.agent_socket", err) < 0)
		return -1;
	if (p->console_log &&
	    valid_socket_path(p->console_log, "params.console_log", err) < 0)
		return -1;
	if (p->console_log_max_kb < 4)
		return husk_error(err, HUSK_E_INVALID, "params.console_log_max_kb:"
				  " %u is below 4", p->console_log_max_kb);
	if (p->tcg_cache_mb < HV_TCG_TB_MB_MIN)
		return husk_error(err, HUSK_E_INVALID, "params.tcg_cache_mb: "
				  "%u is below %u", p->tcg_cache_mb,
				  HV_TCG_TB_MB_MIN);
	if (tmpl_check_params(p, err) < 0)
		return -1;
	if (decode_nets(p->nets, m, c, err) < 0)
		return -1;

	c->kernel = husk_steal_ptr(p->kernel);
	c->initrd = husk_steal_ptr(p->initrd);
	c->kernel_params = husk_steal_ptr(p->kernel_params);
	c->shared_dir = husk_steal_ptr(p->shared_dir);
	c->agent_socket = husk_steal_ptr(p->agent_socket);
	c->console_log = husk_steal_ptr(p->console_log);
	c->mem_file = husk_steal_ptr(p->memory_file);
	c->incoming = husk_steal_ptr(p->incoming);
	c->mem_share = p->template_vm;
	c->vcpus = p->vcpus;
	c->max_vcpus = p->max_vcpus;
	c->memory_mb = p->memory_mb;
	c->max_memory_mb = p->max_memory_mb;
	c->memory_slots = p->memory_slots;
	c->pci_ports = p->pci_ports;
	c->console_max_kb = p->console_log_max_kb;
	c->tcg_cache_mb = p->tcg_cache_mb;
	c->kernel_elf = hv_file_is_elf(c->kernel);
	c->tsc_khz = hv_host_tsc_khz(c->machine);
	return 0;
}

/* A net on QEMU's command line as a device of ours (not hot-plugged);
 * its index, or -1 when the table is full. */
static int boot_net_dev(const struct hv_net *n)
{
	int d = dev_new(HV_DEV_NET, n->id);

	if (d < 0)
		return -1;
	hv.dev[d].boot = true;
	hv.dev[d].plugged = true;
	hv.dev[d].port = n->port;
	hv.dev[d].size_mb = n->mtu;
	snprintf(hv.dev[d].mac, sizeof(hv.dev[d].mac), "%s", n->mac);
	return d;
}

static int do_create(struct create_params *p, struct ipc_msg *m,
		     struct husk_err **err)
{
	struct hv_config c = { 0 };

	if (hv.state != HV_ST_NEW)
		return husk_error(err, HUSK_E_STATE, "create: the VM is %s%s%s",
				  state_names[hv.state],
				  hv.exit_reason[0] ? ": " : "", hv.exit_reason);
	if (config_from_params(p, m, &c, err) < 0) {
		hv_config_free(&c);
		return -1;
	}
	if (c.machine == HV_MACHINE_MICROVM)
		c.pci_ports = 0;
	hv.cfg = c;
	hv.state = HV_ST_CREATED;
	for (int i = 0; i < c.nnets; i++)
		boot_net_dev(&c.nets[i]);
	log_info("create: %s, %s (%s), %u/%u vCPUs, %u/%u MiB%s",
		 c.machine == HV_MACHINE_Q35 ? "q35" : "microvm",
		 c.accel == HV_ACCEL_KVM ? "kvm" : "tcg", c.accel_reason,
		 c.vcpus, c.max_vcpus, c.memory_mb, c.max_memory_mb,
		 !c.shared_dir ? ", no share" : c.shared_fs == HV_FS_9P ?
		 ", share over virtio-9p" : ", share over virtio-fs");
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

int hv_m_create(struct ipc_conn *c, struct ipc_msg *m, void *params,
		void *arg, struct husk_err **err)
{
	if (do_create(params, m, err) < 0)
		return -1;
	reply_created(c, m->msgid);
	return 0;
}

/*
 * start: with create's params when nothing was created yet.  Its row
 * has no params table: they are decoded only then (a start of a
 * created VM takes none).
 */
int hv_m_start(struct ipc_conn *c, struct ipc_msg *m, void *params,
	       void *arg, struct husk_err **err)
{
	if (hv.state == HV_ST_NEW && m->params->via.map.size > 0) {
		struct create_params p = hv_create_defaults;
		int rc;

		if (ipc_decode(m->params, hv_create_fields, &p, err) < 0)
			return -1;
		rc = do_create(&p, m, err);
		ipc_decode_free(hv_create_fields, &p);
		if (rc < 0)
			return -1;
	}
	if (hv.state != HV_ST_CREATED)
		return husk_error(err, HUSK_E_STATE, "start: the VM is %s%s",
				  state_names[hv.state],
				  hv.state == HV_ST_NEW ?
				  " (create it first)" : "");
	/* Failing, nothing ran; the config stays for another try. */
	if (start_vm(err) < 0)
		return -1;
	hv.start_op = op_new(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Nets attached between create and start (net.c's net_attach)         */

bool hv_before_start(void)
{
	return hv.state == HV_ST_CREATED;
}

/*
 * A link attached between create and start: its tap goes on QEMU's
 * command line, so the guest finds the NIC at boot, with no hotplug
 * (microvm has none; under TCG a q35 hotplug costs the guest's ACPI and
 * PCIe handling).  On q35 the NIC sits on a root port of its own, so
 * that it can be unplugged later like a hot-plugged one.  Owns tapfd.
 */
int hv_coldplug_net(const char *id, const char *mac, uint32_t mtu, int tapfd,
		    struct husk_err **err)
{
	struct hv_net *n;
	int port = -1;

	if (valid_mac(mac, "mac", err) < 0)
		goto fail;
	if (hv.cfg.nnets >= HV_MAX_NETS) {
		husk_error(err, HUSK_E_TOO_LARGE, "net_attach: %d nets on "
			   "QEMU's command line already", HV_MAX_NETS);
		goto fail;
	}
	if (valid_dev_id(id, "net_attach", err) < 0)
		goto fail;
	if (dev_find(id) >= 0) {
		husk_error(err, HUSK_E_EXISTS, "net_attach: device '%s' "
			   "exists", id);
		goto fail;
	}
	if (hv.cfg.machine == HV_MACHINE_Q35) {
		port = port_take();
		if (port < 0) {
			husk_error(err, HUSK_E_INVALID, "net_attach: all %u "
				   "hotplug ports are used (pci_ports)",
				   hv.cfg.pci_ports);
			goto fail;
		}
	}
	n = &hv.cfg.nets[hv.cfg.nnets];
	snprintf(n->id, sizeof(n->id), "%s", id);
	snprintf(n->mac, sizeof(n->mac), "%s", mac);
	n->mtu = mtu;
	n->port = port;
	if (boot_net_dev(n) < 0) {
		husk_error(err, HUSK_E_TOO_LARGE, "too many devices");
		goto fail;
	}
	n->fd = tapfd;
	hv.cfg.nnets++;
	return 0;
fail:
	close(tapfd);
	return -1;
}

/* Before start: a net taken off the command line again. */
void hv_coldplug_drop(const char *id)
{
	int dev = dev_find(id);

	for (int i = 0; i < hv.cfg.nnets; i++) {
		if (strcmp(hv.cfg.nets[i].id, id))
			continue;
		if (hv.cfg.nets[i].fd >= 0)
			close(hv.cfg.nets[i].fd);
		memmove(&hv.cfg.nets[i], &hv.cfg.nets[i + 1],
			(size_t)(hv.cfg.nnets - i - 1) *
			sizeof(hv.cfg.nets[0]));
		hv.cfg.nnets--;
		break;
	}
	if (dev >= 0)
		dev_release(dev);
}
