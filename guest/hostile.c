/*
 * hostile: a guest that attacks its host, for tests/bats/hostile-vm.bats
 * (docs/hostile-guest.md).  Packed as /init of initrd-hostile.img.
 *
 * It does what the agent does first (modules, /proc, /sys, /dev, the
 * agent.channel.0 port), then speaks just enough of the agent protocol
 * (docs/agent-protocol.md) to pass for an agent: it answers the hello,
 * ping, create_sandbox, create_container and the other requests with
 * plausible results, never answers wait_process, and answers
 * get_guest_details and online_cpu_mem with absurd numbers.
 *
 * The attacks, each started either by the request
 *
 *     hostile {attack: str, count: uint?, each: uint?, size: uint?,
 *              streams: uint?}                 (answered {} first)
 *
 * sent through the proxy (which forwards methods it does not know), or
 * at boot by husk.attack=NAME[:COUNT] on the kernel command line
 * (started after the first hello is answered; console-flood at once):
 *
 *   console-flood   COUNT MiB (default 64) on /dev/console, from a child
 *                   process, so requests are still answered meanwhile;
 *                   the request {attack: "flood-wait"} is answered when
 *                   it is over
 *   output-flood    `output` notifications for COUNT (default 10000)
 *                   made-up processes ghost-N: EACH rounds (1) of an
 *                   output of SIZE bytes (1) on each of STREAMS (1 or 2)
 *   garbage         a frame whose payload is not MessagePack
 *   oversize        a frame header announcing 4 GiB - 16 bytes
 *   bad-reply       a response to a msgid the host never used
 *   request         a request of its own to the host (destroy_sandbox)
 *   storm           on each of the next COUNT (default 50) connections,
 *                   answers the hello and then sends garbage, so the
 *                   host drops and reconnects at once
 *   port-storm      closes and reopens the port COUNT (default 200)
 *                   times: each is a VSERPORT_CHANGE event for QEMU's
 *                   QMP client
 *
 * Progress goes to the console as lines starting "hostile: ".
 * Built with gcc -static (guest/guest.mk): there is no libc in the image.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostile.h"

#define PORT_NAME	"agent.channel.0"
#define FRAME_MAX	(4u << 20)
#define WRITE_WAIT_MS	5000

static int console = -1;
static int port = -1;
static char port_dev[300];

void
say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || console < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(console, buf, n) < 0)
		return;
}

/* ------------------------------------------------------------------ */
/* Boot: what PID 1 must do before there is a port                     */

static void
boot(void)
{
	mkdir("/dev", 0755);
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mount("dev", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	console = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	load_modules("hostile");
}

/* The port appears some time after virtio_console loads, and may fail
 * with ENXIO for a moment after its node appears. */
static int
open_port(long timeout_ms)
{
	long waited;
	int fd;

	for (waited = 0; waited <= timeout_ms; waited += 10) {
		if (find_port_dev(PORT_NAME, port_dev, sizeof(port_dev)) == 0) {
			fd = open(port_dev, O_RDWR | O_NONBLOCK | O_NOCTTY |
				  O_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
		sleep_ms(10);
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* The port                                                            */

/* Write it all, waiting while the virtqueue is full; fails once the
 * host is gone. */
static int
port_write(const void *p, size_t n)
{
	const uint8_t *c = p;
	struct pollfd pfd = { .fd = port, .events = POLLOUT };

	while (n > 0) {
		ssize_t w = write(port, c, n);

		if (w > 0) {
			c += w;
			n -= w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (poll(&pfd, 1, WRITE_WAIT_MS) <= 0 ||
		    (pfd.revents & (POLLHUP | POLLERR)))
			return -1;
	}
	return 0;
}

static int
send_buf(struct buf *b)
{
	int rc = port_write(b->p, b->len);

	b->len = 0;
	return rc;
}

static void
reply(uint32_t msgid, void (*result)(struct buf *, void *), void *arg)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);

	put_hdr(&b, 0x90, 4);
	put_uint(&b, 1);
	put_uint(&b, msgid);
	put_nil(&b);
	if (result)
		result(&b, arg);
	else
		put_hdr(&b, 0x80, 0);
	frame_end(&b, s);
	send_buf(&b);
	free(b.p);
}

/* An `invalid` error (docs/protocol.md), for a test that asked for an
 * attack there is not. */
static void
reply_invalid(uint32_t msgid, const char *what, size_t n)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);
	char msg[128];

	snprintf(msg, sizeof(msg), "params.attack: no attack '%.*s'",
		 (int)(n > 64 ? 64 : n), what);
	put_hdr(&b, 0x90, 4);
	put_uint(&b, 1);
	put_uint(&b, msgid);
	put_hdr(&b, 0x80, 2);
	put_str(&b, "code");
	put_uint(&b, 2);
	put_str(&b, "message");
	put_str(&b, msg);
	put_nil(&b);
	frame_end(&b, s);
	send_buf(&b);
	free(b.p);
}

/* ------------------------------------------------------------------ */
/* Attacks                                                             */

static const char *const attacks[] = {
	"console-flood", "output-flood", "garbage", "oversize", "bad-reply",
	"request", "storm", "port-storm", NULL,
};

static int
known_attack(const char *name, size_t n)
{
	for (size_t i = 0; attacks[i]; i++)
		if (n == strlen(attacks[i]) && memcmp(name, attacks[i], n) == 0)
			return 1;
	return 0;
}

static unsigned storm_left;
static pid_t flood_pid = -1;
static int64_t flood_waiter = -1;	/* msgid of a flood-wait, or -1 */

static void
console_flood(uint64_t mib)
{
	static char line[1024];

	if (flood_pid > 0) {
		say("hostile: console flood already running\n");
		return;
	}
	flood_pid = fork();
	if (flood_pid != 0)
		return;
	memset(line, 'F', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	say("hostile: console flood of %llu MiB\n", (unsigned long long)mib);
	for (uint64_t i = 0; i < mib * 1024; i++)
		if (write(console, line, sizeof(line)) < 0)
			break;
	say("\nhostile: console flood done\n");
	_exit(0);
}

/* Shape of an output flood (the hostile request's other keys). */
static struct {
	uint64_t each;		/* outputs per process and stream (1) */
	uint64_t size;		/* bytes per output (1, at most 65536) */
	uint64_t streams;	/* 1: stdout only, 2: stdout and stderr */
} flood = { 1, 1, 1 };

/* Round after round, one output of each made-up process's streams in
 * turn, as many processes writing at once would send. */
static void
output_flood(uint64_t count)
{
	static const char data[65536];
	uint64_t size = flood.size < 1 ? 1 : flood.size > 65536 ? 65536 :
			flood.size;
	uint64_t streams = flood.streams == 2 ? 2 : 1, sent = 0;
	uint64_t total = count * (flood.each ? flood.each : 1) * streams;
	struct buf b = { 0 };
	char id[32];
	int failed = 0;

	say("hostile: output flood: %llu processes x %llu x %llu bytes x "
	    "%llu streams\n", (unsigned long long)count,
	    (unsigned long long)flood.each, (unsigned long long)size,
	    (unsigned long long)streams);
	for (uint64_t r = 0; r < (flood.each ? flood.each : 1) && !failed; r++)
		for (uint64_t i = 0; i < count * streams && !failed; i++) {
			size_t s = frame_begin(&b);

			snprintf(id, sizeof(id), "ghost-%llu",
				 (unsigned long long)(i / streams));
			put_hdr(&b, 0x90, 3);
			put_uint(&b, 2);
			put_str(&b, "output");
			put_hdr(&b, 0x80, 4);
			put_str(&b, "container_id");
			put_str(&b, id);
			put_str(&b, "exec_id");
			put_str(&b, "");
			put_str(&b, "stream");
			put_uint(&b, 1 + i % streams);
			put_str(&b, "data");
			put_be(&b, 0xc6, size, 4);
			put(&b, data, size);
			frame_end(&b, s);
			sent++;
			if (b.len >= 65536 && send_buf(&b) < 0)
				failed = 1;
		}
	if (!failed && b.len && send_buf(&b) < 0)
		failed = 1;
	free(b.p);
	/* what a failed write held is lost with the connection */
	say("hostile: output flood sent %llu of %llu%s\n",
	    (unsigned long long)sent, (unsigned long long)total,
	    failed ? " (cut off)" : "");
}

static void
garbage(void)
{
	static const uint8_t g[] = { 0, 0, 0, 8, 0xc1, 0xc1, 0xc1, 0xc1,
				     0xff, 0x00, 0x13, 0x37 };

	say("hostile: garbage frame\n");
	port_write(g, sizeof(g));
}

static void
oversize(void)
{
	static uint8_t g[4 + 4096] = { 0xff, 0xff, 0xff, 0xf0 };

	say("hostile: oversized frame\n");
	port_write(g, sizeof(g));
}

static void
bad_reply(void)
{
	struct buf b = { 0 };

	say("hostile: reply to msgid 3141592653\n");
	for (int i = 0; i < 2; i++) {
		size_t s = frame_begin(&b);

		put_hdr(&b, 0x90, 4);
		put_uint(&b, 1);
		put_uint(&b, i ? 0 : 3141592653u);
		put_nil(&b);
		put_hdr(&b, 0x80, 0);
		frame_end(&b, s);
	}
	send_buf(&b);
	free(b.p);
}

/* The guest calls the host, as if it were one of the proxy's clients:
 * methods that would end the sandbox, or speak for a shim. */
static void
request(void)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);

	say("hostile: request destroy_sandbox from the guest\n");
	put_hdr(&b, 0x90, 4);
	put_uint(&b, 0);
	put_uint(&b, 7);
	put_str(&b, "destroy_sandbox");
	put_hdr(&b, 0x80, 1);
	put_str(&b, "poweroff");
	put(&b, "\xc3", 1);
	frame_end(&b, s);
	send_buf(&b);
	free(b.p);
}

static void
port_storm(uint64_t count)
{
	uint64_t i;

	say("hostile: port storm of %llu\n", (unsigned long long)count);
	for (i = 0; i < count; i++) {
		close(port);
		port = open(port_dev, O_RDWR | O_NONBLOCK | O_NOCTTY |
			    O_CLOEXEC);
		if (port < 0) {
			port = open_port(10000);
			if (port < 0) {
				say("hostile: port gone\n");
				break;
			}
		}
	}
	say("hostile: port storm done (%llu)\n", (unsigned long long)i);
}

static int
attack(const char *name, size_t n, uint64_t count)
{
#define IS(s) (n == strlen(s) && memcmp(name, s, n) == 0)
	if (IS("console-flood"))
		console_flood(count ? count : 64);
	else if (IS("output-flood"))
		output_flood(count ? count : 10000);
	else if (IS("garbage"))
		garbage();
	else if (IS("oversize"))
		oversize();
	else if (IS("bad-reply"))
		bad_reply();
	else if (IS("request"))
		request();
	else if (IS("storm")) {
		storm_left = count ? count : 50;
		say("hostile: storm of %u connections\n", storm_left);
		garbage();
		storm_left--;
	} else if (IS("port-storm"))
		port_storm(count ? count : 200);
	else {
		say("hostile: unknown attack %.*s\n", (int)n, name);
		return -1;
	}
	return 0;
#undef IS
}

/* ------------------------------------------------------------------ */
/* The agent's part                                                    */

static void
hello_result(struct buf *b, void *arg)
{
	(void)arg;
	put_hdr(b, 0x80, 2);
	put_str(b, "version");
	put_uint(b, 1);
	put_str(b, "component");
	put_str(b, "husk-agent");
}

static void
pid_result(struct buf *b, void *arg)
{
	(void)arg;
	put_hdr(b, 0x80, 1);
	put_str(b, "pid");
	put_uint(b, 1);
}

/* Numbers no guest has, next to the limits of the host's integer types,
 * and text with terminal escapes and newlines. */
static void
absurd_result(struct buf *b, void *arg)
{
	static const char *const keys[] = {
		"mem_block_size", "online_cpus", "mem_total_kb",
		"mem_online_kb",
	};

	(void)arg;
	put_hdr(b, 0x80, 8);
	for (size_t i = 0; i < 4; i++) {
		put_str(b, keys[i]);
		put_uint(b, i % 2 ? INT64_MAX : UINT64_MAX);
	}
	put_str(b, "kernel");
	put_str(b, "6.6.6\x1b[2J\r\nhusk: all is well\x07");
	put_str(b, "agent_version");
	put_str(b, "hostile");
	put_str(b, "cgroup");
	put_str(b, "v9");
	put_str(b, "host_mode");
	put_uint(b, 7);
}

/* OOM kills: a count that jumps by 2^40 at every call, answered at
 * once. */
static void
oom_result(struct buf *b, void *arg)
{
	static uint64_t kills;

	(void)arg;
	kills += 1ull << 40;
	put_hdr(b, 0x80, 1);
	put_str(b, "oom_kills");
	put_uint(b, kills);
}

static char boot_attack[64];
static uint64_t boot_count;
static int hellos;

static void
handle_request(uint32_t msgid, const char *m, size_t mlen, struct rd *params)
{
	const char *name = NULL;
	size_t nlen = 0;
	uint64_t count = 0;
#define IS(s) (mlen == strlen(s) && memcmp(m, s, mlen) == 0)

	if (IS("hello")) {
		reply(msgid, hello_result, NULL);
		hellos++;
		say("hostile: hello %d\n", hellos);
		if (storm_left > 0) {
			storm_left--;
			garbage();
			if (storm_left == 0)
				say("hostile: storm done\n");
		} else if (hellos == 1 && boot_attack[0] &&
			   strcmp(boot_attack, "console-flood") != 0)
			attack(boot_attack, strlen(boot_attack), boot_count);
	} else if (IS("get_guest_details") || IS("online_cpu_mem")) {
		reply(msgid, absurd_result, NULL);
	} else if (IS("create_container") || IS("exec_process")) {
		reply(msgid, pid_result, NULL);
	} else if (IS("wait_process")) {
		/* never answered: the process runs for ever */
	} else if (IS("wait_oom")) {
		reply(msgid, oom_result, NULL);
	} else if (IS("hostile")) {
		uint32_t n = rd_count(params, 0x80, 0xde);

		flood.each = flood.size = flood.streams = 1;

		while (params->p && n--) {
			size_t klen;
			const char *k = rd_str(params, &klen);

			if (k && klen == 6 && !memcmp(k, "attack", 6))
				name = rd_str(params, &nlen);
			else if (k && klen == 5 && !memcmp(k, "count", 5))
				count = rd_uint(params);
			else if (k && klen == 4 && !memcmp(k, "each", 4))
				flood.each = rd_uint(params);
			else if (k && klen == 4 && !memcmp(k, "size", 4))
				flood.size = rd_uint(params);
			else if (k && klen == 7 && !memcmp(k, "streams", 7))
				flood.streams = rd_uint(params);
			else
				rd_skip(params, 1);
		}
		if (name && nlen == 10 && !memcmp(name, "flood-wait", 10)) {
			/* answered once the console flood is over: the
			 * console itself may no longer say so */
			if (flood_pid > 0)
				flood_waiter = msgid;
			else
				reply(msgid, NULL, NULL);
			return;
		}
		if (name && !known_attack(name, nlen)) {
			reply_invalid(msgid, name, nlen);
			return;
		}
		reply(msgid, NULL, NULL);
		if (name)
			attack(name, nlen, count);
	} else {
		reply(msgid, NULL, NULL);
	}
#undef IS
}

static void
handle_frame(const uint8_t *p, size_t n)
{
	struct rd r = { p, p + n };
	uint32_t len = rd_count(&r, 0x90, 0xdc);
	uint64_t type = rd_uint(&r), msgid;
	const char *m;
	size_t mlen;

	/* Requests only: the host's notifications (output_ack) and our
	 * own made-up state need no answer. */
	if (r.p == NULL || len != 4 || type != 0)
		return;
	msgid = rd_uint(&r);
	m = rd_str(&r, &mlen);
	if (r.p == NULL)
		return;
	handle_request(msgid, m, mlen, &r);
}

static void
read_cmdline(void)
{
	char buf[4096], *t, *save = NULL;
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (t = strtok_r(buf, " \t\n", &save); t;
	     t = strtok_r(NULL, " \t\n", &save)) {
		char *c;

		if (strncmp(t, "husk.attack=", 12) != 0)
			continue;
		snprintf(boot_attack, sizeof(boot_attack), "%s", t + 12);
		c = strchr(boot_attack, ':');
		if (c) {
			*c = '\0';
			boot_count = strtoull(c + 1, NULL, 10);
		}
	}
}

int
main(void)
{
	static uint8_t in[FRAME_MAX + 4];
	size_t have = 0;

	boot();
	signal(SIGPIPE, SIG_IGN);
	read_cmdline();
	say("hostile: up, boot attack '%s'\n", boot_attack);
	if (strcmp(boot_attack, "console-flood") == 0)
		attack(boot_attack, strlen(boot_attack), boot_count);
	port = open_port(30000);
	if (port < 0) {
		say("hostile: no %s port\n", PORT_NAME);
		for (;;)
			pause();
	}
	say("hostile: serving on %s\n", port_dev);
	for (;;) {
		struct pollfd pfd = { .fd = port, .events = POLLIN };
		ssize_t n;
		pid_t dead;

		while ((dead = waitpid(-1, NULL, WNOHANG)) > 0)
			if (dead == flood_pid) {
				flood_pid = -1;
				if (flood_waiter >= 0)
					reply(flood_waiter, NULL, NULL);
				flood_waiter = -1;
			}
		if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
			sleep_ms(50);
		if (!(pfd.revents & POLLIN)) {
			/* No host (POLLHUP): what was half read is gone. */
			if (pfd.revents & POLLHUP) {
				have = 0;
				sleep_ms(20);
			}
			continue;
		}
		n = read(port, in + have, sizeof(in) - have);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				have = 0;
			if (n == 0)
				sleep_ms(20);
			continue;
		}
		have += n;
		for (;;) {
			uint32_t len;

			if (have < 4)
				break;
			len = (uint32_t)in[0] << 24 | in[1] << 16 |
			      in[2] << 8 | in[3];
			if (len > FRAME_MAX) {
				have = 0;	/* the host is trusted */
				break;
			}
			if (have < 4 + (size_t)len)
				break;
			handle_frame(in + 4, len);
			memmove(in, in + 4 + len, have - 4 - len);
			have -= 4 + len;
		}
	}
}
