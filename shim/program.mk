# husk-shim: one per container process (docs/shim.md).
$(eval $(call program,husk-shim,shim,$(LIBIPC) $(LIBHUSK)))

$(B)/tests/test_confine_profiles: $(call proglib,shim)
# What the shim decodes from the proxy, fuzzed alone.
build/fuzz/fuzz_proxy_shim: $(call fuzzlib,shim)
