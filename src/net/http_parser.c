#include "net/http_parser.h"

#include <assert.h>
#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(http_parser) <= sizeof(((struct fw_http_reader *)0)->parser_state),
               "the reader's parser storage is too small for http_parser");

/* Messages kept for reuse per loop, and the body capacity a kept message may hold. */
#define POOL_MAX 64
#define POOLED_BODY_MAX (64 * 1024)
#define TEXT_INITIAL 1024

struct header_span {
  size_t name_off, name_len, value_off, value_len;
};

enum last_piece { PIECE_NONE, PIECE_FIELD, PIECE_VALUE };

struct fw_http_message {
  struct fw_http_message *next_free;
  struct fw_buf text; /* target, then header names and values, back to back */
  struct fw_buf body;
  size_t target_len;
  size_t header_count;
  enum last_piece last;
  bool headers_done;
  struct header_span spans[FW_HTTP_MAX_HEADERS];
  struct fw_http_header headers[FW_HTTP_MAX_HEADERS];
  struct fw_http_request request;
};

static http_parser *parser_of(struct fw_http_reader *reader) {
  return (http_parser *)(void *)reader->parser_state;
}

static struct fw_http_message *message_take(struct fw_http_reader *reader) {
  struct fw_http_message_pool *pool = reader->pool;
  struct fw_http_message *msg = pool->free_list;
  if (msg) {
    pool->free_list = msg->next_free;
    pool->count--;
  } else {
    msg = malloc(sizeof *msg);
    if (!msg)
      return NULL;
    fw_buf_init(&msg->text, 0);
    fw_buf_init(&msg->body, 0);
  }
  msg->text.limit = reader->limits->max_header_bytes;
  msg->body.limit = reader->limits->max_body_bytes;
  fw_buf_reset(&msg->text);
  fw_buf_reset(&msg->body);
  msg->target_len = 0;
  msg->header_count = 0;
  msg->last = PIECE_NONE;
  msg->headers_done = false;
  return msg;
}

void fw_http_reader_release(struct fw_http_reader *reader) {
  struct fw_http_message *msg = reader->message;
  if (!msg)
    return;
  reader->message = NULL;
  struct fw_http_message_pool *pool = reader->pool;
  if (pool->count >= POOL_MAX) {
    fw_buf_free(&msg->text);
    fw_buf_free(&msg->body);
    free(msg);
    return;
  }
  if (msg->body.cap > POOLED_BODY_MAX)
    fw_buf_free(&msg->body);
  msg->next_free = pool->free_list;
  pool->free_list = msg;
  pool->count++;
}

void fw_http_message_pool_drain(struct fw_http_message_pool *pool) {
  while (pool->free_list) {
    struct fw_http_message *msg = pool->free_list;
    pool->free_list = msg->next_free;
    fw_buf_free(&msg->text);
    fw_buf_free(&msg->body);
    free(msg);
  }
  pool->count = 0;
}

static struct fw_http_reader *reader_of(http_parser *p) { return p->data; }

/* Records an error for fw_http_reader_feed and makes the library stop. */
static int fail(struct fw_http_reader *reader, enum fw_http_read_error error) {
  reader->error = error;
  return -1;
}

static int append_text(struct fw_http_reader *reader, const char *at, size_t len) {
  int rc = fw_buf_append(&reader->message->text, at, len);
  if (rc == FW_ETOOBIG)
    return fail(reader, FW_HTTP_READ_HEADERS_TOO_LARGE);
  if (rc)
    return fail(reader, FW_HTTP_READ_NO_MEMORY);
  return 0;
}

static int on_message_begin(http_parser *p) {
  struct fw_http_reader *reader = reader_of(p);
  if (!reader->message) {
    reader->message = message_take(reader);
    if (!reader->message)
      return fail(reader, FW_HTTP_READ_NO_MEMORY);
  }
  if (fw_buf_reserve(&reader->message->text, TEXT_INITIAL) == FW_ENOMEM)
    return fail(reader, FW_HTTP_READ_NO_MEMORY);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  struct fw_http_reader *reader = reader_of(p);
  reader->message->target_len += len;
  return append_text(reader, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct fw_http_reader *reader = reader_of(p);
  struct fw_http_message *msg = reader->message;
  if (msg->last != PIECE_FIELD) {
    if (msg->header_count == FW_HTTP_MAX_HEADERS)
      return fail(reader, FW_HTTP_READ_HEADERS_TOO_LARGE);
    struct header_span *span = &msg->spans[msg->header_count++];
    span->name_off = msg->text.len;
    span->name_len = 0;
    span->value_off = 0;
    span->value_len = 0;
    msg->last = PIECE_FIELD;
  }
  msg->spans[msg->header_count - 1].name_len += len;
  return append_text(reader, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct fw_http_reader *reader = reader_of(p);
  struct fw_http_message *msg = reader->message;
  struct header_span *span = &msg->spans[msg->header_count - 1];
  if (msg->last != PIECE_VALUE) {
    span->value_off = msg->text.len;
    msg->last = PIECE_VALUE;
  }
  span->value_len += len;
  return append_text(reader, at, len);
}

/* Builds the request view once the text of the head will no longer move. */
static void build_request(struct fw_http_reader *reader, http_parser *p) {
  struct fw_http_message *msg = reader->message;
  struct fw_http_request *req = &msg->request;
  const char *text = msg->text.data;
  for (size_t i = 0; i < msg->header_count; i++) {
    const struct header_span *span = &msg->spans[i];
    msg->headers[i] = (struct fw_http_header){
        .name = text + span->name_off,
        .name_len = span->name_len,
        .value = span->value_len ? text + span->value_off : "",
        .value_len = span->value_len,
    };
  }
  memset(req, 0, sizeof *req);
  req->method_name = http_method_str((enum http_method)p->method);
  req->method = fw_http_method_from(req->method_name);
  req->target = text;
  req->target_len = msg->target_len;
  const char *question = memchr(text, '?', msg->target_len);
  req->path = text;
  req->path_len = question ? (size_t)(question - text) : msg->target_len;
  if (question) {
    req->query = question + 1;
    req->query_len = msg->target_len - req->path_len - 1;
  }
  req->headers = msg->headers;
  req->header_count = msg->header_count;
  req->keep_alive = http_should_keep_alive(p) != 0;
  req->http10 = p->http_major == 1 && p->http_minor == 0;
}

static int on_headers_complete(http_parser *p) {
  struct fw_http_reader *reader = reader_of(p);
  struct fw_http_message *msg = reader->message;
  /* The head ends with a NUL so that its last value may be read as a string; every
   * other piece is read by its length. */
  if (append_text(reader, "", 1))
    return -1;
  msg->headers_done = true;
  /* Minor versions are compatible (RFC 9110 2.5); another major one is not ours. */
  if (p->http_major != 1)
    return fail(reader, FW_HTTP_READ_BAD_VERSION);
  build_request(reader, p);
  if (p->content_length != ULLONG_MAX && p->content_length > reader->limits->max_body_bytes)
    return fail(reader, FW_HTTP_READ_BODY_TOO_LARGE);
  if (reader->hooks->on_headers(reader->ctx, &msg->request) == FW_HTTP_STOP) {
    reader->stopped = true;
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct fw_http_reader *reader = reader_of(p);
  int rc = fw_buf_append(&reader->message->body, at, len);
  if (rc == FW_ETOOBIG)
    return fail(reader, FW_HTTP_READ_BODY_TOO_LARGE);
  if (rc)
    return fail(reader, FW_HTTP_READ_NO_MEMORY);
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct fw_http_reader *reader = reader_of(p);
  struct fw_http_request *req = &reader->message->request;
  req->body = reader->message->body.len ? reader->message->body.data : NULL;
  req->body_len = reader->message->body.len;
  enum fw_http_read_verdict verdict = reader->hooks->on_request(reader->ctx, req);
  fw_http_reader_release(reader);
  if (verdict == FW_HTTP_STOP) {
    reader->stopped = true;
    http_parser_pause(p, 1);
  }
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void fw_http_reader_init(struct fw_http_reader *reader, const struct fw_http_limits *limits,
                         const struct fw_http_reader_hooks *hooks,
                         struct fw_http_message_pool *pool, void *ctx) {
  memset(reader, 0, sizeof *reader);
  http_parser *p = parser_of(reader);
  http_parser_init(p, HTTP_REQUEST);
  p->data = reader;
  reader->limits = limits;
  reader->hooks = hooks;
  reader->pool = pool;
  reader->ctx = ctx;
}

size_t fw_http_reader_feed(struct fw_http_reader *reader, const char *data, size_t len) {
  assert(!reader->stopped && reader->error == FW_HTTP_READ_OK);
  http_parser *p = parser_of(reader);
  size_t consumed = http_parser_execute(p, &settings, data, len);
  enum http_errno err = HTTP_PARSER_ERRNO(p);
  if (err == HPE_OK || err == HPE_PAUSED || reader->stopped)
    return consumed;
  if (reader->error == FW_HTTP_READ_OK) {
    /* The library's own header cap (compiled in) is larger than ours but still counts. */
    reader->error =
        err == HPE_HEADER_OVERFLOW ? FW_HTTP_READ_HEADERS_TOO_LARGE : FW_HTTP_READ_MALFORMED;
  }
  return consumed;
}

void fw_http_reader_resume(struct fw_http_reader *reader) {
  assert(reader->stopped && reader->error == FW_HTTP_READ_OK);
  reader->stopped = false;
  http_parser_pause(parser_of(reader), 0);
}

bool fw_http_reader_reading_headers(const struct fw_http_reader *reader) {
  return reader->message && !reader->message->headers_done;
}

bool fw_http_reader_reading_body(const struct fw_http_reader *reader) {
  return reader->message && reader->message->headers_done;
}
