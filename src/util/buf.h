/* Growable byte buffers with a hard cap: every buffer fed from the network has one. */
#ifndef FW_UTIL_BUF_H
#define FW_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "util/common.h"

/* A byte buffer that grows on demand up to `limit` bytes. The bytes are always
 * followed by a NUL that is not counted in `len`, so text can be used as a C string.
 * The buffer owns `data`; release it with fw_buf_free. Not thread-safe. */
struct fw_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t limit;
};

/* Prepares an empty buffer that will refuse to grow beyond `limit` bytes.
 * Allocates nothing until the first append. */
void fw_buf_init(struct fw_buf *buf, size_t limit);

/* Appends `len` bytes. Returns FW_ETOOBIG past the limit (the buffer is then
 * unchanged) or FW_ENOMEM. */
FW_MUST_CHECK int fw_buf_append(struct fw_buf *buf, const void *bytes, size_t len);
FW_MUST_CHECK int fw_buf_append_str(struct fw_buf *buf, const char *text);
FW_MUST_CHECK int fw_buf_append_char(struct fw_buf *buf, char c);
FW_MUST_CHECK int fw_buf_appendf(struct fw_buf *buf, const char *fmt, ...) FW_PRINTF(2, 3);
FW_MUST_CHECK int fw_buf_vappendf(struct fw_buf *buf, const char *fmt, va_list args)
    FW_PRINTF(2, 0);
/* Appends a decimal integer without going through printf. */
FW_MUST_CHECK int fw_buf_append_u64(struct fw_buf *buf, unsigned long long value);

/* Ensures room for `extra` more bytes without further allocation. FW_ETOOBIG past the
 * limit, FW_ENOMEM. */
FW_MUST_CHECK int fw_buf_reserve(struct fw_buf *buf, size_t extra);

/* Forgets the contents but keeps the memory for reuse. */
void fw_buf_reset(struct fw_buf *buf);
/* Releases the memory; the buffer may be reused after fw_buf_init. */
void fw_buf_free(struct fw_buf *buf);
/* Hands the bytes to the caller, who frees them with free(); the buffer is left empty. */
char *fw_buf_steal(struct fw_buf *buf, size_t *len_out);

#endif
