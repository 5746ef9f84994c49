/* The management API under /v1/projects (docs/api.md): authenticated with an admin token
 * (`Authorization: Bearer fw_adm_...`), roles viewer < editor < admin. Reads come from the
 * loop's adopted world and never touch the store; writes go to the writer and are
 * answered once durable and adopted by every loop.
 *
 * Thread: handlers run on loop threads. */
#ifndef FW_API_ADMIN_H
#define FW_API_ADMIN_H

#include "net/router.h"
#include "state/writer.h"

struct fw_admin {
  struct fw_writer *writer; /* borrowed */
};

/* Adds the management routes. `admin` must outlive the router. */
FW_MUST_CHECK int fw_admin_register(struct fw_router *router, struct fw_admin *admin);

#endif
