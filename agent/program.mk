# husk-agent: dynamic for host-mode tests, and a static copy that the
# guest image takes as its /init (guest/guest.mk picks up
# $(B)/bin/husk-agent-static when it exists).
$(eval $(call program,husk-agent,agent,$(LIBIPC) $(LIBHUSK)))

# Static libraries of what PKG_LIBS names; glibc static is fine because
# the agent makes no NSS calls (no getpwnam: numeric ids only).
AGENT_STATIC_LIBS := -lmsgpackc -lseccomp -lcap-ng -lnl-route-3 -lnl-3 \
	-ljansson -linih -lev -lm -lpthread

$(B)/bin/husk-agent-static: $(call obj,agent/main.c) $(call proglib,agent) \
		$(LIBIPC) $(LIBHUSK)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -static -Wl,-z,relro,-z,now -Wl,-z,noexecstack -o $@ \
		$(filter %.o %.a,$^) $(AGENT_STATIC_LIBS)

# Sanitizer builds (make asan) have no static runtime: dynamic only.
ifeq ($(SAN),)
PROGRAMS += $(B)/bin/husk-agent-static
guest: $(B)/bin/husk-agent-static
endif

$(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_agent_*.c)): \
	$(call proglib,agent)
# The OCI spec decoder and the seccomp profile are fuzz targets.
build/fuzz/fuzz_spec build/fuzz/fuzz_agent_seccomp: $(call fuzzlib,agent)
