/* Streams that are cut off and come back: a client disconnected while changes keep coming
 * resumes with exactly what it missed (nothing lost, nothing twice) and ends equal to the
 * server; the same holds across a restart (the replay ring is preloaded from the change
 * log); a stopping server says goodbye; a stream past the cap is told to come back later
 * with a 200 (a browser gives up on any other status). Real binary, real sockets. */
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN "fw_adm_resume-test-token-0123456789"
#define FLAGS 4
#define STREAM_BUFFER (1024 * 1024)

static struct fwt_server server;
static char server_key[128];

/* ---- the management API ---- */

static json_t *call(const char *method, const char *path, const char *body) {
  struct fwt_response res;
  fwt_request(server.port, method, path, TOKEN, NULL, body, &res);
  if (res.status >= 300)
    fail_msg("%s %s: %d %s", method, path, res.status, res.body);
  json_error_t error;
  json_t *doc = json_loads(res.body, 0, &error);
  if (!doc)
    fail_msg("%s %s: not JSON: %s", method, path, res.body);
  fwt_response_free(&res);
  return doc;
}

/* A write that must succeed; returns the revision it made. */
static json_int_t write_revision(const char *method, const char *path, const char *body) {
  json_t *doc = call(method, path, body);
  json_int_t revision = json_integer_value(json_object_get(doc, "revision"));
  json_decref(doc);
  assert_true(revision > 0);
  return revision;
}

static json_int_t toggle(int flag) {
  char path[128];
  snprintf(path, sizeof path, "/v1/projects/shop/environments/prod/flags/f%d/toggle", flag);
  return write_revision("POST", path, NULL);
}

static json_int_t put_config(int value) {
  char body[64];
  snprintf(body, sizeof body, "{\"n\": %d.50}", value);
  return write_revision("PUT", "/v1/projects/shop/environments/prod/configs/limits", body);
}

static void start(const char *const *args) {
  const char *env[] = {"FLAGWIRE_ADMIN_TOKEN=" TOKEN, NULL};
  fwt_server_start(&server, args, env);
}

static int set_up(void **state) {
  (void)state;
  start(NULL);
  json_decref(call("POST", "/v1/projects", "{\"key\":\"shop\"}"));
  json_t *env = call("POST", "/v1/projects/shop/environments", "{\"key\":\"prod\"}");
  snprintf(server_key, sizeof server_key, "%s",
           json_string_value(json_object_get(env, "server_key")));
  json_decref(env);
  for (int i = 0; i < FLAGS; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"f%d\"}", i);
    json_decref(call("POST", "/v1/projects/shop/flags", body));
  }
  put_config(0);
  return 0;
}

static int tear_down(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  return 0;
}

/* ---- a Server-Sent Events client ---- */

struct sse {
  int fd;
  char *buf;
  size_t len;
  bool closed;
  bool saw_retry; /* a retry: field came */
};

struct sse_event {
  char name[32];
  bool has_id;
  json_int_t id;
  char data[64 * 1024];
};

/* Opens GET /v1/stream with the server key and `extra` header lines; checks the head. */
static void sse_open(struct sse *s, uint16_t port, const char *extra) {
  *s = (struct sse){.fd = fwt_connect(port), .buf = malloc(STREAM_BUFFER)};
  assert_non_null(s->buf);
  fwt_sendf(s->fd, "GET /v1/stream HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n%s\r\n",
            server_key, extra ? extra : "");
  uint64_t deadline = fwt_now_ms() + FWT_WAIT_MS;
  char *end;
  while (!(end = memmem(s->buf, s->len, "\r\n\r\n", 4))) {
    assert_true(fwt_now_ms() < deadline);
    ssize_t n = recv(s->fd, s->buf + s->len, STREAM_BUFFER - 1 - s->len, 0);
    assert_true(n > 0);
    s->len += (size_t)n;
  }
  s->buf[s->len] = '\0';
  assert_memory_equal(s->buf, "HTTP/1.1 200", 12);
  assert_non_null(strstr(s->buf, "text/event-stream"));
  size_t head = (size_t)(end + 4 - s->buf);
  memmove(s->buf, s->buf + head, s->len - head);
  s->len -= head;
}

/* Reads the next event (comments and retry: skipped) within `timeout_ms`; false when none
 * came or the stream ended. */
static bool sse_next(struct sse *s, struct sse_event *event, int timeout_ms) {
  uint64_t deadline = fwt_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *end = memmem(s->buf, s->len, "\n\n", 2);
    if (end) {
      *end = '\0';
      *event = (struct sse_event){0};
      bool any = false;
      for (char *line = s->buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
          *next++ = '\0';
        if (!strncmp(line, "event: ", 7)) {
          snprintf(event->name, sizeof event->name, "%s", line + 7);
          any = true;
        } else if (!strncmp(line, "id: ", 4)) {
          event->has_id = true;
          event->id = strtoll(line + 4, NULL, 10);
        } else if (!strncmp(line, "retry: ", 7)) {
          s->saw_retry = atoi(line + 7) > 0;
        } else if (!strncmp(line, "data: ", 6)) {
          snprintf(event->data, sizeof event->data, "%s", line + 6);
          any = true;
        }
        line = next;
      }
      size_t used = (size_t)(end + 2 - s->buf);
      memmove(s->buf, s->buf + used, s->len - used);
      s->len -= used;
      if (any)
        return true;
      continue;
    }
    uint64_t now = fwt_now_ms();
    if (s->closed || now >= deadline)
      return false;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
      return false;
    assert_true(s->len < STREAM_BUFFER - 1);
    ssize_t n = recv(s->fd, s->buf + s->len, STREAM_BUFFER - 1 - s->len, 0);
    if (n <= 0)
      s->closed = true;
    else
      s->len += (size_t)n;
  }
}

static void sse_close(struct sse *s) {
  close(s->fd);
  free(s->buf);
}

/* The exact text `"value":...}` of config "limits" in a snapshot or /v1/flags body. */
static void config_text(const char *body, char *out, size_t out_len) {
  const char *config = strstr(body, "\"key\":\"limits\"");
  assert_non_null(config);
  const char *value = strstr(config, "\"value\":");
  assert_non_null(value);
  snprintf(out, out_len, "%.*s", (int)(strchr(value, '}') - value + 1), value);
}

/* What a client holds: each flag's enabled and the config's value text. */
struct replica {
  bool enabled[FLAGS];
  char config[64];
  json_int_t cursor;
};

static void replica_apply(struct replica *r, const struct sse_event *event) {
  json_t *data = json_loads(event->data, JSON_DECODE_INT_AS_REAL, NULL);
  assert_non_null(data);
  if (!strcmp(event->name, "snapshot")) {
    json_t *flag;
    size_t i;
    json_array_foreach(json_object_get(data, "flags"), i, flag) {
      int index = atoi(json_string_value(json_object_get(flag, "key")) + 1);
      r->enabled[index] = json_is_true(json_object_get(flag, "enabled"));
    }
    config_text(event->data, r->config, sizeof r->config);
  } else if (!strcmp(event->name, "flag_updated")) {
    int index = atoi(json_string_value(json_object_get(data, "key")) + 1);
    r->enabled[index] = json_is_true(json_object_get(json_object_get(data, "flag"), "enabled"));
  } else if (!strcmp(event->name, "config_updated")) {
    /* The value's exact text, as the event carries it. */
    const char *value = strstr(event->data, "\"value\":");
    assert_non_null(value);
    snprintf(r->config, sizeof r->config, "%.*s", (int)(strchr(value, '}') - value + 1), value);
  } else {
    fail_msg("unexpected event %s", event->name);
  }
  json_decref(data);
  r->cursor = event->id;
}

/* Reads events up to revision `until`; each must be the next revision, exactly once. */
static void read_until(struct sse *s, struct replica *r, json_int_t until) {
  struct sse_event event;
  while (r->cursor < until) {
    if (!sse_next(s, &event, FWT_WAIT_MS))
      fail_msg("the stream stopped at revision %lld, before %lld", (long long)r->cursor,
               (long long)until);
    assert_true(event.has_id);
    if (event.id != r->cursor + 1)
      fail_msg("after revision %lld came %lld", (long long)r->cursor, (long long)event.id);
    replica_apply(r, &event);
  }
}

/* The server's state as a replica. */
static void server_state(struct replica *r) {
  struct fwt_response res;
  fwt_request(server.port, "GET", "/v1/flags", server_key, NULL, NULL, &res);
  assert_int_equal(res.status, 200);
  struct sse_event event = {.has_id = true};
  snprintf(event.name, sizeof event.name, "snapshot");
  snprintf(event.data, sizeof event.data, "%s", res.body);
  replica_apply(r, &event);
  fwt_response_free(&res);
}

static void assert_same(const struct replica *a, const struct replica *b) {
  for (int i = 0; i < FLAGS; i++)
    assert_int_equal(a->enabled[i], b->enabled[i]);
  assert_string_equal(a->config, b->config);
}

/* ---- tests ---- */

/* A client reads part of a burst, is cut off while the changes go on, and resumes from
 * the last revision it saw: it gets each missed revision once, in order, and ends equal to
 * the server, values byte for byte. */
static void cut_off_client_resumes_exactly(void **state) {
  (void)state;
  struct sse s;
  struct sse_event event;
  struct replica client = {0};
  sse_open(&s, server.port, NULL);
  assert_true(sse_next(&s, &event, FWT_WAIT_MS));
  assert_string_equal(event.name, "snapshot");
  replica_apply(&client, &event);

  json_int_t last = 0;
  for (int i = 0; i < 60; i++)
    last = i % 3 ? toggle(i % FLAGS) : put_config(i);
  read_until(&s, &client, last - 30);
  sse_close(&s); /* cut off with 30 revisions unread */
  for (int i = 60; i < 200; i++)
    last = i % 3 ? toggle(i % FLAGS) : put_config(i);

  char header[64];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", (long long)client.cursor);
  sse_open(&s, server.port, header);
  read_until(&s, &client, last);
  /* Nothing follows: no duplicate, no stray event. */
  assert_false(sse_next(&s, &event, 300));
  sse_close(&s);

  struct replica truth = {0};
  server_state(&truth);
  assert_same(&client, &truth);
}

/* A stopping server says goodbye with a delay to come back after; the restarted server
 * still replays exactly from a cursor before the restart. */
static void resume_across_a_restart_is_exact(void **state) {
  (void)state;
  struct sse s;
  struct sse_event event;
  struct replica client = {0};
  sse_open(&s, server.port, NULL);
  assert_true(sse_next(&s, &event, FWT_WAIT_MS));
  replica_apply(&client, &event);
  json_int_t last = 0;
  for (int i = 0; i < 20; i++)
    last = toggle(i % FLAGS);
  read_until(&s, &client, last - 10);

  kill(server.pid, SIGTERM);
  /* Unread events first, then goodbye, then the end of the stream. */
  bool goodbye = false;
  while (sse_next(&s, &event, FWT_WAIT_MS)) {
    if (!strcmp(event.name, "goodbye")) {
      assert_non_null(strstr(event.data, "\"reason\":\"shutdown\""));
      assert_non_null(strstr(event.data, "\"reconnect_after_ms\":"));
      assert_false(event.has_id);
      goodbye = true;
      break;
    }
  }
  assert_true(goodbye);
  sse_close(&s);
  assert_int_equal(fwt_server_wait(&server, FWT_WAIT_MS), 0);

  char data_arg[sizeof server.data_dir];
  memcpy(data_arg, server.data_dir, sizeof data_arg);
  struct fwt_server first = server;
  const char *args[] = {"--data", data_arg, NULL};
  start(args);
  for (int i = 0; i < 10; i++)
    last = toggle(i % FLAGS);

  char header[64];
  snprintf(header, sizeof header, "Last-Event-ID: %lld\r\n", (long long)client.cursor);
  sse_open(&s, server.port, header);
  read_until(&s, &client, last);
  assert_false(sse_next(&s, &event, 300));
  sse_close(&s);
  struct replica truth = {0};
  server_state(&truth);
  assert_same(&client, &truth);

  /* The resume was a replay, not a snapshot or a catch-up. */
  struct fwt_response res;
  fwt_request(server.port, "GET", "/metrics", NULL, NULL, NULL, &res);
  assert_non_null(strstr(res.body, "flagwire_stream_resumes_total{outcome=\"replay\"} 1"));
  fwt_response_free(&res);
  fwt_server_cleanup(&first);
}

/* Past the stream cap a stream still gets 200, a retry: and goodbye "overloaded". */
static void a_stream_past_the_cap_is_told_to_come_back(void **state) {
  (void)state;
  fwt_server_cleanup(&server);
  const char *args[] = {"--max-streams", "2", NULL};
  start(args);
  json_decref(call("POST", "/v1/projects", "{\"key\":\"shop\"}"));
  json_t *env = call("POST", "/v1/projects/shop/environments", "{\"key\":\"prod\"}");
  snprintf(server_key, sizeof server_key, "%s",
           json_string_value(json_object_get(env, "server_key")));
  json_decref(env);

  struct sse first, second, third;
  struct sse_event event;
  sse_open(&first, server.port, NULL);
  sse_open(&second, server.port, NULL);
  assert_true(sse_next(&first, &event, FWT_WAIT_MS));
  assert_string_equal(event.name, "snapshot");
  assert_true(sse_next(&second, &event, FWT_WAIT_MS));
  assert_string_equal(event.name, "snapshot");
  sse_open(&third, server.port, NULL);
  assert_true(sse_next(&third, &event, FWT_WAIT_MS));
  assert_string_equal(event.name, "goodbye");
  assert_true(third.saw_retry);
  assert_non_null(strstr(event.data, "\"reason\":\"overloaded\""));
  assert_false(sse_next(&third, &event, FWT_WAIT_MS));
  assert_true(third.closed);
  sse_close(&third);
  /* The first two go on. */
  json_decref(call("POST", "/v1/projects/shop/flags", "{\"key\":\"late\"}"));
  assert_true(sse_next(&first, &event, FWT_WAIT_MS));
  assert_string_equal(event.name, "flag_created");
  sse_close(&first);
  sse_close(&second);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(cut_off_client_resumes_exactly, set_up, tear_down),
      cmocka_unit_test_setup_teardown(resume_across_a_restart_is_exact, set_up, tear_down),
      cmocka_unit_test_setup_teardown(a_stream_past_the_cap_is_told_to_come_back, set_up,
                                      tear_down),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
