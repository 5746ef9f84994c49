#include "api/evaluation.h"

#include <stdio.h>
#include <string.h>

#include "util/digest.h"
#include "util/json.h"

bool fw_evaluation_context(const struct fw_http_request *req, struct fw_eval_context **out,
                           enum fw_eval_error *error_code, char *error, size_t error_len) {
  *out = NULL;
  struct fw_rawjson body, context = {"{}", 2};
  size_t offset;
  const char *reason = "invalid";
  if (req->body_len > 0) {
    if (fw_rawjson_validate(req->body, req->body_len, &body, &offset, &reason) != FW_OK) {
      *error_code = FW_EVAL_PARSE_ERROR;
      snprintf(error, error_len, "the body is not valid JSON: %s at byte %zu", reason, offset);
      return false;
    }
    if (fw_rawjson_type(body) != FW_RAWJSON_OBJECT) {
      *error_code = FW_EVAL_PARSE_ERROR;
      snprintf(error, error_len, "the body must be a JSON object with a \"context\"");
      return false;
    }
    if (fw_rawjson_member(body, "context", &context) != FW_OK)
      context = (struct fw_rawjson){"{}", 2};
    if (fw_rawjson_type(context) != FW_RAWJSON_OBJECT) {
      *error_code = FW_EVAL_INVALID_CONTEXT;
      snprintf(error, error_len, "\"context\" must be a JSON object");
      return false;
    }
  }
  int rc = fw_eval_context_parse(context.text, context.len, out, error_code, error, error_len);
  if (rc == FW_ENOMEM) {
    *error_code = FW_EVAL_GENERAL;
    snprintf(error, error_len, "the server is out of memory");
  }
  return rc == FW_OK;
}

bool fw_evaluation_visible(const struct fw_key_scope *scope, const struct fw_object *state) {
  if (scope->kind == FW_CREDENTIAL_SERVER)
    return true;
  const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
  return compiled && compiled->client_visible;
}

void fw_evaluation_etag(const struct fw_buf *body, char out[40]) {
  uint8_t hash[FW_SHA256_LEN];
  fw_sha256(body->data ? body->data : "", body->len, hash);
  /* 128 bits are ample to tell responses apart. */
  char hex[33];
  fw_hex_encode(hash, 16, hex);
  snprintf(out, 40, "\"%s\"", hex);
}

bool fw_evaluation_not_modified(const struct fw_http_request *req, const char *etag) {
  size_t len;
  const char *value = fw_http_header(req, "If-None-Match", &len);
  if (!value)
    return false;
  if (len == 1 && value[0] == '*')
    return true;
  /* A list of tags, possibly weak: a strong comparison of each. */
  size_t etag_len = strlen(etag);
  for (size_t i = 0; i + etag_len <= len; i++)
    if (!memcmp(value + i, etag, etag_len))
      return true;
  return false;
}
