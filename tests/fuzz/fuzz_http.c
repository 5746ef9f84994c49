/* libFuzzer target for the HTTP request path: the bytes one client connection sends are
 * read by fw_http_reader in arbitrary pieces, and every complete request then goes where
 * server.c sends it: the CORS filter, the router, a handler that builds a JSON body from
 * what the request carried, the error body, and the redacted target of the request log.
 *
 * Input: the first byte chooses how the rest is cut into reads (struct read_plan), so one
 * corpus entry exercises split request lines, split headers, split chunk sizes and
 * pipelining; the rest is the byte stream of the connection.
 *
 * Besides the sanitizers, the target checks what the interfaces promise and calls abort()
 * when a promise is broken, which libFuzzer records as a crash with its input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/cors.h"
#include "net/http.h"
#include "net/http_parser.h"
#include "net/router.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Far below the server's defaults, so that short inputs reach every cap. */
static const struct fw_http_limits limits = {.max_header_bytes = 4096, .max_body_bytes = 8192};

/* The sizes server.c gives the same buffers, so that the fuzzer sees the same edges. */
#define PARAM_STORAGE_SIZE 2048
#define ALLOW_SIZE 128
#define METHOD_MESSAGE_SIZE 160
#define LOG_TARGET_SIZE 512
#define RESPONSE_HEAD_LIMIT (64 * 1024)
#define RESPONSE_BODY_LIMIT (64 * 1024 * 1024)

/* Parameter storage too small for most values, to reach the router's "does not fit". */
#define TIGHT_PARAM_STORAGE_SIZE 8
/* Room for any redacted target: each "key=" can grow by "REDACTED", eight bytes. */
#define REDACTED_TARGET_LIMIT (4 * 4096)

#define CHECK(condition) ((condition) ? (void)0 : invariant_failed(#condition, __LINE__))

static _Noreturn void invariant_failed(const char *condition, int line) {
  fprintf(stderr, "fuzz_http.c:%d: invariant violated: %s\n", line, condition);
  abort();
}

/* ---- reads ---- */

enum read_pattern {
  READ_WHOLE,  /* everything in one read */
  READ_FIXED,  /* reads of 1 to 64 bytes */
  READ_RANDOM, /* reads of pseudo-random length, 1 to 64 bytes */
  READ_LINES   /* a read ends after each '\n', or after each '\r' to split the CRLF */
};

struct read_plan {
  enum read_pattern pattern;
  size_t fixed_len;
  uint32_t random_state;
  char line_end;
};

static struct read_plan read_plan_from(uint8_t selector) {
  unsigned parameter = selector / 4u; /* 0 to 63 */
  return (struct read_plan){
      .pattern = (enum read_pattern)(selector % 4u),
      .fixed_len = parameter + 1u,
      /* xorshift needs a state other than zero; the constant makes that so. */
      .random_state = 0x9e3779b9u ^ parameter,
      .line_end = parameter % 2u ? '\r' : '\n',
  };
}

static size_t next_read_len(struct read_plan *plan, const uint8_t *rest, size_t rest_len) {
  size_t len = rest_len;
  switch (plan->pattern) {
  case READ_WHOLE:
    break;
  case READ_FIXED:
    len = plan->fixed_len;
    break;
  case READ_RANDOM:
    plan->random_state ^= plan->random_state << 13;
    plan->random_state ^= plan->random_state >> 17;
    plan->random_state ^= plan->random_state << 5;
    len = 1u + plan->random_state % 64u;
    break;
  case READ_LINES: {
    const uint8_t *end = memchr(rest, plan->line_end, rest_len);
    if (end)
      len = (size_t)(end - rest) + 1u;
    break;
  }
  }
  return len < rest_len ? len : rest_len;
}

/* ---- routes ---- */

static struct fw_router router;

/* Built from data the request carried, the way real handlers answer "no such flag". */
static void answer_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(ctx);
  struct fw_buf message;
  fw_buf_init(&message, 4 * PARAM_STORAGE_SIZE);
  int rc = fw_buf_append_str(&message, "no flag at");
  for (size_t i = 0; i < req->param_count && !rc; i++)
    rc = fw_buf_appendf(&message, " %.*s=%s", (int)req->params[i].name_len, req->params[i].name,
                        req->params[i].value);
  CHECK(rc == FW_OK);
  CHECK(fw_http_set_error(res, req, 404, "flag_not_found", message.data) == FW_OK);
  fw_buf_free(&message);
}

/* Echoes a JSON object body, as creation endpoints return what they stored. */
static void answer_create(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(ctx);
  struct fw_json *doc = NULL;
  char error[160];
  int rc = fw_json_parse(req->body ? req->body : "", req->body_len, &doc, error, sizeof error);
  if (rc == FW_OK && fw_json_is_object(doc))
    rc = fw_http_set_json(res, 201, req->body, req->body_len);
  else
    rc = fw_http_set_error(res, req, 400, "invalid_json",
                           rc == FW_OK ? "the body must be a JSON object" : error);
  CHECK(rc == FW_OK);
  fw_json_free(doc);
}

static void answer_health(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(req);
  FW_UNUSED(ctx);
  static const char ok[] = "{\"status\":\"ok\"}";
  CHECK(fw_http_set_json(res, 200, ok, sizeof ok - 1) == FW_OK);
}

#define FLAG_PATTERN "/v1/projects/{project}/environments/{env}/flags/{key}"

static const struct {
  enum fw_http_method method;
  const char *pattern;
  fw_http_handler handler;
} routes[] = {
    {FW_HTTP_GET, "/healthz", answer_health},
    {FW_HTTP_GET, FLAG_PATTERN, answer_flag},
    {FW_HTTP_PATCH, FLAG_PATTERN, answer_flag},
    {FW_HTTP_POST, "/v1/projects", answer_create},
    /* A public surface, so that CORS and parameters meet on one path. */
    {FW_HTTP_POST, "/ofrep/v1/evaluate/flags/{key}", answer_flag},
    /* An empty last segment. */
    {FW_HTTP_GET, "/api/v1/flags/", answer_health},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  FW_UNUSED(argc);
  FW_UNUSED(argv);
  /* The router lives as long as the process, as the server's does. */
  fw_router_init(&router);
  for (size_t i = 0; i < FW_ARRAY_LEN(routes); i++)
    CHECK(fw_router_add(&router, routes[i].method, routes[i].pattern, routes[i].handler, NULL) ==
          FW_OK);
  return 0;
}

/* ---- checks on what the reader hands out ---- */

/* Reads every byte of a range the caller says is valid, so that AddressSanitizer checks
 * the whole of it rather than the bytes some code path happens to look at. */
static volatile unsigned char touched_sum; /* volatile: the reads may not be optimised away */

static void touch(const char *bytes, size_t len) {
  unsigned char sum = 0;
  for (size_t i = 0; i < len; i++)
    sum = (unsigned char)(sum + (unsigned char)bytes[i]);
  touched_sum = (unsigned char)(touched_sum + sum);
}

static bool inside(const char *begin, const char *end, const char *span, size_t span_len) {
  return span >= begin && span <= end && span_len <= (size_t)(end - span);
}

static void check_request_head(const struct fw_http_request *req) {
  CHECK(req->method_name != NULL && req->method_name[0] != '\0');
  CHECK(fw_http_method_from(req->method_name) == req->method);
  CHECK(req->target != NULL);
  CHECK(req->path == req->target);
  CHECK(memchr(req->path, '?', req->path_len) == NULL);
  if (req->query) {
    CHECK(req->target[req->path_len] == '?');
    CHECK(req->query == req->path + req->path_len + 1);
    CHECK(req->path_len + 1 + req->query_len == req->target_len);
  } else {
    CHECK(req->path_len == req->target_len);
    CHECK(req->query_len == 0);
  }
  CHECK(req->header_count <= FW_HTTP_MAX_HEADERS);
  CHECK(req->header_count == 0 || req->headers != NULL);

  /* The target, names and values are stored back to back and end with one NUL, all
   * inside the header cap. */
  size_t text_len = req->target_len;
  for (size_t i = 0; i < req->header_count; i++)
    text_len += req->headers[i].name_len + req->headers[i].value_len;
  CHECK(text_len < limits.max_header_bytes);
  CHECK(req->target[text_len] == '\0');
  touch(req->target, text_len + 1);
  const char *text_end = req->target + text_len;
  for (size_t i = 0; i < req->header_count; i++) {
    const struct fw_http_header *header = &req->headers[i];
    CHECK(header->name != NULL && header->value != NULL);
    CHECK(inside(req->target, text_end, header->name, header->name_len));
    if (header->value_len)
      CHECK(inside(req->target, text_end, header->value, header->value_len));
    else
      CHECK(header->value[0] == '\0');
  }

  /* A lookup by a header's own name finds the first header of that name, whatever case
   * either is spelt in. (Empty values all share one "", so compare indexes, not values.) */
  for (size_t i = 0; i < req->header_count; i++) {
    const struct fw_http_header *header = &req->headers[i];
    if (memchr(header->name, '\0', header->name_len))
      continue; /* not expressible as a C string */
    size_t first = 0;
    while (req->headers[first].name_len != header->name_len ||
           strncasecmp(req->headers[first].name, header->name, header->name_len) != 0)
      first++;
    char *name = strndup(header->name, header->name_len);
    CHECK(name != NULL);
    size_t found_len = 0;
    const char *found = fw_http_header(req, name, &found_len);
    free(name);
    CHECK(found == req->headers[first].value && found_len == req->headers[first].value_len);
  }
}

static void check_request_body(const struct fw_http_request *req) {
  CHECK(req->body_len <= limits.max_body_bytes);
  CHECK((req->body == NULL) == (req->body_len == 0));
  if (req->body)
    touch(req->body, req->body_len);
}

/* ---- checks on what the rest of the path produces ---- */

static bool contains(const struct fw_buf *buf, const char *text) {
  return buf->len && strstr(buf->data, text) != NULL;
}

/* Every header line is "Name: value\r\n" with no other CR or LF: nothing from the request
 * may split the response head. */
static void check_head_lines(const struct fw_buf *head) {
  if (head->len == 0)
    return; /* possibly never allocated */
  const char *p = head->data;
  const char *end = head->data + head->len;
  while (p < end) {
    const char *line_end = NULL;
    for (const char *q = p; q < end; q++) {
      if (*q == '\r' || *q == '\n') {
        line_end = q;
        break;
      }
    }
    CHECK(line_end != NULL && end - line_end >= 2 && line_end[0] == '\r' && line_end[1] == '\n');
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    CHECK(colon != NULL && colon > p && colon + 1 < line_end && colon[1] == ' ');
    p = line_end + 2;
  }
}

static void check_response(const struct fw_http_response *res) {
  CHECK(res->status >= 100 && res->status <= 599);
  check_head_lines(res->head);
  if (res->body->len == 0)
    return;
  CHECK(res->content_type != NULL && strcmp(res->content_type, "application/json") == 0);
  struct fw_json *doc = NULL;
  char error[160];
  CHECK(fw_json_parse(res->body->data, res->body->len, &doc, error, sizeof error) == FW_OK);
  fw_json_free(doc);
}

/* Public surfaces get CORS headers and preflight answers; nothing else is touched. */
static void check_cors(const struct fw_http_request *req, const struct fw_http_response *res,
                       bool is_public, bool answered) {
  if (!is_public) {
    CHECK(!answered && res->head->len == 0 && res->status == 200);
    return;
  }
  CHECK(contains(res->head, "Access-Control-Allow-Origin: *\r\n"));
  if (req->method == FW_HTTP_OPTIONS) {
    CHECK(answered && res->status == 204);
    CHECK(contains(res->head, "Access-Control-Allow-Methods: "));
  } else {
    CHECK(!answered);
    CHECK(contains(res->head, "Access-Control-Expose-Headers: "));
  }
}

static size_t path_segment_count(const char *path, size_t len) {
  size_t count = 0;
  for (size_t i = 0; i < len; i++)
    count += path[i] == '/';
  return count;
}

static void check_found(const struct fw_http_request *req, const struct fw_route *route,
                        const char *storage, size_t storage_len) {
  CHECK(route != NULL);
  CHECK(route->method == req->method ||
        (req->method == FW_HTTP_HEAD && route->method == FW_HTTP_GET));
  CHECK(req->path_len > 0 && req->path[0] == '/');
  CHECK(path_segment_count(req->path, req->path_len) == route->segment_count);
  size_t param_segments = 0;
  for (size_t s = 0; s < route->segment_count; s++)
    param_segments += route->segments[s].is_param ? 1u : 0u;
  CHECK(req->param_count == param_segments && req->param_count <= FW_HTTP_MAX_PARAMS);

  const char *pattern_end = route->pattern + strlen(route->pattern);
  for (size_t i = 0; i < req->param_count; i++) {
    const struct fw_http_param *param = &req->params[i];
    CHECK(inside(route->pattern, pattern_end, param->name, param->name_len));
    /* Values are decoded into the caller's storage, NUL-terminated, with no NUL inside. */
    CHECK(param->value_len > 0);
    CHECK(inside(storage, storage + storage_len, param->value, param->value_len + 1));
    CHECK(param->value[param->value_len] == '\0');
    CHECK(strlen(param->value) == param->value_len);
    char name[64];
    CHECK(param->name_len < sizeof name);
    memcpy(name, param->name, param->name_len);
    name[param->name_len] = '\0';
    CHECK(fw_http_param(req, name) == param->value);
  }
}

/* The request's own method is never among those the path is said to accept: HEAD would
 * have been served by GET. */
static void check_allow(const struct fw_http_request *req, const char *allow, size_t allow_len) {
  CHECK(memchr(allow, '\0', allow_len) != NULL);
  CHECK(allow[0] != '\0');
  const char *method = fw_http_method_name(req->method);
  size_t method_len = strlen(method);
  for (const char *p = allow; *p;) {
    size_t token_len = strcspn(p, ",");
    CHECK(token_len != method_len || memcmp(p, method, method_len) != 0);
    p += token_len;
    while (*p == ',' || *p == ' ')
      p++;
  }
}

/* Matching with little room may fail to capture, but must not disagree otherwise: the
 * storage only decides whether the values fit. */
static void check_tight_match(const struct fw_http_request *req, enum fw_route_result full,
                              const struct fw_route *full_route) {
  struct fw_http_request copy = *req;
  char *storage = malloc(TIGHT_PARAM_STORAGE_SIZE);
  char *allow = malloc(ALLOW_SIZE);
  CHECK(storage != NULL && allow != NULL);
  const struct fw_route *route = NULL;
  enum fw_route_result tight =
      fw_router_match(&router, &copy, storage, TIGHT_PARAM_STORAGE_SIZE, &route, allow, ALLOW_SIZE);
  CHECK((tight == FW_ROUTE_WRONG_METHOD) == (full == FW_ROUTE_WRONG_METHOD));
  if (tight == FW_ROUTE_FOUND) {
    CHECK(full == FW_ROUTE_FOUND && route == full_route);
    check_found(&copy, route, storage, TIGHT_PARAM_STORAGE_SIZE);
    for (size_t i = 0; i < copy.param_count; i++)
      CHECK(strcmp(copy.params[i].value, req->params[i].value) == 0);
  }
  free(storage);
  free(allow);
}

/* server.c's route_request, with checks after each step. */
static bool route_request(struct fw_http_request *req, struct fw_http_response *res) {
  bool is_public = fw_cors_is_public(req->path, req->path_len);
  bool answered = fw_cors_filter(req, res, NULL);
  check_cors(req, res, is_public, answered);
  if (answered)
    return true;

  /* Exact-size heap buffers, so that a write past either end is caught. */
  char *storage = malloc(PARAM_STORAGE_SIZE);
  char *allow = malloc(ALLOW_SIZE);
  CHECK(storage != NULL && allow != NULL);
  const struct fw_route *route = NULL;
  enum fw_route_result result =
      fw_router_match(&router, req, storage, PARAM_STORAGE_SIZE, &route, allow, ALLOW_SIZE);
  bool ok = true;
  char message[METHOD_MESSAGE_SIZE];
  switch (result) {
  case FW_ROUTE_FOUND:
    check_found(req, route, storage, PARAM_STORAGE_SIZE);
    check_tight_match(req, result, route);
    route->handler(req, res, route->ctx);
    break;
  case FW_ROUTE_WRONG_METHOD:
    check_allow(req, allow, ALLOW_SIZE);
    check_tight_match(req, result, route);
    snprintf(message, sizeof message, "%s is not allowed here; allowed: %s", req->method_name,
             allow);
    ok = fw_http_set_error(res, req, 405, "method_not_allowed", message) == FW_OK &&
         fw_http_add_header(res, "Allow", allow) == FW_OK;
    break;
  case FW_ROUTE_NOT_FOUND:
    check_tight_match(req, result, route);
    ok = fw_http_set_error(res, req, 404, "not_found", "no such route") == FW_OK;
    break;
  }
  free(storage);
  free(allow);
  return ok;
}

static void answer(struct fw_http_request *req) {
  struct fw_buf head, body;
  fw_buf_init(&head, RESPONSE_HEAD_LIMIT);
  fw_buf_init(&body, RESPONSE_BODY_LIMIT);
  struct fw_http_response res = {.status = 200, .head = &head, .body = &body};
  CHECK(route_request(req, &res));
  check_response(&res);
  fw_buf_free(&head);
  fw_buf_free(&body);
}

/* ---- the request log ---- */

static bool is_secret_param(const char *name, size_t len) {
  return (len == 3 && memcmp(name, "key", 3) == 0) || (len == 7 && memcmp(name, "context", 7) == 0);
}

/* Walks the target and its redaction side by side: the path and every query parameter
 * are copied as they were, except the values of `key` and `context`. */
static void check_redacted(const char *target, size_t target_len, const char *out, size_t out_len) {
  const char *question = memchr(target, '?', target_len);
  size_t path_len = question ? (size_t)(question - target) : target_len;
  CHECK(out_len >= path_len && memcmp(out, target, path_len) == 0);
  if (!question) {
    CHECK(out_len == path_len);
    return;
  }
  const char *in = question + 1;
  const char *in_end = target + target_len;
  const char *o = out + path_len;
  const char *out_end = out + out_len;
  CHECK(o < out_end && *o == '?');
  o++;
  while (in < in_end) {
    const char *amp = memchr(in, '&', (size_t)(in_end - in));
    const char *param_end = amp ? amp : in_end;
    const char *eq = memchr(in, '=', (size_t)(param_end - in));
    size_t name_len = (size_t)((eq ? eq : param_end) - in);
    bool secret = eq && is_secret_param(in, name_len);
    /* A secret keeps its "name=" and loses its value; anything else is copied whole. */
    size_t kept = secret ? name_len + 1 : (size_t)(param_end - in);
    CHECK((size_t)(out_end - o) >= kept && memcmp(o, in, kept) == 0);
    o += kept;
    if (secret) {
      CHECK((size_t)(out_end - o) >= 8 && memcmp(o, "REDACTED", 8) == 0);
      o += 8;
    }
    if (amp) {
      CHECK(o < out_end && *o == '&');
      o++;
    }
    in = param_end + (amp ? 1 : 0);
  }
  CHECK(o == out_end);
}

static void check_log_target(const struct fw_http_request *req) {
  struct fw_buf redacted;
  fw_buf_init(&redacted, REDACTED_TARGET_LIMIT);
  CHECK(fw_log_redact_target(req->target, req->target_len, &redacted) == FW_OK);
  const char *out = redacted.data ? redacted.data : "";
  check_redacted(req->target, req->target_len, out, redacted.len);

  /* Redacting twice changes nothing more. */
  struct fw_buf again;
  fw_buf_init(&again, REDACTED_TARGET_LIMIT);
  CHECK(fw_log_redact_target(out, redacted.len, &again) == FW_OK);
  CHECK(again.len == redacted.len && memcmp(again.data ? again.data : "", out, again.len) == 0);
  fw_buf_free(&again);

  /* server.c's log_request: a fixed stack buffer that must never be reallocated. A target
   * that does not fit must fail with FW_ETOOBIG, which the server takes as "log none". */
  char storage[LOG_TARGET_SIZE];
  struct fw_buf line = {.data = storage, .cap = sizeof storage, .limit = sizeof storage - 1};
  int rc = fw_log_redact_target(req->target, req->target_len, &line);
  CHECK(line.data == storage && line.cap == sizeof storage);
  if (rc == FW_OK)
    CHECK(line.len == redacted.len && memcmp(storage, out, line.len) == 0);
  else
    CHECK(rc == FW_ETOOBIG && redacted.len > sizeof storage - 1);
  fw_buf_free(&redacted);
}

/* ---- the connection ---- */

struct connection {
  struct fw_http_reader reader;
  struct fw_http_message_pool pool;
  size_t heads_seen;
  size_t requests_seen;
  const struct fw_http_request *in_flight;
  char request_id[FW_HTTP_REQUEST_ID_MAX + 1];
};

/* server.c's on_headers: adopt or make a request id, and refuse an unknown Expect. */
static enum fw_http_read_verdict on_headers(void *ctx, struct fw_http_request *req) {
  struct connection *conn = ctx;
  CHECK(conn->heads_seen == conn->requests_seen);
  conn->heads_seen++;
  conn->in_flight = req;
  check_request_head(req);
  CHECK(req->body == NULL && req->body_len == 0 && req->param_count == 0);

  size_t id_len = 0;
  const char *id = fw_http_header(req, "X-Request-Id", &id_len);
  if (id && fw_http_request_id_valid(id, id_len)) {
    memcpy(req->request_id, id, id_len);
    req->request_id[id_len] = '\0';
  } else {
    fw_http_request_id_generate(req->request_id);
  }
  CHECK(fw_http_request_id_valid(req->request_id, strlen(req->request_id)));
  memcpy(conn->request_id, req->request_id, sizeof conn->request_id);

  size_t expect_len = 0;
  const char *expect = fw_http_header(req, "Expect", &expect_len);
  if (expect && (expect_len != 12 || strncasecmp(expect, "100-continue", 12) != 0))
    return FW_HTTP_STOP; /* the server answers 417 and closes */
  return FW_HTTP_CONTINUE;
}

static enum fw_http_read_verdict on_request(void *ctx, struct fw_http_request *req) {
  struct connection *conn = ctx;
  CHECK(conn->heads_seen == conn->requests_seen + 1);
  CHECK(req == conn->in_flight);
  conn->requests_seen++;
  /* What on_headers wrote into the request must still be there. */
  CHECK(strcmp(req->request_id, conn->request_id) == 0);
  check_request_head(req);
  check_request_body(req);
  answer(req);
  check_log_target(req);
  /* The server closes after a response that is not kept alive. */
  return req->keep_alive ? FW_HTTP_CONTINUE : FW_HTTP_STOP;
}

static const struct fw_http_reader_hooks hooks = {.on_headers = on_headers,
                                                  .on_request = on_request};

static bool reader_open(const struct fw_http_reader *reader) {
  return !reader->stopped && reader->error == FW_HTTP_READ_OK;
}

static void check_after_feed(const struct fw_http_reader *reader, size_t offered, size_t used) {
  CHECK(used <= offered);
  /* A STOP is not an error. */
  CHECK(!(reader->stopped && reader->error != FW_HTTP_READ_OK));
  /* Progress or a reason not to make any. */
  CHECK(used > 0 || !reader_open(reader));
  CHECK(!(fw_http_reader_reading_headers(reader) && fw_http_reader_reading_body(reader)));
}

/* server.c's handle_read_error: the answer to a request that could not be read. A switch
 * without default, so that a new kind of error fails the build (-Wswitch) until it is
 * answered here too. */
static void answer_read_error(enum fw_http_read_error error) {
  int status = 400;
  const char *code = "malformed_request";
  switch (error) {
  case FW_HTTP_READ_OK:
  case FW_HTTP_READ_MALFORMED:
    break;
  case FW_HTTP_READ_HEADERS_TOO_LARGE:
    status = 431;
    code = "headers_too_large";
    break;
  case FW_HTTP_READ_BODY_TOO_LARGE:
    status = 413;
    code = "body_too_large";
    break;
  case FW_HTTP_READ_BAD_VERSION:
    status = 505;
    code = "http_version_not_supported";
    break;
  case FW_HTTP_READ_NO_MEMORY:
    status = 503;
    code = "overloaded";
    break;
  }
  struct fw_http_request fallback = {.method = FW_HTTP_GET, .method_name = "GET"};
  fw_http_request_id_generate(fallback.request_id);
  struct fw_buf head, body;
  fw_buf_init(&head, RESPONSE_HEAD_LIMIT);
  fw_buf_init(&body, RESPONSE_BODY_LIMIT);
  struct fw_http_response res = {.status = 200, .head = &head, .body = &body, .close = true};
  CHECK(fw_http_set_error(&res, &fallback, status, code, "the request could not be read") == FW_OK);
  check_response(&res);
  fw_buf_free(&head);
  fw_buf_free(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct read_plan plan = read_plan_from(data[0]);
  const uint8_t *stream = data + 1;
  size_t stream_len = size - 1;

  struct connection conn;
  memset(&conn, 0, sizeof conn);
  fw_http_reader_init(&conn.reader, &limits, &hooks, &conn.pool, &conn);

  size_t offset = 0;
  while (offset < stream_len && reader_open(&conn.reader)) {
    size_t read_len = next_read_len(&plan, stream + offset, stream_len - offset);
    /* Each read gets its own exact-size copy that is scribbled over and freed after the
     * feed, as the server reuses its read buffer: the reader must copy what it keeps. */
    char *read_buffer = malloc(read_len);
    CHECK(read_buffer != NULL);
    memcpy(read_buffer, stream + offset, read_len);
    /* As in server.c's on_read: the library returns early after a request that asks for
     * a protocol upgrade, and what follows in the same read is fed again. */
    size_t used_total = 0;
    while (used_total < read_len && reader_open(&conn.reader)) {
      size_t offered = read_len - used_total;
      size_t used = fw_http_reader_feed(&conn.reader, read_buffer + used_total, offered);
      check_after_feed(&conn.reader, offered, used);
      if (used == 0)
        break;
      used_total += used;
    }
    memset(read_buffer, 0xa5, read_len);
    free(read_buffer);
    offset += used_total;
    if (used_total < read_len)
      break;
  }
  CHECK(conn.requests_seen <= conn.heads_seen && conn.heads_seen <= conn.requests_seen + 1);
  if (conn.reader.error != FW_HTTP_READ_OK)
    answer_read_error(conn.reader.error);

  fw_http_reader_release(&conn.reader);
  CHECK(conn.reader.message == NULL);
  fw_http_message_pool_drain(&conn.pool);
  CHECK(conn.pool.free_list == NULL && conn.pool.count == 0);
  return 0;
}
