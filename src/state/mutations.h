/* The writes of the management API, run by the writer (state/writer.h): each checks the
 * request against the latest state, writes the store (documents, the environment's next
 * revision, a change row per environment touched) and derives the next world.
 *
 * A mutation is described by a request validated on its loop (api/admin.c), then handed
 * over whole: the writer owns it until it frees it with fw_mutation_free.
 *
 * Thread: the write functions run on the writer thread only. */
#ifndef FW_STATE_MUTATIONS_H
#define FW_STATE_MUTATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/keys.h"
#include "core/model.h"
#include "state/writer.h"
#include "util/rawjson.h"

/* Hex digits of a credential's public id. */
#define FW_CREDENTIAL_ID_LEN 12

/* The most entries an environment's allowed_origins may hold, and the longest entry in
 * bytes. */
#define FW_ENV_ORIGINS_MAX 100
#define FW_ORIGIN_MAX 253

struct fw_mutation {
  char actor[96]; /* who asks: "token:<name>" */
  char project[FW_KEY_MAX + 1];
  char env[FW_KEY_MAX + 1];
  char key[FW_KEY_MAX + 1]; /* the flag, config or new object's key */
  char name[FW_NAME_MAX + 1];
  bool has_name;
  char description[FW_DESCRIPTION_MAX + 1];
  bool has_description;
  /* Flags */
  enum fw_flag_type type;
  bool has_type;
  char *variants; /* raw JSON array, validated; owned; NULL for the type's default */
  char *tags;     /* raw JSON array of strings, validated; owned; NULL for none */
  bool client_visible, has_client_visible;
  /* Flag state */
  bool enabled, has_enabled;
  bool toggle;
  char on_variant[FW_KEY_MAX + 1], off_variant[FW_KEY_MAX + 1];
  char *rules;   /* raw JSON array; owned; NULL when not given */
  char *rollout; /* raw JSON array or null; owned; NULL when not given */
  /* Configs */
  char *value; /* raw JSON (a string for a text config); owned */
  char content_type[64];
  /* Environments: when has_allowed_origins, the new list, a non-empty raw JSON array
   * checked with fw_env_check_origins (owned), or NULL to remove the list. */
  char *allowed_origins;
  bool has_allowed_origins;
  /* Conditional update: the version the client last saw. */
  int64_t if_version;
  bool has_if_version;
  /* Change log pages */
  int64_t after;
  size_t limit;
  /* Credentials: admin tokens and environment keys */
  uint8_t token_hash[FW_SHA256_LEN]; /* a token given at first start */
  char role[16];
  enum fw_credential_kind kind;
  char credential_id[FW_CREDENTIAL_ID_LEN + 1]; /* the one to revoke */
  int64_t expires_in_ms;                        /* -1: never */
};

/* A zeroed mutation; NULL when out of memory. */
struct fw_mutation *fw_mutation_new(void);
/* Frees a mutation and what it owns; takes `void *` to serve as the writer's free_arg. */
void fw_mutation_free(void *mutation);

void fw_mutate_create_project(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_update_project(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_create_environment(struct fw_write_ctx *ctx, void *mutation);
/* Changes an environment's name, its allowed_origins or both (an environment_updated
 * revision); what the mutation does not mention is kept. */
void fw_mutate_update_environment(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_create_flag(struct fw_write_ctx *ctx, void *mutation);
/* Changes a flag's definition: one revision in every environment of its project. */
void fw_mutate_update_flag(struct fw_write_ctx *ctx, void *mutation);
/* Deletes (conditionally on `if_version`, when given) and logs flag_deleted or
 * config_deleted in every environment concerned. Deleting an environment takes its
 * states, configs, keys and change log; a project must be empty first (409 naming what
 * it still has). All answer 204. */
void fw_mutate_delete_flag(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_delete_config(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_delete_environment(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_delete_project(struct fw_write_ctx *ctx, void *mutation);
/* Changes a flag's state in one environment: fields of the mutation, or `toggle`. */
void fw_mutate_flag_state(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_put_config(struct fw_write_ctx *ctx, void *mutation);
/* Segments: definitions per project (created with empty rules in every environment),
 * rules per environment; each change is a segment_updated in the environments it
 * touches. A segment still used by a flag's rules cannot be deleted (409 naming them). */
void fw_mutate_create_segment(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_update_segment(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_segment_rules(struct fw_write_ctx *ctx, void *mutation);
void fw_mutate_delete_segment(struct fw_write_ctx *ctx, void *mutation);

/* Reads a page of an environment's change log (through the writer, which owns the
 * store). */
void fw_mutate_read_changes(struct fw_write_ctx *ctx, void *mutation);
/* Records an admin token given whole (first start): `token_hash`, `name`, `role`. */
void fw_mutate_create_admin_token(struct fw_write_ctx *ctx, void *mutation);
/* Makes a new admin token (`name`, `role`, `expires_in_ms`) and answers it once. */
void fw_mutate_issue_admin_token(struct fw_write_ctx *ctx, void *mutation);
/* Makes a new key of `kind` for an environment and gives every current key of that
 * kind an expiry `expires_in_ms` from now (0 revokes them at once). */
void fw_mutate_rotate_key(struct fw_write_ctx *ctx, void *mutation);
/* Revokes credential `credential_id` now: an admin token (`env` empty) or a key of
 * environment `env`. The last valid admin-role token cannot be revoked. */
void fw_mutate_revoke_credential(struct fw_write_ctx *ctx, void *mutation);

/* A credential's public id: the first hex digits of its hash. */
void fw_credential_id(const struct fw_credential *credential, char out[FW_CREDENTIAL_ID_LEN + 1]);
/* Appends a credential's public description: id, kind or role, name, times. */
FW_MUST_CHECK int fw_render_credential(struct fw_buf *out, const struct fw_credential *credential);
/* Whether a credential is valid at `now_ms`. */
bool fw_credential_valid(const struct fw_credential *credential, int64_t now_ms);

/* Appends an environment's JSON with its current revision. The member allowed_origins
 * appears only while the environment has a non-empty list. */
FW_MUST_CHECK int fw_render_env(struct fw_buf *out, const struct fw_env_node *env);

/* Checks `origins` (a validated JSON value, util/rawjson.h), the value a client gave for an
 * environment's allowed_origins: null, or an array of at most FW_ENV_ORIGINS_MAX distinct
 * strings, each an origin serialized the way browsers send it in an Origin header: "http"
 * or "https", "://", a host of lowercase letters, digits, '-' and '.' or a bracketed IPv6
 * literal, and an optional port from 1 to 65535 without leading zeros (never the scheme's
 * default port, which browsers leave out); no path, no trailing slash, at most
 * FW_ORIGIN_MAX bytes. False with a sentence naming the field and the first bad entry in
 * `error` (`error_len` bytes, NUL-terminated) otherwise. Pure; any thread. */
bool fw_env_check_origins(struct fw_rawjson origins, char *error, size_t error_len);

/* Whether a WebSocket handshake whose Origin header is `origin` (`len` bytes, need not be
 * NUL-terminated) may open on environment `env`: true when the environment has no list
 * (allowed_origins absent, null or empty), else only when `origin` equals one entry byte
 * for byte, with no case folding or other normalisation (browsers send origins
 * lowercase; entries were checked to be so). What to do with a handshake that has no
 * Origin header at all is the caller's decision. Reads only `env`'s document, so any
 * thread may call it while it holds the world `env` belongs to; it does not allocate. */
bool fw_env_origin_allowed(const struct fw_env_node *env, const char *origin, size_t len);
/* Appends a segment as seen in one environment: its definition and its rules there. */
FW_MUST_CHECK int fw_render_env_segment(struct fw_buf *out, const struct fw_object *segment,
                                        const struct fw_object *rules);
/* Appends a flag as seen in one environment: its definition and its state there. */
FW_MUST_CHECK int fw_render_env_flag(struct fw_buf *out, const struct fw_object *flag,
                                     const struct fw_object *state);

#endif
