/* The pure parts of the mutations module: checking an environment's allowed_origins as a
 * client gives them, and matching a handshake's Origin against the stored list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "state/mutations.h"

static struct fw_rawjson parsed(const char *text) {
  struct fw_rawjson value;
  assert_int_equal(fw_rawjson_validate(text, strlen(text), &value, NULL, NULL), FW_OK);
  return value;
}

/* Checks `json` and returns whether it passed; `error` receives the reason. */
static bool check(const char *json, char *error, size_t error_len) {
  error[0] = '\0';
  return fw_env_check_origins(parsed(json), error, error_len);
}

static void good_lists_pass(void **state) {
  (void)state;
  static const char *const good[] = {
      "null",
      "[]",
      "[\"https://app.example\"]",
      "[\"http://localhost:3000\",\"https://app.example\"]",
      "[\"http://127.0.0.1:8080\",\"http://[::1]:5173\",\"https://[2001:db8::1]\"]",
      "[\"https://xn--bcher-kva.example\",\"http://a-b.c-d.example:65535\",\"http://x:1\"]",
      /* An escaped slash is still the same origin. */
      "[\"https:\\/\\/escaped.example\"]",
      /* Port 443 is not http's default, nor 80 https's. */
      "[\"http://a.example:443\",\"https://a.example:80\"]",
  };
  char error[256];
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!check(good[i], error, sizeof error))
      fail_msg("%s was refused: %s", good[i], error);
}

static void bad_lists_name_the_problem(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *reason;
  } bad[] = {
      {"\"https://app.example\"", "must be null or an array"},
      {"{}", "must be null or an array"},
      {"true", "must be null or an array"},
      {"[42]", "allowed_origins[0] (42) must be a string"},
      {"[\"https://a.example\",null]", "allowed_origins[1] (null) must be a string"},
      {"[\"ftp://a.example\"]", "'ftp://a.example' must start with http:// or https://"},
      {"[\"a.example\"]", "must start with http:// or https://"},
      {"[\"//a.example\"]", "must start with http:// or https://"},
      {"[\"https://a.example/app\"]", "'https://a.example/app' must not have a path"},
      {"[\"https://a.example?x=1\"]", "must not have a path, query or fragment"},
      {"[\"https://a.example#top\"]", "must not have a path, query or fragment"},
      {"[\"https://a.example/\"]", "'https://a.example/' must not end with '/'"},
      {"[\"https://a.example:8443/\"]", "must not end with '/'"},
      {"[\"https://App.example\"]", "'https://App.example' must be lowercase"},
      {"[\"HTTPS://app.example\"]", "must be lowercase"},
      {"[\"https://\"]", "has no host"},
      {"[\"https://:8080\"]", "has no host"},
      {"[\"https://user@a.example\"]", "has a host with a character other than"},
      {"[\"https://a_b.example\"]", "has a host with a character other than"},
      {"[\"https://a.example \"]", "has a host with a character other than"},
      {"[\"https://b\\u00fccher.example\"]", "has a host with a character other than"},
      {"[\"https://a.example:\"]", "has an empty port"},
      {"[\"https://a.example:0\"]", "has a port outside 1 to 65535"},
      {"[\"https://a.example:65536\"]", "has a port outside 1 to 65535"},
      {"[\"https://a.example:123456\"]", "has a port outside 1 to 65535"},
      {"[\"https://a.example:080\"]", "has a port with a leading zero"},
      {"[\"https://a.example:8x\"]", "has a port that is not a number"},
      {"[\"https://a.example:1:2\"]", "has a second ':'"},
      {"[\"https://a.example:443\"]", "default port"},
      {"[\"http://a.example:80\"]", "default port"},
      {"[\"http://[::1\"]", "unterminated or empty IPv6 literal"},
      {"[\"http://[]\"]", "unterminated or empty IPv6 literal"},
      {"[\"http://[::g]\"]", "IPv6 literal with a character other than"},
      {"[\"http://[::1]x\"]", "nothing but a port after its IPv6 literal"},
      {"[\"https://a.example\\u0000.evil\"]", "must not hold a NUL character"},
      {"[\"https://a.example\",\"https://b.example\",\"https://a.example\"]",
       "allowed_origins[2] 'https://a.example' repeats allowed_origins[0]"},
      /* The same origin, once escaped, is still a repeat. */
      {"[\"https://a.example\",\"https:\\/\\/a.example\"]", "repeats allowed_origins[0]"},
  };
  char error[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (check(bad[i].json, error, sizeof error))
      fail_msg("%s was accepted", bad[i].json);
    if (!strstr(error, bad[i].reason))
      fail_msg("%s: expected \"%s\" in \"%s\"", bad[i].json, bad[i].reason, error);
    if (bad[i].json[0] == '[' && !strstr(error, "allowed_origins"))
      fail_msg("%s: the message does not name the field: %s", bad[i].json, error);
  }
}

static void length_and_count_are_bounded(void **state) {
  (void)state;
  char json[8192], error[256];
  /* "http://" + 246 letters is 253 bytes: the longest entry there may be. */
  char host[256];
  memset(host, 'a', 246);
  host[246] = '\0';
  snprintf(json, sizeof json, "[\"http://%s\"]", host);
  assert_true(check(json, error, sizeof error));
  snprintf(json, sizeof json, "[\"http://%sa\"]", host);
  assert_false(check(json, error, sizeof error));
  assert_non_null(strstr(error, "allowed_origins[0] (\"http://aaaa"));
  assert_non_null(strstr(error, "is longer than 253 bytes"));

  /* 100 distinct entries pass, 101 do not. */
  size_t used = (size_t)snprintf(json, sizeof json, "[");
  for (int i = 0; i < 101; i++) {
    used += (size_t)snprintf(json + used, sizeof json - used, "%s\"http://h%d.example\"",
                             i ? "," : "", i);
    if (i == 99) {
      json[used] = ']';
      json[used + 1] = '\0';
      assert_true(check(json, error, sizeof error));
    }
  }
  snprintf(json + used, sizeof json - used, "]");
  assert_false(check(json, error, sizeof error));
  assert_string_equal(error, "field 'allowed_origins' holds at most 100 origins");
}

static void messages_fit_an_error_even_for_long_entries(void **state) {
  (void)state;
  char json[512], error[256];
  char host[241];
  memset(host, 'b', 240);
  host[240] = '\0';
  snprintf(json, sizeof json, "[\"https://%s/\"]", host);
  assert_false(check(json, error, sizeof error));
  /* The entry is quoted in part, so the reason still fits. */
  assert_non_null(strstr(error, "...' must not end with '/'"));
}

/* An environment node whose document is `doc`; the caller unrefs node->env. */
static struct fw_env_node env_with_doc(const char *doc) {
  struct fw_env_node node = {
      .env = fw_object_new(FW_TABLE_ENVIRONMENTS, 1, 1, "prod", doc, strlen(doc), 1)};
  assert_non_null(node.env);
  return node;
}

static bool allowed(const struct fw_env_node *env, const char *origin) {
  return fw_env_origin_allowed(env, origin, strlen(origin));
}

static void without_a_list_every_origin_is_allowed(void **state) {
  (void)state;
  static const char *const docs[] = {
      "{\"key\":\"prod\",\"name\":\"prod\"}",
      "{\"key\":\"prod\",\"allowed_origins\":null}",
      "{\"key\":\"prod\",\"allowed_origins\":[]}",
      "{\"key\":\"prod\",\"allowed_origins\": [ ] }",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    struct fw_env_node env = env_with_doc(docs[i]);
    assert_true(allowed(&env, "https://anything.example"));
    assert_true(allowed(&env, "null"));
    assert_true(allowed(&env, ""));
    fw_object_unref(env.env);
  }
}

static void with_a_list_only_exact_entries_are_allowed(void **state) {
  (void)state;
  struct fw_env_node env = env_with_doc(
      "{\"key\":\"prod\",\"allowed_origins\":[\"https://app.example\", \"http://localhost:3000\","
      "\"https:\\/\\/escaped.example\"],\"version\":2}");
  assert_true(allowed(&env, "https://app.example"));
  assert_true(allowed(&env, "http://localhost:3000"));
  assert_true(allowed(&env, "https://escaped.example"));
  assert_false(allowed(&env, "http://app.example"));
  assert_false(allowed(&env, "https://app.example:443"));
  assert_false(allowed(&env, "https://app.example/"));
  assert_false(allowed(&env, "https://APP.example"));
  assert_false(allowed(&env, "https://app.example.evil"));
  assert_false(allowed(&env, "https://app.exampl"));
  assert_false(allowed(&env, "http://localhost:30000"));
  assert_false(allowed(&env, "http://localhost"));
  assert_false(allowed(&env, "null"));
  assert_false(allowed(&env, ""));
  /* The origin is `len` bytes of a longer buffer, as a header value is. */
  const char *header = "https://app.example\r\nHost: x";
  assert_true(fw_env_origin_allowed(&env, header, strlen("https://app.example")));
  assert_false(fw_env_origin_allowed(&env, header, strlen("https://app.example") + 1));
  /* An origin longer than any entry may be matches none. */
  char longer[400];
  memset(longer, 'a', sizeof longer);
  assert_false(fw_env_origin_allowed(&env, longer, sizeof longer));
  fw_object_unref(env.env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_lists_pass),
      cmocka_unit_test(bad_lists_name_the_problem),
      cmocka_unit_test(length_and_count_are_bounded),
      cmocka_unit_test(messages_fit_an_error_even_for_long_entries),
      cmocka_unit_test(without_a_list_every_origin_is_allowed),
      cmocka_unit_test(with_a_list_only_exact_entries_are_allowed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
