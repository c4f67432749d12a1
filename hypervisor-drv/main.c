/*
 * husk-hypervisor: the state file, then options, open, run on
 * libhusk/daemon.h (husk-hypervisor(8)).
 *
 * Open: the state directory, leftovers of a driver that died (their
 * pids are in the state file), the RPC socket.  The driver's
 * confinement point comes later, once QEMU answers on QMP (life.c:
 * started() calls husk_daemon_confine()), because until then it must
 * still fork and exec QEMU and virtiofsd.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#define STATE_FILE "hypervisor.state"

static char *state_dir;
/* The state directory as opened at start: a VM booted ahead by
 * husk-cache has its directory renamed into the sandbox that takes it
 * (docs/factory-cache.md), and the state file follows it this way. */
static int state_dirfd = -1;

/* ------------------------------------------------------------------ */
/* The state file: pids and start times of QEMU and virtiofsd          */

int hv_state_write(pid_t qemu, pid_t vfs)
{
	struct husk_err *e = NULL;
	char buf[128];
	int n, rc;

	n = snprintf(buf, sizeof(buf), "qemu %d %llu\nvirtiofsd %d %llu\n",
		     (int)qemu, qemu > 0 ? husk_proc_starttime(qemu) : 0ULL,
		     (int)vfs, vfs > 0 ? husk_proc_starttime(vfs) : 0ULL);
	rc = husk_write_atomic(state_dirfd, STATE_FILE, buf, (size_t)n, 0600,
			       &e);
	if (rc < 0) {
		log_warnx("%s", e->msg);
		husk_err_free(e);
	}
	return rc;
}

void hv_state_clear(void)
{
	if (unlinkat(state_dirfd, STATE_FILE, 0) < 0 && errno != ENOENT)
		log_warn("unlink %s/%s", state_dir, STATE_FILE);
}

/*
 * A driver that died left its state file.  Its children had
 * PDEATHSIG, so they are normally gone already; a pid whose start time
 * still matches is killed.  Either way the VM is reported as gone.
 */
static void leftovers(void)
{
	cleanup_free char *path = husk_xasprintf("%s/" STATE_FILE, state_dir);
	cleanup_free char *text = NULL;
	struct husk_err *e = NULL;
	char why[256] = "", name[16];
	unsigned long long start;
	int pid, off = 0, used;

	if (husk_read_file(AT_FDCWD, path, 4096, &text, NULL, &e) < 0) {
		husk_err_free(e);
		return;
	}
	while (sscanf(text + off, "%15s %d %llu\n%n", name, &pid, &start,
		      &used) == 3) {
		off += used;
		if (pid <= 0)
			continue;
		if (husk_proc_starttime(pid) == start) {
			log_warnx("killing %s %d of a previous "
				  "driver", name, pid);
			kill(pid, SIGKILL);
			snprintf(why, sizeof(why), "a previous driver died; "
				 "its VM (%s pid %d) was killed", name, pid);
		} else if (!why[0]) {
			snprintf(why, sizeof(why), "a previous driver died; "
				 "its VM (%s pid %d) is gone", name, pid);
		}
	}
	if (why[0]) {
		log_warnx("%s", why);
		hv_set_gone(why);
	}
	unlink(path);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static struct hv_opts opts = {
	.qemu = "/usr/bin/qemu-system-x86_64",
	.virtiofsd = "/usr/lib/qemu/virtiofsd",
	.qemu_uid_base = HV_QEMU_UID_BASE,
	.qemu_uid_count = HV_QEMU_UID_COUNT,
	.uid_lock_dir = HV_UID_LOCK_DIR,
};
static const char *socket_path;
static struct ipc_server *srv;

static const struct option hv_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "state-dir", required_argument, NULL, 'd' },
	{ "qemu", required_argument, NULL, 'q' },
	{ "virtiofsd", required_argument, NULL, 'v' },
	{ "qemu-uids", required_argument, NULL, 'U' },
	{ "uid-lock-dir", required_argument, NULL, 'K' },
	{ "kvm-group", required_argument, NULL, 'G' },
	{ NULL, 0, NULL, 0 },
};

/* BASE:COUNT of QEMU's uids. */
static int parse_uids(const char *s, struct hv_opts *o)
{
	unsigned long long base, count;
	int used = 0;

	if (sscanf(s, "%llu:%llu%n", &base, &count, &used) != 2 ||
	    s[used] || base == 0 || count == 0 ||
	    base + count > 0xfffffffeULL)
		return -1;
	o->qemu_uid_base = (uint32_t)base;
	o->qemu_uid_count = (uint32_t)count;
	return 0;
}

static int hv_option(struct husk_daemon *d, int key, const char *arg,
		     struct husk_err **err)
{
	switch (key) {
	case 's': socket_path = arg; break;
	case 'd': opts.state_dir = arg; break;
	case 'q': opts.qemu = arg; break;
	case 'v': opts.virtiofsd = arg; break;
	case 'K': opts.uid_lock_dir = arg; break;
	case 'G': opts.kvm_group = arg; break;
	case 'U':
		if (parse_uids(arg, &opts) < 0)
			return husk_error(err, HUSK_E_INVALID, "--qemu-uids "
					  "`%s`: BASE:COUNT, BASE >= 1, COUNT "
					  ">= 1, below 2^32 - 1", arg);
		break;
	}
	return 0;
}

static int hv_check(struct husk_daemon *d, struct husk_err **err)
{
	if (!opts.state_dir)
		return husk_error(err, HUSK_E_INVALID, "--state-dir is "
				  "required");
	opts.sandbox = d->sandbox;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open, run (confine: confine.c, called from life.c: started())      */

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	if (why)
		log_debug("%s", why->msg);
	hv_conn_closed(c);
}

static int hv_open(struct husk_daemon *d, struct husk_err **err)
{
	struct ipc_server_opts so = { 0 };

	if (husk_mkdir_p(opts.state_dir, 0700, err) < 0)
		return -1;
	state_dir = husk_xstrdup(opts.state_dir);
	state_dirfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (state_dirfd < 0)
		return husk_error_sys(err, errno, "open `%s`", state_dir);
	if (!socket_path)
		socket_path = husk_xasprintf("%s/hypervisor.sock",
					     opts.state_dir);
	hv_init(d->loop, &opts);
	leftovers();

	so.conn.component = HV_COMPONENT;
	so.conn.methods = hv_methods;
	so.conn.on_close = on_close;
	/* The runtime and operators with the debug client: siblings. */
	so.conn.trusted = true;
	srv = ipc_server_new(d->loop, socket_path, &so, err);
	return srv ? 0 : -1;
}

static int hv_run(struct husk_daemon *d, struct husk_err **err)
{
	log_info("serving %s (state %s)", socket_path, opts.state_dir);
	return 0;
}

static void hv_stop(struct husk_daemon *d, int signum)
{
	hv_shutdown();
}

static void hv_close(struct husk_daemon *d)
{
	ipc_server_free(srv);
}

struct husk_daemon hv_daemon = {
	.name = "husk-hypervisor",
	.tag = "hypervisor",
	.version = HV_VERSION,
	.usage = "--state-dir DIR [--socket PATH]\n"
		 "[--qemu PATH] [--virtiofsd PATH]\n"
		 "[--qemu-uids BASE:COUNT] [--uid-lock-dir DIR]\n"
		 "[--kvm-group GROUP]",
	.options = hv_options,
	.option = hv_option,
	.check = hv_check,
	.open = hv_open,
	.confine = hv_confine,
	.run = hv_run,
	.stop = hv_stop,
	.close = hv_close,
	/* Until QEMU runs the driver still forks and execs it. */
	.flags = HUSK_DAEMON_CONFINE_LATER,
	.log_level = HUSK_LOG_INFO,
	.sandbox = "vm",
};

int main(int argc, char **argv)
{
	return husk_daemon_main(&hv_daemon, argc, argv);
}
