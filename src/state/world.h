/* The in-memory state: every project, environment, flag, flag state, config and
 * credential, as an immutable tree of refcounted nodes.
 *
 * A world is never modified once published. The writer derives the next world from the
 * last one by copying the path from the root to what changed (the world's list of
 * projects, a project node's list of environments, the node itself) and sharing
 * everything else: objects, and the persistent sets that hold them (state/objects.h), of
 * which a change copies one chunk and the list of chunks. So a change costs what changed,
 * not the size of the environment. Readers on any thread hold a reference and read
 * without locks.
 *
 * Thread: nodes are shared between threads; reference counts are atomic. Building a
 * world (the fw_world_with_* functions) is the writer's job. */
#ifndef FW_STATE_WORLD_H
#define FW_STATE_WORLD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/objects.h"
#include "store/store.h"
#include "util/common.h"

/* A stored object: its identity and its JSON document, exactly as the API serves it. */
struct fw_object {
  _Atomic uint32_t refs;
  enum fw_store_table table;
  int64_t id;        /* for a flag state: the flag's id */
  int64_t parent_id; /* project, or environment (flag states, configs) */
  int64_t version;
  int64_t revision; /* flag states and configs: the environment revision of their last change */
  char *key;        /* NUL-terminated; a flag state's is its flag's key */
  char *doc;        /* NUL-terminated JSON */
  size_t doc_len;
  /* A compiled form for evaluation (state/compiled.h), owned and freed with the
   * object; attached before the object is shared. */
  void *compiled;
  void (*free_compiled)(void *compiled);
};

/* An environment: its object, its change counter and its per-environment objects, each
 * a persistent set sorted by key (state/objects.h). */
struct fw_env_node {
  _Atomic uint32_t refs;
  struct fw_object *env;
  int64_t revision;          /* the last revision committed */
  int64_t last_change_ms;    /* the time of that revision */
  struct fw_objects *states; /* keyed by flag key */
  struct fw_objects *configs;
  struct fw_objects *segment_rules; /* keyed by segment key */
};

struct fw_project_node {
  _Atomic uint32_t refs;
  struct fw_object *project;
  struct fw_objects *flags;
  struct fw_env_node **envs; /* sorted by key */
  size_t env_count;
  struct fw_objects *segments;
};

/* A credential as the server checks it: the SHA-256 of the key's text. */
struct fw_credential {
  uint8_t hash[32];
  enum fw_credential_kind kind;
  int64_t environment_id;
  int role;           /* admin tokens: enum fw_role */
  int64_t expires_ms; /* 0: never */
  int64_t created_ms;
  char name[48]; /* who acts, for the change log; "server" or "client" for keys */
};

enum fw_role { FW_ROLE_VIEWER, FW_ROLE_EDITOR, FW_ROLE_ADMIN };

/* A world's credentials, sorted by hash. Immutable once in a world and shared by every
 * world made from it until a write changes a credential, which makes a new table: two
 * worlds' `credentials` pointers are equal exactly when no key changed between them. */
struct fw_credentials {
  _Atomic uint32_t refs;
  size_t count;
  struct fw_credential items[];
};

struct fw_world {
  _Atomic uint32_t refs;
  struct fw_project_node **projects; /* sorted by key */
  size_t project_count;
  struct fw_credentials *credentials; /* never NULL */
};

/* ---- objects ---- */

/* A new object with one reference, owning copies of `key` and `doc`. NULL when out of
 * memory. */
struct fw_object *fw_object_new(enum fw_store_table table, int64_t id, int64_t parent_id,
                                const char *key, const char *doc, size_t doc_len, int64_t version);
struct fw_object *fw_object_ref(struct fw_object *object);
void fw_object_unref(struct fw_object *object);

/* ---- reading ---- */

struct fw_world *fw_world_ref(struct fw_world *world);
/* Drops a reference; the last one frees the world and unreferences its nodes. Any
 * thread. */
void fw_world_unref(struct fw_world *world);

/* Lookups by key (binary search); NULL when absent. */
struct fw_project_node *fw_world_project(const struct fw_world *world, const char *key);
struct fw_env_node *fw_project_env(const struct fw_project_node *project, const char *key);
struct fw_object *fw_project_flag(const struct fw_project_node *project, const char *key);
struct fw_object *fw_env_state(const struct fw_env_node *env, const char *flag_key);
struct fw_object *fw_env_config(const struct fw_env_node *env, const char *key);
struct fw_object *fw_project_segment(const struct fw_project_node *project, const char *key);
struct fw_object *fw_env_segment_rules(const struct fw_env_node *env, const char *segment_key);
/* Finds the project node and environment node of an environment id; false if none. */
bool fw_world_find_env(const struct fw_world *world, int64_t environment_id,
                       struct fw_project_node **project, struct fw_env_node **env);

/* The credential whose hash is `hash`, compared in constant time within the search;
 * NULL when unknown. Expiry is the caller's to check. */
const struct fw_credential *fw_world_credential(const struct fw_world *world,
                                                const uint8_t hash[32]);

/* Builds the world from everything in the store. On success the caller owns *out. */
FW_MUST_CHECK int fw_world_load(struct fw_store *store, struct fw_world **out);

/* ---- deriving the next world (writer thread) ----
 *
 * Each function takes a world, returns a new one with one reference (NULL when out of
 * memory) and leaves the old one as it was. Objects passed in are referenced, not
 * taken. */

struct fw_world *fw_world_empty(void);
/* Puts a project object (replacing the one with its key) keeping its flags and
 * environments. */
struct fw_world *fw_world_with_project(const struct fw_world *world, struct fw_object *project);
/* Puts an environment object into its project, keeping its states and configs; a new
 * environment starts at `revision`. */
struct fw_world *fw_world_with_env(const struct fw_world *world, const char *project_key,
                                   struct fw_object *env, int64_t revision, int64_t last_change_ms);
/* Puts a flag or a segment (by its table) into its project. */
struct fw_world *fw_world_with_project_object(const struct fw_world *world, const char *project_key,
                                              struct fw_object *object);
/* Sets every flag state or segment rules (`table`) of an environment at once (`objects`
 * sorted by key, referenced), for a new environment. */
struct fw_world *fw_world_with_env_objects(const struct fw_world *world, const char *project_key,
                                           const char *env_key, enum fw_store_table table,
                                           struct fw_object **objects, size_t count);
/* Puts a flag state (keyed by flag key), segment rules (keyed by segment key) or a
 * config into an environment. */
struct fw_world *fw_world_with_env_object(const struct fw_world *world, const char *project_key,
                                          const char *env_key, struct fw_object *object);
/* Puts `object` (as fw_world_with_env_object) and records `revision` at `at_ms` in one
 * derivation: what a write to one environment does. */
struct fw_world *fw_world_with_env_change(const struct fw_world *world, const char *project_key,
                                          const char *env_key, struct fw_object *object,
                                          int64_t revision, int64_t at_ms);
/* Records that an environment reached `revision` at `at_ms`. */
struct fw_world *fw_world_with_revision(const struct fw_world *world, const char *project_key,
                                        const char *env_key, int64_t revision, int64_t at_ms);
/* Removals, each also dropping what the removed thing owns: a flag's states in every
 * environment, an environment's keys. NULL when out of memory or when it is absent. */
struct fw_world *fw_world_without_project(const struct fw_world *world, const char *project_key);
struct fw_world *fw_world_without_env(const struct fw_world *world, const char *project_key,
                                      const char *env_key);
/* Removes a flag or segment (`table`) and what each environment holds of it. */
struct fw_world *fw_world_without_project_object(const struct fw_world *world,
                                                 const char *project_key, enum fw_store_table table,
                                                 const char *key);
struct fw_world *fw_world_without_config(const struct fw_world *world, const char *project_key,
                                         const char *env_key, const char *key);
struct fw_world *fw_world_with_credential(const struct fw_world *world,
                                          const struct fw_credential *credential);

#endif
