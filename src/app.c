#include "app.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/admin.h"
#include "api/cors.h"
#include "api/eval.h"
#include "api/flagsmith.h"
#include "api/ofrep.h"
#include "api/ops.h"
#include "api/stream.h"
#include "api/ws.h"
#include "hub/hub.h"
#include "core/keys.h"
#include "net/server.h"
#include "state/compiled.h"
#include "state/mutations.h"
#include "state/writer.h"
#include "store/store.h"
#include "util/log.h"
#include "util/metrics.h"

/* How often the main thread looks whether the loops have ended while it waits for
 * signals. */
#define SIGNAL_POLL_MS 50
/* TCP_USER_TIMEOUT of stream sockets: a dead peer is released within a minute. */
#define STREAM_USER_TIMEOUT_MS 60000

static const char *const durability_names[] = {"full", "normal"};

static unsigned default_threads(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (unsigned)(cores > 64 ? 64 : cores) : 1;
}

/* Waits for signals until the server has stopped. SIGHUP reopens the log file; the first
 * SIGTERM or SIGINT starts a graceful stop, a second one forces it. */
static void run_until_stopped(struct fw_server *server, struct fw_ops_state *ops,
                              const sigset_t *signals) {
  int stops = 0;
  const struct timespec poll = {.tv_sec = 0, .tv_nsec = SIGNAL_POLL_MS * 1000000L};
  while (!fw_server_finished(server)) {
    int sig = sigtimedwait(signals, NULL, &poll);
    if (sig == SIGHUP) {
      if (fw_log_reopen() != FW_OK)
        fw_log(FW_LOG_ERROR, "cannot reopen the log file");
    } else if (sig == SIGTERM || sig == SIGINT) {
      stops++;
      atomic_store(&ops->ready, false);
      fw_log_with(FW_LOG_INFO, stops == 1 ? "stopping" : "stopping now",
                  FW_LOG_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      fw_server_stop(server, stops > 1);
    }
  }
}

/* Whether some admin-role token can still get in: one without an expiry. When none
 * can (a new store, or every admin token revoked or expiring), the first-start token is
 * made again, which is also how a locked-out operator recovers. */
static bool has_admin_token(const struct fw_world *world) {
  for (size_t i = 0; i < world->credentials->count; i++) {
    const struct fw_credential *c = &world->credentials->items[i];
    if (c->kind == FW_CREDENTIAL_ADMIN && c->role == FW_ROLE_ADMIN && c->expires_ms == 0)
      return true;
  }
  return false;
}

/* On an empty store, creates the first admin token: FLAGWIRE_ADMIN_TOKEN's text if set,
 * else a new one printed once on standard output. */
static int create_first_token(struct fw_writer *writer) {
  struct fw_mutation *m = fw_mutation_new();
  if (!m)
    return FW_ENOMEM;
  const char *given = getenv("FLAGWIRE_ADMIN_TOKEN");
  char token[FW_KEY_LEN + 1] = "";
  int rc = FW_OK;
  if (given && *given) {
    if (strlen(given) < 16) {
      fprintf(stderr, "flagwire: FLAGWIRE_ADMIN_TOKEN must be at least 16 characters\n");
      fw_mutation_free(m);
      return FW_EINVAL;
    }
    fw_sha256(given, strlen(given), m->token_hash);
  } else {
    rc = fw_key_generate(FW_CREDENTIAL_ADMIN, token, m->token_hash);
  }
  snprintf(m->name, sizeof m->name, "first-admin");
  snprintf(m->role, sizeof m->role, "admin");
  if (!rc && fw_writer_run_now(writer, fw_mutate_create_admin_token, m, NULL) != 201)
    rc = FW_EIO;
  fw_mutation_free(m);
  if (!rc && token[0]) {
    printf("flagwire admin token (shown once, keep it): %s\n", token);
    fflush(stdout);
  }
  return rc;
}

int fw_app_serve(const struct fw_settings *settings) {
  /* Each write frees SQLite's savepoint memory at the top of the writer's heap; glibc
   * would hand it back to the kernel every time, at the cost of a TLB shoot-down across
   * all threads per write. Keep up to 64 MiB of free heap instead. */
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  if (fw_log_setup(settings->log_file, (enum fw_log_format)settings->log_format,
                   (enum fw_log_level)settings->log_level) != FW_OK) {
    fprintf(stderr, "flagwire: option --log-file: cannot open '%s'\n", settings->log_file);
    return 1;
  }
  /* Signals are taken by sigtimedwait in this thread only: block them before any other
   * thread exists, so every thread inherits the mask. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  char error[512] = "";
  int status = 1;
  struct fw_store *store = NULL;
  struct fw_world *world = NULL;
  struct fw_writer *writer = NULL;
  struct fw_hub *hub = NULL;
  struct fw_server *server = NULL;
  struct fw_ops_state ops = {.ready = false};
  struct fw_router router;
  fw_router_init(&router);
  unsigned threads = settings->threads ? (unsigned)settings->threads : default_threads();

  int rc = fw_store_open_sqlite(settings->data, (enum fw_durability)settings->durability, &store,
                                error, sizeof error);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot open the store", FW_LOG_STR("error", error));
    goto done;
  }
  /* What the database says is in force, not what was asked: the log shows the truth. */
  enum fw_durability in_force;
  rc = fw_store_durability(store, &in_force);
  if (rc) {
    fw_log(FW_LOG_ERROR, "cannot read the store's durability back");
    goto done;
  }
  /* Everything is read once here; from now on reads are served from memory. */
  rc = fw_world_load(store, &world);
  if (!rc)
    rc = fw_compile_world(world);
  /* The streams' replay rings and tombstones come from the change log, read before the
   * writer takes the store over. The stream cap follows the connection cap, which the
   * server derives from the open-file limit when not given. */
  struct fw_hub_options hub_options = {
      .ring_bytes = (size_t)settings->replay_bytes,
      .heartbeat_ms = settings->heartbeat_ms,
      .write_timeout_ms = settings->stream_write_timeout_ms,
      .max_backlog_bytes = (size_t)settings->stream_send_buffer + 1024 * 1024,
      .stream_cap = SIZE_MAX, /* until the server knows its connection cap */
      .accept_rate = (unsigned)settings->stream_accept_rate,
      .tombstone_days = (int64_t)settings->tombstone_days,
      .eval_budget_ms = settings->eval_budget_ms,
      .slice_subscribers = (size_t)settings->fanout_slice};
  if (!rc)
    rc = fw_hub_new(&hub_options, store, world, threads, &hub);
  if (!rc)
    rc = fw_writer_start(store, world, threads, &writer);
  if (!rc)
    fw_writer_set_adopt_hook(writer, fw_hub_on_adopt, hub);
  if (!rc && !has_admin_token(world))
    rc = create_first_token(writer);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot load the state", FW_LOG_STR("error", fw_strerror(rc)));
    goto done;
  }

  struct fw_admin admin = {.writer = writer};
  struct fw_eval_api eval = {.writer = writer};
  struct fw_ofrep ofrep = {.writer = writer};
  struct fw_flagsmith flagsmith = {.writer = writer};
  struct fw_stream_api stream = {.writer = writer, .hub = hub};
  struct fw_ws_api ws = {.writer = writer, .hub = hub};
  rc = fw_ops_register(&router, &ops);
  if (!rc)
    rc = fw_admin_register(&router, &admin);
  if (!rc)
    rc = fw_eval_api_register(&router, &eval);
  if (!rc)
    rc = fw_ofrep_register(&router, &ofrep);
  if (!rc)
    rc = fw_flagsmith_register(&router, &flagsmith);
  if (!rc)
    rc = fw_stream_api_register(&router, &stream);
  if (!rc)
    rc = fw_ws_api_register(&router, &ws);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot build the routes", FW_LOG_STR("error", fw_strerror(rc)));
    goto done;
  }

  struct fw_server_options options = {
      .host = settings->host,
      .port = (uint16_t)settings->port,
      .threads = threads,
      .max_connections = (size_t)settings->max_connections,
      .limits = {.max_header_bytes = (size_t)settings->max_header_bytes,
                 .max_body_bytes = (size_t)settings->max_body_bytes},
      .header_timeout_ms = settings->header_timeout_ms,
      .body_timeout_ms = settings->body_timeout_ms,
      .keepalive_timeout_ms = settings->keepalive_timeout_ms,
      .shutdown_timeout_ms = settings->shutdown_timeout_ms,
      .stream_send_buffer = (size_t)settings->stream_send_buffer,
      .stream_user_timeout_ms = STREAM_USER_TIMEOUT_MS,
      .router = &router,
      .filter = fw_cors_filter,
  };
  rc = fw_server_start(&options, &server, error, sizeof error);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot start the server", FW_LOG_STR("error", error));
    goto done;
  }
  fw_hub_attach_server(hub, server);
  fw_writer_attach(writer, server);
  /* Streams stop short of the connection cap, so that a stream past its own cap still
   * gets its 200 and goodbye (a browser never retries a 503) and plain requests still
   * get in. */
  size_t max_connections = fw_server_max_connections(server);
  size_t stream_reserve = max_connections / 20 > 64 ? max_connections / 20 : 64;
  size_t max_streams = settings->max_streams              ? (size_t)settings->max_streams
                       : max_connections > stream_reserve ? max_connections - stream_reserve
                                                          : 1;
  fw_hub_set_stream_cap(hub, max_streams);
  atomic_store(&ops.ready, true);

  bool v6 = strchr(settings->host, ':') != NULL;
  char url[FW_OPT_STRING_MAX + 32];
  snprintf(url, sizeof url, "http://%s%s%s:%u", v6 ? "[" : "", settings->host, v6 ? "]" : "",
           (unsigned)fw_server_port(server));
  fw_log_with(FW_LOG_INFO, "listening", FW_LOG_STR("url", url), FW_LOG_INT("threads", threads),
              FW_LOG_INT("max_connections", max_connections),
              FW_LOG_INT("max_streams", max_streams), FW_LOG_STR("data", settings->data),
              FW_LOG_STR("durability", durability_names[settings->durability]),
              FW_LOG_STR("store_durability", durability_names[in_force]));
  printf("flagwire listening on %s\n", url);
  fflush(stdout);

  run_until_stopped(server, &ops, &signals);
  fw_server_wait(server);
  status = 0;
done:
  /* The writer goes after the loops (its answers find them ended) and before the server
   * they were posted through. */
  fw_writer_stop(writer);
  fw_server_free(server);
  fw_hub_free(hub);
  fw_router_free(&router);
  fw_world_unref(world);
  fw_store_close(store);
  fw_metrics_reset();
  if (status == 0)
    fw_log(FW_LOG_INFO, "stopped");
  fw_log_shutdown();
  return status;
}
