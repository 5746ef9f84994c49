/* Sets of objects sorted by key, immutable once shared, persistent: a new version with
 * one object put or removed shares every chunk of the old one but the chunk it changes,
 * so a change costs a chunk and the list of chunks, not the size of the set (DESIGN.md
 * 3). The empty set is NULL.
 *
 * Thread: a set is read by any number of threads; reference counts are atomic. */
#ifndef FW_STATE_OBJECTS_H
#define FW_STATE_OBJECTS_H

#include <stddef.h>

#include "util/common.h"

struct fw_object;
struct fw_objects;

size_t fw_objects_count(const struct fw_objects *set);
/* The object at `index` (0 to count - 1) in key order. */
struct fw_object *fw_objects_at(const struct fw_objects *set, size_t index);
/* The object with `key`, or NULL. */
struct fw_object *fw_objects_find(const struct fw_objects *set, const char *key);

/* Another reference to `set` (which may be NULL). */
struct fw_objects *fw_objects_share(struct fw_objects *set);
/* Drops a reference; the last one releases the objects' references. */
void fw_objects_release(struct fw_objects *set);

/* A new set: `set` with `object` in its key's place (replacing one with the same key).
 * References `object`. FW_ENOMEM. */
FW_MUST_CHECK int fw_objects_with(const struct fw_objects *set, struct fw_object *object,
                                  struct fw_objects **out);
/* A new set: `set` without `key`. FW_ENOTFOUND when absent, FW_ENOMEM. */
FW_MUST_CHECK int fw_objects_without(const struct fw_objects *set, const char *key,
                                     struct fw_objects **out);
/* A set of `count` objects already sorted by key, each referenced. FW_ENOMEM. */
FW_MUST_CHECK int fw_objects_from(struct fw_object *const *objects, size_t count,
                                  struct fw_objects **out);

#endif
