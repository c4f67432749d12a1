/*
 * agent/spec.c: the OCI config.json as the agent decodes it.  A whole
 * spec as docker 20.10 sends it (tests/unit/fixtures/) must decode;
 * fields a VM cannot apply are noted, not refused; the rest is checked
 * value by value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>

#include "libhusk/cleanup.h"
#include "tests/unit/agent_testlib.h"
#include "agent/spec_int.h"

static int setup(void **state)
{
	*state = at_new();
	return 0;
}

static int teardown(void **state)
{
	at_free(*state);
	return 0;
}

/* The fixture, from the source tree (tests/run exports HUSK_SRC). */
static const msgpack_object *fixture(struct at *t, const char *name)
{
	const char *src = getenv("HUSK_SRC");
	char path[4096];
	json_error_t je;
	json_t *j;

	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/%s",
		 src ? src : ".", name);
	j = json_load_file(path, 0, &je);
	if (!j)
		fail_msg("%s: %s (line %d)", path, je.text, je.line);
	assert_int_equal(ipc_json_pack(&t->pk, j, NULL), 0);
	json_decref(j);
	return at_obj(t);
}

static bool has_note(char **notes, const char *prefix)
{
	for (; notes && *notes; notes++)
		if (strncmp(*notes, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

/* A minimal valid spec with extra members spliced in: PROC inside
 * process, LINUX inside linux, TOP at the top (each starting with a
 * comma, or empty). */
static int decode_with(struct at *t, const char *proc, const char *lx,
		       const char *top, struct spec **s)
{
	char js[8192];

	snprintf(js, sizeof(js),
		 "{'process': {'args': ['true'], 'cwd': '/'%s},"
		 " 'root': {'path': 'rootfs'},"
		 " 'linux': {'namespaces': [{'type': 'mount'}, {'type': 'uts'},"
		 "  {'type': 'pid'}]%s}%s}", proc, lx, top);
	*s = NULL;
	return spec_decode(at_json(t, js), s, &t->err);
}

static void test_docker_20_10(void **state)
{
	struct at *t = *state;
	struct spec *s = NULL;

	if (spec_decode(fixture(t, "docker-20.10-config.json"), &s,
			&t->err) < 0)
		fail_msg("docker's spec: %s", t->err->msg);
	assert_int_equal(s->ns_flags, CLONE_NEWNS | CLONE_NEWUTS |
			 CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWCGROUP);
	assert_string_equal(s->proc.args[0], "sh");
	assert_true(s->proc.has_caps);
	assert_true(s->proc.has_oom_score_adj);
	assert_int_equal(s->proc.oom_score_adj, 0);
	/* AppArmor is logged, not refused. */
	assert_true(has_note(s->proc.notes, "spec.process.apparmorProfile: "));
	assert_int_equal(s->nmounts, 10);
	assert_true(s->mounts[6].bind && s->mounts[6].rec);
	assert_int_equal(s->mounts[6].propagation, MS_PRIVATE | MS_REC);
	assert_string_equal(s->mounts[2].data,
			    "newinstance,ptmxmode=0666,mode=0620,gid=5");
	assert_int_equal(s->nsysctl, 2);
	assert_true(s->has_resources);
	assert_int_equal(s->res.blkio_weight, 300);
	assert_int_equal(s->res.nthrottle[CG_RBPS], 1);
	assert_int_equal(s->res.throttle[CG_RBPS][0].major, 254);
	assert_int_equal(s->res.throttle[CG_RBPS][0].value, 1048576);
	/* docker's 14, /dev/fuse, runc's 11 always-allowed. */
	assert_int_equal(s->res.ndevice_rules, 14 + 1 + 11);
	assert_true(s->res.memory_oom_kill_disable == CG_UNSET);
	assert_true(s->res.cpu_shares == CG_UNSET);
	assert_true(s->res.pids_limit == CG_UNSET);
	assert_null(s->res.notes);
	assert_int_equal(s->ndevices, 1);
	assert_string_equal(s->devices[0].path, "/dev/fuse");
	assert_int_equal(s->devices[0].type, 'c');
	assert_int_equal(s->devices[0].major, 10);
	assert_int_equal(s->devices[0].minor, 229);
	assert_int_equal(s->devices[0].mode, 0666);
	assert_non_null(s->seccomp);
	assert_non_null(s->masked_paths);
	assert_string_equal(s->masked_paths[9], "/sys/firmware");
	assert_null(s->masked_paths[10]);
	assert_string_equal(s->readonly_paths[4], "/proc/sysrq-trigger");
	/* runc's default for an absent rootfsPropagation. */
	assert_int_equal(s->root_propagation, MS_SLAVE | MS_REC);
	assert_false(s->has_root_propagation);
	spec_free(s);
}

/* What the guest has no use for is noted (one log line each), never
 * an error: the spec's LSM fields, Windows fields, Intel RDT. */
static void test_noted_fields(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t,
		", 'apparmorProfile': 'docker-default',"
		" 'selinuxLabel': 'system_u:system_r:container_t:s0:c1,c2',"
		" 'commandLine': 'cmd.exe',"
		" 'user': {'uid': 0, 'gid': 0, 'username': 'root'}",
		", 'mountLabel': 'system_u:object_r:container_file_t:s0',"
		" 'intelRdt': {'closID': 'guaranteed', 'l3CacheSchema': 'L3:0=7f'}",
		", 'annotations': {'org.example': 'x'},"
		" 'hooks': {'createRuntime': [{'path': '/bin/true'}]}", &s), 0);
	assert_true(has_note(s->proc.notes, "spec.process.apparmorProfile: "));
	assert_true(has_note(s->proc.notes, "spec.process.selinuxLabel: "));
	assert_true(has_note(s->proc.notes, "spec.process.commandLine: "));
	assert_true(has_note(s->proc.notes, "spec.process.user.username: "));
	assert_true(has_note(s->notes, "spec.linux.mountLabel: "));
	assert_true(has_note(s->notes, "spec.linux.intelRdt: "));
	assert_null(s->notes[2]);
	spec_free(s);
	/* Keys the spec does not have (or newer than 1.0.2 and not
	 * applied) are noted, as the spec asks, not refused. */
	assert_int_equal(decode_with(t, ", 'execCPUAffinity': {'initial': '0'}",
		", 'netDevices': {'eth1': {}}", ", 'windows': {}, 'x\\ny': 1",
		&s), 0);
	assert_true(has_note(s->proc.notes, "spec.process.execCPUAffinity: not a runtime-spec field"));
	assert_true(has_note(s->notes, "spec.linux.netDevices: not a runtime-spec field"));
	assert_true(has_note(s->notes, "spec.windows: not a runtime-spec field"));
	assert_true(has_note(s->notes, "spec.x?y: not a runtime-spec field"));
	spec_free(s);
	/* Empty ones say nothing. */
	assert_int_equal(decode_with(t, ", 'apparmorProfile': ''",
				     ", 'mountLabel': ''", "", &s), 0);
	assert_null(s->proc.notes);
	assert_null(s->notes);
	spec_free(s);
}

static void test_root_propagation(void **state)
{
	struct at *t = *state;
	static const struct {
		const char *name;
		unsigned long flags;
	} cases[] = {
		{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC },
		{ "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
		{ "shared", MS_SHARED }, { "rshared", MS_SHARED | MS_REC },
		{ "unbindable", MS_UNBINDABLE },
		{ "runbindable", MS_UNBINDABLE | MS_REC },
	};
	char lx[128];
	struct spec *s;

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		snprintf(lx, sizeof(lx), ", 'rootfsPropagation': '%s'",
			 cases[i].name);
		assert_int_equal(decode_with(t, "", lx, "", &s), 0);
		assert_int_equal(s->root_propagation, cases[i].flags);
		assert_true(s->has_root_propagation);
		spec_free(s);
	}
	assert_int_equal(decode_with(t, "", ", 'rootfsPropagation': 'bogus'",
				     "", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.rootfsPropagation: \"bogus\" is not one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable");
}

static void test_mount_propagation(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t, "", "",
		", 'mounts': ["
		"{'destination': '/a', 'type': 'tmpfs', 'source': 't', 'options': ['shared']},"
		"{'destination': '/b', 'type': 'bind', 'source': 'x', 'options': ['rbind', 'rslave']},"
		"{'destination': '/c', 'source': 'x', 'options': ['bind', 'runbindable', 'ro']},"
		"{'destination': '/d', 'type': 'tmpfs', 'source': 't', 'options': ['rshared', 'private']}]",
		&s), 0);
	assert_int_equal(s->mounts[0].propagation, MS_SHARED);
	assert_false(s->mounts[0].bind);
	assert_int_equal(s->mounts[1].propagation, MS_SLAVE | MS_REC);
	assert_true(s->mounts[1].rec);
	assert_int_equal(s->mounts[2].propagation, MS_UNBINDABLE | MS_REC);
	assert_int_equal(s->mounts[2].flags, MS_RDONLY);
	/* The last one given wins. */
	assert_int_equal(s->mounts[3].propagation, MS_PRIVATE);
	spec_free(s);

	/* Recursive attributes: the later undoes the earlier; an atime
	 * mode replaces the one before. */
	assert_int_equal(decode_with(t, "", "",
		", 'mounts': [{'destination': '/a', 'type': 'bind', 'source': 'x',"
		" 'options': ['rbind', 'rro', 'rnosuid', 'rnoatime', 'rrw',"
		"  'rstrictatime', 'tmpcopyup', 'nosymfollow']}]", &s), 0);
	assert_int_equal(s->mounts[0].rattr_set,
			 MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME);
	assert_int_equal(s->mounts[0].rattr_clr,
			 MOUNT_ATTR_RDONLY | MOUNT_ATTR__ATIME);
	assert_true(s->mounts[0].copyup);
	assert_int_equal(s->mounts[0].flags, MS_NOSYMFOLLOW);
	assert_null(s->mounts[0].data);
	spec_free(s);
}

static void test_devices(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t, "",
		", 'devices': [{'path': '/dev/fuse', 'type': 'c', 'major': 10,"
		"  'minor': 229, 'fileMode': 8630, 'uid': 1000, 'gid': 5},"
		" {'path': '/dev/loop9', 'type': 'b', 'major': 7, 'minor': 9},"
		" {'path': '/dev/myfifo', 'type': 'p'}]", "", &s), 0);
	assert_int_equal(s->ndevices, 3);
	/* 8630 is S_IFCHR | 0666: the type bits are the type's. */
	assert_int_equal(s->devices[0].mode, 0666);
	assert_int_equal(s->devices[0].uid, 1000);
	assert_int_equal(s->devices[0].gid, 5);
	assert_int_equal(s->devices[1].type, 'b');
	assert_int_equal(s->devices[1].mode, 0666);
	assert_int_equal(s->devices[2].type, 'p');
	spec_free(s);
	assert_int_equal(decode_with(t, "",
		", 'devices': [{'path': '/etc/x', 'type': 'c', 'major': 1, 'minor': 3}]",
		"", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.devices[0].path: must be below /dev");
}

static void test_personality_domainname(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t, "",
		", 'personality': {'domain': 'LINUX32', 'flags': []}",
		", 'domainname': 'example.org'", &s), 0);
	assert_true(s->has_personality);
	assert_int_equal(s->personality, 8);
	assert_string_equal(s->domainname, "example.org");
	spec_free(s);
	assert_int_equal(decode_with(t, "",
		", 'personality': {'domain': 'LINUX64'}", "", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.personality.domain: expected LINUX or LINUX32");
}

static void test_io_priority_scheduler(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t,
		", 'ioPriority': {'class': 'IOPRIO_CLASS_IDLE', 'priority': 7},"
		" 'scheduler': {'policy': 'SCHED_BATCH', 'nice': 5,"
		"  'flags': ['SCHED_FLAG_RESET_ON_FORK']}", "", "", &s), 0);
	assert_int_equal(s->proc.io_class, 3);
	assert_int_equal(s->proc.io_prio, 7);
	assert_true(s->proc.has_sched);
	assert_int_equal(s->proc.sched_policy, 3);
	assert_int_equal(s->proc.sched_nice, 5);
	assert_int_equal(s->proc.sched_flags, 1);
	spec_free(s);
	assert_int_equal(decode_with(t,
		", 'ioPriority': {'class': 'IOPRIO_CLASS_X'}", "", "", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.process.ioPriority.class: expected IOPRIO_CLASS_RT, _BE or _IDLE");
	assert_int_equal(decode_with(t,
		", 'ioPriority': {'class': 'IOPRIO_CLASS_BE', 'priority': 8}",
		"", "", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.process.ioPriority.priority: 8 is out of range [0, 7]");
	assert_int_equal(decode_with(t,
		", 'scheduler': {'policy': 'SCHED_NOPE'}", "", "", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.process.scheduler.policy: unknown policy \"SCHED_NOPE\"");
}

static void test_user_namespace(void **state)
{
	struct at *t = *state;
	struct spec *s;

	assert_int_equal(decode_with(t, "",
		", 'namespaces': [{'type': 'mount'}, {'type': 'user'}],"
		" 'uidMappings': [{'containerID': 0, 'hostID': 100000, 'size': 65536},"
		"  {'containerID': 65536, 'hostID': 4294901760, 'size': 65536}],"
		" 'gidMappings': [{'containerID': 0, 'hostID': 200000, 'size': 1}]",
		"", &s), 0);
	assert_true(s->ns_flags & CLONE_NEWUSER);
	assert_int_equal(s->nuid_maps, 2);
	assert_int_equal(s->uid_maps[0].host_id, 100000);
	assert_int_equal(s->uid_maps[1].host_id, 4294901760u);
	assert_int_equal(s->ngid_maps, 1);
	assert_int_equal(s->gid_maps[0].size, 1);
	spec_free(s);

	assert_int_equal(decode_with(t, "",
		", 'uidMappings': [{'containerID': 0, 'hostID': 1, 'size': 1}],"
		" 'gidMappings': [{'containerID': 0, 'hostID': 1, 'size': 1}]",
		"", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.uidMappings: given without a user namespace in spec.linux.namespaces");
	assert_int_equal(decode_with(t, "",
		", 'namespaces': [{'type': 'mount'}, {'type': 'user'}],"
		" 'uidMappings': [{'containerID': 0, 'hostID': 1, 'size': 1}]",
		"", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.gidMappings: a user namespace needs it");
	assert_int_equal(decode_with(t, "",
		", 'namespaces': [{'type': 'mount'}, {'type': 'user'}],"
		" 'uidMappings': [{'containerID': 0, 'hostID': 4294967295, 'size': 2}],"
		" 'gidMappings': [{'containerID': 0, 'hostID': 1, 'size': 1}]",
		"", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.uidMappings[0].size: 2 ids from 0 (container) and 4294967295 (host) leave the 32-bit id range or are none");
	assert_int_equal(decode_with(t, "",
		", 'namespaces': [{'type': 'mount'}, {'type': 'user'}],"
		" 'uidMappings': [{'containerID': 0, 'hostID': 1}],"
		" 'gidMappings': [{'containerID': 0, 'hostID': 1, 'size': 1}]",
		"", &s), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "spec.linux.uidMappings[0].size: missing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_docker_20_10, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_noted_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_root_propagation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mount_propagation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_personality_domainname,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_priority_scheduler,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_namespace, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
