#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/time.h"

/* A line longer than this is cut; a log line is no place for a payload. */
#define LOG_LINE_MAX 4096

static struct {
  char path[1024];
  int fd; /* the file's descriptor, or STDERR_FILENO */
  bool json;
  _Atomic int level; /* an enum fw_log_level */
} logger = {.fd = STDERR_FILENO, .level = FW_LOG_INFO};

static const char *level_name(enum fw_log_level level) {
  switch (level) {
  case FW_LOG_DEBUG:
    return "debug";
  case FW_LOG_INFO:
    return "info";
  case FW_LOG_WARN:
    return "warn";
  case FW_LOG_ERROR:
    return "error";
  }
  return "info";
}

static int open_log_file(const char *path) {
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int fw_log_setup(const char *path, enum fw_log_format format, enum fw_log_level level) {
  atomic_store(&logger.level, (int)level);
  int rc = FW_OK;
  if (path && *path) {
    int fd = open_log_file(path);
    if (fd < 0 || strlen(path) >= sizeof logger.path) {
      if (fd >= 0)
        close(fd);
      rc = FW_EIO;
    } else {
      snprintf(logger.path, sizeof logger.path, "%s", path);
      logger.fd = fd;
    }
  }
  if (format == FW_LOG_FORMAT_AUTO)
    logger.json = !isatty(logger.fd);
  else
    logger.json = format == FW_LOG_FORMAT_JSON;
  return rc;
}

int fw_log_reopen(void) {
  if (!logger.path[0])
    return FW_OK;
  int fd = open_log_file(logger.path);
  if (fd < 0)
    return FW_EIO;
  /* dup2 swaps the file under the same descriptor atomically, so threads that are
   * writing right now need no lock. */
  int rc = dup2(fd, logger.fd) < 0 ? FW_EIO : FW_OK;
  close(fd);
  return rc;
}

void fw_log_shutdown(void) {
  if (logger.path[0]) {
    close(logger.fd);
    logger.fd = STDERR_FILENO;
    logger.path[0] = '\0';
  }
}

bool fw_log_enabled(enum fw_log_level level) { return (int)level >= atomic_load(&logger.level); }

/* The append helpers below ignore FW_ETOOBIG on purpose: a line that reaches the cap is
 * written as far as it got. */
static void put(struct fw_buf *line, const char *text, size_t len) {
  if (fw_buf_append(line, text, len) != FW_OK)
    return;
}

static void put_json_string(struct fw_buf *line, const char *text) {
  put(line, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      put(line, esc, 2);
    } else if (*p < 0x20) {
      int n = snprintf(esc, sizeof esc, "\\u%04x", *p);
      put(line, esc, (size_t)n);
    } else {
      put(line, (const char *)p, 1);
    }
  }
  put(line, "\"", 1);
}

static bool needs_quotes(const char *text) {
  if (!*text)
    return true;
  for (const char *p = text; *p; p++)
    if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
      return true;
  return false;
}

static void put_text_value(struct fw_buf *line, const char *text) {
  if (needs_quotes(text))
    put_json_string(line, text);
  else
    put(line, text, strlen(text));
}

void fw_log_fields(enum fw_log_level level, const char *msg, const struct fw_log_field *fields,
                   size_t count) {
  if (!fw_log_enabled(level))
    return;
  char storage[LOG_LINE_MAX + 1];
  struct fw_buf line = {.data = storage, .cap = sizeof storage, .limit = LOG_LINE_MAX - 1};
  char ts[FW_ISO_TIME_LEN + 1];
  fw_time_iso8601(fw_time_wall_ms(), ts);
  char num[32];
  if (logger.json) {
    put(&line, "{\"ts\":\"", 7);
    put(&line, ts, FW_ISO_TIME_LEN);
    put(&line, "\",\"level\":\"", 11);
    put(&line, level_name(level), strlen(level_name(level)));
    put(&line, "\",\"msg\":", 8);
    put_json_string(&line, msg);
    for (size_t i = 0; i < count; i++) {
      put(&line, ",", 1);
      put_json_string(&line, fields[i].key);
      put(&line, ":", 1);
      if (fields[i].is_num) {
        int n = snprintf(num, sizeof num, "%lld", fields[i].num);
        put(&line, num, (size_t)n);
      } else {
        put_json_string(&line, fields[i].str ? fields[i].str : "");
      }
    }
    put(&line, "}", 1);
  } else {
    char head[64];
    int n = snprintf(head, sizeof head, "%s %-5s ", ts, level_name(level));
    put(&line, head, (size_t)n);
    put(&line, msg, strlen(msg));
    for (size_t i = 0; i < count; i++) {
      put(&line, " ", 1);
      put(&line, fields[i].key, strlen(fields[i].key));
      put(&line, "=", 1);
      if (fields[i].is_num) {
        n = snprintf(num, sizeof num, "%lld", fields[i].num);
        put(&line, num, (size_t)n);
      } else {
        put_text_value(&line, fields[i].str ? fields[i].str : "");
      }
    }
  }
  /* The limit left one byte for the newline even when the line was cut. */
  line.limit = LOG_LINE_MAX;
  put(&line, "\n", 1);
  size_t off = 0;
  while (off < line.len) {
    ssize_t w = write(logger.fd, line.data + off, line.len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
}

static bool is_secret_param(const char *name, size_t len) {
  return (len == 3 && memcmp(name, "key", 3) == 0) || (len == 7 && memcmp(name, "context", 7) == 0);
}

int fw_log_redact_target(const char *target, size_t len, struct fw_buf *out) {
  const char *query = memchr(target, '?', len);
  size_t path_len = query ? (size_t)(query - target) : len;
  int rc = fw_buf_append(out, target, path_len);
  if (rc || !query)
    return rc;
  const char *p = query + 1;
  const char *end = target + len;
  rc = fw_buf_append_char(out, '?');
  while (!rc && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *param_end = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(param_end - p));
    size_t name_len = (size_t)((eq ? eq : param_end) - p);
    if (eq && is_secret_param(p, name_len)) {
      rc = fw_buf_append(out, p, name_len + 1);
      if (!rc)
        rc = fw_buf_append_str(out, "REDACTED");
    } else {
      rc = fw_buf_append(out, p, (size_t)(param_end - p));
    }
    if (!rc && amp)
      rc = fw_buf_append_char(out, '&');
    p = param_end + 1;
  }
  return rc;
}
