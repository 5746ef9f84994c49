/* HTTP/1.1 requests and responses as the rest of the program sees them. The bytes on
 * the wire are handled by http_parser.c (reading) and server.c (writing). */
#ifndef FW_NET_HTTP_H
#define FW_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/common.h"

#define FW_HTTP_REQUEST_ID_MAX 64
#define FW_HTTP_MAX_PARAMS 8

enum fw_http_method {
  FW_HTTP_GET,
  FW_HTTP_HEAD,
  FW_HTTP_POST,
  FW_HTTP_PUT,
  FW_HTTP_PATCH,
  FW_HTTP_DELETE,
  FW_HTTP_OPTIONS,
  FW_HTTP_OTHER
};
#define FW_HTTP_METHOD_COUNT 8

struct fw_http_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* A path parameter captured by the router: `{project}` in the pattern. The value is
 * percent-decoded and NUL-terminated. */
struct fw_http_param {
  const char *name; /* not NUL-terminated: it points into the route's pattern */
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* One complete request. Everything it points to is borrowed from the connection and
 * valid until the response has been produced. */
struct fw_http_request {
  enum fw_http_method method;
  const char *method_name;
  const char *target; /* as sent: path and query, not decoded */
  size_t target_len;
  const char *path;
  size_t path_len;
  const char *query; /* after '?', or NULL */
  size_t query_len;
  const struct fw_http_header *headers;
  size_t header_count;
  const char *body;
  size_t body_len;
  bool keep_alive;
  bool http10; /* an HTTP/1.0 request: keep-alive must then be said explicitly */
  char request_id[FW_HTTP_REQUEST_ID_MAX + 1];
  struct fw_http_param params[FW_HTTP_MAX_PARAMS];
  size_t param_count;
};

struct fw_conn;

/* A response under construction. `head` and `body` are scratch buffers that belong to
 * the connection's loop and are reused for the next response: never keep a pointer. */
struct fw_http_response {
  int status;
  const char *content_type; /* static string, or NULL for no body type */
  struct fw_buf *head;      /* extra header lines, each "Name: value\r\n" */
  struct fw_buf *body;
  bool close;           /* send Connection: close and close after writing */
  struct fw_conn *conn; /* the connection, for fw_http_response_stream */
};

/* The value of header `name` (case-insensitive) or NULL; *len receives its length. */
const char *fw_http_header(const struct fw_http_request *req, const char *name, size_t *len);
/* The value of path parameter `name`, or NULL. */
const char *fw_http_param(const struct fw_http_request *req, const char *name);

enum fw_http_method fw_http_method_from(const char *name);
const char *fw_http_method_name(enum fw_http_method method);
/* The reason phrase of a status code ("Not Found"). */
const char *fw_http_status_text(int status);

/* Adds a header line to the response. FW_ETOOBIG/FW_ENOMEM from the buffer. */
FW_MUST_CHECK int fw_http_add_header(struct fw_http_response *res, const char *name,
                                     const char *value);
/* Sets a JSON body (already serialised) and the JSON content type. */
FW_MUST_CHECK int fw_http_set_json(struct fw_http_response *res, int status, const char *json,
                                   size_t len);
/* Replaces the response with the error body every failure uses:
 * {"error":{"code":"...","message":"...","request_id":"..."}}. */
FW_MUST_CHECK int fw_http_set_error(struct fw_http_response *res, const struct fw_http_request *req,
                                    int status, const char *code, const char *message);

/* Whether `id` may be echoed as a request id: 1 to 64 of [A-Za-z0-9._:-]. */
bool fw_http_request_id_valid(const char *id, size_t len);
/* Writes a fresh 16-hex-digit request id into `out` (FW_HTTP_REQUEST_ID_MAX + 1 bytes). */
void fw_http_request_id_generate(char *out);

/* Finds query parameter `name`: its raw (still percent-encoded) value in *value and *len.
 * False when absent. */
bool fw_http_query(const struct fw_http_request *req, const char *name, const char **value,
                   size_t *len);

/* Decodes a percent-encoded query value (`+` is a space) into `out`, NUL-terminated;
 * *out_len receives its length. False for a malformed escape, a decoded NUL, or a value
 * that does not fit in `out_size` - 1 bytes. */
bool fw_http_query_decode(const char *value, size_t len, char *out, size_t out_size,
                          size_t *out_len);

#endif
