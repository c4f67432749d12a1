/*
 * Confine itself with a small profile, then report from the inside:
 * prints the confinement lines of /proc/self/status and, with
 * --forbidden, calls getcwd(2), which the profile does not allow.
 *
 *   confine_probe [--caps none|net_admin] [--uid N] [--debug]
 *                 [--forbidden]
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libhusk/confine.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

static const char *const probe_syscalls[] = {
	/* fopen("/proc/self/status") */
	"openat",
	/* stdio on a terminal asks for its size */
	"ioctl",
	NULL,
};

static const int caps_net_admin[] = { CAP_NET_ADMIN, -1 };

static const struct husk_rlimit_rule probe_rlimits[] = {
	{ RLIMIT_CORE, 0, 0 },
	{ -1, 0, 0 },
};

static const char *const wanted[] = {
	"Uid:", "Gid:", "NoNewPrivs:", "Seccomp:", "CapInh:", "CapPrm:",
	"CapEff:", "CapBnd:", "CapAmb:", NULL,
};

static void usage(void)
{
	fprintf(stderr, "usage: confine_probe [--caps none|net_admin] "
			"[--uid N] [--debug] [--forbidden]\n");
	exit(100);
}

int main(int argc, char **argv)
{
	struct husk_profile p = {
		.name = "confine_probe",
		.syscalls = probe_syscalls,
		.caps = caps_net_admin,
		.rlimits = probe_rlimits,
	};
	struct husk_confine_opts o = { 0 };
	struct husk_err *err = NULL;
	bool forbidden = false;
	char line[256];
	FILE *f;

	for (int i = 1; i < argc; i++) {
		long long v;

		if (!strcmp(argv[i], "--caps") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "none"))
				p.caps = NULL;
			else if (strcmp(argv[i], "net_admin"))
				usage();
		} else if (!strcmp(argv[i], "--uid") && i + 1 < argc) {
			if (husk_parse_int(argv[++i], 0, 65535, &v) < 0)
				usage();
			o.set_ids = true;
			o.uid = (uid_t)v;
			o.gid = (gid_t)v;
		} else if (!strcmp(argv[i], "--debug")) {
			o.seccomp_debug = true;
		} else if (!strcmp(argv[i], "--forbidden")) {
			forbidden = true;
		} else {
			usage();
		}
	}
	husk_log_init("confine_probe", HUSK_LOG_INFO, HUSK_LOG_TEXT);
	if (husk_confine(&p, &o, &err) < 0) {
		fprintf(stderr, "confine_probe: %s\n", err->msg);
		return husk_err_exit_code(err);
	}
	f = fopen("/proc/self/status", "re");
	if (!f) {
		perror("confine_probe: /proc/self/status");
		return 111;
	}
	while (fgets(line, sizeof(line), f))
		for (const char *const *w = wanted; *w; w++)
			if (!strncmp(line, *w, strlen(*w)))
				fputs(line, stdout);
	fclose(f);
	fflush(stdout);
	if (forbidden) {
		char cwd[256];
		long r = syscall(SYS_getcwd, cwd, sizeof(cwd));

		printf("getcwd returned %ld (%s)\n", r,
		       r < 0 ? strerror(errno) : "allowed");
		fflush(stdout);
	}
	return 0;
}
