/*
 * A pod's daemon state around a fake proxy in the test's own process,
 * for the tests of shimv2's calls to the agent (test_shimv2_oom,
 * test_shimv2_agent): sandbox "sb" under a temporary root, its
 * proxy.sock served by the test's methods, task "c1" in it.
 * Include after cmocka.h and ipc_testlib.h.
 */
#ifndef HUSK_SHIMV2_TESTLIB_H
#define HUSK_SHIMV2_TESTLIB_H

#include <sys/stat.h>

#include "libipc/proto_proxy.h"
#include "shimv2/shimv2.h"

struct st {
	struct ev_loop *loop;
	char *root;
	struct ipc_server *srv;
	struct sv s;
	struct sv_task t;
};

static inline struct st *sv_fx_new(const struct ipc_method *methods)
{
	struct st *x = calloc(1, sizeof(*x));
	struct ipc_server_opts so = {
		.conn = { .component = PROXY_COMPONENT,
			  .methods = methods, .trusted = true },
	};
	char dir[PATH_MAX], sock[PATH_MAX + 16];

	x->loop = ev_loop_new(EVFLAG_AUTO);
	x->root = tl_tmpdir();
	snprintf(dir, sizeof(dir), "%s/sb", x->root);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(sock, sizeof(sock), "%s/proxy.sock", dir);
	x->srv = ipc_server_new(x->loop, sock, &so, NULL);
	assert_non_null(x->srv);
	x->s.loop = x->loop;
	x->s.root = x->root;
	x->t.id = "c1";
	x->t.sandbox_id = "sb";
	return x;
}

static inline int sv_fx_free(void **state)
{
	struct st *x = *state;

	sv_oom_stop(&x->s, &x->t);
	sv_agent_close_all(&x->s);
	ipc_server_free(x->srv);
	ev_loop_destroy(x->loop);
	tl_rmdir(x->root);
	free(x);
	return 0;
}

#endif
