#include "api/body.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool fw_body_fail(struct fw_body *body, int status, const char *code, const char *fmt, ...) {
  if (body->code)
    return false;
  body->status = status;
  body->code = code;
  va_list args;
  va_start(args, fmt);
  vsnprintf(body->message, sizeof body->message, fmt, args);
  va_end(args);
  return false;
}

bool fw_body_parse_value(struct fw_body *body, const char *text, size_t len) {
  memset(body, 0, sizeof *body);
  size_t offset = 0;
  const char *reason = "invalid";
  if (!text || len == 0)
    return fw_body_fail(body, 400, "malformed_json", "the request body is empty; JSON is expected");
  if (fw_rawjson_validate(text, len, &body->root, &offset, &reason) != FW_OK)
    return fw_body_fail(body, 400, "malformed_json", "the body is not valid JSON: %s at byte %zu",
                        reason, offset);
  return true;
}

bool fw_body_parse(struct fw_body *body, const char *text, size_t len) {
  if (!fw_body_parse_value(body, text, len))
    return false;
  if (fw_rawjson_type(body->root) != FW_RAWJSON_OBJECT)
    return fw_body_fail(body, 400, "malformed_json", "the body must be a JSON object");
  return true;
}

bool fw_body_only(struct fw_body *body, const char *const *allowed) {
  if (body->code)
    return false;
  size_t cursor = 0;
  struct fw_rawjson name, value;
  while (fw_rawjson_next_member(body->root, &cursor, &name, &value)) {
    char text[128];
    if (fw_rawjson_string(name, text, sizeof text) != FW_OK)
      return fw_body_fail(body, 422, "unknown_field", "unknown field (name too long)");
    bool known = false;
    for (size_t i = 0; allowed[i] && !known; i++)
      known = !strcmp(allowed[i], text);
    if (!known)
      return fw_body_fail(body, 422, "unknown_field", "unknown field '%s'", text);
  }
  return true;
}

bool fw_body_raw(struct fw_body *body, const char *name, bool required, struct fw_rawjson *out,
                 bool *present) {
  if (body->code)
    return false;
  int rc = fw_rawjson_member(body->root, name, out);
  if (present)
    *present = rc == FW_OK;
  if (rc == FW_ENOTFOUND && required)
    return fw_body_fail(body, 422, "missing_field", "field '%s' is required", name);
  return rc == FW_OK || rc == FW_ENOTFOUND;
}

bool fw_body_string(struct fw_body *body, const char *name, bool required, size_t max_len,
                    char *out, size_t out_len, bool *present) {
  struct fw_rawjson raw;
  bool here = false;
  if (!fw_body_raw(body, name, required, &raw, &here))
    return false;
  if (present)
    *present = here;
  if (!here)
    return true;
  if (fw_rawjson_type(raw) != FW_RAWJSON_STRING)
    return fw_body_fail(body, 422, "invalid_field", "field '%s' must be a string", name);
  int rc = fw_rawjson_string(raw, out, out_len);
  if (rc == FW_ETOOBIG || (rc == FW_OK && strlen(out) > max_len))
    return fw_body_fail(body, 422, "invalid_field", "field '%s' is longer than %zu bytes", name,
                        max_len);
  if (rc != FW_OK || strlen(out) == 0)
    return fw_body_fail(body, 422, "invalid_field", "field '%s' must be a non-empty string", name);
  return true;
}

bool fw_body_bool(struct fw_body *body, const char *name, bool required, bool *out, bool *present) {
  struct fw_rawjson raw;
  bool here = false;
  if (!fw_body_raw(body, name, required, &raw, &here))
    return false;
  if (present)
    *present = here;
  if (!here)
    return true;
  enum fw_rawjson_type type = fw_rawjson_type(raw);
  if (type != FW_RAWJSON_TRUE && type != FW_RAWJSON_FALSE)
    return fw_body_fail(body, 422, "invalid_field", "field '%s' must be true or false", name);
  *out = type == FW_RAWJSON_TRUE;
  return true;
}

int fw_body_answer_error(const struct fw_body *body, struct fw_http_response *res,
                         const struct fw_http_request *req) {
  return fw_http_set_error(res, req, body->status, body->code, body->message);
}
