/* libFuzzer target for util/rawjson: arbitrary bytes are validated, and every value of a
 * document that passes is visited through each accessor.
 *
 * Besides the sanitizers, the target checks what rawjson.h promises and calls abort()
 * when a promise is broken, which libFuzzer records as a crash with its input:
 * - a refusal names the first problem: the text cut there is valid, or merely unfinished;
 * - what jansson accepts (through util/json) is accepted too, unless nested deeper than
 *   FW_RAWJSON_MAX_DEPTH;
 * - every span lies inside the one it came from, has the shape its type says, and
 *   validates on its own to itself; a container's children, with whitespace and
 *   separators between them, cover all of it;
 * - a lookup by each member's unescaped name finds the last member of that name;
 * - unescaping agrees with an independent decoder here, fits in string.len - 1 bytes,
 *   and gives valid UTF-8: util/json's writer, which replaces invalid UTF-8, escapes it
 *   back into a string that unescapes to the same bytes;
 * - the accessors refuse values of the wrong type.
 *
 * Each value is visited in a heap copy of its exact size, so that AddressSanitizer
 * catches any read outside the span an accessor was given. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/json.h"
#include "util/rawjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(condition) ((condition) ? (void)0 : invariant_failed(#condition, __LINE__))

static _Noreturn void invariant_failed(const char *condition, int line) {
  fprintf(stderr, "fuzz_rawjson.c:%d: invariant violated: %s\n", line, condition);
  abort();
}

static bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool inside(struct fw_rawjson outer, struct fw_rawjson span) {
  return span.text >= outer.text && span.len <= outer.len &&
         (size_t)(span.text - outer.text) <= outer.len - span.len;
}

/* The bytes between two neighbouring spans are whitespace with exactly one `separator`
 * among them, or whitespace alone when `separator` is '\0'. */
static void check_gap(const char *from, const char *to, char separator) {
  CHECK(from <= to);
  size_t separators = 0;
  for (const char *p = from; p < to; p++) {
    if (separator != '\0' && *p == separator)
      separators++;
    else
      CHECK(is_whitespace(*p));
  }
  CHECK(separators == (separator != '\0' ? 1u : 0u));
}

static void check_shape(struct fw_rawjson value, enum fw_rawjson_type type) {
  CHECK(value.len > 0);
  char first = value.text[0];
  char last = value.text[value.len - 1];
  switch (type) {
  case FW_RAWJSON_OBJECT:
    CHECK(first == '{' && last == '}');
    break;
  case FW_RAWJSON_ARRAY:
    CHECK(first == '[' && last == ']');
    break;
  case FW_RAWJSON_STRING:
    CHECK(value.len >= 2 && first == '"' && last == '"');
    break;
  case FW_RAWJSON_NUMBER:
    CHECK((first == '-' || is_digit(first)) && is_digit(last));
    break;
  case FW_RAWJSON_TRUE:
    CHECK(value.len == 4 && memcmp(value.text, "true", 4) == 0);
    break;
  case FW_RAWJSON_FALSE:
    CHECK(value.len == 5 && memcmp(value.text, "false", 5) == 0);
    break;
  case FW_RAWJSON_NULL:
    CHECK(value.len == 4 && memcmp(value.text, "null", 4) == 0);
    break;
  }
}

/* ---- an independent unescaper ---- */

/* Written apart from rawjson.c's and in another way (strtoul, a lookup table, a loop
 * over continuation bytes), so that the two check each other. Both trust validation. */

static uint32_t hex4(const char *p) {
  char digits[5] = {p[0], p[1], p[2], p[3], '\0'};
  char *end = NULL;
  unsigned long value = strtoul(digits, &end, 16);
  CHECK(end == digits + 4);
  return (uint32_t)value;
}

static size_t put_utf8(uint32_t code_point, char *out) {
  static const unsigned char lead_bits[] = {0x00, 0xc0, 0xe0, 0xf0};
  size_t continuations = code_point < 0x80      ? 0
                         : code_point < 0x800   ? 1
                         : code_point < 0x10000 ? 2
                                                : 3;
  out[0] = (char)(lead_bits[continuations] | (code_point >> (6 * continuations)));
  for (size_t i = 1; i <= continuations; i++)
    out[i] = (char)(0x80 | ((code_point >> (6 * (continuations - i))) & 0x3f));
  return continuations + 1;
}

/* Unescapes validated string `raw` into `out` (at least raw.len bytes), NUL-terminates
 * it, and returns its length, which counts the NULs that \u0000 escapes put inside. */
static size_t reference_unescape(struct fw_rawjson raw, char *out) {
  static const char escaped[] = "\"\\/bfnrt";
  static const char meant[] = "\"\\/\b\f\n\r\t";
  const char *p = raw.text + 1;
  const char *end = raw.text + raw.len - 1;
  size_t len = 0;
  while (p < end) {
    if (*p != '\\') {
      out[len++] = *p++;
      continue;
    }
    if (p[1] != 'u') {
      const char *simple = strchr(escaped, p[1]);
      CHECK(simple != NULL);
      out[len++] = meant[simple - escaped];
      p += 2;
      continue;
    }
    uint32_t code_point = hex4(p + 2);
    p += 6;
    if (code_point >= 0xd800 && code_point <= 0xdbff) {
      CHECK(end - p >= 6 && p[0] == '\\' && p[1] == 'u');
      code_point = 0x10000 + ((code_point - 0xd800) << 10) + (hex4(p + 2) - 0xdc00);
      p += 6;
    }
    len += put_utf8(code_point, out + len);
  }
  out[len] = '\0';
  return len;
}

/* ---- strings ---- */

/* `bytes` is valid UTF-8 if util/json's writer, which replaces invalid UTF-8 by U+FFFD,
 * writes a string that unescapes back to exactly `bytes`. */
static void check_utf8_round_trip(const char *bytes, size_t len) {
  struct fw_buf escaped;
  /* The most a byte can become is \u00XX; and the quotes. */
  fw_buf_init(&escaped, 6 * len + 2);
  CHECK(fw_json_append_string(&escaped, bytes, len) == FW_OK);
  struct fw_rawjson again;
  CHECK(fw_rawjson_validate(escaped.data, escaped.len, &again, NULL, NULL) == FW_OK);
  CHECK(fw_rawjson_type(again) == FW_RAWJSON_STRING);
  char *decoded = malloc(again.len - 1);
  CHECK(decoded != NULL);
  CHECK(fw_rawjson_string(again, decoded, again.len - 1) == FW_OK);
  CHECK(memcmp(decoded, bytes, len) == 0 && decoded[len] == '\0');
  free(decoded);
  fw_buf_free(&escaped);
}

/* Buffers here are heap blocks of the exact size offered, so that a write past the end
 * is caught. */
static void check_string(struct fw_rawjson string) {
  char *expected = malloc(string.len);
  CHECK(expected != NULL);
  size_t expected_len = reference_unescape(string, expected);

  /* The promised bound. */
  char *out = malloc(string.len - 1);
  CHECK(out != NULL);
  CHECK(fw_rawjson_string(string, out, string.len - 1) == FW_OK);
  CHECK(memcmp(out, expected, expected_len + 1) == 0);
  free(out);

  /* The exact fit, and one byte less. */
  out = malloc(expected_len + 1);
  CHECK(out != NULL);
  CHECK(fw_rawjson_string(string, out, expected_len + 1) == FW_OK);
  CHECK(memcmp(out, expected, expected_len + 1) == 0);
  CHECK(fw_rawjson_string(string, out, expected_len) == FW_ETOOBIG);
  CHECK(expected_len == 0 || out[0] == '\0');
  free(out);

  check_utf8_round_trip(expected, expected_len);
  free(expected);
}

/* ---- the walk ---- */

static void walk(struct fw_rawjson value, size_t depth);

/* Walks `value`, which an accessor found in `outer`, in a copy of its own. */
static void visit(struct fw_rawjson outer, struct fw_rawjson value, size_t depth) {
  CHECK(inside(outer, value));
  char *copy = malloc(value.len);
  CHECK(copy != NULL);
  memcpy(copy, value.text, value.len);
  walk((struct fw_rawjson){.text = copy, .len = value.len}, depth);
  free(copy);
}

static void check_refusals(struct fw_rawjson value, enum fw_rawjson_type type) {
  struct fw_rawjson found;
  if (type != FW_RAWJSON_OBJECT) {
    size_t cursor = 0;
    struct fw_rawjson name;
    CHECK(fw_rawjson_member(value, "", &found) == FW_EINVAL);
    CHECK(!fw_rawjson_next_member(value, &cursor, &name, &found));
  }
  if (type != FW_RAWJSON_ARRAY)
    CHECK(fw_rawjson_element(value, 0, &found) == FW_EINVAL);
  if (type != FW_RAWJSON_STRING) {
    char out[2] = "x";
    CHECK(fw_rawjson_string(value, out, sizeof out) == FW_EINVAL && out[0] == '\0');
  }
}

static void walk_array(struct fw_rawjson array, size_t depth) {
  const char *previous_end = array.text + 1;
  size_t count = 0;
  struct fw_rawjson element;
  int rc;
  while ((rc = fw_rawjson_element(array, count, &element)) == FW_OK) {
    visit(array, element, depth);
    check_gap(previous_end, element.text, count ? ',' : '\0');
    previous_end = element.text + element.len;
    count++;
  }
  CHECK(rc == FW_ENOTFOUND);
  check_gap(previous_end, array.text + array.len - 1, '\0');
  CHECK(fw_rawjson_element(array, SIZE_MAX, &element) == FW_ENOTFOUND);
}

struct member {
  struct fw_rawjson value;
  char *name;      /* unescaped, NUL-terminated */
  size_t name_len; /* more than strlen(name) when a \u0000 put a NUL inside */
};

/* A lookup by a member's unescaped name finds the last member of that name. A name
 * holding a NUL can only be asked for up to it; that part finds the last member named
 * exactly so, if any. */
static void check_lookups(struct fw_rawjson object, const struct member *members, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const char *lookup = members[i].name;
    size_t lookup_len = strlen(lookup);
    const struct member *expected = NULL;
    for (size_t j = count; j-- > 0 && !expected;)
      if (members[j].name_len == lookup_len && memcmp(members[j].name, lookup, lookup_len) == 0)
        expected = &members[j];
    struct fw_rawjson found;
    int rc = fw_rawjson_member(object, lookup, &found);
    if (expected)
      CHECK(rc == FW_OK && found.text == expected->value.text && found.len == expected->value.len);
    else
      CHECK(rc == FW_ENOTFOUND && lookup_len < members[i].name_len);
  }
}

static void walk_object(struct fw_rawjson object, size_t depth) {
  size_t cursor = 0;
  size_t count = 0;
  struct fw_rawjson name, value;
  while (fw_rawjson_next_member(object, &cursor, &name, &value))
    count++;
  CHECK(!fw_rawjson_next_member(object, &cursor, &name, &value)); /* the end stays the end */

  struct member *members = calloc(count ? count : 1, sizeof *members);
  CHECK(members != NULL);
  const char *previous_end = object.text + 1;
  cursor = 0;
  for (size_t i = 0; i < count; i++) {
    CHECK(fw_rawjson_next_member(object, &cursor, &name, &value));
    visit(object, name, depth);
    visit(object, value, depth);
    CHECK(fw_rawjson_type(name) == FW_RAWJSON_STRING);
    check_gap(previous_end, name.text, i ? ',' : '\0');
    check_gap(name.text + name.len, value.text, ':');
    previous_end = value.text + value.len;
    members[i].value = value;
    members[i].name = malloc(name.len);
    CHECK(members[i].name != NULL);
    members[i].name_len = reference_unescape(name, members[i].name);
  }
  CHECK(!fw_rawjson_next_member(object, &cursor, &name, &value));
  check_gap(previous_end, object.text + object.len - 1, '\0');

  check_lookups(object, members, count);
  for (size_t i = 0; i < count; i++)
    free(members[i].name);
  free(members);
}

/* `depth` is the number of containers around `value`. */
static void walk(struct fw_rawjson value, size_t depth) {
  enum fw_rawjson_type type = fw_rawjson_type(value);
  check_shape(value, type);
  struct fw_rawjson again;
  CHECK(fw_rawjson_validate(value.text, value.len, &again, NULL, NULL) == FW_OK);
  CHECK(again.text == value.text && again.len == value.len);
  check_refusals(value, type);
  switch (type) {
  case FW_RAWJSON_OBJECT:
    CHECK(depth < FW_RAWJSON_MAX_DEPTH);
    walk_object(value, depth + 1);
    break;
  case FW_RAWJSON_ARRAY:
    CHECK(depth < FW_RAWJSON_MAX_DEPTH);
    walk_array(value, depth + 1);
    break;
  case FW_RAWJSON_STRING:
    check_string(value);
    break;
  case FW_RAWJSON_NUMBER:
  case FW_RAWJSON_TRUE:
  case FW_RAWJSON_FALSE:
  case FW_RAWJSON_NULL:
    break;
  }
}

/* ---- refusals ---- */

/* Everything before the reported offset was fine: cut there, the text is valid or fails
 * only for ending. The cut is an exact-size copy, so a look past it is caught. */
static void check_first_problem(struct fw_rawjson input, size_t offset, const char *reason) {
  CHECK(reason != NULL && offset <= input.len);
  CHECK((offset == input.len) == (strcmp(reason, "unexpected end of input") == 0));
  if (offset == 0 || offset == input.len)
    return;
  char *prefix = malloc(offset);
  CHECK(prefix != NULL);
  memcpy(prefix, input.text, offset);
  size_t prefix_offset = 0;
  int rc = fw_rawjson_validate(prefix, offset, NULL, &prefix_offset, NULL);
  CHECK(rc == FW_OK || prefix_offset == offset);
  free(prefix);
}

static void check_agrees_with_jansson(struct fw_rawjson input, int rc, const char *reason) {
  /* jansson 2.14 skips a NUL that follows a number or literal, and accepts "[1\0]"
   * (akheron/jansson#331, n_multidigit_number_then_00). */
  if (memchr(input.text, '\0', input.len))
    return;
  struct fw_json *doc = NULL;
  char error[160];
  if (fw_json_parse(input.text, input.len, &doc, error, sizeof error) != FW_OK)
    return; /* jansson also refuses repeated names, \u0000 and numbers beyond a double */
  fw_json_free(doc);
  CHECK(rc == FW_OK || strcmp(reason, "nesting too deep") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fw_rawjson input = {.text = (const char *)data, .len = size};
  struct fw_rawjson value = {0};
  size_t offset = 0;
  const char *reason = NULL;
  int rc = fw_rawjson_validate(input.text, input.len, &value, &offset, &reason);
  CHECK(rc == FW_OK || rc == FW_EINVAL);
  CHECK(fw_rawjson_validate(input.text, input.len, NULL, NULL, NULL) == rc);
  check_agrees_with_jansson(input, rc, reason);
  if (rc != FW_OK) {
    check_first_problem(input, offset, reason);
    return 0;
  }
  visit(input, value, 0);
  check_gap(input.text, value.text, '\0');
  check_gap(value.text + value.len, input.text + input.len, '\0');
  return 0;
}
