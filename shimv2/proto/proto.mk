# The shim's protobuf messages: C from shimv2/proto/*.proto, generated
# at build time by Debian's protoc-c into $(B)/gen (never committed).
# Included by shimv2/program.mk.

PROTO_SRC  := $(sort $(wildcard shimv2/proto/*.proto))
PROTO_GEN  := $(B)/gen
PROTO_C    := $(patsubst %.proto,$(PROTO_GEN)/%.pb-c.c,$(PROTO_SRC))
PROTO_H    := $(PROTO_C:.c=.h)
PROTO_OBJS := $(patsubst $(PROTO_GEN)/%.c,$(B)/obj/gen/%.o,$(PROTO_C))

PROTOBUF_C_CFLAGS := $(shell pkg-config --cflags libprotobuf-c 2>/dev/null)
PROTOBUF_C_LIBS   := $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

CPPFLAGS += -I$(PROTO_GEN) $(PROTOBUF_C_CFLAGS)

# The protocol layer (ttrpc framing, server, client; the events
# publisher) that the shim and its unit tests link.
TTRPC_SRC  := $(sort $(wildcard shimv2/ttrpc*.c)) shimv2/events.c
TTRPC_OBJS := $(call obj,$(TTRPC_SRC)) $(PROTO_OBJS)

$(PROTO_GEN)/%.pb-c.c $(PROTO_GEN)/%.pb-c.h: %.proto
	@mkdir -p $(PROTO_GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c -I. --c_out=$(PROTO_GEN) $<

# Generated code is compiled without -Werror: its style is protoc-c's.
$(B)/obj/gen/%.o: $(PROTO_GEN)/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -Werror,$(CFLAGS)) -c -o $@ $<

# Every file that includes a generated header waits for all of them.
TTRPC_TESTS := test_ttrpc test_ttrpc_client
$(call obj,$(wildcard shimv2/*.c) $(TTRPC_TESTS:%=tests/unit/%.c)): | $(PROTO_H)

$(TTRPC_TESTS:%=$(B)/tests/%): $(TTRPC_OBJS)
$(TTRPC_TESTS:%=$(B)/tests/%): LDLIBS += $(PROTOBUF_C_LIBS)

# The decoders of socket bytes, fuzzed with the generated code.
build/fuzz/fuzz_ttrpc: shimv2/ttrpc.c $(PROTO_C) | $(PROTO_H)
# The server's dispatch, pauses and late answers over a socketpair.
build/fuzz/fuzz_ttrpc_server: shimv2/ttrpc.c shimv2/ttrpc_server.c \
	$(PROTO_C) | $(PROTO_H)
build/fuzz/fuzz_ttrpc build/fuzz/fuzz_ttrpc_server: \
	FUZZ_CFLAGS += -I$(PROTO_GEN) $(PROTOBUF_C_CFLAGS)
build/fuzz/fuzz_ttrpc build/fuzz/fuzz_ttrpc_server: \
	LDLIBS += $(PROTOBUF_C_LIBS)

# Both ends of the protocol against containerd's programs (ttrpc.bats).
$(call obj,tests/helpers/ttrpc_peer.c): | $(PROTO_H)
$(B)/tests/helpers/ttrpc_peer: $(TTRPC_OBJS)
$(B)/tests/helpers/ttrpc_peer: LDLIBS += $(PROTOBUF_C_LIBS)
