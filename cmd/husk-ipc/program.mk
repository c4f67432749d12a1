# husk-ipc: the debug client (husk-ipc(1)); main.c alone.
$(eval $(call program,husk-ipc,cmd/husk-ipc,$(LIBIPC) $(LIBHUSK)))
