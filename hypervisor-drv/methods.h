/*
 * husk-hypervisor's methods (docs/hypervisor.md): the params structs
 * the rows of methods.c fill (with their tables and defaults), and the
 * handlers.  A handler gets its decoded params (NULL when its row has
 * none) and answers, starts a chain that answers (struct op), or
 * returns -1 with *err (struct ipc_method).
 */
#ifndef HUSK_HV_METHODS_H
#define HUSK_HV_METHODS_H

#include <stdbool.h>
#include <stdint.h>

#include "libipc/ipc.h"
#include "libipc/proto_hv.h"

#define HV_HANDLER(fn) \
	int fn(struct ipc_conn *c, struct ipc_msg *m, void *params, \
	       void *arg, struct husk_err **err)

/* create.c: create (and start, when nothing was created yet) */
struct create_params {
	char *kernel, *initrd, *kernel_params, *machine, *accel;
	char *shared_dir, *shared_fs, *agent_socket, *console_log;
	uint32_t vcpus, max_vcpus, memory_mb, max_memory_mb, memory_slots;
	uint32_t pci_ports, console_log_max_kb, tcg_cache_mb;
	const msgpack_object *nets;
	char *memory_file, *incoming;   /* templates (template.c) */
	bool template_vm;
};
extern const struct ipc_field hv_create_fields[];
extern const struct create_params hv_create_defaults;
HV_HANDLER(hv_m_create);
HV_HANDLER(hv_m_start);

/* methods.c: the VM's life after start */
struct stop_params {
	uint32_t timeout_ms;
	bool force;
};
HV_HANDLER(hv_m_stop);
HV_HANDLER(hv_m_pause);
HV_HANDLER(hv_m_resume);
HV_HANDLER(hv_m_status);
HV_HANDLER(hv_m_subscribe);

/* template.c: a template's device state saved (docs/factory.md) */
struct save_params {
	char *path;
};
extern const struct ipc_field hv_save_fields[];
HV_HANDLER(hv_m_save_template);

/* hotplug.c: vCPUs */
struct count_params {
	uint32_t count;
};
extern const struct ipc_field hv_count_fields[];
extern const struct count_params hv_count_defaults;
HV_HANDLER(hv_m_hotplug_vcpu);
HV_HANDLER(hv_m_unplug_vcpu);

/* hotplug.c: memory (unplug_memory takes dev_params) */
struct mem_params {
	uint32_t size_mb;
};
extern const struct ipc_field hv_mem_fields[];
HV_HANDLER(hv_m_hotplug_memory);

/* hotplug.c: block and net devices, and unplugging */
struct dev_params {
	char *id, *path, *mac;
	bool readonly;
	uint32_t mtu;
	uint32_t timeout_ms;    /* unplug: for the guest to let go */
};
extern const struct ipc_field hv_block_fields[];
extern const struct ipc_field hv_net_hp_fields[];
extern const struct ipc_field hv_id_fields[];
HV_HANDLER(hv_m_hotplug_block);
HV_HANDLER(hv_m_hotplug_net);
HV_HANDLER(hv_m_unplug_memory);
HV_HANDLER(hv_m_unplug_block);
HV_HANDLER(hv_m_unplug_net);

/* net.c: links mirrored into the VM (husk-netmon) */
struct name_params {
	char *name;
};
extern const struct ipc_field hv_name_fields[];
HV_HANDLER(hv_m_net_attach);
HV_HANDLER(hv_m_net_detach);
HV_HANDLER(hv_m_net_list);
HV_HANDLER(hv_m_net_namespace);

#undef HV_HANDLER

#endif
