#include "state/change.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    [FW_CHANGE_FLAG_CREATED] = "flag_created",
    [FW_CHANGE_FLAG_UPDATED] = "flag_updated",
    [FW_CHANGE_FLAG_DELETED] = "flag_deleted",
    [FW_CHANGE_CONFIG_UPDATED] = "config_updated",
    [FW_CHANGE_CONFIG_DELETED] = "config_deleted",
    [FW_CHANGE_SEGMENT_UPDATED] = "segment_updated",
    [FW_CHANGE_SEGMENT_DELETED] = "segment_deleted",
};

enum fw_change_kind fw_change_kind_of(const char *name) {
  for (size_t i = 0; i < FW_ARRAY_LEN(kind_names); i++)
    if (kind_names[i] && strcmp(kind_names[i], name) == 0)
      return (enum fw_change_kind)i;
  return FW_CHANGE_OTHER;
}

struct fw_change *fw_change_new(const struct fw_store_change *row) {
  size_t key_len = strlen(row->key);
  size_t object_size = row->object ? row->object_len + 1 : 0;
  /* One allocation: the change, then its key, then its object. */
  struct fw_change *change = malloc(sizeof *change + key_len + 1 + object_size);
  if (!change)
    return NULL;
  atomic_init(&change->refs, 1);
  change->kind = fw_change_kind_of(row->kind);
  change->environment_id = row->environment_id;
  change->revision = row->revision;
  change->at_ms = row->at_ms;
  change->key = (char *)(change + 1);
  memcpy(change->key, row->key, key_len + 1);
  change->object = NULL;
  change->object_len = 0;
  if (row->object) {
    change->object = change->key + key_len + 1;
    memcpy(change->object, row->object, row->object_len);
    change->object[row->object_len] = '\0';
    change->object_len = row->object_len;
  }
  return change;
}

struct fw_change *fw_change_ref(struct fw_change *change) {
  atomic_fetch_add_explicit(&change->refs, 1, memory_order_relaxed);
  return change;
}

void fw_change_unref(struct fw_change *change) {
  if (change && atomic_fetch_sub_explicit(&change->refs, 1, memory_order_acq_rel) == 1)
    free(change);
}

struct fw_change_batch *fw_change_batch_new(struct fw_change **changes, size_t count,
                                            uint64_t committed_ns) {
  struct fw_change_batch *batch = malloc(sizeof *batch + count * sizeof *changes);
  if (!batch) {
    for (size_t i = 0; i < count; i++)
      fw_change_unref(changes[i]);
    return NULL;
  }
  atomic_init(&batch->refs, 1);
  batch->committed_ns = committed_ns;
  batch->count = count;
  if (count)
    memcpy(batch->changes, changes, count * sizeof *changes);
  return batch;
}

struct fw_change_batch *fw_change_batch_ref(struct fw_change_batch *batch) {
  atomic_fetch_add_explicit(&batch->refs, 1, memory_order_relaxed);
  return batch;
}

void fw_change_batch_unref(struct fw_change_batch *batch) {
  if (!batch || atomic_fetch_sub_explicit(&batch->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < batch->count; i++)
    fw_change_unref(batch->changes[i]);
  free(batch);
}
