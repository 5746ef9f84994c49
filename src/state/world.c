#include "state/world.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rawjson.h"

/* ---- objects ---- */

struct fw_object *fw_object_new(enum fw_store_table table, int64_t id, int64_t parent_id,
                                const char *key, const char *doc, size_t doc_len, int64_t version) {
  struct fw_object *object = calloc(1, sizeof *object);
  if (!object)
    return NULL;
  object->key = strdup(key);
  object->doc = malloc(doc_len + 1);
  if (!object->key || !object->doc) {
    free(object->key);
    free(object->doc);
    free(object);
    return NULL;
  }
  memcpy(object->doc, doc, doc_len);
  object->doc[doc_len] = '\0';
  object->doc_len = doc_len;
  atomic_init(&object->refs, 1);
  object->table = table;
  object->id = id;
  object->parent_id = parent_id;
  object->version = version;
  return object;
}

struct fw_object *fw_object_ref(struct fw_object *object) {
  atomic_fetch_add_explicit(&object->refs, 1, memory_order_relaxed);
  return object;
}

void fw_object_unref(struct fw_object *object) {
  if (!object || atomic_fetch_sub_explicit(&object->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (object->free_compiled)
    object->free_compiled(object->compiled);
  free(object->key);
  free(object->doc);
  free(object);
}

/* ---- nodes ---- */

static void env_unref(struct fw_env_node *env) {
  if (!env || atomic_fetch_sub_explicit(&env->refs, 1, memory_order_acq_rel) != 1)
    return;
  fw_object_unref(env->env);
  fw_objects_release(env->states);
  fw_objects_release(env->configs);
  fw_objects_release(env->segment_rules);
  free(env);
}

static void project_unref(struct fw_project_node *project) {
  if (!project || atomic_fetch_sub_explicit(&project->refs, 1, memory_order_acq_rel) != 1)
    return;
  fw_object_unref(project->project);
  fw_objects_release(project->flags);
  fw_objects_release(project->segments);
  for (size_t i = 0; i < project->env_count; i++)
    env_unref(project->envs[i]);
  free(project->envs);
  free(project);
}

/* A table of `count` credentials with one reference, its items left to the caller; NULL
 * when out of memory. */
static struct fw_credentials *credentials_new(size_t count) {
  struct fw_credentials *table = malloc(sizeof *table + count * sizeof table->items[0]);
  if (table) {
    atomic_init(&table->refs, 1);
    table->count = count;
  }
  return table;
}

static void credentials_unref(struct fw_credentials *table) {
  if (table && atomic_fetch_sub_explicit(&table->refs, 1, memory_order_acq_rel) == 1)
    free(table);
}

struct fw_world *fw_world_ref(struct fw_world *world) {
  atomic_fetch_add_explicit(&world->refs, 1, memory_order_relaxed);
  return world;
}

void fw_world_unref(struct fw_world *world) {
  if (!world || atomic_fetch_sub_explicit(&world->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < world->project_count; i++)
    project_unref(world->projects[i]);
  free(world->projects);
  credentials_unref(world->credentials);
  free(world);
}

/* ---- lookups ---- */

/* Binary search over an array sorted by the key `key_of` gives. Returns the index of
 * `key`, or where it would go with *found false. */
#define DEFINE_SEARCH(name, type, key_of)                                                          \
  static size_t name(type const *items, size_t count, const char *key, bool *found) {              \
    size_t low = 0, high = count;                                                                  \
    while (low < high) {                                                                           \
      size_t mid = low + (high - low) / 2;                                                         \
      int cmp = strcmp(key_of(items[mid]), key);                                                   \
      if (cmp == 0) {                                                                              \
        *found = true;                                                                             \
        return mid;                                                                                \
      }                                                                                            \
      if (cmp < 0)                                                                                 \
        low = mid + 1;                                                                             \
      else                                                                                         \
        high = mid;                                                                                \
    }                                                                                              \
    *found = false;                                                                                \
    return low;                                                                                    \
  }

#define PROJECT_KEY(node) ((node)->project->key)
#define ENV_KEY(node) ((node)->env->key)
DEFINE_SEARCH(search_projects, struct fw_project_node *, PROJECT_KEY)
DEFINE_SEARCH(search_envs, struct fw_env_node *, ENV_KEY)

struct fw_project_node *fw_world_project(const struct fw_world *world, const char *key) {
  bool found;
  size_t at = search_projects(world->projects, world->project_count, key, &found);
  return found ? world->projects[at] : NULL;
}

struct fw_env_node *fw_project_env(const struct fw_project_node *project, const char *key) {
  bool found;
  size_t at = search_envs(project->envs, project->env_count, key, &found);
  return found ? project->envs[at] : NULL;
}

struct fw_object *fw_project_flag(const struct fw_project_node *project, const char *key) {
  return fw_objects_find(project->flags, key);
}

struct fw_object *fw_env_state(const struct fw_env_node *env, const char *flag_key) {
  return fw_objects_find(env->states, flag_key);
}

struct fw_object *fw_env_config(const struct fw_env_node *env, const char *key) {
  return fw_objects_find(env->configs, key);
}

struct fw_object *fw_project_segment(const struct fw_project_node *project, const char *key) {
  return fw_objects_find(project->segments, key);
}

struct fw_object *fw_env_segment_rules(const struct fw_env_node *env, const char *segment_key) {
  return fw_objects_find(env->segment_rules, segment_key);
}

/* The set of `table`'s objects in a project (flags or segments). */
static struct fw_objects **project_set(struct fw_project_node *project, enum fw_store_table table) {
  return table == FW_TABLE_SEGMENTS ? &project->segments : &project->flags;
}

/* The set of `table`'s objects in an environment (flag states, segment rules or
 * configs). */
static struct fw_objects **env_set(struct fw_env_node *env, enum fw_store_table table) {
  switch (table) {
  case FW_TABLE_CONFIGS:
    return &env->configs;
  case FW_TABLE_SEGMENT_RULES:
    return &env->segment_rules;
  default:
    return &env->states;
  }
}

/* Replaces *set with `next` (the caller's reference), dropping the old one. */
static void set_replace(struct fw_objects **set, struct fw_objects *next) {
  fw_objects_release(*set);
  *set = next;
}

bool fw_world_find_env(const struct fw_world *world, int64_t environment_id,
                       struct fw_project_node **project, struct fw_env_node **env) {
  for (size_t p = 0; p < world->project_count; p++) {
    struct fw_project_node *node = world->projects[p];
    for (size_t e = 0; e < node->env_count; e++) {
      if (node->envs[e]->env->id == environment_id) {
        *project = node;
        *env = node->envs[e];
        return true;
      }
    }
  }
  return false;
}

/* Compares two hashes in time independent of where they differ, so that probing with
 * chosen keys reveals nothing of stored ones. Returns <0, 0 or >0 like memcmp. */
static int compare_hashes(const uint8_t *a, const uint8_t *b) {
  int result = 0;
  for (size_t i = 0; i < 32; i++) {
    int diff = (int)a[i] - (int)b[i];
    /* Keep the first difference without branching on it. */
    int unset = (result == 0);
    result += unset * diff;
  }
  return result;
}

static size_t search_credentials(const struct fw_credential *items, size_t count,
                                 const uint8_t *hash, bool *found) {
  size_t low = 0, high = count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    int cmp = compare_hashes(items[mid].hash, hash);
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

const struct fw_credential *fw_world_credential(const struct fw_world *world,
                                                const uint8_t hash[32]) {
  bool found;
  const struct fw_credentials *table = world->credentials;
  size_t at = search_credentials(table->items, table->count, hash, &found);
  return found ? &table->items[at] : NULL;
}

/* ---- copying ---- */

static struct fw_env_node *env_copy(const struct fw_env_node *env) {
  struct fw_env_node *copy = calloc(1, sizeof *copy);
  if (!copy)
    return NULL;
  atomic_init(&copy->refs, 1);
  copy->env = fw_object_ref(env->env);
  copy->revision = env->revision;
  copy->last_change_ms = env->last_change_ms;
  copy->states = fw_objects_share(env->states);
  copy->configs = fw_objects_share(env->configs);
  copy->segment_rules = fw_objects_share(env->segment_rules);
  return copy;
}

static struct fw_project_node *project_copy(const struct fw_project_node *project) {
  struct fw_project_node *copy = calloc(1, sizeof *copy);
  if (!copy)
    return NULL;
  atomic_init(&copy->refs, 1);
  copy->project = fw_object_ref(project->project);
  copy->flags = fw_objects_share(project->flags);
  copy->segments = fw_objects_share(project->segments);
  copy->envs = malloc((project->env_count ? project->env_count : 1) * sizeof *copy->envs);
  if (!copy->envs) {
    free(copy->envs);
    copy->envs = NULL;
    project_unref(copy);
    return NULL;
  }
  for (size_t i = 0; i < project->env_count; i++) {
    copy->envs[i] = project->envs[i];
    atomic_fetch_add_explicit(&copy->envs[i]->refs, 1, memory_order_relaxed);
  }
  copy->env_count = project->env_count;
  return copy;
}

static struct fw_world *world_copy(const struct fw_world *world) {
  struct fw_world *copy = calloc(1, sizeof *copy);
  if (!copy)
    return NULL;
  atomic_init(&copy->refs, 1);
  size_t projects = world->project_count;
  copy->projects = malloc((projects ? projects : 1) * sizeof *copy->projects);
  if (!copy->projects) {
    free(copy);
    return NULL;
  }
  for (size_t i = 0; i < projects; i++) {
    copy->projects[i] = world->projects[i];
    atomic_fetch_add_explicit(&copy->projects[i]->refs, 1, memory_order_relaxed);
  }
  copy->project_count = projects;
  copy->credentials = world->credentials;
  atomic_fetch_add_explicit(&copy->credentials->refs, 1, memory_order_relaxed);
  return copy;
}

/* Replaces (or inserts, keeping the order) `node` as the project under its key in
 * `world`, which the caller has just copied and owns alone. Takes the node's reference. */
static int world_put_project(struct fw_world *world, struct fw_project_node *node) {
  bool found;
  size_t at = search_projects(world->projects, world->project_count, node->project->key, &found);
  if (found) {
    project_unref(world->projects[at]);
    world->projects[at] = node;
    return FW_OK;
  }
  struct fw_project_node **grown =
      realloc(world->projects, (world->project_count + 1) * sizeof *grown);
  if (!grown)
    return FW_ENOMEM;
  memmove(grown + at + 1, grown + at, (world->project_count - at) * sizeof *grown);
  grown[at] = node;
  world->projects = grown;
  world->project_count++;
  return FW_OK;
}

static int project_put_env(struct fw_project_node *project, struct fw_env_node *node) {
  bool found;
  size_t at = search_envs(project->envs, project->env_count, node->env->key, &found);
  if (found) {
    env_unref(project->envs[at]);
    project->envs[at] = node;
    return FW_OK;
  }
  struct fw_env_node **grown = realloc(project->envs, (project->env_count + 1) * sizeof *grown);
  if (!grown)
    return FW_ENOMEM;
  memmove(grown + at + 1, grown + at, (project->env_count - at) * sizeof *grown);
  grown[at] = node;
  project->envs = grown;
  project->env_count++;
  return FW_OK;
}

/* A copy of `world` whose project `project_key` is a fresh copy too, for the caller to
 * change. NULL when out of memory or when the project does not exist. */
static struct fw_world *copy_to_project(const struct fw_world *world, const char *project_key,
                                        struct fw_project_node **project_out) {
  struct fw_project_node *project = fw_world_project(world, project_key);
  if (!project)
    return NULL;
  struct fw_world *next = world_copy(world);
  struct fw_project_node *project_next = next ? project_copy(project) : NULL;
  if (!project_next || world_put_project(next, project_next) != FW_OK) {
    project_unref(project_next);
    fw_world_unref(next);
    return NULL;
  }
  *project_out = project_next;
  return next;
}

/* As copy_to_project, one level further down, to environment `env_key`. */
static struct fw_world *copy_to_env(const struct fw_world *world, const char *project_key,
                                    const char *env_key, struct fw_env_node **env_out) {
  struct fw_project_node *project;
  struct fw_world *next = copy_to_project(world, project_key, &project);
  if (!next)
    return NULL;
  struct fw_env_node *env = fw_project_env(project, env_key);
  struct fw_env_node *env_next = env ? env_copy(env) : NULL;
  if (!env_next || project_put_env(project, env_next) != FW_OK) {
    env_unref(env_next);
    fw_world_unref(next);
    return NULL;
  }
  *env_out = env_next;
  return next;
}

struct fw_world *fw_world_empty(void) {
  struct fw_world *world = calloc(1, sizeof *world);
  if (!world)
    return NULL;
  atomic_init(&world->refs, 1);
  world->credentials = credentials_new(0);
  if (!world->credentials) {
    free(world);
    return NULL;
  }
  return world;
}

struct fw_world *fw_world_with_project(const struct fw_world *world, struct fw_object *project) {
  struct fw_project_node *existing = fw_world_project(world, project->key);
  struct fw_project_node *node;
  if (existing) {
    node = project_copy(existing);
    if (node) {
      fw_object_unref(node->project);
      node->project = fw_object_ref(project);
    }
  } else {
    node = calloc(1, sizeof *node);
    if (node) {
      atomic_init(&node->refs, 1);
      node->project = fw_object_ref(project);
    }
  }
  struct fw_world *next = node ? world_copy(world) : NULL;
  if (!next || world_put_project(next, node) != FW_OK) {
    project_unref(node);
    fw_world_unref(next);
    return NULL;
  }
  return next;
}

struct fw_world *fw_world_with_env(const struct fw_world *world, const char *project_key,
                                   struct fw_object *env, int64_t revision,
                                   int64_t last_change_ms) {
  struct fw_project_node *project;
  struct fw_world *next = copy_to_project(world, project_key, &project);
  if (!next)
    return NULL;
  struct fw_env_node *existing = fw_project_env(project, env->key);
  struct fw_env_node *node;
  if (existing) {
    node = env_copy(existing);
  } else {
    node = calloc(1, sizeof *node);
    if (node) {
      atomic_init(&node->refs, 1);
      node->revision = revision;
      node->last_change_ms = last_change_ms;
    }
  }
  if (node) {
    fw_object_unref(node->env);
    node->env = fw_object_ref(env);
  }
  if (!node || project_put_env(project, node) != FW_OK) {
    env_unref(node);
    fw_world_unref(next);
    return NULL;
  }
  return next;
}

struct fw_world *fw_world_with_project_object(const struct fw_world *world, const char *project_key,
                                              struct fw_object *object) {
  struct fw_project_node *project;
  struct fw_world *next = copy_to_project(world, project_key, &project);
  if (!next)
    return NULL;
  struct fw_objects **set = project_set(project, object->table), *replaced;
  if (fw_objects_with(*set, object, &replaced) != FW_OK) {
    fw_world_unref(next);
    return NULL;
  }
  set_replace(set, replaced);
  return next;
}

/* Puts `object` into the array its table names in an environment the caller owns alone. */
static bool env_put(struct fw_env_node *env, struct fw_object *object) {
  struct fw_objects **set = env_set(env, object->table), *replaced;
  if (fw_objects_with(*set, object, &replaced) != FW_OK)
    return false;
  set_replace(set, replaced);
  return true;
}

struct fw_world *fw_world_with_env_object(const struct fw_world *world, const char *project_key,
                                          const char *env_key, struct fw_object *object) {
  struct fw_env_node *env;
  struct fw_world *next = copy_to_env(world, project_key, env_key, &env);
  if (next && !env_put(env, object)) {
    fw_world_unref(next);
    return NULL;
  }
  return next;
}

struct fw_world *fw_world_with_env_change(const struct fw_world *world, const char *project_key,
                                          const char *env_key, struct fw_object *object,
                                          int64_t revision, int64_t at_ms) {
  struct fw_env_node *env;
  struct fw_world *next = copy_to_env(world, project_key, env_key, &env);
  if (next && !env_put(env, object)) {
    fw_world_unref(next);
    return NULL;
  }
  if (next) {
    env->revision = revision;
    env->last_change_ms = at_ms;
  }
  return next;
}

struct fw_world *fw_world_with_env_objects(const struct fw_world *world, const char *project_key,
                                           const char *env_key, enum fw_store_table table,
                                           struct fw_object **objects, size_t count) {
  struct fw_env_node *env;
  struct fw_world *next = copy_to_env(world, project_key, env_key, &env);
  struct fw_objects *set;
  if (!next || fw_objects_from(objects, count, &set) != FW_OK) {
    fw_world_unref(next);
    return NULL;
  }
  set_replace(env_set(env, table), set);
  return next;
}

struct fw_world *fw_world_with_revision(const struct fw_world *world, const char *project_key,
                                        const char *env_key, int64_t revision, int64_t at_ms) {
  struct fw_env_node *env;
  struct fw_world *next = copy_to_env(world, project_key, env_key, &env);
  if (!next)
    return NULL;
  env->revision = revision;
  env->last_change_ms = at_ms;
  return next;
}

/* Replaces *set with a version without `key`. False when absent or memory is short. */
static bool set_remove(struct fw_objects **set, const char *key) {
  struct fw_objects *smaller;
  if (fw_objects_without(*set, key, &smaller) != FW_OK)
    return false;
  set_replace(set, smaller);
  return true;
}

struct fw_world *fw_world_without_project(const struct fw_world *world, const char *project_key) {
  bool found;
  size_t at = search_projects(world->projects, world->project_count, project_key, &found);
  struct fw_world *next = found ? world_copy(world) : NULL;
  if (!next)
    return NULL;
  project_unref(next->projects[at]);
  memmove(next->projects + at, next->projects + at + 1,
          (next->project_count - at - 1) * sizeof *next->projects);
  next->project_count--;
  return next;
}

struct fw_world *fw_world_without_env(const struct fw_world *world, const char *project_key,
                                      const char *env_key) {
  struct fw_project_node *project;
  struct fw_world *next = copy_to_project(world, project_key, &project);
  if (!next)
    return NULL;
  bool found;
  size_t at = search_envs(project->envs, project->env_count, env_key, &found);
  if (!found) {
    fw_world_unref(next);
    return NULL;
  }
  int64_t environment_id = project->envs[at]->env->id;
  env_unref(project->envs[at]);
  memmove(project->envs + at, project->envs + at + 1,
          (project->env_count - at - 1) * sizeof *project->envs);
  project->env_count--;
  /* Its keys go with it. */
  const struct fw_credentials *old = next->credentials;
  struct fw_credentials *kept = credentials_new(old->count);
  if (!kept) {
    fw_world_unref(next);
    return NULL;
  }
  kept->count = 0;
  for (size_t i = 0; i < old->count; i++)
    if (old->items[i].kind == FW_CREDENTIAL_ADMIN || old->items[i].environment_id != environment_id)
      kept->items[kept->count++] = old->items[i];
  credentials_unref(next->credentials);
  next->credentials = kept;
  return next;
}

struct fw_world *fw_world_without_project_object(const struct fw_world *world,
                                                 const char *project_key, enum fw_store_table table,
                                                 const char *key) {
  struct fw_project_node *project;
  struct fw_world *next = copy_to_project(world, project_key, &project);
  if (!next)
    return NULL;
  if (!set_remove(project_set(project, table), key)) {
    fw_world_unref(next);
    return NULL;
  }
  enum fw_store_table per_env =
      table == FW_TABLE_SEGMENTS ? FW_TABLE_SEGMENT_RULES : FW_TABLE_FLAG_STATES;
  for (size_t i = 0; i < project->env_count; i++) {
    if (!fw_objects_find(*env_set(project->envs[i], per_env), key))
      continue;
    struct fw_env_node *env = env_copy(project->envs[i]);
    if (!env || !set_remove(env_set(env, per_env), key)) {
      env_unref(env);
      fw_world_unref(next);
      return NULL;
    }
    env_unref(project->envs[i]);
    project->envs[i] = env;
  }
  return next;
}

struct fw_world *fw_world_without_config(const struct fw_world *world, const char *project_key,
                                         const char *env_key, const char *key) {
  struct fw_env_node *env;
  struct fw_world *next = copy_to_env(world, project_key, env_key, &env);
  if (next && !set_remove(&env->configs, key)) {
    fw_world_unref(next);
    return NULL;
  }
  return next;
}

struct fw_world *fw_world_with_credential(const struct fw_world *world,
                                          const struct fw_credential *credential) {
  struct fw_world *next = world_copy(world);
  if (!next)
    return NULL;
  const struct fw_credentials *old = next->credentials;
  bool found;
  size_t at = search_credentials(old->items, old->count, credential->hash, &found);
  struct fw_credentials *table = credentials_new(old->count + !found);
  if (!table) {
    fw_world_unref(next);
    return NULL;
  }
  /* The items before `at`, the new one, then the rest (without the one it replaces). */
  memcpy(table->items, old->items, at * sizeof table->items[0]);
  table->items[at] = *credential;
  size_t rest = at + found;
  memcpy(table->items + at + 1, old->items + rest, (old->count - rest) * sizeof table->items[0]);
  credentials_unref(next->credentials);
  next->credentials = table;
  return next;
}

/* ---- loading ---- */

/* Rows arrive in id order per table; these indexes find owners by id in O(log n). */
struct env_index {
  int64_t id;
  struct fw_env_node *node;
};

struct flag_index {
  int64_t id;
  struct fw_object *flag;
};

/* An object waiting for its set: sets are built once every row is in, sorted. */
struct pending {
  enum fw_store_table table;
  void *owner; /* its project node (flags, segments) or environment node */
  struct fw_object *object;
};

struct loader {
  struct fw_world *world;
  struct pending *pending;
  size_t pending_count, pending_cap;
  size_t project_cap;
  struct env_index *envs;
  size_t env_count, env_cap;
  struct flag_index *flags; /* flags and segments by id: what per-environment rows belong to */
  size_t flag_count, flag_cap;
  struct flag_index *segments;
  size_t segment_count, segment_cap;
  size_t credential_cap;
};

/* Grows `*items` (of `size`-byte elements) to hold one more. */
static int grow(void **items, size_t *cap, size_t count, size_t size) {
  if (count < *cap)
    return FW_OK;
  size_t next = *cap ? *cap * 2 : 16;
  void *bigger = realloc(*items, next * size);
  if (!bigger)
    return FW_ENOMEM;
  *items = bigger;
  *cap = next;
  return FW_OK;
}

static struct fw_project_node *project_by_id(struct loader *l, int64_t id) {
  for (size_t i = 0; i < l->world->project_count; i++)
    if (l->world->projects[i]->project->id == id)
      return l->world->projects[i];
  return NULL;
}

static struct fw_env_node *env_by_id(struct loader *l, int64_t id) {
  size_t low = 0, high = l->env_count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    if (l->envs[mid].id == id)
      return l->envs[mid].node;
    if (l->envs[mid].id < id)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

static struct fw_object *owner_by_id(const struct flag_index *index, size_t count, int64_t id) {
  size_t low = 0, high = count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    if (index[mid].id == id)
      return index[mid].flag;
    if (index[mid].id < id)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

/* Makes room for one more pointer in an array whose capacity is the next power of two of
 * its count (so no capacity needs keeping while loading). */
static int room_for_one(void **items, size_t count) {
  if (count >= 4 && (count & (count - 1)) != 0)
    return FW_OK;
  void *bigger = realloc(*items, (count < 4 ? 4 : count * 2) * sizeof(void *));
  if (!bigger)
    return FW_ENOMEM;
  *items = bigger;
  return FW_OK;
}

/* Keeps `object` (taking its reference) for the set of `table` of `owner`. */
static int add_pending(struct loader *l, enum fw_store_table table, void *owner,
                       struct fw_object *object) {
  int rc = grow((void **)&l->pending, &l->pending_cap, l->pending_count, sizeof *l->pending);
  if (!rc)
    l->pending[l->pending_count++] = (struct pending){table, owner, object};
  return rc;
}

static int64_t doc_revision(const struct fw_object *object) {
  struct fw_rawjson root = {object->doc, object->doc_len}, value;
  if (fw_rawjson_member(root, "revision", &value) != FW_OK)
    return 0;
  return strtoll(value.text, NULL, 10);
}

static int load_doc(void *ctx, const struct fw_store_doc *doc) {
  struct loader *l = ctx;
  struct fw_world *world = l->world;
  const char *key = doc->key;
  struct fw_object *flag = NULL;
  if (doc->table == FW_TABLE_FLAG_STATES || doc->table == FW_TABLE_SEGMENT_RULES) {
    flag = doc->table == FW_TABLE_FLAG_STATES ? owner_by_id(l->flags, l->flag_count, doc->id)
                                              : owner_by_id(l->segments, l->segment_count, doc->id);
    if (!flag)
      return FW_EINVAL;
    key = flag->key;
  }
  struct fw_object *object =
      fw_object_new(doc->table, doc->id, doc->parent_id, key, doc->doc, doc->doc_len, doc->version);
  if (!object)
    return FW_ENOMEM;
  int rc = FW_EINVAL;
  switch (doc->table) {
  case FW_TABLE_PROJECTS: {
    struct fw_project_node *node = calloc(1, sizeof *node);
    rc = node ? grow((void **)&world->projects, &l->project_cap, world->project_count,
                     sizeof *world->projects)
              : FW_ENOMEM;
    if (rc) {
      free(node);
      break;
    }
    atomic_init(&node->refs, 1);
    node->project = object;
    object = NULL;
    world->projects[world->project_count++] = node;
    break;
  }
  case FW_TABLE_ENVIRONMENTS: {
    struct fw_project_node *project = project_by_id(l, doc->parent_id);
    struct fw_env_node *node = project ? calloc(1, sizeof *node) : NULL;
    if (!node || grow((void **)&l->envs, &l->env_cap, l->env_count, sizeof *l->envs) ||
        room_for_one((void **)&project->envs, project->env_count)) {
      free(node);
      rc = project ? FW_ENOMEM : FW_EINVAL;
      break;
    }
    atomic_init(&node->refs, 1);
    node->env = object;
    node->revision = doc->revision;
    node->last_change_ms = doc->last_change_ms;
    object = NULL;
    project->envs[project->env_count++] = node;
    l->envs[l->env_count++] = (struct env_index){doc->id, node};
    rc = FW_OK;
    break;
  }
  case FW_TABLE_FLAGS:
  case FW_TABLE_SEGMENTS: {
    struct fw_project_node *project = project_by_id(l, doc->parent_id);
    if (!project)
      break;
    bool flags = doc->table == FW_TABLE_FLAGS;
    struct flag_index **index = flags ? &l->flags : &l->segments;
    size_t *count = flags ? &l->flag_count : &l->segment_count;
    rc = grow((void **)index, flags ? &l->flag_cap : &l->segment_cap, *count, sizeof **index);
    if (!rc)
      rc = add_pending(l, doc->table, project, object);
    if (!rc) {
      (*index)[(*count)++] = (struct flag_index){doc->id, object};
      object = NULL;
    }
    break;
  }
  case FW_TABLE_FLAG_STATES:
  case FW_TABLE_SEGMENT_RULES:
  case FW_TABLE_CONFIGS: {
    struct fw_env_node *env = env_by_id(l, doc->parent_id);
    if (!env)
      break;
    object->revision = doc_revision(object);
    rc = add_pending(l, doc->table, env, object);
    if (!rc)
      object = NULL;
    break;
  }
  }
  fw_object_unref(object);
  return rc;
}

static int load_credential(void *ctx, const struct fw_store_credential *row) {
  struct loader *l = ctx;
  struct fw_world *world = l->world;
  /* The table is the loader's alone until the world is handed out, so it may grow. */
  struct fw_credentials *table = world->credentials;
  if (table->count == l->credential_cap) {
    size_t cap = l->credential_cap ? l->credential_cap * 2 : 16;
    table = realloc(table, sizeof *table + cap * sizeof table->items[0]);
    if (!table)
      return FW_ENOMEM;
    world->credentials = table;
    l->credential_cap = cap;
  }
  struct fw_credential *credential = &table->items[table->count++];
  memset(credential, 0, sizeof *credential);
  memcpy(credential->hash, row->hash, sizeof credential->hash);
  credential->kind = row->kind;
  credential->environment_id = row->environment_id;
  credential->expires_ms = row->expires_ms;
  credential->created_ms = row->created_ms;
  credential->role = !row->role                     ? FW_ROLE_VIEWER
                     : !strcmp(row->role, "admin")  ? FW_ROLE_ADMIN
                     : !strcmp(row->role, "editor") ? FW_ROLE_EDITOR
                                                    : FW_ROLE_VIEWER;
  snprintf(credential->name, sizeof credential->name, "%s", row->name ? row->name : "");
  return FW_OK;
}

/* Groups pending objects by table and owner, in key order within a group. */
static int compare_pending(const void *a, const void *b) {
  const struct pending *x = a, *y = b;
  if (x->table != y->table)
    return x->table < y->table ? -1 : 1;
  if (x->owner != y->owner)
    return (uintptr_t)x->owner < (uintptr_t)y->owner ? -1 : 1;
  return strcmp(x->object->key, y->object->key);
}

static int compare_project_keys(const void *a, const void *b) {
  return strcmp((*(struct fw_project_node *const *)a)->project->key,
                (*(struct fw_project_node *const *)b)->project->key);
}

static int compare_env_keys(const void *a, const void *b) {
  return strcmp((*(struct fw_env_node *const *)a)->env->key,
                (*(struct fw_env_node *const *)b)->env->key);
}

static int compare_credentials(const void *a, const void *b) {
  return memcmp(((const struct fw_credential *)a)->hash, ((const struct fw_credential *)b)->hash,
                32);
}

/* qsort with its contract kept: an empty array may be NULL, which qsort may not get. */
static void sort_items(void *items, size_t count, size_t size,
                       int (*compare)(const void *, const void *)) {
  if (count > 1)
    qsort(items, count, size, compare);
}

/* Puts every array in the order lookups search. */
static void sort_world(struct fw_world *world) {
  sort_items(world->projects, world->project_count, sizeof *world->projects, compare_project_keys);
  for (size_t p = 0; p < world->project_count; p++) {
    struct fw_project_node *project = world->projects[p];
    sort_items(project->envs, project->env_count, sizeof *project->envs, compare_env_keys);
  }
  sort_items(world->credentials->items, world->credentials->count,
             sizeof world->credentials->items[0], compare_credentials);
}

/* Builds every node's sets from the pending objects, then drops the loader's references. */
static int build_sets(struct loader *l) {
  sort_items(l->pending, l->pending_count, sizeof *l->pending, compare_pending);
  struct fw_object **group = malloc((l->pending_count ? l->pending_count : 1) * sizeof *group);
  int rc = group ? FW_OK : FW_ENOMEM;
  for (size_t start = 0, end; !rc && start < l->pending_count; start = end) {
    const struct pending *first = &l->pending[start];
    size_t count = 0;
    for (end = start; end < l->pending_count && l->pending[end].table == first->table &&
                      l->pending[end].owner == first->owner;
         end++)
      group[count++] = l->pending[end].object;
    bool per_project = first->table == FW_TABLE_FLAGS || first->table == FW_TABLE_SEGMENTS;
    struct fw_objects **set =
        per_project ? project_set(first->owner, first->table) : env_set(first->owner, first->table);
    rc = fw_objects_from(group, count, set);
  }
  free(group);
  for (size_t i = 0; i < l->pending_count; i++)
    fw_object_unref(l->pending[i].object);
  free(l->pending);
  return rc;
}

int fw_world_load(struct fw_store *store, struct fw_world **out) {
  struct loader l = {.world = fw_world_empty()};
  if (!l.world)
    return FW_ENOMEM;
  struct fw_store_loader callbacks = {.doc = load_doc, .credential = load_credential, .ctx = &l};
  int rc = store->ops->load(store, &callbacks);
  int built = build_sets(&l);
  if (!rc)
    rc = built;
  free(l.envs);
  free(l.flags);
  free(l.segments);
  if (rc) {
    fw_world_unref(l.world);
    return rc;
  }
  sort_world(l.world);
  *out = l.world;
  return FW_OK;
}
