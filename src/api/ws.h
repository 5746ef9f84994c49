/* The WebSocket surface (docs/protocol.md section 6): `GET /v1/ws` checks the handshake,
 * the key and the browser's origin before any upgrade, then hands the socket to the hub;
 * each message the client sends afterwards (subscribe, unsubscribe, evaluate, ping) is
 * read and answered here.
 *
 * Thread: everything runs on loop threads. */
#ifndef FW_API_WS_H
#define FW_API_WS_H

#include "hub/hub.h"
#include "net/router.h"
#include "state/writer.h"

struct fw_ws_api {
  struct fw_writer *writer; /* borrowed: the loops' adopted worlds */
  struct fw_hub *hub;       /* borrowed */
};

/* Adds the route and makes this surface the hub's handler of socket messages. */
FW_MUST_CHECK int fw_ws_api_register(struct fw_router *router, struct fw_ws_api *api);

#endif
