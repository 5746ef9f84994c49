/* Persistent sets of objects: every version stays as it was, lookups and positions agree
 * with a sorted reference through inserts that split chunks and removals that empty
 * them, and sets built at once behave like sets built one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/objects.h"
#include "state/world.h"

#define KEYS 1000

static struct fw_object *object_with_key(unsigned n) {
  char key[16];
  snprintf(key, sizeof key, "k%04u", n);
  struct fw_object *o = fw_object_new(FW_TABLE_CONFIGS, n, 1, key, "{}", 2, 1);
  assert_non_null(o);
  return o;
}

/* Checks `set` holds exactly the keys marked in `present`, in order. */
static void check(const struct fw_objects *set, const bool *present) {
  size_t expected = 0;
  for (unsigned n = 0; n < KEYS; n++)
    expected += present[n];
  assert_int_equal(fw_objects_count(set), expected);
  size_t index = 0;
  for (unsigned n = 0; n < KEYS; n++) {
    char key[16];
    snprintf(key, sizeof key, "k%04u", n);
    struct fw_object *found = fw_objects_find(set, key);
    if (!present[n]) {
      assert_null(found);
      continue;
    }
    assert_non_null(found);
    assert_string_equal(found->key, key);
    assert_ptr_equal(fw_objects_at(set, index), found);
    index++;
  }
}

static void versions_stay_as_they_were(void **state) {
  (void)state;
  static bool present[KEYS];
  memset(present, 0, sizeof present);
  struct fw_objects *set = NULL;
  /* A scattered order makes inserts land in the middle of chunks and split them. */
  static bool halfway[KEYS];
  struct fw_objects *half = NULL;
  for (unsigned i = 0; i < KEYS; i++) {
    unsigned n = (i * 7919u) % KEYS;
    struct fw_object *o = object_with_key(n);
    struct fw_objects *next;
    assert_int_equal(fw_objects_with(set, o, &next), FW_OK);
    fw_object_unref(o);
    present[n] = true;
    fw_objects_release(set);
    set = next;
    if (i == KEYS / 2) {
      half = fw_objects_share(set);
      memcpy(halfway, present, sizeof halfway);
    }
  }
  /* The version taken halfway is untouched by every insert after it. */
  check(half, halfway);
  fw_objects_release(half);
  check(set, present);

  struct fw_objects *kept = fw_objects_share(set);
  for (unsigned n = 0; n < KEYS; n += 3) {
    char key[16];
    snprintf(key, sizeof key, "k%04u", n);
    struct fw_objects *next;
    assert_int_equal(fw_objects_without(set, key, &next), FW_OK);
    assert_int_equal(fw_objects_without(next, key, &(struct fw_objects *){NULL}), FW_ENOTFOUND);
    present[n] = false;
    fw_objects_release(set);
    set = next;
  }
  check(set, present);
  /* The shared older version still has everything. */
  bool all[KEYS];
  for (unsigned n = 0; n < KEYS; n++)
    all[n] = true;
  check(kept, all);

  /* Replacing keeps the count and shows the new object. */
  struct fw_object *replacement = object_with_key(1);
  struct fw_objects *replaced;
  assert_int_equal(fw_objects_with(set, replacement, &replaced), FW_OK);
  assert_int_equal(fw_objects_count(replaced), fw_objects_count(set));
  assert_ptr_equal(fw_objects_find(replaced, "k0001"), replacement);
  assert_ptr_not_equal(fw_objects_find(set, "k0001"), replacement);
  fw_object_unref(replacement);
  fw_objects_release(replaced);
  fw_objects_release(kept);
  fw_objects_release(set);
}

static void sets_built_at_once_and_emptied(void **state) {
  (void)state;
  struct fw_object *objects[200];
  for (unsigned n = 0; n < 200; n++)
    objects[n] = object_with_key(n);
  struct fw_objects *set;
  assert_int_equal(fw_objects_from(objects, 200, &set), FW_OK);
  for (unsigned n = 0; n < 200; n++)
    fw_object_unref(objects[n]);
  assert_int_equal(fw_objects_count(set), 200);
  assert_string_equal(fw_objects_at(set, 137)->key, "k0137");
  /* Removing everything ends in the empty set, NULL. */
  for (unsigned n = 0; n < 200; n++) {
    char key[16];
    snprintf(key, sizeof key, "k%04u", n);
    struct fw_objects *next;
    assert_int_equal(fw_objects_without(set, key, &next), FW_OK);
    fw_objects_release(set);
    set = next;
  }
  assert_null(set);
  assert_int_equal(fw_objects_count(set), 0);
  assert_null(fw_objects_find(set, "k0000"));
  assert_int_equal(fw_objects_from(NULL, 0, &set), FW_OK);
  assert_null(set);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(versions_stay_as_they_were),
      cmocka_unit_test(sets_built_at_once_and_emptied),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
