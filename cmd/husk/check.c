/*
 * husk check: can this host run husk?  One line per requirement, then a
 * verdict; exit 0 only when everything needed is there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "husk.h"

#include "libhusk/accel.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

struct verdict {
	int failed;
	int warned;
};

static void line(struct verdict *v, int level, const char *what,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void line(struct verdict *v, int level, const char *what,
		 const char *fmt, ...)
{
	static const char *const tags[] = { "ok", "warn", "FAIL" };
	va_list ap;

	printf("%-5s %-14s ", tags[level], what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (level == 1)
		v->warned++;
	if (level == 2)
		v->failed++;
}

static void need_exec(struct verdict *v, const char *what, const char *path)
{
	if (access(path, X_OK) == 0)
		line(v, 0, what, "%s", path);
	else
		line(v, 2, what, "%s: %s", path, strerror(errno));
}

static void need_file(struct verdict *v, const char *what, const char *path,
		      const char *hint)
{
	if (access(path, R_OK) == 0)
		line(v, 0, what, "%s", path);
	else
		line(v, 2, what, "%s: %s (%s)", path, strerror(errno), hint);
}

int cmd_check(struct husk_ctx *ctx, int argc, char **argv,
	      struct husk_err **err)
{
	static const char *const nss[] = { "mnt", "pid", "net", "ipc", "uts",
					   NULL };
	const struct husk_config *c = &ctx->cfg;
	struct verdict v = { 0, 0 };
	bool ns_missing = false;
	char reason[256];
	int kvm;

	if (argc > 1)
		return husk_usage_error(err, "check takes no arguments");
	printf("configuration: %s\n", c->source ? c->source :
	       "built-in defaults");
	need_exec(&v, "qemu", c->qemu_path);
	need_exec(&v, "virtiofsd", c->virtiofsd_path);
	kvm = husk_accel_detect(reason, sizeof(reason));
	if (!strcmp(c->accel, "kvm") && !kvm)
		line(&v, 2, "accelerator", "kvm is forced by the "
		     "configuration but cannot work: %s", reason);
	else if (!strcmp(c->accel, "tcg"))
		line(&v, kvm ? 1 : 0, "accelerator", "TCG (forced by the "
		     "configuration%s)", kvm ? "; KVM would work here" : "");
	else if (kvm)
		line(&v, 0, "accelerator", "KVM (%s)", reason);
	else
		line(&v, 1, "accelerator", "TCG, software emulation: slow "
		     "(%s)", reason);
	/* What the accelerator means for resizing (docs/hypervisor.md). */
	if (!strcmp(c->accel, "tcg") || (strcmp(c->accel, "kvm") && !kvm))
		line(&v, 0, "hotplug", "vCPUs and memory in, memory out (husk "
		     "does not unplug vCPUs under TCG: QEMU 7.2 aborts "
		     "after it)");
	else
		line(&v, 0, "hotplug", "vCPUs and memory, in and out");
	need_file(&v, "guest kernel", c->kernel, "make guest");
	need_file(&v, "guest initrd", c->initrd, "make guest");
	need_exec(&v, "hypervisor-drv", c->hypervisor_path);
	need_exec(&v, "proxy", c->proxy_path);
	need_exec(&v, "shim", c->shim_path);
	if (c->netmon_enable)
		need_exec(&v, "netmon", c->netmon_path);
	for (const char *const *n = nss; *n; n++) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/ns/%s", *n);
		if (access(p, F_OK) < 0) {
			line(&v, 2, "namespaces", "%s: %s", p,
			     strerror(errno));
			ns_missing = true;
		}
	}
	if (!ns_missing)
		line(&v, 0, "namespaces", "mnt pid net ipc uts");
	if (access("/dev/net/tun", R_OK | W_OK) == 0)
		line(&v, 0, "tun", "/dev/net/tun");
	else
		line(&v, strcmp(c->network_model, "none") ? 2 : 1, "tun",
		     "/dev/net/tun: %s", strerror(errno));
	if (geteuid() != 0)
		line(&v, 2, "privileges", "husk needs root (mounts, taps, "
		     "namespaces)");
	if (c->factory_template && strcmp(c->shared_fs, "virtio-9p"))
		line(&v, 1, "factory", "[factory] template needs [hypervisor] "
		     "shared_fs = virtio-9p: with %s every sandbox boots cold",
		     c->shared_fs);
	else if (c->factory_template)
		line(&v, 0, "factory", "VM templates at %s",
		     c->factory_template_path);
	if (c->factory_cache) {
		cleanup_free char *exe = husk_xasprintf("%s/husk-cache",
							husk_exe_dir());
		json_t *st = NULL;
		struct husk_err *e = NULL;

		need_exec(&v, "cache", exe);
		/* Not a failure: sandboxes boot cold without it. */
		if (husk_cache_status(ctx->root, &st, &e) < 0)
			line(&v, 1, "cache", "[factory] cache = %u, but "
			     "husk-cache does not answer (husk factory "
			     "init): sandboxes boot cold", c->factory_cache);
		else
			line(&v, 0, "cache", "husk-cache: %lld of %u VMs "
			     "ready", (long long)json_integer_value(
				     json_object_get(st, "ready")),
			     c->factory_cache);
		husk_err_free(e);
		json_decref(st);
	}
	if (v.failed) {
		printf("verdict: husk cannot run on this host (%d problem%s)\n",
		       v.failed, v.failed == 1 ? "" : "s");
		return husk_error(err, HUSK_E_STATE, "check failed");
	}
	printf("verdict: husk can run on this host%s\n",
	       kvm && strcmp(c->accel, "tcg") ? "" :
	       " (under TCG: expect seconds per VM start)");
	return 0;
}
