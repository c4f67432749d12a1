/*
 * The root file system containerd gives in Create (a snapshot's mounts,
 * overlay or bind) mounted at <bundle>/rootfs, as runc's shim does;
 * with `ctr run --rootfs DIR` there are none and config.json names the
 * directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "libhusk/log.h"
#include "libhusk/util.h"
#include "shimv2.h"

static const struct {
	const char *name;
	unsigned long set, clear;
} flags[] = {
	{ "ro", MS_RDONLY, 0 }, { "rw", 0, MS_RDONLY },
	{ "bind", MS_BIND, 0 }, { "rbind", MS_BIND | MS_REC, 0 },
	{ "nosuid", MS_NOSUID, 0 }, { "suid", 0, MS_NOSUID },
	{ "nodev", MS_NODEV, 0 }, { "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 }, { "exec", 0, MS_NOEXEC },
	{ "noatime", MS_NOATIME, 0 }, { "relatime", MS_RELATIME, 0 },
	{ "nodiratime", MS_NODIRATIME, 0 }, { "sync", MS_SYNCHRONOUS, 0 },
	{ "remount", MS_REMOUNT, 0 }, { "defaults", 0, 0 },
};

static int mount_one(const struct sv_mount *m, const char *target,
		     struct husk_err **err)
{
	unsigned long fl = 0;
	size_t cap = 1, len = 0;
	char *data;
	int rc;

	for (size_t i = 0; i < m->noptions; i++)
		cap += strlen(m->options[i]) + 1;
	data = husk_xcalloc(1, cap);
	for (size_t i = 0; i < m->noptions; i++) {
		const char *o = m->options[i];
		size_t k;

		for (k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			if (!strcmp(o, flags[k].name))
				break;
		if (k < sizeof(flags) / sizeof(flags[0])) {
			fl = (fl | flags[k].set) & ~flags[k].clear;
			continue;
		}
		len += (size_t)sprintf(data + len, "%s%s", len ? "," : "", o);
	}
	rc = mount(m->source, target, m->type && *m->type ? m->type : NULL,
		   fl & ~MS_RDONLY, len ? data : NULL);
	/* A bind takes read-only by a remount. */
	if (rc == 0 && (fl & MS_BIND) && (fl & MS_RDONLY))
		rc = mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
			   (fl & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), NULL);
	else if (rc < 0 && errno == EINVAL)
		rc = mount(m->source, target, m->type, fl, len ? data : NULL);
	else if (rc == 0 && (fl & MS_RDONLY) && !(fl & MS_BIND))
		rc = mount(NULL, target, NULL, MS_REMOUNT | fl, len ? data :
			   NULL);
	free(data);
	if (rc < 0)
		return husk_error_sys(err, errno, "mount the rootfs (%s %s)",
				      m->type ? m->type : "", m->source);
	return 0;
}

int sv_rootfs_mount(const struct sv_create *c, char **mounted,
		    struct husk_err **err)
{
	char *target = husk_xasprintf("%s/rootfs", c->bundle);

	if (husk_mkdir_p(target, 0711, err) < 0) {
		free(target);
		return -1;
	}
	for (size_t i = 0; i < c->nmounts; i++) {
		if (mount_one(&c->mounts[i], target, err) < 0) {
			while (i-- > 0)
				umount2(target, MNT_DETACH);
			free(target);
			return -1;
		}
	}
	*mounted = target;
	return 0;
}

void sv_rootfs_unmount(const char *path)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL)
		log_warn("`%s`", path);
}
