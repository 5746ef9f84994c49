/* Validation of keys and of the JSON parts of a flag: every rule of core/model.h and
 * core/flagdef.h, with the message naming the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/flagdef.h"
#include "core/keys.h"
#include "core/model.h"

static struct fw_rawjson json(const char *text) {
  struct fw_rawjson value;
  assert_int_equal(fw_rawjson_validate(text, strlen(text), &value, NULL, NULL), FW_OK);
  return value;
}

static void keys_follow_the_rules(void **state) {
  (void)state;
  const char *good[] = {"a", "new-checkout", "Checkout_v2.1", "0day", "x-"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_true(fw_model_key_valid(good[i], strlen(good[i])));
  const char *bad[] = {"", "-lead", ".hidden", "_x", "has space", "slash/", "ü", "a?b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(fw_model_key_valid(bad[i], strlen(bad[i])));
  char longest[FW_KEY_MAX + 2];
  memset(longest, 'k', sizeof longest);
  assert_true(fw_model_key_valid(longest, FW_KEY_MAX));
  assert_false(fw_model_key_valid(longest, FW_KEY_MAX + 1));
}

static void flag_types_round_trip(void **state) {
  (void)state;
  enum fw_flag_type type;
  const char *names[] = {"boolean", "string", "number", "json"};
  for (size_t i = 0; i < 4; i++) {
    assert_true(fw_flag_type_from(names[i], &type));
    assert_string_equal(fw_flag_type_name(type), names[i]);
  }
  assert_false(fw_flag_type_from("bool", &type));
}

static void variants_match_their_type(void **state) {
  (void)state;
  char error[256];
  assert_true(fw_flagdef_check_variants(
      FW_FLAG_NUMBER, json("[{\"key\":\"a\",\"value\":19.99},{\"key\":\"b\",\"value\":-1e3}]"),
      error, sizeof error));
  assert_true(fw_flagdef_check_variants(
      FW_FLAG_JSON, json("[{\"key\":\"a\",\"value\":{\"x\":[1,null]}}]"), error, sizeof error));
  struct {
    enum fw_flag_type type;
    const char *variants;
    const char *says;
  } bad[] = {
      {FW_FLAG_BOOLEAN, "[{\"key\":\"on\",\"value\":1}]", "must be a boolean"},
      {FW_FLAG_STRING, "[{\"key\":\"a\",\"value\":1}]", "must be a string"},
      {FW_FLAG_NUMBER, "[{\"key\":\"a\",\"value\":\"1\"}]", "must be a number"},
      {FW_FLAG_STRING, "[]", "at least one variant"},
      {FW_FLAG_STRING, "{}", "must be an array"},
      {FW_FLAG_STRING, "[1]", "must be an object"},
      {FW_FLAG_STRING, "[{\"value\":\"x\"}]", "'key'"},
      {FW_FLAG_STRING, "[{\"key\":\"a b\",\"value\":\"x\"}]", "'key'"},
      {FW_FLAG_STRING, "[{\"key\":\"a\"}]", "no 'value'"},
      {FW_FLAG_STRING, "[{\"key\":\"a\",\"value\":\"x\",\"weight\":1}]", "unknown field"},
      {FW_FLAG_STRING, "[{\"key\":\"a\",\"value\":\"x\"},{\"key\":\"a\",\"value\":\"y\"}]",
       "appears twice"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    error[0] = '\0';
    assert_false(
        fw_flagdef_check_variants(bad[i].type, json(bad[i].variants), error, sizeof error));
    if (!strstr(error, bad[i].says))
      fail_msg("%s: expected '%s' in '%s'", bad[i].variants, bad[i].says, error);
  }
}

static void variant_keys_are_found(void **state) {
  (void)state;
  struct fw_rawjson variants =
      json("[{\"key\":\"on\",\"value\":true},{\"key\":\"off\",\"value\":false}]");
  assert_true(fw_flagdef_has_variant(variants, "off"));
  assert_false(fw_flagdef_has_variant(variants, "of"));
  char key[FW_KEY_MAX + 1];
  assert_true(fw_flagdef_variant_key(variants, 1, key, sizeof key));
  assert_string_equal(key, "off");
  assert_false(fw_flagdef_variant_key(variants, 2, key, sizeof key));
}

static void tags_and_rules_have_their_shapes(void **state) {
  (void)state;
  char error[256];
  assert_true(fw_flagdef_check_tags(json("[\"beta\",\"team-a\"]"), error, sizeof error));
  assert_false(fw_flagdef_check_tags(json("[\"two words\"]"), error, sizeof error));
  assert_false(fw_flagdef_check_tags(json("[1]"), error, sizeof error));
  assert_false(fw_flagdef_check_tags(json("\"beta\""), error, sizeof error));
  assert_true(fw_flagdef_check_rules(json("[{},{\"a\":1}]"), error, sizeof error));
  assert_false(fw_flagdef_check_rules(json("[1]"), error, sizeof error));
  assert_false(fw_flagdef_check_rules(json("{}"), error, sizeof error));
}

static void rules_that_use_a_segment_are_found_at_any_depth(void **state) {
  (void)state;
  assert_true(fw_flagdef_rules_use_segment(json("[{\"segment\":\"beta\"}]"), "beta"));
  assert_true(fw_flagdef_rules_use_segment(
      json("[{\"all\":[{\"not\":{\"segments\":[\"x\",\"beta\"]}}]}]"), "beta"));
  assert_false(fw_flagdef_rules_use_segment(json("[{\"segment\":\"betamax\"}]"), "beta"));
  assert_false(fw_flagdef_rules_use_segment(json("[{\"value\":\"beta\"}]"), "beta"));
  assert_false(fw_flagdef_rules_use_segment(json("[]"), "beta"));
}

static void rollout_weights_add_up_to_exactly_100(void **state) {
  (void)state;
  struct fw_rawjson variants = json("[{\"key\":\"a\",\"value\":1},{\"key\":\"b\",\"value\":2}]");
  char error[256];
  const char *good[] = {
      "null",
      "[{\"variant\":\"a\",\"weight\":100}]",
      "[{\"variant\":\"a\",\"weight\":33.333},{\"variant\":\"b\",\"weight\":66.667}]",
      "[{\"variant\":\"a\",\"weight\":0},{\"variant\":\"b\",\"weight\":100.000}]",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!fw_flagdef_check_rollout(json(good[i]), variants, error, sizeof error))
      fail_msg("%s refused: %s", good[i], error);
  struct {
    const char *rollout;
    const char *says;
  } bad[] = {
      {"[{\"variant\":\"a\",\"weight\":50}]", "add up to 50.000"},
      {"[{\"variant\":\"a\",\"weight\":50.0001},{\"variant\":\"b\",\"weight\":49.9999}]",
       "at most 3 decimals"},
      {"[{\"variant\":\"a\",\"weight\":-10},{\"variant\":\"b\",\"weight\":110}]", "'weight'"},
      {"[{\"variant\":\"a\",\"weight\":1e2}]", "'weight'"},
      {"[{\"variant\":\"c\",\"weight\":100}]", "names no variant"},
      {"[{\"variant\":\"a\"}]", "must be"},
      {"[]", "at least one"},
      {"{}", "null or an array"},
      {"[{\"variant\":\"a\",\"weight\":100,\"note\":\"x\"}]", "only 'variant' and 'weight'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    error[0] = '\0';
    assert_false(fw_flagdef_check_rollout(json(bad[i].rollout), variants, error, sizeof error));
    if (!strstr(error, bad[i].says))
      fail_msg("%s: expected '%s' in '%s'", bad[i].rollout, bad[i].says, error);
  }
}

static void keys_carry_their_kind_and_hash(void **state) {
  (void)state;
  char text[FW_KEY_LEN + 1], other[FW_KEY_LEN + 1];
  uint8_t hash[FW_SHA256_LEN], other_hash[FW_SHA256_LEN], check[FW_SHA256_LEN];
  assert_int_equal(fw_key_generate(FW_CREDENTIAL_CLIENT, text, hash), FW_OK);
  assert_int_equal(strlen(text), FW_KEY_LEN);
  assert_memory_equal(text, "fw_cli_", 7);
  fw_sha256(text, strlen(text), check);
  assert_memory_equal(hash, check, sizeof hash);
  enum fw_credential_kind kind;
  assert_true(fw_key_kind(text, strlen(text), &kind));
  assert_int_equal(kind, FW_CREDENTIAL_CLIENT);
  assert_false(fw_key_kind("fw_xxx_abc", 10, &kind));
  /* 32 random bytes: two keys never repeat. */
  assert_int_equal(fw_key_generate(FW_CREDENTIAL_CLIENT, other, other_hash), FW_OK);
  assert_string_not_equal(text, other);
  for (size_t i = FW_KEY_PREFIX_LEN; i < FW_KEY_LEN; i++)
    assert_non_null(
        strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text[i]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keys_follow_the_rules),
      cmocka_unit_test(flag_types_round_trip),
      cmocka_unit_test(variants_match_their_type),
      cmocka_unit_test(variant_keys_are_found),
      cmocka_unit_test(tags_and_rules_have_their_shapes),
      cmocka_unit_test(rules_that_use_a_segment_are_found_at_any_depth),
      cmocka_unit_test(rollout_weights_add_up_to_exactly_100),
      cmocka_unit_test(keys_carry_their_kind_and_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
