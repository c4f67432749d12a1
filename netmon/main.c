/*
 * husk-netmon: one per sandbox, inside the sandbox's network namespace.
 * It reads the namespace's state, then follows rtnetlink notifications
 * for links, addresses and routes; a burst of them is coalesced (a
 * short timer after the last one) into one sync: links up and running
 * that the driver has not attached get attached (net_attach) and
 * configured in the guest (update_interface), attached links whose
 * addresses or MTU changed are reconfigured, attached links that are
 * gone are detached (net_detach), and the routes go to the guest when
 * they changed (update_routes).  Every change is made by the driver or
 * the agent: netmon itself holds no capability.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "libhusk/daemon.h"
#include "libhusk/log.h"
#include "libhusk/util.h"
#include "libipc/ipc.h"
#include "netmon/netmon.h"
#include "sandbox/sandbox.h"

#define NM_COMPONENT "husk-netmon"
#include "libhusk/version.h"
#define NM_VERSION HUSK_VERSION
#define NM_COALESCE 0.1         /* seconds of quiet before a sync */
#define NM_HV_TIMEOUT 60000     /* a hot-plug under a loaded TCG host */
#define NM_AGENT_TIMEOUT 30000
#define NM_NIC_WAIT 30000       /* the guest seeing a hot-plugged NIC */

static struct {
	struct ev_loop *loop;
	struct nl_sock *events, *dumps;
	struct ipc_client hv, px;
	ev_io nl_w;
	ev_timer timer;
	unsigned pending;
	json_t *known;          /* name -> {mtu, addresses} given the guest */
	json_t *routes;         /* last routes given the guest */
} nm;

/* One call on a kept connection; a lost connection means the sandbox
 * is going away, and netmon with it. */
static int call(struct ipc_client *cl, const char *method, json_t *params,
		int timeout_ms, json_t **res, struct husk_err **err)
{
	struct ipc_msg resp;
	msgpack_packer *pk;
	int rc;

	if (res)
		*res = NULL;
	pk = ipc_client_begin(cl, method);
	rc = ipc_json_pack(pk, params ? params : json_object(), err);
	json_decref(params);
	if (rc < 0)
		return -1;
	if (ipc_client_call(cl, timeout_ms, NULL, 0, &resp, err) < 0) {
		if ((*err)->code == HUSK_E_UNAVAILABLE && cl->fd < 0)
			husk_daemon_fatal(HUSK_EXIT_PEER, "call: %s: %s: "
					  "connection lost", cl->peer, method);
		return -1;
	}
	if (res)
		*res = ipc_json_from_obj(resp.result);
	ipc_msg_free(&resp);
	return 0;
}

static json_t *iface_state(const json_t *link)
{
	return json_pack("{s:O, s:O}", "mtu", json_object_get(link, "mtu"),
			 "addresses", json_object_get(link, "addresses"));
}

/* update_interface, retried while the guest has not seen the NIC. */
static int configure(const json_t *link, struct husk_err **err)
{
	uint64_t deadline = husk_now_ms() + NM_NIC_WAIT;
	json_t *ifc = json_pack("{s:O, s:O, s:O, s:O, s:b}",
				"name", json_object_get(link, "name"),
				"mac", json_object_get(link, "mac"),
				"mtu", json_object_get(link, "mtu"),
				"addresses", json_object_get(link, "addresses"),
				"up", 1);
	int rc;

	for (;;) {
		struct timespec ts = { 0, 100 * 1000000L };

		rc = call(&nm.px, "update_interface",
			  json_pack("{s:O}", "interface", ifc),
			  NM_AGENT_TIMEOUT, NULL, err);
		if (rc == 0 || (*err)->code != HUSK_E_NOT_FOUND ||
		    husk_now_ms() >= deadline)
			break;
		husk_err_clear(err);
		nanosleep(&ts, NULL);
	}
	json_decref(ifc);
	return rc;
}

static void detach(const char *name)
{
	struct husk_err *e = NULL;

	if (call(&nm.hv, "net_detach", json_pack("{s:s}", "name", name),
		 NM_HV_TIMEOUT, NULL, &e) < 0 && e->code != HUSK_E_NOT_FOUND)
		log_warnx("detach: %s: %s", name, e->msg);
	else
		log_info("detach: %s is gone from the namespace: detached",
			 name);
	husk_err_free(e);
	json_object_del(nm.known, name);
}

static void attach(json_t *link, json_t *attached)
{
	const char *name = json_string_value(json_object_get(link, "name"));
	struct husk_err *e = NULL;
	json_t *res = NULL;

	if (call(&nm.hv, "net_attach", json_pack("{s:s}", "name", name),
		 NM_HV_TIMEOUT, &res, &e) < 0) {
		log_warnx("attach: %s: %s", name, e->msg);
		husk_err_free(e);
		return;
	}
	if (configure(res, &e) < 0) {
		log_warnx("attach: %s: in the guest: %s", name, e->msg);
		husk_err_free(e);
		json_decref(res);
		detach(name);
		return;
	}
	log_info("attach: %s (%s) mirrored through %s", name,
		 json_string_value(json_object_get(res, "mac")),
		 json_string_value(json_object_get(res, "tap")));
	json_object_set_new(nm.known, name, iface_state(res));
	json_array_append_new(attached, json_string(name));
	json_decref(res);
}

static void sync_routes(json_t *attached)
{
	struct husk_err *e = NULL;
	json_t *routes = NULL;

	if (husk_net_routes(nm.dumps, attached, &routes, &e) < 0) {
		log_warnx("sync_routes: %s", e->msg);
		husk_err_free(e);
		return;
	}
	if (nm.routes && json_equal(routes, nm.routes)) {
		json_decref(routes);
		return;
	}
	if (call(&nm.px, "update_routes", json_pack("{s:O}", "routes", routes),
		 NM_AGENT_TIMEOUT, NULL, &e) < 0) {
		log_warnx("sync_routes: update_routes: %s", e->msg);
		husk_err_free(e);
		json_decref(routes);
		return;
	}
	log_info("sync_routes: %zu route(s) given to the guest",
		 json_array_size(routes));
	json_decref(nm.routes);
	nm.routes = routes;
}

/* The namespace as the driver sees it now, against what the guest was
 * given. */
static void sync_all(bool first)
{
	struct husk_err *e = NULL;
	json_t *res = NULL, *links, *l, *attached, *seen, *v;
	const char *name;
	void *tmp;
	size_t i;

	if (call(&nm.hv, "net_list", NULL, NM_HV_TIMEOUT, &res, &e) < 0) {
		log_warnx("sync_all: net_list: %s", e->msg);
		husk_err_free(e);
		return;
	}
	links = json_object_get(res, "links");
	attached = json_array();
	seen = json_object();
	json_array_foreach(links, i, l) {
		json_t *want, *have;

		name = json_string_value(json_object_get(l, "name"));
		if (!name)
			continue;
		json_object_set_new(seen, name, json_true());
		have = json_object_get(nm.known, name);
		if (!json_object_get(l, "tap")) {
			/* A new link under an attached one's name: the old
			 * one went between two syncs. */
			if (have)
				detach(name);
			if (json_is_true(json_object_get(l, "ethernet")) &&
			    json_is_true(json_object_get(l, "up")) &&
			    json_is_true(json_object_get(l, "running")))
				attach(l, attached);
			continue;
		}
		json_array_append_new(attached, json_string(name));
		want = iface_state(l);
		/* At start the runtime has just configured what it
		 * attached: that is the baseline. */
		if ((have || !first) && !(have && json_equal(have, want))) {
			if (configure(l, &e) < 0) {
				log_warnx("sync_all: %s: %s", name, e->msg);
				husk_err_clear(&e);
				json_decref(want);
				continue;
			}
			log_info("sync_all: %s reconfigured in the guest",
				 name);
		}
		json_object_set_new(nm.known, name, want);
	}
	json_object_foreach_safe(nm.known, tmp, name, v)
		if (!json_object_get(seen, name))
			detach(name);
	sync_routes(attached);
	json_decref(seen);
	json_decref(attached);
	json_decref(res);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	unsigned what = nm.pending;

	nm.pending = 0;
	log_debug("on_timer: sync (%s%s%s)", what & NM_LINK ? "links " : "",
		  what & NM_ADDR ? "addresses " : "",
		  what & NM_ROUTE ? "routes" : "");
	sync_all(false);
}

static void on_netlink(struct ev_loop *loop, ev_io *w, int revents)
{
	static char buf[65536];
	unsigned what = 0;

	for (;;) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(w->fd, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* Notifications were lost: look at it all. */
				log_warnx("on_netlink: overrun, full sync");
				what |= NM_ALL;
				continue;
			}
			if (errno != EAGAIN)
				log_warn("on_netlink: recv");
			break;
		}
		if (n == 0)
			break;
		/* Only the kernel speaks on this socket. */
		if (from.nl_pid != 0)
			continue;
		what |= nm_classify(buf, (size_t)n);
	}
	if (!what)
		return;
	nm.pending |= what;
	ev_timer_set(&nm.timer, NM_COALESCE, 0.);
	ev_timer_stop(loop, &nm.timer);
	ev_timer_start(loop, &nm.timer);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static const char *hv_path, *px_path;

static const struct option nm_options[] = {
	{ "hv-socket", required_argument, NULL, 'H' },
	{ "proxy-socket", required_argument, NULL, 'P' },
	{ NULL, 0, NULL, 0 },
};

static int nm_option(struct husk_daemon *d, int key, const char *arg,
		     struct husk_err **err)
{
	if (key == 'H')
		hv_path = arg;
	else
		px_path = arg;
	return 0;
}

static int nm_check(struct husk_daemon *d, struct husk_err **err)
{
	if (!hv_path || !px_path)
		return husk_error(err, HUSK_E_INVALID, "--hv-socket and "
				  "--proxy-socket are required");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open, (confine: confine.c), run                                     */

/* Everything netmon will use is opened before confinement. */
static int nm_open(struct husk_daemon *d, struct husk_err **err)
{
	nm.loop = d->loop;
	if (nm_nl_open(&nm.events, &nm.dumps, err) < 0)
		return -1;
	if (ipc_client_connect(&nm.hv, hv_path, NM_COMPONENT,
			       "husk-hypervisor", 10000, err) < 0 ||
	    ipc_client_connect(&nm.px, px_path, NM_COMPONENT, "husk-proxy",
			       10000, err) < 0)
		return -1;
	nm.known = json_object();
	ev_io_init(&nm.nl_w, on_netlink, nl_socket_get_fd(nm.events), EV_READ);
	ev_io_start(nm.loop, &nm.nl_w);
	ev_timer_init(&nm.timer, on_timer, NM_COALESCE, 0.);
	return 0;
}

static int nm_run(struct husk_daemon *d, struct husk_err **err)
{
	/* The starting state: anything the runtime did not attach. */
	sync_all(true);
	log_info("nm_run: watching the namespace of sandbox %s", d->sandbox);
	return 0;
}

static void nm_close(struct husk_daemon *d)
{
	ipc_client_close(&nm.hv);
	ipc_client_close(&nm.px);
	nl_socket_free(nm.events);
	nl_socket_free(nm.dumps);
	json_decref(nm.known);
	json_decref(nm.routes);
}

static struct husk_daemon netmon = {
	.name = "husk-netmon",
	.tag = "netmon",
	.version = NM_VERSION,
	.usage = "--hv-socket PATH --proxy-socket PATH",
	.options = nm_options,
	.option = nm_option,
	.check = nm_check,
	.open = nm_open,
	.confine = nm_confine,
	.run = nm_run,
	.close = nm_close,
	.log_level = HUSK_LOG_INFO,
	.sandbox = "sandbox",
};

int main(int argc, char **argv)
{
	return husk_daemon_main(&netmon, argc, argv);
}
