/* A small blocking HTTP/1.1 client for the command line: one request per connection
 * (Connection: close), plain http:// only, every wait bounded and every buffer capped.
 *
 * It speaks just enough HTTP for the management API: a status line, headers, and a body
 * framed by Content-Length or by the close of the connection. A chunked answer (which a
 * proxy in between could send) is refused rather than misread.
 *
 * Thread: no shared state; each call owns its socket. */
#ifndef FW_CLI_CLIENT_H
#define FW_CLI_CLIENT_H

#include <stddef.h>

#include "util/buf.h"
#include "util/common.h"

/* Whole response (head and body) at most this many bytes. */
#define FW_CLI_RESPONSE_MAX (16u * 1024u * 1024u)
/* Connecting to one address may take this long before the next one is tried. */
#define FW_CLI_CONNECT_TIMEOUT_MS 10000
/* The whole exchange, from the first connect to the last byte, may take this long. */
#define FW_CLI_EXCHANGE_TIMEOUT_MS 60000

/* Where a server is, from "http://host[:port][/base]". */
struct fw_cli_url {
  char host[256];      /* a name or address, without the brackets of an IPv6 literal */
  char port[6];        /* decimal, "80" when the URL names none */
  char authority[300]; /* host[:port] as written: the Host header */
  char base[1024];     /* path prefix without a trailing slash, "" for none */
};

/* Parses `text`. Refuses anything but http:// (https needs TLS, which this client does
 * not speak), user info, queries and fragments, and control characters. On FW_EINVAL
 * writes one sentence into `error`. */
FW_MUST_CHECK int fw_cli_url_parse(const char *text, struct fw_cli_url *url, char *error,
                                   size_t error_len);

struct fw_cli_request {
  const char *method;       /* "GET", "POST", ... */
  const char *target;       /* path and query, already percent-encoded; `base` goes before */
  const char *token;        /* sent as "Authorization: Bearer <token>" when not NULL */
  const char *content_type; /* sent with the body; NULL when there is no body */
  const char *body;
  size_t body_len;
};

struct fw_cli_response {
  int status;
  struct fw_buf body; /* NUL-terminated; freed by fw_cli_response_free */
};

/* Sends `req` to `url` and reads the answer into `res` (which the caller frees with
 * fw_cli_response_free whatever the result). Returns FW_OK when a complete response
 * arrived, whatever its status; FW_EIO when the server could not be reached or the
 * exchange failed or timed out; FW_EINVAL for an answer that is not HTTP we can read;
 * FW_ETOOBIG past FW_CLI_RESPONSE_MAX; FW_ENOMEM. On failure `error` holds one
 * sentence. The token and the header values must hold no control characters (the
 * caller checks). */
FW_MUST_CHECK int fw_cli_exchange(const struct fw_cli_url *url, const struct fw_cli_request *req,
                                  struct fw_cli_response *res, char *error, size_t error_len);

void fw_cli_response_free(struct fw_cli_response *res);

#endif
