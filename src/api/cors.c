#include "api/cors.h"

#include <string.h>

/* Any origin may read: the public surfaces authenticate by key, never by cookie, so
 * credentials are not allowed and '*' is safe. A per-environment allowlist narrows this
 * once environments carry one. */
#define ALLOW_ORIGIN "*"
#define ALLOW_METHODS "GET, POST, OPTIONS"
#define ALLOW_HEADERS                                                                              \
  "Authorization, Content-Type, If-None-Match, Last-Event-ID, X-Request-Id, "                      \
  "X-Environment-Key, Idempotency-Key"
#define EXPOSE_HEADERS "ETag, x-flagsmith-document-updated-at, Retry-After, X-Request-Id"
#define PREFLIGHT_MAX_AGE "600"

struct surface {
  const char *prefix;
  bool subtree; /* whether anything below the prefix belongs too */
};

static const struct surface surfaces[] = {
    {"/ofrep", true},      {"/api/v1", true}, {"/v1/evaluate", false},
    {"/v1/stream", false}, {"/sse", true},    {"/v1/ws", false},
};

bool fw_cors_is_public(const char *path, size_t len) {
  for (size_t i = 0; i < FW_ARRAY_LEN(surfaces); i++) {
    size_t n = strlen(surfaces[i].prefix);
    if (len < n || memcmp(path, surfaces[i].prefix, n) != 0)
      continue;
    if (len == n || (surfaces[i].subtree && path[n] == '/'))
      return true;
  }
  return false;
}

bool fw_cors_filter(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(ctx);
  if (!fw_cors_is_public(req->path, req->path_len))
    return false;
  int rc = fw_http_add_header(res, "Access-Control-Allow-Origin", ALLOW_ORIGIN);
  if (req->method != FW_HTTP_OPTIONS) {
    if (!rc)
      rc = fw_http_add_header(res, "Access-Control-Expose-Headers", EXPOSE_HEADERS);
    if (rc)
      return fw_http_set_error(res, req, 500, "internal", "headers could not be built") == FW_OK;
    return false;
  }
  if (!rc)
    rc = fw_http_add_header(res, "Access-Control-Allow-Methods", ALLOW_METHODS);
  if (!rc)
    rc = fw_http_add_header(res, "Access-Control-Allow-Headers", ALLOW_HEADERS);
  if (!rc)
    rc = fw_http_add_header(res, "Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
  if (!rc)
    rc = fw_http_add_header(res, "Allow", ALLOW_METHODS);
  res->status = 204;
  if (rc)
    return fw_http_set_error(res, req, 500, "internal", "headers could not be built") == FW_OK;
  return true;
}
