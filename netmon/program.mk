# husk-netmon: one per sandbox when [netmon] enable (docs/network.md).
$(eval $(call program,husk-netmon,netmon,$(LIBIPC) $(LIBHUSK)))

$(B)/tests/test_netmon $(B)/tests/test_confine_profiles: \
	$(call proglib,netmon)
build/fuzz/fuzz_netmon: $(call fuzzlib,netmon)
