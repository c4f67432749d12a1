/*
 * Confine itself with a small profile, then report from the inside:
 * prints the confinement lines of /proc/self/status and, with
 * --forbidden, calls getcwd(2), which the profile does not allow.
 * The other calls test argument rules and the architecture check: each
 * prints what it returned if it survives.
 *
 *   confine_probe [--caps none|net_admin] [--uid N] [--debug]
 *                 [--forbidden] [--socket unix|inet]
 *                 [--ioctl winsz|sti] [--map data|exec]
 *                 [--arch i386|x32] [--unconfined]
 *
 * --unconfined skips the confinement: what the kernel itself does with
 * the call (a kernel without the i386 ABI faults int 0x80: SIGSEGV).
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libhusk/confine.h"
#include "libhusk/log.h"
#include "libhusk/util.h"

static const char *const probe_syscalls[] = {
	/* fopen("/proc/self/status") */
	"openat",
	NULL,
};

static const struct husk_arg_rule probe_args[] = {
	/* stdio asks whether a descriptor is a terminal; the window size */
	{ "ioctl", 1, HUSK_ARG_EQ, TCGETS, 0 },
	{ "ioctl", 1, HUSK_ARG_EQ, TIOCGWINSZ, 0 },
	/* unix sockets only */
	{ "socket", 0, HUSK_ARG_EQ, AF_UNIX, 0 },
	HUSK_ARGS_NO_EXEC_MAPPINGS,
	{ NULL, 0, 0, 0, 0 },
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
			"[--uid N] [--debug] [--forbidden] "
			"[--socket unix|inet] [--ioctl winsz|sti] "
			"[--map data|exec] [--arch i386|x32] [--unconfined]\n");
	exit(100);
}

static void report(const char *what, long r)
{
	printf("%s returned %ld (%s)\n", what, r,
	       r < 0 ? strerror(errno) : "allowed");
	fflush(stdout);
}

static void try_socket(const char *fam)
{
	int s = socket(!strcmp(fam, "unix") ? AF_UNIX : AF_INET,
		       SOCK_STREAM | SOCK_CLOEXEC, 0);

	report("socket", s);
}

static void try_ioctl(const char *req)
{
	struct winsize ws;
	char c = 'x';

	if (!strcmp(req, "winsz"))
		report("ioctl", ioctl(0, TIOCGWINSZ, &ws));
	else
		report("ioctl", ioctl(0, TIOCSTI, &c));
}

static void try_map(const char *kind)
{
	int prot = PROT_READ | PROT_WRITE;
	void *m;

	if (!strcmp(kind, "exec"))
		prot |= PROT_EXEC;
	m = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	report("mmap", m == MAP_FAILED ? -1 : 0);
	m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m != MAP_FAILED)
		report("mprotect", mprotect(m, 4096, prot));
}

/* getpid through another ABI: i386's int 0x80 (number 20), or the x32
 * bit on x86-64's number. */
static void try_arch(const char *arch)
{
	long r = -1;

#if defined(__x86_64__)
	if (!strcmp(arch, "i386")) {
		long nr = 20;

		__asm__ volatile("int $0x80" : "+a"(nr) : : "memory");
		r = nr;
	} else {
		r = syscall(0x40000000L | SYS_getpid);
	}
#else
	(void)arch;
	errno = ENOSYS;
#endif
	report("foreign syscall", r);
}

int main(int argc, char **argv)
{
	struct husk_profile p = {
		.name = "confine_probe",
		.syscalls = probe_syscalls,
		.allow_args = probe_args,
		.caps = caps_net_admin,
		.rlimits = probe_rlimits,
	};
	struct husk_confine_opts o = { 0 };
	struct husk_err *err = NULL;
	bool forbidden = false, unconfined = false;
	const char *sock = NULL, *req = NULL, *map = NULL, *arch = NULL;
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
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--ioctl") && i + 1 < argc) {
			req = argv[++i];
		} else if (!strcmp(argv[i], "--map") && i + 1 < argc) {
			map = argv[++i];
		} else if (!strcmp(argv[i], "--arch") && i + 1 < argc) {
			arch = argv[++i];
		} else if (!strcmp(argv[i], "--unconfined")) {
			unconfined = true;
		} else {
			usage();
		}
	}
	husk_log_init("confine_probe", HUSK_LOG_INFO, HUSK_LOG_TEXT);
	if (!unconfined && husk_confine(&p, &o, &err) < 0) {
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

		report("getcwd", r);
	}
	if (sock)
		try_socket(sock);
	if (req)
		try_ioctl(req);
	if (map)
		try_map(map);
	if (arch)
		try_arch(arch);
	return 0;
}
