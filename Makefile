# husk: GNU make, out of tree into $(BUILD) (binaries in $(BUILD)/bin).
#
#   make            build libraries and programs
#   make deps       install the Debian packages the build and tests need
#   make check      deps, build, lint, unit and bats tests, fuzz corpora
#                   replayed, unit tests under ASan + UBSan
#   make asan       every test under AddressSanitizer + UBSan (build/asan)
#   make fuzz       libFuzzer targets (clang) into build/fuzz
#   make fuzz-replay  each target's corpus run once
#   make unit-asan  the unit tests under ASan + UBSan
#   make lint       tests/lint-bats over the bats files
#   make fuzz-run   run them (FUZZ_TIME=s or FUZZ_RUNS=n each), table of executions
#   make bench      benchmarks (prints tables)
#   make install    PREFIX=/usr/local DESTDIR=
#
# Sources are found by wildcard: a library is every .c in its folder, a
# program every .c in its folder (see PROGRAMS below).

BUILD   ?= build
B       := $(BUILD)
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/husk
DATADIR ?= $(PREFIX)/share/husk
MANDIR  ?= $(PREFIX)/share/man
SAN     ?=
V       ?=

ifeq ($(V),)
Q := @
else
Q :=
endif

CC      ?= cc
PKGS    := msgpack libseccomp libcap-ng jansson inih libnl-3.0 libnl-route-3.0

# libev ships no pkg-config file in Debian; fall back to -lev.
EV_CFLAGS := $(shell pkg-config --cflags libev 2>/dev/null)
EV_LIBS   := $(shell pkg-config --libs libev 2>/dev/null || echo -lev)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EV_CFLAGS)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(EV_LIBS)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wformat-security \
	-Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith \
	-Wundef -Wvla -Wno-unused-parameter -Wno-missing-field-initializers
HARDEN_CFLAGS := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
	-fno-strict-overflow -fstack-clash-protection
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

OPT ?= -O2
ifneq ($(SAN),)
OPT := -O1
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
HARDEN_CFLAGS := -fPIE
endif

CPPFLAGS += -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
	    -DHUSK_DATADIR='"$(DATADIR)"' -DHUSK_LIBEXECDIR='"$(LIBEXECDIR)"'
CFLAGS   += -std=gnu11 $(OPT) -g $(WARN) $(HARDEN_CFLAGS) $(SAN_FLAGS) \
	    -MMD -MP
ifneq ($(WERROR),)
CFLAGS   += -Werror
endif
LDFLAGS  += $(HARDEN_LDFLAGS) $(SAN_FLAGS)
LDLIBS   := $(PKG_LIBS)

all: libs programs tests-build

# ---------------------------------------------------------------- libs
LIBHUSK_SRC := $(sort $(wildcard libhusk/*.c))
LIBIPC_SRC  := $(sort $(wildcard libipc/*.c))
LIBSB_SRC   := $(sort $(wildcard sandbox/*.c))
LIBHUSK     := $(B)/lib/libhusk.a
LIBIPC      := $(B)/lib/libipc.a
LIBSB       := $(B)/lib/libsandbox.a
LIBS        := $(LIBSB) $(LIBIPC) $(LIBHUSK)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBHUSK): $(call obj,$(LIBHUSK_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIBIPC): $(call obj,$(LIBIPC_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIBSB): $(call obj,$(LIBSB_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

libs: $(LIBS)

# ------------------------------------------------------------ programs
# $(call program,NAME,FOLDER[,LIBS]), from FOLDER/program.mk (LIBS: the
# libraries it links, all of them by default): FOLDER's .c files
# but main.c make the archive $(call proglib,FOLDER) (agent:
# build/lib/libagent.a, cmd/husk: build/lib/libcmd-husk.a), which the
# program links after its main.o.  Unit tests and fuzz targets link the
# same code: a program.mk names the tests that take its archive
# ($(B)/tests/test_x: $(call proglib,FOLDER)) and the fuzz targets that
# take its instrumented copy (build/fuzz/fuzz_x: $(call fuzzlib,FOLDER)).
PROGRAMS :=
proglib = $(B)/lib/lib$(subst /,-,$(1)).a
fuzzlib = build/fuzz/lib/lib$(subst /,-,$(1)).a
progsrc = $(filter-out $(1)/main.c,$(sort $(wildcard $(1)/*.c)))
define program
$(call proglib,$(2)): $(call obj,$(call progsrc,$(2)))
	@mkdir -p $$(dir $$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
$(call fuzzlib,$(2)): $(patsubst %.c,build/fuzz/obj/%.o,$(call progsrc,$(2)))
	@mkdir -p $$(dir $$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
$(B)/bin/$(1): $(call obj,$(2)/main.c) $(if $(call progsrc,$(2)),$(call proglib,$(2))) $(or $(3),$(LIBS))
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o %.a,$$^) $$(LDLIBS)
PROGRAMS += $(B)/bin/$(1)
endef

# Every program, cmd/ included, registers in its folder's program.mk.
$(foreach p,$(sort $(wildcard */program.mk cmd/*/program.mk)),$(eval include $(p)))

programs: $(PROGRAMS)

# --------------------------------------------------------------- tests
# Every tests/unit/test_*.c is one cmocka binary; tests/helpers/*.c are
# small programs the bats tests use.
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
HELP_SRC  := $(sort $(wildcard tests/helpers/*.c))
HELP_BINS := $(patsubst tests/helpers/%.c,$(B)/tests/helpers/%,$(HELP_SRC))

# A test links the program archives its program.mk names, then the libs.
$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) \
		$(filter-out $(LIBS),$(filter %.a,$^)) $(LIBS) $(LDLIBS) \
		$(shell pkg-config --libs cmocka)
$(B)/tests/helpers/%: $(B)/obj/tests/helpers/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

tests-build: $(UNIT_BINS) $(HELP_BINS) $(B)/bench/proxy_bench

# make check: everything a fresh clone needs, then every test (bats
# files linted first), then what guards the decoders: the fuzz targets
# replay their corpora, and the unit tests run under ASan and UBSan.
# Each part runs whatever the one before gave; each runner ends with
# "N passed, N failed".
check: deps
	$(Q)$(MAKE) --no-print-directory WERROR=1 all guest
	$(Q)rc=0; BUILD=$(B) tests/run || rc=1; \
	    $(MAKE) --no-print-directory fuzz-replay || rc=1; \
	    $(MAKE) --no-print-directory unit-asan || rc=1; exit $$rc

# The unit tests alone, instrumented (build/asan); `make asan` runs
# every test so.
unit-asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 WERROR=1 \
	    tests-build
	$(Q)BUILD=build/asan HUSK_ASAN=1 ASAN_OPTIONS=abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run unit

lint:
	$(Q)tests/lint-bats

unit: tests-build
	$(Q)BUILD=$(B) tests/run unit

# The host programs instrumented; the guest image (a static agent, not
# instrumented) is the normal build's, shared by a link.
asan:
	$(Q)$(MAKE) --no-print-directory deps
	$(Q)$(MAKE) --no-print-directory WERROR=1 guest
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 WERROR=1 all
	$(Q)ln -sfn ../guest build/asan/guest
	$(Q)BUILD=build/asan HUSK_ASAN=1 \
	    ASAN_OPTIONS=abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1 tests/run

# ---------------------------------------------------------------- fuzz
# Each target links libipc and libhusk and the program archives its
# program.mk names, all instrumented (build/fuzz/lib).
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_LIBS := $(call fuzzlib,libipc) $(call fuzzlib,libhusk)
FUZZ_CFLAGS := -D_GNU_SOURCE -I. $(PKG_CFLAGS) -std=gnu11 -g -O1 -MMD -MP
# make fuzz-run [FUZZ_TIME=s] [FUZZ_RUNS=n] [FUZZ_TARGETS="fuzz_msg ..."]:
# every target (or those) one after the other, then a table of
# executions per target (tests/fuzz/run; 60 s each by default).
FUZZ_TIME ?=
FUZZ_RUNS ?=
FUZZ_TARGETS ?=

# Sources once, instrumented; archives of them as for the programs.
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
	    -c -o $@ $<
$(call fuzzlib,libipc): $(patsubst %.c,build/fuzz/obj/%.o,$(LIBIPC_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(call fuzzlib,libhusk): $(patsubst %.c,build/fuzz/obj/%.o,$(LIBHUSK_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BINS): build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIBS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -o $@ $< $(filter-out $<,$(filter %.c %.o,$^)) \
	    $(filter-out $(FUZZ_LIBS),$(filter %.a,$^)) $(FUZZ_LIBS) $(LDLIBS)

-include $(shell find build/fuzz/obj -name '*.d' 2>/dev/null) $(FUZZ_BINS:=.d)

fuzz: deps $(FUZZ_BINS)

# Every input of each target's corpus run once (no fuzzing): a decoder
# that crashes or trips a sanitizer on one fails the check.
fuzz-replay: fuzz
	$(Q)for f in $(FUZZ_BINS); do \
	    n=$$(basename $$f); \
	    $$f -rss_limit_mb=2048 tests/fuzz/corpus/$$n/* \
	        >build/fuzz/$$n.replay.log 2>&1 || { \
	        tail -n 40 build/fuzz/$$n.replay.log; \
	        echo "fuzz-replay: $$n failed (build/fuzz/$$n.replay.log)"; \
	        exit 1; }; \
	    echo "  REPLAY  $$n: $$(ls tests/fuzz/corpus/$$n | wc -l) inputs"; \
	done

fuzz-run: fuzz
	$(Q)FUZZ_TIME=$(FUZZ_TIME) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_DIR=build/fuzz \
	    tests/fuzz/run $(FUZZ_TARGETS)

# --------------------------------------------------------------- bench
BENCH_SRC  := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
$(B)/bench/%: $(B)/obj/bench/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) \
		$(filter-out $(LIBS),$(filter %.a,$^)) $(LIBS) $(LDLIBS)
# hv_bench times the driver's own command line.
$(B)/bench/hv_bench: $(call proglib,hypervisor-drv)

# Both guest kernels: bench/husk.sh compares them (built once, cached).
bench: deps all guest-husk guest-debian $(BENCH_BINS)
	$(Q)BUILD=$(B) bench/run

# --------------------------------------------------------------- guest
-include guest/guest.mk

# ---------------------------------------------------------------- demo
# The first of the README's two commands: set up, build, and run a
# busybox container in a VM.
demo: deps
	$(Q)$(MAKE) --no-print-directory all guest
	$(Q)BUILD=$(B) scripts/demo

# ---------------------------------------------------------------- deps
deps:
	$(Q)scripts/deps

# ------------------------------------------------------------- install
MAN_PAGES := $(sort $(wildcard man/*.[1-8]))
# Programs go together in BINDIR (husk finds its helpers beside
# itself); the guest image, when built, in DATADIR.  PROXY_USER must be
# the name the CLI looks for (HUSK_PROXY_USER in sandbox/sandbox.h).
PROXY_USER := husk-proxy
install: programs
	install -d $(DESTDIR)$(BINDIR)
	for p in $(PROGRAMS); do install -m 0755 $$p $(DESTDIR)$(BINDIR)/; done
	for g in vmlinux initrd.img; do [ ! -f $(B)/guest/$$g ] || \
	    install -D -m 0644 $(B)/guest/$$g $(DESTDIR)$(DATADIR)/$$g; done
	for m in $(MAN_PAGES); do s=$${m##*.}; \
	    install -d $(DESTDIR)$(MANDIR)/man$$s; \
	    install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	@# The proxy runs as this system user when it exists ([proxy] user
	@# in husk.conf(5)); a staged install (DESTDIR) leaves it to the
	@# package's scripts.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    ! getent passwd $(PROXY_USER) >/dev/null; then \
	    useradd --system --user-group --no-create-home \
	        --home-dir /nonexistent --shell /usr/sbin/nologin \
	        --comment "husk proxy" $(PROXY_USER) && \
	    echo "created system user $(PROXY_USER) for husk-proxy"; fi

clean:
	rm -rf $(B) build/asan build/fuzz

.PHONY: all libs programs tests-build check unit asan fuzz fuzz-run \
	fuzz-replay unit-asan lint \
	bench deps install clean demo

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
