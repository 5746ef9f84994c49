/* The hub: who is subscribed to which environment, and the delivery of every change to
 * them as Server-Sent Events (docs/protocol.md, DESIGN.md 4).
 *
 * Each loop has its own part of the hub: its subscribers, and per environment a replay
 * ring of the last changes (references to the writer's immutable changes, bounded in
 * bytes) and the tombstones of deleted keys. When a loop adopts a new world the writer's
 * hook (fw_hub_on_adopt) hands it the changes committed since; the loop serialises each
 * event at most once per audience and writes the same bytes to each of its subscribers.
 *
 * Thread: fw_hub_new and fw_hub_free belong to the thread that owns the server (before
 * the loops start, after they end); everything else runs on a loop thread and touches
 * only that loop's part. The stream count is shared and atomic. */
#ifndef FW_HUB_HUB_H
#define FW_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/eval.h"
#include "net/http.h"
#include "state/change.h"
#include "state/world.h"
#include "store/store.h"
#include "util/buf.h"

struct fw_hub_options {
  size_t ring_bytes;         /* replay ring of an environment, per loop */
  uint64_t heartbeat_ms;     /* between heartbeats of a stream */
  uint64_t write_timeout_ms; /* a stream whose oldest unsent byte is older is slow */
  size_t max_backlog_bytes;  /* a stream with more unsent bytes is slow */
  size_t stream_cap;         /* streams open at once, over every loop (fw_hub_set_stream_cap) */
  unsigned accept_rate;      /* new streams per second per loop (the bucket holds as many) */
  int64_t tombstone_days;    /* how long deletions are kept for catching up */
  uint64_t eval_budget_ms;   /* values work per change and loop before streams get refetch */
};

/* What a stream selects: flag keys, tags, config keys (comma-separated lists as given,
 * NULL when absent). No list at all selects everything. */
struct fw_hub_filter {
  char **flags, **tags, **configs;
  size_t flag_count, tag_count, config_count;
  bool all_configs; /* configs=* */
};

/* Parses the filters of a request's query (`flags`, `tags`, `configs`). False with
 * `error` set for a malformed list (an entry that is not a key, more than 256 entries).
 * The filter owns its strings: fw_hub_filter_free. */
bool fw_hub_filter_parse(const struct fw_http_request *req, struct fw_hub_filter *out, char *error,
                         size_t error_len);
void fw_hub_filter_free(struct fw_hub_filter *filter);

/* Whether `filter` selects flag `key` whose definition (or view) document is `doc`. */
bool fw_hub_filter_flag(const struct fw_hub_filter *filter, const char *key, const char *doc,
                        size_t doc_len);
/* Whether `filter` selects config `key`. */
bool fw_hub_filter_config(const struct fw_hub_filter *filter, const char *key);

/* ---- rendering what a key may see (shared with GET /v1/flags and POST /v1/evaluate) ---- */

/* Appends the environment's definitions as `GET /v1/flags` answers them (flags with
 * their state, segments, configs), selected by `filter` (NULL: all). With `epoch`, the
 * object also carries the environment's epoch (a stream's snapshot). */
FW_MUST_CHECK int fw_hub_render_definitions(struct fw_buf *out,
                                            const struct fw_project_node *project,
                                            const struct fw_env_node *env,
                                            const struct fw_hub_filter *filter, bool epoch);

/* Appends the values of every flag (client-visible ones only with `client_only`) and
 * config of the environment for `context`, as `POST /v1/evaluate` answers them. */
FW_MUST_CHECK int fw_hub_render_values(struct fw_buf *out, const struct fw_project_node *project,
                                       const struct fw_env_node *env, bool client_only,
                                       const struct fw_eval_context *context,
                                       const struct fw_hub_filter *filter, bool epoch);

/* The environment's epoch (hex), or "" when its document has none. */
void fw_hub_env_epoch(const struct fw_env_node *env, char out[40]);

/* ---- subscribing ---- */

enum fw_hub_kind {
  FW_HUB_EVENTS,    /* GET|POST /v1/stream */
  FW_HUB_FLAGSMITH, /* /sse/environments/{key}/stream: environment_updated */
  FW_HUB_OFREP,     /* /ofrep/v1/stream: refetchEvaluation */
};

/* A subscription as its handler read it. fw_hub_subscribe takes over what it owns. */
struct fw_hub_request {
  enum fw_hub_kind kind;
  bool definitions; /* a server key: definitions; else values */
  int64_t environment_id;
  uint8_t key_hash[32]; /* the key, checked again as keys expire or are revoked */
  bool has_cursor;
  int64_t cursor;
  char epoch[40]; /* "" when the client named none */
  struct fw_hub_filter filter;
  /* Values streams: the context (NULL: the empty one) and its text, by which identical
   * contexts share one evaluation. Owned. */
  struct fw_eval_context *context;
  char *context_text;
  size_t context_len;
};

struct fw_hub;

/* Creates the hub for `loop_count` loops and preloads every environment's replay ring
 * and tombstones from `store` (which the caller still owns and may hand to the writer
 * afterwards). FW_ENOMEM, or the store's error. */
FW_MUST_CHECK int fw_hub_new(const struct fw_hub_options *options, struct fw_store *store,
                             const struct fw_world *world, unsigned loop_count,
                             struct fw_hub **out);

/* Frees the hub; every loop must have ended (their streams are gone). */
void fw_hub_free(struct fw_hub *hub);

/* Sets the stream cap (once the server knows its connection cap). Any thread. */
void fw_hub_set_stream_cap(struct fw_hub *hub, size_t cap);

/* The writer's adopt hook (fw_writer_adopt_hook): records the changes in loop `loop`'s
 * rings and delivers them to its subscribers. */
void fw_hub_on_adopt(void *hub, unsigned loop, const struct fw_world *previous,
                     const struct fw_world *world, struct fw_change_batch *batch);

/* Turns `res` into a stream for `request` (taking over what it owns, whatever happens).
 * Past the stream cap or the loop's accept rate the stream only says goodbye
 * ("overloaded") with a retry delay. FW_ENOMEM: the handler answers. Loop thread, inside
 * a handler, with the loop's adopted world. */
FW_MUST_CHECK int fw_hub_subscribe(struct fw_hub *hub, struct fw_http_response *res,
                                   struct fw_hub_request *request);

/* Releases what a request owns (for a handler that does not subscribe it after all). */
void fw_hub_request_free(struct fw_hub_request *request);

#endif
