# husk-netmon: one per sandbox when [netmon] enable (docs/network.md).
# Its unit test and fuzz target include netmon/nl.c themselves.
$(eval $(call program,husk-netmon,netmon))
