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
  assert_int_equal(version, 1);
  fw_store_close(store);

  /* A second open finds the schema current and migrates nothing. */
  assert_int_equal(fw_store_open_sqlite(data, FW_DURABILITY_FULL, &store, error, sizeof error),
                   FW_OK);
  assert_int_equal(fw_store_schema_version(store, &version), FW_OK);
  assert_int_equal(version, 1);
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
  assert_int_equal(sqlite3_column_int(stmt, 0), 1);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(opens_migrates_and_reopens, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(durability_in_force_is_what_was_asked, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(refuses_a_newer_schema, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(reports_an_unusable_directory, make_dir, remove_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
