#include "util/json.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fw_json {
  json_t *root;
};

int fw_json_parse(const char *text, size_t len, struct fw_json **out, char *error,
                  size_t error_len) {
  /* jansson skips a NUL right after a number or literal ("[1\0]"); refuse it here. */
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    snprintf(error, error_len, "invalid JSON: a NUL byte at offset %zu", (size_t)(nul - text));
    return FW_EINVAL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root) {
    snprintf(error, error_len, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
             jerr.text);
    return FW_EINVAL;
  }
  struct fw_json *doc = malloc(sizeof *doc);
  if (!doc) {
    json_decref(root);
    return FW_ENOMEM;
  }
  doc->root = root;
  *out = doc;
  return FW_OK;
}

void fw_json_free(struct fw_json *doc) {
  if (!doc)
    return;
  json_decref(doc->root);
  free(doc);
}

bool fw_json_is_object(const struct fw_json *doc) { return json_is_object(doc->root); }

/* Length of the valid UTF-8 sequence at `p` (at most `avail` bytes), or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *p, size_t avail) {
  unsigned char c = p[0];
  size_t n;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1fu;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0fu;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (n > avail)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3fu);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

bool fw_json_utf8_valid(const char *text, size_t len) {
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    size_t n = utf8_sequence(p + i, len - i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

int fw_json_append_string(struct fw_buf *out, const char *text, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)text;
  const unsigned char *end = p + len;
  int rc = fw_buf_append_char(out, '"');
  while (!rc && p < end) {
    const unsigned char *run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
      p++;
    if (p > run)
      rc = fw_buf_append(out, run, (size_t)(p - run));
    if (rc || p == end)
      break;
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      rc = fw_buf_append(out, esc, 2);
      p++;
    } else if (*p < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf]};
      rc = fw_buf_append(out, esc, 6);
      p++;
    } else {
      size_t n = utf8_sequence(p, (size_t)(end - p));
      if (n) {
        rc = fw_buf_append(out, p, n);
        p += n;
      } else {
        rc = fw_buf_append_str(out, "\xef\xbf\xbd");
        p++;
      }
    }
  }
  if (!rc)
    rc = fw_buf_append_char(out, '"');
  return rc;
}
