/* Prometheus metrics with lock-free updates.
 *
 * Every thread that updates metrics has its own block of slots and is the only writer
 * of that block, so an update is a plain relaxed load and store with no shared cache
 * line. Rendering sums the blocks. Registration takes a mutex and normally happens
 * before the loops start; updates and rendering may run on any thread. */
#ifndef FW_UTIL_METRICS_H
#define FW_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/common.h"

/* Threads that may update metrics, including the main and writer threads. */
#define FW_METRICS_MAX_THREADS 66
/* Slots per thread; a histogram takes one per bucket plus two. */
#define FW_METRICS_MAX_SLOTS 16384

/* A registered series; valid until fw_metrics_reset. */
struct fw_metric {
  uint32_t slot;
  uint32_t bucket_count; /* histograms only */
  const uint64_t *bounds;
};

/* Selects the calling thread's block; index 0 is used by threads that never call it. */
void fw_metrics_bind_thread(unsigned index);

/* Registers one series. `labels` is the inside of the braces (`route="/healthz"`) or
 * NULL; `help` and `name` must live for the program's life (string literals), `labels`
 * is copied. A second registration of the same name must use the same kind. Returns
 * FW_ETOOBIG when the slots are used up, FW_EINVAL for a kind conflict, FW_ENOMEM. */
FW_MUST_CHECK int fw_metrics_counter(const char *name, const char *help, const char *labels,
                                     struct fw_metric *out);
/* A counter whose series is left out of the exposition while it is zero: for tables of
 * series of which most stay empty, such as requests by route and status. */
FW_MUST_CHECK int fw_metrics_counter_sparse(const char *name, const char *help, const char *labels,
                                            struct fw_metric *out);
FW_MUST_CHECK int fw_metrics_gauge(const char *name, const char *help, const char *labels,
                                   struct fw_metric *out);
/* A histogram of integer observations. `bounds` (ascending, `count` of them, living for
 * the program's life) are upper bounds in the observation's unit; rendering multiplies
 * every bound and the sum by `render_scale` (1e-6 turns microseconds into seconds). */
FW_MUST_CHECK int fw_metrics_histogram(const char *name, const char *help, const char *labels,
                                       const uint64_t *bounds, size_t count, double render_scale,
                                       struct fw_metric *out);

/* Adds to a counter or gauge (a gauge may go down with a negative delta). */
void fw_metric_add(const struct fw_metric *metric, int64_t delta);
/* Records one observation in a histogram. */
void fw_metric_observe(const struct fw_metric *metric, uint64_t value);
/* The sum over all threads of a counter or gauge. */
int64_t fw_metric_value(const struct fw_metric *metric);

/* Appends the Prometheus text exposition (version 0.0.4) of every series. */
FW_MUST_CHECK int fw_metrics_render(struct fw_buf *out);

/* Forgets every series and zeroes every slot. For tests and for a restart in-process. */
void fw_metrics_reset(void);

#endif
