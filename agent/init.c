/*
 * PID 1 in the guest: what an init does before the agent can serve.
 *
 *   1. load the modules listed in /lib/modules/load-order
 *   2. leave the initramfs for a tmpfs root (switch_root's MS_MOVE and
 *      chroot), because pivot_root(2) refuses to move away from rootfs
 *      and every container needs it
 *   3. mount proc, sys, dev, devpts (+ /dev/ptmx), shm, /run and the
 *      cgroup2 hierarchy
 *   4. log to /dev/console; free page reporting from 128 KiB blocks;
 *      read husk.log=, husk.share= and husk.share_fs= from /proc/cmdline
 *   5. mount the virtio-fs share at AGENT_SHARED_DIR; a virtio-9p share
 *      waits for create_sandbox (init_mount_share)
 * Then main.c finds the agent port (init_find_port) and serves, and
 * watches the ACPI power button (init_power_button).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/input.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "agent/core.h"

#define LOAD_ORDER "/lib/modules/load-order"
#define NEWROOT "/.root"
#define PORT_WAIT_MS 10000

static int load_modules(struct husk_err **err)
{
	cleanup_fclose FILE *f = fopen(LOAD_ORDER, "re");
	char line[512];

	if (!f) {
		if (errno == ENOENT)
			return 0;
		return husk_error_sys(err, errno, "open %s", LOAD_ORDER);
	}
	while (fgets(line, sizeof(line), f)) {
		int fd;

		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return husk_error_sys(err, errno, "module %s", line);
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) {
			int e = errno;

			close(fd);
			return husk_error_sys(err, e, "load module %s", line);
		}
		close(fd);
		log_debug("%s: %s", __func__, line);
	}
	return 0;
}

static int switch_to_tmpfs(struct husk_err **err)
{
	if (mkdir(NEWROOT, 0755) < 0 && errno != EEXIST)
		return husk_error_sys(err, errno, "mkdir %s", NEWROOT);
	if (mount("root", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		return husk_error_sys(err, errno, "mount tmpfs on %s", NEWROOT);
	if (chdir(NEWROOT) < 0 ||
	    mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		return husk_error_sys(err, errno, "switch to the tmpfs root");
	return 0;
}

static const struct {
	const char *src, *dst, *type;
	unsigned long flags;
	const char *data;
} guest_mounts[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "dev", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	  "newinstance,ptmxmode=0666,mode=0620,gid=5" },
	{ "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	{ "cgroup2", "/sys/fs/cgroup", "cgroup2",
	  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
};

static int mount_basics(struct husk_err **err)
{
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(guest_mounts); i++) {
		const char *d = guest_mounts[i].dst;

		if (husk_mkdir_p(d, 0755, err) < 0)
			return -1;
		if (mount(guest_mounts[i].src, d, guest_mounts[i].type,
			  guest_mounts[i].flags, guest_mounts[i].data) < 0 &&
		    errno != EBUSY)
			return husk_error_sys(err, errno, "mount %s on %s",
					      guest_mounts[i].type, d);
	}
	unlink("/dev/ptmx");
	if (symlink("pts/ptmx", "/dev/ptmx") < 0)
		return husk_error_sys(err, errno, "symlink /dev/ptmx");
	return 0;
}

/*
 * A virtio-9p share is mounted at the first create_sandbox, not at
 * boot: QEMU refuses to save the state of a VM whose guest has the 9p
 * export attached, and a template VM is saved before any sandbox.
 * msize and cache were measured (docs/share.md, "virtio-9p"); the
 * kernel command line may change them (husk.9p_msize=, husk.9p_cache=)
 * to measure again.
 */
#define SHARE_9P_MSIZE 512000   /* the virtio transport's largest here */
#define SHARE_9P_CACHE "mmap"

static struct {
	bool is_9p;
	bool pending;           /* 9p, not mounted yet */
	char tag[64];
	unsigned msize;
	char cache[16];
} share_fs = { .msize = SHARE_9P_MSIZE, .cache = SHARE_9P_CACHE };

static void share_9p_option(const char *t)
{
	static const char *const caches[] = { "none", "loose", "fscache",
					      "mmap", NULL };
	long long n;

	if (!strncmp(t, "husk.9p_msize=", 14)) {
		if (husk_parse_int(t + 14, 4096, 1 << 24, &n) == 0)
			share_fs.msize = (unsigned)n;
		else
			log_warnx("%s: ignored (4096..16777216)", t);
		return;
	}
	for (int i = 0; caches[i]; i++)
		if (!strcmp(t + 14, caches[i])) {
			snprintf(share_fs.cache, sizeof(share_fs.cache), "%s",
				 caches[i]);
			return;
		}
	log_warnx("%s: ignored (none, loose, fscache or mmap)", t);
}

/* husk.log=debug, husk.share=TAG, husk.share_fs=9p and the 9p options
 * from the kernel command line. */
static void read_cmdline(bool *debug, char **share)
{
	cleanup_free char *s = NULL;
	char *save = NULL;

	if (husk_read_file(AT_FDCWD, "/proc/cmdline", 65536, &s, NULL,
			   NULL) < 0)
		return;
	for (char *t = strtok_r(s, " \t\n", &save); t;
	     t = strtok_r(NULL, " \t\n", &save)) {
		if (strcmp(t, "husk.log=debug") == 0)
			*debug = true;
		else if (strncmp(t, "husk.share=", 11) == 0 && t[11]) {
			free(*share);
			*share = husk_xstrdup(t + 11);
		} else if (strcmp(t, "husk.share_fs=9p") == 0)
			share_fs.is_9p = true;
		else if (strncmp(t, "husk.9p_msize=", 14) == 0 ||
			 strncmp(t, "husk.9p_cache=", 14) == 0)
			share_9p_option(t);
	}
}

int init_mount_share(struct husk_err **err)
{
	cleanup_free char *opts = NULL;

	if (!share_fs.pending)
		return 0;
	opts = husk_xasprintf("trans=virtio,version=9p2000.L,msize=%u,"
			      "cache=%s", share_fs.msize, share_fs.cache);
	if (mount(share_fs.tag, AGENT_SHARED_DIR, "9p", MS_NOSUID | MS_NODEV,
		  opts) < 0) {
		int e = errno;

		/* ENODEV: no 9p file system; ENOENT: no virtio transport
		 * or no device with that tag. */
		if (e == ENODEV || e == ENOENT)
			return husk_error_sys(err, e, "mount the 9p share %s "
					      "on %s (%s): the guest kernel "
					      "needs CONFIG_9P_FS and "
					      "CONFIG_NET_9P_VIRTIO (husk's "
					      "has them; Debian's, "
					      "GUEST_KERNEL=debian, has not), "
					      "and QEMU a virtio-9p device "
					      "tagged %s", share_fs.tag,
					      AGENT_SHARED_DIR, opts,
					      share_fs.tag);
		return husk_error_sys(err, e, "mount the 9p share %s on %s "
				      "(%s)", share_fs.tag, AGENT_SHARED_DIR,
				      opts);
	}
	share_fs.pending = false;
	log_info("%s: 9p share %s on %s (%s)", __func__, share_fs.tag,
		 AGENT_SHARED_DIR, opts);
	return 0;
}

/*
 * The balloon driver reports free blocks of 2 MiB (pageblock order) and
 * up; what a guest frees at boot (the initramfs, init sections, the gap
 * after the kernel's text) and what a container frees comes in smaller
 * blocks.  From order 5 (128 KiB) up, QEMU gets back about 4.5 MB of an
 * idle sandbox's 31 MB (measured: orders 0 and 3 get no more, 8 and 9
 * nothing), in few enough reports.  The driver sets the order when it
 * registers, during boot; this runs after.  No balloon (Debian's kernel
 * without the module), no file: nothing to do.
 */
#define REPORT_ORDER_FILE "/sys/module/page_reporting/parameters/" \
			  "page_reporting_order"
#define REPORT_ORDER "5"

static void report_free_pages(void)
{
	int fd = open(REPORT_ORDER_FILE, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, REPORT_ORDER, strlen(REPORT_ORDER)) < 0)
		log_warn("%s", REPORT_ORDER_FILE);
	close(fd);
}

static void log_to_console(void)
{
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

	if (fd >= 0)
		husk_log_set_fd(fd);
}

int init_guest(struct agent *a, bool *debug, struct husk_err **err)
{
	cleanup_free char *share = husk_xstrdup("husk");

	if (load_modules(err) < 0 || switch_to_tmpfs(err) < 0 ||
	    mount_basics(err) < 0)
		return -1;
	log_to_console();
	report_free_pages();
	read_cmdline(debug, &share);
	if (husk_mkdir_p(AGENT_SHARED_DIR, 0755, err) < 0)
		return -1;
	if (share_fs.is_9p) {
		snprintf(share_fs.tag, sizeof(share_fs.tag), "%s", share);
		share_fs.pending = true;
	} else if (mount(share, AGENT_SHARED_DIR, "virtiofs",
			 MS_NOSUID | MS_NODEV, NULL) < 0)
		log_warn("%s: mount virtio-fs %s on %s (no share)", __func__,
			 share, AGENT_SHARED_DIR);
	if (sethostname("husk", 4) < 0)
		log_warn("%s: sethostname", __func__);
	/* Every mount shared, as systemd makes a host's: a container's
	 * rslave (runc's default), shared or rshared propagation then
	 * means what it means with runc (docker's `rshared` volumes see
	 * each other's mounts). */
	if (mount(NULL, "/", NULL, MS_REC | MS_SHARED, NULL) < 0)
		log_warn("%s: make / rshared", __func__);
	return 0;
}

/* Open /dev/<port> of the virtio-serial port called name, once it
 * opens.  The descriptor is kept for good: closing the port discards
 * what the host sent meanwhile (a hello, say). */
int init_find_port(const char *name, char **path, struct husk_err **err)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	uint64_t deadline = husk_now_ms() + PORT_WAIT_MS;
	int last = ENOENT;

	while (husk_now_ms() < deadline) {
		cleanup_closedir DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *de;

		while (d && (de = readdir(d))) {
			cleanup_free char *n = NULL, *f = NULL, *dev = NULL;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			f = husk_xasprintf("/sys/class/virtio-ports/%s/name",
					   de->d_name);
			if (husk_read_file(AT_FDCWD, f, 256, &n, NULL, NULL) < 0)
				continue;
			n[strcspn(n, "\n")] = '\0';
			if (strcmp(n, name) != 0)
				continue;
			dev = husk_xasprintf("/dev/%s", de->d_name);
			/* The node may exist before it can be opened. */
			fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0) {
				*path = husk_steal_ptr(dev);
				return fd;
			}
			last = errno;
			if (errno != ENXIO && errno != ENOENT)
				return husk_error_sys(err, errno, "open %s", dev);
		}
		nanosleep(&ts, NULL);
	}
	return husk_error_sys(err, last, "virtio-serial port %s", name);
}

void init_poweroff(void)
{
	sync();
	if (getpid() == 1)
		reboot(RB_POWER_OFF);
	_exit(HUSK_EXIT_SYSTEM);
}

/* ------------------------------------------------------------------ */
/* The ACPI power button                                               */

/* The host's `system_powerdown` presses the guest's ACPI power button;
 * the button driver (module button) reports it as KEY_POWER on an input
 * device (module evdev gives it a /dev/input/eventN node). */

#define POWER_BUTTONS 4

static struct {
	ev_io w[POWER_BUTTONS];
	int n;
	void (*pressed)(struct agent *a);
	struct agent *a;
} pb;

static bool test_bit(const unsigned long *bits, unsigned bit)
{
	const unsigned per = 8 * sizeof(unsigned long);

	return bits[bit / per] >> (bit % per) & 1;
}

static void on_button(struct ev_loop *loop, ev_io *w, int revents)
{
	struct input_event ev[16];
	ssize_t n;

	n = read(w->fd, ev, sizeof(ev));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_warnx("power button: read: %s", strerror(errno));
		ev_io_stop(loop, w);
		return;
	}
	for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++)
		if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER &&
		    ev[i].value == 1) {
			log_info("power button pressed");
			pb.pressed(pb.a);
			return;
		}
}

int init_power_button(struct agent *a, struct ev_loop *loop,
		      void (*pressed)(struct agent *a))
{
	cleanup_closedir DIR *d = opendir("/dev/input");
	struct dirent *de;

	pb.pressed = pressed;
	pb.a = a;
	if (!d) {
		log_info("power button: no /dev/input (modules button and "
			 "evdev not loaded): stop comes from the host only");
		return 0;
	}
	while ((de = readdir(d)) && pb.n < POWER_BUTTONS) {
		unsigned long keys[KEY_MAX / (8 * sizeof(unsigned long)) + 1];
		char path[300], name[64] = "";
		int fd;

		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", de->d_name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(keys, 0, sizeof(keys));
		if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0 ||
		    !test_bit(keys, KEY_POWER)) {
			close(fd);
			continue;
		}
		ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name);
		log_info("power button: %s (%s)", path, name);
		ev_io_init(&pb.w[pb.n], on_button, fd, EV_READ);
		ev_io_start(loop, &pb.w[pb.n]);
		pb.n++;
	}
	if (!pb.n)
		log_info("power button: none found: stop comes from the host only");
	return pb.n;
}
