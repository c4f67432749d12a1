/*
 * husk-cache's server: the pool (pool.c) driven by the booter's answers
 * and its clients' calls, `take` and `cache_status`
 * (libipc/proto_cache.h, docs/factory-cache.md).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cache/cache.h"
#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_cache.h"

int cache_send(uint32_t op, const char *name)
{
	struct cache_cmd c = { .op = op };

	snprintf(c.name, sizeof(c.name), "%s", name);
	if (send(cache.booter_fd, &c, sizeof(c), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(c)) {
		log_warn("tell the booter");
		return -1;
	}
	return 0;
}

static void wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	cache_kick();
}

void cache_kick(void)
{
	uint64_t now = husk_now_ms(), wake;
	struct cache_vm *vm = cache_pool_next_boot(&cache.pool, now, &wake);

	if (vm) {
		log_info("%s: booting", vm->name);
		if (cache_send(CACHE_OP_BOOT, vm->name) < 0)
			husk_daemon_fatal(HUSK_EXIT_PEER, "the booter is gone");
		return;
	}
	if (wake && !ev_is_active(&cache.wake_w)) {
		ev_timer_init(&cache.wake_w, wake_cb,
			      (double)(wake - now) / 1000.0, 0.0);
		ev_timer_start(cache.loop, &cache.wake_w);
	}
}

void cache_booter_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cache_answer a;
	struct cache_vm *vm;
	ssize_t n;

	n = recv(w->fd, &a, sizeof(a), MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0)
		husk_daemon_fatal(HUSK_EXIT_PEER, "the booter is gone");
	if (n != sizeof(a)) {
		log_warnx("the booter said %zd bytes: ignored", n);
		return;
	}
	a.name[CACHE_NAME_MAX - 1] = '\0';
	a.msg[sizeof(a.msg) - 1] = '\0';
	a.accel[sizeof(a.accel) - 1] = '\0';
	if (a.op == CACHE_OP_STOP) {
		if (a.ok)
			log_info("%s: stopped", a.name);
		else
			log_warnx("%s: stop: %s", a.name, a.msg);
		return;
	}
	vm = cache_pool_booted(&cache.pool, a.name, a.ok, husk_now_ms());
	if (!vm) {
		log_warnx("the booter answered for %s, not booting", a.name);
	} else if (a.ok) {
		vm->hv.pid = a.hv_pid;
		vm->hv.start = a.hv_start;
		vm->proxy.pid = a.proxy_pid;
		vm->proxy.start = a.proxy_start;
		snprintf(vm->accel, sizeof(vm->accel), "%s", a.accel);
		log_info("%s: ready (%s)", a.name, a.accel);
	} else {
		log_warnx("%s: boot failed (next try in %llu ms): %s",
			  a.name, (unsigned long long)(cache.pool.retry_at_ms -
						       husk_now_ms()), a.msg);
	}
	cache_kick();
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */

struct take_params {
	char *fingerprint;
};

static const struct ipc_field take_fields[] = {
	{ "fingerprint", IPC_F_STR, IPC_REQUIRED,
	  offsetof(struct take_params, fingerprint), 0, 8192 },
	{ NULL },
};

static void pack_ref(msgpack_packer *pk, const char *k,
		     const struct husk_proc_ref *r)
{
	ipc_pack_key(pk, k);
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_int(pk, "pid", r->pid);
	ipc_pack_kv_uint(pk, "start", r->start);
}

int cache_m_take(struct ipc_conn *c, struct ipc_msg *m, void *params,
		 void *arg, struct husk_err **err)
{
	const struct take_params *p = params;
	struct cache_vm *vm;
	msgpack_packer *pk;
	cleanup_free char *dir = NULL;

	if (strcmp(p->fingerprint, cache.fingerprint))
		return husk_error(err, HUSK_E_STATE, "take: the cached VMs "
				  "were booted with another configuration "
				  "(husk.conf or the sandbox's annotations "
				  "or limits differ)");
	while ((vm = cache_pool_oldest_ready(&cache.pool))) {
		if (husk_proc_alive(&vm->hv) && husk_proc_alive(&vm->proxy))
			break;
		/* Noticed at the latest here: a dead VM is never given. */
		log_warnx("%s: its driver or proxy died: removed", vm->name);
		cache_send(CACHE_OP_STOP, vm->name);
		cache_pool_release(&cache.pool, vm);
	}
	if (!vm) {
		cache_kick();
		return husk_error(err, HUSK_E_UNAVAILABLE, "take: no VM is "
				  "ready (%u booting)",
				  cache_pool_count(&cache.pool,
						   CACHE_VM_BOOTING));
	}
	/* The booter hears it before the caller: were we to die now, it
	 * would stop every VM but this one. */
	if (cache_send(CACHE_OP_FORGET, vm->name) < 0)
		return husk_error(err, HUSK_E_UNAVAILABLE, "take: the booter "
				  "is gone");
	dir = husk_xasprintf("%s/%s", cache.fdir, vm->name);
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 5);
	ipc_pack_kv_str(pk, "name", vm->name);
	ipc_pack_kv_str(pk, "dir", dir);
	pack_ref(pk, "hv", &vm->hv);
	pack_ref(pk, "proxy", &vm->proxy);
	ipc_pack_kv_str(pk, "accel", vm->accel);
	ipc_reply_send(c);
	log_info("%s: taken (pid %d)", vm->name, (int)ipc_conn_peer_pid(c));
	cache_pool_taken(&cache.pool, vm, husk_now_ms());
	cache_kick();
	return 0;
}

int cache_m_status(struct ipc_conn *c, struct ipc_msg *m, void *params,
		   void *arg, struct husk_err **err)
{
	uint64_t now = husk_now_ms();
	unsigned n = cache.pool.size - cache_pool_count(&cache.pool,
							 CACHE_VM_FREE);
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_map(pk, 6);
	ipc_pack_kv_uint(pk, "cache", cache.pool.size);
	ipc_pack_kv_uint(pk, "ready", cache_pool_count(&cache.pool,
						       CACHE_VM_READY));
	ipc_pack_kv_uint(pk, "booting", cache_pool_count(&cache.pool,
							 CACHE_VM_BOOTING));
	ipc_pack_kv_uint(pk, "failures", cache.pool.failures);
	ipc_pack_kv_int(pk, "booter_pid", cache.booter_pid);
	ipc_pack_key(pk, "vms");
	msgpack_pack_array(pk, n);
	for (unsigned i = 0; i < cache.pool.size; i++) {
		const struct cache_vm *vm = &cache.pool.vms[i];
		bool ready = vm->state == CACHE_VM_READY;

		if (vm->state == CACHE_VM_FREE)
			continue;
		msgpack_pack_map(pk, ready ? 7 : 3);
		ipc_pack_kv_str(pk, "name", vm->name);
		ipc_pack_kv_str(pk, "state", cache_vm_state_name(vm->state));
		ipc_pack_kv_uint(pk, "for_ms", now - vm->since_ms);
		if (ready) {
			ipc_pack_kv_str(pk, "accel", vm->accel);
			ipc_pack_kv_int(pk, "hv_pid", vm->hv.pid);
			ipc_pack_kv_int(pk, "proxy_pid", vm->proxy.pid);
			ipc_pack_kv_bool(pk, "alive",
					 husk_proc_alive(&vm->hv) &&
					 husk_proc_alive(&vm->proxy));
		}
	}
	ipc_reply_send(c);
	return 0;
}

static const struct ipc_method method_table[] = {
	IPC_METHOD_P(CACHE_M_TAKE, IPC_M_REQUEST, take_fields,
		     struct take_params, cache_m_take),
	IPC_METHOD(CACHE_M_STATUS, IPC_M_REQUEST, cache_m_status),
	IPC_METHOD_END,
};

const struct ipc_method *const cache_methods = method_table;
