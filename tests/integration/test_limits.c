/* Every configurable limit of the network core, answered with its status and a JSON
 * error naming it, against the real binary. Limits are set small so that each test
 * takes about a second. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define HEADER_TIMEOUT_MS 800
#define BODY_TIMEOUT_MS 800
#define KEEPALIVE_TIMEOUT_MS 800

static struct fwt_server server;

static int start_server(void **state) {
  (void)state;
  const char *args[] = {"--max-header-bytes",
                        "2k",
                        "--max-body-bytes",
                        "1k",
                        "--header-timeout",
                        "800ms",
                        "--body-timeout",
                        "800ms",
                        "--keepalive-timeout",
                        "800ms",
                        "--threads",
                        "2",
                        NULL};
  fwt_server_start(&server, args, NULL);
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

/* Reads the one response a refused request gets and checks status, error code and that
 * the server closes the connection after it. */
static void expect_refusal(int fd, int status, const char *code) {
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, status);
  char expected[96];
  snprintf(expected, sizeof expected, "{\"error\":{\"code\":\"%s\"", code);
  if (!strstr(res.body, expected))
    fail_msg("expected code %s, got %s", code, res.body);
  assert_non_null(strstr(res.body, "\"message\":\""));
  char connection[32];
  assert_true(fwt_header(&res, "Connection", connection, sizeof connection));
  assert_string_equal(connection, "close");
  fwt_response_free(&res);
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, NULL, 0));
}

static void headers_over_the_limit_are_431(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  char filler[3000];
  memset(filler, 'a', sizeof filler - 1);
  filler[sizeof filler - 1] = '\0';
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: %s\r\n\r\n", filler);
  expect_refusal(fd, 431, "headers_too_large");
  fwt_close(fd);

  /* A request line alone over the limit. */
  fd = fwt_connect(server.port);
  fwt_sendf(fd, "GET /%s HTTP/1.1\r\n\r\n", filler);
  expect_refusal(fd, 431, "headers_too_large");
  fwt_close(fd);

  /* Too many header lines, each small. */
  fd = fwt_connect(server.port);
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\n");
  for (int i = 0; i < 120; i++)
    fwt_sendf(fd, "X-%d: 1\r\n", i);
  fwt_sendf(fd, "\r\n");
  expect_refusal(fd, 431, "headers_too_large");
  fwt_close(fd);
}

static void headers_just_under_the_limit_pass(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  char filler[1500];
  memset(filler, 'a', sizeof filler - 1);
  filler[sizeof filler - 1] = '\0';
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: %s\r\n\r\n", filler);
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  fwt_close(fd);
}

static void body_over_the_limit_is_413(void **state) {
  (void)state;
  /* Declared length over the limit: refused before any body byte is read. */
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  expect_refusal(fd, 413, "body_too_large");
  fwt_close(fd);

  /* Chunked: refused once the chunks add up past the limit. */
  fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  char chunk[600];
  memset(chunk, 'b', sizeof chunk - 1);
  chunk[sizeof chunk - 1] = '\0';
  fwt_sendf(fd, "%zx\r\n%s\r\n", strlen(chunk), chunk);
  fwt_sendf(fd, "%zx\r\n%s\r\n", strlen(chunk), chunk);
  expect_refusal(fd, 413, "body_too_large");
  fwt_close(fd);
}

static void body_within_the_limit_reaches_the_route(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n0\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 405); /* /healthz takes no POST: the body was read whole */
  fwt_response_free(&res);
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  fwt_close(fd);
}

static void expect_100_continue_is_honoured(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                "Expect: 100-continue\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 100);
  fwt_response_free(&res);
  fwt_sendf(fd, "abcd");
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 405);
  fwt_response_free(&res);
  fwt_close(fd);

  /* A body over the limit is refused instead of invited. */
  fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n"
                "Expect: 100-continue\r\n\r\n");
  expect_refusal(fd, 413, "body_too_large");
  fwt_close(fd);

  fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                "Expect: something-else\r\n\r\n");
  expect_refusal(fd, 417, "expectation_failed");
  fwt_close(fd);
}

static void slow_headers_are_408_then_closed(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  uint64_t start = fwt_now_ms();
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
  expect_refusal(fd, 408, "request_timeout");
  uint64_t took = fwt_now_ms() - start;
  assert_true(took >= HEADER_TIMEOUT_MS - 50);
  assert_true(took < HEADER_TIMEOUT_MS + 2000);
  fwt_close(fd);
}

static void dribbled_headers_do_not_extend_the_deadline(void **state) {
  (void)state;
  /* Slowloris: a byte every 100 ms keeps the connection busy but never finishes the
   * headers. The deadline runs from the first byte, so the trickle does not reset it. */
  int fd = fwt_connect(server.port);
  uint64_t start = fwt_now_ms();
  const char *trickle = "GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool answered = false;
  for (size_t i = 0; trickle[i] && !answered; i++) {
    fwt_send(fd, trickle + i, 1);
    struct pollfd readable = {.fd = fd, .events = POLLIN};
    answered = poll(&readable, 1, 100) == 1;
  }
  expect_refusal(fd, 408, "request_timeout");
  uint64_t took = fwt_now_ms() - start;
  assert_true(took < HEADER_TIMEOUT_MS + 2000);
  fwt_close(fd);
}

static void slow_body_is_408(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part");
  expect_refusal(fd, 408, "request_timeout");
  fwt_close(fd);
}

static void silent_new_connection_is_closed(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  uint64_t start = fwt_now_ms();
  char got[64] = "";
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, got, sizeof got));
  assert_string_equal(got, ""); /* nothing was asked, so nothing is answered */
  assert_true(fwt_now_ms() - start >= HEADER_TIMEOUT_MS - 50);
  fwt_close(fd);
}

static void idle_keep_alive_connection_is_closed(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  uint64_t start = fwt_now_ms();
  char got[64] = "";
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, got, sizeof got));
  assert_string_equal(got, "");
  uint64_t took = fwt_now_ms() - start;
  assert_true(took >= KEEPALIVE_TIMEOUT_MS - 50);
  assert_true(took < KEEPALIVE_TIMEOUT_MS + 2000);
  fwt_close(fd);
}

static void activity_keeps_a_connection_alive(void **state) {
  (void)state;
  /* Requests spaced under the idle timeout, for longer than it in total. */
  int fd = fwt_connect(server.port);
  for (int i = 0; i < 4; i++) {
    fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    struct fwt_response res;
    assert_true(fwt_read_response(fd, &res, false));
    assert_int_equal(res.status, 200);
    fwt_response_free(&res);
    fwt_sleep_ms(KEEPALIVE_TIMEOUT_MS / 2);
  }
  fwt_close(fd);
}

static void connection_cap_is_503_with_retry_after(void **state) {
  (void)state;
  struct fwt_server capped;
  const char *args[] = {"--max-connections", "3", "--threads", "1", NULL};
  fwt_server_start(&capped, args, NULL);
  int held[3];
  for (int i = 0; i < 3; i++) {
    held[i] = fwt_connect(capped.port);
    fwt_sendf(held[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    struct fwt_response res;
    assert_true(fwt_read_response(held[i], &res, false));
    assert_int_equal(res.status, 200);
    fwt_response_free(&res);
  }
  int extra = fwt_connect(capped.port);
  struct fwt_response res;
  assert_true(fwt_read_response(extra, &res, false));
  assert_int_equal(res.status, 503);
  assert_non_null(strstr(res.body, "\"code\":\"too_many_connections\""));
  char retry[16];
  assert_true(fwt_header(&res, "Retry-After", retry, sizeof retry));
  assert_true(atoi(retry) >= 1);
  fwt_response_free(&res);
  fwt_close(extra);

  /* A freed slot is usable again. */
  fwt_close(held[0]);
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; attempt++) {
    int fd = fwt_connect(capped.port);
    fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    if (fwt_read_response(fd, &res, false)) {
      served = res.status == 200;
      fwt_response_free(&res);
    }
    fwt_close(fd);
    if (!served)
      fwt_sleep_ms(50);
  }
  assert_true(served);

  for (int i = 1; i < 3; i++)
    fwt_close(held[i]);
  /* The slots free as the server sees the closes: ask until one is free. */
  for (int attempt = 0; attempt < 100; attempt++) {
    fwt_exchange(capped.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    if (res.status == 200)
      break;
    fwt_response_free(&res);
    fwt_sleep_ms(50);
  }
  assert_int_equal(res.status, 200);
  const char *series = "flagwire_connections_rejected_total{reason=\"limit\"} ";
  const char *rejected = strstr(res.body, series);
  assert_non_null(rejected);
  assert_true(atol(rejected + strlen(series)) >= 1);
  fwt_response_free(&res);
  fwt_server_cleanup(&capped);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(headers_over_the_limit_are_431),
      cmocka_unit_test(headers_just_under_the_limit_pass),
      cmocka_unit_test(body_over_the_limit_is_413),
      cmocka_unit_test(body_within_the_limit_reaches_the_route),
      cmocka_unit_test(expect_100_continue_is_honoured),
      cmocka_unit_test(slow_headers_are_408_then_closed),
      cmocka_unit_test(dribbled_headers_do_not_extend_the_deadline),
      cmocka_unit_test(slow_body_is_408),
      cmocka_unit_test(silent_new_connection_is_closed),
      cmocka_unit_test(idle_keep_alive_connection_is_closed),
      cmocka_unit_test(activity_keeps_a_connection_alive),
      cmocka_unit_test(connection_cap_is_503_with_retry_after),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
