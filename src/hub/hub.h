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

struct fw_server;

struct fw_hub_options {
  size_t ring_bytes;         /* replay ring of an environment, per loop */
  uint64_t heartbeat_ms;     /* between heartbeats of a stream */
  uint64_t write_timeout_ms; /* a stream whose oldest unsent byte is older is slow */
  size_t max_backlog_bytes;  /* a stream with more unsent bytes is slow */
  size_t stream_cap;         /* streams open at once, over every loop (fw_hub_set_stream_cap) */
  unsigned accept_rate;      /* new streams per second per loop (the bucket holds as many) */
  int64_t tombstone_days;    /* how long deletions are kept for catching up */
  uint64_t eval_budget_ms;   /* values work per change and loop before streams get refetch */
  size_t slice_subscribers;  /* subscribers a loop delivers to per turn (0: no limit) */
};

/* What a stream selects: flag keys, tags, config keys (comma-separated lists as given,
 * NULL when absent). No list at all selects everything, unless `exact`. */
struct fw_hub_filter {
  char **flags, **tags, **configs;
  size_t flag_count, tag_count, config_count;
  bool all_flags;   /* a WebSocket's `flags` channel */
  bool all_configs; /* configs=*, or a WebSocket's `configs` channel */
  bool exact;       /* selects only what the lists and all_* say, nothing when empty */
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
/* Whether `filter` selects segments (which go with flags, to definitions streams). */
bool fw_hub_filter_segments(const struct fw_hub_filter *filter);

/* WebSocket channels (`flags`, `flags.<key>`, `tags.<tag>`, `configs`, `configs.<key>`)
 * as a filter: fw_hub_filter_merge adds those of `more` to `filter`, fw_hub_filter_remove
 * takes them out. FW_ETOOBIG past 256 channels in all (the filter is then unchanged),
 * FW_ENOMEM. */
FW_MUST_CHECK int fw_hub_filter_merge(struct fw_hub_filter *filter,
                                      const struct fw_hub_filter *more);
FW_MUST_CHECK int fw_hub_filter_remove(struct fw_hub_filter *filter,
                                       const struct fw_hub_filter *less);
/* Appends the channels of `filter` as a JSON array of strings. */
FW_MUST_CHECK int fw_hub_filter_append_channels(struct fw_buf *out,
                                                const struct fw_hub_filter *filter);
/* Adds one channel's text to `filter`. False when it is not a channel; *rc is FW_ETOOBIG
 * when the filter holds 256 channels already, or FW_ENOMEM. */
bool fw_hub_filter_add_channel(struct fw_hub_filter *filter, const char *text, size_t len, int *rc);

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
  FW_HUB_SOCKET,    /* /v1/ws: a WebSocket (fw_hub_open_socket) */
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
  /* Values streams: the context (NULL: the empty one); streams whose contexts evaluate
   * alike share one evaluation. Owned. */
  struct fw_eval_context *context;
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

/* Gives the hub the server whose loops it runs on, for work continued on a later loop
 * turn. Before the first change is adopted. */
void fw_hub_attach_server(struct fw_hub *hub, struct fw_server *server);

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

/* ---- WebSockets (docs/protocol.md section 6) ----
 *
 * A socket is a subscriber whose selection (its channels, an exact filter) and cursor
 * change on the open connection. The hub owns it and its liveness as for a stream; its
 * messages go to the handler set with fw_hub_set_socket_handler, which answers through
 * the functions below. Loop thread, like everything of a socket. */
struct fw_hub_socket;

/* Called with each text message of a socket (borrowed for the call). */
typedef void (*fw_hub_socket_handler)(struct fw_hub_socket *socket, const char *text, size_t len,
                                      void *ctx);

/* Sets the handler of every socket's messages. Before the server starts. */
void fw_hub_set_socket_handler(struct fw_hub *hub, fw_hub_socket_handler handler, void *ctx);

/* Upgrades `res` to a WebSocket for `request` (its kind, filter and cursor are not used;
 * it takes over what the request owns, whatever happens) with `accept` as
 * Sec-WebSocket-Accept; the socket then says `connected`. FW_EBUSY: past the stream cap
 * or the loop's accept rate (the handler answers 503 with Retry-After). FW_ENOMEM. */
FW_MUST_CHECK int fw_hub_open_socket(struct fw_hub *hub, struct fw_http_response *res,
                                     struct fw_hub_request *request, const char *accept);

/* The socket's environment in the loop's world, and its audience. The changes still on
 * their way to the socket are sent to it first, so that it is at the environment's
 * revision: what the handler answers next is at that revision. False when the socket is
 * ending or its environment is gone. The nodes are borrowed until the loop adopts
 * another world. */
bool fw_hub_socket_scope(struct fw_hub_socket *socket, const struct fw_project_node **project,
                         const struct fw_env_node **env, bool *definitions);

/* Sends a message: `payload` is a JSON object's text whose members follow `"type":<type>`
 * and, when revision >= 0, `"rev":<revision>`. A socket that falls behind is closed as
 * slow. */
void fw_hub_socket_send(struct fw_hub_socket *socket, const char *type, int64_t revision,
                        const char *payload, size_t len);

/* A `subscribe` or `unsubscribe`, as the handler read it. */
struct fw_hub_socket_change {
  bool unsubscribe;
  const struct fw_hub_filter *channels; /* to add or remove */
  /* subscribe: the context to evaluate values for (replace_context; NULL being the empty
   * context; the hub takes *context, setting it to NULL, when it starts a new group with
   * it, else the caller keeps it) and where to resume from (has_cursor, cursor, epoch). */
  bool replace_context;
  struct fw_eval_context **context;
  bool has_cursor;
  int64_t cursor;
  char epoch[40];
  const char *id; /* the request's id as JSON text, or NULL */
  size_t id_len;
};

/* Applies a change of channels; a subscribe then brings the socket up to date for its
 * whole selection (from the cursor by the rules of DESIGN.md 4.1, or with a snapshot).
 * Then answers `subscribed` with the revision the socket is at. FW_ETOOBIG: the socket
 * would hold more than 256 channels (nothing changed). FW_ENOMEM. */
FW_MUST_CHECK int fw_hub_socket_subscribe(struct fw_hub_socket *socket,
                                          const struct fw_hub_socket_change *change);

#endif
