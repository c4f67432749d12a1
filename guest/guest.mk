# guest/guest.mk: the guest kernel and initramfs (included by the top
# Makefile, which sets B, the build folder).
#
#   make guest        $(B)/guest/{vmlinuz,vmlinux,initrd.img,initrd-testinit.img,
#                     initrd-hostile.img}
#   make guest-hostile $(B)/guest/initrd-hostile.img alone: the hostile
#                     guest of tests/bats/hostile-vm.bats (~2 s; `guest`
#                     builds it too)
#   make guest-clean  remove them (the package cache stays)
#
# The kernel is Debian's linux-image-cloud-amd64, downloaded once into
# HUSK_GUEST_CACHE (default ~/.cache/husk/guest), outside the tree.
# initrd.img has GUEST_INIT as /init: the static husk-agent where the
# tree can build it, else the test init; initrd-testinit.img always has
# the test init.

GUEST_B      := $(B)/guest
GUEST_CC     ?= gcc
GUEST_CFLAGS ?= -O2 -Wall -Wextra -D_GNU_SOURCE
# The agent counts when the Makefile can build it (agent/program.mk,
# included before this file, lists it in PROGRAMS), not only when it is
# already built: otherwise a first `make guest` would pack the test init.
GUEST_AGENT  := $(B)/bin/husk-agent-static
GUEST_INIT   ?= $(firstword $(filter $(GUEST_AGENT),$(PROGRAMS)) \
		$(wildcard $(GUEST_AGENT)) $(GUEST_B)/testinit)
GUEST_KSTAMP := $(GUEST_B)/kernel.stamp

# The test-init image first: it does not wait on the agent's build.
guest: $(GUEST_B)/vmlinuz $(GUEST_B)/vmlinux $(GUEST_B)/bootwait \
	$(GUEST_B)/initrd-testinit.img $(GUEST_B)/initrd-hostile.img \
	$(GUEST_B)/initrd.img

# Download, unpack and vmlinux extraction happen once; guest-clean (or
# a new fetch-kernel) redoes them, and picks up a newer kernel package.
$(GUEST_KSTAMP): guest/fetch-kernel
	@mkdir -p $(dir $@)
	@echo "  KERNEL  $(GUEST_B)/vmlinux"
	$(Q)guest/fetch-kernel --out $(GUEST_B)
	$(Q)touch $@

$(GUEST_B)/vmlinuz $(GUEST_B)/vmlinux $(GUEST_B)/kver $(GUEST_B)/kroot: \
	$(GUEST_KSTAMP)
	@test -f $@ || { echo "$@ missing: make guest-clean guest" >&2; exit 1; }

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

# Which binary initrd.img was built with, rewritten only when that
# changes, so switching between the agent and the test init rebuilds it.
$(GUEST_B)/initrd.init: FORCE
	@mkdir -p $(dir $@)
	@echo "$(GUEST_INIT)" | cmp -s - $@ || echo "$(GUEST_INIT)" > $@

# $(call guest_initrd,INIT): run mkinitrd with INIT as /init.
guest_initrd = guest/mkinitrd --init $(1) --kernel-root "$$(cat $(GUEST_B)/kroot)" \
	--kver "$$(cat $(GUEST_B)/kver)" --out $@

$(GUEST_B)/initrd.img: $(GUEST_INIT) $(GUEST_B)/initrd.init guest/mkinitrd \
	$(GUEST_KSTAMP)
	@echo "  INITRD  $@ (init: $(GUEST_INIT))"
	$(Q)$(call guest_initrd,$(GUEST_INIT))

$(GUEST_B)/initrd-testinit.img: $(GUEST_B)/testinit guest/mkinitrd $(GUEST_KSTAMP)
	@echo "  INITRD  $@"
	$(Q)$(call guest_initrd,$(GUEST_B)/testinit)

$(GUEST_B)/initrd-hostile.img: $(GUEST_B)/hostile guest/mkinitrd $(GUEST_KSTAMP)
	@echo "  INITRD  $@"
	$(Q)$(call guest_initrd,$(GUEST_B)/hostile)

guest-hostile: $(GUEST_B)/vmlinux $(GUEST_B)/initrd-hostile.img

guest-clean:
	rm -rf $(GUEST_B)

FORCE:

.PHONY: guest guest-hostile guest-clean FORCE
