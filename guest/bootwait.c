/*
 * bootwait: start a VM and time it until its agent channel speaks.
 *
 *   bootwait [-c] [-t SECONDS] [-o FILE] SOCKET -- COMMAND [ARG...]
 *
 * Runs COMMAND (QEMU), connects to the unix socket SOCKET that QEMU
 * serves the agent's virtio-serial port on (server=on,wait=off), and
 * prints the wall seconds from just before COMMAND started until the
 * first byte arrived.  Everything read from the socket until the guest
 * closes it (powers off) goes to FILE.  Waits for COMMAND to exit; on
 * timeout (default 60 s) COMMAND is killed.  With -c, a second field
 * gives the CPU seconds COMMAND had used by then: under TCG the boot is
 * CPU-bound, so that figure stays comparable on a busy host where wall
 * time does not.
 *
 * Exit status: 0 a byte arrived and COMMAND exited 0; 1 no byte or
 * COMMAND failed; 100 usage; 111 a system call failed.
 *
 * A C helper rather than a shell pipeline: the measurement needs
 * millisecond resolution and must connect as soon as QEMU creates the
 * socket, and the build machine has no socat.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bootwait [-c] [-t SECONDS] [-o FILE] SOCKET "
	    "-- COMMAND [ARG...]\n");
	exit(100);
}

/* utime + stime of all of pid's threads, in seconds; -1 if unknown. */
static double
cpu_seconds(pid_t pid)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: skip past the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u "
	    "%*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* Milliseconds left until deadline, at least 0, for poll(). */
static int
left_ms(double deadline)
{
	double l = deadline - now();

	return l > 0 ? (int)(l * 1000) + 1 : 0;
}

int
main(int argc, char **argv)
{
	const char *sock, *outpath = NULL;
	double timeout = 60, t0, deadline, t_byte = -1, cpu = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int c, fd = -1, out = -1, status = 0, exited = 0, rc, want_cpu = 0;
	char buf[4096];
	pid_t pid;
	ssize_t n;

	while ((c = getopt(argc, argv, "+ct:o:")) != -1) {
		switch (c) {
		case 'c':
			want_cpu = 1;
			break;
		case 't':
			timeout = strtod(optarg, NULL);
			if (timeout <= 0)
				usage();
			break;
		case 'o':
			outpath = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--") != 0)
		usage();
	sock = argv[optind];
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "bootwait: socket path too long: %s\n", sock);
		return 100;
	}
	strcpy(sa.sun_path, sock);
	if (outpath != NULL) {
		out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
		if (out < 0) {
			fprintf(stderr, "bootwait: open %s: %s\n", outpath,
			    strerror(errno));
			return 111;
		}
	}
	unlink(sock);

	t0 = now();
	deadline = t0 + timeout;
	pid = fork();
	if (pid < 0) {
		perror("bootwait: fork");
		return 111;
	}
	if (pid == 0) {
		/* Do not leave a VM running if the caller kills us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(argv[optind + 2], argv + optind + 2);
		fprintf(stderr, "bootwait: exec %s: %s\n", argv[optind + 2],
		    strerror(errno));
		_exit(127);
	}

	/* QEMU creates the socket a few tens of ms after it starts. */
	while (now() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			break;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			perror("bootwait: socket");
			kill(pid, SIGKILL);
			return 111;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(fd);
		fd = -1;
		if (errno != ENOENT && errno != ECONNREFUSED) {
			fprintf(stderr, "bootwait: connect %s: %s\n", sock,
			    strerror(errno));
			break;
		}
		usleep(1000);
	}

	while (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		rc = poll(&p, 1, left_ms(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;      /* timeout */
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;      /* the guest powered off */
		if (t_byte < 0) {
			t_byte = now();
			if (want_cpu)
				cpu = cpu_seconds(pid);
		}
		if (out >= 0 && write(out, buf, n) != n) {
			perror("bootwait: write");
			break;
		}
	}
	if (fd >= 0)
		close(fd);

	while (!exited) {
		rc = waitpid(pid, &status, WNOHANG);
		if (rc == pid)
			break;
		if (rc < 0) {
			perror("bootwait: waitpid");
			break;
		}
		if (now() >= deadline) {
			fprintf(stderr, "bootwait: timeout after %.0f s, "
			    "killing the VM\n", timeout);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(10000);
	}

	if (t_byte < 0) {
		fprintf(stderr, "bootwait: no byte on %s\n", sock);
		return 1;
	}
	if (want_cpu)
		printf("%.3f %.2f\n", t_byte - t0, cpu);
	else
		printf("%.3f\n", t_byte - t0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bootwait: VM command ended with status %#x\n",
		    status);
		return 1;
	}
	return 0;
}
