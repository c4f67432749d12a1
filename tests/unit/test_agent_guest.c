/*
 * agent/guest.c: params of the guest methods and copy_file's writes,
 * which must stay below the copy roots and never follow a symlink.
 *
 * Linked with build/lib/libagent.a (agent/program.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "agent/guest.h"
#include "tests/unit/agent_testlib.h"

struct gt {
	struct at *t;
	char dir[64];           /* the copy root */
	char outside[80];
	char *roots[2];
};

static int setup(void **state)
{
	struct gt *g = calloc(1, sizeof(*g));

	g->t = at_new();
	snprintf(g->dir, sizeof(g->dir), "/tmp/husk-guest-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->outside, sizeof(g->outside), "%s.outside", g->dir);
	assert_int_equal(mkdir(g->outside, 0700), 0);
	g->roots[0] = g->dir;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct gt *g = *state;

	husk_rmtree_at(AT_FDCWD, g->dir, NULL);
	husk_rmtree_at(AT_FDCWD, g->outside, NULL);
	at_free(g->t);
	free(g);
	return 0;
}

/* copy_file params for path/data, packed and decoded. */
static int copy(struct gt *g, const char *path, const char *data,
		uint64_t offset, uint64_t size, uint32_t mode)
{
	struct guest_copy c;
	int rc;

	msgpack_pack_map(&g->t->pk, 5);
	ipc_pack_kv_str(&g->t->pk, "path", path);
	ipc_pack_kv_bin(&g->t->pk, "data", data, strlen(data));
	ipc_pack_kv_uint(&g->t->pk, "offset", offset);
	ipc_pack_kv_uint(&g->t->pk, "file_size", size);
	ipc_pack_kv_uint(&g->t->pk, "mode", mode);
	if (guest_copy_decode(at_obj(g->t), &c, &g->t->err) < 0)
		return -1;
	assert_int_equal(c.uid, 0);
	rc = guest_copy_write(g->roots, &c, &g->t->err);
	guest_copy_free(&c);
	return rc;
}

static char *slurp(const char *path)
{
	char *s = NULL;

	assert_int_equal(husk_read_file(AT_FDCWD, path, 1 << 20, &s, NULL,
					NULL), 0);
	return s;
}

static void test_copy_chunks(void **state)
{
	struct gt *g = *state;
	char path[128];
	struct stat st;
	char *s;

	snprintf(path, sizeof(path), "%s/a/b/f.txt", g->dir);
	assert_int_equal(copy(g, path, "hello ", 0, 11, 0640), 0);
	assert_int_equal(copy(g, path, "world", 6, 11, 0640), 0);
	s = slurp(path);
	assert_string_equal(s, "hello world");
	free(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* Parents were made 0755. */
	snprintf(path, sizeof(path), "%s/a/b", g->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	/* Offset 0 starts over: a shorter file is not left with a tail. */
	snprintf(path, sizeof(path), "%s/a/b/f.txt", g->dir);
	assert_int_equal(copy(g, path, "bye", 0, 3, 0600), 0);
	s = slurp(path);
	assert_string_equal(s, "bye");
	free(s);
	/* An empty file. */
	snprintf(path, sizeof(path), "%s/empty", g->dir);
	assert_int_equal(copy(g, path, "", 0, 0, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
}

static void test_copy_refused(void **state)
{
	struct gt *g = *state;
	struct at *t = g->t;
	char path[160], target[160];

	/* Outside every root. */
	assert_int_equal(copy(g, "/etc/husk-test", "x", 0, 1, 0600), -1);
	assert_int_equal(t->err->code, HUSK_E_PERMISSION);
	husk_err_clear(&t->err);
	/* A root that is a prefix of the name is not a parent. */
	snprintf(path, sizeof(path), "%s.outside/f", g->dir);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	assert_int_equal(t->err->code, HUSK_E_PERMISSION);
	husk_err_clear(&t->err);
	/* The root itself. */
	assert_int_equal(copy(g, g->dir, "x", 0, 1, 0600), -1);
	husk_err_clear(&t->err);
	/* Climbing. */
	snprintf(path, sizeof(path), "%s/../%s", g->dir,
		 strrchr(g->outside, '/') + 1);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	assert_int_equal(t->err->code, HUSK_E_INVALID);
	husk_err_clear(&t->err);
	assert_int_equal(copy(g, "relative/path", "x", 0, 1, 0600), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "params.path: `relative/path` is not absolute");

	/* A symlinked parent directory. */
	snprintf(path, sizeof(path), "%s/link", g->dir);
	assert_int_equal(symlink(g->outside, path), 0);
	snprintf(path, sizeof(path), "%s/link/f", g->dir);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	husk_err_clear(&t->err);
	/* A symlink as the file. */
	snprintf(target, sizeof(target), "%s/victim", g->outside);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	husk_err_clear(&t->err);
	snprintf(path, sizeof(path), "%s/flink", g->dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	husk_err_clear(&t->err);
	assert_int_equal(access(target, F_OK), -1);
	/* A hard link to a file elsewhere. */
	assert_int_equal(close(open(target, O_CREAT | O_WRONLY, 0600)), 0);
	snprintf(path, sizeof(path), "%s/hlink", g->dir);
	assert_int_equal(link(target, path), 0);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	assert_int_equal(t->err->code, HUSK_E_PERMISSION);
	assert_non_null(strstr(t->err->msg, "has other hard links"));
	husk_err_clear(&t->err);
	/* A FIFO does not hang us. */
	snprintf(path, sizeof(path), "%s/fifo", g->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(copy(g, path, "x", 0, 1, 0600), -1);
	husk_err_clear(&t->err);
}

static void test_copy_decode(void **state)
{
	struct gt *g = *state;
	struct at *t = g->t;
	struct guest_copy c;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "{'data': 'x', 'file_size': 1}", "params.path: missing" },
		{ "{'path': '/run/husk/f', 'file_size': 1}", "params.data: missing" },
		{ "{'path': '/run/husk/f', 'data': 'x'}", "params.file_size: missing" },
		{ "{'path': '/run/husk/f', 'data': 'x', 'file_size': 67108865}",
		  "params.file_size: 67108865 is out of range [0, 67108864]" },
		{ "{'path': '/run/husk/f', 'data': 'x', 'file_size': 1, 'mode': 4096}",
		  "params.mode: 4096 is out of range [0, 4095]" },
	};

	for (size_t i = 0; i < HUSK_ARRAY_SIZE(cases); i++) {
		assert_int_equal(guest_copy_decode(at_json(t, cases[i].json), &c,
						   &t->err), -1);
		/* JSON strings pack as str, not bin: the data check may
		 * come first; only the missing-field cases are exact. */
		if (strstr(cases[i].json, "'data'") &&
		    strcmp(t->err->msg, "params.data: expected binary data, got a string") == 0) {
			husk_err_clear(&t->err);
			continue;
		}
		at_expect_err(t, HUSK_E_INVALID, cases[i].msg);
	}
	/* offset + data past file_size. */
	msgpack_pack_map(&t->pk, 4);
	ipc_pack_kv_str(&t->pk, "path", "/run/husk/f");
	ipc_pack_kv_bin(&t->pk, "data", "abc", 3);
	ipc_pack_kv_uint(&t->pk, "offset", 2);
	ipc_pack_kv_uint(&t->pk, "file_size", 4);
	assert_int_equal(guest_copy_decode(at_obj(t), &c, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "params.offset: 2 + 3 bytes is past file_size 4");
}

static void test_time_seed(void **state)
{
	struct gt *g = *state;
	struct at *t = g->t;
	struct guest_time tm;
	struct ipc_bin b;
	char big[GUEST_SEED_MAX + 1] = { 0 };

	assert_int_equal(guest_time_decode(at_json(t,
		"{'sec': 1700000000, 'usec': 5}"), &tm, &t->err), 0);
	assert_int_equal(tm.sec, 1700000000);
	assert_int_equal(tm.usec, 5);
	assert_int_equal(guest_time_decode(at_json(t,
		"{'sec': 1, 'usec': 1000000}"), &tm, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "params.usec: 1000000 is out of range [0, 999999]");
	assert_int_equal(guest_time_decode(at_json(t, "{'sec': -1}"), &tm,
					   &t->err), -1);
	husk_err_clear(&t->err);

	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_bin(&t->pk, "data", "seed", 4);
	assert_int_equal(guest_seed_decode(at_obj(t), &b, &t->err), 0);
	assert_int_equal(b.len, 4);
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_bin(&t->pk, "data", "", 0);
	assert_int_equal(guest_seed_decode(at_obj(t), &b, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID, "params.data: empty (1 to 4096 bytes)");
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_bin(&t->pk, "data", big, sizeof(big));
	assert_int_equal(guest_seed_decode(at_obj(t), &b, &t->err), -1);
	at_expect_err(t, HUSK_E_INVALID,
		      "params.data: 4097 bytes is longer than 4096");
	/* Host mode only mixes bytes into the pool. */
	msgpack_pack_map(&t->pk, 1);
	ipc_pack_kv_bin(&t->pk, "data", "seed", 4);
	assert_int_equal(guest_seed_decode(at_obj(t), &b, &t->err), 0);
	if (access("/dev/urandom", W_OK) == 0)
		assert_int_equal(guest_seed(true, &b, &t->err), 0);
}

static void test_machine(void **state)
{
	(void)state;
	assert_true(guest_mem_total_kb() > 0);
	assert_true(guest_mem_online_kb() > 0);
	assert_true(guest_online_cpus() > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_seed, setup, teardown),
		cmocka_unit_test(test_machine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
