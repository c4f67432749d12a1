/*
 * QEMU's jail and virtiofsd's extra filter (docs/hypervisor.md,
 * "QEMU's jail").
 *
 * QEMU runs device emulation that the guest drives, so it is the first
 * host process a guest escape reaches.  It runs as a uid and gid of its
 * own, leased from a configured range for the driver's life (an flock
 * on a per-uid file in a root-only directory), so one tenant's QEMU
 * cannot signal, ptrace or read another's; with no capabilities in any
 * set, no_new_privs, and in mount, IPC, UTS and network namespaces of
 * its own whose root is an empty read-only tmpfs holding read-only
 * binds of what QEMU needs to run (/usr, /lib*, ld.so's cache, the
 * kernel and initrd at fixed paths, /dev/null, /dev/urandom, /dev/kvm
 * under KVM).  Everything else it needs comes as descriptors.
 *
 * Serving the share over virtio-9p, QEMU reads and writes the guest's
 * files itself: its jail then holds the share's read-only view at
 * /share (a slave of the host's, so the binds of containers made later
 * reach it) and its own /proc/self/fd (9p's local backend changes modes
 * and xattrs through it, never by path), and it keeps the three
 * capabilities that serving files as their owners needs, under the
 * filter virtiofsd gets: no setuid or setgid file, no device node.
 *
 * virtiofsd must stay root to serve files as their owners; it keeps
 * fewer capabilities (-o modcaps, qemu.c) and gets a filter, stacked
 * under its own, that refuses to make a setuid or setgid file or a
 * device node, whatever the guest asks.
 *
 * hv_jail_enter() and hv_vfs_filter() run in the child between fork
 * and exec (hv_spawn's setup hook); the driver is single-threaded, so
 * they may allocate.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "hv.h"
/* After hv.h: seccomp.h's headers define a macro ev.h's enum uses. */
#include <seccomp.h>
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

/* ------------------------------------------------------------------ */
/* A uid of its own                                                    */

/*
 * Lease the first uid of [base, base + count) whose lock file nobody
 * holds.  The lock lives as long as the returned descriptor, which the
 * driver keeps (close-on-exec: QEMU must not be able to drop it).  The
 * driver reaps QEMU before it exits; if it dies, the kernel SIGKILLs
 * QEMU (PDEATHSIG) as it releases the lock.
 */
int hv_uid_lease(const char *dir, uint32_t base, uint32_t count,
		 uid_t *uid, struct husk_err **err)
{
	cleanup_close int dfd = -1;
	struct stat st;
	char name[16];

	if (count == 0 || base == 0 || (uint64_t)base + count > 0xfffffffeULL)
		return husk_error(err, HUSK_E_INVALID, "QEMU uid range %u+%u "
				  "is empty, holds root or wraps", base, count);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return husk_error_sys(err, errno, "mkdir %s", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return husk_error_sys(err, errno, "open %s", dir);
	/* Whoever could write here could steal or block a uid. */
	if (fstat(dfd, &st) < 0)
		return husk_error_sys(err, errno, "stat %s", dir);
	if (st.st_uid != 0 || (st.st_mode & 077))
		return husk_error(err, HUSK_E_INVALID, "%s must be owned by "
				  "root and closed to others (it is %04o, "
				  "uid %u)", dir, st.st_mode & 07777,
				  (unsigned)st.st_uid);
	for (uint32_t i = 0; i < count; i++) {
		int fd;

		snprintf(name, sizeof(name), "%u", base + i);
		fd = openat(dfd, name, O_RDONLY | O_CREAT | O_NOFOLLOW |
			    O_CLOEXEC, 0600);
		if (fd < 0)
			return husk_error_sys(err, errno, "open %s/%s", dir,
					      name);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*uid = base + i;
			return fd;
		}
		close(fd);
		if (errno != EWOULDBLOCK)
			return husk_error_sys(err, errno, "flock %s/%s", dir,
					      name);
	}
	return husk_error(err, HUSK_E_UNAVAILABLE, "every QEMU uid of "
			  "%u..%u is in use (qemu_uid_count)", base,
			  base + count - 1);
}

/*
 * The group QEMU reaches /dev/kvm through: the configured one, else
 * /dev/kvm's own when it is group read-write and not root's; 0 when
 * /dev/kvm is open to everyone.  -1 with a reason when QEMU's user
 * could not open it.
 */
int hv_kvm_gid(const char *group, gid_t *gid, char *why, size_t n)
{
	struct stat st;
	struct group *gr;
	char *end;

	if (group && *group) {
		unsigned long v = strtoul(group, &end, 10);

		if (*end == '\0' && end != group) {
			*gid = (gid_t)v;
			return 0;
		}
		gr = getgrnam(group);
		if (!gr) {
			snprintf(why, n, "kvm_group '%s' is not a group",
				 group);
			return -1;
		}
		*gid = gr->gr_gid;
		return 0;
	}
	if (stat("/dev/kvm", &st) < 0) {
		snprintf(why, n, "/dev/kvm: %s", strerror(errno));
		return -1;
	}
	if ((st.st_mode & 0060) == 0060 && st.st_gid != 0) {
		*gid = st.st_gid;
		return 0;
	}
	if ((st.st_mode & 0006) == 0006) {
		*gid = 0;
		return 0;
	}
	snprintf(why, n, "QEMU's user cannot open /dev/kvm (mode %04o, gid "
		 "%u): make it group read-write or set [hypervisor] "
		 "kvm_group", st.st_mode & 07777, (unsigned)st.st_gid);
	return -1;
}

/* ------------------------------------------------------------------ */
/* In the child: QEMU's root                                           */

static int mkdir_p_rel(const char *path)
{
	char buf[4096], *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -1;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

/*
 * Bind host path src (absolute) at dst (relative to the new root, which
 * is the working directory), remounted with flags; a directory or a
 * file.  A symlink at the top (merged /usr: /lib -> usr/lib) is copied
 * as a symlink.
 */
static int bind_at(const char *src, const char *dst, unsigned long flags,
		   bool optional)
{
	struct stat st;
	char link[4096];
	ssize_t n;
	int fd;

	if (lstat(src, &st) < 0)
		return optional && errno == ENOENT ? 0 : -1;
	if (mkdir_p_rel(dst) < 0)
		return -1;
	if (S_ISLNK(st.st_mode)) {
		n = readlink(src, link, sizeof(link) - 1);
		if (n < 0)
			return -1;
		link[n] = '\0';
		return symlink(link, dst) < 0 && errno != EEXIST ? -1 : 0;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return -1;
	} else {
		fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		close(fd);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return -1;
	return mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | flags, NULL);
}

static int bind_ro(const char *src, const char *dst, unsigned long flags,
		   bool optional)
{
	return bind_at(src, dst, flags | MS_RDONLY, optional);
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && path[n] == '/';
}

/*
 * The share for virtio-9p at HV_JAIL_SHARE: the detached copy of the
 * view taken before the tmpfs hid it.  It stays a slave of the host's
 * view (so containers' binds made later arrive) and sends nothing back;
 * nosuid, nodev and noexec on what it holds now (QEMU never runs or
 * opens a device from there; new binds come nosuid,nodev from the
 * host).  9p's local backend reaches modes and xattrs through
 * /proc/self/fd/N: that directory, QEMU's own (its pid survives exec),
 * is all of /proc it gets.
 */
static int jail_share(int tree)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			    MOUNT_ATTR_NOEXEC,
	};

	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
			  sizeof(attr)) < 0 ||
	    mkdir(HV_JAIL_SHARE + 1, 0755) < 0 ||
	    move_mount(tree, "", AT_FDCWD, HV_JAIL_SHARE + 1,
		       MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return -1;
	return bind_ro("/proc/self/fd", "proc/self/fd",
		       MS_NOSUID | MS_NODEV | MS_NOEXEC, false);
}

/* The tree QEMU sees, built on a tmpfs over j->root, then made /;
 * share is the detached copy of the share (virtio-9p) or -1. */
static int jail_root(const struct hv_jail *j, int share)
{
	static const char *const tops[] = {
		"/usr", "/lib", "/lib64", "/lib32", "/libx32", NULL,
	};
	const unsigned long ro = MS_NOSUID | MS_NODEV;
	const unsigned long data = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	const unsigned long dev = MS_NOSUID | MS_NOEXEC;

	/* Nothing mounted here may reach the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("husk-qemu", j->root, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=64k,nr_inodes=64") < 0 ||
	    chdir(j->root) < 0)
		return -1;
	for (int i = 0; tops[i]; i++)
		if (bind_ro(tops[i], tops[i] + 1, ro, true) < 0)
			return -1;
	/* QEMU itself where it is not under /usr; ld.so's cache. */
	if (!under(j->qemu, "/usr") && bind_ro(j->qemu, j->qemu + 1, ro,
					       false) < 0)
		return -1;
	if (bind_ro("/etc/ld.so.cache", "etc/ld.so.cache", data, true) < 0)
		return -1;
	if (bind_ro(j->kernel, HV_JAIL_KERNEL + 1, data, false) < 0 ||
	    (j->initrd && bind_ro(j->initrd, HV_JAIL_INITRD + 1, data,
				  false) < 0))
		return -1;
	/* QEMU 7.2 opens a memory-backend-file read-write even to map
	 * it private (docs/factory.md, "What clones share"). */
	if (j->mem && bind_at(j->mem, HV_JAIL_MEM + 1, data, false) < 0)
		return -1;
	if (bind_ro("/dev/null", "dev/null", dev, false) < 0 ||
	    bind_ro("/dev/urandom", "dev/urandom", dev, false) < 0 ||
	    (j->kvm && bind_ro("/dev/kvm", "dev/kvm", dev, false) < 0))
		return -1;
	if (share >= 0 && jail_share(share) < 0)
		return -1;
	/* pivot_root(".", "."): the old root ends up on top, detached. */
	if (syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return -1;
	return mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY |
		     MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/*
 * What QEMU keeps to serve the share over virtio-9p as virtiofsd
 * serves it (security_model=passthrough): files keep the owners the
 * guest gives them (chown), whoever owns them (dac_override), with the
 * modes and times the guest sets (fowner).  Not fsetid (a write or
 * chown clears setuid bits), mknod, setfcap, setuid or setgid: 9p in
 * QEMU 7.2 never switches ids.
 */
static const int share_caps[] = { CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER };
#define N_SHARE_CAPS (sizeof(share_caps) / sizeof(*share_caps))

static bool share_cap(const struct hv_jail *j, int cap)
{
	for (size_t i = 0; j->share && i < N_SHARE_CAPS; i++)
		if (share_caps[i] == cap)
			return true;
	return false;
}

/* No capability in any set, now or after exec; with a 9p share, the
 * three above in every set, ambient included, so that they survive
 * the exec of a program without file capabilities by a non-root uid. */
static int drop_privileges(const struct hv_jail *j)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];
	gid_t groups[1] = { j->kvm_gid };
	struct rlimit core = { 0, 0 };
	/* Threads of QEMU's uid, which is its alone: vCPUs (at most 64),
	 * I/O workers and the like fit many times over; a runaway QEMU
	 * cannot take the host's pids. */
	struct rlimit nproc = { HV_QEMU_NPROC, HV_QEMU_NPROC };
	uint32_t keep = 0;

	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (!share_cap(j, cap) &&
		    prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -1;
	if (j->share && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return -1;
	if (setgroups(j->kvm && j->kvm_gid ? 1 : 0, groups) < 0 ||
	    setresgid(j->gid, j->gid, j->gid) < 0 ||
	    setresuid(j->uid, j->uid, j->uid) < 0)
		return -1;
	/* The uid change emptied the effective set, and the permitted one
	 * unless kept; then exactly the kept ones (none without a
	 * share), inheritable too, which the ambient set needs. */
	for (size_t i = 0; j->share && i < N_SHARE_CAPS; i++)
		keep |= 1u << share_caps[i];
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = d[0].inheritable = keep;
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	for (size_t i = 0; j->share && i < N_SHARE_CAPS; i++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE,
			  share_caps[i], 0, 0) < 0)
			return -1;
	if (j->share && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return -1;
	if (setrlimit(RLIMIT_CORE, &core) < 0 ||
	    setrlimit(RLIMIT_NPROC, &nproc) < 0)
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

int hv_jail_enter(void *arg)
{
	const struct hv_jail *j = arg;
	int share = -1;

	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
		    CLONE_NEWNET) < 0)
		return -1;
	if (j->share) {
		/* Slaves first, so that the copy of the share taken now
		 * keeps receiving the host's binds; the tmpfs then hides
		 * its path (it lives in the state directory). */
		if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
			return -1;
		share = open_tree(AT_FDCWD, j->share, OPEN_TREE_CLONE |
				  OPEN_TREE_CLOEXEC | AT_RECURSIVE |
				  AT_SYMLINK_NOFOLLOW);
		if (share < 0)
			return -1;
	}
	if (jail_root(j, share) < 0 || drop_privileges(j) < 0)
		return -1;
	if (share >= 0)
		close(share);
	/* The credential change cleared the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return -1;
	if (getppid() != j->parent)
		_exit(127);
	/* Stacked under QEMU's own -sandbox: whatever the guest asks,
	 * no setuid/setgid file and no device node on the host. */
	if (j->share && hv_vfs_filter(NULL) < 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* In the child: virtiofsd's extra filter                              */

#define SUGID (S_ISUID | S_ISGID)

/* EPERM for name when argument arg has S_ISUID or S_ISGID, with the
 * extra comparison `also` (flags with O_CREAT) when also.op is set. */
static int deny_sugid(scmp_filter_ctx ctx, const char *name, unsigned arg,
		      struct scmp_arg_cmp also)
{
	static const scmp_datum_t bits[] = { S_ISUID, S_ISGID, SUGID };
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		struct scmp_arg_cmp mode = SCMP_CMP(arg, SCMP_CMP_MASKED_EQ,
						    SUGID, bits[i]);
		int rc = also.op ?
			seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 2,
					 mode, also) :
			seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
					 mode);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int deny_devnode(scmp_filter_ctx ctx, const char *name, unsigned arg)
{
	static const scmp_datum_t kinds[] = { S_IFCHR, S_IFBLK };
	int nr = seccomp_syscall_resolve_name(name);

	for (size_t i = 0; i < 2; i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
					  SCMP_CMP(arg, SCMP_CMP_MASKED_EQ,
						   S_IFMT, kinds[i]));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Allow everything but making a setuid/setgid file or directory or a
 * device node: chmod with those bits, a create (open with O_CREAT or
 * O_TMPFILE, creat, mkdir, mknod) with them in the mode, mknod of a
 * character or block device.  openat2's mode sits behind a pointer the
 * filter cannot read: ENOSYS, and glibc never needs it.  virtiofsd's
 * own allow-list stacks on top; a foreign architecture is killed.
 */
int hv_vfs_filter(void *arg)
{
	const struct scmp_arg_cmp none = { 0 };
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = -1;

	(void)arg;
	if (!ctx)
		return -1;
	if (deny_sugid(ctx, "chmod", 1, none) < 0 ||
	    deny_sugid(ctx, "fchmod", 1, none) < 0 ||
	    deny_sugid(ctx, "fchmodat", 2, none) < 0 ||
	    deny_sugid(ctx, "fchmodat2", 2, none) < 0 ||
	    deny_sugid(ctx, "creat", 1, none) < 0 ||
	    deny_sugid(ctx, "mkdir", 1, none) < 0 ||
	    deny_sugid(ctx, "mkdirat", 2, none) < 0 ||
	    deny_sugid(ctx, "mknod", 1, none) < 0 ||
	    deny_sugid(ctx, "mknodat", 2, none) < 0 ||
	    deny_sugid(ctx, "open", 2, SCMP_A1(SCMP_CMP_MASKED_EQ, O_CREAT,
					       O_CREAT)) < 0 ||
	    deny_sugid(ctx, "openat", 3, SCMP_A2(SCMP_CMP_MASKED_EQ, O_CREAT,
						 O_CREAT)) < 0 ||
	    deny_sugid(ctx, "open", 2, SCMP_A1(SCMP_CMP_MASKED_EQ, O_TMPFILE,
					       O_TMPFILE)) < 0 ||
	    deny_sugid(ctx, "openat", 3, SCMP_A2(SCMP_CMP_MASKED_EQ,
						 O_TMPFILE, O_TMPFILE)) < 0 ||
	    deny_devnode(ctx, "mknod", 1) < 0 ||
	    deny_devnode(ctx, "mknodat", 2) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
			     seccomp_syscall_resolve_name("openat2"), 0) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			     SCMP_ACT_KILL_PROCESS) < 0)
		goto out;
	rc = seccomp_load(ctx) < 0 ? -1 : 0;
out:
	seccomp_release(ctx);
	if (rc < 0)
		errno = EPERM;
	return rc;
}
