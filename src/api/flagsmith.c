#include "api/flagsmith.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/evaluation.h"
#include "util/json.h"
#include "util/time.h"

/* Trait lists are capped like contexts are, less the identifier's place. */
#define MAX_TRAITS (FW_EVAL_CONTEXT_MAX_ATTRIBUTES - 1)

static void answer_error(struct fw_http_response *res, const struct fw_http_request *req,
                         int status, const char *code, const char *message) {
  if (fw_http_set_error(res, req, status, code, message))
    res->status = 500;
}

/* Appends one flag in Flagsmith's shape. */
static int append_flag(struct fw_buf *out, const struct fw_key_scope *scope,
                       const struct fw_object *state, const struct fw_eval_result *result) {
  const struct fw_object *flag = fw_project_flag(scope->project, state->key);
  const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
  bool boolean = compiled && compiled->type == FW_FLAG_BOOLEAN;
  bool failed = result->reason == FW_REASON_ERROR;
  bool enabled = boolean ? !failed && result->value.len == 4 /* true */
                         : !failed && result->reason != FW_REASON_DISABLED;
  int rc = fw_buf_appendf(out, "{\"id\":%" PRId64 ",\"feature\":{\"id\":%" PRId64 ",\"name\":",
                          state->id, flag ? flag->id : state->id);
  if (!rc)
    rc = fw_json_append_string(out, state->key, strlen(state->key));
  if (!rc)
    rc = fw_buf_appendf(
        out, ",\"type\":\"%s\"},\"feature_state_value\":", boolean ? "STANDARD" : "MULTIVARIATE");
  if (!rc && (boolean || failed))
    rc = fw_buf_append_str(out, "null");
  else if (!rc && compiled && compiled->type == FW_FLAG_JSON &&
           fw_rawjson_type(result->value) != FW_RAWJSON_STRING)
    rc = fw_json_append_string(out, result->value.text, result->value.len);
  else if (!rc)
    rc = fw_buf_append(out, result->value.text, result->value.len);
  if (!rc)
    rc = fw_buf_appendf(out,
                        ",\"enabled\":%s,\"environment\":%" PRId64
                        ",\"identity\":null,\"feature_segment\":null}",
                        enabled ? "true" : "false", scope->env->env->id);
  return rc;
}

/* Appends the environment's flags the key may see, evaluated for `context` (NULL for the
 * environment without an identity: a flag that splits by targeting key then shows what
 * it serves when on, as Flagsmith shows its control value). */
static int append_flags(struct fw_buf *out, const struct fw_key_scope *scope,
                        const struct fw_eval_context *context, bool identity) {
  int rc = fw_buf_append_char(out, '[');
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(scope->env->states); i++) {
    const struct fw_object *state = fw_objects_at(scope->env->states, i);
    if (!fw_evaluation_visible(scope, state))
      continue;
    struct fw_eval_result result;
    fw_compiled_evaluate(scope->env, state, context, &result);
    const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
    if (!identity && result.error == FW_EVAL_TARGETING_KEY_MISSING && compiled && compiled->eval)
      fw_eval_on_variant(compiled->eval, &result);
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = append_flag(out, scope, state, &result);
  }
  if (!rc)
    rc = fw_buf_append_char(out, ']');
  return rc;
}

static bool authorize(const struct fw_flagsmith *flagsmith, const struct fw_http_request *req,
                      struct fw_http_response *res, struct fw_key_scope *scope) {
  return fw_keys_authorize(flagsmith->writer, req, res, "X-Environment-Key",
                           FW_KEYS_CLIENT | FW_KEYS_SERVER, scope);
}

static void finish(struct fw_http_response *res, const struct fw_http_request *req,
                   const struct fw_key_scope *scope, int rc) {
  char updated_at[32];
  fw_time_seconds_text(scope->env->last_change_ms, updated_at);
  if (!rc)
    rc = fw_http_add_header(res, "x-flagsmith-document-updated-at", updated_at);
  if (rc)
    return answer_error(res, req, 503, "out_of_memory", "the server is out of memory");
  res->status = 200;
  res->content_type = "application/json";
}

static void get_flags(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_key_scope scope;
  if (!authorize(ctx, req, res, &scope))
    return;
  struct fw_eval_context *context;
  enum fw_eval_error error_code;
  char error[256];
  int rc = fw_eval_context_parse("{}", 2, &context, &error_code, error, sizeof error);
  if (rc)
    return answer_error(res, req, 503, "out_of_memory", "the server is out of memory");
  rc = append_flags(res->body, &scope, context, false);
  fw_eval_context_free(context);
  finish(res, req, &scope, rc);
}

/* Builds a context from an identifier and Flagsmith traits ([{"trait_key","trait_value"}])
 * as the context JSON the engine parses, and echoes the traits kept into `traits_out`. */
static bool identity_context(const char *identifier, struct fw_rawjson traits,
                             struct fw_buf *context, struct fw_buf *traits_out, char *error,
                             size_t error_len) {
  int rc = fw_buf_append_str(context, "{\"targetingKey\":");
  if (!rc)
    rc = fw_json_append_string(context, identifier, strlen(identifier));
  if (!rc)
    rc = fw_buf_append_char(traits_out, '[');
  struct fw_rawjson trait;
  size_t kept = 0;
  for (size_t i = 0; !rc && fw_rawjson_element(traits, i, &trait) == FW_OK; i++) {
    struct fw_rawjson key, value;
    enum fw_rawjson_type type;
    if (i >= MAX_TRAITS) {
      snprintf(error, error_len, "an identity has at most %d traits", MAX_TRAITS);
      return false;
    }
    if (fw_rawjson_type(trait) != FW_RAWJSON_OBJECT ||
        fw_rawjson_member(trait, "trait_key", &key) != FW_OK ||
        fw_rawjson_type(key) != FW_RAWJSON_STRING) {
      snprintf(error, error_len, "trait %zu must be {\"trait_key\":..,\"trait_value\":..}", i);
      return false;
    }
    /* The identifier is the targeting key; a trait may not stand in for it. */
    char name[16];
    if (fw_rawjson_string(key, name, sizeof name) == FW_OK && !strcmp(name, "targetingKey")) {
      snprintf(error, error_len, "trait %zu: 'targetingKey' is the identifier, not a trait", i);
      return false;
    }
    /* A trait without a value (or null) is one being removed: it is not in the context. */
    if (fw_rawjson_member(trait, "trait_value", &value) != FW_OK ||
        (type = fw_rawjson_type(value)) == FW_RAWJSON_NULL)
      continue;
    if (type == FW_RAWJSON_OBJECT || type == FW_RAWJSON_ARRAY) {
      snprintf(error, error_len, "trait %zu: a value is a string, number or boolean", i);
      return false;
    }
    rc = fw_buf_append_char(context, ',');
    if (!rc)
      rc = fw_buf_append(context, key.text, key.len);
    if (!rc)
      rc = fw_buf_append_char(context, ':');
    if (!rc)
      rc = fw_buf_append(context, value.text, value.len);
    if (!rc && kept++)
      rc = fw_buf_append_char(traits_out, ',');
    if (!rc)
      rc = fw_buf_append_str(traits_out, "{\"trait_key\":");
    if (!rc)
      rc = fw_buf_append(traits_out, key.text, key.len);
    if (!rc)
      rc = fw_buf_append_str(traits_out, ",\"trait_value\":");
    if (!rc)
      rc = fw_buf_append(traits_out, value.text, value.len);
    if (!rc)
      rc = fw_buf_append_char(traits_out, '}');
  }
  if (!rc)
    rc = fw_buf_append_char(context, '}');
  if (!rc)
    rc = fw_buf_append_char(traits_out, ']');
  if (rc)
    snprintf(error, error_len, "the identity is too large");
  return rc == FW_OK;
}

/* Answers an identity's flags: {"identifier":..,"flags":[..],"traits":[..]}. */
static void answer_identity(struct fw_http_request *req, struct fw_http_response *res,
                            const struct fw_key_scope *scope, const char *identifier,
                            struct fw_rawjson traits) {
  struct fw_buf context_text, traits_out;
  fw_buf_init(&context_text, FW_EVAL_CONTEXT_MAX_BYTES);
  fw_buf_init(&traits_out, FW_EVAL_CONTEXT_MAX_BYTES);
  char error[256];
  struct fw_eval_context *context = NULL;
  enum fw_eval_error error_code;
  if (!identity_context(identifier, traits, &context_text, &traits_out, error, sizeof error) ||
      fw_eval_context_parse(context_text.data, context_text.len, &context, &error_code, error,
                            sizeof error) != FW_OK) {
    answer_error(res, req, 400, "invalid_identity", error);
  } else {
    int rc = fw_buf_append_str(res->body, "{\"identifier\":");
    if (!rc)
      rc = fw_json_append_string(res->body, identifier, strlen(identifier));
    if (!rc)
      rc = fw_buf_append_str(res->body, ",\"flags\":");
    if (!rc)
      rc = append_flags(res->body, scope, context, true);
    if (!rc)
      rc = fw_buf_append_str(res->body, ",\"traits\":");
    if (!rc)
      rc = fw_buf_append(res->body, traits_out.data, traits_out.len);
    if (!rc)
      rc = fw_buf_append_char(res->body, '}');
    finish(res, req, scope, rc);
  }
  fw_eval_context_free(context);
  fw_buf_free(&context_text);
  fw_buf_free(&traits_out);
}

/* Decodes the query value of `identifier`; false when absent, empty or bad. */
static bool query_identifier(const struct fw_http_request *req, char *out, size_t out_len) {
  const char *value;
  size_t len, decoded_len;
  return fw_http_query(req, "identifier", &value, &len) &&
         fw_http_query_decode(value, len, out, out_len, &decoded_len) && decoded_len > 0;
}

#define IDENTIFIER_MAX 1024

static void get_identity(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_key_scope scope;
  if (!authorize(ctx, req, res, &scope))
    return;
  char identifier[IDENTIFIER_MAX];
  if (!query_identifier(req, identifier, sizeof identifier))
    return answer_error(res, req, 400, "invalid_identity",
                        "'identifier' is required: /api/v1/identities/?identifier=...");
  answer_identity(req, res, &scope, identifier, (struct fw_rawjson){"[]", 2});
}

static void post_identity(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_key_scope scope;
  if (!authorize(ctx, req, res, &scope))
    return;
  struct fw_rawjson body, value, traits = {"[]", 2};
  char identifier[IDENTIFIER_MAX];
  if (fw_rawjson_validate(req->body, req->body_len, &body, NULL, NULL) != FW_OK ||
      fw_rawjson_type(body) != FW_RAWJSON_OBJECT)
    return answer_error(res, req, 400, "malformed_json", "the body must be a JSON object");
  if (fw_rawjson_member(body, "identifier", &value) != FW_OK ||
      fw_rawjson_type(value) != FW_RAWJSON_STRING ||
      fw_rawjson_string(value, identifier, sizeof identifier) != FW_OK || !identifier[0])
    return answer_error(res, req, 400, "invalid_identity", "'identifier' must be a string");
  if (fw_rawjson_member(body, "traits", &value) == FW_OK) {
    if (fw_rawjson_type(value) != FW_RAWJSON_ARRAY)
      return answer_error(res, req, 400, "invalid_identity", "'traits' must be an array");
    traits = value;
  }
  answer_identity(req, res, &scope, identifier, traits);
}

int fw_flagsmith_register(struct fw_router *router, struct fw_flagsmith *flagsmith) {
  /* Flagsmith's SDKs end these paths with a slash; plain HTTP clients may not. */
  static const struct {
    enum fw_http_method method;
    const char *pattern;
    fw_http_handler handler;
  } routes[] = {
      {FW_HTTP_GET, "/api/v1/flags/", get_flags},
      {FW_HTTP_GET, "/api/v1/flags", get_flags},
      {FW_HTTP_GET, "/api/v1/identities/", get_identity},
      {FW_HTTP_GET, "/api/v1/identities", get_identity},
      {FW_HTTP_POST, "/api/v1/identities/", post_identity},
      {FW_HTTP_POST, "/api/v1/identities", post_identity},
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(routes); i++) {
    int rc =
        fw_router_add(router, routes[i].method, routes[i].pattern, routes[i].handler, flagsmith);
    if (rc)
      return rc;
  }
  return FW_OK;
}
