#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "util/metrics.h"

static int reset(void **state) {
  (void)state;
  fw_metrics_reset();
  return 0;
}

static struct fw_metric shared_counter;

static void *bump_from_thread(void *arg) {
  fw_metrics_bind_thread((unsigned)(uintptr_t)arg);
  for (int i = 0; i < 100000; i++)
    fw_metric_add(&shared_counter, 1);
  return NULL;
}

static void counters_sum_across_threads(void **state) {
  (void)state;
  assert_int_equal(fw_metrics_counter("t_total", "help", NULL, &shared_counter), FW_OK);
  pthread_t threads[4];
  for (uintptr_t i = 0; i < 4; i++)
    pthread_create(&threads[i], NULL, bump_from_thread, (void *)(i + 1));
  for (int i = 0; i < 4; i++)
    pthread_join(threads[i], NULL);
  assert_int_equal(fw_metric_value(&shared_counter), 400000);
}

static void renders_prometheus_text(void **state) {
  (void)state;
  struct fw_metric open_http, open_stream, sparse_hit, sparse_miss, latency;
  static const uint64_t bounds[] = {100, 1000};
  assert_int_equal(fw_metrics_gauge("conns", "Open.", "kind=\"http\"", &open_http), FW_OK);
  assert_int_equal(fw_metrics_gauge("conns", "Open.", "kind=\"stream\"", &open_stream), FW_OK);
  assert_int_equal(fw_metrics_counter_sparse("reqs_total", "Reqs.", "status=\"200\"", &sparse_hit),
                   FW_OK);
  assert_int_equal(fw_metrics_counter_sparse("reqs_total", "Reqs.", "status=\"500\"", &sparse_miss),
                   FW_OK);
  assert_int_equal(fw_metrics_histogram("lat_seconds", "Latency.", NULL, bounds, 2, 1e-6, &latency),
                   FW_OK);
  fw_metric_add(&open_http, 3);
  fw_metric_add(&open_http, -1);
  fw_metric_add(&sparse_hit, 1);
  fw_metric_observe(&latency, 50);
  fw_metric_observe(&latency, 100);
  fw_metric_observe(&latency, 500);
  fw_metric_observe(&latency, 5000);

  struct fw_buf out;
  fw_buf_init(&out, 1 << 20);
  assert_int_equal(fw_metrics_render(&out), FW_OK);
  const char *expected = "# HELP conns Open.\n# TYPE conns gauge\n"
                         "conns{kind=\"http\"} 2\nconns{kind=\"stream\"} 0\n"
                         "# HELP reqs_total Reqs.\n# TYPE reqs_total counter\n"
                         "reqs_total{status=\"200\"} 1\n"
                         "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
                         "lat_seconds_bucket{le=\"0.0001\"} 2\n"
                         "lat_seconds_bucket{le=\"0.001\"} 3\n"
                         "lat_seconds_bucket{le=\"+Inf\"} 4\n"
                         "lat_seconds_sum 0.005650\n"
                         "lat_seconds_count 4\n";
  assert_string_equal(out.data, expected);
  fw_buf_free(&out);
}

static void kind_conflicts_are_refused(void **state) {
  (void)state;
  struct fw_metric m;
  assert_int_equal(fw_metrics_counter("same", "h", NULL, &m), FW_OK);
  assert_int_equal(fw_metrics_gauge("same", "h", "x=\"1\"", &m), FW_EINVAL);
}

static void slots_run_out_cleanly(void **state) {
  (void)state;
  struct fw_metric m;
  int rc = FW_OK;
  int registered = 0;
  while (rc == FW_OK && registered <= FW_METRICS_MAX_SLOTS) {
    rc = fw_metrics_counter("many_total", "h", NULL, &m);
    registered += rc == FW_OK;
  }
  assert_int_equal(rc, FW_ETOOBIG);
  assert_int_equal(registered, FW_METRICS_MAX_SLOTS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(counters_sum_across_threads, reset),
      cmocka_unit_test_setup(renders_prometheus_text, reset),
      cmocka_unit_test_setup(kind_conflicts_are_refused, reset),
      cmocka_unit_test_setup(slots_run_out_cleanly, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
