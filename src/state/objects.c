#include "state/objects.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/world.h"

/* Objects per chunk at most; a chunk that grows past it splits in two. Sets built in one
 * go fill chunks three quarters, leaving room for inserts. */
#define CHUNK_MAX 64
#define CHUNK_FILL 48

struct chunk {
  _Atomic uint32_t refs;
  uint32_t count;
  struct fw_object *items[CHUNK_MAX];
};

struct entry {
  struct chunk *chunk;
  size_t start; /* index of the chunk's first object in the set */
};

struct fw_objects {
  _Atomic uint32_t refs;
  size_t count;
  size_t chunk_count;
  struct entry entries[];
};

static void chunk_release(struct chunk *chunk) {
  if (atomic_fetch_sub_explicit(&chunk->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (uint32_t i = 0; i < chunk->count; i++)
    fw_object_unref(chunk->items[i]);
  free(chunk);
}

static struct chunk *chunk_new(void) {
  struct chunk *chunk = malloc(sizeof *chunk);
  if (chunk) {
    atomic_init(&chunk->refs, 1);
    chunk->count = 0;
  }
  return chunk;
}

static struct fw_objects *set_new(size_t chunk_count) {
  struct fw_objects *set = malloc(sizeof *set + chunk_count * sizeof set->entries[0]);
  if (set) {
    atomic_init(&set->refs, 1);
    set->chunk_count = chunk_count;
  }
  return set;
}

/* Numbers the chunks' starting indexes and the count. */
static void set_index(struct fw_objects *set) {
  size_t start = 0;
  for (size_t c = 0; c < set->chunk_count; c++) {
    set->entries[c].start = start;
    start += set->entries[c].chunk->count;
  }
  set->count = start;
}

size_t fw_objects_count(const struct fw_objects *set) { return set ? set->count : 0; }

struct fw_object *fw_objects_at(const struct fw_objects *set, size_t index) {
  size_t low = 0, high = set->chunk_count;
  while (high - low > 1) {
    size_t mid = low + (high - low) / 2;
    if (set->entries[mid].start <= index)
      low = mid;
    else
      high = mid;
  }
  return set->entries[low].chunk->items[index - set->entries[low].start];
}

/* The chunk `key` belongs in: the last whose first key is not after it (the first chunk
 * for a key before all). */
static size_t chunk_for(const struct fw_objects *set, const char *key) {
  size_t low = 0, high = set->chunk_count;
  while (high - low > 1) {
    size_t mid = low + (high - low) / 2;
    if (strcmp(set->entries[mid].chunk->items[0]->key, key) <= 0)
      low = mid;
    else
      high = mid;
  }
  return low;
}

/* Where `key` is in `chunk`, or would go; *found tells. */
static uint32_t position_in(const struct chunk *chunk, const char *key, bool *found) {
  uint32_t low = 0, high = chunk->count;
  while (low < high) {
    uint32_t mid = low + (high - low) / 2;
    int cmp = strcmp(chunk->items[mid]->key, key);
    if (cmp == 0) {
      *found = true;
      return mid;
    }
    if (cmp < 0)
      low = mid + 1;
    else
      high = mid;
  }
  *found = false;
  return low;
}

struct fw_object *fw_objects_find(const struct fw_objects *set, const char *key) {
  if (!set)
    return NULL;
  const struct chunk *chunk = set->entries[chunk_for(set, key)].chunk;
  bool found;
  uint32_t at = position_in(chunk, key, &found);
  return found ? chunk->items[at] : NULL;
}

struct fw_objects *fw_objects_share(struct fw_objects *set) {
  if (set)
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
  return set;
}

void fw_objects_release(struct fw_objects *set) {
  if (!set || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t c = 0; c < set->chunk_count; c++)
    chunk_release(set->entries[c].chunk);
  free(set);
}

/* A new set whose chunk `at` is replaced by the `added` chunks (0, 1 or 2), sharing every
 * other chunk. Takes the added chunks' references. */
static struct fw_objects *replace_chunk(const struct fw_objects *set, size_t at,
                                        struct chunk **added, size_t added_count) {
  size_t chunk_count = set->chunk_count - 1 + added_count;
  struct fw_objects *next = set_new(chunk_count);
  if (!next)
    return NULL;
  size_t n = 0;
  for (size_t c = 0; c < set->chunk_count; c++) {
    if (c == at) {
      for (size_t a = 0; a < added_count; a++)
        next->entries[n++].chunk = added[a];
      continue;
    }
    struct chunk *shared = set->entries[c].chunk;
    atomic_fetch_add_explicit(&shared->refs, 1, memory_order_relaxed);
    next->entries[n++].chunk = shared;
  }
  set_index(next);
  return next;
}

int fw_objects_with(const struct fw_objects *set, struct fw_object *object,
                    struct fw_objects **out) {
  if (!set)
    return fw_objects_from(&object, 1, out);
  size_t at = chunk_for(set, object->key);
  const struct chunk *old = set->entries[at].chunk;
  bool found;
  uint32_t position = position_in(old, object->key, &found);
  /* The changed chunk's objects in order, with `object` in its place. */
  struct fw_object *items[CHUNK_MAX + 1];
  uint32_t count = 0;
  for (uint32_t i = 0; i < old->count; i++) {
    if (i == position)
      items[count++] = object;
    if (!(found && i == position))
      items[count++] = old->items[i];
  }
  if (position == old->count)
    items[count++] = object;
  /* A full chunk splits in two halves. */
  size_t pieces = count > CHUNK_MAX ? 2 : 1;
  struct chunk *added[2] = {NULL, NULL};
  for (size_t p = 0; p < pieces; p++) {
    added[p] = chunk_new();
    if (!added[p]) {
      free(added[0]);
      return FW_ENOMEM;
    }
  }
  uint32_t first_half = pieces == 2 ? count / 2 : count;
  for (uint32_t i = 0; i < count; i++) {
    struct chunk *target = i < first_half ? added[0] : added[1];
    target->items[target->count++] = fw_object_ref(items[i]);
  }
  struct fw_objects *next = replace_chunk(set, at, added, pieces);
  if (!next) {
    for (size_t p = 0; p < pieces; p++)
      chunk_release(added[p]);
    return FW_ENOMEM;
  }
  *out = next;
  return FW_OK;
}

int fw_objects_without(const struct fw_objects *set, const char *key, struct fw_objects **out) {
  if (!set)
    return FW_ENOTFOUND;
  size_t at = chunk_for(set, key);
  const struct chunk *old = set->entries[at].chunk;
  bool found;
  uint32_t position = position_in(old, key, &found);
  if (!found)
    return FW_ENOTFOUND;
  if (set->count == 1) {
    *out = NULL;
    return FW_OK;
  }
  struct chunk *smaller = NULL;
  if (old->count > 1) {
    smaller = chunk_new();
    if (!smaller)
      return FW_ENOMEM;
    for (uint32_t i = 0; i < old->count; i++)
      if (i != position)
        smaller->items[smaller->count++] = fw_object_ref(old->items[i]);
  }
  struct fw_objects *next = replace_chunk(set, at, &smaller, smaller ? 1 : 0);
  if (!next) {
    if (smaller)
      chunk_release(smaller);
    return FW_ENOMEM;
  }
  *out = next;
  return FW_OK;
}

int fw_objects_from(struct fw_object *const *objects, size_t count, struct fw_objects **out) {
  if (count == 0) {
    *out = NULL;
    return FW_OK;
  }
  size_t chunk_count = (count + CHUNK_FILL - 1) / CHUNK_FILL;
  struct fw_objects *set = set_new(chunk_count);
  if (!set)
    return FW_ENOMEM;
  for (size_t c = 0; c < chunk_count; c++) {
    struct chunk *chunk = chunk_new();
    if (!chunk) {
      set->chunk_count = c;
      fw_objects_release(set);
      return FW_ENOMEM;
    }
    for (size_t i = c * CHUNK_FILL; i < count && i < (c + 1) * CHUNK_FILL; i++)
      chunk->items[chunk->count++] = fw_object_ref(objects[i]);
    set->entries[c].chunk = chunk;
  }
  set_index(set);
  *out = set;
  return FW_OK;
}
