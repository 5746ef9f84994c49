#include "util/metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct series {
  struct series *next;
  char *labels;
  bool sparse;
  struct fw_metric metric;
};

struct family {
  struct family *next;
  const char *name;
  const char *help;
  enum kind kind;
  double render_scale;
  struct series *first, *last;
};

/* Each block is written by one thread only; the alignment keeps blocks on separate lines. */
struct block {
  _Alignas(64) _Atomic uint64_t slots[FW_METRICS_MAX_SLOTS];
};

static struct block blocks[FW_METRICS_MAX_THREADS];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families, *families_tail;
static uint32_t slots_used;
static _Thread_local unsigned thread_block;

void fw_metrics_bind_thread(unsigned index) {
  assert(index < FW_METRICS_MAX_THREADS);
  thread_block = index;
}

static int register_series(const char *name, const char *help, const char *labels, enum kind kind,
                           bool sparse, const uint64_t *bounds, size_t bucket_count,
                           double render_scale, struct fw_metric *out) {
  uint32_t needed = kind == KIND_HISTOGRAM ? (uint32_t)bucket_count + 2 : 1;
  int rc = FW_OK;
  pthread_mutex_lock(&registry_lock);
  struct family *fam = families;
  while (fam && strcmp(fam->name, name) != 0)
    fam = fam->next;
  struct series *s = NULL;
  if (fam && fam->kind != kind) {
    rc = FW_EINVAL;
  } else if (needed > FW_METRICS_MAX_SLOTS - slots_used) {
    rc = FW_ETOOBIG;
  } else if (!(s = calloc(1, sizeof *s)) || (labels && !(s->labels = strdup(labels)))) {
    rc = FW_ENOMEM;
  } else if (!fam) {
    fam = calloc(1, sizeof *fam);
    if (!fam) {
      rc = FW_ENOMEM;
    } else {
      fam->name = name;
      fam->help = help;
      fam->kind = kind;
      fam->render_scale = render_scale;
      if (families_tail)
        families_tail->next = fam;
      else
        families = fam;
      families_tail = fam;
    }
  }
  if (rc == FW_OK) {
    s->sparse = sparse;
    s->metric.slot = slots_used;
    s->metric.bucket_count = (uint32_t)bucket_count;
    s->metric.bounds = bounds;
    slots_used += needed;
    if (fam->last)
      fam->last->next = s;
    else
      fam->first = s;
    fam->last = s;
    *out = s->metric;
  } else if (s) {
    free(s->labels);
    free(s);
  }
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

int fw_metrics_counter(const char *name, const char *help, const char *labels,
                       struct fw_metric *out) {
  return register_series(name, help, labels, KIND_COUNTER, false, NULL, 0, 1.0, out);
}

int fw_metrics_counter_sparse(const char *name, const char *help, const char *labels,
                              struct fw_metric *out) {
  return register_series(name, help, labels, KIND_COUNTER, true, NULL, 0, 1.0, out);
}

int fw_metrics_gauge(const char *name, const char *help, const char *labels,
                     struct fw_metric *out) {
  return register_series(name, help, labels, KIND_GAUGE, false, NULL, 0, 1.0, out);
}

int fw_metrics_histogram(const char *name, const char *help, const char *labels,
                         const uint64_t *bounds, size_t count, double render_scale,
                         struct fw_metric *out) {
  return register_series(name, help, labels, KIND_HISTOGRAM, false, bounds, count, render_scale,
                         out);
}

/* Only this thread writes its block, so load-add-store needs no read-modify-write. */
static void bump(uint32_t slot, uint64_t delta) {
  _Atomic uint64_t *cell = &blocks[thread_block].slots[slot];
  atomic_store_explicit(cell, atomic_load_explicit(cell, memory_order_relaxed) + delta,
                        memory_order_relaxed);
}

void fw_metric_add(const struct fw_metric *metric, int64_t delta) {
  bump(metric->slot, (uint64_t)delta);
}

void fw_metric_observe(const struct fw_metric *metric, uint64_t value) {
  uint32_t bucket = 0;
  while (bucket < metric->bucket_count && value > metric->bounds[bucket])
    bucket++;
  /* Slots: one per finite bucket, then +Inf, then the sum. The count is the sum of the
   * buckets, so it is derived when rendering instead of stored. */
  bump(metric->slot + bucket, 1);
  bump(metric->slot + metric->bucket_count + 1, value);
}

static uint64_t total(uint32_t slot) {
  uint64_t sum = 0;
  for (unsigned t = 0; t < FW_METRICS_MAX_THREADS; t++)
    sum += atomic_load_explicit(&blocks[t].slots[slot], memory_order_relaxed);
  return sum;
}

int64_t fw_metric_value(const struct fw_metric *metric) { return (int64_t)total(metric->slot); }

static int render_name(struct fw_buf *out, const char *name, const char *suffix, const char *labels,
                       const char *extra_label) {
  int rc = fw_buf_appendf(out, "%s%s", name, suffix);
  if (!rc && (labels || extra_label))
    rc = fw_buf_appendf(out, "{%s%s%s}", labels ? labels : "", labels && extra_label ? "," : "",
                        extra_label ? extra_label : "");
  return rc;
}

static int render_histogram(struct fw_buf *out, const struct family *fam, const struct series *s) {
  const struct fw_metric *m = &s->metric;
  uint64_t cumulative = 0;
  char le[64];
  int rc = FW_OK;
  for (uint32_t b = 0; !rc && b <= m->bucket_count; b++) {
    cumulative += total(m->slot + b);
    if (b < m->bucket_count)
      snprintf(le, sizeof le, "le=\"%g\"", (double)m->bounds[b] * fam->render_scale);
    else
      snprintf(le, sizeof le, "le=\"+Inf\"");
    rc = render_name(out, fam->name, "_bucket", s->labels, le);
    if (!rc)
      rc = fw_buf_appendf(out, " %llu\n", (unsigned long long)cumulative);
  }
  if (!rc)
    rc = render_name(out, fam->name, "_sum", s->labels, NULL);
  if (!rc)
    rc = fw_buf_appendf(out, " %.6f\n",
                        (double)total(m->slot + m->bucket_count + 1) * fam->render_scale);
  if (!rc)
    rc = render_name(out, fam->name, "_count", s->labels, NULL);
  if (!rc)
    rc = fw_buf_appendf(out, " %llu\n", (unsigned long long)cumulative);
  return rc;
}

int fw_metrics_render(struct fw_buf *out) {
  static const char *const kind_names[] = {"counter", "gauge", "histogram"};
  int rc = FW_OK;
  pthread_mutex_lock(&registry_lock);
  for (const struct family *fam = families; !rc && fam; fam = fam->next) {
    rc = fw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                        kind_names[fam->kind]);
    for (const struct series *s = fam->first; !rc && s; s = s->next) {
      if (fam->kind == KIND_HISTOGRAM) {
        rc = render_histogram(out, fam, s);
      } else {
        int64_t value = (int64_t)total(s->metric.slot);
        if (s->sparse && value == 0)
          continue;
        rc = render_name(out, fam->name, "", s->labels, NULL);
        if (!rc)
          rc = fw_buf_appendf(out, " %lld\n", (long long)value);
      }
    }
  }
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

void fw_metrics_reset(void) {
  pthread_mutex_lock(&registry_lock);
  while (families) {
    struct family *fam = families;
    families = fam->next;
    while (fam->first) {
      struct series *s = fam->first;
      fam->first = s->next;
      free(s->labels);
      free(s);
    }
    free(fam);
  }
  families_tail = NULL;
  for (unsigned t = 0; t < FW_METRICS_MAX_THREADS; t++)
    for (uint32_t i = 0; i < slots_used; i++)
      atomic_store_explicit(&blocks[t].slots[i], 0, memory_order_relaxed);
  slots_used = 0;
  pthread_mutex_unlock(&registry_lock);
}
