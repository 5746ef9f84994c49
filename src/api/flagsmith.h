/* Flagsmith-compatible client endpoints, so Flagsmith's SDKs work unmodified: the client
 * (or server) key in `X-Environment-Key`; `GET /api/v1/flags/` for the environment's
 * flags, `GET /api/v1/identities/?identifier=` and `POST /api/v1/identities/` (traits
 * become context attributes, the identifier the targeting key) for an identity's. Answers
 * in Flagsmith's JSON shape with `x-flagsmith-document-updated-at`: the environment's
 * last change in seconds since the epoch, the same figure its stream will publish.
 *
 * Flagsmith has an `enabled` and a `feature_state_value` per flag: a boolean flag maps
 * its value to `enabled` (value null); any other maps the state's on/off to `enabled`
 * and its value to `feature_state_value` (a JSON flag's value as JSON text).
 *
 * Nothing is remembered about identities: each request is evaluated as it comes.
 *
 * Thread: handlers run on loop threads. */
#ifndef FW_API_FLAGSMITH_H
#define FW_API_FLAGSMITH_H

#include "net/router.h"
#include "state/writer.h"

struct fw_flagsmith {
  struct fw_writer *writer; /* borrowed: the loops' adopted worlds */
};

FW_MUST_CHECK int fw_flagsmith_register(struct fw_router *router, struct fw_flagsmith *flagsmith);

#endif
