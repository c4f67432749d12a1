/*
 * containerd-shim-husk-v2: options, then one of its three lives
 * (docs/shimv2.md):
 *   start    (containerd, in the bundle) start or find the pod's daemon,
 *            write `address`, print it, exit
 *   delete   (containerd, after a daemon died) clean up the task,
 *            DeleteResponse on stdout
 *   (none)   the daemon, serving the Task service on the listening
 *            socket `start` left at descriptor 3
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libhusk/version.h"
#include "shimv2.h"

struct sv *sv;

enum { O_NS = 1, O_ID, O_ADDR, O_PUB, O_BUNDLE, O_DEBUG };

static const struct option sv_opts[] = {
	{ "namespace", required_argument, NULL, O_NS },
	{ "id", required_argument, NULL, O_ID },
	{ "address", required_argument, NULL, O_ADDR },
	{ "publish-binary", required_argument, NULL, O_PUB },
	{ "bundle", required_argument, NULL, O_BUNDLE },
	{ "debug", no_argument, NULL, O_DEBUG },
	{ NULL, 0, NULL, 0 },
};

enum { ACT_SERVE, ACT_START, ACT_DELETE };
static int action;

static int sv_option(struct husk_daemon *d, int key, const char *arg,
		     struct husk_err **err)
{
	struct sv *s = d->arg;

	switch (key) {
	case O_NS: s->ns = arg; break;
	case O_ID: s->id = arg; break;
	case O_ADDR: s->address = arg; break;
	case O_PUB: s->publish_binary = arg; break;
	case O_BUNDLE: s->bundle = arg; break;
	case O_DEBUG: s->debug = true; break;
	default:
		return husk_error(err, HUSK_E_INVALID, "unknown option");
	}
	return 0;
}

static int sv_check(struct husk_daemon *d, struct husk_err **err)
{
	struct sv *s = d->arg;

	if (d->n_operands > 1)
		return husk_error(err, HUSK_E_INVALID, "one action at most "
				  "(start or delete), not '%s %s'",
				  d->operands[0], d->operands[1]);
	if (d->n_operands == 1) {
		if (!strcmp(d->operands[0], "start"))
			action = ACT_START;
		else if (!strcmp(d->operands[0], "delete"))
			action = ACT_DELETE;
		else
			return husk_error(err, HUSK_E_INVALID, "unknown action "
					  "'%s' (start or delete)",
					  d->operands[0]);
	}
	if (!s->ns || !*s->ns)
		return husk_error(err, HUSK_E_INVALID, "-namespace is "
				  "required");
	if (!s->id)
		return husk_error(err, HUSK_E_INVALID, "-id is required");
	if (husk_id_validate(s->id, "-id", err) < 0)
		return -1;
	if (strchr(s->ns, '/'))
		return husk_error(err, HUSK_E_INVALID, "-namespace '%s': a "
				  "namespace has no '/'", s->ns);
	if (action != ACT_DELETE && (!s->address || !*s->address))
		return husk_error(err, HUSK_E_INVALID, "-address is required");
	if (s->debug && d->log_level < HUSK_LOG_DEBUG)
		husk_log_set_level(HUSK_LOG_DEBUG);
	husk_daemon_set_tag(d, "shimv2/%s", s->id);
	s->ttrpc_address = getenv("TTRPC_ADDRESS");
	return 0;
}

/*
 * The daemon logs to the bundle's `log` fifo, which containerd reads
 * into its own log; opened without blocking (a containerd that does
 * not read it must not stop us), lines are lost when it is full.
 */
static void open_log_fifo(struct husk_daemon *d)
{
	int fd;

	if (d->log_path)
		return;
	fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	husk_log_set_fd(fd);
}

static int sv_open(struct husk_daemon *d, struct husk_err **err)
{
	struct sv *s = d->arg;
	int listening = 0;
	socklen_t len = sizeof(listening);

	s->loop = d->loop;
	if (action == ACT_START) {
		d->exit_code = sv_cmd_start(s, 0, NULL, err) < 0 ? -1 : 0;
		return d->exit_code < 0 ? -1 : HUSK_DAEMON_DONE;
	}
	if (action == ACT_DELETE) {
		if (sv_cmd_delete(s, err) < 0)
			return -1;
		return HUSK_DAEMON_DONE;
	}
	/* The daemon: `start` left the listening socket at 3 and /dev/null
	 * on our stdio. */
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		       &len) < 0 || !listening)
		return husk_error(err, HUSK_E_INVALID, "no listening socket at "
				  "descriptor 3: the daemon is started by "
				  "`%s start`", SV_NAME);
	d->quiet_stderr = true;
	open_log_fifo(d);
	s->root = sv_root(s->ns);
	if (husk_mkdir_p(s->root, 0711, err) < 0 ||
	    husk_store_open(&s->store, s->root, err) < 0)
		return -1;
	s->store_open = true;
	return 0;
}

static int sv_confine_step(struct husk_daemon *d, struct husk_err **err)
{
	return sv_confine(d->arg, d->no_seccomp, err);
}

static int sv_run(struct husk_daemon *d, struct husk_err **err)
{
	struct sv *s = d->arg;

	if (sv_serve(s, 3, err) < 0)
		return -1;
	log_info("serving %s in namespace %s", s->id, s->ns);
	return 0;
}

static void sv_close(struct husk_daemon *d)
{
	struct sv *s = d->arg;
	char *sock;

	if (action != ACT_SERVE)
		return;
	/* Calls to the agent still waiting are given up; whatever is left
	 * (a stop signal, containerd gone) goes with us: no VM outlives
	 * its daemon. */
	sv_agent_close_all(s);
	sv_destroy_all(s);
	/* Our socket: `start` named it after our id. */
	if (sv_sock_path(s->address, s->ns, s->id, &sock, NULL) == 0) {
		unlink(sock);
		free(sock);
	}
	if (s->store_open)
		husk_store_close(&s->store);
}

static struct sv the_sv;

static struct husk_daemon me = {
	.name = SV_NAME,
	.tag = "shimv2",
	.version = HUSK_VERSION,
	.usage = "-namespace NS -id ID -address ADDR [-publish-binary PATH]\n"
		 "       [-bundle DIR] [-debug] [start | delete]",
	.options = sv_opts,
	.option = sv_option,
	.check = sv_check,
	.open = sv_open,
	.confine = sv_confine_step,
	.run = sv_run,
	.close = sv_close,
	.log_level = HUSK_LOG_INFO,
	.flags = HUSK_DAEMON_LONG_ONLY | HUSK_DAEMON_OPERANDS |
		 HUSK_DAEMON_NO_SANDBOX_OPT,
	.arg = &the_sv,
};

int main(int argc, char **argv)
{
	sv = &the_sv;
	return husk_daemon_main(&me, argc, argv);
}
