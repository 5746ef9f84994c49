/* The embedded SQLite store: the one file that knows the SQLite library. */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

#define DB_FILE_NAME "flagwire.db"
#define BUSY_TIMEOUT_MS 5000

struct sqlite_store {
  struct fw_store base; /* first: a store pointer is a sqlite_store pointer */
  sqlite3 *db;
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
    say(error, error_len, "sqlite: %s", message ? message : sqlite3_errmsg(db));
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

static void sqlite_close(struct fw_store *store) {
  struct sqlite_store *s = (struct sqlite_store *)store;
  sqlite3_close(s->db);
  free(s);
}

static const struct fw_store_ops sqlite_ops = {
    .name = "sqlite",
    .schema_version = sqlite_schema_version,
    .durability = sqlite_durability,
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
  if (!rc)
    rc = exec(s->db,
              durability == FW_DURABILITY_FULL ? "PRAGMA synchronous=FULL"
                                               : "PRAGMA synchronous=NORMAL",
              error, error_len);
  if (!rc)
    rc = exec(s->db, "PRAGMA foreign_keys=ON", error, error_len);
  if (!rc)
    rc = migrate(s->db, error, error_len);
  if (rc) {
    sqlite_close(&s->base);
    return rc;
  }
  *out = &s->base;
  return FW_OK;
}
