/*
 * The QEMU and virtiofsd command lines, built from a validated
 * hv_config, and starting the two as children that cannot outlive the
 * driver.  The share goes over virtio-fs (virtiofsd) or, for VMs whose
 * memory virtiofsd cannot map, over QEMU's own virtio-9p.
 *
 * Boot path (docs/hypervisor.md, measured with make bench): q35 with
 * qboot and the PVH vmlinux keeps PCIe hotplug at about microvm's cost
 * with the same kernel; microvm is offered for sandboxes that need no
 * hotplug.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "hv.h"
#include "libhusk/cleanup.h"
#include "libhusk/spawn.h"
#include "libhusk/util.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

struct strv {
	char **v;
	size_t n, cap;
};

static void strv_add(struct strv *s, const char *str)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(char *));
		if (!s->v)
			abort();
	}
	s->v[s->n++] = husk_xstrdup(str);
	s->v[s->n] = NULL;
}

static void __attribute__((format(printf, 2, 3)))
strv_addf(struct strv *s, const char *fmt, ...)
{
	char *str;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&str, fmt, ap) < 0)
		abort();
	va_end(ap);
	strv_add(s, str);
	free(str);
}

static void strv_add2(struct strv *s, const char *opt, const char *val)
{
	strv_add(s, opt);
	strv_add(s, val);
}

void hv_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* A value inside QEMU's option syntax: commas are doubled. */
static char *opt_esc(const char *s)
{
	size_t n = strlen(s), extra = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		extra += *p == ',';
	out = o = husk_xmalloc(n + extra + 1);
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

void hv_config_free(struct hv_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->kernel_params);
	free(c->shared_dir);
	free(c->agent_socket);
	free(c->console_log);
	free(c->mem_file);
	free(c->incoming);
	for (int i = 0; i < c->nnets; i++)
		if (c->nets[i].fd >= 0)
			close(c->nets[i].fd);
	memset(c, 0, sizeof(*c));
}

bool hv_file_is_elf(const char *path)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char m[4];

	return fd >= 0 && read(fd, m, 4) == 4 && m[0] == 0x7f &&
	       m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
}

/*
 * TCG's TSC runs at the host's rate; "cpu MHz" is close enough for the
 * guest's early calibration (refined by the guest after a second).  On
 * a host that scales its CPUs' frequency (cpufreq), "cpu MHz" is the
 * current frequency, not the TSC's: q35 then calibrates on its own
 * (0), microvm, whose calibration may otherwise never end, still takes
 * it.
 */
uint32_t hv_host_tsc_khz(int machine)
{
	cleanup_fclose FILE *f = NULL;
	char line[256];
	double mhz;

	if (machine != HV_MACHINE_MICROVM &&
	    access("/sys/devices/system/cpu/cpu0/cpufreq", F_OK) == 0)
		return 0;
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 && mhz > 0)
			return (uint32_t)(mhz * 1000);
	return 0;
}

uint64_t hv_host_mem_mb(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit >> 20;
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */

char *hv_kernel_cmdline(const struct hv_config *c)
{
	struct strv s = { 0 };
	size_t len = 0;
	char *out, *o;

	/* Options measured to shorten a TCG boot (notes and docs). */
	strv_add(&s, "console=ttyS0 quiet panic=-1 cryptomgr.notests");
	strv_add(&s, "tsc=reliable no_timer_check noreplace-smp i8042.noaux");
	strv_add(&s, "8250.nr_uarts=1 random.trust_cpu=on");
	/* Without a local APIC timer a second vCPU would never tick; nor
	 * would microvm's only one, whose machine has no other timer the
	 * guest ticks from (a timed sleep, an RCU grace period, never
	 * ends: renaming a NIC hung the agent). */
	if (c->max_vcpus == 1 && c->machine == HV_MACHINE_Q35)
		strv_add(&s, "nolapic_timer");
	/* With one, husk's kernel takes the timer's clock from here
	 * instead of calibrating it against the PIT for 0.1 s (guest/
	 * kernel-patches/x86-lapic-timer-hz.patch); QEMU's emulated APIC
	 * counts at 1 GHz.  Under KVM the TSC deadline timer needs no
	 * calibration.  Other kernels pass it to init's environment. */
	else if (c->accel == HV_ACCEL_TCG)
		strv_addf(&s, "lapic_timer_hz=%u", HV_TCG_APIC_HZ);
	/* microvm: its early calibration may never end; q35 under TCG: the
	 * PIT calibration often fails there and falls back to a slower
	 * one (5-16 ms).  The 1 s refinement still corrects the figure. */
	if ((c->machine == HV_MACHINE_MICROVM || c->accel == HV_ACCEL_TCG) &&
	    c->tsc_khz)
		strv_addf(&s, "tsc_early_khz=%u", c->tsc_khz);
	/* Hot-plugged memory online at once, and movable, so that a DIMM
	 * can be offlined and unplugged again. */
	if (c->machine == HV_MACHINE_Q35 && c->memory_slots > 0 &&
	    c->max_memory_mb > c->memory_mb)
		strv_add(&s, "memhp_default_state=online_movable");
	if (c->shared_dir)
		strv_add(&s, "husk.share=husk");
	/* The agent mounts a 9p share late (at create_sandbox): a template
	 * must not have it attached when its state is saved. */
	if (hv_uses_9p(c))
		strv_add(&s, "husk.share_fs=9p");
	if (c->kernel_params && *c->kernel_params)
		strv_add(&s, c->kernel_params);
	for (size_t i = 0; i < s.n; i++)
		len += strlen(s.v[i]) + 1;
	out = o = husk_xmalloc(len + 1);
	for (size_t i = 0; i < s.n; i++)
		o += sprintf(o, "%s%s", i ? " " : "", s.v[i]);
	*o = '\0';
	hv_argv_free(s.v);
	return out;
}

static void add_machine(struct strv *s, const struct hv_config *c,
			const struct hv_paths *p)
{
	if (c->machine == HV_MACHINE_MICROVM) {
		/* The stock kernel finds virtio-mmio devices only through
		 * ACPI, and virtiofsd refuses legacy virtio-mmio. */
		strv_add2(s, "-machine", "microvm,acpi=on");
		strv_add2(s, "-global", "virtio-mmio.force-legacy=false");
		return;
	}
	strv_add2(s, "-machine", "q35");
	/* qboot skips SeaBIOS's device scan: 0.8 s under TCG. */
	if (p->bios && access(p->bios, R_OK) == 0)
		strv_add2(s, "-bios", p->bios);
}

static void add_memory(struct strv *s, const struct hv_config *c)
{
	if (c->machine == HV_MACHINE_Q35 && c->memory_slots > 0 &&
	    c->max_memory_mb > c->memory_mb)
		strv_addf(s, "-m"), strv_addf(s, "%uM,slots=%u,maxmem=%uM",
					     c->memory_mb, c->memory_slots,
					     c->max_memory_mb);
	else
		strv_addf(s, "-m"), strv_addf(s, "%uM", c->memory_mb);
	if (c->mem_file) {
		/* A template's RAM is the file (shared: what the guest
		 * writes lands in it); a clone maps the same file private,
		 * so its writes are its own and the rest stays the
		 * template's pages.  Both command lines must agree in
		 * everything migration compares. */
		strv_add(s, "-object");
		strv_addf(s, "memory-backend-file,id=mem0,size=%uM,mem-path=%s,"
			  "share=%s", c->memory_mb, HV_JAIL_MEM,
			  c->mem_share ? "on" : "off");
		strv_add2(s, "-numa", "node,memdev=mem0");
	} else if (hv_uses_virtiofsd(c)) {
		/* vhost-user: virtiofsd maps guest RAM, so it must be a
		 * shared memfd, which needs a NUMA node to hang from. */
		strv_add(s, "-object");
		strv_addf(s, "memory-backend-memfd,id=mem0,size=%uM,share=on",
			  c->memory_mb);
		strv_add2(s, "-numa", "node,memdev=mem0");
	}
}

/* A tap as a virtio-net device: net i's tap is at HV_FD_TAP0 + i. */
static void add_net(struct strv *s, const struct hv_net *n, int i,
		    const char *bus)
{
	char port[32] = "";

	if (n->port >= 0)
		snprintf(port, sizeof(port), ",bus=rp%d", n->port);
	strv_add(s, "-netdev");
	strv_addf(s, "tap,id=net-%s,fd=%d", n->id, HV_FD_TAP0 + i);
	strv_add(s, "-device");
	if (n->mtu)
		strv_addf(s, "virtio-net-%s,netdev=net-%s,id=%s,mac=%s,"
			  "host_mtu=%u%s", bus, n->id, n->id, n->mac, n->mtu,
			  port);
	else
		strv_addf(s, "virtio-net-%s,netdev=net-%s,id=%s,mac=%s%s",
			  bus, n->id, n->id, n->mac, port);
}

char **hv_qemu_argv(const struct hv_config *c, const struct hv_paths *p)
{
	const char *bus = c->machine == HV_MACHINE_MICROVM ? "device" : "pci";
	struct strv s = { 0 };
	cleanup_free char *cmdline = hv_kernel_cmdline(c);

	strv_add(&s, p->qemu);
	strv_add(&s, "-nodefaults");
	strv_add(&s, "-no-user-config");
	strv_add(&s, "-nographic");
	strv_add2(&s, "-display", "none");
	strv_add(&s, "-no-reboot");
	/* Jailed, QEMU's command line names no host path: the name tells
	 * ps and pgrep which sandbox it runs. */
	if (p->name) {
		cleanup_free char *name = opt_esc(p->name);

		strv_add(&s, "-name");
		strv_addf(&s, "guest=%s", name);
	}
	add_machine(&s, c, p);
	/* TCG's translation cache is 1 GiB by default and grows with what
	 * the guest runs; a small guest fits in far less, and every MiB of
	 * it is QEMU memory (docs/hypervisor.md, "Memory"). */
	if (c->accel == HV_ACCEL_KVM)
		strv_add2(&s, "-accel", "kvm");
	else
		strv_add(&s, "-accel"), strv_addf(&s, "tcg,tb-size=%u",
						  c->tcg_cache_mb ?
						  c->tcg_cache_mb :
						  HV_TCG_TB_MB);
	/* max: every feature TCG emulates (rdrand for the guest's RNG);
	 * host under KVM. */
	strv_add2(&s, "-cpu", c->accel == HV_ACCEL_KVM ? "host" : "max");
	strv_add(&s, "-smp");
	strv_addf(&s, "%u,maxcpus=%u", c->vcpus, c->max_vcpus);
	add_memory(&s, c);

	/* Jailed, QEMU sees them at fixed paths (jail.c). */
	strv_add2(&s, "-kernel", p->kernel ? p->kernel : c->kernel);
	if (c->initrd)
		strv_add2(&s, "-initrd", p->initrd ? p->initrd : c->initrd);
	strv_add2(&s, "-append", cmdline);

	if (c->console_log) {
		/* The driver reads it and bounds the log (console.c). */
		strv_add(&s, "-chardev");
		strv_addf(&s, "socket,id=con,fd=%d,server=off", HV_FD_CON(c));
	} else {
		strv_add2(&s, "-chardev", "null,id=con");
	}
	strv_add2(&s, "-serial", "chardev:con");

	/* The agent channel: QEMU listens, the proxy connects.  The driver
	 * binds the socket (any path length) and hands it over. */
	strv_add(&s, "-device");
	strv_addf(&s, "virtio-serial-%s,id=vser0", bus);
	strv_add(&s, "-chardev");
	strv_addf(&s, "socket,id=agent,fd=%d,server=on,wait=off", HV_FD_AGENT);
	strv_add2(&s, "-device",
		  "virtserialport,bus=vser0.0,chardev=agent,name=agent.channel.0");

	if (hv_uses_virtiofsd(c)) {
		/* Connected by the driver (any path length). */
		strv_add(&s, "-chardev");
		strv_addf(&s, "socket,id=vfs,fd=%d", HV_FD_VFS(c));
		strv_add(&s, "-device");
		strv_addf(&s, "vhost-user-fs-%s,chardev=vfs,tag=husk", bus);
	}
	if (hv_uses_9p(c)) {
		cleanup_free char *share = opt_esc(p->share ? p->share :
						   c->shared_dir);

		/* QEMU serves the share itself, from its jail (jail.c).
		 * passthrough: files keep the owners and modes the guest
		 * gives them, as with virtiofsd (QEMU keeps CAP_CHOWN,
		 * CAP_DAC_OVERRIDE and CAP_FOWNER for it); remap: each host
		 * mount under the share keeps its own inode numbers apart.
		 * Not readonly=on: writable volumes sit under the same
		 * export; the host's read-only binds hold the rest. */
		strv_add(&s, "-fsdev");
		strv_addf(&s, "local,id=fs0,path=%s,security_model=passthrough,"
			  "multidevs=remap", share);
		strv_add(&s, "-device");
		strv_addf(&s, "virtio-9p-%s,fsdev=fs0,mount_tag=husk", bus);
	}
	/* Free page reporting: the guest hands back the pages it frees
	 * (the agent sets the order it reports from), so a sandbox's
	 * memory shrinks again after boot and after a container's peak
	 * (docs/hypervisor.md, "Memory").  Never inflated. */
	strv_add(&s, "-device");
	if (c->mem_file)
		/* QEMU 7.2 gives a reported page back by punching a hole in
		 * the RAM file, also through a clone's private mapping: the
		 * template's page would go for every clone.  Templates and
		 * clones share the device's features, so neither has it. */
		strv_addf(&s, "virtio-balloon-%s", bus);
	else
		strv_addf(&s, "virtio-balloon-%s,free-page-reporting=on",
			  bus);
	/* Nets on pcie.0 (or microvm's bus) where they always were; those
	 * on a root port once the ports are there. */
	for (int i = 0; i < c->nnets; i++)
		if (c->nets[i].port < 0)
			add_net(&s, &c->nets[i], i, bus);
	if (c->machine == HV_MACHINE_Q35) {
		for (uint32_t i = 0; i < c->pci_ports; i++) {
			strv_add(&s, "-device");
			strv_addf(&s, "pcie-root-port,id=rp%u,bus=pcie.0,"
				  "chassis=%u", i, i + 1);
		}
	}
	for (int i = 0; i < c->nnets; i++)
		if (c->nets[i].port >= 0)
			add_net(&s, &c->nets[i], i, bus);

	/* The monitor is a socketpair made by the driver: no path to race
	 * for, and QEMU's death is an EOF on our end. */
	strv_add(&s, "-chardev");
	strv_addf(&s, "socket,id=qmp,fd=%d,server=off", HV_FD_QMP);
	strv_add2(&s, "-mon", "chardev=qmp,mode=control");
	/* A clone waits for its device state (migrate-incoming). */
	if (c->incoming)
		strv_add2(&s, "-incoming", "defer");
	strv_add2(&s, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,"
		  "spawn=deny,resourcecontrol=deny");
	return s.v;
}

char **hv_virtiofsd_argv(const struct hv_config *c, const struct hv_paths *p,
			 int listen_fd)
{
	struct strv s = { 0 };
	cleanup_free char *src = opt_esc(c->shared_dir);

	strv_add(&s, p->virtiofsd);
	/* The listening socket is made by the driver (mode, place) and
	 * handed over, so QEMU never races virtiofsd's bind. */
	strv_addf(&s, "--fd=%d", listen_fd);
	strv_add(&s, "-o");
	strv_addf(&s, "source=%s", src);
	/* auto: the guest revalidates after a second; containers' volumes
	 * see host changes without cache=none's cost on every lookup. */
	strv_add2(&s, "-o", "cache=auto");
	strv_add2(&s, "-o", "sandbox=namespace");
	/* Serving files keeps chown, dac_override, fowner and setuid/
	 * setgid (fsuid switching); a guest needs no device node, file
	 * capability or setuid bit made on the host. */
	strv_add2(&s, "-o", "modcaps=-mknod:-setfcap:-fsetid");
	/* Each host mount under the share is its own file system in the
	 * guest (no inode number clashes across them). */
	strv_add2(&s, "-o", "announce_submounts");
	strv_add(&s, "--thread-pool-size=1");
	return s.v;
}

/* ------------------------------------------------------------------ */
/* Children                                                            */

/*
 * The child is tied to the driver by PDEATHSIG, so a dead driver leaves
 * no VM behind; setup sets it again when it changes the child's uid,
 * which clears the signal.  The child is reaped by the caller's child
 * watcher, also when this fails.
 */
pid_t hv_spawn(char *const argv[], const int *fds, int nfds, int logfd,
	       hv_setup_fn *setup, void *arg, struct husk_err **err)
{
	struct husk_exec x = {
		.argv = argv,
		.in_fd = -1,
		/* Out of the driver's terminal process group: a ^C in the
		 * foreground reaches the driver, which stops the VM. */
		.new_session = true,
		.out_fd = logfd >= 0 ? logfd : HUSK_FD_INHERIT,
		.fds = fds,
		.nfds = nfds,
		.fds_from_3 = true,
		.die_with_parent = true,
		.setup = setup,
		.arg = arg,
		.setup_what = "confine the child for",
	};

	return husk_fork_exec(&x, err);
}
