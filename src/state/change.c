#include "state/change.h"

#include <stdlib.h>
#include <string.h>

#include "state/compiled.h"
#include "util/rawjson.h"

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

enum fw_change_family fw_change_family(enum fw_change_kind kind) {
  switch (kind) {
  case FW_CHANGE_FLAG_CREATED:
  case FW_CHANGE_FLAG_UPDATED:
  case FW_CHANGE_FLAG_DELETED:
    return FW_FAMILY_FLAG;
  case FW_CHANGE_CONFIG_UPDATED:
  case FW_CHANGE_CONFIG_DELETED:
    return FW_FAMILY_CONFIG;
  case FW_CHANGE_SEGMENT_UPDATED:
  case FW_CHANGE_SEGMENT_DELETED:
    return FW_FAMILY_SEGMENT;
  default:
    return FW_FAMILY_OTHER;
  }
}

bool fw_change_is_deletion(enum fw_change_kind kind) {
  return kind == FW_CHANGE_FLAG_DELETED || kind == FW_CHANGE_CONFIG_DELETED ||
         kind == FW_CHANGE_SEGMENT_DELETED;
}

bool fw_change_object_seen_by_clients(enum fw_change_kind kind, const char *object, size_t len) {
  if (!object)
    return false;
  enum fw_change_family family = fw_change_family(kind);
  if (family == FW_FAMILY_CONFIG)
    return true;
  struct fw_rawjson value;
  return family == FW_FAMILY_FLAG &&
         fw_rawjson_member((struct fw_rawjson){object, len}, "client_visible", &value) == FW_OK &&
         value.len == 4 && memcmp(value.text, "true", 4) == 0;
}

int fw_change_leaves_clients(const struct fw_world *before, const struct fw_store_change *row) {
  enum fw_change_kind kind = fw_change_kind_of(row->kind);
  enum fw_change_family family = fw_change_family(kind);
  struct fw_project_node *project;
  struct fw_env_node *env;
  if ((family != FW_FAMILY_FLAG && family != FW_FAMILY_CONFIG) ||
      !fw_world_find_env(before, row->environment_id, &project, &env))
    return 0;
  bool seen;
  if (family == FW_FAMILY_CONFIG) {
    seen = fw_env_config(env, row->key) != NULL;
  } else {
    const struct fw_object *state = fw_env_state(env, row->key);
    const struct fw_compiled_flag *compiled = state ? fw_compiled_flag_of(state) : NULL;
    seen = compiled && compiled->client_visible;
  }
  return seen && !fw_change_object_seen_by_clients(kind, row->object, row->object_len);
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
  change->leaves_clients = row->leaves_clients;
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
