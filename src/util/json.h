/* JSON: parsing and validation of request bodies (through jansson, wrapped here and
 * nowhere else) and the writer helpers our own output is built with. */
#ifndef FW_UTIL_JSON_H
#define FW_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/common.h"

/* A parsed document; opaque outside json.c. */
struct fw_json;

/* Parses exactly one JSON value from `text` (not NUL-terminated; embedded NULs are an
 * error). On success the caller owns *out; free it with fw_json_free. On FW_EINVAL,
 * `error` holds one sentence with the line and column. */
FW_MUST_CHECK int fw_json_parse(const char *text, size_t len, struct fw_json **out, char *error,
                                size_t error_len);
void fw_json_free(struct fw_json *doc);

/* Whether the document's top-level value is an object. */
bool fw_json_is_object(const struct fw_json *doc);

/* Whether `text` is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool fw_json_utf8_valid(const char *text, size_t len);

/* Appends `text` as a quoted JSON string, escaping what RFC 8259 requires. Invalid UTF-8
 * is replaced by U+FFFD so that output stays valid JSON whatever came in. */
FW_MUST_CHECK int fw_json_append_string(struct fw_buf *out, const char *text, size_t len);

#endif
