/*
 * Small kernel files and /proc/PID/stat (see proc.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "proc.h"
#include "util.h"

ssize_t husk_read_small(int dirfd, const char *path, char *buf,
			size_t size)
{
	cleanup_close int fd = -1;
	ssize_t n;

	if (size == 0)
		return -1;
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	n = husk_read_all(fd, buf, size - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

const char *husk_proc_stat(pid_t pid, char *buf, size_t size, char **comm)
{
	char path[64], *open, *close;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (husk_read_small(AT_FDCWD, path, buf, size) <= 0)
		return NULL;
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (!open || !close || close < open || close[1] != ' ')
		return NULL;
	*close = '\0';
	if (comm)
		*comm = open + 1;
	return close + 2;
}

unsigned long long husk_proc_starttime(pid_t pid)
{
	unsigned long long start;
	const char *f;
	char buf[1024];

	f = husk_proc_stat(pid, buf, sizeof(buf), NULL);
	/* state is field 3; starttime is field 22. */
	if (!f || sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%*u %*u %*d %*d %*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

char husk_proc_state(pid_t pid)
{
	const char *f;
	char buf[1024];

	f = husk_proc_stat(pid, buf, sizeof(buf), NULL);
	return f ? f[0] : 0;
}
