/* libFuzzer target for core/eval: rule compilation, context parsing and evaluation.
 *
 * Input: one options byte, then the flag's rules text, a 0x00 byte, the context text and,
 * optionally, another 0x00 byte and the rules of segment "seg". Options: bit 0 enables
 * the flag, bit 1 gives it a flag-level rollout. The rules sit in a string flag with
 * variants on, off, a, b and c; each part is copied to a heap block of its exact size,
 * so that AddressSanitizer catches a read past it.
 *
 * Besides the sanitizers, the target checks what eval.h promises and calls abort() when
 * a promise is broken:
 * - compiling gives FW_OK or FW_EINVAL with a message, and fw_eval_check_rules agrees
 *   with it, message included (for the flag's rules and for the segment's);
 * - a context is refused with PARSE_ERROR exactly when it is within the byte cap and not
 *   a JSON object, else INVALID_CONTEXT; a parsed context's targeting key is its last
 *   "targetingKey" member;
 * - a result is an error (no variant, TARGETING_KEY_MISSING) or one of the flag's
 *   variants with its value's exact text from the definition; a disabled flag serves
 *   "off" (DISABLED); STATIC only without rules and rollout; DEFAULT serves "on";
 * - evaluation is deterministic: again, and with a second compiled copy of the flag;
 * - the flag-level rollout (without rules) serves the variant fw_eval_bucket gives the
 *   targeting key, and TARGETING_KEY_MISSING without one. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(condition) ((condition) ? (void)0 : invariant_failed(#condition, __LINE__))

static _Noreturn void invariant_failed(const char *condition, int line) {
  fprintf(stderr, "fuzz_eval.c:%d: invariant violated: %s\n", line, condition);
  abort();
}

#define OPTION_ENABLED 0x01
#define OPTION_ROLLOUT 0x02

static const char definition_text[] =
    "{\"key\":\"fuzz-flag\",\"type\":\"string\",\"variants\":["
    "{\"key\":\"on\",\"value\":\"ON\"},{\"key\":\"off\",\"value\":\"OFF\"},"
    "{\"key\":\"a\",\"value\":\"A\"},{\"key\":\"b\",\"value\":\"B\"},"
    "{\"key\":\"c\",\"value\":\"C\"}],\"client_visible\":true,\"version\":1}";

static const char rollout_text[] = "[{\"variant\":\"a\",\"weight\":33.333},"
                                   "{\"variant\":\"b\",\"weight\":33.333},"
                                   "{\"variant\":\"c\",\"weight\":33.334}]";

/* A heap copy of exactly `len` bytes (one byte for none, never read). */
static char *exact_copy(const uint8_t *bytes, size_t len) {
  char *copy = malloc(len ? len : 1);
  CHECK(copy != NULL);
  if (len)
    memcpy(copy, bytes, len);
  return copy;
}

static struct fw_rawjson json(const char *text, size_t len) {
  struct fw_rawjson value;
  CHECK(fw_rawjson_validate(text, len, &value, NULL, NULL) == FW_OK);
  return value;
}

/* The state document around validated `rules`, in a heap block of its exact size. */
static char *state_text(bool enabled, struct fw_rawjson rules, bool rollout, size_t *len) {
  char head[96], tail[256];
  int head_len = snprintf(head, sizeof head,
                          "{\"enabled\":%s,\"on_variant\":\"on\",\"off_variant\":\"off\","
                          "\"rules\":",
                          enabled ? "true" : "false");
  int tail_len = snprintf(tail, sizeof tail, ",\"rollout\":%s,\"revision\":1}",
                          rollout ? rollout_text : "null");
  CHECK(head_len > 0 && (size_t)head_len < sizeof head && tail_len > 0 &&
        (size_t)tail_len < sizeof tail);
  *len = (size_t)head_len + rules.len + (size_t)tail_len;
  char *text = malloc(*len);
  CHECK(text != NULL);
  memcpy(text, head, (size_t)head_len);
  memcpy(text + head_len, rules.text, rules.len);
  memcpy(text + (size_t)head_len + rules.len, tail, (size_t)tail_len);
  return text;
}

static bool same_result(const struct fw_eval_result *x, const struct fw_eval_result *y) {
  if (x->reason != y->reason || x->error != y->error ||
      (x->variant == NULL) != (y->variant == NULL))
    return false;
  return !x->variant || (strcmp(x->variant, y->variant) == 0 && x->value.len == y->value.len &&
                         memcmp(x->value.text, y->value.text, x->value.len) == 0);
}

static void check_result(const struct fw_eval_result *result, bool enabled, bool is_static) {
  if (result->reason == FW_REASON_ERROR) {
    CHECK(result->error == FW_EVAL_TARGETING_KEY_MISSING);
    CHECK(result->variant == NULL);
    CHECK(enabled);
    return;
  }
  CHECK(result->error == FW_EVAL_OK);
  CHECK(result->variant != NULL);
  /* The value is the variant's exact text in the definition. */
  struct fw_rawjson variants, variant, key, value;
  struct fw_rawjson definition = json(definition_text, sizeof definition_text - 1);
  CHECK(fw_rawjson_member(definition, "variants", &variants) == FW_OK);
  bool found = false;
  for (size_t i = 0; fw_rawjson_element(variants, i, &variant) == FW_OK; i++) {
    char name[16];
    CHECK(fw_rawjson_member(variant, "key", &key) == FW_OK);
    CHECK(fw_rawjson_string(key, name, sizeof name) == FW_OK);
    if (strcmp(name, result->variant) != 0)
      continue;
    CHECK(fw_rawjson_member(variant, "value", &value) == FW_OK);
    CHECK(result->value.len == value.len && memcmp(result->value.text, value.text, value.len) == 0);
    found = true;
  }
  CHECK(found);
  CHECK((result->reason == FW_REASON_DISABLED) == !enabled);
  if (!enabled)
    CHECK(strcmp(result->variant, "off") == 0);
  CHECK((result->reason == FW_REASON_STATIC) == (enabled && is_static));
  if (result->reason == FW_REASON_STATIC || result->reason == FW_REASON_DEFAULT)
    CHECK(strcmp(result->variant, "on") == 0);
}

/* Whether compiled `rules` are none. */
static bool is_static_rules(struct fw_rawjson rules) {
  struct fw_rawjson first;
  return fw_rawjson_element(rules, 0, &first) == FW_ENOTFOUND;
}

/* The flag-level rollout alone decided `result` for targeting key `key`: a third each. */
static void check_bucket(const struct fw_eval_result *result, const char *key) {
  if (!key || !key[0]) {
    CHECK(result->reason == FW_REASON_ERROR && result->error == FW_EVAL_TARGETING_KEY_MISSING);
    return;
  }
  uint32_t bucket = fw_eval_bucket("fuzz-flag", "", key, strlen(key));
  const char *expected = bucket < 33333 ? "a" : bucket < 66666 ? "b" : "c";
  CHECK(result->reason == FW_REASON_SPLIT && strcmp(result->variant, expected) == 0);
}

/* Parses `text`, checking the refusal's code against what the text is. */
static struct fw_eval_context *parse_context(const char *text, size_t len) {
  struct fw_eval_context *context = NULL;
  enum fw_eval_error code = FW_EVAL_OK;
  char error[160] = "";
  int rc = fw_eval_context_parse(text, len, &context, &code, error, sizeof error);
  struct fw_rawjson object;
  bool is_object = len == 0 || (fw_rawjson_validate(text, len, &object, NULL, NULL) == FW_OK &&
                                fw_rawjson_type(object) == FW_RAWJSON_OBJECT);
  if (rc != FW_OK) {
    CHECK(rc == FW_EINVAL && context == NULL && error[0] != '\0');
    if (len > FW_EVAL_CONTEXT_MAX_BYTES)
      CHECK(code == FW_EVAL_INVALID_CONTEXT);
    else
      CHECK(code == (is_object ? FW_EVAL_INVALID_CONTEXT : FW_EVAL_PARSE_ERROR));
    return NULL;
  }
  CHECK(context != NULL && len <= FW_EVAL_CONTEXT_MAX_BYTES && is_object);
  const char *key = fw_eval_context_targeting_key(context);
  struct fw_rawjson member;
  if (len > 0 && fw_rawjson_member(object, "targetingKey", &member) == FW_OK) {
    CHECK(key != NULL && fw_rawjson_type(member) == FW_RAWJSON_STRING);
    char *expected = malloc(member.len - 1);
    CHECK(expected != NULL);
    CHECK(fw_rawjson_string(member, expected, member.len - 1) == FW_OK);
    CHECK(strcmp(key, expected) == 0);
    free(expected);
  } else {
    CHECK(key == NULL);
  }
  return context;
}

/* Compiles segment "seg" from `text` when it is JSON; NULL otherwise or when refused. */
static struct fw_eval_segment *compile_segment(const char *text, size_t len) {
  struct fw_rawjson rules;
  if (fw_rawjson_validate(text, len, &rules, NULL, NULL) != FW_OK)
    return NULL;
  struct fw_eval_segment *segment = NULL;
  char error[160] = "", check_error[160] = "";
  int rc = fw_eval_compile_segment("seg", rules, &segment, error, sizeof error);
  CHECK(rc == FW_OK || rc == FW_EINVAL);
  CHECK((rc == FW_OK) == (segment != NULL));
  CHECK(rc == FW_OK || error[0] != '\0');
  bool checked = fw_eval_check_rules(rules, (struct fw_rawjson){"[]", 2}, true, check_error,
                                     sizeof check_error);
  CHECK(checked == (rc == FW_OK));
  CHECK(checked || strcmp(error, check_error) == 0);
  CHECK(!segment || strcmp(fw_eval_segment_key(segment), "seg") == 0);
  return segment;
}

/* Compiles the flag around `rules`; NULL when refused. */
static struct fw_eval_flag *compile_flag(struct fw_rawjson rules, bool enabled, bool rollout) {
  size_t state_len;
  char *state = state_text(enabled, rules, rollout, &state_len);
  struct fw_eval_flag *flag = NULL;
  char error[160] = "";
  int rc = fw_eval_compile_flag(json(definition_text, sizeof definition_text - 1),
                                json(state, state_len), &flag, error, sizeof error);
  free(state);
  CHECK(rc == FW_OK || rc == FW_EINVAL);
  CHECK((rc == FW_OK) == (flag != NULL));
  CHECK(rc == FW_OK || error[0] != '\0');
  return flag;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  uint8_t options = data[0];
  const uint8_t *rest = data + 1;
  size_t rest_len = size - 1;
  const uint8_t *split = memchr(rest, 0, rest_len);
  size_t rules_len = split ? (size_t)(split - rest) : rest_len;
  const uint8_t *context_bytes = split ? split + 1 : rest + rest_len;
  size_t context_len = (size_t)(rest + rest_len - context_bytes);
  const uint8_t *segment_split = memchr(context_bytes, 0, context_len);
  const uint8_t *segment_bytes = NULL;
  size_t segment_len = 0;
  if (segment_split) {
    segment_bytes = segment_split + 1;
    segment_len = (size_t)(context_bytes + context_len - segment_bytes);
    context_len = (size_t)(segment_split - context_bytes);
  }

  char *context_text = exact_copy(context_bytes, context_len);
  struct fw_eval_context *context = parse_context(context_text, context_len);

  char *rules_text = exact_copy(rest, rules_len);
  struct fw_rawjson rules;
  bool enabled = options & OPTION_ENABLED, rollout = options & OPTION_ROLLOUT;
  struct fw_eval_flag *flag = NULL, *copy = NULL;
  if (fw_rawjson_validate(rules_text, rules_len, &rules, NULL, NULL) == FW_OK) {
    flag = compile_flag(rules, enabled, rollout);
    copy = flag ? compile_flag(rules, enabled, rollout) : NULL;
    struct fw_rawjson variants;
    char error[160] = "";
    CHECK(fw_rawjson_member(json(definition_text, sizeof definition_text - 1), "variants",
                            &variants) == FW_OK);
    CHECK(fw_eval_check_rules(rules, variants, false, error, sizeof error) == (flag != NULL));
  }

  char *segment_text = segment_bytes ? exact_copy(segment_bytes, segment_len) : NULL;
  struct fw_eval_segment *segment =
      segment_text ? compile_segment(segment_text, segment_len) : NULL;

  if (flag && context) {
    CHECK(strcmp(fw_eval_flag_key(flag), "fuzz-flag") == 0);
    CHECK(fw_eval_flag_type(flag) == FW_FLAG_STRING);
    bool is_static = !rollout && is_static_rules(rules);
    const struct fw_eval_segment *segments[] = {segment};
    struct fw_eval_result first, again, other;
    fw_eval(flag, segments, segment ? 1 : 0, context, &first);
    check_result(&first, enabled, is_static);
    fw_eval(flag, segments, segment ? 1 : 0, context, &again);
    fw_eval(copy, segments, segment ? 1 : 0, context, &other);
    CHECK(same_result(&first, &again) && same_result(&first, &other));
    fw_eval(flag, NULL, 0, context, &again);
    check_result(&again, enabled, is_static);
    if (enabled && rollout && is_static_rules(rules))
      check_bucket(&first, fw_eval_context_targeting_key(context));
  }

  fw_eval_segment_free(segment);
  fw_eval_flag_free(copy);
  fw_eval_flag_free(flag);
  fw_eval_context_free(context);
  free(segment_text);
  free(rules_text);
  free(context_text);
  return 0;
}
