/*
 * The fixture of the unit tests that need a state store (test_store,
 * test_sandbox_spec, test_sandbox_state): a store whose root is sub
 * below a fresh /tmp/husk-test-<name>.XXXXXX, removed with it.
 */
#ifndef HUSK_TEST_STORE_TESTLIB_H
#define HUSK_TEST_STORE_TESTLIB_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "libhusk/store.h"
#include "libhusk/util.h"

struct fix {
	char dir[64];
	char root[96];
	struct husk_store s;
};

static inline int store_setup(void **state, const char *name,
			      const char *sub)
{
	struct fix *f = husk_xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-%s.XXXXXX", name);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/%s", f->dir, sub);
	if (husk_store_open(&f->s, f->root, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static inline int store_teardown(void **state)
{
	struct fix *f = *state;

	husk_store_close(&f->s);
	husk_rmtree_at(AT_FDCWD, f->dir, NULL);
	free(f);
	return 0;
}

#endif
