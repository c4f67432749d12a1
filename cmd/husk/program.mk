# husk: the runc-compatible CLI (husk(8)); the library it shares with
# the shims is sandbox/ (libsandbox, in LIBS).
$(eval $(call program,husk,cmd/husk))

$(B)/tests/test_cli_ps: $(call proglib,cmd/husk)
