/*
 * guest/initlib.h: what the guest's stand-in inits (testinit.c,
 * hostile.c) share: sleeping, loading the image's modules, and finding
 * the virtio-serial port the host named.
 */
#ifndef HUSK_GUEST_INITLIB_H
#define HUSK_GUEST_INITLIB_H

#include <stddef.h>

/* Each init's console line (defined by the program). */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void sleep_ms(long ms);
/* Load the modules /lib/modules/load-order lists (mkinitrd writes it),
 * in its order; failures are said with `who` first. */
void load_modules(const char *who);
/* The /dev node of the virtio-serial port called name into dev, when
 * sysfs shows it now: 0, else -1. */
int find_port_dev(const char *name, char *dev, size_t devlen);

#endif
