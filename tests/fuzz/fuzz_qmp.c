/*
 * QMP bytes from QEMU (which emulates devices the guest drives): the
 * bounded line splitter and the message parser, linked from the
 * driver's instrumented archive (hypervisor-drv/program.mk).
 */
#include <stddef.h>
#include <stdint.h>

#include "hypervisor-drv/qmp.h"

static int on_fuzz_line(void *arg, const char *line, size_t len)
{
	struct husk_err *e = NULL;
	struct qmp_in in;

	if (qmp_parse(line, len, &in, &e) < 0) {
		husk_err_free(e);
		return 0;
	}
	/* What the driver does with each kind. */
	if (in.kind == QMP_EVENT && in.data)
		(void)json_object_get(in.data, "reason");
	qmp_in_free(&in);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct husk_err *e = NULL;
	struct qmp_lines l;
	size_t half = size / 2;

	/* Two reads, split in the middle, as a socket might deliver. */
	qmp_lines_init(&l);
	if (qmp_lines_feed(&l, (const char *)data, half, on_fuzz_line, NULL,
			   &e) == 0)
		qmp_lines_feed(&l, (const char *)data + half, size - half,
			       on_fuzz_line, NULL, &e);
	husk_err_free(e);
	qmp_lines_free(&l);
	return 0;
}
