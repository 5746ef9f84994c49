#include "util/time.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t fw_time_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t fw_time_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes `value` as exactly `width` decimal digits. */
static char *put_digits(char *out, int value, int width) {
  for (int i = width - 1; i >= 0; i--) {
    out[i] = (char)('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

static char *put_text(char *out, const char *text, size_t len) {
  memcpy(out, text, len);
  return out + len;
}

void fw_time_http_date(int64_t unix_seconds, char *out) {
  time_t t = (time_t)unix_seconds;
  struct tm tm;
  gmtime_r(&t, &tm);
  /* strftime's %a and %b follow the locale; HTTP wants the English names. */
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char *p = put_text(out, days[tm.tm_wday], 3);
  p = put_text(p, ", ", 2);
  p = put_digits(p, tm.tm_mday, 2);
  p = put_text(p, " ", 1);
  p = put_text(p, months[tm.tm_mon], 3);
  p = put_text(p, " ", 1);
  p = put_digits(p, tm.tm_year + 1900, 4);
  p = put_text(p, " ", 1);
  p = put_digits(p, tm.tm_hour, 2);
  p = put_text(p, ":", 1);
  p = put_digits(p, tm.tm_min, 2);
  p = put_text(p, ":", 1);
  p = put_digits(p, tm.tm_sec, 2);
  p = put_text(p, " GMT", 4);
  *p = '\0';
}

void fw_time_iso8601(int64_t unix_ms, char *out) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char *p = put_digits(out, tm.tm_year + 1900, 4);
  p = put_text(p, "-", 1);
  p = put_digits(p, tm.tm_mon + 1, 2);
  p = put_text(p, "-", 1);
  p = put_digits(p, tm.tm_mday, 2);
  p = put_text(p, "T", 1);
  p = put_digits(p, tm.tm_hour, 2);
  p = put_text(p, ":", 1);
  p = put_digits(p, tm.tm_min, 2);
  p = put_text(p, ":", 1);
  p = put_digits(p, tm.tm_sec, 2);
  p = put_text(p, ".", 1);
  p = put_digits(p, (int)(unix_ms % 1000), 3);
  p = put_text(p, "Z", 1);
  *p = '\0';
}

void fw_time_seconds_text(int64_t unix_ms, char out[32]) {
  snprintf(out, 32, "%" PRId64 ".%03" PRId64, unix_ms / 1000, unix_ms % 1000);
}
