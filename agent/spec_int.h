/*
 * What spec.c (the whole config.json, mounts), spec_linux.c (the linux
 * object) and spec_process.c (the process object) share: typed getters for
 * optional members, field paths for errors, and notes for fields that
 * are accepted but not applied.  Not an interface: the agent uses
 * spec.h.
 */
#ifndef HUSK_AGENT_SPEC_INT_H
#define HUSK_AGENT_SPEC_INT_H

#include "agent/spec.h"

#define WHAT_MAX 256

/* A present, non-nil member of map, or NULL. */
const msgpack_object *spec_member(const msgpack_object *map,
				  const char *key);
/* A field path into buf (WHAT_MAX bytes), cut quietly. */
void spec_setwhat(char *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void spec_path_of(char *buf, const char *parent, const char *key);
/* Optional members: absent (or nil) leaves *out as it is; a wrong type
 * fails naming parent.key. */
int spec_opt_str(const msgpack_object *map, const char *key,
		 const char *parent, size_t maxlen, char **out,
		 struct husk_err **err);
int spec_opt_bool(const msgpack_object *map, const char *key,
		  const char *parent, bool *out, struct husk_err **err);
int spec_opt_map(const msgpack_object *map, const char *key,
		 const char *parent, const msgpack_object **out,
		 struct husk_err **err);
/* Returns the count (0 when absent) or -1. */
int spec_opt_array(const msgpack_object *map, const char *key,
		   const char *parent, size_t maxn,
		   const msgpack_object **out, struct husk_err **err);
int spec_opt_strv(const msgpack_object *map, const char *key,
		  const char *parent, size_t maxn, char ***out,
		  struct husk_err **err);
/* A member husk cannot honour must be absent or empty. */
int spec_refuse_nonempty(const msgpack_object *map, const char *key,
			 const char *parent, const char *why,
			 struct husk_err **err);
/* Append "what: why" to a notes list (logged when the container is
 * made): a field accepted but not applicable in the VM. */
void spec_note_add(char ***notes, const char *what, const char *why);
/* The same for parent.key when present and not empty. */
void spec_note_nonempty(const msgpack_object *map, const char *key,
			const char *parent, const char *why, char ***notes);

/* Note every key of map not in known (NULL-terminated). */
void spec_note_unknown(const msgpack_object *map,
		       const char *const *known, const char *parent,
		       char ***notes);

/* spec_linux.c: the linux object into s. */
int spec_decode_linux(const msgpack_object *root, struct spec *s,
		      struct husk_err **err);

#endif
