# containerd-shim-husk-v2: containerd's shim v2 for husk (docs/shimv2.md).
include shimv2/proto/proto.mk

ifneq ($(wildcard shimv2/main.c),)
$(eval $(call program,containerd-shim-husk-v2,shimv2))
$(B)/bin/containerd-shim-husk-v2: $(PROTO_OBJS)
$(B)/bin/containerd-shim-husk-v2: LDLIBS += $(PROTOBUF_C_LIBS)
endif

# Calls ctr cannot make (Update, Checkpoint, Connect), for the tests.
$(call obj,tests/helpers/shimv2_call.c): | $(PROTO_H)
$(B)/tests/helpers/shimv2_call: $(TTRPC_OBJS)
# (the archives again after the protocol objects, which use them)
$(B)/tests/helpers/shimv2_call: LDLIBS := $(LIBS) $(LDLIBS) $(PROTOBUF_C_LIBS)

# /tasks/oom against a fake proxy (oom.c alone: the test has its own
# sv_event_oom).
$(B)/tests/test_shimv2_oom: $(call proglib,shimv2)

# agent.c's calls and the exit's OOM read against a fake proxy.
$(B)/tests/test_shimv2_agent: $(call proglib,shimv2)
