/* Typed options from three sources: command-line flags override FLAGWIRE_* environment
 * variables, which override an optional config file, which overrides the defaults.
 * Each option is described once, in a table, and the table also prints --help. */
#ifndef FW_UTIL_CONFIG_H
#define FW_UTIL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/common.h"

enum fw_option_type {
  FW_OPT_STRING,   /* char[FW_OPT_STRING_MAX] */
  FW_OPT_UINT,     /* uint64_t within [min, max] */
  FW_OPT_SIZE,     /* uint64_t bytes: 4096, 16k, 1m, 1g */
  FW_OPT_DURATION, /* uint64_t milliseconds: 250ms, 10s, 2m, 1h */
  FW_OPT_CHOICE    /* int: the index of the value in `choices` */
};

#define FW_OPT_STRING_MAX 1024

struct fw_option {
  const char *name; /* "max-body-bytes": --max-body-bytes, FLAGWIRE_MAX_BODY_BYTES */
  enum fw_option_type type;
  size_t offset;            /* where the value lives in the settings struct */
  const char *default_text; /* parsed like any other source */
  const char *help;
  uint64_t min, max;          /* for UINT, SIZE and DURATION */
  const char *const *choices; /* for CHOICE: NULL-terminated */
};

/* Fills `settings` from the sources above. `argv` holds only the options (no program or
 * command name). `--config PATH` or FLAGWIRE_CONFIG names the file, whose lines are
 * `name = value`, with `#` comments. `environ_lookup` is getenv in production.
 * On failure returns FW_EINVAL and writes one sentence naming the option and where its
 * value came from into `error`. Returns FW_ENOTFOUND when --help was asked for. */
FW_MUST_CHECK int fw_config_load(const struct fw_option *options, size_t count, void *settings,
                                 int argc, char **argv, const char *(*environ_lookup)(const char *),
                                 char *error, size_t error_len);

/* Prints one paragraph per option: flag, variable, default and help. */
void fw_config_print_help(FILE *out, const struct fw_option *options, size_t count);

#endif
