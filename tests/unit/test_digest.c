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

static void hex_of_sha1(const char *text, size_t len, char out[41]) {
  uint8_t hash[FW_SHA1_LEN];
  fw_sha1(text, len, hash);
  fw_hex_encode(hash, sizeof hash, out);
}

/* FIPS 180-2 appendix A and the empty message. */
static void sha1_matches_published_vectors(void **state) {
  (void)state;
  char hex[41];
  hex_of_sha1("abc", 3, hex);
  assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
  hex_of_sha1("", 0, hex);
  assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  hex_of_sha1(two_blocks, strlen(two_blocks), hex);
  assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

/* RFC 4648 section 10, and the characters only the standard alphabet has. */
static void base64_matches_rfc4648_vectors(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  char out[16];
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    size_t len = strlen(vectors[i].in);
    assert_int_equal(FW_BASE64_LEN(len), strlen(vectors[i].out));
    memset(out, 'x', sizeof out);
    fw_base64_encode(vectors[i].in, len, out);
    assert_string_equal(out, vectors[i].out);
  }
  fw_base64_encode("\xfb\xff", 2, out);
  assert_string_equal(out, "+/8=");
  fw_base64_encode("\0\0\0", 3, out);
  assert_string_equal(out, "AAAA");
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
      cmocka_unit_test(sha1_matches_published_vectors),
      cmocka_unit_test(base64_matches_rfc4648_vectors),
      cmocka_unit_test(threads_hash_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
