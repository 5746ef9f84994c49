#include "util/rawjson.h"

#include <stdint.h>
#include <string.h>

#include "util/digest.h"

/* ---- shared by validation and access ---- */

static bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *skip_whitespace(const char *p, const char *end) {
  while (p < end && is_whitespace(*p))
    p++;
  return p;
}

/* Reads the four hex digits of a \u escape at `p`; false if there are not four. */
static bool read_hex4(const char *p, const char *end, uint32_t *unit) {
  if (end - p < 4)
    return false;
  uint32_t value = 0;
  for (int i = 0; i < 4; i++) {
    int digit = fw_hex_value(p[i]);
    if (digit < 0)
      return false;
    value = (value << 4) | (uint32_t)digit;
  }
  *unit = value;
  return true;
}

static bool is_high_surrogate(uint32_t unit) { return unit >= 0xd800 && unit <= 0xdbff; }

static bool is_low_surrogate(uint32_t unit) { return unit >= 0xdc00 && unit <= 0xdfff; }

/* Decodes the escape at `p` (a backslash; `end` is past the last byte that may be read).
 * Returns NULL with the code point it stands for and its length in bytes (2, 6, or 12
 * for a surrogate pair written as two \u escapes), or the reason it is invalid. Shared
 * by validation and unescaping so that both agree on what an escape means. */
static const char *decode_escape(const char *p, const char *end, uint32_t *code_point,
                                 size_t *escape_len) {
  if (end - p < 2)
    return "invalid escape";
  *escape_len = 2;
  switch (p[1]) {
  case '"':
  case '\\':
  case '/':
    *code_point = (uint32_t)p[1];
    return NULL;
  case 'b':
    *code_point = '\b';
    return NULL;
  case 'f':
    *code_point = '\f';
    return NULL;
  case 'n':
    *code_point = '\n';
    return NULL;
  case 'r':
    *code_point = '\r';
    return NULL;
  case 't':
    *code_point = '\t';
    return NULL;
  case 'u':
    break;
  default:
    return "invalid escape";
  }
  uint32_t unit;
  if (!read_hex4(p + 2, end, &unit))
    return "invalid escape";
  *escape_len = 6;
  if (!is_high_surrogate(unit) && !is_low_surrogate(unit)) {
    *code_point = unit;
    return NULL;
  }
  /* A surrogate stands for nothing on its own: only a high one followed at once by a low
   * one makes a code point. */
  uint32_t low;
  if (!is_high_surrogate(unit) || end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
      !read_hex4(p + 8, end, &low) || !is_low_surrogate(low))
    return "unpaired surrogate";
  *code_point = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
  *escape_len = 12;
  return NULL;
}

/* ---- validation ---- */

/* Length of the well-formed UTF-8 sequence at `p` (`avail` bytes readable), or 0. The
 * allowed second bytes follow Unicode's table 3-7, which leaves out overlong forms,
 * UTF-16 surrogates (ED A0..BF) and code points above U+10FFFF (F4 90.. and F5..FF). */
static size_t utf8_sequence_len(const unsigned char *p, size_t avail) {
  unsigned char lead = p[0];
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xbf;
  size_t len;
  if (lead < 0x80)
    return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    if (lead == 0xe0)
      second_min = 0xa0;
    else if (lead == 0xed)
      second_max = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    if (lead == 0xf0)
      second_min = 0x90;
    else if (lead == 0xf4)
      second_max = 0x8f;
  } else {
    return 0;
  }
  if (avail < len || p[1] < second_min || p[1] > second_max)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  return len;
}

/* Where validation is and, once it failed, where and why. */
struct scanner {
  const char *p;
  const char *end;
  const char *problem_at;
  const char *problem;
};

/* The byte under the scanner, or '\0' at the end: NUL is never valid JSON text, so it
 * matches nothing the scanner looks for. */
static char peek(const struct scanner *s) { return s->p < s->end ? *s->p : '\0'; }

/* Records a problem at the scanner's position and returns false, for `return fail(...)`.
 * At the end of the input the problem is always that the input ended. */
static bool fail(struct scanner *s, const char *reason) {
  s->problem_at = s->p;
  s->problem = s->p == s->end ? "unexpected end of input" : reason;
  return false;
}

static bool scan_string(struct scanner *s) {
  s->p++; /* the opening quote */
  for (;;) {
    if (s->p == s->end)
      return fail(s, "unexpected end of input");
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      s->p++;
      return true;
    }
    if (c == '\\') {
      uint32_t code_point;
      size_t escape_len;
      const char *problem = decode_escape(s->p, s->end, &code_point, &escape_len);
      if (problem)
        return fail(s, problem);
      s->p += escape_len;
    } else if (c < 0x20) {
      return fail(s, "control character in string");
    } else {
      size_t sequence_len = utf8_sequence_len((const unsigned char *)s->p, (size_t)(s->end - s->p));
      if (!sequence_len)
        return fail(s, "invalid UTF-8");
      s->p += sequence_len;
    }
  }
}

/* One or more digits. */
static bool scan_digits(struct scanner *s) {
  if (!is_digit(peek(s)))
    return fail(s, "invalid number");
  while (is_digit(peek(s)))
    s->p++;
  return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(struct scanner *s) {
  if (peek(s) == '-')
    s->p++;
  if (peek(s) == '0') {
    s->p++;
    if (is_digit(peek(s)))
      return fail(s, "leading zero");
  } else if (!scan_digits(s)) {
    return false;
  }
  if (peek(s) == '.') {
    s->p++;
    if (!scan_digits(s))
      return false;
  }
  if (peek(s) == 'e' || peek(s) == 'E') {
    s->p++;
    if (peek(s) == '+' || peek(s) == '-')
      s->p++;
    if (!scan_digits(s))
      return false;
  }
  return true;
}

static bool scan_literal(struct scanner *s, const char *word) {
  for (; *word; word++, s->p++)
    if (peek(s) != *word)
      return fail(s, "invalid literal");
  return true;
}

static bool scan_scalar(struct scanner *s) {
  char c = peek(s);
  switch (c) {
  case '"':
    return scan_string(s);
  case 't':
    return scan_literal(s, "true");
  case 'f':
    return scan_literal(s, "false");
  case 'n':
    return scan_literal(s, "null");
  default:
    if (c == '-' || is_digit(c))
      return scan_number(s);
    return fail(s, "unexpected character");
  }
}

/* `"name" :`, with the whitespace around it. */
static bool scan_member_name(struct scanner *s) {
  s->p = skip_whitespace(s->p, s->end);
  if (peek(s) != '"')
    return fail(s, "expected a member name");
  if (!scan_string(s))
    return false;
  s->p = skip_whitespace(s->p, s->end);
  if (peek(s) != ':')
    return fail(s, "expected ':'");
  s->p++;
  return true;
}

/* Scans one value with everything nested in it. Iterative, with the closing bracket of
 * each open container on a fixed stack: hostile nesting costs no call stack, and the
 * depth cap is the size of that stack. */
static bool scan_value(struct scanner *s) {
  char closers[FW_RAWJSON_MAX_DEPTH];
  size_t depth = 0;
  for (;;) {
    /* Here a value starts: open a container, or scan a whole scalar. */
    s->p = skip_whitespace(s->p, s->end);
    char opener = peek(s);
    if (opener == '{' || opener == '[') {
      if (depth == FW_RAWJSON_MAX_DEPTH)
        return fail(s, "nesting too deep");
      char closer = opener == '{' ? '}' : ']';
      s->p = skip_whitespace(s->p + 1, s->end);
      if (peek(s) != closer) {
        closers[depth++] = closer;
        if (closer == '}' && !scan_member_name(s))
          return false;
        continue;
      }
      s->p++; /* empty: the container is a complete value */
    } else if (!scan_scalar(s)) {
      return false;
    }
    /* Here a value ended: close the containers it completes, up to a comma that asks
     * for the next value. */
    while (depth > 0) {
      s->p = skip_whitespace(s->p, s->end);
      char closer = closers[depth - 1];
      if (peek(s) == closer) {
        s->p++;
        depth--;
        continue;
      }
      if (peek(s) != ',')
        return fail(s, closer == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
      s->p++;
      if (closer == '}' && !scan_member_name(s))
        return false;
      break;
    }
    if (depth == 0)
      return true;
  }
}

int fw_rawjson_validate(const char *text, size_t len, struct fw_rawjson *out, size_t *error_offset,
                        const char **error) {
  const char *end = text + len;
  struct scanner s = {.p = skip_whitespace(text, end), .end = end};
  const char *value_start = s.p;
  bool valid = scan_value(&s);
  const char *value_end = s.p;
  if (valid) {
    s.p = skip_whitespace(s.p, end);
    if (s.p != end)
      valid = fail(&s, "trailing characters");
  }
  if (!valid) {
    if (error_offset)
      *error_offset = (size_t)(s.problem_at - text);
    if (error)
      *error = s.problem;
    return FW_EINVAL;
  }
  if (out)
    *out = (struct fw_rawjson){.text = value_start, .len = (size_t)(value_end - value_start)};
  return FW_OK;
}

/* ---- access to validated text ----
 *
 * These walk text that validation accepted, so they only look for where things end.
 * Every read is still bounded by the span they were given: a span that was never
 * validated gets a wrong answer, never a read outside it. */

enum fw_rawjson_type fw_rawjson_type(struct fw_rawjson value) {
  switch (value.len ? value.text[0] : '\0') {
  case '{':
    return FW_RAWJSON_OBJECT;
  case '[':
    return FW_RAWJSON_ARRAY;
  case '"':
    return FW_RAWJSON_STRING;
  case 't':
    return FW_RAWJSON_TRUE;
  case 'f':
    return FW_RAWJSON_FALSE;
  case 'n':
    return FW_RAWJSON_NULL;
  default:
    return FW_RAWJSON_NUMBER;
  }
}

/* `p` is at the opening quote; returns the position after the closing one. */
static const char *skip_string(const char *p, const char *end) {
  p++;
  while (p < end && *p != '"')
    p += *p == '\\' && end - p > 1 ? 2 : 1;
  return p < end ? p + 1 : end;
}

/* The bytes numbers and literals are made of. */
static bool is_scalar_byte(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || c == 'E' || c == '+' || c == '-' || c == '.';
}

/* Returns the position after the value that starts at `p`; `p` itself if none does. */
static const char *skip_value(const char *p, const char *end) {
  if (p == end)
    return p;
  if (*p == '"')
    return skip_string(p, end);
  if (*p != '{' && *p != '[') {
    while (p < end && is_scalar_byte(*p))
      p++;
    return p;
  }
  /* Brackets inside strings are skipped with the strings; the others balance. */
  size_t depth = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      p = skip_string(p, end);
      continue;
    }
    p++;
    if (c == '{' || c == '[')
      depth++;
    else if ((c == '}' || c == ']') && --depth == 0)
      return p;
  }
  return p;
}

static struct fw_rawjson span(const char *begin, const char *end) {
  return (struct fw_rawjson){.text = begin, .len = (size_t)(end - begin)};
}

/* UTF-8 for a code point that validation accepted (so not a surrogate). */
static size_t encode_utf8(uint32_t code_point, char out[4]) {
  if (code_point < 0x80) {
    out[0] = (char)code_point;
    return 1;
  }
  if (code_point < 0x800) {
    out[0] = (char)(0xc0 | (code_point >> 6));
    out[1] = (char)(0x80 | (code_point & 0x3f));
    return 2;
  }
  if (code_point < 0x10000) {
    out[0] = (char)(0xe0 | (code_point >> 12));
    out[1] = (char)(0x80 | ((code_point >> 6) & 0x3f));
    out[2] = (char)(0x80 | (code_point & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (code_point >> 18));
  out[1] = (char)(0x80 | ((code_point >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((code_point >> 6) & 0x3f));
  out[3] = (char)(0x80 | (code_point & 0x3f));
  return 4;
}

/* Unescapes the next character of a string's contents at *p (`end` is the closing
 * quote) into `utf8` and moves *p past it. Returns the number of bytes written, 1 to 4,
 * or 0 for an invalid escape. Other bytes are copied one at a time: validation already
 * checked that they form UTF-8. */
static size_t next_string_char(const char **p, const char *end, char utf8[4]) {
  if (**p != '\\') {
    utf8[0] = **p;
    (*p)++;
    return 1;
  }
  uint32_t code_point;
  size_t escape_len;
  if (decode_escape(*p, end, &code_point, &escape_len))
    return 0;
  *p += escape_len;
  return encode_utf8(code_point, utf8);
}

/* Whether raw string `raw` (with its quotes) unescapes to exactly `name`. A string with
 * a \u0000 in it never matches, since `name` cannot hold a NUL. */
static bool string_equals(struct fw_rawjson raw, const char *name) {
  const char *p = raw.text + 1;
  const char *end = raw.text + raw.len - 1;
  while (p < end) {
    char utf8[4];
    size_t n = next_string_char(&p, end, utf8);
    if (n == 0)
      return false;
    for (size_t i = 0; i < n; i++, name++)
      if (*name == '\0' || *name != utf8[i])
        return false;
  }
  return *name == '\0';
}

int fw_rawjson_member(struct fw_rawjson object, const char *name, struct fw_rawjson *out) {
  if (fw_rawjson_type(object) != FW_RAWJSON_OBJECT)
    return FW_EINVAL;
  size_t cursor = 0;
  struct fw_rawjson member_name, value, last_match;
  bool found = false;
  while (fw_rawjson_next_member(object, &cursor, &member_name, &value)) {
    if (string_equals(member_name, name)) {
      last_match = value;
      found = true;
    }
  }
  if (!found)
    return FW_ENOTFOUND;
  *out = last_match;
  return FW_OK;
}

int fw_rawjson_element(struct fw_rawjson array, size_t index, struct fw_rawjson *out) {
  if (fw_rawjson_type(array) != FW_RAWJSON_ARRAY)
    return FW_EINVAL;
  const char *end = array.text + array.len;
  const char *p = array.text + 1;
  for (size_t i = 0;; i++) {
    p = skip_whitespace(p, end);
    const char *value_end = skip_value(p, end);
    if (value_end == p)
      return FW_ENOTFOUND; /* the closing bracket */
    if (i == index) {
      *out = span(p, value_end);
      return FW_OK;
    }
    p = skip_whitespace(value_end, end);
    if (p == end || *p != ',')
      return FW_ENOTFOUND;
    p++;
  }
}

/* *cursor is 0 before the first member and then the offset just past the last value
 * returned, so a cursor never needs more state than the object itself. */
bool fw_rawjson_next_member(struct fw_rawjson object, size_t *cursor, struct fw_rawjson *name,
                            struct fw_rawjson *value) {
  if (fw_rawjson_type(object) != FW_RAWJSON_OBJECT || *cursor >= object.len)
    return false;
  const char *end = object.text + object.len;
  const char *p = skip_whitespace(object.text + (*cursor == 0 ? 1 : *cursor), end);
  if (p < end && *p == ',')
    p = skip_whitespace(p + 1, end);
  if (p == end || *p != '"')
    return false; /* the closing brace */
  const char *name_end = skip_string(p, end);
  const char *colon = skip_whitespace(name_end, end);
  if (colon == end || *colon != ':')
    return false;
  const char *value_start = skip_whitespace(colon + 1, end);
  const char *value_end = skip_value(value_start, end);
  *name = span(p, name_end);
  *value = span(value_start, value_end);
  *cursor = (size_t)(value_end - object.text);
  return true;
}

/* Leaves `out` empty, as fw_rawjson_string promises on failure, and returns `rc`. */
static int unescape_failed(char *out, size_t out_len, int rc) {
  if (out_len > 0)
    out[0] = '\0';
  return rc;
}

int fw_rawjson_string(struct fw_rawjson string, char *out, size_t out_len) {
  if (fw_rawjson_type(string) != FW_RAWJSON_STRING)
    return unescape_failed(out, out_len, FW_EINVAL);
  if (out_len == 0)
    return FW_ETOOBIG;
  const char *p = string.text + 1;
  const char *end = string.text + string.len - 1;
  size_t written = 0;
  while (p < end) {
    char utf8[4];
    size_t n = next_string_char(&p, end, utf8);
    if (n == 0)
      return unescape_failed(out, out_len, FW_EINVAL);
    /* Room for the character and the NUL after it. */
    if (n >= out_len - written)
      return unescape_failed(out, out_len, FW_ETOOBIG);
    memcpy(out + written, utf8, n);
    written += n;
  }
  out[written] = '\0';
  return FW_OK;
}
