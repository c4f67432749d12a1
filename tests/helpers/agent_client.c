/*
 * agent_client: runs one container process through husk-agent on one
 * connection, the way a shim would, for the bats tests.
 *
 *   agent_client [OPTIONS] SOCKET run CID SPEC-JSON
 *   agent_client [OPTIONS] SOCKET exec CID EXEC-ID PROCESS-JSON
 *   agent_client SOCKET calls METHOD PARAMS-JSON [METHOD PARAMS-JSON...]
 *
 * run: create_sandbox (an existing one is fine), create_container,
 * start_container; exec: exec_process.  Then the process's stdout and
 * stderr go to ours as they arrive (acknowledged), our stdin goes to it
 * (write_stdin, close_stdin at EOF), and once both streams ended we
 * wait_process and exit with its status.  Agent errors go to stderr
 * and exit 200.
 *
 * calls: each call in turn on one connection, its result printed as a
 * JSON line; the first error ends it (exit 200).  For a test whose
 * subject is not the host's reconnecting to the port.
 *
 * Options: --sandbox JSON (create_sandbox params, default
 * {"sandbox_id":"sb"}), --detach (exit after the start, 0),
 * --winsize ROWS,COLS (tty_winresize after the start), --no-stdin.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "libipc/ipc.h"
#include "libipc/proto_agent.h"

static struct ipc_client cl;
static const char *cid, *eid = "";
static int eofs;

static void die(const char *what, struct husk_err *e)
{
	fprintf(stderr, "agent_client: %s: %s\n", what, e ? e->msg : "failed");
	exit(200);
}

static void pack_json(msgpack_packer *pk, const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	struct husk_err *e = NULL;

	if (!j) {
		fprintf(stderr, "agent_client: bad JSON: %s\n", je.text);
		exit(200);
	}
	if (ipc_json_pack(pk, j, &e) < 0)
		die("JSON", e);
	json_decref(j);
}

/* Call METHOD with params {container_id, exec_id} plus extra packed by
 * fn; returns the response (caller frees) or dies.  allow_code lets one
 * error code through (returns -1). */
static int call(const char *method, const char *json, struct ipc_msg *resp,
		int allow_code)
{
	msgpack_packer *pk = ipc_client_begin(&cl, method);
	struct husk_err *e = NULL;

	pack_json(pk, json);
	if (ipc_client_call(&cl, 60000, NULL, 0, resp, &e) < 0) {
		if (e && e->code == allow_code) {
			husk_err_free(e);
			return -1;
		}
		fprintf(stderr, "agent_client: %s: %s (%s)\n", method,
			e ? e->msg : "failed",
			husk_errcode_name(e ? e->code : 0));
		exit(200);
	}
	return 0;
}

static char *ids_json(const char *extra)
{
	char *s;

	if (asprintf(&s, "{\"container_id\":\"%s\",\"exec_id\":\"%s\"%s%s}",
		     cid, eid, extra ? "," : "", extra ? extra : "") < 0)
		exit(200);
	return s;
}

static void on_notify(struct ipc_msg *m)
{
	const msgpack_object *o;
	struct husk_err *e = NULL;
	const char *p;
	size_t len;
	uint64_t stream;
	msgpack_packer *pk;

	if (strcmp(m->method, AGENT_N_OUTPUT) != 0)
		return;
	o = ipc_map_get(m->params, "container_id");
	if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size != strlen(cid) ||
	    memcmp(o->via.str.ptr, cid, o->via.str.size) != 0)
		return;
	o = ipc_map_get(m->params, "exec_id");
	if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size != strlen(eid) ||
	    memcmp(o->via.str.ptr, eid, o->via.str.size) != 0)
		return;
	if (ipc_obj_uint(ipc_map_get(m->params, "stream"), "stream", 2,
			 &stream, &e) < 0 ||
	    ipc_obj_bin(ipc_map_get(m->params, "data"), "data", 1u << 24, &p,
			&len, &e) < 0)
		die("output", e);
	if (len == 0) {
		eofs++;
		return;
	}
	if (write(stream == 2 ? 2 : 1, p, len) != (ssize_t)len)
		exit(200);
	pk = ipc_client_begin(&cl, AGENT_N_OUTPUT_ACK);
	msgpack_pack_map(pk, 4);
	ipc_pack_kv_str(pk, "container_id", cid);
	ipc_pack_kv_str(pk, "exec_id", eid);
	ipc_pack_kv_uint(pk, "stream", stream);
	ipc_pack_kv_uint(pk, "bytes", len);
	if (ipc_client_notify(&cl, &e) < 0)
		die("output_ack", e);
}

static void drain(int timeout_ms)
{
	struct husk_err *e = NULL;
	struct ipc_msg m;

	while (ipc_client_next(&cl, timeout_ms, &m, &e) == 0) {
		if (m.type == IPC_NOTIFY)
			on_notify(&m);
		ipc_msg_free(&m);
		timeout_ms = 0;
	}
	if (e && e->code != HUSK_E_TIMEOUT)
		die("connection", e);
	husk_err_free(e);
}

static void send_stdin(bool *open_in)
{
	char buf[65536];
	ssize_t n = read(0, buf, sizeof(buf));
	struct husk_err *e = NULL;
	struct ipc_msg resp;
	msgpack_packer *pk;

	if (n <= 0) {
		char *j = ids_json(NULL);

		*open_in = false;
		call(AGENT_M_CLOSE_STDIN, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
		return;
	}
	pk = ipc_client_begin(&cl, AGENT_M_WRITE_STDIN);
	msgpack_pack_map(pk, 3);
	ipc_pack_kv_str(pk, "container_id", cid);
	ipc_pack_kv_str(pk, "exec_id", eid);
	ipc_pack_kv_bin(pk, "data", buf, (size_t)n);
	if (ipc_client_call(&cl, 60000, NULL, 0, &resp, &e) < 0) {
		/* The process may be gone already: stop feeding it. */
		*open_in = false;
		husk_err_free(e);
		return;
	}
	ipc_msg_free(&resp);
}

int main(int argc, char **argv)
{
	const char *sandbox = "{\"sandbox_id\":\"sb\"}", *winsize = NULL;
	bool detach = false, open_in = true;
	struct husk_err *e = NULL;
	struct ipc_msg resp;
	char *j, extra[64];
	int i = 1, status;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--sandbox") == 0 && i + 1 < argc)
			sandbox = argv[++i];
		else if (strcmp(argv[i], "--winsize") == 0 && i + 1 < argc)
			winsize = argv[++i];
		else if (strcmp(argv[i], "--detach") == 0)
			detach = true;
		else if (strcmp(argv[i], "--no-stdin") == 0)
			open_in = false;
		else
			goto usage;
	}
	/* reseed_random_dev takes binary data, which husk-ipc (JSON)
	 * cannot send: N bytes of a counter; prints ok or the error. */
	if (argc - i == 3 && strcmp(argv[i + 1], "seed") == 0) {
		long n = strtol(argv[i + 2], NULL, 10);
		msgpack_packer *pk;
		char *buf;

		if (n < 0 || n > 1 << 20)
			goto usage;
		if (ipc_client_connect(&cl, argv[i], "husk-ipc",
				       AGENT_COMPONENT, 5000, &e) < 0)
			die("connect", e);
		buf = malloc((size_t)n + 1);
		if (!buf)
			return 200;
		for (long k = 0; k < n; k++)
			buf[k] = (char)(k * 131 + 7);
		pk = ipc_client_begin(&cl, AGENT_M_RESEED_RANDOM_DEV);
		msgpack_pack_map(pk, 1);
		ipc_pack_kv_bin(pk, "data", buf, (size_t)n);
		free(buf);
		if (ipc_client_call(&cl, 10000, NULL, 0, &resp, &e) < 0) {
			printf("%s\n", e->msg);
			husk_err_free(e);
			ipc_client_close(&cl);
			return 1;
		}
		ipc_msg_free(&resp);
		ipc_client_close(&cl);
		printf("ok\n");
		return 0;
	}
	if (argc - i >= 4 && (argc - i) % 2 == 0 &&
	    strcmp(argv[i + 1], "calls") == 0) {
		if (ipc_client_connect(&cl, argv[i], "husk-ipc",
				       AGENT_COMPONENT, 5000, &e) < 0)
			die("connect", e);
		for (int k = i + 2; k + 1 < argc; k += 2) {
			json_t *r;

			call(argv[k], argv[k + 1], &resp, 0);
			r = resp.result ? ipc_json_from_obj(resp.result) :
				json_null();
			j = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
			printf("%s\n", j ? j : "?");
			fflush(stdout);
			free(j);
			json_decref(r);
			ipc_msg_free(&resp);
		}
		ipc_client_close(&cl);
		return 0;
	}
	if (argc - i < 4)
		goto usage;
	if (ipc_client_connect(&cl, argv[i], "husk-ipc", AGENT_COMPONENT, 5000,
			       &e) < 0)
		die("connect", e);
	cid = argv[i + 2];
	if (strcmp(argv[i + 1], "run") == 0) {
		if (call(AGENT_M_CREATE_SANDBOX, sandbox, &resp,
			 HUSK_E_EXISTS) == 0)
			ipc_msg_free(&resp);
		if (asprintf(&j, "{\"container_id\":\"%s\",\"spec\":%s}", cid,
			     argv[i + 3]) < 0)
			return 200;
		call(AGENT_M_CREATE_CONTAINER, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
		j = ids_json(NULL);
		call(AGENT_M_START_CONTAINER, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
	} else if (strcmp(argv[i + 1], "exec") == 0 && argc - i >= 5) {
		eid = argv[i + 3];
		if (asprintf(&j, "{\"container_id\":\"%s\",\"exec_id\":\"%s\",\"process\":%s}",
			     cid, eid, argv[i + 4]) < 0)
			return 200;
		call(AGENT_M_EXEC_PROCESS, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
	} else {
		goto usage;
	}
	if (winsize) {
		unsigned r, c;

		if (sscanf(winsize, "%u,%u", &r, &c) != 2)
			goto usage;
		snprintf(extra, sizeof(extra), "\"rows\":%u,\"cols\":%u", r, c);
		j = ids_json(extra);
		call(AGENT_M_TTY_WINRESIZE, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
	}
	if (detach)
		return 0;
	if (!open_in) {
		j = ids_json(NULL);
		call(AGENT_M_CLOSE_STDIN, j, &resp, -1);
		ipc_msg_free(&resp);
		free(j);
	}
	while (eofs < 2) {
		struct pollfd pfd[2] = {
			{ .fd = cl.fd, .events = POLLIN },
			{ .fd = 0, .events = POLLIN },
		};

		drain(0);
		if (eofs >= 2)
			break;
		if (poll(pfd, open_in ? 2 : 1, 1000) < 0 && errno != EINTR)
			return 200;
		if (pfd[0].revents)
			drain(100);
		if (open_in && pfd[1].revents)
			send_stdin(&open_in);
	}
	j = ids_json(NULL);
	call(AGENT_M_WAIT_PROCESS, j, &resp, -1);
	free(j);
	status = 255;
	{
		int64_t sv;

		if (ipc_obj_int(ipc_map_get(resp.result, "status"), "status", 0,
				255, &sv, &e) < 0)
			die("wait_process", e);
		status = (int)sv;
	}
	ipc_msg_free(&resp);
	ipc_client_close(&cl);
	return status;
usage:
	fprintf(stderr, "usage: agent_client [--sandbox JSON] [--detach] [--winsize R,C] [--no-stdin]\n"
		"                    SOCKET run CID SPEC-JSON | SOCKET exec CID EXEC-ID PROCESS-JSON | SOCKET seed N\n"
		"       agent_client SOCKET calls METHOD PARAMS-JSON [METHOD PARAMS-JSON...]\n");
	return 100;
}
