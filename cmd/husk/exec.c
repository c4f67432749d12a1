/*
 * husk exec: another process in a running container.  The process is
 * created in the guest, then a shim stands in for it on the host: in the
 * foreground the shim is our child and its exit status is ours; with
 * --detach it outlives us and its pid goes to --pid-file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/proto_agent.h"

struct exec_args {
	const char *process_file, *pid_file, *console, *cwd, *user;
	const char *apparmor, *label;
	bool tty, detach, nnp;
	json_t *env, *caps, *gids;
	char **cmd;
	const char *id;
};

static json_t *base_process(const struct husk_container *c)
{
	struct husk_bundle b;
	json_t *p;

	if (husk_bundle_load(c->bundle, &b, NULL) < 0)
		return json_pack("{s:s, s:[s]}", "cwd", "/", "env",
				 "PATH=/usr/local/sbin:/usr/local/bin:"
				 "/usr/sbin:/usr/bin:/sbin:/bin");
	p = json_deep_copy(json_object_get(b.spec, "process"));
	husk_bundle_free(&b);
	return p;
}

static int parse_user(const char *s, json_t *proc, struct husk_err **err)
{
	long long uid, gid = 0;
	cleanup_free char *u = husk_xstrdup(s);
	char *colon = strchr(u, ':');
	json_t *user;

	if (colon)
		*colon++ = '\0';
	if (husk_parse_int(u, 0, 0xfffffffe, &uid) < 0 ||
	    (colon && husk_parse_int(colon, 0, 0xfffffffe, &gid) < 0))
		return husk_usage_error(err, "exec --user: '%s' is not "
					"UID[:GID] (numeric ids only)", s);
	user = json_object_get(proc, "user");
	if (!json_is_object(user)) {
		user = json_object();
		json_object_set_new(proc, "user", user);
	}
	json_object_set_new(user, "uid", json_integer(uid));
	json_object_set_new(user, "gid", json_integer(gid));
	return 0;
}

static json_t *build_process(const struct exec_args *a,
			     const struct husk_container *c,
			     struct husk_err **err)
{
	json_t *p, *v;
	size_t i;

	if (a->process_file) {
		json_error_t jerr;

		p = json_load_file(a->process_file, 0, &jerr);
		if (!p) {
			husk_error(err, HUSK_E_INVALID, "exec --process %s:%d: "
				   "%s", a->process_file, jerr.line,
				   jerr.text);
			return NULL;
		}
	} else {
		p = base_process(c);
		v = json_array();
		for (char **s = a->cmd; *s; s++)
			json_array_append_new(v, json_string(*s));
		json_object_set_new(p, "args", v);
		json_object_set_new(p, "terminal", json_boolean(a->tty));
		json_object_del(p, "consoleSize");
	}
	if (a->tty)
		json_object_set_new(p, "terminal", json_true());
	if (json_array_size(a->env)) {
		v = json_object_get(p, "env");
		if (!json_is_array(v)) {
			v = json_array();
			json_object_set_new(p, "env", v);
		}
		json_array_extend(v, a->env);
	}
	if (a->cwd)
		json_object_set_new(p, "cwd", json_string(a->cwd));
	if (a->user && parse_user(a->user, p, err) < 0)
		goto fail;
	if (json_array_size(a->gids)) {
		if (!json_is_object(json_object_get(p, "user")))
			json_object_set_new(p, "user", json_pack("{s:i, s:i}",
								 "uid", 0,
								 "gid", 0));
		json_object_set_new(json_object_get(p, "user"),
				    "additionalGids", json_incref(a->gids));
	}
	if (a->nnp)
		json_object_set_new(p, "noNewPrivileges", json_true());
	/* As the config's own fields: the guest decides what it can do
	 * with them (husk-agent(8)). */
	if (a->apparmor)
		json_object_set_new(p, "apparmorProfile",
				    json_string(a->apparmor));
	if (a->label)
		json_object_set_new(p, "selinuxLabel", json_string(a->label));
	if (json_array_size(a->caps)) {
		json_t *caps = json_object_get(p, "capabilities");
		static const char *const sets[] = { "bounding", "effective",
						    "permitted", NULL };

		if (!json_is_object(caps)) {
			caps = json_object();
			json_object_set_new(p, "capabilities", caps);
		}
		for (const char *const *s = sets; *s; s++) {
			json_t *set = json_object_get(caps, *s);

			if (!json_is_array(set)) {
				set = json_array();
				json_object_set_new(caps, *s, set);
			}
			json_array_foreach(a->caps, i, v)
				json_array_append(set, v);
		}
	}
	if (husk_process_validate(p, err) < 0) {
		husk_error_wrap(err, "exec");
		goto fail;
	}
	return p;
fail:
	json_decref(p);
	return NULL;
}

static int parse_exec(int argc, char **argv, struct exec_args *a,
		      struct husk_err **err)
{
	enum { O_PROC = 1, O_PID, O_CONS, O_CWD, O_USER, O_ENV, O_TTY, O_DET,
	       O_CAP, O_NNP, O_GID, O_AA, O_LABEL, O_FDS, O_CGROUP, O_PAUSED,
	       O_HELP };
	static const char opts[] =
		"process|p= pid-file= console-socket= cwd= user|u= env|e= "
		"tty|t detach|d cap|c= no-new-privs additional-gids|g= "
		"apparmor= process-label= preserve-fds= cgroup= "
		"ignore-paused help";
	long long n;
	int ch;

	optind = 1;
	opterr = 0;
	while ((ch = husk_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case O_PROC: a->process_file = optarg; break;
		case O_PID: a->pid_file = optarg; break;
		case O_CONS: a->console = optarg; break;
		case O_CWD: a->cwd = optarg; break;
		case O_USER: a->user = optarg; break;
		case O_TTY: a->tty = true; break;
		case O_DET: a->detach = true; break;
		case O_NNP: a->nnp = true; break;
		case O_AA: a->apparmor = optarg; break;
		case O_LABEL: a->label = optarg; break;
		case O_FDS:
			if (husk_parse_int(optarg, 0, INT32_MAX, &n) < 0)
				return husk_usage_error(err, "exec "
					"--preserve-fds: '%s' is not a "
					"number", optarg);
			if (n > 0)
				return husk_error(err, HUSK_E_INVALID, "exec "
					"--preserve-fds %s: refused: a "
					"descriptor cannot cross into the "
					"VM (only 0 is accepted)", optarg);
			break;
		case O_CGROUP:
			return husk_error(err, HUSK_E_INVALID, "exec --cgroup "
				"%s: refused: the container's cgroups are "
				"in the VM, and husk-agent places an exec in "
				"the container's own cgroup only", optarg);
		case O_PAUSED:
			return husk_error(err, HUSK_E_INVALID, "exec "
				"--ignore-paused: refused: a process "
				"started in a frozen container cannot "
				"report to husk-agent until it is resumed");
		case O_ENV:
			if (!strchr(optarg, '='))
				return husk_usage_error(err, "exec --env: '%s' "
							"is not NAME=VALUE",
							optarg);
			json_array_append_new(a->env, json_string(optarg));
			break;
		case O_CAP:
			if (!husk_cap_known(optarg))
				return husk_usage_error(err, "exec --cap: "
							"unknown capability "
							"'%s'", optarg);
			json_array_append_new(a->caps, json_string(optarg));
			break;
		case O_GID:
			if (husk_parse_int(optarg, 0, 0xfffffffe, &n) < 0)
				return husk_usage_error(err, "exec "
					"--additional-gids: '%s' is not a "
					"gid", optarg);
			json_array_append_new(a->gids, json_integer(n));
			break;
		case O_HELP:
			husk_cmd_usage(husk_cmd_find("exec"), stdout);
			return 1;
		default:
			return husk_bad_option(err, "exec", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return husk_usage_error(err, "exec needs a container id");
	a->id = argv[optind++];
	a->cmd = argv + optind;
	if (!a->process_file && !*a->cmd)
		return husk_usage_error(err, "exec needs a command or "
					"--process");
	if (a->process_file && *a->cmd)
		return husk_usage_error(err, "exec: give a command or "
					"--process, not both");
	if (a->console && !a->tty && !a->process_file)
		return husk_usage_error(err, "exec --console-socket needs "
					"--tty");
	if (a->tty && a->detach && !a->console)
		return husk_usage_error(err, "exec --tty --detach needs "
					"--console-socket");
	return 0;
}

/* The pid file's directory must be there before anything starts: a
 * process that runs with no way to name it is worse than no process. */
static int check_pid_file(const char *path, struct husk_err **err)
{
	cleanup_free char *dir = husk_xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct stat st;

	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0)
		return husk_error_sys(err, errno, "exec --pid-file %s: `%s`",
				      path, dir);
	if (!S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "exec --pid-file %s: "
				  "`%s` is not a directory", path, dir);
	return 0;
}

/* The exec started in the guest but husk could not finish setting it
 * up: it goes, and so does its shim. */
static void undo_exec(struct husk_ctx *ctx, const struct husk_container *c,
		      const char *eid, pid_t shim)
{
	husk_agent_call(ctx->root, c->sandbox_id, AGENT_M_SIGNAL_PROCESS,
			json_pack("{s:s, s:s, s:i}", "container_id", c->id,
				  "exec_id", eid, "signal", SIGKILL),
			10000, NULL, NULL);
	if (shim <= 0)
		return;
	/* It exits once the agent reports the exit; bounded all the same. */
	for (int i = 0; i < 100; i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (waitpid(shim, NULL, WNOHANG) != 0)
			return;
		nanosleep(&ts, NULL);
	}
	kill(shim, SIGKILL);
	waitpid(shim, NULL, 0);
}

/*
 * Every failure of husk's own exits 255 (runc's code), whatever it is,
 * usage errors included: a caller tells it from the process's status.
 */
int cmd_exec(struct husk_ctx *ctx, int argc, char **argv,
	     struct husk_err **err)
{
	struct exec_args a = { .env = json_array(), .caps = json_array(),
			       .gids = json_array() };
	struct husk_entry e = { .dirfd = -1, .lockfd = -1 };
	struct husk_container c = { 0 };
	json_t *proc = NULL;
	unsigned char rnd[8];
	char eid[32];
	pid_t shim = -1;
	bool started = false;
	int rc, status;

	ctx->fail_exit = HUSK_EXIT_EXEC;
	rc = parse_exec(argc, argv, &a, err);
	if (rc) {
		rc = rc > 0 ? 0 : -1;
		goto out;
	}
	rc = -1;
	if (a.pid_file && check_pid_file(a.pid_file, err) < 0)
		goto out;
	if (husk_open_container(ctx, a.id, HUSK_LOCK_SHARED, &e, &c, err) < 0)
		goto out;
	proc = build_process(&a, &c, err);
	if (!proc)
		goto out;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		husk_error_sys(err, errno, "getrandom");
		goto out;
	}
	snprintf(eid, sizeof(eid), "exec-%02x%02x%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	shim = husk_ct_exec(&ctx->cfg, ctx->root, &c, eid, proc, a.console,
			    NULL, err);
	if (shim < 0)
		goto out;
	started = true;
	if (a.pid_file) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%d", (int)shim);

		if (husk_write_atomic(AT_FDCWD, a.pid_file, buf, (size_t)n,
				      0644, err) < 0) {
			husk_error_wrap(err, "exec --pid-file");
			goto out;
		}
	}
	started = false;
	husk_entry_close(&e);
	if (a.detach) {
		rc = 0;
		goto out;
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	while (waitpid(shim, &status, 0) < 0)
		if (errno != EINTR) {
			husk_error_sys(err, errno, "wait for the shim");
			goto out;
		}
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
	if (started)
		undo_exec(ctx, &c, eid, shim);
	json_decref(proc);
	json_decref(a.env);
	json_decref(a.caps);
	json_decref(a.gids);
	husk_container_free(&c);
	husk_entry_close(&e);
	return rc < 0 ? -1 : rc;
}
