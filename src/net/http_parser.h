/* Reading HTTP/1.1 requests: the one file that knows the http_parser library.
 *
 * A reader is embedded in each connection and owns nothing between requests: the
 * storage of a request in progress (its text, header index and body) is taken from a
 * per-loop pool when the first byte arrives and given back when the request is done, so
 * an idle keep-alive connection holds no buffer. Every piece has a hard cap.
 *
 * Thread: a reader and its pool belong to one loop. */
#ifndef FW_NET_HTTP_PARSER_H
#define FW_NET_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "net/http.h"

/* Header lines per request; a request with more is refused as too large (431). */
#define FW_HTTP_MAX_HEADERS 100

struct fw_http_limits {
  size_t max_header_bytes; /* request line and headers together */
  size_t max_body_bytes;
};

enum fw_http_read_error {
  FW_HTTP_READ_OK,
  FW_HTTP_READ_MALFORMED,
  FW_HTTP_READ_HEADERS_TOO_LARGE,
  FW_HTTP_READ_BODY_TOO_LARGE,
  FW_HTTP_READ_BAD_VERSION, /* an HTTP major version other than 1 */
  FW_HTTP_READ_NO_MEMORY
};

enum fw_http_read_verdict {
  FW_HTTP_CONTINUE, /* go on reading (the body, or the next pipelined request) */
  FW_HTTP_STOP      /* stop reading: the connection is closing or was taken over */
};

struct fw_http_reader_hooks {
  /* The request line and headers are complete; the body (if any) is still to come.
   * `req` lacks its body. The hook may answer early (e.g. 100 Continue, or 413). */
  enum fw_http_read_verdict (*on_headers)(void *ctx, struct fw_http_request *req);
  /* A whole request, body included. */
  enum fw_http_read_verdict (*on_request)(void *ctx, struct fw_http_request *req);
};

struct fw_http_message;

/* Recycles request storage within one loop. */
struct fw_http_message_pool {
  struct fw_http_message *free_list;
  size_t count;
};

struct fw_http_reader {
  /* Storage for the library's parser state, kept opaque so that no other file includes
   * the library's header; http_parser.c checks that it fits. */
  _Alignas(8) unsigned char parser_state[32];
  struct fw_http_message *message; /* owned; NULL between requests */
  struct fw_http_message_pool *pool;
  const struct fw_http_limits *limits;
  const struct fw_http_reader_hooks *hooks;
  void *ctx;
  enum fw_http_read_error error;
  bool stopped;
};

/* Prepares a reader. `limits`, `hooks`, `pool` and `ctx` are borrowed for its life. */
void fw_http_reader_init(struct fw_http_reader *reader, const struct fw_http_limits *limits,
                         const struct fw_http_reader_hooks *hooks,
                         struct fw_http_message_pool *pool, void *ctx);

/* Feeds bytes that the caller keeps ownership of (they may be reused right after the
 * call). Returns how many were consumed: fewer than `len` when a hook said STOP or on
 * error, in which case reader->error tells which (FW_HTTP_READ_OK after a STOP). */
size_t fw_http_reader_feed(struct fw_http_reader *reader, const char *data, size_t len);

/* Lets a reader that a hook stopped (FW_HTTP_STOP after a whole request) take the next
 * request. */
void fw_http_reader_resume(struct fw_http_reader *reader);

/* Whether a request has begun but its headers are not complete yet. */
bool fw_http_reader_reading_headers(const struct fw_http_reader *reader);
/* Whether a request's headers are complete but its body is not. */
bool fw_http_reader_reading_body(const struct fw_http_reader *reader);

/* Gives the storage of a request in progress back to the pool. */
void fw_http_reader_release(struct fw_http_reader *reader);

/* Frees every cached message. */
void fw_http_message_pool_drain(struct fw_http_message_pool *pool);

#endif
