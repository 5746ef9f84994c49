#include "core/flagdef.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool fail(char *error, size_t error_len, const char *fmt, ...) FW_PRINTF(3, 4);
static bool fail(char *error, size_t error_len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
  return false;
}

static bool value_fits_type(enum fw_flag_type type, struct fw_rawjson value) {
  enum fw_rawjson_type t = fw_rawjson_type(value);
  switch (type) {
  case FW_FLAG_BOOLEAN:
    return t == FW_RAWJSON_TRUE || t == FW_RAWJSON_FALSE;
  case FW_FLAG_STRING:
    return t == FW_RAWJSON_STRING;
  case FW_FLAG_NUMBER:
    return t == FW_RAWJSON_NUMBER;
  case FW_FLAG_JSON:
    return true;
  }
  return false;
}

/* Reads member `name` of `object` as a valid key into `out`. */
static bool member_key(struct fw_rawjson object, const char *name, char *out, size_t out_len) {
  struct fw_rawjson raw;
  return fw_rawjson_member(object, name, &raw) == FW_OK &&
         fw_rawjson_type(raw) == FW_RAWJSON_STRING &&
         fw_rawjson_string(raw, out, out_len) == FW_OK && fw_model_key_valid(out, strlen(out));
}

bool fw_flagdef_variant_key(struct fw_rawjson variants, size_t index, char *out, size_t out_len) {
  struct fw_rawjson variant;
  return fw_rawjson_element(variants, index, &variant) == FW_OK &&
         member_key(variant, "key", out, out_len);
}

bool fw_flagdef_has_variant(struct fw_rawjson variants, const char *key) {
  char candidate[FW_KEY_MAX + 1];
  for (size_t i = 0; fw_flagdef_variant_key(variants, i, candidate, sizeof candidate); i++)
    if (!strcmp(candidate, key))
      return true;
  return false;
}

/* Whether `value` is a string equal to `key`. */
static bool string_is(struct fw_rawjson value, const char *key) {
  char text[FW_KEY_MAX + 1];
  return fw_rawjson_type(value) == FW_RAWJSON_STRING &&
         fw_rawjson_string(value, text, sizeof text) == FW_OK && !strcmp(text, key);
}

bool fw_flagdef_rules_use_segment(struct fw_rawjson rules, const char *key) {
  enum fw_rawjson_type type = fw_rawjson_type(rules);
  if (type == FW_RAWJSON_ARRAY) {
    struct fw_rawjson element;
    for (size_t i = 0; fw_rawjson_element(rules, i, &element) == FW_OK; i++)
      if (fw_flagdef_rules_use_segment(element, key))
        return true;
    return false;
  }
  if (type != FW_RAWJSON_OBJECT)
    return false;
  size_t cursor = 0;
  struct fw_rawjson name, value;
  while (fw_rawjson_next_member(rules, &cursor, &name, &value)) {
    char field[16];
    bool named = fw_rawjson_string(name, field, sizeof field) == FW_OK;
    if (named && !strcmp(field, "segment") && string_is(value, key))
      return true;
    if (named && !strcmp(field, "segments") && fw_rawjson_type(value) == FW_RAWJSON_ARRAY) {
      struct fw_rawjson element;
      for (size_t i = 0; fw_rawjson_element(value, i, &element) == FW_OK; i++)
        if (string_is(element, key))
          return true;
    }
    /* Nesting is bounded by the validator's depth cap. */
    if (fw_flagdef_rules_use_segment(value, key))
      return true;
  }
  return false;
}

bool fw_flagdef_check_variants(enum fw_flag_type type, struct fw_rawjson variants, char *error,
                               size_t error_len) {
  if (fw_rawjson_type(variants) != FW_RAWJSON_ARRAY)
    return fail(error, error_len, "'variants' must be an array");
  size_t count = 0;
  struct fw_rawjson variant;
  while (fw_rawjson_element(variants, count, &variant) == FW_OK) {
    if (count == FW_VARIANTS_MAX)
      return fail(error, error_len, "a flag has at most %d variants", FW_VARIANTS_MAX);
    if (fw_rawjson_type(variant) != FW_RAWJSON_OBJECT)
      return fail(error, error_len, "variant %zu must be an object", count);
    size_t cursor = 0;
    struct fw_rawjson name, value;
    while (fw_rawjson_next_member(variant, &cursor, &name, &value)) {
      char field[16];
      if (fw_rawjson_string(name, field, sizeof field) != FW_OK ||
          (strcmp(field, "key") && strcmp(field, "value")))
        return fail(error, error_len, "variant %zu: unknown field (only 'key' and 'value')", count);
    }
    char key[FW_KEY_MAX + 1];
    if (!member_key(variant, "key", key, sizeof key))
      return fail(error, error_len,
                  "variant %zu: 'key' must be 1 to %d of [A-Za-z0-9._-], starting with a letter "
                  "or digit",
                  count, FW_KEY_MAX);
    if (fw_rawjson_member(variant, "value", &value) != FW_OK)
      return fail(error, error_len, "variant '%s' has no 'value'", key);
    if (!value_fits_type(type, value))
      return fail(error, error_len, "variant '%s': the value must be a %s", key,
                  type == FW_FLAG_BOOLEAN ? "boolean" : fw_flag_type_name(type));
    if (value.len > FW_VALUE_MAX)
      return fail(error, error_len, "variant '%s': the value is larger than %d bytes", key,
                  FW_VALUE_MAX);
    char earlier[FW_KEY_MAX + 1];
    for (size_t i = 0; i < count; i++)
      if (fw_flagdef_variant_key(variants, i, earlier, sizeof earlier) && !strcmp(earlier, key))
        return fail(error, error_len, "variant key '%s' appears twice", key);
    count++;
  }
  if (count == 0)
    return fail(error, error_len, "a flag needs at least one variant");
  return true;
}

bool fw_flagdef_check_tags(struct fw_rawjson tags, char *error, size_t error_len) {
  if (fw_rawjson_type(tags) != FW_RAWJSON_ARRAY)
    return fail(error, error_len, "'tags' must be an array of strings");
  struct fw_rawjson tag;
  size_t count = 0;
  for (; fw_rawjson_element(tags, count, &tag) == FW_OK; count++) {
    char text[FW_TAG_MAX + 1];
    if (count == FW_TAGS_MAX)
      return fail(error, error_len, "a flag has at most %d tags", FW_TAGS_MAX);
    if (fw_rawjson_type(tag) != FW_RAWJSON_STRING ||
        fw_rawjson_string(tag, text, sizeof text) != FW_OK ||
        !fw_model_key_valid(text, strlen(text)))
      return fail(error, error_len,
                  "tag %zu must be 1 to %d of [A-Za-z0-9._-], starting with a letter or digit",
                  count, FW_TAG_MAX);
    struct fw_rawjson earlier;
    char earlier_text[FW_TAG_MAX + 1];
    for (size_t i = 0; i < count; i++)
      if (fw_rawjson_element(tags, i, &earlier) == FW_OK &&
          fw_rawjson_string(earlier, earlier_text, sizeof earlier_text) == FW_OK &&
          !strcmp(earlier_text, text))
        return fail(error, error_len, "tag '%s' appears twice", text);
  }
  return true;
}

bool fw_flagdef_check_rules(struct fw_rawjson rules, char *error, size_t error_len) {
  if (fw_rawjson_type(rules) != FW_RAWJSON_ARRAY)
    return fail(error, error_len, "'rules' must be an array");
  struct fw_rawjson rule;
  for (size_t i = 0; fw_rawjson_element(rules, i, &rule) == FW_OK; i++)
    if (fw_rawjson_type(rule) != FW_RAWJSON_OBJECT)
      return fail(error, error_len, "rule %zu must be an object", i);
  return true;
}

bool fw_flagdef_rollout_weight(struct fw_rawjson number, long *thousandths) {
  if (fw_rawjson_type(number) != FW_RAWJSON_NUMBER)
    return false;
  long whole = 0, fraction = 0;
  size_t i = 0, digits = 0;
  const char *t = number.text;
  if (t[0] == '-')
    return false;
  for (; i < number.len && t[i] >= '0' && t[i] <= '9'; i++) {
    whole = whole * 10 + (t[i] - '0');
    if (whole > 100)
      return false;
  }
  if (i < number.len && t[i] == '.') {
    for (i++; i < number.len && t[i] >= '0' && t[i] <= '9'; i++) {
      if (++digits > 3)
        return false;
      fraction = fraction * 10 + (t[i] - '0');
    }
  }
  if (i != number.len)
    return false; /* exponents are not weights */
  while (digits++ < 3)
    fraction *= 10;
  *thousandths = whole * 1000 + fraction;
  return *thousandths <= 100000;
}

bool fw_flagdef_check_rollout(struct fw_rawjson rollout, struct fw_rawjson variants, char *error,
                              size_t error_len) {
  enum fw_rawjson_type type = fw_rawjson_type(rollout);
  if (type == FW_RAWJSON_NULL)
    return true;
  if (type != FW_RAWJSON_ARRAY)
    return fail(error, error_len, "'rollout' must be null or an array of variant weights");
  long total = 0;
  struct fw_rawjson share;
  size_t i = 0;
  for (; fw_rawjson_element(rollout, i, &share) == FW_OK; i++) {
    char variant[FW_KEY_MAX + 1];
    struct fw_rawjson weight;
    long thousandths;
    if (i == FW_VARIANTS_MAX)
      return fail(error, error_len, "a rollout has at most %d entries", FW_VARIANTS_MAX);
    if (fw_rawjson_type(share) != FW_RAWJSON_OBJECT ||
        !member_key(share, "variant", variant, sizeof variant) ||
        fw_rawjson_member(share, "weight", &weight) != FW_OK)
      return fail(error, error_len, "rollout entry %zu must be {\"variant\":..,\"weight\":..}", i);
    size_t cursor = 0;
    struct fw_rawjson name, value;
    while (fw_rawjson_next_member(share, &cursor, &name, &value)) {
      char field[16];
      if (fw_rawjson_string(name, field, sizeof field) != FW_OK ||
          (strcmp(field, "variant") && strcmp(field, "weight")))
        return fail(error, error_len, "rollout entry %zu: only 'variant' and 'weight' belong there",
                    i);
    }
    if (!fw_flagdef_has_variant(variants, variant))
      return fail(error, error_len, "rollout entry %zu names no variant of the flag ('%s')", i,
                  variant);
    if (!fw_flagdef_rollout_weight(weight, &thousandths))
      return fail(error, error_len,
                  "rollout entry %zu: 'weight' must be from 0 to 100 with at most 3 decimals", i);
    total += thousandths;
  }
  if (i == 0)
    return fail(error, error_len, "'rollout' needs at least one variant (or null for none)");
  if (total != 100000)
    return fail(error, error_len, "rollout weights add up to %ld.%03ld, not 100", total / 1000,
                total % 1000);
  return true;
}
