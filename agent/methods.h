/*
 * husk-agent's methods (docs/agent-protocol.md): the params structs the
 * rows of agent/methods.c fill, and the handlers.  A handler gets its
 * decoded params (NULL when its row has none), arg is the struct
 * agent, and it answers or returns -1 with *err (struct ipc_method).
 */
#ifndef HUSK_AGENT_METHODS_H
#define HUSK_AGENT_METHODS_H

#include <stdbool.h>
#include <stdint.h>

#include "libipc/ipc.h"
#include "libipc/proto_agent.h"

extern const struct ipc_method agent_methods[];

/* The sandbox, container and process methods; each row's table says
 * which members it fills. */
struct ct_params {
	char *sandbox_id;
	char *hostname;
	char **dns;
	bool shared_pid_ns;
	bool poweroff;
	char *container_id;
	char *exec_id;
	const msgpack_object *spec;
	const msgpack_object *process;
	const msgpack_object *resources;
	bool force;
	bool all;
	int64_t signal;
	/* write_stdin, tty_winresize */
	struct ipc_bin data;
	uint64_t rows, cols;
};

/* online_cpu_mem */
struct guest_online_params {
	bool cpus, memory;
};

/* wait_oom (oom.c): seen UINT64_MAX (absent) answers at once. */
struct oom_params {
	char *container_id;
	uint64_t seen;
	uint64_t timeout_ms;            /* 0: no limit */
};
/* wait_oom calls one container may have waiting, and their longest
 * timeout (a day). */
#define AGENT_OOM_WAITERS_MAX 64u
#define AGENT_OOM_TIMEOUT_MAX 86400000u
extern const struct ipc_field oom_wait_fields[];
extern const struct oom_params oom_wait_defaults;

#define AGENT_HANDLER(fn) \
	int fn(struct ipc_conn *c, struct ipc_msg *m, void *params, \
	       void *arg, struct husk_err **err)

/* methods.c */
AGENT_HANDLER(agent_m_ping);
AGENT_HANDLER(agent_m_version);
/* guest.c */
AGENT_HANDLER(agent_m_get_guest_details);
AGENT_HANDLER(agent_m_online_cpu_mem);
AGENT_HANDLER(agent_m_reseed_random_dev);
AGENT_HANDLER(agent_m_set_guest_datetime);
AGENT_HANDLER(agent_m_copy_file);
/* sandbox.c */
AGENT_HANDLER(agent_m_create_sandbox);
AGENT_HANDLER(agent_m_destroy_sandbox);
/* container.c */
AGENT_HANDLER(agent_m_create_container);
AGENT_HANDLER(agent_m_start_container);
AGENT_HANDLER(agent_m_remove_container);
AGENT_HANDLER(agent_m_pause_container);
AGENT_HANDLER(agent_m_resume_container);
AGENT_HANDLER(agent_m_update_container);
AGENT_HANDLER(agent_m_stats_container);
AGENT_HANDLER(agent_m_list_processes);
/* oom.c */
AGENT_HANDLER(agent_m_wait_oom);
/* exec.c */
AGENT_HANDLER(agent_m_exec_process);
AGENT_HANDLER(agent_m_signal_process);
/* stream.c */
AGENT_HANDLER(agent_m_wait_process);
AGENT_HANDLER(agent_m_write_stdin);
AGENT_HANDLER(agent_m_close_stdin);
AGENT_HANDLER(agent_m_tty_winresize);
AGENT_HANDLER(agent_m_output_ack);
/* net.c */
AGENT_HANDLER(agent_m_update_interface);
AGENT_HANDLER(agent_m_update_routes);
AGENT_HANDLER(agent_m_list_interfaces);
AGENT_HANDLER(agent_m_list_routes);

#undef AGENT_HANDLER

#endif
