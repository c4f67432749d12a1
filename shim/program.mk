# husk-shim: one per container process (docs/shim.md).
$(eval $(call program,husk-shim,shim))

# What the shim decodes from the proxy, fuzzed alone.
build/fuzz/fuzz_proxy_shim: shim/decode.c
