/*
 * rtnetlink datagrams as husk-netmon reads them (nm_classify).  The
 * kernel is the only sender, but the walk must hold for any bytes.
 * Linked with netmon's instrumented archive (netmon/program.mk).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netmon/netmon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An aligned copy, as recv() into netmon's buffer gives. */
	void *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	(void)nm_classify(buf, size);
	free(buf);
	return 0;
}
