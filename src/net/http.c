#include "net/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/digest.h"
#include "util/json.h"
#include "util/random.h"

static const char *const method_names[FW_HTTP_METHOD_COUNT] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"};

enum fw_http_method fw_http_method_from(const char *name) {
  for (int m = 0; m < FW_HTTP_OTHER; m++)
    if (strcmp(method_names[m], name) == 0)
      return (enum fw_http_method)m;
  return FW_HTTP_OTHER;
}

const char *fw_http_method_name(enum fw_http_method method) { return method_names[method]; }

const char *fw_http_status_text(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 426:
    return "Upgrade Required";
  case 428:
    return "Precondition Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

const char *fw_http_header(const struct fw_http_request *req, const char *name, size_t *len) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i < req->header_count; i++) {
    const struct fw_http_header *h = &req->headers[i];
    if (h->name_len == name_len && strncasecmp(h->name, name, name_len) == 0) {
      if (len)
        *len = h->value_len;
      return h->value;
    }
  }
  return NULL;
}

const char *fw_http_param(const struct fw_http_request *req, const char *name) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i < req->param_count; i++)
    if (req->params[i].name_len == name_len && memcmp(req->params[i].name, name, name_len) == 0)
      return req->params[i].value;
  return NULL;
}

int fw_http_add_header(struct fw_http_response *res, const char *name, const char *value) {
  int rc = fw_buf_append_str(res->head, name);
  if (!rc)
    rc = fw_buf_append(res->head, ": ", 2);
  if (!rc)
    rc = fw_buf_append_str(res->head, value);
  if (!rc)
    rc = fw_buf_append(res->head, "\r\n", 2);
  return rc;
}

int fw_http_set_json(struct fw_http_response *res, int status, const char *json, size_t len) {
  res->status = status;
  res->content_type = "application/json";
  fw_buf_reset(res->body);
  return fw_buf_append(res->body, json, len);
}

int fw_http_set_error(struct fw_http_response *res, const struct fw_http_request *req, int status,
                      const char *code, const char *message) {
  res->status = status;
  res->content_type = "application/json";
  struct fw_buf *b = res->body;
  fw_buf_reset(b);
  int rc = fw_buf_append_str(b, "{\"error\":{\"code\":");
  if (!rc)
    rc = fw_json_append_string(b, code, strlen(code));
  if (!rc)
    rc = fw_buf_append_str(b, ",\"message\":");
  if (!rc)
    rc = fw_json_append_string(b, message, strlen(message));
  if (!rc)
    rc = fw_buf_append_str(b, ",\"request_id\":");
  if (!rc)
    rc = fw_json_append_string(b, req->request_id, strlen(req->request_id));
  if (!rc)
    rc = fw_buf_append_str(b, "}}");
  return rc;
}

bool fw_http_request_id_valid(const char *id, size_t len) {
  if (len == 0 || len > FW_HTTP_REQUEST_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

void fw_http_request_id_generate(char *out) {
  snprintf(out, FW_HTTP_REQUEST_ID_MAX + 1, "%016llx", (unsigned long long)fw_random_fast());
}

bool fw_http_query(const struct fw_http_request *req, const char *name, const char **value,
                   size_t *len) {
  size_t name_len = strlen(name);
  const char *p = req->query, *end = req->query ? req->query + req->query_len : NULL;
  while (p && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    if ((size_t)(stop - p) > name_len && !memcmp(p, name, name_len) && p[name_len] == '=') {
      *value = p + name_len + 1;
      *len = (size_t)(stop - *value);
      return true;
    }
    p = amp ? amp + 1 : NULL;
  }
  return false;
}

bool fw_http_query_decode(const char *value, size_t len, char *out, size_t out_size,
                          size_t *out_len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char decoded = value[i];
    if (decoded == '+') {
      decoded = ' ';
    } else if (decoded == '%') {
      int high = i + 2 < len ? fw_hex_value(value[i + 1]) : -1;
      int low = high >= 0 ? fw_hex_value(value[i + 2]) : -1;
      if (low < 0)
        return false;
      decoded = (char)(high * 16 + low);
      i += 2;
    }
    if (decoded == '\0' || n + 1 >= out_size)
      return false;
    out[n++] = decoded;
  }
  out[n] = '\0';
  *out_len = n;
  return true;
}
