#include "hub/hub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hub/frame.h"
#include "net/server.h"
#include "net/websocket.h"
#include "state/compiled.h"
#include "state/mutations.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/random.h"
#include "util/rawjson.h"
#include "util/shared.h"
#include "util/time.h"

#define MAX_LOOPS 64
/* Change rows read per environment to preload its ring; the ring's byte bound then
 * decides how many stay. */
#define PRELOAD_ROWS 4096
/* Cap on one serialised event or snapshot. */
#define FRAME_MAX (64 * 1024 * 1024)
/* retry: for a stream that starts normally, and for one turned away. */
#define RETRY_MIN_MS 1000
#define RETRY_SPAN_MS 2000
#define OVERLOADED_RETRY_MIN_MS 5000
#define OVERLOADED_RETRY_SPAN_MS 25000
/* reconnect_after_ms of goodbye on shutdown: spread so that a restart is not met by every
 * client in the same millisecond, yet all are back within about two seconds. */
#define SHUTDOWN_RECONNECT_MIN_MS 100
#define SHUTDOWN_RECONNECT_SPAN_MS 1900
/* refetch's after_ms: spread so that the fetches do not all land at once. */
#define REFETCH_SPAN_MS 2000

static const uint64_t fanout_bounds_us[] = {100,   250,   500,    1000,   2500,   5000,    10000,
                                            25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

enum resume_outcome { RESUME_NONE, RESUME_REPLAY, RESUME_CATCH_UP, RESUME_SNAPSHOT, RESUME_COUNT };
static const char *const resume_names[RESUME_COUNT] = {"none", "replay", "catch_up", "snapshot"};
static const char *const kind_names[] = {"events", "flagsmith", "ofrep", "websocket"};

/* Values streams of one environment whose contexts evaluate alike (equal digests of the
 * canonical context), evaluated once per change. */
struct context_group {
  struct context_group *next; /* in its bucket */
  uint8_t digest[32];
  struct fw_eval_context *context; /* NULL: the empty context */
  size_t members;
  size_t index; /* its place among its environment's groups, while a batch is delivered */
};

struct hub_env;
struct hub_loop;

/* Where a stream starts from: needed until its first events are written, then freed. */
struct start_point {
  bool has_cursor;
  int64_t cursor;
  char epoch[40];
};

/* One stream. Idle streams are most of a server's memory, so this holds only what every
 * event needs; the rest is on the side while it is needed (DESIGN.md: at most 1 KB of
 * server memory per idle stream, the connection included). */
struct subscriber {
  struct subscriber *prev, *next; /* in its environment's list while it receives */
  struct hub_loop *loop;
  struct hub_env *env;
  struct fw_stream *stream;
  struct fw_hub_filter *filter; /* NULL: everything the key may see */
  struct context_group *group;  /* values streams */
  struct start_point *start;    /* until on_start */
  /* The revision this stream has been brought to: deliveries up to it pass it by. */
  int64_t revision;
  uint8_t key_hash[32];
  uint8_t kind;   /* enum fw_hub_kind */
  uint8_t format; /* enum fw_frame_format */
  bool definitions;
  bool admitted; /* false: it was turned away and only says goodbye */
  bool ended;    /* goodbye written or stream closing: nothing more is sent */
};

struct ring_entry {
  struct fw_change *change;
  /* The event for definitions streams in each format, made when first needed. */
  struct fw_shared *frames[FW_FRAME_FORMATS];
};

/* A key that left: deleted (any family), or a flag that stopped being client-visible
 * (`hidden`: it still exists, but client keys saw it go). */
struct tombstone {
  char *key;
  enum fw_change_kind kind; /* flag, config or segment deleted */
  int64_t revision;
  bool clients; /* client keys could see the key before it left */
  bool hidden;
};

struct hub_env {
  int64_t id;
  int64_t revision; /* the last revision this loop has recorded */
  /* Newest first: a delivery starts from the head of the moment it was queued, so it does
   * not even visit streams that joined later (their `revision` would pass them by). */
  struct subscriber *subscribers;
  size_t subscriber_count;
  /* The context groups, a hash table by digest (a power of two of buckets). */
  struct context_group **buckets;
  size_t bucket_count, group_count;
  /* The replay ring: changes first_revision .. revision, oldest at `head`. */
  struct ring_entry *ring;
  size_t ring_cap, ring_head, ring_count, ring_bytes;
  struct tombstone *tombstones;
  size_t tombstone_count, tombstone_cap;
  /* Deletions at or before this revision may have been forgotten: a cursor older than it
   * cannot be caught up. */
  int64_t tombstone_floor;
};

struct value_item;
struct value_outcome;

/* One environment's changes of a batch, on their way to the loop's subscribers: a slice
 * of subscribers per loop turn, so that accepts and heartbeats are never held up by a
 * large fan-out (DESIGN.md 4.3). Holds what it delivers: the changes and both worlds. */
struct delivery {
  struct delivery *next; /* the loop's queue */
  struct hub_env *env;
  struct fw_change **changes; /* referenced, in revision order */
  size_t count;
  struct fw_shared *(*frames)[FW_FRAME_FORMATS]; /* per change, for definitions streams */
  struct fw_rawjson *befores;        /* per change: the flag's definition before it, or empty */
  struct fw_world *previous, *world; /* referenced; previous may be NULL */
  struct fw_project_node *before_project, *project;
  struct fw_env_node *before_env, *env_node;
  struct subscriber *next_sub; /* the next to visit; NULL once all are done */
  uint64_t committed_ns;
  /* Values streams: the flags and configs to look at, and per (context group, item)
   * what that context gets, made when the first values stream is reached. */
  struct value_item *items;
  size_t item_count, group_count;
  struct value_outcome *outcomes;
  uint64_t values_started_ns;
  uint64_t evaluation_ns; /* spent evaluating, measured against --eval-budget */
};

struct hub_loop {
  struct fw_hub *hub;
  unsigned index;
  /* Batches being delivered, oldest first, one at a time and a slice of subscribers per
   * loop turn; `resume` continues them on the next turn. */
  struct delivery *deliveries, *deliveries_tail;
  struct fw_loop_task resume;
  bool resume_posted;
  struct fw_world *world; /* the world this loop adopted last; owned reference */
  struct hub_env **envs;  /* sorted by id */
  size_t env_count, env_cap;
  double tokens; /* the accept-rate bucket */
  uint64_t tokens_at_ms;
};

struct fw_hub {
  struct fw_hub_options options;
  struct fw_server *server;             /* for continuing deliveries on a later turn */
  fw_hub_socket_handler socket_handler; /* what WebSocket messages go to */
  void *socket_ctx;
  _Atomic size_t stream_cap;
  unsigned loop_count;
  struct hub_loop *loops;
  _Atomic size_t streams;
  struct fw_shared *heartbeat, *ping; /* an SSE comment; a WebSocket ping frame */
  struct fw_metric streams_open[FW_ARRAY_LEN(kind_names)];
  struct fw_metric events_published, fanout_latency, values_fanout_latency;
  struct fw_metric resumes[RESUME_COUNT];
  struct fw_metric slow_closes, overload_closes, expired_closes, refetches;
};

/* ---- small helpers ---- */

/* Whether a stream carries the change events (not a compatible surface's notices). */
static bool carries_events(const struct subscriber *sub) {
  return sub->kind == FW_HUB_EVENTS || sub->kind == FW_HUB_SOCKET;
}

static uint64_t jitter(uint64_t min, uint64_t span) { return fw_random_between(min, min + span); }

static struct fw_shared *frame_from(struct fw_buf *buf) {
  return fw_shared_new(buf->data ? buf->data : "", buf->len);
}

/* `{"rev":N,"key":"<key>"` */
static int payload_begin(struct fw_buf *out, int64_t revision, const char *key) {
  int rc = fw_buf_appendf(out, "{\"rev\":%" PRId64 ",\"key\":", revision);
  if (!rc)
    rc = fw_json_append_string(out, key, strlen(key));
  return rc;
}

static void free_filter(struct fw_hub_filter *filter) {
  if (filter) {
    fw_hub_filter_free(filter);
    free(filter);
  }
}

/* ---- environments of a loop ---- */

static struct hub_env *env_find(struct hub_loop *loop, int64_t id) {
  size_t low = 0, high = loop->env_count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    if (loop->envs[mid]->id == id)
      return loop->envs[mid];
    if (loop->envs[mid]->id < id)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

/* The environment `id` of this loop, made when first seen at `revision`. NULL when out of
 * memory. */
static struct hub_env *env_get(struct hub_loop *loop, int64_t id, int64_t revision) {
  struct hub_env *env = env_find(loop, id);
  if (env)
    return env;
  if (loop->env_count == loop->env_cap) {
    size_t cap = loop->env_cap ? loop->env_cap * 2 : 8;
    struct hub_env **grown = realloc(loop->envs, cap * sizeof *grown);
    if (!grown)
      return NULL;
    loop->envs = grown;
    loop->env_cap = cap;
  }
  env = calloc(1, sizeof *env);
  if (!env)
    return NULL;
  env->id = id;
  env->revision = revision;
  size_t at = 0;
  while (at < loop->env_count && loop->envs[at]->id < id)
    at++;
  memmove(loop->envs + at + 1, loop->envs + at, (loop->env_count - at) * sizeof *loop->envs);
  loop->envs[at] = env;
  loop->env_count++;
  return env;
}

static size_t change_bytes(const struct fw_change *change) {
  return sizeof *change + strlen(change->key) + change->object_len;
}

static void ring_clear(struct hub_env *env) {
  for (size_t i = 0; i < env->ring_count; i++) {
    struct ring_entry *entry = &env->ring[(env->ring_head + i) % env->ring_cap];
    fw_change_unref(entry->change);
    for (int f = 0; f < FW_FRAME_FORMATS; f++)
      fw_shared_unref(entry->frames[f]);
  }
  env->ring_head = env->ring_count = env->ring_bytes = 0;
}

static struct ring_entry *ring_at(struct hub_env *env, size_t i) {
  return &env->ring[(env->ring_head + i) % env->ring_cap];
}

/* Appends a change (referenced), dropping the oldest past the byte bound. */
static int ring_push(struct hub_env *env, struct fw_change *change, size_t bound) {
  if (env->ring_count == env->ring_cap) {
    size_t cap = env->ring_cap ? env->ring_cap * 2 : 16;
    struct ring_entry *grown = malloc(cap * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    for (size_t i = 0; i < env->ring_count; i++)
      grown[i] = *ring_at(env, i);
    free(env->ring);
    env->ring = grown;
    env->ring_cap = cap;
    env->ring_head = 0;
  }
  *ring_at(env, env->ring_count) = (struct ring_entry){.change = fw_change_ref(change)};
  env->ring_count++;
  env->ring_bytes += change_bytes(change);
  while (env->ring_count > 1 && env->ring_bytes > bound) {
    struct ring_entry *oldest = ring_at(env, 0);
    env->ring_bytes -= change_bytes(oldest->change);
    fw_change_unref(oldest->change);
    for (int f = 0; f < FW_FRAME_FORMATS; f++)
      fw_shared_unref(oldest->frames[f]);
    env->ring_head = (env->ring_head + 1) % env->ring_cap;
    env->ring_count--;
  }
  return FW_OK;
}

static struct tombstone *tombstone_find(struct hub_env *env, enum fw_change_kind kind,
                                        const char *key) {
  for (size_t i = 0; i < env->tombstone_count; i++)
    if (fw_change_family(env->tombstones[i].kind) == fw_change_family(kind) &&
        !strcmp(env->tombstones[i].key, key))
      return &env->tombstones[i];
  return NULL;
}

static void tombstone_forget(struct hub_env *env, struct tombstone *t) {
  free(t->key);
  *t = env->tombstones[--env->tombstone_count];
}

/* Records that `key` left at `revision` (deleted, or hidden from client keys). */
static int tombstone_put(struct hub_env *env, enum fw_change_kind kind, const char *key,
                         int64_t revision, bool clients, bool hidden) {
  struct tombstone *t = tombstone_find(env, kind, key);
  if (t) {
    *t = (struct tombstone){t->key, kind, revision, clients, hidden};
    return FW_OK;
  }
  if (env->tombstone_count == env->tombstone_cap) {
    size_t cap = env->tombstone_cap ? env->tombstone_cap * 2 : 8;
    struct tombstone *grown = realloc(env->tombstones, cap * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    env->tombstones = grown;
    env->tombstone_cap = cap;
  }
  char *copy = strdup(key);
  if (!copy)
    return FW_ENOMEM;
  env->tombstones[env->tombstone_count++] =
      (struct tombstone){copy, kind, revision, clients, hidden};
  return FW_OK;
}

/* Keeps the tombstones up to date with a change; `leaves`: whether it took its key out of
 * client keys' sight (flags hidden or deleted, configs deleted). */
static int tombstone_note(struct hub_env *env, const struct fw_change *change, bool leaves) {
  struct tombstone *t = tombstone_find(env, change->kind, change->key);
  if (fw_change_is_deletion(change->kind)) {
    /* A flag hidden from client keys, then deleted, left their sight when it was hidden:
     * they still hear of the deletion. */
    bool clients = leaves || (t && t->hidden && t->clients);
    return tombstone_put(env, change->kind, change->key, change->revision, clients, false);
  }
  if (fw_change_family(change->kind) != FW_FAMILY_FLAG) {
    if (t)
      tombstone_forget(env, t);
    return FW_OK;
  }
  if (leaves)
    return tombstone_put(env, FW_CHANGE_FLAG_DELETED, change->key, change->revision, true, true);
  /* Back in sight, or back from deletion: it has not left (a flag hidden all along keeps
   * the revision at which client keys last saw it go). */
  if (t && (fw_change_object_seen_by_clients(change->kind, change->object, change->object_len) ||
            !t->hidden))
    tombstone_forget(env, t);
  return FW_OK;
}

static void env_free(struct hub_env *env) {
  for (size_t b = 0; b < env->bucket_count; b++)
    while (env->buckets[b]) {
      struct context_group *group = env->buckets[b];
      env->buckets[b] = group->next;
      fw_eval_context_free(group->context);
      free(group);
    }
  free(env->buckets);
  ring_clear(env);
  free(env->ring);
  for (size_t i = 0; i < env->tombstone_count; i++)
    free(env->tombstones[i].key);
  free(env->tombstones);
  free(env);
}

/* ---- writing to subscribers ---- */

static size_t bucket_of(size_t bucket_count, const uint8_t digest[32]) {
  uint64_t h;
  memcpy(&h, digest, sizeof h);
  return (size_t)(h & (bucket_count - 1));
}

/* Drops a stream's membership of its context group, and the group with its last. */
static void group_leave(struct hub_env *env, struct context_group *group) {
  if (--group->members)
    return;
  struct context_group **link = &env->buckets[bucket_of(env->bucket_count, group->digest)];
  while (*link != group)
    link = &(*link)->next;
  *link = group->next;
  env->group_count--;
  fw_eval_context_free(group->context);
  free(group);
}

/* Puts a values stream into the group of its context, taking over `*context` (set to NULL)
 * when it starts a new group. FW_ENOMEM. */
static int group_join(struct hub_env *env, struct subscriber *sub,
                      struct fw_eval_context **context) {
  uint8_t digest[32];
  fw_eval_context_digest(*context, digest);
  if (env->group_count >= env->bucket_count) {
    size_t count = env->bucket_count ? env->bucket_count * 2 : 8;
    struct context_group **buckets = calloc(count, sizeof *buckets);
    if (!buckets)
      return FW_ENOMEM;
    for (size_t b = 0; b < env->bucket_count; b++)
      while (env->buckets[b]) {
        struct context_group *group = env->buckets[b];
        env->buckets[b] = group->next;
        size_t at = bucket_of(count, group->digest);
        group->next = buckets[at];
        buckets[at] = group;
      }
    free(env->buckets);
    env->buckets = buckets;
    env->bucket_count = count;
  }
  struct context_group **bucket = &env->buckets[bucket_of(env->bucket_count, digest)];
  for (struct context_group *group = *bucket; group; group = group->next)
    if (!memcmp(group->digest, digest, sizeof digest)) {
      group->members++;
      sub->group = group;
      return FW_OK;
    }
  struct context_group *group = calloc(1, sizeof *group);
  if (!group)
    return FW_ENOMEM;
  memcpy(group->digest, digest, sizeof digest);
  group->context = *context;
  *context = NULL;
  group->members = 1;
  group->next = *bucket;
  *bucket = group;
  env->group_count++;
  sub->group = group;
  return FW_OK;
}

/* Links a stream at the head of its environment's list. */
static void subscriber_attach(struct hub_env *env, struct subscriber *sub) {
  sub->env = env;
  sub->prev = NULL;
  sub->next = env->subscribers;
  if (env->subscribers)
    env->subscribers->prev = sub;
  env->subscribers = sub;
  env->subscriber_count++;
}

static void subscriber_unlink(struct subscriber *sub) {
  struct hub_env *env = sub->env;
  for (struct delivery *d = sub->loop->deliveries; d; d = d->next)
    if (d->next_sub == sub)
      d->next_sub = sub->next;
  if (sub->prev)
    sub->prev->next = sub->next;
  else
    env->subscribers = sub->next;
  if (sub->next)
    sub->next->prev = sub->prev;
  env->subscriber_count--;
  sub->env = NULL;
  sub->prev = sub->next = NULL;
}

/* Takes a stream out of its environment: it receives nothing more. */
static void subscriber_detach(struct subscriber *sub) {
  struct hub_env *env = sub->env;
  if (!env)
    return;
  subscriber_unlink(sub);
  if (sub->group)
    group_leave(env, sub->group);
  sub->group = NULL;
}

/* The WebSocket close code that follows a goodbye (docs/protocol.md 6.3). */
static uint16_t goodbye_close_code(const char *reason) {
  if (!strcmp(reason, "shutdown"))
    return FW_WS_CLOSE_GOING_AWAY;
  if (!strcmp(reason, "key_expired"))
    return FW_WS_CLOSE_POLICY;
  return FW_WS_CLOSE_TRY_AGAIN_LATER;
}

/* Says goodbye with `reason` and a jittered reconnect delay, and closes. */
static void subscriber_end(struct subscriber *sub, const char *reason, uint64_t reconnect_ms) {
  if (sub->ended)
    return;
  sub->ended = true;
  subscriber_detach(sub);
  char payload[96];
  int len =
      snprintf(payload, sizeof payload, "{\"reason\":\"%s\",\"reconnect_after_ms\":%" PRIu64 "}",
               reason, reconnect_ms);
  struct fw_buf buf;
  fw_buf_init(&buf, sizeof payload + 64);
  /* A stream that cannot take its goodbye is closing already. */
  if (len > 0 && (size_t)len < sizeof payload &&
      fw_frame_append(&buf, sub->format, "goodbye", -1, payload, (size_t)len) == FW_OK) {
    bool said = fw_stream_write(sub->stream, buf.data, buf.len) == FW_OK;
    (void)said;
  }
  fw_buf_free(&buf);
  if (sub->format == FW_FRAME_WS)
    fw_stream_close_websocket(sub->stream, goodbye_close_code(reason), reason);
  else
    fw_stream_close(sub->stream);
}

/* Writes a frame; a stream that falls behind is told so and closed. */
static void subscriber_send(struct subscriber *sub, struct fw_shared *frame) {
  if (sub->ended || !frame)
    return;
  if (fw_stream_write_shared(sub->stream, frame) != FW_OK) {
    sub->ended = true;
    subscriber_detach(sub);
    return;
  }
  size_t bytes;
  uint64_t age_ms;
  fw_stream_backlog(sub->stream, &bytes, &age_ms);
  const struct fw_hub_options *options = &sub->loop->hub->options;
  if (bytes > options->max_backlog_bytes || age_ms > options->write_timeout_ms) {
    fw_metric_add(&sub->loop->hub->slow_closes, 1);
    subscriber_end(sub, "slow", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
  }
}

/* Writes bytes made for this subscriber alone (a snapshot, a catch-up). */
static void subscriber_send_buf(struct subscriber *sub, struct fw_buf *buf) {
  struct fw_shared *frame = frame_from(buf);
  if (!frame) {
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
    return;
  }
  subscriber_send(sub, frame);
  fw_shared_unref(frame);
}

/* ---- definitions events (server keys) ---- */

enum frame_as { AS_CHANGE, AS_CREATED, AS_DELETED };

/* The event of `change` for definitions streams, as the change says or as a creation or
 * deletion (a key entering or leaving what a filtered stream selects). */
static int definitions_frame(const struct fw_change *change, enum frame_as as,
                             enum fw_frame_format format, struct fw_buf *out) {
  const char *event;
  enum fw_change_kind kind = change->kind;
  if (as == AS_CREATED)
    kind = FW_CHANGE_FLAG_CREATED;
  else if (as == AS_DELETED)
    kind = FW_CHANGE_FLAG_DELETED;
  switch (kind) {
  case FW_CHANGE_FLAG_CREATED:
    event = "flag_created";
    break;
  case FW_CHANGE_FLAG_UPDATED:
    event = "flag_updated";
    break;
  case FW_CHANGE_FLAG_DELETED:
    event = "flag_deleted";
    break;
  case FW_CHANGE_CONFIG_UPDATED:
    event = "config_updated";
    break;
  case FW_CHANGE_CONFIG_DELETED:
    event = "config_deleted";
    break;
  default:
    event = "segment_updated";
    break;
  }
  struct fw_frame frame;
  int rc = fw_frame_begin(&frame, out, format, event, change->revision);
  if (!rc)
    rc = payload_begin(out, change->revision, change->key);
  if (rc)
    return rc;
  if (kind == FW_CHANGE_FLAG_CREATED || kind == FW_CHANGE_FLAG_UPDATED) {
    rc = fw_buf_append_str(out, ",\"flag\":");
    if (!rc)
      rc = fw_buf_append(out, change->object ? change->object : "null",
                         change->object ? change->object_len : 4);
  } else if (kind == FW_CHANGE_CONFIG_UPDATED) {
    struct fw_rawjson doc = {change->object ? change->object : "{}",
                             change->object ? change->object_len : 2},
                      value, type;
    if (fw_rawjson_member(doc, "value", &value) != FW_OK)
      value = (struct fw_rawjson){"null", 4};
    if (fw_rawjson_member(doc, "content_type", &type) != FW_OK)
      type = (struct fw_rawjson){"null", 4};
    rc = fw_buf_append_str(out, ",\"value\":");
    if (!rc)
      rc = fw_buf_append(out, value.text, value.len);
    if (!rc)
      rc = fw_buf_append_str(out, ",\"content_type\":");
    if (!rc)
      rc = fw_buf_append(out, type.text, type.len);
  } else if (kind == FW_CHANGE_SEGMENT_UPDATED || kind == FW_CHANGE_SEGMENT_DELETED) {
    rc = fw_buf_append_str(out, ",\"segment\":");
    if (!rc)
      rc = fw_buf_append(out, change->object ? change->object : "null",
                         change->object ? change->object_len : 4);
  }
  if (!rc)
    rc = fw_buf_append_char(out, '}');
  if (!rc)
    rc = fw_frame_end(&frame);
  return rc;
}

/* The frame of `change` as it says, made once and kept in `frames`. */
static struct fw_shared *cached_frame(const struct fw_change *change, struct fw_shared **frames,
                                      enum fw_frame_format format) {
  if (!frames[format]) {
    struct fw_buf buf;
    fw_buf_init(&buf, FRAME_MAX);
    if (definitions_frame(change, AS_CHANGE, format, &buf) == FW_OK)
      frames[format] = frame_from(&buf);
    fw_buf_free(&buf);
  }
  return frames[format];
}

/* Change `j` of a sequence: of an array, or of an environment's ring. */
typedef const struct fw_change *(*change_at_fn)(const void *sequence, size_t j);

static const struct fw_change *array_change(const void *sequence, size_t j) {
  return ((struct fw_change *const *)sequence)[j];
}

static const struct fw_change *ring_change(const void *sequence, size_t j) {
  return ring_at((struct hub_env *)sequence, j)->change;
}

/* The definition of the key of change `i` just before it, which a filter by tags compares
 * with the definition after: the latest earlier change of that flag in the sequence, else
 * the flag in `fallback`; empty when neither has it. */
static struct fw_rawjson definition_before(change_at_fn change_at, const void *sequence, size_t i,
                                           const struct fw_project_node *fallback) {
  const char *key = change_at(sequence, i)->key;
  for (size_t j = i; j-- > 0;) {
    const struct fw_change *earlier = change_at(sequence, j);
    if (fw_change_family(earlier->kind) == FW_FAMILY_FLAG && !strcmp(earlier->key, key))
      return (struct fw_rawjson){earlier->object, earlier->object_len};
  }
  const struct fw_object *flag = fallback ? fw_project_flag(fallback, key) : NULL;
  return flag ? (struct fw_rawjson){flag->doc, flag->doc_len} : (struct fw_rawjson){NULL, 0};
}

/* What a definitions stream gets of one change, given the flag's definition before it
 * (for a filter by tags): the change itself, a creation, a deletion or nothing. */
static bool definitions_selects(const struct subscriber *sub, const struct fw_change *change,
                                const char *before, size_t before_len, enum frame_as *as) {
  const struct fw_hub_filter *filter = sub->filter;
  *as = AS_CHANGE;
  if (fw_change_family(change->kind) == FW_FAMILY_FLAG) {
    bool was = change->kind != FW_CHANGE_FLAG_CREATED &&
               fw_hub_filter_flag(filter, change->key, before, before_len);
    bool is = change->kind != FW_CHANGE_FLAG_DELETED &&
              fw_hub_filter_flag(filter, change->key, change->object, change->object_len);
    if (is && !was)
      *as = AS_CREATED;
    else if (was && !is)
      *as = AS_DELETED;
    return is || was;
  }
  if (fw_change_family(change->kind) == FW_FAMILY_CONFIG)
    return fw_hub_filter_config(filter, change->key);
  if (fw_change_family(change->kind) == FW_FAMILY_OTHER)
    return false; /* environment-level rows: no stream carries them */
  return fw_hub_filter_segments(filter);
}

/* Sends a change to a definitions stream; `frames` caches its frame as the change says. */
static void send_definitions(struct subscriber *sub, const struct fw_change *change,
                             struct fw_shared **frames, const char *before, size_t before_len) {
  enum frame_as as;
  if (!definitions_selects(sub, change, before, before_len, &as))
    return;
  if (as == AS_CHANGE) {
    subscriber_send(sub, cached_frame(change, frames, sub->format));
    return;
  }
  struct fw_buf buf;
  fw_buf_init(&buf, FRAME_MAX);
  if (definitions_frame(change, as, sub->format, &buf) == FW_OK)
    subscriber_send_buf(sub, &buf);
  fw_buf_free(&buf);
}

/* ---- values events (client keys) ---- */

/* A flag's value event as a context group gets it: every group with the same result
 * shares the same bytes (DESIGN.md 4.3: one fragment per flag, variant and reason). */
struct value_fragment {
  struct fw_eval_result result;
  struct fw_shared *frames[2][FW_FRAME_FORMATS]; /* flag_updated, flag_created */
};

/* One flag or config whose value may have changed, for values streams. */
struct value_item {
  int64_t revision;
  const char *key;
  bool config;
  const struct fw_change *config_change; /* configs: the change */
  struct value_fragment *fragments;
  size_t fragment_count, fragment_cap;
  /* A flag's flag_deleted, or a config's event: the same for everyone. */
  struct fw_shared *shared[FW_FRAME_FORMATS];
};

static bool same_result(const struct fw_eval_result *a, const struct fw_eval_result *b) {
  if (a->reason != b->reason || a->error != b->error)
    return false;
  if ((a->variant == NULL) != (b->variant == NULL) ||
      (a->variant && strcmp(a->variant, b->variant) != 0))
    return false;
  return a->value.len == b->value.len &&
         (a->value.len == 0 || !memcmp(a->value.text, b->value.text, a->value.len));
}

static int values_frame(struct fw_buf *out, enum fw_frame_format format, const char *event,
                        int64_t revision, const char *key, const struct fw_eval_result *result) {
  struct fw_frame frame;
  int rc = fw_frame_begin(&frame, out, format, event, revision);
  if (!rc)
    rc = payload_begin(out, revision, key);
  if (!rc && result) {
    rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_eval_result_append(out, result);
  }
  if (!rc)
    rc = fw_buf_append_char(out, '}');
  if (!rc)
    rc = fw_frame_end(&frame);
  return rc;
}

/* Whether a client key sees the flag state `state`, for a stream with `filter`. */
static bool value_visible(const struct fw_project_node *project, const struct fw_object *state,
                          const struct fw_hub_filter *filter) {
  if (!state)
    return false;
  const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
  if (!compiled || !compiled->client_visible)
    return false;
  const struct fw_object *flag = project ? fw_project_flag(project, state->key) : NULL;
  return fw_hub_filter_flag(filter, state->key, flag ? flag->doc : NULL, flag ? flag->doc_len : 0);
}

/* What one context group gets of one flag in a delivery, computed once for the group. */
struct value_outcome {
  bool computed;
  bool was, is;    /* client-visible before and after (before any stream's filter) */
  bool changed;    /* value, variant or reason differ */
  size_t fragment; /* the item's fragment of the value now, when `is` */
};

/* The fragment of `item` for `result`, added when new. FW_ENOMEM. */
static int fragment_find(struct value_item *item, const struct fw_eval_result *result,
                         size_t *out) {
  for (size_t i = 0; i < item->fragment_count; i++)
    if (same_result(&item->fragments[i].result, result)) {
      *out = i;
      return FW_OK;
    }
  if (item->fragment_count == item->fragment_cap) {
    size_t cap = item->fragment_cap ? item->fragment_cap * 2 : 4;
    struct value_fragment *grown = realloc(item->fragments, cap * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    item->fragments = grown;
    item->fragment_cap = cap;
  }
  item->fragments[item->fragment_count] = (struct value_fragment){.result = *result};
  *out = item->fragment_count++;
  return FW_OK;
}

static int outcome_compute(struct value_outcome *outcome, struct value_item *item,
                           const struct fw_env_node *before_env, const struct fw_env_node *env,
                           const struct fw_eval_context *context) {
  const struct fw_object *old_state = before_env ? fw_env_state(before_env, item->key) : NULL;
  const struct fw_object *new_state = env ? fw_env_state(env, item->key) : NULL;
  outcome->was = value_visible(NULL, old_state, NULL);
  outcome->is = value_visible(NULL, new_state, NULL);
  struct fw_eval_result now;
  if (outcome->is) {
    fw_compiled_evaluate(env, new_state, context, &now);
    if (fragment_find(item, &now, &outcome->fragment) != FW_OK)
      return FW_ENOMEM;
  }
  outcome->changed = true;
  if (outcome->was && outcome->is) {
    struct fw_eval_result before;
    fw_compiled_evaluate(before_env, old_state, context, &before);
    outcome->changed = !same_result(&before, &now);
  }
  outcome->computed = true;
  return FW_OK;
}

static const char *const value_events[3] = {"flag_updated", "flag_created", "flag_deleted"};

/* Sends one flag's value event to a values stream, from its group's outcome and whether
 * its own filter selects the flag before and after the change (a tag filter can make the
 * flag enter or leave what it sees). */
static void send_value(struct subscriber *sub, struct value_item *item,
                       const struct value_outcome *outcome, bool selected_before,
                       bool selected_after) {
  bool was = outcome->was && selected_before;
  bool is = outcome->is && selected_after;
  int which = is && was ? (outcome->changed ? 0 : -1) : is ? 1 : was ? 2 : -1;
  if (which < 0)
    return;
  struct value_fragment *fragment = which < 2 ? &item->fragments[outcome->fragment] : NULL;
  struct fw_shared **frame =
      fragment ? &fragment->frames[which][sub->format] : &item->shared[sub->format];
  if (!*frame) {
    struct fw_buf buf;
    fw_buf_init(&buf, FRAME_MAX);
    if (values_frame(&buf, sub->format, value_events[which], item->revision, item->key,
                     fragment ? &fragment->result : NULL) == FW_OK)
      *frame = frame_from(&buf);
    fw_buf_free(&buf);
  }
  subscriber_send(sub, *frame);
}

static void items_free(struct value_item *items, size_t count) {
  for (size_t i = 0; i < count; i++) {
    for (size_t f = 0; f < items[i].fragment_count; f++)
      for (int w = 0; w < 2; w++)
        for (int g = 0; g < FW_FRAME_FORMATS; g++)
          fw_shared_unref(items[i].fragments[f].frames[w][g]);
    free(items[i].fragments);
    for (int g = 0; g < FW_FRAME_FORMATS; g++)
      fw_shared_unref(items[i].shared[g]);
  }
  free(items);
}

/* ---- delivering a batch ---- */

static int compare_items(const void *a, const void *b) {
  const struct value_item *x = a, *y = b;
  return (x->revision > y->revision) - (x->revision < y->revision);
}

/* The values items of `env`'s changes changes[0..count): each flag once at its last
 * revision, every flag of the environment when a segment changed, configs as they come.
 * Sorted by revision. Caller frees *out with items_free. */
static int collect_value_items(struct fw_change *const *changes, size_t count,
                               const struct fw_env_node *before_env, const struct fw_env_node *env,
                               struct value_item **out, size_t *out_count) {
  int64_t segment_revision = 0;
  size_t cap = count;
  for (size_t i = 0; i < count; i++)
    if (fw_change_family(changes[i]->kind) == FW_FAMILY_SEGMENT)
      segment_revision = changes[i]->revision;
  if (segment_revision)
    cap += fw_objects_count(env ? env->states : NULL) +
           fw_objects_count(before_env ? before_env->states : NULL);
  struct value_item *items = calloc(cap ? cap : 1, sizeof *items);
  if (!items)
    return FW_ENOMEM;
  size_t n = 0;
  for (size_t i = count; i-- > 0;) {
    const struct fw_change *change = changes[i];
    enum fw_change_family family = fw_change_family(change->kind);
    if (family == FW_FAMILY_CONFIG) {
      items[n++] = (struct value_item){.revision = change->revision,
                                       .key = change->key,
                                       .config = true,
                                       .config_change = change};
      continue;
    }
    if (family != FW_FAMILY_FLAG)
      continue;
    bool seen = false;
    for (size_t j = 0; j < n && !seen; j++)
      seen = !items[j].config && !strcmp(items[j].key, change->key);
    if (!seen)
      items[n++] = (struct value_item){.revision = change->revision, .key = change->key};
  }
  /* A segment's change can move any flag: every flag then counts, at the segment's
   * revision unless it changed later itself. */
  for (int side = 0; segment_revision && side < 2; side++) {
    const struct fw_env_node *node = side ? before_env : env;
    for (size_t i = 0; node && i < fw_objects_count(node->states); i++) {
      const char *key = fw_objects_at(node->states, i)->key;
      bool seen = false;
      for (size_t j = 0; j < n && !seen; j++)
        seen = !items[j].config && !strcmp(items[j].key, key);
      if (!seen)
        items[n++] = (struct value_item){.revision = segment_revision, .key = key};
    }
  }
  qsort(items, n, sizeof *items, compare_items);
  *out = items;
  *out_count = n;
  return FW_OK;
}

/* A stream of the compatible surfaces: one notice per batch. */
static void send_notice(struct subscriber *sub, const struct fw_env_node *env) {
  char text[192];
  int len;
  if (sub->kind == FW_HUB_FLAGSMITH) {
    char updated_at[32];
    fw_time_seconds_text(env->last_change_ms, updated_at);
    len = snprintf(text, sizeof text, "event: environment_updated\ndata: {\"updated_at\":%s}\n\n",
                   updated_at);
  } else {
    char epoch[40];
    fw_hub_env_epoch(env, epoch);
    len = snprintf(text, sizeof text,
                   "data: {\"type\":\"refetchEvaluation\",\"etag\":\"\\\"%s-%" PRId64 "\\\"\"}\n\n",
                   epoch, env->revision);
  }
  if (len > 0 && (size_t)len < sizeof text && fw_stream_write(sub->stream, text, (size_t)len)) {
    sub->ended = true;
    subscriber_detach(sub);
  }
}

/* Tells a values stream to fetch its values (POST /v1/evaluate) after a jittered delay,
 * instead of sending them: the evaluation budget of this change ran out. */
static void send_refetch(struct subscriber *sub, int64_t revision) {
  char payload[96];
  int len = snprintf(payload, sizeof payload, "{\"rev\":%" PRId64 ",\"after_ms\":%" PRIu64 "}",
                     revision, jitter(0, REFETCH_SPAN_MS));
  fw_metric_add(&sub->loop->hub->refetches, 1);
  struct fw_buf buf;
  fw_buf_init(&buf, sizeof payload + 64);
  if (len > 0 && (size_t)len < sizeof payload &&
      fw_frame_append(&buf, sub->format, "refetch", revision, payload, (size_t)len) == FW_OK)
    subscriber_send_buf(sub, &buf);
  else
    subscriber_end(sub, "resync", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
  fw_buf_free(&buf);
}

/* Readies a delivery's values work: the items, and an outcome per (group, item). */
static int values_prepare(struct delivery *d) {
  d->group_count = 0;
  for (size_t b = 0; b < d->env->bucket_count; b++)
    for (struct context_group *group = d->env->buckets[b]; group; group = group->next)
      group->index = d->group_count++;
  if (collect_value_items(d->changes, d->count, d->before_env, d->env_node, &d->items,
                          &d->item_count) != FW_OK)
    return FW_ENOMEM;
  d->outcomes = calloc(d->group_count * d->item_count + 1, sizeof *d->outcomes);
  if (!d->outcomes) {
    items_free(d->items, d->item_count);
    d->items = NULL;
    d->item_count = 0;
    return FW_ENOMEM;
  }
  return FW_OK;
}

/* Whether a values stream's filter selects flag `key` before and after the delivery's
 * changes (its tags may have moved it in or out). */
static void flag_selection(const struct delivery *d, const struct subscriber *sub, const char *key,
                           bool *before, bool *after) {
  const struct fw_project_node *projects[2] = {d->before_project, d->project};
  bool *selected[2] = {before, after};
  for (int side = 0; side < 2; side++) {
    const struct fw_object *flag = projects[side] ? fw_project_flag(projects[side], key) : NULL;
    *selected[side] = flag && fw_hub_filter_flag(sub->filter, key, flag->doc, flag->doc_len);
  }
}

static int64_t delivery_revision(const struct delivery *d) {
  return d->changes[d->count - 1]->revision;
}

/* Sends one values stream what the delivery holds for it: each flag it selects, evaluated
 * once for its context group, and each config it selects. */
static void deliver_values(struct fw_hub *hub, struct delivery *d, struct subscriber *sub) {
  if (!d->outcomes) {
    if (values_prepare(d) != FW_OK) {
      /* Without memory to deliver, the stream is told to come back and catch up. */
      subscriber_end(sub, "resync", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
      return;
    }
    d->values_started_ns = uv_hrtime();
  }
  struct value_outcome *row = sub->group ? d->outcomes + sub->group->index * d->item_count : NULL;
  for (size_t i = 0; row && i < d->item_count && !sub->ended; i++) {
    struct value_item *item = &d->items[i];
    if (item->config) {
      send_definitions(sub, item->config_change, item->shared, NULL, 0);
      continue;
    }
    bool before, after;
    flag_selection(d, sub, item->key, &before, &after);
    if (!before && !after)
      continue;
    struct value_outcome *outcome = &row[i];
    if (!outcome->computed) {
      /* Past the budget, a stream whose values are not evaluated yet is told to fetch
       * them itself, so that one costly change cannot hold the loop; what is evaluated
       * already is still sent. */
      if (d->evaluation_ns / 1000000 >= hub->options.eval_budget_ms) {
        send_refetch(sub, delivery_revision(d));
        return;
      }
      uint64_t started = uv_hrtime();
      int rc = outcome_compute(outcome, item, d->before_env, d->env_node, sub->group->context);
      d->evaluation_ns += uv_hrtime() - started;
      if (rc != FW_OK) {
        subscriber_end(sub, "resync", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
        return;
      }
    }
    send_value(sub, item, outcome, before, after);
  }
}

/* Sends one subscriber what the delivery holds for it. */
static void deliver_to(struct fw_hub *hub, struct delivery *d, struct subscriber *sub) {
  if (!carries_events(sub)) {
    if (d->env_node)
      send_notice(sub, d->env_node);
  } else if (sub->definitions) {
    for (size_t i = 0; i < d->count && !sub->ended; i++)
      send_definitions(sub, d->changes[i], d->frames[i], d->befores[i].text, d->befores[i].len);
  } else {
    deliver_values(hub, d, sub);
  }
}

static void delivery_free(struct delivery *d) {
  for (size_t i = 0; i < d->count; i++) {
    fw_change_unref(d->changes[i]);
    for (int f = 0; d->frames && f < FW_FRAME_FORMATS; f++)
      fw_shared_unref(d->frames[i][f]);
  }
  free(d->changes);
  free(d->frames);
  free(d->befores);
  items_free(d->items, d->item_count);
  free(d->outcomes);
  fw_world_unref(d->previous);
  fw_world_unref(d->world);
  free(d);
}

/* Queues one environment's changes of a batch, changes[0..count) in revision order, for
 * its subscribers of this moment. FW_ENOMEM. */
static int delivery_queue(struct hub_loop *loop, struct hub_env *henv,
                          struct fw_change *const *changes, size_t count,
                          const struct fw_world *previous, const struct fw_world *world,
                          uint64_t committed_ns) {
  if (!henv->subscribers)
    return FW_OK;
  struct delivery *d = calloc(1, sizeof *d);
  if (!d)
    return FW_ENOMEM;
  d->changes = calloc(count, sizeof *d->changes);
  d->frames = calloc(count, sizeof *d->frames);
  d->befores = calloc(count, sizeof *d->befores);
  if (!d->changes || !d->frames || !d->befores) {
    delivery_free(d);
    return FW_ENOMEM;
  }
  d->env = henv;
  d->count = count;
  for (size_t i = 0; i < count; i++)
    d->changes[i] = fw_change_ref(changes[i]);
  d->previous = previous ? fw_world_ref((struct fw_world *)previous) : NULL;
  d->world = fw_world_ref((struct fw_world *)world);
  if (previous)
    fw_world_find_env(previous, henv->id, &d->before_project, &d->before_env);
  fw_world_find_env(world, henv->id, &d->project, &d->env_node);
  /* Each flag's definition before each change: an earlier change of the batch, or the
   * previous world. */
  for (size_t i = 0; i < count; i++)
    d->befores[i] = definition_before(array_change, changes, i, d->before_project);
  d->next_sub = henv->subscribers;
  d->committed_ns = committed_ns;
  if (loop->deliveries_tail)
    loop->deliveries_tail->next = d;
  else
    loop->deliveries = d;
  loop->deliveries_tail = d;
  return FW_OK;
}

static void resume_deliveries(struct fw_loop_task *task, bool cancelled);

/* Sends a stream, now, the queued deliveries of its environment that have not reached it
 * yet, so that what it is told next is at the loop's revision. */
static void catch_up_now(struct subscriber *sub) {
  for (struct delivery *d = sub->loop->deliveries; d && !sub->ended; d = d->next)
    if (d->env == sub->env && sub->revision < delivery_revision(d)) {
      sub->revision = delivery_revision(d);
      deliver_to(sub->loop->hub, d, sub);
    }
}

/* Delivers queued batches, in order, to at most --fanout-slice subscribers; what is left
 * continues on the loop's next turn, after what the network brought meanwhile. */
static void run_deliveries(struct hub_loop *loop) {
  struct fw_hub *hub = loop->hub;
  size_t budget = hub->options.slice_subscribers ? hub->options.slice_subscribers : SIZE_MAX;
  while (loop->deliveries && budget) {
    struct delivery *d = loop->deliveries;
    while (d->next_sub && budget) {
      struct subscriber *sub = d->next_sub;
      /* Moved on first: sending may end (and unlink) the stream. */
      d->next_sub = sub->next;
      if (sub->revision >= delivery_revision(d))
        continue; /* a socket that was caught up already */
      sub->revision = delivery_revision(d);
      deliver_to(hub, d, sub);
      budget--;
    }
    if (d->next_sub)
      break;
    uint64_t now = uv_hrtime();
    fw_metric_observe(&hub->fanout_latency, (now - d->committed_ns) / 1000);
    if (d->outcomes)
      fw_metric_observe(&hub->values_fanout_latency, (now - d->values_started_ns) / 1000);
    loop->deliveries = d->next;
    if (!loop->deliveries)
      loop->deliveries_tail = NULL;
    delivery_free(d);
  }
  if (loop->deliveries && !loop->resume_posted && hub->server) {
    loop->resume_posted = true;
    loop->resume.run = resume_deliveries;
    fw_server_post(hub->server, loop->index, &loop->resume);
  }
}

static void resume_deliveries(struct fw_loop_task *task, bool cancelled) {
  struct hub_loop *loop = (struct hub_loop *)((char *)task - offsetof(struct hub_loop, resume));
  loop->resume_posted = false;
  if (!cancelled)
    run_deliveries(loop);
}

/* Ends every stream of an environment whose changes this loop could not follow (a gap
 * in revisions, out of memory): they resume by cursor and catch up. */
static void resync(struct hub_env *env) {
  ring_clear(env);
  while (env->subscribers)
    subscriber_end(env->subscribers, "resync", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
}

/* Ends the streams whose key no longer opens its environment. */
static void check_keys(struct fw_hub *hub, struct hub_loop *loop, const struct fw_world *world) {
  int64_t now = fw_time_wall_ms();
  for (size_t e = 0; e < loop->env_count; e++) {
    struct subscriber *sub = loop->envs[e]->subscribers;
    while (sub) {
      struct subscriber *next = sub->next;
      const struct fw_credential *credential = fw_world_credential(world, sub->key_hash);
      if (!credential || (credential->expires_ms && credential->expires_ms <= now)) {
        fw_metric_add(&hub->expired_closes, 1);
        subscriber_end(sub, "key_expired", 0);
      }
      sub = next;
    }
  }
}

/* Records a change in its environment's ring and tombstones. A change this loop cannot
 * record exactly (a gap in revisions, no memory) resynchronises the environment: its
 * streams end and resume by cursor, and older cursors get a snapshot. */
static void record(struct fw_hub *hub, struct hub_env *env, struct fw_change *change) {
  bool exact = change->revision == env->revision + 1;
  if (exact && tombstone_note(env, change, change->leaves_clients > 0) != FW_OK)
    exact = false;
  if (!exact) {
    resync(env);
    env->tombstone_floor = change->revision;
  } else if (ring_push(env, change, hub->options.ring_bytes) != FW_OK) {
    resync(env);
  }
  env->revision = change->revision;
}

void fw_hub_on_adopt(void *ctx, unsigned index, const struct fw_world *previous,
                     const struct fw_world *world, struct fw_change_batch *batch) {
  struct fw_hub *hub = ctx;
  struct hub_loop *loop = &hub->loops[index];
  fw_world_unref(loop->world);
  loop->world = fw_world_ref((struct fw_world *)world);
  size_t count = batch ? batch->count : 0;
  struct fw_change **mine = count ? malloc(count * sizeof *mine) : NULL;
  bool *done = count ? calloc(count, sizeof *done) : NULL;
  for (size_t i = 0; i < count; i++) {
    struct fw_change *change = batch->changes[i];
    struct fw_project_node *project;
    struct fw_env_node *before = NULL;
    if (previous)
      fw_world_find_env(previous, change->environment_id, &project, &before);
    /* An environment new to this world starts where its first change does. */
    struct hub_env *env =
        env_get(loop, change->environment_id, before ? before->revision : change->revision - 1);
    if (env)
      record(hub, env, change);
  }
  /* Deliver environment by environment, each its changes in revision order (a group of
   * writes may interleave environments). */
  for (size_t i = 0; mine && done && i < count; i++) {
    if (done[i])
      continue;
    int64_t id = batch->changes[i]->environment_id;
    size_t n = 0;
    for (size_t j = i; j < count; j++)
      if (!done[j] && batch->changes[j]->environment_id == id) {
        mine[n++] = batch->changes[j];
        done[j] = true;
      }
    struct hub_env *env = env_find(loop, id);
    if (env) {
      fw_metric_add(&hub->events_published, (int64_t)n);
      if (delivery_queue(loop, env, mine, n, previous, world, batch->committed_ns) != FW_OK)
        resync(env);
    }
  }
  if (count && (!mine || !done))
    for (size_t i = 0; i < count; i++) {
      struct hub_env *env = env_find(loop, batch->changes[i]->environment_id);
      if (env)
        resync(env);
    }
  free(mine);
  free(done);
  /* Environments that moved without this loop seeing their changes. */
  for (size_t e = 0; e < loop->env_count; e++) {
    struct hub_env *env = loop->envs[e];
    struct fw_project_node *project;
    struct fw_env_node *node;
    if (fw_world_find_env(world, env->id, &project, &node) && node->revision > env->revision) {
      resync(env);
      env->tombstone_floor = node->revision;
      env->revision = node->revision;
    }
  }
  /* Worlds share their credentials table until a key changes, so most changes skip a
   * pass over every stream before the first byte goes out. */
  if (!previous || previous->credentials != world->credentials)
    check_keys(hub, loop, world);
  run_deliveries(loop);
}

/* ---- starting a stream: snapshot, replay or catch-up ---- */

static void send_snapshot(struct subscriber *sub, const struct fw_project_node *project,
                          const struct fw_env_node *env) {
  struct fw_buf buf;
  fw_buf_init(&buf, FRAME_MAX);
  struct fw_frame frame;
  int rc = fw_frame_begin(&frame, &buf, sub->format, "snapshot", env->revision);
  if (!rc)
    rc = sub->definitions
             ? fw_hub_render_definitions(&buf, project, env, sub->filter, true)
             : fw_hub_render_values(&buf, project, env, true,
                                    sub->group ? sub->group->context : NULL, sub->filter, true);
  if (!rc)
    rc = fw_frame_end(&frame);
  if (rc)
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
  else
    subscriber_send_buf(sub, &buf);
  fw_buf_free(&buf);
}

/* Appends the definitions event of a key's current state (`object`, NULL when deleted) at
 * `revision`, as if it were the change that made it. */
static int append_current(struct fw_buf *out, enum fw_frame_format format, enum fw_change_kind kind,
                          int64_t revision, const char *key, const char *object,
                          size_t object_len) {
  const struct fw_change change = {.kind = kind,
                                   .revision = revision,
                                   .key = (char *)key,
                                   .object = (char *)object,
                                   .object_len = object ? object_len : 0};
  return definitions_frame(&change, AS_CHANGE, format, out);
}

/* One key to catch up on. */
struct catch_up_item {
  int64_t revision;
  enum fw_change_family family;
  const struct fw_object *object; /* NULL: deleted */
  const char *key;
};

static int compare_catch_up(const void *a, const void *b) {
  const struct catch_up_item *x = a, *y = b;
  return (x->revision > y->revision) - (x->revision < y->revision);
}

/* Sends the current state of every key changed after the cursor, in revision order,
 * with deletions from the tombstones. */
static void send_catch_up(struct subscriber *sub, const struct hub_env *henv,
                          const struct fw_project_node *project, const struct fw_env_node *env) {
  int64_t after = sub->start->cursor;
  size_t cap = fw_objects_count(env->states) + fw_objects_count(env->configs) +
               fw_objects_count(env->segment_rules) + henv->tombstone_count;
  struct catch_up_item *items = calloc(cap ? cap : 1, sizeof *items);
  if (!items) {
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
    return;
  }
  size_t n = 0;
  int64_t segments_changed = 0;
  const struct fw_objects *sets[] = {[FW_FAMILY_FLAG] = env->states,
                                     [FW_FAMILY_CONFIG] = env->configs,
                                     [FW_FAMILY_SEGMENT] = env->segment_rules};
  for (enum fw_change_family family = FW_FAMILY_FLAG; family <= FW_FAMILY_SEGMENT; family++)
    for (size_t i = 0; i < fw_objects_count(sets[family]); i++) {
      const struct fw_object *object = fw_objects_at(sets[family], i);
      if (object->revision > after) {
        items[n++] = (struct catch_up_item){object->revision, family, object, object->key};
        if (family == FW_FAMILY_SEGMENT && object->revision > segments_changed)
          segments_changed = object->revision;
      }
    }
  for (size_t i = 0; i < henv->tombstone_count; i++) {
    const struct tombstone *t = &henv->tombstones[i];
    /* A hidden flag still exists (it is among the states above); a key client keys never
     * saw is not theirs to hear about. */
    if (t->revision > after && !t->hidden && (sub->definitions || t->clients)) {
      items[n++] = (struct catch_up_item){t->revision, fw_change_family(t->kind), NULL, t->key};
      if (fw_change_family(t->kind) == FW_FAMILY_SEGMENT && t->revision > segments_changed)
        segments_changed = t->revision;
    }
  }
  /* For values, a segment's change may have moved any flag. */
  if (!sub->definitions && segments_changed)
    for (size_t i = 0; i < fw_objects_count(env->states); i++) {
      const struct fw_object *state = fw_objects_at(env->states, i);
      if (state->revision <= after)
        items[n++] = (struct catch_up_item){segments_changed, 0, state, state->key};
    }
  qsort(items, n, sizeof *items, compare_catch_up);
  struct fw_buf buf;
  fw_buf_init(&buf, FRAME_MAX);
  int rc = FW_OK;
  const struct fw_eval_context *context = sub->group ? sub->group->context : NULL;
  for (size_t i = 0; i < n && !rc; i++) {
    const struct catch_up_item *item = &items[i];
    if (item->family == FW_FAMILY_SEGMENT && !sub->definitions)
      continue;
    if (item->family == FW_FAMILY_CONFIG) {
      if (!fw_hub_filter_config(sub->filter, item->key))
        continue;
      rc = append_current(&buf, sub->format,
                          item->object ? FW_CHANGE_CONFIG_UPDATED : FW_CHANGE_CONFIG_DELETED,
                          item->revision, item->key, item->object ? item->object->doc : NULL,
                          item->object ? item->object->doc_len : 0);
      continue;
    }
    if (item->family == FW_FAMILY_SEGMENT) {
      const struct fw_object *segment = fw_project_segment(project, item->key);
      if (!fw_hub_filter_segments(sub->filter))
        continue;
      struct fw_buf view;
      fw_buf_init(&view, FRAME_MAX);
      if (item->object && segment)
        rc = fw_render_env_segment(&view, segment, item->object);
      if (!rc)
        rc = append_current(&buf, sub->format, FW_CHANGE_SEGMENT_UPDATED, item->revision, item->key,
                            item->object && segment ? view.data : NULL, view.len);
      fw_buf_free(&view);
      continue;
    }
    /* A flag: as it is now, or deleted when it is gone or no longer selected. */
    const struct fw_object *flag = item->object ? fw_project_flag(project, item->key) : NULL;
    bool visible = flag && (sub->definitions ? fw_hub_filter_flag(sub->filter, item->key, flag->doc,
                                                                  flag->doc_len)
                                             : value_visible(project, item->object, sub->filter));
    if (!visible) {
      /* Out of sight now: a client key hears of it only if it left their sight after the
       * cursor, never of a flag it could not see. */
      const struct tombstone *t =
          flag && !sub->definitions
              ? tombstone_find((struct hub_env *)henv, FW_CHANGE_FLAG_DELETED, item->key)
              : NULL;
      if (!flag || sub->definitions || (t && t->hidden && t->revision > after))
        rc = values_frame(&buf, sub->format, "flag_deleted", item->revision, item->key, NULL);
    } else if (sub->definitions) {
      struct fw_buf view;
      fw_buf_init(&view, FRAME_MAX);
      rc = fw_render_env_flag(&view, flag, item->object);
      if (!rc)
        rc = append_current(&buf, sub->format, FW_CHANGE_FLAG_UPDATED, item->revision, item->key,
                            view.data, view.len);
      fw_buf_free(&view);
    } else {
      struct fw_eval_result result;
      fw_compiled_evaluate(env, item->object, context, &result);
      rc = values_frame(&buf, sub->format, "flag_updated", item->revision, item->key, &result);
    }
  }
  free(items);
  if (rc)
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
  else if (buf.len)
    subscriber_send_buf(sub, &buf);
  fw_buf_free(&buf);
}

/* Replays the ring's changes after the cursor to a definitions stream. */
static void send_replay(struct subscriber *sub, struct hub_env *henv,
                        const struct fw_project_node *project) {
  for (size_t i = 0; i < henv->ring_count && !sub->ended; i++) {
    struct ring_entry *entry = ring_at(henv, i);
    if (entry->change->revision <= sub->start->cursor)
      continue;
    /* The definition before each change: the ring's earlier entry of the same flag, else
     * the key as the stream knew it (approximated by the current definition, which is
     * exact unless the tags changed before). */
    struct fw_rawjson before = definition_before(ring_change, henv, i, project);
    send_definitions(sub, entry->change, entry->frames, before.text, before.len);
  }
}

/* Decides how a stream with a cursor resumes (DESIGN.md 4.1). */
static enum resume_outcome resume_outcome(const struct subscriber *sub, const struct hub_env *henv,
                                          const struct fw_env_node *env) {
  const struct start_point *start = sub->start;
  if (!start->has_cursor)
    return RESUME_SNAPSHOT;
  char epoch[40];
  fw_hub_env_epoch(env, epoch);
  if ((start->epoch[0] && strcmp(start->epoch, epoch) != 0) || start->cursor > env->revision ||
      start->cursor < 0)
    return RESUME_SNAPSHOT;
  if (start->cursor == env->revision)
    return RESUME_NONE;
  if (sub->definitions && henv->ring_count > 0 &&
      ring_at((struct hub_env *)henv, 0)->change->revision <= start->cursor + 1 &&
      henv->revision == env->revision)
    return RESUME_REPLAY;
  if (start->cursor >= henv->tombstone_floor)
    return RESUME_CATCH_UP;
  return RESUME_SNAPSHOT;
}

/* Sends a stream what it needs from sub->start on: nothing, a replay, a catch-up or a
 * snapshot (DESIGN.md 4.1). */
static void bring_up_to_date(struct subscriber *sub, const struct fw_project_node *project,
                             const struct fw_env_node *env) {
  struct fw_hub *hub = sub->loop->hub;
  sub->revision = env->revision;
  enum resume_outcome outcome = resume_outcome(sub, sub->env, env);
  fw_metric_add(&hub->resumes[outcome], 1);
  if (outcome == RESUME_SNAPSHOT)
    send_snapshot(sub, project, env);
  else if (outcome == RESUME_REPLAY)
    send_replay(sub, sub->env, project);
  else if (outcome == RESUME_CATCH_UP)
    send_catch_up(sub, sub->env, project, env);
}

static void start_stream(struct fw_stream *stream, struct subscriber *sub) {
  struct fw_hub *hub = sub->loop->hub;
  char text[64];
  if (!sub->admitted) {
    fw_metric_add(&hub->overload_closes, 1);
    uint64_t retry = jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS);
    int len = snprintf(text, sizeof text, "retry: %" PRIu64 "\n\n", retry);
    if (fw_stream_write(stream, text, (size_t)len) == FW_OK)
      subscriber_end(sub, "overloaded", retry);
    return;
  }
  int len =
      snprintf(text, sizeof text, "retry: %" PRIu64 "\n\n", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
  if (fw_stream_write(stream, text, (size_t)len) != FW_OK) {
    sub->ended = true;
    subscriber_detach(sub);
    return;
  }
  struct hub_loop *loop = sub->loop;
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (!fw_world_find_env(loop->world, sub->env->id, &project, &env)) {
    subscriber_end(sub, "key_expired", 0);
    return;
  }
  /* A spread first heartbeat, so that streams opened together do not beat together. */
  fw_stream_schedule(stream, jitter(hub->options.heartbeat_ms / 2, hub->options.heartbeat_ms / 2));
  if (sub->kind != FW_HUB_EVENTS) {
    if (sub->kind == FW_HUB_FLAGSMITH)
      send_notice(sub, env);
    return;
  }
  bring_up_to_date(sub, project, env);
}

static void on_stream_start(struct fw_stream *stream, void *ctx) {
  struct subscriber *sub = ctx;
  start_stream(stream, sub);
  free(sub->start);
  sub->start = NULL;
}

static void on_stream_timer(struct fw_stream *stream, void *ctx) {
  struct subscriber *sub = ctx;
  if (sub->ended)
    return;
  struct fw_hub *hub = sub->loop->hub;
  const struct fw_credential *credential = fw_world_credential(sub->loop->world, sub->key_hash);
  if (!credential || (credential->expires_ms && credential->expires_ms <= fw_time_wall_ms())) {
    fw_metric_add(&hub->expired_closes, 1);
    subscriber_end(sub, "key_expired", 0);
    return;
  }
  subscriber_send(sub, sub->format == FW_FRAME_WS ? hub->ping : hub->heartbeat);
  if (sub->ended)
    return;
  uint64_t next = hub->options.heartbeat_ms;
  if (credential->expires_ms) {
    int64_t left = credential->expires_ms - fw_time_wall_ms();
    if (left >= 0 && (uint64_t)left < next)
      next = (uint64_t)left + 1;
  }
  fw_stream_schedule(stream, next);
}

static void on_stream_drain(struct fw_stream *stream, void *ctx) {
  (void)stream;
  subscriber_end(ctx, "shutdown", jitter(SHUTDOWN_RECONNECT_MIN_MS, SHUTDOWN_RECONNECT_SPAN_MS));
}

static void on_stream_close(struct fw_stream *stream, void *ctx) {
  (void)stream;
  struct subscriber *sub = ctx;
  struct fw_hub *hub = sub->loop->hub;
  subscriber_detach(sub);
  if (sub->admitted) {
    atomic_fetch_sub(&hub->streams, 1);
    fw_metric_add(&hub->streams_open[sub->kind], -1);
  }
  free_filter(sub->filter);
  free(sub->start);
  free(sub);
}

static const struct fw_stream_hooks stream_hooks = {
    .on_start = on_stream_start,
    .on_timer = on_stream_timer,
    .on_drain = on_stream_drain,
    .on_close = on_stream_close,
};

/* Takes a token from the loop's accept-rate bucket. */
static bool take_token(struct fw_hub *hub, struct hub_loop *loop, uint64_t now_ms) {
  double rate = hub->options.accept_rate;
  if (rate <= 0)
    return true;
  loop->tokens += (double)(now_ms - loop->tokens_at_ms) * rate / 1000.0;
  if (loop->tokens > rate)
    loop->tokens = rate;
  loop->tokens_at_ms = now_ms;
  if (loop->tokens < 1.0)
    return false;
  loop->tokens -= 1.0;
  return true;
}

void fw_hub_request_free(struct fw_hub_request *request) {
  fw_hub_filter_free(&request->filter);
  fw_eval_context_free(request->context);
  request->context = NULL;
}

int fw_hub_subscribe(struct fw_hub *hub, struct fw_http_response *res,
                     struct fw_hub_request *request) {
  unsigned index = fw_http_response_loop(res);
  struct hub_loop *loop = &hub->loops[index];
  struct fw_project_node *project;
  struct fw_env_node *node;
  bool filtered = request->filter.flags || request->filter.tags || request->filter.configs ||
                  request->filter.all_configs;
  struct subscriber *sub = calloc(1, sizeof *sub);
  struct start_point *start = calloc(1, sizeof *start);
  struct fw_hub_filter *filter = filtered ? malloc(sizeof *filter) : NULL;
  struct hub_env *env =
      sub && start && (filter || !filtered) &&
              fw_world_find_env(loop->world, request->environment_id, &project, &node)
          ? env_get(loop, request->environment_id, node->revision)
          : NULL;
  if (!env) {
    free(sub);
    free(start);
    free(filter);
    fw_hub_request_free(request);
    return FW_ENOMEM;
  }
  if (filter) {
    *filter = request->filter;
    request->filter = (struct fw_hub_filter){0};
  }
  *start = (struct start_point){.has_cursor = request->has_cursor, .cursor = request->cursor};
  memcpy(start->epoch, request->epoch, sizeof start->epoch);
  *sub = (struct subscriber){.loop = loop,
                             .filter = filter,
                             .start = start,
                             .kind = (uint8_t)request->kind,
                             .definitions = request->definitions};
  memcpy(sub->key_hash, request->key_hash, sizeof sub->key_hash);

  size_t open = atomic_fetch_add(&hub->streams, 1);
  sub->admitted = open < atomic_load_explicit(&hub->stream_cap, memory_order_relaxed) &&
                  take_token(hub, loop, fw_time_mono_ms());
  if (sub->admitted && !sub->definitions && sub->kind == FW_HUB_EVENTS &&
      group_join(env, sub, &request->context) != FW_OK)
    sub->admitted = false; /* it says goodbye and comes back */
  if (!sub->admitted)
    atomic_fetch_sub(&hub->streams, 1);
  fw_hub_request_free(request);
  res->status = 200;
  res->content_type = "text/event-stream; charset=utf-8";
  int rc = fw_http_add_header(res, "Cache-Control", "no-cache");
  if (!rc)
    rc = fw_http_add_header(res, "X-Accel-Buffering", "no");
  struct fw_stream *stream;
  if (!rc)
    rc = fw_http_response_stream(res, &stream_hooks, sub, &stream);
  /* Linked now, so that a failure below is undone by subscriber_detach. */
  if (sub->admitted)
    subscriber_attach(env, sub);
  if (rc) {
    /* Not a stream: nothing will call on_close. */
    subscriber_detach(sub);
    if (sub->admitted)
      atomic_fetch_sub(&hub->streams, 1);
    free_filter(sub->filter);
    free(sub->start);
    free(sub);
    return FW_ENOMEM;
  }
  sub->stream = stream;
  if (sub->admitted)
    fw_metric_add(&hub->streams_open[sub->kind], 1);
  return FW_OK;
}

/* ---- WebSockets ---- */

static struct subscriber *socket_sub(struct fw_hub_socket *socket) {
  return (struct subscriber *)socket;
}

/* Sends a message built here or by the socket's handler: `payload` is the object's text
 * without `type` and `rev`, which the frame puts first. */
static void socket_send(struct subscriber *sub, const char *event, int64_t revision,
                        const char *payload, size_t len) {
  if (sub->ended)
    return;
  struct fw_buf buf;
  fw_buf_init(&buf, FRAME_MAX);
  if (fw_frame_append(&buf, FW_FRAME_WS, event, revision, payload, len) == FW_OK)
    subscriber_send_buf(sub, &buf);
  else
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
  fw_buf_free(&buf);
}

static void on_socket_start(struct fw_stream *stream, void *ctx) {
  struct subscriber *sub = ctx;
  struct fw_hub *hub = sub->loop->hub;
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (!fw_world_find_env(sub->loop->world, sub->env->id, &project, &env)) {
    subscriber_end(sub, "key_expired", 0);
    return;
  }
  fw_stream_schedule(stream, jitter(hub->options.heartbeat_ms / 2, hub->options.heartbeat_ms / 2));
  char epoch[40];
  fw_hub_env_epoch(env, epoch);
  struct fw_buf payload;
  fw_buf_init(&payload, 1024);
  int rc = fw_buf_append_str(&payload, "{\"environment\":");
  if (!rc)
    rc = fw_json_append_string(&payload, env->env->key, strlen(env->env->key));
  if (!rc)
    rc = fw_buf_appendf(&payload, ",\"epoch\":\"%s\",\"audience\":\"%s\"}", epoch,
                        sub->definitions ? "definitions" : "values");
  if (rc)
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
  else
    socket_send(sub, "connected", env->revision, payload.data, payload.len);
  fw_buf_free(&payload);
}

static void on_socket_message(struct fw_stream *stream, const char *text, size_t len, void *ctx) {
  (void)stream;
  struct subscriber *sub = ctx;
  struct fw_hub *hub = sub->loop->hub;
  if (!sub->ended && hub->socket_handler)
    hub->socket_handler((struct fw_hub_socket *)sub, text, len, hub->socket_ctx);
}

static const struct fw_stream_hooks socket_hooks = {
    .on_start = on_socket_start,
    .on_timer = on_stream_timer,
    .on_drain = on_stream_drain,
    .on_close = on_stream_close,
    .on_message = on_socket_message,
};

void fw_hub_set_socket_handler(struct fw_hub *hub, fw_hub_socket_handler handler, void *ctx) {
  hub->socket_handler = handler;
  hub->socket_ctx = ctx;
}

int fw_hub_open_socket(struct fw_hub *hub, struct fw_http_response *res,
                       struct fw_hub_request *request, const char *accept) {
  struct hub_loop *loop = &hub->loops[fw_http_response_loop(res)];
  struct fw_project_node *project;
  struct fw_env_node *node;
  size_t open = atomic_fetch_add(&hub->streams, 1);
  if (open >= atomic_load_explicit(&hub->stream_cap, memory_order_relaxed) ||
      !take_token(hub, loop, fw_time_mono_ms())) {
    atomic_fetch_sub(&hub->streams, 1);
    fw_metric_add(&hub->overload_closes, 1);
    fw_hub_request_free(request);
    return FW_EBUSY;
  }
  struct subscriber *sub = calloc(1, sizeof *sub);
  struct fw_hub_filter *filter = calloc(1, sizeof *filter);
  struct hub_env *env =
      sub && filter && fw_world_find_env(loop->world, request->environment_id, &project, &node)
          ? env_get(loop, request->environment_id, node->revision)
          : NULL;
  if (!env) {
    atomic_fetch_sub(&hub->streams, 1);
    free(sub);
    free(filter);
    fw_hub_request_free(request);
    return FW_ENOMEM;
  }
  filter->exact = true; /* nothing until the client subscribes */
  *sub = (struct subscriber){.loop = loop,
                             .filter = filter,
                             .revision = node->revision,
                             .kind = FW_HUB_SOCKET,
                             .format = FW_FRAME_WS,
                             .definitions = request->definitions,
                             .admitted = true};
  memcpy(sub->key_hash, request->key_hash, sizeof sub->key_hash);
  fw_hub_request_free(request);
  subscriber_attach(env, sub);
  struct fw_stream *stream;
  if (fw_http_response_websocket(res, accept, &socket_hooks, sub, &stream) != FW_OK) {
    /* Not upgraded: nothing will call on_close. */
    subscriber_detach(sub);
    atomic_fetch_sub(&hub->streams, 1);
    free_filter(sub->filter);
    free(sub);
    return FW_ENOMEM;
  }
  sub->stream = stream;
  fw_metric_add(&hub->streams_open[FW_HUB_SOCKET], 1);
  return FW_OK;
}

bool fw_hub_socket_scope(struct fw_hub_socket *socket, const struct fw_project_node **project,
                         const struct fw_env_node **env, bool *definitions) {
  struct subscriber *sub = socket_sub(socket);
  struct fw_project_node *p;
  struct fw_env_node *e;
  if (!sub->ended && sub->env)
    catch_up_now(sub);
  if (sub->ended || !sub->env || !fw_world_find_env(sub->loop->world, sub->env->id, &p, &e))
    return false;
  *project = p;
  *env = e;
  *definitions = sub->definitions;
  return true;
}

void fw_hub_socket_send(struct fw_hub_socket *socket, const char *type, int64_t revision,
                        const char *payload, size_t len) {
  socket_send(socket_sub(socket), type, revision, payload, len);
}

/* `subscribed`: the socket's channels and the revision it is at. */
static void send_subscribed(struct subscriber *sub, const char *id, size_t id_len) {
  struct fw_buf payload;
  fw_buf_init(&payload, FRAME_MAX);
  int rc = fw_buf_append_char(&payload, '{');
  if (!rc && id) {
    rc = fw_buf_append_str(&payload, "\"id\":");
    if (!rc)
      rc = fw_buf_append(&payload, id, id_len);
    if (!rc)
      rc = fw_buf_append_char(&payload, ',');
  }
  if (!rc)
    rc = fw_buf_append_str(&payload, "\"channels\":");
  if (!rc)
    rc = fw_hub_filter_append_channels(&payload, sub->filter);
  if (!rc)
    rc = fw_buf_append_char(&payload, '}');
  if (rc)
    subscriber_end(sub, "overloaded", jitter(OVERLOADED_RETRY_MIN_MS, OVERLOADED_RETRY_SPAN_MS));
  else
    socket_send(sub, "subscribed", sub->revision, payload.data, payload.len);
  fw_buf_free(&payload);
}

int fw_hub_socket_subscribe(struct fw_hub_socket *socket,
                            const struct fw_hub_socket_change *change) {
  struct subscriber *sub = socket_sub(socket);
  const struct fw_project_node *project;
  const struct fw_env_node *env;
  bool definitions;
  if (!fw_hub_socket_scope(socket, &project, &env, &definitions))
    return FW_OK;
  int rc = change->unsubscribe ? fw_hub_filter_remove(sub->filter, change->channels)
                               : fw_hub_filter_merge(sub->filter, change->channels);
  if (rc)
    return rc;
  if (!change->unsubscribe) {
    struct hub_env *henv = sub->env;
    if (!definitions && (change->replace_context || !sub->group)) {
      if (sub->group)
        group_leave(henv, sub->group);
      sub->group = NULL;
      if (group_join(henv, sub, change->context) != FW_OK) {
        subscriber_end(sub, "resync", jitter(RETRY_MIN_MS, RETRY_SPAN_MS));
        return FW_OK;
      }
    }
    struct start_point start = {.has_cursor = change->has_cursor, .cursor = change->cursor};
    memcpy(start.epoch, change->epoch, sizeof start.epoch);
    sub->start = &start;
    bring_up_to_date(sub, project, env);
    sub->start = NULL;
  }
  /* Last: once the client reads it, it holds everything its channels select up to `rev`. */
  if (!sub->ended)
    send_subscribed(sub, change->id, change->id_len);
  return FW_OK;
}

/* ---- creating the hub ---- */

struct preload {
  struct fw_change **changes;
  size_t count, cap;
  size_t bytes;
  int64_t horizon_ms;
  int64_t floor;
  struct fw_change **departures; /* deletions, and flags hidden from client keys */
  size_t departure_count, departure_cap;
};

static int keep_change(struct fw_change ***items, size_t *count, size_t *cap,
                       const struct fw_store_change *row) {
  if (*count == *cap) {
    size_t bigger = *cap ? *cap * 2 : 64;
    struct fw_change **grown = realloc(*items, bigger * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    *items = grown;
    *cap = bigger;
  }
  struct fw_change *change = fw_change_new(row);
  if (!change)
    return FW_ENOMEM;
  (*items)[(*count)++] = change;
  return FW_OK;
}

static int preload_change(void *ctx, const struct fw_store_change *row) {
  struct preload *p = ctx;
  return keep_change(&p->changes, &p->count, &p->cap, row);
}

static int preload_departure(void *ctx, const struct fw_store_change *row) {
  struct preload *p = ctx;
  if (row->at_ms < p->horizon_ms) {
    if (row->revision > p->floor)
      p->floor = row->revision;
    return FW_OK;
  }
  return keep_change(&p->departures, &p->departure_count, &p->departure_cap, row);
}

static void preload_clear(struct preload *p) {
  for (size_t i = 0; i < p->count; i++)
    fw_change_unref(p->changes[i]);
  for (size_t i = 0; i < p->departure_count; i++)
    fw_change_unref(p->departures[i]);
  p->count = p->departure_count = 0;
  p->floor = 0;
}

/* Whether a departure took its key out of client keys' sight: what its row recorded, or
 * for a deletion logged before rows recorded it, what the key's last earlier row in the
 * preloaded rows says (configs always). Such a deletion older than those rows counts as
 * unseen, so that a catch-up never names a server-only flag to a client key. */
static bool departure_leaves_clients(const struct preload *p, const struct fw_change *departure) {
  if (departure->leaves_clients >= 0)
    return departure->leaves_clients > 0;
  if (fw_change_family(departure->kind) != FW_FAMILY_FLAG)
    return true;
  for (size_t i = p->count; i-- > 0;) {
    const struct fw_change *row = p->changes[i];
    if (row->revision < departure->revision && row->object &&
        fw_change_family(row->kind) == FW_FAMILY_FLAG && !strcmp(row->key, departure->key))
      return fw_change_object_seen_by_clients(row->kind, row->object, row->object_len);
  }
  return false;
}

/* Fills every loop's ring and tombstones of one environment from the change log. */
static int preload_env(struct fw_hub *hub, struct fw_store *store, const struct fw_env_node *node,
                       struct preload *p) {
  int64_t after = node->revision > PRELOAD_ROWS ? node->revision - PRELOAD_ROWS : 0;
  int rc = store->ops->changes(store, node->env->id, after, PRELOAD_ROWS, preload_change, p);
  if (!rc)
    rc = store->ops->departures(store, node->env->id, preload_departure, p);
  for (unsigned l = 0; !rc && l < hub->loop_count; l++) {
    struct hub_env *env = env_get(&hub->loops[l], node->env->id, node->revision);
    if (!env)
      rc = FW_ENOMEM;
    for (size_t i = 0; !rc && i < p->count; i++)
      rc = ring_push(env, p->changes[i], hub->options.ring_bytes);
    for (size_t i = 0; !rc && i < p->departure_count; i++)
      rc = tombstone_note(env, p->departures[i], departure_leaves_clients(p, p->departures[i]));
    if (!rc)
      env->tombstone_floor = p->floor;
  }
  preload_clear(p);
  return rc;
}

static int register_metrics(struct fw_hub *hub) {
  int rc = FW_OK;
  for (size_t k = 0; !rc && k < FW_ARRAY_LEN(kind_names); k++) {
    char labels[32];
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind_names[k]);
    rc = fw_metrics_gauge("flagwire_streams_open", k ? NULL : "Streams open, by kind.", labels,
                          &hub->streams_open[k]);
  }
  if (!rc)
    rc = fw_metrics_counter("flagwire_stream_events_total",
                            "Changes delivered to streams (each counted once per loop).", NULL,
                            &hub->events_published);
  if (!rc)
    rc = fw_metrics_histogram("flagwire_stream_fanout_seconds",
                              "From a change's commit to its last write to a loop's streams.", NULL,
                              fanout_bounds_us, FW_ARRAY_LEN(fanout_bounds_us), 1e-6,
                              &hub->fanout_latency);
  if (!rc)
    rc = fw_metrics_histogram("flagwire_stream_values_fanout_seconds",
                              "Time to evaluate and write a batch of changes to a loop's "
                              "values streams of one environment.",
                              NULL, fanout_bounds_us, FW_ARRAY_LEN(fanout_bounds_us), 1e-6,
                              &hub->values_fanout_latency);
  for (size_t r = 0; !rc && r < RESUME_COUNT; r++) {
    char labels[32];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", resume_names[r]);
    rc = fw_metrics_counter("flagwire_stream_resumes_total",
                            r ? NULL : "How streams started, by the cursor rules.", labels,
                            &hub->resumes[r]);
  }
  if (!rc)
    rc = fw_metrics_counter("flagwire_stream_closes_total", "Streams the server closed, by reason.",
                            "reason=\"slow\"", &hub->slow_closes);
  if (!rc)
    rc = fw_metrics_counter("flagwire_stream_closes_total", NULL, "reason=\"overloaded\"",
                            &hub->overload_closes);
  if (!rc)
    rc = fw_metrics_counter("flagwire_stream_closes_total", NULL, "reason=\"key_expired\"",
                            &hub->expired_closes);
  if (!rc)
    rc = fw_metrics_counter("flagwire_stream_refetches_total",
                            "Values streams told to refetch: a change's evaluation budget ran out.",
                            NULL, &hub->refetches);
  return rc;
}

int fw_hub_new(const struct fw_hub_options *options, struct fw_store *store,
               const struct fw_world *world, unsigned loop_count, struct fw_hub **out) {
  if (loop_count == 0 || loop_count > MAX_LOOPS)
    return FW_EINVAL;
  struct fw_hub *hub = calloc(1, sizeof *hub);
  if (!hub)
    return FW_ENOMEM;
  hub->options = *options;
  atomic_init(&hub->stream_cap, options->stream_cap);
  hub->loop_count = loop_count;
  hub->loops = calloc(loop_count, sizeof *hub->loops);
  static const char heartbeat[] = ": heartbeat\n\n";
  hub->heartbeat = fw_shared_new(heartbeat, sizeof heartbeat - 1);
  uint8_t ping[10];
  size_t ping_len = fw_ws_frame_header(ping, FW_WS_PING, 0);
  hub->ping = fw_shared_new((const char *)ping, ping_len);
  int rc = hub->loops && hub->heartbeat && hub->ping ? register_metrics(hub) : FW_ENOMEM;
  uint64_t now = fw_time_mono_ms();
  for (unsigned l = 0; !rc && l < loop_count; l++)
    hub->loops[l] = (struct hub_loop){.hub = hub,
                                      .index = l,
                                      .world = fw_world_ref((struct fw_world *)world),
                                      .tokens = options->accept_rate,
                                      .tokens_at_ms = now};
  struct preload p = {.horizon_ms = fw_time_wall_ms() - options->tombstone_days * 86400000LL};
  for (size_t i = 0; !rc && i < world->project_count; i++)
    for (size_t e = 0; !rc && e < world->projects[i]->env_count; e++)
      rc = preload_env(hub, store, world->projects[i]->envs[e], &p);
  free(p.changes);
  free(p.departures);
  if (rc) {
    fw_hub_free(hub);
    return rc;
  }
  *out = hub;
  return FW_OK;
}

void fw_hub_attach_server(struct fw_hub *hub, struct fw_server *server) { hub->server = server; }

void fw_hub_set_stream_cap(struct fw_hub *hub, size_t cap) {
  atomic_store_explicit(&hub->stream_cap, cap, memory_order_relaxed);
}

void fw_hub_free(struct fw_hub *hub) {
  if (!hub)
    return;
  for (unsigned l = 0; hub->loops && l < hub->loop_count; l++) {
    struct hub_loop *loop = &hub->loops[l];
    while (loop->deliveries) {
      struct delivery *d = loop->deliveries;
      loop->deliveries = d->next;
      delivery_free(d);
    }
    for (size_t e = 0; e < loop->env_count; e++)
      env_free(loop->envs[e]);
    free(loop->envs);
    fw_world_unref(loop->world);
  }
  free(hub->loops);
  fw_shared_unref(hub->heartbeat);
  fw_shared_unref(hub->ping);
  free(hub);
}
