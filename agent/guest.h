/*
 * The agent's guest methods (guest.c): params decoded into these structs
 * and the parts that need no connection, exposed for the unit tests.
 */
#ifndef HUSK_AGENT_GUEST_H
#define HUSK_AGENT_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "libhusk/err.h"
#include "libipc/ipc.h"

#define GUEST_COPY_CHUNK_MAX (1u << 20)   /* data per copy_file call */
#define GUEST_COPY_FILE_MAX (64u << 20)   /* file_size */
#define GUEST_SEED_MAX 4096

struct guest_copy {
	char *path;
	struct ipc_bin data;
	uint32_t mode;                  /* default 0644 */
	uint32_t uid, gid;
	uint64_t offset;
	uint64_t file_size;
};

/* copy_file's params: the row's table and defaults, then the check of
 * what one field cannot say alone.  guest_copy_decode does all three. */
extern const struct ipc_field guest_copy_fields[];
extern const struct guest_copy guest_copy_defaults;
int guest_copy_check(const struct guest_copy *c, struct husk_err **err);
int guest_copy_decode(const msgpack_object *params, struct guest_copy *c,
		      struct husk_err **err);
void guest_copy_free(struct guest_copy *c);
/* Write the chunk below one of roots (NULL-terminated), never through a
 * symlink, creating parent directories 0755. */
int guest_copy_write(char *const *roots, const struct guest_copy *c,
		     struct husk_err **err);

struct guest_time {
	int64_t sec;
	int64_t usec;
};

extern const struct ipc_field guest_time_fields[];
int guest_time_decode(const msgpack_object *params, struct guest_time *t,
		      struct husk_err **err);
/* data: 1..GUEST_SEED_MAX bytes (points into the message). */
extern const struct ipc_field guest_seed_fields[];
int guest_seed_check(const struct ipc_bin *data, struct husk_err **err);
int guest_seed_decode(const msgpack_object *params, struct ipc_bin *data,
		      struct husk_err **err);
/* Credit the bytes to the kernel's entropy pool (host_mode: only mix
 * them in). */
int guest_seed(bool host_mode, const struct ipc_bin *d,
	       struct husk_err **err);
/* What the guest has: memory (KiB, all and online) and online vCPUs. */
uint64_t guest_mem_total_kb(void);
uint64_t guest_mem_online_kb(void);
uint64_t guest_online_cpus(void);

#endif
