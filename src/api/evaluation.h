/* What every evaluation surface (api/eval.c, api/ofrep.c, api/flagsmith.c) shares:
 * reading the context from a request, evaluating a flag state of an environment, and
 * strong ETags.
 *
 * Thread: loop threads, inside handlers. */
#ifndef FW_API_EVALUATION_H
#define FW_API_EVALUATION_H

#include <stdbool.h>

#include "api/keys.h"
#include "core/eval.h"
#include "net/http.h"
#include "state/compiled.h"

/* Reads the context of an evaluation request: member "context" of a JSON object body
 * (absent, or an empty body: an empty context). On failure returns false with
 * *error_code PARSE_ERROR or INVALID_CONTEXT and `error` explaining; *out is then NULL.
 * Caller owns *out: fw_eval_context_free. */
bool fw_evaluation_context(const struct fw_http_request *req, struct fw_eval_context **out,
                           enum fw_eval_error *error_code, char *error, size_t error_len);

/* Whether the key of `scope` may see flag state `state`. */
bool fw_evaluation_visible(const struct fw_key_scope *scope, const struct fw_object *state);

/* A strong ETag of `body` (the quoted start of its SHA-256), into `out` (40 bytes). */
void fw_evaluation_etag(const struct fw_buf *body, char out[40]);

/* Whether If-None-Match names `etag` (or is `*`). */
bool fw_evaluation_not_modified(const struct fw_http_request *req, const char *etag);

#endif
