/* Clocks. Monotonic time drives timeouts; wall time is only for what we publish. */
#ifndef FW_UTIL_TIME_H
#define FW_UTIL_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds from an arbitrary origin; never goes back. Thread-safe. */
uint64_t fw_time_mono_ms(void);
/* Milliseconds since the Unix epoch (may jump with the system clock). Thread-safe. */
int64_t fw_time_wall_ms(void);
/* Writes the RFC 9110 IMF-fixdate for `unix_seconds` ("Sun, 06 Nov 1994 08:49:37 GMT")
 * into `out`, which must hold FW_HTTP_DATE_LEN + 1 bytes. */
#define FW_HTTP_DATE_LEN 29
void fw_time_http_date(int64_t unix_seconds, char *out);
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-23T09:11:40.123Z") into
 * `out`, which must hold FW_ISO_TIME_LEN + 1 bytes. */
#define FW_ISO_TIME_LEN 24
void fw_time_iso8601(int64_t unix_ms, char *out);

/* Milliseconds as decimal seconds with three decimals ("1700000000.123"): the time
 * format of the Flagsmith surfaces, whose header and stream must print it alike. */
void fw_time_seconds_text(int64_t unix_ms, char out[32]);

#endif
