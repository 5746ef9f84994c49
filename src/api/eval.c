#include "api/eval.h"

#include <inttypes.h>
#include <string.h>

#include "api/evaluation.h"
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
  const struct fw_env_node *env = scope.env;
  struct fw_buf *out = res->body;
  int rc = fw_buf_append_str(out, "{\"environment\":");
  if (!rc)
    rc = fw_json_append_string(out, env->env->key, strlen(env->env->key));
  if (!rc)
    rc = fw_buf_appendf(out, ",\"revision\":%" PRId64 ",\"flags\":[", env->revision);
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->states); i++) {
    const struct fw_object *flag =
        fw_project_flag(scope.project, fw_objects_at(env->states, i)->key);
    if (!flag)
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_render_env_flag(out, flag, fw_objects_at(env->states, i));
  }
  if (!rc)
    rc = fw_buf_append_str(out, "],\"segments\":[");
  written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->segment_rules); i++) {
    const struct fw_object *segment =
        fw_project_segment(scope.project, fw_objects_at(env->segment_rules, i)->key);
    if (!segment)
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_render_env_segment(out, segment, fw_objects_at(env->segment_rules, i));
  }
  if (!rc)
    rc = fw_buf_append_str(out, "],\"configs\":[");
  for (size_t i = 0; !rc && i < fw_objects_count(env->configs); i++) {
    if (i)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_buf_append(out, fw_objects_at(env->configs, i)->doc,
                         fw_objects_at(env->configs, i)->doc_len);
  }
  if (!rc)
    rc = fw_buf_append_str(out, "]}");
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
  const struct fw_env_node *env = scope.env;
  struct fw_buf *out = res->body;
  int rc = fw_buf_append_str(out, "{\"environment\":");
  if (!rc)
    rc = fw_json_append_string(out, env->env->key, strlen(env->env->key));
  if (!rc)
    rc = fw_buf_appendf(out, ",\"revision\":%" PRId64 ",\"flags\":{", env->revision);
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->states); i++) {
    const struct fw_object *state = fw_objects_at(env->states, i);
    if (!fw_evaluation_visible(&scope, state))
      continue;
    struct fw_eval_result result;
    fw_evaluation_run(env, state, context, &result);
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_json_append_string(out, state->key, strlen(state->key));
    if (!rc)
      rc = fw_buf_append_str(out, ":{");
    if (!rc)
      rc = fw_evaluation_append(out, &result);
    if (!rc)
      rc = fw_buf_append_char(out, '}');
  }
  fw_eval_context_free(context);
  if (!rc)
    rc = fw_buf_append_str(out, "},\"configs\":{");
  written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->configs); i++) {
    const struct fw_object *config = fw_objects_at(env->configs, i);
    struct fw_rawjson doc = {config->doc, config->doc_len}, value, type;
    if (fw_rawjson_member(doc, "value", &value) != FW_OK ||
        fw_rawjson_member(doc, "content_type", &type) != FW_OK)
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_json_append_string(out, config->key, strlen(config->key));
    if (!rc)
      rc = fw_buf_append_str(out, ":{\"value\":");
    if (!rc)
      rc = fw_buf_append(out, value.text, value.len);
    if (!rc)
      rc = fw_buf_append_str(out, ",\"content_type\":");
    if (!rc)
      rc = fw_buf_append(out, type.text, type.len);
    if (!rc)
      rc = fw_buf_append_char(out, '}');
  }
  if (!rc)
    rc = fw_buf_append_str(out, "}}");
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
