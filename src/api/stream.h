/* The streaming surfaces (docs/protocol.md): `GET|POST /v1/stream` (Server-Sent Events of
 * every change a key may see), Flagsmith's `GET /sse/environments/{key}/stream` and the
 * OFREP change stream `GET /ofrep/v1/stream`. Handlers read and check the request, then
 * hand the subscription to the hub.
 *
 * Thread: handlers run on loop threads. */
#ifndef FW_API_STREAM_H
#define FW_API_STREAM_H

#include "hub/hub.h"
#include "net/router.h"
#include "state/writer.h"

struct fw_stream_api {
  struct fw_writer *writer; /* borrowed: the loops' adopted worlds */
  struct fw_hub *hub;       /* borrowed */
};

FW_MUST_CHECK int fw_stream_api_register(struct fw_router *router, struct fw_stream_api *api);

#endif
