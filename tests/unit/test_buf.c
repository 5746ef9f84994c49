#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void appends_and_terminates(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 1024);
  assert_int_equal(fw_buf_append_str(&b, "flag"), FW_OK);
  assert_int_equal(fw_buf_append_char(&b, '-'), FW_OK);
  assert_int_equal(fw_buf_appendf(&b, "%d:%s", 42, "on"), FW_OK);
  assert_int_equal(fw_buf_append_u64(&b, 18446744073709551615ull), FW_OK);
  assert_string_equal(b.data, "flag-42:on18446744073709551615");
  assert_int_equal(b.len, strlen(b.data));
  fw_buf_free(&b);
}

static void refuses_past_the_limit_and_stays_unchanged(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 8);
  assert_int_equal(fw_buf_append_str(&b, "12345678"), FW_OK);
  assert_int_equal(fw_buf_append_char(&b, '9'), FW_ETOOBIG);
  assert_int_equal(fw_buf_appendf(&b, "%s", "x"), FW_ETOOBIG);
  assert_int_equal(b.len, 8);
  assert_string_equal(b.data, "12345678");
  fw_buf_free(&b);
}

static void reset_keeps_memory_and_steal_hands_it_over(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 1 << 20);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(fw_buf_append_str(&b, "0123456789"), FW_OK);
  size_t cap = b.cap;
  fw_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, cap);
  assert_int_equal(fw_buf_append_str(&b, "abc"), FW_OK);
  size_t len;
  char *owned = fw_buf_steal(&b, &len);
  assert_int_equal(len, 3);
  assert_string_equal(owned, "abc");
  assert_null(b.data);
  free(owned);
}

static void u64_zero(void **state) {
  (void)state;
  struct fw_buf b;
  fw_buf_init(&b, 64);
  assert_int_equal(fw_buf_append_u64(&b, 0), FW_OK);
  assert_string_equal(b.data, "0");
  fw_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(appends_and_terminates),
      cmocka_unit_test(refuses_past_the_limit_and_stays_unchanged),
      cmocka_unit_test(reset_keeps_memory_and_steal_hands_it_over),
      cmocka_unit_test(u64_zero),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
