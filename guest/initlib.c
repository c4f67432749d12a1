/*
 * guest/initlib.c: sleeping, module loading and port lookup for the
 * guest's stand-in inits (see initlib.h).  Built into each, static.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "initlib.h"

void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
load_modules(const char *who)
{
	char path[256];
	FILE *f;
	int fd;

	f = fopen("/lib/modules/load-order", "re");
	if (f == NULL) {
		say("%s: /lib/modules/load-order: %s\n", who, strerror(errno));
		return;
	}
	while (fgets(path, sizeof(path), f) != NULL) {
		path[strcspn(path, "\n")] = '\0';
		if (path[0] == '\0')
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			say("%s: open %s: %s\n", who, path, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			say("%s: finit_module %s: %s\n", who, path,
			    strerror(errno));
		close(fd);
	}
	fclose(f);
}

int
find_port_dev(const char *want, char *dev, size_t devlen)
{
	char path[300], name[64];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int fd;

	d = opendir("/sys/class/virtio-ports");
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name",
			 de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, name, sizeof(name) - 1);
		close(fd);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, want) == 0) {
			snprintf(dev, devlen, "/dev/%s", de->d_name);
			closedir(d);
			return 0;
		}
	}
	if (d != NULL)
		closedir(d);
	return -1;
}
