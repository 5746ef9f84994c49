/* Nothing acknowledged is lost: the server is killed with SIGKILL in the middle of a burst
 * of concurrent writes, restarted, and must have every write it answered, with revisions
 * that continue without a gap. The durability pragma in force is checked too. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_durability-test-token-0123456789"
#define WRITERS 16
#define MAX_ACKS 4096

/* What one client saw acknowledged. Written by its thread, read after the join. */
struct writer_log {
  int index;
  uint16_t port;
  int limit;                     /* writes to make at most; 0: MAX_ACKS */
  int acks;                      /* configs acknowledged: c<index>-0 .. c<index>-(acks-1) */
  long long revisions[MAX_ACKS]; /* the revision each acknowledgement carried */
};

static _Atomic bool stop_writing;

/* One keep-alive request; returns the status, or -1 when the connection failed. The
 * body goes to `body` (capped). No cmocka calls: this runs on client threads. */
static int raw_request(int fd, const char *request, char *body, size_t body_cap) {
  size_t len = strlen(request);
  if (send(fd, request, len, MSG_NOSIGNAL) != (ssize_t)len)
    return -1;
  char buf[8192];
  buf[0] = '\0';
  size_t got = 0;
  char *end = NULL;
  while (!(end = strstr(buf, "\r\n\r\n"))) {
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0)
      return -1;
    got += (size_t)n;
    buf[got] = '\0';
  }
  int status = atoi(buf + 9);
  const char *length = strcasestr(buf, "Content-Length: ");
  size_t body_len = length ? strtoul(length + 16, NULL, 10) : 0;
  size_t head_len = (size_t)(end - buf) + 4;
  while (got < head_len + body_len) {
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  buf[got] = '\0';
  snprintf(body, body_cap, "%s", buf + head_len);
  return status;
}

static int raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval timeout = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Writes configs c<index>-0, c<index>-1, ... until told to stop or the server dies. */
static void *write_configs(void *arg) {
  struct writer_log *log = arg;
  int fd = raw_connect(log->port);
  int limit = log->limit ? log->limit : MAX_ACKS;
  while (fd >= 0 && !atomic_load(&stop_writing) && log->acks < limit) {
    char value[64], request[512], body[2048];
    int value_len =
        snprintf(value, sizeof value, "{\"writer\":%d,\"n\":%d}", log->index, log->acks);
    snprintf(request, sizeof request,
             "PUT /v1/projects/shop/environments/prod/configs/c%d-%d HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n%s",
             log->index, log->acks, value_len, value);
    int status = raw_request(fd, request, body, sizeof body);
    if (status != 201)
      break;
    const char *revision = strstr(body, "\"revision\":");
    if (!revision)
      break;
    log->revisions[log->acks++] = atoll(revision + 11);
  }
  if (fd >= 0)
    close(fd);
  return NULL;
}

static void setup_project(uint16_t port) {
  struct fwt_response res;
  fwt_request(port, "POST", "/v1/projects", TOKEN, NULL, "{\"key\":\"shop\"}", &res);
  assert_int_equal(res.status, 201);
  fwt_response_free(&res);
  fwt_request(port, "POST", "/v1/projects/shop/environments", TOKEN, NULL, "{\"key\":\"prod\"}",
              &res);
  assert_int_equal(res.status, 201);
  fwt_response_free(&res);
}

/* Reads the change log and returns its last revision, failing on any gap. Each
 * revision's config key is recorded in `seen` (revision -> present). */
static long long read_change_log(uint16_t port, bool *seen, size_t seen_len) {
  long long expected = 1, after = 0;
  for (int page = 0; page < 10000; page++) {
    char path[160];
    snprintf(path, sizeof path, "/v1/projects/shop/environments/prod/changes?after=%lld&limit=1000",
             after);
    struct fwt_response res;
    fwt_request(port, "GET", path, TOKEN, NULL, NULL, &res);
    assert_int_equal(res.status, 200);
    const char *at = res.body;
    while ((at = strstr(at, "{\"revision\":"))) {
      long long revision = atoll(at + 12);
      if (revision != expected)
        fail_msg("the change log jumps from %lld to %lld", expected - 1, revision);
      if ((size_t)revision < seen_len)
        seen[revision] = true;
      expected++;
      at += 12;
    }
    const char *next = strstr(res.body, "\"next_after\":");
    bool more = next && next[13] != 'n';
    if (more)
      after = atoll(next + 13);
    fwt_response_free(&res);
    if (!more)
      return expected - 1;
  }
  fail_msg("the change log did not end");
  return 0;
}

static void acknowledged_writes_survive_sigkill(void **state) {
  (void)state;
  struct fwt_server server;
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, NULL, env);
  setup_project(server.port);

  static struct writer_log logs[WRITERS];
  pthread_t threads[WRITERS];
  atomic_store(&stop_writing, false);
  for (int i = 0; i < WRITERS; i++) {
    logs[i] = (struct writer_log){.index = i, .port = server.port};
    assert_int_equal(pthread_create(&threads[i], NULL, write_configs, &logs[i]), 0);
  }
  fwt_sleep_ms(1500);
  /* Killed mid-burst: some writes are in flight, unacknowledged. */
  assert_int_equal(fwt_server_signal_and_wait(&server, SIGKILL, FWT_WAIT_MS), 128 + SIGKILL);
  for (int i = 0; i < WRITERS; i++)
    pthread_join(threads[i], NULL);
  int acknowledged = 0;
  long long highest = 0;
  for (int i = 0; i < WRITERS; i++) {
    acknowledged += logs[i].acks;
    for (int a = 0; a < logs[i].acks; a++)
      if (logs[i].revisions[a] > highest)
        highest = logs[i].revisions[a];
  }
  print_message("acknowledged %d writes before SIGKILL, up to revision %lld\n", acknowledged,
                highest);
  assert_true(acknowledged > 0);

  struct fwt_server again;
  const char *args[] = {"--data", server.data_dir, NULL};
  fwt_server_start(&again, args, env);
  static bool seen[WRITERS * MAX_ACKS + 16];
  long long last = read_change_log(again.port, seen, sizeof seen / sizeof seen[0]);
  assert_true(last >= highest);
  for (int i = 0; i < WRITERS; i++) {
    for (int a = 0; a < logs[i].acks; a++) {
      assert_true(seen[logs[i].revisions[a]]);
      char path[128];
      snprintf(path, sizeof path, "/v1/projects/shop/environments/prod/configs/c%d-%d", i, a);
      struct fwt_response res;
      fwt_request(again.port, "GET", path, TOKEN, NULL, NULL, &res);
      if (res.status != 200)
        fail_msg("acknowledged config c%d-%d is gone after the restart", i, a);
      char value[64];
      snprintf(value, sizeof value, "\"value\":{\"writer\":%d,\"n\":%d}", i, a);
      assert_non_null(strstr(res.body, value));
      fwt_response_free(&res);
    }
  }
  /* The next write takes the next revision: no gap, no reuse. */
  struct fwt_response res;
  fwt_request(again.port, "PUT", "/v1/projects/shop/environments/prod/configs/after", TOKEN, NULL,
              "true", &res);
  assert_int_equal(res.status, 201);
  char expected[48];
  snprintf(expected, sizeof expected, "\"revision\":%lld,", last + 1);
  assert_non_null(strstr(res.body, expected));
  fwt_response_free(&res);
  fwt_server_cleanup(&again);
  fwt_server_cleanup(&server);
}

#define CHECKPOINT_WRITES_EACH 600

/* Thousands of writes later the write-ahead log is still small: it is copied back into
 * the database (by the store's checkpoint thread, not by the commits) and reused. */
static void the_write_ahead_log_is_checkpointed(void **state) {
  (void)state;
  struct fwt_server server;
  const char *args[] = {"--durability", "normal", NULL};
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, args, env);
  setup_project(server.port);
  static struct writer_log logs[WRITERS];
  pthread_t threads[WRITERS];
  atomic_store(&stop_writing, false);
  for (int i = 0; i < WRITERS; i++) {
    logs[i] = (struct writer_log){.index = i, .port = server.port, .limit = CHECKPOINT_WRITES_EACH};
    assert_int_equal(pthread_create(&threads[i], NULL, write_configs, &logs[i]), 0);
  }
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(logs[i].acks, CHECKPOINT_WRITES_EACH);
  }
  /* Without checkpoints these writes log some 18 000 pages (70 MiB); with them the log
   * stays under 4 000 pages and a few more. */
  char path[512];
  snprintf(path, sizeof path, "%s/flagwire.db-wal", server.data_dir);
  struct stat wal;
  assert_int_equal(stat(path, &wal), 0);
  print_message("write-ahead log after %d writes: %lld bytes\n", WRITERS * CHECKPOINT_WRITES_EACH,
                (long long)wal.st_size);
  assert_true(wal.st_size < 20 * 1024 * 1024);
  fwt_server_cleanup(&server);
}

/* Waits for the log of `server` to contain `text`. */
static bool log_says(const struct fwt_server *server, const char *text) {
  for (int attempt = 0; attempt < 100; attempt++) {
    char *log = fwt_server_log(server);
    bool found = strstr(log, text) != NULL;
    free(log);
    if (found)
      return true;
    fwt_sleep_ms(20);
  }
  return false;
}

static void durability_in_force_is_the_one_asked_for(void **state) {
  (void)state;
  const char *modes[] = {"full", "normal"};
  for (size_t i = 0; i < 2; i++) {
    struct fwt_server server;
    const char *args[] = {"--durability", modes[i], NULL};
    const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
    fwt_server_start(&server, args, env);
    /* The store reads the pragma back from SQLite and logs what is in force. */
    char expected[64];
    snprintf(expected, sizeof expected, "\"store_durability\":\"%s\"", modes[i]);
    assert_true(log_says(&server, expected));
    fwt_server_cleanup(&server);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(acknowledged_writes_survive_sigkill),
      cmocka_unit_test(durability_in_force_is_the_one_asked_for),
      cmocka_unit_test(the_write_ahead_log_is_checkpointed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
