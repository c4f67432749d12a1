/* What several verbs share: finding a container, parsing signals and
 * options. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "husk.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"

int husk_open_container(struct husk_ctx *ctx, const char *id, int lock,
			struct husk_entry *e, struct husk_container *c,
			struct husk_err **err)
{
	e->dirfd = e->lockfd = -1;
	if (husk_id_validate(id, "container id", err) < 0)
		return -1;
	if (husk_ctx_store(ctx, err) < 0)
		return -1;
	if (husk_store_get(&ctx->store, id, lock, e, err) < 0)
		return -1;
	if (husk_container_read(e, c, err) < 0) {
		husk_entry_close(e);
		return -1;
	}
	return 0;
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "IOT", SIGIOT }, { "BUS", SIGBUS }, { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
	{ "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "POLL", SIGPOLL }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

/* "TERM", "SIGTERM", "term", "15", "RTMIN+3"; 0 (runc's "is it
 * there?"). */
int husk_parse_signal(const char *s, struct husk_err **err)
{
	const char *given = s;
	long long n;

	if (husk_parse_int(s, 0, SIGRTMAX, &n) == 0)
		return (int)n;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (!strcasecmp(s, signals[i].name))
			return signals[i].sig;
	if (!strncasecmp(s, "RTMIN+", 6) &&
	    husk_parse_int(s + 6, 0, SIGRTMAX - SIGRTMIN, &n) == 0)
		return SIGRTMIN + (int)n;
	if (!strncasecmp(s, "RTMAX-", 6) &&
	    husk_parse_int(s + 6, 0, SIGRTMAX - SIGRTMIN, &n) == 0)
		return SIGRTMAX - (int)n;
	return husk_usage_error(err, "unknown signal '%s' (a name such as "
				"TERM or SIGTERM, or a number 0-%d)", given,
				SIGRTMAX);
}

/* Reject options after the verb that the verb does not know. */
int husk_bad_option(struct husk_err **err, const char *verb,
		    const char *opt)
{
	return husk_usage_error(err, "%s: unknown option or missing value "
				"'%s' (see husk help %s)", verb, opt, verb);
}

/* A verb's spec made a getopt table once: a verb parses its arguments
 * once, so the last spec is all there is to keep. */
int husk_getopt(int argc, char **argv, const char *spec)
{
	static const char *built;
	static char names[1024];
	static struct option opts[HUSK_OPTS_MAX + 1];

	if (built != spec) {
		char *entry, *save = NULL;
		int n = 0, id = 0;

		if (strlen(spec) >= sizeof(names))
			abort();
		strcpy(names, spec);
		for (entry = strtok_r(names, " ", &save); entry;
		     entry = strtok_r(NULL, " ", &save)) {
			size_t len = strlen(entry);
			bool value = entry[len - 1] == '=';
			char *next;

			if (value)
				entry[len - 1] = '\0';
			id++;
			for (char *name = entry; name; name = next) {
				next = strchr(name, '|');
				if (next)
					*next++ = '\0';
				if (n == HUSK_OPTS_MAX)
					abort();
				opts[n++] = (struct option){
					name, value ? required_argument :
					no_argument, NULL, id };
			}
		}
		opts[n] = (struct option){ NULL, 0, NULL, 0 };
		built = spec;
	}
	return getopt_long_only(argc, argv, "+", opts, NULL);
}

int husk_print_json(const json_t *j, struct husk_err **err)
{
	cleanup_free char *text = json_dumps(j, JSON_INDENT(2) |
					      JSON_PRESERVE_ORDER);

	if (!text)
		return husk_error(err, HUSK_E_INTERNAL, "encode JSON");
	printf("%s\n", text);
	return 0;
}
