#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/json.h"

static void parses_objects_and_reports_errors(void **state) {
  (void)state;
  struct fw_json *doc = NULL;
  char error[256];
  const char good[] = "{\"key\":\"shop\",\"n\":19.99}";
  assert_int_equal(fw_json_parse(good, sizeof good - 1, &doc, error, sizeof error), FW_OK);
  assert_true(fw_json_is_object(doc));
  fw_json_free(doc);

  const char array[] = "[1,2]";
  assert_int_equal(fw_json_parse(array, sizeof array - 1, &doc, error, sizeof error), FW_OK);
  assert_false(fw_json_is_object(doc));
  fw_json_free(doc);

  const char bad[] = "{\"key\":}";
  assert_int_equal(fw_json_parse(bad, sizeof bad - 1, &doc, error, sizeof error), FW_EINVAL);
  assert_non_null(strstr(error, "column"));

  const char duplicate[] = "{\"a\":1,\"a\":2}";
  assert_int_equal(fw_json_parse(duplicate, sizeof duplicate - 1, &doc, error, sizeof error),
                   FW_EINVAL);

  const char with_nul[] = "{\"a\":\"x\0y\"}";
  assert_int_equal(fw_json_parse(with_nul, sizeof with_nul - 1, &doc, error, sizeof error),
                   FW_EINVAL);
  /* jansson alone would skip a NUL after a number. */
  const char nul_after_number[] = "[1\0]";
  assert_int_equal(
      fw_json_parse(nul_after_number, sizeof nul_after_number - 1, &doc, error, sizeof error),
      FW_EINVAL);
}

static void escapes_strings(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 1024);
  const char text[] = "a\"b\\c\n\x01 é ✓";
  assert_int_equal(fw_json_append_string(&b, text, sizeof text - 1), FW_OK);
  assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001 é ✓\"");
  fw_buf_free(&b);
}

static void replaces_invalid_utf8(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 1024);
  /* A lone continuation byte, an overlong encoding, and a truncated sequence. */
  const char text[] = "x\x80y\xc0\xafz\xe2\x9c";
  assert_int_equal(fw_json_append_string(&b, text, sizeof text - 1), FW_OK);
  assert_string_equal(b.data,
                      "\"x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\"");
  /* What we print parses. */
  struct fw_json *doc;
  char error[256];
  assert_int_equal(fw_json_parse(b.data, b.len, &doc, error, sizeof error), FW_OK);
  fw_json_free(doc);
  fw_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_objects_and_reports_errors),
      cmocka_unit_test(escapes_strings),
      cmocka_unit_test(replaces_invalid_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
