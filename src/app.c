#include "app.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/cors.h"
#include "api/ops.h"
#include "net/server.h"
#include "store/store.h"
#include "util/log.h"
#include "util/metrics.h"

/* How often the main thread looks whether the loops have ended while it waits for
 * signals. */
#define SIGNAL_POLL_MS 50

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

int fw_app_serve(const struct fw_settings *settings) {
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
  struct fw_store *store = NULL;
  int rc = fw_store_open_sqlite(settings->data, (enum fw_durability)settings->durability, &store,
                                error, sizeof error);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot open the store", FW_LOG_STR("error", error));
    return 1;
  }

  struct fw_ops_state ops = {.ready = false};
  struct fw_router router;
  fw_router_init(&router);
  rc = fw_ops_register(&router, &ops);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot build the routes", FW_LOG_STR("error", fw_strerror(rc)));
    fw_router_free(&router);
    fw_store_close(store);
    return 1;
  }

  struct fw_server_options options = {
      .host = settings->host,
      .port = (uint16_t)settings->port,
      .threads = settings->threads ? (unsigned)settings->threads : default_threads(),
      .max_connections = (size_t)settings->max_connections,
      .limits = {.max_header_bytes = (size_t)settings->max_header_bytes,
                 .max_body_bytes = (size_t)settings->max_body_bytes},
      .header_timeout_ms = settings->header_timeout_ms,
      .body_timeout_ms = settings->body_timeout_ms,
      .keepalive_timeout_ms = settings->keepalive_timeout_ms,
      .shutdown_timeout_ms = settings->shutdown_timeout_ms,
      .router = &router,
      .filter = fw_cors_filter,
  };
  struct fw_server *server = NULL;
  rc = fw_server_start(&options, &server, error, sizeof error);
  if (rc) {
    fw_log_with(FW_LOG_ERROR, "cannot start the server", FW_LOG_STR("error", error));
    fw_router_free(&router);
    fw_store_close(store);
    fw_metrics_reset();
    return 1;
  }
  atomic_store(&ops.ready, true);

  bool v6 = strchr(settings->host, ':') != NULL;
  char url[FW_OPT_STRING_MAX + 32];
  snprintf(url, sizeof url, "http://%s%s%s:%u", v6 ? "[" : "", settings->host, v6 ? "]" : "",
           (unsigned)fw_server_port(server));
  fw_log_with(FW_LOG_INFO, "listening", FW_LOG_STR("url", url),
              FW_LOG_INT("threads", options.threads),
              FW_LOG_INT("max_connections", fw_server_max_connections(server)),
              FW_LOG_STR("data", settings->data),
              FW_LOG_STR("durability", durability_names[settings->durability]));
  printf("flagwire listening on %s\n", url);
  fflush(stdout);

  run_until_stopped(server, &ops, &signals);
  fw_server_wait(server);
  fw_server_free(server);
  fw_router_free(&router);
  fw_store_close(store);
  fw_metrics_reset();
  fw_log(FW_LOG_INFO, "stopped");
  fw_log_shutdown();
  return 0;
}
