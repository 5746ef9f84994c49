#include "util/buf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fw_buf_init(struct fw_buf *buf, size_t limit) {
  buf->data = NULL;
  buf->len = 0;
  buf->cap = 0;
  buf->limit = limit;
}

int fw_buf_reserve(struct fw_buf *buf, size_t extra) {
  if (extra > buf->limit - buf->len)
    return FW_ETOOBIG;
  size_t need = buf->len + extra + 1;
  if (need <= buf->cap)
    return FW_OK;
  size_t cap = buf->cap ? buf->cap : 64;
  while (cap < need)
    cap *= 2;
  if (cap > buf->limit + 1)
    cap = buf->limit + 1;
  char *grown = realloc(buf->data, cap);
  if (!grown)
    return FW_ENOMEM;
  buf->data = grown;
  buf->cap = cap;
  return FW_OK;
}

int fw_buf_append(struct fw_buf *buf, const void *bytes, size_t len) {
  int rc = fw_buf_reserve(buf, len);
  if (rc)
    return rc;
  if (len)
    memcpy(buf->data + buf->len, bytes, len);
  buf->len += len;
  buf->data[buf->len] = '\0';
  return FW_OK;
}

int fw_buf_append_str(struct fw_buf *buf, const char *text) {
  return fw_buf_append(buf, text, strlen(text));
}

int fw_buf_append_char(struct fw_buf *buf, char c) { return fw_buf_append(buf, &c, 1); }

int fw_buf_vappendf(struct fw_buf *buf, const char *fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  int needed = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (needed < 0)
    return FW_EINVAL;
  int rc = fw_buf_reserve(buf, (size_t)needed);
  if (rc)
    return rc;
  vsnprintf(buf->data + buf->len, (size_t)needed + 1, fmt, args);
  buf->len += (size_t)needed;
  return FW_OK;
}

int fw_buf_appendf(struct fw_buf *buf, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int rc = fw_buf_vappendf(buf, fmt, args);
  va_end(args);
  return rc;
}

int fw_buf_append_u64(struct fw_buf *buf, unsigned long long value) {
  char digits[20];
  size_t n = 0;
  do {
    digits[sizeof digits - 1 - n] = (char)('0' + value % 10);
    value /= 10;
    n++;
  } while (value);
  return fw_buf_append(buf, digits + sizeof digits - n, n);
}

void fw_buf_reset(struct fw_buf *buf) {
  buf->len = 0;
  if (buf->data)
    buf->data[0] = '\0';
}

void fw_buf_free(struct fw_buf *buf) {
  free(buf->data);
  buf->data = NULL;
  buf->len = 0;
  buf->cap = 0;
}

char *fw_buf_steal(struct fw_buf *buf, size_t *len_out) {
  assert(len_out);
  char *data = buf->data;
  *len_out = buf->len;
  buf->data = NULL;
  buf->len = 0;
  buf->cap = 0;
  return data;
}
