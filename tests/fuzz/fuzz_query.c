/* libFuzzer target for what a stream request's query goes through: parameter lookup,
 * percent-decoding, base64url (the `context` parameter) and the stream filters.
 *
 * The input is the query string itself. Besides the sanitizers, the target checks:
 * - a decoded value never holds a NUL and fits the buffer it was given;
 * - base64url decoding is undone by encoding: decode(encode(decode(x))) == decode(x);
 * - a parsed filter holds only valid keys, at most 256 per list. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "hub/hub.h"
#include "net/http.h"
#include "util/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(condition) ((condition) ? (void)0 : invariant_failed(#condition, __LINE__))

static _Noreturn void invariant_failed(const char *condition, int line) {
  fprintf(stderr, "fuzz_query.c:%d: invariant violated: %s\n", line, condition);
  abort();
}

static void check_list(char *const *items, size_t count) {
  CHECK(count <= 256);
  for (size_t i = 0; i < count; i++)
    CHECK(fw_model_key_valid(items[i], strlen(items[i])));
}

static void check_base64url(const char *text, size_t len) {
  uint8_t decoded[4096], again[4096];
  size_t decoded_len, again_len;
  if (!fw_base64url_decode(text, len, decoded, sizeof decoded, &decoded_len))
    return;
  char *encoded = malloc(FW_BASE64URL_LEN(decoded_len) + 1);
  if (!encoded)
    return;
  fw_base64url_encode(decoded, decoded_len, encoded);
  CHECK(fw_base64url_decode(encoded, strlen(encoded), again, sizeof again, &again_len));
  CHECK(again_len == decoded_len && !memcmp(again, decoded, decoded_len));
  free(encoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size heap copy, so that a read past the query is caught. */
  char *query = malloc(size ? size : 1);
  if (!query)
    return 0;
  memcpy(query, data, size);
  struct fw_http_request req = {.query = size ? query : NULL, .query_len = size};
  static const char *const names[] = {"key",   "context", "lastEventId", "epoch",
                                      "flags", "tags",    "configs"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *value;
    size_t len;
    if (!fw_http_query(&req, names[i], &value, &len))
      continue;
    CHECK(value >= query && value + len <= query + size);
    char decoded[512];
    size_t decoded_len;
    if (fw_http_query_decode(value, len, decoded, sizeof decoded, &decoded_len)) {
      CHECK(decoded_len < sizeof decoded && decoded[decoded_len] == '\0');
      CHECK(strlen(decoded) == decoded_len);
    }
    check_base64url(value, len);
  }
  struct fw_hub_filter filter;
  char error[256];
  if (fw_hub_filter_parse(&req, &filter, error, sizeof error)) {
    check_list(filter.flags, filter.flag_count);
    check_list(filter.tags, filter.tag_count);
    check_list(filter.configs, filter.config_count);
    fw_hub_filter_free(&filter);
  }
  free(query);
  return 0;
}
