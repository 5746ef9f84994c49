#include "util/digest.h"

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

void fw_sha256(const void *data, size_t len, uint8_t out[FW_SHA256_LEN]) { SHA256(data, len, out); }

void fw_sha256_parts(const struct fw_bytes *parts, size_t count, uint8_t out[FW_SHA256_LEN]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
  for (size_t i = 0; ok && i < count; i++)
    ok = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) == 1;
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == FW_SHA256_LEN;
  EVP_MD_CTX_free(ctx);
  /* Only allocation can fail here; an all-zero digest then matches nothing real. */
  if (!ok)
    memset(out, 0, FW_SHA256_LEN);
}

void fw_base64url_encode(const void *data, size_t len, char *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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
  }
  out[o] = '\0';
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
