/*
 * hypervisor-drv: the QMP line splitter and message parser (bytes from
 * QEMU are untrusted), the command builder, and the QEMU command line
 * built from a config.
 *
 * Linked with build/lib/libhypervisor-drv.a (hypervisor-drv/program.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hypervisor-drv/hv.h"
#include "hypervisor-drv/qmp.h"

/* ------------------------------------------------------------------ */
/* Lines                                                               */

struct got {
	char lines[8][64];
	int n;
	int refuse_at;          /* refuse the line with this index, or -1 */
};

static int collect(void *arg, const char *line, size_t len)
{
	struct got *g = arg;

	if (g->n == g->refuse_at)
		return -1;
	if (g->n < 8)
		snprintf(g->lines[g->n], sizeof(g->lines[0]), "%.*s", (int)len,
			 line);
	g->n++;
	return 0;
}

static void lines_split_anywhere(void **state)
{
	const char *in = "{\"a\":1}\r\n{\"b\":2}\n\n{\"c\":3}\r\n";
	size_t n = strlen(in);

	/* Every split point gives the same three lines. */
	for (size_t cut = 0; cut <= n; cut++) {
		struct qmp_lines l;
		struct got g = { .refuse_at = -1 };
		struct husk_err *e = NULL;

		qmp_lines_init(&l);
		assert_int_equal(qmp_lines_feed(&l, in, cut, collect, &g, &e), 0);
		assert_int_equal(qmp_lines_feed(&l, in + cut, n - cut, collect,
						&g, &e), 0);
		assert_int_equal(g.n, 3);
		assert_string_equal(g.lines[0], "{\"a\":1}");
		assert_string_equal(g.lines[1], "{\"b\":2}");
		assert_string_equal(g.lines[2], "{\"c\":3}");
		qmp_lines_free(&l);
	}
}

static void lines_too_long(void **state)
{
	struct qmp_lines l;
	struct got g = { .refuse_at = -1 };
	struct husk_err *e = NULL;
	char *big = malloc(QMP_LINE_MAX + 10);

	memset(big, 'x', QMP_LINE_MAX + 10);
	qmp_lines_init(&l);
	/* In pieces, without a newline: refused once over the cap, and the
	 * buffer never grew past it. */
	assert_int_equal(qmp_lines_feed(&l, big, QMP_LINE_MAX / 2, collect,
					&g, &e), 0);
	assert_int_equal(qmp_lines_feed(&l, big, QMP_LINE_MAX, collect, &g,
					&e), -1);
	assert_int_equal(e->code, HUSK_E_TOO_LARGE);
	assert_true(l.cap <= QMP_LINE_MAX + 1);
	husk_err_clear(&e);
	qmp_lines_free(&l);

	/* In one piece with a newline: refused too. */
	big[QMP_LINE_MAX + 5] = '\n';
	qmp_lines_init(&l);
	assert_int_equal(qmp_lines_feed(&l, big, QMP_LINE_MAX + 10, collect,
					&g, &e), -1);
	assert_int_equal(g.n, 0);
	husk_err_clear(&e);
	qmp_lines_free(&l);
	free(big);
}

static void lines_callback_refusal_stops(void **state)
{
	struct qmp_lines l;
	struct got g = { .refuse_at = 1 };
	struct husk_err *e = NULL;

	qmp_lines_init(&l);
	assert_int_equal(qmp_lines_feed(&l, "a\nb\nc\n", 6, collect, &g, &e),
			 -1);
	assert_int_equal(g.n, 1);
	husk_err_clear(&e);
	qmp_lines_free(&l);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

static int parse(const char *s, struct qmp_in *in)
{
	struct husk_err *e = NULL;
	int rc = qmp_parse(s, strlen(s), in, &e);

	if (rc < 0) {
		assert_int_equal(e->code, HUSK_E_PROTOCOL);
		husk_err_free(e);
	}
	return rc;
}

static void parse_kinds(void **state)
{
	struct qmp_in in;

	assert_int_equal(parse("{\"QMP\": {\"version\": {}, "
			       "\"capabilities\": [\"oob\"]}}", &in), 0);
	assert_int_equal(in.kind, QMP_GREETING);
	qmp_in_free(&in);

	assert_int_equal(parse("{\"return\": {}, \"id\": 7}", &in), 0);
	assert_int_equal(in.kind, QMP_RETURN);
	assert_int_equal(in.id, 7);
	assert_true(json_is_object(in.ret));
	qmp_in_free(&in);

	assert_int_equal(parse("{\"error\": {\"class\": \"GenericError\", "
			       "\"desc\": \"bad\\nthing\\u00e9\"}, \"id\": 3}",
			       &in), 0);
	assert_int_equal(in.kind, QMP_ERROR);
	assert_string_equal(in.err_class, "GenericError");
	/* Control and non-ASCII bytes are cleaned before use. */
	assert_string_equal(in.err_desc, "bad?thing??");
	qmp_in_free(&in);

	assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1}, \"event\": "
			       "\"SHUTDOWN\", \"data\": {\"guest\": true, "
			       "\"reason\": \"guest-shutdown\"}}", &in), 0);
	assert_int_equal(in.kind, QMP_EVENT);
	assert_string_equal(in.event, "SHUTDOWN");
	assert_string_equal(json_string_value(json_object_get(in.data,
						"reason")), "guest-shutdown");
	qmp_in_free(&in);
}

static void parse_refusals(void **state)
{
	static const char *const bad[] = {
		"", "not json", "[1, 2]", "42", "{}",
		"{\"return\": {}, \"id\": \"seven\"}",
		"{\"return\": {}, \"id\": -1}",
		"{\"error\": \"x\", \"id\": 1}",
		"{\"error\": {\"class\": 1, \"desc\": \"d\"}, \"id\": 1}",
		"{\"event\": 5}",
		"{\"event\": \"\"}",
		"{\"event\": \"X\", \"data\": [1]}",
		"{\"QMP\": 1}",
		"{\"return\": 1, \"return\": 2, \"id\": 1}",
		NULL,
	};
	struct qmp_in in;

	for (int i = 0; bad[i]; i++) {
		if (parse(bad[i], &in) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_null(in.root);
	}
}

static void build_command(void **state)
{
	json_t *args = json_pack("{s:s, s:i}", "id", "disk1", "n", 2);
	size_t len;
	char *s = qmp_build("device_del", args, 12, &len);
	json_t *back;

	assert_non_null(s);
	assert_int_equal(s[len - 1], '\n');
	assert_int_equal(strlen(s), len);
	back = json_loadb(s, len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(back, "execute")),
			    "device_del");
	assert_int_equal(json_integer_value(json_object_get(back, "id")), 12);
	assert_true(json_equal(json_object_get(back, "arguments"), args));
	json_decref(back);
	json_decref(args);
	free(s);

	s = qmp_build("qmp_capabilities", NULL, 1, &len);
	assert_string_equal(s, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n");
	free(s);
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */

static bool has_pair(char **argv, const char *opt, const char *val)
{
	for (char **a = argv; a[0] && a[1]; a++)
		if (!strcmp(a[0], opt) && !strcmp(a[1], val))
			return true;
	return false;
}

static bool has_arg(char **argv, const char *val)
{
	for (char **a = argv; *a; a++)
		if (!strcmp(*a, val))
			return true;
	return false;
}

static void test_config(struct hv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->kernel = "/k/vmlinux";
	c->initrd = "/k/initrd.img";
	c->agent_socket = "/run/s,b/agent.sock";
	c->vcpus = 1;
	c->max_vcpus = 2;
	c->memory_mb = 256;
	c->max_memory_mb = 512;
	c->memory_slots = 4;
	c->pci_ports = 2;
	c->machine = HV_MACHINE_Q35;
	c->accel = HV_ACCEL_TCG;
}

static const struct hv_paths paths = {
	.qemu = "/usr/bin/qemu-system-x86_64",
	.virtiofsd = "/usr/lib/qemu/virtiofsd",
	.vfs_socket = "/run/s/vfs.sock",
	.bios = NULL,
	.kernel = HV_JAIL_KERNEL,
	.initrd = HV_JAIL_INITRD,
	.name = "/run/s,b/vm",
};

static void argv_q35(void **state)
{
	struct hv_config c;
	char **argv;

	test_config(&c);
	c.shared_dir = "/share";
	c.console_log = "/run/s,b/console.log";
	argv = hv_qemu_argv(&c, &paths);
	assert_string_equal(argv[0], paths.qemu);
	assert_true(has_arg(argv, "-nodefaults"));
	assert_true(has_arg(argv, "-no-user-config"));
	assert_true(has_arg(argv, "-no-reboot"));
	assert_true(has_pair(argv, "-machine", "q35"));
	/* TCG's translation cache sized for a small guest. */
	assert_true(has_pair(argv, "-accel", "tcg,tb-size=24"));
	assert_true(has_pair(argv, "-cpu", "max"));
	assert_true(has_pair(argv, "-smp", "1,maxcpus=2"));
	assert_true(has_pair(argv, "-m", "256M,slots=4,maxmem=512M"));
	assert_true(has_pair(argv, "-object", "memory-backend-memfd,id=mem0,"
			     "size=256M,share=on"));
	assert_true(has_pair(argv, "-numa", "node,memdev=mem0"));
	/* The agent socket is bound by the driver and handed over. */
	assert_true(has_pair(argv, "-chardev", "socket,id=agent,fd=4,"
			     "server=on,wait=off"));
	assert_true(has_pair(argv, "-device", "virtserialport,bus=vser0.0,"
			     "chardev=agent,name=agent.channel.0"));
	assert_true(has_pair(argv, "-device", "vhost-user-fs-pci,chardev=vfs,"
			     "tag=husk"));
	/* Free page reporting gives freed guest pages back. */
	assert_true(has_pair(argv, "-device", "virtio-balloon-pci,"
			     "free-page-reporting=on"));
	/* No taps: virtiofsd's connection comes right after the agent's. */
	assert_true(has_pair(argv, "-chardev", "socket,id=vfs,fd=5"));
	assert_true(has_pair(argv, "-device", "pcie-root-port,id=rp1,"
			     "bus=pcie.0,chassis=2"));
	assert_false(has_pair(argv, "-device", "pcie-root-port,id=rp2,"
			      "bus=pcie.0,chassis=3"));
	/* The console comes to the driver after virtiofsd's socket. */
	assert_true(has_pair(argv, "-chardev", "socket,id=con,fd=6,"
			     "server=off"));
	assert_true(has_pair(argv, "-serial", "chardev:con"));
	/* Jailed, QEMU finds the kernel and initrd at fixed paths. */
	assert_true(has_pair(argv, "-kernel", "/boot/vmlinux"));
	assert_true(has_pair(argv, "-name", "guest=/run/s,,b/vm"));
	assert_true(has_pair(argv, "-chardev", "socket,id=qmp,fd=3,"
			     "server=off"));
	assert_true(has_pair(argv, "-sandbox", "on,obsolete=deny,"
			     "elevateprivileges=deny,spawn=deny,"
			     "resourcecontrol=deny"));
	hv_argv_free(argv);
	/* A configured cache size (create's tcg_cache_mb). */
	c.tcg_cache_mb = 40;
	argv = hv_qemu_argv(&c, &paths);
	assert_true(has_pair(argv, "-accel", "tcg,tb-size=40"));
	hv_argv_free(argv);
}

static void argv_microvm_kvm_nets(void **state)
{
	struct hv_config c;
	char **argv;

	test_config(&c);
	c.machine = HV_MACHINE_MICROVM;
	c.accel = HV_ACCEL_KVM;
	c.max_vcpus = 1;
	c.max_memory_mb = 256;
	c.pci_ports = 0;
	c.nnets = 1;
	snprintf(c.nets[0].id, sizeof(c.nets[0].id), "eth0");
	snprintf(c.nets[0].mac, sizeof(c.nets[0].mac), "02:00:00:00:00:01");
	c.nets[0].mtu = 1400;
	c.nets[0].port = -1;
	argv = hv_qemu_argv(&c, &paths);
	assert_true(has_pair(argv, "-machine", "microvm,acpi=on"));
	assert_true(has_pair(argv, "-accel", "kvm"));
	assert_true(has_pair(argv, "-cpu", "host"));
	assert_true(has_pair(argv, "-m", "256M"));
	assert_true(has_pair(argv, "-device", "virtio-serial-device,id=vser0"));
	assert_true(has_pair(argv, "-device", "virtio-balloon-device,"
			     "free-page-reporting=on"));
	assert_true(has_pair(argv, "-netdev", "tap,id=net-eth0,fd=5"));
	assert_true(has_pair(argv, "-device", "virtio-net-device,"
			     "netdev=net-eth0,id=eth0,mac=02:00:00:00:00:01,"
			     "host_mtu=1400"));
	assert_false(has_arg(argv, "-numa"));
	hv_argv_free(argv);
}

/* Index of the argument equal to val, or -1. */
static int arg_index(char **argv, const char *val)
{
	for (int i = 0; argv[i]; i++)
		if (!strcmp(argv[i], val))
			return i;
	return -1;
}

/* A net attached before start on q35 (net_attach, hv_coldplug_net):
 * on its root port, which the command line defines first; one given
 * at create stays on pcie.0. */
static void argv_q35_net_on_port(void **state)
{
	struct hv_config c;
	char **argv;
	int port, net;

	test_config(&c);
	c.pci_ports = 2;
	c.nnets = 2;
	snprintf(c.nets[0].id, sizeof(c.nets[0].id), "eth0");
	snprintf(c.nets[0].mac, sizeof(c.nets[0].mac), "02:00:00:00:00:01");
	c.nets[0].port = -1;
	snprintf(c.nets[1].id, sizeof(c.nets[1].id), "tap0_husk");
	snprintf(c.nets[1].mac, sizeof(c.nets[1].mac), "02:00:00:00:00:02");
	c.nets[1].port = 1;
	argv = hv_qemu_argv(&c, &paths);
	assert_true(has_pair(argv, "-device", "virtio-net-pci,netdev=net-eth0,"
			     "id=eth0,mac=02:00:00:00:00:01"));
	assert_true(has_pair(argv, "-netdev", "tap,id=net-tap0_husk,fd=6"));
	port = arg_index(argv, "pcie-root-port,id=rp1,bus=pcie.0,chassis=2");
	net = arg_index(argv, "virtio-net-pci,netdev=net-tap0_husk,"
			"id=tap0_husk,mac=02:00:00:00:00:02,bus=rp1");
	assert_true(port > 0);
	assert_true(net > port);
	hv_argv_free(argv);
}

static void kernel_cmdline(void **state)
{
	struct hv_config c;
	char *s;

	test_config(&c);
	c.kernel_params = "husk.debug=1";
	s = hv_kernel_cmdline(&c);
	assert_non_null(strstr(s, "console=ttyS0 quiet panic=-1 "
			       "cryptomgr.notests"));
	/* Two possible vCPUs: the local APIC timer must stay, its clock
	 * given under TCG (no calibration). */
	assert_null(strstr(s, "nolapic_timer"));
	assert_non_null(strstr(s, " lapic_timer_hz=1000000000"));
	free(s);
	c.tsc_khz = 2300000;
	s = hv_kernel_cmdline(&c);
	assert_non_null(strstr(s, " tsc_early_khz=2300000"));
	free(s);
	c.accel = HV_ACCEL_KVM;
	s = hv_kernel_cmdline(&c);
	assert_null(strstr(s, "lapic_timer_hz"));
	assert_null(strstr(s, "tsc_early_khz"));
	c.accel = HV_ACCEL_TCG;
	assert_non_null(strstr(s, " husk.debug=1"));
	/* Room for DIMMs: they come online movable, to be unpluggable. */
	assert_non_null(strstr(s, " memhp_default_state=online_movable"));
	free(s);
	c.max_memory_mb = c.memory_mb;
	s = hv_kernel_cmdline(&c);
	assert_null(strstr(s, "memhp_default_state"));
	free(s);
	c.max_vcpus = 1;
	c.shared_dir = "/share";
	s = hv_kernel_cmdline(&c);
	assert_non_null(strstr(s, "nolapic_timer"));
	assert_null(strstr(s, "lapic_timer_hz"));
	assert_non_null(strstr(s, "husk.share=husk"));
	free(s);
	/* microvm keeps its local APIC timer: it has no other tick. */
	c.machine = HV_MACHINE_MICROVM;
	s = hv_kernel_cmdline(&c);
	assert_null(strstr(s, "nolapic_timer"));
	assert_non_null(strstr(s, "lapic_timer_hz="));
	free(s);
}

static void virtiofsd_argv(void **state)
{
	struct hv_config c;
	char **argv;

	test_config(&c);
	c.shared_dir = "/srv/a,b";
	argv = hv_virtiofsd_argv(&c, &paths, 3);
	assert_string_equal(argv[0], paths.virtiofsd);
	assert_true(has_arg(argv, "--fd=3"));
	assert_true(has_pair(argv, "-o", "source=/srv/a,,b"));
	assert_true(has_pair(argv, "-o", "cache=auto"));
	assert_true(has_pair(argv, "-o", "sandbox=namespace"));
	assert_true(has_pair(argv, "-o", "modcaps=-mknod:-setfcap:-fsetid"));
	assert_true(has_pair(argv, "-o", "announce_submounts"));
	hv_argv_free(argv);
}

/* The share over virtio-9p: QEMU serves it from its jail, no
 * virtiofsd, no shared memory; the console takes virtiofsd's place. */
static void argv_9p(void **state)
{
	struct hv_paths jailed = paths;
	struct hv_config c;
	char **argv;
	char *s;

	test_config(&c);
	c.shared_dir = "/run/s,b/shared";
	c.shared_fs = HV_FS_9P;
	c.console_log = "/run/s,b/console.log";
	jailed.share = HV_JAIL_SHARE;
	argv = hv_qemu_argv(&c, &jailed);
	assert_true(has_pair(argv, "-fsdev", "local,id=fs0,path=/share,"
			     "security_model=passthrough,multidevs=remap"));
	assert_true(has_pair(argv, "-device", "virtio-9p-pci,fsdev=fs0,"
			     "mount_tag=husk"));
	assert_false(has_pair(argv, "-device", "vhost-user-fs-pci,"
			      "chardev=vfs,tag=husk"));
	assert_false(has_pair(argv, "-chardev", "socket,id=vfs,fd=5"));
	assert_false(has_arg(argv, "-numa"));
	assert_false(has_pair(argv, "-object", "memory-backend-memfd,id=mem0,"
			      "size=256M,share=on"));
	assert_true(has_pair(argv, "-chardev", "socket,id=con,fd=5,"
			     "server=off"));
	hv_argv_free(argv);
	/* Unjailed (a bench's bare QEMU): the host path, commas doubled. */
	c.machine = HV_MACHINE_MICROVM;
	argv = hv_qemu_argv(&c, &paths);
	assert_true(has_pair(argv, "-fsdev", "local,id=fs0,"
			     "path=/run/s,,b/shared,security_model=passthrough,"
			     "multidevs=remap"));
	assert_true(has_pair(argv, "-device", "virtio-9p-device,fsdev=fs0,"
			     "mount_tag=husk"));
	hv_argv_free(argv);
	s = hv_kernel_cmdline(&c);
	assert_non_null(strstr(s, " husk.share=husk husk.share_fs=9p"));
	free(s);
	c.shared_fs = HV_FS_VIRTIOFS;
	s = hv_kernel_cmdline(&c);
	assert_null(strstr(s, "husk.share_fs"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lines_split_anywhere),
		cmocka_unit_test(lines_too_long),
		cmocka_unit_test(lines_callback_refusal_stops),
		cmocka_unit_test(parse_kinds),
		cmocka_unit_test(parse_refusals),
		cmocka_unit_test(build_command),
		cmocka_unit_test(argv_q35),
		cmocka_unit_test(argv_microvm_kvm_nets),
		cmocka_unit_test(argv_q35_net_on_port),
		cmocka_unit_test(kernel_cmdline),
		cmocka_unit_test(virtiofsd_argv),
		cmocka_unit_test(argv_9p),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
