#include "state/writer.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "net/http.h"
#include "util/digest.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

#define MAX_LOOPS 64
/* Writes taken into one transaction at most: bounds the latency a group adds. */
#define MAX_GROUP 512
/* Bound on a write's answer. */
#define MAX_BODY_BYTES (16 * 1024 * 1024)
#define IDEMPOTENCY_KEY_MAX 255
/* How long answers are remembered for Idempotency-Key, and how often old ones go. */
#define IDEMPOTENCY_KEEP_MS (24LL * 3600 * 1000)
#define IDEMPOTENCY_PRUNE_EVERY_GROUPS 1024
/* The writer's block of metric slots: loops take 1 to 64, the main thread 0. */
#define WRITER_METRICS_THREAD (FW_METRICS_MAX_THREADS - 1)

static const uint64_t group_size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
static const uint64_t commit_bounds_us[] = {100,   250,   500,   1000,   2500,   5000,
                                            10000, 25000, 50000, 100000, 250000, 1000000};

struct group;

/* One submitted write, from its loop to the writer and back. */
struct write {
  struct fw_loop_task task; /* the answer, posted to `loop` once every loop adopted */
  struct write *next;       /* in the queue, then in its group */
  unsigned loop;
  struct fw_http_deferred *deferred;
  fw_write_fn fn;
  void *arg;
  void (*free_arg)(void *arg);
  int status;
  const char *error_code;
  char error_message[256];
  struct fw_buf body;
  /* Idempotency-Key, when the request had one */
  char actor[96];
  char idempotency_key[IDEMPOTENCY_KEY_MAX + 1];
  uint8_t fingerprint[FW_SHA256_LEN]; /* of the request: method, target and body */
  bool replayed;
};

/* The writes of one transaction, answered once every loop has adopted its world. */
struct group {
  struct fw_writer *writer;
  struct write *writes;
  _Atomic unsigned loops_pending;
};

struct adopt_task {
  struct fw_loop_task task;
  struct group *group;
  struct fw_world *world;        /* owned reference */
  struct fw_change_batch *batch; /* owned reference */
  unsigned loop;
};

struct fw_writer {
  struct fw_store *store;
  struct fw_world *latest; /* the last committed world; writer thread */
  unsigned loop_count;
  /* Each loop's adopted world: written and read by that loop's thread only, after
   * start; freed by fw_writer_stop. */
  struct fw_world *adopted[MAX_LOOPS];
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;
  struct write *queue_head, *queue_tail; /* under `lock` */
  struct fw_server *server;              /* under `lock`; set by fw_writer_attach */
  bool stopping;                         /* under `lock` */
  int64_t last_now_ms;
  /* The changes of the group being run, handed to the loops with its world. */
  struct fw_change **group_changes;
  size_t group_change_count, group_change_cap;
  fw_writer_adopt_hook adopt_hook; /* set before the server is attached */
  void *adopt_ctx;
  uint64_t groups; /* run so far, to prune remembered answers now and then */
  struct fw_metric writes_ok, writes_failed, writes_replayed, group_sizes, commit_latency;
};

void fw_write_fail(struct fw_write_ctx *ctx, int status, const char *code, const char *fmt, ...) {
  ctx->status = status;
  ctx->error_code = code;
  va_list args;
  va_start(args, fmt);
  vsnprintf(ctx->error_message, sizeof ctx->error_message, fmt, args);
  va_end(args);
}

static void release_changes(struct fw_change **changes, size_t count) {
  for (size_t i = 0; i < count; i++)
    fw_change_unref(changes[i]);
}

int fw_write_append_change(struct fw_write_ctx *ctx, const struct fw_store_change *row) {
  /* The request's world is the one before its changes, so each row says whether it takes
   * its key out of client keys' sight: tombstones are rebuilt from that at start. */
  struct fw_store_change logged = *row;
  logged.leaves_clients = fw_change_leaves_clients(ctx->world, row);
  if (ctx->change_count == ctx->change_cap) {
    size_t bigger = ctx->change_cap ? ctx->change_cap * 2 : 4;
    struct fw_change **grown = realloc(ctx->changes, bigger * sizeof *grown);
    if (!grown)
      return FW_ENOMEM;
    ctx->changes = grown;
    ctx->change_cap = bigger;
  }
  struct fw_change *change = fw_change_new(&logged);
  if (!change)
    return FW_ENOMEM;
  int rc = ctx->store->ops->append_change(ctx->store, &logged);
  if (rc) {
    fw_change_unref(change);
    return rc;
  }
  ctx->changes[ctx->change_count++] = change;
  return FW_OK;
}

/* Makes room in the group for `count` more changes, so that moving a write's changes in
 * after its savepoint is released cannot fail. */
static int reserve_group_changes(struct fw_writer *writer, size_t count) {
  size_t need = writer->group_change_count + count;
  if (need <= writer->group_change_cap)
    return FW_OK;
  size_t bigger = writer->group_change_cap ? writer->group_change_cap : 8;
  while (bigger < need)
    bigger *= 2;
  struct fw_change **grown = realloc(writer->group_changes, bigger * sizeof *grown);
  if (!grown)
    return FW_ENOMEM;
  writer->group_changes = grown;
  writer->group_change_cap = bigger;
  return FW_OK;
}

static void write_free(struct write *w) {
  if (w->free_arg)
    w->free_arg(w->arg);
  fw_buf_free(&w->body);
  free(w);
}

/* ---- answering, on the write's loop ---- */

static void run_answer(struct fw_loop_task *task, bool cancelled) {
  struct write *w = (struct write *)task;
  if (cancelled) {
    fw_http_deferred_discard(w->deferred);
    write_free(w);
    return;
  }
  struct fw_http_response *res = fw_http_deferred_response(w->deferred);
  const struct fw_http_request *req = fw_http_deferred_request(w->deferred);
  int rc = w->error_code
               ? fw_http_set_error(res, req, w->status, w->error_code, w->error_message)
               : fw_http_set_json(res, w->status, w->body.data ? w->body.data : "", w->body.len);
  if (!rc && w->replayed)
    rc = fw_http_add_header(res, "Idempotent-Replayed", "true");
  if (rc)
    rc = fw_http_set_error(res, req, 500, "internal", "the answer could not be built");
  (void)rc;
  fw_http_deferred_send(w->deferred);
  write_free(w);
}

static void answer_group(struct group *group) {
  struct fw_writer *writer = group->writer;
  struct write *w = group->writes;
  while (w) {
    struct write *next = w->next;
    fw_server_post(writer->server, w->loop, &w->task);
    w = next;
  }
  free(group);
}

/* ---- adopting, on every loop ---- */

static void run_adopt(struct fw_loop_task *task, bool cancelled) {
  struct adopt_task *adopt = (struct adopt_task *)task;
  struct fw_writer *writer = adopt->group->writer;
  if (!cancelled) {
    struct fw_world *previous = writer->adopted[adopt->loop];
    writer->adopted[adopt->loop] = adopt->world;
    /* Without a batch too: a write that logs no change (a key rotated) still changes what
     * streams may see, and a lost batch is how the hub learns to resynchronise. */
    if (writer->adopt_hook)
      writer->adopt_hook(writer->adopt_ctx, adopt->loop, previous, adopt->world, adopt->batch);
    fw_world_unref(previous);
  } else {
    fw_world_unref(adopt->world);
  }
  fw_change_batch_unref(adopt->batch);
  struct group *group = adopt->group;
  free(adopt);
  if (atomic_fetch_sub(&group->loops_pending, 1) == 1)
    answer_group(group);
}

const struct fw_world *fw_writer_world(const struct fw_writer *writer, unsigned loop) {
  assert(loop < writer->loop_count);
  return writer->adopted[loop];
}

/* Hands the latest world and the group's changes (`batch`, taken over; NULL when there
 * are none or no memory for them) to every loop; the group is answered when the last
 * one adopted it. */
static void publish(struct fw_writer *writer, struct group *group, struct fw_change_batch *batch) {
  uv_mutex_lock(&writer->lock);
  while (!writer->server)
    uv_cond_wait(&writer->wake, &writer->lock);
  struct fw_server *server = writer->server;
  uv_mutex_unlock(&writer->lock);

  atomic_init(&group->loops_pending, writer->loop_count);
  for (unsigned loop = 0; loop < writer->loop_count; loop++) {
    struct adopt_task *adopt = malloc(sizeof *adopt);
    if (!adopt) {
      /* Without memory for the task this loop keeps its world; the others adopt, and
       * the group is still answered. */
      fw_log(FW_LOG_ERROR, "out of memory handing a new state to a loop");
      if (atomic_fetch_sub(&group->loops_pending, 1) == 1)
        answer_group(group);
      continue;
    }
    *adopt = (struct adopt_task){.task = {.run = run_adopt},
                                 .group = group,
                                 .world = fw_world_ref(writer->latest),
                                 .batch = batch ? fw_change_batch_ref(batch) : NULL,
                                 .loop = loop};
    fw_server_post(server, loop, &adopt->task);
  }
  fw_change_batch_unref(batch);
}

/* ---- the writer thread ---- */

/* Milliseconds for this group, never going back (the store also keeps each
 * environment's revision times increasing). */
static int64_t group_now_ms(struct fw_writer *writer) {
  int64_t now = fw_time_wall_ms();
  if (now < writer->last_now_ms)
    now = writer->last_now_ms;
  writer->last_now_ms = now;
  return now;
}

/* Answers a retried request from what was remembered; false when nothing was. */
static bool replay(struct fw_writer *writer, struct write *w, struct fw_write_ctx *ctx) {
  uint8_t fingerprint[FW_SHA256_LEN];
  int status;
  int rc = writer->store->ops->idempotency_get(writer->store, w->actor, w->idempotency_key,
                                               fingerprint, &status, &w->body);
  if (rc == FW_ENOTFOUND)
    return false;
  if (rc)
    fw_write_fail(ctx, 500, "store_failed", "the store could not look the Idempotency-Key up");
  else if (memcmp(fingerprint, w->fingerprint, sizeof fingerprint) != 0)
    fw_write_fail(ctx, 422, "idempotency_key_reused",
                  "this Idempotency-Key was used for a different request");
  else
    ctx->status = status;
  w->replayed = !ctx->error_code;
  return true;
}

static void remember(struct fw_writer *writer, struct write *w, struct fw_write_ctx *ctx) {
  if (writer->store->ops->idempotency_put(writer->store, w->actor, w->idempotency_key,
                                          w->fingerprint, ctx->status, w->body.data, w->body.len,
                                          ctx->now_ms) != FW_OK)
    fw_write_fail(ctx, 500, "store_failed", "the store could not remember the Idempotency-Key");
}

/* Runs one write in its savepoint against `*world`, advancing it on success. */
static void run_write(struct fw_writer *writer, struct write *w, struct fw_world **world,
                      int64_t now_ms) {
  struct fw_write_ctx ctx = {
      .store = writer->store, .world = *world, .now_ms = now_ms, .status = 200, .body = &w->body};
  if (writer->store->ops->savepoint(writer->store) != FW_OK) {
    fw_write_fail(&ctx, 500, "store_failed", "the store could not start the write");
  } else if (w->idempotency_key[0] && replay(writer, w, &ctx)) {
    if (!ctx.error_code && writer->store->ops->release(writer->store) != FW_OK)
      fw_write_fail(&ctx, 500, "store_failed", "the store could not finish the write");
    if (ctx.error_code)
      writer->store->ops->rollback_savepoint(writer->store);
  } else {
    w->fn(&ctx, w->arg);
    if (!ctx.error_code && w->idempotency_key[0])
      remember(writer, w, &ctx);
    /* A write whose changes could not reach the loops would leave streams behind without
     * their knowing: it is refused instead. */
    if (!ctx.error_code && reserve_group_changes(writer, ctx.change_count) != FW_OK)
      fw_write_fail(&ctx, 503, "out_of_memory", "the server is out of memory");
    if (!ctx.error_code && writer->store->ops->release(writer->store) != FW_OK)
      fw_write_fail(&ctx, 500, "store_failed", "the store could not finish the write");
    if (ctx.error_code)
      writer->store->ops->rollback_savepoint(writer->store);
  }
  if (!ctx.error_code) {
    for (size_t i = 0; i < ctx.change_count; i++)
      writer->group_changes[writer->group_change_count++] = ctx.changes[i];
  } else {
    release_changes(ctx.changes, ctx.change_count);
  }
  free(ctx.changes);
  w->status = ctx.status;
  w->error_code = ctx.error_code;
  fw_metric_add(w->replayed      ? &writer->writes_replayed
                : ctx.error_code ? &writer->writes_failed
                                 : &writer->writes_ok,
                1);
  memcpy(w->error_message, ctx.error_message, sizeof w->error_message);
  if (ctx.error_code) {
    fw_world_unref(ctx.next);
    fw_buf_reset(&w->body);
  } else if (ctx.next) {
    fw_world_unref(*world);
    *world = ctx.next;
  }
}

static void fail_all(struct write *writes, const char *message) {
  for (struct write *w = writes; w; w = w->next) {
    if (!w->error_code) {
      w->status = 500;
      w->error_code = "store_failed";
      snprintf(w->error_message, sizeof w->error_message, "%s", message);
      fw_buf_reset(&w->body);
    }
  }
}

/* Drops the changes gathered for a group. */
static void forget_group_changes(struct fw_writer *writer) {
  release_changes(writer->group_changes, writer->group_change_count);
  writer->group_change_count = 0;
}

/* Runs a group in one transaction and makes its world the latest on commit. Returns the
 * changes it committed, or NULL when there were none (or no memory for the batch: the
 * hub then sees a revision it has no change for, and resynchronises its streams). */
static struct fw_change_batch *run_group(struct fw_writer *writer, struct write *writes) {
  struct fw_store *store = writer->store;
  int64_t now_ms = group_now_ms(writer);
  if (store->ops->begin(store) != FW_OK) {
    fail_all(writes, "the store could not begin a transaction");
    return NULL;
  }
  if (writer->groups++ % IDEMPOTENCY_PRUNE_EVERY_GROUPS == 0 &&
      store->ops->idempotency_prune(store, now_ms - IDEMPOTENCY_KEEP_MS) != FW_OK)
    fw_log(FW_LOG_WARN, "cannot forget old Idempotency-Key answers");
  struct fw_world *world = fw_world_ref(writer->latest);
  for (struct write *w = writes; w; w = w->next)
    run_write(writer, w, &world, now_ms);
  uint64_t commit_started = uv_hrtime();
  int committed = store->ops->commit(store);
  fw_metric_observe(&writer->commit_latency, (uv_hrtime() - commit_started) / 1000);
  if (committed != FW_OK) {
    store->ops->rollback(store);
    fail_all(writes, "the store could not commit; nothing was changed");
    fw_world_unref(world);
    forget_group_changes(writer);
    return NULL;
  }
  fw_world_unref(writer->latest);
  writer->latest = world;
  if (writer->group_change_count == 0)
    return NULL;
  struct fw_change_batch *batch =
      fw_change_batch_new(writer->group_changes, writer->group_change_count, uv_hrtime());
  writer->group_change_count = 0; /* taken over by the batch, or released */
  if (!batch)
    fw_log(FW_LOG_ERROR, "out of memory handing changes to the streams");
  return batch;
}

static void writer_main(void *arg) {
  struct fw_writer *writer = arg;
  fw_metrics_bind_thread(WRITER_METRICS_THREAD);
  for (;;) {
    uv_mutex_lock(&writer->lock);
    while (!writer->queue_head && !writer->stopping)
      uv_cond_wait(&writer->wake, &writer->lock);
    if (!writer->queue_head) {
      uv_mutex_unlock(&writer->lock);
      return;
    }
    /* Take up to MAX_GROUP writes, in submission order. */
    struct write *writes = writer->queue_head, *last = writes;
    size_t size = 1;
    for (; size < MAX_GROUP && last->next; size++)
      last = last->next;
    fw_metric_observe(&writer->group_sizes, size);
    writer->queue_head = last->next;
    if (!writer->queue_head)
      writer->queue_tail = NULL;
    last->next = NULL;
    uv_mutex_unlock(&writer->lock);

    struct fw_change_batch *batch = run_group(writer, writes);
    struct group *group = malloc(sizeof *group);
    if (!group) {
      fw_change_batch_unref(batch);
      /* Nothing can be answered without the group: the connections get no reply and
       * their clients retry; what was committed stays committed. */
      fw_log(FW_LOG_ERROR, "out of memory answering a group of writes");
      while (writes) {
        struct write *next = writes->next;
        fw_http_deferred_discard(writes->deferred);
        write_free(writes);
        writes = next;
      }
      continue;
    }
    group->writer = writer;
    group->writes = writes;
    publish(writer, group, batch);
  }
}

/* ---- life ---- */

int fw_writer_start(struct fw_store *store, struct fw_world *world, unsigned loop_count,
                    struct fw_writer **out) {
  if (loop_count == 0 || loop_count > MAX_LOOPS)
    return FW_EINVAL;
  struct fw_writer *writer = calloc(1, sizeof *writer);
  if (!writer)
    return FW_ENOMEM;
  int rc = fw_metrics_counter("flagwire_writes_total",
                              "Writes answered by the writer, by outcome (replayed: a retry with "
                              "a known Idempotency-Key).",
                              "outcome=\"ok\"", &writer->writes_ok);
  if (!rc)
    rc = fw_metrics_counter("flagwire_writes_total", NULL, "outcome=\"failed\"",
                            &writer->writes_failed);
  if (!rc)
    rc = fw_metrics_counter("flagwire_writes_total", NULL, "outcome=\"replayed\"",
                            &writer->writes_replayed);
  if (!rc)
    rc = fw_metrics_histogram(
        "flagwire_write_group_size", "Writes committed together in one transaction (one fsync).",
        NULL, group_size_bounds, FW_ARRAY_LEN(group_size_bounds), 1.0, &writer->group_sizes);
  if (!rc)
    rc = fw_metrics_histogram(
        "flagwire_write_commit_seconds", "Time to commit a group of writes, fsync included.", NULL,
        commit_bounds_us, FW_ARRAY_LEN(commit_bounds_us), 1e-6, &writer->commit_latency);
  if (rc) {
    free(writer);
    return rc;
  }
  writer->store = store;
  writer->loop_count = loop_count;
  writer->latest = fw_world_ref(world);
  for (unsigned i = 0; i < loop_count; i++)
    writer->adopted[i] = fw_world_ref(world);
  if (uv_mutex_init(&writer->lock) != 0) {
    free(writer);
    return FW_EIO;
  }
  if (uv_cond_init(&writer->wake) != 0 ||
      uv_thread_create(&writer->thread, writer_main, writer) != 0) {
    uv_mutex_destroy(&writer->lock);
    for (unsigned i = 0; i < loop_count; i++)
      fw_world_unref(writer->adopted[i]);
    fw_world_unref(writer->latest);
    free(writer);
    return FW_EIO;
  }
  *out = writer;
  return FW_OK;
}

void fw_writer_set_adopt_hook(struct fw_writer *writer, fw_writer_adopt_hook hook, void *ctx) {
  writer->adopt_hook = hook;
  writer->adopt_ctx = ctx;
}

void fw_writer_attach(struct fw_writer *writer, struct fw_server *server) {
  uv_mutex_lock(&writer->lock);
  writer->server = server;
  uv_cond_broadcast(&writer->wake);
  uv_mutex_unlock(&writer->lock);
}

/* Reads Idempotency-Key into the write; FW_EINVAL when malformed. */
static int read_idempotency(struct write *w, const struct fw_http_request *req, const char *actor) {
  size_t len;
  const char *key = fw_http_header(req, "Idempotency-Key", &len);
  /* Reads also pass through the writer (the change log), but a read is safe to repeat
   * and must see what is there now. */
  if (!key || req->method == FW_HTTP_GET || req->method == FW_HTTP_HEAD)
    return FW_OK;
  if (len == 0 || len > IDEMPOTENCY_KEY_MAX)
    return FW_EINVAL;
  for (size_t i = 0; i < len; i++)
    if (key[i] < 0x21 || key[i] > 0x7e)
      return FW_EINVAL;
  memcpy(w->idempotency_key, key, len);
  w->idempotency_key[len] = '\0';
  snprintf(w->actor, sizeof w->actor, "%s", actor);
  /* The same key must come with the same request: method, target and body. */
  const struct fw_bytes parts[] = {{req->method_name, strlen(req->method_name)},
                                   {" ", 1},
                                   {req->target, req->target_len},
                                   {"\n", 1},
                                   {req->body ? req->body : "", req->body_len}};
  fw_sha256_parts(parts, FW_ARRAY_LEN(parts), w->fingerprint);
  return FW_OK;
}

int fw_writer_submit(struct fw_writer *writer, const struct fw_http_request *req,
                     struct fw_http_response *res, const char *actor, fw_write_fn fn, void *arg,
                     void (*free_arg)(void *arg)) {
  struct write *w = calloc(1, sizeof *w);
  if (!w)
    return FW_ENOMEM;
  int rc = read_idempotency(w, req, actor);
  if (!rc)
    rc = fw_http_response_defer(res, req, &w->deferred);
  if (rc) {
    free(w);
    return rc;
  }
  w->task.run = run_answer;
  w->loop = fw_http_response_loop(res);
  w->fn = fn;
  w->arg = arg;
  w->free_arg = free_arg;
  fw_buf_init(&w->body, MAX_BODY_BYTES);
  uv_mutex_lock(&writer->lock);
  /* The writer stops only after every loop has ended, so no handler submits then. */
  assert(!writer->stopping);
  if (writer->queue_tail)
    writer->queue_tail->next = w;
  else
    writer->queue_head = w;
  writer->queue_tail = w;
  uv_cond_signal(&writer->wake);
  uv_mutex_unlock(&writer->lock);
  return FW_OK;
}

int fw_writer_run_now(struct fw_writer *writer, fw_write_fn fn, void *arg, struct fw_buf *body) {
  struct write w = {.fn = fn, .arg = arg};
  fw_buf_init(&w.body, MAX_BODY_BYTES);
  /* The writer thread is idle: nothing can be submitted before the server starts. Set-up
   * writes change no environment, so no stream can have missed their changes. */
  fw_change_batch_unref(run_group(writer, &w));
  if (!w.error_code) {
    for (unsigned i = 0; i < writer->loop_count; i++) {
      fw_world_unref(writer->adopted[i]);
      writer->adopted[i] = fw_world_ref(writer->latest);
    }
  } else {
    fw_log_with(FW_LOG_ERROR, "a set-up write failed", FW_LOG_STR("error", w.error_message));
  }
  if (body && !w.error_code && w.body.len && fw_buf_append(body, w.body.data, w.body.len) != FW_OK)
    w.status = 500;
  fw_buf_free(&w.body);
  return w.status;
}

void fw_writer_stop(struct fw_writer *writer) {
  if (!writer)
    return;
  uv_mutex_lock(&writer->lock);
  writer->stopping = true;
  uv_cond_broadcast(&writer->wake);
  uv_mutex_unlock(&writer->lock);
  uv_thread_join(&writer->thread);
  uv_cond_destroy(&writer->wake);
  uv_mutex_destroy(&writer->lock);
  for (unsigned i = 0; i < writer->loop_count; i++)
    fw_world_unref(writer->adopted[i]);
  fw_world_unref(writer->latest);
  free(writer->group_changes);
  free(writer);
}
