#include "settings.h"

#include <stddef.h>
#include <stdlib.h>

#define DAY_MS (24ull * 60 * 60 * 1000)

static const char *const durability_choices[] = {"full", "normal", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_choices[] = {"auto", "text", "json", NULL};

#define FIELD(name) offsetof(struct fw_settings, name)

static const struct fw_option options[] = {
    {"config", FW_OPT_STRING, FIELD(config), "",
     "Read options from this file (lines of 'name = value').", 0, 0, NULL},
    {"host", FW_OPT_STRING, FIELD(host), "127.0.0.1",
     "Address to listen on (an IPv4 or IPv6 literal; 0.0.0.0 for every interface).", 0, 0, NULL},
    {"port", FW_OPT_UINT, FIELD(port), "8080", "TCP port to listen on (0 picks a free one).", 0,
     65535, NULL},
    {"threads", FW_OPT_UINT, FIELD(threads), "0",
     "Event loops, each on its own thread with its own listener (0: one per core).", 0, 64, NULL},
    {"data", FW_OPT_STRING, FIELD(data), "./data",
     "Directory of the embedded SQLite store (created if missing).", 0, 0, NULL},
    {"durability", FW_OPT_CHOICE, FIELD(durability), "full",
     "full: an acknowledged write survives power loss. normal: it survives a crash of the "
     "process only (faster commits).",
     0, 0, durability_choices},
    {"max-connections", FW_OPT_UINT, FIELD(max_connections), "0",
     "Open connections at most; more are answered 503 (0: the open-file limit less a reserve).", 0,
     10000000, NULL},
    {"max-header-bytes", FW_OPT_SIZE, FIELD(max_header_bytes), "16k",
     "Request line and headers at most; larger is answered 431.", 1024, 1024 * 1024, NULL},
    {"max-body-bytes", FW_OPT_SIZE, FIELD(max_body_bytes), "1m",
     "Request body at most; larger is answered 413.", 0, 256ull * 1024 * 1024, NULL},
    {"header-timeout", FW_OPT_DURATION, FIELD(header_timeout_ms), "10s",
     "Time from a request's first byte to the end of its headers; slower is answered 408 and "
     "closed. A new connection that sends nothing for this long is closed.",
     100, DAY_MS, NULL},
    {"body-timeout", FW_OPT_DURATION, FIELD(body_timeout_ms), "30s",
     "Time from the end of the headers to the end of the body; slower is answered 408.", 100,
     DAY_MS, NULL},
    {"keepalive-timeout", FW_OPT_DURATION, FIELD(keepalive_timeout_ms), "75s",
     "Idle time allowed between requests on a keep-alive connection.", 100, DAY_MS, NULL},
    {"shutdown-timeout", FW_OPT_DURATION, FIELD(shutdown_timeout_ms), "10s",
     "On SIGTERM or SIGINT, how long requests in flight and streams get to finish.", 0, DAY_MS,
     NULL},
    {"heartbeat", FW_OPT_DURATION, FIELD(heartbeat_ms), "15s",
     "Time between heartbeats on an idle stream (spread over the interval).", 1000, DAY_MS, NULL},
    {"stream-write-timeout", FW_OPT_DURATION, FIELD(stream_write_timeout_ms), "30s",
     "A stream whose oldest unsent event is older is slow: it gets goodbye and resumes by "
     "cursor.",
     100, DAY_MS, NULL},
    {"stream-send-buffer", FW_OPT_SIZE, FIELD(stream_send_buffer), "128k",
     "SO_SNDBUF of stream sockets (0: the kernel's default).", 0, 64ull * 1024 * 1024, NULL},
    {"max-streams", FW_OPT_UINT, FIELD(max_streams), "0",
     "Streams open at most; more are told goodbye (overloaded) with a retry delay (0: the "
     "connection cap).",
     0, 10000000, NULL},
    {"stream-accept-rate", FW_OPT_UINT, FIELD(stream_accept_rate), "5000",
     "New streams per second per loop at most (a token bucket as deep as the rate); more "
     "are told goodbye (overloaded) with a retry delay (0: no limit).",
     0, 10000000, NULL},
    {"replay-bytes", FW_OPT_SIZE, FIELD(replay_bytes), "1m",
     "Replay ring of each environment: the last changes kept to resume streams exactly.", 4096,
     1024ull * 1024 * 1024, NULL},
    {"tombstone-days", FW_OPT_UINT, FIELD(tombstone_days), "30",
     "Days deletions are remembered for streams catching up; an older cursor gets a snapshot.", 1,
     3650, NULL},
    {"eval-budget", FW_OPT_DURATION, FIELD(eval_budget_ms), "50ms",
     "Time a loop spends evaluating one change for its values streams (writes not counted); "
     "streams not evaluated by then get 'refetch' instead of values (0: every values stream "
     "gets 'refetch').",
     0, 60000, NULL},
    {"fanout-slice", FW_OPT_UINT, FIELD(fanout_slice), "2000",
     "Streams a loop sends a change to per turn of its event loop; the rest follow on the "
     "next turns, after the connections that became ready meanwhile.",
     1, 10000000, NULL},
    {"log-level", FW_OPT_CHOICE, FIELD(log_level), "info",
     "Least severe level logged (debug logs every request).", 0, 0, level_choices},
    {"log-format", FW_OPT_CHOICE, FIELD(log_format), "auto",
     "auto: text on a terminal, JSON lines otherwise.", 0, 0, format_choices},
    {"log-file", FW_OPT_STRING, FIELD(log_file), "",
     "Append logs to this file instead of standard error; SIGHUP reopens it.", 0, 0, NULL},
};

static const char *lookup_environment(const char *name) { return getenv(name); }

int fw_settings_load(struct fw_settings *settings, int argc, char **argv, char *error,
                     size_t error_len) {
  return fw_config_load(options, FW_ARRAY_LEN(options), settings, argc, argv, lookup_environment,
                        error, error_len);
}

void fw_settings_print_help(FILE *out) {
  fw_config_print_help(out, options, FW_ARRAY_LEN(options));
}
