/*
 * byterate: how fast bytes arrive on stdin, for bench/vmio.sh.
 *
 *   byterate [BYTES] < STREAM
 *
 * Reads stdin to EOF and prints "BYTES SECONDS MIB_PER_S", the seconds
 * counted from the first byte to the end (or to the BYTES-th byte, when
 * what follows, a VM's power-off, is not part of the stream), so that
 * what comes before the stream (a VM's boot, a container's start) is
 * left out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "libhusk/util.h"

int main(int argc, char **argv)
{
	static char buf[256 * 1024];
	uint64_t bytes = 0, t0 = 0, t1 = 0, want = 0;
	double s;
	ssize_t n;

	if (argc > 1)
		want = strtoull(argv[1], NULL, 10);

	while ((n = read(0, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			perror("byterate: read");
			return 111;
		}
		if (!bytes)
			t0 = husk_now_ns();
		bytes += (uint64_t)n;
		if (want && !t1 && bytes >= want)
			t1 = husk_now_ns();
	}
	if (!t1)
		t1 = husk_now_ns();
	s = bytes ? (t1 - t0) / 1e9 : 0;
	printf("%llu %.3f %.1f\n", (unsigned long long)bytes, s,
	       s > 0 ? bytes / s / (1 << 20) : 0);
	return 0;
}
