#include "net/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/digest.h"

void fw_router_init(struct fw_router *router) { memset(router, 0, sizeof *router); }

void fw_router_free(struct fw_router *router) {
  for (size_t i = 0; i < router->count; i++)
    free((char *)router->routes[i].pattern);
  free(router->routes);
  memset(router, 0, sizeof *router);
}

static int parse_pattern(struct fw_route *route) {
  const char *p = route->pattern;
  if (*p != '/')
    return FW_EINVAL;
  size_t params = 0;
  while (*p == '/') {
    p++;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (route->segment_count == FW_ROUTER_MAX_SEGMENTS)
      return FW_EINVAL;
    bool is_param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
    if (!is_param && (memchr(p, '{', len) || memchr(p, '}', len)))
      return FW_EINVAL;
    if (is_param && ++params > FW_HTTP_MAX_PARAMS)
      return FW_EINVAL;
    route->segments[route->segment_count].text = is_param ? p + 1 : p;
    route->segments[route->segment_count].len = is_param ? len - 2 : len;
    route->segments[route->segment_count].is_param = is_param;
    route->segment_count++;
    p += len;
  }
  return FW_OK;
}

int fw_router_add(struct fw_router *router, enum fw_http_method method, const char *pattern,
                  fw_http_handler handler, void *ctx) {
  if (router->count == router->cap) {
    size_t cap = router->cap ? router->cap * 2 : 16;
    struct fw_route *grown = realloc(router->routes, cap * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    router->routes = grown;
    router->cap = cap;
  }
  struct fw_route *route = &router->routes[router->count];
  memset(route, 0, sizeof *route);
  route->pattern = strdup(pattern);
  if (!route->pattern)
    return FW_ENOMEM;
  route->method = method;
  route->handler = handler;
  route->ctx = ctx;
  route->index = router->count;
  int rc = parse_pattern(route);
  if (rc) {
    free((char *)route->pattern);
    return rc;
  }
  router->count++;
  return FW_OK;
}

/* Percent-decodes `len` bytes into `out` and NUL-terminates; returns the decoded length,
 * or -1 for a bad escape, an encoded NUL or a lack of room. */
static long decode_segment(const char *in, size_t len, char *out, size_t room) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= len)
        return -1;
      int hi = fw_hex_value(in[i + 1]), lo = fw_hex_value(in[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (n + 1 >= room)
      return -1;
    out[n++] = c;
  }
  if (n >= room)
    return -1;
  out[n] = '\0';
  return (long)n;
}

/* Matches the path against the route's segments, without capturing. */
static bool path_matches(const struct fw_route *route, const char *path, size_t path_len) {
  const char *p = path;
  const char *end = path + path_len;
  for (size_t s = 0; s < route->segment_count; s++) {
    if (p >= end || *p != '/')
      return false;
    p++;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t len = (size_t)((slash ? slash : end) - p);
    if (route->segments[s].is_param) {
      if (len == 0)
        return false;
    } else if (len != route->segments[s].len || memcmp(p, route->segments[s].text, len) != 0) {
      return false;
    }
    p += len;
  }
  return p == end;
}

static bool capture(const struct fw_route *route, struct fw_http_request *req, char *storage,
                    size_t storage_len) {
  const char *p = req->path;
  const char *end = req->path + req->path_len;
  size_t used = 0;
  req->param_count = 0;
  for (size_t s = 0; s < route->segment_count; s++) {
    p++;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t len = (size_t)((slash ? slash : end) - p);
    if (route->segments[s].is_param) {
      long decoded = decode_segment(p, len, storage + used, storage_len - used);
      if (decoded <= 0)
        return false;
      struct fw_http_param *param = &req->params[req->param_count++];
      param->name = route->segments[s].text;
      param->name_len = route->segments[s].len;
      param->value = storage + used;
      param->value_len = (size_t)decoded;
      used += (size_t)decoded + 1;
    }
    p += len;
  }
  return true;
}

static bool method_matches(enum fw_http_method route_method, enum fw_http_method method) {
  return route_method == method || (method == FW_HTTP_HEAD && route_method == FW_HTTP_GET);
}

enum fw_route_result fw_router_match(const struct fw_router *router, struct fw_http_request *req,
                                     char *storage, size_t storage_len,
                                     const struct fw_route **route, char *allow, size_t allow_len) {
  bool allowed[FW_HTTP_METHOD_COUNT] = {false};
  bool path_known = false;
  for (size_t i = 0; i < router->count; i++) {
    const struct fw_route *candidate = &router->routes[i];
    if (!path_matches(candidate, req->path, req->path_len))
      continue;
    if (method_matches(candidate->method, req->method)) {
      if (!capture(candidate, req, storage, storage_len))
        return FW_ROUTE_NOT_FOUND;
      *route = candidate;
      return FW_ROUTE_FOUND;
    }
    path_known = true;
    allowed[candidate->method] = true;
    if (candidate->method == FW_HTTP_GET)
      allowed[FW_HTTP_HEAD] = true;
  }
  if (!path_known)
    return FW_ROUTE_NOT_FOUND;
  size_t n = 0;
  allow[0] = '\0';
  for (int m = 0; m < FW_HTTP_METHOD_COUNT; m++) {
    if (allowed[m] && n < allow_len)
      n += (size_t)snprintf(allow + n, allow_len - n, "%s%s", n ? ", " : "",
                            fw_http_method_name((enum fw_http_method)m));
  }
  return FW_ROUTE_WRONG_METHOD;
}
