/*
 * The driver's protocol (docs/hypervisor.md): the method names that
 * husk-hypervisor answers and its callers use (sandbox/, husk-netmon,
 * the test helpers).  HV_M_X names the method that hv_m_x handles.
 */
#ifndef HUSK_PROTO_HV_H
#define HUSK_PROTO_HV_H

#define HV_COMPONENT "husk-hypervisor"

/* create's tcg_cache_mb (MiB of TCG translation cache, -accel tb-size):
 * the driver's default when it is not given, and husk.conf's. */
#define HV_TCG_TB_MB 24
#define HV_TCG_TB_MB_MIN 8
#define HV_TCG_TB_MB_MAX 1024

/* VM life */
#define HV_M_CREATE "create"
#define HV_M_START "start"
#define HV_M_STOP "stop"
#define HV_M_PAUSE "pause"
#define HV_M_RESUME "resume"
#define HV_M_STATUS "status"
#define HV_M_SUBSCRIBE "subscribe"
#define HV_N_EVENT "event"      /* driver -> subscriber */
/* Hot-plug */
#define HV_M_HOTPLUG_VCPU "hotplug_vcpu"
#define HV_M_UNPLUG_VCPU "unplug_vcpu"
#define HV_M_HOTPLUG_MEMORY "hotplug_memory"
#define HV_M_UNPLUG_MEMORY "unplug_memory"
#define HV_M_HOTPLUG_BLOCK "hotplug_block"
#define HV_M_UNPLUG_BLOCK "unplug_block"
#define HV_M_HOTPLUG_NET "hotplug_net"
#define HV_M_UNPLUG_NET "unplug_net"
/* Network links (husk-netmon) */
#define HV_M_NET_ATTACH "net_attach"
#define HV_M_NET_DETACH "net_detach"
#define HV_M_NET_LIST "net_list"
#define HV_M_SAVE_TEMPLATE "save_template"
/* The links to mirror are in the namespace of the rtnetlink socket
 * that comes with it (a VM husk-cache booted in a namespace of its own,
 * taken by a sandbox whose namespace was made elsewhere). */
#define HV_M_NET_NAMESPACE "net_namespace"

#endif
