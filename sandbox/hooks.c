/*
 * OCI hooks: each runs with the container's state JSON on stdin, its own
 * args and env, inside the sandbox's network namespace when it has one
 * (prestart and createRuntime hooks set up networking there), in the
 * working directory its kind gets from runc (the bundle, or the
 * container's root file system for createContainer and startContainer),
 * and is killed when its timeout passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/spawn.h"
#include "libhusk/util.h"
#include "sandbox.h"

#define HOOK_OUTPUT_MAX 2048

static char **strv_from(const json_t *a, const char *first)
{
	size_t n = json_array_size(a), i, k = 0;
	char **v = husk_xcalloc(n + 2, sizeof(char *));
	json_t *s;

	if (first)
		v[k++] = husk_xstrdup(first);
	json_array_foreach(a, i, s)
		if (json_is_string(s))
			v[k++] = husk_xstrdup(json_string_value(s));
	v[k] = NULL;
	return v;
}

static int run_one(const json_t *hook, const char *name, const char *state,
		   unsigned timeout, const char *netns, const char *cwd,
		   struct husk_err **err)
{
	const char *path = json_string_value(json_object_get(hook, "path"));
	int in[2], out[2], status = 0;
	char buf[HOOK_OUTPUT_MAX + 1];
	size_t have = 0;
	uint64_t deadline;
	bool eof = false;
	pid_t pid, w = 0;

	if (!path)
		return husk_error(err, HUSK_E_INVALID, "%s: no path", name);
	if (pipe2(in, O_CLOEXEC) < 0)
		return husk_error_sys(err, errno, "pipe");
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return husk_error_sys(err, errno, "pipe");
	}
	{
		/* The state on stdin, stdout and stderr to us; its own args
		 * and env, in the sandbox's network namespace and the
		 * kind's directory (libhusk/spawn.h). */
		cleanup_strv char **args = NULL, **env = NULL;
		json_t *a = json_object_get(hook, "args");
		int stdio[3] = { in[0], out[1], out[1] };
		struct husk_exec x = {
			.stdio = stdio,
			.reap_on_error = true,
			.netns = netns,
			.cwd = cwd,
		};

		args = json_array_size(a) ? strv_from(a, NULL) :
					    strv_from(NULL, path);
		env = strv_from(json_object_get(hook, "env"), NULL);
		/* The hook's path is executed; its args[0] is the name
		 * it sees, as with execve. */
		x.argv = args;
		x.envp = env;
		x.exec_path = path;
		pid = husk_fork_exec(&x, err);
	}
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return husk_error_wrap(err, "%s (`%s`)", name, path);
	}
	/* A hook that does not read its stdin must not block us. */
	signal(SIGPIPE, SIG_IGN);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (write(in[1], state, strlen(state)) < 0 && errno != EPIPE &&
	    errno != EAGAIN)
		log_debug("%s: write state: %s", name, strerror(errno));
	close(in[1]);

	deadline = husk_now_ms() + (uint64_t)timeout * 1000;
	while (!w) {
		struct pollfd p = { out[0], POLLIN, 0 };
		uint64_t now = husk_now_ms();
		ssize_t n;

		if (now >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(out[0]);
			return husk_error(err, HUSK_E_TIMEOUT, "%s (`%s`) timed "
					  "out after %u s", name, path,
					  timeout);
		}
		if (!eof && poll(&p, 1, (int)(deadline - now > 50 ? 50 :
					    deadline - now)) > 0) {
			char tmp[512];

			n = read(out[0], tmp, sizeof(tmp));
			if (n <= 0) {
				eof = true;
			} else {
				size_t k = (size_t)n;

				if (k > HOOK_OUTPUT_MAX - have)
					k = HOOK_OUTPUT_MAX - have;
				memcpy(buf + have, tmp, k);
				have += k;
			}
		} else if (eof) {
			struct timespec ts = { 0, 10 * 1000000L };

			nanosleep(&ts, NULL);
		}
		w = waitpid(pid, &status, WNOHANG);
		if (w < 0 && errno != EINTR) {
			close(out[0]);
			return husk_error_sys(err, errno, "wait for %s", name);
		}
		if (w < 0)
			w = 0;
	}
	close(out[0]);
	buf[have] = '\0';
	while (have && (buf[have - 1] == '\n'))
		buf[--have] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return husk_error(err, HUSK_E_INVALID, "%s (`%s`) was killed by "
				  "signal %d%s%s", name, path,
				  WTERMSIG(status), have ? ": " : "", buf);
	return husk_error(err, HUSK_E_INVALID, "%s (`%s`) failed with exit "
			  "status %d%s%s", name, path, WEXITSTATUS(status),
			  have ? ": " : "", buf);
}

int husk_hooks_run(const json_t *hooks, const char *kind,
		   const json_t *state, unsigned default_timeout,
		   const char *netns, const char *cwd, struct husk_err **err)
{
	cleanup_free char *text = NULL;
	bool warn_only = !strcmp(kind, "poststart") ||
			 !strcmp(kind, "poststop");
	json_t *list = json_object_get(hooks, kind), *hook;
	size_t i;

	if (!json_array_size(list))
		return 0;
	text = json_dumps(state, JSON_COMPACT);
	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "encode state");
	json_array_foreach(list, i, hook) {
		json_t *t = json_object_get(hook, "timeout");
		unsigned timeout = json_is_integer(t) &&
				   json_integer_value(t) > 0 ?
				   (unsigned)json_integer_value(t) :
				   default_timeout;
		char name[64];

		snprintf(name, sizeof(name), "hook %s[%zu]", kind, i);
		log_debug("%s", name);
		if (warn_only) {
			cleanup_err struct husk_err *e = NULL;

			if (run_one(hook, name, text, timeout, netns, cwd,
				    &e) < 0)
				log_warnx("%s", e->msg);
			continue;
		}
		if (run_one(hook, name, text, timeout, netns, cwd, err) < 0)
			return -1;
	}
	return 0;
}
