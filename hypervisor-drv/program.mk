# husk-hypervisor: the per-sandbox hypervisor driver (docs/hypervisor.md).
$(eval $(call program,husk-hypervisor,hypervisor-drv,$(LIBIPC) $(LIBHUSK)))

$(B)/tests/test_qmp $(B)/tests/test_jail $(B)/tests/test_confine_profiles \
$(B)/tests/test_hv_sink: \
	$(call proglib,hypervisor-drv)
build/fuzz/fuzz_qmp: $(call fuzzlib,hypervisor-drv)
