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
 * no_new_privs (nothing it starts gains privileges by exec) and no core
 * dumps (its memory holds the pod's configuration and containerd's
 * requests).
 */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "libhusk/log.h"
#include "shimv2.h"

int sv_confine(struct sv *s, struct husk_err **err)
{
	struct rlimit core = { 0, 0 };

	(void)s;
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		return husk_error_sys(err, errno, "setrlimit RLIMIT_CORE");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return husk_error_sys(err, errno, "no_new_privs");
	return 0;
}
