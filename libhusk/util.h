/*
 * Small shared helpers: id validation, files written atomically,
 * directories with modes, and paths that cannot leave a root.
 */
#ifndef HUSK_UTIL_H
#define HUSK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define HUSK_ID_MAX 128

/*
 * A container or sandbox id: 1..HUSK_ID_MAX bytes of [A-Za-z0-9_.+-],
 * not "." or "..", not starting with '.' or '-'.  `what` names the id
 * in the error ("container id").
 */
int husk_id_validate(const char *id, const char *what, struct husk_err **err);

/* mkdir -p with the given mode for every directory created; an existing
 * final directory must be a directory (its mode is not changed). */
int husk_mkdir_p(const char *path, mode_t mode, struct husk_err **err);

/*
 * Write data to dirfd/name atomically: a temporary file in the same
 * directory, write, fsync, rename over name, fsync the directory.
 * Readers see the old or the new content, never a half-written file.
 */
int husk_write_atomic(int dirfd, const char *name, const void *data,
		      size_t len, mode_t mode, struct husk_err **err);

/* Read a whole file (at most max bytes, else HUSK_E_TOO_LARGE) into a
 * NUL-terminated malloc'ed buffer.  dirfd may be AT_FDCWD. */
int husk_read_file(int dirfd, const char *name, size_t max, char **out,
		   size_t *len, struct husk_err **err);

/* husk_read_file with more open flags (O_NOFOLLOW). */
int husk_read_file_flags(int dirfd, const char *name, int extra_flags,
			 size_t max, char **out, size_t *len,
			 struct husk_err **err);

/*
 * Text from a less trusted party (a peer, the guest, a state file) made
 * inert for a log line or a terminal: C0 controls but tab, DEL, C1
 * controls and bytes that are not well-formed UTF-8 become \xNN;
 * printable UTF-8 is kept.  husk_escape returns a malloc'ed string;
 * husk_escape_buf writes at most cap bytes with the NUL, cut on a
 * character, and returns the length written.
 */
char *husk_escape(const char *s, size_t len);
size_t husk_escape_buf(const char *s, size_t len, char *out, size_t cap);
/* A protocol name (method, component): 1.. bytes of printable ASCII
 * without space. */
bool husk_is_name(const char *s, size_t len);

/* write()/read() the whole buffer, retrying on EINTR and short I/O.
 * Return 0 or -1 with errno; husk_read_all returns bytes read (< len at
 * EOF). */
int husk_write_all(int fd, const void *buf, size_t len);
ssize_t husk_read_all(int fd, void *buf, size_t len);

/* rm -rf below dirfd/name without following symlinks; missing is fine. */
int husk_rmtree_at(int dirfd, const char *name, struct husk_err **err);

/*
 * Lexically join root and rel into a malloc'ed path that stays below
 * root: rel's "." and ".." are resolved as text and any attempt to go
 * above root fails with HUSK_E_INVALID.  Absolute rel is taken relative
 * to root.  Symlinks are not looked at: use husk_open_beneath() when the
 * tree may hold hostile links.
 */
int husk_path_join(const char *root, const char *rel, char **out,
		   struct husk_err **err);

/*
 * An absolute path spelled one way, as text (Go's filepath.Clean): no
 * "." or empty components, ".." taking the previous one back and
 * stopping at "/", no trailing slash.  Symlinks are not looked at.
 * Relative input is taken from "/".  Malloc'ed.
 */
char *husk_path_clean_abs(const char *path);

/*
 * Open rel below the directory rootfd so that neither "..", absolute
 * symlinks nor magic links can escape it (openat2 RESOLVE_IN_ROOT when
 * the kernel has it, else a component walk with O_NOFOLLOW that refuses
 * symlinks).  flags/mode as for openat(2); O_CREAT creates the last
 * component only.  Returns a descriptor or -1.
 */
int husk_open_beneath(int rootfd, const char *rel, int flags, mode_t mode,
		      struct husk_err **err);
/* The component walk alone (what husk_open_beneath falls back to on
 * kernels without openat2); exposed so tests cover it everywhere. */
int husk_open_beneath_walk(int rootfd, const char *rel, int flags,
			   mode_t mode, struct husk_err **err);

/* Parse a decimal integer in [min, max] with nothing after it. */
int husk_parse_int(const char *s, long long min, long long max,
		   long long *out);
/* Parse sizes like "512M", "2G", "4096" (K/M/G/T, binary units). */
int husk_parse_size(const char *s, uint64_t *out);

/* Monotonic clock in milliseconds / nanoseconds. */
uint64_t husk_now_ms(void);
uint64_t husk_now_ns(void);

/* strdup that aborts on out-of-memory (the only place we do). */
char *husk_xstrdup(const char *s);
void *husk_xmalloc(size_t n);
void *husk_xcalloc(size_t n, size_t m);
char *husk_xasprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
