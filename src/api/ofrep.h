/* OpenFeature's Remote Evaluation Protocol (OFREP): single and bulk flag evaluation under
 * /ofrep/v1, with a client or server key as `Authorization: Bearer`. A client key sees
 * client-visible flags only; any other flag is FLAG_NOT_FOUND to it. The bulk answer
 * carries a strong ETag of its exact bytes and answers 304 to If-None-Match.
 *
 * Thread: handlers run on loop threads. */
#ifndef FW_API_OFREP_H
#define FW_API_OFREP_H

#include "net/router.h"
#include "state/writer.h"

struct fw_ofrep {
  struct fw_writer *writer; /* borrowed: the loops' adopted worlds */
};

FW_MUST_CHECK int fw_ofrep_register(struct fw_router *router, struct fw_ofrep *ofrep);

#endif
