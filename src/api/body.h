/* Reading JSON request bodies field by field, with the error a client needs when a field
 * is wrong: 400 for a body that is not a JSON object, 422 naming the field for an
 * unknown field, a missing one, a wrong type or a value out of bounds.
 *
 * Values are read from the raw text (util/rawjson.h), so a field the user owns (a variant
 * or config value) keeps its exact bytes.
 *
 * Thread: any; a body is used by one thread. */
#ifndef FW_API_BODY_H
#define FW_API_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "net/http.h"
#include "util/rawjson.h"

struct fw_body {
  struct fw_rawjson root; /* the object */
  /* The first error, if any: every later call returns false at once. */
  int status;
  const char *code;
  char message[256];
};

/* Validates `text` as one JSON object. False (with the error set) otherwise. */
bool fw_body_parse(struct fw_body *body, const char *text, size_t len);

/* Validates `text` as one JSON value of any type. */
bool fw_body_parse_value(struct fw_body *body, const char *text, size_t len);

/* Refuses any member not in `allowed` (NULL-terminated). */
bool fw_body_only(struct fw_body *body, const char *const *allowed);

/* Reads string member `name` (unescaped, NUL-terminated) into `out`. Absent: false with
 * an error when `required`, else true with *present false (present may be NULL then
 * only if required). Longer than `max_len` bytes, or not a string: an error. */
bool fw_body_string(struct fw_body *body, const char *name, bool required, size_t max_len,
                    char *out, size_t out_len, bool *present);

/* Reads a boolean member. */
bool fw_body_bool(struct fw_body *body, const char *name, bool required, bool *out, bool *present);

/* Reads a member's raw JSON. */
bool fw_body_raw(struct fw_body *body, const char *name, bool required, struct fw_rawjson *out,
                 bool *present);

/* Sets the body's error (the first one wins) and returns false. */
bool fw_body_fail(struct fw_body *body, int status, const char *code, const char *fmt, ...)
    FW_PRINTF(4, 5);

/* Answers `res` with the body's error. */
FW_MUST_CHECK int fw_body_answer_error(const struct fw_body *body, struct fw_http_response *res,
                                       const struct fw_http_request *req);

#endif
