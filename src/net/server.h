/* The HTTP server: one libuv loop per thread, each with its own SO_REUSEPORT listener,
 * its own connections, its own timer wheel and its own scratch buffers. Loops share
 * nothing but the read-only router and an atomic connection count; the only
 * cross-thread traffic is each loop's async wake-up.
 *
 * Thread: fw_server_start, fw_server_wait and fw_server_free belong to the thread that
 * owns the server; fw_server_stop may be called from any thread. Handlers, filters and
 * stream hooks run on the loop thread of their connection. */
#ifndef FW_NET_SERVER_H
#define FW_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http_parser.h"
#include "net/router.h"
#include "util/shared.h"

/* Runs before routing on every request. Returns true when it has produced the response
 * itself; otherwise it may have added headers to `res` that the routed response keeps
 * (CORS headers, for instance). */
typedef bool (*fw_http_filter)(struct fw_http_request *req, struct fw_http_response *res,
                               void *ctx);

struct fw_server_options {
  const char *host; /* an IPv4 or IPv6 literal */
  uint16_t port;    /* 0 picks a free port; fw_server_port tells which */
  unsigned threads;
  size_t max_connections; /* 0 derives the cap from the open-file limit */
  struct fw_http_limits limits;
  uint64_t header_timeout_ms;      /* from a request's first byte to the end of its headers */
  uint64_t body_timeout_ms;        /* from the end of the headers to the end of the body */
  uint64_t keepalive_timeout_ms;   /* idle time allowed between requests */
  uint64_t shutdown_timeout_ms;    /* how long a stop waits for requests and streams */
  size_t stream_send_buffer;       /* SO_SNDBUF of stream sockets; 0 leaves the kernel's */
  uint64_t stream_user_timeout_ms; /* TCP_USER_TIMEOUT and keep-alive of streams; 0: none */
  const struct fw_router *router;  /* borrowed; must outlive the server */
  fw_http_filter filter;           /* optional */
  void *filter_ctx;
};

struct fw_server;

/* Binds every listener and starts the loop threads. Raises the open-file soft limit to
 * the hard limit first. On failure nothing is left running and `error` says why in one
 * sentence. On success the caller owns *out: fw_server_stop, fw_server_wait, then
 * fw_server_free. */
FW_MUST_CHECK int fw_server_start(const struct fw_server_options *options, struct fw_server **out,
                                  char *error, size_t error_len);

uint16_t fw_server_port(const struct fw_server *server);
size_t fw_server_max_connections(const struct fw_server *server);

/* Begins a graceful stop: listeners close, idle connections close, requests in flight
 * finish with Connection: close, streams get their drain hook, and every loop ends once
 * its connections are gone or the shutdown timeout passes. With `force`, everything
 * closes at once. Thread-safe and idempotent. */
void fw_server_stop(struct fw_server *server, bool force);

/* Whether every loop has ended (after a stop). Thread-safe. */
bool fw_server_finished(const struct fw_server *server);

/* Blocks until every loop thread has ended. */
void fw_server_wait(struct fw_server *server);

/* Releases a server whose loops have ended. */
void fw_server_free(struct fw_server *server);

/* ---- Work handed to a loop from another thread ---- */

/* A unit of work run on one loop's thread. The poster fills `run` and owns the memory
 * around the task until `run` is called; `run` is called exactly once. */
struct fw_loop_task {
  /* `cancelled` is true when the loop has ended: then `run` runs on the posting thread
   * (or on the loop's thread as it ends) and must only release what the task holds. */
  void (*run)(struct fw_loop_task *task, bool cancelled);
  struct fw_loop_task *next; /* the queue's own link */
};

/* How many loops the server runs; loop indexes are 0 to this less one. */
unsigned fw_server_loop_count(const struct fw_server *server);

/* Queues `task` for loop `index`, in posting order. Thread-safe. */
void fw_server_post(struct fw_server *server, unsigned index, struct fw_loop_task *task);

/* The index of the loop a response is being produced on. */
unsigned fw_http_response_loop(const struct fw_http_response *res);

/* ---- Deferred responses: answered later, on the same loop ----
 *
 * A handler that must wait (for the writer, say) defers its response. The connection
 * reads no further request until the deferred one is answered, so pipelined responses
 * stay in order; its idle timeouts are suspended meanwhile. */
struct fw_http_deferred;

/* Takes the response out of the handler's hands. `req` and its memory are gone once the
 * handler returns: copy what the answer needs first. On success *out must later be
 * given to fw_http_deferred_send exactly once, on the loop thread of the connection
 * (fw_http_response_loop). FW_ENOMEM, or FW_EINVAL on a stream. */
FW_MUST_CHECK int fw_http_response_defer(struct fw_http_response *res,
                                         const struct fw_http_request *req,
                                         struct fw_http_deferred **out);

/* The response to fill in, with the loop's scratch buffers (valid until
 * fw_http_deferred_send), and a stand-in for the request with its method, request id
 * and keep-alive, for fw_http_set_error. Loop thread only. */
struct fw_http_response *fw_http_deferred_response(struct fw_http_deferred *deferred);
const struct fw_http_request *fw_http_deferred_request(const struct fw_http_deferred *deferred);

/* Sends the filled response, if the client is still there, resumes reading its
 * connection, and frees `deferred`. Loop thread only. */
void fw_http_deferred_send(struct fw_http_deferred *deferred);

/* Frees a deferred response without answering: for tasks cancelled because their loop
 * ended (the connection is gone by then). Any thread. */
void fw_http_deferred_discard(struct fw_http_deferred *deferred);

/* ---- Streams: responses that stay open (Server-Sent Events) ----
 *
 * A handler turns its response into a stream with fw_http_response_stream: the head is
 * sent without a length, the connection is no longer read for requests, and the stream
 * stays open until either side closes it. */
struct fw_stream;

struct fw_stream_hooks {
  /* The head has been sent and the connection is a stream: write its first events. */
  void (*on_start)(struct fw_stream *stream, void *ctx);
  /* The stream's timer (fw_stream_schedule) fired. */
  void (*on_timer)(struct fw_stream *stream, void *ctx);
  /* The server is stopping: say goodbye and close (or let the shutdown timeout do it). */
  void (*on_drain)(struct fw_stream *stream, void *ctx);
  /* The stream is gone (peer closed, error, fw_stream_close or shutdown). The stream
   * pointer is invalid after this returns; `ctx` is the owner's to free. */
  void (*on_close)(struct fw_stream *stream, void *ctx);
  /* WebSockets only: a whole text message from the client (valid UTF-8, at most
   * FW_WS_MESSAGE_MAX bytes), borrowed for the call. The next message is read only once
   * this returns. */
  void (*on_message)(struct fw_stream *stream, const char *text, size_t len, void *ctx);
};

/* Marks `res` as the head of a stream. `hooks` is borrowed for the stream's life; `ctx`
 * is passed to them, and on_close runs even if the head could not be sent. *out is valid
 * until on_close. FW_EINVAL when the response is a stream already. */
FW_MUST_CHECK int fw_http_response_stream(struct fw_http_response *res,
                                          const struct fw_stream_hooks *hooks, void *ctx,
                                          struct fw_stream **out);

/* Queues bytes (copied) on the stream. FW_EIO if the stream is closing. */
FW_MUST_CHECK int fw_stream_write(struct fw_stream *stream, const char *data, size_t len);

/* Writes shared bytes: what the kernel does not take at once is queued by reference,
 * never copied. FW_EIO if the stream is closing. */
FW_MUST_CHECK int fw_stream_write_shared(struct fw_stream *stream, struct fw_shared *shared);

/* What is written but not yet taken by the kernel: its size, and how long ago the
 * oldest of it was written (0 when nothing waits). */
void fw_stream_backlog(const struct fw_stream *stream, size_t *bytes, uint64_t *age_ms);

/* Arms the stream's one timer (from the loop's timer wheel, at its tick granularity) to
 * call hooks->on_timer after `delay_ms`; re-arming replaces the previous deadline. Only
 * once the stream has started (on_start). */
void fw_stream_schedule(struct fw_stream *stream, uint64_t delay_ms);

/* The loop's clock in milliseconds, and the loop's index. */
uint64_t fw_stream_now_ms(const struct fw_stream *stream);
unsigned fw_stream_loop(const struct fw_stream *stream);

/* Closes the stream once what was written has been handed to the kernel. */
void fw_stream_close(struct fw_stream *stream);

/* ---- WebSockets: streams that are also read (RFC 6455, net/websocket.h) ----
 *
 * After the upgrade the connection carries frames both ways. The server reads the
 * client's frames itself: text messages go to hooks->on_message; pings are answered
 * with pongs; a binary message is closed with 1003, a broken frame with the code the
 * codec names (1002, 1007, 1009); a close frame is answered with the same code and the
 * connection closed. Writes are whole server frames (fw_stream_write and
 * fw_stream_write_shared). */

/* The largest client message (one frame, or a fragmented message reassembled). */
#define FW_WS_MESSAGE_MAX (64 * 1024)
/* How long the server waits for the client's close frame after sending its own. */
#define FW_WS_CLOSE_TIMEOUT_MS 5000

/* Answers `res` with 101 Switching Protocols and `accept` (the Sec-WebSocket-Accept of
 * the request's key, fw_ws_accept_key) and turns the connection into a WebSocket.
 * `hooks` is borrowed for the socket's life and *out is valid until on_close, which runs
 * once the upgrade has been answered, however the socket ends. On an error nothing is
 * set up and no hook will run: FW_EINVAL when the response is a stream already,
 * FW_ENOMEM. */
FW_MUST_CHECK int fw_http_response_websocket(struct fw_http_response *res, const char *accept,
                                             const struct fw_stream_hooks *hooks, void *ctx,
                                             struct fw_stream **out);

/* Starts the closing handshake: sends a close frame with `code` and `reason` after what
 * is queued, reads nothing but the client's close frame from then on, and closes the
 * connection when it comes or after FW_WS_CLOSE_TIMEOUT_MS. Hooks other than on_close
 * are no longer called. Idempotent. */
void fw_stream_close_websocket(struct fw_stream *stream, uint16_t code, const char *reason);

#endif
