/* Digests and encodings against published vectors, and the per-thread digest context
 * used from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "util/digest.h"

static void hex_of_sha256(const char *text, char out[65]) {
  uint8_t hash[FW_SHA256_LEN];
  fw_sha256(text, strlen(text), hash);
  fw_hex_encode(hash, sizeof hash, out);
}

static void sha256_matches_published_vectors(void **state) {
  (void)state;
  char hex[65];
  hex_of_sha256("", hex);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hex_of_sha256("abc", hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hex_of_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void parts_hash_like_the_whole(void **state) {
  (void)state;
  const struct fw_bytes parts[] = {{"ab", 2}, {"", 0}, {"c", 1}};
  uint8_t joined[FW_SHA256_LEN], whole[FW_SHA256_LEN];
  fw_sha256_parts(parts, 3, joined);
  fw_sha256("abc", 3, whole);
  assert_memory_equal(joined, whole, sizeof whole);
}

static void base64url_and_hex_encode(void **state) {
  (void)state;
  char out[16];
  fw_base64url_encode("", 0, out);
  assert_string_equal(out, "");
  fw_base64url_encode("f", 1, out);
  assert_string_equal(out, "Zg");
  fw_base64url_encode("fo", 2, out);
  assert_string_equal(out, "Zm8");
  fw_base64url_encode("foo", 3, out);
  assert_string_equal(out, "Zm9v");
  fw_base64url_encode("\xfb\xff", 2, out); /* the URL-safe alphabet, no padding */
  assert_string_equal(out, "-_8");
  fw_hex_encode("\x01\xab", 2, out);
  assert_string_equal(out, "01ab");
}

static void *hash_many(void *arg) {
  (void)arg;
  for (int i = 0; i < 2000; i++) {
    char hex[65];
    hex_of_sha256("abc", hex);
    if (strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") != 0)
      return "wrong digest";
  }
  return NULL;
}

static void threads_hash_at_once(void **state) {
  (void)state;
  pthread_t threads[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, hash_many, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *result;
    assert_int_equal(pthread_join(threads[i], &result), 0);
    assert_null(result);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sha256_matches_published_vectors),
      cmocka_unit_test(parts_hash_like_the_whole),
      cmocka_unit_test(base64url_and_hex_encode),
      cmocka_unit_test(threads_hash_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
