#include "net/server.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "net/timer_wheel.h"
#include "net/websocket.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/shared.h"
#include "util/time.h"

#define MAX_LOOPS 64
#define TICK_MS 100
#define READ_BUFFER_SIZE (64 * 1024)
/* Frames a WebSocket is served per turn of its loop. What one read holds beyond them waits
 * for the loop's next turn, so that a burst of small messages (64 KiB holds about 10 000
 * of the smallest) cannot keep the loop from its other connections. */
#define WS_FRAMES_PER_TURN 64
#define PARAM_STORAGE_SIZE 2048
#define LISTEN_BACKLOG 8192
/* Descriptors kept back from the connection cap for the store, listeners, logs and the
 * loops' own handles. */
#define FD_RESERVE_BASE 64
#define FD_RESERVE_PER_LOOP 8
/* Past this many bytes waiting for the kernel, a connection is no longer read. */
#define MAX_QUEUED_BYTES (1024 * 1024)
/* After an error response, how long unread input is drained before the socket closes. */
#define LINGER_MS 2000
/* Retry-After, in seconds, on a 503 for the connection cap. */
#define RETRY_AFTER_SECONDS "1"

/* Status codes with their own request counter; any other falls in the last column. */
static const int counted_statuses[] = {200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409,
                                       412, 413, 415, 422, 426, 428, 429, 431, 500, 503, 505};
#define STATUS_COLUMNS (FW_ARRAY_LEN(counted_statuses) + 1)

/* Request latency buckets in microseconds. */
static const uint64_t latency_bounds_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                             10000, 25000, 50000, 100000, 250000, 500000, 1000000};

enum conn_phase { PHASE_IDLE, PHASE_HEADERS, PHASE_BODY };
enum conn_state { CONN_HTTP, CONN_STREAM, CONN_LINGERING, CONN_CLOSING };
enum conn_kind { KIND_HTTP, KIND_STREAM, KIND_WEBSOCKET, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = {"http", "stream", "websocket"};

struct fw_loop;

/* A request whose response comes later (fw_http_response_defer). */
struct fw_http_deferred {
  struct fw_conn *conn; /* NULL once the connection has closed */
  struct fw_loop *loop;
  struct fw_http_request request; /* method, request id and keep-alive only */
  struct fw_http_response response;
  size_t route_row;
  uint64_t started_ns;
  char target[256]; /* redacted, for the request log */
};

struct fw_stream {
  struct fw_conn *conn;
  const struct fw_stream_hooks *hooks;
  void *ctx;
};

/* What a WebSocket connection holds beside its stream, made at the upgrade. */
struct websocket {
  struct fw_ws_reader reader;
  uint64_t partial_since_ms; /* when the message in flight began; 0 when none is */
  bool close_sent;           /* our close frame is out: only the client's close is awaited */
  /* Input past WS_FRAMES_PER_TURN waits in the connection's pending_input, the socket not
   * read meanwhile, on the loop's list of sockets waiting for a turn. */
  bool waiting_turn;
  struct fw_conn *turn_prev, *turn_next;
};

struct fw_conn {
  uv_tcp_t handle; /* first, so that a handle pointer is a connection pointer */
  struct fw_loop *loop;
  struct fw_conn *prev, *next;
  struct fw_http_reader reader;
  struct fw_timer_entry timer;
  struct fw_stream stream;
  struct fw_http_deferred *deferred; /* the request being answered later, if any */
  struct websocket *websocket;       /* after an upgrade */
  /* Input that arrived behind a deferred request, fed once it is answered. */
  char *pending_input;
  size_t pending_len;
  enum conn_state state;
  enum conn_phase phase;
  enum conn_kind kind;
  size_t queued_bytes;
  uint64_t backlog_since_ms; /* when queued_bytes last left zero */
  uint64_t requests_done;
  bool reading;
  bool counted;   /* holds a place in the server's connection count */
  bool shut_down; /* uv_shutdown was issued */
};

/* A queued write: bytes the kernel did not take at once, copied into `data`, or a part
 * of shared bytes held by reference. */
struct write_req {
  uv_write_t req;
  struct fw_conn *conn;
  size_t len;
  struct fw_shared *shared; /* NULL when the bytes are in `data` */
  char data[];
};

struct fw_loop {
  struct fw_server *server;
  unsigned index;
  uv_loop_t uv;
  uv_thread_t thread;
  uv_tcp_t listener;
  uv_async_t wakeup; /* stop requests and posted tasks */
  uv_timer_t tick;
  uv_idle_t turns;               /* runs while a WebSocket waits for a turn */
  struct fw_conn *waiting_turns; /* those WebSockets */
  uv_mutex_t tasks_lock;
  struct fw_loop_task *tasks_head, *tasks_tail; /* posted, not yet run */
  bool tasks_closed;                            /* the loop has ended: run tasks cancelled */
  struct fw_timer_wheel wheel;
  struct fw_http_message_pool pool;
  struct fw_conn *conns; /* every open connection of this loop */
  size_t conn_count;
  bool listener_open;
  bool draining;
  bool closing_handles;
  uint64_t drain_deadline_ms;
  int64_t date_second;
  char date[FW_HTTP_DATE_LEN + 1];
  struct fw_buf res_head, res_body, wire;
  char param_storage[PARAM_STORAGE_SIZE];
  char read_buffer[READ_BUFFER_SIZE];
};

struct fw_server {
  struct fw_server_options options;
  struct fw_http_reader_hooks reader_hooks;
  size_t max_connections;
  uint16_t port;
  unsigned loop_count;      /* loops created */
  unsigned threads_started; /* loops whose thread runs */
  _Atomic size_t open_connections;
  _Atomic int stop_requested; /* 0 none, 1 graceful, 2 forced */
  _Atomic unsigned loops_ended;
  struct fw_loop *loops[MAX_LOOPS];
  struct fw_metric *request_counters; /* [route][status column], unmatched route last */
  struct fw_metric latency;
  struct fw_metric conns_open[KIND_COUNT];
  struct fw_metric conns_accepted[KIND_COUNT];
  struct fw_metric conns_rejected;
};

static void say(char *error, size_t error_len, const char *fmt, ...) FW_PRINTF(3, 4);
static void say(char *error, size_t error_len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
}

/* ---- connection bookkeeping ---- */

static uint64_t now_ms(struct fw_loop *loop) { return uv_now(&loop->uv); }

static void set_kind(struct fw_conn *conn, enum conn_kind kind) {
  struct fw_server *server = conn->loop->server;
  fw_metric_add(&server->conns_open[conn->kind], -1);
  conn->kind = kind;
  fw_metric_add(&server->conns_open[kind], 1);
  fw_metric_add(&server->conns_accepted[kind], 1);
}

static void maybe_finish_loop(struct fw_loop *loop);

static void websocket_forget_turn(struct fw_conn *conn);

static void on_conn_closed(uv_handle_t *handle) {
  struct fw_conn *conn = (struct fw_conn *)handle;
  struct fw_loop *loop = conn->loop;
  if (conn->stream.hooks && conn->stream.hooks->on_close)
    conn->stream.hooks->on_close(&conn->stream, conn->stream.ctx);
  fw_metric_add(&loop->server->conns_open[conn->kind], -1);
  if (conn->counted)
    atomic_fetch_sub_explicit(&loop->server->open_connections, 1, memory_order_relaxed);
  fw_http_reader_release(&conn->reader);
  if (conn->websocket) {
    websocket_forget_turn(conn);
    fw_ws_reader_free(&conn->websocket->reader);
    free(conn->websocket);
  }
  free(conn);
  maybe_finish_loop(loop);
}

static void conn_close(struct fw_conn *conn) {
  if (conn->state == CONN_CLOSING)
    return;
  conn->state = CONN_CLOSING;
  struct fw_loop *loop = conn->loop;
  fw_timer_wheel_cancel(&loop->wheel, &conn->timer);
  if (conn->deferred)
    conn->deferred->conn = NULL;
  free(conn->pending_input);
  conn->pending_input = NULL;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    loop->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  loop->conn_count--;
  uv_close((uv_handle_t *)&conn->handle, on_conn_closed);
}

static struct fw_conn *conn_of_timer(struct fw_timer_entry *entry) {
  return (struct fw_conn *)((char *)entry - offsetof(struct fw_conn, timer));
}

static void on_timer_close(struct fw_timer_entry *entry) { conn_close(conn_of_timer(entry)); }

static void schedule(struct fw_conn *conn, uint64_t delay_ms, fw_timer_fire_cb fire) {
  struct fw_loop *loop = conn->loop;
  fw_timer_wheel_schedule(&loop->wheel, &conn->timer, now_ms(loop), delay_ms, fire);
}

/* ---- writing ---- */

/* A stream socket gets a modest send buffer, so that a stalled reader shows as a backlog
 * here (and is found by its age) instead of hiding behind megabytes in the kernel, and
 * TCP_USER_TIMEOUT plus keep-alive, so that a dead peer is released in about a minute
 * rather than the quarter of an hour of the kernel's defaults. Failures only lose the
 * tuning. */
static void tune_stream_socket(struct fw_conn *conn) {
  const struct fw_server_options *options = &conn->loop->server->options;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&conn->handle, &fd) != 0)
    return;
  if (options->stream_send_buffer) {
    int size = (int)options->stream_send_buffer;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (options->stream_user_timeout_ms) {
    unsigned timeout = (unsigned)options->stream_user_timeout_ms;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof timeout);
    unsigned idle = (unsigned)(options->stream_user_timeout_ms / 2000);
    (void)uv_tcp_keepalive(&conn->handle, 1, idle ? idle : 1);
  }
}

static void start_reading(struct fw_conn *conn);

static void on_written(uv_write_t *req, int status) {
  struct write_req *wr = (struct write_req *)req;
  struct fw_conn *conn = wr->conn;
  conn->queued_bytes -= wr->len;
  fw_shared_unref(wr->shared);
  free(wr);
  if (conn->state == CONN_CLOSING)
    return;
  if (status < 0) {
    conn_close(conn);
    return;
  }
  if (!conn->reading && !conn->deferred && conn->queued_bytes < MAX_QUEUED_BYTES / 2)
    start_reading(conn);
}

/* Hands `bufs` to the kernel now if it takes them, and queues (a copy of) the rest.
 * Returns FW_EIO when the connection failed and is closing. */
static int conn_write(struct fw_conn *conn, uv_buf_t *bufs, unsigned count) {
  size_t total = 0;
  for (unsigned i = 0; i < count; i++)
    total += bufs[i].len;
  size_t written = 0;
  if (conn->queued_bytes == 0) {
    int n = uv_try_write((uv_stream_t *)&conn->handle, bufs, count);
    if (n < 0 && n != UV_EAGAIN) {
      conn_close(conn);
      return FW_EIO;
    }
    written = n > 0 ? (size_t)n : 0;
  }
  if (written == total)
    return FW_OK;
  struct write_req *wr = malloc(sizeof *wr + (total - written));
  if (!wr) {
    conn_close(conn);
    return FW_EIO;
  }
  wr->conn = conn;
  wr->len = 0;
  wr->shared = NULL;
  size_t skip = written;
  for (unsigned i = 0; i < count; i++) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    memcpy(wr->data + wr->len, bufs[i].base + skip, bufs[i].len - skip);
    wr->len += bufs[i].len - skip;
    skip = 0;
  }
  uv_buf_t rest = uv_buf_init(wr->data, (unsigned)wr->len);
  if (uv_write(&wr->req, (uv_stream_t *)&conn->handle, &rest, 1, on_written) < 0) {
    free(wr);
    conn_close(conn);
    return FW_EIO;
  }
  if (conn->queued_bytes == 0)
    conn->backlog_since_ms = now_ms(conn->loop);
  conn->queued_bytes += wr->len;
  if (conn->queued_bytes > MAX_QUEUED_BYTES && conn->reading) {
    uv_read_stop((uv_stream_t *)&conn->handle);
    conn->reading = false;
  }
  return FW_OK;
}

/* Hands `shared` to the kernel now if it takes it, and queues a reference to the rest.
 * Returns FW_EIO when the connection failed and is closing. */
static int conn_write_shared(struct fw_conn *conn, struct fw_shared *shared) {
  size_t written = 0;
  if (conn->queued_bytes == 0) {
    uv_buf_t buf = uv_buf_init(shared->data, (unsigned)shared->len);
    int n = uv_try_write((uv_stream_t *)&conn->handle, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
      conn_close(conn);
      return FW_EIO;
    }
    written = n > 0 ? (size_t)n : 0;
  }
  if (written == shared->len)
    return FW_OK;
  struct write_req *wr = malloc(sizeof *wr);
  if (!wr) {
    conn_close(conn);
    return FW_EIO;
  }
  wr->conn = conn;
  wr->len = shared->len - written;
  wr->shared = fw_shared_ref(shared);
  uv_buf_t rest = uv_buf_init(shared->data + written, (unsigned)wr->len);
  if (uv_write(&wr->req, (uv_stream_t *)&conn->handle, &rest, 1, on_written) < 0) {
    fw_shared_unref(wr->shared);
    free(wr);
    conn_close(conn);
    return FW_EIO;
  }
  if (conn->queued_bytes == 0)
    conn->backlog_since_ms = now_ms(conn->loop);
  conn->queued_bytes += wr->len;
  return FW_OK;
}

static const char *http_date(struct fw_loop *loop) {
  int64_t second = fw_time_wall_ms() / 1000;
  if (second != loop->date_second) {
    loop->date_second = second;
    fw_time_http_date(second, loop->date);
  }
  return loop->date;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  FW_UNUSED(status);
  free(req);
}

/* Stops taking requests: what is queued is sent, the write side is shut, and input is
 * read and dropped until the peer closes or LINGER_MS pass. Closing at once instead
 * would make the kernel answer unread input with a reset that can destroy the response
 * before the client reads it. */
static void conn_linger(struct fw_conn *conn) {
  if (conn->state == CONN_CLOSING || conn->state == CONN_LINGERING)
    return;
  conn->state = CONN_LINGERING;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&conn->handle, on_shutdown) < 0) {
    free(req);
    conn_close(conn);
    return;
  }
  conn->shut_down = true;
  if (!conn->reading)
    start_reading(conn);
  schedule(conn, LINGER_MS, on_timer_close);
}

static size_t status_column(int status) {
  for (size_t i = 0; i < FW_ARRAY_LEN(counted_statuses); i++)
    if (counted_statuses[i] == status)
      return i;
  return FW_ARRAY_LEN(counted_statuses);
}

static bool status_has_body(int status) { return status != 204 && status != 304 && status >= 200; }

/* Serialises and sends `res`. A stream's head goes without a length. */
static void send_response(struct fw_conn *conn, const struct fw_http_request *req,
                          struct fw_http_response *res, bool is_stream) {
  struct fw_loop *loop = conn->loop;
  struct fw_buf *wire = &loop->wire;
  fw_buf_reset(wire);
  bool head_only = req->method == FW_HTTP_HEAD || !status_has_body(res->status);
  int rc = fw_buf_appendf(wire, "HTTP/1.1 %d %s\r\nDate: %s\r\n", res->status,
                          fw_http_status_text(res->status), http_date(loop));
  if (!rc && res->content_type)
    rc = fw_buf_appendf(wire, "Content-Type: %s\r\n", res->content_type);
  if (!rc && !is_stream && status_has_body(res->status)) {
    rc = fw_buf_append_str(wire, "Content-Length: ");
    if (!rc)
      rc = fw_buf_append_u64(wire, res->body->len);
    if (!rc)
      rc = fw_buf_append(wire, "\r\n", 2);
  }
  if (!rc) {
    rc = fw_buf_append_str(wire, "X-Request-Id: ");
    if (!rc)
      rc = fw_buf_append_str(wire, req->request_id);
    if (!rc)
      rc = fw_buf_append(wire, "\r\n", 2);
  }
  /* An upgrade names its own Connection header. */
  if (!rc && (res->close || is_stream) && !conn->websocket)
    rc = fw_buf_append_str(wire, "Connection: close\r\n");
  else if (!rc && req->http10)
    rc = fw_buf_append_str(wire, "Connection: keep-alive\r\n");
  if (!rc)
    rc = fw_buf_append(wire, res->head->data ? res->head->data : "", res->head->len);
  if (!rc)
    rc = fw_buf_append(wire, "\r\n", 2);
  if (rc) {
    conn_close(conn);
    return;
  }
  uv_buf_t bufs[2] = {uv_buf_init(wire->data, (unsigned)wire->len),
                      uv_buf_init(res->body->data, (unsigned)res->body->len)};
  unsigned count = head_only || res->body->len == 0 ? 1 : 2;
  if (conn_write(conn, bufs, count) == FW_OK && res->close)
    conn_linger(conn);
}

/* Readies `res` on the loop's scratch buffers. `conn` may be NULL for a deferred response
 * whose connection has gone: it is built, then dropped. */
static void prepare_response_on(struct fw_loop *loop, struct fw_conn *conn,
                                struct fw_http_response *res) {
  fw_buf_reset(&loop->res_head);
  fw_buf_reset(&loop->res_body);
  *res = (struct fw_http_response){
      .status = 200, .head = &loop->res_head, .body = &loop->res_body, .conn = conn};
}

static void prepare_response(struct fw_conn *conn, struct fw_http_response *res) {
  prepare_response_on(conn->loop, conn, res);
}

/* Answers an error found before a request could be routed, then lingers and closes. */
static void send_early_error(struct fw_conn *conn, struct fw_http_request *partial, int status,
                             const char *code, const char *message) {
  struct fw_http_request fallback = {.method = FW_HTTP_GET, .method_name = "GET"};
  struct fw_http_request *req = partial ? partial : &fallback;
  if (!req->request_id[0])
    fw_http_request_id_generate(req->request_id);
  struct fw_http_response res;
  prepare_response(conn, &res);
  res.close = true;
  if (fw_http_set_error(&res, req, status, code, message) != FW_OK) {
    conn_close(conn);
    return;
  }
  if (status == 503 && fw_http_add_header(&res, "Retry-After", RETRY_AFTER_SECONDS) != FW_OK) {
    conn_close(conn);
    return;
  }
  struct fw_server *server = conn->loop->server;
  size_t route_row = server->options.router->count;
  fw_metric_add(&server->request_counters[route_row * STATUS_COLUMNS + status_column(status)], 1);
  fw_log_with(FW_LOG_INFO, "request refused", FW_LOG_INT("status", status),
              FW_LOG_STR("code", code), FW_LOG_STR("request_id", req->request_id));
  send_response(conn, req, &res, false);
}

/* ---- reading ---- */

static void on_header_timeout(struct fw_timer_entry *entry) {
  struct fw_conn *conn = conn_of_timer(entry);
  send_early_error(conn, NULL, 408, "request_timeout", "the request was not received in time");
}

static enum conn_phase reader_phase(const struct fw_conn *conn) {
  if (fw_http_reader_reading_headers(&conn->reader))
    return PHASE_HEADERS;
  if (fw_http_reader_reading_body(&conn->reader))
    return PHASE_BODY;
  return PHASE_IDLE;
}

static void arm_phase_timer(struct fw_conn *conn) {
  const struct fw_server_options *opt = &conn->loop->server->options;
  conn->phase = reader_phase(conn);
  switch (conn->phase) {
  case PHASE_HEADERS:
    schedule(conn, opt->header_timeout_ms, on_header_timeout);
    break;
  case PHASE_BODY:
    schedule(conn, opt->body_timeout_ms, on_header_timeout);
    break;
  case PHASE_IDLE:
    schedule(conn, opt->keepalive_timeout_ms, on_timer_close);
    break;
  }
}

/* Re-arms the connection's timeout when it moved to another phase or finished a
 * request; a deadline otherwise keeps running, so trickled bytes cannot extend it. */
static void update_phase(struct fw_conn *conn, uint64_t requests_before) {
  if (conn->deferred) {
    /* The server owes the next move: no client timeout runs. */
    fw_timer_wheel_cancel(&conn->loop->wheel, &conn->timer);
    return;
  }
  if (reader_phase(conn) != conn->phase || conn->requests_done != requests_before)
    arm_phase_timer(conn);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  FW_UNUSED(suggested);
  /* Every connection of the loop borrows the same buffer: libuv calls on_read right
   * after, on this thread, and on_read consumes or copies everything. */
  struct fw_conn *conn = (struct fw_conn *)handle;
  *buf = uv_buf_init(conn->loop->read_buffer, READ_BUFFER_SIZE);
}

static void handle_read_error(struct fw_conn *conn) {
  switch (conn->reader.error) {
  case FW_HTTP_READ_HEADERS_TOO_LARGE:
    send_early_error(conn, NULL, 431, "headers_too_large",
                     "the request line and headers exceed the limit");
    break;
  case FW_HTTP_READ_BODY_TOO_LARGE:
    send_early_error(conn, NULL, 413, "body_too_large", "the request body exceeds the limit");
    break;
  case FW_HTTP_READ_BAD_VERSION:
    send_early_error(conn, NULL, 505, "http_version_not_supported",
                     "only HTTP/1.0 and HTTP/1.1 are spoken here");
    break;
  case FW_HTTP_READ_NO_MEMORY:
    send_early_error(conn, NULL, 503, "overloaded", "the server is out of memory");
    break;
  case FW_HTTP_READ_MALFORMED:
  case FW_HTTP_READ_OK:
    send_early_error(conn, NULL, 400, "malformed_request", "the request is not valid HTTP/1.1");
    break;
  }
}

/* Keeps the input behind a deferred request for when it is answered. */
static void keep_pending_input(struct fw_conn *conn, const char *data, size_t len) {
  char *copy = malloc(len);
  if (!copy) {
    conn_close(conn);
    return;
  }
  memcpy(copy, data, len);
  conn->pending_input = copy;
  conn->pending_len = len;
  if (conn->reading) {
    uv_read_stop((uv_stream_t *)&conn->handle);
    conn->reading = false;
  }
}

static void websocket_consume(struct fw_conn *conn, char *data, size_t len);

/* Parses `len` bytes of requests and answers them. `data` may be reused after, and
 * changed meanwhile (a WebSocket's frames are unmasked in place). */
static void consume_input(struct fw_conn *conn, char *data, size_t len) {
  uint64_t requests_before = conn->requests_done;
  /* The library returns early after a request that asks for a protocol upgrade; what
   * follows it in the same read is fed again. */
  size_t offset = 0;
  while (offset < len && conn->state == CONN_HTTP && !conn->reader.stopped &&
         conn->reader.error == FW_HTTP_READ_OK) {
    size_t used = fw_http_reader_feed(&conn->reader, data + offset, len - offset);
    if (used == 0)
      break;
    offset += used;
  }
  if (conn->state == CONN_CLOSING)
    return;
  if (conn->state == CONN_STREAM && conn->websocket) {
    /* A client that did not wait for the upgrade's answer: its frames are read all the
     * same. */
    if (offset < len)
      websocket_consume(conn, data + offset, len - offset);
    return;
  }
  if (conn->reader.error != FW_HTTP_READ_OK) {
    handle_read_error(conn);
    return;
  }
  if (conn->deferred && offset < len)
    keep_pending_input(conn, data + offset, len - offset);
  if (conn->state == CONN_HTTP)
    update_phase(conn, requests_before);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct fw_conn *conn = (struct fw_conn *)stream;
  if (nread == 0 || conn->state == CONN_CLOSING)
    return;
  if (nread < 0) {
    conn_close(conn);
    return;
  }
  if (conn->state == CONN_STREAM && conn->websocket) {
    websocket_consume(conn, buf->base, (size_t)nread);
    return;
  }
  if (conn->state != CONN_HTTP)
    return; /* lingering or streaming: what the peer sends now is dropped */
  consume_input(conn, buf->base, (size_t)nread);
}

static void start_reading(struct fw_conn *conn) {
  if (uv_read_start((uv_stream_t *)&conn->handle, on_alloc, on_read) == 0)
    conn->reading = true;
  else
    conn_close(conn);
}

/* ---- dispatch ---- */

static enum fw_http_read_verdict on_headers(void *ctx, struct fw_http_request *req) {
  struct fw_conn *conn = ctx;
  size_t id_len;
  const char *id = fw_http_header(req, "X-Request-Id", &id_len);
  if (id && fw_http_request_id_valid(id, id_len)) {
    memcpy(req->request_id, id, id_len);
    req->request_id[id_len] = '\0';
  } else {
    fw_http_request_id_generate(req->request_id);
  }
  size_t expect_len;
  const char *expect = fw_http_header(req, "Expect", &expect_len);
  if (expect) {
    if (expect_len != 12 || strncasecmp(expect, "100-continue", 12) != 0) {
      send_early_error(conn, req, 417, "expectation_failed",
                       "only 'Expect: 100-continue' is supported");
      return FW_HTTP_STOP;
    }
    static char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t buf = uv_buf_init(continue_line, sizeof continue_line - 1);
    if (conn_write(conn, &buf, 1) != FW_OK)
      return FW_HTTP_STOP;
  }
  return FW_HTTP_CONTINUE;
}

/* Writes the request's target, with credentials redacted, into `out` (NUL-terminated). */
static void redacted_target(const struct fw_http_request *req, char *out, size_t out_len) {
  struct fw_buf target = {.data = out, .cap = out_len, .limit = out_len - 1};
  if (fw_log_redact_target(req->target, req->target_len, &target) != FW_OK)
    target.len = 0;
  out[target.len] = '\0';
}

static void log_request_line(const char *method, const char *target, int status, uint64_t micros,
                             const char *request_id) {
  fw_log_with(FW_LOG_DEBUG, "request", FW_LOG_STR("method", method), FW_LOG_STR("target", target),
              FW_LOG_INT("status", status), FW_LOG_INT("micros", micros),
              FW_LOG_STR("request_id", request_id));
}

static void log_request(const struct fw_http_request *req, int status, uint64_t micros) {
  if (!fw_log_enabled(FW_LOG_DEBUG))
    return;
  char target[512];
  redacted_target(req, target, sizeof target);
  log_request_line(req->method_name, target, status, micros, req->request_id);
}

static bool route_request(struct fw_conn *conn, struct fw_http_request *req,
                          struct fw_http_response *res, size_t *route_row) {
  struct fw_loop *loop = conn->loop;
  const struct fw_server_options *opt = &loop->server->options;
  *route_row = opt->router->count;
  if (opt->filter && opt->filter(req, res, opt->filter_ctx))
    return true;
  const struct fw_route *route = NULL;
  char allow[128];
  char message[160];
  switch (fw_router_match(opt->router, req, loop->param_storage, sizeof loop->param_storage, &route,
                          allow, sizeof allow)) {
  case FW_ROUTE_FOUND:
    *route_row = route->index;
    route->handler(req, res, route->ctx);
    return true;
  case FW_ROUTE_WRONG_METHOD:
    snprintf(message, sizeof message, "%s is not allowed here; allowed: %s", req->method_name,
             allow);
    return fw_http_set_error(res, req, 405, "method_not_allowed", message) == FW_OK &&
           fw_http_add_header(res, "Allow", allow) == FW_OK;
  case FW_ROUTE_NOT_FOUND:
    break;
  }
  return fw_http_set_error(res, req, 404, "not_found", "no such route") == FW_OK;
}

static enum fw_http_read_verdict on_request(void *ctx, struct fw_http_request *req) {
  struct fw_conn *conn = ctx;
  struct fw_loop *loop = conn->loop;
  struct fw_server *server = loop->server;
  uint64_t started = uv_hrtime();
  conn->requests_done++;
  struct fw_http_response res;
  prepare_response(conn, &res);
  size_t route_row;
  if (!route_request(conn, req, &res, &route_row)) {
    prepare_response(conn, &res);
    if (fw_http_set_error(&res, req, 500, "internal", "the response could not be built")) {
      conn_close(conn);
      return FW_HTTP_STOP;
    }
  }
  if (conn->deferred) {
    /* The answer comes later: read nothing more until then, so responses stay in order. */
    conn->deferred->route_row = route_row;
    conn->deferred->started_ns = started;
    fw_timer_wheel_cancel(&loop->wheel, &conn->timer);
    if (conn->reading) {
      uv_read_stop((uv_stream_t *)&conn->handle);
      conn->reading = false;
    }
    return FW_HTTP_STOP;
  }
  bool is_stream = conn->stream.hooks != NULL;
  /* A stream's end is the connection's end, so it never lingers for another request. */
  if (!is_stream && (!req->keep_alive || loop->draining))
    res.close = true;
  send_response(conn, req, &res, is_stream);
  uint64_t micros = (uv_hrtime() - started) / 1000;
  fw_metric_add(&server->request_counters[route_row * STATUS_COLUMNS + status_column(res.status)],
                1);
  fw_metric_observe(&server->latency, micros);
  log_request(req, res.status, micros);
  if (conn->state == CONN_CLOSING)
    return FW_HTTP_STOP;
  if (is_stream) {
    conn->state = CONN_STREAM;
    fw_timer_wheel_cancel(&loop->wheel, &conn->timer);
    set_kind(conn, conn->websocket ? KIND_WEBSOCKET : KIND_STREAM);
    tune_stream_socket(conn);
    if (conn->stream.hooks->on_start)
      conn->stream.hooks->on_start(&conn->stream, conn->stream.ctx);
    return FW_HTTP_STOP;
  }
  return res.close ? FW_HTTP_STOP : FW_HTTP_CONTINUE;
}

/* ---- deferred responses ---- */

int fw_http_response_defer(struct fw_http_response *res, const struct fw_http_request *req,
                           struct fw_http_deferred **out) {
  struct fw_conn *conn = res->conn;
  assert(conn && !conn->deferred);
  if (conn->stream.hooks)
    return FW_EINVAL;
  struct fw_http_deferred *deferred = calloc(1, sizeof *deferred);
  if (!deferred)
    return FW_ENOMEM;
  deferred->conn = conn;
  deferred->loop = conn->loop;
  deferred->request = (struct fw_http_request){.method = req->method,
                                               .method_name = req->method_name,
                                               .keep_alive = req->keep_alive,
                                               .http10 = req->http10};
  memcpy(deferred->request.request_id, req->request_id, sizeof req->request_id);
  if (fw_log_enabled(FW_LOG_DEBUG))
    redacted_target(req, deferred->target, sizeof deferred->target);
  conn->deferred = deferred;
  *out = deferred;
  return FW_OK;
}

unsigned fw_http_response_loop(const struct fw_http_response *res) {
  return res->conn->loop->index;
}

struct fw_http_response *fw_http_deferred_response(struct fw_http_deferred *deferred) {
  prepare_response_on(deferred->loop, deferred->conn, &deferred->response);
  return &deferred->response;
}

const struct fw_http_request *fw_http_deferred_request(const struct fw_http_deferred *deferred) {
  return &deferred->request;
}

/* Takes requests again after a deferred one was answered: first the input that came
 * behind it, then the socket. */
static void resume_after_deferred(struct fw_conn *conn) {
  fw_http_reader_resume(&conn->reader);
  char *input = conn->pending_input;
  size_t len = conn->pending_len;
  conn->pending_input = NULL;
  conn->pending_len = 0;
  if (input) {
    consume_input(conn, input, len);
    free(input);
  }
  /* A WebSocket upgraded from the input that waited: its frames come from the socket, once
   * any that came with that input have had their turns. */
  if (conn->state == CONN_STREAM && conn->websocket && !conn->reading &&
      !conn->websocket->waiting_turn) {
    start_reading(conn);
    return;
  }
  if (conn->state != CONN_HTTP || conn->deferred)
    return;
  if (!conn->reading)
    start_reading(conn);
  if (conn->state == CONN_HTTP)
    arm_phase_timer(conn);
}

void fw_http_deferred_send(struct fw_http_deferred *deferred) {
  struct fw_conn *conn = deferred->conn;
  if (!conn) {
    free(deferred);
    return;
  }
  struct fw_loop *loop = conn->loop;
  struct fw_server *server = loop->server;
  /* The response was prepared on this loop by fw_http_deferred_response. */
  struct fw_http_response *res = &deferred->response;
  assert(res->head == &loop->res_head);
  conn->deferred = NULL;
  if (!deferred->request.keep_alive || loop->draining)
    res->close = true;
  send_response(conn, &deferred->request, res, false);
  uint64_t micros = (uv_hrtime() - deferred->started_ns) / 1000;
  fw_metric_add(
      &server->request_counters[deferred->route_row * STATUS_COLUMNS + status_column(res->status)],
      1);
  fw_metric_observe(&server->latency, micros);
  if (fw_log_enabled(FW_LOG_DEBUG))
    log_request_line(deferred->request.method_name, deferred->target, res->status, micros,
                     deferred->request.request_id);
  bool resume = !res->close && conn->state == CONN_HTTP;
  free(deferred);
  if (resume)
    resume_after_deferred(conn);
}

void fw_http_deferred_discard(struct fw_http_deferred *deferred) {
  if (deferred->conn)
    deferred->conn->deferred = NULL;
  free(deferred);
}

/* ---- streams ---- */

int fw_http_response_stream(struct fw_http_response *res, const struct fw_stream_hooks *hooks,
                            void *ctx, struct fw_stream **out) {
  struct fw_conn *conn = res->conn;
  assert(conn && hooks);
  if (conn->stream.hooks)
    return FW_EINVAL;
  conn->stream = (struct fw_stream){.conn = conn, .hooks = hooks, .ctx = ctx};
  *out = &conn->stream;
  return FW_OK;
}

int fw_stream_write(struct fw_stream *stream, const char *data, size_t len) {
  struct fw_conn *conn = stream->conn;
  if (conn->state != CONN_STREAM)
    return FW_EIO;
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  return conn_write(conn, &buf, 1);
}

int fw_stream_write_shared(struct fw_stream *stream, struct fw_shared *shared) {
  struct fw_conn *conn = stream->conn;
  if (conn->state != CONN_STREAM)
    return FW_EIO;
  return conn_write_shared(conn, shared);
}

void fw_stream_backlog(const struct fw_stream *stream, size_t *bytes, uint64_t *age_ms) {
  const struct fw_conn *conn = stream->conn;
  *bytes = conn->queued_bytes;
  *age_ms = conn->queued_bytes ? now_ms(conn->loop) - conn->backlog_since_ms : 0;
}

static void websocket_fail(struct fw_conn *conn, uint16_t code, const char *reason);

static void on_stream_timer(struct fw_timer_entry *entry) {
  struct fw_conn *conn = conn_of_timer(entry);
  /* A message begun and never finished holds up to FW_WS_MESSAGE_MAX bytes: it must end
   * within the body timeout (checked at the socket's next heartbeat). */
  struct websocket *websocket = conn->websocket;
  if (conn->state == CONN_STREAM && websocket && websocket->partial_since_ms &&
      now_ms(conn->loop) - websocket->partial_since_ms >=
          conn->loop->server->options.body_timeout_ms) {
    websocket_fail(conn, FW_WS_CLOSE_POLICY, "a message was not finished in time");
    return;
  }
  if (conn->state == CONN_STREAM && conn->stream.hooks->on_timer)
    conn->stream.hooks->on_timer(&conn->stream, conn->stream.ctx);
}

void fw_stream_schedule(struct fw_stream *stream, uint64_t delay_ms) {
  struct fw_conn *conn = stream->conn;
  /* Once a WebSocket's close is out, the timer counts down to the end of the handshake. */
  if (conn->state == CONN_STREAM && !(conn->websocket && conn->websocket->close_sent))
    schedule(conn, delay_ms, on_stream_timer);
}

uint64_t fw_stream_now_ms(const struct fw_stream *stream) { return now_ms(stream->conn->loop); }

unsigned fw_stream_loop(const struct fw_stream *stream) { return stream->conn->loop->index; }

void fw_stream_close(struct fw_stream *stream) { conn_linger(stream->conn); }

/* ---- WebSockets ---- */

int fw_http_response_websocket(struct fw_http_response *res, const char *accept,
                               const struct fw_stream_hooks *hooks, void *ctx,
                               struct fw_stream **out) {
  struct fw_conn *conn = res->conn;
  assert(conn && hooks);
  if (conn->stream.hooks || conn->websocket)
    return FW_EINVAL;
  struct websocket *websocket = calloc(1, sizeof *websocket);
  if (!websocket)
    return FW_ENOMEM;
  res->status = 101;
  res->content_type = NULL;
  int rc = fw_http_add_header(res, "Upgrade", "websocket");
  if (!rc)
    rc = fw_http_add_header(res, "Connection", "Upgrade");
  if (!rc)
    rc = fw_http_add_header(res, "Sec-WebSocket-Accept", accept);
  if (rc) {
    free(websocket);
    return rc;
  }
  const struct fw_ws_limits limits = {.max_frame = FW_WS_MESSAGE_MAX,
                                      .max_message = FW_WS_MESSAGE_MAX};
  fw_ws_reader_init(&websocket->reader, &limits);
  conn->websocket = websocket;
  conn->stream = (struct fw_stream){.conn = conn, .hooks = hooks, .ctx = ctx};
  *out = &conn->stream;
  return FW_OK;
}

/* Writes one server frame (a control frame's payload is at most 125 bytes). */
static int websocket_write(struct fw_conn *conn, enum fw_ws_opcode opcode, const void *payload,
                           size_t len) {
  uint8_t header[10];
  size_t header_len = fw_ws_frame_header(header, opcode, len);
  uv_buf_t bufs[2] = {uv_buf_init((char *)header, (unsigned)header_len),
                      uv_buf_init((char *)payload, (unsigned)len)};
  return conn_write(conn, bufs, len ? 2 : 1);
}

/* Sends a close frame with `code` and `reason` after what is queued. On failure the
 * connection is closing. */
static int websocket_send_close(struct fw_conn *conn, uint16_t code, const char *reason) {
  struct fw_buf frame;
  fw_buf_init(&frame, FW_WS_HEADER_MAX + FW_WS_CONTROL_MAX);
  conn->websocket->close_sent = true;
  int rc = fw_ws_close_append(&frame, code, reason);
  if (!rc) {
    uv_buf_t buf = uv_buf_init(frame.data, (unsigned)frame.len);
    rc = conn_write(conn, &buf, 1);
  }
  fw_buf_free(&frame);
  if (rc)
    conn_close(conn); /* as conn_write does when it fails */
  return rc;
}

void fw_stream_close_websocket(struct fw_stream *stream, uint16_t code, const char *reason) {
  struct fw_conn *conn = stream->conn;
  if (!conn->websocket || conn->websocket->close_sent || conn->state != CONN_STREAM)
    return;
  if (websocket_send_close(conn, code, reason) == FW_OK)
    schedule(conn, FW_WS_CLOSE_TIMEOUT_MS, on_timer_close);
}

/* The client broke the protocol: our close frame with the codec's code, then the
 * connection ends (RFC 6455 7.1.7: no need to wait for the client's close). */
static void websocket_fail(struct fw_conn *conn, uint16_t code, const char *reason) {
  if (!conn->websocket->close_sent && websocket_send_close(conn, code, reason) != FW_OK)
    return;
  conn_linger(conn);
}

/* Handles one message or control frame; false once the connection is ending. */
static bool websocket_event(struct fw_conn *conn, const struct fw_ws_event *event) {
  struct websocket *websocket = conn->websocket;
  switch (event->opcode) {
  case FW_WS_TEXT:
    if (!websocket->close_sent && conn->stream.hooks->on_message)
      conn->stream.hooks->on_message(&conn->stream, (const char *)event->payload, event->len,
                                     conn->stream.ctx);
    break;
  case FW_WS_BINARY:
    websocket_fail(conn, FW_WS_CLOSE_UNSUPPORTED_DATA, "binary messages are not accepted");
    break;
  case FW_WS_PING:
    if (!websocket->close_sent)
      (void)websocket_write(conn, FW_WS_PONG, event->payload, event->len);
    break;
  case FW_WS_CLOSE:
    /* The client's close: answered with the same code unless it answers ours; either
     * way the handshake is complete and the connection ends. */
    if (!websocket->close_sent &&
        websocket_send_close(conn,
                             event->close_code == FW_WS_CLOSE_NO_STATUS ? FW_WS_CLOSE_NORMAL
                                                                        : event->close_code,
                             NULL) != FW_OK)
      return false;
    conn_linger(conn);
    break;
  default:
    break; /* pongs */
  }
  return conn->state == CONN_STREAM;
}

static void on_turn(uv_idle_t *idle);

/* Keeps what a WebSocket's read holds past its turn for the loop's next turn, and stops
 * reading its socket until then. */
static void websocket_wait_turn(struct fw_conn *conn, const char *data, size_t len) {
  keep_pending_input(conn, data, len);
  if (conn->state != CONN_STREAM)
    return; /* no memory to keep it: the connection is closing */
  struct fw_loop *loop = conn->loop;
  struct websocket *websocket = conn->websocket;
  websocket->waiting_turn = true;
  websocket->turn_prev = NULL;
  websocket->turn_next = loop->waiting_turns;
  if (loop->waiting_turns)
    loop->waiting_turns->websocket->turn_prev = conn;
  loop->waiting_turns = conn;
  uv_idle_start(&loop->turns, on_turn);
}

/* Takes a connection that is going away off its loop's list of sockets waiting for a
 * turn. Only from its close callback: on_turn never runs between two of those. */
static void websocket_forget_turn(struct fw_conn *conn) {
  struct websocket *websocket = conn->websocket;
  if (!websocket || !websocket->waiting_turn)
    return;
  if (websocket->turn_prev)
    websocket->turn_prev->websocket->turn_next = websocket->turn_next;
  else
    conn->loop->waiting_turns = websocket->turn_next;
  if (websocket->turn_next)
    websocket->turn_next->websocket->turn_prev = websocket->turn_prev;
  websocket->waiting_turn = false;
}

/* Reads the frames in `data` (unmasking them in place), one message at a time, at most
 * WS_FRAMES_PER_TURN of them. */
static void websocket_consume(struct fw_conn *conn, char *data, size_t len) {
  size_t offset = 0;
  unsigned frames = 0;
  while (offset < len && conn->state == CONN_STREAM) {
    if (frames == WS_FRAMES_PER_TURN) {
      websocket_wait_turn(conn, data + offset, len - offset);
      return;
    }
    size_t used = 0;
    struct fw_ws_event event;
    enum fw_ws_result result = fw_ws_reader_feed(&conn->websocket->reader, (uint8_t *)data + offset,
                                                 len - offset, &used, &event);
    offset += used;
    if (result == FW_WS_FAIL) {
      websocket_fail(conn, event.close_code, event.error);
      return;
    }
    if (result == FW_WS_NEED_MORE) {
      if (!conn->websocket->partial_since_ms)
        conn->websocket->partial_since_ms = now_ms(conn->loop);
      return;
    }
    conn->websocket->partial_since_ms = 0;
    frames++;
    if (!websocket_event(conn, &event))
      return;
  }
  /* Everything read was handled: a message gathered over several reads gives its memory
   * back now, not at the next read, so a quiet socket holds none. */
  if (conn->state == CONN_STREAM) {
    size_t used;
    struct fw_ws_event event;
    (void)fw_ws_reader_feed(&conn->websocket->reader, NULL, 0, &used, &event);
  }
}

/* Serves every WebSocket waiting for a turn its next frames; one whose input is then all
 * served reads its socket again. A socket that waits again goes to the next turn. */
static void on_turn(uv_idle_t *idle) {
  struct fw_loop *loop = idle->data;
  struct fw_conn *conn = loop->waiting_turns;
  loop->waiting_turns = NULL;
  uv_idle_stop(idle);
  while (conn) {
    struct websocket *websocket = conn->websocket;
    struct fw_conn *next = websocket->turn_next;
    websocket->waiting_turn = false;
    websocket->turn_prev = websocket->turn_next = NULL;
    char *input = conn->pending_input;
    size_t len = conn->pending_len;
    conn->pending_input = NULL;
    conn->pending_len = 0;
    if (input && conn->state == CONN_STREAM)
      websocket_consume(conn, input, len);
    free(input);
    if (conn->state == CONN_STREAM && !websocket->waiting_turn && !conn->reading)
      start_reading(conn);
    conn = next;
  }
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *listener, int status) {
  struct fw_loop *loop = listener->data;
  struct fw_server *server = loop->server;
  if (status < 0)
    return;
  struct fw_conn *conn = calloc(1, sizeof *conn);
  if (!conn)
    return;
  conn->loop = loop;
  if (uv_tcp_init(&loop->uv, &conn->handle) < 0) {
    free(conn);
    return;
  }
  conn->kind = KIND_HTTP;
  conn->next = loop->conns;
  if (loop->conns)
    loop->conns->prev = conn;
  loop->conns = conn;
  loop->conn_count++;
  fw_metric_add(&server->conns_open[KIND_HTTP], 1);
  if (uv_accept(listener, (uv_stream_t *)&conn->handle) < 0) {
    conn_close(conn);
    return;
  }
  fw_http_reader_init(&conn->reader, &server->options.limits, &server->reader_hooks, &loop->pool,
                      conn);
  uv_tcp_nodelay(&conn->handle, 1);
  size_t open = atomic_fetch_add_explicit(&server->open_connections, 1, memory_order_relaxed);
  conn->counted = true;
  if (open >= server->max_connections) {
    fw_metric_add(&server->conns_rejected, 1);
    start_reading(conn);
    send_early_error(conn, NULL, 503, "too_many_connections",
                     "the server is at its connection limit; retry later");
    return;
  }
  fw_metric_add(&server->conns_accepted[KIND_HTTP], 1);
  start_reading(conn);
  if (conn->state == CONN_HTTP)
    schedule(conn, server->options.header_timeout_ms, on_timer_close);
}

/* ---- loop life ---- */

static struct fw_loop_task *take_tasks(struct fw_loop *loop, bool close_queue);
static void run_tasks(struct fw_loop_task *task, bool cancelled);

static void close_loop_handles(struct fw_loop *loop) {
  if (loop->closing_handles)
    return;
  loop->closing_handles = true;
  /* Whatever is still posted, or comes later, finds no connection to answer. */
  run_tasks(take_tasks(loop, true), true);
  if (loop->listener_open) {
    loop->listener_open = false;
    uv_close((uv_handle_t *)&loop->listener, NULL);
  }
  uv_close((uv_handle_t *)&loop->wakeup, NULL);
  uv_close((uv_handle_t *)&loop->tick, NULL);
  uv_close((uv_handle_t *)&loop->turns, NULL);
}

static void maybe_finish_loop(struct fw_loop *loop) {
  if (loop->draining && loop->conn_count == 0)
    close_loop_handles(loop);
}

static void force_close_all(struct fw_loop *loop) {
  while (loop->conns)
    conn_close(loop->conns);
}

static void begin_drain(struct fw_loop *loop) {
  if (!loop->draining) {
    loop->draining = true;
    loop->drain_deadline_ms = now_ms(loop) + loop->server->options.shutdown_timeout_ms;
    if (loop->listener_open) {
      loop->listener_open = false;
      uv_close((uv_handle_t *)&loop->listener, NULL);
    }
    struct fw_conn *conn = loop->conns;
    while (conn) {
      struct fw_conn *next = conn->next;
      if (conn->state == CONN_STREAM && !(conn->websocket && conn->websocket->close_sent)) {
        if (conn->stream.hooks->on_drain)
          conn->stream.hooks->on_drain(&conn->stream, conn->stream.ctx);
      } else if (conn->state == CONN_HTTP && conn->phase == PHASE_IDLE && !conn->deferred &&
                 conn->queued_bytes == 0) {
        conn_close(conn);
      }
      conn = next;
    }
  }
  if (atomic_load(&loop->server->stop_requested) == 2)
    force_close_all(loop);
  maybe_finish_loop(loop);
}

/* Takes every posted task out of the queue, in order. */
static struct fw_loop_task *take_tasks(struct fw_loop *loop, bool close_queue) {
  uv_mutex_lock(&loop->tasks_lock);
  struct fw_loop_task *tasks = loop->tasks_head;
  loop->tasks_head = loop->tasks_tail = NULL;
  if (close_queue)
    loop->tasks_closed = true;
  uv_mutex_unlock(&loop->tasks_lock);
  return tasks;
}

static void run_tasks(struct fw_loop_task *task, bool cancelled) {
  while (task) {
    struct fw_loop_task *next = task->next;
    task->run(task, cancelled);
    task = next;
  }
}

void fw_server_post(struct fw_server *server, unsigned index, struct fw_loop_task *task) {
  assert(index < server->loop_count);
  struct fw_loop *loop = server->loops[index];
  task->next = NULL;
  uv_mutex_lock(&loop->tasks_lock);
  bool closed = loop->tasks_closed;
  if (!closed) {
    if (loop->tasks_tail)
      loop->tasks_tail->next = task;
    else
      loop->tasks_head = task;
    loop->tasks_tail = task;
    /* Sent under the lock: the loop cannot close its handle in between. */
    uv_async_send(&loop->wakeup);
  }
  uv_mutex_unlock(&loop->tasks_lock);
  if (closed)
    task->run(task, true);
}

unsigned fw_server_loop_count(const struct fw_server *server) { return server->loop_count; }

static void on_wakeup(uv_async_t *async) {
  struct fw_loop *loop = async->data;
  run_tasks(take_tasks(loop, false), false);
  if (atomic_load(&loop->server->stop_requested))
    begin_drain(loop);
}

static void on_tick(uv_timer_t *timer) {
  struct fw_loop *loop = timer->data;
  fw_timer_wheel_advance(&loop->wheel, now_ms(loop));
  if (loop->draining && now_ms(loop) >= loop->drain_deadline_ms)
    force_close_all(loop);
}

static void loop_main(void *arg) {
  struct fw_loop *loop = arg;
  fw_metrics_bind_thread(loop->index + 1);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  atomic_fetch_add(&loop->server->loops_ended, 1);
}

/* Creates a listening socket bound to the shared address with SO_REUSEPORT. */
static int open_listener(const struct sockaddr *addr, socklen_t addr_len, int *fd_out) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, addr, addr_len) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *fd_out = fd;
  return 0;
}

/* SO_REUSEPORT would let a second process of the same user join our listeners and take
 * a share of the connections. A bind without it fails while anyone listens on the
 * port, so it tells whether the port is ours to take. Returns 0 or -errno. */
static int check_port_free(const struct sockaddr *addr, socklen_t addr_len) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  int rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, addr, addr_len) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

static void loop_free(struct fw_loop *loop) {
  uv_mutex_destroy(&loop->tasks_lock);
  fw_http_message_pool_drain(&loop->pool);
  fw_buf_free(&loop->res_head);
  fw_buf_free(&loop->res_body);
  fw_buf_free(&loop->wire);
  free(loop);
}

static int loop_create(struct fw_server *server, unsigned index, int listen_fd,
                       struct fw_loop **out) {
  struct fw_loop *loop = calloc(1, sizeof *loop);
  if (!loop)
    return UV_ENOMEM;
  loop->server = server;
  loop->index = index;
  loop->date_second = -1;
  /* Response bodies and heads are bounded by what handlers build; the caps only stop a
   * runaway. */
  fw_buf_init(&loop->res_head, 64 * 1024);
  fw_buf_init(&loop->res_body, 64 * 1024 * 1024);
  fw_buf_init(&loop->wire, 128 * 1024);
  int rc = uv_mutex_init(&loop->tasks_lock);
  if (rc < 0) {
    free(loop);
    return rc;
  }
  rc = uv_loop_init(&loop->uv);
  if (rc < 0) {
    loop_free(loop);
    return rc;
  }
  uv_tcp_init(&loop->uv, &loop->listener);
  uv_async_init(&loop->uv, &loop->wakeup, on_wakeup);
  uv_timer_init(&loop->uv, &loop->tick);
  uv_idle_init(&loop->uv, &loop->turns);
  loop->listener.data = loop;
  loop->wakeup.data = loop;
  loop->tick.data = loop;
  loop->turns.data = loop;
  rc = uv_tcp_open(&loop->listener, listen_fd);
  bool listener_owns_fd = rc == 0;
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&loop->listener, LISTEN_BACKLOG, on_connection);
  if (rc == 0)
    rc = uv_timer_start(&loop->tick, on_tick, TICK_MS, TICK_MS);
  fw_timer_wheel_init(&loop->wheel, TICK_MS, now_ms(loop));
  loop->listener_open = true;
  if (rc < 0) {
    if (!listener_owns_fd)
      close(listen_fd);
    close_loop_handles(loop);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
    loop_free(loop);
    return rc;
  }
  *out = loop;
  return 0;
}

/* Raises the soft open-file limit to the hard one and derives the connection cap. */
static size_t derive_connection_cap(unsigned loops) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    struct rlimit raised = {.rlim_cur = lim.rlim_max, .rlim_max = lim.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      lim = raised;
  }
  size_t reserve = FD_RESERVE_BASE + (size_t)loops * FD_RESERVE_PER_LOOP;
  if (lim.rlim_cur == RLIM_INFINITY)
    return 1000000;
  return lim.rlim_cur > reserve * 2 ? (size_t)lim.rlim_cur - reserve : (size_t)lim.rlim_cur / 2;
}

static int register_metrics(struct fw_server *server) {
  const struct fw_router *router = server->options.router;
  size_t rows = router->count + 1;
  server->request_counters = calloc(rows * STATUS_COLUMNS, sizeof *server->request_counters);
  if (!server->request_counters)
    return FW_ENOMEM;
  int rc = FW_OK;
  char labels[512];
  for (size_t r = 0; !rc && r < rows; r++) {
    /* Requests no route took are one row whatever their method or path, so that
     * scanners cannot grow the series without bound. */
    char route[300] = "route=\"unmatched\"";
    if (r < router->count)
      snprintf(route, sizeof route, "method=\"%s\",route=\"%s\"",
               fw_http_method_name(router->routes[r].method), router->routes[r].pattern);
    for (size_t c = 0; !rc && c < STATUS_COLUMNS; c++) {
      char status[8];
      if (c < FW_ARRAY_LEN(counted_statuses))
        snprintf(status, sizeof status, "%d", counted_statuses[c]);
      else
        snprintf(status, sizeof status, "other");
      snprintf(labels, sizeof labels, "%s,status=\"%s\"", route, status);
      rc = fw_metrics_counter_sparse("flagwire_http_requests_total",
                                     "HTTP requests answered, by route and status.", labels,
                                     &server->request_counters[r * STATUS_COLUMNS + c]);
    }
  }
  if (!rc)
    rc = fw_metrics_histogram("flagwire_http_request_duration_seconds",
                              "Time from a complete request to its response handed to the kernel.",
                              NULL, latency_bounds_us, FW_ARRAY_LEN(latency_bounds_us), 1e-6,
                              &server->latency);
  for (int k = 0; !rc && k < KIND_COUNT; k++) {
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind_names[k]);
    rc = fw_metrics_gauge("flagwire_connections_open", "Connections open now, by kind.", labels,
                          &server->conns_open[k]);
    if (!rc)
      rc = fw_metrics_counter("flagwire_connections_accepted_total",
                              "Connections accepted, by kind (a stream counts when it starts).",
                              labels, &server->conns_accepted[k]);
  }
  if (!rc)
    rc = fw_metrics_counter("flagwire_connections_rejected_total",
                            "Connections refused with 503 at the connection cap.",
                            "reason=\"limit\"", &server->conns_rejected);
  return rc;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
                   socklen_t *addr_len) {
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
  if (uv_ip4_addr(host, port, v4) == 0) {
    *addr_len = sizeof *v4;
    return FW_OK;
  }
  if (uv_ip6_addr(host, port, v6) == 0) {
    *addr_len = sizeof *v6;
    return FW_OK;
  }
  return FW_EINVAL;
}

static uint16_t bound_port(int fd) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
  return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

int fw_server_start(const struct fw_server_options *options, struct fw_server **out, char *error,
                    size_t error_len) {
  assert(options->router && options->threads > 0);
  if (options->threads > MAX_LOOPS) {
    say(error, error_len, "option --threads: at most %d loops are supported", MAX_LOOPS);
    return FW_EINVAL;
  }
  struct sockaddr_storage addr;
  socklen_t addr_len;
  if (resolve(options->host, options->port, &addr, &addr_len) != FW_OK) {
    say(error, error_len, "option --host: '%s' is not an IPv4 or IPv6 address", options->host);
    return FW_EINVAL;
  }
  struct fw_server *server = calloc(1, sizeof *server);
  if (!server)
    return FW_ENOMEM;
  server->options = *options;
  server->reader_hooks =
      (struct fw_http_reader_hooks){.on_headers = on_headers, .on_request = on_request};
  size_t cap = derive_connection_cap(options->threads);
  if (options->max_connections > cap) {
    say(error, error_len,
        "option --max-connections: %zu is more than the open-file limit allows (%zu)",
        options->max_connections, cap);
    free(server);
    return FW_EINVAL;
  }
  server->max_connections = options->max_connections ? options->max_connections : cap;
  int rc = register_metrics(server);
  if (rc) {
    say(error, error_len, "cannot register metrics: %s", fw_strerror(rc));
    fw_server_free(server);
    return rc;
  }
  if (options->port != 0) {
    int err = check_port_free((struct sockaddr *)&addr, addr_len);
    if (err != 0) {
      say(error, error_len, "cannot listen on %s port %u: %s", options->host,
          (unsigned)options->port, strerror(-err));
      fw_server_free(server);
      return FW_EIO;
    }
  }
  for (unsigned i = 0; i < options->threads; i++) {
    int fd = -1;
    int err = open_listener((struct sockaddr *)&addr, addr_len, &fd);
    if (err == 0 && i == 0) {
      server->port = bound_port(fd);
      /* Every further listener must share the port the first one got. */
      if (addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons(server->port);
      else
        ((struct sockaddr_in *)&addr)->sin_port = htons(server->port);
    }
    if (err == 0)
      err = loop_create(server, i, fd, &server->loops[i]);
    if (err != 0) {
      say(error, error_len, "cannot listen on %s port %u: %s", options->host,
          (unsigned)options->port, err < 0 ? strerror(-err) : "unknown error");
      atomic_store(&server->stop_requested, 2);
      fw_server_free(server);
      return FW_EIO;
    }
    server->loop_count++;
  }
  for (unsigned i = 0; i < server->loop_count; i++) {
    if (uv_thread_create(&server->loops[i]->thread, loop_main, server->loops[i]) != 0) {
      say(error, error_len, "cannot start loop thread %u", i);
      fw_server_stop(server, true);
      fw_server_wait(server);
      fw_server_free(server);
      return FW_EIO;
    }
    server->threads_started++;
  }
  *out = server;
  return FW_OK;
}

uint16_t fw_server_port(const struct fw_server *server) { return server->port; }

size_t fw_server_max_connections(const struct fw_server *server) { return server->max_connections; }

void fw_server_stop(struct fw_server *server, bool force) {
  int level = force ? 2 : 1;
  int current = atomic_load(&server->stop_requested);
  while (current < level && !atomic_compare_exchange_weak(&server->stop_requested, &current, level))
    ;
  for (unsigned i = 0; i < server->threads_started; i++)
    uv_async_send(&server->loops[i]->wakeup);
}

bool fw_server_finished(const struct fw_server *server) {
  return atomic_load(&server->loops_ended) == server->threads_started;
}

void fw_server_wait(struct fw_server *server) {
  for (unsigned i = 0; i < server->threads_started; i++)
    uv_thread_join(&server->loops[i]->thread);
}

void fw_server_free(struct fw_server *server) {
  if (!server)
    return;
  for (unsigned i = 0; i < MAX_LOOPS; i++) {
    struct fw_loop *loop = server->loops[i];
    if (!loop)
      continue;
    if (i >= server->threads_started) {
      /* Created but never run: close its handles on this thread. */
      close_loop_handles(loop);
      uv_run(&loop->uv, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop->uv);
    loop_free(loop);
  }
  free(server->request_counters);
  free(server);
}
