/*
 * Guest methods: get_guest_details, online_cpu_mem, reseed_random_dev,
 * set_guest_datetime and copy_file.  What each does in a VM and on a
 * host: docs/agent.md, "Guest methods".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <linux/random.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/agent.h"
#include "agent/cgroup.h"
#include "agent/guest.h"
#include "agent/methods.h"

#include "libhusk/version.h"

#define SYS_CPU "/sys/devices/system/cpu"
#define SYS_MEM "/sys/devices/system/memory"

/* ------------------------------------------------------------------ */
/* Reading the machine                                                 */

static int read_line(const char *path, char *buf, size_t size)
{
	if (husk_read_small(AT_FDCWD, path, buf, size) < 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static uint64_t mem_block_size(void)
{
	char buf[64];

	if (read_line(SYS_MEM "/block_size_bytes", buf, sizeof(buf)) < 0)
		return 0;
	return strtoull(buf, NULL, 16);
}

uint64_t guest_mem_total_kb(void)
{
	cleanup_free char *text = NULL;
	const char *p;

	if (husk_read_file(AT_FDCWD, "/proc/meminfo", 1u << 16, &text, NULL,
			   NULL) < 0)
		return 0;
	p = strstr(text, "MemTotal:");
	return p ? strtoull(p + 9, NULL, 10) : 0;
}

static bool is_block_dir(const char *name)
{
	return strncmp(name, "memory", 6) == 0 && name[6] >= '0' &&
	       name[6] <= '9';
}

/* Memory blocks online, in KiB; /proc/meminfo where there are none. */
uint64_t guest_mem_online_kb(void)
{
	cleanup_closedir DIR *d = opendir(SYS_MEM);
	uint64_t bs = mem_block_size(), n = 0;
	struct dirent *de;

	if (!d || !bs)
		return guest_mem_total_kb();
	while ((de = readdir(d))) {
		char path[300], buf[16];

		if (!is_block_dir(de->d_name))
			continue;
		snprintf(path, sizeof(path), SYS_MEM "/%s/online", de->d_name);
		if (read_line(path, buf, sizeof(buf)) == 0 &&
		    strcmp(buf, "1") == 0)
			n++;
	}
	return n ? n * bs / 1024 : guest_mem_total_kb();
}

uint64_t guest_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint64_t)n : 0;
}

int agent_m_get_guest_details(struct ipc_conn *c, struct ipc_msg *m,
			      void *params, void *arg, struct husk_err **err)
{
	struct agent *a = arg;
	struct utsname u;
	msgpack_packer *pk;

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 8);
	ipc_pack_kv_str(pk, "kernel", u.release);
	ipc_pack_kv_str(pk, "agent_version", HUSK_VERSION);
	ipc_pack_kv_uint(pk, "mem_block_size", mem_block_size());
	ipc_pack_kv_uint(pk, "online_cpus", guest_online_cpus());
	ipc_pack_kv_uint(pk, "mem_total_kb", guest_mem_total_kb());
	ipc_pack_kv_uint(pk, "mem_online_kb", guest_mem_online_kb());
	ipc_pack_kv_str(pk, "cgroup", cg_version());
	ipc_pack_kv_bool(pk, "host_mode", a->host_mode);
	ipc_reply_send(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* online_cpu_mem                                                      */

/* In every dir/<prefix>N/file reading `off`, write `on` (or `fallback`
 * where the kernel refuses `on`). */
static int online_all(const char *dir, const char *prefix, const char *file,
		      const char *off, const char *on, const char *fallback,
		      struct husk_err **err)
{
	cleanup_closedir DIR *d = opendir(dir);
	size_t pl = strlen(prefix);
	struct dirent *de;
	int rc = 0;

	if (!d)
		return 0;       /* nothing hot-pluggable here */
	while ((de = readdir(d))) {
		char path[300], buf[32];
		cleanup_close int fd = -1;

		if (strncmp(de->d_name, prefix, pl) != 0 ||
		    de->d_name[pl] < '0' || de->d_name[pl] > '9')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", dir, de->d_name, file);
		if (read_line(path, buf, sizeof(buf)) < 0 || strcmp(buf, off))
			continue;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && husk_write_all(fd, on, strlen(on)) == 0)
			continue;
		/* Memory goes online movable when the kernel lets it, so
		 * that the host can take the DIMM back; else online. */
		if (fd < 0 || !fallback ||
		    husk_write_all(fd, fallback, strlen(fallback)) < 0) {
			/* Keep going: one stubborn block should not leave
			 * the others offline. */
			husk_error_sys(err, errno, "online `%s`", path);
			rc = -1;
		}
	}
	return rc;
}

int agent_m_online_cpu_mem(struct ipc_conn *c, struct ipc_msg *m,
			   void *params, void *arg, struct husk_err **err)
{
	const struct guest_online_params *p = params;
	struct agent *a = arg;
	msgpack_packer *pk;
	int rc = 0;

	if (a->host_mode)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
				  "online_cpu_mem: not in host mode (it would change the host)");
	if (p->cpus && online_all(SYS_CPU, "cpu", "online", "0", "1", NULL,
				  err) < 0)
		rc = -1;
	if (p->memory && online_all(SYS_MEM, "memory", "state", "offline",
				    "online_movable", "online", err) < 0)
		rc = -1;
	if (rc < 0)
		return -1;
	pk = ipc_reply_begin(c, m->msgid);
	msgpack_pack_map(pk, 2);
	ipc_pack_kv_uint(pk, "online_cpus", guest_online_cpus());
	ipc_pack_kv_uint(pk, "mem_online_kb", guest_mem_online_kb());
	ipc_reply_send(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* reseed_random_dev, set_guest_datetime                               */

const struct ipc_field guest_seed_fields[] = {
	{ "data", IPC_F_BIN, IPC_REQUIRED, 0, 0, GUEST_SEED_MAX },
	{ NULL, 0, 0, 0, 0, 0 },
};

int guest_seed_check(const struct ipc_bin *data, struct husk_err **err)
{
	if (data->len == 0)
		return husk_error(err, HUSK_E_INVALID,
				  "params.data: empty (1 to %u bytes)",
				  GUEST_SEED_MAX);
	return 0;
}

int guest_seed_decode(const msgpack_object *params, struct ipc_bin *data,
		      struct husk_err **err)
{
	memset(data, 0, sizeof(*data));
	if (ipc_decode(params, guest_seed_fields, data, err) < 0)
		return -1;
	return guest_seed_check(data, err);
}

/* Credits the bytes to the kernel's pool (the guest starts with little
 * entropy); on a host only mixes them in, crediting nothing. */
int guest_seed(bool host_mode, const struct ipc_bin *d,
	       struct husk_err **err)
{
	cleanup_close int fd = -1;
	cleanup_free struct rand_pool_info *info = NULL;

	if (host_mode) {
		fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || husk_write_all(fd, d->p, d->len) < 0)
			return husk_error_sys(err, errno, "write /dev/urandom");
		return 0;
	}
	fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open /dev/random");
	info = husk_xmalloc(sizeof(*info) + d->len);
	info->entropy_count = (int)(d->len * 8);
	info->buf_size = (int)d->len;
	memcpy(info->buf, d->p, d->len);
	if (ioctl(fd, RNDADDENTROPY, info) < 0)
		return husk_error_sys(err, errno, "RNDADDENTROPY");
	/* The bytes reach the input pool; the generator behind
	 * /dev/urandom takes from it only at its next reseed, up to a
	 * minute away.  A clone of a VM template woke with the template's
	 * generator (docs/factory.md): it must differ now. */
	if (ioctl(fd, RNDRESEEDCRNG) < 0)
		return husk_error_sys(err, errno, "RNDRESEEDCRNG");
	return 0;
}

int agent_m_reseed_random_dev(struct ipc_conn *c, struct ipc_msg *m,
			      void *params, void *arg, struct husk_err **err)
{
	const struct ipc_bin *data = params;
	struct agent *a = arg;

	if (guest_seed_check(data, err) < 0 ||
	    guest_seed(a->host_mode, data, err) < 0)
		return -1;
	ipc_reply_ok(c, m->msgid);
	return 0;
}

const struct ipc_field guest_time_fields[] = {
	{ "sec", IPC_F_INT64, IPC_REQUIRED,
	  offsetof(struct guest_time, sec), 0, INT64_MAX / 2 },
	{ "usec", IPC_F_INT64, 0, offsetof(struct guest_time, usec),
	  0, 999999 },
	{ NULL, 0, 0, 0, 0, 0 },
};

int guest_time_decode(const msgpack_object *params, struct guest_time *t,
		      struct husk_err **err)
{
	t->sec = 0;
	t->usec = 0;
	return ipc_decode(params, guest_time_fields, t, err);
}

int agent_m_set_guest_datetime(struct ipc_conn *c, struct ipc_msg *m,
			       void *params, void *arg, struct husk_err **err)
{
	const struct guest_time *t = params;
	struct agent *a = arg;
	struct timespec ts;

	if (a->host_mode)
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED,
				  "set_guest_datetime: not in host mode (it would change the host's clock)");
	ts.tv_sec = (time_t)t->sec;
	ts.tv_nsec = (long)t->usec * 1000;
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return husk_error_sys(err, errno, "clock_settime");
	ipc_reply_ok(c, m->msgid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* copy_file                                                           */

const struct ipc_field guest_copy_fields[] = {
	{ "path", IPC_F_STR, IPC_REQUIRED, offsetof(struct guest_copy, path),
	  0, 4096 },
	{ "data", IPC_F_BIN, IPC_REQUIRED, offsetof(struct guest_copy, data),
	  0, GUEST_COPY_CHUNK_MAX },
	{ "mode", IPC_F_UINT32, 0, offsetof(struct guest_copy, mode), 0,
	  07777 },
	{ "uid", IPC_F_UINT32, 0, offsetof(struct guest_copy, uid), 0,
	  UINT32_MAX - 1 },
	{ "gid", IPC_F_UINT32, 0, offsetof(struct guest_copy, gid), 0,
	  UINT32_MAX - 1 },
	{ "offset", IPC_F_UINT64, 0, offsetof(struct guest_copy, offset), 0,
	  GUEST_COPY_FILE_MAX },
	{ "file_size", IPC_F_UINT64, IPC_REQUIRED,
	  offsetof(struct guest_copy, file_size), 0, GUEST_COPY_FILE_MAX },
	{ NULL, 0, 0, 0, 0, 0 },
};

void guest_copy_free(struct guest_copy *c)
{
	ipc_decode_free(guest_copy_fields, c);
}

const struct guest_copy guest_copy_defaults = { .mode = 0644 };

int guest_copy_check(const struct guest_copy *c, struct husk_err **err)
{
	if (c->offset + c->data.len > c->file_size)
		return husk_error(err, HUSK_E_INVALID,
				  "params.offset: %" PRIu64 " + %u bytes is past file_size %" PRIu64,
				  c->offset, c->data.len, c->file_size);
	return 0;
}

int guest_copy_decode(const msgpack_object *params, struct guest_copy *c,
		      struct husk_err **err)
{
	*c = guest_copy_defaults;
	if (ipc_decode(params, guest_copy_fields, c, err) < 0)
		return -1;
	if (guest_copy_check(c, err) < 0) {
		guest_copy_free(c);
		return -1;
	}
	return 0;
}

/* The part of path below one of roots: "/run/husk/a/b" -> "a/b".  Only
 * plain components: no "", "." or "..". */
static int copy_rel(char *const *roots, const char *path, const char **root,
		    const char **rel, struct husk_err **err)
{
	if (path[0] != '/')
		return husk_error(err, HUSK_E_INVALID,
				  "params.path: `%s` is not absolute", path);
	for (const char *p = path + 1; *p;) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.') ||
		    (p[n] == '/' && !p[n + 1]))
			return husk_error(err, HUSK_E_INVALID,
					  "params.path: `%s` is not a plain path",
					  path);
		p += n + (p[n] == '/');
	}
	for (char *const *r = roots; r && *r; r++) {
		size_t len = strlen(*r);

		while (len > 1 && (*r)[len - 1] == '/')
			len--;
		if (len > 1 && strncmp(path, *r, len) == 0 &&
		    path[len] == '/' && path[len + 1]) {
			*root = *r;
			*rel = path + len + 1;
			return 0;
		}
	}
	return husk_error(err, HUSK_E_PERMISSION,
			  "params.path: `%s` is not below a copy root", path);
}

/* Create rel's parent directories below rootfd (0755), refusing
 * symlinks on the way. */
static int copy_parents(int rootfd, const char *rel, struct husk_err **err)
{
	cleanup_close int cur = dup(rootfd);
	const char *p = rel, *slash;

	if (cur < 0)
		return husk_error_sys(err, errno, "dup");
	while ((slash = strchr(p, '/'))) {
		char comp[256];
		int next;

		if ((size_t)(slash - p) >= sizeof(comp))
			return husk_error(err, HUSK_E_INVALID,
					  "params.path: component too long");
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
			return husk_error_sys(err, errno, "copy_file: mkdir `%s`",
					      comp);
		next = openat(cur, comp,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return husk_error_sys(err, errno == ELOOP ? EPERM : errno,
					      "copy_file: `%s` (symlink or not a directory)",
					      comp);
		close(cur);
		cur = next;
		p = slash + 1;
	}
	return 0;
}

int guest_copy_write(char *const *roots, const struct guest_copy *c,
		     struct husk_err **err)
{
	cleanup_close int rootfd = -1, fd = -1;
	const char *root = NULL, *rel = NULL;
	const char *data = c->data.p;
	uint64_t off = c->offset;
	size_t left = c->data.len;
	struct stat st;

	if (copy_rel(roots, c->path, &root, &rel, err) < 0)
		return -1;
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 && errno == ENOENT &&
	    husk_mkdir_p(root, 0755, NULL) == 0)
		rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return husk_error_sys(err, errno, "copy_file: root `%s`", root);
	if (copy_parents(rootfd, rel, err) < 0)
		return -1;
	/* The library's walk refuses a symlink anywhere on the way, the last
	 * component included; O_NONBLOCK keeps a FIFO from hanging us. */
	fd = husk_open_beneath_walk(rootfd, rel,
				    O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK,
				    0600, err);
	if (fd < 0)
		return husk_error_wrap(err, "copy_file");
	if (fstat(fd, &st) < 0)
		return husk_error_sys(err, errno, "copy_file: stat `%s`",
				      c->path);
	if (!S_ISREG(st.st_mode))
		return husk_error(err, HUSK_E_PERMISSION,
				  "copy_file: `%s` is not a regular file",
				  c->path);
	/* A hard link would let the write land in a file outside the root. */
	if (st.st_nlink > 1)
		return husk_error(err, HUSK_E_PERMISSION,
				  "copy_file: `%s` has other hard links",
				  c->path);
	if (off == 0 && ftruncate(fd, 0) < 0)
		return husk_error_sys(err, errno, "copy_file: truncate `%s`",
				      c->path);
	while (left > 0) {
		ssize_t n = pwrite(fd, data, left, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return husk_error_sys(err, errno, "copy_file: write `%s`",
					      c->path);
		}
		data += n;
		left -= (size_t)n;
		off += (uint64_t)n;
	}
	if (off == c->file_size && ftruncate(fd, (off_t)c->file_size) < 0)
		return husk_error_sys(err, errno, "copy_file: truncate `%s`",
				      c->path);
	/* chown first: it clears the set-id bits that chmod sets. */
	if (fchown(fd, c->uid, c->gid) < 0)
		return husk_error_sys(err, errno, "copy_file: chown `%s`",
				      c->path);
	if (fchmod(fd, (mode_t)c->mode) < 0)
		return husk_error_sys(err, errno, "copy_file: chmod `%s`",
				      c->path);
	return 0;
}

int agent_m_copy_file(struct ipc_conn *c, struct ipc_msg *m, void *params,
		      void *arg, struct husk_err **err)
{
	const struct guest_copy *cp = params;
	struct agent *a = arg;

	if (guest_copy_check(cp, err) < 0 ||
	    guest_copy_write(a->copy_roots, cp, err) < 0)
		return -1;
	ipc_reply_ok(c, m->msgid);
	return 0;
}
