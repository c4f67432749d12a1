/*
 * Small files read whole into a caller's buffer (/proc, /sys, cgroup
 * files), and the fields of /proc/PID/stat that husk reads.
 */
#ifndef HUSK_PROC_H
#define HUSK_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* dirfd/path (dirfd may be AT_FDCWD) read into buf, at most size - 1
 * bytes, NUL-terminated; no symlink check, no size check beyond the
 * cut: for kernel files of known shape.  Returns the length or -1 with
 * errno. */
ssize_t husk_read_small(int dirfd, const char *path, char *buf,
			size_t size);

/*
 * /proc/PID/stat into buf.  comm may hold spaces and parentheses, so
 * the fields restart after its last ')': the return points at field 3
 * (state); NULL when the process is gone or the line is cut.  *comm
 * (when not NULL) gets comm's start in buf, its ')' made a NUL.
 */
const char *husk_proc_stat(pid_t pid, char *buf, size_t size, char **comm);
/* Field 22, starttime (clock ticks after boot): with the pid, what
 * tells a process from a later one given the same pid.  0 when gone. */
unsigned long long husk_proc_starttime(pid_t pid);
/* Field 3, the state letter (R, S, Z...); 0 when gone. */
char husk_proc_state(pid_t pid);

#endif
