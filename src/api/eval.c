#include "api/eval.h"

#include <inttypes.h>
#include <string.h>

#include "api/evaluation.h"
#include "hub/hub.h"
#include "state/mutations.h"
#include "util/json.h"

static void answer_out_of_memory(struct fw_http_response *res, const struct fw_http_request *req) {
  if (fw_http_set_error(res, req, 503, "out_of_memory", "the server is out of memory"))
    res->status = 500;
}

/* Sets the ETag of the body built so far and turns the answer into a 304 when the client
 * has it already. */
static void finish_with_etag(struct fw_http_response *res, const struct fw_http_request *req) {
  char etag[40];
  fw_evaluation_etag(res->body, etag);
  if (fw_http_add_header(res, "ETag", etag) != FW_OK)
    return answer_out_of_memory(res, req);
  if (fw_evaluation_not_modified(req, etag)) {
    res->status = 304;
    fw_buf_reset(res->body);
  }
}

static void get_definitions(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_eval_api *api = ctx;
  struct fw_key_scope scope;
  if (!fw_keys_authorize(api->writer, req, res, "Authorization", FW_KEYS_SERVER, &scope))
    return;
  int rc = fw_hub_render_definitions(res->body, scope.project, scope.env, NULL, false);
  if (rc)
    return answer_out_of_memory(res, req);
  res->status = 200;
  res->content_type = "application/json";
  finish_with_etag(res, req);
}

static void evaluate(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_eval_api *api = ctx;
  struct fw_key_scope scope;
  if (!fw_keys_authorize(api->writer, req, res, "Authorization", FW_KEYS_SERVER | FW_KEYS_CLIENT,
                         &scope))
    return;
  struct fw_eval_context *context;
  enum fw_eval_error error_code;
  char error[256];
  if (!fw_evaluation_context(req, &context, &error_code, error, sizeof error)) {
    bool general = error_code == FW_EVAL_GENERAL;
    if (fw_http_set_error(res, req, general ? 503 : 400,
                          general                             ? "out_of_memory"
                          : error_code == FW_EVAL_PARSE_ERROR ? "malformed_json"
                                                              : "invalid_context",
                          error))
      res->status = 500;
    return;
  }
  int rc = fw_hub_render_values(res->body, scope.project, scope.env,
                                scope.kind != FW_CREDENTIAL_SERVER, context, NULL, false);
  fw_eval_context_free(context);
  if (rc)
    return answer_out_of_memory(res, req);
  res->status = 200;
  res->content_type = "application/json";
  finish_with_etag(res, req);
}

int fw_eval_api_register(struct fw_router *router, struct fw_eval_api *api) {
  int rc = fw_router_add(router, FW_HTTP_GET, "/v1/flags", get_definitions, api);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_POST, "/v1/evaluate", evaluate, api);
  return rc;
}
