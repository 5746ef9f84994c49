/* The management API against the real binary: every endpoint, every error code, values
 * kept byte for byte, revisions without gaps, and everything still there after a
 * restart. Responses are parsed with jansson to check their shape. */
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_integration-test-token-0123456789"

static struct fwt_server server;

static int start_server(void **state) {
  (void)state;
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, NULL, env);
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

/* Sends a request with the admin token and returns the parsed body (caller decrefs),
 * checking the status. */
static json_t *call(const char *method, const char *path, const char *body, int expected_status) {
  struct fwt_response res;
  fwt_request(server.port, method, path, TOKEN, NULL, body, &res);
  if (res.status != expected_status)
    fail_msg("%s %s: expected %d, got %d: %s", method, path, expected_status, res.status, res.body);
  json_error_t error;
  /* Users' numbers may exceed what jansson's integers hold: read every number as real. */
  json_t *doc = json_loads(res.body, JSON_DECODE_INT_AS_REAL, &error);
  if (!doc)
    fail_msg("%s %s: the body is not JSON (%s): %s", method, path, error.text, res.body);
  fwt_response_free(&res);
  return doc;
}

/* Checks that a request fails with `status` and error `code`. */
static void expect_error(const char *method, const char *path, const char *token,
                         const char *headers, const char *body, int status, const char *code) {
  struct fwt_response res;
  fwt_request(server.port, method, path, token, headers, body, &res);
  if (res.status != status)
    fail_msg("%s %s: expected %d, got %d: %s", method, path, status, res.status, res.body);
  char expected[96];
  snprintf(expected, sizeof expected, "{\"error\":{\"code\":\"%s\"", code);
  if (!strstr(res.body, expected))
    fail_msg("%s %s: expected code %s, got %s", method, path, code, res.body);
  fwt_response_free(&res);
}

static const char *string_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  assert_non_null(value);
  assert_true(json_is_string(value));
  return json_string_value(value);
}

static json_int_t integer_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  assert_non_null(value);
  assert_true(json_is_number(value));
  return (json_int_t)json_number_value(value);
}

static void projects_are_created_read_listed_and_updated(void **state) {
  (void)state;
  json_t *doc = call("POST", "/v1/projects", "{\"key\":\"shop\",\"name\":\"Shop\"}", 201);
  assert_string_equal(string_of(doc, "key"), "shop");
  assert_string_equal(string_of(doc, "name"), "Shop");
  assert_int_equal(integer_of(doc, "version"), 1);
  json_decref(doc);
  for (int i = 0; i < 3; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"p%d\"}", i);
    json_decref(call("POST", "/v1/projects", body, 201));
  }

  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/projects/shop", TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  char etag[32];
  assert_true(fwt_header(&res, "ETag", etag, sizeof etag));
  assert_string_equal(etag, "\"1\"");
  fwt_response_free(&res);

  /* Pages of two, in key order: p0 p1 | p2 shop. */
  doc = call("GET", "/v1/projects?limit=2", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  assert_string_equal(string_of(json_array_get(json_object_get(doc, "items"), 0), "key"), "p0");
  assert_string_equal(string_of(doc, "next"), "p1");
  json_decref(doc);
  doc = call("GET", "/v1/projects?limit=2&after=p1", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  assert_string_equal(string_of(json_array_get(json_object_get(doc, "items"), 1), "key"), "shop");
  assert_true(json_is_null(json_object_get(doc, "next")));
  json_decref(doc);

  doc = call("PATCH", "/v1/projects/shop", "{\"description\":\"the web shop\"}", 200);
  assert_int_equal(integer_of(doc, "version"), 2);
  assert_string_equal(string_of(doc, "name"), "Shop");
  assert_string_equal(string_of(doc, "description"), "the web shop");
  json_decref(doc);
  /* A description can be cleared; a PATCH that names nothing is refused. */
  doc = call("PATCH", "/v1/projects/p0", "{\"description\":\"\"}", 200);
  assert_string_equal(string_of(doc, "description"), "");
  json_decref(doc);
  expect_error("PATCH", "/v1/projects/p0", TOKEN, NULL, "{}", 422, "missing_field");
  /* A stale version is a conflict, by header or by field, and changes nothing. */
  expect_error("PATCH", "/v1/projects/shop", TOKEN, "If-Match: \"1\"\r\n", "{\"name\":\"Nope\"}",
               409, "version_conflict");
  expect_error("PATCH", "/v1/projects/shop", TOKEN, NULL, "{\"name\":\"Nope\",\"version\":1}", 409,
               "version_conflict");
  doc = call("GET", "/v1/projects/shop", NULL, 200);
  assert_string_equal(string_of(doc, "name"), "Shop");
  json_decref(doc);
}

static void bad_project_requests_get_clear_errors(void **state) {
  (void)state;
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"shop\"}", 409, "duplicate_key");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"bad key!\"}", 422, "invalid_field");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"ok\",\"colour\":\"red\"}", 422,
               "unknown_field");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"name\":\"no key\"}", 422, "missing_field");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":42}", 422, "invalid_field");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"x\",}", 400, "malformed_json");
  expect_error("POST", "/v1/projects", TOKEN, NULL, "[1,2]", 400, "malformed_json");
  expect_error("POST", "/v1/projects", NULL, NULL, "{\"key\":\"x\"}", 401, "unauthorized");
  expect_error("POST", "/v1/projects", "fw_adm_not-a-real-token-at-all-000000", NULL,
               "{\"key\":\"x\"}", 401, "unauthorized");
  expect_error("GET", "/v1/projects/nope", TOKEN, NULL, NULL, 404, "not_found");
  expect_error("GET", "/v1/projects?limit=lots", TOKEN, NULL, NULL, 400, "invalid_query");
  expect_error("GET", "/v1/projects?limit=0", TOKEN, NULL, NULL, 400, "invalid_query");
  expect_error("GET", "/v1/projects?after=not%20a%20key", TOKEN, NULL, NULL, 400, "invalid_query");
  /* Nothing above created anything. */
  json_t *doc = call("GET", "/v1/projects", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 4);
  json_decref(doc);
}

static char server_key[128];

static void environments_come_with_keys_shown_once(void **state) {
  (void)state;
  json_t *doc = call("POST", "/v1/projects/shop/environments",
                     "{\"key\":\"prod\",\"name\":\"Production\"}", 201);
  assert_string_equal(string_of(doc, "key"), "prod");
  assert_int_equal(integer_of(doc, "revision"), 1);
  assert_true(strncmp(string_of(doc, "server_key"), "fw_srv_", 7) == 0);
  assert_true(strncmp(string_of(doc, "client_key"), "fw_cli_", 7) == 0);
  assert_int_equal(strlen(string_of(doc, "server_key")), 7 + 43);
  snprintf(server_key, sizeof server_key, "%s", string_of(doc, "server_key"));
  json_decref(doc);
  json_decref(call("POST", "/v1/projects/shop/environments", "{\"key\":\"staging\"}", 201));

  doc = call("GET", "/v1/projects/shop/environments/prod", NULL, 200);
  assert_null(json_object_get(doc, "server_key"));
  assert_null(json_object_get(doc, "client_key"));
  json_decref(doc);
  doc = call("GET", "/v1/projects/shop/environments", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  json_decref(doc);
  doc = call("PATCH", "/v1/projects/shop/environments/staging", "{\"name\":\"Staging\"}", 200);
  assert_string_equal(string_of(doc, "name"), "Staging");
  assert_int_equal(integer_of(doc, "version"), 2);
  assert_int_equal(integer_of(doc, "revision"), 2); /* renaming is a revision too */
  json_decref(doc);
  expect_error("PATCH", "/v1/projects/shop/environments/staging", TOKEN, "If-Match: \"1\"\r\n",
               "{\"name\":\"Old\"}", 409, "version_conflict");

  expect_error("POST", "/v1/projects/shop/environments", TOKEN, NULL, "{\"key\":\"prod\"}", 409,
               "duplicate_key");
  expect_error("POST", "/v1/projects/none/environments", TOKEN, NULL, "{\"key\":\"prod\"}", 404,
               "not_found");
  /* An environment key is not an admin token. */
  expect_error("GET", "/v1/projects", server_key, NULL, NULL, 403, "forbidden");
}

/* The raw body of a GET with the admin token (caller frees), checking it is a 200. */
static char *raw_get(const char *path) {
  struct fwt_response res;
  fwt_request(server.port, "GET", path, TOKEN, NULL, NULL, &res);
  if (res.status != 200)
    fail_msg("GET %s: expected 200, got %d: %s", path, res.status, res.body);
  char *body = strdup(res.body);
  assert_non_null(body);
  fwt_response_free(&res);
  return body;
}

/* Checks that `body` is refused with 422 invalid_field, with a message that names the
 * field and holds `needle` (the bad entry or the reason). */
static void expect_bad_origins(const char *method, const char *path, const char *body,
                               const char *needle) {
  struct fwt_response res;
  fwt_request(server.port, method, path, TOKEN, NULL, body, &res);
  if (res.status != 422 || !strstr(res.body, "{\"error\":{\"code\":\"invalid_field\""))
    fail_msg("%s %s %s: expected 422 invalid_field, got %d: %s", method, path, body, res.status,
             res.body);
  json_error_t error;
  json_t *doc = json_loads(res.body, 0, &error);
  if (!doc)
    fail_msg("%s %s: the error is not JSON (%s): %s", method, path, error.text, res.body);
  const char *message = string_of(json_object_get(doc, "error"), "message");
  if (!strstr(message, "allowed_origins") || !strstr(message, needle))
    fail_msg("%s %s %s: expected a message naming allowed_origins and %s, got %s", method, path,
             body, needle, message);
  json_decref(doc);
  fwt_response_free(&res);
}

static void environments_keep_an_origin_allowlist(void **state) {
  (void)state;
  const char *path = "/v1/projects/web/environments/site";
  json_decref(call("POST", "/v1/projects", "{\"key\":\"web\"}", 201));
  json_t *doc = call("POST", "/v1/projects/web/environments",
                     "{\"key\":\"site\",\"name\":\"Site\","
                     "\"allowed_origins\":[\"https://app.example\"]}",
                     201);
  json_t *origins = json_object_get(doc, "allowed_origins");
  assert_int_equal(json_array_size(origins), 1);
  assert_string_equal(json_string_value(json_array_get(origins, 0)), "https://app.example");
  json_decref(doc);
  /* Without a list, or with an empty one, the member is left out. */
  doc = call("POST", "/v1/projects/web/environments", "{\"key\":\"plain\"}", 201);
  assert_null(json_object_get(doc, "allowed_origins"));
  json_decref(doc);
  doc = call("POST", "/v1/projects/web/environments", "{\"key\":\"open\",\"allowed_origins\":[]}",
             201);
  assert_null(json_object_get(doc, "allowed_origins"));
  json_decref(doc);
  expect_bad_origins("POST", "/v1/projects/web/environments",
                     "{\"key\":\"refused\",\"allowed_origins\":[\"https://app.example/\"]}",
                     "'https://app.example/' must not end with '/'");
  expect_error("GET", "/v1/projects/web/environments/refused", TOKEN, NULL, NULL, 404, "not_found");

  /* A PATCH of the list alone is a change; the list is kept byte for byte. */
  doc = call("PATCH", path,
             "{\"allowed_origins\":[\"https://app.example\", \"http://localhost:3000\"]}", 200);
  assert_string_equal(string_of(doc, "name"), "Site");
  assert_int_equal(integer_of(doc, "version"), 2);
  assert_int_equal(integer_of(doc, "revision"), 2);
  json_decref(doc);
  char *body = raw_get(path);
  assert_non_null(
      strstr(body, "\"allowed_origins\":[\"https://app.example\", \"http://localhost:3000\"]"));
  free(body);
  doc = call("GET", "/v1/projects/web/environments", NULL, 200);
  json_t *items = json_object_get(doc, "items");
  assert_int_equal(json_array_size(items), 3);
  assert_null(json_object_get(json_array_get(items, 0), "allowed_origins")); /* open */
  assert_null(json_object_get(json_array_get(items, 1), "allowed_origins")); /* plain */
  assert_int_equal(json_array_size(json_object_get(json_array_get(items, 2), "allowed_origins")),
                   2);
  json_decref(doc);

  /* A rename keeps the list; the change log records the environment with it. */
  doc = call("PATCH", path, "{\"name\":\"Website\"}", 200);
  assert_string_equal(string_of(doc, "name"), "Website");
  assert_int_equal(integer_of(doc, "version"), 3);
  origins = json_object_get(doc, "allowed_origins");
  assert_int_equal(json_array_size(origins), 2);
  assert_string_equal(json_string_value(json_array_get(origins, 1)), "http://localhost:3000");
  json_decref(doc);
  doc = call("GET", "/v1/projects/web/environments/site/changes?after=2", NULL, 200);
  json_t *change = json_array_get(json_object_get(doc, "items"), 0);
  assert_string_equal(string_of(change, "kind"), "environment_updated");
  assert_int_equal(
      json_array_size(json_object_get(json_object_get(change, "object"), "allowed_origins")), 2);
  json_decref(doc);

  /* Every refusal names the field and the entry, and changes nothing. */
  char *before = raw_get(path);
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":\"https://app.example\"}",
                     "must be null or an array");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":{}}", "must be null or an array");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://app.example\",42]}",
                     "allowed_origins[1] (42) must be a string");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"ftp://app.example\"]}",
                     "'ftp://app.example' must start with http:// or https://");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"app.example\"]}",
                     "'app.example' must start with http:// or https://");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://app.example/login\"]}",
                     "'https://app.example/login' must not have a path");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://app.example/\"]}",
                     "'https://app.example/' must not end with '/'");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://App.example\"]}",
                     "'https://App.example' must be lowercase");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://app.example:443\"]}",
                     "default port");
  expect_bad_origins("PATCH", path, "{\"allowed_origins\":[\"https://app.example:08080\"]}",
                     "leading zero");
  expect_bad_origins(
      "PATCH", path,
      "{\"allowed_origins\":[\"https://a.example\",\"https://b.example\",\"https://a.example\"]}",
      "allowed_origins[2] 'https://a.example' repeats allowed_origins[0]");
  char many[4096];
  size_t used = (size_t)snprintf(many, sizeof many, "{\"allowed_origins\":[");
  for (int i = 0; i < 101; i++)
    used += (size_t)snprintf(many + used, sizeof many - used, "%s\"https://h%d.example\"",
                             i ? "," : "", i);
  snprintf(many + used, sizeof many - used, "]}");
  expect_bad_origins("PATCH", path, many, "at most 100 origins");
  /* With a name in the same body, the name is not taken either. */
  expect_bad_origins("PATCH", path,
                     "{\"name\":\"Nope\",\"allowed_origins\":[\"http://x.example/\"]}",
                     "'http://x.example/'");
  char *after = raw_get(path);
  assert_string_equal(after, before);
  free(before);
  free(after);
  /* One hundred is the limit, not over it: drop the last entry. */
  memcpy(strrchr(many, ','), "]}", 3);
  doc = call("PATCH", path, many, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "allowed_origins")), 100);
  json_decref(doc);

  /* null and [] remove the list, and keep the name. */
  doc = call("PATCH", path, "{\"allowed_origins\":null}", 200);
  assert_null(json_object_get(doc, "allowed_origins"));
  assert_string_equal(string_of(doc, "name"), "Website");
  json_decref(doc);
  json_decref(call("PATCH", path, "{\"allowed_origins\":[\"http://[::1]:5173\"]}", 200));
  doc = call("PATCH", path, "{\"allowed_origins\":[]}", 200);
  assert_null(json_object_get(doc, "allowed_origins"));
  json_decref(doc);
  body = raw_get(path);
  assert_null(strstr(body, "allowed_origins"));
  free(body);
  /* Left set for the restart at the end. */
  json_decref(
      call("PATCH", path, "{\"allowed_origins\":[\"https://app.example\"],\"version\":7}", 200));
  expect_error("PATCH", path, TOKEN, NULL, "{}", 422, "missing_field");
}

static void flags_are_created_in_every_environment(void **state) {
  (void)state;
  json_t *doc =
      call("POST", "/v1/projects/shop/flags",
           "{\"key\":\"new-checkout\",\"type\":\"boolean\",\"client_visible\":true}", 201);
  json_t *variants = json_object_get(doc, "variants");
  assert_int_equal(json_array_size(variants), 2);
  assert_string_equal(string_of(json_array_get(variants, 0), "key"), "on");
  assert_true(json_is_true(json_object_get(json_array_get(variants, 0), "value")));
  assert_true(json_is_true(json_object_get(doc, "client_visible")));
  json_decref(doc);

  const char *envs[] = {"prod", "staging"};
  for (size_t i = 0; i < 2; i++) {
    char path[128];
    snprintf(path, sizeof path, "/v1/projects/shop/environments/%s/flags/new-checkout", envs[i]);
    doc = call("GET", path, NULL, 200);
    assert_true(json_is_false(json_object_get(doc, "enabled")));
    assert_string_equal(string_of(doc, "on_variant"), "on");
    assert_string_equal(string_of(doc, "off_variant"), "off");
    /* The flag's creation is each environment's latest revision. */
    json_int_t revision = integer_of(doc, "revision");
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/projects/shop/environments/%s", envs[i]);
    doc = call("GET", path, NULL, 200);
    assert_int_equal(integer_of(doc, "revision"), revision);
    json_decref(doc);
  }

  doc = call("POST", "/v1/projects/shop/flags",
             "{\"key\":\"price-tier\",\"type\":\"number\",\"variants\":["
             "{\"key\":\"low\",\"value\":19.99},{\"key\":\"high\",\"value\":1e2}],"
             "\"tags\":[\"pricing\"]}",
             201);
  json_decref(doc);
  /* The user's numbers come back exactly as written. */
  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/projects/shop/flags/price-tier", TOKEN, NULL, NULL, &res);
  assert_non_null(strstr(res.body, "{\"key\":\"low\",\"value\":19.99}"));
  assert_non_null(strstr(res.body, "{\"key\":\"high\",\"value\":1e2}"));
  fwt_response_free(&res);

  doc = call("GET", "/v1/projects/shop/environments/prod/flags", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  json_decref(doc);
  doc = call("GET", "/v1/projects/shop/flags", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  json_decref(doc);
}

static void bad_flags_are_refused(void **state) {
  (void)state;
  const char *path = "/v1/projects/shop/flags";
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"new-checkout\"}", 409, "duplicate_key");
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"s\",\"type\":\"string\"}", 422,
               "missing_field");
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"s\",\"type\":\"colour\"}", 422,
               "invalid_field");
  expect_error("POST", path, TOKEN, NULL,
               "{\"key\":\"s\",\"type\":\"string\",\"variants\":[{\"key\":\"a\",\"value\":1}]}",
               422, "invalid_field");
  expect_error("POST", path, TOKEN, NULL,
               "{\"key\":\"s\",\"type\":\"string\",\"variants\":[{\"key\":\"a\",\"value\":\"x\"},"
               "{\"key\":\"a\",\"value\":\"y\"}]}",
               422, "invalid_field");
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"s\",\"tags\":[\"no spaces\"]}", 422,
               "invalid_field");
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"s\",\"tags\":[\"a\",\"a\"]}", 422,
               "invalid_field");
  expect_error("POST", path, TOKEN, NULL, "{\"key\":\"s\",\"client_visible\":\"yes\"}", 422,
               "invalid_field");
  expect_error("GET", "/v1/projects/shop/flags/absent", TOKEN, NULL, NULL, 404, "not_found");
}

static void flag_state_is_patched_and_toggled_with_revisions(void **state) {
  (void)state;
  const char *path = "/v1/projects/shop/environments/prod/flags/new-checkout";
  json_t *doc = call("PATCH", path, "{\"enabled\":true}", 200);
  assert_true(json_is_true(json_object_get(doc, "enabled")));
  json_int_t revision = integer_of(doc, "revision");
  json_int_t version = integer_of(doc, "state_version");
  json_decref(doc);

  doc = call("POST", "/v1/projects/shop/environments/prod/flags/new-checkout/toggle", NULL, 200);
  assert_true(json_is_false(json_object_get(doc, "enabled")));
  assert_int_equal(integer_of(doc, "revision"), revision + 1);
  assert_int_equal(integer_of(doc, "state_version"), version + 1);
  json_decref(doc);

  /* Asking for what already is changes nothing: same version, same revision. */
  doc = call("PATCH", path, "{\"enabled\":false}", 200);
  assert_int_equal(integer_of(doc, "revision"), revision + 1);
  assert_int_equal(integer_of(doc, "state_version"), version + 1);
  json_decref(doc);

  /* A toggle conditional on a version already gone is refused: a retry cannot flip a
   * kill switch back. */
  char stale[64];
  snprintf(stale, sizeof stale, "If-Match: \"%lld\"\r\n", (long long)version);
  expect_error("POST", "/v1/projects/shop/environments/prod/flags/new-checkout/toggle", TOKEN,
               stale, NULL, 409, "version_conflict");
  doc = call("GET", path, NULL, 200);
  assert_true(json_is_false(json_object_get(doc, "enabled")));
  json_decref(doc);

  /* Staging was not touched. */
  doc = call("GET", "/v1/projects/shop/environments/staging/flags/new-checkout", NULL, 200);
  assert_true(json_is_false(json_object_get(doc, "enabled")));
  assert_int_equal(integer_of(doc, "state_version"), 1);
  json_decref(doc);

  doc = call("PATCH", "/v1/projects/shop/environments/prod/flags/price-tier",
             "{\"on_variant\":\"high\",\"rollout\":[{\"variant\":\"low\",\"weight\":33.333},"
             "{\"variant\":\"high\",\"weight\":66.667}],\"rules\":[]}",
             200);
  assert_string_equal(string_of(doc, "on_variant"), "high");
  json_decref(doc);

  const char *bad[][2] = {
      {"{\"on_variant\":\"medium\"}", "invalid_field"},
      {"{\"rollout\":[{\"variant\":\"low\",\"weight\":50}]}", "invalid_field"},
      {"{\"rollout\":[{\"variant\":\"low\",\"weight\":50.0001},{\"variant\":\"high\",\"weight\":"
       "49.9999}]}",
       "invalid_field"},
      {"{\"rules\":{}}", "invalid_field"},
      {"{\"enabled\":1}", "invalid_field"},
      {"{\"enabled\":true,\"extra\":1}", "unknown_field"},
      {"{}", "missing_field"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_error("PATCH", "/v1/projects/shop/environments/prod/flags/price-tier", TOKEN, NULL,
                 bad[i][0], 422, bad[i][1]);
  expect_error("PATCH", "/v1/projects/shop/environments/prod/flags/absent", TOKEN, NULL,
               "{\"enabled\":true}", 404, "not_found");
  expect_error("PATCH", "/v1/projects/shop/environments/qa/flags/new-checkout", TOKEN, NULL,
               "{\"enabled\":true}", 404, "not_found");
}

static void configs_keep_their_bytes(void **state) {
  (void)state;
  const char *path = "/v1/projects/shop/environments/prod/configs/prices";
  struct fwt_response res;
  fwt_request(server.port, "PUT", path, TOKEN, NULL, "{\"basic\": 19.99, \"pro\": 49.990}", &res);
  assert_int_equal(res.status, 201);
  assert_non_null(strstr(res.body, "\"value\":{\"basic\": 19.99, \"pro\": 49.990}"));
  fwt_response_free(&res);

  /* An envelope sets the value and can be conditional. */
  fwt_request(server.port, "PUT", path, TOKEN, NULL,
              "{\"value\":[12345678901234567890, 0.1],\"version\":1}", &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"value\":[12345678901234567890, 0.1]"));
  assert_non_null(strstr(res.body, "\"version\":2"));
  fwt_response_free(&res);
  expect_error("PUT", path, TOKEN, NULL, "{\"value\":1,\"version\":1}", 409, "version_conflict");

  fwt_request(server.port, "PUT", "/v1/projects/shop/environments/prod/configs/prompt", TOKEN,
              "Content-Type: text/plain; charset=utf-8\r\n", "Say \"hi\"\n\u00e9", &res);
  assert_int_equal(res.status, 201);
  assert_non_null(strstr(res.body, "\"content_type\":\"text/plain\""));
  assert_non_null(strstr(res.body, "\"value\":\"Say \\\"hi\\\"\\u000a\u00e9\""));
  fwt_response_free(&res);

  fwt_request(server.port, "GET", path, TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "[12345678901234567890, 0.1]"));
  fwt_response_free(&res);

  expect_error("PUT", path, TOKEN, NULL, "{\"value\":", 400, "malformed_json");
  expect_error("PUT", path, TOKEN, "Content-Type: application/xml\r\n", "<a/>", 415,
               "unsupported_media_type");
  expect_error("PUT", "/v1/projects/shop/environments/prod/configs/bad%20key", TOKEN, NULL, "1",
               404, "not_found");
  expect_error("PUT", "/v1/projects/shop/environments/prod/configs/t", TOKEN,
               "Content-Type: text/plain\r\n", "\xff\xfe", 422, "invalid_value");
  json_t *doc = call("GET", "/v1/projects/shop/environments/prod/configs", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  json_decref(doc);
}

/* Reads the whole change log of `env` and checks revisions run 1, 2, 3... without gaps;
 * returns the last. */
static json_int_t check_change_log(const char *env) {
  json_int_t expected = 1, after = 0;
  for (int page = 0; page < 1000; page++) {
    char path[160];
    snprintf(path, sizeof path, "/v1/projects/shop/environments/%s/changes?after=%lld&limit=3", env,
             (long long)after);
    json_t *doc = call("GET", path, NULL, 200);
    json_t *items = json_object_get(doc, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
      json_t *item = json_array_get(items, i);
      assert_int_equal(integer_of(item, "revision"), expected);
      /* Who made each change is recorded: the first admin, or the editor's token. */
      const char *actor = string_of(item, "actor");
      if (strcmp(actor, "token:first-admin") && strcmp(actor, "token:flagger"))
        fail_msg("unexpected actor %s", actor);
      expected++;
    }
    json_t *next = json_object_get(doc, "next_after");
    bool more = json_is_number(next);
    if (more)
      after = (json_int_t)json_number_value(next);
    json_decref(doc);
    if (!more)
      return expected - 1;
  }
  fail_msg("the change log did not end");
  return 0;
}

static void change_log_pages_without_gaps(void **state) {
  (void)state;
  json_int_t last = check_change_log("prod");
  json_t *doc = call("GET", "/v1/projects/shop/environments/prod", NULL, 200);
  assert_int_equal(integer_of(doc, "revision"), last);
  json_decref(doc);
  doc = call("GET", "/v1/projects/shop/environments/prod/changes?after=1&limit=1", NULL, 200);
  json_t *first = json_array_get(json_object_get(doc, "items"), 0);
  assert_string_equal(string_of(first, "kind"), "flag_created");
  assert_string_equal(string_of(first, "key"), "new-checkout");
  assert_true(json_is_false(json_object_get(json_object_get(first, "object"), "enabled")));
  json_decref(doc);
}

static void flag_definitions_change_in_every_environment(void **state) {
  (void)state;
  json_t *before = call("GET", "/v1/projects/shop/environments/staging", NULL, 200);
  json_int_t staging_revision = integer_of(before, "revision");
  json_decref(before);
  json_t *doc = call("PATCH", "/v1/projects/shop/flags/price-tier",
                     "{\"tags\":[\"pricing\",\"q4\"],\"client_visible\":true}", 200);
  assert_int_equal(integer_of(doc, "version"), 2);
  assert_int_equal(json_array_size(json_object_get(doc, "tags")), 2);
  json_decref(doc);
  /* One revision in each environment, carrying the new definition. */
  doc = call("GET", "/v1/projects/shop/environments/staging/flags/price-tier", NULL, 200);
  assert_int_equal(integer_of(doc, "revision"), staging_revision + 1);
  assert_true(json_is_true(json_object_get(doc, "client_visible")));
  json_decref(doc);

  /* prod serves "high" and rolls out over both: dropping either is refused, naming prod. */
  struct fwt_response res;
  fwt_request(server.port, "PATCH", "/v1/projects/shop/flags/price-tier", TOKEN, NULL,
              "{\"variants\":[{\"key\":\"low\",\"value\":1}]}", &res);
  assert_int_equal(res.status, 409);
  assert_non_null(strstr(res.body, "variant_in_use"));
  assert_non_null(strstr(res.body, "'prod'"));
  fwt_response_free(&res);
  expect_error("PATCH", "/v1/projects/shop/flags/price-tier", TOKEN, NULL, "{\"type\":\"string\"}",
               422, "invalid_field");
  expect_error("PATCH", "/v1/projects/shop/flags/price-tier", TOKEN, NULL,
               "{\"variants\":[{\"key\":\"low\",\"value\":\"cheap\"}]}", 422, "invalid_field");
  expect_error("PATCH", "/v1/projects/shop/flags/price-tier", TOKEN, "If-Match: \"1\"\r\n",
               "{\"name\":\"x\"}", 409, "version_conflict");
  /* Adding a variant is fine. */
  doc = call("PATCH", "/v1/projects/shop/flags/price-tier",
             "{\"variants\":[{\"key\":\"low\",\"value\":19.99},{\"key\":\"high\",\"value\":1e2},"
             "{\"key\":\"mid\",\"value\":50}]}",
             200);
  assert_int_equal(json_array_size(json_object_get(doc, "variants")), 3);
  json_decref(doc);
}

static void deletions_are_logged_and_guarded(void **state) {
  (void)state;
  json_decref(call("PUT", "/v1/projects/shop/environments/prod/configs/temp", "1", 201));
  struct fwt_response res;
  fwt_request(server.port, "DELETE", "/v1/projects/shop/environments/prod/configs/temp", TOKEN,
              NULL, NULL, &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  expect_error("GET", "/v1/projects/shop/environments/prod/configs/temp", TOKEN, NULL, NULL, 404,
               "not_found");
  expect_error("DELETE", "/v1/projects/shop/environments/prod/configs/temp", TOKEN, NULL, NULL, 404,
               "not_found");

  json_decref(call("POST", "/v1/projects/shop/flags", "{\"key\":\"short-lived\"}", 201));
  json_t *env = call("GET", "/v1/projects/shop/environments/staging", NULL, 200);
  json_int_t revision = integer_of(env, "revision");
  json_decref(env);
  fwt_request(server.port, "DELETE", "/v1/projects/shop/flags/short-lived", TOKEN, NULL, NULL,
              &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  expect_error("GET", "/v1/projects/shop/environments/staging/flags/short-lived", TOKEN, NULL, NULL,
               404, "not_found");
  char path[160];
  snprintf(path, sizeof path, "/v1/projects/shop/environments/staging/changes?after=%lld",
           (long long)revision);
  json_t *doc = call("GET", path, NULL, 200);
  json_t *item = json_array_get(json_object_get(doc, "items"), 0);
  assert_string_equal(string_of(item, "kind"), "flag_deleted");
  assert_string_equal(string_of(item, "key"), "short-lived");
  assert_true(json_is_null(json_object_get(item, "object")));
  json_decref(doc);

  /* A project that still has environments and flags names them instead of vanishing. */
  fwt_request(server.port, "DELETE", "/v1/projects/shop", TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 409);
  assert_non_null(strstr(res.body, "\"code\":\"in_use\""));
  assert_non_null(strstr(res.body, "environment 'prod'"));
  assert_non_null(strstr(res.body, "flag 'new-checkout'"));
  fwt_response_free(&res);

  json_decref(call("POST", "/v1/projects", "{\"key\":\"scratch\"}", 201));
  /* Segments count as what a project still holds. */
  json_decref(call("POST", "/v1/projects/scratch/segments", "{\"key\":\"s1\"}", 201));
  fwt_request(server.port, "DELETE", "/v1/projects/scratch", TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 409);
  assert_non_null(strstr(res.body, "segment 's1'"));
  fwt_response_free(&res);
  fwt_request(server.port, "DELETE", "/v1/projects/scratch/segments/s1", TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  json_decref(call("POST", "/v1/projects/scratch/environments", "{\"key\":\"tmp\"}", 201));
  fwt_request(server.port, "DELETE", "/v1/projects/scratch/environments/tmp", TOKEN, NULL, NULL,
              &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  fwt_request(server.port, "DELETE", "/v1/projects/scratch", TOKEN, "If-Match: \"1\"\r\n", NULL,
              &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  expect_error("GET", "/v1/projects/scratch", TOKEN, NULL, NULL, 404, "not_found");
}

/* Issues a token with `role` and returns its text (static storage per role). */
static const char *issue(const char *name, const char *role, const char *extra) {
  static char tokens[3][128];
  static int next;
  char body[160];
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"role\":\"%s\"%s}", name, role, extra);
  json_t *doc = call("POST", "/v1/tokens", body, 201);
  char *slot = tokens[next++ % 3];
  snprintf(slot, 128, "%s", string_of(doc, "token"));
  assert_true(strncmp(slot, "fw_adm_", 7) == 0);
  assert_string_equal(string_of(doc, "role"), role);
  json_decref(doc);
  return slot;
}

static void roles_limit_what_tokens_may_do(void **state) {
  (void)state;
  const char *viewer = issue("reader", "viewer", "");
  const char *editor = issue("flagger", "editor", "");
  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/projects/shop/flags", viewer, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  expect_error("POST", "/v1/projects/shop/flags", viewer, NULL, "{\"key\":\"v\"}", 403,
               "forbidden");
  fwt_request(server.port, "POST", "/v1/projects/shop/flags", editor, NULL,
              "{\"key\":\"by-editor\"}", &res);
  assert_int_equal(res.status, 201);
  fwt_response_free(&res);
  expect_error("POST", "/v1/projects", editor, NULL, "{\"key\":\"e\"}", 403, "forbidden");
  expect_error("GET", "/v1/tokens", editor, NULL, NULL, 403, "forbidden");
  expect_error("POST", "/v1/tokens", TOKEN, NULL, "{\"name\":\"x\",\"role\":\"owner\"}", 422,
               "invalid_field");
  expect_error("POST", "/v1/tokens", TOKEN, NULL, "{\"name\":\"reader\",\"role\":\"viewer\"}", 409,
               "duplicate_key");

  /* The list shows ids, names and roles, never a secret. */
  fwt_request(server.port, "GET", "/v1/tokens", TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_null(strstr(res.body, "fw_adm_"));
  assert_non_null(strstr(res.body, "\"name\":\"flagger\""));
  fwt_response_free(&res);
  json_t *doc = call("GET", "/v1/tokens", NULL, 200);
  const char *editor_id = NULL, *first_id = NULL;
  json_t *items = json_object_get(doc, "items");
  for (size_t i = 0; i < json_array_size(items); i++) {
    const char *name = string_of(json_array_get(items, i), "name");
    if (!strcmp(name, "flagger"))
      editor_id = string_of(json_array_get(items, i), "id");
    if (!strcmp(name, "first-admin"))
      first_id = string_of(json_array_get(items, i), "id");
  }
  assert_non_null(editor_id);
  assert_non_null(first_id);
  char path[64];
  snprintf(path, sizeof path, "/v1/tokens/%s", editor_id);
  fwt_request(server.port, "DELETE", path, TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  /* Revoked means at once, on every connection. */
  expect_error("GET", "/v1/projects", editor, NULL, NULL, 401, "unauthorized");
  snprintf(path, sizeof path, "/v1/tokens/%s", first_id);
  expect_error("DELETE", path, TOKEN, NULL, NULL, 409, "last_admin");
  json_decref(doc);

  expect_error("POST", "/v1/tokens", TOKEN, NULL,
               "{\"name\":\"never\",\"role\":\"viewer\",\"expires_in_seconds\":0}", 422,
               "invalid_field");
  /* An admin token that expires does not count as a way back in: the first admin token
   * stays the last one that can be revoked only once another permanent one exists. */
  issue("temporary-admin", "admin", ",\"expires_in_seconds\":3600");
  expect_error("DELETE", path, TOKEN, NULL, NULL, 409, "last_admin");
  const char *brief = issue("brief", "viewer", ",\"expires_in_seconds\":1");
  fwt_request(server.port, "GET", "/v1/projects", brief, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  fwt_sleep_ms(1100);
  expect_error("GET", "/v1/projects", brief, NULL, NULL, 401, "unauthorized");
}

static void keys_rotate_with_a_grace_period_or_at_once(void **state) {
  (void)state;
  const char *keys_path = "/v1/projects/shop/environments/prod/keys";
  json_t *doc = call("GET", keys_path, NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 2);
  json_decref(doc);
  /* The original server key still answers 403 here: it is valid, just not an admin's. */
  expect_error("GET", "/v1/projects", server_key, NULL, NULL, 403, "forbidden");

  doc = call("POST", keys_path, "{\"kind\":\"server\",\"expires_in_seconds\":0}", 201);
  assert_true(strncmp(string_of(doc, "key"), "fw_srv_", 7) == 0);
  char new_key[128];
  snprintf(new_key, sizeof new_key, "%s", string_of(doc, "key"));
  json_decref(doc);
  /* Revoked at once: the old key is now unknown to every endpoint. */
  expect_error("GET", "/v1/projects", server_key, NULL, NULL, 401, "unauthorized");
  expect_error("GET", "/v1/projects", new_key, NULL, NULL, 403, "forbidden");

  doc = call("POST", keys_path, "{\"kind\":\"client\"}", 201);
  json_decref(doc);
  doc = call("GET", keys_path, NULL, 200);
  json_t *items = json_object_get(doc, "items");
  assert_int_equal(json_array_size(items), 4);
  size_t still_valid = 0, client_with_grace = 0;
  for (size_t i = 0; i < json_array_size(items); i++) {
    json_t *item = json_array_get(items, i);
    json_t *expires = json_object_get(item, "expires_at");
    if (json_is_null(expires))
      still_valid++;
    else if (!strcmp(string_of(item, "kind"), "client"))
      client_with_grace++;
  }
  assert_int_equal(still_valid, 2);       /* the two new keys */
  assert_int_equal(client_with_grace, 1); /* the old client key, good for a day */
  json_decref(doc);
  expect_error("POST", keys_path, TOKEN, NULL, "{\"kind\":\"admin\"}", 422, "invalid_field");
  expect_error("DELETE", "/v1/projects/shop/environments/prod/keys/000000000000", TOKEN, NULL, NULL,
               404, "not_found");
}

static void retried_requests_with_an_idempotency_key_run_once(void **state) {
  (void)state;
  const char *toggle = "/v1/projects/shop/environments/staging/flags/new-checkout/toggle";
  const char *key = "Idempotency-Key: toggle-7f3a\r\n";
  struct fwt_response first, again;
  fwt_request(server.port, "POST", toggle, TOKEN, key, NULL, &first);
  assert_int_equal(first.status, 200);
  char replayed[16];
  assert_false(fwt_header(&first, "Idempotent-Replayed", replayed, sizeof replayed));
  fwt_request(server.port, "POST", toggle, TOKEN, key, NULL, &again);
  assert_int_equal(again.status, 200);
  assert_true(fwt_header(&again, "Idempotent-Replayed", replayed, sizeof replayed));
  /* The same answer, and the kill switch was flipped once, not twice. */
  assert_string_equal(first.body, again.body);
  json_t *doc = call("GET", "/v1/projects/shop/environments/staging/flags/new-checkout", NULL, 200);
  assert_true(json_is_true(json_object_get(doc, "enabled")));
  json_decref(doc);
  fwt_response_free(&first);
  fwt_response_free(&again);

  expect_error("POST", "/v1/projects/shop/environments/prod/flags/new-checkout/toggle", TOKEN, key,
               NULL, 422, "idempotency_key_reused");
  expect_error("POST", toggle, TOKEN, "Idempotency-Key: has space\r\n", NULL, 400,
               "invalid_header");
  /* A read is never replayed: with a key it still shows what is there now. */
  const char *changes = "/v1/projects/shop/environments/staging/changes?after=0&limit=1000";
  fwt_request(server.port, "GET", changes, TOKEN, "Idempotency-Key: read-1\r\n", NULL, &first);
  json_decref(call("POST", toggle, NULL, 200));
  fwt_request(server.port, "GET", changes, TOKEN, "Idempotency-Key: read-1\r\n", NULL, &again);
  assert_false(fwt_header(&again, "Idempotent-Replayed", replayed, sizeof replayed));
  assert_true(again.body_len > first.body_len);
  fwt_response_free(&first);
  fwt_response_free(&again);

  /* A create retried after a lost answer gets its 201 again, and one project exists. */
  const char *create_key = "Idempotency-Key: create-once\r\n";
  fwt_request(server.port, "POST", "/v1/projects", TOKEN, create_key, "{\"key\":\"once\"}", &first);
  fwt_request(server.port, "POST", "/v1/projects", TOKEN, create_key, "{\"key\":\"once\"}", &again);
  assert_int_equal(first.status, 201);
  assert_int_equal(again.status, 201);
  assert_string_equal(first.body, again.body);
  fwt_response_free(&first);
  fwt_response_free(&again);
  /* Without the key the same create is a duplicate. */
  expect_error("POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"once\"}", 409, "duplicate_key");
}

static void segments_have_rules_per_environment(void **state) {
  (void)state;
  json_t *doc = call("POST", "/v1/projects/shop/segments",
                     "{\"key\":\"beta-users\",\"name\":\"Beta users\"}", 201);
  assert_string_equal(string_of(doc, "name"), "Beta users");
  json_decref(doc);
  expect_error("POST", "/v1/projects/shop/segments", TOKEN, NULL, "{\"key\":\"beta-users\"}", 409,
               "duplicate_key");

  const char *path = "/v1/projects/shop/environments/prod/segments/beta-users";
  doc = call("GET", path, NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "rules")), 0);
  assert_int_equal(integer_of(doc, "rules_version"), 1);
  json_decref(doc);
  doc = call("PUT", path,
             "{\"rules\":[{\"conditions\":[{\"attribute\":\"email\",\"operator\":\"ends_with\","
             "\"value\":\"@example.com\"}]}],\"version\":1}",
             200);
  assert_int_equal(integer_of(doc, "rules_version"), 2);
  json_int_t revision = integer_of(doc, "revision");
  json_decref(doc);
  expect_error("PUT", path, TOKEN, NULL, "{\"rules\":[],\"version\":1}", 409, "version_conflict");
  expect_error("PUT", path, TOKEN, NULL, "{\"rules\":{}}", 422, "invalid_field");
  expect_error("PUT", path, TOKEN, NULL, "{}", 422, "missing_field");
  /* Staging keeps its own, empty, rules. */
  doc = call("GET", "/v1/projects/shop/environments/staging/segments/beta-users", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "rules")), 0);
  json_decref(doc);

  /* The change log has it, as the environment sees it. */
  char changes[160];
  snprintf(changes, sizeof changes, "/v1/projects/shop/environments/prod/changes?after=%lld",
           (long long)revision - 1);
  doc = call("GET", changes, NULL, 200);
  json_t *item = json_array_get(json_object_get(doc, "items"), 0);
  assert_string_equal(string_of(item, "kind"), "segment_updated");
  assert_string_equal(string_of(json_object_get(item, "object"), "name"), "Beta users");
  json_decref(doc);

  doc =
      call("PATCH", "/v1/projects/shop/segments/beta-users", "{\"description\":\"testers\"}", 200);
  assert_int_equal(integer_of(doc, "version"), 2);
  json_decref(doc);
  doc = call("GET", path, NULL, 200);
  assert_string_equal(string_of(doc, "description"), "testers");
  assert_int_equal(json_array_size(json_object_get(doc, "rules")), 1); /* rules kept */
  json_decref(doc);

  /* A flag that targets the segment keeps it from being deleted. */
  json_decref(call(
      "PATCH", "/v1/projects/shop/environments/staging/flags/new-checkout",
      "{\"rules\":[{\"conditions\":[{\"segment\":\"beta-users\"}],\"variant\":\"on\"}]}", 200));
  struct fwt_response res;
  fwt_request(server.port, "DELETE", "/v1/projects/shop/segments/beta-users", TOKEN, NULL, NULL,
              &res);
  assert_int_equal(res.status, 409);
  assert_non_null(strstr(res.body, "flag 'new-checkout' in 'staging'"));
  fwt_response_free(&res);
  json_decref(call("PATCH", "/v1/projects/shop/environments/staging/flags/new-checkout",
                   "{\"rules\":[]}", 200));
  fwt_request(server.port, "DELETE", "/v1/projects/shop/segments/beta-users", TOKEN, NULL, NULL,
              &res);
  assert_int_equal(res.status, 204);
  fwt_response_free(&res);
  expect_error("GET", path, TOKEN, NULL, NULL, 404, "not_found");

  /* An environment made later gets empty rules for the segments there are. */
  json_decref(call("POST", "/v1/projects/shop/segments", "{\"key\":\"staff\"}", 201));
  json_decref(call("POST", "/v1/projects/shop/environments", "{\"key\":\"dev\"}", 201));
  doc = call("GET", "/v1/projects/shop/environments/dev/segments", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 1);
  assert_int_equal(
      json_array_size(json_object_get(json_array_get(json_object_get(doc, "items"), 0), "rules")),
      0);
  json_decref(doc);
}

static void the_writer_reports_its_work(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_request(server.port, "GET", "/metrics", NULL, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  const char *ok = strstr(res.body, "flagwire_writes_total{outcome=\"ok\"} ");
  assert_non_null(ok);
  assert_true(atol(ok + strlen("flagwire_writes_total{outcome=\"ok\"} ")) > 20);
  assert_non_null(strstr(res.body, "flagwire_writes_total{outcome=\"replayed\"} "));
  assert_non_null(strstr(res.body, "flagwire_write_group_size_count "));
  assert_non_null(strstr(res.body, "flagwire_write_commit_seconds_bucket{le=\"+Inf\"} "));
  fwt_response_free(&res);
}

static void everything_survives_a_restart(void **state) {
  (void)state;
  json_t *before = call("GET", "/v1/projects/shop/environments/prod", NULL, 200);
  json_int_t revision = integer_of(before, "revision");
  json_decref(before);
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGTERM, FWT_WAIT_MS), 0);

  /* Same data directory, a new process, no new token printed. */
  char data_arg[320];
  snprintf(data_arg, sizeof data_arg, "%s", server.data_dir);
  struct fwt_server again;
  const char *args[] = {"--data", data_arg, NULL};
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&again, args, env);
  server.port = again.port;
  json_t *doc = call("GET", "/v1/projects/shop/environments/prod", NULL, 200);
  assert_int_equal(integer_of(doc, "revision"), revision);
  json_decref(doc);
  doc = call("GET", "/v1/projects/web/environments/site", NULL, 200);
  json_t *origins = json_object_get(doc, "allowed_origins");
  assert_int_equal(json_array_size(origins), 1);
  assert_string_equal(json_string_value(json_array_get(origins, 0)), "https://app.example");
  json_decref(doc);
  struct fwt_response res;
  fwt_request(again.port, "GET", "/v1/projects/shop/environments/prod/configs/prices", TOKEN, NULL,
              NULL, &res);
  assert_non_null(strstr(res.body, "[12345678901234567890, 0.1]"));
  fwt_response_free(&res);
  /* Revisions go on from where they were. */
  doc = call("POST", "/v1/projects/shop/environments/prod/flags/new-checkout/toggle", NULL, 200);
  assert_int_equal(integer_of(doc, "revision"), revision + 1);
  json_decref(doc);
  assert_int_equal(check_change_log("prod"), revision + 1);
  fwt_server_cleanup(&again);
  server.port = 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(projects_are_created_read_listed_and_updated),
      cmocka_unit_test(bad_project_requests_get_clear_errors),
      cmocka_unit_test(environments_come_with_keys_shown_once),
      cmocka_unit_test(environments_keep_an_origin_allowlist),
      cmocka_unit_test(flags_are_created_in_every_environment),
      cmocka_unit_test(bad_flags_are_refused),
      cmocka_unit_test(flag_state_is_patched_and_toggled_with_revisions),
      cmocka_unit_test(configs_keep_their_bytes),
      cmocka_unit_test(change_log_pages_without_gaps),
      cmocka_unit_test(flag_definitions_change_in_every_environment),
      cmocka_unit_test(deletions_are_logged_and_guarded),
      cmocka_unit_test(roles_limit_what_tokens_may_do),
      cmocka_unit_test(keys_rotate_with_a_grace_period_or_at_once),
      cmocka_unit_test(retried_requests_with_an_idempotency_key_run_once),
      cmocka_unit_test(segments_have_rules_per_environment),
      cmocka_unit_test(the_writer_reports_its_work),
      cmocka_unit_test(everything_survives_a_restart),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
