/*
 * Mounts made beneath a directory descriptor, for trees a less trusted
 * party can write (a sandbox's share, which the guest reaches over
 * virtio-fs): every path is walked one component at a time without
 * following a symlink, and a mount is attached onto the descriptor that
 * was checked (open_tree, mount_setattr, move_mount), never onto a path
 * looked up again.
 */
#ifndef HUSK_MOUNTAT_H
#define HUSK_MOUNTAT_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

/*
 * The directory rel beneath dirfd, each missing component made with
 * mode: no component may be a symlink, "..", or absolute.  Returns an
 * O_PATH|O_DIRECTORY descriptor, or -1 (a symlink is HUSK_E_PERMISSION
 * with the component named).
 */
int husk_mkdir_beneath(int dirfd, const char *rel, mode_t mode,
		       struct husk_err **err);

/* An empty regular file name in dirfd (made when missing, never through
 * a symlink; anything else there is an error).  Returns an O_PATH fd. */
int husk_mkfile_at(int dirfd, const char *name, mode_t mode,
		   struct husk_err **err);

/*
 * Make the mount point path inside the root file system rootfd, as runc
 * does before a root becomes read-only: every component is resolved
 * beneath rootfd (an image's symlinks stay inside it; ".." above the
 * root is refused), missing directories are made 0755 and the last one
 * an empty file when as_file; a symlink whose target is missing is an
 * error.  Returns an O_PATH descriptor on it.
 */
int husk_mkpath_in_root(int rootfd, const char *path, bool as_file,
			struct husk_err **err);

/* Attributes every bind gets: nosuid and nodev always. */
#define HUSK_BIND_REC    0x1u   /* with the mounts below the source */
#define HUSK_BIND_RDONLY 0x2u   /* read-only, on every mount of it */
#define HUSK_BIND_NOEXEC 0x4u
/* Propagation from the source's mount (default: as cloned, a peer of a
 * shared source): none, or from the source to the bind only. */
#define HUSK_BIND_PRIVATE 0x8u
#define HUSK_BIND_SLAVE   0x10u

/*
 * Bind the tree at srcfd (a descriptor on the source, O_PATH is enough)
 * onto the mount point tfd: the source is cloned detached, its
 * attributes set while no copy of it exists elsewhere (a remount after
 * the attach would not reach copies already propagated to peers and
 * slaves), then moved onto tfd.  `what` names the bind in errors.
 */
int husk_bind_fd(int srcfd, int tfd, unsigned flags, const char *what,
		 struct husk_err **err);

/*
 * Unmount whatever is mounted at name beneath dirfd (lazily, with every
 * mount below it), without following a symlink at name: the mount is
 * reached through its own descriptor.  Returns the number of mounts
 * taken off (stacked mounts all go), 0 when name is no mount point or is
 * missing, -1 on error.
 */
int husk_umount_at(int dirfd, const char *name, struct husk_err **err);

/* Is fd the root of a mount (statx STATX_ATTR_MOUNT_ROOT)? */
bool husk_is_mount_root(int fd);

#endif
