/*
 * husk-ipc: the IPC debug client.  Connects to one component's socket,
 * says hello, calls one method with params given as JSON and prints the
 * result as JSON; optionally listens for notifications.  Operators use
 * it to talk to one component at a time (man husk-ipc).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "libhusk/cleanup.h"
#include "libhusk/err.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"

#include "libhusk/version.h"

#define PROG "husk-ipc"
/* Our request's id: the blocking client numbers its own from 1, so a
 * distant id keeps our response apart from anything it sent. */
#define CALL_MSGID 0x48555348u

static const char usage_text[] =
	"usage: " PROG " [options] SOCKET METHOD [PARAMS-JSON|-]\n"
	"       " PROG " [options] --listen SOCKET [METHOD [PARAMS-JSON|-]]\n"
	"options:\n"
	"  -t, --timeout SECONDS  connect and call timeout (default 30, 0: none)\n"
	"  -l, --listen           print notifications as JSON lines until EOF\n"
	"  -n, --count N          with --listen: stop after N notifications\n"
	"  -e, --expect COMPONENT fail unless the peer is COMPONENT\n"
	"  -N, --notify           send METHOD as a notification (no reply)\n"
	"  -p, --pretty           indent the JSON output\n"
	"  -q, --quiet            do not print the result\n"
	"  -h, --help             this text\n"
	"  -V, --version          print the version\n";

struct opts {
	const char *sock;
	const char *method;
	const char *params;     /* JSON text, "-" for stdin, NULL for {} */
	double timeout;
	bool timeout_given;
	bool listen;
	long long count;        /* 0: unlimited */
	const char *expect;
	bool notify;
	bool pretty;
	bool quiet;
};

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n" PROG ": try `" PROG " --help`\n", stderr);
	return HUSK_EXIT_USAGE;
}

/* Parse argv into o; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "listen", no_argument, NULL, 'l' },
		{ "count", required_argument, NULL, 'n' },
		{ "expect", required_argument, NULL, 'e' },
		{ "notify", no_argument, NULL, 'N' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c, npos;

	o->timeout = 30;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:ln:e:NpqhV", longopts,
				NULL)) != -1) {
		switch (c) {
		case 't':
			errno = 0;
			o->timeout = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !isfinite(o->timeout) || o->timeout < 0 ||
			    o->timeout > 1e6)
				return usage_error("--timeout: `%s` is not a "
						   "number of seconds", optarg);
			o->timeout_given = true;
			break;
		case 'l':
			o->listen = true;
			break;
		case 'n':
			if (husk_parse_int(optarg, 1, 1LL << 40, &o->count) < 0)
				return usage_error("--count: `%s` is not a "
						   "positive integer", optarg);
			break;
		case 'e':
			o->expect = optarg;
			break;
		case 'N':
			o->notify = true;
			break;
		case 'p':
			o->pretty = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return HUSK_EXIT_OK;
		case 'V':
			printf(PROG " %s (protocol %d)\n", HUSK_VERSION,
			       IPC_PROTOCOL_VERSION);
			return HUSK_EXIT_OK;
		case ':':
			return usage_error("option `%s` needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option `%s`",
					   argv[optind - 1]);
		}
	}
	npos = argc - optind;
	if (npos < 1)
		return usage_error("no SOCKET given");
	if (npos > 3)
		return usage_error("too many arguments");
	o->sock = argv[optind];
	o->method = npos > 1 ? argv[optind + 1] : NULL;
	o->params = npos > 2 ? argv[optind + 2] : NULL;
	if (!o->method && !o->listen)
		return usage_error("no METHOD given");
	if (o->method && (!*o->method || strlen(o->method) > IPC_METHOD_MAX))
		return usage_error("METHOD must be 1 to %d bytes",
				   IPC_METHOD_MAX);
	if (o->count && !o->listen)
		return usage_error("--count needs --listen");
	if (o->notify && !o->method)
		return usage_error("--notify needs a METHOD");
	return -1;
}

/* The params argument as a JSON object; exits through usage on error
 * (a bad argument is a bad command line). */
static json_t *load_params(const char *arg, int *code)
{
	json_error_t jerr;
	json_t *j;

	if (!arg)
		return json_object();
	if (!strcmp(arg, "-"))
		j = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
	else
		j = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		*code = usage_error("PARAMS-JSON%s: line %d column %d: %s",
				    strcmp(arg, "-") ? "" : " (stdin)",
				    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*code = usage_error("PARAMS-JSON must be a JSON object "
				    "({...}), params are named");
		return NULL;
	}
	return j;
}

static int print_json(json_t *j, bool pretty)
{
	size_t flags = JSON_ENCODE_ANY |
		       (pretty ? JSON_INDENT(2) : JSON_COMPACT);

	if (json_dumpf(j, stdout, flags) < 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF)
		return -1;
	return 0;
}

/* One notification as {"method": ..., "params": ...} on one line. */
static int print_notification(const struct ipc_msg *m)
{
	json_t *j = json_object();
	int rc;

	json_object_set_new(j, "method", json_string(m->method));
	json_object_set_new(j, "params", m->params ?
			    ipc_json_from_obj(m->params) : json_object());
	rc = print_json(j, false);
	json_decref(j);
	return rc;
}

static int timeout_ms(double seconds)
{
	return seconds > 0 ? (int)(seconds * 1000 + 0.999) : -1;
}

static int send_frame(struct ipc_client *cl, struct ipc_buf *b,
		      struct husk_err **err)
{
	uint32_t max = cl->max_frame ? cl->max_frame : IPC_FRAME_MAX_DEFAULT;

	if (ipc_buf_finish(b, max, err) < 0)
		return -1;
	if (husk_write_all(cl->fd, b->sb.data, b->sb.size) < 0)
		return husk_error_sys(err, errno, "send");
	return 0;
}

/*
 * Send METHOD and wait for its response.  Notifications that arrive
 * first are kept in `early` for --listen.  Returns 0 with *result set,
 * 1 for an RPC error (in *err), -1 for a transport failure (in *err).
 */
static int call(struct ipc_client *cl, const struct opts *o, json_t *params,
		json_t *early, json_t **result, struct husk_err **err)
{
	struct ipc_buf b;
	uint64_t deadline = husk_now_ms() + (uint64_t)timeout_ms(o->timeout);
	msgpack_packer *pk;
	int rc;

	ipc_buf_init(&b);
	pk = o->notify ? ipc_pack_notify(&b, o->method) :
		ipc_pack_request(&b, CALL_MSGID, o->method);
	rc = ipc_json_pack(pk, params, err);
	if (rc == 0)
		rc = send_frame(cl, &b, err);
	ipc_buf_destroy(&b);
	if (rc < 0 || o->notify)
		return rc;

	for (;;) {
		struct ipc_msg m;
		int wait = -1;

		if (o->timeout > 0) {
			uint64_t now = husk_now_ms();

			wait = now >= deadline ? 0 : (int)(deadline - now);
		}
		if (ipc_client_next(cl, wait, &m, err) < 0) {
			if (*err && (*err)->code == HUSK_E_TIMEOUT) {
				husk_err_clear(err);
				husk_error(err, HUSK_E_TIMEOUT,
					   "no answer within %g s", o->timeout);
			}
			return -1;
		}
		if (m.type == IPC_NOTIFY) {
			json_t *n = json_object();

			json_object_set_new(n, "method", json_string(m.method));
			json_object_set_new(n, "params",
					    ipc_json_from_obj(m.params));
			json_array_append_new(early, n);
		} else if (m.type == IPC_RESPONSE && m.msgid == CALL_MSGID) {
			if (m.error) {
				ipc_error_decode(m.error, err);
				ipc_msg_free(&m);
				return 1;
			}
			*result = m.result ? ipc_json_from_obj(m.result) :
				json_null();
			ipc_msg_free(&m);
			return 0;
		}
		/* Requests to us and stray responses: not ours to answer. */
		ipc_msg_free(&m);
	}
}

static int listen_loop(struct ipc_client *cl, const struct opts *o,
		       json_t *early, struct husk_err **err)
{
	long long seen = 0;
	size_t i;
	json_t *n;

	json_array_foreach(early, i, n) {
		if (print_json(n, false) < 0)
			return husk_error_sys(err, errno, "write stdout");
		if (o->count && ++seen >= o->count)
			return 0;
	}
	for (;;) {
		struct ipc_msg m;
		int wait = o->timeout_given ? timeout_ms(o->timeout) : -1;

		if (ipc_client_next(cl, wait, &m, err) < 0) {
			/* The peer closing is how a listen normally ends. */
			if ((*err)->code == HUSK_E_UNAVAILABLE) {
				husk_err_clear(err);
				return 0;
			}
			return -1;
		}
		if (m.type == IPC_NOTIFY) {
			int rc = print_notification(&m);

			ipc_msg_free(&m);
			if (rc < 0)
				return husk_error_sys(err, errno,
						      "write stdout");
			if (o->count && ++seen >= o->count)
				return 0;
			continue;
		}
		ipc_msg_free(&m);
	}
}

static int fail(const char *what, const struct husk_err *err, int code)
{
	fprintf(stderr, PROG ": %s%s%s (code %s)\n", what ? what : "",
		what ? ": " : "", err && err->msg ? err->msg : "failed",
		husk_errcode_name(err ? err->code : HUSK_E_INTERNAL));
	return code;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct ipc_client cl;
	cleanup_err struct husk_err *err = NULL;
	json_t *params = NULL, *early = NULL, *result = NULL;
	struct stat st;
	int code = -1, fd, rc;

	signal(SIGPIPE, SIG_IGN);
	code = parse_args(argc, argv, &o);
	if (code >= 0)
		return code;
	if (o.method) {
		params = load_params(o.params, &code);
		if (!params)
			return code;
	}

	/*
	 * A socket that is not there yet fails at once: waiting the whole
	 * timeout on a mistyped path helps nobody.  One that exists but
	 * refuses is retried until the timeout (a server restarting).
	 */
	fd = ipc_connect_path(o.sock,
			      stat(o.sock, &st) < 0 ? 0 : timeout_ms(o.timeout),
			      &err);
	if (fd < 0) {
		json_decref(params);
		return fail(NULL, err, husk_err_exit_code(err));
	}
	if (ipc_client_adopt(&cl, fd, PROG, o.expect, timeout_ms(o.timeout),
			     &err) < 0) {
		json_decref(params);
		return fail(NULL, err, husk_err_exit_code(err));
	}

	early = json_array();
	code = HUSK_EXIT_OK;
	if (o.method) {
		rc = call(&cl, &o, params, early, &result, &err);
		if (rc == 1) {
			code = fail(o.method, err, HUSK_EXIT_FAIL);
		} else if (rc < 0) {
			code = fail(o.method, err, husk_err_exit_code(err));
		} else if (result && !o.quiet && print_json(result, o.pretty)) {
			code = HUSK_EXIT_SYSTEM;
			fprintf(stderr, PROG ": write stdout: %s\n",
				strerror(errno));
		}
	}
	if (code == HUSK_EXIT_OK && o.listen &&
	    listen_loop(&cl, &o, early, &err) < 0)
		code = fail("listen", err, husk_err_exit_code(err));

	json_decref(result);
	json_decref(early);
	json_decref(params);
	ipc_client_close(&cl);
	return code;
}
