/* CORS for the public read surfaces (DESIGN.md 1a). The management API sends no CORS
 * headers, so a browser page can never drive it with a visitor's credentials. */
#ifndef FW_API_CORS_H
#define FW_API_CORS_H

#include <stdbool.h>

#include "net/http.h"

/* Whether `path` belongs to a public read surface: /ofrep/..., /api/v1/..., /v1/evaluate,
 * /v1/stream, /sse/..., /v1/ws. */
bool fw_cors_is_public(const char *path, size_t len);

/* The server's filter (fw_http_filter): answers preflight on public surfaces with 204
 * and adds the CORS response headers to every other public response. `ctx` is unused. */
bool fw_cors_filter(struct fw_http_request *req, struct fw_http_response *res, void *ctx);

#endif
