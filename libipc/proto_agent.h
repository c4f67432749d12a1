/*
 * The agent protocol (docs/agent-protocol.md): the method names that
 * husk-agent answers and its hosts call (husk-proxy, which forwards
 * them, sandbox/, husk-shim, husk-netmon, husk-ipc and the test
 * helpers).  One name per method, here only; AGENT_M_X names the method
 * that agent_m_x handles.
 */
#ifndef HUSK_PROTO_AGENT_H
#define HUSK_PROTO_AGENT_H

#define AGENT_COMPONENT "husk-agent"

/* Liveness and the guest */
#define AGENT_M_PING "ping"
#define AGENT_M_VERSION "version"
#define AGENT_M_GET_GUEST_DETAILS "get_guest_details"
#define AGENT_M_ONLINE_CPU_MEM "online_cpu_mem"
#define AGENT_M_RESEED_RANDOM_DEV "reseed_random_dev"
#define AGENT_M_SET_GUEST_DATETIME "set_guest_datetime"
#define AGENT_M_COPY_FILE "copy_file"
/* Sandbox */
#define AGENT_M_CREATE_SANDBOX "create_sandbox"
#define AGENT_M_DESTROY_SANDBOX "destroy_sandbox"
/* Containers */
#define AGENT_M_CREATE_CONTAINER "create_container"
#define AGENT_M_START_CONTAINER "start_container"
#define AGENT_M_REMOVE_CONTAINER "remove_container"
#define AGENT_M_PAUSE_CONTAINER "pause_container"
#define AGENT_M_RESUME_CONTAINER "resume_container"
#define AGENT_M_UPDATE_CONTAINER "update_container"
#define AGENT_M_STATS_CONTAINER "stats_container"
#define AGENT_M_LIST_PROCESSES "list_processes"
#define AGENT_M_WAIT_OOM "wait_oom"
/* Processes */
#define AGENT_M_EXEC_PROCESS "exec_process"
#define AGENT_M_SIGNAL_PROCESS "signal_process"
#define AGENT_M_WAIT_PROCESS "wait_process"
#define AGENT_M_WRITE_STDIN "write_stdin"
#define AGENT_M_CLOSE_STDIN "close_stdin"
#define AGENT_M_TTY_WINRESIZE "tty_winresize"
/* Output and flow control: notifications */
#define AGENT_N_OUTPUT "output"         /* agent -> host */
#define AGENT_N_OUTPUT_ACK "output_ack" /* host -> agent */
/* Networking */
#define AGENT_M_UPDATE_INTERFACE "update_interface"
#define AGENT_M_UPDATE_ROUTES "update_routes"
#define AGENT_M_LIST_INTERFACES "list_interfaces"
#define AGENT_M_LIST_ROUTES "list_routes"

#endif
