/*
 * VM templates (docs/factory.md): a template VM's RAM is a file mapped
 * shared; save_template pauses it and writes its device state with
 * x-ignore-shared (the RAM stays in the file).  A clone maps the same
 * file private, starts with -incoming defer, and `start` answers once
 * the state is loaded and the VM runs again.
 *
 * Migration goes through descriptors the driver opens (QMP getfd, URI
 * fd:NAME): QEMU's jail has no path to a state file and its -sandbox
 * forbids exec:.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hv.h"
#include "qmp.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#include "methods.h"
#include "state.h"

#define TMPL_FDNAME "husk-migration"
#define TMPL_TIMEOUT 60.        /* seconds for a save or a load */

/* ------------------------------------------------------------------ */
/* create's template params                                            */

int tmpl_check_params(const struct create_params *p, struct husk_err **err)
{
	struct stat st;

	if (p->template_vm && !p->memory_file)
		return husk_error(err, HUSK_E_INVALID, "params.template: needs "
				  "memory_file");
	if (p->incoming && !p->memory_file)
		return husk_error(err, HUSK_E_INVALID, "params.incoming: needs "
				  "memory_file (the template's RAM)");
	if (p->incoming && p->template_vm)
		return husk_error(err, HUSK_E_INVALID, "params.incoming: a clone "
				  "cannot be a template (template: true)");
	if (!p->memory_file)
		return 0;
	/* vhost-user-fs blocks migration, and virtiofsd could not see a
	 * clone's private pages; virtio-9p is QEMU's own. */
	if (p->shared_dir && (!p->shared_fs ||
			      strcmp(p->shared_fs, "virtio-9p")))
		return husk_error(err, HUSK_E_INVALID, "params.shared_fs: "
				  "virtio-fs cannot be used with memory_file "
				  "(templates and clones): virtio-9p can");
	if (p->memory_file[0] != '/' || stat(p->memory_file, &st) < 0)
		return husk_error(err, HUSK_E_INVALID, "params.memory_file: %s: "
				  "%s", p->memory_file, p->memory_file[0] == '/' ?
				  strerror(errno) : "not an absolute path");
	if (!S_ISREG(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "params.memory_file: %s "
				  "is not a regular file", p->memory_file);
	if ((uint64_t)st.st_size != (uint64_t)p->memory_mb << 20)
		return husk_error(err, HUSK_E_INVALID, "params.memory_file: %s "
				  "has %lld bytes, memory_mb %u needs %llu",
				  p->memory_file, (long long)st.st_size,
				  p->memory_mb,
				  (unsigned long long)p->memory_mb << 20);
	/* QEMU opens it read-write as its own uid. */
	if ((st.st_mode & 0006) != 0006)
		return husk_error(err, HUSK_E_INVALID, "params.memory_file: %s "
				  "must be readable and writable by QEMU's "
				  "user (mode %04o)", p->memory_file,
				  st.st_mode & 07777);
	if (p->incoming && (p->incoming[0] != '/' ||
			    stat(p->incoming, &st) < 0 ||
			    !S_ISREG(st.st_mode) || st.st_size == 0))
		return husk_error(err, HUSK_E_INVALID, "params.incoming: %s is "
				  "not a non-empty file", p->incoming);
	return 0;
}

/* The state file, opened before QEMU runs (and the driver is confined). */
int tmpl_open_incoming(struct husk_err **err)
{
	if (!hv.cfg.incoming || hv.incoming_fd >= 0)
		return 0;
	hv.incoming_fd = open(hv.cfg.incoming, O_RDONLY | O_CLOEXEC |
			      O_NOFOLLOW);
	if (hv.incoming_fd < 0)
		return husk_error_sys(err, errno, "open %s", hv.cfg.incoming);
	return 0;
}

static json_t *caps(void)
{
	/* x-ignore-shared: RAM mapped shared from a file is not sent (the
	 * file is the template); events: MIGRATION tells us the end. */
	return json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities",
			 "capability", "x-ignore-shared", "state", 1,
			 "capability", "events", "state", 1);
}

static void tmpl_fail(struct op **opp, const char *what, const char *msg)
{
	struct husk_err *e = NULL;
	struct op *op = *opp;

	*opp = NULL;
	husk_error(&e, HUSK_E_UNAVAILABLE, "%s: %s", what, msg);
	log_warnx("%s", e->msg);
	if (op)
		op_fail(op, e);
	husk_err_free(e);
}

/* ------------------------------------------------------------------ */
/* A clone: load the state, then run                                   */

static void in_step(struct qmp *q, json_t *ret, const struct husk_err *e,
		    void *arg)
{
	const char *step = arg;

	if (!e)
		return;
	if (hv.incoming_fd >= 0) {
		close(hv.incoming_fd);
		hv.incoming_fd = -1;
	}
	tmpl_fail(&hv.start_op, step, e->msg);
	/* A clone that could not load its state must not run a blank VM. */
	if (hv.qemu_pid > 0)
		kill(hv.qemu_pid, SIGKILL);
}

static void in_sent(struct qmp *q, json_t *ret, const struct husk_err *e,
		    void *arg)
{
	if (hv.incoming_fd >= 0) {
		close(hv.incoming_fd);
		hv.incoming_fd = -1;
	}
	in_step(q, ret, e, arg);
}

void tmpl_incoming_start(void)
{
	hv.migrating = true;
	qmp_call(hv.qmp, "migrate-set-capabilities", caps(), -1,
		 HV_QMP_TIMEOUT, in_step, "start: migrate-set-capabilities");
	qmp_call(hv.qmp, "getfd", json_pack("{s:s}", "fdname", TMPL_FDNAME),
		 hv.incoming_fd, HV_QMP_TIMEOUT, in_sent, "start: getfd");
	qmp_call(hv.qmp, "migrate-incoming", json_pack("{s:s}", "uri",
						       "fd:" TMPL_FDNAME),
		 -1, HV_QMP_TIMEOUT, in_step, "start: migrate-incoming");
}

static void in_running(struct qmp *q, json_t *ret, const struct husk_err *e,
		       void *arg)
{
	struct op *op = hv.start_op;

	if (e) {
		in_step(q, ret, e, "start: cont");
		return;
	}
	hv.start_op = NULL;
	hv.state = HV_ST_RUNNING;
	log_info("clone running %llu ms after QEMU's start",
		 (unsigned long long)(husk_now_ms() - hv.start_ms));
	start_reply(op);
}

/* ------------------------------------------------------------------ */
/* save_template                                                       */

const struct ipc_field hv_save_fields[] = {
	{ "path", IPC_F_STR, IPC_REQUIRED, offsetof(struct save_params, path),
	  1, 4096 },
	{ NULL },
};

static void save_step(struct qmp *q, json_t *ret, const struct husk_err *e,
		      void *arg)
{
	if (e)
		tmpl_fail(&hv.save_op, arg, e->msg);
}

static void save_sent(struct qmp *q, json_t *ret, const struct husk_err *e,
		      void *arg)
{
	if (hv.save_fd >= 0 && e) {
		close(hv.save_fd);
		hv.save_fd = -1;
	}
	save_step(q, ret, e, arg);
}

int hv_m_save_template(struct ipc_conn *c, struct ipc_msg *m, void *params,
		       void *arg, struct husk_err **err)
{
	const struct save_params *p = params;

	if (!hv.cfg.mem_share)
		return husk_error(err, HUSK_E_STATE, "save_template: not a "
				  "template VM (create it with template: "
				  "true)");
	if (hv.state != HV_ST_RUNNING && hv.state != HV_ST_PAUSED)
		return husk_error(err, HUSK_E_STATE, "save_template: the VM is "
				  "%s", state_names[hv.state]);
	if (hv.save_op || !qmp_ready(hv.qmp))
		return husk_error(err, HUSK_E_STATE, "save_template: %s",
				  hv.save_op ? "a save is running" :
				  "QEMU's monitor is not ready");
	if (p->path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "params.path: %s is not "
				  "an absolute path", p->path);
	hv.save_fd = open(p->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			  O_NOFOLLOW, 0600);
	if (hv.save_fd < 0)
		return husk_error_sys(err, errno, "params.path: open %s",
				      p->path);
	hv.save_op = op_new(c, m);
	hv.migrating = true;
	/* Paused first: the state saved is the RAM file's as it stands. */
	qmp_call(hv.qmp, "stop", NULL, -1, HV_QMP_TIMEOUT, save_step,
		 "save_template: stop");
	qmp_call(hv.qmp, "migrate-set-capabilities", caps(), -1,
		 HV_QMP_TIMEOUT, save_step,
		 "save_template: migrate-set-capabilities");
	qmp_call(hv.qmp, "getfd", json_pack("{s:s}", "fdname", TMPL_FDNAME),
		 hv.save_fd, HV_QMP_TIMEOUT, save_sent, "save_template: getfd");
	qmp_call(hv.qmp, "migrate", json_pack("{s:s}", "uri",
					      "fd:" TMPL_FDNAME),
		 -1, TMPL_TIMEOUT, save_step, "save_template: migrate");
	return 0;
}

static void saved(void)
{
	struct op *op = hv.save_op;
	msgpack_packer *pk;
	struct stat st;
	off_t size = -1;

	hv.save_op = NULL;
	if (hv.save_fd >= 0) {
		if (fsync(hv.save_fd) == 0 && fstat(hv.save_fd, &st) == 0)
			size = st.st_size;
		close(hv.save_fd);
		hv.save_fd = -1;
	}
	if (size <= 0) {
		tmpl_fail(&op, "save_template", "the state file is empty");
		return;
	}
	log_info("template saved: %lld bytes of device state",
		 (long long)size);
	if (!ipc_conn_closed(op->c)) {
		pk = ipc_reply_begin(op->c, op->msgid);
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_uint(pk, "state_bytes", (uint64_t)size);
		ipc_reply_send(op->c);
	}
	op_free(op);
}

/* ------------------------------------------------------------------ */
/* Events and the end                                                  */

void tmpl_migration_event(json_t *data)
{
	json_t *st = json_object_get(data, "status");
	const char *s = json_is_string(st) ? json_string_value(st) : "";

	if (!hv.migrating)
		return;
	if (!strcmp(s, "completed")) {
		hv.migrating = false;
		if (hv.save_op) {
			saved();
		} else if (hv.start_op) {
			/* The template was paused when it was saved, and so
			 * is the clone: it runs from here. */
			qmp_call(hv.qmp, "cont", NULL, -1, HV_QMP_TIMEOUT,
				 in_running, NULL);
		}
	} else if (!strcmp(s, "failed") || !strcmp(s, "cancelled")) {
		hv.migrating = false;
		if (hv.save_op) {
			if (hv.save_fd >= 0) {
				close(hv.save_fd);
				hv.save_fd = -1;
			}
			tmpl_fail(&hv.save_op, "save_template", s);
		} else {
			in_step(hv.qmp, NULL, &(struct husk_err){
				.code = HUSK_E_UNAVAILABLE,
				.msg = "the migration failed" },
				"start: migrate-incoming");
		}
	}
}

void tmpl_vm_gone(const struct husk_err *e)
{
	hv.migrating = false;
	if (hv.save_fd >= 0) {
		close(hv.save_fd);
		hv.save_fd = -1;
	}
	if (hv.incoming_fd >= 0) {
		close(hv.incoming_fd);
		hv.incoming_fd = -1;
	}
	if (hv.save_op) {
		op_fail(hv.save_op, e);
		hv.save_op = NULL;
	}
}
