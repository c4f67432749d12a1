# husk-proxy: one per sandbox (docs/proxy.md).
$(eval $(call program,husk-proxy,proxy))

# The stream table has no I/O: its unit test and the fuzz target link it
# alone.
$(B)/tests/test_proxy_stream: $(B)/obj/proxy/stream.o
build/fuzz/fuzz_proxy: proxy/stream.c
