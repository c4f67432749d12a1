/*
 * husk.conf(5): INI sections in the spirit of Kata's configuration.toml,
 * parsed by inih.  Unknown sections or keys and bad values are errors
 * that name the file, line and key: a typo must not silently fall back
 * to a default.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "sandbox.h"
#include "libipc/proto_hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

#ifndef HUSK_DATADIR
#define HUSK_DATADIR "/usr/local/share/husk"
#endif
#ifndef HUSK_LIBEXECDIR
#define HUSK_LIBEXECDIR "/usr/local/libexec/husk"
#endif

const char *husk_exe_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0) {
		snprintf(dir, sizeof(dir), "%s", HUSK_LIBEXECDIR);
		return dir;
	}
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	return dir;
}

/* A helper binary: beside husk if it is there (a build tree or a
 * bundle of binaries), else in the libexec directory. */
static char *helper_path(const char *name)
{
	char *p = husk_xasprintf("%s/%s", husk_exe_dir(), name);

	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return husk_xasprintf("%s/%s", HUSK_LIBEXECDIR, name);
}

/* The guest image: build/guest beside build/bin, else the data dir. */
static char *guest_path(const char *name)
{
	char *p = husk_xasprintf("%s/../guest/%s", husk_exe_dir(), name);
	char *real;

	if (access(p, R_OK) == 0) {
		real = realpath(p, NULL);
		if (real) {
			free(p);
			return real;
		}
		return p;
	}
	free(p);
	return husk_xasprintf("%s/%s", HUSK_DATADIR, name);
}

void husk_config_defaults(struct husk_config *c)
{
	memset(c, 0, sizeof(*c));
	c->hypervisor_path = helper_path("husk-hypervisor");
	c->qemu_path = husk_xstrdup("/usr/bin/qemu-system-x86_64");
	c->virtiofsd_path = husk_xstrdup("/usr/lib/qemu/virtiofsd");
	c->kernel = guest_path("vmlinux");
	c->initrd = guest_path("initrd.img");
	c->machine_type = husk_xstrdup("q35");
	c->shared_fs = husk_xstrdup("virtio-fs");
	c->accel = husk_xstrdup("auto");
	c->kernel_params = husk_xstrdup("");
	c->vcpus = 1;
	c->max_vcpus = 4;
	c->memory_mb = 256;
	c->max_memory_mb = 2048;
	c->memory_slots = 8;
	c->tcg_cache_mb = HV_TCG_TB_MB;
	c->console_log = true;
	/* The share's top holds only directories and mount points: a
	 * pod of 100 containers with 20 mounts each needs ~2500 inodes
	 * and no data. */
	c->share_size_mb = 4;
	c->share_inodes = 16384;
	c->console_log_max_kb = 1024;
	c->qemu_uid_base = 2140000000u;
	c->qemu_uid_count = 65536;
	c->kvm_group = husk_xstrdup("");
	c->agent_timeout = 60;
	c->agent_log_level = husk_xstrdup("info");
	c->proxy_path = helper_path("husk-proxy");
	c->proxy_user = husk_xstrdup("");
	c->proxy_poll_us = 200;
	c->shim_path = helper_path("husk-shim");
	c->netmon_enable = false;
	c->netmon_path = helper_path("husk-netmon");
	c->network_model = husk_xstrdup("tcfilter");
	c->host_network = false;
	c->sandbox_cgroup_only = false;
	c->debug = false;
	c->hook_timeout = 30;
	c->factory_template = false;
	c->factory_template_path = husk_xstrdup(HUSK_FACTORY_PATH);
	c->factory_memory_mb = c->memory_mb;
	c->factory_cache = 0;
}

enum ktype { K_STR, K_UINT, K_BOOL };

struct key {
	const char *section, *name;
	enum ktype type;
	size_t off;
	unsigned min, max;              /* K_UINT */
	const char *const *choices;     /* K_STR: allowed values, or NULL */
};

static const char *const accel_choices[] = { "auto", "kvm", "tcg", NULL };
static const char *const machine_choices[] = { "q35", "microvm", NULL };
/* virtio-9p is for VMs virtio-fs cannot serve: templates and their
 * clones (docs/share.md, "virtio-9p"). */
static const char *const shared_fs_choices[] = { "virtio-fs", "virtio-9p",
						 NULL };
static const char *const net_choices[] = { "tcfilter", "macvtap", "none",
					   NULL };
static const char *const level_choices[] = { "error", "warn", "info",
					     "debug", NULL };

#define O(f) offsetof(struct husk_config, f)
static const struct key keys[] = {
	{ "hypervisor", "path", K_STR, O(hypervisor_path), 0, 0, NULL },
	{ "hypervisor", "qemu", K_STR, O(qemu_path), 0, 0, NULL },
	{ "hypervisor", "virtiofsd", K_STR, O(virtiofsd_path), 0, 0, NULL },
	{ "hypervisor", "kernel", K_STR, O(kernel), 0, 0, NULL },
	{ "hypervisor", "initrd", K_STR, O(initrd), 0, 0, NULL },
	{ "hypervisor", "machine_type", K_STR, O(machine_type), 0, 0,
	  machine_choices },
	{ "hypervisor", "accel", K_STR, O(accel), 0, 0, accel_choices },
	{ "hypervisor", "kernel_params", K_STR, O(kernel_params), 0, 0, NULL },
	{ "hypervisor", "shared_fs", K_STR, O(shared_fs), 0, 0,
	  shared_fs_choices },
	{ "hypervisor", "vcpus", K_UINT, O(vcpus), 1, 240, NULL },
	{ "hypervisor", "max_vcpus", K_UINT, O(max_vcpus), 1, 240, NULL },
	{ "hypervisor", "memory_mb", K_UINT, O(memory_mb), 64, 1u << 20,
	  NULL },
	{ "hypervisor", "max_memory_mb", K_UINT, O(max_memory_mb), 64,
	  1u << 22, NULL },
	{ "hypervisor", "tcg_cache_mb", K_UINT, O(tcg_cache_mb),
	  HV_TCG_TB_MB_MIN, HV_TCG_TB_MB_MAX, NULL },
	{ "hypervisor", "memory_slots", K_UINT, O(memory_slots), 0, 255,
	  NULL },
	{ "hypervisor", "console_log", K_BOOL, O(console_log), 0, 0, NULL },
	{ "hypervisor", "share_size_mb", K_UINT, O(share_size_mb), 1, 1024,
	  NULL },
	{ "hypervisor", "share_inodes", K_UINT, O(share_inodes), 256,
	  1u << 22, NULL },
	{ "hypervisor", "console_log_max_kb", K_UINT, O(console_log_max_kb),
	  4, 1u << 22, NULL },
	{ "hypervisor", "qemu_uid_base", K_UINT, O(qemu_uid_base), 1,
	  0xfffffffeu, NULL },
	{ "hypervisor", "qemu_uid_count", K_UINT, O(qemu_uid_count), 1,
	  1u << 24, NULL },
	{ "hypervisor", "kvm_group", K_STR, O(kvm_group), 0, 0, NULL },
	{ "agent", "timeout", K_UINT, O(agent_timeout), 1, 3600, NULL },
	{ "agent", "log_level", K_STR, O(agent_log_level), 0, 0,
	  level_choices },
	{ "proxy", "path", K_STR, O(proxy_path), 0, 0, NULL },
	{ "proxy", "user", K_STR, O(proxy_user), 0, 0, NULL },
	{ "proxy", "poll_us", K_UINT, O(proxy_poll_us), 0, 10000, NULL },
	{ "shim", "path", K_STR, O(shim_path), 0, 0, NULL },
	{ "netmon", "enable", K_BOOL, O(netmon_enable), 0, 0, NULL },
	{ "netmon", "path", K_STR, O(netmon_path), 0, 0, NULL },
	{ "runtime", "network_model", K_STR, O(network_model), 0, 0,
	  net_choices },
	{ "runtime", "host_network", K_BOOL, O(host_network), 0, 0, NULL },
	{ "runtime", "sandbox_cgroup_only", K_BOOL, O(sandbox_cgroup_only), 0,
	  0, NULL },
	{ "runtime", "debug", K_BOOL, O(debug), 0, 0, NULL },
	{ "runtime", "hook_timeout", K_UINT, O(hook_timeout), 1, 3600, NULL },
	{ "factory", "template", K_BOOL, O(factory_template), 0, 0, NULL },
	{ "factory", "template_path", K_STR, O(factory_template_path), 0, 0,
	  NULL },
	{ "factory", "cache", K_UINT, O(factory_cache), 0, HUSK_CACHE_MAX, NULL },
};
#undef O

struct load_state {
	struct husk_config *c;
	struct husk_err *err;
};

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcmp(v, "1") || !strcasecmp(v, "on")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcmp(v, "0") || !strcasecmp(v, "off")) {
		*out = false;
		return 0;
	}
	return -1;
}

/* Values may be quoted, as in TOML: "value". */
static char *unquote(const char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		return strndup(v + 1, n - 2);
	return strdup(v);
}

static int bad_choice(const struct key *k, struct load_state *st,
		      const char *v)
{
	char list[256] = "";
	size_t n = 0;

	for (const char *const *ch = k->choices; *ch && n < sizeof(list);
	     ch++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
				      ch == k->choices ? "" : ", ", *ch);
	return husk_error(&st->err, HUSK_E_INVALID, "[%s] %s: '%s' is not "
			  "one of %s", k->section, k->name, v, list);
}

static int set_key(const struct key *k, struct load_state *st,
		   const char *value)
{
	char *base = (char *)st->c + k->off;
	cleanup_free char *v = unquote(value);
	long long n;
	bool b;

	if (!v)
		return husk_error(&st->err, HUSK_E_SYSTEM, "out of memory");
	switch (k->type) {
	case K_STR:
		if (k->choices) {
			const char *const *ch;

			for (ch = k->choices; *ch; ch++)
				if (!strcmp(*ch, v))
					break;
			if (!*ch)
				return bad_choice(k, st, v);
		}
		free(*(char **)base);
		*(char **)base = husk_steal_ptr(v);
		return 0;
	case K_UINT:
		if (husk_parse_int(v, k->min, k->max, &n) < 0)
			return husk_error(&st->err, HUSK_E_INVALID,
					  "[%s] %s: '%s' is not a whole "
					  "number in [%u, %u]", k->section,
					  k->name, v, k->min, k->max);
		*(unsigned *)base = (unsigned)n;
		return 0;
	case K_BOOL:
		if (parse_bool(v, &b) < 0)
			return husk_error(&st->err, HUSK_E_INVALID,
					  "[%s] %s: '%s' is not true or "
					  "false", k->section, k->name, v);
		*(bool *)base = b;
		return 0;
	}
	return 0;
}

/* Returning 0 stops inih at this line and makes ini_parse_file return
 * its number, which husk_config_load puts in front of the message. */
static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load_state *st = user;
	bool section_known = false;

	if (st->err)
		return 0;
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].section, section))
			continue;
		section_known = true;
		if (!strcmp(keys[i].name, name))
			return set_key(&keys[i], st, value) < 0 ? 0 : 1;
	}
	if (!section_known)
		husk_error(&st->err, HUSK_E_INVALID, "unknown section [%s]",
			   section);
	else
		husk_error(&st->err, HUSK_E_INVALID,
			   "unknown key '%s' in [%s]", name, section);
	return 0;
}

int husk_config_load(struct husk_config *c, const char *path, bool must,
		     struct husk_err **err)
{
	struct load_state st = { c, NULL };
	FILE *f;
	int rc;

	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !must)
			return 0;
		return husk_error_sys(err, errno, "open configuration `%s`",
				      path);
	}
	rc = ini_parse_file(f, on_key, &st);
	fclose(f);
	if (st.err) {
		*err = st.err;
		if (rc > 0)
			return husk_error_wrap(err, "%s:%d", path, rc);
		return husk_error_wrap(err, "%s", path);
	}
	if (rc > 0)
		return husk_error(err, HUSK_E_INVALID,
				  "%s:%d: syntax error", path, rc);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "read `%s` failed", path);
	if (c->vcpus > c->max_vcpus)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: [hypervisor] vcpus (%u) is more than "
				  "max_vcpus (%u)", path, c->vcpus,
				  c->max_vcpus);
	if ((unsigned long long)c->qemu_uid_base + c->qemu_uid_count >
	    0xfffffffeULL)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: [hypervisor] qemu_uid_base (%u) + "
				  "qemu_uid_count (%u) passes 4294967294",
				  path, c->qemu_uid_base, c->qemu_uid_count);
	if (c->memory_mb > c->max_memory_mb)
		return husk_error(err, HUSK_E_INVALID,
				  "%s: [hypervisor] memory_mb (%u) is more "
				  "than max_memory_mb (%u)", path,
				  c->memory_mb, c->max_memory_mb);
	if (c->factory_template_path[0] != '/' ||
	    !strcmp(c->factory_template_path, "/"))
		return husk_error(err, HUSK_E_INVALID,
				  "%s: [factory] template_path: '%s' is not "
				  "an absolute path below /", path,
				  c->factory_template_path);
	/* A template boots with the configured size; a sandbox's own
	 * limits and annotations change memory_mb later, not this. */
	c->factory_memory_mb = c->memory_mb;
	free(c->source);
	c->source = husk_xstrdup(path);
	return 0;
}

void husk_config_free(struct husk_config *c)
{
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(keys); i++)
		if (keys[i].type == K_STR)
			free(*(char **)((char *)c + keys[i].off));
	free(c->source);
	memset(c, 0, sizeof(*c));
}

int husk_config_print(const struct husk_config *c, FILE *out)
{
	const char *section = NULL;

	fprintf(out, "# effective configuration (%s)\n",
		c->source ? c->source : "built-in defaults");
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];
		const char *base = (const char *)c + k->off;

		if (!section || strcmp(section, k->section)) {
			section = k->section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		switch (k->type) {
		case K_STR:
			fprintf(out, "%s = \"%s\"\n", k->name,
				*(char *const *)base);
			break;
		case K_UINT:
			fprintf(out, "%s = %u\n", k->name,
				*(const unsigned *)base);
			break;
		case K_BOOL:
			fprintf(out, "%s = %s\n", k->name,
				*(const bool *)base ? "true" : "false");
			break;
		}
	}
	return 0;
}
