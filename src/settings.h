/* The options of `flagwire serve`: one table gives their names, defaults, ranges and
 * help, for the command line, FLAGWIRE_* variables and the config file alike. */
#ifndef FW_SETTINGS_H
#define FW_SETTINGS_H

#include <stdint.h>
#include <stdio.h>

#include "util/config.h"

struct fw_settings {
  char config[FW_OPT_STRING_MAX];
  char host[FW_OPT_STRING_MAX];
  uint64_t port;
  uint64_t threads; /* 0: one per core */
  char data[FW_OPT_STRING_MAX];
  int durability; /* enum fw_durability */
  uint64_t max_connections;
  uint64_t max_header_bytes;
  uint64_t max_body_bytes;
  uint64_t header_timeout_ms;
  uint64_t body_timeout_ms;
  uint64_t keepalive_timeout_ms;
  uint64_t shutdown_timeout_ms;
  uint64_t heartbeat_ms;
  uint64_t stream_write_timeout_ms;
  uint64_t stream_send_buffer;
  uint64_t max_streams;
  uint64_t stream_accept_rate;
  uint64_t replay_bytes;
  uint64_t tombstone_days;
  uint64_t eval_budget_ms;
  uint64_t fanout_slice;
  int log_level;  /* enum fw_log_level */
  int log_format; /* enum fw_log_format */
  char log_file[FW_OPT_STRING_MAX];
};

/* Loads the settings from every source (see util/config.h). Returns FW_ENOTFOUND when
 * --help was asked for, FW_EINVAL with `error` naming the option otherwise. */
FW_MUST_CHECK int fw_settings_load(struct fw_settings *settings, int argc, char **argv, char *error,
                                   size_t error_len);

void fw_settings_print_help(FILE *out);

#endif
