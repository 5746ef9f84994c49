#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* The migrations this build has. */
#define SCHEMA_VERSION 5

static char dir[64];

static int make_dir(void **state) {
  (void)state;
  strcpy(dir, "/tmp/flagwire-store-XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int remove_dir(void **state) {
  (void)state;
  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  assert_int_equal(system(command), 0);
  return 0;
}

static void opens_migrates_and_reopens(void **state) {
  (void)state;
  char data[96];
  snprintf(data, sizeof data, "%s/nested", dir);
  struct fw_store *store = NULL;
  char error[256];
  assert_int_equal(fw_store_open_sqlite(data, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_OK);
  int version = 0;
  assert_int_equal(fw_store_schema_version(store, &version), FW_OK);
  assert_int_equal(version, SCHEMA_VERSION);
  fw_store_close(store);

  /* A second open finds the schema current and migrates nothing. */
  assert_int_equal(fw_store_open_sqlite(data, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_OK);
  assert_int_equal(fw_store_schema_version(store, &version), FW_OK);
  assert_int_equal(version, SCHEMA_VERSION);
  fw_store_close(store);

  /* The file is a real SQLite database in WAL mode. */
  char path[128];
  snprintf(path, sizeof path, "%s/flagwire.db", data);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *stmt;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
  sqlite3_finalize(stmt);
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM schema_migrations", -1, &stmt, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(stmt, 0), SCHEMA_VERSION);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

static void durability_in_force_is_what_was_asked(void **state) {
  (void)state;
  struct fw_store *store = NULL;
  char error[256];
  enum fw_durability in_force;
  assert_int_equal(fw_store_open_sqlite(dir, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_OK);
  assert_int_equal(fw_store_durability(store, &in_force), FW_OK);
  assert_int_equal(in_force, FW_DURABILITY_FULL);
  fw_store_close(store);
  assert_int_equal(fw_store_open_sqlite(dir, FW_DURABILITY_NORMAL, &store, error, sizeof error),
                   FW_OK);
  assert_int_equal(fw_store_durability(store, &in_force), FW_OK);
  assert_int_equal(in_force, FW_DURABILITY_NORMAL);
  fw_store_close(store);
}

static void refuses_a_newer_schema(void **state) {
  (void)state;
  struct fw_store *store = NULL;
  char error[256];
  assert_int_equal(fw_store_open_sqlite(dir, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_OK);
  fw_store_close(store);
  char path[128];
  snprintf(path, sizeof path, "%s/flagwire.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "INSERT INTO schema_migrations (version, applied_at_ms) "
                                "VALUES (999, 0)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(fw_store_open_sqlite(dir, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_EINVAL);
  assert_non_null(strstr(error, "newer"));
}

static void reports_an_unusable_directory(void **state) {
  (void)state;
  char file[96];
  snprintf(file, sizeof file, "%s/plain-file", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  struct fw_store *store = NULL;
  char error[256] = "";
  assert_int_not_equal(fw_store_open_sqlite(file, FW_DURABILITY_FULL, &store, error, sizeof error),
                       FW_OK);
  assert_non_null(strstr(error, file));
}

static struct fw_store *open_store(void) {
  struct fw_store *store = NULL;
  char error[256];
  assert_int_equal(fw_store_open_sqlite(dir, FW_DURABILITY_NORMAL, &store, error, sizeof error),
                   FW_OK);
  return store;
}

static int64_t put(struct fw_store *store, enum fw_store_table table, int64_t id, int64_t parent,
                   const char *key, const char *doc, int expected) {
  struct fw_store_doc row = {.table = table,
                             .id = id,
                             .parent_id = parent,
                             .key = key,
                             .doc = doc,
                             .doc_len = strlen(doc),
                             .version = 1,
                             .epoch = "00ff"};
  assert_int_equal(store->ops->put_doc(store, &row), expected);
  return row.id;
}

struct loaded {
  int docs[7];
  int credentials;
  char order[64];
  size_t order_len;
};

static int count_doc(void *ctx, const struct fw_store_doc *doc) {
  struct loaded *loaded = ctx;
  loaded->docs[doc->table]++;
  loaded->order[loaded->order_len++] = (char)('0' + doc->table);
  return FW_OK;
}

static int count_credential(void *ctx, const struct fw_store_credential *credential) {
  struct loaded *loaded = ctx;
  assert_int_equal(credential->kind, FW_CREDENTIAL_ADMIN);
  assert_string_equal(credential->role, "editor");
  assert_int_equal(credential->hash[0], 7);
  loaded->credentials++;
  return FW_OK;
}

static void documents_are_written_loaded_and_kept_unique(void **state) {
  (void)state;
  struct fw_store *store = open_store();
  assert_int_equal(store->ops->begin(store), FW_OK);
  int64_t project = put(store, FW_TABLE_PROJECTS, 0, 0, "shop", "{\"key\":\"shop\"}", FW_OK);
  assert_true(project > 0);
  put(store, FW_TABLE_PROJECTS, 0, 0, "shop", "{}", FW_EEXISTS);
  int64_t env = put(store, FW_TABLE_ENVIRONMENTS, 0, project, "prod", "{}", FW_OK);
  int64_t flag = put(store, FW_TABLE_FLAGS, 0, project, "f", "{}", FW_OK);
  put(store, FW_TABLE_FLAG_STATES, flag, env, NULL, "{\"enabled\":true}", FW_OK);
  put(store, FW_TABLE_FLAG_STATES, flag, env, NULL, "{\"enabled\":false}", FW_OK);
  put(store, FW_TABLE_CONFIGS, 0, env, "c", "19.99", FW_OK);
  /* Foreign keys are on: a flag of no project is refused. */
  put(store, FW_TABLE_FLAGS, 0, 9999, "orphan", "{}", FW_EINVAL);
  /* Updating a row that is not there says so. */
  put(store, FW_TABLE_PROJECTS, 9999, 0, "ghost", "{}", FW_ENOTFOUND);
  struct fw_store_credential credential = {
      .kind = FW_CREDENTIAL_ADMIN, .role = "editor", .name = "ci", .created_ms = 1};
  credential.hash[0] = 7;
  assert_int_equal(store->ops->put_credential(store, &credential), FW_OK);
  assert_int_equal(store->ops->commit(store), FW_OK);

  struct loaded loaded = {0};
  struct fw_store_loader loader = {
      .doc = count_doc, .credential = count_credential, .ctx = &loaded};
  assert_int_equal(store->ops->load(store, &loader), FW_OK);
  assert_int_equal(loaded.docs[FW_TABLE_PROJECTS], 1);
  assert_int_equal(loaded.docs[FW_TABLE_FLAG_STATES], 1);
  assert_int_equal(loaded.credentials, 1);
  loaded.order[loaded.order_len] = '\0';
  assert_string_equal(loaded.order, "01234"); /* owners before what they own */
  fw_store_close(store);
}

/* A store inside a transaction, with project "p" and its environment "e", whose id goes
 * to *env. */
static struct fw_store *open_store_in_environment(int64_t *env) {
  struct fw_store *store = open_store();
  assert_int_equal(store->ops->begin(store), FW_OK);
  int64_t project = put(store, FW_TABLE_PROJECTS, 0, 0, "p", "{}", FW_OK);
  *env = put(store, FW_TABLE_ENVIRONMENTS, 0, project, "e", "{}", FW_OK);
  return store;
}

/* Appends change `revision` of key "f" to an environment's log. */
static void append_row(struct fw_store *store, int64_t env, int64_t revision, int64_t at_ms,
                       const char *kind, const char *object, int leaves_clients) {
  struct fw_store_change change = {.environment_id = env,
                                   .revision = revision,
                                   .kind = kind,
                                   .key = "f",
                                   .object = object,
                                   .object_len = object ? strlen(object) : 0,
                                   .actor = "test",
                                   .at_ms = at_ms,
                                   .leaves_clients = leaves_clients};
  assert_int_equal(store->ops->append_change(store, &change), FW_OK);
}

static int collect_change(void *ctx, const struct fw_store_change *change) {
  int64_t *revisions = ctx;
  revisions[revisions[0] + 1] = change->revision;
  revisions[0]++;
  assert_string_equal(change->kind, "flag_updated");
  return FW_OK;
}

static void revisions_increase_without_gaps_and_roll_back_with_savepoints(void **state) {
  (void)state;
  int64_t env;
  struct fw_store *store = open_store_in_environment(&env);
  int64_t revision, at_ms, previous_at = 0;
  for (int64_t i = 1; i <= 3; i++) {
    assert_int_equal(store->ops->savepoint(store), FW_OK);
    /* The same clock reading three times still gives increasing times. */
    assert_int_equal(store->ops->next_revision(store, env, 1000, &revision, &at_ms), FW_OK);
    assert_int_equal(revision, i);
    assert_true(at_ms > previous_at);
    previous_at = at_ms;
    append_row(store, env, revision, at_ms, "flag_updated", "{}", 0);
    assert_int_equal(store->ops->release(store), FW_OK);
  }
  /* A write rolled back to its savepoint gives its revision back. */
  assert_int_equal(store->ops->savepoint(store), FW_OK);
  assert_int_equal(store->ops->next_revision(store, env, 1000, &revision, &at_ms), FW_OK);
  assert_int_equal(revision, 4);
  store->ops->rollback_savepoint(store);
  assert_int_equal(store->ops->next_revision(store, env, 1000, &revision, &at_ms), FW_OK);
  assert_int_equal(revision, 4);
  assert_int_equal(store->ops->next_revision(store, 424242, 1000, &revision, &at_ms), FW_ENOTFOUND);
  store->ops->rollback(store);

  /* The whole transaction was rolled back: nothing of it remains. */
  int64_t revisions[8] = {0};
  assert_int_equal(store->ops->changes(store, env, 0, 10, collect_change, revisions), FW_OK);
  assert_int_equal(revisions[0], 0);
  fw_store_close(store);
}

static void change_log_pages(void **state) {
  (void)state;
  int64_t env;
  struct fw_store *store = open_store_in_environment(&env);
  for (int i = 0; i < 5; i++) {
    int64_t revision, at_ms;
    assert_int_equal(store->ops->next_revision(store, env, 5, &revision, &at_ms), FW_OK);
    append_row(store, env, revision, at_ms, "flag_updated", NULL, 0);
  }
  assert_int_equal(store->ops->commit(store), FW_OK);
  int64_t revisions[8] = {0};
  assert_int_equal(store->ops->changes(store, env, 2, 2, collect_change, revisions), FW_OK);
  assert_int_equal(revisions[0], 2);
  assert_int_equal(revisions[1], 3);
  assert_int_equal(revisions[2], 4);
  fw_store_close(store);
}

struct departures {
  int count;
  int64_t revisions[8];
  int leaves_clients[8];
};

static int collect_departure(void *ctx, const struct fw_store_change *change) {
  struct departures *d = ctx;
  assert_true(d->count < 8);
  d->revisions[d->count] = change->revision;
  d->leaves_clients[d->count++] = change->leaves_clients;
  return FW_OK;
}

/* Departures are the deletions and the rows that took a key out of client keys' sight;
 * a row logged before that was recorded reads as unknown. */
static void departures_are_deletions_and_keys_leaving_clients(void **state) {
  (void)state;
  int64_t env;
  struct fw_store *store = open_store_in_environment(&env);
  const struct {
    const char *kind, *object;
    int leaves_clients;
  } rows[] = {{"flag_updated", "{}", 0},
              {"flag_updated", "{}", 1},
              {"flag_deleted", NULL, 0},
              {"config_deleted", NULL, 1},
              {"flag_updated", "{}", 0}};
  for (size_t i = 0; i < FW_ARRAY_LEN(rows); i++) {
    int64_t revision, at_ms;
    assert_int_equal(store->ops->next_revision(store, env, 5, &revision, &at_ms), FW_OK);
    append_row(store, env, revision, at_ms, rows[i].kind, rows[i].object, rows[i].leaves_clients);
  }
  assert_int_equal(store->ops->commit(store), FW_OK);
  fw_store_close(store);

  /* A deletion as schema 4 logged it, without leaves_clients. */
  char path[128];
  snprintf(path, sizeof path, "%s/flagwire.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO changes (environment_id, revision, kind, key, object, actor, at_ms)"
           " VALUES (%lld, 6, 'flag_deleted', 'old', NULL, 'test', 6)",
           (long long)env);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  store = open_store();
  struct departures d = {0};
  assert_int_equal(store->ops->departures(store, env, collect_departure, &d), FW_OK);
  assert_int_equal(d.count, 4);
  const int64_t revisions[] = {2, 3, 4, 6};
  const int leaves_clients[] = {1, 0, 1, -1};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(d.revisions[i], revisions[i]);
    assert_int_equal(d.leaves_clients[i], leaves_clients[i]);
  }
  fw_store_close(store);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(opens_migrates_and_reopens, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(durability_in_force_is_what_was_asked, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(refuses_a_newer_schema, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(reports_an_unusable_directory, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(documents_are_written_loaded_and_kept_unique, make_dir,
                                      remove_dir),
      cmocka_unit_test_setup_teardown(revisions_increase_without_gaps_and_roll_back_with_savepoints,
                                      make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(change_log_pages, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(departures_are_deletions_and_keys_leaving_clients, make_dir,
                                      remove_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
