/*
 * husk ps's steps (ps.c), declared for tests/unit/test_cli_ps.c: the
 * options laid out as columns, guest text made inert, cells formatted.
 */
#ifndef HUSK_CMD_PS_H
#define HUSK_CMD_PS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "libhusk/err.h"

#define MAX_COLS 32

struct keyword;

struct col {
	const struct keyword *kw;
	char *header;
};

struct layout {
	struct col cols[MAX_COLS];
	size_t n;
	bool bsd;               /* BSD options seen: BSD TIME */
	bool full;              /* -f */
	bool user;              /* u */
	bool custom;            /* -o */
};

/* ps options (argv) to columns; none gives default_layout's. */
int parse_ps_args(int argc, char **argv, struct layout *l,
		  struct husk_err **err);
/* runc's default, ps -ef. */
int default_layout(struct layout *l, struct husk_err **err);
/* s with control characters escaped. */
void put_escaped(FILE *out, const char *s);
/* A guest string (or NULL), made inert, malloc'ed. */
char *guest_text(const json_t *v);
/* Cells: tty name, cumulative time, elapsed time, start time. */
char *fmt_tty(long long nr);
char *fmt_time(long long ms, bool bsd);
char *fmt_etime(long long ms);
char *fmt_stime(long long start, time_t now);

#endif
