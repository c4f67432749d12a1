/*
 * husk spec: write runc's default config.json (a shell in a read-only
 * busybox-style root, the usual mounts, masked and read-only paths) so
 * that a bundle can be made by hand, as with `runc spec`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

static json_t *strv(const char *const *v)
{
	json_t *a = json_array();

	for (; *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static json_t *mount(const char *dst, const char *type, const char *src,
		     const char *const *opts)
{
	json_t *m = json_pack("{s:s, s:s, s:s}", "destination", dst, "type",
			      type, "source", src);

	if (opts)
		json_object_set_new(m, "options", strv(opts));
	return m;
}

json_t *husk_default_spec(void)
{
	static const char *const caps[] = { "CAP_AUDIT_WRITE", "CAP_KILL",
					    "CAP_NET_BIND_SERVICE", NULL };
	static const char *const env[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		"/sbin:/bin", "TERM=xterm", NULL };
	static const char *const o_proc[] = { NULL };
	static const char *const o_dev[] = { "nosuid", "strictatime",
					     "mode=755", "size=65536k", NULL };
	static const char *const o_pts[] = { "nosuid", "noexec", "newinstance",
					     "ptmxmode=0666", "mode=0620",
					     "gid=5", NULL };
	static const char *const o_shm[] = { "nosuid", "noexec", "nodev",
					     "mode=1777", "size=65536k", NULL };
	static const char *const o_mq[] = { "nosuid", "noexec", "nodev",
					    NULL };
	static const char *const o_sys[] = { "nosuid", "noexec", "nodev", "ro",
					     NULL };
	static const char *const o_cg[] = { "nosuid", "noexec", "nodev",
					    "relatime", "ro", NULL };
	static const char *const masked[] = {
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/sys/firmware", "/proc/scsi", NULL };
	static const char *const readonly[] = {
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
		"/proc/sysrq-trigger", NULL };
	static const char *const nss[] = { "pid", "network", "ipc", "uts",
					   "mount", NULL };
	json_t *spec, *process, *capsobj, *mounts, *lnx, *ns;

	/* No inheritable or ambient set, as runc's default since
	 * CVE-2022-29162. */
	capsobj = json_pack("{s:o, s:o, s:o}", "bounding", strv(caps),
			    "effective", strv(caps), "permitted", strv(caps));
	process = json_pack("{s:b, s:{s:i, s:i}, s:[s], s:o, s:s, s:o, "
			    "s:[{s:s, s:i, s:i}], s:b}",
			    "terminal", 1, "user", "uid", 0, "gid", 0,
			    "args", "sh", "env", strv(env), "cwd", "/",
			    "capabilities", capsobj,
			    "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024,
			    "soft", 1024, "noNewPrivileges", 1);
	mounts = json_array();
	json_array_append_new(mounts, mount("/proc", "proc", "proc", o_proc));
	json_array_append_new(mounts, mount("/dev", "tmpfs", "tmpfs", o_dev));
	json_array_append_new(mounts, mount("/dev/pts", "devpts", "devpts",
					    o_pts));
	json_array_append_new(mounts, mount("/dev/shm", "tmpfs", "shm", o_shm));
	json_array_append_new(mounts, mount("/dev/mqueue", "mqueue", "mqueue",
					    o_mq));
	json_array_append_new(mounts, mount("/sys", "sysfs", "sysfs", o_sys));
	json_array_append_new(mounts, mount("/sys/fs/cgroup", "cgroup",
					    "cgroup", o_cg));
	json_object_del(json_array_get(mounts, 0), "options");
	ns = json_array();
	for (const char *const *n = nss; *n; n++)
		json_array_append_new(ns, json_pack("{s:s}", "type", *n));
	lnx = json_pack("{s:{s:[{s:b, s:s}]}, s:o, s:o, s:o}",
			  "resources", "devices", "allow", 0, "access", "rwm",
			  "namespaces", ns, "maskedPaths", strv(masked),
			  "readonlyPaths", strv(readonly));
	spec = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}",
			 "ociVersion", HUSK_OCI_VERSION, "process", process,
			 "root", "path", "rootfs", "readonly", 1,
			 "hostname", "husk", "mounts", mounts, "linux", lnx);
	return spec;
}

int cmd_spec(struct husk_ctx *ctx, int argc, char **argv,
	     struct husk_err **err)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "rootless", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bundle = ".";
	cleanup_free char *text = NULL;
	cleanup_close int dirfd = -1;
	json_t *spec;
	int c;

	optind = 1;
	while ((c = getopt_long_only(argc, argv, "+b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bundle = optarg;
			break;
		case 'r':
			return husk_usage_error(err, "spec --rootless: husk "
						"does not run rootless");
		case 'h':
			husk_cmd_usage(husk_cmd_find("spec"), stdout);
			return 0;
		default:
			return husk_usage_error(err, "spec: unknown option "
						"'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return husk_usage_error(err, "spec takes no arguments");
	dirfd = open(bundle, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dirfd < 0)
		return husk_error_sys(err, errno, "open bundle `%s`", bundle);
	if (faccessat(dirfd, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return husk_error(err, HUSK_E_EXISTS, "%s/config.json exists: "
				  "remove it first", bundle);
	spec = husk_default_spec();
	text = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(spec);
	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "cannot encode spec");
	if (husk_write_atomic(dirfd, "config.json", text, strlen(text), 0644,
			      err) < 0)
		return husk_error_wrap(err, "write %s/config.json", bundle);
	return 0;
}
