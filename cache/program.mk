# husk-cache: one per state root when [factory] cache > 0
# (docs/factory-cache.md).  Links libsandbox: its booter boots VMs with
# the very code a sandbox boots with.
$(eval $(call program,husk-cache,cache))

$(B)/tests/test_cache_pool $(B)/tests/test_confine_profiles: \
	$(call proglib,cache)
