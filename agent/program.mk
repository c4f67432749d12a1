# husk-agent: dynamic for host-mode tests, and a static copy that the
# guest image takes as its /init (guest/guest.mk picks up
# $(B)/bin/husk-agent-static when it exists).
$(eval $(call program,husk-agent,agent))

AGENT_OBJS := $(call obj,$(sort $(wildcard agent/*.c)))
# Static libraries of what PKG_LIBS names; glibc static is fine because
# the agent makes no NSS calls (no getpwnam: numeric ids only).
AGENT_STATIC_LIBS := -lmsgpackc -lseccomp -lcap-ng -lnl-route-3 -lnl-3 \
	-ljansson -linih -lev -lm -lpthread

$(B)/bin/husk-agent-static: $(AGENT_OBJS) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -static -Wl,-z,relro,-z,now -Wl,-z,noexecstack -o $@ \
		$(filter %.o %.a,$^) $(AGENT_STATIC_LIBS)

# Sanitizer builds (make asan) have no static runtime: dynamic only.
ifeq ($(SAN),)
PROGRAMS += $(B)/bin/husk-agent-static
guest: $(B)/bin/husk-agent-static
endif

# The OCI spec decoder is a fuzz target (tests/fuzz/fuzz_spec.c).
FUZZ_EXTRA_SRC += agent/spec.c agent/spec_process.c agent/cgroup.c \
	agent/cgroup_res.c agent/cgroup_limits.c agent/cgroup_dev.c \
	agent/oci_seccomp.c
