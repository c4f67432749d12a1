/*
 * husk-agent's method table: every method of docs/agent-protocol.md,
 * its flags and the params its handler gets, decoded by libipc before
 * the handler runs.  The host (the proxy) is the only peer.
 */
#include <stddef.h>

#include "libhusk/util.h"
#include "agent/core.h"
#include "agent/guest.h"
#include "agent/methods.h"

#define P(m) offsetof(struct ct_params, m)
#define F_CID { "container_id", IPC_F_STR, IPC_REQUIRED, P(container_id), 0, HUSK_ID_MAX }
#define F_EID { "exec_id", IPC_F_STR, IPC_REQUIRED, P(exec_id), 0, HUSK_ID_MAX }
#define F_END { NULL, 0, 0, 0, 0, 0 }

static const struct ipc_field f_sandbox[] = {
	{ "sandbox_id", IPC_F_STR, IPC_REQUIRED, P(sandbox_id), 0, HUSK_ID_MAX },
	{ "hostname", IPC_F_STR, IPC_NULLABLE, P(hostname), 0, 64 },
	{ "dns", IPC_F_STRV, IPC_NULLABLE, P(dns), 64, 16 },
	{ "shared_pid_ns", IPC_F_BOOL, IPC_NULLABLE, P(shared_pid_ns), 0, 0 },
	F_END,
};
static const struct ipc_field f_destroy[] = {
	{ "poweroff", IPC_F_BOOL, IPC_NULLABLE, P(poweroff), 0, 0 },
	F_END,
};
static const struct ipc_field f_create[] = {
	F_CID,
	{ "spec", IPC_F_MAP, IPC_REQUIRED, P(spec), 0, 1024 },
	F_END,
};
static const struct ipc_field f_cid[] = { F_CID, F_END };
static const struct ipc_field f_remove[] = {
	F_CID,
	{ "force", IPC_F_BOOL, IPC_NULLABLE, P(force), 0, 0 },
	F_END,
};
static const struct ipc_field f_update[] = {
	F_CID,
	{ "resources", IPC_F_MAP, IPC_REQUIRED, P(resources), 0, 1024 },
	F_END,
};
static const struct ipc_field f_proc[] = { F_CID, F_EID, F_END };
static const struct ipc_field f_exec[] = {
	F_CID, F_EID,
	{ "process", IPC_F_MAP, IPC_REQUIRED, P(process), 0, 1024 },
	F_END,
};
static const struct ipc_field f_signal[] = {
	F_CID, F_EID,
	/* 0 checks that the process is there, as kill(2)'s does. */
	{ "signal", IPC_F_INT64, IPC_REQUIRED, P(signal), 0, 64 },
	{ "all", IPC_F_BOOL, IPC_NULLABLE, P(all), 0, 0 },
	F_END,
};
static const struct ipc_field f_write_stdin[] = {
	F_CID, F_EID,
	{ "data", IPC_F_BIN, IPC_REQUIRED, P(data), 0, AGENT_STDIN_MAX },
	F_END,
};
static const struct ipc_field f_winsize[] = {
	F_CID, F_EID,
	{ "rows", IPC_F_UINT64, IPC_REQUIRED, P(rows), 0, 65535 },
	{ "cols", IPC_F_UINT64, IPC_REQUIRED, P(cols), 0, 65535 },
	F_END,
};

#define G(m) offsetof(struct guest_online_params, m)
static const struct ipc_field f_online[] = {
	{ "cpus", IPC_F_BOOL, IPC_NULLABLE, G(cpus), 0, 0 },
	{ "memory", IPC_F_BOOL, IPC_NULLABLE, G(memory), 0, 0 },
	F_END,
};
static const struct guest_online_params online_defaults = {
	.cpus = true, .memory = true,
};

int agent_m_ping(struct ipc_conn *c, struct ipc_msg *m, void *params,
		 void *arg, struct husk_err **err)
{
	ipc_reply_ok(c, m->msgid);
	return 0;
}

int agent_m_version(struct ipc_conn *c, struct ipc_msg *m, void *params,
		    void *arg, struct husk_err **err)
{
	msgpack_packer *pk = ipc_reply_begin(c, m->msgid);

	msgpack_pack_map(pk, 2);
	ipc_pack_kv_str(pk, "agent_version", AGENT_VERSION);
	ipc_pack_kv_int(pk, "protocol", IPC_PROTOCOL_VERSION);
	ipc_reply_send(c);
	return 0;
}

#define REQ IPC_M_REQUEST
#define CT(name, fields, fn) IPC_METHOD_P(name, REQ, fields, struct ct_params, fn)

const struct ipc_method agent_methods[] = {
	/* Liveness and the guest */
	IPC_METHOD(AGENT_M_PING, REQ, agent_m_ping),
	IPC_METHOD(AGENT_M_VERSION, REQ, agent_m_version),
	IPC_METHOD(AGENT_M_GET_GUEST_DETAILS, REQ, agent_m_get_guest_details),
	IPC_METHOD_D(AGENT_M_ONLINE_CPU_MEM, REQ, f_online, online_defaults,
		     agent_m_online_cpu_mem),
	IPC_METHOD_P(AGENT_M_RESEED_RANDOM_DEV, REQ, guest_seed_fields,
		     struct ipc_bin, agent_m_reseed_random_dev),
	IPC_METHOD_P(AGENT_M_SET_GUEST_DATETIME, REQ, guest_time_fields,
		     struct guest_time, agent_m_set_guest_datetime),
	IPC_METHOD_D(AGENT_M_COPY_FILE, REQ, guest_copy_fields,
		     guest_copy_defaults, agent_m_copy_file),
	/* Sandbox: a second create_sandbox answers `exists` (the sandbox
	 * outlives a host's connection), so it is not IPC_M_ONCE. */
	CT(AGENT_M_CREATE_SANDBOX, f_sandbox, agent_m_create_sandbox),
	CT(AGENT_M_DESTROY_SANDBOX, f_destroy, agent_m_destroy_sandbox),
	/* Containers */
	CT(AGENT_M_CREATE_CONTAINER, f_create, agent_m_create_container),
	CT(AGENT_M_START_CONTAINER, f_cid, agent_m_start_container),
	CT(AGENT_M_REMOVE_CONTAINER, f_remove, agent_m_remove_container),
	CT(AGENT_M_PAUSE_CONTAINER, f_cid, agent_m_pause_container),
	CT(AGENT_M_RESUME_CONTAINER, f_cid, agent_m_resume_container),
	CT(AGENT_M_UPDATE_CONTAINER, f_update, agent_m_update_container),
	CT(AGENT_M_STATS_CONTAINER, f_cid, agent_m_stats_container),
	CT(AGENT_M_LIST_PROCESSES, f_cid, agent_m_list_processes),
	IPC_METHOD_D(AGENT_M_WAIT_OOM, REQ, oom_wait_fields,
		     oom_wait_defaults, agent_m_wait_oom),
	/* Processes */
	CT(AGENT_M_EXEC_PROCESS, f_exec, agent_m_exec_process),
	CT(AGENT_M_SIGNAL_PROCESS, f_signal, agent_m_signal_process),
	CT(AGENT_M_WAIT_PROCESS, f_proc, agent_m_wait_process),
	CT(AGENT_M_WRITE_STDIN, f_write_stdin, agent_m_write_stdin),
	CT(AGENT_M_CLOSE_STDIN, f_proc, agent_m_close_stdin),
	CT(AGENT_M_TTY_WINRESIZE, f_winsize, agent_m_tty_winresize),
	/* A bad ack is the host breaking the flow control: the handler
	 * decodes it and drops the connection, which a table's failure
	 * (logged) would not. */
	IPC_METHOD(AGENT_N_OUTPUT_ACK, IPC_M_NOTIFY, agent_m_output_ack),
	/* Networking: nested params, decoded by agent/net_params.c */
	IPC_METHOD(AGENT_M_UPDATE_INTERFACE, REQ, agent_m_update_interface),
	IPC_METHOD(AGENT_M_UPDATE_ROUTES, REQ, agent_m_update_routes),
	IPC_METHOD(AGENT_M_LIST_INTERFACES, REQ, agent_m_list_interfaces),
	IPC_METHOD(AGENT_M_LIST_ROUTES, REQ, agent_m_list_routes),
	IPC_METHOD_END,
};
