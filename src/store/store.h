/* The store: where flagwire keeps what it must not lose. Callers see only this
 * interface; each backend (sqlite.c now, postgres.c for several nodes) fills in a table
 * of operations, so adding a backend changes no caller.
 *
 * Thread: a store handle is used by one thread at a time (the writer, and the main
 * thread before the loops start). */
#ifndef FW_STORE_STORE_H
#define FW_STORE_STORE_H

#include <stddef.h>

#include "util/common.h"

enum fw_durability {
  FW_DURABILITY_FULL,  /* an acknowledged write survives power loss (fsync per commit) */
  FW_DURABILITY_NORMAL /* an acknowledged write survives a crash of the process only */
};

struct fw_store;

struct fw_store_ops {
  const char *name;
  /* The schema version the store is at after its migrations ran. */
  FW_MUST_CHECK int (*schema_version)(struct fw_store *store, int *out);
  /* The durability actually in force, read back from the database. */
  FW_MUST_CHECK int (*durability)(struct fw_store *store, enum fw_durability *out);
  void (*close)(struct fw_store *store);
};

struct fw_store {
  const struct fw_store_ops *ops;
};

/* Opens (creating if needed) the SQLite store in directory `data_dir`, applies pending
 * migrations and sets the durability. On success the caller owns *out and closes it
 * with fw_store_close; on failure `error` says why in one sentence. */
FW_MUST_CHECK int fw_store_open_sqlite(const char *data_dir, enum fw_durability durability,
                                       struct fw_store **out, char *error, size_t error_len);

static inline int fw_store_schema_version(struct fw_store *store, int *out) {
  return store->ops->schema_version(store, out);
}

static inline int fw_store_durability(struct fw_store *store, enum fw_durability *out) {
  return store->ops->durability(store, out);
}

static inline void fw_store_close(struct fw_store *store) {
  if (store)
    store->ops->close(store);
}

#endif
