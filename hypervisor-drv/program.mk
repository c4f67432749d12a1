# husk-hypervisor: the per-sandbox hypervisor driver (docs/hypervisor.md).
$(eval $(call program,husk-hypervisor,hypervisor-drv))

# The fuzz target includes hypervisor-drv/qmp.c itself (it needs the
# static parsing helpers); nothing to add to FUZZ_EXTRA_SRC.
