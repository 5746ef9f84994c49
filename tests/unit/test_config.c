#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"

struct sample {
  char config[FW_OPT_STRING_MAX];
  char name[FW_OPT_STRING_MAX];
  uint64_t workers;
  uint64_t body;
  uint64_t timeout;
  int mode;
};

static const char *const modes[] = {"full", "normal", NULL};

static const struct fw_option options[] = {
    {"config", FW_OPT_STRING, offsetof(struct sample, config), "", "file", 0, 0, NULL},
    {"name", FW_OPT_STRING, offsetof(struct sample, name), "default-name", "a name", 0, 0, NULL},
    {"workers", FW_OPT_UINT, offsetof(struct sample, workers), "2", "workers", 1, 64, NULL},
    {"max-body-bytes", FW_OPT_SIZE, offsetof(struct sample, body), "1m", "body", 0, 1u << 30, NULL},
    {"header-timeout", FW_OPT_DURATION, offsetof(struct sample, timeout), "10s", "timeout", 100,
     3600000, NULL},
    {"durability", FW_OPT_CHOICE, offsetof(struct sample, mode), "full", "mode", 0, 0, modes},
};

/* A fake environment: NAME=value pairs. */
static const char *fake_env[8];

static const char *lookup(const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < 8 && fake_env[i]; i++)
    if (strncmp(fake_env[i], name, len) == 0 && fake_env[i][len] == '=')
      return fake_env[i] + len + 1;
  return NULL;
}

static int load(struct sample *s, int argc, char **argv, char *error) {
  memset(s, 0, sizeof *s);
  return fw_config_load(options, FW_ARRAY_LEN(options), s, argc, argv, lookup, error, 512);
}

static int reset_env(void **state) {
  (void)state;
  memset(fake_env, 0, sizeof fake_env);
  return 0;
}

static void defaults_apply(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  assert_int_equal(load(&s, 0, NULL, error), FW_OK);
  assert_string_equal(s.name, "default-name");
  assert_int_equal(s.workers, 2);
  assert_int_equal(s.body, 1024 * 1024);
  assert_int_equal(s.timeout, 10000);
  assert_int_equal(s.mode, 0);
}

static void units_parse(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  char *argv[] = {"--max-body-bytes=16k", "--header-timeout", "250ms", "--durability", "normal"};
  assert_int_equal(load(&s, 5, argv, error), FW_OK);
  assert_int_equal(s.body, 16 * 1024);
  assert_int_equal(s.timeout, 250);
  assert_int_equal(s.mode, 1);
  char *argv2[] = {"--header-timeout=2m"};
  assert_int_equal(load(&s, 1, argv2, error), FW_OK);
  assert_int_equal(s.timeout, 120000);
}

static void bad_values_name_the_option(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  struct {
    const char *arg;
    const char *expect;
  } cases[] = {
      {"--workers=100", "--workers"},
      {"--workers=abc", "--workers"},
      {"--workers=4k", "--workers"},
      {"--max-body-bytes=lots", "--max-body-bytes"},
      {"--header-timeout=5", "--header-timeout"},
      {"--header-timeout=5d", "--header-timeout"},
      {"--durability=maybe", "--durability"},
      {"--nope=1", "--nope"},
      {"--max-body-bytes=99999999999999999999", "--max-body-bytes"},
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(cases); i++) {
    char *argv[] = {(char *)cases[i].arg};
    error[0] = '\0';
    assert_int_equal(load(&s, 1, argv, error), FW_EINVAL);
    if (!strstr(error, cases[i].expect))
      fail_msg("'%s' gave '%s'", cases[i].arg, error);
  }
  char *missing[] = {"--workers"};
  assert_int_equal(load(&s, 1, missing, error), FW_EINVAL);
  assert_non_null(strstr(error, "needs a value"));
  char *positional[] = {"serve"};
  assert_int_equal(load(&s, 1, positional, error), FW_EINVAL);
}

static void help_is_reported(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  char *argv[] = {"--workers=3", "--help"};
  assert_int_equal(load(&s, 2, argv, error), FW_ENOTFOUND);
}

static char *write_file(const char *text) {
  static char path[] = "/tmp/flagwire-config-XXXXXX";
  strcpy(path, "/tmp/flagwire-config-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void precedence_file_then_env_then_flags(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  char *path = write_file("# comment\nworkers = 5\nname = from-file  # trailing\n\n"
                          "max-body-bytes=2k\n");
  char config_flag[128];
  snprintf(config_flag, sizeof config_flag, "--config=%s", path);

  char *only_file[] = {config_flag};
  assert_int_equal(load(&s, 1, only_file, error), FW_OK);
  assert_int_equal(s.workers, 5);
  assert_string_equal(s.name, "from-file");
  assert_int_equal(s.body, 2048);

  fake_env[0] = "FLAGWIRE_WORKERS=7";
  fake_env[1] = "FLAGWIRE_MAX_BODY_BYTES=3k";
  assert_int_equal(load(&s, 1, only_file, error), FW_OK);
  assert_int_equal(s.workers, 7);
  assert_int_equal(s.body, 3072);

  char *with_flag[] = {config_flag, "--workers", "9"};
  assert_int_equal(load(&s, 3, with_flag, error), FW_OK);
  assert_int_equal(s.workers, 9);
  assert_int_equal(s.body, 3072);
  assert_string_equal(s.name, "from-file");

  /* The environment can name the file too. */
  char env_config[160];
  snprintf(env_config, sizeof env_config, "FLAGWIRE_CONFIG=%s", path);
  fake_env[0] = env_config;
  fake_env[1] = NULL;
  assert_int_equal(load(&s, 0, NULL, error), FW_OK);
  assert_int_equal(s.workers, 5);
  unlink(path);
}

static void file_errors_name_file_and_line(void **state) {
  (void)state;
  struct sample s;
  char error[512];
  char *path = write_file("workers = 3\nbogus = 1\n");
  char flag[128];
  snprintf(flag, sizeof flag, "--config=%s", path);
  char *argv[] = {flag};
  assert_int_equal(load(&s, 1, argv, error), FW_EINVAL);
  assert_non_null(strstr(error, ":2"));
  assert_non_null(strstr(error, "bogus"));
  unlink(path);

  path = write_file("workers = 300\n");
  snprintf(flag, sizeof flag, "--config=%s", path);
  assert_int_equal(load(&s, 1, argv, error), FW_EINVAL);
  assert_non_null(strstr(error, "--workers"));
  assert_non_null(strstr(error, ":1"));
  unlink(path);

  char *absent[] = {"--config=/nonexistent/flagwire.conf"};
  assert_int_equal(load(&s, 1, absent, error), FW_EINVAL);
  assert_non_null(strstr(error, "--config"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(defaults_apply, reset_env),
      cmocka_unit_test_setup(units_parse, reset_env),
      cmocka_unit_test_setup(bad_values_name_the_option, reset_env),
      cmocka_unit_test_setup(help_is_reported, reset_env),
      cmocka_unit_test_setup(precedence_file_then_env_then_flags, reset_env),
      cmocka_unit_test_setup(file_errors_name_file_and_line, reset_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
