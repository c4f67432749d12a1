# husk-proxy: one per sandbox (docs/proxy.md).
$(eval $(call program,husk-proxy,proxy,$(LIBIPC) $(LIBHUSK)))

$(B)/tests/test_confine_profiles: \
	$(call proglib,proxy)
build/fuzz/fuzz_proxy: $(call fuzzlib,proxy)
