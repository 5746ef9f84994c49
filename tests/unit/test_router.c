#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/router.h"

static void handler_a(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  (void)req, (void)res, (void)ctx;
}
static void handler_b(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  (void)req, (void)res, (void)ctx;
}

static struct fw_router router;

static int setup(void **state) {
  (void)state;
  fw_router_init(&router);
  assert_int_equal(fw_router_add(&router, FW_HTTP_GET, "/healthz", handler_a, NULL), FW_OK);
  assert_int_equal(fw_router_add(&router, FW_HTTP_GET,
                                 "/v1/projects/{project}/environments/{env}/flags/{key}", handler_a,
                                 NULL),
                   FW_OK);
  assert_int_equal(fw_router_add(&router, FW_HTTP_PATCH,
                                 "/v1/projects/{project}/environments/{env}/flags/{key}", handler_b,
                                 NULL),
                   FW_OK);
  assert_int_equal(fw_router_add(&router, FW_HTTP_GET, "/api/v1/flags/", handler_b, NULL), FW_OK);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fw_router_free(&router);
  return 0;
}

static struct fw_http_request request(enum fw_http_method method, const char *path) {
  struct fw_http_request req = {.method = method, .path = path, .path_len = strlen(path)};
  return req;
}

static enum fw_route_result match(struct fw_http_request *req, const struct fw_route **route,
                                  char *allow) {
  static char storage[256];
  return fw_router_match(&router, req, storage, sizeof storage, route, allow, 128);
}

static void matches_and_captures_decoded_params(void **state) {
  (void)state;
  const struct fw_route *route = NULL;
  char allow[128];
  struct fw_http_request req =
      request(FW_HTTP_PATCH, "/v1/projects/shop/environments/prod/flags/new%2Dcheckout");
  assert_int_equal(match(&req, &route, allow), FW_ROUTE_FOUND);
  assert_ptr_equal(route->handler, handler_b);
  assert_int_equal(req.param_count, 3);
  assert_string_equal(fw_http_param(&req, "project"), "shop");
  assert_string_equal(fw_http_param(&req, "env"), "prod");
  assert_string_equal(fw_http_param(&req, "key"), "new-checkout");
  assert_null(fw_http_param(&req, "missing"));
  assert_int_equal(route->index, 2);
}

static void head_uses_get_routes(void **state) {
  (void)state;
  const struct fw_route *route = NULL;
  char allow[128];
  struct fw_http_request req = request(FW_HTTP_HEAD, "/healthz");
  assert_int_equal(match(&req, &route, allow), FW_ROUTE_FOUND);
  assert_string_equal(route->pattern, "/healthz");
}

static void wrong_method_lists_allowed(void **state) {
  (void)state;
  const struct fw_route *route = NULL;
  char allow[128];
  struct fw_http_request req = request(FW_HTTP_DELETE, "/v1/projects/a/environments/b/flags/c");
  assert_int_equal(match(&req, &route, allow), FW_ROUTE_WRONG_METHOD);
  assert_string_equal(allow, "GET, HEAD, PATCH");
}

static void not_found_cases(void **state) {
  (void)state;
  const struct fw_route *route = NULL;
  char allow[128];
  const char *paths[] = {
      "/healthz/",                               /* a trailing slash is another path */
      "/healthzz",                               /* prefixes do not match */
      "/v1/projects//environments/b/flags/c",    /* empty parameter */
      "/v1/projects/a/environments/b/flags",     /* too short */
      "/v1/projects/a/environments/b/flags/c/d", /* too long */
      "/api/v1/flags",                           /* the pattern ends with a slash */
      "",
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(paths); i++) {
    struct fw_http_request req = request(FW_HTTP_GET, paths[i]);
    assert_int_equal(match(&req, &route, allow), FW_ROUTE_NOT_FOUND);
  }
  struct fw_http_request ok = request(FW_HTTP_GET, "/api/v1/flags/");
  assert_int_equal(match(&ok, &route, allow), FW_ROUTE_FOUND);
}

static void bad_escapes_and_oversize_params_are_not_found(void **state) {
  (void)state;
  const struct fw_route *route = NULL;
  char allow[128];
  const char *paths[] = {
      "/v1/projects/a%2/environments/b/flags/c",   /* truncated escape */
      "/v1/projects/a%zz/environments/b/flags/c",  /* not hex */
      "/v1/projects/a%00b/environments/b/flags/c", /* encoded NUL */
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(paths); i++) {
    struct fw_http_request req = request(FW_HTTP_GET, paths[i]);
    assert_int_equal(match(&req, &route, allow), FW_ROUTE_NOT_FOUND);
  }
  char long_path[600];
  memset(long_path, 'k', sizeof long_path);
  memcpy(long_path, "/v1/projects/", 13);
  strcpy(long_path + 500, "/environments/b/flags/c");
  struct fw_http_request req = request(FW_HTTP_GET, long_path);
  assert_int_equal(match(&req, &route, allow), FW_ROUTE_NOT_FOUND);
}

static void rejects_malformed_patterns(void **state) {
  (void)state;
  struct fw_router r;
  fw_router_init(&r);
  assert_int_equal(fw_router_add(&r, FW_HTTP_GET, "healthz", handler_a, NULL), FW_EINVAL);
  assert_int_equal(fw_router_add(&r, FW_HTTP_GET, "/a{b}", handler_a, NULL), FW_EINVAL);
  assert_int_equal(
      fw_router_add(&r, FW_HTTP_GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", handler_a, NULL),
      FW_EINVAL);
  assert_int_equal(r.count, 0);
  fw_router_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(matches_and_captures_decoded_params, setup, teardown),
      cmocka_unit_test_setup_teardown(head_uses_get_routes, setup, teardown),
      cmocka_unit_test_setup_teardown(wrong_method_lists_allowed, setup, teardown),
      cmocka_unit_test_setup_teardown(not_found_cases, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_escapes_and_oversize_params_are_not_found, setup,
                                      teardown),
      cmocka_unit_test(rejects_malformed_patterns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
