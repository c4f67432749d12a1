/*
 * The daemon's confinement, as far as its job allows
 * (docs/confinement.md, "containerd-shim-husk-v2").  It does what the
 * husk CLI does for every container of a pod, for as long as the pod
 * lives: it starts husk-hypervisor (which starts QEMU and virtiofsd),
 * husk-proxy, husk-netmon, hooks, loggers and a husk-shim per process,
 * mounts the share and the rootfs, enters network namespaces and
 * writes host cgroups.  Children inherit a seccomp filter and lose what
 * the bounding set lacks, so the daemon keeps no syscall filter (QEMU's
 * and virtiofsd's syscalls would have to be in it) and every
 * capability those helpers confine themselves from.  What it does set:
 * the capabilities no part of a sandbox uses gone from every set and
 * from the bounding set (so from everything it starts), no_new_privs
 * (nothing it starts gains privileges by exec), no core dumps (its
 * memory holds the pod's configuration and containerd's requests), and
 * a seccomp deny-list: the syscalls nothing it starts makes, which the
 * capabilities it keeps would still let through, fail with EPERM.
 */
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>

#include <cap-ng.h>
#include <sys/resource.h>

#include "libhusk/confine.h"
#include "libhusk/log.h"
#include "shimv2.h"

/* Nothing a sandbox does: loading modules or kernels, the clock, the
 * kernel's log and audit, raw I/O ports, BPF and perf, MAC policy,
 * immutable files, leases, accounting, suspend and alarms, checkpoints,
 * the console's terminal. */
static const int dropped[] = {
	CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYSLOG,
	CAP_AUDIT_CONTROL, CAP_AUDIT_READ, CAP_AUDIT_WRITE, CAP_SYS_RAWIO,
	CAP_MAC_ADMIN, CAP_MAC_OVERRIDE, CAP_LINUX_IMMUTABLE, CAP_LEASE,
	CAP_SYS_PACCT, CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_SYS_TTY_CONFIG,
#ifdef CAP_BPF
	CAP_BPF,
#endif
#ifdef CAP_PERFMON
	CAP_PERFMON,
#endif
#ifdef CAP_CHECKPOINT_RESTORE
	CAP_CHECKPOINT_RESTORE,
#endif
};

/* Nothing a sandbox does either, and not stopped by the capabilities
 * dropped: CAP_SYS_ADMIN (kept for mounts and namespaces) opens BPF,
 * perf, swap and quota; CAP_DAC_READ_SEARCH (virtiofsd's) file handles;
 * CAP_SYS_PTRACE other processes' memory; keyrings need none.  The
 * module, kexec and accounting calls are here too, whatever the
 * capabilities.  QEMU, virtiofsd, the helpers, hooks and loggers run
 * under this list with their own filters on top. */
static const struct husk_errno_rule sv_denied[] = {
	{ "bpf", EPERM }, { "perf_event_open", EPERM },
	{ "swapon", EPERM }, { "swapoff", EPERM },
	{ "quotactl", EPERM }, { "quotactl_fd", EPERM },
	{ "lookup_dcookie", EPERM }, { "fanotify_init", EPERM },
	{ "open_by_handle_at", EPERM },
	{ "ptrace", EPERM }, { "process_vm_readv", EPERM },
	{ "process_vm_writev", EPERM }, { "kcmp", EPERM },
	{ "keyctl", EPERM }, { "add_key", EPERM }, { "request_key", EPERM },
	{ "init_module", EPERM }, { "finit_module", EPERM },
	{ "delete_module", EPERM }, { "kexec_load", EPERM },
	{ "kexec_file_load", EPERM }, { "acct", EPERM },
	{ "uselib", EPERM },
	{ NULL, 0 },
};

int sv_confine(struct sv *s, bool no_seccomp, struct husk_err **err)
{
	struct rlimit core = { 0, 0 };

	(void)s;
	if (capng_get_caps_process() < 0)
		return husk_error(err, HUSK_E_SYSTEM, "capng_get_caps_process");
	for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
		if (capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
				 CAPNG_INHERITABLE | CAPNG_BOUNDING_SET,
				 (unsigned)dropped[i]) < 0)
			return husk_error(err, HUSK_E_SYSTEM, "capng_update "
					  "%d", dropped[i]);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		return husk_error(err, HUSK_E_SYSTEM, "drop capabilities");
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		return husk_error_sys(err, errno, "setrlimit RLIMIT_CORE");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return husk_error_sys(err, errno, "no_new_privs");
	if (no_seccomp) {
		log_warn("--no-seccomp: running without the seccomp deny-list");
		return 0;
	}
	return husk_seccomp_deny_only(SV_NAME, sv_denied, err);
}
