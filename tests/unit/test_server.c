/* The server in-process, on a loopback port: stream take-over and the drain hook that
 * lets streams say goodbye when the server stops; deferred responses answered from
 * another thread through a loop task. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/server.h"
#include "util/metrics.h"
#include "util/time.h"

struct stream_probe {
  _Atomic int drained;
  _Atomic int closed;
  bool say_goodbye; /* whether on_drain answers, or leaves it to the shutdown timeout */
};

static struct stream_probe probe;

static void on_drain(struct fw_stream *stream, void *ctx) {
  struct stream_probe *p = ctx;
  atomic_fetch_add(&p->drained, 1);
  if (!p->say_goodbye)
    return;
  static const char goodbye[] = "event: goodbye\ndata: {}\n\n";
  if (fw_stream_write(stream, goodbye, sizeof goodbye - 1) == FW_OK)
    fw_stream_close(stream);
}

static void on_close(struct fw_stream *stream, void *ctx) {
  (void)stream;
  atomic_fetch_add(&((struct stream_probe *)ctx)->closed, 1);
}

static const struct fw_stream_hooks hooks = {.on_drain = on_drain, .on_close = on_close};

static void open_stream(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  (void)req;
  struct fw_stream *stream;
  res->content_type = "text/event-stream";
  assert_int_equal(fw_http_response_stream(res, &hooks, ctx, &stream), FW_OK);
  assert_int_equal(fw_http_response_stream(res, &hooks, ctx, &stream), FW_EINVAL);
}

static struct fw_router router;
static struct fw_server *server;

/* A deferred answer produced by another thread after `delay_ms`, the way the writer
 * answers a management request. */
struct late_answer {
  struct fw_loop_task task;
  struct fw_http_deferred *deferred;
  unsigned loop;
  unsigned delay_ms;
  size_t body_len;
};

static _Atomic int answers_cancelled;
static _Atomic int answers_sent;

static void run_late_answer(struct fw_loop_task *task, bool cancelled) {
  struct late_answer *answer = (struct late_answer *)task;
  if (cancelled) {
    atomic_fetch_add(&answers_cancelled, 1);
    if (answer->deferred)
      fw_http_deferred_discard(answer->deferred);
  } else {
    struct fw_http_response *res = fw_http_deferred_response(answer->deferred);
    char body[64];
    int len = snprintf(body, sizeof body, "{\"later\":%zu}", answer->body_len);
    assert_int_equal(fw_http_set_json(res, 200, body, (size_t)len), FW_OK);
    assert_non_null(fw_http_deferred_request(answer->deferred)->request_id[0] ? "id" : NULL);
    fw_http_deferred_send(answer->deferred);
    atomic_fetch_add(&answers_sent, 1);
  }
  free(answer);
}

static void *answer_later(void *arg) {
  struct late_answer *answer = arg;
  usleep(answer->delay_ms * 1000u);
  fw_server_post(server, answer->loop, &answer->task);
  return NULL;
}

static void defer_answer(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  unsigned *delay_ms = ctx;
  struct late_answer *answer = calloc(1, sizeof *answer);
  assert_non_null(answer);
  answer->task.run = run_late_answer;
  answer->loop = fw_http_response_loop(res);
  answer->delay_ms = *delay_ms;
  answer->body_len = req->body_len;
  assert_int_equal(fw_http_response_defer(res, req, &answer->deferred), FW_OK);
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, answer_later, answer), 0);
  pthread_detach(thread);
}

static void answer_now(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  (void)req;
  (void)ctx;
  assert_int_equal(fw_http_set_json(res, 200, "{\"now\":true}", 12), FW_OK);
}

static unsigned defer_delay_ms = 100;

static void start(uint64_t shutdown_timeout_ms) {
  fw_metrics_reset();
  memset(&probe, 0, sizeof probe);
  fw_router_init(&router);
  assert_int_equal(fw_router_add(&router, FW_HTTP_GET, "/stream", open_stream, &probe), FW_OK);
  assert_int_equal(fw_router_add(&router, FW_HTTP_POST, "/later", defer_answer, &defer_delay_ms),
                   FW_OK);
  assert_int_equal(fw_router_add(&router, FW_HTTP_GET, "/now", answer_now, NULL), FW_OK);
  atomic_store(&answers_cancelled, 0);
  atomic_store(&answers_sent, 0);
  struct fw_server_options options = {
      .host = "127.0.0.1",
      .threads = 2,
      .limits = {.max_header_bytes = 4096, .max_body_bytes = 4096},
      .header_timeout_ms = 5000,
      .body_timeout_ms = 5000,
      .keepalive_timeout_ms = 5000,
      .shutdown_timeout_ms = shutdown_timeout_ms,
      .router = &router,
  };
  char error[256];
  assert_int_equal(fw_server_start(&options, &server, error, sizeof error), FW_OK);
}

static void finish(void) {
  fw_server_wait(server);
  assert_true(fw_server_finished(server));
  fw_server_free(server);
  fw_router_free(&router);
}

static int connect_to_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(fw_server_port(server))};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  return fd;
}

/* Reads until `needle` has arrived or the peer closes; returns what was read. Bounded by
 * `timeout_ms` in total. */
static size_t read_until(int fd, const char *needle, char *out, size_t cap, int timeout_ms,
                         bool *closed) {
  size_t len = 0;
  *closed = false;
  uint64_t deadline = fw_time_mono_ms() + (uint64_t)timeout_ms;
  while (len + 1 < cap) {
    out[len] = '\0';
    if (needle && strstr(out, needle))
      break;
    uint64_t now = fw_time_mono_ms();
    if (now >= deadline)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
      break;
    ssize_t n = read(fd, out + len, cap - len - 1);
    if (n <= 0) {
      *closed = true;
      break;
    }
    len += (size_t)n;
  }
  out[len] = '\0';
  return len;
}

static void stream_says_goodbye_on_stop(void **state) {
  (void)state;
  start(5000);
  probe.say_goodbye = true;
  int fd = connect_to_server();
  const char request[] = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
  assert_int_equal(write(fd, request, sizeof request - 1), (ssize_t)sizeof request - 1);
  char buf[4096];
  bool closed;
  read_until(fd, "\r\n\r\n", buf, sizeof buf, 2000, &closed);
  assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(buf, "Content-Type: text/event-stream\r\n"));
  assert_null(strstr(buf, "Content-Length"));
  assert_false(closed);

  uint64_t stop_at = fw_time_mono_ms();
  fw_server_stop(server, false);
  read_until(fd, NULL, buf, sizeof buf, 3000, &closed);
  assert_true(closed);
  assert_string_equal(buf, "event: goodbye\ndata: {}\n\n");
  close(fd);
  finish();
  assert_true(fw_time_mono_ms() - stop_at < 2500);
  assert_int_equal(atomic_load(&probe.drained), 1);
  assert_int_equal(atomic_load(&probe.closed), 1);
}

static void silent_stream_is_closed_by_the_shutdown_timeout(void **state) {
  (void)state;
  start(600);
  probe.say_goodbye = false;
  int fd = connect_to_server();
  const char request[] = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
  assert_int_equal(write(fd, request, sizeof request - 1), (ssize_t)sizeof request - 1);
  char buf[4096];
  bool closed;
  read_until(fd, "\r\n\r\n", buf, sizeof buf, 2000, &closed);
  uint64_t stop_at = fw_time_mono_ms();
  fw_server_stop(server, false);
  read_until(fd, NULL, buf, sizeof buf, 5000, &closed);
  assert_true(closed);
  uint64_t took = fw_time_mono_ms() - stop_at;
  assert_true(took >= 500 && took < 3000);
  close(fd);
  finish();
  assert_int_equal(atomic_load(&probe.drained), 1);
  assert_int_equal(atomic_load(&probe.closed), 1);
}

static void stream_closed_by_peer_runs_on_close(void **state) {
  (void)state;
  start(5000);
  int fd = connect_to_server();
  const char request[] = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
  assert_int_equal(write(fd, request, sizeof request - 1), (ssize_t)sizeof request - 1);
  char buf[4096];
  bool closed;
  read_until(fd, "\r\n\r\n", buf, sizeof buf, 2000, &closed);
  close(fd);
  for (int i = 0; i < 200 && atomic_load(&probe.closed) == 0; i++)
    usleep(10000);
  assert_int_equal(atomic_load(&probe.closed), 1);
  assert_int_equal(atomic_load(&probe.drained), 0);
  fw_server_stop(server, false);
  finish();
}

static void deferred_answers_keep_pipelined_order(void **state) {
  (void)state;
  start(2000);
  int fd = connect_to_server();
  /* The deferred request, then an immediate one behind it in the same packet, then the
   * same again once the first pair is answered. */
  const char *requests = "POST /later HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                         "GET /now HTTP/1.1\r\n\r\n";
  for (int round = 0; round < 2; round++) {
    assert_int_equal(write(fd, requests, strlen(requests)), (ssize_t)strlen(requests));
    char got[2048];
    bool closed;
    read_until(fd, "{\"now\":true}", got, sizeof got, 5000, &closed);
    assert_false(closed);
    const char *later = strstr(got, "{\"later\":3}");
    const char *now = strstr(got, "{\"now\":true}");
    assert_non_null(later);
    assert_non_null(now);
    assert_true(later < now);
  }
  close(fd);
  fw_server_stop(server, false);
  finish();
  assert_int_equal(atomic_load(&answers_sent), 2);
}

static void deferred_answer_finishes_during_a_graceful_stop(void **state) {
  (void)state;
  start(5000);
  int fd = connect_to_server();
  const char *request = "POST /later HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  usleep(20 * 1000);
  fw_server_stop(server, false);
  char got[2048];
  bool closed;
  read_until(fd, NULL, got, sizeof got, 5000, &closed);
  assert_true(closed);
  assert_non_null(strstr(got, "Connection: close"));
  assert_non_null(strstr(got, "{\"later\":1}"));
  close(fd);
  finish();
}

static void deferred_answer_to_a_departed_client_is_dropped(void **state) {
  (void)state;
  start(2000);
  int fd = connect_to_server();
  const char *request = "POST /later HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  usleep(20 * 1000);
  close(fd);
  /* The answer arrives after the client left; it must find no connection to write to. */
  for (int i = 0; i < 100 && atomic_load(&answers_sent) + atomic_load(&answers_cancelled) == 0; i++)
    usleep(10 * 1000);
  fw_server_stop(server, false);
  finish();
  assert_int_equal(atomic_load(&answers_sent) + atomic_load(&answers_cancelled), 1);
}

static void task_posted_to_an_ended_loop_runs_cancelled(void **state) {
  (void)state;
  start(2000);
  fw_server_stop(server, false);
  fw_server_wait(server);
  struct late_answer *answer = calloc(1, sizeof *answer);
  assert_non_null(answer);
  answer->task.run = run_late_answer;
  fw_server_post(server, 0, &answer->task);
  assert_int_equal(atomic_load(&answers_cancelled), 1);
  fw_server_free(server);
  fw_router_free(&router);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stream_says_goodbye_on_stop),
      cmocka_unit_test(silent_stream_is_closed_by_the_shutdown_timeout),
      cmocka_unit_test(stream_closed_by_peer_runs_on_close),
      cmocka_unit_test(deferred_answers_keep_pipelined_order),
      cmocka_unit_test(deferred_answer_finishes_during_a_graceful_stop),
      cmocka_unit_test(deferred_answer_to_a_departed_client_is_dropped),
      cmocka_unit_test(task_posted_to_an_ended_loop_runs_cancelled),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
