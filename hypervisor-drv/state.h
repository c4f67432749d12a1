/*
 * The driver's VM and the requests acting on it, shared by the files
 * that serve its methods (hv.h lists them):
 *
 *   methods.c   requests in flight, devices, events; stop, pause,
 *               resume, status, subscribe; the method table
 *   life.c      QEMU's life: starting it, QMP events, its exit
 *   create.c    create and start: params, checks, the accelerator
 *   hotplug.c   vCPUs, memory, block and net devices, plug and unplug
 */
#ifndef HUSK_HV_STATE_H
#define HUSK_HV_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <jansson.h>

#include "hv.h"
#include "qmp.h"
#include "libipc/ipc.h"

#define HV_QMP_TIMEOUT 10.      /* seconds for one QMP command */
#define HV_GREETING_TIMEOUT 30. /* QEMU start under a loaded TCG host */
#define HV_UNPLUG_TIMEOUT 30.   /* guest acknowledging a device_del */
#define HV_MAX_SUBS 16
/* Bytes of events a subscriber may leave unread before it is cut off
 * (QEMU, which the guest may have taken, decides how many come). */
#define HV_SUB_QUEUED_MAX (256u << 10)
/* Log lines QEMU's events cause: at most this many a minute. */
#define HV_EVENT_LOG_BURST 30

/* An RPC request being answered by a chain of QMP commands. */
struct op {
	struct ipc_conn *c;
	uint32_t msgid;
	int dev;                /* index into hv.dev, -1 for none */
	uint32_t want, done;    /* vCPUs: how many, how many so far */
	json_t *cpus;           /* vCPUs: query-hotpluggable-cpus answer */
	int fd;                 /* net: the tap; block: the file; until sent */
	bool readonly, blkdev;  /* block: how it was opened, what it is */
	ev_timer timer;         /* unplug: waiting for DEVICE_DELETED */
	double timeout;         /* unplug: seconds for the guest */
	struct op *next;        /* in hv.unplugs or hv.untaken */
	hv_done_fn *done_cb;    /* internal callers (net.c): no reply */
	void *done_arg;
};

struct hv_vm {
	struct ev_loop *loop;
	struct hv_opts o;
	int state;                      /* enum hv_state */
	struct hv_config cfg;
	char *vfs_socket, *qemu_log, *vfs_log, *vm_name;
	pid_t qemu_pid, vfs_pid;
	uint64_t start_ms;
	struct qmp *qmp;
	char exit_reason[256];
	char shutdown_reason[48];       /* from QEMU's SHUTDOWN event */
	bool panicked, stopping;
	struct hv_device dev[HV_MAX_DEVICES];
	uint32_t vcpus, memory_mb, dimms, next_dev;
	struct op *start_op;            /* `start` waiting for QMP */
	struct op *stop_ops;            /* `stop`s waiting for the exit */
	struct op *unplugs;             /* waiting for DEVICE_DELETED */
	struct op *untaken;             /* unplugs waiting for the insert */
	ev_timer stop_timer;
	int stop_stage;                 /* 0 powerdown, 1 quit, 2 kill */
	ev_child child;
	ev_timer vfs_kill;
	struct ipc_conn *subs[HV_MAX_SUBS];
	struct ipc_ratelimit event_rl;  /* log lines QEMU's events cause */
	/* For status: QEMU's events, and the subscribers cut off for not
	 * reading (event_rl.held: the lines about events held back). */
	uint64_t qemu_events, subs_cut;
	int uid_lock;                   /* QEMU's uid lease (jail.c) */
	struct hv_sink *con, *qemu_out, *vfs_out;       /* console.c */
	uid_t qemu_uid;
	int next_fdset;                 /* QMP add-fd sets, from 1 */
	/* template.c */
	int incoming_fd, save_fd;       /* the state file, until QEMU has it */
	struct op *save_op;             /* save_template waiting for the end */
	bool migrating;                 /* a MIGRATION event will end it */
};

extern struct hv_vm hv;
extern const char *const state_names[];


/* methods.c: requests in flight, devices, events */
struct op *op_new(struct ipc_conn *c, const struct ipc_msg *m);
void op_free(struct op *op);
void op_fail(struct op *op, const struct husk_err *e);
void op_ok(struct op *op);
void op_list_remove(struct op **list, struct op *op);
int dev_find(const char *id);
int dev_new(int kind, const char *id);
void dev_release(int i);
int port_take(void);
const char *kind_name(int kind);
void emit(const char *event, const char *k1, const char *v1,
		 const char *k2, const char *v2);

/* life.c: QEMU's life, from start to exit */
void on_vfs_kill(struct ev_loop *loop, ev_timer *w, int revents);
void on_child(struct ev_loop *loop, ev_child *w, int revents);
const char *backend_del(const struct hv_device *d, json_t **args);
void backend_drop(const struct hv_device *d);
void on_untaken_timeout(struct ev_loop *loop, ev_timer *w,
			       int revents);
void started(struct qmp *q, void *arg);
void start_reply(struct op *op);
int start_vm(struct husk_err **err);

/* create.c: create and start (their handlers: methods.h) */
int valid_dev_id(const char *id, const char *what,
			struct husk_err **err);
int valid_mac(const char *mac, const char *what, struct husk_err **err);
/* template.c: templates and clones (docs/factory.md) */
struct create_params;
int tmpl_check_params(const struct create_params *p, struct husk_err **err);
int tmpl_open_incoming(struct husk_err **err);
void tmpl_incoming_start(void);
void tmpl_migration_event(json_t *data);
void tmpl_vm_gone(const struct husk_err *e);
/* hotplug.c: devices plugged into a running VM */
void unplug_start(struct op *op, int dev);

#endif
