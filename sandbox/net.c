/*
 * A sandbox's network (docs/network.md): its namespace (given, made, or
 * the host's), the links of that namespace mirrored into the VM through
 * the hypervisor driver (taps and tc filters, hypervisor-drv/net.c) and
 * the agent (addresses and routes), husk-netmon to keep them in step,
 * and the clean-up that leaves no tap, filter or namespace behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "libhusk/cleanup.h"
#include "libhusk/log.h"
#include "libhusk/nettc.h"
#include "libhusk/netroutes.h"
#include "libhusk/util.h"
#include "sandbox.h"
#include "libipc/proto_agent.h"
#include "libipc/proto_hv.h"

#define HV_NET_TIMEOUT 60000    /* a hot-plug under a loaded TCG host */
#define AGENT_NET_TIMEOUT 30000

/* ------------------------------------------------------------------ */
/* The namespace                                                       */

int husk_netns_enter(const char *path, int *saved, struct husk_err **err)
{
	cleanup_close int fd = -1;

	*saved = -1;
	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "open network namespace "
				      "`%s`", path);
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0)
		return husk_error_sys(err, errno, "open our network namespace");
	if (setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;

		close(*saved);
		*saved = -1;
		return husk_error_sys(err, e, "enter network namespace `%s`",
				      path);
	}
	return 0;
}

int husk_netns_leave(int saved, struct husk_err **err)
{
	int rc = 0;

	if (saved < 0)
		return 0;
	if (setns(saved, CLONE_NEWNET) < 0)
		rc = husk_error(err, HUSK_E_SYSTEM, "back to our network "
				"namespace: %s", strerror(errno));
	close(saved);
	return rc;
}

static bool same_ns(const struct stat *a, const char *path)
{
	struct stat b;

	return stat(path, &b) == 0 && a->st_dev == b.st_dev &&
	       a->st_ino == b.st_ino;
}

bool husk_netns_is_host(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	return same_ns(&st, "/proc/1/ns/net") ||
	       same_ns(&st, "/proc/self/ns/net") ||
	       same_ns(&st, "/proc/thread-self/ns/net");
}

static int netns_check(const char *path, struct husk_err **err)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return husk_error_sys(err, errno, "config.json: linux."
				      "namespaces: network path `%s`", path);
	if (sf.f_type != NSFS_MAGIC && sf.f_type != PROC_SUPER_MAGIC)
		return husk_error(err, HUSK_E_INVALID, "config.json: linux."
				  "namespaces: `%s` is not a network "
				  "namespace", path);
	return 0;
}

static int lo_up(struct husk_err **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct rtnl_link *lo = NULL, *chg = NULL;
	int rc = -NLE_NOMEM;

	if (sk && (rc = nl_connect(sk, NETLINK_ROUTE)) >= 0 &&
	    (rc = rtnl_link_get_kernel(sk, 0, "lo", &lo)) >= 0) {
		chg = rtnl_link_alloc();
		rtnl_link_set_flags(chg, IFF_UP);
		rc = rtnl_link_change(sk, lo, chg, 0);
	}
	if (lo)
		rtnl_link_put(lo);
	if (chg)
		rtnl_link_put(chg);
	nl_socket_free(sk);
	if (rc < 0)
		return husk_error(err, HUSK_E_SYSTEM, "bring lo up in the new "
				  "network namespace: %s", nl_geterror(rc));
	return 0;
}

/* A new namespace, kept by a bind mount of its nsfs file at path (as
 * `ip netns add` does). */
static int netns_create(const char *path, struct husk_err **err)
{
	cleanup_close int fd = -1;
	int saved, rc = 0;

	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return husk_error_sys(err, errno, "create `%s`", path);
	saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (saved < 0)
		return husk_error_sys(err, errno, "open our network namespace");
	if (unshare(CLONE_NEWNET) < 0) {
		rc = husk_error_sys(err, errno, "unshare a network namespace");
	} else {
		if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND,
			  NULL) < 0)
			rc = husk_error_sys(err, errno, "bind the network "
					    "namespace on `%s`", path);
		else
			rc = lo_up(err);
	}
	if (husk_netns_leave(saved, err) < 0)
		rc = -1;
	if (rc < 0) {
		umount2(path, MNT_DETACH);
		unlink(path);
	}
	return rc;
}

int husk_net_prepare(struct husk_entry *e, const struct husk_config *cfg,
		     const char *root, const char *sid, const json_t *spec,
		     struct husk_sandbox *s, struct husk_err **err)
{
	json_t *nss = json_object_get(json_object_get(spec, "linux"),
				      "namespaces"), *ns, *net = NULL;
	const char *path;
	size_t i;

	if (!strcmp(cfg->network_model, "macvtap"))
		return husk_error(err, HUSK_E_NOT_IMPLEMENTED, "[runtime] "
				  "network_model = macvtap is not implemented "
				  "(use tcfilter or none)");
	json_array_foreach(nss, i, ns)
		if (!strcmp(json_string_value(json_object_get(ns, "type")) ?:
			    "", "network"))
			net = ns;
	if (!net) {
		if (!cfg->host_network)
			return husk_error(err, HUSK_E_INVALID, "config.json: "
					  "linux.namespaces has no network "
					  "namespace, so the sandbox would use "
					  "the host's: set [runtime] "
					  "host_network = true in husk.conf to "
					  "allow that");
		log_info("sandbox %s: the host's network namespace; no "
			 "interface is mirrored", sid);
		return 0;
	}
	path = json_string_value(json_object_get(net, "path"));
	if (path && *path) {
		/* Mirroring the host's links would hand the guest the
		 * host's traffic, and delete would scrub the host's
		 * taps: the host's namespace is taken only as "no
		 * namespace of its own", wherever its file is (docker's
		 * --network host names <exec-root>/netns/default), and
		 * its path is not kept. */
		if (husk_netns_is_host(path)) {
			cleanup_free char *shown = husk_escape(path,
							       strlen(path));

			if (!cfg->host_network)
				return husk_error(err, HUSK_E_INVALID,
						  "config.json: linux."
						  "namespaces: `%s` is the "
						  "host's network namespace "
						  "(docker's --network host?): "
						  "set [runtime] host_network "
						  "= true in husk.conf to "
						  "allow that", shown);
			log_info("sandbox %s: `%s` is the host's network "
				 "namespace; no interface is mirrored", sid,
				 shown);
			return 0;
		}
		if (husk_state_netns_check(root, sid, path, false, err) < 0)
			return husk_error_wrap(err, "config.json: linux."
					       "namespaces: network");
		if (netns_check(path, err) < 0)
			return -1;
		s->netns = husk_xstrdup(path);
		s->netns_created = false;
		return 0;
	}
	/* Recorded first: a failure from here on is undone by delete. */
	free(s->id);
	s->id = husk_xstrdup(sid);
	s->netns = husk_xasprintf("%s/%s/netns", root, sid);
	s->netns_created = true;
	if (husk_sandbox_write(e, s, err) < 0)
		return -1;
	return netns_create(s->netns, err);
}

/* A rtnetlink socket of the namespace at path (ours if NULL). */
static struct nl_sock *netns_socket(const char *path, struct husk_err **err)
{
	struct nl_sock *sk;
	int saved, rc;

	if (husk_netns_enter(path, &saved, err) < 0)
		return NULL;
	sk = nl_socket_alloc();
	rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (husk_netns_leave(saved, err) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	if (rc < 0) {
		nl_socket_free(sk);
		husk_error(err, HUSK_E_SYSTEM, "rtnetlink: %s",
			   nl_geterror(rc));
		return NULL;
	}
	return sk;
}

/* A call to the sandbox's driver (params consumed), with a descriptor
 * when fd >= 0. */
static int hv_call_fd(const char *root, const char *sid, const char *method,
		      json_t *params, int fd, json_t **res,
		      struct husk_err **err)
{
	struct husk_sbx_paths p;
	int rc;

	if (husk_sandbox_paths(root, sid, &p, err) < 0) {
		json_decref(params);
		return -1;
	}
	rc = husk_rpc_call(p.hv_sock, HV_COMPONENT, method, params,
			   HV_NET_TIMEOUT, res, fd >= 0 ? &fd : NULL,
			   fd >= 0 ? 1 : 0, err);
	json_decref(params);
	husk_sandbox_paths_free(&p);
	return rc;
}

static int hv_call(const char *root, const char *sid, const char *method,
		   json_t *params, json_t **res, struct husk_err **err)
{
	return hv_call_fd(root, sid, method, params, -1, res, err);
}

int husk_net_adopt(const char *root, const char *sid, const char *netns,
		   struct husk_err **err)
{
	struct nl_sock *sk = netns_socket(netns, err);
	int rc;

	if (!sk)
		return husk_error_wrap(err, "the sandbox's network namespace");
	rc = hv_call_fd(root, sid, HV_M_NET_NAMESPACE, NULL,
			nl_socket_get_fd(sk), NULL, err);
	nl_socket_free(sk);
	return rc;
}

/* Names of the links the driver has attached. */
static int attached_names(const char *root, const char *sid, json_t **out,
			  struct husk_err **err)
{
	json_t *res = NULL, *l;
	size_t i;

	if (hv_call(root, sid, HV_M_NET_LIST, NULL, &res, err) < 0)
		return -1;
	*out = json_array();
	json_array_foreach(json_object_get(res, "links"), i, l)
		if (json_object_get(l, "tap"))
			json_array_append(*out, json_object_get(l, "name"));
	json_decref(res);
	return 0;
}

int husk_net_sync_routes(const char *root, const char *sid,
			 const char *netns, struct husk_err **err)
{
	struct nl_sock *sk;
	json_t *names = NULL, *routes = NULL;
	int rc;

	if (attached_names(root, sid, &names, err) < 0)
		return -1;
	sk = netns_socket(netns, err);
	if (!sk) {
		json_decref(names);
		return -1;
	}
	rc = husk_net_routes(sk, names, &routes, err);
	nl_socket_free(sk);
	json_decref(names);
	if (rc < 0)
		return -1;
	return husk_agent_call(root, sid, AGENT_M_UPDATE_ROUTES,
			       json_pack("{s:o}", "routes", routes),
			       AGENT_NET_TIMEOUT, NULL, err);
}

/* ------------------------------------------------------------------ */
/* Interfaces                                                          */

/* The guest sees a hot-plugged NIC a while after QEMU's device_add
 * returns (PCIe hotplug in the guest): retry while the agent does not
 * know the MAC yet. */
static int update_interface(const char *root, const char *sid,
			    json_t *ifc, json_t **out, struct husk_err **err)
{
	uint64_t deadline = husk_now_ms() + AGENT_NET_TIMEOUT;

	for (;;) {
		struct husk_err *e = NULL;
		struct timespec ts = { 0, 100 * 1000000L };

		if (husk_agent_call(root, sid, AGENT_M_UPDATE_INTERFACE,
				    json_pack("{s:O}", "interface", ifc),
				    AGENT_NET_TIMEOUT, out, &e) == 0)
			return 0;
		if (e->code != HUSK_E_NOT_FOUND ||
		    husk_now_ms() >= deadline) {
			*err = e;
			return -1;
		}
		husk_err_free(e);
		nanosleep(&ts, NULL);
	}
}

/* /dev/net/tun opened in the namespace at path: a tap made through it
 * is made there, wherever the driver that makes it lives. */
static int tun_in(const char *path, struct husk_err **err)
{
	int saved, fd, e;

	if (husk_netns_enter(path, &saved, err) < 0)
		return -1;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	e = errno;
	if (husk_netns_leave(saved, err) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fd < 0)
		return husk_error_sys(err, e, "open /dev/net/tun in `%s`",
				      path);
	return fd;
}

int husk_net_add_iface(const char *root, const char *sid, const char *netns,
		       const json_t *over, json_t **iface,
		       struct husk_err **err)
{
	const char *name = json_string_value(json_object_get(over, "name"));
	json_t *res = NULL, *ifc, *v, *out = NULL;
	cleanup_close int tun = -1;

	if (!name)
		return husk_error(err, HUSK_E_INVALID, "interface: \"name\" "
				  "(a string) is missing");
	if (netns && (tun = tun_in(netns, err)) < 0)
		return husk_error_wrap(err, "attach %s", name);
	if (hv_call_fd(root, sid, HV_M_NET_ATTACH,
		       json_pack("{s:s}", "name", name), tun, &res, err) < 0)
		return husk_error_wrap(err, "attach %s", name);
	ifc = json_pack("{s:s, s:O, s:O, s:O, s:b}", "name", name,
			"mac", json_object_get(res, "mac"),
			"mtu", json_object_get(res, "mtu"),
			"addresses", json_object_get(res, "addresses"),
			"up", 1);
	/* What the caller gives wins over what the link has. */
	if ((v = json_object_get(over, "addresses")) && json_is_array(v))
		json_object_set(ifc, "addresses", v);
	if ((v = json_object_get(over, "mtu")) && json_is_integer(v))
		json_object_set(ifc, "mtu", v);
	if (update_interface(root, sid, ifc, &out, err) < 0) {
		cleanup_err struct husk_err *e2 = NULL;

		husk_error_wrap(err, "interface %s in the guest", name);
		if (hv_call(root, sid, HV_M_NET_DETACH,
			    json_pack("{s:s}", "name", name), NULL, &e2) < 0)
			log_warnx("undo: %s", e2->msg);
		json_decref(ifc);
		json_decref(res);
		return -1;
	}
	json_object_set(ifc, "tap", json_object_get(res, "tap"));
	json_decref(out);
	json_decref(res);
	*iface = ifc;
	return 0;
}

int husk_net_del_iface(const char *root, const char *sid, const char *name,
		       struct husk_err **err)
{
	/* The guest's NIC goes with the device; nothing to ask the agent. */
	if (hv_call(root, sid, HV_M_NET_DETACH,
		    json_pack("{s:s}", "name", name), NULL, err) < 0)
		return husk_error_wrap(err, "detach %s", name);
	return 0;
}

static int start_netmon(struct husk_entry *e, const struct husk_config *cfg,
			const char *root, const char *sid,
			struct husk_sandbox *s, struct husk_err **err)
{
	struct husk_sbx_paths p;
	cleanup_free char *log = NULL;
	int saved, left, rc = -1;
	pid_t pid;

	if (husk_sandbox_paths(root, sid, &p, err) < 0)
		return -1;
	log = husk_xasprintf("%s/netmon.log", p.dir);
	{
		char *argv[] = { cfg->netmon_path, "--hv-socket", p.hv_sock,
				 "--proxy-socket", p.proxy_sock, "--sandbox",
				 (char *)sid, "--log-level",
				 cfg->debug ? "debug" : "info", NULL };

		if (husk_netns_enter(s->netns, &saved, err) < 0)
			goto out;
		pid = husk_spawn(argv, log, NULL, 0, err);
		left = husk_netns_leave(saved, err);
	}
	if (pid < 0) {
		husk_error_wrap(err, "start husk-netmon");
		goto out;
	}
	husk_proc_ref(pid, &s->netmon);
	/* Recorded even when we could not get back: the rollback stops it. */
	rc = husk_sandbox_write(e, s, err);
	if (left < 0)
		rc = -1;
	if (rc == 0)
		rc = husk_sandbox_cgroup_enter(e, s, pid, err);
out:
	husk_sandbox_paths_free(&p);
	return rc;
}

/* The links husk_net_setup mirrors: Ethernet ones, not attached yet
 * (tapped) unless tapped is true. */
static bool to_mirror(const json_t *l, bool tapped)
{
	return json_is_true(json_object_get(l, "ethernet")) &&
	       (tapped || !json_object_get(l, "tap"));
}

int husk_net_coldplug(const struct husk_config *cfg, const char *root,
		      const char *sid, const struct husk_sandbox *s,
		      struct husk_err **err)
{
	json_t *res = NULL, *l;
	size_t i;
	int n = 0, rc = 0;

	if (!s->netns || !strcmp(cfg->network_model, "none"))
		return 0;
	if (hv_call(root, sid, HV_M_NET_LIST, NULL, &res, err) < 0)
		return husk_error_wrap(err, "the sandbox's links");
	json_array_foreach(json_object_get(res, "links"), i, l) {
		const char *name = json_string_value(json_object_get(l,
								      "name"));
		int tun;

		if (!name || !to_mirror(l, false))
			continue;
		tun = tun_in(s->netns, err);
		if (tun < 0 || hv_call_fd(root, sid, HV_M_NET_ATTACH,
					  json_pack("{s:s}", "name", name),
					  tun, NULL, err) < 0) {
			if (tun >= 0)
				close(tun);
			rc = husk_error_wrap(err, "attach %s", name);
			break;
		}
		close(tun);
		n++;
	}
	json_decref(res);
	if (rc == 0)
		log_info("sandbox %s: %d interface(s) on QEMU's command line",
			 sid, n);
	return rc;
}

int husk_net_setup(struct husk_entry *e, const struct husk_config *cfg,
		   const char *root, const char *sid, struct husk_sandbox *s,
		   struct husk_err **err)
{
	json_t *res = NULL, *l;
	size_t i;
	int n = 0;

	if (!s->netns)
		return 0;
	if (!strcmp(cfg->network_model, "none")) {
		log_info("sandbox %s: network_model none: loopback only", sid);
		return 0;
	}
	if (hv_call(root, sid, HV_M_NET_LIST, NULL, &res, err) < 0)
		return husk_error_wrap(err, "the sandbox's links");
	json_array_foreach(json_object_get(res, "links"), i, l) {
		json_t *iface = NULL;

		if (!to_mirror(l, true))
			continue;
		/* Attached at boot (husk_net_coldplug): the guest has the
		 * NIC, it needs the link's addresses. */
		if (json_object_get(l, "tap")) {
			json_t *ifc = json_pack("{s:O, s:O, s:O, s:O, s:b}",
						"name", json_object_get(l, "name"),
						"mac", json_object_get(l, "mac"),
						"mtu", json_object_get(l, "mtu"),
						"addresses",
						json_object_get(l, "addresses"),
						"up", 1);
			int rc = ifc ? update_interface(root, sid, ifc,
							&iface, err) :
				       husk_error(err, HUSK_E_PROTOCOL,
						  "net_list: a link without "
						  "its name, mac, mtu or "
						  "addresses");

			json_decref(ifc);
			if (rc < 0) {
				husk_error_wrap(err, "interface %s in the "
						"guest", json_string_value(
						json_object_get(l, "name")) ?:
						"?");
				json_decref(res);
				return -1;
			}
		} else if (husk_net_add_iface(root, sid, s->netns, l, &iface,
					      err) < 0) {
			json_decref(res);
			return -1;
		}
		json_decref(iface);
		n++;
	}
	json_decref(res);
	if (n && husk_net_sync_routes(root, sid, s->netns, err) < 0)
		return husk_error_wrap(err, "routes in the guest");
	log_info("sandbox %s: %d interface(s) mirrored", sid, n);
	if (cfg->netmon_enable)
		return start_netmon(e, cfg, root, sid, s, err);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The end                                                             */

void husk_net_release(const struct husk_sandbox *s)
{
	cleanup_err struct husk_err *e = NULL;
	struct nl_sock *sk;
	int n;

	if (!s->netns)
		return;
	sk = netns_socket(s->netns, &e);
	if (sk) {
		n = husk_net_scrub(sk, &e);
		if (n > 0)
			log_info("%d tap(s) or filter(s) a "
				 "dead driver left removed", n);
		else if (n < 0)
			log_warnx("%s", e->msg);
		nl_socket_free(sk);
	} else if (!s->netns_created) {
		log_warnx("%s", e->msg);
	}
	if (s->netns_created) {
		if (umount2(s->netns, MNT_DETACH) < 0 && errno != EINVAL &&
		    errno != ENOENT)
			log_warn("umount %s", s->netns);
		if (unlink(s->netns) < 0 && errno != ENOENT)
			log_warn("unlink %s", s->netns);
	}
}
