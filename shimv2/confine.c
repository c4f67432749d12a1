/*
 * The daemon's confinement (docs/confinement.md,
 * "containerd-shim-husk-v2").  It does what the husk CLI does for every
 * container of a pod, for as long as the pod lives: it starts
 * husk-hypervisor (which starts QEMU and virtiofsd), husk-proxy,
 * husk-netmon, hooks, loggers and a husk-shim per process, mounts the
 * share and the rootfs, enters network namespaces and writes host
 * cgroups.  Two filters, in order:
 *
 *   1. a deny-list, which everything it starts inherits (QEMU,
 *      virtiofsd, hooks and loggers included): the syscalls nothing in
 *      a sandbox makes, which the capabilities kept would still let
 *      through, fail with EPERM.  With it: the capabilities no part of
 *      a sandbox uses gone from every set and from the bounding set,
 *      no_new_privs, no core dumps (its memory holds the pod's
 *      configuration and containerd's requests);
 *   2. then a spawner is forked (libhusk/spawn.h): from here on every
 *      process the daemon starts is cloned by it, still the daemon's
 *      child, but under the deny-list only;
 *   3. then the daemon's own allow-list (sv_syscalls below): what its
 *      ttrpc server, the proxy's messages, mounts, namespaces, cgroups,
 *      terminals and the spawner's calls need, and nothing else.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <linux/capability.h>
#include <sys/prctl.h>

#include <cap-ng.h>
#include <sys/resource.h>

#include "libhusk/confine.h"
#include "libhusk/log.h"
#include "libhusk/spawn.h"
#include "shimv2.h"

#include <sys/mman.h>
#include <sys/socket.h>

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

/* The daemon's own syscalls, beyond husk_syscalls_base. */
static const char *const sv_syscalls[] = {
	/* files: the store, bundles, the share, fifos, logs, cgroups */
	"openat", "open", "openat2", "close_range", "getdents64", "mkdir",
	"mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
	"renameat2", "symlink", "symlinkat", "readlink", "readlinkat",
	"link", "linkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
	"fchownat", "lchown", "truncate", "ftruncate", "fsync",
	"fdatasync", "access", "faccessat", "faccessat2", "chdir",
	"fchdir", "getcwd", "umask", "utimensat", "statfs", "fstatfs",
	"flock", "mknod", "mknodat", "dup", "dup2", "dup3", "pipe",
	"pipe2", "fallocate", "copy_file_range", "sendfile", "splice",
	"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr",
	"flistxattr",
	/* terminals (openpty, window sizes), taps */
	"ioctl",
	/* mounts of the share and the rootfs; the sandbox's network
	 * namespace */
	"mount", "umount2", "open_tree", "move_mount", "fsopen", "fsconfig",
	"fsmount", "mount_setattr", "unshare", "setns",
	/* the processes it starts (through the spawner) and waits for */
	"kill", "tgkill", "wait4", "waitid", "pidfd_open",
	"pidfd_send_signal", "prctl", "setsid", "getpgid", "setpgid",
	"getsid", "prlimit64", "setrlimit", "getrlimit", "getrusage",
	"sched_getaffinity", "uname", "sysinfo", "times",
	/* capabilities (libcap-ng) and ids */
	"capget", "capset", "getgroups", "setgroups", "getresuid",
	"getresgid",
	/* ttrpc, the helpers' sockets, netlink for links */
	"socket", "socketpair", "bind", "listen", "connect", "getsockname",
	"getpeername", "setsockopt", "sendmmsg", "recvmmsg",
	/* cgroup and OOM events */
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	/* threads libc may start, and their set-up */
	"set_robust_list", "rseq", "set_tid_address",
	"alarm", "setitimer", "getitimer", "timer_create", "timer_settime",
	"timer_delete",
	NULL,
};

static const struct husk_arg_rule sv_args[] = {
	/* ttrpc and the helpers are unix sockets; links are netlink; the
	 * rest of the network is the helpers' */
	{ "socket", 0, HUSK_ARG_EQ, AF_UNIX, 0 },
	{ "socket", 0, HUSK_ARG_EQ, AF_NETLINK, 0 },
	{ "socket", 0, HUSK_ARG_EQ, AF_INET, 0 },
	{ "socket", 0, HUSK_ARG_EQ, AF_INET6, 0 },
	/* no code is mapped once confined */
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
};

int sv_confine(struct sv *s, bool no_seccomp, struct husk_err **err)
{
	struct rlimit core = { 0, 0 };
	const struct husk_profile profile = {
		.name = SV_NAME,
		.syscalls = sv_syscalls,
		.allow_args = sv_args,
	};

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
		log_warn("--no-seccomp: running without the seccomp filters");
		return 0;
	}
	if (husk_seccomp_deny_only(SV_NAME, sv_denied, err) < 0)
		return -1;
	/* glibc loads its NSS modules (dlopen: code mapped) on the first
	 * user lookup that reaches them ([proxy] user): a name no module
	 * has walks them all, here, before the filter that maps no code. */
	(void)getpwnam("husk-nss-preload-\x01");
	(void)getgrnam("husk-nss-preload-\x01");
	endpwent();
	endgrent();
	/* What it starts from now on is cloned by the spawner: under the
	 * filter above only. */
	if (husk_spawner_start(husk_log_get_fd(), err) < 0)
		return -1;
	return husk_seccomp_allow_only(&profile, false, err);
}
