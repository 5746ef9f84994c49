/* Structured logs: text for a person at a terminal, JSON lines for machines.
 * Every function here is thread-safe: a line is formatted on the calling thread and
 * written with one write(2), so lines from different loops never interleave. */
#ifndef FW_UTIL_LOG_H
#define FW_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/common.h"

enum fw_log_level { FW_LOG_DEBUG, FW_LOG_INFO, FW_LOG_WARN, FW_LOG_ERROR };
enum fw_log_format { FW_LOG_FORMAT_AUTO, FW_LOG_FORMAT_TEXT, FW_LOG_FORMAT_JSON };

/* One key/value of a log line; `str` is borrowed for the duration of the call. */
struct fw_log_field {
  const char *key;
  const char *str;
  long long num;
  bool is_num;
};
#define FW_LOG_STR(k, v) ((struct fw_log_field){.key = (k), .str = (v)})
#define FW_LOG_INT(k, v) ((struct fw_log_field){.key = (k), .num = (long long)(v), .is_num = true})

/* Directs logs to `path` (appending; NULL means standard error). AUTO picks text when
 * the destination is a terminal and JSON otherwise. Returns FW_EIO when the file cannot
 * be opened; logging then stays on standard error. Call before any thread starts. */
FW_MUST_CHECK int fw_log_setup(const char *path, enum fw_log_format format,
                               enum fw_log_level level);
/* Reopens the log file after rotation (SIGHUP). A no-op on standard error. */
FW_MUST_CHECK int fw_log_reopen(void);
/* Closes the log file, if one was opened. */
void fw_log_shutdown(void);

bool fw_log_enabled(enum fw_log_level level);
void fw_log_fields(enum fw_log_level level, const char *msg, const struct fw_log_field *fields,
                   size_t count);

#define fw_log(level, msg) fw_log_fields((level), (msg), NULL, 0)
#define fw_log_with(level, msg, ...)                                                               \
  fw_log_fields((level), (msg), (const struct fw_log_field[]){__VA_ARGS__},                        \
                sizeof((const struct fw_log_field[]){__VA_ARGS__}) / sizeof(struct fw_log_field))

/* Copies a request target into `out` with the values of the query parameters that carry
 * secrets or personal data (`key`, `context`) replaced by "REDACTED", so a URL can be
 * logged. Returns FW_ETOOBIG or FW_ENOMEM from the buffer. */
FW_MUST_CHECK int fw_log_redact_target(const char *target, size_t len, struct fw_buf *out);

#endif
