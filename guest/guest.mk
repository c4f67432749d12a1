# guest/guest.mk: the guest kernel and initramfs (included by the top
# Makefile, which sets B, the build folder).
#
#   make guest        $(B)/guest/{vmlinux,kver,initrd.img,
#                     initrd-testinit.img,initrd-hostile.img,...} for the
#                     kernel GUEST_KERNEL names:
#                       husk    (default) husk's own kernel, built from
#                               Debian's linux-source-6.1 with
#                               guest/kernel.config (guest/build-kernel)
#                       debian  Debian's linux-image-cloud-amd64
#                               (guest/fetch-kernel), with its modules
#                               in the initramfs
#   make guest-husk, make guest-debian
#                     the same set for one kernel in $(B)/guest/husk or
#                     $(B)/guest/debian, whatever GUEST_KERNEL says (a
#                     benchmark compares both)
#   make guest-hostile $(B)/guest/initrd-hostile.img alone: the hostile
#                     guest of tests/bats/hostile-vm.bats
#   make guest-clean  remove them (the cache stays)
#
# Downloads and built kernels are kept in HUSK_GUEST_CACHE (default
# ~/.cache/husk/guest), outside the tree.  initrd.img has GUEST_INIT as
# /init: the static husk-agent where the tree can build it, else the
# test init; initrd-testinit.img always has the test init.

GUEST_KERNEL ?= husk
ifeq ($(filter husk debian,$(GUEST_KERNEL)),)
$(error GUEST_KERNEL=$(GUEST_KERNEL): must be husk or debian)
endif

GUEST_B      := $(B)/guest
GUEST_CC     ?= gcc
GUEST_CFLAGS ?= -O2 -Wall -Wextra -D_GNU_SOURCE
# The agent counts when the Makefile can build it (agent/program.mk,
# included before this file, lists it in PROGRAMS), not only when it is
# already built: otherwise a first `make guest` would pack the test init.
GUEST_AGENT  := $(B)/bin/husk-agent-static
GUEST_INIT   ?= $(firstword $(filter $(GUEST_AGENT),$(PROGRAMS)) \
		$(wildcard $(GUEST_AGENT)) $(GUEST_B)/testinit)
HUSK_KERNEL_SRC ?= /usr/src/linux-source-6.1.tar.xz

# What each kernel's folder holds; the top level gets copies of the
# chosen one's.
GUEST_IMGS   := initrd.img initrd-testinit.img initrd-hostile.img initrd.init
GUEST_FILES_husk   := vmlinux kver config $(GUEST_IMGS)
GUEST_FILES_debian := vmlinux vmlinuz kver kroot $(GUEST_IMGS)

# The test-init image first: it does not wait on the agent's build.
guest: $(GUEST_B)/bootwait \
	$(addprefix $(GUEST_B)/,$(GUEST_FILES_$(GUEST_KERNEL)) kernel)
guest-husk: $(addprefix $(GUEST_B)/husk/,$(GUEST_FILES_husk)) $(GUEST_B)/bootwait
guest-debian: $(addprefix $(GUEST_B)/debian/,$(GUEST_FILES_debian)) \
	$(GUEST_B)/bootwait

# ---------------------------------------------------------------- kernels
# husk's: built once per cache key (guest/build-kernel: fragment,
# patches, source version, compiler), else copied from the cache.  A
# missing tarball is build-kernel's to report (it names the package).
# Then elfgap: QEMU does not load the zeros between .text and .rodata
# (guest/elfgap.c); the cache keeps the kernel as built.
$(GUEST_B)/husk/kernel.stamp: guest/build-kernel guest/kernel.config \
		$(wildcard guest/kernel-patches/*.patch) \
		$(wildcard $(HUSK_KERNEL_SRC)) $(GUEST_B)/elfgap
	@mkdir -p $(dir $@)
	@echo "  KERNEL  $(GUEST_B)/husk/vmlinux"
	$(Q)HUSK_KERNEL_SRC=$(HUSK_KERNEL_SRC) guest/build-kernel \
	    --out $(GUEST_B)/husk
	$(Q)$(GUEST_B)/elfgap $(GUEST_B)/husk/vmlinux >/dev/null
	$(Q)touch $@

# Debian's: download, unpack and vmlinux extraction happen once;
# guest-clean (or a new fetch-kernel) redoes them, and picks up a newer
# kernel package.
$(GUEST_B)/debian/kernel.stamp: guest/fetch-kernel
	@mkdir -p $(dir $@)
	@echo "  KERNEL  $(GUEST_B)/debian/vmlinux"
	$(Q)guest/fetch-kernel --out $(GUEST_B)/debian
	$(Q)touch $@

$(addprefix $(GUEST_B)/husk/,vmlinux kver config): $(GUEST_B)/husk/kernel.stamp
	@test -f $@ || { echo "$@ missing: make guest-clean guest" >&2; exit 1; }
$(addprefix $(GUEST_B)/debian/,vmlinux vmlinuz kver kroot): \
		$(GUEST_B)/debian/kernel.stamp
	@test -f $@ || { echo "$@ missing: make guest-clean guest" >&2; exit 1; }

# -------------------------------------------------------------- programs
# The stand-in inits share guest/initlib.c (modules, the port).
$(GUEST_B)/testinit: guest/testinit.c guest/initlib.c guest/initlib.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(GUEST_CC) -static $(GUEST_CFLAGS) -o $@ $(filter %.c,$^)

$(GUEST_B)/hostile: guest/hostile.c guest/hostile_mp.c guest/hostile.h \
	guest/initlib.c guest/initlib.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(GUEST_CC) -static $(GUEST_CFLAGS) -o $@ $(filter %.c,$^)

$(GUEST_B)/bootwait: guest/bootwait.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -o $@ $<

$(GUEST_B)/elfgap: guest/elfgap.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -o $@ $<

# ------------------------------------------------------------ initramfs
# husk's kernel has everything built in: its images carry no modules
# (an empty load-order).  Debian's get theirs from its package.
guest_mods_husk   = --no-modules
guest_mods_debian = --kernel-root "$$(cat $(GUEST_B)/debian/kroot)" \
	--kver "$$(cat $(GUEST_B)/debian/kver)"

# $(call guest_images,KERNEL): the images of one kernel's folder.
define guest_images
# Which binary initrd.img was built with, rewritten only when that
# changes, so switching between the agent and the test init rebuilds it.
$(GUEST_B)/$(1)/initrd.init: FORCE
	@mkdir -p $$(dir $$@)
	@echo "$$(GUEST_INIT)" | cmp -s - $$@ || echo "$$(GUEST_INIT)" > $$@

$(GUEST_B)/$(1)/initrd.img: $$(GUEST_INIT) $(GUEST_B)/$(1)/initrd.init \
		guest/mkinitrd $(GUEST_B)/$(1)/kernel.stamp
	@echo "  INITRD  $$@ (init: $$(GUEST_INIT))"
	$$(Q)guest/mkinitrd --init $$(GUEST_INIT) $$(guest_mods_$(1)) --out $$@

$(GUEST_B)/$(1)/initrd-testinit.img: $(GUEST_B)/testinit guest/mkinitrd \
		$(GUEST_B)/$(1)/kernel.stamp
	@echo "  INITRD  $$@"
	$$(Q)guest/mkinitrd --init $(GUEST_B)/testinit $$(guest_mods_$(1)) --out $$@

$(GUEST_B)/$(1)/initrd-hostile.img: $(GUEST_B)/hostile guest/mkinitrd \
		$(GUEST_B)/$(1)/kernel.stamp
	@echo "  INITRD  $$@"
	$$(Q)guest/mkinitrd --init $(GUEST_B)/hostile $$(guest_mods_$(1)) --out $$@
endef
$(eval $(call guest_images,husk))
$(eval $(call guest_images,debian))

# ------------------------------------------------------- the chosen one
# $(GUEST_B)/kernel names it, rewritten only when GUEST_KERNEL changes,
# so that switching copies the other kernel's files up.  Copies, not
# links: a file QEMU maps should not change under it when the other
# kernel is built.
$(GUEST_B)/kernel: FORCE
	@mkdir -p $(dir $@)
	@echo "$(GUEST_KERNEL)" | cmp -s - $@ || echo "$(GUEST_KERNEL)" > $@

$(addprefix $(GUEST_B)/,$(sort $(GUEST_FILES_husk) $(GUEST_FILES_debian))): \
		$(GUEST_B)/%: $(GUEST_B)/$(GUEST_KERNEL)/% $(GUEST_B)/kernel
	$(Q)cp $< $@.tmp && mv $@.tmp $@

# The other kernel's extra files go when it is not the chosen one.
guest: guest-prune
guest-prune:
	$(Q)for f in $(filter-out $(GUEST_FILES_$(GUEST_KERNEL)), \
	    $(GUEST_FILES_husk) $(GUEST_FILES_debian)); do \
	    rm -f $(GUEST_B)/$$f; done

guest-hostile: $(GUEST_B)/vmlinux $(GUEST_B)/initrd-hostile.img \
	$(GUEST_B)/kernel

guest-clean:
	rm -rf $(GUEST_B)

FORCE:

.PHONY: guest guest-husk guest-debian guest-hostile guest-clean guest-prune FORCE
