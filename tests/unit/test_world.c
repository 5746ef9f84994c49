/* The in-memory world: deriving a new world leaves the old one as it was, shares every
 * object that did not change, keeps arrays sorted, and frees what nobody references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "state/world.h"

static struct fw_object *object(enum fw_store_table table, int64_t id, const char *key) {
  char doc[64];
  snprintf(doc, sizeof doc, "{\"key\":\"%s\"}", key);
  struct fw_object *o = fw_object_new(table, id, 1, key, doc, strlen(doc), 1);
  assert_non_null(o);
  return o;
}

/* Replaces *world with `next`, dropping the caller's reference to the old one. */
static void step(struct fw_world **world, struct fw_world *next) {
  assert_non_null(next);
  fw_world_unref(*world);
  *world = next;
}

static struct fw_world *world_with_env(void) {
  struct fw_world *world = fw_world_empty();
  assert_non_null(world);
  struct fw_object *project = object(FW_TABLE_PROJECTS, 1, "shop");
  step(&world, fw_world_with_project(world, project));
  fw_object_unref(project);
  struct fw_object *env = object(FW_TABLE_ENVIRONMENTS, 10, "prod");
  step(&world, fw_world_with_env(world, "shop", env, 0, 0));
  fw_object_unref(env);
  return world;
}

static void old_worlds_do_not_change(void **state) {
  (void)state;
  struct fw_world *before = world_with_env();
  struct fw_object *flag = object(FW_TABLE_FLAGS, 100, "f");
  struct fw_world *after = fw_world_with_project_object(before, "shop", flag);
  assert_non_null(after);
  assert_null(fw_project_flag(fw_world_project(before, "shop"), "f"));
  assert_ptr_equal(fw_project_flag(fw_world_project(after, "shop"), "f"), flag);

  struct fw_world *revised = fw_world_with_revision(after, "shop", "prod", 7, 1234);
  assert_non_null(revised);
  assert_int_equal(fw_project_env(fw_world_project(after, "shop"), "prod")->revision, 0);
  assert_int_equal(fw_project_env(fw_world_project(revised, "shop"), "prod")->revision, 7);
  /* What did not change is shared, not copied: the flag list is the same objects. */
  assert_ptr_equal(fw_project_flag(fw_world_project(revised, "shop"), "f"), flag);
  assert_ptr_equal(fw_world_project(revised, "shop")->project,
                   fw_world_project(before, "shop")->project);

  fw_world_unref(before);
  fw_world_unref(after);
  /* The flag is still alive through `revised` and the test's own reference. */
  assert_int_equal(atomic_load(&flag->refs), 2);
  fw_world_unref(revised);
  assert_int_equal(atomic_load(&flag->refs), 1);
  fw_object_unref(flag);
}

static void objects_stay_sorted_and_replace_by_key(void **state) {
  (void)state;
  struct fw_world *world = world_with_env();
  const char *keys[] = {"m", "c", "x", "a", "c"};
  for (size_t i = 0; i < 5; i++) {
    struct fw_object *config = object(FW_TABLE_CONFIGS, (int64_t)i, keys[i]);
    step(&world, fw_world_with_env_object(world, "shop", "prod", config));
    fw_object_unref(config);
  }
  struct fw_env_node *env = fw_project_env(fw_world_project(world, "shop"), "prod");
  assert_int_equal(fw_objects_count(env->configs), 4);
  const char *sorted[] = {"a", "c", "m", "x"};
  for (size_t i = 0; i < 4; i++)
    assert_string_equal(fw_objects_at(env->configs, i)->key, sorted[i]);
  assert_int_equal(fw_env_config(env, "c")->id, 4); /* the later "c" replaced the first */
  assert_null(fw_env_config(env, "b"));
  fw_world_unref(world);
}

static void credentials_are_found_by_hash(void **state) {
  (void)state;
  struct fw_world *world = fw_world_empty();
  for (uint8_t i = 0; i < 20; i++) {
    struct fw_credential credential = {.kind = FW_CREDENTIAL_SERVER, .environment_id = i};
    memset(credential.hash, (int)(i * 13 % 20), sizeof credential.hash);
    step(&world, fw_world_with_credential(world, &credential));
  }
  for (uint8_t i = 0; i < 20; i++) {
    uint8_t hash[32];
    memset(hash, (int)(i * 13 % 20), sizeof hash);
    const struct fw_credential *found = fw_world_credential(world, hash);
    assert_non_null(found);
    assert_int_equal(found->environment_id, i);
  }
  uint8_t unknown[32];
  memset(unknown, 0xee, sizeof unknown);
  assert_null(fw_world_credential(world, unknown));
  int64_t environment_id = 0;
  struct fw_project_node *project;
  struct fw_env_node *env;
  assert_false(fw_world_find_env(world, environment_id, &project, &env));
  fw_world_unref(world);
}

static struct fw_credential credential_of(uint8_t fill, int64_t environment_id) {
  struct fw_credential credential = {.kind = FW_CREDENTIAL_CLIENT,
                                     .environment_id = environment_id};
  memset(credential.hash, fill, sizeof credential.hash);
  return credential;
}

/* The hub ends streams whose key went away only when the credentials changed, which it
 * learns by comparing pointers: every other write must share the table, and every write
 * to a credential must make a new one, leaving the old world's as it was. */
static void credentials_are_shared_until_one_changes(void **state) {
  (void)state;
  struct fw_world *world = world_with_env();
  struct fw_credential first = credential_of(0x20, 10), second = credential_of(0x10, 99);
  step(&world, fw_world_with_credential(world, &first));
  step(&world, fw_world_with_credential(world, &second));

  struct fw_object *flag = object(FW_TABLE_FLAGS, 100, "f");
  struct fw_world *flagged = fw_world_with_project_object(world, "shop", flag);
  fw_object_unref(flag);
  assert_non_null(flagged);
  assert_ptr_equal(flagged->credentials, world->credentials);
  struct fw_world *revised = fw_world_with_revision(flagged, "shop", "prod", 3, 1000);
  assert_non_null(revised);
  assert_ptr_equal(revised->credentials, world->credentials);

  struct fw_credential expiring = first;
  expiring.expires_ms = 5000;
  struct fw_world *rotated = fw_world_with_credential(revised, &expiring);
  assert_non_null(rotated);
  assert_ptr_not_equal(rotated->credentials, revised->credentials);
  assert_int_equal(rotated->credentials->count, 2);
  assert_int_equal(fw_world_credential(rotated, first.hash)->expires_ms, 5000);
  assert_int_equal(fw_world_credential(revised, first.hash)->expires_ms, 0);

  /* Removing the environment takes its keys and keeps the others. */
  struct fw_world *removed = fw_world_without_env(rotated, "shop", "prod");
  assert_non_null(removed);
  assert_null(fw_world_credential(removed, first.hash));
  assert_non_null(fw_world_credential(removed, second.hash));
  assert_int_equal(removed->credentials->count, 1);
  assert_int_equal(rotated->credentials->count, 2);

  fw_world_unref(removed);
  fw_world_unref(rotated);
  fw_world_unref(revised);
  fw_world_unref(flagged);
  fw_world_unref(world);
}

static void changes_to_missing_scopes_are_refused(void **state) {
  (void)state;
  struct fw_world *world = world_with_env();
  struct fw_object *flag = object(FW_TABLE_FLAGS, 1, "f");
  assert_null(fw_world_with_project_object(world, "nope", flag));
  assert_null(fw_world_with_env_object(world, "shop", "nope", flag));
  fw_object_unref(flag);
  fw_world_unref(world);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(old_worlds_do_not_change),
      cmocka_unit_test(objects_stay_sorted_and_replace_by_key),
      cmocka_unit_test(credentials_are_found_by_hash),
      cmocka_unit_test(credentials_are_shared_until_one_changes),
      cmocka_unit_test(changes_to_missing_scopes_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
