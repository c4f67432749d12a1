/*
 * KVM or TCG.  A /dev/kvm alone is not enough: nested set-ups such as
 * kvm-pvm expose one that only runs paravirtualised guests and hangs a
 * Debian kernel, and those hosts show no vmx/svm flag.  So all four
 * must hold: the CPU flag, the device opens, the API version is 12, and
 * a VM can be created.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "accel.h"
#include "libhusk/cleanup.h"

/* Does a "flags" line of /proc/cpuinfo list vmx or svm? */
static bool cpu_has_virt(void)
{
	cleanup_fclose FILE *f = fopen("/proc/cpuinfo", "re");
	char line[8192];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *tok = strtok(line + 5, " \t\n:"); tok;
		     tok = strtok(NULL, " \t\n"))
			if (!strcmp(tok, "vmx") || !strcmp(tok, "svm"))
				return true;
		return false;
	}
	return false;
}

int husk_accel_detect(char *reason, size_t n)
{
	cleanup_close int kvm = -1;
	int vm, ver;

	if (!cpu_has_virt()) {
		snprintf(reason, n, "no vmx/svm flag in /proc/cpuinfo");
		return 0;
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		snprintf(reason, n, "open /dev/kvm: %s", strerror(errno));
		return 0;
	}
	ver = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		snprintf(reason, n, "KVM_GET_API_VERSION is %d, not %d", ver,
			 KVM_API_VERSION);
		return 0;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		snprintf(reason, n, "KVM_CREATE_VM: %s", strerror(errno));
		return 0;
	}
	close(vm);
	snprintf(reason, n, "vmx/svm present and /dev/kvm created a VM");
	return 1;
}
