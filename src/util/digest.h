/* Digests (OpenSSL, wrapped here): SHA-256 of keys and tokens, SHA-1 for the WebSocket
 * handshake, and base64 and base64url text.
 *
 * Thread: pure functions. */
#ifndef FW_UTIL_DIGEST_H
#define FW_UTIL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_SHA256_LEN 32

void fw_sha256(const void *data, size_t len, uint8_t out[FW_SHA256_LEN]);

/* A piece of bytes for fw_sha256_parts. */
struct fw_bytes {
  const void *data;
  size_t len;
};

/* The SHA-256 of the concatenation of `parts`, without concatenating them. */
void fw_sha256_parts(const struct fw_bytes *parts, size_t count, uint8_t out[FW_SHA256_LEN]);

#define FW_SHA1_LEN 20

/* The SHA-1 of `data`. Only the WebSocket handshake uses it (RFC 6455 requires it); it is
 * not a hot path and no security rests on it. */
void fw_sha1(const void *data, size_t len, uint8_t out[FW_SHA1_LEN]);

/* The padded base64 length (RFC 4648 section 4, standard alphabet) of `len` bytes. */
#define FW_BASE64_LEN(len) (((len) + 2) / 3 * 4)

/* Writes the padded base64 form of `data` and a NUL into `out`, which must hold
 * FW_BASE64_LEN(len) + 1 bytes. */
void fw_base64_encode(const void *data, size_t len, char *out);

/* The unpadded base64url length of `len` bytes. */
#define FW_BASE64URL_LEN(len) (((len)*4 + 2) / 3)

/* Writes the unpadded base64url form of `data` and a NUL into `out`, which must hold
 * FW_BASE64URL_LEN(len) + 1 bytes. */
void fw_base64url_encode(const void *data, size_t len, char *out);

/* Decodes base64url text (padding `=` optional) into `out`, at most `out_size` bytes;
 * *out_len receives the length. False for a character outside the alphabet, a length no
 * encoding has, or a result that does not fit. */
bool fw_base64url_decode(const char *text, size_t len, void *out, size_t out_size, size_t *out_len);

/* The value of a hex digit (either case), or -1. */
int fw_hex_value(char c);

/* Writes `len` bytes as lowercase hex and a NUL into `out` (2 * len + 1 bytes). */
void fw_hex_encode(const void *data, size_t len, char *out);

#endif
