/* Routing by method and path pattern, with `{name}` parameters ("/v1/projects/{project}").
 *
 * Routes are added before the loops start and only read afterwards, so one router is
 * shared by every loop without locks. */
#ifndef FW_NET_ROUTER_H
#define FW_NET_ROUTER_H

#include <stddef.h>

#include "net/http.h"

/* Produces the response to `req` before returning. `ctx` is what fw_router_add was
 * given. Runs on the loop thread of the connection. */
typedef void (*fw_http_handler)(struct fw_http_request *req, struct fw_http_response *res,
                                void *ctx);

#define FW_ROUTER_MAX_SEGMENTS 12

struct fw_route {
  enum fw_http_method method;
  const char *pattern; /* owned copy; also the route's label in metrics */
  fw_http_handler handler;
  void *ctx;
  size_t index; /* position in the router, for per-route tables */
  size_t segment_count;
  struct {
    const char *text; /* points into `pattern`; a parameter's name for parameters */
    size_t len;
    int is_param;
  } segments[FW_ROUTER_MAX_SEGMENTS];
};

struct fw_router {
  struct fw_route *routes;
  size_t count, cap;
};

enum fw_route_result { FW_ROUTE_FOUND, FW_ROUTE_NOT_FOUND, FW_ROUTE_WRONG_METHOD };

void fw_router_init(struct fw_router *router);
void fw_router_free(struct fw_router *router);

/* Adds a route; `pattern` is copied. FW_EINVAL for a malformed pattern (it must start
 * with '/', have at most FW_ROUTER_MAX_SEGMENTS segments and FW_HTTP_MAX_PARAMS
 * parameters, each parameter a whole segment), FW_ENOMEM. */
FW_MUST_CHECK int fw_router_add(struct fw_router *router, enum fw_http_method method,
                                const char *pattern, fw_http_handler handler, void *ctx);

/* Finds the route for `req` (HEAD is served by GET routes) and fills req->params, whose
 * values are percent-decoded into `storage` (`storage_len` bytes). On WRONG_METHOD,
 * `allow` receives the methods the path does accept ("GET, HEAD, POST"). A path whose
 * parameters do not decode or do not fit `storage` is NOT_FOUND. */
enum fw_route_result fw_router_match(const struct fw_router *router, struct fw_http_request *req,
                                     char *storage, size_t storage_len,
                                     const struct fw_route **route, char *allow, size_t allow_len);

#endif
