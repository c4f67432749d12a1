/*
 * list_processes: process records read from /proc in the guest, which
 * has no ps.  Declared in cgroup.h (the pids come from cg_pids).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/proc.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "agent/cgroup.h"


struct procrec {
	pid_t pid, ppid;
	uint32_t uid, gid;
	int tty;                /* tty_nr: the controlling terminal, 0 none */
	uint64_t start;         /* seconds since the epoch */
	uint64_t cpu_ms;        /* user + system */
	uint64_t vsz_kb, rss_kb;
	char state[2];
	char comm[64];
	char *cmdline;          /* NUL-separated */
	size_t cmdlen;
};

/* The guest's boot time (seconds since the epoch), for start times. */
static uint64_t boot_time(void)
{
	cleanup_free char *st = NULL;
	unsigned long long bt;
	const char *b;

	if (husk_read_file(AT_FDCWD, "/proc/stat", 1u << 20, &st, NULL,
			   NULL) < 0)
		return 0;
	b = strstr(st, "\nbtime ");
	if (!b || sscanf(b + 7, "%llu", &bt) != 1)
		return 0;
	return bt;
}

static int proc_read(pid_t pid, uint64_t btime, struct procrec *p)
{
	char path[64], buf[4096], *comm;
	cleanup_free char *status = NULL;
	const char *f;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	f = husk_proc_stat(pid, buf, sizeof(buf), &comm);
	if (!f)
		return -1;
	snprintf(p->comm, sizeof(p->comm), "%s", comm);
	{
		unsigned long long ut = 0, stt = 0, start = 0, vsz = 0;
		long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
		long rss = 0;
		char st;
		int ppid, tty = 0;

		if (sscanf(f, "%c %d", &st, &ppid) != 2)
			return -1;
		p->state[0] = st;
		p->ppid = ppid;
		/* Fields 7 (tty_nr), 14-15 (utime, stime), 22-24 (starttime,
		 * vsize, rss) of proc(5); older kernels' short lines leave
		 * them 0. */
		if (sscanf(f, "%*c %*d %*d %*d %d %*d %*u %*u %*u %*u "
			   "%*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu "
			   "%ld", &tty, &ut, &stt, &start, &vsz, &rss) == 6 &&
		    hz > 0) {
			p->tty = tty;
			p->cpu_ms = (ut + stt) * 1000 / (unsigned long long)hz;
			p->start = btime + start / (unsigned long long)hz;
			p->vsz_kb = vsz / 1024;
			p->rss_kb = rss > 0 && page > 0 ?
				    (uint64_t)rss * (uint64_t)page / 1024 : 0;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (husk_read_file(AT_FDCWD, path, 1u << 16, &status, NULL, NULL) == 0) {
		const char *u = strstr(status, "\nUid:");
		const char *g = strstr(status, "\nGid:");
		unsigned ru, eu;

		/* The effective ids, as ps shows them. */
		if (u && sscanf(u + 5, "%u %u", &ru, &eu) == 2)
			p->uid = eu;
		if (g && sscanf(g + 5, "%u %u", &ru, &eu) == 2)
			p->gid = eu;
	}
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (husk_read_file(AT_FDCWD, path, 1u << 17, &p->cmdline, &p->cmdlen,
			   NULL) < 0) {
		p->cmdline = NULL;
		p->cmdlen = 0;
	}
	return 0;
}

static void pack_args(msgpack_packer *pk, const char *s, size_t len)
{
	uint32_t n = 0;

	for (size_t i = 0; i < len; i += strlen(s + i) + 1)
		n++;
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < len; i += strlen(s + i) + 1)
		ipc_pack_str(pk, s + i);
}

int procinfo_pack(msgpack_packer *pk, const pid_t *pids, size_t n)
{
	struct procrec *recs = husk_xcalloc(n ? n : 1, sizeof(*recs));
	uint64_t btime = boot_time();
	size_t have = 0;

	/* Read first: processes that exited meanwhile are left out. */
	for (size_t i = 0; i < n; i++)
		if (proc_read(pids[i], btime, &recs[have]) == 0)
			have++;
		else
			free(recs[have].cmdline);
	msgpack_pack_array(pk, (uint32_t)have);
	for (size_t i = 0; i < have; i++) {
		struct procrec *p = &recs[i];

		msgpack_pack_map(pk, 12);
		ipc_pack_kv_int(pk, "pid", p->pid);
		ipc_pack_kv_int(pk, "ppid", p->ppid);
		ipc_pack_kv_uint(pk, "uid", p->uid);
		ipc_pack_kv_uint(pk, "gid", p->gid);
		ipc_pack_kv_str(pk, "state", p->state);
		ipc_pack_kv_str(pk, "comm", p->comm);
		ipc_pack_kv_int(pk, "tty", p->tty);
		ipc_pack_kv_uint(pk, "start", p->start);
		ipc_pack_kv_uint(pk, "cpu_ms", p->cpu_ms);
		ipc_pack_kv_uint(pk, "vsz_kb", p->vsz_kb);
		ipc_pack_kv_uint(pk, "rss_kb", p->rss_kb);
		ipc_pack_key(pk, "args");
		pack_args(pk, p->cmdline ? p->cmdline : "", p->cmdlen);
		free(p->cmdline);
	}
	free(recs);
	return 0;
}
