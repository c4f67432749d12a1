/*
 * Loading and validating an OCI bundle before anything starts: every
 * field husk reads is checked here, once, and an invalid config.json
 * gets one error naming the field ("config.json: process.args: ...").
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "sandbox.h"

#define SPEC_MAX (4u << 20)

static int bad(struct husk_err **err, const char *field, const char *fmt,
	       ...) __attribute__((format(printf, 3, 4)));
static int bad(struct husk_err **err, const char *field, const char *fmt,
	       ...)
{
	cleanup_free char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	return husk_error(err, HUSK_E_INVALID, "config.json: %s: %s", field,
			  msg ? msg : "invalid");
}

static const char *jtype(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static int want(const json_t *j, json_type t, const char *field,
		const char *what, struct husk_err **err)
{
	if (json_typeof(j) == t)
		return 0;
	return bad(err, field, "expected %s, got %s", what, jtype(j));
}

static int check_strv(const json_t *a, const char *field, bool nonempty,
		      struct husk_err **err)
{
	char f[256];
	size_t i;
	json_t *v;

	if (want(a, JSON_ARRAY, field, "an array of strings", err) < 0)
		return -1;
	if (nonempty && json_array_size(a) == 0)
		return bad(err, field, "must not be empty");
	json_array_foreach(a, i, v) {
		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (want(v, JSON_STRING, f, "a string", err) < 0)
			return -1;
	}
	return 0;
}

static int check_uint(const json_t *j, const char *field, json_int_t max,
		      struct husk_err **err)
{
	if (want(j, JSON_INTEGER, field, "an integer", err) < 0)
		return -1;
	if (json_integer_value(j) < 0 || json_integer_value(j) > max)
		return bad(err, field, "%lld is out of range [0, %lld]",
			   (long long)json_integer_value(j), (long long)max);
	return 0;
}

static int check_abs_path(const json_t *j, const char *field,
			  struct husk_err **err)
{
	if (want(j, JSON_STRING, field, "a string", err) < 0)
		return -1;
	if (json_string_value(j)[0] != '/')
		return bad(err, field, "'%s' is not an absolute path",
			   json_string_value(j));
	return 0;
}

static const char *const cap_names[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
	"KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
	"SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
	"AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
	"MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
	"PERFMON", "BPF", "CHECKPOINT_RESTORE", NULL,
};

bool husk_cap_known(const char *name)
{
	if (strncmp(name, "CAP_", 4))
		return false;
	for (const char *const *c = cap_names; *c; c++)
		if (!strcmp(*c, name + 4))
			return true;
	return false;
}

static const char *const rlimit_names[] = {
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK",
	"RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE",
	"RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
	NULL,
};

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static int check_caps(const json_t *caps, struct husk_err **err)
{
	static const char *const sets[] = { "bounding", "effective",
					    "inheritable", "permitted",
					    "ambient", NULL };
	char f[128];
	const char *k;
	json_t *v, *c;
	size_t i;

	if (want(caps, JSON_OBJECT, "process.capabilities", "an object",
		 err) < 0)
		return -1;
	json_object_foreach((json_t *)caps, k, v) {
		snprintf(f, sizeof(f), "process.capabilities.%s", k);
		if (!in_list(k, sets))
			return bad(err, f, "unknown capability set");
		if (check_strv(v, f, false, err) < 0)
			return -1;
		json_array_foreach(v, i, c)
			if (!husk_cap_known(json_string_value(c)))
				return bad(err, f, "unknown capability '%s'",
					   json_string_value(c));
	}
	return 0;
}

static int check_process(const json_t *p, struct husk_err **err)
{
	json_t *v, *r;
	char f[128];
	size_t i;

	if (want(p, JSON_OBJECT, "process", "an object", err) < 0)
		return -1;
	v = json_object_get(p, "args");
	if (!v)
		return bad(err, "process.args", "missing");
	if (check_strv(v, "process.args", true, err) < 0)
		return -1;
	v = json_object_get(p, "cwd");
	if (!v)
		return bad(err, "process.cwd", "missing");
	if (check_abs_path(v, "process.cwd", err) < 0)
		return -1;
	if ((v = json_object_get(p, "env"))) {
		if (check_strv(v, "process.env", false, err) < 0)
			return -1;
		json_array_foreach(v, i, r)
			if (!strchr(json_string_value(r), '=')) {
				snprintf(f, sizeof(f), "process.env[%zu]", i);
				return bad(err, f, "'%s' is not NAME=VALUE",
					   json_string_value(r));
			}
	}
	if ((v = json_object_get(p, "terminal")) && !json_is_boolean(v))
		return bad(err, "process.terminal", "expected a boolean, got "
			   "%s", jtype(v));
	if ((v = json_object_get(p, "noNewPrivileges")) && !json_is_boolean(v))
		return bad(err, "process.noNewPrivileges", "expected a "
			   "boolean, got %s", jtype(v));
	if ((v = json_object_get(p, "user"))) {
		json_t *g;

		if (want(v, JSON_OBJECT, "process.user", "an object", err) < 0)
			return -1;
		if ((r = json_object_get(v, "uid")) &&
		    check_uint(r, "process.user.uid", 0xfffffffe, err) < 0)
			return -1;
		if ((r = json_object_get(v, "gid")) &&
		    check_uint(r, "process.user.gid", 0xfffffffe, err) < 0)
			return -1;
		if ((r = json_object_get(v, "additionalGids"))) {
			if (want(r, JSON_ARRAY, "process.user.additionalGids",
				 "an array", err) < 0)
				return -1;
			json_array_foreach(r, i, g) {
				snprintf(f, sizeof(f),
					 "process.user.additionalGids[%zu]", i);
				if (check_uint(g, f, 0xfffffffe, err) < 0)
					return -1;
			}
		}
	}
	if ((v = json_object_get(p, "capabilities")) &&
	    check_caps(v, err) < 0)
		return -1;
	if ((v = json_object_get(p, "rlimits"))) {
		if (want(v, JSON_ARRAY, "process.rlimits", "an array", err) < 0)
			return -1;
		json_array_foreach(v, i, r) {
			json_t *t = json_object_get(r, "type");

			snprintf(f, sizeof(f), "process.rlimits[%zu]", i);
			if (want(r, JSON_OBJECT, f, "an object", err) < 0)
				return -1;
			if (!t || !json_is_string(t) ||
			    !in_list(json_string_value(t), rlimit_names))
				return bad(err, f, "type must be an RLIMIT_* "
					   "name");
			if (!json_is_integer(json_object_get(r, "soft")) ||
			    !json_is_integer(json_object_get(r, "hard")))
				return bad(err, f, "soft and hard must be "
					   "integers");
		}
	}
	if ((v = json_object_get(p, "oomScoreAdj"))) {
		if (want(v, JSON_INTEGER, "process.oomScoreAdj", "an integer",
			 err) < 0)
			return -1;
		if (json_integer_value(v) < -1000 ||
		    json_integer_value(v) > 1000)
			return bad(err, "process.oomScoreAdj", "%lld is out "
				   "of range [-1000, 1000]",
				   (long long)json_integer_value(v));
	}
	return 0;
}

static int check_hooks(const json_t *h, struct husk_err **err)
{
	static const char *const kinds[] = { "prestart", "createRuntime",
					     "createContainer",
					     "startContainer", "poststart",
					     "poststop", NULL };
	const char *k;
	json_t *list, *hook, *v;
	char f[128];
	size_t i;

	if (want(h, JSON_OBJECT, "hooks", "an object", err) < 0)
		return -1;
	json_object_foreach((json_t *)h, k, list) {
		snprintf(f, sizeof(f), "hooks.%s", k);
		if (!in_list(k, kinds))
			return bad(err, f, "unknown kind of hook");
		if (want(list, JSON_ARRAY, f, "an array", err) < 0)
			return -1;
		json_array_foreach(list, i, hook) {
			snprintf(f, sizeof(f), "hooks.%s[%zu]", k, i);
			if (want(hook, JSON_OBJECT, f, "an object", err) < 0)
				return -1;
			snprintf(f, sizeof(f), "hooks.%s[%zu].path", k, i);
			v = json_object_get(hook, "path");
			if (!v)
				return bad(err, f, "missing");
			if (check_abs_path(v, f, err) < 0)
				return -1;
			snprintf(f, sizeof(f), "hooks.%s[%zu].args", k, i);
			if ((v = json_object_get(hook, "args")) &&
			    check_strv(v, f, false, err) < 0)
				return -1;
			snprintf(f, sizeof(f), "hooks.%s[%zu].env", k, i);
			if ((v = json_object_get(hook, "env")) &&
			    check_strv(v, f, false, err) < 0)
				return -1;
			snprintf(f, sizeof(f), "hooks.%s[%zu].timeout", k, i);
			if ((v = json_object_get(hook, "timeout"))) {
				if (want(v, JSON_INTEGER, f, "an integer",
					 err) < 0)
					return -1;
				if (json_integer_value(v) <= 0)
					return bad(err, f, "must be positive");
			}
		}
	}
	return 0;
}

static int check_mounts(const json_t *m, struct husk_err **err)
{
	json_t *mnt, *v;
	char f[128];
	size_t i;

	if (want(m, JSON_ARRAY, "mounts", "an array", err) < 0)
		return -1;
	json_array_foreach(m, i, mnt) {
		snprintf(f, sizeof(f), "mounts[%zu]", i);
		if (want(mnt, JSON_OBJECT, f, "an object", err) < 0)
			return -1;
		snprintf(f, sizeof(f), "mounts[%zu].destination", i);
		v = json_object_get(mnt, "destination");
		if (!v)
			return bad(err, f, "missing");
		if (check_abs_path(v, f, err) < 0)
			return -1;
		snprintf(f, sizeof(f), "mounts[%zu].type", i);
		if ((v = json_object_get(mnt, "type")) &&
		    want(v, JSON_STRING, f, "a string", err) < 0)
			return -1;
		snprintf(f, sizeof(f), "mounts[%zu].source", i);
		if ((v = json_object_get(mnt, "source")) &&
		    want(v, JSON_STRING, f, "a string", err) < 0)
			return -1;
		snprintf(f, sizeof(f), "mounts[%zu].options", i);
		if ((v = json_object_get(mnt, "options")) &&
		    check_strv(v, f, false, err) < 0)
			return -1;
	}
	return 0;
}

static int check_linux(const json_t *l, struct husk_err **err)
{
	static const char *const ns_types[] = { "pid", "network", "mount",
						"ipc", "uts", "user",
						"cgroup", "time", NULL };
	json_t *v, *n, *t;
	unsigned seen = 0;
	char f[128];
	size_t i;

	if (want(l, JSON_OBJECT, "linux", "an object", err) < 0)
		return -1;
	if ((v = json_object_get(l, "namespaces"))) {
		if (want(v, JSON_ARRAY, "linux.namespaces", "an array",
			 err) < 0)
			return -1;
		json_array_foreach(v, i, n) {
			unsigned bit = 0;

			snprintf(f, sizeof(f), "linux.namespaces[%zu]", i);
			if (want(n, JSON_OBJECT, f, "an object", err) < 0)
				return -1;
			t = json_object_get(n, "type");
			if (!t || !json_is_string(t))
				return bad(err, f, "type must be a string");
			for (unsigned k = 0; ns_types[k]; k++)
				if (!strcmp(ns_types[k], json_string_value(t)))
					bit = 1u << k;
			if (!bit)
				return bad(err, f, "unknown namespace type "
					   "'%s'", json_string_value(t));
			if (seen & bit)
				return bad(err, f, "namespace '%s' given "
					   "twice", json_string_value(t));
			seen |= bit;
			if (!strcmp(json_string_value(t), "user"))
				return bad(err, f, "user namespaces are not "
					   "supported by husk");
			if ((t = json_object_get(n, "path")) &&
			    check_abs_path(t, f, err) < 0)
				return -1;
		}
	}
	if (json_object_get(l, "uidMappings") ||
	    json_object_get(l, "gidMappings"))
		return bad(err, "linux.uidMappings", "user namespaces are not "
			   "supported by husk");
	if ((v = json_object_get(l, "resources")) &&
	    want(v, JSON_OBJECT, "linux.resources", "an object", err) < 0)
		return -1;
	if ((v = json_object_get(l, "seccomp")) &&
	    want(v, JSON_OBJECT, "linux.seccomp", "an object", err) < 0)
		return -1;
	if ((v = json_object_get(l, "cgroupsPath")) &&
	    want(v, JSON_STRING, "linux.cgroupsPath", "a string", err) < 0)
		return -1;
	if ((v = json_object_get(l, "maskedPaths")) &&
	    check_strv(v, "linux.maskedPaths", false, err) < 0)
		return -1;
	if ((v = json_object_get(l, "readonlyPaths")) &&
	    check_strv(v, "linux.readonlyPaths", false, err) < 0)
		return -1;
	if ((v = json_object_get(l, "sysctl"))) {
		const char *k;

		if (want(v, JSON_OBJECT, "linux.sysctl", "an object", err) < 0)
			return -1;
		json_object_foreach(v, k, t) {
			snprintf(f, sizeof(f), "linux.sysctl.%s", k);
			if (want(t, JSON_STRING, f, "a string", err) < 0)
				return -1;
		}
	}
	return 0;
}

int husk_hooks_validate(const json_t *hooks, struct husk_err **err)
{
	return check_hooks(hooks, err);
}

int husk_process_validate(const json_t *process, struct husk_err **err)
{
	return check_process(process, err);
}

int husk_spec_validate(const json_t *spec, struct husk_err **err)
{
	json_t *v, *a;
	const char *k;

	if (want(spec, JSON_OBJECT, "(top level)", "an object", err) < 0)
		return -1;
	v = json_object_get(spec, "ociVersion");
	if (!v)
		return bad(err, "ociVersion", "missing");
	if (want(v, JSON_STRING, "ociVersion", "a string", err) < 0)
		return -1;
	if (strncmp(json_string_value(v), "1.", 2))
		return bad(err, "ociVersion", "'%s' is not a 1.x version",
			   json_string_value(v));
	v = json_object_get(spec, "root");
	if (!v)
		return bad(err, "root", "missing");
	if (want(v, JSON_OBJECT, "root", "an object", err) < 0)
		return -1;
	a = json_object_get(v, "path");
	if (!a)
		return bad(err, "root.path", "missing");
	if (want(a, JSON_STRING, "root.path", "a string", err) < 0)
		return -1;
	if ((a = json_object_get(v, "readonly")) && !json_is_boolean(a))
		return bad(err, "root.readonly", "expected a boolean, got %s",
			   jtype(a));
	v = json_object_get(spec, "process");
	if (!v)
		return bad(err, "process", "missing");
	if (check_process(v, err) < 0)
		return -1;
	if ((v = json_object_get(spec, "hostname")) &&
	    want(v, JSON_STRING, "hostname", "a string", err) < 0)
		return -1;
	if ((v = json_object_get(spec, "mounts")) && check_mounts(v, err) < 0)
		return -1;
	if ((v = json_object_get(spec, "hooks")) && check_hooks(v, err) < 0)
		return -1;
	if ((v = json_object_get(spec, "linux")) && check_linux(v, err) < 0)
		return -1;
	if ((v = json_object_get(spec, "annotations"))) {
		if (want(v, JSON_OBJECT, "annotations", "an object", err) < 0)
			return -1;
		json_object_foreach(v, k, a)
			if (!json_is_string(a))
				return bad(err, "annotations", "value of '%s' "
					   "is not a string", k);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Where the root and the bind sources are                             */

/*
 * Host directories that are never a container's root: the guest could
 * read and (root not read-only) write the host's own files through the
 * share.  An absolute root.path elsewhere is the caller's to give.
 */
static const char *const system_dirs[] = {
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32",
	"/lib64", "/libx32", "/media", "/mnt", "/opt", "/proc", "/root",
	"/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
	"/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64",
	"/usr/libexec", "/usr/libx32", "/usr/local", "/usr/sbin",
	"/usr/share", "/usr/src", "/var/cache", "/var/lib", "/var/local",
	"/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool",
	"/var/tmp", NULL,
};
/* ... and trees no root may lie in. */
static const char *const system_trees[] = {
	"/boot", "/dev", "/etc", "/proc", "/sys", NULL,
};

static bool path_in(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n]);
}

/* Refuse the host's system directories by name and by identity (a bind
 * mount or a symlink of one elsewhere is the same directory). */
static int root_not_system(int fd, const char *path, struct husk_err **err)
{
	struct stat st, sys;

	if (fstat(fd, &st) < 0)
		return husk_error_sys(err, errno, "config.json: root.path "
				      "`%s`", path);
	for (const char *const *t = system_trees; *t; t++)
		if (path_in(path, *t))
			return husk_error(err, HUSK_E_INVALID, "config.json: "
					  "root.path `%s` is in the host's "
					  "%s: a container's root must be a "
					  "directory of its own", path, *t);
	for (const char *const *d = system_dirs; *d; d++)
		if (!strcmp(path, *d) ||
		    (stat(*d, &sys) == 0 && sys.st_dev == st.st_dev &&
		     sys.st_ino == st.st_ino))
			return husk_error(err, HUSK_E_INVALID, "config.json: "
					  "root.path `%s` is the host's %s: "
					  "a container's root must be a "
					  "directory of its own", path, *d);
	return 0;
}

/* rel beneath the bundle: no "..", absolute symlink or symlink that
 * leads out of it, no magic link (/proc/self/...). */
static int open_in_bundle(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	for (int i = 0; i < 16; i++) {
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	if (fd < 0 && errno == ENOSYS) {
		struct stat st;

		/* An old kernel: the walk refuses every symlink (its last
		 * step, O_PATH|O_NOFOLLOW, opens a link as itself). */
		fd = husk_open_beneath_walk(dirfd, rel, O_PATH, 0, NULL);
		if (fd >= 0 && (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode))) {
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			errno = EXDEV;
	}
	return fd;
}

/*
 * One path of the spec (field names it) to a descriptor of what it is
 * now, and that object's absolute path: relative ones beneath the
 * bundle, absolute ones as the caller gave them (the OCI spec allows a
 * root or a volume anywhere).
 */
static int resolve(int dirfd, const char *field, const char *path,
		   int *fd_out, char **path_out, struct husk_err **err)
{
	char link[64], buf[PATH_MAX];
	cleanup_close int fd = -1;
	ssize_t n;

	if (!*path)
		return husk_error(err, HUSK_E_INVALID, "config.json: %s is "
				  "empty", field);
	if (path[0] == '/')
		fd = open(path, O_PATH | O_CLOEXEC);
	else
		fd = open_in_bundle(dirfd, path);
	if (fd < 0 && (errno == EXDEV || errno == ELOOP) && path[0] != '/')
		return husk_error(err, HUSK_E_INVALID, "config.json: %s `%s` "
				  "leads out of the bundle (through `..` or a "
				  "symlink): relative paths stay in the bundle",
				  field, path);
	if (fd < 0)
		return husk_error_sys(err, errno, "config.json: %s `%s`",
				      field, path);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] != '/')
		return husk_error_sys(err, n < 0 ? errno : ENOENT,
				      "config.json: %s `%s`: where it leads",
				      field, path);
	buf[n] = '\0';
	*path_out = husk_xstrdup(buf);
	*fd_out = husk_steal_fd(fd);
	return 0;
}

static bool is_bind(const json_t *m)
{
	const json_t *type = json_object_get(m, "type");
	size_t i;
	json_t *o;

	if (json_is_string(type) && !strcmp(json_string_value(type), "bind"))
		return true;
	json_array_foreach(json_object_get(m, "options"), i, o)
		if (json_is_string(o) &&
		    (!strcmp(json_string_value(o), "bind") ||
		     !strcmp(json_string_value(o), "rbind")))
			return true;
	return false;
}

static int resolve_paths(int dirfd, struct husk_bundle *b,
			 struct husk_err **err)
{
	const char *root = json_string_value(json_object_get(
				json_object_get(b->spec, "root"), "path"));
	json_t *mounts = json_object_get(b->spec, "mounts"), *m;
	struct stat st;
	size_t i;

	if (resolve(dirfd, "root.path", root, &b->rootfd, &b->rootfs,
		    err) < 0)
		return -1;
	if (fstat(b->rootfd, &st) < 0)
		return husk_error_sys(err, errno, "config.json: root.path "
				      "`%s`", b->rootfs);
	if (!S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "config.json: root.path "
				  "`%s` is not a directory", b->rootfs);
	if (root_not_system(b->rootfd, b->rootfs, err) < 0)
		return -1;

	b->nsrcs = json_array_size(mounts);
	b->srcs = husk_xcalloc(b->nsrcs, sizeof(*b->srcs));
	for (i = 0; i < b->nsrcs; i++)
		b->srcs[i].fd = -1;
	json_array_foreach(mounts, i, m) {
		const char *src = json_string_value(json_object_get(m,
								    "source"));
		char f[64];

		if (!is_bind(m) || !src)
			continue;
		snprintf(f, sizeof(f), "mounts[%zu].source", i);
		if (resolve(dirfd, f, src, &b->srcs[i].fd, &b->srcs[i].path,
			    err) < 0)
			return -1;
	}
	return 0;
}

int husk_bundle_load(const char *bundle, struct husk_bundle *b,
		     struct husk_err **err)
{
	cleanup_free char *text = NULL;
	cleanup_close int dirfd = -1;
	json_error_t jerr;
	size_t len;

	memset(b, 0, sizeof(*b));
	b->rootfd = -1;
	b->path = realpath(bundle, NULL);
	if (!b->path)
		return husk_error_sys(err, errno, "bundle `%s`", bundle);
	dirfd = open(b->path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dirfd < 0) {
		husk_error_sys(err, errno, "bundle `%s`", bundle);
		goto fail;
	}
	/* A regular file: not a fifo that would hang us, a device or a
	 * symlink to somewhere else. */
	if (husk_read_file_flags(dirfd, "config.json", O_NOFOLLOW, SPEC_MAX,
				 &text, &len, err) < 0) {
		husk_error_wrap(err, "bundle `%s`", bundle);
		goto fail;
	}
	b->spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!b->spec) {
		husk_error(err, HUSK_E_INVALID, "%s/config.json:%d:%d: %s",
			   b->path, jerr.line, jerr.column, jerr.text);
		goto fail;
	}
	if (husk_spec_validate(b->spec, err) < 0)
		goto fail;
	if (resolve_paths(dirfd, b, err) < 0)
		goto fail;
	return 0;
fail:
	husk_bundle_free(b);
	return -1;
}

void husk_bundle_free(struct husk_bundle *b)
{
	/* b->path is set first: without it nothing else was. */
	if (b->path && b->rootfd >= 0)
		close(b->rootfd);
	for (size_t i = 0; i < b->nsrcs; i++) {
		if (b->srcs[i].fd >= 0)
			close(b->srcs[i].fd);
		free(b->srcs[i].path);
	}
	free(b->srcs);
	json_decref(b->spec);
	free(b->path);
	free(b->rootfs);
	memset(b, 0, sizeof(*b));
	b->rootfd = -1;
}

const char *husk_spec_annotation(const json_t *spec, const char *key)
{
	json_t *v = json_object_get(json_object_get(spec, "annotations"), key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}
