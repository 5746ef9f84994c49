/* Changes as the hub sees them: one committed row of the change log, immutable and
 * refcounted, handed from the writer to every loop and kept in each loop's replay ring.
 *
 * Thread: made on the writer thread (or the main thread while loading), then shared
 * read-only by every loop; reference counts are atomic. */
#ifndef FW_STATE_CHANGE_H
#define FW_STATE_CHANGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/world.h"
#include "store/store.h"
#include "util/common.h"

enum fw_change_kind {
  FW_CHANGE_FLAG_CREATED,
  FW_CHANGE_FLAG_UPDATED,
  FW_CHANGE_FLAG_DELETED,
  FW_CHANGE_CONFIG_UPDATED,
  FW_CHANGE_CONFIG_DELETED,
  FW_CHANGE_SEGMENT_UPDATED,
  FW_CHANGE_SEGMENT_DELETED,
  FW_CHANGE_OTHER, /* a kind the streams do not carry */
};

struct fw_change {
  _Atomic uint32_t refs;
  enum fw_change_kind kind;
  int64_t environment_id;
  int64_t revision;
  int64_t at_ms;
  char *key;
  char *object; /* NUL-terminated JSON; NULL after a deletion */
  size_t object_len;
  int leaves_clients; /* as in struct fw_store_change: 1, 0, or -1 when not recorded */
};

/* Changes committed together, as one loop receives them: in commit order (so each
 * environment's revisions ascend). */
struct fw_change_batch {
  _Atomic uint32_t refs;
  uint64_t committed_ns; /* uv_hrtime() when the transaction committed */
  size_t count;
  struct fw_change *changes[];
};

/* A change copied from a change-log row, with one reference; NULL when out of memory. */
struct fw_change *fw_change_new(const struct fw_store_change *row);
struct fw_change *fw_change_ref(struct fw_change *change);
void fw_change_unref(struct fw_change *change);

/* The kind named by a change-log row's `kind`. */
enum fw_change_kind fw_change_kind_of(const char *name);

/* The family of a kind, so that a deletion and a later creation of the same key meet
 * (in a tombstone, say). */
enum fw_change_family { FW_FAMILY_FLAG, FW_FAMILY_CONFIG, FW_FAMILY_SEGMENT, FW_FAMILY_OTHER };
enum fw_change_family fw_change_family(enum fw_change_kind kind);
bool fw_change_is_deletion(enum fw_change_kind kind);

/* Whether client keys may see the object a change of `kind` left (NULL after a
 * deletion): a flag whose definition is client-visible, any config, never a segment. */
bool fw_change_object_seen_by_clients(enum fw_change_kind kind, const char *object, size_t len);

/* Whether `row` takes its key out of client keys' sight, given `before`, the world the
 * change applies to: 1 or 0, for struct fw_store_change's `leaves_clients`. */
int fw_change_leaves_clients(const struct fw_world *before, const struct fw_store_change *row);

/* A batch holding `count` changes (references taken over), with one reference; NULL when
 * out of memory (the changes are then released). */
struct fw_change_batch *fw_change_batch_new(struct fw_change **changes, size_t count,
                                            uint64_t committed_ns);
struct fw_change_batch *fw_change_batch_ref(struct fw_change_batch *batch);
void fw_change_batch_unref(struct fw_change_batch *batch);

#endif
