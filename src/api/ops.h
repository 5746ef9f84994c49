/* Operations endpoints: /healthz, /readyz, /metrics and /version. */
#ifndef FW_API_OPS_H
#define FW_API_OPS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "net/router.h"

/* What the operations endpoints report on; owned by the application. */
struct fw_ops_state {
  _Atomic bool ready; /* the store is open, the state loaded, and no stop has begun */
};

/* Adds the operations routes; `state` is borrowed for the router's life. */
FW_MUST_CHECK int fw_ops_register(struct fw_router *router, struct fw_ops_state *state);

#endif
