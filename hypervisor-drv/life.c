/*
 * QEMU's life (docs/hypervisor.md, "Supervision"): starting virtiofsd
 * and QEMU in its jail, QMP's readiness and events, and QEMU's exit,
 * which ends every request in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "libhusk/accel.h"
#include "hv.h"
#include "qmp.h"
#include "libhusk/cleanup.h"
#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#include "state.h"

/* ------------------------------------------------------------------ */
/* QEMU's life                                                         */

static void kill_vfs_later(void)
{
	if (hv.vfs_pid <= 0)
		return;
	/* virtiofsd leaves by itself once QEMU's end of the socket closes;
	 * this covers a virtiofsd QEMU never connected to. */
	kill(hv.vfs_pid, SIGTERM);
	ev_timer_set(&hv.vfs_kill, 1., 0.);
	ev_timer_start(hv.loop, &hv.vfs_kill);
}

void on_vfs_kill(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (hv.vfs_pid > 0)
		kill(hv.vfs_pid, SIGKILL);
}

/* The last lines of a log, cleaned, for an error message. */
static void log_tail(const char *path, char *out, size_t n)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[512];
	off_t end;
	ssize_t r;

	out[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end < 0 || lseek(fd, end > 400 ? end - 400 : 0, SEEK_SET) < 0)
		return;
	r = read(fd, buf, sizeof(buf) - 1);
	if (r <= 0)
		return;
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
		r--;
	buf[r] = '\0';
	qmp_clean(out, n, buf);
}

static void qemu_gone(int status)
{
	struct husk_err *e = NULL;
	char tail[200];
	bool clean;

	if (WIFSIGNALED(status))
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "QEMU killed by signal %d", WTERMSIG(status));
	else if (hv.panicked)
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "guest panicked (QEMU exit %d)", WEXITSTATUS(status));
	else if (hv.shutdown_reason[0])
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "shutdown: %s (QEMU exit %d)", hv.shutdown_reason,
			 WEXITSTATUS(status));
	else
		snprintf(hv.exit_reason, sizeof(hv.exit_reason),
			 "QEMU exited with status %d", WEXITSTATUS(status));
	clean = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		hv.shutdown_reason[0] && !hv.panicked;
	log_info("pid %d: %s", (int)hv.qemu_pid, hv.exit_reason);
	hv.qemu_pid = 0;
	hv.state = HV_ST_STOPPED;
	ev_timer_stop(hv.loop, &hv.stop_timer);
	if (hv.qmp) {
		qmp_free(hv.qmp);
		hv.qmp = NULL;
	}
	kill_vfs_later();
	hv_state_write(0, hv.vfs_pid);
	hv_net_vm_gone();

	if (hv.start_op) {
		/* QEMU's last words may still sit in the pipe. */
		hv_sink_drain(hv.qemu_out);
		log_tail(hv.qemu_log, tail, sizeof(tail));
		husk_error(&e, HUSK_E_UNAVAILABLE, "start: %s%s%s",
			   hv.exit_reason, tail[0] ? ": " : "", tail);
		op_fail(hv.start_op, e);
		hv.start_op = NULL;
		husk_err_clear(&e);
	}
	husk_error(&e, HUSK_E_UNAVAILABLE, "the VM stopped: %s",
		   hv.exit_reason);
	tmpl_vm_gone(e);
	while (hv.unplugs) {
		struct op *op = hv.unplugs;

		hv.unplugs = op->next;
		op_fail(op, e);
	}
	while (hv.untaken) {
		struct op *op = hv.untaken;

		hv.untaken = op->next;
		op_fail(op, e);
	}
	husk_err_free(e);
	while (hv.stop_ops) {
		struct op *op = hv.stop_ops;
		msgpack_packer *pk;

		hv.stop_ops = op->next;
		if (!ipc_conn_closed(op->c)) {
			pk = ipc_reply_begin(op->c, op->msgid);
			msgpack_pack_map(pk, 1);
			ipc_pack_kv_str(pk, "exit_reason", hv.exit_reason);
			ipc_reply_send(op->c);
		}
		op_free(op);
	}
	emit(clean || hv.stopping ? "stopped" : "crashed", "reason",
	     hv.exit_reason, NULL, NULL);
}

void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	if (w->rpid == hv.qemu_pid) {
		qemu_gone(w->rstatus);
	} else if (w->rpid == hv.vfs_pid) {
		log_info("virtiofsd %d left (status 0x%x)",
			 (int)hv.vfs_pid, w->rstatus);
		hv.vfs_pid = 0;
		ev_timer_stop(loop, &hv.vfs_kill);
		hv_state_write(hv.qemu_pid, 0);
		/* After a SHUTDOWN it often leaves before QEMU is reaped. */
		if (hv.qemu_pid > 0 && !hv.shutdown_reason[0] && !hv.stopping)
			log_warnx("virtiofsd died under a running VM");
		if (hv.qemu_pid <= 0)
			hv_state_clear();
	}
}

/* The guest let a device go after its unplug had timed out (or without
 * one): its backend goes now, and the counts follow. */
/* The QMP command and arguments that remove device d's backend
 * (blk-, net- or mem-<id>); NULL for a vCPU, which has none. */
const char *backend_del(const struct hv_device *d, json_t **args)
{
	char name[HV_DEV_ID_MAX + 16];

	switch (d->kind) {
	case HV_DEV_BLOCK:
		snprintf(name, sizeof(name), "blk-%s", d->id);
		*args = json_pack("{s:s}", "node-name", name);
		return "blockdev-del";
	case HV_DEV_NET:
		snprintf(name, sizeof(name), "net-%s", d->id);
		*args = json_pack("{s:s}", "id", name);
		return "netdev_del";
	case HV_DEV_MEM:
		snprintf(name, sizeof(name), "mem-%s", d->id);
		*args = json_pack("{s:s}", "id", name);
		return "object-del";
	}
	*args = NULL;
	return NULL;
}

/* Remove d's backend, answer unawaited: clean-up after a failed plug
 * or a removal nobody waits for. */
void backend_drop(const struct hv_device *d)
{
	json_t *args;
	const char *cmd = backend_del(d, &args);

	if (cmd)
		qmp_call(hv.qmp, cmd, args, -1, HV_QMP_TIMEOUT, NULL, NULL);
}

static void dev_gone_late(int i)
{
	struct hv_device *d = &hv.dev[i];

	log_info("%s: the guest let %s go (no unplug waiting for it)",
		 __func__, d->id);
	backend_drop(d);
	if (d->kind == HV_DEV_MEM) {
		hv.memory_mb -= d->size_mb;
		hv.dimms--;
	} else if (d->kind == HV_DEV_CPU) {
		hv.vcpus--;
	}
	dev_release(i);
}

/* The guest took a DIMM in (its _OST for the insertion): an unplug
 * that was waiting for that goes ahead.  An eject requested while the
 * guest still handles the insertion is lost (seen here). */
static void dimm_taken(const char *id)
{
	int i = dev_find(id);

	if (i < 0 || hv.dev[i].kind != HV_DEV_MEM)
		return;
	hv.dev[i].taken = true;
	for (struct op *op = hv.untaken; op; op = op->next)
		if (op->dev == i) {
			op_list_remove(&hv.untaken, op);
			ev_timer_stop(hv.loop, &op->timer);
			op->timer.data = NULL;
			unplug_start(op, i);
			return;
		}
}

void on_untaken_timeout(struct ev_loop *loop, ev_timer *w,
			       int revents)
{
	struct op *op = w->data;
	struct hv_device *d = &hv.dev[op->dev];
	struct husk_err *e = NULL;

	op_list_remove(&hv.untaken, op);
	d->removing = false;
	husk_error(&e, HUSK_E_TIMEOUT, "unplug %s: the guest did not take "
		   "it in within %gs", d->id, op->timeout);
	op_fail(op, e);
	husk_err_free(e);
}

/* ACPI _OST status of an ejection request (ACPI spec, _OST). */
static const char *ost_status_name(json_int_t st)
{
	switch (st) {
	case 1: return "failure";
	case 2: return "unrecognized notify";
	case 0x80: return "ejection not supported";
	case 0x81: return "device in use by an application";
	case 0x82: return "device busy";
	case 0x83: return "ejection dependency busy";
	default: return "unknown status";
	}
}

/* The guest said no to a device_del: the unplug waiting on it fails at
 * once instead of at its timeout, and the device stays in use. */
static void acpi_ost(json_t *data)
{
	json_t *info = json_object_get(data, "info");
	json_t *d = json_object_get(info, "device");
	json_t *src = json_object_get(info, "source");
	json_t *st = json_object_get(info, "status");
	char id[HV_DEV_ID_MAX + 8];
	json_int_t status;
	int i;

	if (!json_is_string(d) || !json_is_integer(src) ||
	    !json_is_integer(st))
		return;
	if (json_integer_value(src) == 1 && json_integer_value(st) == 0) {
		qmp_clean(id, sizeof(id), json_string_value(d));
		dimm_taken(id);
		return;
	}
	if (json_integer_value(src) != 3)
		return;         /* not about an ejection request */
	status = json_integer_value(st);
	if (status == 0 || status == 0x84)
		return;         /* done, or in progress */
	qmp_clean(id, sizeof(id), json_string_value(d));
	i = dev_find(id);
	if (i < 0)
		return;
	for (struct op *op = hv.unplugs; op; op = op->next) {
		struct husk_err *e = NULL;

		if (op->dev != i)
			continue;
		op_list_remove(&hv.unplugs, op);
		hv.dev[i].removing = false;
		husk_error(&e, HUSK_E_STATE, "unplug %s: the guest refused to "
			   "release it (ACPI _OST 0x%x: %s)", id,
			   (unsigned)status, ost_status_name(status));
		log_warnx("%s", e->msg);
		op_fail(op, e);
		husk_err_free(e);
		return;
	}
}

static void qmp_event(struct qmp *q, const char *event, json_t *data,
		      void *arg)
{
	hv.qemu_events++;
	if (!strcmp(event, "SHUTDOWN")) {
		json_t *r = json_object_get(data, "reason");

		qmp_clean(hv.shutdown_reason, sizeof(hv.shutdown_reason),
			  json_is_string(r) ? json_string_value(r) : "?");
	} else if (!strcmp(event, "STOP")) {
		if (hv.state == HV_ST_RUNNING)
			hv.state = HV_ST_PAUSED;
		emit("paused", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "RESUME")) {
		if (hv.state == HV_ST_PAUSED)
			hv.state = HV_ST_RUNNING;
		emit("resumed", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "GUEST_PANICKED")) {
		hv.panicked = true;
		emit("panicked", NULL, NULL, NULL, NULL);
	} else if (!strcmp(event, "MIGRATION")) {
		tmpl_migration_event(data);
	} else if (!strcmp(event, "ACPI_DEVICE_OST")) {
		acpi_ost(data);
	} else if (!strcmp(event, "DEVICE_DELETED")) {
		json_t *d = json_object_get(data, "device");
		char id[HV_DEV_ID_MAX + 8];
		int i;

		if (!json_is_string(d))
			return;         /* backends have a path only */
		qmp_clean(id, sizeof(id), json_string_value(d));
		i = dev_find(id);
		if (i < 0)
			return;
		if (!hv.dev[i].plugged) {
			unsigned n = 0;

			/* QEMU answers device_add before it can report the
			 * device gone: only a QEMU that lies says this. */
			if (ipc_ratelimit(&hv.event_rl, ev_now(hv.loop), &n))
				log_warnx("qmp: DEVICE_DELETED for %s, whose "
					  "plug is not done: ignored%s", id,
					  n ? " (earlier lines suppressed)" :
					  "");
			return;
		}
		emit("device_removed", "device", id, "kind",
		     kind_name(hv.dev[i].kind));
		for (struct op *op = hv.unplugs; op; op = op->next)
			if (op->dev == i) {
				/* Let the unplug chain finish its backend. */
				ev_feed_event(hv.loop, &op->timer, EV_CUSTOM);
				return;
			}
		dev_gone_late(i);
	}
}

static void qmp_closed(struct qmp *q, const struct husk_err *why, void *arg)
{
	/* EOF is how QEMU's exit looks here, and the child watcher reports
	 * it; anything else means QEMU broke the protocol: it is no longer
	 * under control, so it goes. */
	if (why && why->code != HUSK_E_UNAVAILABLE && hv.qemu_pid > 0) {
		log_warnx("%s: killing QEMU", why->msg);
		kill(hv.qemu_pid, SIGKILL);
	}
}

/*
 * The kernel and the initrd QEMU mapped to load them.  QEMU keeps the
 * mappings (its ROM images, for a reset), and every page its boot copy
 * touched stays resident in it: 11-18 MB of page cache in each
 * sandbox's PSS (docs/guest.md, "Memory").  When QMP answers, the reset
 * has copied them into guest RAM, so they are paged out of QEMU
 * (process_madvise MADV_PAGEOUT, which keeps a page another QEMU maps
 * too); a later reset reads them back from the file.  Best effort: a
 * kernel without process_madvise leaves them where they are.
 */
static void pageout_images(pid_t pid)
{
	struct iovec iov[16];
	char path[64], line[512];
	size_t bytes = 0;
	int n = 0, pidfd;
	long r;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f) {
		log_debug("%s: %s", path, strerror(errno));
		return;
	}
	while (n < 16 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char *name = strchr(line, '/');

		if (!name || sscanf(line, "%lx-%lx", &lo, &hi) != 2 || hi <= lo)
			continue;
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, HV_JAIL_KERNEL) && strcmp(name, HV_JAIL_INITRD))
			continue;
		iov[n].iov_base = (void *)lo;
		iov[n].iov_len = hi - lo;
		bytes += hi - lo;
		n++;
	}
	fclose(f);
	if (!n)
		return;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		log_debug("pidfd_open %d: %s", (int)pid, strerror(errno));
		return;
	}
	r = syscall(SYS_process_madvise, pidfd, iov, (size_t)n, MADV_PAGEOUT,
		    0u);
	if (r < 0)
		log_debug("process_madvise: %s", strerror(errno));
	else
		log_debug("kernel and initrd: %d mappings, %zu kB paged out of "
			  "QEMU", n, bytes >> 10);
	close(pidfd);
}

void started(struct qmp *q, void *arg)
{
	struct op *op = hv.start_op;

	log_info("QEMU %d ready in %llu ms (%s)", (int)hv.qemu_pid,
		 (unsigned long long)(husk_now_ms() - hv.start_ms),
		 hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
	if (!hv_daemon.confined)        /* pidfd_open is not allowed then */
		pageout_images(hv.qemu_pid);
	/* The driver's confinement point: nothing is forked from here on
	 * (a second start finds it done). */
	husk_daemon_confine(&hv_daemon);
	if (hv.cfg.incoming) {
		/* A clone: start answers once its state is loaded and it
		 * runs (template.c); it is still starting until then. */
		tmpl_incoming_start();
		return;
	}
	hv.start_op = NULL;
	hv.state = HV_ST_RUNNING;
	start_reply(op);
}

void start_reply(struct op *op)
{
	msgpack_packer *pk;

	if (!op)
		return;
	if (!ipc_conn_closed(op->c)) {
		pk = ipc_reply_begin(op->c, op->msgid);
		msgpack_pack_map(pk, 3);
		ipc_pack_kv_int(pk, "qemu_pid", hv.qemu_pid);
		ipc_pack_kv_int(pk, "virtiofsd_pid", hv.vfs_pid);
		ipc_pack_kv_str(pk, "accel",
				hv.cfg.accel == HV_ACCEL_KVM ? "kvm" : "tcg");
		ipc_reply_send(op->c);
	}
	op_free(op);
}

static const struct qmp_ops qmp_ops = {
	.on_ready = started,
	.on_event = qmp_event,
	.on_close = qmp_closed,
};

/* A listening socket at path (replaced if stale) for virtiofsd or for
 * QEMU's agent channel. */
static int listen_socket(const char *path, struct husk_err **err)
{
	struct sockaddr_un sa;
	cleanup_close int fd = -1;

	if (ipc_sockaddr(&sa, path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 1) < 0)
		return husk_error_sys(err, errno, "bind %s", path);
	return husk_steal_fd(fd);
}

/* A child's stdout and stderr: the writer's end of a bounded sink. */
static int open_log(struct hv_sink **sink, const char *path,
		    struct husk_err **err)
{
	int fd;

	hv_sink_free(*sink);
	*sink = hv_sink_new(hv.loop, path, HV_LOG_MAX_KB, false, &fd, err);
	return *sink ? fd : -1;
}

static int start_virtiofsd(const struct hv_paths *p, struct husk_err **err)
{
	cleanup_close int lfd = -1, logfd = -1;
	char **argv;

	lfd = listen_socket(hv.vfs_socket, err);
	if (lfd < 0)
		return -1;
	logfd = open_log(&hv.vfs_out, hv.vfs_log, err);
	if (logfd < 0)
		return -1;
	argv = hv_virtiofsd_argv(&hv.cfg, p, 3);
	hv.vfs_pid = hv_spawn(argv, &lfd, 1, logfd, hv_vfs_filter, NULL, err);
	hv_argv_free(argv);
	if (hv.vfs_pid < 0) {
		hv.vfs_pid = 0;
		return -1;
	}
	log_info("pid %d sharing %s", (int)hv.vfs_pid,
		 hv.cfg.shared_dir);
	return 0;
}

/* virtiofsd first (QEMU connects to it at start-up), then QEMU; over
 * virtio-9p QEMU serves the share itself. */
int start_vm(struct husk_err **err)
{
	struct hv_paths p = {
		.qemu = hv.o.qemu, .virtiofsd = hv.o.virtiofsd,
		.vfs_socket = hv.vfs_socket,
		.bios = "/usr/share/qemu/qboot.rom",
		.kernel = HV_JAIL_KERNEL,
		.initrd = HV_JAIL_INITRD,
		.share = HV_JAIL_SHARE,
		.name = hv.vm_name,
	};
	struct hv_jail jail = {
		.kvm = hv.cfg.accel == HV_ACCEL_KVM,
		.kvm_gid = hv.cfg.kvm_gid,
		.root = hv.o.state_dir,
		.qemu = hv.o.qemu,
		.kernel = hv.cfg.kernel, .initrd = hv.cfg.initrd,
		.mem = hv.cfg.mem_file,
		.share = hv_uses_9p(&hv.cfg) ? hv.cfg.shared_dir : NULL,
		.parent = getpid(),
	};
	int fds[4 + HV_MAX_NETS], nfds, sp[2] = { -1, -1 }, logfd = -1;
	int agent_fd = -1, vfs_fd = -1, con_fd = -1;
	char **argv;

	if (hv.uid_lock < 0) {
		hv.uid_lock = hv_uid_lease(hv.o.uid_lock_dir,
					   hv.o.qemu_uid_base,
					   hv.o.qemu_uid_count, &hv.qemu_uid,
					   err);
		if (hv.uid_lock < 0)
			return husk_error_wrap(err, "start: QEMU's uid");
		log_info("QEMU runs as uid %u",
			 (unsigned)hv.qemu_uid);
	}
	jail.uid = hv.qemu_uid;
	jail.gid = hv.qemu_uid;
	if (hv.cfg.console_log) {
		hv_sink_free(hv.con);
		hv.con = hv_sink_new(hv.loop, hv.cfg.console_log,
				     hv.cfg.console_max_kb, true, &con_fd, err);
		if (!hv.con)
			return -1;
	}
	if (hv_uses_virtiofsd(&hv.cfg)) {
		if (start_virtiofsd(&p, err) < 0)
			goto fail;
		/* QEMU's end, connected here: it waits in the backlog
		 * until virtiofsd accepts. */
		vfs_fd = ipc_connect_path(hv.vfs_socket, 0, err);
		if (vfs_fd < 0)
			goto fail;
	}
	agent_fd = listen_socket(hv.cfg.agent_socket, err);
	if (agent_fd < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		husk_error_sys(err, errno, "socketpair");
		goto fail;
	}
	logfd = open_log(&hv.qemu_out, hv.qemu_log, err);
	if (logfd < 0 || tmpl_open_incoming(err) < 0)
		goto fail;
	/* At 3, 4, 5...: QMP, the agent socket, the taps, virtiofsd, the
	 * console. */
	fds[0] = sp[1];
	fds[1] = agent_fd;
	for (int i = 0; i < hv.cfg.nnets; i++)
		fds[2 + i] = hv.cfg.nets[i].fd;
	nfds = 2 + hv.cfg.nnets;
	if (vfs_fd >= 0)
		fds[nfds++] = vfs_fd;
	if (con_fd >= 0)
		fds[nfds++] = con_fd;
	argv = hv_qemu_argv(&hv.cfg, &p);
	if (husk_log_get_level() >= HUSK_LOG_DEBUG)
		for (char **a = argv; *a; a++)
			log_debug("argv %s", *a);
	hv.start_ms = husk_now_ms();
	hv.qemu_pid = hv_spawn(argv, fds, nfds, logfd, hv_jail_enter, &jail,
			       err);
	hv_argv_free(argv);
	for (int i = 0; i < hv.cfg.nnets; i++) {
		close(hv.cfg.nets[i].fd);
		hv.cfg.nets[i].fd = -1;
	}
	if (hv.qemu_pid < 0) {
		hv.qemu_pid = 0;
		goto fail;
	}
	close(logfd);
	close(sp[1]);
	close(agent_fd);
	if (vfs_fd >= 0)
		close(vfs_fd);
	if (con_fd >= 0)
		close(con_fd);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	hv.qmp = qmp_new(hv.loop, sp[0], HV_GREETING_TIMEOUT, &qmp_ops, NULL);
	hv.state = HV_ST_STARTING;
	hv.vcpus = hv.cfg.vcpus;
	hv.memory_mb = hv.cfg.memory_mb;
	hv_state_write(hv.qemu_pid, hv.vfs_pid);
	if (hv_uses_9p(&hv.cfg))
		log_info("QEMU pid %d, sharing %s over virtio-9p",
			 (int)hv.qemu_pid, hv.cfg.shared_dir);
	else
		log_info("QEMU pid %d", (int)hv.qemu_pid);
	return 0;
fail: {
	int open_fds[] = { logfd, sp[0], sp[1], agent_fd, vfs_fd, con_fd };

	for (size_t i = 0; i < sizeof(open_fds) / sizeof(*open_fds); i++)
		if (open_fds[i] >= 0)
			close(open_fds[i]);
	}
	kill_vfs_later();
	return -1;
}

