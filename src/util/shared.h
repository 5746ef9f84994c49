/* Shared bytes: an immutable, refcounted byte string, written to many connections
 * without a copy per connection (a serialised event, a stream frame).
 *
 * Thread: immutable once made; the reference count is atomic. */
#ifndef FW_UTIL_SHARED_H
#define FW_UTIL_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/common.h"

struct fw_shared {
  _Atomic uint32_t refs;
  size_t len;
  char data[]; /* followed by a NUL not counted in len */
};

/* A copy of `len` bytes with one reference; NULL when out of memory. */
struct fw_shared *fw_shared_new(const void *bytes, size_t len);
struct fw_shared *fw_shared_ref(struct fw_shared *shared);
/* Drops a reference (NULL is harmless); the last frees. */
void fw_shared_unref(struct fw_shared *shared);

#endif
