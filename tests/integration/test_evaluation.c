/* The evaluation surfaces against the real binary: flagwire's own /v1/flags and
 * /v1/evaluate, OFREP single and bulk, and the Flagsmith-compatible endpoints, with
 * targeting rules, segments, rollouts, keys of both kinds and every error code. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_evaluation-test-token-0123456789"

static struct fwt_server server;
static char server_key[128], client_key[128];

static json_t *parse(const struct fwt_response *res) {
  json_error_t error;
  json_t *doc = json_loads(res->body, JSON_DECODE_INT_AS_REAL, &error);
  if (!doc)
    fail_msg("not JSON (%s): %s", error.text, res->body);
  return doc;
}

/* A management call that must succeed. */
static void admin(const char *method, const char *path, const char *body) {
  struct fwt_response res;
  fwt_request(server.port, method, path, TOKEN, NULL, body, &res);
  if (res.status >= 300)
    fail_msg("%s %s: %d %s", method, path, res.status, res.body);
  fwt_response_free(&res);
}

static int start_server(void **state) {
  (void)state;
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, NULL, env);
  admin("POST", "/v1/projects", "{\"key\":\"shop\"}");
  struct fwt_response res;
  fwt_request(server.port, "POST", "/v1/projects/shop/environments", TOKEN, NULL,
              "{\"key\":\"prod\"}", &res);
  json_t *doc = parse(&res);
  snprintf(server_key, sizeof server_key, "%s",
           json_string_value(json_object_get(doc, "server_key")));
  snprintf(client_key, sizeof client_key, "%s",
           json_string_value(json_object_get(doc, "client_key")));
  json_decref(doc);
  fwt_response_free(&res);

  admin("POST", "/v1/projects/shop/segments", "{\"key\":\"staff\"}");
  admin("PUT", "/v1/projects/shop/environments/prod/segments/staff",
        "{\"rules\":[{\"conditions\":[{\"attribute\":\"email\",\"operator\":\"ends_with\","
        "\"value\":\"@shop.example\"}]}]}");
  /* A client-visible kill switch, on. */
  admin("POST", "/v1/projects/shop/flags", "{\"key\":\"checkout\",\"client_visible\":true}");
  admin("PATCH", "/v1/projects/shop/environments/prod/flags/checkout", "{\"enabled\":true}");
  /* A targeted string flag: staff get "beta", Dutch and Belgian users "eu", others "stable". */
  admin("POST", "/v1/projects/shop/flags",
        "{\"key\":\"banner\",\"type\":\"string\",\"client_visible\":true,\"variants\":["
        "{\"key\":\"stable\",\"value\":\"Welcome\"},{\"key\":\"eu\",\"value\":\"Welkom\"},"
        "{\"key\":\"beta\",\"value\":\"Hello, tester\"}]}");
  admin(
      "PATCH", "/v1/projects/shop/environments/prod/flags/banner",
      "{\"enabled\":true,\"on_variant\":\"stable\",\"rules\":["
      "{\"conditions\":[{\"segment\":\"staff\"}],\"variant\":\"beta\"},"
      "{\"conditions\":[{\"attribute\":\"country\",\"operator\":\"in\",\"value\":[\"NL\",\"BE\"]}],"
      "\"variant\":\"eu\"}]}");
  /* A server-only number flag rolled out 50/50. */
  admin("POST", "/v1/projects/shop/flags",
        "{\"key\":\"price\",\"type\":\"number\",\"variants\":[{\"key\":\"low\",\"value\":19.99},"
        "{\"key\":\"high\",\"value\":24.990}]}");
  admin("PATCH", "/v1/projects/shop/environments/prod/flags/price",
        "{\"enabled\":true,\"rollout\":[{\"variant\":\"low\",\"weight\":50},"
        "{\"variant\":\"high\",\"weight\":50}]}");
  admin("PUT", "/v1/projects/shop/environments/prod/configs/limits", "{\"max\": 10.50}");
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

/* POSTs `body` to an evaluation path with `key` and returns the response. */
static void evaluate(const char *path, const char *key, const char *body,
                     struct fwt_response *res) {
  fwt_request(server.port, "POST", path, key, NULL, body, res);
}

static void ofrep_single_flag_follows_rules_and_segments(void **state) {
  (void)state;
  struct {
    const char *context;
    const char *value;
    const char *variant;
    const char *reason;
  } cases[] = {
      {"{\"targetingKey\":\"u1\",\"email\":\"ann@shop.example\",\"country\":\"NL\"}",
       "\"Hello, tester\"", "beta", "TARGETING_MATCH"},
      {"{\"targetingKey\":\"u2\",\"country\":\"BE\"}", "\"Welkom\"", "eu", "TARGETING_MATCH"},
      {"{\"targetingKey\":\"u3\",\"country\":\"FR\"}", "\"Welcome\"", "stable", "DEFAULT"},
      {"{}", "\"Welcome\"", "stable", "DEFAULT"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[256];
    snprintf(body, sizeof body, "{\"context\":%s}", cases[i].context);
    struct fwt_response res;
    evaluate("/ofrep/v1/evaluate/flags/banner", client_key, body, &res);
    assert_int_equal(res.status, 200);
    char expected[128];
    snprintf(expected, sizeof expected, "\"value\":%s,\"variant\":\"%s\",\"reason\":\"%s\"",
             cases[i].value, cases[i].variant, cases[i].reason);
    if (!strstr(res.body, expected))
      fail_msg("context %s: expected %s in %s", cases[i].context, expected, res.body);
    assert_non_null(strstr(res.body, "\"key\":\"banner\""));
    fwt_response_free(&res);
  }

  struct fwt_response res;
  evaluate("/ofrep/v1/evaluate/flags/checkout", client_key, "{\"context\":{}}", &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"value\":true,\"variant\":\"on\",\"reason\":\"STATIC\""));
  fwt_response_free(&res);
}

static void rollouts_split_stably_and_need_a_targeting_key(void **state) {
  (void)state;
  int low = 0, high = 0;
  for (int i = 0; i < 200; i++) {
    char body[128];
    snprintf(body, sizeof body, "{\"context\":{\"targetingKey\":\"user-%d\"}}", i);
    struct fwt_response first, again;
    evaluate("/ofrep/v1/evaluate/flags/price", server_key, body, &first);
    evaluate("/ofrep/v1/evaluate/flags/price", server_key, body, &again);
    assert_int_equal(first.status, 200);
    /* The same key always gets the same variant. */
    assert_string_equal(first.body, again.body);
    assert_non_null(strstr(first.body, "\"reason\":\"SPLIT\""));
    if (strstr(first.body, "\"value\":19.99,"))
      low++;
    else if (strstr(first.body, "\"value\":24.990,"))
      high++;
    else
      fail_msg("unexpected %s", first.body);
    fwt_response_free(&first);
    fwt_response_free(&again);
  }
  /* 50/50 over 200 keys: both sides well represented (the exact shares are a unit test). */
  assert_true(low > 60 && high > 60);

  struct fwt_response res;
  evaluate("/ofrep/v1/evaluate/flags/price", server_key, "{\"context\":{}}", &res);
  assert_int_equal(res.status, 400);
  assert_non_null(strstr(res.body, "\"errorCode\":\"TARGETING_KEY_MISSING\""));
  fwt_response_free(&res);
}

static void ofrep_errors_follow_the_spec(void **state) {
  (void)state;
  struct {
    const char *path;
    const char *key;
    const char *body;
    int status;
    const char *code;
  } cases[] = {
      {"/ofrep/v1/evaluate/flags/nope", server_key, "{\"context\":{}}", 404, "FLAG_NOT_FOUND"},
      /* A client key is not told a server-only flag exists. */
      {"/ofrep/v1/evaluate/flags/price", client_key, "{\"context\":{}}", 404, "FLAG_NOT_FOUND"},
      {"/ofrep/v1/evaluate/flags/banner", client_key, "{\"context\":", 400, "PARSE_ERROR"},
      {"/ofrep/v1/evaluate/flags/banner", client_key, "[1]", 400, "PARSE_ERROR"},
      {"/ofrep/v1/evaluate/flags/banner", client_key, "{\"context\":{\"targetingKey\":7}}", 400,
       "INVALID_CONTEXT"},
      {"/ofrep/v1/evaluate/flags/banner", client_key, "{\"context\":{\"nested\":{\"a\":1}}}", 400,
       "INVALID_CONTEXT"},
      {"/ofrep/v1/evaluate/flags", client_key, "{\"context\":[]}", 400, "INVALID_CONTEXT"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct fwt_response res;
    evaluate(cases[i].path, cases[i].key, cases[i].body, &res);
    if (res.status != cases[i].status || !strstr(res.body, cases[i].code))
      fail_msg("%s %s: expected %d %s, got %d %s", cases[i].path, cases[i].body, cases[i].status,
               cases[i].code, res.status, res.body);
    fwt_response_free(&res);
  }
  /* Keys: none, unknown, an admin token. */
  struct fwt_response res;
  evaluate("/ofrep/v1/evaluate/flags/banner", NULL, "{}", &res);
  assert_int_equal(res.status, 401);
  fwt_response_free(&res);
  evaluate("/ofrep/v1/evaluate/flags/banner", "fw_cli_unknown-key-0000000000000000000000", "{}",
           &res);
  assert_int_equal(res.status, 401);
  fwt_response_free(&res);
  evaluate("/ofrep/v1/evaluate/flags/banner", TOKEN, "{}", &res);
  assert_int_equal(res.status, 403);
  fwt_response_free(&res);
}

static void ofrep_bulk_has_a_strong_etag(void **state) {
  (void)state;
  const char *body = "{\"context\":{\"targetingKey\":\"u2\",\"country\":\"BE\"}}";
  struct fwt_response res;
  evaluate("/ofrep/v1/evaluate/flags", client_key, body, &res);
  assert_int_equal(res.status, 200);
  json_t *doc = parse(&res);
  json_t *flags = json_object_get(doc, "flags");
  /* The client key sees the two client-visible flags only. */
  assert_int_equal(json_array_size(flags), 2);
  json_decref(doc);
  char etag[64];
  assert_true(fwt_header(&res, "ETag", etag, sizeof etag));
  assert_true(etag[0] == '"');
  fwt_response_free(&res);

  char headers[128];
  snprintf(headers, sizeof headers, "If-None-Match: %s\r\n", etag);
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key, headers, body, &res);
  assert_int_equal(res.status, 304);
  assert_int_equal(res.body_len, 0);
  fwt_response_free(&res);
  /* Another context gives other bytes, so the same tag is not a match. */
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key, headers,
              "{\"context\":{\"targetingKey\":\"u3\",\"country\":\"FR\"}}", &res);
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  /* A change that the answer shows changes the tag; one it does not show leaves it. */
  admin("PATCH", "/v1/projects/shop/environments/prod/flags/banner", "{\"off_variant\":\"eu\"}");
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key, headers, body, &res);
  assert_int_equal(res.status, 304);
  fwt_response_free(&res);
  admin("PATCH", "/v1/projects/shop/environments/prod/flags/checkout", "{\"enabled\":false}");
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key, headers, body, &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"value\":false,\"variant\":\"off\",\"reason\":\"DISABLED\""));
  fwt_response_free(&res);
  admin("PATCH", "/v1/projects/shop/environments/prod/flags/checkout", "{\"enabled\":true}");
}

static void v1_flags_is_for_server_keys_with_304(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/flags", server_key, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"value\":19.99}"));
  json_t *doc = parse(&res);
  assert_int_equal(json_array_size(json_object_get(doc, "flags")), 3);
  assert_int_equal(json_array_size(json_object_get(doc, "segments")), 1);
  assert_int_equal(json_array_size(json_object_get(doc, "configs")), 1);
  json_decref(doc);
  char etag[64], headers[128];
  assert_true(fwt_header(&res, "ETag", etag, sizeof etag));
  fwt_response_free(&res);
  snprintf(headers, sizeof headers, "If-None-Match: %s\r\n", etag);
  fwt_request(server.port, "GET", "/v1/flags", server_key, headers, NULL, &res);
  assert_int_equal(res.status, 304);
  fwt_response_free(&res);
  fwt_request(server.port, "GET", "/v1/flags", client_key, NULL, NULL, &res);
  assert_int_equal(res.status, 403);
  fwt_response_free(&res);
}

static void v1_evaluate_answers_values_the_key_may_see(void **state) {
  (void)state;
  struct fwt_response res;
  evaluate("/v1/evaluate", client_key,
           "{\"context\":{\"targetingKey\":\"u1\",\"email\":\"bob@shop.example\"}}", &res);
  assert_int_equal(res.status, 200);
  json_t *doc = parse(&res);
  json_t *flags = json_object_get(doc, "flags");
  assert_null(json_object_get(flags, "price"));
  assert_string_equal(json_string_value(json_object_get(json_object_get(flags, "banner"), "value")),
                      "Hello, tester");
  assert_true(json_is_true(json_object_get(json_object_get(flags, "checkout"), "value")));
  json_decref(doc);
  assert_non_null(strstr(res.body, "\"limits\":{\"value\":{\"max\": 10.50}"));
  fwt_response_free(&res);

  evaluate("/v1/evaluate", server_key, "{\"context\":{\"targetingKey\":\"u9\"}}", &res);
  doc = parse(&res);
  assert_non_null(json_object_get(json_object_get(doc, "flags"), "price"));
  json_decref(doc);
  fwt_response_free(&res);
}

static void flagsmith_endpoints_speak_flagsmith(void **state) {
  (void)state;
  char headers[256];
  snprintf(headers, sizeof headers, "X-Environment-Key: %s\r\n", client_key);
  struct fwt_response res;
  fwt_request(server.port, "GET", "/api/v1/flags/", NULL, headers, NULL, &res);
  assert_int_equal(res.status, 200);
  char updated[48];
  assert_true(fwt_header(&res, "x-flagsmith-document-updated-at", updated, sizeof updated));
  assert_true(atof(updated) > 1.7e9);
  json_t *doc = parse(&res);
  assert_int_equal(json_array_size(doc), 2);
  for (size_t i = 0; i < json_array_size(doc); i++) {
    json_t *flag = json_array_get(doc, i);
    const char *name = json_string_value(json_object_get(json_object_get(flag, "feature"), "name"));
    if (!strcmp(name, "checkout")) {
      assert_true(json_is_true(json_object_get(flag, "enabled")));
      assert_true(json_is_null(json_object_get(flag, "feature_state_value")));
    } else {
      assert_string_equal(name, "banner");
      assert_true(json_is_true(json_object_get(flag, "enabled")));
      assert_string_equal(json_string_value(json_object_get(flag, "feature_state_value")),
                          "Welcome");
    }
  }
  json_decref(doc);
  fwt_response_free(&res);

  fwt_request(
      server.port, "POST", "/api/v1/identities/", NULL, headers,
      "{\"identifier\":\"u7\",\"traits\":[{\"trait_key\":\"country\",\"trait_value\":\"NL\"},"
      "{\"trait_key\":\"gone\",\"trait_value\":null}]}",
      &res);
  assert_int_equal(res.status, 200);
  doc = parse(&res);
  assert_string_equal(json_string_value(json_object_get(doc, "identifier")), "u7");
  assert_int_equal(json_array_size(json_object_get(doc, "traits")), 1);
  assert_non_null(strstr(res.body, "\"feature_state_value\":\"Welkom\""));
  json_decref(doc);
  fwt_response_free(&res);

  fwt_request(server.port, "GET", "/api/v1/identities/?identifier=ann%40shop.example", NULL,
              headers, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"identifier\":\"ann@shop.example\""));
  fwt_response_free(&res);

  /* Without an identity a split flag shows what it serves when on (the server key sees
   * the server-only price flag). */
  char server_headers[256];
  snprintf(server_headers, sizeof server_headers, "X-Environment-Key: %s\r\n", server_key);
  fwt_request(server.port, "GET", "/api/v1/flags/", NULL, server_headers, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"name\":\"price\",\"type\":\"MULTIVARIATE\"},"
                                   "\"feature_state_value\":19.99,\"enabled\":true"));
  fwt_response_free(&res);

  fwt_request(server.port, "GET", "/api/v1/flags/", NULL, NULL, NULL, &res);
  assert_int_equal(res.status, 401);
  fwt_response_free(&res);
  fwt_request(server.port, "GET", "/api/v1/identities/", NULL, headers, NULL, &res);
  assert_int_equal(res.status, 400);
  fwt_response_free(&res);
  /* A trait cannot stand in for the identifier. */
  fwt_request(server.port, "POST", "/api/v1/identities/", NULL, headers,
              "{\"identifier\":\"u7\",\"traits\":[{\"trait_key\":\"targetingKey\","
              "\"trait_value\":\"someone-else\"}]}",
              &res);
  assert_int_equal(res.status, 400);
  fwt_response_free(&res);
}

static void browsers_get_cors_on_evaluation(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_request(server.port, "OPTIONS", "/ofrep/v1/evaluate/flags", NULL,
              "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
              "Access-Control-Request-Headers: authorization, content-type, if-none-match\r\n",
              NULL, &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key,
              "Origin: https://app.example\r\n", "{\"context\":{}}", &res);
  char expose[128];
  assert_true(fwt_header(&res, "Access-Control-Expose-Headers", expose, sizeof expose));
  assert_non_null(strstr(expose, "ETag"));
  assert_non_null(strstr(expose, "x-flagsmith-document-updated-at"));
  fwt_response_free(&res);
}

static void invalid_rules_are_refused_when_written(void **state) {
  (void)state;
  struct fwt_response res;
  const char *bad[] = {
      "{\"rules\":[{\"conditions\":[{\"attribute\":\"a\",\"operator\":\"resembles\","
      "\"value\":1}],\"variant\":\"eu\"}]}",
      "{\"rules\":[{\"conditions\":[{\"attribute\":\"a\",\"operator\":\"matches\","
      "\"value\":\"(unclosed\"}],\"variant\":\"eu\"}]}",
      "{\"rules\":[{\"conditions\":[],\"variant\":\"nowhere\"}]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fwt_request(server.port, "PATCH", "/v1/projects/shop/environments/prod/flags/banner", TOKEN,
                NULL, bad[i], &res);
    if (res.status != 422)
      fail_msg("%s: expected 422, got %d %s", bad[i], res.status, res.body);
    fwt_response_free(&res);
  }
  /* Nor can a definition drop a variant that a rule serves. */
  fwt_request(server.port, "PATCH", "/v1/projects/shop/flags/banner", TOKEN, NULL,
              "{\"variants\":[{\"key\":\"stable\",\"value\":\"Welcome\"},"
              "{\"key\":\"eu\",\"value\":\"Welkom\"}]}",
              &res);
  assert_int_equal(res.status, 409);
  assert_non_null(strstr(res.body, "variant_in_use"));
  fwt_response_free(&res);
  /* A segment's rules cannot name segments. */
  fwt_request(server.port, "PUT", "/v1/projects/shop/environments/prod/segments/staff", TOKEN, NULL,
              "{\"rules\":[{\"conditions\":[{\"segment\":\"staff\"}]}]}", &res);
  assert_int_equal(res.status, 422);
  fwt_response_free(&res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ofrep_single_flag_follows_rules_and_segments),
      cmocka_unit_test(rollouts_split_stably_and_need_a_targeting_key),
      cmocka_unit_test(ofrep_errors_follow_the_spec),
      cmocka_unit_test(ofrep_bulk_has_a_strong_etag),
      cmocka_unit_test(v1_flags_is_for_server_keys_with_304),
      cmocka_unit_test(v1_evaluate_answers_values_the_key_may_see),
      cmocka_unit_test(flagsmith_endpoints_speak_flagsmith),
      cmocka_unit_test(browsers_get_cors_on_evaluation),
      cmocka_unit_test(invalid_rules_are_refused_when_written),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
