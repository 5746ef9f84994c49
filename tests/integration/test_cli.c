/* The management command line against the real server: resources created, listed and
 * read through `flagwire projects|envs|flags|configs`, in tables and as JSON; on and off
 * set rather than toggle; configs from arguments and standard input; and an exit status
 * for each kind of failure. JSON output is parsed with jansson to check its shape. */
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_cli-integration-token-0123456789"
#define MAX_ARGV 16

static struct fwt_server server;
static char url_variable[64];

static int start_server(void **state) {
  (void)state;
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, NULL, env);
  snprintf(url_variable, sizeof url_variable, "FLAGWIRE_URL=http://127.0.0.1:%u", server.port);
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

/* The output of one run of the binary. */
struct run {
  int status;
  char *out, *err;
};

static void run_free(struct run *run) {
  free(run->out);
  free(run->err);
}

/* Runs `flagwire <args...>` (NULL-terminated) with the server's URL and the token in the
 * environment, standard input from `input` when it is not NULL. */
static struct run cli_input(const char *input, const char *first, va_list rest) {
  const char *argv[MAX_ARGV + 1];
  size_t count = 0;
  for (const char *arg = first; arg; arg = va_arg(rest, const char *)) {
    assert_true(count < MAX_ARGV);
    argv[count++] = arg;
  }
  argv[count] = NULL;
  const char *env[] = {url_variable, "FLAGWIRE_TOKEN=" TOKEN, NULL};
  int saved_stdin = -1;
  if (input) {
    char path[] = "/tmp/flagwire-cli-stdin-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, input, strlen(input)), (ssize_t)strlen(input));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    saved_stdin = dup(STDIN_FILENO);
    assert_true(saved_stdin >= 0);
    assert_true(dup2(fd, STDIN_FILENO) >= 0);
    close(fd);
  }
  struct run run;
  run.status = fwt_run(argv, env, &run.out, &run.err);
  if (input) {
    dup2(saved_stdin, STDIN_FILENO);
    close(saved_stdin);
  }
  return run;
}

static struct run cli(const char *first, ...) {
  va_list rest;
  va_start(rest, first);
  struct run run = cli_input(NULL, first, rest);
  va_end(rest);
  return run;
}

static struct run cli_stdin(const char *input, const char *first, ...) {
  va_list rest;
  va_start(rest, first);
  struct run run = cli_input(input, first, rest);
  va_end(rest);
  return run;
}

/* Fails the test unless the run exited 0. */
static void expect_ok(const struct run *run) {
  if (run->status != 0)
    fail_msg("exit status %d; stdout: %s; stderr: %s", run->status, run->out, run->err);
}

/* Parses standard output as exactly one JSON document (caller decrefs). */
static json_t *json_of(const struct run *run) {
  expect_ok(run);
  json_error_t error;
  json_t *doc = json_loads(run->out, 0, &error);
  if (!doc)
    fail_msg("not one JSON document (%s): %s", error.text, run->out);
  return doc;
}

static const char *string_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  if (!json_is_string(value))
    fail_msg("member '%s' is not a string", name);
  return json_string_value(value);
}

static json_int_t integer_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  if (!json_is_integer(value))
    fail_msg("member '%s' is not an integer", name);
  return json_integer_value(value);
}

/* The line of `text` that starts with `prefix` (copied into `line`); fails without one. */
static const char *line_starting(const char *text, const char *prefix, char *line, size_t len) {
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, prefix, strlen(prefix)) == 0) {
      snprintf(line, len, "%.*s", (int)strcspn(p, "\n"), p);
      return line;
    }
  }
  fail_msg("no line starting with '%s' in:\n%s", prefix, text);
  return NULL;
}

static size_t count_lines(const char *text) {
  size_t lines = 0;
  for (const char *p = text; *p; p++)
    lines += *p == '\n';
  return lines;
}

static void resources_are_created(void **state) {
  (void)state;
  struct run run =
      cli("projects", "create", "shop", "--name", "Shop", "--description=The web shop", NULL);
  expect_ok(&run);
  char line[256];
  assert_string_equal(line_starting(run.out, "name ", line, sizeof line), "name         Shop");
  assert_non_null(strstr(run.out, "The web shop"));
  run_free(&run);

  /* The keys are shown once, at creation, in the table and in the JSON. */
  run = cli("envs", "create", "shop", "prod", "--name", "Production", NULL);
  expect_ok(&run);
  assert_non_null(strstr(line_starting(run.out, "server_key", line, sizeof line), " fw_srv_"));
  assert_non_null(strstr(line_starting(run.out, "client_key", line, sizeof line), " fw_cli_"));
  assert_non_null(strstr(run.err, "only this once"));
  run_free(&run);
  run = cli("envs", "create", "shop", "staging", "--json", NULL);
  json_t *doc = json_of(&run);
  assert_string_equal(string_of(doc, "key"), "staging");
  assert_int_equal(strncmp(string_of(doc, "server_key"), "fw_srv_", 7), 0);
  assert_int_equal(strncmp(string_of(doc, "client_key"), "fw_cli_", 7), 0);
  assert_string_equal(run.err, "");
  json_decref(doc);
  run_free(&run);

  run = cli("flags", "create", "shop", "new-checkout", "--client-visible", "--tags", "checkout,web",
            "--name", "New checkout", NULL);
  expect_ok(&run);
  assert_string_equal(line_starting(run.out, "variants", line, sizeof line),
                      "variants        on=true, off=false");
  assert_string_equal(line_starting(run.out, "tags", line, sizeof line),
                      "tags            checkout,web");
  assert_string_equal(line_starting(run.out, "client_visible", line, sizeof line),
                      "client_visible  true");
  run_free(&run);

  /* The variants go to the server as written: its numbers come back byte for byte. */
  run = cli("flags", "create", "shop", "price-tier", "--type", "number", "--variants",
            "[{\"key\":\"low\",\"value\":19.99},{\"key\":\"high\",\"value\":1e2}]", "--json", NULL);
  doc = json_of(&run);
  assert_string_equal(string_of(doc, "type"), "number");
  assert_int_equal(json_array_size(json_object_get(doc, "tags")), 0);
  assert_non_null(
      strstr(run.out, "{\"key\":\"low\",\"value\":19.99},{\"key\":\"high\",\"value\":1e2}"));
  json_decref(doc);
  run_free(&run);
}

static void lists_and_gets_show_tables_and_json(void **state) {
  (void)state;
  struct run run = cli("projects", "list", NULL);
  expect_ok(&run);
  assert_string_equal(run.out, "KEY   NAME  DESCRIPTION\n"
                               "shop  Shop  The web shop\n");
  run_free(&run);

  run = cli("flags", "list", "shop", NULL);
  expect_ok(&run);
  assert_string_equal(run.out, "KEY           TYPE     VARIANTS  TAGS\n"
                               "new-checkout  boolean  on,off    checkout,web\n"
                               "price-tier    number   low,high  -\n");
  run_free(&run);
  run = cli("flags", "list", "shop", "--env", "prod", NULL);
  expect_ok(&run);
  assert_string_equal(run.out, "KEY           TYPE     ENABLED  VARIANTS  TAGS\n"
                               "new-checkout  boolean  off      on,off    checkout,web\n"
                               "price-tier    number   off      low,high  -\n");
  run_free(&run);

  /* --json is the server's document: one, whatever the number of pages. */
  run = cli("flags", "list", "shop", "--env", "prod", "--json", NULL);
  json_t *doc = json_of(&run);
  json_t *items = json_object_get(doc, "items");
  assert_int_equal(json_array_size(items), 2);
  assert_string_equal(string_of(json_array_get(items, 0), "environment"), "prod");
  assert_true(json_is_false(json_object_get(json_array_get(items, 0), "enabled")));
  assert_true(json_is_null(json_object_get(doc, "next")));
  json_decref(doc);
  run_free(&run);

  run = cli("flags", "get", "shop", "price-tier", "--env", "prod", NULL);
  expect_ok(&run);
  char line[256];
  assert_string_equal(line_starting(run.out, "variants", line, sizeof line),
                      "variants          low=19.99, high=1e2");
  assert_string_equal(line_starting(run.out, "enabled", line, sizeof line),
                      "enabled           off");
  assert_string_equal(line_starting(run.out, "environment", line, sizeof line),
                      "environment       prod");
  run_free(&run);
  /* Without --env, the definition alone. */
  run = cli("flags", "get", "shop", "price-tier", "--json", NULL);
  doc = json_of(&run);
  assert_null(json_object_get(doc, "enabled"));
  json_decref(doc);
  run_free(&run);

  run = cli("envs", "list", "shop", NULL);
  expect_ok(&run);
  assert_non_null(strstr(run.out, "KEY      NAME        REVISION  CREATED\n"));
  assert_non_null(line_starting(run.out, "prod     Production  ", line, sizeof line));
  assert_non_null(line_starting(run.out, "staging  staging     ", line, sizeof line));
  run_free(&run);
  /* Once created, an environment's keys are never shown again. */
  run = cli("envs", "get", "shop", "prod", "--json", NULL);
  doc = json_of(&run);
  assert_string_equal(string_of(doc, "name"), "Production");
  assert_null(json_object_get(doc, "server_key"));
  json_decref(doc);
  run_free(&run);
  run = cli("projects", "get", "shop", NULL);
  expect_ok(&run);
  assert_string_equal(line_starting(run.out, "description", line, sizeof line),
                      "description  The web shop");
  run_free(&run);
}

/* Reads the flag's state in prod straight from the API. */
static json_t *prod_state(const char *flag) {
  char path[128];
  snprintf(path, sizeof path, "/v1/projects/shop/environments/prod/flags/%s", flag);
  struct fwt_response res;
  fwt_request(server.port, "GET", path, TOKEN, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  json_error_t error;
  json_t *doc = json_loads(res.body, 0, &error);
  assert_non_null(doc);
  fwt_response_free(&res);
  return doc;
}

static void on_and_off_set_rather_than_toggle(void **state) {
  (void)state;
  json_t *before = prod_state("new-checkout");
  json_int_t version = integer_of(before, "state_version");
  json_decref(before);
  /* A state's "revision" is the environment's revision at its last change. */
  struct run env = cli("envs", "get", "shop", "prod", "--json", NULL);
  before = json_of(&env);
  json_int_t revision = integer_of(before, "revision");
  json_decref(before);
  run_free(&env);

  /* Twice on leaves it on: a retried command never flips it back, and the second call
   * changes nothing (no new version, no new revision). */
  for (int i = 1; i <= 2; i++) {
    struct run run = cli("flags", "on", "shop", "prod", "new-checkout", "--json", NULL);
    json_t *doc = json_of(&run);
    assert_true(json_is_true(json_object_get(doc, "enabled")));
    assert_int_equal(integer_of(doc, "state_version"), version + 1);
    assert_int_equal(integer_of(doc, "revision"), revision + 1);
    json_decref(doc);
    run_free(&run);
  }
  json_t *doc = prod_state("new-checkout");
  assert_true(json_is_true(json_object_get(doc, "enabled")));
  json_decref(doc);

  for (int i = 0; i < 2; i++) {
    struct run run = cli("flags", "off", "shop", "prod", "new-checkout", NULL);
    expect_ok(&run);
    char expected[128];
    snprintf(expected, sizeof expected,
             "new-checkout in shop/prod: off (state_version %lld, revision %lld)\n",
             (long long)version + 2, (long long)revision + 2);
    assert_string_equal(run.out, expected);
    run_free(&run);
  }
  doc = prod_state("new-checkout");
  assert_true(json_is_false(json_object_get(doc, "enabled")));
  json_decref(doc);

  /* Staging was not touched. */
  struct run run = cli("flags", "get", "shop", "new-checkout", "--env", "staging", "--json", NULL);
  doc = json_of(&run);
  assert_true(json_is_false(json_object_get(doc, "enabled")));
  assert_int_equal(integer_of(doc, "state_version"), 1);
  json_decref(doc);
  run_free(&run);
}

/* The raw value of a config in prod, as the server serves it. */
static void expect_config(const char *key, const char *content_type, const char *value) {
  struct run run = cli("configs", "get", "shop", "prod", key, "--json", NULL);
  json_t *doc = json_of(&run);
  assert_string_equal(string_of(doc, "content_type"), content_type);
  char expected[512];
  snprintf(expected, sizeof expected, "\"value\":%s,", value);
  if (!strstr(run.out, expected))
    fail_msg("config %s: expected %s in %s", key, expected, run.out);
  json_decref(doc);
  run_free(&run);
}

static void configs_are_set_from_arguments_and_standard_input(void **state) {
  (void)state;
  struct run run = cli("configs", "set", "shop", "prod", "prices", "{\"basic\": 19.99}", NULL);
  expect_ok(&run);
  assert_non_null(strstr(run.out, "prices in shop/prod: created (version 1, revision "));
  run_free(&run);
  expect_config("prices", "application/json", "{\"basic\": 19.99}");
  run = cli("configs", "set", "shop", "prod", "prices", "[1, 2.50]", NULL);
  expect_ok(&run);
  assert_non_null(strstr(run.out, "prices in shop/prod: updated (version 2, revision "));
  run_free(&run);
  expect_config("prices", "application/json", "[1, 2.50]");

  /* A value that looks like the server's {"value": ...} envelope is kept whole. */
  run = cli("configs", "set", "shop", "prod", "wrapped", "{\"value\":1}", NULL);
  expect_ok(&run);
  run_free(&run);
  expect_config("wrapped", "application/json", "{\"value\":1}");
  /* Negative numbers are values, not options; -- also ends the options. */
  run = cli("configs", "set", "shop", "prod", "limit", "-5", NULL);
  expect_ok(&run);
  run_free(&run);
  expect_config("limit", "application/json", "-5");
  run = cli("configs", "set", "shop", "prod", "limit", "--json", "--", "-1e3", NULL);
  json_t *doc = json_of(&run);
  assert_int_equal(integer_of(doc, "version"), 2);
  json_decref(doc);
  run_free(&run);

  run = cli("configs", "set", "shop", "prod", "greeting", "Say \"hi\"", "--text", NULL);
  expect_ok(&run);
  run_free(&run);
  expect_config("greeting", "text/plain", "\"Say \\\"hi\\\"\"");

  run = cli_stdin("{\"tiers\": [\"basic\", \"pro\"]}\n", "configs", "set", "shop", "prod", "plans",
                  "-", NULL);
  expect_ok(&run);
  run_free(&run);
  expect_config("plans", "application/json", "{\"tiers\": [\"basic\", \"pro\"]}");
  run = cli_stdin("line one\nline two\n", "configs", "set", "shop", "prod", "notice", "-", "--text",
                  NULL);
  expect_ok(&run);
  run_free(&run);
  expect_config("notice", "text/plain", "\"line one\\u000aline two\\u000a\"");

  char long_value[128];
  snprintf(long_value, sizeof long_value, "\"%0100d\"", 7);
  run = cli("configs", "set", "shop", "prod", "zeros", long_value, NULL);
  expect_ok(&run);
  run_free(&run);

  run = cli("configs", "list", "shop", "prod", NULL);
  expect_ok(&run);
  char line[256];
  assert_string_equal(line_starting(run.out, "KEY", line, sizeof line),
                      "KEY       TYPE              VERSION  VALUE");
  assert_string_equal(line_starting(run.out, "prices", line, sizeof line),
                      "prices    application/json  2        [1, 2.50]");
  /* Line breaks fold into spaces so that a row stays a row. */
  assert_string_equal(line_starting(run.out, "notice", line, sizeof line),
                      "notice    text/plain        1        line one line two ");
  /* Long values are cut to 60 characters. */
  char expected[128];
  snprintf(expected, sizeof expected, "zeros     application/json  1        %.57s...",
           long_value + 1);
  assert_string_equal(line_starting(run.out, "zeros", line, sizeof line), expected);
  assert_int_equal(count_lines(run.out), 1 + 7);
  run_free(&run);

  run = cli("configs", "list", "shop", "prod", "--json", NULL);
  doc = json_of(&run);
  assert_int_equal(json_array_size(json_object_get(doc, "items")), 7);
  json_decref(doc);
  run_free(&run);
}

static void lists_follow_every_page(void **state) {
  (void)state;
  /* 250 more projects: three pages of the server's default size. */
  for (int i = 0; i < 250; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"p%03d\"}", i);
    struct fwt_response res;
    fwt_request(server.port, "POST", "/v1/projects", TOKEN, NULL, body, &res);
    assert_int_equal(res.status, 201);
    fwt_response_free(&res);
  }
  struct run run = cli("projects", "list", "--json", NULL);
  json_t *doc = json_of(&run);
  json_t *items = json_object_get(doc, "items");
  assert_int_equal(json_array_size(items), 251);
  assert_string_equal(string_of(json_array_get(items, 0), "key"), "p000");
  assert_string_equal(string_of(json_array_get(items, 249), "key"), "p249");
  assert_string_equal(string_of(json_array_get(items, 250), "key"), "shop");
  json_decref(doc);
  run_free(&run);
  run = cli("projects", "list", NULL);
  expect_ok(&run);
  assert_int_equal(count_lines(run.out), 1 + 251);
  run_free(&run);
}

/* Checks a run failed with `status` and that its standard error contains `text`. */
static void expect_failure(struct run run, int status, const char *text) {
  if (run.status != status || !strstr(run.err, text))
    fail_msg("expected status %d and '%s'; got %d; stderr: %s", status, text, run.status, run.err);
  assert_string_equal(run.out, "");
  run_free(&run);
}

static void failures_have_their_own_exit_status(void **state) {
  (void)state;
  /* 1: the server said no, and its code and message are shown. */
  expect_failure(cli("flags", "get", "shop", "absent", NULL), 1,
                 "flagwire: 404 not_found: no flag 'absent' in project 'shop'\n");
  expect_failure(cli("flags", "on", "shop", "qa", "new-checkout", NULL), 1,
                 "flagwire: 404 not_found: ");
  expect_failure(cli("projects", "list", "--token", "fw_adm_not-a-real-token-at-all-000000", NULL),
                 1, "flagwire: 401 unauthorized: ");
  expect_failure(cli("projects", "create", "shop", NULL), 1, "flagwire: 409 duplicate_key: ");
  expect_failure(cli("flags", "create", "shop", "s", "--type", "string", NULL), 1,
                 "flagwire: 422 missing_field: ");

  /* 2: the command line is wrong; nothing is sent. */
  expect_failure(cli("flags", "on", "shop", "prod", NULL), 2,
                 "Usage: flagwire flags on <project> <env> <flag>\n");
  expect_failure(cli("flags", "frob", NULL), 2, "unknown command 'flags frob'");
  expect_failure(cli("flags", "list", "shop", "--colour", "red", NULL), 2,
                 "unknown option: --colour");
  expect_failure(cli("projects", "list", "--env", "prod", NULL), 2, "unknown option: --env");
  expect_failure(cli("flags", "list", "shop", "--env", NULL), 2, "needs a value: --env");
  expect_failure(cli("configs", "set", "shop", "prod", "k", "{oops", NULL), 2,
                 "the value is not JSON");
  expect_failure(cli("flags", "create", "shop", "v", "--variants", "[1,", NULL), 2,
                 "--variants is not JSON");
  expect_failure(cli("projects", "list", "--url", "https://127.0.0.1", NULL), 2,
                 "https is not supported");
  expect_failure(cli("projects", "list", "--url", "http://127.0.0.1:99999", NULL), 2,
                 "port must be a number");
  expect_failure(cli("projects", NULL), 2, "Usage: flagwire projects <command>");

  /* 3: no server there. */
  expect_failure(cli("projects", "list", "--url", "http://127.0.0.1:1", NULL), 3,
                 "flagwire: http://127.0.0.1:1: cannot connect to 127.0.0.1:1");
  expect_failure(
      cli("flags", "on", "shop", "prod", "new-checkout", "--url", "http://[::1]:1", NULL), 3,
      "cannot connect to [::1]:1");

  /* The flag from the command line wins over FLAGWIRE_URL. */
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/", server.port);
  struct run run = cli("projects", "get", "shop", "--url", url, NULL);
  expect_ok(&run);
  run_free(&run);
}

static void groups_list_their_commands(void **state) {
  (void)state;
  static const char *const groups[][2] = {
      {"projects", "flagwire projects create <key> [--name N] [--description D]\n"},
      {"envs", "flagwire envs create <project> <key> [--name N]\n"},
      {"flags", "flagwire flags off <project> <env> <flag>\n"},
      {"configs", "flagwire configs set <project> <env> <key> <value> [--text]\n"},
  };
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
    struct run run = cli(groups[i][0], "--help", NULL);
    expect_ok(&run);
    assert_non_null(strstr(run.out, groups[i][1]));
    assert_non_null(strstr(run.out, "--token TOKEN"));
    run_free(&run);
  }
  struct run run = cli("flags", "on", "--help", NULL);
  expect_ok(&run);
  assert_non_null(strstr(run.out, "Usage: flagwire flags on <project> <env> <flag>\n"));
  run_free(&run);
  run = cli("help", NULL);
  expect_ok(&run);
  assert_non_null(strstr(run.out, "flagwire projects|envs|flags|configs"));
  run_free(&run);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resources_are_created),
      cmocka_unit_test(lists_and_gets_show_tables_and_json),
      cmocka_unit_test(on_and_off_set_rather_than_toggle),
      cmocka_unit_test(configs_are_set_from_arguments_and_standard_input),
      cmocka_unit_test(lists_follow_every_page),
      cmocka_unit_test(failures_have_their_own_exit_status),
      cmocka_unit_test(groups_list_their_commands),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
