#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static void redact(const char *target, const char *expected) {
  struct fw_buf out;
  fw_buf_init(&out, 4096);
  assert_int_equal(fw_log_redact_target(target, strlen(target), &out), FW_OK);
  assert_string_equal(out.data, expected);
  fw_buf_free(&out);
}

static void redacts_secret_query_parameters(void **state) {
  (void)state;
  redact("/v1/stream", "/v1/stream");
  redact("/v1/stream?key=fw_cli_secret", "/v1/stream?key=REDACTED");
  redact("/v1/stream?flags=a,b&key=fw_cli_x&context=eyJ1Ijox&lastEventId=7",
         "/v1/stream?flags=a,b&key=REDACTED&context=REDACTED&lastEventId=7");
  redact("/x?monkey=1&keys=2&key", "/x?monkey=1&keys=2&key");
  redact("/x?", "/x?");
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char content[8192];
  size_t n = fread(content, 1, sizeof content - 1, f);
  content[n] = '\0';
  fclose(f);
  return content;
}

static void writes_json_lines_and_reopens(void **state) {
  (void)state;
  char path[] = "/tmp/flagwire-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fw_log_setup(path, FW_LOG_FORMAT_JSON, FW_LOG_INFO), FW_OK);
  fw_log(FW_LOG_DEBUG, "hidden");
  fw_log_with(FW_LOG_INFO, "hello \"world\"", FW_LOG_STR("who", "a\nb"), FW_LOG_INT("n", -3));
  char *content = read_all(path);
  assert_null(strstr(content, "hidden"));
  assert_non_null(strstr(content, "\"level\":\"info\",\"msg\":\"hello \\\"world\\\"\""));
  assert_non_null(strstr(content, "\"who\":\"a\\u000ab\",\"n\":-3}\n"));

  char rotated[64];
  snprintf(rotated, sizeof rotated, "%s.1", path);
  assert_int_equal(rename(path, rotated), 0);
  assert_int_equal(fw_log_reopen(), FW_OK);
  fw_log(FW_LOG_WARN, "after rotation");
  assert_non_null(strstr(read_all(path), "after rotation"));
  assert_null(strstr(read_all(rotated), "after rotation"));
  fw_log_shutdown();
  unlink(path);
  unlink(rotated);
}

static void text_format_quotes_what_needs_it(void **state) {
  (void)state;
  char path[] = "/tmp/flagwire-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fw_log_setup(path, FW_LOG_FORMAT_TEXT, FW_LOG_DEBUG), FW_OK);
  fw_log_with(FW_LOG_DEBUG, "request", FW_LOG_STR("path", "/healthz"),
              FW_LOG_STR("note", "two words"), FW_LOG_INT("status", 200));
  char *content = read_all(path);
  assert_non_null(strstr(content, "debug request path=/healthz note=\"two words\" status=200\n"));
  fw_log_shutdown();
  unlink(path);
}

static void cuts_long_lines_but_ends_them(void **state) {
  (void)state;
  char path[] = "/tmp/flagwire-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fw_log_setup(path, FW_LOG_FORMAT_JSON, FW_LOG_INFO), FW_OK);
  char *huge = malloc(20000);
  memset(huge, 'x', 19999);
  huge[19999] = '\0';
  fw_log_with(FW_LOG_INFO, "big", FW_LOG_STR("value", huge));
  free(huge);
  char *content = read_all(path);
  size_t len = strlen(content);
  assert_true(len <= 4096);
  assert_int_equal(content[len - 1], '\n');
  fw_log_shutdown();
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(redacts_secret_query_parameters),
      cmocka_unit_test(writes_json_lines_and_reopens),
      cmocka_unit_test(text_format_quotes_what_needs_it),
      cmocka_unit_test(cuts_long_lines_but_ends_them),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
