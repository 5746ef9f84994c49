/* The streaming protocol (docs/protocol.md) against the real binary. A small Server-Sent
 * Events client over plain sockets opens streams with server and client keys, contexts
 * and filters, resumes them by cursor, and checks each event's name, id and JSON; then
 * heartbeats, goodbyes, the stream limits, a slow reader, a client cut off in the middle
 * of a burst of changes, and the Flagsmith and OFREP streams.
 *
 * Every read has a deadline: a stream that stays silent fails its test instead of
 * hanging it. Each test starts its own server. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_stream-test-token-0123456789abcdef"
#define PROJECT_PATH "/v1/projects/shop"
#define ENV_PATH "/v1/projects/shop/environments/prod"

/* How long an expected event may take to arrive. */
#define EVENT_WAIT_MS 5000
/* How long a stream is watched for an event that must not come. */
#define QUIET_MS 400
/* Cap on what one stream may buffer in a test. */
#define STREAM_BUFFER_MAX (16 * 1024 * 1024)

static struct fwt_server server;
/* A server stopped by a test that restarted on its data: its scratch directory holds
 * the store, so it is cleaned up last. */
static struct fwt_server stopped;
static char server_key[128], client_key[128];

/* ---- the management API ---- */

/* snprintf that fails the test rather than cut its text short. */
static void checked_format(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void checked_format(char *out, size_t len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(out, len, fmt, args);
  va_end(args);
  assert_true(n >= 0 && (size_t)n < len);
}

static json_t *parse_json(const char *text, const char *what) {
  json_error_t error;
  json_t *doc = json_loads(text, JSON_DECODE_INT_AS_REAL, &error);
  if (!doc)
    fail_msg("%s is not JSON (%s): %s", what, error.text, text);
  return doc;
}

/* An admin request that must answer `expected_status` (0: any 2xx); its parsed body, or
 * NULL when it has none (caller decrefs). */
static json_t *call(const char *method, const char *path, const char *body, int expected_status) {
  struct fwt_response res;
  fwt_request(server.port, method, path, TOKEN, NULL, body, &res);
  bool ok = expected_status ? res.status == expected_status : res.status / 100 == 2;
  if (!ok)
    fail_msg("%s %s: expected %d, got %d: %s", method, path, expected_status, res.status, res.body);
  json_t *doc = res.body_len ? parse_json(res.body, path) : NULL;
  fwt_response_free(&res);
  return doc;
}

static long long number_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  if (!json_is_number(value))
    fail_msg("member '%s' is not a number", name);
  return (long long)json_number_value(value);
}

static const char *string_of(json_t *doc, const char *name) {
  json_t *value = json_object_get(doc, name);
  if (!json_is_string(value))
    fail_msg("member '%s' is not a string", name);
  return json_string_value(value);
}

/* A request whose answer is an object with its revision: that revision. */
static long long answered_revision(const char *method, const char *path, const char *body) {
  json_t *doc = call(method, path, body, 0);
  assert_non_null(doc);
  long long revision = number_of(doc, "revision");
  json_decref(doc);
  return revision;
}

static long long env_revision(void) { return answered_revision("GET", ENV_PATH, NULL); }

static void env_epoch(char *out, size_t len) {
  json_t *doc = call("GET", ENV_PATH, NULL, 200);
  snprintf(out, len, "%s", string_of(doc, "epoch"));
  json_decref(doc);
}

static long long toggle(const char *flag) {
  char path[256];
  snprintf(path, sizeof path, ENV_PATH "/flags/%s/toggle", flag);
  return answered_revision("POST", path, NULL);
}

static long long patch_state(const char *flag, const char *body) {
  char path[256];
  snprintf(path, sizeof path, ENV_PATH "/flags/%s", flag);
  return answered_revision("PATCH", path, body);
}

static long long put_config(const char *key, const char *body) {
  char path[256];
  snprintf(path, sizeof path, ENV_PATH "/configs/%s", key);
  return answered_revision("PUT", path, body);
}

/* Writes that answer no revision (definitions, deletions) are one revision in the
 * environment: its revision afterwards. */
static long long create_flag(const char *body) {
  json_decref(call("POST", PROJECT_PATH "/flags", body, 201));
  return env_revision();
}

static long long patch_flag(const char *flag, const char *body) {
  char path[256];
  snprintf(path, sizeof path, PROJECT_PATH "/flags/%s", flag);
  json_decref(call("PATCH", path, body, 200));
  return env_revision();
}

static long long delete_flag(const char *flag) {
  char path[256];
  snprintf(path, sizeof path, PROJECT_PATH "/flags/%s", flag);
  json_decref(call("DELETE", path, NULL, 204));
  return env_revision();
}

static long long delete_config(const char *key) {
  char path[256];
  snprintf(path, sizeof path, ENV_PATH "/configs/%s", key);
  json_decref(call("DELETE", path, NULL, 204));
  return env_revision();
}

static void copy_keys(json_t *env) {
  snprintf(server_key, sizeof server_key, "%s", string_of(env, "server_key"));
  snprintf(client_key, sizeof client_key, "%s", string_of(env, "client_key"));
}

/* Starts a server with `args` and the environment shop/prod, whose keys it keeps. */
static void boot(const char *const *args) {
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, args, env);
  json_decref(call("POST", "/v1/projects", "{\"key\":\"shop\"}", 201));
  json_t *doc = call("POST", PROJECT_PATH "/environments", "{\"key\":\"prod\"}", 201);
  copy_keys(doc);
  json_decref(doc);
}

/* Stops the server with SIGTERM and starts another on its data with `args`. */
static void restart(const char *const *args) {
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGTERM, FWT_WAIT_MS), 0);
  stopped = server;
  char data_arg[320];
  snprintf(data_arg, sizeof data_arg, "%s", stopped.data_dir);
  const char *full[16] = {0};
  size_t n = 0;
  for (; args && args[n]; n++) {
    assert_true(n < 12);
    full[n] = args[n];
  }
  full[n++] = "--data";
  full[n++] = data_arg;
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, full, env);
}

static int stop_servers(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  fwt_server_cleanup(&stopped);
  memset(&server, 0, sizeof server);
  memset(&stopped, 0, sizeof stopped);
  return 0;
}

/* A request that must fail with `status` and error `code`. */
static void expect_error(const char *method, const char *target, const char *key,
                         const char *headers, const char *body, int status, const char *code) {
  struct fwt_response res;
  fwt_request(server.port, method, target, key, headers, body, &res);
  char expected[96];
  snprintf(expected, sizeof expected, "{\"error\":{\"code\":\"%s\"", code);
  if (res.status != status || !strstr(res.body, expected))
    fail_msg("%s %.200s: expected %d %s, got %d %s", method, target, status, code, res.status,
             res.body);
  fwt_response_free(&res);
}

/* The value of one series of /metrics (name with its labels), or -1 when absent. */
static double metric(const char *series) {
  struct fwt_response res;
  fwt_request(server.port, "GET", "/metrics", NULL, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  double value = -1;
  size_t len = strlen(series);
  for (const char *at = strstr(res.body, series); at; at = strstr(at + 1, series))
    if ((at == res.body || at[-1] == '\n') && at[len] == ' ') {
      value = strtod(at + len + 1, NULL);
      break;
    }
  fwt_response_free(&res);
  return value;
}

/* Waits (bounded) for a metric to reach `expected`: stream closes are counted once the
 * server has noticed them. */
static void expect_metric(const char *series, double expected) {
  uint64_t deadline = fwt_now_ms() + EVENT_WAIT_MS;
  double value;
  while ((value = metric(series)) != expected && fwt_now_ms() < deadline)
    fwt_sleep_ms(20);
  if (value != expected)
    fail_msg("%s is %g, expected %g", series, value, expected);
}

static void base64url(const char *in, size_t len, bool pad, char *out, size_t out_len) {
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  assert_true(out_len > (len + 2) / 3 * 4);
  size_t n = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t bits = (uint32_t)(unsigned char)in[i] << 16;
    size_t take = len - i < 3 ? len - i : 3;
    if (take > 1)
      bits |= (uint32_t)(unsigned char)in[i + 1] << 8;
    if (take > 2)
      bits |= (unsigned char)in[i + 2];
    for (size_t k = 0; k < 4; k++) {
      if (k <= take)
        out[n++] = digits[(bits >> (18 - 6 * k)) & 63];
      else if (pad)
        out[n++] = '=';
    }
  }
  out[n] = '\0';
}

/* ---- a Server-Sent Events client ---- */

struct sse {
  int fd;
  int status;
  char head[4096];
  char *error_body; /* the JSON error of a refused stream */
  char *buf;        /* received, not yet parsed */
  size_t len;
  bool closed; /* EOF or reset */
  int heartbeats;
};

/* One block: the lines up to a blank line. */
struct sse_block {
  char event[64]; /* "" when the block has no event: line */
  bool has_id;
  long long id;
  bool has_retry;
  long long retry;
  char *data;       /* the data: lines joined by \n; NULL without any */
  char comment[64]; /* the last comment, without ':' and its space */
  char *raw;        /* the block's bytes, blank line included */
};

enum sse_result { SSE_BLOCK, SSE_TIMEOUT, SSE_CLOSED };

static void block_free(struct sse_block *b) {
  free(b->data);
  free(b->raw);
  memset(b, 0, sizeof *b);
}

static void parse_block(const char *text, size_t len, struct sse_block *b) {
  memset(b, 0, sizeof *b);
  b->raw = strndup(text, len);
  assert_non_null(b->raw);
  size_t data_len = 0;
  for (const char *line = text; line < text + len;) {
    const char *end = memchr(line, '\n', (size_t)(text + len - line));
    size_t line_len = (size_t)(end - line);
    if (line_len && line[line_len - 1] == '\r')
      line_len--;
    const char *colon = memchr(line, ':', line_len);
    size_t name_len = colon ? (size_t)(colon - line) : line_len;
    const char *value = colon ? colon + 1 : line + line_len;
    if (colon && value < line + line_len && *value == ' ')
      value++;
    size_t value_len = (size_t)(line + line_len - value);
    if (line_len == 0) {
      /* the blank line that ends the block */
    } else if (name_len == 0) {
      snprintf(b->comment, sizeof b->comment, "%.*s", (int)value_len, value);
    } else if (name_len == 5 && !memcmp(line, "event", 5)) {
      snprintf(b->event, sizeof b->event, "%.*s", (int)value_len, value);
    } else if (name_len == 2 && !memcmp(line, "id", 2)) {
      char text_id[32];
      snprintf(text_id, sizeof text_id, "%.*s", (int)value_len, value);
      char *stop;
      b->id = strtoll(text_id, &stop, 10);
      if (!value_len || *stop)
        fail_msg("an id that is not a revision: '%s'", text_id);
      b->has_id = true;
    } else if (name_len == 5 && !memcmp(line, "retry", 5)) {
      b->has_retry = true;
      b->retry = strtoll(value, NULL, 10);
    } else if (name_len == 4 && !memcmp(line, "data", 4)) {
      b->data = realloc(b->data, data_len + value_len + 2);
      assert_non_null(b->data);
      if (data_len)
        b->data[data_len++] = '\n';
      memcpy(b->data + data_len, value, value_len);
      data_len += value_len;
      b->data[data_len] = '\0';
    } else {
      fail_msg("unknown field in block: %.*s", (int)len, text);
    }
    line = end + 1;
  }
}

static void sse_append(struct sse *s, const char *data, size_t len) {
  assert_true(s->len + len <= STREAM_BUFFER_MAX);
  s->buf = realloc(s->buf, s->len + len + 1);
  assert_non_null(s->buf);
  memcpy(s->buf + s->len, data, len);
  s->len += len;
  s->buf[s->len] = '\0';
}

/* Reads what the socket has within `deadline`; false on timeout. */
static bool sse_fill(struct sse *s, uint64_t deadline) {
  int left = (int)(deadline - fwt_now_ms());
  if (deadline <= fwt_now_ms())
    return false;
  struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
  int ready = poll(&pfd, 1, left);
  if (ready < 0 && errno == EINTR)
    return true;
  if (ready <= 0)
    return false;
  char chunk[65536];
  ssize_t got = recv(s->fd, chunk, sizeof chunk, 0);
  if (got < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (got <= 0) {
    s->closed = true;
    return true;
  }
  sse_append(s, chunk, (size_t)got);
  return true;
}

static void sse_consume(struct sse *s, size_t count) {
  memmove(s->buf, s->buf + count, s->len - count);
  s->len -= count;
  s->buf[s->len] = '\0';
}

/* Sends the request on `fd` and reads the answer's head; a refused stream's error body is
 * read too. Returns the status. */
static int sse_open_on(struct sse *s, int fd, const char *method, const char *target,
                       const char *key, const char *headers, const char *body) {
  memset(s, 0, sizeof *s);
  s->fd = fd;
  char auth[256] = "";
  if (key)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", key);
  fwt_sendf(fd, "%s %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n%s%s", method, target,
            auth, headers ? headers : "");
  if (body) {
    fwt_sendf(fd, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", strlen(body));
    fwt_send(fd, body, strlen(body));
  } else {
    fwt_sendf(fd, "\r\n");
  }
  uint64_t deadline = fwt_now_ms() + EVENT_WAIT_MS;
  char *end;
  while (!s->buf || !(end = strstr(s->buf, "\r\n\r\n"))) {
    if (s->closed || !sse_fill(s, deadline))
      fail_msg("%s %.200s: no response head", method, target);
  }
  size_t head_len = (size_t)(end - s->buf) + 4;
  assert_true(head_len < sizeof s->head);
  memcpy(s->head, s->buf, head_len);
  s->head[head_len] = '\0';
  sse_consume(s, head_len);
  if (sscanf(s->head, "HTTP/1.1 %d", &s->status) != 1)
    fail_msg("malformed status line: %s", s->head);
  if (s->status != 200) {
    const char *length = strcasestr(s->head, "\r\nContent-Length:");
    size_t want = length ? strtoul(length + 17, NULL, 10) : 0;
    while (s->len < want && !s->closed && sse_fill(s, deadline)) {
    }
    s->error_body = strndup(s->buf ? s->buf : "", s->len);
  }
  return s->status;
}

static int sse_open(struct sse *s, const char *method, const char *target, const char *key,
                    const char *headers, const char *body) {
  return sse_open_on(s, fwt_connect(server.port), method, target, key, headers, body);
}

static void sse_close(struct sse *s) {
  if (s->fd > 0)
    fwt_close(s->fd);
  free(s->buf);
  free(s->error_body);
  memset(s, 0, sizeof *s);
}

/* The value of a header of the stream's answer, or "" when absent. */
static const char *sse_header(const struct sse *s, const char *name, char *out, size_t len) {
  out[0] = '\0';
  char pattern[96];
  snprintf(pattern, sizeof pattern, "\r\n%s:", name);
  const char *at = strcasestr(s->head, pattern);
  if (at) {
    at += strlen(pattern);
    while (*at == ' ')
      at++;
    snprintf(out, len, "%.*s", (int)strcspn(at, "\r"), at);
  }
  return out;
}

/* The next block within `timeout_ms`. */
static enum sse_result sse_block(struct sse *s, int timeout_ms, struct sse_block *b) {
  uint64_t deadline = fwt_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *end = s->buf ? strstr(s->buf, "\n\n") : NULL;
    if (end) {
      size_t len = (size_t)(end - s->buf) + 2;
      parse_block(s->buf, len, b);
      sse_consume(s, len);
      return SSE_BLOCK;
    }
    if (s->closed)
      return SSE_CLOSED;
    if (!sse_fill(s, deadline))
      return SSE_TIMEOUT;
  }
}

/* The next block with an event or data within `timeout_ms`, counting the heartbeats
 * passed on the way. */
static enum sse_result sse_next(struct sse *s, int timeout_ms, struct sse_block *b) {
  uint64_t deadline = fwt_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int left = (int)(deadline - fwt_now_ms());
    enum sse_result r = sse_block(s, left > 0 ? left : 0, b);
    if (r != SSE_BLOCK || b->event[0] || b->data)
      return r;
    if (!strcmp(b->comment, "heartbeat")) {
      if (b->has_id)
        fail_msg("a heartbeat with an id: %s", b->raw);
      s->heartbeats++;
    }
    block_free(b);
  }
}

/* The next event, which must be `name` ("" for an unnamed one): its parsed data (caller
 * decrefs). The block goes to `out` when given (caller frees it). */
static json_t *expect_event(struct sse *s, const char *name, struct sse_block *out) {
  struct sse_block b;
  enum sse_result r = sse_next(s, EVENT_WAIT_MS, &b);
  if (r != SSE_BLOCK)
    fail_msg("expected event '%s', got %s", name,
             r == SSE_TIMEOUT ? "nothing in time" : "the end of the stream");
  if (strcmp(b.event, name) != 0)
    fail_msg("expected event '%s', got: %s", name, b.raw);
  if (!b.data)
    fail_msg("event '%s' without data", name);
  json_t *doc = parse_json(b.data, name);
  if (out)
    *out = b;
  else
    block_free(&b);
  return doc;
}

/* The next event, which must be `name` for `key` at revision `id` (data "rev" and the
 * block's id): its data (caller decrefs). */
static json_t *expect_change(struct sse *s, const char *name, const char *key, long long id) {
  struct sse_block b;
  json_t *doc = expect_event(s, name, &b);
  if (!b.has_id || b.id != id || number_of(doc, "rev") != id || strcmp(string_of(doc, "key"), key))
    fail_msg("expected %s of '%s' at %lld, got: %s", name, key, id, b.raw);
  block_free(&b);
  return doc;
}

/* Nothing but heartbeats for `ms`. */
static void expect_quiet(struct sse *s, int ms) {
  struct sse_block b;
  enum sse_result r = sse_next(s, ms, &b);
  if (r == SSE_BLOCK)
    fail_msg("expected nothing, got: %s", b.raw);
  if (r == SSE_CLOSED)
    fail_msg("the stream ended");
}

/* The stream says goodbye with `reason` and ends; its reconnect_after_ms is returned. */
static long long expect_goodbye(struct sse *s, const char *reason) {
  struct sse_block b;
  json_t *doc = expect_event(s, "goodbye", &b);
  if (b.has_id)
    fail_msg("a goodbye with an id: %s", b.raw);
  assert_string_equal(string_of(doc, "reason"), reason);
  long long after = number_of(doc, "reconnect_after_ms");
  assert_int_equal(json_object_size(doc), 2);
  json_decref(doc);
  block_free(&b);
  enum sse_result r = sse_next(s, EVENT_WAIT_MS, &b);
  if (r == SSE_BLOCK)
    fail_msg("an event after goodbye: %s", b.raw);
  if (r == SSE_TIMEOUT)
    fail_msg("the stream did not end after goodbye");
  return after;
}

/* Opens a stream that must be accepted: 200 with the headers of section 1, then the
 * `retry:` block. */
static void sse_start_on(struct sse *s, int fd, const char *method, const char *target,
                         const char *key, const char *headers, const char *body) {
  int status = sse_open_on(s, fd, method, target, key, headers, body);
  if (status != 200)
    fail_msg("%s %.200s: %d %s", method, target, status, s->error_body);
  char value[128];
  if (strncmp(sse_header(s, "Content-Type", value, sizeof value), "text/event-stream", 17))
    fail_msg("Content-Type: %s", value);
  assert_string_equal(sse_header(s, "Cache-Control", value, sizeof value), "no-cache");
  assert_string_equal(sse_header(s, "X-Accel-Buffering", value, sizeof value), "no");
  struct sse_block b;
  if (sse_block(s, EVENT_WAIT_MS, &b) != SSE_BLOCK)
    fail_msg("%.200s: no retry: block", target);
  if (!b.has_retry || b.event[0] || b.data || b.has_id)
    fail_msg("the stream does not open with retry: %s", b.raw);
  /* Jittered around a couple of seconds for a stream that starts normally. */
  assert_true(b.retry >= 1000 && b.retry <= 3000);
  block_free(&b);
}

static void sse_start(struct sse *s, const char *target, const char *key, const char *headers) {
  sse_start_on(s, fwt_connect(server.port), "GET", target, key, headers, NULL);
}

/* A stream with the server key from its snapshot on, which must be at `revision`. */
static void start_at_snapshot(struct sse *s, const char *target, const char *key,
                              long long revision) {
  sse_start(s, target, key, NULL);
  struct sse_block b;
  json_t *snapshot = expect_event(s, "snapshot", &b);
  if (!b.has_id || b.id != revision || number_of(snapshot, "revision") != revision)
    fail_msg("expected a snapshot at %lld, got: %.300s", revision, b.raw);
  json_decref(snapshot);
  block_free(&b);
}

/* The keys of a snapshot's array of objects, comma-separated. */
static void keys_of(json_t *items, char *out, size_t len) {
  out[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < json_array_size(items); i++)
    used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "," : "",
                             string_of(json_array_get(items, i), "key"));
}

/* ---- 1. server keys: definitions ---- */

static void server_key_stream_carries_definitions(void **state) {
  (void)state;
  boot(NULL);
  json_decref(call("POST", PROJECT_PATH "/segments", "{\"key\":\"staff\"}", 201));
  create_flag("{\"key\":\"checkout\"}");
  put_config("limits", "{\"max\": 10.50}");
  long long revision = env_revision();
  char epoch[64];
  env_epoch(epoch, sizeof epoch);

  struct sse s;
  sse_start(&s, "/v1/stream", server_key, NULL);
  struct sse_block b;
  json_t *snapshot = expect_event(&s, "snapshot", &b);
  assert_true(b.has_id);
  assert_int_equal(b.id, revision);
  assert_string_equal(string_of(snapshot, "environment"), "prod");
  assert_string_equal(string_of(snapshot, "epoch"), epoch);
  assert_int_equal(number_of(snapshot, "revision"), revision);
  char keys[256];
  keys_of(json_object_get(snapshot, "flags"), keys, sizeof keys);
  assert_string_equal(keys, "checkout");
  assert_true(json_is_false(
      json_object_get(json_array_get(json_object_get(snapshot, "flags"), 0), "enabled")));
  keys_of(json_object_get(snapshot, "segments"), keys, sizeof keys);
  assert_string_equal(keys, "staff");
  keys_of(json_object_get(snapshot, "configs"), keys, sizeof keys);
  assert_string_equal(keys, "limits");
  /* Values are the bytes they were stored with. */
  assert_non_null(strstr(b.data, "\"value\":{\"max\": 10.50}"));
  json_decref(snapshot);
  block_free(&b);

  long long rev = toggle("checkout");
  json_t *doc = expect_change(&s, "flag_updated", "checkout", rev);
  assert_int_equal(json_object_size(doc), 3);
  json_t *flag = json_object_get(doc, "flag");
  assert_string_equal(string_of(flag, "key"), "checkout");
  assert_string_equal(string_of(flag, "environment"), "prod");
  assert_true(json_is_true(json_object_get(flag, "enabled")));
  assert_int_equal(number_of(flag, "revision"), rev);
  json_decref(doc);

  rev = create_flag("{\"key\":\"search\",\"tags\":[\"web\"]}");
  doc = expect_change(&s, "flag_created", "search", rev);
  assert_true(json_is_false(json_object_get(json_object_get(doc, "flag"), "enabled")));
  json_decref(doc);
  rev = delete_flag("search");
  doc = expect_change(&s, "flag_deleted", "search", rev);
  assert_int_equal(json_object_size(doc), 2);
  json_decref(doc);

  rev = put_config("prices", "{\"eur\":19.99}");
  doc = expect_event(&s, "config_updated", &b);
  assert_int_equal(b.id, rev);
  assert_non_null(
      strstr(b.data, ",\"value\":{\"eur\":19.99},\"content_type\":\"application/json\"}"));
  assert_string_equal(string_of(doc, "key"), "prices");
  block_free(&b);
  json_decref(doc);
  rev = delete_config("prices");
  doc = expect_change(&s, "config_deleted", "prices", rev);
  assert_int_equal(json_object_size(doc), 2);
  json_decref(doc);

  rev = answered_revision("PUT", ENV_PATH "/segments/staff",
                          "{\"rules\":[{\"conditions\":[{\"attribute\":\"email\",\"operator\":"
                          "\"ends_with\",\"value\":\"@shop.example\"}]}]}");
  doc = expect_change(&s, "segment_updated", "staff", rev);
  assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "segment"), "rules")), 1);
  json_decref(doc);
  expect_quiet(&s, QUIET_MS);
  sse_close(&s);
}

/* A revision that changes nothing a stream carries (renaming the environment) is no
 * event of the table in section 3: it must not reach streams as a segment. */
static void an_environment_rename_is_not_a_segment(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"checkout\"}");
  struct sse s;
  start_at_snapshot(&s, "/v1/stream", server_key, env_revision());
  json_decref(call("PATCH", ENV_PATH, "{\"name\":\"Production\"}", 200));
  long long rev = toggle("checkout");
  json_decref(expect_change(&s, "flag_updated", "checkout", rev));
  sse_close(&s);
}

/* ---- 2. client keys: values ---- */

static void client_key_stream_carries_values(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"dark-mode\",\"client_visible\":true}");
  patch_state("dark-mode", "{\"enabled\":true}");
  create_flag("{\"key\":\"secret\"}");
  put_config("limits", "{\"max\": 10.50}");
  long long revision = env_revision();

  char target[256];
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  struct sse s;
  sse_start(&s, target, NULL, NULL);
  struct sse_block b;
  json_t *snapshot = expect_event(&s, "snapshot", &b);
  assert_int_equal(b.id, revision);
  assert_int_equal(number_of(snapshot, "revision"), revision);
  json_t *flags = json_object_get(snapshot, "flags");
  assert_true(json_is_object(flags));
  assert_int_equal(json_object_size(flags), 1);
  json_t *dark = json_object_get(flags, "dark-mode");
  assert_true(json_is_true(json_object_get(dark, "value")));
  assert_string_equal(string_of(dark, "variant"), "on");
  assert_string_equal(string_of(dark, "reason"), "STATIC");
  assert_non_null(strstr(
      b.data, "\"configs\":{\"limits\":{\"value\":{\"max\": 10.50},\"content_type\":\"application/"
              "json\"}}"));
  json_decref(snapshot);
  block_free(&b);

  long long rev = toggle("dark-mode");
  json_t *doc = expect_change(&s, "flag_updated", "dark-mode", rev);
  assert_true(json_is_false(json_object_get(doc, "value")));
  assert_string_equal(string_of(doc, "variant"), "off");
  assert_string_equal(string_of(doc, "reason"), "DISABLED");
  assert_null(json_object_get(doc, "flag"));
  json_decref(doc);

  /* A server-only flag never shows: the next event is the next visible change. */
  toggle("secret");
  rev = toggle("dark-mode");
  json_decref(expect_change(&s, "flag_updated", "dark-mode", rev));

  rev = patch_flag("secret", "{\"client_visible\":true}");
  doc = expect_change(&s, "flag_created", "secret", rev);
  assert_true(json_is_true(json_object_get(doc, "value")));
  assert_string_equal(string_of(doc, "variant"), "on");
  assert_string_equal(string_of(doc, "reason"), "STATIC");
  json_decref(doc);
  rev = patch_flag("secret", "{\"client_visible\":false}");
  doc = expect_change(&s, "flag_deleted", "secret", rev);
  assert_int_equal(json_object_size(doc), 2);
  json_decref(doc);

  rev = put_config("limits", "{\"max\": 12.50}");
  doc = expect_event(&s, "config_updated", &b);
  assert_int_equal(b.id, rev);
  assert_non_null(strstr(b.data, "\"value\":{\"max\": 12.50}"));
  block_free(&b);
  json_decref(doc);
  expect_quiet(&s, QUIET_MS);
  sse_close(&s);

  /* The client key also works in the header. */
  start_at_snapshot(&s, "/v1/stream", client_key, rev);
  sse_close(&s);
}

/* ---- 3. contexts ---- */

static void context_url(const char *context, char *out, size_t len) {
  char encoded[8192];
  base64url(context, strlen(context), false, encoded, sizeof encoded);
  checked_format(out, len, "/v1/stream?key=%s&context=%s", client_key, encoded);
}

static void expect_evaluation(json_t *doc, const char *value_json, const char *variant,
                              const char *reason) {
  json_error_t error;
  json_t *expected = json_loads(value_json, JSON_DECODE_ANY, &error);
  assert_non_null(expected);
  if (!json_equal(json_object_get(doc, "value"), expected))
    fail_msg("expected value %s", value_json);
  json_decref(expected);
  assert_string_equal(string_of(doc, "variant"), variant);
  assert_string_equal(string_of(doc, "reason"), reason);
}

static void context_streams_get_only_their_changes(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"beta\",\"client_visible\":true}");
  patch_state("beta", "{\"enabled\":true,\"on_variant\":\"off\",\"rules\":[{\"conditions\":[{"
                      "\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":\"pro\"}],"
                      "\"variant\":\"on\"}]}");
  create_flag("{\"key\":\"other\",\"client_visible\":true}");
  long long revision = env_revision();

  /* The free plan's context in the URL, the pro plan's in a POST body. */
  char target[1024];
  context_url("{\"targetingKey\":\"user-2\",\"plan\":\"free\"}", target, sizeof target);
  struct sse free_plan, pro_plan;
  sse_start(&free_plan, target, NULL, NULL);
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  sse_start_on(&pro_plan, fwt_connect(server.port), "POST", target, NULL, NULL,
               "{\"context\":{\"targetingKey\":\"user-1\",\"plan\":\"pro\"}}");

  struct sse_block b;
  json_t *snapshot = expect_event(&free_plan, "snapshot", &b);
  assert_int_equal(b.id, revision);
  expect_evaluation(json_object_get(json_object_get(snapshot, "flags"), "beta"), "false", "off",
                    "DEFAULT");
  json_decref(snapshot);
  block_free(&b);
  snapshot = expect_event(&pro_plan, "snapshot", &b);
  assert_int_equal(b.id, revision);
  expect_evaluation(json_object_get(json_object_get(snapshot, "flags"), "beta"), "true", "on",
                    "TARGETING_MATCH");
  json_decref(snapshot);
  block_free(&b);

  /* A rule for the free plan changes the free context's value only. */
  long long rev = patch_state(
      "beta", "{\"rules\":[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\","
              "\"value\":\"pro\"}],\"variant\":\"on\"},{\"conditions\":[{\"attribute\":\"plan\","
              "\"operator\":\"equals\",\"value\":\"free\"}],\"variant\":\"on\"}]}");
  json_t *doc = expect_change(&free_plan, "flag_updated", "beta", rev);
  expect_evaluation(doc, "true", "on", "TARGETING_MATCH");
  json_decref(doc);
  /* The pro stream's next event is the next change both see. */
  long long other = toggle("other");
  json_decref(expect_change(&pro_plan, "flag_updated", "other", other));
  json_decref(expect_change(&free_plan, "flag_updated", "other", other));

  /* And the other way round. */
  rev = patch_state("beta", "{\"rules\":[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":"
                            "\"equals\",\"value\":\"free\"}],\"variant\":\"on\"}]}");
  doc = expect_change(&pro_plan, "flag_updated", "beta", rev);
  expect_evaluation(doc, "false", "off", "DEFAULT");
  json_decref(doc);
  other = toggle("other");
  json_decref(expect_change(&free_plan, "flag_updated", "other", other));
  json_decref(expect_change(&pro_plan, "flag_updated", "other", other));
  sse_close(&free_plan);
  sse_close(&pro_plan);
}

/* JSON of exactly `len` bytes: {"targetingKey":"u","pad":"xxx..."} */
static char *context_of_length(size_t len) {
  const char *head = "{\"targetingKey\":\"u\",\"pad\":\"";
  assert_true(len > strlen(head) + 2);
  char *text = malloc(len + 1);
  assert_non_null(text);
  memset(text, 'x', len);
  memcpy(text, head, strlen(head));
  memcpy(text + len - 2, "\"}", 2);
  text[len] = '\0';
  return text;
}

static void bad_contexts_are_refused(void **state) {
  (void)state;
  boot(NULL);
  char encoded[16384], target[16384];
  /* 4 KiB decoded is the cap, padded or not. */
  char *context = context_of_length(4096);
  base64url(context, strlen(context), true, encoded, sizeof encoded);
  checked_format(target, sizeof target, "/v1/stream?key=%s&context=%s", client_key, encoded);
  struct sse s;
  sse_start(&s, target, NULL, NULL);
  json_decref(expect_event(&s, "snapshot", NULL));
  sse_close(&s);
  free(context);

  size_t past_cap[] = {4097, 4098, 6000};
  for (size_t i = 0; i < sizeof past_cap / sizeof past_cap[0]; i++) {
    context = context_of_length(past_cap[i]);
    base64url(context, strlen(context), false, encoded, sizeof encoded);
    checked_format(target, sizeof target, "/v1/stream?key=%s&context=%s", client_key, encoded);
    expect_error("GET", target, NULL, NULL, NULL, 413, "context_too_large");
    free(context);
  }

  checked_format(target, sizeof target, "/v1/stream?key=%s&context=a!b!", client_key);
  expect_error("GET", target, NULL, NULL, NULL, 400, "invalid_context");
  checked_format(target, sizeof target, "/v1/stream?key=%s&context=e30*", client_key);
  expect_error("GET", target, NULL, NULL, NULL, 400, "invalid_context");
  base64url("[1]", 3, false, encoded, sizeof encoded);
  checked_format(target, sizeof target, "/v1/stream?key=%s&context=%s", client_key, encoded);
  expect_error("GET", target, NULL, NULL, NULL, 400, "invalid_context");
  base64url("{\"targetingKey\":7}", 18, false, encoded, sizeof encoded);
  checked_format(target, sizeof target, "/v1/stream?key=%s&context=%s", client_key, encoded);
  expect_error("GET", target, NULL, NULL, NULL, 400, "invalid_context");
  /* A server key's stream carries definitions, which no context changes. */
  base64url("{\"plan\":\"pro\"}", 14, false, encoded, sizeof encoded);
  checked_format(target, sizeof target, "/v1/stream?context=%s", encoded);
  expect_error("GET", target, server_key, NULL, NULL, 400, "invalid_context");
  expect_error("POST", "/v1/stream", server_key, NULL, "{\"context\":{\"plan\":\"pro\"}}", 400,
               "invalid_context");
  expect_error("POST", "/v1/stream", client_key, NULL, "{\"context\":", 400, "malformed_json");
  expect_error("POST", "/v1/stream", client_key, NULL, "{\"context\":\"pro\"}", 400,
               "invalid_context");
}

/* ---- 4. filters ---- */

static void filters_select_flags_tags_and_configs(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"a\"}");
  create_flag("{\"key\":\"b\"}");
  create_flag("{\"key\":\"c\"}");
  create_flag("{\"key\":\"tagged\",\"tags\":[\"t\",\"u\"]}");
  create_flag("{\"key\":\"plain\"}");
  put_config("c1", "1");
  put_config("c2", "2");
  long long revision = env_revision();

  struct sse by_flags, by_tags, by_config, all_configs;
  struct {
    struct sse *s;
    const char *target;
    const char *flags, *configs;
  } streams[] = {
      {&by_flags, "/v1/stream?flags=a,b", "a,b", ""},
      {&by_tags, "/v1/stream?tags=t", "tagged", ""},
      {&by_config, "/v1/stream?configs=c1", "", "c1"},
      {&all_configs, "/v1/stream?configs=*", "", "c1,c2"},
  };
  for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
    sse_start(streams[i].s, streams[i].target, server_key, NULL);
    struct sse_block b;
    json_t *snapshot = expect_event(streams[i].s, "snapshot", &b);
    assert_int_equal(b.id, revision);
    char keys[256];
    keys_of(json_object_get(snapshot, "flags"), keys, sizeof keys);
    if (strcmp(keys, streams[i].flags))
      fail_msg("%s: snapshot flags %s", streams[i].target, keys);
    keys_of(json_object_get(snapshot, "configs"), keys, sizeof keys);
    if (strcmp(keys, streams[i].configs))
      fail_msg("%s: snapshot configs %s", streams[i].target, keys);
    json_decref(snapshot);
    block_free(&b);
  }

  toggle("c");
  long long a = toggle("a");
  long long c2 = put_config("c2", "22");
  long long c1 = put_config("c1", "11");
  long long b = toggle("b");
  long long gains = patch_flag("plain", "{\"tags\":[\"t\"]}");
  long long tagged = toggle("tagged");
  long long loses = patch_flag("plain", "{\"tags\":[\"v\"]}");
  patch_flag("plain", "{\"description\":\"not selected either way\"}");
  /* One last change each stream selects: whatever it was sent in between shows before. */
  long long last_a = toggle("a"), last_tagged = toggle("tagged"), last_c1 = put_config("c1", "3");

  json_decref(expect_change(&by_flags, "flag_updated", "a", a));
  json_decref(expect_change(&by_flags, "flag_updated", "b", b));
  json_decref(expect_change(&by_flags, "flag_updated", "a", last_a));

  json_t *doc = expect_change(&by_tags, "flag_created", "plain", gains);
  assert_string_equal(string_of(json_object_get(doc, "flag"), "key"), "plain");
  json_decref(doc);
  json_decref(expect_change(&by_tags, "flag_updated", "tagged", tagged));
  doc = expect_change(&by_tags, "flag_deleted", "plain", loses);
  assert_int_equal(json_object_size(doc), 2);
  json_decref(doc);
  json_decref(expect_change(&by_tags, "flag_updated", "tagged", last_tagged));

  json_decref(expect_change(&by_config, "config_updated", "c1", c1));
  json_decref(expect_change(&by_config, "config_updated", "c1", last_c1));
  json_decref(expect_change(&all_configs, "config_updated", "c2", c2));
  json_decref(expect_change(&all_configs, "config_updated", "c1", c1));
  json_decref(expect_change(&all_configs, "config_updated", "c1", last_c1));
  for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
    sse_close(streams[i].s);

  const char *bad[] = {"/v1/stream?flags=bad%20key!", "/v1/stream?flags=a,,b",
                       "/v1/stream?tags=", "/v1/stream?configs=c1,*"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_error("GET", bad[i], server_key, NULL, NULL, 400, "invalid_filter");
}

/* A client key's stream filtered by tag: values enter and leave with the tag. */
static void filters_apply_to_values_too(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"shown\",\"client_visible\":true,\"tags\":[\"web\"]}");
  create_flag("{\"key\":\"later\",\"client_visible\":true}");
  char target[256];
  snprintf(target, sizeof target, "/v1/stream?key=%s&tags=web", client_key);
  struct sse s;
  sse_start(&s, target, NULL, NULL);
  json_t *snapshot = expect_event(&s, "snapshot", NULL);
  assert_int_equal(json_object_size(json_object_get(snapshot, "flags")), 1);
  assert_non_null(json_object_get(json_object_get(snapshot, "flags"), "shown"));
  assert_int_equal(json_object_size(json_object_get(snapshot, "configs")), 0);
  json_decref(snapshot);
  toggle("later");
  long long gains = patch_flag("later", "{\"tags\":[\"web\"]}");
  json_t *doc = expect_change(&s, "flag_created", "later", gains);
  expect_evaluation(doc, "true", "on", "STATIC");
  json_decref(doc);
  long long loses = patch_flag("later", "{\"tags\":[]}");
  json_decref(expect_change(&s, "flag_deleted", "later", loses));
  put_config("ignored", "1");
  long long rev = toggle("shown");
  json_decref(expect_change(&s, "flag_updated", "shown", rev));
  sse_close(&s);
}

/* ---- 5. keys ---- */

static void streams_need_the_right_key(void **state) {
  (void)state;
  boot(NULL);
  char target[256];
  expect_error("GET", "/v1/stream", NULL, NULL, NULL, 401, "unauthorized");
  expect_error("GET", "/v1/stream", "fw_srv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
               NULL, 401, "unauthorized");
  expect_error("GET", "/v1/stream?key=fw_cli_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
               NULL, NULL, 401, "unauthorized");
  snprintf(target, sizeof target, "/v1/stream?key=%s", server_key);
  expect_error("GET", target, NULL, NULL, NULL, 401, "key_in_url");
  expect_error("GET", "/v1/stream?key=" TOKEN, NULL, NULL, NULL, 401, "key_in_url");
  expect_error("GET", "/v1/stream", TOKEN, NULL, NULL, 403, "forbidden");
}

/* The id of the environment's valid key of `kind`. */
static void valid_key_id(const char *kind, char *out, size_t len) {
  json_t *doc = call("GET", ENV_PATH "/keys", NULL, 200);
  json_t *items = json_object_get(doc, "items");
  out[0] = '\0';
  for (size_t i = 0; i < json_array_size(items); i++) {
    json_t *item = json_array_get(items, i);
    if (!strcmp(string_of(item, "kind"), kind) && json_is_null(json_object_get(item, "expires_at")))
      snprintf(out, len, "%s", string_of(item, "id"));
  }
  json_decref(doc);
  assert_true(out[0] != '\0');
}

static void rotating_or_revoking_a_key_ends_its_streams(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  char target[256];
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  struct sse by_client, by_server;
  sse_start(&by_client, target, NULL, NULL);
  json_decref(expect_event(&by_client, "snapshot", NULL));
  start_at_snapshot(&by_server, "/v1/stream", server_key, env_revision());

  /* A rotation that ends the old key at once. */
  json_t *doc =
      call("POST", ENV_PATH "/keys", "{\"kind\":\"client\",\"expires_in_seconds\":0}", 201);
  char new_key[128];
  snprintf(new_key, sizeof new_key, "%s", string_of(doc, "key"));
  json_decref(doc);
  assert_int_equal(expect_goodbye(&by_client, "key_expired"), 0);
  sse_close(&by_client);
  expect_error("GET", target, NULL, NULL, NULL, 401, "unauthorized");

  /* A revocation. */
  snprintf(target, sizeof target, "/v1/stream?key=%s", new_key);
  sse_start(&by_client, target, NULL, NULL);
  json_decref(expect_event(&by_client, "snapshot", NULL));
  char id[32], path[256];
  valid_key_id("client", id, sizeof id);
  snprintf(path, sizeof path, ENV_PATH "/keys/%s", id);
  json_decref(call("DELETE", path, NULL, 204));
  assert_int_equal(expect_goodbye(&by_client, "key_expired"), 0);
  sse_close(&by_client);

  /* The server key's stream was not concerned. */
  long long rev = toggle("checkout");
  json_decref(expect_change(&by_server, "flag_updated", "checkout", rev));
  sse_close(&by_server);
  assert_int_equal(metric("flagwire_stream_closes_total{reason=\"key_expired\"}"), 2);
}

/* A rotation with a grace period ends the old key's streams when the grace ends. */
static void a_key_that_expires_later_ends_its_stream_then(void **state) {
  (void)state;
  const char *args[] = {"--heartbeat", "1s", NULL};
  boot(args);
  char target[256];
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  struct sse s;
  sse_start(&s, target, NULL, NULL);
  json_decref(expect_event(&s, "snapshot", NULL));
  json_decref(
      call("POST", ENV_PATH "/keys", "{\"kind\":\"client\",\"expires_in_seconds\":1}", 201));
  uint64_t rotated = fwt_now_ms();
  expect_quiet(&s, 500);
  assert_int_equal(expect_goodbye(&s, "key_expired"), 0);
  /* The key ends within a second; the stream is told at its next turn. */
  assert_true(fwt_now_ms() - rotated < 3000);
  sse_close(&s);
}

/* ---- 6. resuming ---- */

static void a_current_cursor_gets_nothing_until_the_next_change(void **state) {
  (void)state;
  const char *args[] = {"--heartbeat", "1s", NULL};
  boot(args);
  create_flag("{\"key\":\"checkout\"}");
  long long revision = env_revision();
  char header[64];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", revision);
  struct sse s, query;
  sse_start(&s, "/v1/stream", server_key, header);
  /* The header wins over the query parameter. */
  sse_start(&query, "/v1/stream?lastEventId=0", server_key, header);
  expect_quiet(&s, 1600);
  assert_true(s.heartbeats >= 1);
  expect_quiet(&query, 100);
  long long rev = toggle("checkout");
  json_decref(expect_change(&s, "flag_updated", "checkout", rev));
  json_decref(expect_change(&query, "flag_updated", "checkout", rev));
  sse_close(&s);
  sse_close(&query);
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"none\"}"), 2);
}

/* Makes eight changes of every kind and returns the live stream's blocks for them. */
static void eight_changes(struct sse *live, struct sse_block blocks[8], long long first) {
  long long revs[8];
  revs[0] = toggle("f1");
  revs[1] = put_config("c", "{\"v\":1.10}");
  revs[2] = toggle("f1");
  revs[3] = toggle("f2");
  revs[4] = create_flag("{\"key\":\"f3\"}");
  revs[5] = delete_flag("f3");
  revs[6] = put_config("c", "{\"v\":2.20}");
  revs[7] = delete_config("c");
  for (int i = 0; i < 8; i++) {
    assert_int_equal(revs[i], first + i);
    struct sse_block b;
    if (sse_next(live, EVENT_WAIT_MS, &b) != SSE_BLOCK)
      fail_msg("the live stream missed revision %lld", revs[i]);
    if (!b.has_id || b.id != revs[i])
      fail_msg("expected revision %lld, got: %s", revs[i], b.raw);
    blocks[i] = b;
  }
}

/* Reads blocks that must equal blocks[from..8) byte for byte. */
static void expect_replay(struct sse *s, struct sse_block blocks[8], int from) {
  for (int i = from; i < 8; i++) {
    struct sse_block b;
    if (sse_next(s, EVENT_WAIT_MS, &b) != SSE_BLOCK)
      fail_msg("revision %lld was not replayed", blocks[i].id);
    if (strcmp(b.raw, blocks[i].raw))
      fail_msg("replayed:\n%s\nlive:\n%s", b.raw, blocks[i].raw);
    block_free(&b);
  }
}

static void a_cursor_in_the_ring_is_replayed_exactly(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"f1\"}");
  create_flag("{\"key\":\"f2\"}");
  long long cursor = env_revision();
  struct sse live;
  start_at_snapshot(&live, "/v1/stream", server_key, cursor);
  struct sse_block blocks[8];
  eight_changes(&live, blocks, cursor + 1);

  char header[64], epoch[64], target[256];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", cursor + 2);
  env_epoch(epoch, sizeof epoch);
  snprintf(target, sizeof target, "/v1/stream?epoch=%s", epoch);
  struct sse by_header, by_query;
  sse_start(&by_header, target, server_key, header);
  expect_replay(&by_header, blocks, 2);
  snprintf(target, sizeof target, "/v1/stream?lastEventId=%lld", cursor + 5);
  sse_start(&by_query, target, server_key, NULL);
  expect_replay(&by_query, blocks, 5);

  /* Nothing twice: the next event of each is the next change. */
  long long rev = toggle("f2");
  json_decref(expect_change(&live, "flag_updated", "f2", rev));
  json_decref(expect_change(&by_header, "flag_updated", "f2", rev));
  json_decref(expect_change(&by_query, "flag_updated", "f2", rev));
  for (int i = 0; i < 8; i++)
    block_free(&blocks[i]);
  sse_close(&live);
  sse_close(&by_header);
  sse_close(&by_query);
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"replay\"}"), 2);
}

static void the_ring_survives_a_restart(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"f1\"}");
  create_flag("{\"key\":\"f2\"}");
  long long cursor = env_revision();
  struct sse live;
  start_at_snapshot(&live, "/v1/stream", server_key, cursor);
  struct sse_block blocks[8];
  eight_changes(&live, blocks, cursor + 1);
  sse_close(&live);

  restart(NULL);
  char header[64];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", cursor);
  struct sse s;
  sse_start(&s, "/v1/stream", server_key, header);
  expect_replay(&s, blocks, 0);
  long long rev = toggle("f2");
  assert_int_equal(rev, cursor + 9);
  json_decref(expect_change(&s, "flag_updated", "f2", rev));
  for (int i = 0; i < 8; i++)
    block_free(&blocks[i]);
  sse_close(&s);
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"replay\"}"), 1);
}

/* A JSON string of `len` characters, distinct per `seed`, as a config body. */
static char *large_value(size_t len, char seed) {
  char *text = malloc(len + 3);
  assert_non_null(text);
  text[0] = '"';
  memset(text + 1, seed, len);
  text[len + 1] = '"';
  text[len + 2] = '\0';
  return text;
}

static void an_old_cursor_catches_up_key_by_key(void **state) {
  (void)state;
  const char *args[] = {"--replay-bytes", "4096", NULL};
  boot(args);
  create_flag("{\"key\":\"f1\",\"client_visible\":true}");
  create_flag("{\"key\":\"f2\",\"client_visible\":true}");
  create_flag("{\"key\":\"f3\"}");
  put_config("big1", "0");
  long long cursor = env_revision();

  long long f1_first = toggle("f1");
  char *value = large_value(2000, 'a');
  long long big1 = put_config("big1", value);
  free(value);
  long long f1 = toggle("f1");
  long long f2 = delete_flag("f2");
  put_config("gone", "1");
  long long gone = delete_config("gone");
  long long big2 = 0;
  for (char seed = 'b'; seed <= 'd'; seed++) {
    value = large_value(2000, seed);
    big2 = put_config("big2", value);
    free(value);
  }
  assert_true(f1 > f1_first);

  char header[64];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", cursor);
  struct sse s;
  sse_start(&s, "/v1/stream", server_key, header);
  struct sse_block b;
  json_t *doc = expect_change(&s, "config_updated", "big1", big1);
  json_decref(doc);
  doc = expect_change(&s, "flag_updated", "f1", f1);
  /* Toggled twice: off again, as it is now. */
  assert_true(json_is_false(json_object_get(json_object_get(doc, "flag"), "enabled")));
  json_decref(doc);
  json_decref(expect_change(&s, "flag_deleted", "f2", f2));
  json_decref(expect_change(&s, "config_deleted", "gone", gone));
  doc = expect_event(&s, "config_updated", &b);
  assert_int_equal(b.id, big2);
  assert_non_null(strstr(b.data, "\"value\":\"ddd"));
  block_free(&b);
  json_decref(doc);
  long long rev = toggle("f3");
  json_decref(expect_change(&s, "flag_updated", "f3", rev));
  sse_close(&s);
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"catch_up\"}"), 1);
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"replay\"}"), 0);

  /* A client key catches up with values. */
  char target[256];
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  sse_start(&s, target, NULL, header);
  json_decref(expect_change(&s, "config_updated", "big1", big1));
  doc = expect_change(&s, "flag_updated", "f1", f1);
  expect_evaluation(doc, "false", "off", "DISABLED");
  json_decref(doc);
  json_decref(expect_change(&s, "flag_deleted", "f2", f2));
  json_decref(expect_change(&s, "config_deleted", "gone", gone));
  json_decref(expect_change(&s, "config_updated", "big2", big2));
  /* f3, toggled after the cursor, is server-only: a client key is not told it exists. */
  expect_quiet(&s, QUIET_MS);
  sse_close(&s);
}

/* A client key resuming from a cursor hears of every flag that left its sight after it:
 * hidden from client keys, or hidden and then deleted. It never hears of a flag it could
 * not see. The same holds after a restart, from what the change log recorded. */
static void flags_leaving_a_client_keys_sight_are_deleted_for_it(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"hidden\",\"client_visible\":true}");
  create_flag("{\"key\":\"removed\",\"client_visible\":true}");
  create_flag("{\"key\":\"secret\"}");
  long long cursor = env_revision();
  long long hidden = patch_flag("hidden", "{\"client_visible\":false}");
  patch_flag("removed", "{\"client_visible\":false}");
  long long removed = delete_flag("removed");
  toggle("secret");
  patch_flag("secret", "{\"description\":\"still server-only\"}");

  char target[256], header[64];
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", cursor);
  for (int run = 0; run < 2; run++) {
    struct sse s;
    sse_start(&s, target, NULL, header);
    json_decref(expect_change(&s, "flag_deleted", "hidden", hidden));
    json_decref(expect_change(&s, "flag_deleted", "removed", removed));
    expect_quiet(&s, QUIET_MS);
    sse_close(&s);
    if (run == 0)
      restart(NULL);
  }
}

static void unusable_cursors_get_a_snapshot_or_an_error(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"f1\"}");
  long long revision = toggle("f1");
  char header[64], target[256], epoch[64];
  env_epoch(epoch, sizeof epoch);
  struct sse s;

  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", revision + 100);
  sse_start(&s, "/v1/stream", server_key, header);
  json_decref(expect_event(&s, "snapshot", NULL));
  sse_close(&s);

  /* Another epoch: its revisions say nothing about this one's. */
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", revision - 1);
  const char *other = strcmp(epoch, "0123456789abcdef") ? "0123456789abcdef" : "fedcba9876543210";
  snprintf(target, sizeof target, "/v1/stream?epoch=%s", other);
  start_at_snapshot(&s, target, server_key, revision);
  sse_close(&s);
  /* The same cursor in the right epoch is replayed. */
  snprintf(target, sizeof target, "/v1/stream?epoch=%s", epoch);
  sse_start(&s, target, server_key, header);
  json_decref(expect_change(&s, "flag_updated", "f1", revision));
  sse_close(&s);

  expect_error("GET", "/v1/stream", server_key, "Last-Event-ID: abc\r\n", NULL, 400,
               "invalid_cursor");
  expect_error("GET", "/v1/stream?lastEventId=-1", server_key, NULL, NULL, 400, "invalid_cursor");
  expect_error("GET", "/v1/stream?lastEventId=99999999999999999999", server_key, NULL, NULL, 400,
               "invalid_cursor");
  expect_error("GET", "/v1/stream?epoch=XYZ", server_key, "Last-Event-ID: 1\r\n", NULL, 400,
               "invalid_cursor");
  assert_int_equal(metric("flagwire_stream_resumes_total{outcome=\"snapshot\"}"), 2);
}

/* ---- 7. a client cut off while changes keep coming ---- */

#define CUT_OFF_CHANGES 200
#define CUT_OFF_FLAGS 4
#define CUT_OFF_CONFIGS 2

/* Runs on its own thread, so it uses plain sockets and no assertions: it reports. */
struct writer {
  uint16_t port;
  atomic_bool done;
  atomic_llong last_revision;
  char error[256];
};
static struct writer writer;

/* One admin request with Connection: close; the status, with the body in `body`. -1
 * when the exchange failed. */
static int quiet_request(uint16_t port, const char *method, const char *path, const char *payload,
                         char *body, size_t body_len) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval timeout = {.tv_sec = FWT_WAIT_MS / 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  char request[1024];
  int len = snprintf(request, sizeof request,
                     "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, payload ? strlen(payload) : 0, payload ? payload : "");
  char answer[8192];
  size_t got = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || len <= 0 ||
      (size_t)len >= sizeof request || send(fd, request, (size_t)len, MSG_NOSIGNAL) != len) {
    close(fd);
    return -1;
  }
  ssize_t n;
  while (got < sizeof answer - 1 && (n = recv(fd, answer + got, sizeof answer - 1 - got, 0)) > 0)
    got += (size_t)n;
  close(fd);
  answer[got] = '\0';
  int status;
  const char *start = strstr(answer, "\r\n\r\n");
  if (!start || sscanf(answer, "HTTP/1.1 %d", &status) != 1)
    return -1;
  snprintf(body, body_len, "%s", start + 4);
  return status;
}

static void *write_changes(void *arg) {
  struct writer *w = arg;
  long long previous = 0;
  for (int i = 0; i < CUT_OFF_CHANGES; i++) {
    char path[256], payload[64], body[8192];
    int status;
    if (i % 3 == 2) {
      snprintf(path, sizeof path, ENV_PATH "/configs/c%d", i % CUT_OFF_CONFIGS);
      snprintf(payload, sizeof payload, "{\"n\":%d,\"price\":%d.90}", i, i);
      status = quiet_request(w->port, "PUT", path, payload, body, sizeof body);
    } else {
      snprintf(path, sizeof path, ENV_PATH "/flags/f%d/toggle", i % CUT_OFF_FLAGS);
      status = quiet_request(w->port, "POST", path, NULL, body, sizeof body);
    }
    const char *member = strstr(body, "\"revision\":");
    long long revision = member ? atoll(member + 11) : 0;
    if (status < 200 || status > 299 || revision <= previous) {
      snprintf(w->error, sizeof w->error, "change %d: %.80s -> %d %.150s", i, path, status, body);
      break;
    }
    previous = revision;
    atomic_store(&w->last_revision, revision);
  }
  atomic_store(&w->done, true);
  return NULL;
}

/* What a client holds: each flag's enabled and each config's value. */
struct held {
  json_t *enabled; /* key -> true/false */
  json_t *configs; /* key -> value */
  long long last_id;
  char epoch[64];
};

static void held_apply(struct held *h, const struct sse_block *b) {
  json_t *doc = parse_json(b->data, b->event);
  if (!strcmp(b->event, "snapshot")) {
    json_object_clear(h->enabled);
    json_object_clear(h->configs);
    snprintf(h->epoch, sizeof h->epoch, "%s", string_of(doc, "epoch"));
    json_t *item;
    size_t i;
    json_array_foreach(json_object_get(doc, "flags"), i, item)
        json_object_set(h->enabled, string_of(item, "key"), json_object_get(item, "enabled"));
    json_array_foreach(json_object_get(doc, "configs"), i, item)
        json_object_set(h->configs, string_of(item, "key"), json_object_get(item, "value"));
  } else if (!strcmp(b->event, "flag_updated") || !strcmp(b->event, "flag_created")) {
    json_object_set(h->enabled, string_of(doc, "key"),
                    json_object_get(json_object_get(doc, "flag"), "enabled"));
  } else if (!strcmp(b->event, "flag_deleted")) {
    json_object_del(h->enabled, string_of(doc, "key"));
  } else if (!strcmp(b->event, "config_updated")) {
    json_object_set(h->configs, string_of(doc, "key"), json_object_get(doc, "value"));
  } else if (!strcmp(b->event, "config_deleted")) {
    json_object_del(h->configs, string_of(doc, "key"));
  } else {
    fail_msg("unexpected event: %s", b->raw);
  }
  json_decref(doc);
}

/* Applies one event to `h`. Every id must follow the last one: an unfiltered server-key
 * stream skips no revision and repeats none. Only the first connection, without a
 * cursor, starts with a snapshot: a resume within the ring never does. */
static void held_take(struct held *h, const struct sse_block *b) {
  bool first = h->last_id < 0;
  if (!b->has_id || (first ? strcmp(b->event, "snapshot") != 0 : b->id != h->last_id + 1))
    fail_msg("after %lld came: %.300s", h->last_id, b->raw);
  held_apply(h, b);
  h->last_id = b->id;
}

/* Reads events into `h` until `count` more arrived, or (count < 0) until the writer is
 * done and the stream has reached its last revision. */
static void follow(struct sse *s, struct held *h, int count, uint64_t deadline) {
  int seen = 0;
  while (count < 0
             ? !(atomic_load(&writer.done) && h->last_id == atomic_load(&writer.last_revision))
             : seen < count) {
    if (atomic_load(&writer.done) && writer.error[0])
      fail_msg("the writer failed: %s", writer.error);
    if (fwt_now_ms() > deadline)
      fail_msg("the stream is at %lld, the writer at %lld", h->last_id,
               (long long)atomic_load(&writer.last_revision));
    if (count >= 0 && atomic_load(&writer.done) && h->last_id == atomic_load(&writer.last_revision))
      return;
    struct sse_block b;
    enum sse_result r = sse_next(s, 200, &b);
    if (r == SSE_CLOSED)
      fail_msg("the stream ended at %lld", h->last_id);
    if (r == SSE_TIMEOUT)
      continue;
    held_take(h, &b);
    block_free(&b);
    seen++;
  }
}

/* The flags f0.. and configs c0.. that write_changes changes. */
static void create_changed_keys(bool client_visible) {
  for (int i = 0; i < CUT_OFF_FLAGS; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"f%d\",\"client_visible\":%s}", i,
             client_visible ? "true" : "false");
    create_flag(body);
  }
  for (int i = 0; i < CUT_OFF_CONFIGS; i++) {
    char key[16];
    snprintf(key, sizeof key, "c%d", i);
    put_config(key, "null");
  }
}

static void a_client_cut_off_resumes_without_loss_or_repeat(void **state) {
  (void)state;
  boot(NULL);
  create_changed_keys(false);
  struct held held = {.enabled = json_object(), .configs = json_object(), .last_id = -1};
  struct sse s;
  sse_start(&s, "/v1/stream", server_key, NULL);
  follow(&s, &held, 1, fwt_now_ms() + EVENT_WAIT_MS);
  long long cursor = held.last_id;

  memset(&writer, 0, sizeof writer);
  writer.port = server.port;
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, write_changes, &writer), 0);
  uint64_t deadline = fwt_now_ms() + 30000;
  /* Cut off a few times while the writer goes on: the socket closes with whatever the
   * server had sent and this client had not read (a partial event, often). */
  int resumes = 0;
  for (int cut = 0; cut < 4 && !atomic_load(&writer.done); cut++) {
    follow(&s, &held, 12 + 9 * cut, deadline);
    /* The client stops reading while the server goes on writing, takes only the first
     * bytes of what was sent (most often ending inside an event), keeps the events that
     * arrived whole, and hangs up on the rest. */
    fwt_sleep_ms(20);
    char chunk[512];
    ssize_t got = recv(s.fd, chunk, 100 + (size_t)cut * 97, MSG_DONTWAIT);
    if (got > 0)
      sse_append(&s, chunk, (size_t)got);
    struct sse_block b;
    while (sse_next(&s, 0, &b) == SSE_BLOCK) {
      held_take(&held, &b);
      block_free(&b);
    }
    sse_close(&s);
    char header[64], target[128];
    snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", held.last_id);
    snprintf(target, sizeof target, "/v1/stream?epoch=%s", held.epoch);
    sse_start(&s, target, server_key, header);
    resumes++;
  }
  follow(&s, &held, -1, deadline);
  assert_int_equal(pthread_join(thread, NULL), 0);
  if (writer.error[0])
    fail_msg("the writer failed: %s", writer.error);
  assert_true(resumes >= 1);
  assert_int_equal(held.last_id, cursor + CUT_OFF_CHANGES);
  assert_int_equal(env_revision(), held.last_id);
  expect_quiet(&s, 100);
  sse_close(&s);

  /* What the client rebuilt is what the server serves. */
  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/flags", server_key, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  json_t *doc = parse_json(res.body, "/v1/flags");
  fwt_response_free(&res);
  assert_int_equal(number_of(doc, "revision"), held.last_id);
  json_t *item;
  size_t i;
  assert_int_equal(json_array_size(json_object_get(doc, "flags")), json_object_size(held.enabled));
  json_array_foreach(json_object_get(doc, "flags"), i, item) {
    json_t *mine = json_object_get(held.enabled, string_of(item, "key"));
    if (!mine || !json_equal(mine, json_object_get(item, "enabled")))
      fail_msg("flag %s differs", string_of(item, "key"));
  }
  assert_int_equal(json_array_size(json_object_get(doc, "configs")),
                   json_object_size(held.configs));
  json_array_foreach(json_object_get(doc, "configs"), i, item) {
    json_t *mine = json_object_get(held.configs, string_of(item, "key"));
    if (!mine || !json_equal(mine, json_object_get(item, "value")))
      fail_msg("config %s differs", string_of(item, "key"));
  }
  json_decref(doc);
  json_decref(held.enabled);
  json_decref(held.configs);
}

/* What a values stream holds: each flag's value and each config's value. */
struct values_held {
  json_t *values; /* flag key -> value */
  json_t *configs;
  long long last_id;
};

/* Applies one event of a client-key stream whose every revision changes what it sees
 * (boolean flags without rules, configs): ids follow each other exactly. */
static void values_take(struct values_held *h, const struct sse_block *b) {
  bool first = h->last_id < 0;
  if (!b->has_id || (first ? strcmp(b->event, "snapshot") != 0 : b->id != h->last_id + 1))
    fail_msg("after %lld came: %.300s", h->last_id, b->raw);
  json_t *doc = parse_json(b->data, b->event);
  if (first) {
    const char *key;
    json_t *value;
    json_object_foreach(json_object_get(doc, "flags"), key, value)
        json_object_set(h->values, key, json_object_get(value, "value"));
    json_object_foreach(json_object_get(doc, "configs"), key, value)
        json_object_set(h->configs, key, json_object_get(value, "value"));
  } else if (!strcmp(b->event, "flag_updated")) {
    json_object_set(h->values, string_of(doc, "key"), json_object_get(doc, "value"));
  } else if (!strcmp(b->event, "config_updated")) {
    json_object_set(h->configs, string_of(doc, "key"), json_object_get(doc, "value"));
  } else {
    fail_msg("unexpected event: %s", b->raw);
  }
  h->last_id = b->id;
  json_decref(doc);
}

/* Reads a values stream until it has the writer's last revision. */
static void follow_values(struct sse *s, struct values_held *h, uint64_t deadline) {
  while (!(atomic_load(&writer.done) && h->last_id == atomic_load(&writer.last_revision))) {
    if (atomic_load(&writer.done) && writer.error[0])
      fail_msg("the writer failed: %s", writer.error);
    if (fwt_now_ms() > deadline)
      fail_msg("the values stream is at %lld, the writer at %lld", h->last_id,
               (long long)atomic_load(&writer.last_revision));
    struct sse_block b;
    enum sse_result r = sse_next(s, 200, &b);
    if (r == SSE_CLOSED)
      fail_msg("the values stream ended at %lld", h->last_id);
    if (r == SSE_BLOCK) {
      values_take(h, &b);
      block_free(&b);
    }
  }
}

#define SLICED_DEFINITIONS 3
#define SLICED_VALUES 3
#define SLICED_LATE 2

/* With one stream per loop turn, a change reaches its streams over many turns while
 * more changes and more streams arrive: every stream still gets every change once, in
 * order, and streams that join during a fan-out are not sent what their snapshot holds. */
static void a_sliced_fanout_keeps_every_stream_exact(void **state) {
  (void)state;
  const char *args[] = {"--fanout-slice", "1", NULL};
  boot(args);
  create_changed_keys(true);
  struct sse definitions[SLICED_DEFINITIONS + SLICED_LATE], values[SLICED_VALUES];
  struct held held[SLICED_DEFINITIONS + SLICED_LATE];
  struct values_held values_held[SLICED_VALUES];
  for (int i = 0; i < SLICED_DEFINITIONS + SLICED_LATE; i++)
    held[i] = (struct held){.enabled = json_object(), .configs = json_object(), .last_id = -1};
  for (int i = 0; i < SLICED_DEFINITIONS; i++) {
    sse_start(&definitions[i], "/v1/stream", server_key, NULL);
    follow(&definitions[i], &held[i], 1, fwt_now_ms() + EVENT_WAIT_MS);
  }
  /* Two streams share a context written two ways; the third has its own. */
  const char *contexts[SLICED_VALUES] = {"{\"targetingKey\":\"u1\",\"plan\":\"pro\"}",
                                         "{ \"plan\" : \"pro\", \"targetingKey\" : \"u1\" }",
                                         "{\"targetingKey\":\"u2\"}"};
  for (int i = 0; i < SLICED_VALUES; i++) {
    char target[512];
    context_url(contexts[i], target, sizeof target);
    sse_start(&values[i], target, NULL, NULL);
    values_held[i] = (struct values_held){json_object(), json_object(), -1};
    struct sse_block b;
    assert_int_equal(sse_next(&values[i], EVENT_WAIT_MS, &b), SSE_BLOCK);
    values_take(&values_held[i], &b);
    block_free(&b);
  }

  memset(&writer, 0, sizeof writer);
  writer.port = server.port;
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, write_changes, &writer), 0);
  uint64_t deadline = fwt_now_ms() + 30000;
  /* Streams that join while changes are being fanned out. */
  follow(&definitions[0], &held[0], 40, deadline);
  for (int i = SLICED_DEFINITIONS; i < SLICED_DEFINITIONS + SLICED_LATE; i++) {
    sse_start(&definitions[i], "/v1/stream", server_key, NULL);
    follow(&definitions[i], &held[i], 1, deadline);
    follow(&definitions[0], &held[0], 10, deadline);
  }
  for (int i = 0; i < SLICED_DEFINITIONS + SLICED_LATE; i++)
    follow(&definitions[i], &held[i], -1, deadline);
  for (int i = 0; i < SLICED_VALUES; i++)
    follow_values(&values[i], &values_held[i], deadline);
  assert_int_equal(pthread_join(thread, NULL), 0);
  if (writer.error[0])
    fail_msg("the writer failed: %s", writer.error);

  for (int i = 0; i < SLICED_DEFINITIONS + SLICED_LATE; i++) {
    expect_quiet(&definitions[i], 50);
    assert_true(json_equal(held[i].enabled, held[0].enabled));
    assert_true(json_equal(held[i].configs, held[0].configs));
    sse_close(&definitions[i]);
  }
  /* Flags without rules serve true when on and false when off, for any context. */
  for (int i = 0; i < SLICED_VALUES; i++) {
    expect_quiet(&values[i], 50);
    assert_int_equal(json_object_size(values_held[i].values), json_object_size(held[0].enabled));
    const char *key;
    json_t *enabled;
    json_object_foreach(held[0].enabled, key, enabled) {
      json_t *value = json_object_get(values_held[i].values, key);
      if (!value || json_is_true(value) != json_is_true(enabled))
        fail_msg("stream %d holds the wrong value of %s", i, key);
    }
    assert_true(json_equal(values_held[i].configs, held[0].configs));
    sse_close(&values[i]);
    json_decref(values_held[i].values);
    json_decref(values_held[i].configs);
  }
  for (int i = 0; i < SLICED_DEFINITIONS + SLICED_LATE; i++) {
    json_decref(held[i].enabled);
    json_decref(held[i].configs);
  }
}

#define BUDGET_STREAMS 300

/* The budget counts evaluation, not writing: a change evaluated once for one context
 * reaches hundreds of streams as values, however long their writes take. */
static void writes_do_not_spend_the_eval_budget(void **state) {
  (void)state;
  const char *args[] = {"--eval-budget", "1ms", NULL};
  boot(args);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  char target[256];
  checked_format(target, sizeof target, "/v1/stream?key=%s", client_key);
  static struct sse streams[BUDGET_STREAMS];
  long long base = env_revision();
  for (int i = 0; i < BUDGET_STREAMS; i++)
    start_at_snapshot(&streams[i], target, NULL, base);
  long long revision = toggle("checkout");
  for (int i = 0; i < BUDGET_STREAMS; i++) {
    json_decref(expect_change(&streams[i], "flag_updated", "checkout", revision));
    sse_close(&streams[i]);
  }
  expect_metric("flagwire_stream_refetches_total", 0);
}

/* A client-key stream without a context evaluates rules for the empty context. */
static void a_stream_without_context_evaluates_rules(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"targeted\",\"client_visible\":true}");
  patch_state("targeted", "{\"enabled\":true,\"on_variant\":\"off\",\"rules\":[{\"conditions\":"
                          "[{\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":\"pro\"}],"
                          "\"variant\":\"on\"}]}");
  char target[256];
  checked_format(target, sizeof target, "/v1/stream?key=%s", client_key);
  struct sse s;
  start_at_snapshot(&s, target, NULL, env_revision());
  long long revision = toggle("targeted");
  json_t *doc = expect_change(&s, "flag_updated", "targeted", revision);
  assert_string_equal(string_of(doc, "reason"), "DISABLED");
  json_decref(doc);
  revision = toggle("targeted");
  doc = expect_change(&s, "flag_updated", "targeted", revision);
  assert_string_equal(string_of(doc, "variant"), "off");
  assert_string_equal(string_of(doc, "reason"), "DEFAULT");
  json_decref(doc);
  sse_close(&s);
}

/* Past --eval-budget a change's values streams are told to fetch their values. */
static void values_past_the_budget_get_refetch(void **state) {
  (void)state;
  const char *args[] = {"--eval-budget", "0ms", NULL};
  boot(args);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  char target[512];
  context_url("{\"targetingKey\":\"u1\"}", target, sizeof target);
  struct sse values, definitions;
  start_at_snapshot(&values, target, NULL, env_revision());
  start_at_snapshot(&definitions, "/v1/stream", server_key, env_revision());
  long long revision = toggle("checkout");
  struct sse_block b;
  json_t *doc = expect_event(&values, "refetch", &b);
  assert_true(b.has_id);
  assert_int_equal(b.id, revision);
  assert_int_equal(number_of(doc, "rev"), revision);
  long long after = number_of(doc, "after_ms");
  assert_true(after >= 0 && after <= 2000);
  json_decref(doc);
  block_free(&b);
  /* Definitions cost no evaluation: they are sent as ever. */
  json_decref(expect_change(&definitions, "flag_updated", "checkout", revision));
  expect_metric("flagwire_stream_refetches_total", 1);
  sse_close(&values);
  sse_close(&definitions);
}

/* ---- 8. heartbeats ---- */

static void idle_streams_get_heartbeats_without_ids(void **state) {
  (void)state;
  const char *args[] = {"--heartbeat", "1s", NULL};
  boot(args);
  struct sse s;
  start_at_snapshot(&s, "/v1/stream", server_key, env_revision());
  for (int beat = 0; beat < 2; beat++) {
    uint64_t started = fwt_now_ms();
    struct sse_block b;
    if (sse_block(&s, 2000, &b) != SSE_BLOCK)
      fail_msg("no heartbeat within 2 s");
    assert_string_equal(b.raw, ": heartbeat\n\n");
    assert_false(b.has_id);
    assert_true(fwt_now_ms() - started <= 2000);
    block_free(&b);
  }
  sse_close(&s);
}

/* ---- 9. shutdown ---- */

static void shutdown_says_goodbye_to_every_stream(void **state) {
  (void)state;
  boot(NULL);
  char target[256];
  struct sse by_server, by_client, flagsmith;
  start_at_snapshot(&by_server, "/v1/stream", server_key, env_revision());
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);
  sse_start(&by_client, target, NULL, NULL);
  json_decref(expect_event(&by_client, "snapshot", NULL));
  snprintf(target, sizeof target, "/sse/environments/%s/stream", client_key);
  sse_start(&flagsmith, target, NULL, NULL);
  json_decref(expect_event(&flagsmith, "environment_updated", NULL));

  assert_int_equal(kill(server.pid, SIGTERM), 0);
  struct sse *streams[] = {&by_server, &by_client, &flagsmith};
  for (size_t i = 0; i < 3; i++) {
    long long after = expect_goodbye(streams[i], "shutdown");
    /* Spread, so that a restart is not met by every client at once, yet soon. */
    assert_true(after >= 0 && after <= 10000);
    sse_close(streams[i]);
  }
  assert_int_equal(fwt_server_wait(&server, FWT_WAIT_MS), 0);
}

/* ---- 10. overload ---- */

static void streams_past_the_cap_are_told_to_come_back(void **state) {
  (void)state;
  const char *args[] = {"--max-streams", "2", NULL};
  boot(args);
  create_flag("{\"key\":\"checkout\"}");
  long long revision = env_revision();
  struct sse first, second, third;
  start_at_snapshot(&first, "/v1/stream", server_key, revision);
  start_at_snapshot(&second, "/v1/stream", server_key, revision);

  /* 200, because EventSource never reconnects after another status. */
  assert_int_equal(sse_open(&third, "GET", "/v1/stream", server_key, NULL, NULL), 200);
  struct sse_block b;
  if (sse_block(&third, EVENT_WAIT_MS, &b) != SSE_BLOCK || !b.has_retry)
    fail_msg("an overloaded stream does not open with retry:");
  long long retry = b.retry;
  block_free(&b);
  assert_true(retry >= 5000 && retry <= 30000);
  assert_int_equal(expect_goodbye(&third, "overloaded"), retry);
  sse_close(&third);

  long long rev = toggle("checkout");
  json_decref(expect_change(&first, "flag_updated", "checkout", rev));
  json_decref(expect_change(&second, "flag_updated", "checkout", rev));
  assert_int_equal(metric("flagwire_stream_closes_total{reason=\"overloaded\"}"), 1);

  /* A place freed is a place taken. */
  sse_close(&second);
  expect_metric("flagwire_streams_open{kind=\"events\"}", 1);
  start_at_snapshot(&third, "/v1/stream", server_key, rev);
  sse_close(&third);
  sse_close(&first);
}

static void streams_past_the_accept_rate_are_told_to_come_back(void **state) {
  (void)state;
  const char *args[] = {"--threads", "1", "--stream-accept-rate", "1", NULL};
  boot(args);
  struct sse first, second;
  start_at_snapshot(&first, "/v1/stream", server_key, env_revision());
  assert_int_equal(sse_open(&second, "GET", "/v1/stream", server_key, NULL, NULL), 200);
  struct sse_block b;
  if (sse_block(&second, EVENT_WAIT_MS, &b) != SSE_BLOCK || !b.has_retry)
    fail_msg("a stream past the accept rate does not open with retry:");
  block_free(&b);
  expect_goodbye(&second, "overloaded");
  sse_close(&second);
  sse_close(&first);
}

/* ---- 11. slow consumers ---- */

static int connect_with_receive_buffer(uint16_t port, int size) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  /* Before connect(), so that the window is small from the start. */
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    fail_msg("connect: %s", strerror(errno));
  return fd;
}

static void a_reader_that_stalls_is_closed(void **state) {
  (void)state;
  const char *args[] = {
      "--stream-send-buffer", "4096", "--stream-write-timeout", "1s", "--heartbeat", "1s", NULL};
  boot(args);
  struct sse slow, healthy;
  sse_start_on(&slow, connect_with_receive_buffer(server.port, 4096), "GET", "/v1/stream",
               server_key, NULL, NULL);
  json_decref(expect_event(&slow, "snapshot", NULL));
  start_at_snapshot(&healthy, "/v1/stream", server_key, env_revision());

  /* About 2 MB of changes that the slow reader does not read. */
  char *value = large_value(100 * 1024, 'x');
  long long last = 0;
  for (int i = 0; i < 20; i++) {
    value[1] = (char)('a' + i);
    last = put_config("big", value);
    json_decref(expect_change(&healthy, "config_updated", "big", last));
  }
  free(value);
  expect_metric("flagwire_stream_closes_total{reason=\"slow\"}", 1);
  /* The healthy stream goes on. */
  json_decref(expect_change(&healthy, "config_updated", "small", put_config("small", "1")));
  sse_close(&healthy);

  /* Reading again, the slow one finds its stream ended, well short of every change. */
  uint64_t deadline = fwt_now_ms() + FWT_WAIT_MS;
  size_t received = 0;
  while (!slow.closed && fwt_now_ms() < deadline) {
    sse_fill(&slow, deadline);
    received += slow.len;
    slow.len = 0;
  }
  assert_true(slow.closed);
  assert_true(received < 20 * 100 * 1024);
  sse_close(&slow);
  expect_metric("flagwire_streams_open{kind=\"events\"}", 0);
}

/* ---- 12. compatible streams ---- */

static void updated_at_of(const char *data, char *out, size_t len) {
  const char *at = strstr(data, "{\"updated_at\":");
  assert_non_null(at);
  at += strlen("{\"updated_at\":");
  snprintf(out, len, "%.*s", (int)strcspn(at, "}"), at);
}

static void flagsmith_header_updated_at(char *out, size_t len) {
  struct fwt_response res;
  char headers[256];
  snprintf(headers, sizeof headers, "X-Environment-Key: %s\r\n", client_key);
  fwt_request(server.port, "GET", "/api/v1/flags/", NULL, headers, NULL, &res);
  assert_int_equal(res.status, 200);
  assert_true(fwt_header(&res, "x-flagsmith-document-updated-at", out, len));
  fwt_response_free(&res);
}

static void flagsmith_stream_says_when_the_environment_changed(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  char target[256], before[32], after[32], header[32];
  snprintf(target, sizeof target, "/sse/environments/%s/stream", client_key);
  struct sse s;
  sse_start(&s, target, NULL, NULL);
  struct sse_block b;
  json_decref(expect_event(&s, "environment_updated", &b));
  assert_false(b.has_id);
  updated_at_of(b.data, before, sizeof before);
  block_free(&b);
  flagsmith_header_updated_at(header, sizeof header);
  assert_string_equal(before, header);

  for (int i = 0; i < 2; i++) {
    toggle("checkout");
    json_decref(expect_event(&s, "environment_updated", &b));
    updated_at_of(b.data, after, sizeof after);
    block_free(&b);
    assert_true(strtod(after, NULL) > strtod(before, NULL));
    flagsmith_header_updated_at(header, sizeof header);
    assert_string_equal(after, header);
    snprintf(before, sizeof before, "%s", after);
  }
  sse_close(&s);
  expect_error("GET", "/sse/environments/fw_cli_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/stream",
               NULL, NULL, NULL, 401, "unauthorized");
}

static void ofrep_bulk_answers_advertise_a_refetch_stream(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  struct fwt_response res;
  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", client_key, NULL, "{\"context\":{}}",
              &res);
  assert_int_equal(res.status, 200);
  json_t *doc = parse_json(res.body, "OFREP bulk");
  fwt_response_free(&res);
  json_t *stream = json_array_get(json_object_get(doc, "eventStreams"), 0);
  assert_string_equal(string_of(stream, "type"), "sse");
  char expected[256];
  snprintf(expected, sizeof expected, "/ofrep/v1/stream?key=%s", client_key);
  assert_string_equal(string_of(json_object_get(stream, "endpoint"), "requestUri"), expected);
  json_decref(doc);

  struct sse s;
  sse_start(&s, expected, NULL, NULL);
  expect_quiet(&s, 200);
  char etags[2][128];
  for (int i = 0; i < 2; i++) {
    toggle("checkout");
    struct sse_block b;
    json_t *notice = expect_event(&s, "", &b);
    assert_false(b.has_id);
    assert_string_equal(string_of(notice, "type"), "refetchEvaluation");
    snprintf(etags[i], sizeof etags[i], "%s", string_of(notice, "etag"));
    assert_true(etags[i][0] != '\0');
    json_decref(notice);
    block_free(&b);
  }
  assert_string_not_equal(etags[0], etags[1]);
  sse_close(&s);

  fwt_request(server.port, "POST", "/ofrep/v1/evaluate/flags", server_key, NULL, "{\"context\":{}}",
              &res);
  assert_int_equal(res.status, 200);
  doc = parse_json(res.body, "OFREP bulk");
  assert_null(json_object_get(doc, "eventStreams"));
  json_decref(doc);
  fwt_response_free(&res);
}

/* ---- 13. metrics ---- */

static void metrics_count_open_streams_and_how_they_started(void **state) {
  (void)state;
  boot(NULL);
  create_flag("{\"key\":\"checkout\",\"client_visible\":true}");
  long long revision = toggle("checkout");
  char current[64], previous[64], target[256];
  snprintf(current, sizeof current, "Last-Event-ID: %lld\r\n", revision);
  snprintf(previous, sizeof previous, "Last-Event-ID: %lld\r\n", revision - 1);
  snprintf(target, sizeof target, "/v1/stream?key=%s", client_key);

  struct sse snapshot, none, replay, catch_up, flagsmith;
  start_at_snapshot(&snapshot, "/v1/stream", server_key, revision);
  sse_start(&none, "/v1/stream", server_key, current);
  sse_start(&replay, "/v1/stream", server_key, previous);
  json_decref(expect_change(&replay, "flag_updated", "checkout", revision));
  /* A client key's cursor is caught up with values, never replayed. */
  sse_start(&catch_up, target, NULL, previous);
  json_decref(expect_change(&catch_up, "flag_updated", "checkout", revision));
  snprintf(target, sizeof target, "/sse/environments/%s/stream", client_key);
  sse_start(&flagsmith, target, NULL, NULL);

  assert_int_equal(metric("flagwire_streams_open{kind=\"events\"}"), 4);
  assert_int_equal(metric("flagwire_streams_open{kind=\"flagsmith\"}"), 1);
  assert_int_equal(metric("flagwire_streams_open{kind=\"ofrep\"}"), 0);
  const char *outcomes[] = {"none", "replay", "catch_up", "snapshot"};
  for (size_t i = 0; i < 4; i++) {
    char series[96];
    snprintf(series, sizeof series, "flagwire_stream_resumes_total{outcome=\"%s\"}", outcomes[i]);
    if (metric(series) != 1)
      fail_msg("%s is %g", series, metric(series));
  }

  sse_close(&none);
  sse_close(&replay);
  expect_metric("flagwire_streams_open{kind=\"events\"}", 2);
  sse_close(&snapshot);
  sse_close(&catch_up);
  sse_close(&flagsmith);
  expect_metric("flagwire_streams_open{kind=\"events\"}", 0);
  expect_metric("flagwire_streams_open{kind=\"flagsmith\"}", 0);
}

#define TEST(name) cmocka_unit_test_teardown(name, stop_servers)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(server_key_stream_carries_definitions),
      TEST(an_environment_rename_is_not_a_segment),
      TEST(client_key_stream_carries_values),
      TEST(context_streams_get_only_their_changes),
      TEST(bad_contexts_are_refused),
      TEST(filters_select_flags_tags_and_configs),
      TEST(filters_apply_to_values_too),
      TEST(streams_need_the_right_key),
      TEST(rotating_or_revoking_a_key_ends_its_streams),
      TEST(a_key_that_expires_later_ends_its_stream_then),
      TEST(a_current_cursor_gets_nothing_until_the_next_change),
      TEST(a_cursor_in_the_ring_is_replayed_exactly),
      TEST(the_ring_survives_a_restart),
      TEST(an_old_cursor_catches_up_key_by_key),
      TEST(flags_leaving_a_client_keys_sight_are_deleted_for_it),
      TEST(unusable_cursors_get_a_snapshot_or_an_error),
      TEST(a_client_cut_off_resumes_without_loss_or_repeat),
      TEST(a_sliced_fanout_keeps_every_stream_exact),
      TEST(values_past_the_budget_get_refetch),
      TEST(writes_do_not_spend_the_eval_budget),
      TEST(a_stream_without_context_evaluates_rules),
      TEST(idle_streams_get_heartbeats_without_ids),
      TEST(shutdown_says_goodbye_to_every_stream),
      TEST(streams_past_the_cap_are_told_to_come_back),
      TEST(streams_past_the_accept_rate_are_told_to_come_back),
      TEST(a_reader_that_stalls_is_closed),
      TEST(flagsmith_stream_says_when_the_environment_changed),
      TEST(ofrep_bulk_answers_advertise_a_refetch_stream),
      TEST(metrics_count_open_streams_and_how_they_started),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
