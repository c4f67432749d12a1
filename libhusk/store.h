/*
 * State store: one directory per object (container or sandbox) below a
 * root (the CLI's --root), guarded by flock on a lock file, with files
 * written atomically so that readers never see half a state.
 *
 *   <root>/                    0700
 *   <root>/<id>/               0700
 *   <root>/<id>/.lock          flock() target
 *   <root>/<id>/<name>         atomic files (state.json, ...)
 */
#ifndef HUSK_STORE_H
#define HUSK_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct husk_store {
	int rootfd;     /* the root directory */
	char *root;
};

struct husk_entry {
	struct husk_store *store;
	char id[129];
	int dirfd;      /* <root>/<id> */
	int lockfd;     /* <root>/<id>/.lock, flock held per `lock` */
};

enum {
	HUSK_LOCK_NONE = 0,
	HUSK_LOCK_SHARED = 1,
	HUSK_LOCK_EXCL = 2,
	HUSK_LOCK_NB = 4,       /* fail with HUSK_E_STATE instead of waiting */
};

/* Open (and create, 0700) the root; one we do not own or that group or
 * others may write is refused (HUSK_E_PERMISSION). */
int husk_store_open(struct husk_store *s, const char *root,
		    struct husk_err **err);
void husk_store_close(struct husk_store *s);

/* Create <root>/<id> (HUSK_E_EXISTS if present) and lock it. */
int husk_store_create(struct husk_store *s, const char *id, int lock,
		      struct husk_entry *e, struct husk_err **err);
/* Open an existing entry (HUSK_E_NOT_FOUND if absent) and lock it. */
int husk_store_get(struct husk_store *s, const char *id, int lock,
		   struct husk_entry *e, struct husk_err **err);
/* Release the lock and close descriptors. */
void husk_entry_close(struct husk_entry *e);
/* Remove the entry's directory and everything in it, then close it.
 * The caller holds HUSK_LOCK_EXCL. */
int husk_entry_remove(struct husk_entry *e, struct husk_err **err);

int husk_entry_write(struct husk_entry *e, const char *name,
		     const void *data, size_t len, struct husk_err **err);
int husk_entry_read(struct husk_entry *e, const char *name, size_t max,
		    char **out, size_t *len, struct husk_err **err);

/* Ids present in the store, sorted; a NULL-terminated malloc'ed array. */
int husk_store_list(struct husk_store *s, char ***ids, struct husk_err **err);

#endif
