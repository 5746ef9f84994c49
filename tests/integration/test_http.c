/* The HTTP surface of the real binary: routing, keep-alive, pipelining, request ids,
 * CORS on the public read surfaces and the operations endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct fwt_server server;

static int start_server(void **state) {
  (void)state;
  const char *args[] = {"--log-level", "debug", "--threads", "2", NULL};
  fwt_server_start(&server, args, NULL);
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

static void healthz_and_version_answer_json(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 200);
  assert_string_equal(res.body, "{\"status\":\"ok\"}");
  char type[64];
  assert_true(fwt_header(&res, "Content-Type", type, sizeof type));
  assert_string_equal(type, "application/json");
  fwt_response_free(&res);

  fwt_exchange(server.port, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 200);
  assert_non_null(strstr(res.body, "\"name\":\"flagwire\""));
  assert_non_null(strstr(res.body, "\"version\":\""));
  fwt_response_free(&res);
}

static void readyz_is_ready_once_started(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
}

static void unknown_route_is_404_with_json_error(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port, "GET /no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 404);
  assert_non_null(strstr(res.body, "{\"error\":{\"code\":\"not_found\""));
  char id[80];
  assert_true(fwt_header(&res, "X-Request-Id", id, sizeof id));
  char expected[128];
  snprintf(expected, sizeof expected, "\"request_id\":\"%s\"", id);
  assert_non_null(strstr(res.body, expected));
  fwt_response_free(&res);
}

static void wrong_method_is_405_with_allow(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 405);
  char allow[64];
  assert_true(fwt_header(&res, "Allow", allow, sizeof allow));
  assert_string_equal(allow, "GET, HEAD");
  assert_non_null(strstr(res.body, "\"code\":\"method_not_allowed\""));
  fwt_response_free(&res);
}

static void head_has_length_but_no_body(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd,
            "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, true));
  assert_int_equal(res.status, 200);
  char length[16];
  assert_true(fwt_header(&res, "Content-Length", length, sizeof length));
  assert_string_equal(length, "15");
  fwt_response_free(&res);
  /* Had the HEAD response carried a body, this read would see it instead. */
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  assert_string_equal(res.body, "{\"status\":\"ok\"}");
  fwt_response_free(&res);
  fwt_close(fd);
}

static void request_id_is_echoed_or_generated(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port,
               "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-42.a:b\r\n\r\n", &res);
  char id[80];
  assert_true(fwt_header(&res, "X-Request-Id", id, sizeof id));
  assert_string_equal(id, "trace-42.a:b");
  fwt_response_free(&res);

  /* An id with characters that could forge log lines is replaced, not echoed. */
  fwt_exchange(server.port, "GET /missing HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad\"id\r\n\r\n",
               &res);
  assert_true(fwt_header(&res, "X-Request-Id", id, sizeof id));
  assert_string_not_equal(id, "bad\"id");
  assert_int_equal(strlen(id), 16);
  fwt_response_free(&res);

  fwt_exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  char other[80];
  assert_true(fwt_header(&res, "X-Request-Id", other, sizeof other));
  assert_string_not_equal(id, other);
  fwt_response_free(&res);

  /* The id is in the request's log line (the server logs every request at debug). */
  fwt_exchange(server.port,
               "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: look-for-me-in-the-log\r\n\r\n",
               &res);
  fwt_response_free(&res);
  bool logged = false;
  for (int attempt = 0; attempt < 50 && !logged; attempt++) {
    char *log = fwt_server_log(&server);
    logged = strstr(log, "\"request_id\":\"look-for-me-in-the-log\"") != NULL;
    free(log);
    if (!logged)
      fwt_sleep_ms(20);
  }
  assert_true(logged);
}

static void keep_alive_serves_many_requests_on_one_connection(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  for (int i = 0; i < 20; i++) {
    fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    struct fwt_response res;
    assert_true(fwt_read_response(fd, &res, false));
    assert_int_equal(res.status, 200);
    char connection[32];
    assert_false(fwt_header(&res, "Connection", connection, sizeof connection));
    fwt_response_free(&res);
  }
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  char connection[32];
  assert_true(fwt_header(&res, "Connection", connection, sizeof connection));
  assert_string_equal(connection, "close");
  fwt_response_free(&res);
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, NULL, 0));
  fwt_close(fd);
}

static void http10_closes_unless_keep_alive_is_asked(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "GET /healthz HTTP/1.0\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, NULL, 0));
  fwt_close(fd);

  fd = fwt_connect(server.port);
  for (int i = 0; i < 2; i++) {
    fwt_sendf(fd, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(fwt_read_response(fd, &res, false));
    assert_int_equal(res.status, 200);
    char connection[32];
    assert_true(fwt_header(&res, "Connection", connection, sizeof connection));
    assert_string_equal(connection, "keep-alive");
    fwt_response_free(&res);
  }
  fwt_close(fd);
}

static void pipelined_requests_are_answered_in_order(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  /* Five requests in one write, mixing routes, an error and a body. */
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\n\r\n"
                "GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: p2\r\n\r\n"
                "POST /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p3\r\n"
                "Content-Length: 5\r\n\r\nhello"
                "GET /version HTTP/1.1\r\nHost: x\r\nX-Request-Id: p4\r\n\r\n"
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p5\r\n\r\n");
  const int expected_status[] = {200, 404, 405, 200, 200};
  for (int i = 0; i < 5; i++) {
    struct fwt_response res;
    assert_true(fwt_read_response(fd, &res, false));
    assert_int_equal(res.status, expected_status[i]);
    char id[16], want[16];
    snprintf(want, sizeof want, "p%d", i + 1);
    assert_true(fwt_header(&res, "X-Request-Id", id, sizeof id));
    assert_string_equal(id, want);
    fwt_response_free(&res);
  }
  fwt_close(fd);
}

static void pipelined_requests_split_at_every_byte(void **state) {
  (void)state;
  const char *requests = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
  int fd = fwt_connect(server.port);
  for (size_t i = 0; requests[i]; i++) {
    fwt_send(fd, requests + i, 1);
    if (i % 16 == 0)
      fwt_sleep_ms(1);
  }
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_string_equal(res.body, "{\"status\":\"ok\"}");
  fwt_response_free(&res);
  assert_true(fwt_read_response(fd, &res, false));
  assert_non_null(strstr(res.body, "flagwire"));
  fwt_response_free(&res);
  fwt_close(fd);
}

static void malformed_request_is_400_then_closed(void **state) {
  (void)state;
  const char *bad[] = {
      "GARBAGE\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n",
      "POST /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int fd = fwt_connect(server.port);
    fwt_send(fd, bad[i], strlen(bad[i]));
    struct fwt_response res;
    assert_true(fwt_read_response(fd, &res, false));
    assert_int_equal(res.status, 400);
    assert_non_null(strstr(res.body, "\"code\":\"malformed_request\""));
    char connection[32];
    assert_true(fwt_header(&res, "Connection", connection, sizeof connection));
    assert_string_equal(connection, "close");
    fwt_response_free(&res);
    assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, NULL, 0));
    fwt_close(fd);
  }
}

static void other_http_major_versions_are_505(void **state) {
  (void)state;
  int fd = fwt_connect(server.port);
  fwt_sendf(fd, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 505);
  assert_non_null(strstr(res.body, "\"code\":\"http_version_not_supported\""));
  fwt_response_free(&res);
  assert_true(fwt_wait_closed(fd, FWT_WAIT_MS, NULL, 0));
  fwt_close(fd);

  /* A later minor version of 1 is compatible and answered. */
  fwt_exchange(server.port, "GET /healthz HTTP/1.7\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
}

static void cors_preflight_on_public_surfaces(void **state) {
  (void)state;
  const char *paths[] = {"/ofrep/v1/evaluate/flags", "/api/v1/flags/", "/v1/evaluate", "/v1/stream",
                         "/sse/environments/abc/stream"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char request[512];
    snprintf(request, sizeof request,
             "OPTIONS %s HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
             "Access-Control-Request-Method: POST\r\n"
             "Access-Control-Request-Headers: authorization, content-type\r\n\r\n",
             paths[i]);
    struct fwt_response res;
    fwt_exchange(server.port, request, &res);
    assert_int_equal(res.status, 204);
    char value[256];
    assert_true(fwt_header(&res, "Access-Control-Allow-Origin", value, sizeof value));
    assert_string_equal(value, "*");
    assert_true(fwt_header(&res, "Access-Control-Allow-Methods", value, sizeof value));
    assert_non_null(strstr(value, "POST"));
    assert_true(fwt_header(&res, "Access-Control-Allow-Headers", value, sizeof value));
    assert_non_null(strstr(value, "Authorization"));
    assert_non_null(strstr(value, "If-None-Match"));
    assert_true(fwt_header(&res, "Access-Control-Max-Age", value, sizeof value));
    fwt_response_free(&res);
  }
}

static void management_paths_send_no_cors(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port,
               "OPTIONS /v1/projects HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
               "Access-Control-Request-Method: POST\r\n\r\n",
               &res);
  assert_true(res.status >= 400);
  char value[64];
  assert_false(fwt_header(&res, "Access-Control-Allow-Origin", value, sizeof value));
  fwt_response_free(&res);

  fwt_exchange(server.port,
               "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n", &res);
  assert_false(fwt_header(&res, "Access-Control-Allow-Origin", value, sizeof value));
  fwt_response_free(&res);
}

static void metrics_count_requests_and_connections(void **state) {
  (void)state;
  struct fwt_response res;
  fwt_exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  fwt_response_free(&res);
  fwt_exchange(server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &res);
  assert_int_equal(res.status, 200);
  char type[64];
  assert_true(fwt_header(&res, "Content-Type", type, sizeof type));
  assert_non_null(strstr(type, "text/plain"));
  const char *expected[] = {
      "# TYPE flagwire_http_requests_total counter",
      "flagwire_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} ",
      "# TYPE flagwire_http_request_duration_seconds histogram",
      "flagwire_http_request_duration_seconds_bucket{le=\"+Inf\"} ",
      "flagwire_connections_open{kind=\"http\"} ",
      "flagwire_connections_open{kind=\"stream\"} ",
      "flagwire_connections_accepted_total{kind=\"http\"} ",
      "flagwire_http_requests_total{route=\"unmatched\",status=\"404\"} ",
  };
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    if (!strstr(res.body, expected[i]))
      fail_msg("'%s' is missing from /metrics:\n%s", expected[i], res.body);
  /* At least the connections of the tests before this one were accepted. */
  const char *accepted = strstr(res.body, "flagwire_connections_accepted_total{kind=\"http\"} ");
  assert_true(atol(strchr(accepted, '}') + 2) >= 2);
  fwt_response_free(&res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(healthz_and_version_answer_json),
      cmocka_unit_test(readyz_is_ready_once_started),
      cmocka_unit_test(unknown_route_is_404_with_json_error),
      cmocka_unit_test(wrong_method_is_405_with_allow),
      cmocka_unit_test(head_has_length_but_no_body),
      cmocka_unit_test(request_id_is_echoed_or_generated),
      cmocka_unit_test(keep_alive_serves_many_requests_on_one_connection),
      cmocka_unit_test(http10_closes_unless_keep_alive_is_asked),
      cmocka_unit_test(pipelined_requests_are_answered_in_order),
      cmocka_unit_test(pipelined_requests_split_at_every_byte),
      cmocka_unit_test(malformed_request_is_400_then_closed),
      cmocka_unit_test(other_http_major_versions_are_505),
      cmocka_unit_test(cors_preflight_on_public_surfaces),
      cmocka_unit_test(management_paths_send_no_cors),
      cmocka_unit_test(metrics_count_requests_and_connections),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
