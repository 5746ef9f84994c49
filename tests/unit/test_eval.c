/* The evaluation engine against its contract (core/eval.h): every operator, reason and
 * error, rule order, segments, rollouts and their bucketing, compile and context errors,
 * and the two modules it rests on, semantic versions and MurmurHash3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "core/murmur3.h"
#include "core/semver.h"

/* ---- helpers ---- */

static struct fw_rawjson json(const char *text) {
  struct fw_rawjson value;
  if (fw_rawjson_validate(text, strlen(text), &value, NULL, NULL) != FW_OK)
    fail_msg("not JSON: %s", text);
  return value;
}

/* A string flag with five variants; "on" and "off" are served by default. */
static const char *const definition =
    "{\"key\":\"new-checkout\",\"name\":\"New checkout\",\"description\":\"\","
    "\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"ON\"},"
    "{\"key\":\"off\",\"value\":\"OFF\"},{\"key\":\"a\",\"value\":\"A\"},"
    "{\"key\":\"b\",\"value\":\"B\"},{\"key\":\"c\",\"value\":\"C\"}],"
    "\"tags\":[],\"client_visible\":true,\"version\":1}";

/* The state document the store keeps, around `rules` and `rollout` (JSON texts). */
static char *state_text(bool enabled, const char *rules, const char *rollout) {
  size_t len = strlen(rules) + strlen(rollout) + 256;
  char *text = malloc(len);
  assert_non_null(text);
  int n = snprintf(text, len,
                   "{\"environment\":\"prod\",\"enabled\":%s,\"on_variant\":\"on\","
                   "\"off_variant\":\"off\",\"rules\":%s,\"rollout\":%s,\"state_version\":1,"
                   "\"revision\":2}",
                   enabled ? "true" : "false", rules, rollout);
  assert_true(n > 0 && (size_t)n < len);
  return text;
}

/* Compiles or fails the test; `error` (may be NULL) receives the message of a refusal. */
static int try_compile(const char *def, bool enabled, const char *rules, const char *rollout,
                       struct fw_eval_flag **out, char *error, size_t error_len) {
  char *state = state_text(enabled, rules, rollout);
  char scratch[256];
  int rc = fw_eval_compile_flag(json(def), json(state), out, error ? error : scratch,
                                error ? error_len : sizeof scratch);
  free(state);
  return rc;
}

static struct fw_eval_flag *compile(bool enabled, const char *rules, const char *rollout) {
  struct fw_eval_flag *flag = NULL;
  char error[256] = "";
  if (try_compile(definition, enabled, rules, rollout, &flag, error, sizeof error) != FW_OK)
    fail_msg("does not compile (%s): rules %s rollout %s", error, rules, rollout);
  return flag;
}

static struct fw_eval_context *context_of(const char *text) {
  struct fw_eval_context *context = NULL;
  enum fw_eval_error code;
  char error[256] = "";
  if (fw_eval_context_parse(text, strlen(text), &context, &code, error, sizeof error) != FW_OK)
    fail_msg("context refused (%s): %s", error, text);
  return context;
}

static struct fw_eval_result evaluate_with(const struct fw_eval_flag *flag,
                                           const struct fw_eval_segment *const *segments,
                                           size_t count, const char *context_text) {
  struct fw_eval_context *context = context_of(context_text);
  struct fw_eval_result result;
  fw_eval(flag, segments, count, context, &result);
  fw_eval_context_free(context);
  return result;
}

static struct fw_eval_result evaluate(const struct fw_eval_flag *flag, const char *context_text) {
  return evaluate_with(flag, NULL, 0, context_text);
}

static void assert_served(struct fw_eval_result result, const char *variant,
                          enum fw_eval_reason reason) {
  assert_int_equal(result.error, FW_EVAL_OK);
  assert_non_null(result.variant);
  assert_string_equal(result.variant, variant);
  assert_string_equal(fw_eval_reason_name(result.reason), fw_eval_reason_name(reason));
}

static void assert_error(struct fw_eval_result result, enum fw_eval_error error) {
  assert_int_equal(result.reason, FW_REASON_ERROR);
  assert_string_equal(fw_eval_error_name(result.error), fw_eval_error_name(error));
  assert_null(result.variant);
}

/* The context most operator tests run against. */
static const char *const person =
    "{\"targetingKey\":\"user-1\",\"email\":\"ann@example.com\",\"plan\":\"pro\",\"age\":42,"
    "\"beta\":true,\"groups\":[\"staff\",\"qa\"],\"none\":[],\"version\":\"2.3.0-rc.1\","
    "\"signup\":\"2024-03-01T10:00:00Z\",\"signup_ms\":1709287200000,\"score\":7.5,"
    "\"empty\":\"\",\"name\":\"zo\xc3\xab\"}";

/* Whether `condition` (a JSON object) holds for `context`: a flag whose one rule serves
 * "a" under it serves "a", or else its on variant by DEFAULT. */
static bool holds_for(const char *condition, const char *context) {
  size_t len = strlen(condition) + 64;
  char *rules = malloc(len);
  assert_non_null(rules);
  int n = snprintf(rules, len, "[{\"conditions\":[%s],\"variant\":\"a\"}]", condition);
  assert_true(n > 0 && (size_t)n < len);
  struct fw_eval_flag *flag = compile(true, rules, "null");
  free(rules);
  struct fw_eval_result result = evaluate(flag, context);
  bool holds = result.reason == FW_REASON_TARGETING_MATCH;
  if (holds)
    assert_served(result, "a", FW_REASON_TARGETING_MATCH);
  else
    assert_served(result, "on", FW_REASON_DEFAULT);
  fw_eval_flag_free(flag);
  return holds;
}

/* ---- names ---- */

static void reasons_and_errors_have_openfeature_names(void **state) {
  (void)state;
  assert_string_equal(fw_eval_reason_name(FW_REASON_STATIC), "STATIC");
  assert_string_equal(fw_eval_reason_name(FW_REASON_TARGETING_MATCH), "TARGETING_MATCH");
  assert_string_equal(fw_eval_reason_name(FW_REASON_SPLIT), "SPLIT");
  assert_string_equal(fw_eval_reason_name(FW_REASON_DISABLED), "DISABLED");
  assert_string_equal(fw_eval_reason_name(FW_REASON_DEFAULT), "DEFAULT");
  assert_string_equal(fw_eval_reason_name(FW_REASON_ERROR), "ERROR");
  assert_string_equal(fw_eval_error_name(FW_EVAL_FLAG_NOT_FOUND), "FLAG_NOT_FOUND");
  assert_string_equal(fw_eval_error_name(FW_EVAL_PARSE_ERROR), "PARSE_ERROR");
  assert_string_equal(fw_eval_error_name(FW_EVAL_TARGETING_KEY_MISSING), "TARGETING_KEY_MISSING");
  assert_string_equal(fw_eval_error_name(FW_EVAL_INVALID_CONTEXT), "INVALID_CONTEXT");
  assert_string_equal(fw_eval_error_name(FW_EVAL_TYPE_MISMATCH), "TYPE_MISMATCH");
  assert_string_equal(fw_eval_error_name(FW_EVAL_GENERAL), "GENERAL");
}

/* ---- MurmurHash3 ---- */

static void murmur3_matches_the_reference(void **state) {
  (void)state;
  /* From the reference implementation (smhasher's MurmurHash3_x86_32). */
  const struct {
    const char *text;
    uint32_t seed;
    uint32_t hash;
  } vectors[] = {
      {"", 0, 0},
      {"", 1, 0x514e28b7},
      {"hello", 0, 0x248bfa47},
      {"The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723},
      {"The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd},
      {"a", 0, 0x3c2569b2},
      {"ab", 0, 0x9bbfd75f},
      {"abc", 0, 0xb3dd93fa},
      {"abcd", 0, 0x43ed676a},
      /* "ünïcödé" */
      {"\xc3\xbcn\xc3\xaf"
       "c\xc3\xb6"
       "d\xc3\xa9",
       0, 0x7b5af2c4},
  };
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    uint32_t hash = fw_murmur3_32(vectors[i].text, strlen(vectors[i].text), vectors[i].seed);
    if (hash != vectors[i].hash)
      fail_msg("\"%s\" seed %#x: %#x, not %#x", vectors[i].text, vectors[i].seed, hash,
               vectors[i].hash);
  }
}

static void murmur3_in_pieces_equals_murmur3_of_the_whole(void **state) {
  (void)state;
  const char text[] = "new-checkout.spring-sale.user-12345-with-a-longer-tail";
  size_t len = strlen(text);
  uint32_t whole = fw_murmur3_32(text, len, 0);
  for (size_t first = 0; first <= len; first++) {
    for (size_t second = first; second <= len; second++) {
      struct fw_murmur3 hasher;
      fw_murmur3_init(&hasher, 0);
      fw_murmur3_update(&hasher, text, first);
      fw_murmur3_update(&hasher, text + first, second - first);
      assert_int_equal(fw_murmur3_final(&hasher), fw_murmur3_32(text, second, 0));
      fw_murmur3_update(&hasher, text + second, len - second);
      assert_int_equal(fw_murmur3_final(&hasher), whole);
    }
  }
}

static void buckets_hash_flag_salt_and_value(void **state) {
  (void)state;
  const char *whole = "new-checkout.spring.user-1";
  assert_int_equal(fw_eval_bucket("new-checkout", "spring", "user-1", 6),
                   fw_murmur3_32(whole, strlen(whole), 0) % FW_EVAL_BUCKETS);
  /* "new-checkout..user-1" hashes to 0x5595c95b = 1435879771. */
  assert_int_equal(fw_eval_bucket("new-checkout", "", "user-1", 6), 1435879771u % 100000u);
  /* The length counts, not a NUL. */
  assert_int_equal(fw_eval_bucket("f", "", "ab", 1), fw_eval_bucket("f", "", "a", 1));
}

/* ---- semantic versions ---- */

static int semver_compare_texts(const char *a, const char *b) {
  struct fw_semver x, y;
  if (!fw_semver_parse(a, strlen(a), &x) || !fw_semver_parse(b, strlen(b), &y))
    fail_msg("not versions: %s, %s", a, b);
  return fw_semver_compare(&x, &y);
}

static void semver_precedence_follows_semver_org(void **state) {
  (void)state;
  /* Semver 2.0.0, section 11, in increasing precedence. */
  const char *ordered[] = {"1.0.0-alpha",
                           "1.0.0-alpha.1",
                           "1.0.0-alpha.beta",
                           "1.0.0-beta",
                           "1.0.0-beta.2",
                           "1.0.0-beta.11",
                           "1.0.0-rc.1",
                           "1.0.0",
                           "1.0.1",
                           "1.1.0",
                           "1.10.0",
                           "2.0.0",
                           "10.0.0",
                           "99999999999999999999.0.0"};
  size_t count = sizeof ordered / sizeof ordered[0];
  for (size_t i = 0; i < count; i++) {
    for (size_t j = 0; j < count; j++) {
      int cmp = semver_compare_texts(ordered[i], ordered[j]);
      int expected = i < j ? -1 : i > j ? 1 : 0;
      if ((cmp > 0) - (cmp < 0) != expected)
        fail_msg("%s vs %s: %d", ordered[i], ordered[j], cmp);
    }
  }
  /* Build metadata takes no part; a leading "v" is accepted. */
  assert_int_equal(semver_compare_texts("1.0.0+build.1", "1.0.0+other"), 0);
  assert_int_equal(semver_compare_texts("1.0.0-rc.1+build.1", "1.0.0-rc.1"), 0);
  assert_int_equal(semver_compare_texts("v1.2.3", "1.2.3"), 0);
  assert_true(semver_compare_texts("1.0.0-rc.1+build.9", "1.0.0") < 0);
  /* Numeric identifiers sort below alphanumeric ones; ASCII order between the latter. */
  assert_true(semver_compare_texts("1.0.0-1", "1.0.0-a") < 0);
  assert_true(semver_compare_texts("1.0.0-Z", "1.0.0-a") < 0);
  assert_true(semver_compare_texts("1.0.0-a-b", "1.0.0-a") > 0);
}

static void semver_refuses_what_is_not_a_version(void **state) {
  (void)state;
  const char *bad[] = {"",         "1",         "1.2",       "1.2.3.4",    "01.2.3", "1.02.3",
                       "1.2.03",   "1.2.3-",    "1.2.3-01",  "1.2.3-a..b", "1.2.3+", "1.2.3+a..b",
                       "1.2.3-a+", "V1.2.3",    "vv1.2.3",   " 1.2.3",     "1.2.3 ", "1.2.x",
                       "-1.2.3",   "1.2.3-a_b", "1.2.3+a+b", "1..3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct fw_semver version;
    if (fw_semver_parse(bad[i], strlen(bad[i]), &version))
      fail_msg("accepted \"%s\"", bad[i]);
  }
  const char *good[] = {"0.0.0",     "1.2.3-0",         "1.2.3-0a",       "1.2.3-x.7.z.92",
                        "1.2.3+001", "1.0.0-alpha+001", "1.0.0-x-y-z.--", "v0.1.0"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct fw_semver version;
    if (!fw_semver_parse(good[i], strlen(good[i]), &version))
      fail_msg("refused \"%s\"", good[i]);
  }
}

/* ---- operators ---- */

enum expect { HOLDS, FAILS, NEITHER /* missing or not comparable: false even negated */ };

struct operator_row {
  const char *attribute;
  const char *op;
  const char *value; /* JSON */
  enum expect expect;
};

/* Checks each row's condition on `person`, as written and negated. */
static void check_operator_rows(const struct operator_row *rows, size_t count) {
  for (size_t i = 0; i < count; i++) {
    char plain[512], negated[512];
    snprintf(plain, sizeof plain, "{\"attribute\":\"%s\",\"operator\":\"%s\",\"value\":%s}",
             rows[i].attribute, rows[i].op, rows[i].value);
    snprintf(negated, sizeof negated,
             "{\"attribute\":\"%s\",\"operator\":\"%s\",\"value\":%s,\"negate\":true}",
             rows[i].attribute, rows[i].op, rows[i].value);
    bool plain_holds = holds_for(plain, person);
    bool negated_holds = holds_for(negated, person);
    if (plain_holds != (rows[i].expect == HOLDS) || negated_holds != (rows[i].expect == FAILS))
      fail_msg("%s %s %s: holds %d, negated %d", rows[i].attribute, rows[i].op, rows[i].value,
               plain_holds, negated_holds);
  }
}

#define ROWS(...)                                                                                  \
  do {                                                                                             \
    static const struct operator_row rows[] = {__VA_ARGS__};                                       \
    check_operator_rows(rows, sizeof rows / sizeof rows[0]);                                       \
  } while (0)

static void equality_operators(void **state) {
  (void)state;
  ROWS({"email", "equals", "\"ann@example.com\"", HOLDS}, {"email", "equals", "\"ann\"", FAILS},
       {"targetingKey", "equals", "\"user-1\"", HOLDS}, {"age", "equals", "42", HOLDS},
       {"age", "equals", "42.0", HOLDS}, {"age", "equals", "4.2e1", HOLDS},
       {"age", "equals", "41", FAILS}, {"beta", "equals", "true", HOLDS},
       {"beta", "equals", "false", FAILS}, {"empty", "equals", "\"\"", HOLDS},
       /* Types must agree: a number is not its text, a list not its item. */
       {"age", "equals", "\"42\"", NEITHER}, {"plan", "equals", "1", NEITHER},
       {"beta", "equals", "\"true\"", NEITHER}, {"groups", "equals", "\"staff\"", NEITHER},
       {"missing", "equals", "\"x\"", NEITHER}, {"plan", "not_equals", "\"free\"", HOLDS},
       {"plan", "not_equals", "\"pro\"", FAILS}, {"age", "not_equals", "7", HOLDS},
       {"beta", "not_equals", "true", FAILS}, {"age", "not_equals", "\"x\"", NEITHER},
       {"missing", "not_equals", "\"x\"", NEITHER});
}

static void list_operators(void **state) {
  (void)state;
  ROWS({"plan", "in", "[\"free\",\"pro\"]", HOLDS}, {"plan", "in", "[\"free\"]", FAILS},
       {"plan", "in", "[]", FAILS}, {"plan", "in", "[42,\"pro\"]", HOLDS},
       {"age", "in", "[1,42,7]", HOLDS}, {"age", "in", "[\"42\"]", FAILS},
       {"groups", "in", "[\"qa\",\"x\"]", HOLDS}, {"groups", "in", "[\"x\"]", FAILS},
       {"none", "in", "[\"x\"]", FAILS}, {"beta", "in", "[\"true\"]", NEITHER},
       {"missing", "in", "[\"x\"]", NEITHER}, {"plan", "not_in", "[\"free\"]", HOLDS},
       {"plan", "not_in", "[\"pro\",\"free\"]", FAILS}, {"groups", "not_in", "[\"staff\"]", FAILS},
       {"groups", "not_in", "[\"x\"]", HOLDS}, {"none", "not_in", "[\"x\"]", HOLDS},
       {"beta", "not_in", "[\"x\"]", NEITHER}, {"missing", "not_in", "[\"x\"]", NEITHER});
  /* A long list is searched, whatever its order. */
  char value[8192] = "[";
  for (int i = 999; i >= 0; i--) {
    char item[16];
    snprintf(item, sizeof item, "\"u%d\"%s", i, i ? "," : "]");
    strcat(value, item);
  }
  char condition[8400];
  snprintf(condition, sizeof condition,
           "{\"attribute\":\"targetingKey\",\"operator\":\"in\",\"value\":%s}", value);
  assert_true(holds_for(condition, "{\"targetingKey\":\"u0\"}"));
  assert_true(holds_for(condition, "{\"targetingKey\":\"u500\"}"));
  assert_true(holds_for(condition, "{\"targetingKey\":\"u999\"}"));
  assert_false(holds_for(condition, "{\"targetingKey\":\"u1000\"}"));
}

static void string_operators(void **state) {
  (void)state;
  ROWS({"email", "contains", "\"@example\"", HOLDS}, {"email", "contains", "\"zzz\"", FAILS},
       {"email", "contains", "\"\"", HOLDS}, {"groups", "contains", "\"qa\"", HOLDS},
       {"groups", "contains", "\"q\"", FAILS}, {"age", "contains", "\"4\"", NEITHER},
       {"missing", "contains", "\"x\"", NEITHER}, {"email", "starts_with", "\"ann@\"", HOLDS},
       {"email", "starts_with", "\"bob\"", FAILS}, {"empty", "starts_with", "\"a\"", FAILS},
       {"groups", "starts_with", "\"st\"", NEITHER}, {"age", "starts_with", "\"4\"", NEITHER},
       {"email", "ends_with", "\".com\"", HOLDS}, {"email", "ends_with", "\".org\"", FAILS},
       {"empty", "ends_with", "\"\"", HOLDS}, {"beta", "ends_with", "\"e\"", NEITHER},
       {"missing", "ends_with", "\"x\"", NEITHER});
}

static void pattern_operator(void **state) {
  (void)state;
  ROWS({"email", "matches", "\"^[a-z]+@example\\\\.com$\"", HOLDS},
       {"email", "matches", "\"^bob\"", FAILS}, {"email", "matches", "\"example\"", HOLDS},
       /* UTF-8: "." is one character, not one byte. */
       {"name", "matches", "\"^zo.$\"", HOLDS}, {"name", "matches", "\"^zo..$\"", FAILS},
       {"name", "matches", "\"^\\\\w+$\"", HOLDS}, {"age", "matches", "\"4\"", NEITHER},
       {"groups", "matches", "\"staff\"", NEITHER}, {"missing", "matches", "\".\"", NEITHER});
}

static void number_operators(void **state) {
  (void)state;
  ROWS({"age", "lt", "50", HOLDS}, {"age", "lt", "42", FAILS}, {"age", "lte", "42", HOLDS},
       {"age", "lte", "41.99", FAILS}, {"age", "gt", "41.5", HOLDS}, {"age", "gt", "42", FAILS},
       {"age", "gte", "42", HOLDS}, {"age", "gte", "1e2", FAILS}, {"score", "lt", "8", HOLDS},
       {"score", "gt", "-1", HOLDS}, {"plan", "lt", "1", NEITHER}, {"beta", "gte", "0", NEITHER},
       {"groups", "gt", "0", NEITHER}, {"missing", "lt", "1", NEITHER});
}

static void semver_operators(void **state) {
  (void)state;
  ROWS({"version", "semver_lt", "\"2.3.0\"", HOLDS},
       {"version", "semver_lt", "\"2.3.0-rc.1\"", FAILS},
       {"version", "semver_lte", "\"2.3.0-rc.1\"", HOLDS},
       {"version", "semver_gt", "\"2.3.0-beta.2\"", HOLDS},
       {"version", "semver_gt", "\"2.3.0-rc.2\"", FAILS},
       {"version", "semver_gte", "\"2.3.0-rc.1\"", HOLDS},
       {"version", "semver_eq", "\"v2.3.0-rc.1+build.5\"", HOLDS},
       {"version", "semver_eq", "\"2.3.0\"", FAILS},
       /* An attribute that is not a version is false, negated or not. */
       {"plan", "semver_eq", "\"1.0.0\"", NEITHER}, {"age", "semver_gt", "\"1.0.0\"", NEITHER},
       {"missing", "semver_lt", "\"1.0.0\"", NEITHER});
  assert_true(holds_for("{\"attribute\":\"v\",\"operator\":\"semver_gte\",\"value\":\"1.10.0\"}",
                        "{\"v\":\"v1.10.0+abc\"}"));
  assert_false(holds_for("{\"attribute\":\"v\",\"operator\":\"semver_gte\",\"value\":\"1.10.0\"}",
                         "{\"v\":\"1.9.99\"}"));
}

static void instant_operators(void **state) {
  (void)state;
  ROWS({"signup", "before", "\"2024-03-01T10:00:00.001Z\"", HOLDS},
       {"signup", "before", "\"2024-03-01T10:00:00Z\"", FAILS},
       {"signup", "after", "\"2024-03-01T11:59:59+02:00\"", HOLDS},
       {"signup", "after", "\"2024-03-01T12:00:00+02:00\"", FAILS},
       {"signup", "after", "1709287199999", HOLDS}, {"signup", "before", "1709287200000", FAILS},
       {"signup_ms", "before", "\"2024-03-01T10:00:00.001Z\"", HOLDS},
       {"signup_ms", "after", "\"2024-03-01T10:00:00Z\"", FAILS},
       {"age", "before", "\"1970-01-01T00:00:01Z\"", HOLDS},
       {"plan", "before", "\"2024-01-01T00:00:00Z\"", NEITHER}, {"beta", "after", "0", NEITHER},
       {"missing", "after", "0", NEITHER});
}

/* Whether an RFC 3339 `text` in the context is the instant `ms`, by before/after. */
static bool instant_is(const char *text, long long ms) {
  char context[128], before[128], after[128];
  snprintf(context, sizeof context, "{\"t\":\"%s\"}", text);
  snprintf(before, sizeof before, "{\"attribute\":\"t\",\"operator\":\"before\",\"value\":%lld}",
           ms + 1);
  snprintf(after, sizeof after, "{\"attribute\":\"t\",\"operator\":\"after\",\"value\":%lld}",
           ms - 1);
  return holds_for(before, context) && holds_for(after, context);
}

static void instants_are_rfc3339_with_offsets_and_fractions(void **state) {
  (void)state;
  const struct {
    const char *text;
    long long ms;
  } good[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.5Z", 500},
      {"1970-01-01T00:00:00.123456789Z", 123},
      {"1970-01-01T01:00:00+01:00", 0},
      {"1969-12-31T19:00:00-05:00", 0},
      {"1970-01-01T05:30:00.250+05:30", 250},
      {"1969-12-31T23:59:59.999Z", -1},
      {"2024-02-29T12:00:00z", 1709208000000},
      {"2000-01-01t00:00:00.999+00:00", 946684800999},
      {"2016-12-31T23:59:60Z", 1483228800000},
      {"0000-01-01T00:00:00Z", -62167219200000},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!instant_is(good[i].text, good[i].ms))
      fail_msg("%s is not %lld", good[i].text, good[i].ms);
  const char *bad[] = {"2023-02-29T00:00:00Z",
                       "2024-13-01T00:00:00Z",
                       "2024-04-31T00:00:00Z",
                       "2024-01-01 00:00:00Z",
                       "2024-01-01T00:00:00",
                       "2024-01-01T24:00:00Z",
                       "2024-01-01T00:60:00Z",
                       "2024-01-01T00:00:00.Z",
                       "2024-01-01T00:00:00+0100",
                       "2024-01-01T00:00:00+24:00",
                       "2024-01-01",
                       "24-01-01T00:00:00Z",
                       "2024-01-01T00:00:00Z ",
                       "2024-1-01T00:00:00Z",
                       "2024-01-01T00:00:00.1.2Z",
                       "2024-00-10T00:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char context[128];
    snprintf(context, sizeof context, "{\"t\":\"%s\"}", bad[i]);
    if (holds_for("{\"attribute\":\"t\",\"operator\":\"before\",\"value\":9e15}", context) ||
        holds_for("{\"attribute\":\"t\",\"operator\":\"after\",\"value\":-9e15}", context))
      fail_msg("accepted %s", bad[i]);
  }
  /* Milliseconds are rounded down, so 0.9 ms is instant 0. */
  assert_false(
      holds_for("{\"attribute\":\"t\",\"operator\":\"after\",\"value\":0}", "{\"t\":0.9}"));
  assert_true(
      holds_for("{\"attribute\":\"t\",\"operator\":\"before\",\"value\":0}", "{\"t\":-0.1}"));
}

static void a_runaway_pattern_gives_up_and_does_not_match(void **state) {
  (void)state;
  /* Exponential backtracking: the match limit stops it; a limit is no match. */
  const char *context = "{\"s\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"}";
  assert_false(
      holds_for("{\"attribute\":\"s\",\"operator\":\"matches\",\"value\":\"^(a|a)+$\"}", context));
  assert_true(holds_for(
      "{\"attribute\":\"s\",\"operator\":\"matches\",\"value\":\"^(a|a)+$\",\"negate\":true}",
      context));
}

/* ---- reasons and order ---- */

static void every_reason(void **state) {
  (void)state;
  struct fw_eval_flag *flag = compile(true, "[]", "null");
  assert_served(evaluate(flag, "{}"), "on", FW_REASON_STATIC);
  assert_int_equal(fw_eval_flag_type(flag), FW_FLAG_STRING);
  assert_string_equal(fw_eval_flag_key(flag), "new-checkout");
  fw_eval_flag_free(flag);

  flag = compile(false, "[{\"variant\":\"a\"}]", "[{\"variant\":\"b\",\"weight\":100}]");
  assert_served(evaluate(flag, person), "off", FW_REASON_DISABLED);
  struct fw_eval_result result = evaluate(flag, "{}");
  assert_served(result, "off", FW_REASON_DISABLED);
  assert_int_equal(result.value.len, 5);
  assert_memory_equal(result.value.text, "\"OFF\"", 5);
  fw_eval_flag_free(flag);

  flag = compile(true,
                 "[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\","
                 "\"value\":\"pro\"}],\"variant\":\"a\"}]",
                 "null");
  assert_served(evaluate(flag, person), "a", FW_REASON_TARGETING_MATCH);
  assert_served(evaluate(flag, "{\"plan\":\"free\"}"), "on", FW_REASON_DEFAULT);
  fw_eval_flag_free(flag);

  /* A rule without conditions always holds. */
  flag = compile(true, "[{\"conditions\":[],\"variant\":\"b\"}]", "null");
  assert_served(evaluate(flag, "{}"), "b", FW_REASON_TARGETING_MATCH);
  fw_eval_flag_free(flag);
  flag = compile(true, "[{\"variant\":\"b\"}]", "null");
  assert_served(evaluate(flag, "{}"), "b", FW_REASON_TARGETING_MATCH);
  fw_eval_flag_free(flag);

  flag = compile(true, "[]", "[{\"variant\":\"c\",\"weight\":100}]");
  assert_served(evaluate(flag, "{\"targetingKey\":\"k\"}"), "c", FW_REASON_SPLIT);
  assert_error(evaluate(flag, "{}"), FW_EVAL_TARGETING_KEY_MISSING);
  /* No context at all is the empty one (streams without a context evaluate so). */
  struct fw_eval_result none;
  fw_eval(flag, NULL, 0, NULL, &none);
  assert_error(none, FW_EVAL_TARGETING_KEY_MISSING);
  fw_eval_flag_free(flag);
  flag = compile(true,
                 "[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\","
                 "\"value\":\"pro\"}],\"variant\":\"a\"}]",
                 "null");
  fw_eval(flag, NULL, 0, NULL, &none);
  assert_served(none, "on", FW_REASON_DEFAULT);
  fw_eval_flag_free(flag);

  flag = compile(true,
                 "[{\"rollout\":[{\"variant\":\"a\",\"weight\":0},"
                 "{\"variant\":\"b\",\"weight\":100}]}]",
                 "null");
  assert_served(evaluate(flag, "{\"targetingKey\":\"k\"}"), "b", FW_REASON_SPLIT);
  fw_eval_flag_free(flag);
}

static void the_value_is_the_variants_exact_json(void **state) {
  (void)state;
  const char *numbers = "{\"key\":\"price\",\"type\":\"number\",\"variants\":[{\"key\":\"low\","
                        "\"value\":19.99},{\"key\":\"high\",\"value\":1E+3}]}";
  struct fw_eval_flag *flag = NULL;
  char state_json[] = "{\"enabled\":true,\"on_variant\":\"high\",\"off_variant\":\"low\"}";
  char error[256];
  assert_int_equal(
      fw_eval_compile_flag(json(numbers), json(state_json), &flag, error, sizeof error), FW_OK);
  struct fw_eval_result result = evaluate(flag, "{}");
  assert_served(result, "high", FW_REASON_STATIC);
  assert_int_equal(result.value.len, 4);
  assert_memory_equal(result.value.text, "1E+3", 4);
  assert_int_equal(fw_eval_flag_type(flag), FW_FLAG_NUMBER);
  fw_eval_flag_free(flag);
}

static void the_first_rule_that_holds_wins(void **state) {
  (void)state;
  struct fw_eval_flag *flag = compile(
      true,
      "[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":\"pro\"},"
      "{\"attribute\":\"age\",\"operator\":\"gt\",\"value\":60}],\"variant\":\"a\"},"
      "{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":\"pro\"}],"
      "\"variant\":\"b\"},"
      "{\"conditions\":[{\"attribute\":\"age\",\"operator\":\"gte\",\"value\":18}],"
      "\"variant\":\"c\"}]",
      "[{\"variant\":\"off\",\"weight\":100}]");
  assert_served(evaluate(flag, "{\"plan\":\"pro\",\"age\":70}"), "a", FW_REASON_TARGETING_MATCH);
  assert_served(evaluate(flag, "{\"plan\":\"pro\",\"age\":30}"), "b", FW_REASON_TARGETING_MATCH);
  assert_served(evaluate(flag, "{\"plan\":\"free\",\"age\":30}"), "c", FW_REASON_TARGETING_MATCH);
  assert_served(evaluate(flag, "{\"targetingKey\":\"x\",\"age\":3}"), "off", FW_REASON_SPLIT);
  /* No rule holds and the rollout has no key to bucket. */
  assert_error(evaluate(flag, "{\"age\":3}"), FW_EVAL_TARGETING_KEY_MISSING);
  fw_eval_flag_free(flag);
}

/* ---- segments ---- */

static struct fw_eval_segment *segment(const char *key, const char *rules) {
  struct fw_eval_segment *out = NULL;
  char error[256] = "";
  if (fw_eval_compile_segment(key, json(rules), &out, error, sizeof error) != FW_OK)
    fail_msg("segment %s does not compile: %s", key, error);
  assert_string_equal(fw_eval_segment_key(out), key);
  return out;
}

static void segment_conditions(void **state) {
  (void)state;
  /* Sorted by key, as the environment keeps them. */
  const struct fw_eval_segment *segments[] = {
      segment("beta-users",
              "[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":"
              "\"pro\"}]},{\"conditions\":[{\"attribute\":\"groups\",\"operator\":\"contains\","
              "\"value\":\"qa\"}]}]"),
      segment("everyone", "[{\"conditions\":[]}]"),
      segment("nobody", "[]"),
      segment("staff", "[{\"conditions\":[{\"attribute\":\"groups\",\"operator\":\"contains\","
                       "\"value\":\"staff\"},{\"attribute\":\"email\",\"operator\":\"ends_with\","
                       "\"value\":\"@example.com\"}]}]"),
  };
  size_t count = sizeof segments / sizeof segments[0];
  const struct {
    const char *condition;
    const char *context;
    bool holds;
  } cases[] = {
      {"{\"segment\":\"beta-users\"}", "{\"plan\":\"pro\"}", true},
      {"{\"segment\":\"beta-users\"}", "{\"groups\":[\"qa\"]}", true},
      {"{\"segment\":\"beta-users\"}", "{\"plan\":\"free\"}", false},
      {"{\"segment\":\"beta-users\",\"negate\":true}", "{\"plan\":\"free\"}", true},
      {"{\"segment\":\"beta-users\",\"negate\":true}", "{\"plan\":\"pro\"}", false},
      {"{\"segment\":\"staff\"}", person, true},
      {"{\"segment\":\"staff\"}", "{\"groups\":[\"staff\"]}", false},
      {"{\"segment\":\"everyone\"}", "{}", true},
      {"{\"segment\":\"nobody\"}", person, false},
      {"{\"segment\":\"nobody\",\"negate\":true}", person, true},
      /* A segment the environment lacks holds for nobody. */
      {"{\"segment\":\"unknown\"}", person, false},
      {"{\"segment\":\"unknown\",\"negate\":true}", person, true},
      {"{\"segment\":\"aaa\"}", person, false},
      {"{\"segment\":\"zzz\"}", person, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rules[512];
    snprintf(rules, sizeof rules, "[{\"conditions\":[%s],\"variant\":\"a\"}]", cases[i].condition);
    struct fw_eval_flag *flag = compile(true, rules, "null");
    struct fw_eval_result result = evaluate_with(flag, segments, count, cases[i].context);
    if ((result.reason == FW_REASON_TARGETING_MATCH) != cases[i].holds)
      fail_msg("%s for %s: %s", cases[i].condition, cases[i].context,
               fw_eval_reason_name(result.reason));
    /* Without the environment's segments, no segment holds. */
    result = evaluate(flag, cases[i].context);
    assert_int_equal(result.reason == FW_REASON_TARGETING_MATCH,
                     strstr(cases[i].condition, "negate") != NULL);
    fw_eval_flag_free(flag);
  }
  for (size_t i = 0; i < count; i++)
    fw_eval_segment_free((struct fw_eval_segment *)segments[i]);
}

/* ---- rollouts ---- */

static void count_shares(const struct fw_eval_flag *flag, size_t keys, size_t shares[3],
                         const char **assigned) {
  const char *names[] = {"a", "b", "c"};
  for (size_t i = 0; i < keys; i++) {
    char context[64];
    snprintf(context, sizeof context, "{\"targetingKey\":\"user-%zu\"}", i);
    struct fw_eval_result result = evaluate(flag, context);
    assert_int_equal(result.reason, FW_REASON_SPLIT);
    for (size_t v = 0; v < 3; v++)
      if (!strcmp(result.variant, names[v]))
        shares[v]++;
    if (assigned)
      assigned[i] = result.variant;
  }
}

static void a_rollout_splits_by_its_weights_and_is_stable(void **state) {
  (void)state;
  const char *rollout = "[{\"variant\":\"a\",\"weight\":50},{\"variant\":\"b\",\"weight\":30},"
                        "{\"variant\":\"c\",\"weight\":20}]";
  enum { KEYS = 100000 };
  struct fw_eval_flag *first = compile(true, "[]", rollout);
  struct fw_eval_flag *second = compile(true, "[]", rollout);
  const char **assigned_first = calloc(KEYS, sizeof *assigned_first);
  const char **assigned_second = calloc(KEYS, sizeof *assigned_second);
  assert_non_null(assigned_first);
  assert_non_null(assigned_second);
  size_t shares[3] = {0}, shares_again[3] = {0};
  count_shares(first, KEYS, shares, assigned_first);
  count_shares(second, KEYS, shares_again, assigned_second);
  const double weights[] = {50, 30, 20};
  for (size_t v = 0; v < 3; v++) {
    double percent = 100.0 * (double)shares[v] / KEYS;
    if (percent < weights[v] - 1 || percent > weights[v] + 1)
      fail_msg("variant %zu: %.3f %% for a weight of %.0f", v, percent, weights[v]);
    print_message("variant %zu: %.3f %% (weight %.0f)\n", v, percent, weights[v]);
  }
  /* The same key gets the same variant from a separately compiled copy. */
  for (size_t i = 0; i < KEYS; i++)
    assert_string_equal(assigned_first[i], assigned_second[i]);
  /* And the variant is the one its bucket says. */
  for (size_t i = 0; i < KEYS; i += 997) {
    char key[32];
    int len = snprintf(key, sizeof key, "user-%zu", i);
    uint32_t bucket = fw_eval_bucket("new-checkout", "", key, (size_t)len);
    const char *expected = bucket < 50000 ? "a" : bucket < 80000 ? "b" : "c";
    assert_string_equal(assigned_first[i], expected);
  }
  free(assigned_first);
  free(assigned_second);
  fw_eval_flag_free(first);
  fw_eval_flag_free(second);
}

static void thousandths_of_a_percent_own_exact_bucket_ranges(void **state) {
  (void)state;
  /* 0.001 % is one bucket: find keys in bucket 0 and 1 by search. */
  struct fw_eval_flag *flag = compile(
      true, "[]", "[{\"variant\":\"a\",\"weight\":0.001},{\"variant\":\"b\",\"weight\":99.999}]");
  size_t found_a = 0;
  for (size_t i = 0; i < 400000 && found_a < 2; i++) {
    char key[32], context[64];
    int len = snprintf(key, sizeof key, "k%zu", i);
    uint32_t bucket = fw_eval_bucket("new-checkout", "", key, (size_t)len);
    if (bucket > 1)
      continue;
    snprintf(context, sizeof context, "{\"targetingKey\":\"%s\"}", key);
    struct fw_eval_result result = evaluate(flag, context);
    assert_string_equal(result.variant, bucket == 0 ? "a" : "b");
    found_a += bucket == 0;
  }
  assert_true(found_a > 0);
  fw_eval_flag_free(flag);
}

static void bucket_by_and_salt_choose_what_is_hashed(void **state) {
  (void)state;
  const char *shares = "[{\"variant\":\"a\",\"weight\":50},{\"variant\":\"b\",\"weight\":50}]";
  char rules[512];
  snprintf(rules, sizeof rules, "[{\"rollout\":%s,\"bucket_by\":\"company\",\"salt\":\"s1\"}]",
           shares);
  struct fw_eval_flag *by_company = compile(true, rules, "null");
  snprintf(rules, sizeof rules, "[{\"rollout\":%s,\"salt\":\"s2\"}]", shares);
  struct fw_eval_flag *salted = compile(true, rules, "null");
  struct fw_eval_flag *unsalted = compile(true, "[]", shares);
  size_t differ = 0;
  for (int i = 0; i < 1000; i++) {
    char company[32], context[128];
    int len = snprintf(company, sizeof company, "acme-%d", i);
    snprintf(context, sizeof context, "{\"targetingKey\":\"user-%d\",\"company\":\"%s\"}", i,
             company);
    struct fw_eval_result result = evaluate(by_company, context);
    uint32_t bucket = fw_eval_bucket("new-checkout", "s1", company, (size_t)len);
    assert_served(result, bucket < 50000 ? "a" : "b", FW_REASON_SPLIT);

    char key[32];
    len = snprintf(key, sizeof key, "user-%d", i);
    result = evaluate(salted, context);
    bucket = fw_eval_bucket("new-checkout", "s2", key, (size_t)len);
    assert_served(result, bucket < 50000 ? "a" : "b", FW_REASON_SPLIT);
    differ += strcmp(result.variant, evaluate(unsalted, context).variant) != 0;
  }
  /* A salt reshuffles: about half the keys move between two halves. */
  assert_true(differ > 400 && differ < 600);

  /* Numbers are hashed as written, booleans as true/false. */
  assert_served(evaluate(by_company, "{\"company\":12}"),
                fw_eval_bucket("new-checkout", "s1", "12", 2) < 50000 ? "a" : "b", FW_REASON_SPLIT);
  assert_served(evaluate(by_company, "{\"company\":true}"),
                fw_eval_bucket("new-checkout", "s1", "true", 4) < 50000 ? "a" : "b",
                FW_REASON_SPLIT);
  /* Missing, empty or a list: nothing to bucket. */
  assert_error(evaluate(by_company, "{\"targetingKey\":\"user-1\"}"),
               FW_EVAL_TARGETING_KEY_MISSING);
  assert_error(evaluate(by_company, "{\"company\":\"\"}"), FW_EVAL_TARGETING_KEY_MISSING);
  assert_error(evaluate(by_company, "{\"company\":[\"x\"]}"), FW_EVAL_TARGETING_KEY_MISSING);
  assert_error(evaluate(salted, "{\"company\":\"acme\"}"), FW_EVAL_TARGETING_KEY_MISSING);
  assert_error(evaluate(salted, "{\"targetingKey\":\"\"}"), FW_EVAL_TARGETING_KEY_MISSING);
  fw_eval_flag_free(by_company);
  fw_eval_flag_free(salted);
  fw_eval_flag_free(unsalted);
}

/* ---- compile errors ---- */

static void bad_rules_do_not_compile(void **state) {
  (void)state;
  const struct {
    const char *rules;
    const char *says;
  } bad[] = {
      {"{}", "'rules' must be an array"},
      {"[1]", "rule 0: a rule must be an object"},
      {"[{\"variant\":\"a\"},{\"variant\":\"nope\"}]",
       "rule 1: 'variant' \"nope\" is not a variant"},
      {"[{\"variant\":1}]", "is not a variant"},
      {"[{}]", "either a 'variant' or a 'rollout'"},
      {"[{\"variant\":\"a\",\"rollout\":[{\"variant\":\"a\",\"weight\":100}]}]", "either"},
      {"[{\"variant\":\"a\",\"salt\":\"x\"}]", "go with a 'rollout'"},
      {"[{\"variant\":\"a\",\"bucket_by\":\"x\"}]", "go with a 'rollout'"},
      {"[{\"variant\":\"a\",\"name\":\"x\"}]", "unknown field \"name\""},
      {"[{\"rollout\":null}]", "must be an array of variant weights"},
      {"[{\"rollout\":[{\"variant\":\"a\",\"weight\":60}]}]", "add up to 60.000"},
      {"[{\"rollout\":[{\"variant\":\"x\",\"weight\":100}]}]", "names no variant"},
      {"[{\"rollout\":[{\"variant\":\"a\",\"weight\":100}],\"bucket_by\":\"\"}]",
       "'bucket_by' must not be empty"},
      {"[{\"rollout\":[{\"variant\":\"a\",\"weight\":100}],\"salt\":7}]",
       "'salt' must be a string"},
      {"[{\"conditions\":{},\"variant\":\"a\"}]", "'conditions' must be an array"},
      {"[{\"conditions\":[1],\"variant\":\"a\"}]", "rule 0, condition 0: a condition must be"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"like\",\"value\":\"y\"}],"
       "\"variant\":\"a\"}]",
       "unknown operator 'like'"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"a-much-too-long-operator-name\","
       "\"value\":\"y\"}],\"variant\":\"a\"}]",
       "unknown operator"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\"}],\"variant\":\"a\"}]",
       "needs 'attribute', 'operator' and 'value'"},
      {"[{\"conditions\":[{\"attribute\":\"\",\"operator\":\"equals\",\"value\":1}],"
       "\"variant\":\"a\"}]",
       "'attribute' must not be empty"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":1,\"op\":1}],"
       "\"variant\":\"a\"}]",
       "unknown field \"op\""},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":1,"
       "\"negate\":\"yes\"}],\"variant\":\"a\"}]",
       "'negate' must be true or false"},
      {"[{\"conditions\":[{\"variant\":\"a\"},{\"attribute\":\"x\",\"operator\":\"matches\","
       "\"value\":\"(\"}],\"variant\":\"a\"}]",
       "rule 0, condition 0: unknown field"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"matches\",\"value\":\"a(b\"}],"
       "\"variant\":\"a\"}]",
       "rule 0, condition 0: 'value' is not a valid pattern: missing closing parenthesis"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"matches\",\"value\":\"\\\\C\"}],"
       "\"variant\":\"a\"}]",
       "not a valid pattern"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":null}],"
       "\"variant\":\"a\"}]",
       "'equals' needs a string, number or boolean 'value'"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":[1]}],"
       "\"variant\":\"a\"}]",
       "'equals' needs"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"in\",\"value\":\"a\"}],"
       "\"variant\":\"a\"}]",
       "array of strings and numbers"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"in\",\"value\":[true]}],"
       "\"variant\":\"a\"}]",
       "array of strings and numbers"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"contains\",\"value\":1}],"
       "\"variant\":\"a\"}]",
       "'contains' needs a string 'value'"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"starts_with\",\"value\":1}],"
       "\"variant\":\"a\"}]",
       "'starts_with' needs a string"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"lt\",\"value\":\"1\"}],"
       "\"variant\":\"a\"}]",
       "'lt' needs a number 'value'"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"semver_gt\",\"value\":\"1.2\"}],"
       "\"variant\":\"a\"}]",
       "'semver_gt' needs a semantic version"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"semver_eq\",\"value\":1}],"
       "\"variant\":\"a\"}]",
       "semantic version"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"before\",\"value\":\"2024-01-01\"}],"
       "\"variant\":\"a\"}]",
       "'before' needs an RFC 3339 date-time"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"after\",\"value\":true}],"
       "\"variant\":\"a\"}]",
       "'after' needs an RFC 3339 date-time or a number"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"after\",\"value\":1e300}],"
       "\"variant\":\"a\"}]",
       "out of range"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":\"a\\u0000\"}],"
       "\"variant\":\"a\"}]",
       "must not hold U+0000"},
      {"[{\"conditions\":[{\"segment\":\"s\",\"attribute\":\"x\"}],\"variant\":\"a\"}]",
       "not both"},
      {"[{\"conditions\":[{\"segment\":\"bad key\"}],\"variant\":\"a\"}]",
       "'segment' must be a segment key"},
      {"[{\"conditions\":[{\"segment\":\"\"}],\"variant\":\"a\"}]", "'segment' must not be empty"},
      /* U+0000 would cut a name short: "equals\u0000x" is not "equals". */
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\\u0000x\",\"value\":1}],"
       "\"variant\":\"a\"}]",
       "unknown operator"},
      {"[{\"variant\":\"a\\u0000\"}]", "is not a variant of the flag"},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"equals\",\"value\":1,"
       "\"negate\\u0000\":true}],\"variant\":\"a\"}]",
       "unknown field"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct fw_eval_flag *flag = (struct fw_eval_flag *)1;
    char error[256] = "";
    assert_int_equal(
        try_compile(definition, true, bad[i].rules, "null", &flag, error, sizeof error), FW_EINVAL);
    assert_null(flag);
    if (!strstr(error, bad[i].says))
      fail_msg("%s: expected '%s' in '%s'", bad[i].rules, bad[i].says, error);
    /* The check for a write agrees, with the same words. */
    char check_error[256] = "";
    struct fw_rawjson variants;
    assert_int_equal(fw_rawjson_member(json(definition), "variants", &variants), FW_OK);
    assert_false(
        fw_eval_check_rules(json(bad[i].rules), variants, false, check_error, sizeof check_error));
    assert_string_equal(check_error, error);
  }
}

static void bad_flags_do_not_compile(void **state) {
  (void)state;
  struct fw_eval_flag *flag = NULL;
  char error[256];
  const struct {
    const char *definition;
    const char *state;
    const char *says;
  } bad[] = {
      {"{\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\"}", "'key' must be"},
      {"{\"key\":\"f\",\"type\":\"text\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\"}", "'type' must be"},
      {"{\"key\":\"f\",\"type\":\"string\"}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\"}", "no 'variants'"},
      {"{\"key\":\"f\",\"type\":\"boolean\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\"}", "must be a boolean"},
      {"{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"on_variant\":\"on\",\"off_variant\":\"on\"}", "'enabled' must be true or false"},
      {"{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"x\",\"off_variant\":\"on\"}",
       "'on_variant' must name a variant"},
      {"{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\"}", "'off_variant' must name a variant"},
      {"{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\",\"rollout\":{}}",
       "must be an array of variant weights"},
      {"{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"x\"}]}",
       "{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\",\"rollout\":"
       "[{\"variant\":\"on\",\"weight\":99.9999}]}",
       "at most 3 decimals"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    error[0] = '\0';
    assert_int_equal(fw_eval_compile_flag(json(bad[i].definition), json(bad[i].state), &flag, error,
                                          sizeof error),
                     FW_EINVAL);
    if (!strstr(error, bad[i].says))
      fail_msg("%s: expected '%s' in '%s'", bad[i].state, bad[i].says, error);
  }
  /* Absent rules and rollout are none: STATIC. */
  assert_int_equal(
      fw_eval_compile_flag(json("{\"key\":\"f\",\"type\":\"string\",\"variants\":[{\"key\":\"on\","
                                "\"value\":\"x\"}]}"),
                           json("{\"enabled\":true,\"on_variant\":\"on\",\"off_variant\":\"on\"}"),
                           &flag, error, sizeof error),
      FW_OK);
  assert_served(evaluate(flag, "{}"), "on", FW_REASON_STATIC);
  fw_eval_flag_free(flag);
  /* A tiny error buffer is respected. */
  char tiny[8];
  assert_int_equal(
      try_compile(definition, true, "[{\"variant\":\"zz\"}]", "null", &flag, tiny, sizeof tiny),
      FW_EINVAL);
  assert_int_equal(strlen(tiny), 7);
}

static void segment_rules_hold_conditions_only(void **state) {
  (void)state;
  const struct {
    const char *rules;
    const char *says;
  } bad[] = {
      {"[{\"conditions\":[{\"segment\":\"other\"}]}]",
       "rule 0, condition 0: a segment's rules cannot test membership of a segment"},
      {"[{\"conditions\":[],\"variant\":\"a\"}]", "unknown field \"variant\""},
      {"[{\"rollout\":[{\"variant\":\"a\",\"weight\":100}]}]", "unknown field \"rollout\""},
      {"[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"gt\",\"value\":\"1\"}]}]",
       "'gt' needs a number"},
      {"{}", "'rules' must be an array"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct fw_eval_segment *out = (struct fw_eval_segment *)1;
    char error[256] = "";
    assert_int_equal(fw_eval_compile_segment("seg", json(bad[i].rules), &out, error, sizeof error),
                     FW_EINVAL);
    assert_null(out);
    if (!strstr(error, bad[i].says))
      fail_msg("%s: expected '%s' in '%s'", bad[i].rules, bad[i].says, error);
    char check_error[256] = "";
    assert_false(
        fw_eval_check_rules(json(bad[i].rules), json("[]"), true, check_error, sizeof check_error));
    assert_string_equal(check_error, error);
  }
  struct fw_eval_segment *out;
  char error[256];
  assert_int_equal(fw_eval_compile_segment("not a key", json("[]"), &out, error, sizeof error),
                   FW_EINVAL);
  const char *good = "[{\"conditions\":[{\"attribute\":\"x\",\"operator\":\"matches\","
                     "\"value\":\"^a\"}]},{}]";
  assert_true(fw_eval_check_rules(json(good), json("[]"), true, error, sizeof error));
  struct fw_rawjson variants;
  assert_int_equal(fw_rawjson_member(json(definition), "variants", &variants), FW_OK);
  assert_true(
      fw_eval_check_rules(json("[{\"conditions\":[{\"segment\":\"s\"}],\"variant\":\"c\"}]"),
                          variants, false, error, sizeof error));
}

/* ---- contexts ---- */

static void context_refusals(void **state) {
  (void)state;
  const struct {
    const char *text;
    enum fw_eval_error code;
    const char *says;
  } bad[] = {
      {"{", FW_EVAL_PARSE_ERROR, "not valid JSON"},
      {"{\"a\":1,}", FW_EVAL_PARSE_ERROR, "not valid JSON"},
      {" ", FW_EVAL_PARSE_ERROR, "not valid JSON"},
      {"[]", FW_EVAL_PARSE_ERROR, "must be a JSON object"},
      {"\"user-1\"", FW_EVAL_PARSE_ERROR, "must be a JSON object"},
      {"{\"a\":null}", FW_EVAL_INVALID_CONTEXT, "attribute \"a\" must be a string, number"},
      {"{\"a\":{\"b\":1}}", FW_EVAL_INVALID_CONTEXT, "attribute \"a\" must be"},
      {"{\"a\":[1]}", FW_EVAL_INVALID_CONTEXT, "array of strings"},
      {"{\"a\":[\"x\",[\"y\"]]}", FW_EVAL_INVALID_CONTEXT, "array of strings"},
      {"{\"targetingKey\":5}", FW_EVAL_INVALID_CONTEXT, "\"targetingKey\" must be a string"},
      {"{\"targetingKey\":[\"a\"]}", FW_EVAL_INVALID_CONTEXT, "must be a string"},
      {"{\"targetingKey\":null}", FW_EVAL_INVALID_CONTEXT, "must be a string"},
      {"{\"targetingKey\":false}", FW_EVAL_INVALID_CONTEXT, "must be a string"},
      {"{\"a\":\"x\\u0000y\"}", FW_EVAL_INVALID_CONTEXT, "U+0000"},
      {"{\"a\\u0000\":\"x\"}", FW_EVAL_INVALID_CONTEXT, "U+0000"},
      {"{\"a\":[\"\\u0000\"]}", FW_EVAL_INVALID_CONTEXT, "U+0000"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct fw_eval_context *context = (struct fw_eval_context *)1;
    enum fw_eval_error code = FW_EVAL_OK;
    char error[256] = "";
    assert_int_equal(fw_eval_context_parse(bad[i].text, strlen(bad[i].text), &context, &code, error,
                                           sizeof error),
                     FW_EINVAL);
    assert_null(context);
    if (code != bad[i].code || !strstr(error, bad[i].says))
      fail_msg("%s: %s, '%s'", bad[i].text, fw_eval_error_name(code), error);
  }
}

/* Builds a context of `attributes` attributes, the first a list of `items` items, padded
 * with spaces to `bytes` bytes (0: no padding). */
static char *big_context(size_t attributes, size_t items, size_t bytes) {
  size_t cap = 64 + attributes * 16 + items * 8 + bytes;
  char *text = malloc(cap);
  assert_non_null(text);
  size_t len = (size_t)snprintf(text, cap, "{\"list\":[");
  for (size_t i = 0; i < items; i++)
    len += (size_t)snprintf(text + len, cap - len, "%s\"i%zu\"", i ? "," : "", i);
  len += (size_t)snprintf(text + len, cap - len, "]");
  for (size_t i = 1; i < attributes; i++)
    len += (size_t)snprintf(text + len, cap - len, ",\"a%zu\":%zu", i, i);
  while (len + 1 < bytes)
    text[len++] = ' ';
  text[len++] = '}';
  text[len] = '\0';
  return text;
}

static int parse_code(const char *text, enum fw_eval_error *code) {
  struct fw_eval_context *context = NULL;
  char error[256];
  *code = FW_EVAL_OK;
  int rc = fw_eval_context_parse(text, strlen(text), &context, code, error, sizeof error);
  fw_eval_context_free(context);
  return rc;
}

static void context_caps(void **state) {
  (void)state;
  enum fw_eval_error code;
  char *text = big_context(FW_EVAL_CONTEXT_MAX_ATTRIBUTES, FW_EVAL_CONTEXT_MAX_LIST,
                           FW_EVAL_CONTEXT_MAX_BYTES);
  assert_int_equal(strlen(text), FW_EVAL_CONTEXT_MAX_BYTES);
  assert_int_equal(parse_code(text, &code), FW_OK);
  free(text);
  text = big_context(FW_EVAL_CONTEXT_MAX_ATTRIBUTES, 1, FW_EVAL_CONTEXT_MAX_BYTES + 1);
  assert_int_equal(parse_code(text, &code), FW_EINVAL);
  assert_int_equal(code, FW_EVAL_INVALID_CONTEXT);
  free(text);
  text = big_context(FW_EVAL_CONTEXT_MAX_ATTRIBUTES + 1, 1, 0);
  assert_int_equal(parse_code(text, &code), FW_EINVAL);
  assert_int_equal(code, FW_EVAL_INVALID_CONTEXT);
  free(text);
  text = big_context(1, FW_EVAL_CONTEXT_MAX_LIST + 1, 0);
  assert_int_equal(parse_code(text, &code), FW_EINVAL);
  assert_int_equal(code, FW_EVAL_INVALID_CONTEXT);
  free(text);
  /* Too big is too big, JSON or not. */
  text = big_context(1, 1, FW_EVAL_CONTEXT_MAX_BYTES + 1);
  text[0] = 'x';
  assert_int_equal(parse_code(text, &code), FW_EINVAL);
  assert_int_equal(code, FW_EVAL_INVALID_CONTEXT);
  free(text);
}

static void digest_of(const char *text, uint8_t out[32]) {
  struct fw_eval_context *context = context_of(text);
  fw_eval_context_digest(context, out);
  fw_eval_context_free(context);
}

/* Contexts that evaluate alike share a digest (streams group by it); any difference that
 * evaluation can see gives another. */
static void context_digests_follow_what_evaluation_reads(void **state) {
  (void)state;
  const char *same[][2] = {
      {"{\"targetingKey\":\"u1\",\"plan\":\"pro\"}",
       "{ \"plan\" : \"pro\", \"targetingKey\":\"u1\" }"},
      {"{\"plan\":\"free\",\"plan\":\"pro\"}", "{\"plan\":\"pro\"}"},
      {"{\"name\":\"\\u00e9t\\u00e9\"}", "{\"name\":\"\xc3\xa9t\xc3\xa9\"}"},
      {"{}", ""},
      {"{\"tags\":[\"a\",\"b\"]}", "{\"tags\" : [ \"a\" , \"b\" ]}"},
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(same); i++) {
    uint8_t a[32], b[32];
    digest_of(same[i][0], a);
    digest_of(same[i][1], b);
    if (memcmp(a, b, sizeof a) != 0)
      fail_msg("%s and %s should share a digest", same[i][0], same[i][1]);
  }
  const char *different[][2] = {
      {"{\"n\":1}", "{\"n\":1.0}"},   /* rollouts hash a number's text */
      {"{\"n\":1}", "{\"n\":\"1\"}"}, /* a number is not a string */
      {"{\"b\":true}", "{\"b\":\"true\"}"},
      {"{\"tags\":[\"a\",\"b\"]}", "{\"tags\":[\"b\",\"a\"]}"},
      {"{\"tags\":[\"ab\"]}", "{\"tags\":[\"a\",\"b\"]}"},
      {"{\"ab\":\"c\"}", "{\"a\":\"bc\"}"},
      {"{\"targetingKey\":\"u1\"}", "{\"targetingKey\":\"u2\"}"},
      {"{}", "{\"a\":\"\"}"},
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(different); i++) {
    uint8_t a[32], b[32];
    digest_of(different[i][0], a);
    digest_of(different[i][1], b);
    if (!memcmp(a, b, sizeof a))
      fail_msg("%s and %s should not share a digest", different[i][0], different[i][1]);
  }
  uint8_t empty[32], none[32];
  digest_of("{}", empty);
  fw_eval_context_digest(NULL, none);
  assert_memory_equal(empty, none, sizeof empty);
}

static void contexts_parse_what_they_hold(void **state) {
  (void)state;
  struct fw_eval_context *context = NULL;
  enum fw_eval_error code;
  char error[128];
  assert_int_equal(fw_eval_context_parse("", 0, &context, &code, error, sizeof error), FW_OK);
  assert_null(fw_eval_context_targeting_key(context));
  fw_eval_context_free(context);

  context = context_of("{\"targetingKey\":\"k\\u00e9y\",\"a\":1}");
  assert_string_equal(fw_eval_context_targeting_key(context), "k\xc3\xa9y");
  fw_eval_context_free(context);

  /* A name given twice: the last wins, as for every JSON object here. */
  context = context_of("{\"targetingKey\":\"first\",\"x\":1,\"targetingKey\":\"second\"}");
  assert_string_equal(fw_eval_context_targeting_key(context), "second");
  fw_eval_context_free(context);
  assert_true(holds_for("{\"attribute\":\"p\",\"operator\":\"equals\",\"value\":\"b\"}",
                        "{\"p\":\"a\",\"q\":1,\"p\":\"b\"}"));
  assert_false(holds_for("{\"attribute\":\"p\",\"operator\":\"equals\",\"value\":\"a\"}",
                         "{\"p\":\"a\",\"q\":1,\"p\":\"b\"}"));
  /* Escapes are compared unescaped, names included. */
  assert_true(holds_for("{\"attribute\":\"na\\u006de\",\"operator\":\"equals\",\"value\":"
                        "\"A\\\"B\"}",
                        "{\"\\u006eame\":\"A\\u0022B\"}"));
  /* Whitespace around the object is fine. */
  context = context_of(" \n{ \"targetingKey\" : \"k\" }\t");
  assert_string_equal(fw_eval_context_targeting_key(context), "k");
  fw_eval_context_free(context);
}

/* ---- threads ---- */

static struct fw_eval_flag *shared_flag;

static void *evaluate_in_a_thread(void *arg) {
  size_t offset = (size_t)arg;
  for (size_t i = 0; i < 2000; i++) {
    char context[96];
    size_t n = offset + i;
    snprintf(context, sizeof context, "{\"targetingKey\":\"user-%zu\",\"email\":\"%s\"}", n,
             n % 2 ? "x@example.com" : "x@other.org");
    struct fw_eval_result result = evaluate(shared_flag, context);
    if (n % 2)
      assert_served(result, "a", FW_REASON_TARGETING_MATCH);
    else
      assert_int_equal(result.reason, FW_REASON_SPLIT);
  }
  return NULL;
}

static void threads_evaluate_one_flag_at_once(void **state) {
  (void)state;
  shared_flag = compile(true,
                        "[{\"conditions\":[{\"attribute\":\"email\",\"operator\":\"matches\","
                        "\"value\":\"@example\\\\.com$\"}],\"variant\":\"a\"}]",
                        "[{\"variant\":\"b\",\"weight\":50},{\"variant\":\"c\",\"weight\":50}]");
  pthread_t threads[4];
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, evaluate_in_a_thread, (void *)(i * 2000)),
                     0);
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  fw_eval_flag_free(shared_flag);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reasons_and_errors_have_openfeature_names),
      cmocka_unit_test(murmur3_matches_the_reference),
      cmocka_unit_test(murmur3_in_pieces_equals_murmur3_of_the_whole),
      cmocka_unit_test(buckets_hash_flag_salt_and_value),
      cmocka_unit_test(semver_precedence_follows_semver_org),
      cmocka_unit_test(semver_refuses_what_is_not_a_version),
      cmocka_unit_test(equality_operators),
      cmocka_unit_test(list_operators),
      cmocka_unit_test(string_operators),
      cmocka_unit_test(pattern_operator),
      cmocka_unit_test(number_operators),
      cmocka_unit_test(semver_operators),
      cmocka_unit_test(instant_operators),
      cmocka_unit_test(instants_are_rfc3339_with_offsets_and_fractions),
      cmocka_unit_test(a_runaway_pattern_gives_up_and_does_not_match),
      cmocka_unit_test(every_reason),
      cmocka_unit_test(the_value_is_the_variants_exact_json),
      cmocka_unit_test(the_first_rule_that_holds_wins),
      cmocka_unit_test(segment_conditions),
      cmocka_unit_test(a_rollout_splits_by_its_weights_and_is_stable),
      cmocka_unit_test(thousandths_of_a_percent_own_exact_bucket_ranges),
      cmocka_unit_test(bucket_by_and_salt_choose_what_is_hashed),
      cmocka_unit_test(bad_rules_do_not_compile),
      cmocka_unit_test(bad_flags_do_not_compile),
      cmocka_unit_test(segment_rules_hold_conditions_only),
      cmocka_unit_test(context_refusals),
      cmocka_unit_test(context_caps),
      cmocka_unit_test(contexts_parse_what_they_hold),
      cmocka_unit_test(context_digests_follow_what_evaluation_reads),
      cmocka_unit_test(threads_evaluate_one_flag_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
