/* husk create, husk start, husk run. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "husk.h"
#include "libhusk/log.h"

struct create_args {
	const char *bundle;
	struct husk_create_opts o;
	bool detach;
	bool keep;
	const char *id;
};

static int parse_create(const char *verb, int argc, char **argv,
			struct create_args *a, struct husk_err **err)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "console-socket", required_argument, NULL, 'c' },
		{ "detach", no_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "no-pivot", no_argument, NULL, 'N' },
		{ "no-new-keyring", no_argument, NULL, 'K' },
		{ "no-subreaper", no_argument, NULL, 'S' },
		{ "preserve-fds", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_run = !strcmp(verb, "run");
	int c;

	a->bundle = ".";
	optind = 1;
	opterr = 0;
	while ((c = getopt_long_only(argc, argv, "+b:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			a->bundle = optarg;
			break;
		case 'p':
			a->o.pid_file = optarg;
			break;
		case 'c':
			a->o.console_socket = optarg;
			break;
		case 'd':
			if (!is_run)
				return husk_bad_option(err, verb, "--detach");
			a->detach = true;
			break;
		case 'k':
			if (!is_run)
				return husk_bad_option(err, verb, "--keep");
			a->keep = true;
			break;
		case 'N':
		case 'K':
		case 'S':
			/* runc options with no meaning in a VM. */
			break;
		case 'P':
			if (strcmp(optarg, "0"))
				return husk_usage_error(err, "%s "
					"--preserve-fds: passing descriptors "
					"into a VM is not supported", verb);
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find(verb), stdout);
			return 1;
		default:
			return husk_bad_option(err, verb, argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return husk_usage_error(err, "%s needs exactly one container id",
					verb);
	a->id = argv[optind];
	/* create always detaches: the container outlives the command. */
	a->o.detach = !is_run || a->detach;
	return 0;
}

int cmd_create(struct husk_ctx *ctx, int argc, char **argv,
	       struct husk_err **err)
{
	struct create_args a = { 0 };
	int rc = parse_create("create", argc, argv, &a, err);

	if (rc)
		return rc < 0 ? -1 : 0;
	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	return husk_ct_create(&ctx->store, &ctx->cfg, a.id, a.bundle, &a.o,
			      err);
}

static int start_id(struct husk_ctx *ctx, const char *id,
		    struct husk_err **err)
{
	struct husk_entry e;
	struct husk_container c;
	int rc;

	if (husk_open_container(ctx, id, HUSK_LOCK_EXCL, &e, &c, err) < 0)
		return -1;
	rc = husk_ct_start(&ctx->store, &ctx->cfg, &e, &c, err);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc;
}

int cmd_start(struct husk_ctx *ctx, int argc, char **argv,
	      struct husk_err **err)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		husk_cmd_usage(husk_cmd_find("start"), stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-')
		return husk_usage_error(err, "start needs exactly one "
					"container id");
	return start_id(ctx, argv[1], err);
}

static volatile sig_atomic_t fwd_pid;

/* Only what someone sent with kill(): a terminal's signals (SI_KERNEL)
 * reach the shim directly, being in our process group. */
static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (fwd_pid > 0 && si && si->si_code <= 0)
		kill(fwd_pid, sig);
}

static int delete_quietly(struct husk_ctx *ctx, const char *id)
{
	struct husk_err *e = NULL;
	struct husk_entry en;
	struct husk_container c;
	int rc = 0;

	if (husk_open_container(ctx, id, HUSK_LOCK_EXCL, &en, &c, &e) == 0) {
		rc = husk_ct_destroy(&ctx->store, &ctx->cfg, &en, &c, true,
				     &e);
		husk_container_free(&c);
		husk_entry_close(&en);
	}
	if (e)
		log_warnx("run: delete %s: %s", id, e->msg);
	husk_err_free(e);
	return rc;
}

/*
 * husk run: create and start; in the foreground, wait for the shim (our
 * child: it exits with the container process's status), pass the status
 * on and delete the container, as runc run does.  Signals sent to husk
 * go to the shim, which forwards them into the container.
 */
int cmd_run(struct husk_ctx *ctx, int argc, char **argv,
	    struct husk_err **err)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT,
				    SIGUSR1, SIGUSR2 };
	struct create_args a = { 0 };
	pid_t shim = 0;
	int rc, status;

	rc = parse_create("run", argc, argv, &a, err);
	if (rc)
		return rc < 0 ? -1 : 0;
	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	a.o.shim_pid = &shim;
	if (husk_ct_create(&ctx->store, &ctx->cfg, a.id, a.bundle, &a.o,
			   err) < 0)
		return -1;
	if (!a.detach) {
		struct sigaction sa = { .sa_sigaction = forward,
					.sa_flags = SA_SIGINFO };

		fwd_pid = shim;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &sa, NULL);
	}
	if (start_id(ctx, a.id, err) < 0) {
		delete_quietly(ctx, a.id);
		return -1;
	}
	if (a.detach)
		return 0;
	while (waitpid(shim, &status, 0) < 0)
		if (errno != EINTR) {
			husk_error_sys(err, errno, "wait for the shim");
			return -1;
		}
	fwd_pid = 0;
	if (!a.keep)
		delete_quietly(ctx, a.id);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
