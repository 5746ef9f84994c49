/* flagwire's own evaluation surface: `GET /v1/flags` (server key: the environment's full
 * definitions, with a strong ETag and 304) and `POST /v1/evaluate` (client or server key:
 * the value of every flag and config the key may see, for the context in the body).
 *
 * Thread: handlers run on loop threads. */
#ifndef FW_API_EVAL_H
#define FW_API_EVAL_H

#include "net/router.h"
#include "state/writer.h"

struct fw_eval_api {
  struct fw_writer *writer; /* borrowed: the loops' adopted worlds */
};

FW_MUST_CHECK int fw_eval_api_register(struct fw_router *router, struct fw_eval_api *api);

#endif
