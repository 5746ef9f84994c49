/* The embedded SQLite store: the one file that knows the SQLite library. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "util/log.h"

#define DB_FILE_NAME "flagwire.db"
#define BUSY_TIMEOUT_MS 5000
/* WAL pages past which the log is copied back into the database (SQLite's own default), on
 * the checkpoint thread; past the second bound, by the commit itself. */
#define CHECKPOINT_PAGES 1000
#define CHECKPOINT_NOW_PAGES 4000

/* Statements prepared once and reused by the writer. */
enum statement {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_SAVEPOINT,
  STMT_RELEASE,
  STMT_ROLLBACK_TO,
  STMT_INSERT_PROJECT,
  STMT_UPDATE_PROJECT,
  STMT_INSERT_ENVIRONMENT,
  STMT_UPDATE_ENVIRONMENT,
  STMT_INSERT_FLAG,
  STMT_UPDATE_FLAG,
  STMT_PUT_FLAG_STATE,
  STMT_INSERT_CONFIG,
  STMT_UPDATE_CONFIG,
  STMT_INSERT_SEGMENT,
  STMT_UPDATE_SEGMENT,
  STMT_PUT_SEGMENT_RULES,
  STMT_DELETE_SEGMENT,
  STMT_DELETE_SEGMENT_RULES,
  STMT_DELETE_PROJECT,
  STMT_DELETE_ENVIRONMENT,
  STMT_DELETE_FLAG,
  STMT_DELETE_FLAG_STATE,
  STMT_DELETE_CONFIG,
  STMT_PUT_CREDENTIAL,
  STMT_NEXT_REVISION,
  STMT_APPEND_CHANGE,
  STMT_CHANGES,
  STMT_DEPARTURES,
  STMT_IDEMPOTENCY_GET,
  STMT_IDEMPOTENCY_PUT,
  STMT_IDEMPOTENCY_PRUNE,
  STMT_COUNT
};

static const char *const statement_sql[STMT_COUNT] = {
    /* Transaction control too: parsing it on every write cost about a tenth of a toggle's
     * instructions on the writer thread. */
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT request",
    [STMT_RELEASE] = "RELEASE request",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO request",
    [STMT_INSERT_PROJECT] = "INSERT INTO projects (key, doc, version) VALUES (?3, ?4, ?5)",
    [STMT_UPDATE_PROJECT] = "UPDATE projects SET doc = ?4, version = ?5 WHERE id = ?1",
    [STMT_INSERT_ENVIRONMENT] = "INSERT INTO environments (project_id, key, doc, version, epoch)"
                                " VALUES (?2, ?3, ?4, ?5, ?6)",
    [STMT_UPDATE_ENVIRONMENT] = "UPDATE environments SET doc = ?4, version = ?5 WHERE id = ?1",
    [STMT_INSERT_FLAG] =
        "INSERT INTO flags (project_id, key, doc, version) VALUES (?2, ?3, ?4, ?5)",
    [STMT_UPDATE_FLAG] = "UPDATE flags SET doc = ?4, version = ?5 WHERE id = ?1",
    [STMT_PUT_FLAG_STATE] = "INSERT INTO flag_states (flag_id, environment_id, doc, version)"
                            " VALUES (?1, ?2, ?4, ?5) ON CONFLICT (flag_id, environment_id)"
                            " DO UPDATE SET doc = excluded.doc, version = excluded.version",
    [STMT_INSERT_CONFIG] = "INSERT INTO configs (environment_id, key, doc, version)"
                           " VALUES (?2, ?3, ?4, ?5)",
    [STMT_UPDATE_CONFIG] = "UPDATE configs SET doc = ?4, version = ?5 WHERE id = ?1",
    [STMT_INSERT_SEGMENT] =
        "INSERT INTO segments (project_id, key, doc, version) VALUES (?2, ?3, ?4, ?5)",
    [STMT_UPDATE_SEGMENT] = "UPDATE segments SET doc = ?4, version = ?5 WHERE id = ?1",
    [STMT_PUT_SEGMENT_RULES] =
        "INSERT INTO segment_rules (segment_id, environment_id, doc, version)"
        " VALUES (?1, ?2, ?4, ?5) ON CONFLICT (segment_id, environment_id)"
        " DO UPDATE SET doc = excluded.doc, version = excluded.version",
    [STMT_DELETE_SEGMENT] = "DELETE FROM segments WHERE id = ?1",
    [STMT_DELETE_SEGMENT_RULES] =
        "DELETE FROM segment_rules WHERE segment_id = ?1 AND environment_id = ?2",
    [STMT_DELETE_PROJECT] = "DELETE FROM projects WHERE id = ?1",
    [STMT_DELETE_ENVIRONMENT] = "DELETE FROM environments WHERE id = ?1",
    [STMT_DELETE_FLAG] = "DELETE FROM flags WHERE id = ?1",
    [STMT_DELETE_FLAG_STATE] = "DELETE FROM flag_states WHERE flag_id = ?1 AND environment_id = ?2",
    [STMT_DELETE_CONFIG] = "DELETE FROM configs WHERE id = ?1",
    [STMT_PUT_CREDENTIAL] =
        "INSERT INTO credentials (hash, kind, environment_id, role, name, created_ms, expires_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO UPDATE SET"
        " expires_ms = excluded.expires_ms",
    [STMT_NEXT_REVISION] = "UPDATE environments SET revision = revision + 1,"
                           " last_change_ms = MAX(?2, last_change_ms + 1)"
                           " WHERE id = ?1 RETURNING revision, last_change_ms",
    [STMT_APPEND_CHANGE] = "INSERT INTO changes (environment_id, revision, kind, key, object,"
                           " actor, at_ms, leaves_clients) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_CHANGES] = "SELECT revision, kind, key, object, actor, at_ms, leaves_clients FROM changes"
                     " WHERE environment_id = ?1 AND revision > ?2 ORDER BY revision LIMIT ?3",
    [STMT_DEPARTURES] = "SELECT revision, kind, key, object, actor, at_ms, leaves_clients"
                        " FROM changes WHERE environment_id = ?1"
                        " AND (object IS NULL OR leaves_clients = 1) ORDER BY revision",
    [STMT_IDEMPOTENCY_GET] = "SELECT fingerprint, status, body FROM idempotency"
                             " WHERE actor = ?1 AND key = ?2",
    [STMT_IDEMPOTENCY_PUT] = "INSERT INTO idempotency (actor, key, fingerprint, status, body,"
                             " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [STMT_IDEMPOTENCY_PRUNE] = "DELETE FROM idempotency WHERE created_ms < ?1",
};

/* Checkpoints run on a thread and a connection of their own. A checkpoint writes the
 * logged pages into the database file and syncs it, which takes many times a commit; with
 * SQLite's automatic checkpoint, the commit that crosses the threshold would pay for it,
 * and with it every change waiting to be published. A passive checkpoint does not stop
 * the writer from committing meanwhile. */
struct checkpointer {
  sqlite3 *db;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool requested, stopping, running;
};

struct sqlite_store {
  struct fw_store base; /* first: a store pointer is a sqlite_store pointer */
  sqlite3 *db;
  sqlite3_stmt *statements[STMT_COUNT];
  struct checkpointer checkpointer;
};

/* Schema migrations, applied in order, each in its own transaction; a migration's
 * version is its position plus one. Never edit one that has shipped: append. */
static const char *const migrations[] = {
    "CREATE TABLE instance ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  created_at_ms INTEGER NOT NULL"
    ");"
    "INSERT INTO instance (id, created_at_ms)"
    "  VALUES (1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));",

    /* 2: the model and the change log. An environment's revision lives in its row and is
     * advanced inside the writing transaction, so it can neither gap nor repeat. */
    "CREATE TABLE projects ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL"
    ");"
    "CREATE TABLE environments ("
    "  id INTEGER PRIMARY KEY,"
    "  project_id INTEGER NOT NULL REFERENCES projects (id),"
    "  key TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  epoch TEXT NOT NULL,"
    "  revision INTEGER NOT NULL DEFAULT 0,"
    "  last_change_ms INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (project_id, key)"
    ");"
    "CREATE TABLE flags ("
    "  id INTEGER PRIMARY KEY,"
    "  project_id INTEGER NOT NULL REFERENCES projects (id),"
    "  key TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  UNIQUE (project_id, key)"
    ");"
    "CREATE TABLE flag_states ("
    "  flag_id INTEGER NOT NULL REFERENCES flags (id) ON DELETE CASCADE,"
    "  environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  PRIMARY KEY (flag_id, environment_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE configs ("
    "  id INTEGER PRIMARY KEY,"
    "  environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  UNIQUE (environment_id, key)"
    ");"
    "CREATE TABLE credentials ("
    "  hash BLOB PRIMARY KEY CHECK (length(hash) = 32),"
    "  kind TEXT NOT NULL CHECK (kind IN ('server', 'client', 'admin')),"
    "  environment_id INTEGER REFERENCES environments (id) ON DELETE CASCADE,"
    "  role TEXT CHECK (role IS NULL OR role IN ('admin', 'editor', 'viewer')),"
    "  name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  CHECK ((kind = 'admin') = (environment_id IS NULL))"
    ") WITHOUT ROWID;"
    "CREATE TABLE changes ("
    "  environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,"
    "  revision INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  object TEXT,"
    "  actor TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (environment_id, revision)"
    ") WITHOUT ROWID;",

    /* 3: answers remembered for Idempotency-Key, per token. */
    "CREATE TABLE idempotency ("
    "  actor TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  fingerprint BLOB NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (actor, key)"
    ") WITHOUT ROWID;"
    "CREATE INDEX idempotency_by_age ON idempotency (created_ms);",

    /* 4: segments, reusable rule sets: defined per project, with rules per environment. */
    "CREATE TABLE segments ("
    "  id INTEGER PRIMARY KEY,"
    "  project_id INTEGER NOT NULL REFERENCES projects (id),"
    "  key TEXT NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  UNIQUE (project_id, key)"
    ");"
    "CREATE TABLE segment_rules ("
    "  segment_id INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,"
    "  environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,"
    "  doc TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  PRIMARY KEY (segment_id, environment_id)"
    ") WITHOUT ROWID;",

    /* 5: whether each change took its key out of client keys' sight, so that tombstones
     * rebuilt at start tell client keys what left it; NULL in rows logged before. */
    "ALTER TABLE changes ADD COLUMN leaves_clients INTEGER;",
};

static void say(char *error, size_t error_len, const char *fmt, ...) FW_PRINTF(3, 4);
static void say(char *error, size_t error_len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
}

static int exec(sqlite3 *db, const char *sql, char *error, size_t error_len) {
  char *message = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
    if (error)
      say(error, error_len, "sqlite: %s", message ? message : sqlite3_errmsg(db));
    else
      fw_log_with(FW_LOG_ERROR, "sqlite statement failed",
                  FW_LOG_STR("error", message ? message : sqlite3_errmsg(db)));
    sqlite3_free(message);
    return FW_EIO;
  }
  return FW_OK;
}

static int query_int(sqlite3 *db, const char *sql, int *out) {
  sqlite3_stmt *stmt;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
    return FW_EIO;
  int rc = FW_ENOTFOUND;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    *out = sqlite3_column_int(stmt, 0);
    rc = FW_OK;
  }
  sqlite3_finalize(stmt);
  return rc;
}

static int migrate(sqlite3 *db, char *error, size_t error_len) {
  int rc = exec(db,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "  version INTEGER PRIMARY KEY,"
                "  applied_at_ms INTEGER NOT NULL)",
                error, error_len);
  int current = 0;
  if (!rc && query_int(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &current))
    rc = FW_EIO;
  if (!rc && current > (int)FW_ARRAY_LEN(migrations)) {
    say(error, error_len,
        "the store's schema (version %d) is newer than this flagwire understands (%d)", current,
        (int)FW_ARRAY_LEN(migrations));
    return FW_EINVAL;
  }
  for (int v = current + 1; !rc && v <= (int)FW_ARRAY_LEN(migrations); v++) {
    char record[160];
    snprintf(record, sizeof record,
             "INSERT INTO schema_migrations (version, applied_at_ms)"
             " VALUES (%d, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));",
             v);
    rc = exec(db, "BEGIN IMMEDIATE", error, error_len);
    if (!rc)
      rc = exec(db, migrations[v - 1], error, error_len);
    if (!rc)
      rc = exec(db, record, error, error_len);
    if (!rc)
      rc = exec(db, "COMMIT", error, error_len);
    else
      exec(db, "ROLLBACK", error + strlen(error), error_len - strlen(error));
  }
  return rc;
}

static int sqlite_schema_version(struct fw_store *store, int *out) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  return query_int(s->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", out);
}

static int sqlite_durability(struct fw_store *store, enum fw_durability *out) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  int level;
  int rc = query_int(s->db, "PRAGMA synchronous", &level);
  if (rc)
    return rc;
  /* 2 is FULL and 3 is EXTRA: both survive power loss. 1 is NORMAL. */
  *out = level >= 2 ? FW_DURABILITY_FULL : FW_DURABILITY_NORMAL;
  return FW_OK;
}

static sqlite3_stmt *statement(struct sqlite_store *s, enum statement which) {
  sqlite3_stmt *stmt = s->statements[which];
  if (!stmt && sqlite3_prepare_v3(s->db, statement_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                                  NULL) != SQLITE_OK) {
    fw_log_with(FW_LOG_ERROR, "sqlite cannot prepare", FW_LOG_STR("error", sqlite3_errmsg(s->db)));
    return NULL;
  }
  s->statements[which] = stmt;
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return stmt;
}

/* Maps a failed step to our codes, logging what is not the caller's to explain. */
static int step_error(struct sqlite_store *s, int code) {
  int primary = code & 0xff;
  if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
    return FW_EEXISTS;
  if (primary == SQLITE_CONSTRAINT)
    return FW_EINVAL;
  fw_log_with(FW_LOG_ERROR, "sqlite step failed", FW_LOG_STR("error", sqlite3_errmsg(s->db)));
  return FW_EIO;
}

/* Runs a statement that returns no rows. */
static int run(struct sqlite_store *s, sqlite3_stmt *stmt) {
  int code = sqlite3_step(stmt);
  int rc = code == SQLITE_DONE ? FW_OK : step_error(s, sqlite3_extended_errcode(s->db));
  sqlite3_reset(stmt);
  return rc;
}

static int bind_text(sqlite3_stmt *stmt, int index, const char *text, size_t len) {
  if (!text)
    return sqlite3_bind_null(stmt, index);
  return sqlite3_bind_text64(stmt, index, text, len, SQLITE_STATIC, SQLITE_UTF8);
}

static int sqlite_put_doc(struct fw_store *store, struct fw_store_doc *doc) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  static const enum statement inserts[] = {[FW_TABLE_PROJECTS] = STMT_INSERT_PROJECT,
                                           [FW_TABLE_ENVIRONMENTS] = STMT_INSERT_ENVIRONMENT,
                                           [FW_TABLE_FLAGS] = STMT_INSERT_FLAG,
                                           [FW_TABLE_FLAG_STATES] = STMT_PUT_FLAG_STATE,
                                           [FW_TABLE_CONFIGS] = STMT_INSERT_CONFIG,
                                           [FW_TABLE_SEGMENTS] = STMT_INSERT_SEGMENT,
                                           [FW_TABLE_SEGMENT_RULES] = STMT_PUT_SEGMENT_RULES};
  static const enum statement updates[] = {[FW_TABLE_PROJECTS] = STMT_UPDATE_PROJECT,
                                           [FW_TABLE_ENVIRONMENTS] = STMT_UPDATE_ENVIRONMENT,
                                           [FW_TABLE_FLAGS] = STMT_UPDATE_FLAG,
                                           [FW_TABLE_FLAG_STATES] = STMT_PUT_FLAG_STATE,
                                           [FW_TABLE_CONFIGS] = STMT_UPDATE_CONFIG,
                                           [FW_TABLE_SEGMENTS] = STMT_UPDATE_SEGMENT,
                                           [FW_TABLE_SEGMENT_RULES] = STMT_PUT_SEGMENT_RULES};
  bool insert = doc->id == 0;
  /* Per-environment rows are keyed by their owner's id and put, never inserted bare. */
  assert(!insert || (doc->table != FW_TABLE_FLAG_STATES && doc->table != FW_TABLE_SEGMENT_RULES));
  sqlite3_stmt *stmt = statement(s, insert ? inserts[doc->table] : updates[doc->table]);
  if (!stmt)
    return FW_EIO;
  /* Parameters are numbered alike in every statement: 1 id, 2 owner, 3 key, 4 doc,
   * 5 version, 6 epoch; each statement uses the ones it needs. */
  if (doc->id)
    sqlite3_bind_int64(stmt, 1, doc->id);
  sqlite3_bind_int64(stmt, 2, doc->parent_id);
  if (doc->key && sqlite3_bind_parameter_count(stmt) >= 3)
    bind_text(stmt, 3, doc->key, strlen(doc->key));
  bind_text(stmt, 4, doc->doc, doc->doc_len);
  sqlite3_bind_int64(stmt, 5, doc->version);
  if (doc->epoch && sqlite3_bind_parameter_count(stmt) >= 6)
    bind_text(stmt, 6, doc->epoch, strlen(doc->epoch));
  int rc = run(s, stmt);
  if (rc == FW_OK && !insert && sqlite3_changes(s->db) != 1)
    rc = FW_ENOTFOUND;
  if (rc == FW_OK && insert)
    doc->id = sqlite3_last_insert_rowid(s->db);
  return rc;
}

static int sqlite_delete_doc(struct fw_store *store, enum fw_store_table table, int64_t id,
                             int64_t parent_id) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  static const enum statement deletes[] = {[FW_TABLE_PROJECTS] = STMT_DELETE_PROJECT,
                                           [FW_TABLE_ENVIRONMENTS] = STMT_DELETE_ENVIRONMENT,
                                           [FW_TABLE_FLAGS] = STMT_DELETE_FLAG,
                                           [FW_TABLE_FLAG_STATES] = STMT_DELETE_FLAG_STATE,
                                           [FW_TABLE_CONFIGS] = STMT_DELETE_CONFIG,
                                           [FW_TABLE_SEGMENTS] = STMT_DELETE_SEGMENT,
                                           [FW_TABLE_SEGMENT_RULES] = STMT_DELETE_SEGMENT_RULES};
  sqlite3_stmt *stmt = statement(s, deletes[table]);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, id);
  if (table == FW_TABLE_FLAG_STATES || table == FW_TABLE_SEGMENT_RULES)
    sqlite3_bind_int64(stmt, 2, parent_id);
  int rc = run(s, stmt);
  if (rc == FW_OK && sqlite3_changes(s->db) != 1)
    rc = FW_ENOTFOUND;
  return rc;
}

static int sqlite_idempotency_get(struct fw_store *store, const char *actor, const char *key,
                                  uint8_t fingerprint[32], int *status, struct fw_buf *body) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_IDEMPOTENCY_GET);
  if (!stmt)
    return FW_EIO;
  bind_text(stmt, 1, actor, strlen(actor));
  bind_text(stmt, 2, key, strlen(key));
  int code = sqlite3_step(stmt), rc = FW_ENOTFOUND;
  if (code == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) == 32) {
    memcpy(fingerprint, sqlite3_column_blob(stmt, 0), 32);
    *status = sqlite3_column_int(stmt, 1);
    rc = fw_buf_append(body, sqlite3_column_text(stmt, 2), (size_t)sqlite3_column_bytes(stmt, 2));
  } else if (code != SQLITE_ROW && code != SQLITE_DONE) {
    rc = step_error(s, sqlite3_extended_errcode(s->db));
  }
  sqlite3_reset(stmt);
  return rc;
}

static int sqlite_idempotency_put(struct fw_store *store, const char *actor, const char *key,
                                  const uint8_t fingerprint[32], int status, const char *body,
                                  size_t body_len, int64_t now_ms) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_IDEMPOTENCY_PUT);
  if (!stmt)
    return FW_EIO;
  bind_text(stmt, 1, actor, strlen(actor));
  bind_text(stmt, 2, key, strlen(key));
  sqlite3_bind_blob(stmt, 3, fingerprint, 32, SQLITE_STATIC);
  sqlite3_bind_int(stmt, 4, status);
  bind_text(stmt, 5, body ? body : "", body ? body_len : 0);
  sqlite3_bind_int64(stmt, 6, now_ms);
  return run(s, stmt);
}

static int sqlite_idempotency_prune(struct fw_store *store, int64_t before_ms) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_IDEMPOTENCY_PRUNE);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, before_ms);
  return run(s, stmt);
}

static const char *const credential_kinds[] = {"server", "client", "admin"};

static int sqlite_put_credential(struct fw_store *store,
                                 const struct fw_store_credential *credential) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_PUT_CREDENTIAL);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_blob(stmt, 1, credential->hash, sizeof credential->hash, SQLITE_STATIC);
  sqlite3_bind_text(stmt, 2, credential_kinds[credential->kind], -1, SQLITE_STATIC);
  if (credential->kind == FW_CREDENTIAL_ADMIN)
    sqlite3_bind_null(stmt, 3);
  else
    sqlite3_bind_int64(stmt, 3, credential->environment_id);
  bind_text(stmt, 4, credential->role, credential->role ? strlen(credential->role) : 0);
  bind_text(stmt, 5, credential->name, strlen(credential->name));
  sqlite3_bind_int64(stmt, 6, credential->created_ms);
  sqlite3_bind_int64(stmt, 7, credential->expires_ms);
  return run(s, stmt);
}

static int sqlite_next_revision(struct fw_store *store, int64_t environment_id, int64_t now_ms,
                                int64_t *revision, int64_t *at_ms) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_NEXT_REVISION);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, environment_id);
  sqlite3_bind_int64(stmt, 2, now_ms);
  int code = sqlite3_step(stmt);
  int rc = FW_OK;
  if (code == SQLITE_ROW) {
    *revision = sqlite3_column_int64(stmt, 0);
    *at_ms = sqlite3_column_int64(stmt, 1);
    code = sqlite3_step(stmt);
  } else if (code == SQLITE_DONE) {
    rc = FW_ENOTFOUND;
  }
  if (rc == FW_OK && code != SQLITE_DONE)
    rc = step_error(s, sqlite3_extended_errcode(s->db));
  sqlite3_reset(stmt);
  return rc;
}

static int sqlite_append_change(struct fw_store *store, const struct fw_store_change *change) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_APPEND_CHANGE);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, change->environment_id);
  sqlite3_bind_int64(stmt, 2, change->revision);
  bind_text(stmt, 3, change->kind, strlen(change->kind));
  bind_text(stmt, 4, change->key, strlen(change->key));
  bind_text(stmt, 5, change->object, change->object_len);
  bind_text(stmt, 6, change->actor, strlen(change->actor));
  sqlite3_bind_int64(stmt, 7, change->at_ms);
  sqlite3_bind_int(stmt, 8, change->leaves_clients > 0);
  return run(s, stmt);
}

/* Steps a statement selecting (revision, kind, key, object, actor, at_ms, leaves_clients)
 * of change rows, handing each to `callback`, and resets it. */
static int read_change_rows(struct sqlite_store *s, sqlite3_stmt *stmt, int64_t environment_id,
                            fw_store_change_cb callback, void *ctx) {
  int rc = FW_OK, code;
  while (rc == FW_OK && (code = sqlite3_step(stmt)) == SQLITE_ROW) {
    struct fw_store_change change = {
        .environment_id = environment_id,
        .revision = sqlite3_column_int64(stmt, 0),
        .kind = (const char *)sqlite3_column_text(stmt, 1),
        .key = (const char *)sqlite3_column_text(stmt, 2),
        .object = (const char *)sqlite3_column_text(stmt, 3),
        .object_len = (size_t)sqlite3_column_bytes(stmt, 3),
        .actor = (const char *)sqlite3_column_text(stmt, 4),
        .at_ms = sqlite3_column_int64(stmt, 5),
        .leaves_clients =
            sqlite3_column_type(stmt, 6) == SQLITE_NULL ? -1 : sqlite3_column_int(stmt, 6),
    };
    rc = callback(ctx, &change);
  }
  if (rc == FW_OK && code != SQLITE_DONE)
    rc = step_error(s, sqlite3_extended_errcode(s->db));
  sqlite3_reset(stmt);
  return rc;
}

static int sqlite_changes(struct fw_store *store, int64_t environment_id, int64_t after,
                          size_t limit, fw_store_change_cb callback, void *ctx) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_CHANGES);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, environment_id);
  sqlite3_bind_int64(stmt, 2, after);
  sqlite3_bind_int64(stmt, 3, (sqlite3_int64)limit);
  return read_change_rows(s, stmt, environment_id, callback, ctx);
}

static int sqlite_departures(struct fw_store *store, int64_t environment_id,
                             fw_store_change_cb callback, void *ctx) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_stmt *stmt = statement(s, STMT_DEPARTURES);
  if (!stmt)
    return FW_EIO;
  sqlite3_bind_int64(stmt, 1, environment_id);
  return read_change_rows(s, stmt, environment_id, callback, ctx);
}

/* Loads one table's documents in id order. */
static int load_docs(struct sqlite_store *s, enum fw_store_table table, const char *sql,
                     const struct fw_store_loader *loader) {
  sqlite3_stmt *stmt;
  if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK)
    return step_error(s, sqlite3_extended_errcode(s->db));
  int rc = FW_OK, code;
  while (rc == FW_OK && (code = sqlite3_step(stmt)) == SQLITE_ROW) {
    struct fw_store_doc doc = {
        .table = table,
        .id = sqlite3_column_int64(stmt, 0),
        .parent_id = sqlite3_column_int64(stmt, 1),
        .key = (const char *)sqlite3_column_text(stmt, 2),
        .doc = (const char *)sqlite3_column_text(stmt, 3),
        .doc_len = (size_t)sqlite3_column_bytes(stmt, 3),
        .version = sqlite3_column_int64(stmt, 4),
    };
    if (table == FW_TABLE_ENVIRONMENTS) {
      doc.epoch = (const char *)sqlite3_column_text(stmt, 5);
      doc.revision = sqlite3_column_int64(stmt, 6);
      doc.last_change_ms = sqlite3_column_int64(stmt, 7);
    }
    rc = loader->doc(loader->ctx, &doc);
  }
  if (rc == FW_OK && code != SQLITE_DONE)
    rc = step_error(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(stmt);
  return rc;
}

static int load_credentials(struct sqlite_store *s, const struct fw_store_loader *loader) {
  sqlite3_stmt *stmt;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT hash, kind, environment_id, role, name, created_ms, expires_ms"
                         " FROM credentials ORDER BY created_ms",
                         -1, &stmt, NULL) != SQLITE_OK)
    return step_error(s, sqlite3_extended_errcode(s->db));
  int rc = FW_OK, code;
  while (rc == FW_OK && (code = sqlite3_step(stmt)) == SQLITE_ROW) {
    struct fw_store_credential credential = {
        .environment_id = sqlite3_column_int64(stmt, 2),
        .role = (const char *)sqlite3_column_text(stmt, 3),
        .name = (const char *)sqlite3_column_text(stmt, 4),
        .created_ms = sqlite3_column_int64(stmt, 5),
        .expires_ms = sqlite3_column_int64(stmt, 6),
    };
    if (sqlite3_column_bytes(stmt, 0) != (int)sizeof credential.hash) {
      rc = FW_EINVAL;
      break;
    }
    memcpy(credential.hash, sqlite3_column_blob(stmt, 0), sizeof credential.hash);
    const char *kind = (const char *)sqlite3_column_text(stmt, 1);
    for (size_t i = 0; i < FW_ARRAY_LEN(credential_kinds); i++)
      if (!strcmp(kind, credential_kinds[i]))
        credential.kind = (enum fw_credential_kind)i;
    rc = loader->credential(loader->ctx, &credential);
  }
  if (rc == FW_OK && code != SQLITE_DONE)
    rc = step_error(s, sqlite3_extended_errcode(s->db));
  sqlite3_finalize(stmt);
  return rc;
}

static int sqlite_load(struct fw_store *store, const struct fw_store_loader *loader) {
  /* Owners before what they own, so the loader can always find an owner by id. */
  static const struct {
    enum fw_store_table table;
    const char *sql;
  } tables[] = {
      {FW_TABLE_PROJECTS, "SELECT id, 0, key, doc, version FROM projects ORDER BY id"},
      {FW_TABLE_ENVIRONMENTS, "SELECT id, project_id, key, doc, version, epoch, revision,"
                              " last_change_ms FROM environments ORDER BY id"},
      {FW_TABLE_FLAGS, "SELECT id, project_id, key, doc, version FROM flags ORDER BY id"},
      {FW_TABLE_FLAG_STATES, "SELECT flag_id, environment_id, NULL, doc, version FROM flag_states"
                             " ORDER BY flag_id, environment_id"},
      {FW_TABLE_SEGMENTS, "SELECT id, project_id, key, doc, version FROM segments ORDER BY id"},
      {FW_TABLE_SEGMENT_RULES, "SELECT segment_id, environment_id, NULL, doc, version"
                               " FROM segment_rules ORDER BY segment_id, environment_id"},
      {FW_TABLE_CONFIGS, "SELECT id, environment_id, key, doc, version FROM configs ORDER BY id"},
  };
  struct sqlite_store *s = (struct sqlite_store *)store;
  /* One read transaction, so the load sees one consistent state. */
  int rc = exec(s->db, "BEGIN", NULL, 0);
  for (size_t i = 0; !rc && i < FW_ARRAY_LEN(tables); i++)
    rc = load_docs(s, tables[i].table, tables[i].sql, loader);
  if (!rc)
    rc = load_credentials(s, loader);
  int end = exec(s->db, rc ? "ROLLBACK" : "COMMIT", NULL, 0);
  return rc ? rc : end;
}

/* Runs a statement that takes no parameters and returns no rows. */
static int run_statement(struct sqlite_store *s, enum statement which) {
  sqlite3_stmt *stmt = statement(s, which);
  return stmt ? run(s, stmt) : FW_EIO;
}

static int sqlite_begin(struct fw_store *store) {
  return run_statement((struct sqlite_store *)store, STMT_BEGIN);
}

static int sqlite_commit(struct fw_store *store) {
  return run_statement((struct sqlite_store *)store, STMT_COMMIT);
}

static void sqlite_rollback(struct fw_store *store) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  if (!sqlite3_get_autocommit(s->db))
    (void)run_statement(s, STMT_ROLLBACK);
}

static int sqlite_savepoint(struct fw_store *store) {
  return run_statement((struct sqlite_store *)store, STMT_SAVEPOINT);
}

static int sqlite_release(struct fw_store *store) {
  return run_statement((struct sqlite_store *)store, STMT_RELEASE);
}

static void sqlite_rollback_savepoint(struct fw_store *store) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  /* ROLLBACK TO keeps the savepoint open; RELEASE then ends it with nothing in it. */
  if (run_statement(s, STMT_ROLLBACK_TO) == FW_OK)
    (void)run_statement(s, STMT_RELEASE);
}

static void *run_checkpoints(void *arg) {
  struct checkpointer *c = arg;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    while (!c->requested && !c->stopping)
      pthread_cond_wait(&c->wake, &c->lock);
    if (c->stopping)
      break;
    c->requested = false;
    pthread_mutex_unlock(&c->lock);
    int logged = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      fw_log_with(FW_LOG_WARN, "the store's checkpoint failed",
                  FW_LOG_STR("error", sqlite3_errmsg(c->db)));
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

/* The writer's commit hook: past the threshold, the checkpointer is asked to run. The log
 * starts over only at a commit that finds it wholly copied, which a checkpoint running
 * beside a steady stream of commits never achieves: past the second bound the commit
 * checkpoints itself, as SQLite would, and the log stops growing. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages) {
  struct checkpointer *c = arg;
  if (pages >= CHECKPOINT_NOW_PAGES) {
    (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  } else if (pages >= CHECKPOINT_PAGES) {
    pthread_mutex_lock(&c->lock);
    c->requested = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
  }
  return SQLITE_OK;
}

/* Opens the checkpointer's connection and starts its thread; then turns SQLite's own
 * checkpoint off (the hook replaces it). Without it the automatic one stays. */
static void start_checkpointer(struct sqlite_store *s, const char *path, const char *synchronous) {
  struct checkpointer *c = &s->checkpointer;
  if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
          SQLITE_OK ||
      sqlite3_exec(c->db, synchronous, NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_close(c->db);
    c->db = NULL;
    return;
  }
  sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->wake, NULL);
  if (pthread_create(&c->thread, NULL, run_checkpoints, c) != 0) {
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    sqlite3_close(c->db);
    c->db = NULL;
    return;
  }
  c->running = true;
  sqlite3_wal_hook(s->db, on_wal_commit, c);
}

static void stop_checkpointer(struct checkpointer *c) {
  if (!c->running)
    return;
  pthread_mutex_lock(&c->lock);
  c->stopping = true;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->lock);
  pthread_join(c->thread, NULL);
  pthread_cond_destroy(&c->wake);
  pthread_mutex_destroy(&c->lock);
  sqlite3_close(c->db);
  c->running = false;
}

static void sqlite_close(struct fw_store *store) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  stop_checkpointer(&s->checkpointer);
  for (size_t i = 0; i < STMT_COUNT; i++)
    sqlite3_finalize(s->statements[i]);
  sqlite3_close(s->db);
  free(s);
}

static const struct fw_store_ops sqlite_ops = {
    .name = "sqlite",
    .schema_version = sqlite_schema_version,
    .durability = sqlite_durability,
    .load = sqlite_load,
    .changes = sqlite_changes,
    .departures = sqlite_departures,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .release = sqlite_release,
    .rollback_savepoint = sqlite_rollback_savepoint,
    .put_doc = sqlite_put_doc,
    .delete_doc = sqlite_delete_doc,
    .idempotency_get = sqlite_idempotency_get,
    .idempotency_put = sqlite_idempotency_put,
    .idempotency_prune = sqlite_idempotency_prune,
    .put_credential = sqlite_put_credential,
    .next_revision = sqlite_next_revision,
    .append_change = sqlite_append_change,
    .close = sqlite_close,
};

int fw_store_open_sqlite(const char *data_dir, enum fw_durability durability, struct fw_store **out,
                         char *error, size_t error_len) {
  if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
    say(error, error_len, "cannot create the data directory '%s': %s", data_dir, strerror(errno));
    return FW_EIO;
  }
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", data_dir, DB_FILE_NAME) >= sizeof path) {
    say(error, error_len, "the data directory path is too long");
    return FW_EINVAL;
  }
  struct sqlite_store *s = calloc(1, sizeof *s);
  if (!s)
    return FW_ENOMEM;
  s->base.ops = &sqlite_ops;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
    say(error, error_len, "cannot open the store '%s': %s", path,
        s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_close(s->db);
    free(s);
    return FW_EIO;
  }
  sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
  char journal[16] = "";
  sqlite3_stmt *stmt;
  if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) == SQLITE_OK) {
    if (sqlite3_step(stmt) == SQLITE_ROW)
      snprintf(journal, sizeof journal, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
  }
  int rc = FW_OK;
  if (strcmp(journal, "wal") != 0) {
    say(error, error_len, "the store '%s' cannot use write-ahead logging (journal mode '%s')", path,
        journal);
    rc = FW_EIO;
  }
  const char *synchronous =
      durability == FW_DURABILITY_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if (!rc)
    rc = exec(s->db, synchronous, error, error_len);
  if (!rc)
    rc = exec(s->db, "PRAGMA foreign_keys=ON", error, error_len);
  if (!rc)
    rc = migrate(s->db, error, error_len);
  if (rc) {
    sqlite_close(&s->base);
    return rc;
  }
  start_checkpointer(s, path, synchronous);
  *out = &s->base;
  return FW_OK;
}
