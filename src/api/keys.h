/* Environment keys on the public read surfaces: which environment a request may read, and
 * as what (a server key sees definitions and every flag; a client key sees values of
 * client-visible flags only).
 *
 * Thread: loop threads, inside handlers. */
#ifndef FW_API_KEYS_H
#define FW_API_KEYS_H

#include <stdbool.h>

#include "net/http.h"
#include "state/writer.h"

/* Which kinds of key a surface takes. */
#define FW_KEYS_SERVER 1u
#define FW_KEYS_CLIENT 2u

struct fw_key_scope {
  const struct fw_world *world; /* the loop's adopted world, borrowed for the handler */
  struct fw_project_node *project;
  struct fw_env_node *env;
  enum fw_credential_kind kind;           /* FW_CREDENTIAL_SERVER or FW_CREDENTIAL_CLIENT */
  const struct fw_credential *credential; /* in `world` */
};

/* Reads the key from `header` ("Authorization" takes `Bearer <key>`; any other header
 * the bare key, as Flagsmith's X-Environment-Key) and finds its environment. Kinds not
 * in `accept` are refused. False with the answer set: 401 missing, unknown or expired;
 * 403 for an admin token or a kind this surface does not take. */
bool fw_keys_authorize(const struct fw_writer *writer, const struct fw_http_request *req,
                       struct fw_http_response *res, const char *header, unsigned accept,
                       struct fw_key_scope *out);

/* A stream's key (SSE or WebSocket): `Authorization: Bearer`, else `?key=`, which only a
 * client key may use (browsers cannot set headers on EventSource or WebSocket; a server
 * key in a URL would end up in logs): 401 key_in_url for any other. */
bool fw_keys_authorize_stream(const struct fw_writer *writer, const struct fw_http_request *req,
                              struct fw_http_response *res, unsigned accept,
                              struct fw_key_scope *out);

/* The same for a key already read from the request (`value`, `len` bytes). */
bool fw_keys_authorize_text(const struct fw_writer *writer, const struct fw_http_request *req,
                            struct fw_http_response *res, const char *value, size_t len,
                            unsigned accept, struct fw_key_scope *out);

#endif
