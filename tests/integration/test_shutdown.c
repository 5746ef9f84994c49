/* Stopping the real binary with signals while clients are connected: requests in flight
 * finish, idle connections close, the wait is bounded, a second signal forces the stop,
 * and SIGHUP reopens the log file. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Whether a new connection to `port` is refused (the listeners are closed). */
static bool connection_refused(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool refused = connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno == ECONNREFUSED;
  close(fd);
  return refused;
}

static int idle_connection(uint16_t port) {
  int fd = fwt_connect(port);
  fwt_sendf(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(fd, &res, false));
  assert_int_equal(res.status, 200);
  fwt_response_free(&res);
  return fd;
}

static void sigterm_finishes_requests_in_flight(void **state) {
  (void)state;
  struct fwt_server server;
  const char *args[] = {"--shutdown-timeout", "8s", "--threads", "2", NULL};
  fwt_server_start(&server, args, NULL);

  int idle = idle_connection(server.port);
  int busy = fwt_connect(server.port);
  fwt_sendf(busy, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: in-flight\r\n");
  fwt_sleep_ms(100); /* the server has read the first half of the request */

  assert_int_equal(kill(server.pid, SIGTERM), 0);
  /* Idle connections close at once; the listeners stop accepting. */
  assert_true(fwt_wait_closed(idle, FWT_WAIT_MS, NULL, 0));
  fwt_close(idle);
  bool refused = false;
  for (int attempt = 0; attempt < 100 && !refused; attempt++) {
    refused = connection_refused(server.port);
    if (!refused)
      fwt_sleep_ms(20);
  }
  assert_true(refused);
  assert_int_equal(fwt_server_wait(&server, 200), -1); /* still waiting for `busy` */

  /* The request in flight completes and is answered, with Connection: close. */
  fwt_sendf(busy, "\r\n");
  struct fwt_response res;
  assert_true(fwt_read_response(busy, &res, false));
  assert_int_equal(res.status, 200);
  char value[32];
  assert_true(fwt_header(&res, "X-Request-Id", value, sizeof value));
  assert_string_equal(value, "in-flight");
  assert_true(fwt_header(&res, "Connection", value, sizeof value));
  assert_string_equal(value, "close");
  fwt_response_free(&res);
  assert_true(fwt_wait_closed(busy, FWT_WAIT_MS, NULL, 0));
  fwt_close(busy);

  int status = fwt_server_wait(&server, FWT_WAIT_MS);
  assert_int_equal(status, 0);
  fwt_server_cleanup(&server);
}

static void shutdown_timeout_bounds_the_wait(void **state) {
  (void)state;
  struct fwt_server server;
  const char *args[] = {"--shutdown-timeout", "1s", NULL};
  fwt_server_start(&server, args, NULL);
  int stuck = fwt_connect(server.port);
  fwt_sendf(stuck, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nnever ends");
  fwt_sleep_ms(100);
  uint64_t start = fwt_now_ms();
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGTERM, FWT_WAIT_MS), 0);
  uint64_t took = fwt_now_ms() - start;
  assert_true(took >= 900);
  assert_true(took < 4000);
  assert_true(fwt_wait_closed(stuck, FWT_WAIT_MS, NULL, 0));
  fwt_close(stuck);
  fwt_server_cleanup(&server);
}

static void sigint_stops_like_sigterm(void **state) {
  (void)state;
  struct fwt_server server;
  fwt_server_start(&server, NULL, NULL);
  int idle = idle_connection(server.port);
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGINT, FWT_WAIT_MS), 0);
  assert_true(fwt_wait_closed(idle, FWT_WAIT_MS, NULL, 0));
  fwt_close(idle);
  char *log = fwt_server_log(&server);
  assert_non_null(strstr(log, "\"signal\":\"SIGINT\""));
  assert_non_null(strstr(log, "\"msg\":\"stopped\""));
  free(log);
  fwt_server_cleanup(&server);
}

static void second_signal_forces_the_stop(void **state) {
  (void)state;
  struct fwt_server server;
  const char *args[] = {"--shutdown-timeout", "60s", NULL};
  fwt_server_start(&server, args, NULL);
  int stuck = fwt_connect(server.port);
  fwt_sendf(stuck, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
  fwt_sleep_ms(100);
  assert_int_equal(kill(server.pid, SIGTERM), 0);
  assert_int_equal(fwt_server_wait(&server, 300), -1);
  uint64_t start = fwt_now_ms();
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGTERM, FWT_WAIT_MS), 0);
  assert_true(fwt_now_ms() - start < 2000);
  assert_true(fwt_wait_closed(stuck, FWT_WAIT_MS, NULL, 0));
  fwt_close(stuck);
  fwt_server_cleanup(&server);
}

/* Waits until the file at `path` contains `text`. */
static bool file_gets(const char *path, const char *text) {
  for (int attempt = 0; attempt < 100; attempt++) {
    FILE *file = fopen(path, "r");
    if (file) {
      char content[65536];
      size_t len = fread(content, 1, sizeof content - 1, file);
      fclose(file);
      content[len] = '\0';
      if (strstr(content, text))
        return true;
    }
    fwt_sleep_ms(20);
  }
  return false;
}

static void sighup_reopens_the_log_file(void **state) {
  (void)state;
  char dir[] = "/tmp/flagwire-logs-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char log_path[128], rotated[128];
  snprintf(log_path, sizeof log_path, "%s/flagwire.log", dir);
  snprintf(rotated, sizeof rotated, "%s/flagwire.log.1", dir);
  struct fwt_server server;
  const char *args[] = {"--log-file", log_path, "--log-level", "debug", NULL};
  fwt_server_start(&server, args, NULL);

  struct fwt_response res;
  fwt_exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: before\r\n\r\n",
               &res);
  fwt_response_free(&res);
  assert_true(file_gets(log_path, "\"request_id\":\"before\""));

  /* What logrotate does: rename, then signal. */
  assert_int_equal(rename(log_path, rotated), 0);
  assert_int_equal(kill(server.pid, SIGHUP), 0);
  bool reopened = false;
  for (int attempt = 0; attempt < 100 && !reopened; attempt++) {
    fwt_exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: after\r\n\r\n",
                 &res);
    fwt_response_free(&res);
    reopened = access(log_path, F_OK) == 0 && file_gets(log_path, "\"request_id\":\"after\"");
  }
  assert_true(reopened);
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGTERM, FWT_WAIT_MS), 0);
  fwt_server_cleanup(&server);
  unlink(log_path);
  unlink(rotated);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sigterm_finishes_requests_in_flight),
      cmocka_unit_test(shutdown_timeout_bounds_the_wait),
      cmocka_unit_test(sigint_stops_like_sigterm),
      cmocka_unit_test(second_signal_forces_the_stop),
      cmocka_unit_test(sighup_reopens_the_log_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
