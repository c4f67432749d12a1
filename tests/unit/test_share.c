/*
 * sandbox/share.c without a VM: the staging tmpfs and its read-only
 * view, a container's binds with their attributes in the view, the
 * mount points a read-only root gets from the host, relative sources
 * held beneath the bundle, and a teardown that leaves no mount and
 * follows no symlink.  Root only, in a mount namespace of its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "sandbox/sandbox.h"

static bool have_ns;

struct fix {
	char base[64];
	struct husk_config cfg;
	struct husk_sbx_paths p;
	struct husk_bundle b;
};

static char *at(const struct fix *f, const char *rel)
{
	return husk_xasprintf("%s/%s", f->base, rel);
}

static void mkdirs(const struct fix *f, const char *rel)
{
	cleanup_free char *p = at(f, rel);

	assert_int_equal(husk_mkdir_p(p, 0755, NULL), 0);
}

static void put(const struct fix *f, const char *rel, const char *s)
{
	cleanup_free char *p = at(f, rel);
	FILE *fp = fopen(p, "we");

	assert_non_null(fp);
	fputs(s, fp);
	fclose(fp);
}

/* Lines of mountinfo whose mount point starts with prefix. */
static int count_mounts(const char *prefix)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char mnt[4096];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    !strncmp(mnt, prefix, strlen(prefix)))
			n++;
	}
	fclose(fp);
	return n;
}

static char *mnt_opts(const char *path)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	char line[4096], *res = NULL;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char mnt[4096], opts[512];

		if (sscanf(line, "%*s %*s %*s %*s %4095s %511s", mnt,
			   opts) == 2 && !strcmp(mnt, path)) {
			free(res);
			res = husk_xstrdup(opts);
		}
	}
	fclose(fp);
	return res;
}

static void assert_opts(const char *path, const char *want)
{
	cleanup_free char *o = mnt_opts(path);

	if (!o || strncmp(o, want, strlen(want)))
		fail_msg("%s: options `%s`, want `%s...`", path,
			 o ? o : "(not mounted)", want);
}

static int fix_setup(void **state)
{
	struct fix *f = husk_xcalloc(1, sizeof(*f));
	cleanup_free char *root = NULL;

	snprintf(f->base, sizeof(f->base), "/tmp/husk-test-share.XXXXXX");
	if (!mkdtemp(f->base))
		return -1;
	husk_config_defaults(&f->cfg);
	root = at(f, "root");
	if (husk_sandbox_paths(root, "sb", &f->p, NULL) < 0 ||
	    husk_mkdir_p(f->p.dir, 0700, NULL) < 0)
		return -1;
	f->b.path = at(f, "bundle");
	f->b.rootfs = at(f, "bundle/rootfs");
	f->b.rootfd = -1;
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;

	husk_share_teardown(&f->p);
	husk_rmtree_at(AT_FDCWD, f->base, NULL);
	husk_sandbox_paths_free(&f->p);
	husk_config_free(&f->cfg);
	free(f->b.path);
	free(f->b.rootfs);
	json_decref(f->b.spec);
	free(f);
	return 0;
}

#define NEED_NS() do { if (!have_ns) { skip(); return; } } while (0)

static void test_share_layout_and_teardown(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	json_t *binds = json_array();
	cleanup_free char *v = NULL, *vroot = NULL, *vm1 = NULL, *vm2 = NULL;
	cleanup_free char *vm3 = NULL, *made = NULL, *dot = NULL;
	cleanup_free char *planted = NULL, *in_ro = NULL, *stage_c = NULL;
	cleanup_free char *abs_vol = at(f, "vol"), *abs_file = at(f, "file");
	struct stat st;

	NEED_NS();
	mkdirs(f, "bundle/rootfs/bin");
	mkdirs(f, "bundle/data");
	mkdirs(f, "vol");
	put(f, "file", "file\n");
	put(f, "bundle/data/f", "ro data\n");
	f->b.spec = json_pack(
		"{s:{s:s, s:b}, s:[{s:s, s:s}, {s:s, s:s, s:s, s:[s]},"
		" {s:s, s:s, s:[s, s]}, {s:s, s:s, s:s}]}",
		"root", "path", "rootfs", "readonly", 1,
		"mounts",
		"destination", "/dev", "type", "tmpfs",
		"destination", "/newvol", "type", "bind", "source", abs_vol,
		"options", "rbind",
		"destination", "/data", "source", "data", "options", "rbind",
		"ro",
		"destination", "/etc/file", "type", "bind", "source",
		abs_file);
	assert_non_null(f->b.spec);

	assert_int_equal(husk_share_setup(&f->cfg, &f->p, &err), 0);
	assert_opts(f->p.shared, "ro,nosuid,nodev,noexec");
	planted = husk_xasprintf("%s/c1", f->p.shared);
	assert_int_equal(symlink("/etc", planted), -1);
	assert_int_equal(errno, EROFS);

	if (husk_share_container(&f->p, "c1", &f->b, binds, &err) < 0)
		fail_msg("share: %s", err->msg);
	assert_int_equal(json_array_size(binds), 4);
	v = husk_xasprintf("%s/c1", f->p.shared);
	vroot = husk_xasprintf("%s/rootfs", v);
	vm1 = husk_xasprintf("%s/mounts/1", v);
	vm2 = husk_xasprintf("%s/mounts/2", v);
	vm3 = husk_xasprintf("%s/mounts/3", v);
	assert_opts(vroot, "ro,nosuid,nodev");
	assert_opts(vm1, "rw,nosuid,nodev");
	assert_opts(vm2, "ro,nosuid,nodev");
	assert_opts(vm3, "rw,nosuid,nodev");
	assert_int_equal(stat(vm3, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	/* The tmpfs at /dev is not a bind: no mounts/0. */
	dot = husk_xasprintf("%s/mounts/0", v);
	assert_int_equal(access(dot, F_OK), -1);
	/* Read-only root and volume, read-only on the host. */
	in_ro = husk_xasprintf("%s/new", vm2);
	assert_int_equal(open(in_ro, O_CREAT | O_WRONLY, 0644), -1);
	assert_int_equal(errno, EROFS);
	/* The missing mount points of the read-only root were made on the
	 * host; /dev exists as the tmpfs's own mount point. */
	made = at(f, "bundle/rootfs/newvol");
	assert_int_equal(stat(made, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(made);
	made = at(f, "bundle/rootfs/etc/file");
	assert_int_equal(stat(made, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	free(made);
	made = at(f, "bundle/rootfs/data");
	assert_int_equal(stat(made, &st), 0);

	husk_unshare_container(&f->p, "c1");
	assert_int_equal(count_mounts(v), 0);
	stage_c = husk_xasprintf("%s/c1", f->p.stage);
	assert_int_equal(count_mounts(stage_c), 0);
	assert_int_equal(access(stage_c, F_OK), -1);
	/* The volumes' files are all there. */
	free(made);
	made = at(f, "bundle/data/f");
	assert_int_equal(access(made, F_OK), 0);

	husk_share_teardown(&f->p);
	assert_int_equal(count_mounts(f->p.dir), 0);
	json_decref(binds);
}

static void test_relative_source_stays_in_bundle(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	json_t *binds = json_array();
	cleanup_free char *link = at(f, "bundle/out");

	NEED_NS();
	mkdirs(f, "bundle/rootfs");
	mkdirs(f, "secret");
	put(f, "secret/key", "key\n");
	assert_int_equal(husk_share_setup(&f->cfg, &f->p, &err), 0);

	f->b.spec = json_pack("{s:{s:s}, s:[{s:s, s:s, s:s}]}", "root",
			      "path", "rootfs", "mounts", "destination",
			      "/x", "type", "bind", "source", "../secret");
	assert_int_equal(husk_share_container(&f->p, "c1", &f->b, binds,
					      &err), -1);
	assert_non_null(strstr(err->msg, "mounts[0].source"));
	husk_err_clear(&err);
	husk_unshare_container(&f->p, "c1");

	/* An absolute symlink in the bundle resolves inside it. */
	assert_int_equal(symlink(f->base, link), 0);
	json_decref(f->b.spec);
	f->b.spec = json_pack("{s:{s:s}, s:[{s:s, s:s, s:s}]}", "root",
			      "path", "rootfs", "mounts", "destination",
			      "/x", "type", "bind", "source", "out/secret");
	assert_int_equal(husk_share_container(&f->p, "c2", &f->b, binds,
					      &err), -1);
	husk_err_clear(&err);
	husk_unshare_container(&f->p, "c2");
	assert_int_equal(count_mounts(f->p.stage), 1);
	json_decref(binds);
}

/* The inode bound holds, and the error names the knob. */
static void test_share_full(void **state)
{
	struct fix *f = *state;
	struct husk_err *err = NULL;
	json_t *binds = json_array();
	cleanup_free char *vol = at(f, "vol");
	char cid[16];
	int i, rc = 0;

	NEED_NS();
	mkdirs(f, "bundle/rootfs");
	mkdirs(f, "vol");
	f->cfg.share_inodes = 16;
	f->b.spec = json_pack("{s:{s:s}, s:[{s:s, s:s, s:s},"
			      " {s:s, s:s, s:s}]}",
			      "root", "path", "rootfs", "mounts",
			      "destination", "/a", "type", "bind", "source",
			      vol, "destination", "/b", "type", "bind",
			      "source", vol);
	assert_int_equal(husk_share_setup(&f->cfg, &f->p, &err), 0);
	for (i = 0; i < 16 && rc == 0; i++) {
		snprintf(cid, sizeof(cid), "c%d", i);
		rc = husk_share_container(&f->p, cid, &f->b, binds, &err);
	}
	assert_int_equal(rc, -1);
	assert_true(i > 1);
	if (!strstr(err->msg, "share_inodes"))
		fail_msg("error: %s", err->msg);
	husk_err_clear(&err);
	while (i-- > 0) {
		snprintf(cid, sizeof(cid), "c%d", i);
		husk_unshare_container(&f->p, cid);
	}
	assert_int_equal(count_mounts(f->p.stage), 1);
	json_decref(binds);
}

/* A share built by an older husk (the served directory written by the
 * guest): unsharing follows none of the guest's symlinks. */
static void test_unshare_follows_nothing(void **state)
{
	struct fix *f = *state;
	cleanup_free char *victim = at(f, "victim"), *m = NULL, *r = NULL;

	NEED_NS();
	mkdirs(f, "victim");
	assert_int_equal(mount("t", victim, "tmpfs", 0, "size=64k"), 0);
	assert_int_equal(husk_mkdir_p(f->p.shared, 0755, NULL), 0);
	m = husk_xasprintf("%s/c1/mounts", f->p.shared);
	assert_int_equal(husk_mkdir_p(m, 0755, NULL), 0);
	free(m);
	m = husk_xasprintf("%s/c1/mounts/7", f->p.shared);
	r = husk_xasprintf("%s/c1/rootfs", f->p.shared);
	assert_int_equal(symlink(victim, m), 0);
	assert_int_equal(symlink(victim, r), 0);
	husk_unshare_container(&f->p, "c1");
	assert_int_equal(count_mounts(victim), 1);
	assert_int_equal(access(m, F_OK), -1);
	assert_int_equal(umount2(victim, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_share_layout_and_teardown, fix_setup,
			fix_teardown),
		cmocka_unit_test_setup_teardown(
			test_relative_source_stays_in_bundle, fix_setup,
			fix_teardown),
		cmocka_unit_test_setup_teardown(test_share_full, fix_setup,
						fix_teardown),
		cmocka_unit_test_setup_teardown(test_unshare_follows_nothing,
						fix_setup, fix_teardown),
	};

	have_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
