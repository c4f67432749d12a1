/*
 * hv_bench: time from `start` (husk-hypervisor) to the guest agent
 * answering a ping, per machine type, next to QEMU started directly
 * with the same command line in the same run; the driver's PSS; and
 * (q35, agent image) a 128 MiB DIMM plugged and unplugged again.
 *
 *   hv_bench [runs]          (BUILD names the build directory;
 *                            HV_BENCH_KERNEL and HV_BENCH_INITRD an
 *                            agent image other than the build's)
 *   hv_bench boot OPTIONS    bare boot of a sandbox's configuration
 *                            (boot_main), for bench/husk.sh
 *
 * Uses build/guest/initrd.img when its init is husk-agent, else the
 * test init (then "answering" is its READY on the channel).  Linked
 * with the driver's archive for the command line and the spawn helper.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hypervisor-drv/hv.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"

static char build[PATH_MAX], guest[PATH_MAX + 8], initrd[PATH_MAX + 32], tmp[64];
static char kernel[PATH_MAX + 32];
static bool agent;

static double now(void)
{
	return husk_now_ns() / 1e9;
}

/* Until the guest answers on the channel: a ping to the agent, or the
 * test init's READY. */
static int wait_guest(const char *sock)
{
	struct husk_err *e = NULL;

	if (agent) {
		struct ipc_client cl;
		struct ipc_msg resp;
		int rc;

		if (ipc_client_connect(&cl, sock, "husk-ipc", NULL, 60000,
				       &e) < 0)
			goto fail;
		msgpack_pack_map(ipc_client_begin(&cl, AGENT_M_PING), 0);
		rc = ipc_client_call(&cl, 60000, NULL, 0, &resp, &e);
		if (rc == 0)
			ipc_msg_free(&resp);
		ipc_client_close(&cl);
		if (rc < 0)
			goto fail;
		return 0;
	} else {
		int fd = ipc_connect_path(sock, 60000, &e);
		char buf[8];

		if (fd < 0)
			goto fail;
		if (read(fd, buf, sizeof(buf)) <= 0) {
			close(fd);
			return -1;
		}
		close(fd);
		return 0;
	}
fail:
	fprintf(stderr, "hv_bench: %s\n", e->msg);
	husk_err_free(e);
	return -1;
}

static struct hv_config config(int machine, const char *dir)
{
	struct hv_config c = {
		.kernel = husk_xstrdup(kernel),
		.initrd = husk_xstrdup(initrd),
		.agent_socket = husk_xasprintf("%s/agent.sock", dir),
		.vcpus = 1, .max_vcpus = 1, .memory_mb = 256,
		.max_memory_mb = 256, .machine = machine,
		.accel = HV_ACCEL_TCG,
		.pci_ports = machine == HV_MACHINE_Q35 ? 4 : 0,
	};

	c.tsc_khz = hv_host_tsc_khz(machine);    /* as the driver's create */
	return c;
}

/* A listening unix socket at path, as the driver makes them. */
static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1) < 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void kill_wait(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/*
 * QEMU started directly with the driver's command line for c, the
 * descriptors at the numbers the driver puts them (QMP, the listening
 * agent socket, virtiofsd's when c shares a directory): seconds from
 * QEMU's start (virtiofsd's, when shared) to the guest's answer, or -1.
 */
static double bare_boot(const struct hv_config *c)
{
	struct hv_paths p = {
		.qemu = "/usr/bin/qemu-system-x86_64",
		.virtiofsd = "/usr/lib/qemu/virtiofsd",
		.bios = "/usr/share/qemu/qboot.rom",
	};
	struct husk_err *e = NULL;
	char **argv = hv_qemu_argv(c, &p), vsock[sizeof(tmp) + 16];
	int sp[2] = { -1, -1 }, fds[3], nfds = 0, vfs_fd = -1;
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int agent_fd = listen_at(c->agent_socket);
	pid_t pid = -1, vpid = -1;
	double t0 = now(), t = -1;

	if (agent_fd < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		goto out;
	fds[nfds++] = sp[1];
	fds[nfds++] = agent_fd;
	if (hv_uses_virtiofsd(c)) {
		char **vargv = hv_virtiofsd_argv(c, &p, 3);
		int lfd;

		snprintf(vsock, sizeof(vsock), "%s/vfs.sock", tmp);
		lfd = listen_at(vsock);
		if (lfd >= 0)
			vpid = hv_spawn(vargv, &lfd, 1, null, NULL, NULL, &e);
		hv_argv_free(vargv);
		if (lfd >= 0)
			close(lfd);
		if (vpid < 0)
			goto out;
		vfs_fd = ipc_connect_path(vsock, 0, &e);
		if (vfs_fd < 0)
			goto out;
		fds[nfds++] = vfs_fd;
	}
	pid = hv_spawn(argv, fds, nfds, null, NULL, NULL, &e);
	close(sp[1]);
	sp[1] = -1;
	if (pid > 0 && wait_guest(c->agent_socket) == 0)
		t = now() - t0;
out:
	if (e) {
		fprintf(stderr, "hv_bench: %s\n", e->msg);
		husk_err_free(e);
	}
	kill_wait(pid);
	kill_wait(vpid);
	for (int i = 0; i < 2; i++)
		if (sp[i] >= 0)
			close(sp[i]);
	if (agent_fd >= 0)
		close(agent_fd);
	if (vfs_fd >= 0)
		close(vfs_fd);
	close(null);
	hv_argv_free(argv);
	return t;
}

/* The driver table's bare column: the same machine without a share. */
static double bare(int machine)
{
	struct hv_config c = config(machine, tmp);
	double t = bare_boot(&c);

	hv_config_free(&c);
	return t;
}

static long pss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* The driver: start it, `start` the VM, wait for the guest. */
/* A driver on dir (quiet, dies with us). */
static pid_t spawn_driver(const char *dir)
{
	pid_t pid = fork();

	if (pid == 0) {
		char *hv = husk_xasprintf("%s/bin/husk-hypervisor", build);
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(hv, hv, "--state-dir", dir, "--log-level", "warn",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Say what went wrong, and stop the driver (and its VM). */
static void end_driver(pid_t pid, struct husk_err *e)
{
	if (e) {
		fprintf(stderr, "hv_bench: %s\n", e->msg);
		husk_err_free(e);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static double driver(int machine, long *pss)
{
	char dir[128], sock[200], params[2048];
	struct husk_err *e = NULL;
	struct ipc_client cl;
	struct ipc_msg resp;
	double t0, t = -1;
	pid_t pid;
	int rc;

	snprintf(dir, sizeof(dir), "%s/drv", tmp);
	snprintf(sock, sizeof(sock), "%s/hypervisor.sock", dir);
	pid = spawn_driver(dir);
	if (ipc_client_connect(&cl, sock, "hv_bench", NULL, 5000, &e) < 0)
		goto out;
	snprintf(params, sizeof(params), "%s/agent.sock", dir);
	unlink(params);
	t0 = now();
	{
		msgpack_packer *pk = ipc_client_begin(&cl, HV_M_START);
		char *k = husk_xstrdup(kernel);

		msgpack_pack_map(pk, 5);
		ipc_pack_kv_str(pk, "kernel", k);
		ipc_pack_kv_str(pk, "initrd", initrd);
		ipc_pack_kv_str(pk, "agent_socket", params);
		ipc_pack_kv_str(pk, "machine", machine == HV_MACHINE_Q35 ?
				"q35" : "microvm");
		ipc_pack_kv_uint(pk, "pci_ports",
				 machine == HV_MACHINE_Q35 ? 4 : 0);
		free(k);
	}
	rc = ipc_client_call(&cl, 60000, NULL, 0, &resp, &e);
	if (rc < 0)
		goto out_close;
	ipc_msg_free(&resp);
	if (wait_guest(params) == 0)
		t = now() - t0;
	*pss = pss_kb(pid);
out_close:
	ipc_client_close(&cl);
out:
	end_driver(pid, e);
	return t;
}

static double median(double *v, int n);

/* One RPC to the driver; seconds it took, or -1. */
static double rpc_time(struct ipc_client *cl, const char *method,
		       const char *key, const char *sval, unsigned uval,
		       char *id_out, size_t id_len)
{
	struct husk_err *e = NULL;
	struct ipc_msg resp;
	msgpack_packer *pk;
	double t0 = now();
	int rc;

	pk = ipc_client_begin(cl, method);
	msgpack_pack_map(pk, 1);
	if (sval)
		ipc_pack_kv_str(pk, key, sval);
	else
		ipc_pack_kv_uint(pk, key, uval);
	rc = ipc_client_call(cl, 60000, NULL, 0, &resp, &e);
	if (rc < 0) {
		fprintf(stderr, "hv_bench: %s: %s\n", method, e->msg);
		husk_err_free(e);
		return -1;
	}
	if (id_out) {
		const msgpack_object *id = ipc_map_get(resp.result, "id");

		if (id && id->type == MSGPACK_OBJECT_STR)
			snprintf(id_out, id_len, "%.*s", (int)id->via.str.size,
				 id->via.str.ptr);
	}
	ipc_msg_free(&resp);
	return now() - t0;
}

/* q35 with room for DIMMs: runs x (hotplug_memory, unplug_memory) in
 * one VM; medians in *plug and *unplug. */
static int memory_cycle(int runs, double *plug, double *unplug)
{
	char dir[128], sock[200], agent_sock[256], id[64];
	struct husk_err *e = NULL;
	struct ipc_client cl;
	struct ipc_msg resp;
	double tp[20], tu[20];
	int n = 0, rc = -1;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/mem", tmp);
	snprintf(sock, sizeof(sock), "%s/hypervisor.sock", dir);
	snprintf(agent_sock, sizeof(agent_sock), "%s/agent.sock", dir);
	pid = spawn_driver(dir);
	if (ipc_client_connect(&cl, sock, "hv_bench", NULL, 5000, &e) < 0)
		goto out;
	{
		msgpack_packer *pk = ipc_client_begin(&cl, HV_M_START);
		char *k = husk_xstrdup(kernel);

		msgpack_pack_map(pk, 6);
		ipc_pack_kv_str(pk, "kernel", k);
		ipc_pack_kv_str(pk, "initrd", initrd);
		ipc_pack_kv_str(pk, "agent_socket", agent_sock);
		ipc_pack_kv_uint(pk, "memory_mb", 256);
		ipc_pack_kv_uint(pk, "max_memory_mb", 512);
		ipc_pack_kv_uint(pk, "pci_ports", 1);
		free(k);
	}
	if (ipc_client_call(&cl, 60000, NULL, 0, &resp, &e) < 0)
		goto out_close;
	ipc_msg_free(&resp);
	if (wait_guest(agent_sock) < 0)
		goto out_close;
	for (; n < runs; n++) {
		id[0] = '\0';
		tp[n] = rpc_time(&cl, "hotplug_memory", "size_mb", NULL, 128,
				 id, sizeof(id));
		if (tp[n] < 0 || !id[0])
			break;
		tu[n] = rpc_time(&cl, "unplug_memory", "id", id, 0, NULL, 0);
		if (tu[n] < 0)
			break;
	}
	if (n == runs) {
		*plug = median(tp, n);
		*unplug = median(tu, n);
		rc = 0;
	}
out_close:
	ipc_client_close(&cl);
out:
	end_driver(pid, e);
	return rc;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * hv_bench boot: the bare boot husk.sh compares `husk run` with: QEMU
 * started directly with the command line the driver makes for the
 * sandbox configuration given (husk.sh passes `husk env`'s), virtiofsd
 * sharing an empty directory as for a sandbox; prints the median
 * seconds from the start to the agent's ping answer.
 */
static int boot_main(int argc, char **argv)
{
	struct hv_config c = {
		.vcpus = 1, .max_vcpus = 1, .memory_mb = 256,
		.max_memory_mb = 256, .machine = HV_MACHINE_Q35,
		.accel = HV_ACCEL_TCG,
	};
	int runs = 3, pci_ports = -1;
	double t[20];
	char *share;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--kernel"))
			snprintf(kernel, sizeof(kernel), "%s", v);
		else if (!strcmp(o, "--initrd"))
			snprintf(initrd, sizeof(initrd), "%s", v);
		else if (!strcmp(o, "--machine"))
			c.machine = strcmp(v, "microvm") ? HV_MACHINE_Q35 :
				    HV_MACHINE_MICROVM;
		else if (!strcmp(o, "--vcpus"))
			c.vcpus = atoi(v);
		else if (!strcmp(o, "--max-vcpus"))
			c.max_vcpus = atoi(v);
		else if (!strcmp(o, "--memory"))
			c.memory_mb = atoi(v);
		else if (!strcmp(o, "--max-memory"))
			c.max_memory_mb = atoi(v);
		else if (!strcmp(o, "--slots"))
			c.memory_slots = atoi(v);
		else if (!strcmp(o, "--pci-ports"))
			pci_ports = atoi(v);
		else if (!strcmp(o, "--params"))
			c.kernel_params = husk_xstrdup(v);
		else if (!strcmp(o, "--tcg-cache-mb"))
			c.tcg_cache_mb = atoi(v);
		else if (!strcmp(o, "--runs"))
			runs = atoi(v);
		else {
			fprintf(stderr, "hv_bench boot: unknown option %s\n", o);
			return 2;
		}
	}
	if (!kernel[0] || !initrd[0] || runs < 1 || runs > 20 ||
	    !c.vcpus || c.max_vcpus < c.vcpus ||
	    c.max_memory_mb < c.memory_mb) {
		fprintf(stderr, "hv_bench boot: needs --kernel, --initrd and a "
			"sane configuration (1-20 runs)\n");
		return 2;
	}
	/* As husk and the driver round and default them (sandbox/vm.c,
	 * hypervisor-drv/create.c). */
	c.max_memory_mb = c.memory_mb + (c.max_memory_mb - c.memory_mb) /
			  HV_MEM_BLOCK_MB * HV_MEM_BLOCK_MB;
	c.pci_ports = pci_ports >= 0 ? (uint32_t)pci_ports :
		      c.machine == HV_MACHINE_Q35 ? 4 : 0;
	c.tsc_khz = hv_host_tsc_khz(c.machine); /* as the driver's create */
	c.kernel = husk_xstrdup(kernel);
	c.initrd = husk_xstrdup(initrd);
	snprintf(tmp, sizeof(tmp), "/tmp/hv_bench.XXXXXX");
	if (!mkdtemp(tmp))
		return 111;
	c.agent_socket = husk_xasprintf("%s/agent.sock", tmp);
	share = husk_xasprintf("%s/shared", tmp);
	mkdir(share, 0700);
	c.shared_dir = share;
	agent = true;
	signal(SIGPIPE, SIG_IGN);
	for (int r = 0; r < runs; r++)
		if ((t[r] = bare_boot(&c)) < 0)
			break;
	husk_rmtree_at(AT_FDCWD, tmp, NULL);
	hv_config_free(&c);
	for (int r = 0; r < runs; r++)
		if (t[r] < 0)
			return 1;
	printf("%.3f\n", median(t, runs));
	return 0;
}

int main(int argc, char **argv)
{
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
	char initfile[PATH_MAX + 32], init[256] = "";
	int runs = 3;
	FILE *f;

	if (argc > 1 && !strcmp(argv[1], "boot"))
		return boot_main(argc - 1, argv + 1);
	/* The kernel and image to boot: HV_BENCH_KERNEL and
	 * HV_BENCH_INITRD (an agent image), else the build's. */
	if (argc > 1)
		runs = atoi(argv[1]);

	if (runs < 1 || runs > 20)
		runs = 3;
	if (!realpath(b, build)) {
		fprintf(stderr, "hv_bench: no build dir %s\n", b);
		return 111;
	}
	snprintf(guest, sizeof(guest), "%s/guest", build);
	snprintf(initfile, sizeof(initfile), "%s/initrd.init", guest);
	if ((f = fopen(initfile, "r"))) {
		if (!fgets(init, sizeof(init), f))
			init[0] = '\0';
		fclose(f);
	}
	agent = strstr(init, "husk-agent") != NULL;
	snprintf(initrd, sizeof(initrd), "%s/%s", guest,
		 agent ? "initrd.img" : "initrd-testinit.img");
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", guest);
	if (getenv("HV_BENCH_KERNEL") && getenv("HV_BENCH_INITRD")) {
		snprintf(kernel, sizeof(kernel), "%s",
			 getenv("HV_BENCH_KERNEL"));
		snprintf(initrd, sizeof(initrd), "%s",
			 getenv("HV_BENCH_INITRD"));
		agent = true;
	}
	if (access(initrd, R_OK) < 0) {
		printf("hv_bench: no guest image (make guest): skipped\n");
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/hv_bench.XXXXXX");
	if (!mkdtemp(tmp))
		return 111;
	signal(SIGPIPE, SIG_IGN);

	printf("hypervisor driver: seconds from start to the guest %s "
	       "(TCG, 1 vCPU, 256 MiB, median of %d)\nkernel %s\n",
	       agent ? "agent's ping answer" : "test init's READY", runs,
	       kernel);
	printf("%-8s %10s %10s %8s %12s\n", "machine", "bare qemu", "driver",
	       "ratio", "driver PSS");
	for (int m = HV_MACHINE_Q35; m <= HV_MACHINE_MICROVM; m++) {
		double tb[20], td[20];
		long pss = -1;

		for (int r = 0; r < runs; r++) {
			tb[r] = bare(m);
			td[r] = driver(m, &pss);
		}
		double mb = median(tb, runs), md = median(td, runs);

		printf("%-8s %10.3f %10.3f %8.3f %9ld kB\n",
		       m == HV_MACHINE_Q35 ? "q35" : "microvm", mb, md,
		       mb > 0 ? md / mb : 0, pss);
	}
	if (agent) {
		double plug, unplug;

		if (memory_cycle(runs, &plug, &unplug) == 0)
			printf("q35 memory: hotplug_memory 128 MiB %.3f s "
			       "(QMP), unplug_memory %.3f s (the guest "
			       "offlines and ejects it), median of %d\n",
			       plug, unplug, runs);
	}
	husk_rmtree_at(AT_FDCWD, tmp, NULL);
	return 0;
}
