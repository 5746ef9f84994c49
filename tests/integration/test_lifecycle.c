/* The life of the process: configuration from flags, environment and file; start-up
 * failures; graceful and forced shutdown with requests in flight; log reopening. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void help_lists_every_option_with_its_default(void **state) {
  (void)state;
  char *out, *err;
  const char *argv[] = {"serve", "--help", NULL};
  assert_int_equal(fwt_run(argv, NULL, &out, &err), 0);
  const char *options[] = {"--config",
                           "--host",
                           "--port",
                           "--threads",
                           "--data",
                           "--durability",
                           "--max-connections",
                           "--max-header-bytes",
                           "--max-body-bytes",
                           "--header-timeout",
                           "--body-timeout",
                           "--keepalive-timeout",
                           "--shutdown-timeout",
                           "--log-level",
                           "--log-format",
                           "--log-file"};
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (!strstr(out, options[i]))
      fail_msg("%s is missing from --help:\n%s", options[i], out);
  assert_non_null(strstr(out, "FLAGWIRE_PORT"));
  assert_non_null(strstr(out, "Default: 8080"));
  assert_non_null(strstr(out, "Default: 16k"));
  free(out);
  free(err);
}

static void bad_configuration_names_the_option(void **state) {
  (void)state;
  struct {
    const char *argv[4];
    const char *env[2];
    const char *expected;
  } cases[] = {
      {{"serve", "--port", "99999"}, {NULL}, "--port"},
      {{"serve", "--header-timeout", "soon"}, {NULL}, "--header-timeout"},
      {{"serve", "--log-level", "loud"}, {NULL}, "--log-level"},
      {{"serve", "--no-such-option"}, {NULL}, "--no-such-option"},
      {{"serve"}, {"FLAGWIRE_MAX_BODY_BYTES=lots"}, "--max-body-bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out, *err;
    int status = fwt_run(cases[i].argv, cases[i].env, &out, &err);
    assert_int_equal(status, 2);
    if (!strstr(err, cases[i].expected))
      fail_msg("the error does not name %s: %s", cases[i].expected, err);
    free(out);
    free(err);
  }
}

static void bad_config_file_names_file_and_option(void **state) {
  (void)state;
  char path[] = "/tmp/flagwire-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "# comment\nport = 0\nbody-timeout = forever\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char *out, *err;
  const char *argv[] = {"serve", "--config", path, NULL};
  assert_int_equal(fwt_run(argv, NULL, &out, &err), 2);
  assert_non_null(strstr(err, "--body-timeout"));
  assert_non_null(strstr(err, path));
  free(out);
  free(err);
  unlink(path);

  const char *missing[] = {"serve", "--config", "/nonexistent/flagwire.conf", NULL};
  assert_int_equal(fwt_run(missing, NULL, &out, &err), 2);
  assert_non_null(strstr(err, "/nonexistent/flagwire.conf"));
  free(out);
  free(err);
}

static void unusable_data_directory_stops_the_start(void **state) {
  (void)state;
  /* A path under a regular file can never be a directory, even for root. */
  char file[] = "/tmp/flagwire-notadir-XXXXXX";
  int fd = mkstemp(file);
  assert_true(fd >= 0);
  close(fd);
  char data[128];
  snprintf(data, sizeof data, "%s/data", file);
  char *out, *err;
  const char *argv[] = {"serve", "--port", "0", "--data", data, NULL};
  assert_int_equal(fwt_run(argv, NULL, &out, &err), 1);
  assert_non_null(strstr(err, "store"));
  assert_null(strstr(out, "listening"));
  free(out);
  free(err);
  unlink(file);
}

static void port_in_use_stops_the_start(void **state) {
  (void)state;
  struct fwt_server first;
  fwt_server_start(&first, NULL, NULL);
  char port[16];
  snprintf(port, sizeof port, "%u", first.port);
  char data[300];
  snprintf(data, sizeof data, "%s/second", first.dir);
  char *out, *err;
  /* Another process on the port: SO_REUSEPORT must not let a second server share it. */
  const char *argv[] = {"serve", "--port", port, "--data", data, NULL};
  assert_int_equal(fwt_run(argv, NULL, &out, &err), 1);
  free(out);
  free(err);
  fwt_server_cleanup(&first);
}

/* The port a server started with `args` and `env` (and no --port of the harness's)
 * listens on. */
static uint16_t started_port(const char *const *args, const char *const *env) {
  struct fwt_server server;
  fwt_server_start_bare(&server, args, env);
  uint16_t port = server.port;
  fwt_server_cleanup(&server);
  return port;
}

static void flags_beat_environment_beats_file(void **state) {
  (void)state;
  char path[] = "/tmp/flagwire-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  uint16_t file_port = fwt_free_port(), env_port = fwt_free_port();
  while (env_port == file_port)
    env_port = fwt_free_port();
  char text[64];
  snprintf(text, sizeof text, "port = %u\n", file_port);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char env_port_entry[64], env_config_entry[96];
  snprintf(env_port_entry, sizeof env_port_entry, "FLAGWIRE_PORT=%u", env_port);
  snprintf(env_config_entry, sizeof env_config_entry, "FLAGWIRE_CONFIG=%s", path);

  const char *config_flag[] = {"--config", path, NULL};
  assert_int_equal(started_port(config_flag, NULL), file_port);

  const char *config_from_env[] = {env_config_entry, NULL};
  assert_int_equal(started_port(NULL, config_from_env), file_port);

  const char *env_over_file[] = {env_config_entry, env_port_entry, NULL};
  assert_int_equal(started_port(NULL, env_over_file), env_port);

  const char *port_flag[] = {"--port", "0", NULL};
  uint16_t flag_port = started_port(port_flag, env_over_file);
  assert_int_not_equal(flag_port, env_port);
  assert_int_not_equal(flag_port, file_port);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_lists_every_option_with_its_default),
      cmocka_unit_test(bad_configuration_names_the_option),
      cmocka_unit_test(bad_config_file_names_file_and_option),
      cmocka_unit_test(unusable_data_directory_stops_the_start),
      cmocka_unit_test(port_in_use_stops_the_start),
      cmocka_unit_test(flags_beat_environment_beats_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
