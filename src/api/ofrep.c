#include "api/ofrep.h"

#include <stdio.h>
#include <string.h>

#include "api/evaluation.h"
#include "util/json.h"

/* HTTP status of an OFREP evaluation error: FLAG_NOT_FOUND is 404, GENERAL 500, the
 * rest are the request's fault. */
static int error_status(enum fw_eval_error error) {
  switch (error) {
  case FW_EVAL_FLAG_NOT_FOUND:
    return 404;
  case FW_EVAL_GENERAL:
    return 500;
  default:
    return 400;
  }
}

/* Answers an OFREP error object: {"key":..,"errorCode":..,"errorDetails":..} (no key
 * for a bulk request's own error). */
static void answer_failure(struct fw_http_response *res, const struct fw_http_request *req,
                           const char *key, enum fw_eval_error error, const char *details) {
  res->status = error_status(error);
  res->content_type = "application/json";
  fw_buf_reset(res->body);
  int rc = fw_buf_append_char(res->body, '{');
  if (!rc && key) {
    rc = fw_buf_append_str(res->body, "\"key\":");
    if (!rc)
      rc = fw_json_append_string(res->body, key, strlen(key));
    if (!rc)
      rc = fw_buf_append_char(res->body, ',');
  }
  if (!rc)
    rc = fw_buf_appendf(res->body,
                        "\"errorCode\":\"%s\",\"errorDetails\":", fw_eval_error_name(error));
  if (!rc)
    rc = fw_json_append_string(res->body, details, strlen(details));
  if (!rc)
    rc = fw_buf_append_char(res->body, '}');
  if (rc && fw_http_set_error(res, req, 500, "internal", "the answer could not be built"))
    res->status = 500;
}

/* Appends one evaluation in OFREP's form, success or failure. */
static int append_evaluation(struct fw_buf *out, const char *key,
                             const struct fw_eval_result *result) {
  int rc = fw_buf_append_str(out, "{\"key\":");
  if (!rc)
    rc = fw_json_append_string(out, key, strlen(key));
  if (!rc && result->reason == FW_REASON_ERROR)
    rc = fw_buf_appendf(out, ",\"errorCode\":\"%s\",\"errorDetails\":\"%s\"}",
                        fw_eval_error_name(result->error),
                        result->error == FW_EVAL_TARGETING_KEY_MISSING
                            ? "this flag splits by an attribute the context lacks"
                            : "the flag could not be evaluated");
  else if (!rc) {
    rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_eval_result_append(out, result);
    if (!rc)
      rc = fw_buf_append_str(out, ",\"metadata\":{}}");
  }
  return rc;
}

static void evaluate_one(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_ofrep *ofrep = ctx;
  const char *key = fw_http_param(req, "key");
  struct fw_key_scope scope;
  if (!fw_keys_authorize(ofrep->writer, req, res, "Authorization", FW_KEYS_SERVER | FW_KEYS_CLIENT,
                         &scope))
    return;
  struct fw_eval_context *context;
  enum fw_eval_error error_code;
  char error[256];
  if (!fw_evaluation_context(req, &context, &error_code, error, sizeof error))
    return answer_failure(res, req, key, error_code, error);
  struct fw_object *state = fw_env_state(scope.env, key);
  /* A client key is told a server-only flag does not exist: it may not learn of it. */
  if (!state || !fw_evaluation_visible(&scope, state)) {
    fw_eval_context_free(context);
    snprintf(error, sizeof error, "no flag '%s' for this key", key);
    return answer_failure(res, req, key, FW_EVAL_FLAG_NOT_FOUND, error);
  }
  struct fw_eval_result result;
  fw_compiled_evaluate(scope.env, state, context, &result);
  fw_eval_context_free(context);
  if (result.reason == FW_REASON_ERROR)
    return answer_failure(res, req, key, result.error,
                          result.error == FW_EVAL_TARGETING_KEY_MISSING
                              ? "this flag splits by an attribute the context lacks"
                              : "the flag could not be evaluated");
  res->status = 200;
  res->content_type = "application/json";
  if (append_evaluation(res->body, key, &result))
    answer_failure(res, req, key, FW_EVAL_GENERAL, "the answer could not be built");
}

/* `,"eventStreams":[...]`: where a browser listens for changes. The stream's URL carries
 * the request's client key (EventSource cannot send headers; a client key may be in a
 * URL, DESIGN.md 1a) and is relative, so it works behind whatever host and proxy the
 * client reached. */
static int append_event_streams(struct fw_buf *out, const struct fw_http_request *req) {
  size_t len;
  const char *value = fw_http_header(req, "Authorization", &len);
  if (!value || len <= 7)
    return FW_OK;
  int rc = fw_buf_append_str(out, ",\"eventStreams\":[{\"type\":\"sse\",\"endpoint\":"
                                  "{\"requestUri\":\"/ofrep/v1/stream?key=");
  /* Keys are base64url with a prefix: nothing in them needs escaping in JSON or a URL. */
  if (!rc)
    rc = fw_buf_append(out, value + 7, len - 7);
  if (!rc)
    rc = fw_buf_append_str(out, "\"}}]");
  return rc;
}

static void evaluate_all(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_ofrep *ofrep = ctx;
  struct fw_key_scope scope;
  if (!fw_keys_authorize(ofrep->writer, req, res, "Authorization", FW_KEYS_SERVER | FW_KEYS_CLIENT,
                         &scope))
    return;
  struct fw_eval_context *context;
  enum fw_eval_error error_code;
  char error[256];
  if (!fw_evaluation_context(req, &context, &error_code, error, sizeof error))
    return answer_failure(res, req, NULL, error_code, error);
  res->status = 200;
  res->content_type = "application/json";
  int rc = fw_buf_append_str(res->body, "{\"flags\":[");
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(scope.env->states); i++) {
    const struct fw_object *state = fw_objects_at(scope.env->states, i);
    if (!fw_evaluation_visible(&scope, state))
      continue;
    struct fw_eval_result result;
    fw_compiled_evaluate(scope.env, state, context, &result);
    if (written++)
      rc = fw_buf_append_char(res->body, ',');
    if (!rc)
      rc = append_evaluation(res->body, state->key, &result);
  }
  fw_eval_context_free(context);
  if (!rc)
    rc = fw_buf_append_char(res->body, ']');
  if (!rc && scope.kind == FW_CREDENTIAL_CLIENT)
    rc = append_event_streams(res->body, req);
  if (!rc)
    rc = fw_buf_append_char(res->body, '}');
  char etag[40];
  if (!rc) {
    /* The tag hashes the exact bytes, so another context can never get a wrong 304. */
    fw_evaluation_etag(res->body, etag);
    rc = fw_http_add_header(res, "ETag", etag);
  }
  if (rc)
    return answer_failure(res, req, NULL, FW_EVAL_GENERAL, "the answer could not be built");
  if (fw_evaluation_not_modified(req, etag)) {
    res->status = 304;
    fw_buf_reset(res->body);
  }
}

int fw_ofrep_register(struct fw_router *router, struct fw_ofrep *ofrep) {
  int rc =
      fw_router_add(router, FW_HTTP_POST, "/ofrep/v1/evaluate/flags/{key}", evaluate_one, ofrep);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_POST, "/ofrep/v1/evaluate/flags", evaluate_all, ofrep);
  return rc;
}
