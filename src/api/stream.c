#include "api/stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/keys.h"
#include "util/digest.h"
#include "util/rawjson.h"

/* A context in a URL is visible to proxies and capped (DESIGN.md 1a). */
#define URL_CONTEXT_MAX 4096

static void answer_error(struct fw_http_response *res, const struct fw_http_request *req,
                         int status, const char *code, const char *message) {
  if (fw_http_set_error(res, req, status, code, message))
    res->status = 500;
}

/* Finds the key and its environment (fw_keys_authorize_stream). False with the answer set. */
static bool authorize(const struct fw_stream_api *api, const struct fw_http_request *req,
                      struct fw_http_response *res, unsigned accept, struct fw_key_scope *scope,
                      uint8_t key_hash[32]) {
  if (!fw_keys_authorize_stream(api->writer, req, res, accept, scope))
    return false;
  memcpy(key_hash, scope->credential->hash, 32);
  return true;
}

/* Reads the cursor: Last-Event-ID (what EventSource sends when it reconnects), else
 * ?lastEventId=. False with the answer set when it is not a revision. */
static bool read_cursor(const struct fw_http_request *req, struct fw_http_response *res,
                        struct fw_hub_request *out) {
  size_t len;
  const char *value = fw_http_header(req, "Last-Event-ID", &len);
  if ((!value || len == 0) && !fw_http_query(req, "lastEventId", &value, &len))
    return true;
  if (len == 0)
    return true;
  int64_t cursor = 0;
  for (size_t i = 0; i < len; i++) {
    if (value[i] < '0' || value[i] > '9' || cursor > (INT64_MAX - 9) / 10) {
      answer_error(res, req, 400, "invalid_cursor",
                   "Last-Event-ID (or lastEventId) must be a revision: a whole number");
      return false;
    }
    cursor = cursor * 10 + (value[i] - '0');
  }
  out->has_cursor = true;
  out->cursor = cursor;
  const char *epoch;
  if (fw_http_query(req, "epoch", &epoch, &len)) {
    bool hex = len > 0 && len < sizeof out->epoch;
    for (size_t i = 0; hex && i < len; i++)
      hex = (epoch[i] >= '0' && epoch[i] <= '9') || (epoch[i] >= 'a' && epoch[i] <= 'f');
    if (!hex) {
      answer_error(res, req, 400, "invalid_cursor", "'epoch' must be the hex epoch of a snapshot");
      return false;
    }
    memcpy(out->epoch, epoch, len);
    out->epoch[len] = '\0';
  }
  return true;
}

/* Parses a context's JSON text into the request (keeping the text, by which streams with
 * the same context share their evaluations). False with the answer set. */
static bool take_context(const struct fw_http_request *req, struct fw_http_response *res,
                         const char *text, size_t len, struct fw_hub_request *out) {
  enum fw_eval_error code;
  char error[256];
  int rc = fw_eval_context_parse(text, len, &out->context, &code, error, sizeof error);
  if (rc == FW_ENOMEM) {
    answer_error(res, req, 503, "out_of_memory", "the server is out of memory");
    return false;
  }
  if (rc) {
    answer_error(res, req, 400, "invalid_context", error);
    return false;
  }
  return true;
}

/* Reads the context: ?context= (base64url JSON) or, for POST, the body's "context". */
static bool read_context(const struct fw_http_request *req, struct fw_http_response *res,
                         struct fw_hub_request *out) {
  const char *value;
  size_t len;
  if (req->method == FW_HTTP_POST && req->body_len > 0) {
    struct fw_rawjson body, context;
    size_t offset;
    const char *reason = "invalid";
    if (fw_rawjson_validate(req->body, req->body_len, &body, &offset, &reason) != FW_OK ||
        fw_rawjson_type(body) != FW_RAWJSON_OBJECT) {
      answer_error(res, req, 400, "malformed_json",
                   "the body must be a JSON object with a \"context\"");
      return false;
    }
    if (fw_rawjson_member(body, "context", &context) != FW_OK)
      return true;
    if (fw_rawjson_type(context) != FW_RAWJSON_OBJECT) {
      answer_error(res, req, 400, "invalid_context", "\"context\" must be a JSON object");
      return false;
    }
    return take_context(req, res, context.text, context.len, out);
  }
  if (!fw_http_query(req, "context", &value, &len))
    return true;
  /* Room for a few bytes past the cap, so that a context just over it is told so rather
   * than refused as malformed. */
  char decoded[URL_CONTEXT_MAX + 3];
  size_t decoded_len;
  bool too_large = len > FW_BASE64URL_LEN(URL_CONTEXT_MAX) + 2;
  if (!too_large && !fw_base64url_decode(value, len, decoded, sizeof decoded, &decoded_len)) {
    answer_error(res, req, 400, "invalid_context", "'context' must be base64url-encoded JSON");
    return false;
  }
  if (too_large || decoded_len > URL_CONTEXT_MAX) {
    answer_error(res, req, 413, "context_too_large",
                 "a context in the URL is at most 4 KiB; send larger ones with POST /v1/stream");
    return false;
  }
  return take_context(req, res, decoded, decoded_len, out);
}

static void subscribe(const struct fw_stream_api *api, struct fw_http_request *req,
                      struct fw_http_response *res, struct fw_hub_request *request) {
  if (fw_hub_subscribe(api->hub, res, request) != FW_OK)
    answer_error(res, req, 503, "out_of_memory", "the server is out of memory");
}

static void open_stream(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_stream_api *api = ctx;
  struct fw_key_scope scope;
  struct fw_hub_request request = {.kind = FW_HUB_EVENTS};
  if (!authorize(api, req, res, FW_KEYS_SERVER | FW_KEYS_CLIENT, &scope, request.key_hash))
    return;
  request.definitions = scope.kind == FW_CREDENTIAL_SERVER;
  request.environment_id = scope.env->env->id;
  char error[256];
  if (!read_cursor(req, res, &request))
    return;
  if (!fw_hub_filter_parse(req, &request.filter, error, sizeof error))
    return answer_error(res, req, 400, "invalid_filter", error);
  if (!read_context(req, res, &request)) {
    fw_hub_request_free(&request);
    return;
  }
  if (request.definitions && request.context) {
    fw_hub_request_free(&request);
    return answer_error(res, req, 400, "invalid_context",
                        "a server key's stream carries definitions; a context is for client keys");
  }
  subscribe(api, req, res, &request);
}

/* Flagsmith's stream: the client key is in the path. */
static void open_flagsmith_stream(struct fw_http_request *req, struct fw_http_response *res,
                                  void *ctx) {
  const struct fw_stream_api *api = ctx;
  const char *key = fw_http_param(req, "key");
  struct fw_key_scope scope;
  struct fw_hub_request request = {.kind = FW_HUB_FLAGSMITH};
  if (!fw_keys_authorize_text(api->writer, req, res, key, strlen(key), FW_KEYS_CLIENT, &scope))
    return;
  memcpy(request.key_hash, scope.credential->hash, sizeof request.key_hash);
  request.environment_id = scope.env->env->id;
  subscribe(api, req, res, &request);
}

/* OFREP's change notices, advertised in bulk answers with the client key in the URL. */
static void open_ofrep_stream(struct fw_http_request *req, struct fw_http_response *res,
                              void *ctx) {
  const struct fw_stream_api *api = ctx;
  struct fw_key_scope scope;
  struct fw_hub_request request = {.kind = FW_HUB_OFREP};
  if (!authorize(api, req, res, FW_KEYS_SERVER | FW_KEYS_CLIENT, &scope, request.key_hash))
    return;
  request.environment_id = scope.env->env->id;
  subscribe(api, req, res, &request);
}

int fw_stream_api_register(struct fw_router *router, struct fw_stream_api *api) {
  int rc = fw_router_add(router, FW_HTTP_GET, "/v1/stream", open_stream, api);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_POST, "/v1/stream", open_stream, api);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_GET, "/sse/environments/{key}/stream", open_flagsmith_stream,
                       api);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_GET, "/ofrep/v1/stream", open_ofrep_stream, api);
  return rc;
}
