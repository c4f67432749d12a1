/*
 * testinit: a stand-in PID 1 for the guest image, used to measure a
 * plain boot (make bench) and by tests/bats/guest.bats.
 *
 * It does what husk-agent must do first and nothing else: mount
 * devtmpfs, proc and sysfs; load the modules listed in
 * /lib/modules/load-order; find the virtio-serial port named
 * agent.channel.0; write "READY\n" to it; print HUSK-TESTINIT-READY on
 * the console; power off.
 *
 * With husk.teststream=MB it writes MB MiB of zeros to the channel
 * after READY, 64 KiB a write: what the port carries without husk
 * (bench/vmio.sh times it on the host).
 *
 * With husk.testfs=PATH on the kernel command line it first mounts the
 * virtio-fs share tagged "husk" on /mnt and, after READY, writes
 * "FILE " and the contents of /mnt/PATH to the channel, so the host can
 * see that the share works.
 *
 * Hostile-guest modes for the host's tests (tests/bats/hypervisor.bats):
 * husk.testflood=KB writes KB KiB to the console, then
 * HUSK-FLOOD-DONE; husk.testsuid=DIR tries, in DIR of the share, to
 * make setuid/setgid files and directories and device nodes, and
 * prints one "SUID <what>: <result>" line per try.
 *
 * Built with gcc -static: there is no libc in the image.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "initlib.h"

#define PORT_NAME "agent.channel.0"

static int console = -1;

static double
uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (console >= 0 && write(console, buf, n) < 0)
		return;
}

static void __attribute__((noreturn))
poweroff(void)
{
	sync();
	reboot(RB_POWER_OFF);
	/* Only reached if the kernel refused; PID 1 must not exit. */
	for (;;)
		pause();
}

/*
 * The port shows up some time after virtio_console is loaded: the
 * host announces its ports over the control queue, asynchronously.
 */
static int
find_port(char *dev, size_t devlen, long timeout_ms)
{
	long waited;

	for (waited = 0; waited <= timeout_ms; waited += 5) {
		if (find_port_dev(PORT_NAME, dev, devlen) == 0)
			return 0;
		sleep_ms(5);
	}
	return -1;
}

/*
 * The /dev node can exist before the port is ready to be opened
 * (ENXIO), and devtmpfs may create the node a moment after sysfs shows
 * the port (ENOENT).
 */
static int
open_port(const char *dev, long timeout_ms)
{
	long waited;
	int fd;

	for (waited = 0;; waited += 5) {
		fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 || (errno != ENXIO && errno != ENOENT) ||
		    waited >= timeout_ms)
			return fd;
		sleep_ms(5);
	}
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Value of KEY=... on the kernel command line, or NULL. */
static char *
cmdline_get(const char *key, char *val, size_t vallen)
{
	char buf[4096], *tok, *save = NULL;
	size_t klen = strlen(key);
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \n", &save); tok != NULL;
	     tok = strtok_r(NULL, " \n", &save)) {
		if (strncmp(tok, key, klen) == 0 && tok[klen] == '=') {
			snprintf(val, vallen, "%s", tok + klen + 1);
			return val;
		}
	}
	return NULL;
}

static void
flood(const char *kb)
{
	static char buf[4096];
	long n = strtol(kb, NULL, 10);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = i % 64 == 63 ? '\n' : 'A' + (char)(i % 26);
	for (long i = 0; i < n * 1024 / (long)sizeof(buf); i++)
		if (console >= 0 && write_all(console, buf, sizeof(buf)) < 0)
			break;
	say("\nHUSK-FLOOD-DONE\n");
}

static void
stream(int fd, const char *mb)
{
	static char buf[64 * 1024];
	long n = strtol(mb, NULL, 10);

	for (long i = 0; i < n * 16; i++)
		if (write_all(fd, buf, sizeof(buf)) < 0) {
			say("testinit: stream: %s\n", strerror(errno));
			return;
		}
	/* What the port still holds is lost if we power off now. */
	sleep_ms(500);
}

static void
suid_try(const char *what, int rc)
{
	say("SUID %s: %s\n", what, rc < 0 ? strerror(errno) : "done");
}

/* Each try as a guest root would make it; the host's answer shows. */
static void
suid_tests(const char *dir)
{
	char path[300];
	int fd;

	if (mount("husk", "/mnt", "virtiofs", 0, NULL) < 0) {
		say("SUID mount: %s\n", strerror(errno));
		return;
	}
	umask(0);
	snprintf(path, sizeof(path), "/mnt/%s/plain", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	suid_try("create plain", fd);
	if (fd >= 0)
		close(fd);
	suid_try("chmod 4755", chmod(path, 04755));
	suid_try("chmod 2755", chmod(path, 02755));
	snprintf(path, sizeof(path), "/mnt/%s/created", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 04755);
	suid_try("create 4755", fd);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/mnt/%s/sgid-dir", dir);
	suid_try("mkdir 2775", mkdir(path, 02775));
	snprintf(path, sizeof(path), "/mnt/%s/mknod-reg", dir);
	suid_try("mknod reg 4755", mknod(path, S_IFREG | 04755, 0));
	snprintf(path, sizeof(path), "/mnt/%s/null", dir);
	suid_try("mknod chr 1:3", mknod(path, S_IFCHR | 0666, makedev(1, 3)));
	snprintf(path, sizeof(path), "/mnt/%s/sda", dir);
	suid_try("mknod blk 8:0", mknod(path, S_IFBLK | 0600, makedev(8, 0)));
	snprintf(path, sizeof(path), "/mnt/%s/fifo", dir);
	suid_try("mknod fifo", mknod(path, S_IFIFO | 0600, 0));
	say("HUSK-SUID-DONE\n");
	umount("/mnt");
}

int
main(void)
{
	char dev[300], testfs[200], path[300], file[4096], arg[64];
	double t_start, t_mods, t_fs = 0;
	ssize_t flen = -1;
	int fd;

	/* Mounting and powering off are only sane as a VM's PID 1. */
	if (getpid() != 1) {
		fprintf(stderr, "testinit: not PID 1, refusing to run\n");
		return 100;
	}
	t_start = uptime();
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	console = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

	load_modules("testinit");
	t_mods = uptime();

	if (cmdline_get("husk.testflood", arg, sizeof(arg)) != NULL)
		flood(arg);
	if (cmdline_get("husk.testsuid", arg, sizeof(arg)) != NULL)
		suid_tests(arg);

	if (cmdline_get("husk.testfs", testfs, sizeof(testfs)) != NULL) {
		if (mount("husk", "/mnt", "virtiofs", 0, NULL) < 0) {
			say("testinit: mount virtiofs husk: %s\n",
			    strerror(errno));
		} else {
			t_fs = uptime();
			snprintf(path, sizeof(path), "/mnt/%s", testfs);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				say("testinit: open %s: %s\n", path,
				    strerror(errno));
			else {
				flen = read(fd, file, sizeof(file));
				close(fd);
			}
		}
	}

	if (find_port(dev, sizeof(dev), 10000) < 0) {
		say("testinit: no virtio port named " PORT_NAME "\n");
		poweroff();
	}
	fd = open_port(dev, 5000);
	if (fd < 0) {
		say("testinit: open %s: %s\n", dev, strerror(errno));
		poweroff();
	}
	/* Blocks until the host end of the channel is connected. */
	if (write_all(fd, "READY\n", 6) < 0)
		say("testinit: write %s: %s\n", dev, strerror(errno));
	if (flen >= 0 && (write_all(fd, "FILE ", 5) < 0 ||
	    write_all(fd, file, flen) < 0))
		say("testinit: write %s: %s\n", dev, strerror(errno));
	if (cmdline_get("husk.teststream", arg, sizeof(arg)) != NULL)
		stream(fd, arg);
	close(fd);

	say("HUSK-TESTINIT-READY\n");
	say("testinit: init at %.3f s, modules loaded %.3f s, ",
	    t_start, t_mods - t_start);
	if (t_fs > 0)
		say("virtiofs mounted at %.3f s, ", t_fs);
	say("ready at %.3f s (guest clock)\n", uptime());
	poweroff();
}
