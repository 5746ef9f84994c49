/* Raw JSON: strict validation of JSON text and access to the exact bytes of its values.
 *
 * Values users give us (variant values, config values) are stored and served byte for
 * byte, spliced into our output without re-encoding: jansson would print 19.99 as
 * 19.989999999999998. This module never builds a tree; it scans.
 *
 * Thread: pure functions, no state. */
#ifndef FW_UTIL_RAWJSON_H
#define FW_UTIL_RAWJSON_H

#include <stdbool.h>
#include <stddef.h>

#include "util/common.h"

/* Nesting deeper than this is refused, so hostile input cannot exhaust the stack. */
#define FW_RAWJSON_MAX_DEPTH 64

/* A span of JSON text: one complete value, without surrounding whitespace. Borrowed from
 * the text it was found in. */
struct fw_rawjson {
  const char *text;
  size_t len;
};

enum fw_rawjson_type {
  FW_RAWJSON_OBJECT,
  FW_RAWJSON_ARRAY,
  FW_RAWJSON_STRING,
  FW_RAWJSON_NUMBER,
  FW_RAWJSON_TRUE,
  FW_RAWJSON_FALSE,
  FW_RAWJSON_NULL
};

/* Checks that `text` is exactly one JSON value per RFC 8259 (surrounding whitespace
 * allowed): no trailing commas, no comments, no NaN, no leading zeros, strings of valid
 * UTF-8 without raw control characters and with valid escapes (paired surrogates),
 * nesting at most FW_RAWJSON_MAX_DEPTH, no NUL bytes. On success *out (may be NULL) is
 * the value without the surrounding whitespace. On FW_EINVAL, *error_offset (may be
 * NULL) is the byte offset of the first problem and `error` (may be NULL) a short
 * reason ("unexpected character", "nesting too deep", ...). */
FW_MUST_CHECK int fw_rawjson_validate(const char *text, size_t len, struct fw_rawjson *out,
                                      size_t *error_offset, const char **error);

/* The accessors below take values that fw_rawjson_validate or another accessor
 * returned, and trust them: a value's type is read from its first byte alone. Given any
 * other span they give unspecified answers, but never read outside it. */

/* The type of a validated value. */
enum fw_rawjson_type fw_rawjson_type(struct fw_rawjson value);

/* The value of member `name` of a validated object (names compared after unescaping,
 * so one holding a \u0000 never matches; the last one wins if a name repeats). FW_ENOTFOUND if
 * absent, FW_EINVAL if `object` is not an object. */
FW_MUST_CHECK int fw_rawjson_member(struct fw_rawjson object, const char *name,
                                    struct fw_rawjson *out);

/* Element `index` of a validated array. FW_ENOTFOUND past the end, FW_EINVAL if `array`
 * is not an array. */
FW_MUST_CHECK int fw_rawjson_element(struct fw_rawjson array, size_t index, struct fw_rawjson *out);

/* Walks the members of a validated object in order: start with *cursor = 0; each call
 * gives the next member's raw name (with its quotes) and value and returns true, or
 * false at the end (and at every call after it). False at once if `object` is not an
 * object. */
bool fw_rawjson_next_member(struct fw_rawjson object, size_t *cursor, struct fw_rawjson *name,
                            struct fw_rawjson *value);

/* Unescapes a raw JSON string (with its quotes) into `out` (`out_len` bytes, NUL-
 * terminated) as UTF-8. FW_ETOOBIG if it does not fit, FW_EINVAL if `string` is not a
 * string; on either, `out` is left empty if out_len > 0. Unescaping never lengthens a
 * string, so string.len - 1 bytes are always enough. A \u0000 escape becomes a NUL byte,
 * which ends the C string early. */
FW_MUST_CHECK int fw_rawjson_string(struct fw_rawjson string, char *out, size_t out_len);

#endif
