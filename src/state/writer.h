/* The writer: the one thread that changes the store and the state (DESIGN.md 3).
 *
 * Loops submit writes. The writer drains its queue into one transaction, each write in
 * its own savepoint, so a rejected write changes nothing and does not undo its
 * neighbours, and one commit (one fsync) serves the group. After the commit it hands
 * the new world to every loop; each loop adopts it, and only when every loop has, the
 * responses go out, so a read on any connection after a response sees the write.
 *
 * Thread: fw_writer_submit and fw_writer_world are for loop threads; the rest belongs to
 * the thread that owns the writer. */
#ifndef FW_STATE_WRITER_H
#define FW_STATE_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "net/server.h"
#include "state/change.h"
#include "state/world.h"
#include "store/store.h"
#include "util/buf.h"

/* What a write sees and produces, on the writer thread, inside its savepoint. */
struct fw_write_ctx {
  struct fw_store *store;
  const struct fw_world *world; /* the state so far, earlier writes of the group included */
  struct fw_world *next;        /* set by a write that changed the state; owned */
  int64_t now_ms;
  /* The answer: a status with a JSON body, or an error. */
  int status;
  struct fw_buf *body;
  const char *error_code; /* static string; NULL on success */
  char error_message[256];
  /* The changes this write logged (fw_write_append_change), for the hub; the writer's. */
  struct fw_change **changes;
  size_t change_count, change_cap;
};

/* Does the work of one write. On failure it calls fw_write_fail (and leaves `next`
 * NULL): the savepoint is rolled back. A store error it cannot explain it reports with
 * fw_write_fail(ctx, 500, "store_failed", ...). */
typedef void (*fw_write_fn)(struct fw_write_ctx *ctx, void *arg);

/* Sets the error answer of a write. */
void fw_write_fail(struct fw_write_ctx *ctx, int status, const char *code, const char *fmt, ...)
    FW_PRINTF(4, 5);

/* Appends a change row to the store's change log and keeps it for the loops, which
 * receive it with the world it belongs to. Every write logs its changes through here.
 * FW_ENOMEM, or the store's error. */
FW_MUST_CHECK int fw_write_append_change(struct fw_write_ctx *ctx,
                                         const struct fw_store_change *change);

struct fw_writer;

/* Called on loop `loop`'s thread each time it adopts a new world: `previous` is the world
 * it had (alive until the hook returns), `batch` the changes committed since, in commit
 * order (borrowed; take a reference to keep it). */
typedef void (*fw_writer_adopt_hook)(void *ctx, unsigned loop, const struct fw_world *previous,
                                     const struct fw_world *world, struct fw_change_batch *batch);

/* Creates the writer over `store` (borrowed; the writer is its only user from now on)
 * starting from `world` (referenced) and its thread, for `loop_count` loops. Writes
 * submitted before fw_writer_attach wait for it. */
FW_MUST_CHECK int fw_writer_start(struct fw_store *store, struct fw_world *world,
                                  unsigned loop_count, struct fw_writer **out);

/* Sets the hook run on every loop as it adopts a world. Call before fw_writer_attach. */
void fw_writer_set_adopt_hook(struct fw_writer *writer, fw_writer_adopt_hook hook, void *ctx);

/* Gives the writer the server whose loops adopt its worlds and answer its writes. */
void fw_writer_attach(struct fw_writer *writer, struct fw_server *server);

/* The world loop `loop` has adopted. Borrowed: valid until the handler returns. Loop
 * thread only. */
const struct fw_world *fw_writer_world(const struct fw_writer *writer, unsigned loop);

/* Defers the response to `req` and queues a write that will answer it: `fn` runs on the
 * writer thread with `arg`, and `free_arg` (may be NULL) releases `arg` afterwards, on
 * whatever thread.
 *
 * When the request carries `Idempotency-Key`, the answer is remembered for 24 hours per
 * `actor`: a retry with the same key and the same request gets the same answer without
 * running again (`Idempotent-Replayed: true`); the same key on a different request is a
 * 422. Only successful answers are remembered: a failed write changed nothing.
 *
 * On error nothing was deferred or taken, the handler answers and still owns `arg`:
 * FW_ENOMEM, or FW_EINVAL for an Idempotency-Key that is not 1 to 255 visible ASCII
 * characters. Loop thread, inside a handler. */
FW_MUST_CHECK int fw_writer_submit(struct fw_writer *writer, const struct fw_http_request *req,
                                   struct fw_http_response *res, const char *actor, fw_write_fn fn,
                                   void *arg, void (*free_arg)(void *arg));

/* Runs one write now on the calling thread, before the server starts (first-start
 * set-up). Returns the write's status; `body` (may be NULL) receives its answer. */
int fw_writer_run_now(struct fw_writer *writer, fw_write_fn fn, void *arg, struct fw_buf *body);

/* Finishes what was submitted, stops the thread and frees the writer. Call after the
 * server's loops have ended and before the server is freed. */
void fw_writer_stop(struct fw_writer *writer);

#endif
