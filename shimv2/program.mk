# containerd-shim-husk-v2: containerd's shim v2 for husk (docs/shimv2.md).
include shimv2/proto/proto.mk

ifneq ($(wildcard shimv2/main.c),)
$(eval $(call program,containerd-shim-husk-v2,shimv2))
$(B)/bin/containerd-shim-husk-v2: $(PROTO_OBJS)
$(B)/bin/containerd-shim-husk-v2: LDLIBS += $(PROTOBUF_C_LIBS)
endif
