/*
 * husk-cache's methods (docs/factory-cache.md), answered on
 * <root>/.factory/cache.sock.  Its clients: sandbox/ (take, for a new
 * sandbox), `husk factory status`, husk-ipc.  CACHE_M_X names the
 * method cache_m_x handles.
 */
#ifndef HUSK_PROTO_CACHE_H
#define HUSK_PROTO_CACHE_H

#define CACHE_COMPONENT "husk-cache"

/* {fingerprint: str} -> {name, dir, hv: {pid, start}, proxy: {pid,
 * start}, accel}: one booted VM, now the caller's. */
#define CACHE_M_TAKE "take"
/* {} -> {cache, fingerprint, vms: [{name, state, ...}]} */
#define CACHE_M_STATUS "cache_status"

#endif
