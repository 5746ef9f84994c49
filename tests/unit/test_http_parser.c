#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "net/http_parser.h"

#define MAX_SEEN 8

/* What the hooks saw, copied out because the request is borrowed. */
struct seen {
  int headers_calls;
  int requests;
  char targets[MAX_SEEN][128];
  char paths[MAX_SEEN][128];
  char queries[MAX_SEEN][128];
  char bodies[MAX_SEEN][256];
  char host[MAX_SEEN][64];
  bool keep_alive[MAX_SEEN];
  enum fw_http_method methods[MAX_SEEN];
  int stop_after; /* say STOP after this many requests; 0 never */
};

static enum fw_http_read_verdict on_headers(void *ctx, struct fw_http_request *req) {
  (void)req;
  ((struct seen *)ctx)->headers_calls++;
  return FW_HTTP_CONTINUE;
}

static enum fw_http_read_verdict on_request(void *ctx, struct fw_http_request *req) {
  struct seen *s = ctx;
  int i = s->requests++;
  assert_true(i < MAX_SEEN);
  snprintf(s->targets[i], 128, "%.*s", (int)req->target_len, req->target);
  snprintf(s->paths[i], 128, "%.*s", (int)req->path_len, req->path);
  if (req->query)
    snprintf(s->queries[i], 128, "%.*s", (int)req->query_len, req->query);
  if (req->body)
    snprintf(s->bodies[i], 256, "%.*s", (int)req->body_len, req->body);
  size_t len;
  const char *host = fw_http_header(req, "host", &len);
  if (host)
    snprintf(s->host[i], 64, "%.*s", (int)len, host);
  s->keep_alive[i] = req->keep_alive;
  s->methods[i] = req->method;
  return s->stop_after && s->requests >= s->stop_after ? FW_HTTP_STOP : FW_HTTP_CONTINUE;
}

static const struct fw_http_reader_hooks hooks = {.on_headers = on_headers,
                                                  .on_request = on_request};
static const struct fw_http_limits limits = {.max_header_bytes = 1024, .max_body_bytes = 64};

struct fixture {
  struct fw_http_reader reader;
  struct fw_http_message_pool pool;
  struct seen seen;
};

static int setup(void **state) {
  static struct fixture f;
  memset(&f, 0, sizeof f);
  fw_http_reader_init(&f.reader, &limits, &hooks, &f.pool, &f.seen);
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  fw_http_reader_release(&f->reader);
  fw_http_message_pool_drain(&f->pool);
  return 0;
}

static size_t feed(struct fixture *f, const char *text) {
  return fw_http_reader_feed(&f->reader, text, strlen(text));
}

static void parses_a_request_fed_one_byte_at_a_time(void **state) {
  struct fixture *f = *state;
  const char text[] = "POST /v1/projects?limit=5 HTTP/1.1\r\nHost: example\r\n"
                      "Content-Length: 5\r\nX-Long: a\r\n\r\nhello";
  for (size_t i = 0; i < sizeof text - 1; i++) {
    assert_int_equal(fw_http_reader_feed(&f->reader, text + i, 1), 1);
    if (i < sizeof text - 7)
      assert_true(fw_http_reader_reading_headers(&f->reader) ||
                  fw_http_reader_reading_body(&f->reader));
  }
  assert_int_equal(f->seen.requests, 1);
  assert_int_equal(f->seen.headers_calls, 1);
  assert_int_equal(f->seen.methods[0], FW_HTTP_POST);
  assert_string_equal(f->seen.targets[0], "/v1/projects?limit=5");
  assert_string_equal(f->seen.paths[0], "/v1/projects");
  assert_string_equal(f->seen.queries[0], "limit=5");
  assert_string_equal(f->seen.host[0], "example");
  assert_string_equal(f->seen.bodies[0], "hello");
  assert_true(f->seen.keep_alive[0]);
  /* Idle again: no storage is held between requests. */
  assert_null(f->reader.message);
  assert_false(fw_http_reader_reading_headers(&f->reader));
}

static void pipelined_requests_arrive_in_order(void **state) {
  struct fixture *f = *state;
  feed(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n"
          "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  assert_int_equal(f->reader.error, FW_HTTP_READ_OK);
  assert_int_equal(f->seen.requests, 3);
  assert_string_equal(f->seen.paths[0], "/a");
  assert_string_equal(f->seen.paths[1], "/b");
  assert_string_equal(f->seen.host[1], "y");
  assert_string_equal(f->seen.bodies[2], "abcde");
}

static void stop_leaves_the_rest_unconsumed(void **state) {
  struct fixture *f = *state;
  f->seen.stop_after = 1;
  const char text[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  size_t consumed = feed(f, text);
  assert_int_equal(f->seen.requests, 1);
  assert_true(f->reader.stopped);
  assert_int_equal(f->reader.error, FW_HTTP_READ_OK);
  assert_true(consumed < sizeof text - 1);
}

static void http10_is_not_kept_alive(void **state) {
  struct fixture *f = *state;
  feed(f, "GET / HTTP/1.0\r\n\r\n");
  assert_int_equal(f->seen.requests, 1);
  assert_false(f->seen.keep_alive[0]);
}

static void headers_past_the_cap(void **state) {
  struct fixture *f = *state;
  char text[2048];
  int n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nX-Big: ");
  memset(text + n, 'a', 1200);
  strcpy(text + n + 1200, "\r\n\r\n");
  feed(f, text);
  assert_int_equal(f->reader.error, FW_HTTP_READ_HEADERS_TOO_LARGE);
  assert_int_equal(f->seen.requests, 0);
}

static void too_many_header_lines(void **state) {
  struct fixture *f = *state;
  static char text[4096];
  size_t n = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
  for (int i = 0; i <= FW_HTTP_MAX_HEADERS; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "h:\r\n");
  snprintf(text + n, sizeof text - n, "\r\n");
  feed(f, text);
  assert_int_equal(f->reader.error, FW_HTTP_READ_HEADERS_TOO_LARGE);
}

static void body_past_the_cap_by_length_or_chunks(void **state) {
  struct fixture *f = *state;
  feed(f, "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
  assert_int_equal(f->reader.error, FW_HTTP_READ_BODY_TOO_LARGE);
  assert_int_equal(f->seen.headers_calls, 0);

  struct fixture g;
  memset(&g, 0, sizeof g);
  fw_http_reader_init(&g.reader, &limits, &hooks, &g.pool, &g.seen);
  feed(&g, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n");
  char chunk[65];
  memset(chunk, 'z', 64);
  chunk[64] = '\0';
  feed(&g, chunk);
  assert_int_equal(g.reader.error, FW_HTTP_READ_OK);
  feed(&g, "\r\n1\r\n");
  feed(&g, "z");
  assert_int_equal(g.reader.error, FW_HTTP_READ_BODY_TOO_LARGE);
  fw_http_reader_release(&g.reader);
  fw_http_message_pool_drain(&g.pool);
}

static void malformed_input(void **state) {
  struct fixture *f = *state;
  feed(f, "GARBAGE\r\n\r\n");
  assert_int_equal(f->reader.error, FW_HTTP_READ_MALFORMED);
}

static void pool_recycles_messages(void **state) {
  struct fixture *f = *state;
  for (int i = 0; i < 5; i++)
    feed(f, "GET /x HTTP/1.1\r\n\r\n");
  assert_int_equal(f->seen.requests, 5);
  assert_int_equal(f->pool.count, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(parses_a_request_fed_one_byte_at_a_time, setup, teardown),
      cmocka_unit_test_setup_teardown(pipelined_requests_arrive_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(stop_leaves_the_rest_unconsumed, setup, teardown),
      cmocka_unit_test_setup_teardown(http10_is_not_kept_alive, setup, teardown),
      cmocka_unit_test_setup_teardown(headers_past_the_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(too_many_header_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(body_past_the_cap_by_length_or_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(malformed_input, setup, teardown),
      cmocka_unit_test_setup_teardown(pool_recycles_messages, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
