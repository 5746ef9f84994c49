/* Evaluation engine benchmark: evaluations per second on one thread, for four kinds of
 * flag, against contexts parsed beforehand (parsing is measured on its own line).
 *
 *   simple   two rules of equals/in conditions, on a 5-attribute context; the first rule
 *            fails on its second condition and the second rule holds
 *   rollout  a flag-level 50/30/20 rollout: one MurmurHash3 per evaluation
 *   regex    one "matches" rule on an email address
 *   segment  one rule naming a segment whose rule holds a two-condition test
 *
 * Each case cycles through CONTEXTS contexts (distinct targeting keys), runs for about
 * RUN_SECONDS seconds RUNS times, and reports the median rate of the runs.
 *
 * Usage: eval_bench [RUNS [RUN_SECONDS]]   (defaults 5 and 1) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/eval.h"

#define CONTEXTS 1024
#define BATCH 4096

static const char definition[] =
    "{\"key\":\"new-checkout\",\"name\":\"New checkout\",\"description\":\"\","
    "\"type\":\"string\",\"variants\":[{\"key\":\"on\",\"value\":\"on\"},"
    "{\"key\":\"off\",\"value\":\"off\"},{\"key\":\"a\",\"value\":\"A\"},"
    "{\"key\":\"b\",\"value\":\"B\"},{\"key\":\"c\",\"value\":\"C\"}],\"tags\":[],"
    "\"client_visible\":true,\"version\":1}";

static const char simple_rules[] =
    "[{\"conditions\":[{\"attribute\":\"plan\",\"operator\":\"equals\",\"value\":\"pro\"},"
    "{\"attribute\":\"country\",\"operator\":\"in\",\"value\":[\"us\",\"ca\",\"mx\"]}],"
    "\"variant\":\"a\"},"
    "{\"conditions\":[{\"attribute\":\"country\",\"operator\":\"in\",\"value\":[\"fr\",\"de\","
    "\"it\",\"es\"]},{\"attribute\":\"beta\",\"operator\":\"equals\",\"value\":true}],"
    "\"variant\":\"b\"}]";

static const char regex_rules[] =
    "[{\"conditions\":[{\"attribute\":\"email\",\"operator\":\"matches\",\"value\":"
    "\"^[a-z0-9.]+@(example|test)\\\\.(com|org)$\"}],\"variant\":\"a\"}]";

static const char segment_rules[] = "[{\"conditions\":[{\"segment\":\"beta-testers\"}],"
                                    "\"variant\":\"b\"}]";

static const char segment_definition[] =
    "[{\"conditions\":[{\"attribute\":\"beta\",\"operator\":\"equals\",\"value\":true},"
    "{\"attribute\":\"country\",\"operator\":\"in\",\"value\":[\"fr\",\"de\"]}]}]";

static const char rollout[] =
    "[{\"variant\":\"a\",\"weight\":50},{\"variant\":\"b\",\"weight\":30},"
    "{\"variant\":\"c\",\"weight\":20}]";

static _Noreturn void die(const char *what, const char *detail) {
  fprintf(stderr, "eval_bench: %s: %s\n", what, detail);
  exit(1);
}

static struct fw_rawjson json(const char *text) {
  struct fw_rawjson value;
  if (fw_rawjson_validate(text, strlen(text), &value, NULL, NULL) != FW_OK)
    die("not JSON", text);
  return value;
}

static struct fw_eval_flag *compile(const char *rules, const char *flag_rollout) {
  char state[2048], error[256];
  int n = snprintf(state, sizeof state,
                   "{\"environment\":\"prod\",\"enabled\":true,\"on_variant\":\"on\","
                   "\"off_variant\":\"off\",\"rules\":%s,\"rollout\":%s,\"state_version\":1,"
                   "\"revision\":2}",
                   rules, flag_rollout);
  if (n < 0 || (size_t)n >= sizeof state)
    die("state too long", rules);
  struct fw_eval_flag *flag;
  if (fw_eval_compile_flag(json(definition), json(state), &flag, error, sizeof error) != FW_OK)
    die("flag does not compile", error);
  return flag;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Keeps results alive, so that no evaluation can be optimized away. */
static volatile size_t sink;

struct scenario {
  const char *name;
  const struct fw_eval_flag *flag; /* NULL: measure context parsing instead */
  const struct fw_eval_segment *const *segments;
  size_t segment_count;
};

/* Context i: 5 attributes, the targeting key among them. */
static int context_text(size_t i, char *out, size_t out_len) {
  static const char *const countries[] = {"us", "fr", "de", "jp"};
  return snprintf(out, out_len,
                  "{\"targetingKey\":\"user-%zu\",\"plan\":\"%s\",\"country\":\"%s\","
                  "\"beta\":%s,\"email\":\"user.%zu@example.com\"}",
                  i, i % 3 ? "pro" : "free", countries[i % 4], i % 2 ? "true" : "false", i);
}

static double run_once(const struct scenario *s, struct fw_eval_context *const *contexts,
                       double seconds) {
  size_t done = 0, next = 0;
  double start = now_seconds(), elapsed;
  do {
    for (size_t i = 0; i < BATCH; i++, next = (next + 1) % CONTEXTS) {
      if (s->flag) {
        struct fw_eval_result result;
        fw_eval(s->flag, s->segments, s->segment_count, contexts[next], &result);
        sink += (size_t)result.reason;
      } else {
        char text[256];
        int len = context_text(next, text, sizeof text);
        struct fw_eval_context *context;
        enum fw_eval_error code;
        char error[128];
        if (fw_eval_context_parse(text, (size_t)len, &context, &code, error, sizeof error))
          die("context refused", error);
        sink += (size_t)(fw_eval_context_targeting_key(context) != NULL);
        fw_eval_context_free(context);
      }
    }
    done += BATCH;
    elapsed = now_seconds() - start;
  } while (elapsed < seconds);
  return (double)done / elapsed;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 5;
  double seconds = argc > 2 ? atof(argv[2]) : 1.0;
  if (runs < 1 || runs > 99 || !(seconds > 0))
    die("usage", "eval_bench [RUNS (1-99) [RUN_SECONDS]]");

  static struct fw_eval_context *contexts[CONTEXTS];
  for (size_t i = 0; i < CONTEXTS; i++) {
    char text[256], error[128];
    int len = context_text(i, text, sizeof text);
    enum fw_eval_error code;
    if (fw_eval_context_parse(text, (size_t)len, &contexts[i], &code, error, sizeof error))
      die("context refused", error);
  }
  struct fw_eval_segment *segment;
  char error[256];
  if (fw_eval_compile_segment("beta-testers", json(segment_definition), &segment, error,
                              sizeof error))
    die("segment does not compile", error);
  const struct fw_eval_segment *segments[] = {segment};

  struct fw_eval_flag *simple = compile(simple_rules, "null");
  struct fw_eval_flag *split = compile("[]", rollout);
  struct fw_eval_flag *regex = compile(regex_rules, "null");
  struct fw_eval_flag *member = compile(segment_rules, "null");
  const struct scenario scenarios[] = {
      {"simple (2 rules, equals/in, 5 attributes)", simple, NULL, 0},
      {"rollout (50/30/20, bucketing)", split, NULL, 0},
      {"regex (1 rule, matches)", regex, NULL, 0},
      {"segment (1 rule, segment of 2 conditions)", member, segments, 1},
      {"context parse (5 attributes), for scale", NULL, NULL, 0},
  };

  printf("| case | median /s | min /s | max /s | ns per op (median) |\n");
  printf("| --- | ---: | ---: | ---: | ---: |\n");
  for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++) {
    double rates[99];
    run_once(&scenarios[s], contexts, seconds / 10); /* warm-up */
    for (int r = 0; r < runs; r++)
      rates[r] = run_once(&scenarios[s], contexts, seconds);
    qsort(rates, (size_t)runs, sizeof rates[0], compare_doubles);
    double median = rates[runs / 2];
    printf("| %s | %.0f | %.0f | %.0f | %.1f |\n", scenarios[s].name, median, rates[0],
           rates[runs - 1], 1e9 / median);
    fflush(stdout);
  }

  fw_eval_flag_free(simple);
  fw_eval_flag_free(split);
  fw_eval_flag_free(regex);
  fw_eval_flag_free(member);
  fw_eval_segment_free(segment);
  for (size_t i = 0; i < CONTEXTS; i++)
    fw_eval_context_free(contexts[i]);
  return 0;
}
