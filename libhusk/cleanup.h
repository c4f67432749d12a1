/*
 * Scope-bound cleanup, as crun does it: declare with one of these and
 * the resource goes when the variable leaves scope.  Hand ownership out
 * with `ret = fd; fd = -1; return ret;` (or husk_steal_ptr()).
 */
#ifndef HUSK_CLEANUP_H
#define HUSK_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>

#include "err.h"

static inline void husk_cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void husk_cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void husk_cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void husk_cleanup_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static inline void husk_cleanup_errp(struct husk_err **e)
{
	husk_err_free(*e);
}

static inline void husk_cleanup_strvp(char ***v)
{
	if (*v) {
		for (char **p = *v; *p; p++)
			free(*p);
		free(*v);
	}
}

#define cleanup_free     __attribute__((cleanup(husk_cleanup_freep)))
#define cleanup_close    __attribute__((cleanup(husk_cleanup_closep)))
#define cleanup_fclose   __attribute__((cleanup(husk_cleanup_fclosep)))
#define cleanup_closedir __attribute__((cleanup(husk_cleanup_closedirp)))
#define cleanup_err      __attribute__((cleanup(husk_cleanup_errp)))
#define cleanup_strv     __attribute__((cleanup(husk_cleanup_strvp)))

#define husk_steal_ptr(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define husk_steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })

#define HUSK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
