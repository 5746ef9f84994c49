#include "api/ops.h"

#include "util/metrics.h"

static void healthz(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(req);
  FW_UNUSED(ctx);
  static const char body[] = "{\"status\":\"ok\"}";
  if (fw_http_set_json(res, 200, body, sizeof body - 1))
    res->status = 500;
}

static void readyz(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_ops_state *state = ctx;
  static const char body[] = "{\"status\":\"ready\"}";
  int rc;
  if (atomic_load(&state->ready)) {
    rc = fw_http_set_json(res, 200, body, sizeof body - 1);
  } else {
    rc = fw_http_set_error(res, req, 503, "not_ready",
                           "the store is not open, the state is not loaded, or the server is "
                           "stopping");
    if (!rc)
      rc = fw_http_add_header(res, "Retry-After", "1");
  }
  if (rc)
    res->status = 500;
}

static void metrics(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(ctx);
  res->content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (fw_metrics_render(res->body) != FW_OK &&
      fw_http_set_error(res, req, 500, "internal", "metrics could not be rendered") != FW_OK)
    res->status = 500;
}

static void version(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  FW_UNUSED(req);
  FW_UNUSED(ctx);
  static const char body[] = "{\"name\":\"flagwire\",\"version\":\"" FLAGWIRE_VERSION "\"}";
  if (fw_http_set_json(res, 200, body, sizeof body - 1))
    res->status = 500;
}

int fw_ops_register(struct fw_router *router, struct fw_ops_state *state) {
  int rc = fw_router_add(router, FW_HTTP_GET, "/healthz", healthz, NULL);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_GET, "/readyz", readyz, state);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_GET, "/metrics", metrics, NULL);
  if (!rc)
    rc = fw_router_add(router, FW_HTTP_GET, "/version", version, NULL);
  return rc;
}
