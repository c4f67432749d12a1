/*
 * cache/pool.c: husk-cache's pool as a state machine (one boot at a
 * time, ready VMs handed out oldest first, failures backed off), and
 * the configuration fingerprint a take compares.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cache/cache.h"

static void test_fills_one_at_a_time(void **state)
{
	struct cache_pool p;
	struct cache_vm *a, *b;
	uint64_t wake;

	(void)state;
	cache_pool_init(&p, 2, "vm-");
	a = cache_pool_next_boot(&p, 100, &wake);
	assert_non_null(a);
	assert_string_equal(a->name, "vm-1");
	assert_int_equal(a->state, CACHE_VM_BOOTING);
	/* One boot at a time: nothing more until it is answered. */
	assert_null(cache_pool_next_boot(&p, 100, &wake));
	assert_true(wake == 0);
	assert_ptr_equal(cache_pool_booted(&p, "vm-1", true, 200), a);
	assert_int_equal(a->state, CACHE_VM_READY);
	b = cache_pool_next_boot(&p, 200, &wake);
	assert_non_null(b);
	assert_string_equal(b->name, "vm-2");
	assert_non_null(cache_pool_booted(&p, "vm-2", true, 300));
	/* Full. */
	assert_null(cache_pool_next_boot(&p, 300, &wake));
	assert_true(wake == 0);
	assert_int_equal(cache_pool_count(&p, CACHE_VM_READY), 2);
}

/* The prefix is the daemon's own: the next daemon's names differ. */
static void test_prefix(void **state)
{
	struct cache_pool p;
	uint64_t wake;

	(void)state;
	cache_pool_init(&p, 1, "vm-0badcafe-");
	assert_string_equal(cache_pool_next_boot(&p, 0, &wake)->name,
			    "vm-0badcafe-1");
}

static void test_take_oldest_and_refill(void **state)
{
	struct cache_pool p;
	struct cache_vm *vm;
	uint64_t wake;

	(void)state;
	cache_pool_init(&p, 2, "vm-");
	cache_pool_next_boot(&p, 0, &wake);
	cache_pool_booted(&p, "vm-1", true, 50);
	cache_pool_next_boot(&p, 50, &wake);
	cache_pool_booted(&p, "vm-2", true, 80);
	vm = cache_pool_oldest_ready(&p);
	assert_string_equal(vm->name, "vm-1");
	cache_pool_release(&p, vm);
	assert_int_equal(cache_pool_count(&p, CACHE_VM_FREE), 1);
	/* The slot refills under a new name: names are never reused. */
	vm = cache_pool_next_boot(&p, 90, &wake);
	assert_string_equal(vm->name, "vm-3");
	assert_string_equal(cache_pool_oldest_ready(&p)->name, "vm-2");
	cache_pool_release(&p, cache_pool_oldest_ready(&p));
	/* Booting VMs are never handed out. */
	assert_null(cache_pool_oldest_ready(&p));
}

static void test_take_holds_the_refill(void **state)
{
	struct cache_pool p;
	struct cache_vm *vm;
	uint64_t wake;

	(void)state;
	cache_pool_init(&p, 2, "vm-");
	cache_pool_next_boot(&p, 0, &wake);
	cache_pool_booted(&p, "vm-1", true, 10);
	cache_pool_next_boot(&p, 10, &wake);
	cache_pool_booted(&p, "vm-2", true, 20);
	/* The replacement waits while the sandbox starts ... */
	cache_pool_taken(&p, cache_pool_oldest_ready(&p), 100);
	assert_null(cache_pool_next_boot(&p, 100, &wake));
	assert_true(wake == 100 + CACHE_REFILL_DELAY_MS);
	/* ... a take meanwhile pushes it further ... */
	cache_pool_taken(&p, cache_pool_oldest_ready(&p), 200);
	assert_null(cache_pool_next_boot(&p, 100 + CACHE_REFILL_DELAY_MS,
					 &wake));
	assert_true(wake == 200 + CACHE_REFILL_DELAY_MS);
	/* ... then boots, one at a time. */
	vm = cache_pool_next_boot(&p, 200 + CACHE_REFILL_DELAY_MS, &wake);
	assert_non_null(vm);
	assert_string_equal(vm->name, "vm-3");
	assert_null(cache_pool_next_boot(&p, 200 + CACHE_REFILL_DELAY_MS,
					 &wake));
	assert_true(wake == 0);
}

static void test_failures_back_off(void **state)
{
	struct cache_pool p;
	struct cache_vm *vm;
	uint64_t wake, now = 1000;

	(void)state;
	cache_pool_init(&p, 1, "vm-");
	vm = cache_pool_next_boot(&p, now, &wake);
	assert_non_null(cache_pool_booted(&p, vm->name, false, now));
	assert_int_equal(vm->state, CACHE_VM_FREE);
	/* Not before the delay, and told when to ask again. */
	assert_null(cache_pool_next_boot(&p, now + 10, &wake));
	assert_true(wake == now + CACHE_RETRY_MIN_MS);
	now += CACHE_RETRY_MIN_MS;
	vm = cache_pool_next_boot(&p, now, &wake);
	assert_non_null(vm);
	cache_pool_booted(&p, vm->name, false, now);
	assert_true(p.retry_at_ms == now + 2 * CACHE_RETRY_MIN_MS);
	/* The delay doubles up to its bound. */
	for (int i = 0; i < 20; i++) {
		now = p.retry_at_ms;
		vm = cache_pool_next_boot(&p, now, &wake);
		assert_non_null(vm);
		cache_pool_booted(&p, vm->name, false, now);
	}
	assert_true(p.retry_at_ms == now + CACHE_RETRY_MAX_MS);
	/* A success resets it. */
	now = p.retry_at_ms;
	vm = cache_pool_next_boot(&p, now, &wake);
	cache_pool_booted(&p, vm->name, true, now);
	assert_int_equal(p.failures, 0);
	assert_true(p.retry_at_ms == 0);
}

static void test_answers_for_strangers(void **state)
{
	struct cache_pool p;
	struct cache_vm *vm;
	uint64_t wake;

	(void)state;
	cache_pool_init(&p, HUSK_CACHE_MAX + 5, "vm-");
	assert_int_equal(p.size, HUSK_CACHE_MAX);
	/* An answer for a VM not booting changes nothing. */
	assert_null(cache_pool_booted(&p, "vm-9", true, 1));
	vm = cache_pool_next_boot(&p, 1, &wake);
	cache_pool_booted(&p, vm->name, true, 2);
	assert_null(cache_pool_booted(&p, vm->name, false, 3));
	assert_int_equal(vm->state, CACHE_VM_READY);
	assert_int_equal(p.failures, 0);
	assert_string_equal(cache_vm_state_name(CACHE_VM_BOOTING), "booting");
}

static void test_fingerprint(void **state)
{
	struct husk_config a, b;
	char *fa, *fb;

	(void)state;
	husk_config_defaults(&a);
	husk_config_defaults(&b);
	fa = husk_cache_fingerprint(&a);
	fb = husk_cache_fingerprint(&b);
	assert_string_equal(fa, fb);
	free(fb);
	/* What sizes the VM at boot differs: not the same VM. */
	b.memory_mb += 128;
	fb = husk_cache_fingerprint(&b);
	assert_string_not_equal(fa, fb);
	free(fb);
	b.memory_mb = a.memory_mb;
	free(b.kernel_params);
	b.kernel_params = strdup("quiet");
	fb = husk_cache_fingerprint(&b);
	assert_string_not_equal(fa, fb);
	free(fb);
	/* The cache's own size is not the VM's. */
	b.factory_cache = 3;
	free(b.kernel_params);
	b.kernel_params = strdup(a.kernel_params);
	fb = husk_cache_fingerprint(&b);
	assert_string_equal(fa, fb);
	free(fa);
	free(fb);
	husk_config_free(&a);
	husk_config_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fills_one_at_a_time),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_take_oldest_and_refill),
		cmocka_unit_test(test_take_holds_the_refill),
		cmocka_unit_test(test_failures_back_off),
		cmocka_unit_test(test_answers_for_strangers),
		cmocka_unit_test(test_fingerprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
