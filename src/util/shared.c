#include "util/shared.h"

#include <stdlib.h>
#include <string.h>

struct fw_shared *fw_shared_new(const void *bytes, size_t len) {
  struct fw_shared *shared = malloc(sizeof *shared + len + 1);
  if (!shared)
    return NULL;
  atomic_init(&shared->refs, 1);
  shared->len = len;
  if (len)
    memcpy(shared->data, bytes, len);
  shared->data[len] = '\0';
  return shared;
}

struct fw_shared *fw_shared_ref(struct fw_shared *shared) {
  atomic_fetch_add_explicit(&shared->refs, 1, memory_order_relaxed);
  return shared;
}

void fw_shared_unref(struct fw_shared *shared) {
  if (shared && atomic_fetch_sub_explicit(&shared->refs, 1, memory_order_acq_rel) == 1)
    free(shared);
}
