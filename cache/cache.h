/*
 * husk-cache: keeps [factory] cache VMs booted ahead and hands one to
 * each new sandbox (docs/factory-cache.md).  Two processes: the server
 * (this program's pid, confined) holds the pool and answers the socket;
 * the booter, forked before confinement, boots and stops VMs with the
 * sandbox library as root, on the server's word alone.
 */
#ifndef HUSK_CACHE_H
#define HUSK_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "libhusk/daemon.h"
#include "libhusk/err.h"
#include "sandbox/sandbox.h"

#define CACHE_NAME_MAX 32

/* ------------------------------------------------------------ pool.c */

enum cache_vm_state {
	CACHE_VM_FREE = 0,      /* no VM in this slot */
	CACHE_VM_BOOTING,       /* the booter is at it */
	CACHE_VM_READY,         /* booted, its agent answered */
};

struct cache_vm {
	int state;
	char name[CACHE_NAME_MAX];      /* "<prefix><serial>" */
	struct husk_proc_ref hv, proxy;
	char accel[16];
	uint64_t since_ms;              /* booting since, ready since */
};

/*
 * The pool's state machine, with no I/O (tests/unit/test_cache_pool.c):
 * one boot at a time (two TCG boots on a small host take longer than
 * one after the other, and a take should find one ready soonest), a
 * failed boot retried after a delay that doubles up to a minute.
 */
struct cache_pool {
	unsigned size;                  /* [factory] cache */
	struct cache_vm vms[HUSK_CACHE_MAX];
	/* Names are never reused, by this daemon (the serial) nor by the
	 * next one on the same root (a prefix of its own, "vm-<random>-"):
	 * a taken VM's helpers still hold the paths they were given. */
	char prefix[CACHE_NAME_MAX - 11];
	unsigned serial;
	unsigned failures;              /* boots failed in a row */
	uint64_t retry_at_ms;           /* no boot before then */
	uint64_t quiet_until_ms;        /* nor before then (after a take) */
};

#define CACHE_RETRY_MIN_MS 1000
#define CACHE_RETRY_MAX_MS 60000
/* After a take, the replacement waits this long: a boot started at once
 * takes the CPU from the sandbox's own start (its guest builds the
 * container), which is what the cache is there to make fast. */
#define CACHE_REFILL_DELAY_MS 1500

void cache_pool_init(struct cache_pool *p, unsigned size, const char *prefix);
/* The slot to boot next (marked BOOTING, named), or NULL: full, one
 * already booting, or waiting after a failure (*wake_ms: when to ask
 * again, 0 if nothing to wait for). */
struct cache_vm *cache_pool_next_boot(struct cache_pool *p, uint64_t now,
				      uint64_t *wake_ms);
/* The booter's answer for name: ready, or the slot is free again. */
struct cache_vm *cache_pool_booted(struct cache_pool *p, const char *name,
				   bool ok, uint64_t now);
/* The oldest ready VM, or NULL. */
struct cache_vm *cache_pool_oldest_ready(struct cache_pool *p);
/* The slot is given away or dropped: free again. */
void cache_pool_release(struct cache_pool *p, struct cache_vm *vm);
/* A VM was given away at now: no boot for CACHE_REFILL_DELAY_MS. */
void cache_pool_taken(struct cache_pool *p, struct cache_vm *vm,
		      uint64_t now);
unsigned cache_pool_count(const struct cache_pool *p, int state);
const char *cache_vm_state_name(int state);

/* ---------------------------------------------------------- booter.c */

enum cache_op {
	CACHE_OP_BOOT = 1,      /* boot name; answered */
	CACHE_OP_STOP = 2,      /* stop and remove name; answered */
	CACHE_OP_FORGET = 3,    /* name is a sandbox's now; no answer */
};

/* The socketpair's messages (SOCK_SEQPACKET: one per datagram). */
struct cache_cmd {
	uint32_t op;
	char name[CACHE_NAME_MAX];
};

struct cache_answer {
	uint32_t op;
	char name[CACHE_NAME_MAX];
	int32_t ok;
	int32_t hv_pid, proxy_pid;
	uint64_t hv_start, proxy_start;
	char accel[16];
	char msg[480];
};

/* Fork the booter: it serves *fd's other end until EOF, then stops the
 * VMs it booted that were not given away, and exits.  *pid its pid. */
int cache_booter_start(const struct husk_config *cfg, const char *fdir,
		       int *fd, pid_t *pid, struct husk_err **err);

/* ---------------------------------------------------------- server */

struct cache {
	struct husk_config cfg;
	const char *root, *config_path;
	char *fdir, *sock, *record;
	char *fingerprint;
	struct cache_pool pool;
	int booter_fd;
	pid_t booter_pid;
	bool booter_busy;               /* a BOOT or STOP is out */
	struct ipc_server *srv;
	ev_io booter_w;
	ev_timer wake_w;
	struct ev_loop *loop;
};

extern struct cache cache;
extern const struct ipc_method *const cache_methods;

/* Start the next boot when the pool wants one and the booter is free. */
void cache_kick(void);
/* Send a command to the booter. */
int cache_send(uint32_t op, const char *name);
void cache_booter_cb(struct ev_loop *loop, ev_io *w, int revents);
int cache_confine(struct husk_daemon *d, struct husk_err **err);
struct ipc_conn;
struct ipc_msg;
int cache_m_take(struct ipc_conn *c, struct ipc_msg *m, void *params,
		 void *arg, struct husk_err **err);
int cache_m_status(struct ipc_conn *c, struct ipc_msg *m, void *params,
		   void *arg, struct husk_err **err);

#endif
