/*
 * husk-proxy's own methods (docs/proxy.md), answered by the proxy on
 * its client socket; every other agent method (libipc/proto_agent.h) is
 * forwarded to the agent.  Its clients: sandbox/, husk-shim, husk-netmon,
 * husk-ipc, the tests.  PROXY_M_X names the method proxy_m_x handles.
 */
#ifndef HUSK_PROTO_PROXY_H
#define HUSK_PROTO_PROXY_H

#define PROXY_COMPONENT "husk-proxy"

#define PROXY_M_STATUS "proxy_status"
#define PROXY_M_SUBSCRIBE "subscribe"
#define PROXY_M_UNSUBSCRIBE "unsubscribe"

#endif
