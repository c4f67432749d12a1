/*
 * husk-hypervisor: one per sandbox; owns QEMU (and virtiofsd) and is the
 * only program that starts, stops or reconfigures the VM
 * (docs/hypervisor.md).
 *
 *   main.c      leftovers of a dead driver; options, open, run (daemon.h)
 *   methods.c   the RPC method table, requests in flight, devices,
 *               events to subscribers; stop, pause, status
 *   life.c      QEMU's life: starting it (and virtiofsd), QMP, its exit
 *   create.c    create and start: params checked, the accelerator
 *   hotplug.c   vCPUs, memory, block and net devices plugged, unplugged
 *   state.h     the VM's state shared by those four
 *   qmp.c       the QMP client (QEMU's JSON monitor, untrusted bytes)
 *   qemu.c      the QEMU command line, starting QEMU and virtiofsd
 *   net.c       taps and tc mirred filters for the sandbox's links
 *   jail.c      QEMU's uid and namespaces, virtiofsd's extra filter
 *   console.c   the console and the children's output, with a bound
 *   confine.c   the driver's profile once QEMU runs
 */
#ifndef HUSK_HV_H
#define HUSK_HV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "libhusk/err.h"

#include "libipc/proto_hv.h"    /* HV_COMPONENT, HV_TCG_TB_MB */
#include "libhusk/version.h"
#define HV_VERSION HUSK_VERSION

#define HV_MAX_NETS 8           /* tap devices at create */
#define HV_MAX_DEVICES 64       /* devices tracked for status */
#define HV_MAX_VCPUS 64
#define HV_MEM_BLOCK_MB 128     /* hot-plugged memory granularity */
#define HV_MAX_PORTS 16         /* pcie-root-ports for hotplug */
#define HV_TCG_APIC_HZ 1000000000u /* QEMU's emulated local APIC timer */
#define HV_DEV_ID_MAX 32        /* bytes of a device id */
#define HV_CONSOLE_MAX_KB 1024  /* console.log's default bound */
#define HV_LOG_MAX_KB 1024      /* qemu.log's and virtiofsd.log's */
/* QEMU's uids: one per sandbox from this range (husk.conf(5)). */
#define HV_QEMU_UID_BASE 2140000000u
#define HV_QEMU_UID_COUNT 65536u
#define HV_UID_LOCK_DIR "/run/husk-qemu-uids"
#define HV_QEMU_NPROC 1024      /* RLIMIT_NPROC of QEMU's uid */

/* Descriptor numbers QEMU finds its inherited descriptors at. */
#define HV_FD_QMP 3
#define HV_FD_AGENT 4           /* the agent socket, listening */
#define HV_FD_TAP0 5            /* then one per tap; then virtiofsd's */
#define HV_FD_VFS(c) (HV_FD_TAP0 + (c)->nnets)
/* The console's socketpair end, after virtiofsd's (when there is one). */
#define HV_FD_CON(c) (HV_FD_VFS(c) + (hv_uses_virtiofsd(c) ? 1 : 0))

/* Where QEMU finds the kernel and initrd inside its jail. */
#define HV_JAIL_KERNEL "/boot/vmlinux"
#define HV_JAIL_INITRD "/boot/initrd"
/* A template's or a clone's RAM file (docs/factory.md). */
#define HV_JAIL_MEM "/boot/mem"
/* Where QEMU finds the share it serves over virtio-9p. */
#define HV_JAIL_SHARE "/share"

enum hv_machine { HV_MACHINE_Q35 = 0, HV_MACHINE_MICROVM = 1 };
enum hv_accel { HV_ACCEL_AUTO = 0, HV_ACCEL_KVM = 1, HV_ACCEL_TCG = 2 };
/* How the share reaches the guest (create's shared_fs). */
enum hv_shared_fs { HV_FS_VIRTIOFS = 0, HV_FS_9P = 1 };

enum hv_state {
	HV_ST_NEW = 0,          /* nothing configured */
	HV_ST_CREATED,          /* validated, not started */
	HV_ST_STARTING,         /* QEMU forked, QMP not ready */
	HV_ST_RUNNING,
	HV_ST_PAUSED,
	HV_ST_STOPPED,          /* QEMU gone; final */
};

struct hv_net {
	char id[HV_DEV_ID_MAX + 1];
	char mac[18];
	uint32_t mtu;           /* 0: the tap's */
	int fd;                 /* the tap, owned until QEMU starts */
	int port;               /* q35: its root port, -1 for pcie.0 */
};

/* What `create` accepted, validated and resolved. */
struct hv_config {
	char *kernel;
	char *initrd;
	char *kernel_params;    /* extra, appended */
	uint32_t vcpus, max_vcpus;
	uint32_t memory_mb, max_memory_mb, memory_slots;
	int machine;            /* enum hv_machine */
	int accel_req;          /* enum hv_accel as asked */
	int accel;              /* HV_ACCEL_KVM or HV_ACCEL_TCG in use */
	char accel_reason[256];
	char *shared_dir;
	int shared_fs;          /* enum hv_shared_fs, with shared_dir */
	char *agent_socket;
	char *console_log;
	uint32_t console_max_kb;        /* console.log's bound (console.c) */
	uint32_t kvm_gid;               /* KVM: QEMU's group for /dev/kvm */
	uint32_t pci_ports;     /* spare pcie-root-ports (q35) */
	uint32_t tcg_cache_mb;  /* TCG: -accel tb-size (0: HV_TCG_TB_MB) */
	/* VM templates (docs/factory.md): RAM in mem_file, mapped shared
	 * (a template) or private (a clone, which starts from the device
	 * state in incoming). */
	char *mem_file;
	bool mem_share;
	char *incoming;
	bool kernel_elf;        /* PVH vmlinux: boots with qboot */
	uint32_t tsc_khz;       /* microvm: tsc_early_khz, 0 if unknown */
	struct hv_net nets[HV_MAX_NETS];
	int nnets;
};

static inline bool hv_uses_virtiofsd(const struct hv_config *c)
{
	return c->shared_dir && c->shared_fs == HV_FS_VIRTIOFS;
}

static inline bool hv_uses_9p(const struct hv_config *c)
{
	return c->shared_dir && c->shared_fs == HV_FS_9P;
}

/* Paths and programs the command lines need. */
struct hv_paths {
	const char *qemu;
	const char *virtiofsd;
	const char *vfs_socket;         /* virtiofsd's, in the state dir */
	const char *bios;               /* qboot */
	const char *kernel, *initrd;    /* as QEMU sees them (its jail) */
	const char *share;              /* virtio-9p: the share, likewise */
	const char *name;               /* -name: which sandbox, for ps */
};

enum hv_dev_kind {
	HV_DEV_CPU, HV_DEV_MEM, HV_DEV_BLOCK, HV_DEV_NET,
};

struct hv_device {
	bool used;
	int kind;               /* enum hv_dev_kind */
	char id[HV_DEV_ID_MAX + 8];
	char *path;             /* block: the file */
	int fdset;              /* block: QMP fd set holding it, or 0 */
	char mac[18];           /* net */
	uint32_t size_mb;       /* mem */
	int port;               /* root port index, -1 for none */
	bool boot;              /* on the command line, not hot-plugged */
	bool plugged;           /* in the VM: at boot, or device_add answered */
	bool removing;          /* device_del sent */
	bool taken;             /* mem: the guest's _OST said it took it */
};

/* qemu.c */
void hv_config_free(struct hv_config *c);
/* argv for QEMU (NULL-terminated, free with hv_argv_free). */
char **hv_qemu_argv(const struct hv_config *c, const struct hv_paths *p);
char **hv_virtiofsd_argv(const struct hv_config *c, const struct hv_paths *p,
			 int listen_fd);
void hv_argv_free(char **argv);
/* The kernel command line the driver uses (malloc'ed). */
char *hv_kernel_cmdline(const struct hv_config *c);
bool hv_file_is_elf(const char *path);
uint32_t hv_host_tsc_khz(int machine);
uint64_t hv_host_mem_mb(void);
/*
 * Fork and exec argv with fds[i] at descriptor i + 3 in the child and
 * nothing else open but stdio (stdout/stderr to logfd, stdin /dev/null).
 * The child dies with SIGKILL when the driver dies (PDEATHSIG, checked
 * against the getppid() race).  Returns the pid or -1.
 */
typedef int hv_setup_fn(void *arg);
/* setup (may be NULL) runs in the child last before exec; -1 with
 * errno fails the spawn. */
pid_t hv_spawn(char *const argv[], const int *fds, int nfds, int logfd,
	       hv_setup_fn *setup, void *arg, struct husk_err **err);

/* methods.c */
struct ipc_method;
extern const struct ipc_method *const hv_methods;
struct hv_opts {
	const char *sandbox;
	const char *state_dir;
	const char *qemu;
	const char *virtiofsd;
	uint32_t qemu_uid_base, qemu_uid_count;
	const char *uid_lock_dir;       /* per-uid lock files, root-only */
	const char *kvm_group;          /* NULL: /dev/kvm's own */
};
void hv_init(struct ev_loop *loop, const struct hv_opts *o);
/* Stop the VM (forced) and wait for QEMU; for the driver's own exit. */
void hv_shutdown(void);
/* Report the VM of a previous driver as gone (final state). */
void hv_set_gone(const char *why);
struct ipc_conn;
void hv_conn_closed(struct ipc_conn *c);

/* main.c: the state file of a previous driver (pids it left). */
int hv_state_write(pid_t qemu, pid_t vfs);
void hv_state_clear(void);

/* hotplug.c, for net.c: hot-plug without an RPC request. */
typedef void hv_done_fn(void *arg, const struct husk_err *e);
int hv_hotplug_check(const char *method, struct husk_err **err);
int hv_hotplug_net(const char *id, const char *mac, uint32_t mtu, int tapfd,
		   hv_done_fn *done, void *arg, struct husk_err **err);
int hv_unplug_net(const char *id, hv_done_fn *done, void *arg,
		  struct husk_err **err);

/* create.c, for net.c: created, QEMU not started, a net goes on its
 * command line instead of being hot-plugged. */
bool hv_before_start(void);
int hv_coldplug_net(const char *id, const char *mac, uint32_t mtu, int tapfd,
		    struct husk_err **err);
void hv_coldplug_drop(const char *id);

/* net.c: the sandbox's links mirrored through taps (docs/network.md). */
struct ipc_msg;
void hv_net_init(struct ev_loop *loop);
/* The VM is gone: filters and taps go too. */
void hv_net_vm_gone(void);

/* jail.c */
struct hv_jail {
	uid_t uid;
	gid_t gid;
	bool kvm;               /* bind /dev/kvm, join kvm_gid */
	gid_t kvm_gid;          /* 0: /dev/kvm is open to all */
	const char *root;       /* an existing directory to build / over */
	const char *qemu;       /* the binary, bound if not under /usr */
	const char *kernel, *initrd;    /* host paths, bound at HV_JAIL_* */
	const char *mem;                /* RAM file, bound read-write */
	const char *share;      /* virtio-9p: served from HV_JAIL_SHARE */
	pid_t parent;           /* the driver, for the PDEATHSIG race */
};
/* Lease a free uid of [base, base + count); returns the lock's
 * descriptor, held for the driver's life. */
int hv_uid_lease(const char *dir, uint32_t base, uint32_t count,
		 uid_t *uid, struct husk_err **err);
int hv_kvm_gid(const char *group, gid_t *gid, char *why, size_t n);
/* hv_spawn setup hooks: QEMU's jail (arg: struct hv_jail; with a share,
 * QEMU keeps the file capabilities 9p needs and gets the filter
 * virtiofsd gets), virtiofsd's filter (arg unused). */
int hv_jail_enter(void *arg);
int hv_vfs_filter(void *arg);

/* console.c: output the guest can drive (the console, QEMU's and
 * virtiofsd's stdout/stderr), written to path with a bound of max_kb,
 * rotated once (docs/hypervisor.md). */
struct hv_sink;
/* A socketpair (sock) or a pipe: *peer is the writer's end, for the
 * child; the driver reads the other. */
struct hv_sink *hv_sink_new(struct ev_loop *loop, const char *path,
			    uint32_t max_kb, bool sock, int *peer,
			    struct husk_err **err);
/* Read what is there now (the writer died: its last words). */
void hv_sink_drain(struct hv_sink *s);
void hv_sink_free(struct hv_sink *s);
uint64_t hv_sink_bytes(const struct hv_sink *s);

/* confine.c: the confinement point, once QEMU runs */
struct husk_daemon;
int hv_confine(struct husk_daemon *d, struct husk_err **err);
/* main.c: the driver as a daemon (libhusk/daemon.h) */
extern struct husk_daemon hv_daemon;

#endif
