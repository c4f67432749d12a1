/*
 * husk-agent: shared definitions between the agent's parts.
 *
 * The agent is PID 1 in the guest (or, with --channel, an ordinary
 * process on a host for tests).  Its RPC methods are listed in
 * docs/agent-protocol.md.  The core (main.c, channel, container and
 * process handling) owns struct agent; the self-contained method groups
 * (net.c, guest.c) only read the fields below marked "shared".
 */
#ifndef HUSK_AGENT_H
#define HUSK_AGENT_H

#include <stdbool.h>

#include "libipc/ipc.h"

#include "libipc/proto_agent.h"  /* AGENT_COMPONENT */
/* Where the virtio-fs share is mounted in the guest. */
#define AGENT_SHARED_DIR "/run/husk/shared"
/* Bytes of output a stream may have in flight before the host acks. */
#define AGENT_OUTPUT_WINDOW (256u * 1024u)
/* Largest chunk read from a process's pipe into one notification. */
#define AGENT_OUTPUT_CHUNK (64u * 1024u)

struct agent {
	/* shared: running on a host (--channel), not PID 1 in a VM.  Methods
	 * that would change the machine (time, CPUs, memory, interfaces of
	 * the host) refuse in host mode unless net_ok is set. */
	bool host_mode;
	/* shared: the directory containers' root file systems and volumes
	 * come from (the virtio-fs mount, or --shared-dir). */
	char *shared_dir;
	/* shared: copy_file writes only below these roots (NULL-terminated). */
	char **copy_roots;
	/* shared: in host mode, allow the net methods (tests run the agent
	 * inside a network namespace made for them). */
	bool net_ok;
	/* The core's own state follows; other parts must not touch it. */
	struct agent_core *core;
};

/* The method handlers (of net.c, guest.c and the core) are declared
 * in agent/methods.h. */

#endif
