/*
 * husk-hypervisor: set-up, then the loop (husk-hypervisor(8)).
 *
 * Set-up: options, log, the state directory, leftovers of a driver that
 * died (their pids are in the state file), the RPC socket.  The driver
 * confines itself once QEMU runs (life.c: started()), because until
 * then it must still fork and exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/confine.h"
#include "libhusk/log.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#define STATE_FILE "hypervisor.state"

static const char usage[] =
"usage: husk-hypervisor --state-dir DIR [--socket PATH] [--sandbox ID]\n"
"                       [--log FILE] [--log-level LEVEL] [--log-format FMT]\n"
"                       [--qemu PATH] [--virtiofsd PATH] [--foreground]\n"
"                       [--qemu-uids BASE:COUNT] [--uid-lock-dir DIR]\n"
"                       [--kvm-group GROUP] [--no-seccomp]\n"
"       husk-hypervisor --help | --version\n";

static char *state_dir;

/* ------------------------------------------------------------------ */
/* The state file: pids and start times of QEMU and virtiofsd          */

int hv_state_write(pid_t qemu, pid_t vfs)
{
	cleanup_free char *path = husk_xasprintf("%s/" STATE_FILE, state_dir);
	struct husk_err *e = NULL;
	char buf[128];
	int n, rc;

	n = snprintf(buf, sizeof(buf), "qemu %d %llu\nvirtiofsd %d %llu\n",
		     (int)qemu, qemu > 0 ? husk_proc_starttime(qemu) : 0ULL,
		     (int)vfs, vfs > 0 ? husk_proc_starttime(vfs) : 0ULL);
	rc = husk_write_atomic(AT_FDCWD, path, buf, (size_t)n, 0600, &e);
	if (rc < 0) {
		log_warnx("%s", e->msg);
		husk_err_free(e);
	}
	return rc;
}

void hv_state_clear(void)
{
	cleanup_free char *path = husk_xasprintf("%s/" STATE_FILE, state_dir);

	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("unlink %s", path);
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
/* Signals and connections                                             */

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

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("%s: stopping", strsignal(w->signum));
	hv_shutdown();
	ev_break(loop, EVBREAK_ALL);
}

static void on_close(struct ipc_conn *c, const struct husk_err *why,
		     void *arg)
{
	if (why)
		log_debug("%s", why->msg);
	hv_conn_closed(c);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "sandbox", required_argument, NULL, 'i' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, 'F' },
		{ "qemu", required_argument, NULL, 'q' },
		{ "virtiofsd", required_argument, NULL, 'v' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "no-seccomp", no_argument, NULL, 'S' },
		{ "qemu-uids", required_argument, NULL, 'U' },
		{ "uid-lock-dir", required_argument, NULL, 'K' },
		{ "kvm-group", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct hv_opts o = {
		.sandbox = "vm",
		.qemu = "/usr/bin/qemu-system-x86_64",
		.virtiofsd = "/usr/lib/qemu/virtiofsd",
		.qemu_uid_base = HV_QEMU_UID_BASE,
		.qemu_uid_count = HV_QEMU_UID_COUNT,
		.uid_lock_dir = HV_UID_LOCK_DIR,
	};
	const char *socket = NULL, *logfile = NULL;
	int level = HUSK_LOG_INFO, format = HUSK_LOG_TEXT, opt;
	struct ipc_server_opts so = { 0 };
	struct husk_err *e = NULL;
	struct ipc_server *srv;
	struct ev_loop *loop;
	ev_signal sigterm, sigint;
	char *tag;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': socket = optarg; break;
		case 'i': o.sandbox = optarg; break;
		case 'd': o.state_dir = optarg; break;
		case 'l': logfile = optarg; break;
		case 'q': o.qemu = optarg; break;
		case 'v': o.virtiofsd = optarg; break;
		case 'f': break;
		case 'S': o.no_seccomp = true; break;
		case 'K': o.uid_lock_dir = optarg; break;
		case 'G': o.kvm_group = optarg; break;
		case 'U':
			if (parse_uids(optarg, &o) < 0) {
				fprintf(stderr, "husk-hypervisor: bad "
					"--qemu-uids %s: BASE:COUNT, BASE >= 1, "
					"COUNT >= 1, below 2^32 - 1\n", optarg);
				return HUSK_EXIT_USAGE;
			}
			break;
		case 'L':
			level = husk_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "husk-hypervisor: bad "
					"--log-level %s\n", optarg);
				return HUSK_EXIT_USAGE;
			}
			break;
		case 'F':
			format = husk_log_format_parse(optarg);
			if (format < 0) {
				fprintf(stderr, "husk-hypervisor: bad "
					"--log-format %s\n", optarg);
				return HUSK_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return HUSK_EXIT_OK;
		case 'V':
			printf("husk-hypervisor %s\n", HV_VERSION);
			return HUSK_EXIT_OK;
		default:
			fputs(usage, stderr);
			return HUSK_EXIT_USAGE;
		}
	}
	if (optind != argc || !o.state_dir) {
		fputs(usage, stderr);
		return HUSK_EXIT_USAGE;
	}
	if (husk_id_validate(o.sandbox, "sandbox id", &e) < 0) {
		fprintf(stderr, "husk-hypervisor: %s\n", e->msg);
		return HUSK_EXIT_USAGE;
	}
	tag = husk_xasprintf("hypervisor/%s", o.sandbox);
	husk_log_init(tag, level, format);
	if (logfile && husk_log_open(logfile) < 0)
		fatal("open log %s", logfile);

	if (husk_mkdir_p(o.state_dir, 0700, &e) < 0)
		fatalx("%s", e->msg);
	state_dir = husk_xstrdup(o.state_dir);
	if (!socket)
		socket = husk_xasprintf("%s/hypervisor.sock", o.state_dir);
	if (husk_seccomp_debug_env())
		o.seccomp_debug = true;

	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(EVFLAG_AUTO);
	hv_init(loop, &o);
	leftovers();

	so.conn.component = HV_COMPONENT;
	so.conn.methods = hv_methods;
	so.conn.on_close = on_close;
	/* The runtime and operators with the debug client: siblings. */
	so.conn.trusted = true;
	srv = ipc_server_new(loop, socket, &so, &e);
	if (!srv)
		fatalx("%s", e->msg);

	ev_signal_init(&sigterm, on_signal, SIGTERM);
	ev_signal_init(&sigint, on_signal, SIGINT);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	log_info("serving %s (state %s)", socket, o.state_dir);

	ev_run(loop, 0);

	ipc_server_free(srv);
	return HUSK_EXIT_OK;
}
