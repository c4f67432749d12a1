# libsandbox is a library (the Makefile's LIBSB), not a program: this
# file only gives the fuzz targets of its decoders its instrumented
# copy (docs/fuzzing.md).
$(call fuzzlib,sandbox): $(patsubst %.c,build/fuzz/obj/%.o,$(LIBSB_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_oom: $(call fuzzlib,sandbox)
