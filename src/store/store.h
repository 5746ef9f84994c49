/* The store: where flagwire keeps what it must not lose. Callers see only this
 * interface; each backend (sqlite.c now, postgres.c for several nodes) fills in a table
 * of operations, so adding a backend changes no caller.
 *
 * Thread: a store handle is used by one thread at a time (the writer, and the main
 * thread before the loops start). */
#ifndef FW_STORE_STORE_H
#define FW_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/common.h"

enum fw_durability {
  FW_DURABILITY_FULL,  /* an acknowledged write survives power loss (fsync per commit) */
  FW_DURABILITY_NORMAL /* an acknowledged write survives a crash of the process only */
};

struct fw_store;

/* The tables of documents. Each row keeps its object as the JSON document the API
 * serves (flagwire's own serialisation, user values spliced in byte for byte). */
enum fw_store_table {
  FW_TABLE_PROJECTS,
  FW_TABLE_ENVIRONMENTS,
  FW_TABLE_FLAGS,
  FW_TABLE_FLAG_STATES,
  FW_TABLE_CONFIGS,
  FW_TABLE_SEGMENTS,     /* per project, like flags */
  FW_TABLE_SEGMENT_RULES /* per environment, like flag states: id is the segment's */
};

/* One document row. Strings are borrowed for the call (or, in a load callback, until it
 * returns). */
struct fw_store_doc {
  enum fw_store_table table;
  /* The row's id; 0 asks put_doc to insert and receive a new one. For flag states: the
   * flag's id. */
  int64_t id;
  /* The owner: the project of an environment or flag, the environment of a flag state
   * or config. */
  int64_t parent_id;
  const char *key; /* NULL for flag states */
  const char *doc;
  size_t doc_len;
  int64_t version;
  /* Environments only: the epoch (hex text), and in loads the revision and the time of
   * the last change. */
  const char *epoch;
  int64_t revision;
  int64_t last_change_ms;
};

enum fw_credential_kind { FW_CREDENTIAL_SERVER, FW_CREDENTIAL_CLIENT, FW_CREDENTIAL_ADMIN };

/* A key or admin token, known by the SHA-256 of its text only. */
struct fw_store_credential {
  uint8_t hash[32];
  enum fw_credential_kind kind;
  int64_t environment_id; /* server and client keys */
  const char *role;       /* admin tokens: admin, editor or viewer */
  const char *name;
  int64_t created_ms;
  int64_t expires_ms; /* 0: never */
};

/* One row of the change log. */
struct fw_store_change {
  int64_t environment_id;
  int64_t revision;
  const char *kind; /* flag_updated, config_updated, ... */
  const char *key;
  const char *object; /* the object after the change, JSON; NULL after a deletion */
  size_t object_len;
  const char *actor;
  int64_t at_ms;
  /* 1 when client keys could see the key before this change and cannot after it (a flag
   * hidden from them or deleted, a config deleted), else 0; reading a row logged before
   * flagwire recorded this, -1. */
  int leaves_clients;
};

/* Load callbacks: return FW_OK to go on, anything else stops the load with that code. */
struct fw_store_loader {
  int (*doc)(void *ctx, const struct fw_store_doc *doc);
  int (*credential)(void *ctx, const struct fw_store_credential *credential);
  void *ctx;
};

typedef int (*fw_store_change_cb)(void *ctx, const struct fw_store_change *change);

struct fw_store_ops {
  const char *name;
  /* The schema version the store is at after its migrations ran. */
  FW_MUST_CHECK int (*schema_version)(struct fw_store *store, int *out);
  /* The durability actually in force, read back from the database. */
  FW_MUST_CHECK int (*durability)(struct fw_store *store, enum fw_durability *out);

  /* Every document and credential, owners before what they own (projects,
   * environments, flags, flag states, configs, segments, segment rules, then
   * credentials). */
  FW_MUST_CHECK int (*load)(struct fw_store *store, const struct fw_store_loader *loader);
  /* Change rows of an environment with a revision above `after`, at most `limit`, in
   * revision order. */
  FW_MUST_CHECK int (*changes)(struct fw_store *store, int64_t environment_id, int64_t after,
                               size_t limit, fw_store_change_cb callback, void *ctx);
  /* Every departure in an environment's change log, in revision order: the deletions
   * (rows without an object) and the rows where a key left client keys' sight. Where the
   * streams' tombstones come from at start. */
  FW_MUST_CHECK int (*departures)(struct fw_store *store, int64_t environment_id,
                                  fw_store_change_cb callback, void *ctx);

  /* Writes happen inside a transaction, each request of a group in its own savepoint
   * (DESIGN.md 3). The group's transaction: */
  FW_MUST_CHECK int (*begin)(struct fw_store *store);
  FW_MUST_CHECK int (*commit)(struct fw_store *store);
  void (*rollback)(struct fw_store *store);
  /* One request's savepoint inside the transaction: */
  FW_MUST_CHECK int (*savepoint)(struct fw_store *store);
  FW_MUST_CHECK int (*release)(struct fw_store *store);
  void (*rollback_savepoint)(struct fw_store *store);

  /* Inserts (doc->id == 0; the new id is written back) or replaces a document.
   * FW_EEXISTS when the key is taken in its owner. */
  FW_MUST_CHECK int (*put_doc)(struct fw_store *store, struct fw_store_doc *doc);
  /* Deletes a document (a flag state: flag `id` in environment `parent_id`), and with a
   * flag or environment everything it owns. FW_ENOTFOUND when absent; FW_EINVAL when
   * something still refers to it. */
  FW_MUST_CHECK int (*delete_doc)(struct fw_store *store, enum fw_store_table table, int64_t id,
                                  int64_t parent_id);
  FW_MUST_CHECK int (*put_credential)(struct fw_store *store,
                                      const struct fw_store_credential *credential);
  /* Takes the environment's next revision, read and advanced in its own row, and the
   * revision's time: max(now_ms, the previous change's time + 1). */
  FW_MUST_CHECK int (*next_revision)(struct fw_store *store, int64_t environment_id, int64_t now_ms,
                                     int64_t *revision, int64_t *at_ms);
  FW_MUST_CHECK int (*append_change)(struct fw_store *store, const struct fw_store_change *change);
  /* Answers remembered for Idempotency-Key: the answer `actor` got for `key`, with the
   * fingerprint of the request that produced it. FW_ENOTFOUND when none. `body` is
   * appended to. */
  FW_MUST_CHECK int (*idempotency_get)(struct fw_store *store, const char *actor, const char *key,
                                       uint8_t fingerprint[32], int *status, struct fw_buf *body);
  FW_MUST_CHECK int (*idempotency_put)(struct fw_store *store, const char *actor, const char *key,
                                       const uint8_t fingerprint[32], int status, const char *body,
                                       size_t body_len, int64_t now_ms);
  /* Forgets answers remembered before `before_ms`. */
  FW_MUST_CHECK int (*idempotency_prune)(struct fw_store *store, int64_t before_ms);
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
