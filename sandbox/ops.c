/*
 * What a running container's callers share beyond create, start and
 * destroy: exec, pause and resume, update.  Used by the CLI verbs and
 * by containerd-shim-husk-v2's Task service.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "libhusk/log.h"
#include "libipc/proto_agent.h"
#include "sandbox.h"

/* The exec started in the guest but its shim did not: it goes. */
static void undo_exec(const char *root, const struct husk_container *c,
		      const char *eid)
{
	husk_agent_call(root, c->sandbox_id, AGENT_M_SIGNAL_PROCESS,
			json_pack("{s:s, s:s, s:i}", "container_id", c->id,
				  "exec_id", eid, "signal", SIGKILL),
			10000, NULL, NULL);
}

int husk_ct_exec_check(const struct husk_container *c, struct husk_err **err)
{
	int live = husk_live_status(c);

	/* A created container's namespaces exist already: runc execs into
	 * it, and so does husk. */
	if (live != HUSK_ST_RUNNING && live != HUSK_ST_CREATED)
		return husk_error(err, HUSK_E_STATE, "container %s is %s, not "
				  "created or running", c->id,
				  husk_status_name(live));
	return 0;
}

pid_t husk_ct_exec(const struct husk_config *cfg, const char *root,
		   const struct husk_container *c, const char *eid,
		   const json_t *process, const char *console,
		   const int *stdio, struct husk_err **err)
{
	pid_t shim;

	if (husk_ct_exec_check(c, err) < 0)
		return -1;
	if (husk_agent_call(root, c->sandbox_id, AGENT_M_EXEC_PROCESS,
			    json_pack("{s:s, s:s, s:O}", "container_id", c->id,
				      "exec_id", eid, "process", process),
			    HUSK_START_TIMEOUT_MS, NULL, err) < 0)
		return -1;
	shim = husk_shim_start_io(cfg, root, c->sandbox_id, c->id, eid,
				  json_is_true(json_object_get(process,
							       "terminal")),
				  console, stdio, err);
	if (shim < 0)
		undo_exec(root, c, eid);
	return shim;
}

int husk_ct_pause_check(const struct husk_container *c, bool pause,
			struct husk_err **err)
{
	int want = pause ? HUSK_ST_RUNNING : HUSK_ST_PAUSED;
	int live = husk_live_status(c);

	if (live != want)
		return husk_error(err, HUSK_E_STATE, "container %s is %s",
				  c->id, husk_status_name(live));
	return 0;
}

int husk_ct_paused(struct husk_entry *e, struct husk_container *c,
		   bool pause, struct husk_err **err)
{
	c->status = pause ? HUSK_ST_PAUSED : HUSK_ST_RUNNING;
	return husk_container_write(e, c, err);
}

int husk_ct_pause(const char *root, struct husk_entry *e,
		  struct husk_container *c, bool pause, struct husk_err **err)
{
	if (husk_ct_pause_check(c, pause, err) < 0)
		return -1;
	if (husk_agent_call(root, c->sandbox_id,
			    pause ? AGENT_M_PAUSE_CONTAINER : AGENT_M_RESUME_CONTAINER,
			    json_pack("{s:s}", "container_id", c->id), 30000,
			    NULL, err) < 0)
		return -1;
	return husk_ct_paused(e, c, pause, err);
}

int husk_ct_update_grow(const char *root, struct husk_entry *e,
			struct husk_container *c, const json_t *res,
			struct husk_err **err)
{
	/* Kata's way: the VM grows before a larger limit applies, and
	 * gives back hot-plugged memory after a smaller one did. */
	int rc = husk_ct_resize(root, c, res, false, err);

	if (husk_container_write(e, c, rc < 0 ? NULL : err) < 0)
		rc = -1;
	return rc;
}

json_t *husk_ct_update_params(const struct husk_container *c,
			      const json_t *res)
{
	return json_pack("{s:s, s:O}", "container_id", c->id, "resources",
			 res);
}

int husk_ct_update_shrink(const char *root, struct husk_entry *e,
			  struct husk_container *c, const json_t *res,
			  struct husk_err **err)
{
	if (husk_ct_resize(root, c, res, true, err) < 0)
		return -1;
	return husk_container_write(e, c, err);
}

int husk_ct_update(const char *root, struct husk_entry *e,
		   struct husk_container *c, const json_t *res,
		   struct husk_err **err)
{
	if (husk_ct_update_grow(root, e, c, res, err) < 0 ||
	    husk_agent_call(root, c->sandbox_id, AGENT_M_UPDATE_CONTAINER,
			    husk_ct_update_params(c, res),
			    HUSK_UPDATE_TIMEOUT_MS, NULL, err) < 0)
		return -1;
	return husk_ct_update_shrink(root, e, c, res, err);
}
