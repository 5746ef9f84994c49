#include "util/digest.h"

#include <pthread.h>
#include <stdbool.h>

#include <openssl/evp.h>
#include <string.h>

/* Every request on a public surface hashes its key. OpenSSL's one-shot SHA256() looks
 * the algorithm up by name and allocates a context each time, which costs four times
 * the hashing itself; so the algorithm is fetched once and each thread keeps a context,
 * freed when the thread ends. */
static EVP_MD *sha256_algorithm;
static pthread_key_t context_key;
static pthread_once_t prepared = PTHREAD_ONCE_INIT;

static void free_context(void *context) { EVP_MD_CTX_free(context); }

static void prepare(void) {
  sha256_algorithm = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (pthread_key_create(&context_key, free_context) != 0)
    sha256_algorithm = NULL;
}

/* The calling thread's digest context, or NULL when out of memory. */
static EVP_MD_CTX *thread_context(void) {
  pthread_once(&prepared, prepare);
  if (!sha256_algorithm)
    return NULL;
  EVP_MD_CTX *context = pthread_getspecific(context_key);
  if (!context) {
    context = EVP_MD_CTX_new();
    if (context && pthread_setspecific(context_key, context) != 0) {
      EVP_MD_CTX_free(context);
      context = NULL;
    }
  }
  return context;
}

void fw_sha256(const void *data, size_t len, uint8_t out[FW_SHA256_LEN]) {
  const struct fw_bytes whole = {data, len};
  fw_sha256_parts(&whole, 1, out);
}

void fw_sha256_parts(const struct fw_bytes *parts, size_t count, uint8_t out[FW_SHA256_LEN]) {
  EVP_MD_CTX *context = thread_context();
  bool ok = context && EVP_DigestInit_ex(context, sha256_algorithm, NULL) == 1;
  for (size_t i = 0; ok && i < count; i++)
    ok = EVP_DigestUpdate(context, parts[i].data, parts[i].len) == 1;
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(context, out, &len) == 1 && len == FW_SHA256_LEN;
  /* Only allocation can fail here; an all-zero digest then matches nothing real. */
  if (!ok)
    memset(out, 0, FW_SHA256_LEN);
}

void fw_sha1(const void *data, size_t len, uint8_t out[FW_SHA1_LEN]) {
  /* One handshake per connection: the one-shot call's lookup and context allocation cost
   * nothing worth a cached context here. */
  unsigned int digest_len = 0;
  if (EVP_Digest(data, len, out, &digest_len, EVP_sha1(), NULL) != 1 || digest_len != FW_SHA1_LEN)
    memset(out, 0, FW_SHA1_LEN);
}

/* Both base64 alphabets share this: 3 bytes make 4 characters, and a final group of 1 or 2
 * bytes makes 2 or 3 characters, followed by `=` to a multiple of 4 when `pad` is set. */
static void base64_encode_with(const char alphabet[64], bool pad, const void *data, size_t len,
                               char *out) {
  const uint8_t *in = data;
  size_t o = 0, i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    if (i + 1 < len)
      out[o++] = alphabet[v >> 6 & 63];
    else if (pad)
      out[o++] = '=';
    if (pad)
      out[o++] = '=';
  }
  out[o] = '\0';
}

void fw_base64_encode(const void *data, size_t len, char *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  base64_encode_with(alphabet, true, data, len, out);
}

void fw_base64url_encode(const void *data, size_t len, char *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  base64_encode_with(alphabet, false, data, len, out);
}

static int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

bool fw_base64url_decode(const char *text, size_t len, void *out, size_t out_size,
                         size_t *out_len) {
  while (len > 0 && text[len - 1] == '=')
    len--;
  if (len % 4 == 1)
    return false;
  uint8_t *bytes = out;
  size_t n = 0;
  uint32_t bits = 0;
  int held = 0;
  for (size_t i = 0; i < len; i++) {
    int value = base64url_value(text[i]);
    if (value < 0)
      return false;
    bits = bits << 6 | (uint32_t)value;
    held += 6;
    if (held >= 8) {
      held -= 8;
      if (n == out_size)
        return false;
      bytes[n++] = (uint8_t)(bits >> held);
    }
  }
  *out_len = n;
  return true;
}

int fw_hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

void fw_hex_encode(const void *data, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *in = data;
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}
