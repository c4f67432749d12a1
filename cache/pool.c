/*
 * The pool of cached VMs as a state machine: FREE -> BOOTING (one at a
 * time) -> READY -> FREE when taken or found dead; a failed boot goes
 * back to FREE and holds the next one off for a delay that doubles; a
 * take holds the replacement off while the sandbox starts.
 */
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"

void cache_pool_init(struct cache_pool *p, unsigned size, const char *prefix)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->prefix, sizeof(p->prefix), "%s", prefix);
	p->size = size > HUSK_CACHE_MAX ? HUSK_CACHE_MAX : size;
}

unsigned cache_pool_count(const struct cache_pool *p, int state)
{
	unsigned n = 0;

	for (unsigned i = 0; i < p->size; i++)
		n += p->vms[i].state == state;
	return n;
}

struct cache_vm *cache_pool_next_boot(struct cache_pool *p, uint64_t now,
				      uint64_t *wake_ms)
{
	struct cache_vm *vm = NULL;

	*wake_ms = 0;
	if (cache_pool_count(p, CACHE_VM_BOOTING))
		return NULL;
	for (unsigned i = 0; i < p->size && !vm; i++)
		if (p->vms[i].state == CACHE_VM_FREE)
			vm = &p->vms[i];
	if (!vm)
		return NULL;
	if (now < p->retry_at_ms || now < p->quiet_until_ms) {
		*wake_ms = p->retry_at_ms > p->quiet_until_ms ?
			   p->retry_at_ms : p->quiet_until_ms;
		return NULL;
	}
	memset(vm, 0, sizeof(*vm));
	vm->state = CACHE_VM_BOOTING;
	snprintf(vm->name, sizeof(vm->name), "%s%u", p->prefix, ++p->serial);
	vm->since_ms = now;
	return vm;
}

static struct cache_vm *find(struct cache_pool *p, const char *name)
{
	for (unsigned i = 0; i < p->size; i++)
		if (p->vms[i].state != CACHE_VM_FREE &&
		    !strcmp(p->vms[i].name, name))
			return &p->vms[i];
	return NULL;
}

struct cache_vm *cache_pool_booted(struct cache_pool *p, const char *name,
				   bool ok, uint64_t now)
{
	struct cache_vm *vm = find(p, name);
	uint64_t delay;

	if (!vm || vm->state != CACHE_VM_BOOTING)
		return NULL;
	if (ok) {
		vm->state = CACHE_VM_READY;
		vm->since_ms = now;
		p->failures = 0;
		p->retry_at_ms = 0;
		return vm;
	}
	vm->state = CACHE_VM_FREE;
	delay = CACHE_RETRY_MIN_MS;
	for (unsigned i = 0; i < p->failures && delay < CACHE_RETRY_MAX_MS;
	     i++)
		delay *= 2;
	if (delay > CACHE_RETRY_MAX_MS)
		delay = CACHE_RETRY_MAX_MS;
	p->failures++;
	p->retry_at_ms = now + delay;
	return vm;
}

struct cache_vm *cache_pool_oldest_ready(struct cache_pool *p)
{
	struct cache_vm *best = NULL;

	for (unsigned i = 0; i < p->size; i++)
		if (p->vms[i].state == CACHE_VM_READY &&
		    (!best || p->vms[i].since_ms < best->since_ms))
			best = &p->vms[i];
	return best;
}

void cache_pool_release(struct cache_pool *p, struct cache_vm *vm)
{
	(void)p;
	memset(vm, 0, sizeof(*vm));
}

void cache_pool_taken(struct cache_pool *p, struct cache_vm *vm,
		      uint64_t now)
{
	cache_pool_release(p, vm);
	p->quiet_until_ms = now + CACHE_REFILL_DELAY_MS;
}

const char *cache_vm_state_name(int state)
{
	switch (state) {
	case CACHE_VM_FREE: return "free";
	case CACHE_VM_BOOTING: return "booting";
	case CACHE_VM_READY: return "ready";
	}
	return "?";
}
