/*
 * byterate: how fast bytes arrive on stdin, for bench/vmio.sh.
 *
 *   byterate < STREAM
 *
 * Reads stdin to EOF and prints "BYTES SECONDS MIB_PER_S", the seconds
 * counted from the first byte to the end, so that what comes before
 * the stream (a VM's boot, a container's start) is left out.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "libhusk/util.h"

int main(void)
{
	static char buf[256 * 1024];
	uint64_t bytes = 0, t0 = 0, t1;
	double s;
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			perror("byterate: read");
			return 111;
		}
		if (!bytes)
			t0 = husk_now_ns();
		bytes += (uint64_t)n;
	}
	t1 = husk_now_ns();
	s = bytes ? (t1 - t0) / 1e9 : 0;
	printf("%llu %.3f %.1f\n", (unsigned long long)bytes, s,
	       s > 0 ? bytes / s / (1 << 20) : 0);
	return 0;
}
