/* bench/fanout/loadgen.c: holds N Server-Sent Events or WebSocket streams on one server over
 * loopback and times how long a change takes to reach each of them.
 *
 * The parent process forks one worker per --per-worker streams (a process may hold about
 * 20 000 open files here) and coordinates them over socketpairs; it never holds a stream.
 * Each worker runs one libuv loop that opens its streams, parses every byte they send, and
 * notes the CLOCK_MONOTONIC time at which each stream received each change. The parent sends
 * the changes itself (one POST at a time, the clock read just before the request is sent),
 * asks every worker when its streams received it, and prints one line of results.
 *
 * Targets (--server), over Server-Sent Events (--transport sse, the default):
 *   flagwire  GET <stream path> (e.g. /v1/stream?key=fw_cli_...); a stream is up at its
 *             `snapshot`; a change is a `flag_updated` whose `id:` and data `"rev"` are the
 *             revision the toggle's answer names ("revision"); the trigger is
 *             POST <trigger path> with `Authorization: Bearer <token>`.
 *   nchan     GET <stream path> (e.g. /sub?id=ch); a stream is up at its 200 head; the trigger
 *             is POST <trigger path> (e.g. /pub?id=ch) of {"rev":k,...}, and the k-th change
 *             is the event whose data carries "rev":k.
 *
 * Over WebSocket (--transport ws; RFC 6455, docs/protocol.md section 6 for flagwire), the
 * stream path is the socket's (e.g. /v1/ws?key=fw_cli_..., /ws?id=ch). The client checks the
 * 101 answer and its Sec-WebSocket-Accept, masks what it sends, reassembles fragmented
 * messages, answers ping with pong and close with close. Each message is one JSON object,
 * read as it arrives for its top-level "type", "rev", "epoch", "reason",
 * "reconnect_after_ms" and "code" (nothing else of it is kept):
 *   flagwire  on `connected`, the stream sends `subscribe` to the channel `flags` (with
 *             `since` and `epoch` when it resumes); it is up at its `snapshot`, and a change
 *             is a `flag_updated` whose "rev" is the toggle's revision.
 *   nchan     a stream is up at its 101 head; a change is a text message carrying "rev":k.
 *
 * Modes (--mode):
 *   latency   connect every stream, measure server memory, then --toggles changes.
 *   storm     connect every stream, send SIGTERM to the first --pids process (the caller
 *             restarts the server on the same port), time until every stream is resumed on
 *             the new server (SSE: a 200 head on a new connection; WebSocket: `subscribed`
 *             on a new socket; either not followed by goodbye within a grace period), then
 *             --toggles changes to check nothing was lost.
 *
 * Output: one line on standard output, "result key=value ...". Diagnostics go to stderr.
 * Every wait is bounded in time and every buffer in size.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* --- limits ---------------------------------------------------------------------------- */

#define MAX_STREAMS 200000
#define MAX_WORKERS 64
#define MAX_TOGGLES 1000
#define MAX_PIDS 16
/* Open files a worker keeps beyond its streams (loop, control socket, stdio). */
#define FD_RESERVE 32
/* The part of a line we keep: enough for every field we read; the rest is counted, not kept. */
#define LINE_KEEP 512
/* The part of an event's data we keep: "rev", "epoch", "reason", "reconnect_after_ms" all
 * sit near its start. */
#define DATA_KEEP 384
#define EVENT_KEEP 24
#define ID_KEEP 40
#define REQUEST_MAX 4096
#define PATH_MAX_LEN 2048
/* A response to the trigger is small; anything larger is an error. */
#define TRIGGER_RESPONSE_MAX 65536
/* Consecutive failed attempts after which a stream gives up. */
#define MAX_ATTEMPTS 100
/* Backoff after a refused or broken connection: short, jittered. */
#define FAILURE_BACKOFF_MIN_MS 50
#define FAILURE_BACKOFF_SPAN_MS 200
/* After an answer other than 200. */
#define HTTP_ERROR_BACKOFF_MS 1000
/* A goodbye's reconnect_after_ms is honoured up to this. */
#define MAX_RECONNECT_AFTER_MS 60000
/* Storm: every stream must stay resumed this long before the storm counts as over. */
#define STORM_GRACE_MS 1000
#define STORM_DEADLINE_MS 60000
/* Time a worker or the parent waits for the other side of the control channel, besides
 * the phase's own deadline. */
#define CONTROL_SLACK_MS 15000
/* WebSocket: the longest control frame payload (RFC 6455 section 5.5), the key's random
 * bytes, and the longest top-level key of a message worth reading ("reconnect_after_ms"). */
#define WS_CONTROL_MAX 125
#define WS_KEY_BYTES 16
#define JSON_KEY_KEEP 20
/* A few diagnostics per worker say what went wrong; thousands would say nothing more. */
#define NOTES_PER_KIND 3

/* --- options --------------------------------------------------------------------------- */

enum server_kind { SERVER_FLAGWIRE, SERVER_NCHAN };
enum run_mode { MODE_LATENCY, MODE_STORM };
enum transport { TRANSPORT_SSE, TRANSPORT_WS };

struct options {
  enum server_kind server;
  enum run_mode mode;
  enum transport transport;
  int port;
  const char *stream_path;
  const char *stream_token; /* optional: streams send Authorization: Bearer <it> */
  bool contexts; /* flagwire: each stream gets context {"targetingKey":"user-<i>"} (SSE: in the
                    URL; WebSocket: in its subscribe) */
  const char *trigger_path;
  const char *trigger_token; /* optional: the trigger sends Authorization: Bearer <it> */
  int streams;
  int per_worker;
  int toggles;
  int pause_ms;
  int timeout_ms;
  int connect_window; /* streams opening at once, per worker */
  int connect_deadline_s;
  int source_base; /* worker w connects from 127.0.0.(source_base + w) */
  pid_t pids[MAX_PIDS];
  int pid_count;
};

static struct options opt = {
    .server = SERVER_FLAGWIRE,
    .mode = MODE_LATENCY,
    .transport = TRANSPORT_SSE,
    .per_worker = 10000,
    .toggles = 50,
    .pause_ms = 100,
    .timeout_ms = 10000,
    .connect_window = 256,
    .connect_deadline_s = 120,
    .source_base = 1,
};

/* --- small helpers --------------------------------------------------------------------- */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

_Noreturn static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Reads an integer that follows `key` in `text` (e.g. `"rev":`), or returns false. */
static bool find_int(const char *text, const char *key, int64_t *out) {
  const char *at = strstr(text, key);
  if (!at)
    return false;
  at += strlen(key);
  while (*at == ' ')
    at++;
  if (!isdigit((unsigned char)*at) && *at != '-')
    return false;
  char *end;
  errno = 0;
  long long v = strtoll(at, &end, 10);
  if (errno || end == at)
    return false;
  *out = v;
  return true;
}

/* Copies the string value that follows `key` (e.g. `"epoch":"`) into out, or returns false. */
static bool find_string(const char *text, const char *key, char *out, size_t cap) {
  const char *at = strstr(text, key);
  if (!at)
    return false;
  at += strlen(key);
  size_t n = 0;
  while (at[n] && at[n] != '"' && n + 1 < cap)
    n++;
  if (at[n] != '"')
    return false;
  memcpy(out, at, n);
  out[n] = '\0';
  return true;
}

/* base64 (RFC 4648 section 4, with padding) or base64url (section 5, without). */
static void base64_encode(const void *data, size_t len, bool url, char *out, size_t cap) {
  static const char standard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char url_safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char *alphabet = url ? url_safe : standard;
  const unsigned char *in = data;
  size_t o = 0;
  for (size_t i = 0; i < len && o + 4 < cap; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    size_t rest = len - i;
    if (rest > 1)
      v |= (uint32_t)in[i + 1] << 8;
    if (rest > 2)
      v |= (uint32_t)in[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    if (rest > 1)
      out[o++] = alphabet[(v >> 6) & 63];
    else if (!url)
      out[o++] = '=';
    if (rest > 2)
      out[o++] = alphabet[v & 63];
    else if (!url)
      out[o++] = '=';
  }
  out[o] = '\0';
}

/* SHA-1 (RFC 3174) of one short input, for Sec-WebSocket-Accept only: it lets the generator
 * build with libuv alone. */
static uint32_t rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *block) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
  for (int i = 16; i < 80; i++)
    w[i] = rotl32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rotl32(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl32(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

static void sha1(const void *data, size_t len, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const unsigned char *in = data;
  size_t i = 0;
  for (; i + 64 <= len; i += 64)
    sha1_block(h, in + i);
  /* The rest, 0x80, zeros, and the length in bits: one block, or two when it does not fit. */
  unsigned char tail[128] = {0};
  size_t rest = len - i;
  memcpy(tail, in + i, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int j = 0; j < 8; j++)
    tail[tail_len - 1 - (size_t)j] = (unsigned char)(bits >> (8 * j));
  sha1_block(h, tail);
  if (tail_len == 128)
    sha1_block(h, tail + 64);
  for (int j = 0; j < 5; j++) {
    out[4 * j] = (unsigned char)(h[j] >> 24);
    out[4 * j + 1] = (unsigned char)(h[j] >> 16);
    out[4 * j + 2] = (unsigned char)(h[j] >> 8);
    out[4 * j + 3] = (unsigned char)h[j];
  }
}

/* The Sec-WebSocket-Accept that answers a Sec-WebSocket-Key (RFC 6455 section 4.2.2). */
static void ws_accept_for(const char *key, char out[29]) {
  char joined[128];
  int n = snprintf(joined, sizeof joined, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  unsigned char digest[20];
  sha1(joined, (size_t)n, digest);
  base64_encode(digest, sizeof digest, false, out, 29);
}

/* xorshift64*: jitter, WebSocket keys and masks (RFC 6455 asks them unpredictable to scripts
 * in a browser, which a benchmark has none of), seeded per worker. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t random_u64(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}
static uint32_t random_below(uint32_t bound) {
  uint64_t r = random_u64();
  return bound ? (uint32_t)(r >> 33) % bound : 0;
}

static int64_t failure_backoff_ms(void) {
  return FAILURE_BACKOFF_MIN_MS + random_below(FAILURE_BACKOFF_SPAN_MS);
}

/* --- messages between the parent and its workers --------------------------------------- */

enum msg_type {
  MSG_READY = 1,   /* worker: every stream is up (or has given up) */
  MSG_COLLECT,     /* parent: tell me when your streams got change `toggle`, sent at t0 */
  MSG_COLLECTED,   /* worker: they did (or the deadline passed); `samples` latencies follow */
  MSG_STORM,       /* parent: the server is about to be stopped; count resumes from now */
  MSG_STORM_ARMED, /* worker: counting */
  MSG_RESUMED,     /* worker: every stream is back (or the deadline passed) */
  MSG_QUIT,        /* parent: exit */
};

struct counters {
  uint64_t goodbye_shutdown, goodbye_overloaded, goodbye_other;
  uint64_t heartbeats, comments, other_events, resyncs;
  uint64_t connect_errors, http_errors, disconnects, reconnects;
  uint64_t gaps, id_mismatches, duplicates, given_up;
  uint64_t close_frames, protocol_errors, error_messages; /* WebSocket only */
};

struct wire_msg {
  uint32_t type;
  uint32_t toggle;
  int64_t t0_ns;       /* MSG_COLLECT: when the change was sent */
  int64_t deadline_ns; /* MSG_COLLECT, MSG_STORM: give up at */
  int64_t first_ns;    /* MSG_READY: first connect; MSG_RESUMED: first goodbye */
  int64_t last_ns;     /* MSG_READY: last stream up; MSG_RESUMED: last stream resumed */
  int64_t goodbye_ns;  /* MSG_RESUMED: last goodbye */
  int64_t base_rev_min, base_rev_max;
  uint32_t established, failed, received, missed, resumed, samples;
  struct counters counters;
};

static void add_counters(struct counters *to, const struct counters *from) {
  to->goodbye_shutdown += from->goodbye_shutdown;
  to->goodbye_overloaded += from->goodbye_overloaded;
  to->goodbye_other += from->goodbye_other;
  to->heartbeats += from->heartbeats;
  to->comments += from->comments;
  to->other_events += from->other_events;
  to->resyncs += from->resyncs;
  to->connect_errors += from->connect_errors;
  to->http_errors += from->http_errors;
  to->disconnects += from->disconnects;
  to->reconnects += from->reconnects;
  to->gaps += from->gaps;
  to->id_mismatches += from->id_mismatches;
  to->duplicates += from->duplicates;
  to->given_up += from->given_up;
  to->close_frames += from->close_frames;
  to->protocol_errors += from->protocol_errors;
  to->error_messages += from->error_messages;
}

/* =========================================================================================
 * Worker: one libuv loop holding a slice of the streams.
 * ======================================================================================= */

/* PHASE_BODY: the event stream (SSE); PHASE_FRAMES: WebSocket frames. */
enum stream_phase { PHASE_STATUS, PHASE_HEADERS, PHASE_BODY, PHASE_FRAMES };

/* What a WebSocket message is, by its top-level "type" (nchan's messages have none). */
enum ws_kind {
  WS_MSG_OTHER,
  WS_MSG_CONNECTED,
  WS_MSG_SUBSCRIBED,
  WS_MSG_SNAPSHOT,
  WS_MSG_FLAG_UPDATED,
  WS_MSG_GOODBYE,
  WS_MSG_ERROR,
};

enum json_state {
  JS_BEFORE,      /* before the opening brace */
  JS_KEY_START,   /* before a key (or the closing brace) */
  JS_KEY,         /* in a key */
  JS_COLON,       /* after a key */
  JS_VALUE_START, /* after the colon */
  JS_STRING,      /* in a top-level string value */
  JS_SCALAR,      /* in a top-level number, true, false or null */
  JS_NESTED,      /* in an object or array value: skipped, its depth counted */
  JS_AFTER_VALUE, /* after a value: a comma or the closing brace */
  JS_DONE,        /* after the closing brace */
  JS_BAD,         /* not a JSON object */
};

/* The top-level fields of one message, read byte by byte as its frames arrive, so that a
 * message costs the same few bytes whatever its size and wherever its fields are. */
struct json_scan {
  uint8_t state;
  uint8_t field; /* which wanted field the value being read is */
  bool escape;
  bool in_string; /* JS_NESTED */
  bool value_overflow;
  uint8_t key_len;
  uint8_t value_len;
  uint8_t kind;   /* enum ws_kind */
  uint8_t reason; /* 1 shutdown, 2 overloaded, 3 another reason */
  bool has_rev, has_revision, has_after;
  uint32_t depth; /* JS_NESTED */
  int64_t rev, revision, after_ms;
  char key[JSON_KEY_KEEP];
  char value[ID_KEEP];
  char epoch[ID_KEEP];
  char code[24]; /* an error's "code" */
};

/* A WebSocket stream's frame reader (server frames are never masked). */
struct ws_state {
  uint8_t head[10]; /* the frame header read so far */
  uint8_t head_len;
  uint8_t opcode;  /* of the frame being read */
  uint8_t message; /* opcode (text or binary) of the message in flight, 0 when none */
  bool fin;
  bool in_payload;
  uint8_t control_len;
  uint64_t left; /* payload bytes of the current frame still to come */
  uint8_t control[WS_CONTROL_MAX];
  struct json_scan json;
};

/* What a WebSocket handshake's answer showed (RFC 6455 section 4.2.2, point 5). */
enum {
  WS_HEAD_UPGRADE = 1,    /* Upgrade: websocket */
  WS_HEAD_CONNECTION = 2, /* Connection: Upgrade */
  WS_HEAD_ACCEPT = 4,     /* the Sec-WebSocket-Accept of this stream's key */
  WS_HEAD_REFUSED = 8,    /* an extension or subprotocol this client did not offer */
};

struct worker;

struct stream {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_timer_t retry_timer;
  struct worker *worker;
  uint32_t slot;  /* index in the worker's array */
  uint32_t index; /* index over every worker: names the stream's context */
  bool open;      /* tcp handle initialised and not closed */
  bool closing;
  bool established;   /* counted once: its first snapshot (flagwire) or 200/101 head (nchan) */
  bool resumed;       /* storm: holds a working stream on the restarted server */
  int64_t resumed_ns; /* storm: when it last became resumed */
  bool has_base;
  bool failed;
  uint16_t attempts; /* consecutive failed attempts */
  char *request;     /* the request being written, freed when the write ends */
  int64_t next_delay_ms;
  int64_t base_rev; /* revision of its first snapshot (flagwire), 0 (nchan) */
  int64_t last_rev; /* last change or snapshot seen: gaps are counted against it */
  char last_id[ID_KEEP];
  char epoch[ID_KEEP];
  /* response parsing */
  enum stream_phase phase;
  int status;
  /* WebSocket, per connection: the handshake's checks (WS_HEAD_*), whether this side's close
   * frame is sent (what follows is ignored), and the wait before reconnecting that a goodbye
   * or close frame set (-1: none, a broken connection waits the failure backoff). */
  uint8_t ws_head;
  bool ws_close_sent;
  int32_t ws_pending_delay_ms;
  unsigned char ws_key[WS_KEY_BYTES];
  /* The head's lines and the SSE body, or the WebSocket frames: never both at once. */
  union {
    struct {
      char line[LINE_KEEP];
      uint16_t line_len;
      bool line_truncated;
      char event[EVENT_KEEP];
      char data[DATA_KEEP];
      uint16_t data_len;
      bool data_seen;
    };
    struct ws_state ws;
  };
};

struct worker {
  uv_loop_t loop;
  uv_pipe_t control;
  unsigned char control_in[sizeof(struct wire_msg)];
  size_t control_in_len;
  struct sockaddr_in server_addr;
  struct sockaddr_in source_addr;
  struct stream *streams;
  uint32_t count;
  uint32_t first_index;
  /* connect phase */
  uint32_t next_to_open;
  uint32_t opening; /* streams started and neither up nor given up */
  uint32_t established;
  uint32_t failed;
  bool ready_sent;
  int64_t first_ns, last_ns;
  uv_timer_t connect_deadline;
  /* receipts[slot * (toggles + 1) + k]: when stream `slot` received change k (0: not yet) */
  int64_t *receipts;
  uint32_t *received_per_toggle;
  /* a MSG_COLLECT in progress */
  uint32_t collect_toggle;
  int64_t collect_t0;
  uv_timer_t collect_deadline;
  /* storm */
  bool storm;
  uint32_t resumed;
  int64_t last_resume_ns;
  int64_t first_goodbye_ns, last_goodbye_ns;
  int64_t storm_t0;
  uv_timer_t storm_grace;
  uv_timer_t storm_deadline;
  struct counters counters;
};

static struct worker W;
/* One buffer for every read: a read callback consumes its bytes before returning. */
static char read_buffer[65536];

static void stream_open(struct stream *s);
static void stream_drop(struct stream *s, int64_t reconnect_after_ms);
static void ws_head_line(struct stream *s, const char *line);
static void ws_head_done(struct stream *s);
static void ws_on_bytes(struct stream *s, const unsigned char *bytes, size_t n);

/* --- control channel (worker side) ----------------------------------------------------- */

static void on_control_written(uv_write_t *req, int status) {
  if (status < 0)
    note("worker: control write failed: %s", uv_strerror(status));
  free(req);
}

/* Sends msg, followed by `extra` bytes when extra_len > 0; the bytes are copied. */
static void control_send(const struct wire_msg *msg, const void *extra, size_t extra_len) {
  uv_write_t *req = malloc(sizeof *req + sizeof *msg + extra_len);
  if (!req)
    die("worker: out of memory");
  unsigned char *bytes = (unsigned char *)(req + 1);
  memcpy(bytes, msg, sizeof *msg);
  if (extra_len)
    memcpy(bytes + sizeof *msg, extra, extra_len);
  uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)(sizeof *msg + extra_len));
  int rc = uv_write(req, (uv_stream_t *)&W.control, &buf, 1, on_control_written);
  if (rc < 0)
    die("worker: control write: %s", uv_strerror(rc));
}

static void send_ready(void) {
  if (W.ready_sent)
    return;
  W.ready_sent = true;
  uv_timer_stop(&W.connect_deadline);
  struct wire_msg m = {.type = MSG_READY,
                       .first_ns = W.first_ns,
                       .last_ns = W.last_ns,
                       .established = W.established,
                       .failed = W.count - W.established,
                       .base_rev_min = INT64_MAX,
                       .base_rev_max = INT64_MIN,
                       .counters = W.counters};
  for (uint32_t i = 0; i < W.count; i++) {
    const struct stream *s = &W.streams[i];
    if (!s->has_base)
      continue;
    if (s->base_rev < m.base_rev_min)
      m.base_rev_min = s->base_rev;
    if (s->base_rev > m.base_rev_max)
      m.base_rev_max = s->base_rev;
  }
  control_send(&m, NULL, 0);
}

/* --- connect phase --------------------------------------------------------------------- */

/* Starts streams until --connect-window are opening at once. */
static void ramp_fill(void) {
  while (W.next_to_open < W.count && W.opening < (uint32_t)opt.connect_window) {
    struct stream *s = &W.streams[W.next_to_open++];
    W.opening++;
    if (!W.first_ns)
      W.first_ns = now_ns();
    stream_open(s);
  }
}

static void check_connect_done(void) {
  if (!W.ready_sent && W.next_to_open == W.count && W.opening == 0)
    send_ready();
}

static void stream_became_established(struct stream *s) {
  if (s->established)
    return;
  s->established = true;
  W.established++;
  W.opening--;
  W.last_ns = now_ns();
  ramp_fill();
  check_connect_done();
}

static void stream_gave_up(struct stream *s) {
  s->failed = true;
  W.counters.given_up++;
  if (!s->established) {
    W.failed++;
    W.opening--;
    ramp_fill();
    check_connect_done();
  }
}

static void on_connect_deadline(uv_timer_t *t) {
  (void)t;
  note("worker: connect deadline passed with %u of %u streams up", W.established, W.count);
  send_ready();
}

/* --- storm (worker side) --------------------------------------------------------------- */

static void send_resumed(void) {
  uv_timer_stop(&W.storm_grace);
  uv_timer_stop(&W.storm_deadline);
  if (!W.storm)
    return;
  W.storm = false;
  /* Each resumed stream's time since the storm began, for the distribution. */
  uint32_t *samples = malloc(sizeof *samples * (W.count ? W.count : 1));
  if (!samples)
    die("worker: out of memory");
  uint32_t n = 0;
  for (uint32_t i = 0; i < W.count; i++) {
    const struct stream *s = &W.streams[i];
    if (s->resumed)
      samples[n++] = (uint32_t)((s->resumed_ns - W.storm_t0) / 1000);
  }
  struct wire_msg m = {.type = MSG_RESUMED,
                       .first_ns = W.first_goodbye_ns,
                       .last_ns = W.last_resume_ns,
                       .goodbye_ns = W.last_goodbye_ns,
                       .resumed = W.resumed,
                       .established = W.established,
                       .samples = n,
                       .counters = W.counters};
  control_send(&m, samples, sizeof *samples * n);
  free(samples);
}

static void on_storm_grace(uv_timer_t *t) {
  (void)t;
  send_resumed();
}

static void on_storm_deadline(uv_timer_t *t) {
  (void)t;
  note("worker: storm deadline passed with %u of %u streams resumed", W.resumed, W.established);
  send_resumed();
}

static void stream_set_resumed(struct stream *s, bool resumed) {
  if (!W.storm || s->resumed == resumed || !s->established)
    return;
  s->resumed = resumed;
  if (resumed) {
    W.resumed++;
    int64_t t = now_ns();
    s->resumed_ns = t;
    if (t > W.last_resume_ns)
      W.last_resume_ns = t;
    /* Every stream is back: it counts once they all stay so for the grace period. */
    if (W.resumed == W.established)
      uv_timer_start(&W.storm_grace, on_storm_grace, STORM_GRACE_MS, 0);
  } else {
    W.resumed--;
    uv_timer_stop(&W.storm_grace);
  }
}

/* --- toggles (worker side) ------------------------------------------------------------- */

static void finish_collect(void) {
  uint32_t k = W.collect_toggle;
  if (!k)
    return;
  W.collect_toggle = 0;
  uv_timer_stop(&W.collect_deadline);
  uint32_t *samples = malloc(sizeof *samples * (W.count ? W.count : 1));
  if (!samples)
    die("worker: out of memory");
  uint32_t n = 0, expected = 0;
  size_t stride = (size_t)opt.toggles + 1;
  for (uint32_t i = 0; i < W.count; i++) {
    if (!W.streams[i].established)
      continue;
    expected++;
    int64_t at = W.receipts[i * stride + k];
    if (!at)
      continue;
    int64_t us = (at - W.collect_t0) / 1000;
    samples[n++] = us < 0 ? 0 : (us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
  }
  struct wire_msg m = {.type = MSG_COLLECTED,
                       .toggle = k,
                       .received = n,
                       .missed = expected - n,
                       .samples = n,
                       .counters = W.counters};
  control_send(&m, samples, sizeof *samples * n);
  free(samples);
}

static void check_collect_done(void) {
  uint32_t k = W.collect_toggle;
  if (k && W.received_per_toggle[k] >= W.established)
    finish_collect();
}

static void on_collect_deadline(uv_timer_t *t) {
  (void)t;
  finish_collect();
}

/* Stream s received the change with sequence number `seq` (its revision, or the "rev" of an
 * nchan message). */
static void record_change(struct stream *s, int64_t seq) {
  int64_t now = now_ns();
  if (s->last_rev && seq != s->last_rev + 1)
    W.counters.gaps++;
  if (seq > s->last_rev)
    s->last_rev = seq;
  int64_t k = seq - s->base_rev;
  if (k < 1 || k > opt.toggles) {
    W.counters.other_events++;
    return;
  }
  int64_t *slot = &W.receipts[(size_t)s->slot * ((size_t)opt.toggles + 1) + (size_t)k];
  if (*slot) {
    W.counters.duplicates++;
    return;
  }
  *slot = now;
  W.received_per_toggle[k]++;
  if ((uint32_t)k == W.collect_toggle)
    check_collect_done();
}

/* --- one stream: events ---------------------------------------------------------------- */

enum goodbye_reason { REASON_NONE, REASON_SHUTDOWN, REASON_OVERLOADED, REASON_OTHER };

static enum goodbye_reason goodbye_reason_of(const char *reason) {
  if (strcmp(reason, "shutdown") == 0)
    return REASON_SHUTDOWN;
  if (strcmp(reason, "overloaded") == 0)
    return REASON_OVERLOADED;
  return REASON_OTHER;
}

/* Counts a goodbye (either transport) and returns the wait before reconnecting. */
static int64_t count_goodbye(enum goodbye_reason reason, int64_t after_ms) {
  if (reason == REASON_SHUTDOWN)
    W.counters.goodbye_shutdown++;
  else if (reason == REASON_OVERLOADED)
    W.counters.goodbye_overloaded++;
  else
    W.counters.goodbye_other++;
  if (W.storm) {
    int64_t t = now_ns();
    if (!W.first_goodbye_ns)
      W.first_goodbye_ns = t;
    W.last_goodbye_ns = t;
  }
  if (after_ms < 0)
    after_ms = 0;
  if (after_ms > MAX_RECONNECT_AFTER_MS)
    after_ms = MAX_RECONNECT_AFTER_MS;
  return after_ms;
}

static void on_goodbye(struct stream *s) {
  char reason[32] = "";
  int64_t after_ms = 0;
  find_string(s->data, "\"reason\":\"", reason, sizeof reason);
  find_int(s->data, "\"reconnect_after_ms\":", &after_ms);
  /* The server closes the stream after goodbye; closing it here as well changes nothing. */
  stream_drop(s, count_goodbye(goodbye_reason_of(reason), after_ms));
}

/* A snapshot at revision `rev` (either transport): the stream's base, or a resync. */
static void snapshot_at(struct stream *s, int64_t rev) {
  if (!s->has_base) {
    s->has_base = true;
    s->base_rev = rev;
  } else {
    W.counters.resyncs++;
  }
  s->last_rev = rev;
  stream_became_established(s);
}

static void on_snapshot(struct stream *s) {
  char *end;
  int64_t rev = strtoll(s->last_id, &end, 10);
  find_string(s->data, "\"epoch\":\"", s->epoch, sizeof s->epoch);
  snapshot_at(s, rev);
}

static void on_event(struct stream *s) {
  const char *name = s->event[0] ? s->event : "message";
  if (strcmp(name, "goodbye") == 0) {
    on_goodbye(s);
    return;
  }
  if (opt.server == SERVER_FLAGWIRE && strcmp(name, "snapshot") == 0) {
    on_snapshot(s);
    return;
  }
  int64_t seq;
  if (!find_int(s->data, "\"rev\":", &seq)) {
    W.counters.other_events++;
    return;
  }
  if (opt.server == SERVER_FLAGWIRE) {
    char *end;
    long long id = strtoll(s->last_id, &end, 10);
    if (end == s->last_id || id != seq)
      W.counters.id_mismatches++;
  }
  record_change(s, seq);
}

/* --- one stream: the wire -------------------------------------------------------------- */

/* The value of header `name` if `line` is that header (leading blanks skipped), or NULL. */
static const char *header_value(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncasecmp(line, name, n) != 0 || line[n] != ':')
    return NULL;
  const char *v = line + n + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  return v;
}

static bool header_is(const char *line, const char *name, const char *value) {
  const char *v = header_value(line, name);
  return v && strncasecmp(v, value, strlen(value)) == 0;
}

/* A line of the response head. */
static void on_head_line(struct stream *s, const char *line, size_t len) {
  if (s->phase == PHASE_STATUS) {
    int status = 0;
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
      status = -1;
    s->status = status;
    s->phase = PHASE_HEADERS;
    return;
  }
  if (len > 0) {
    /* Neither server frames a stream in chunks; a chunked one would be misread, so refuse. */
    if (header_is(line, "Transfer-Encoding", "chunked")) {
      note("worker: a stream answered with chunked encoding, which this client does not read");
      s->attempts = MAX_ATTEMPTS;
      stream_drop(s, FAILURE_BACKOFF_MIN_MS);
      return;
    }
    if (opt.transport == TRANSPORT_WS)
      ws_head_line(s, line);
    return;
  }
  /* The blank line: the head is over. */
  if (opt.transport == TRANSPORT_WS) {
    ws_head_done(s);
    return;
  }
  if (s->status != 200) {
    W.counters.http_errors++;
    stream_drop(s, HTTP_ERROR_BACKOFF_MS);
    return;
  }
  s->phase = PHASE_BODY;
  s->attempts = 0;
  /* nchan has nothing more to say at connect; a flagwire stream resuming with a cursor may
   * have nothing either (its cursor is current). */
  if (opt.server == SERVER_NCHAN || s->has_base)
    stream_became_established(s);
  stream_set_resumed(s, true);
}

/* A line of the event stream (WHATWG HTML 9.2.6): a blank line dispatches the event. */
static void on_body_line(struct stream *s, const char *line, size_t len) {
  if (len == 0) {
    if (s->data_seen)
      on_event(s);
    s->event[0] = '\0';
    s->data_len = 0;
    s->data[0] = '\0';
    s->data_seen = false;
    return;
  }
  if (line[0] == ':') {
    if (strcmp(line, ": heartbeat") == 0)
      W.counters.heartbeats++;
    else
      W.counters.comments++;
    return;
  }
  const char *colon = memchr(line, ':', len);
  size_t name_len = colon ? (size_t)(colon - line) : len;
  const char *value = colon ? colon + 1 : line + len;
  if (*value == ' ')
    value++;
  size_t value_len = (size_t)(line + len - value);
  if (name_len == 5 && memcmp(line, "event", 5) == 0) {
    snprintf(s->event, sizeof s->event, "%.*s", (int)value_len, value);
  } else if (name_len == 4 && memcmp(line, "data", 4) == 0) {
    if (s->data_seen && s->data_len + 1u < DATA_KEEP)
      s->data[s->data_len++] = '\n';
    size_t room = DATA_KEEP - 1u - s->data_len;
    size_t take = value_len < room ? value_len : room;
    memcpy(s->data + s->data_len, value, take);
    s->data_len = (uint16_t)(s->data_len + take);
    s->data[s->data_len] = '\0';
    s->data_seen = true;
  } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
    snprintf(s->last_id, sizeof s->last_id, "%.*s", (int)value_len, value);
  }
  /* retry: and unknown fields: nothing to do (the backoff is the benchmark's own). */
}

static void on_line(struct stream *s) {
  size_t len = s->line_len;
  if (!s->line_truncated && len > 0 && s->line[len - 1] == '\r')
    len--;
  s->line[len] = '\0';
  /* Reset before the line is handled: the head's end hands this memory to the frame reader. */
  s->line_len = 0;
  s->line_truncated = false;
  if (s->phase == PHASE_BODY)
    on_body_line(s, s->line, len);
  else
    on_head_line(s, s->line, len);
}

/* Splits what arrived into lines (a line longer than LINE_KEEP keeps its start only); once a
 * WebSocket head is over, the rest are frames. */
static void on_bytes(struct stream *s, const char *bytes, size_t n) {
  size_t i = 0;
  while (i < n && !s->closing) {
    if (s->phase == PHASE_FRAMES) {
      ws_on_bytes(s, (const unsigned char *)bytes + i, n - i);
      return;
    }
    const char *nl = memchr(bytes + i, '\n', n - i);
    size_t take = nl ? (size_t)(nl - (bytes + i)) : n - i;
    size_t room = LINE_KEEP - 1u - s->line_len;
    size_t keep = take < room ? take : room;
    memcpy(s->line + s->line_len, bytes + i, keep);
    s->line_len = (uint16_t)(s->line_len + keep);
    if (keep < take)
      s->line_truncated = true;
    i += take;
    if (nl) {
      i++;
      on_line(s);
    }
  }
}

/* --- one stream: WebSocket ------------------------------------------------------------- */

enum ws_opcode {
  WS_CONTINUATION = 0x0,
  WS_TEXT = 0x1,
  WS_BINARY = 0x2,
  WS_CLOSE = 0x8,
  WS_PING = 0x9,
  WS_PONG = 0xA,
};

/* The server's close frame follows its goodbye; past this wait the stream stops waiting. */
#define WS_CLOSE_WAIT_MS 5000

enum json_field { F_NONE, F_TYPE, F_REV, F_REVISION, F_EPOCH, F_REASON, F_AFTER, F_CODE };

static enum json_field json_field_of(const char *key, size_t len) {
  static const struct {
    const char *name;
    enum json_field field;
  } fields[] = {{"type", F_TYPE},   {"rev", F_REV},       {"revision", F_REVISION},
                {"epoch", F_EPOCH}, {"reason", F_REASON}, {"reconnect_after_ms", F_AFTER},
                {"code", F_CODE}};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
    if (strlen(fields[i].name) == len && memcmp(fields[i].name, key, len) == 0)
      return fields[i].field;
  return F_NONE;
}

static enum ws_kind ws_kind_of(const char *type) {
  static const struct {
    const char *name;
    enum ws_kind kind;
  } kinds[] = {{"connected", WS_MSG_CONNECTED}, {"subscribed", WS_MSG_SUBSCRIBED},
               {"snapshot", WS_MSG_SNAPSHOT},   {"flag_updated", WS_MSG_FLAG_UPDATED},
               {"goodbye", WS_MSG_GOODBYE},     {"error", WS_MSG_ERROR}};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
    if (strcmp(kinds[i].name, type) == 0)
      return kinds[i].kind;
  return WS_MSG_OTHER;
}

static bool json_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool parse_int64(const char *text, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end)
    return false;
  *out = v;
  return true;
}

static void json_value_char(struct json_scan *j, unsigned char c) {
  if (j->value_len + 1u < sizeof j->value)
    j->value[j->value_len++] = (char)c;
  else
    j->value_overflow = true;
}

/* A top-level value is complete: keep it if its key is one this client reads. */
static void json_value_done(struct json_scan *j) {
  j->value[j->value_len] = '\0';
  bool whole = !j->value_overflow;
  switch ((enum json_field)j->field) {
  case F_TYPE:
    j->kind = whole ? (uint8_t)ws_kind_of(j->value) : WS_MSG_OTHER;
    break;
  case F_REV:
    j->has_rev = whole && parse_int64(j->value, &j->rev);
    break;
  case F_REVISION:
    j->has_revision = whole && parse_int64(j->value, &j->revision);
    break;
  case F_EPOCH:
    if (whole)
      memcpy(j->epoch, j->value, (size_t)j->value_len + 1);
    break;
  case F_REASON:
    j->reason = whole ? (uint8_t)goodbye_reason_of(j->value) : REASON_OTHER;
    break;
  case F_AFTER:
    j->has_after = whole && parse_int64(j->value, &j->after_ms);
    break;
  case F_CODE:
    snprintf(j->code, sizeof j->code, "%.*s", (int)sizeof j->code - 1, j->value);
    break;
  case F_NONE:
    break;
  }
  j->field = F_NONE;
}

/* Reads the next bytes of a text message as one JSON object (RFC 8259), keeping its wanted
 * top-level fields; nested values are skipped with their depth counted. */
static void json_feed(struct json_scan *j, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    switch ((enum json_state)j->state) {
    case JS_BEFORE:
      if (c == '{')
        j->state = JS_KEY_START;
      else if (!json_space(c))
        j->state = JS_BAD;
      break;
    case JS_KEY_START:
      if (c == '"') {
        j->state = JS_KEY;
        j->key_len = 0;
        j->escape = false;
      } else if (c == '}') {
        j->state = JS_DONE;
      } else if (!json_space(c)) {
        j->state = JS_BAD;
      }
      break;
    case JS_KEY:
      if (j->escape) {
        /* No key this client reads has an escape: a full key_len matches none. */
        j->escape = false;
        j->key_len = JSON_KEY_KEEP;
      } else if (c == '\\') {
        j->escape = true;
      } else if (c == '"') {
        j->field = j->key_len < JSON_KEY_KEEP ? (uint8_t)json_field_of(j->key, j->key_len)
                                              : (uint8_t)F_NONE;
        j->state = JS_COLON;
      } else if (j->key_len < JSON_KEY_KEEP) {
        j->key[j->key_len++] = (char)c;
      }
      break;
    case JS_COLON:
      if (c == ':')
        j->state = JS_VALUE_START;
      else if (!json_space(c))
        j->state = JS_BAD;
      break;
    case JS_VALUE_START:
      if (json_space(c))
        break;
      j->value_len = 0;
      j->value_overflow = false;
      j->escape = false;
      if (c == '"') {
        j->state = JS_STRING;
      } else if (c == '{' || c == '[') {
        j->state = JS_NESTED;
        j->depth = 1;
        j->in_string = false;
        j->field = F_NONE;
      } else {
        j->state = JS_SCALAR;
        json_value_char(j, c);
      }
      break;
    case JS_STRING:
      /* Escapes are kept as written: no value this client compares has one. */
      if (j->escape) {
        j->escape = false;
        json_value_char(j, c);
      } else if (c == '\\') {
        j->escape = true;
        json_value_char(j, c);
      } else if (c == '"') {
        json_value_done(j);
        j->state = JS_AFTER_VALUE;
      } else {
        json_value_char(j, c);
      }
      break;
    case JS_SCALAR:
      if (c == ',' || c == '}' || json_space(c)) {
        json_value_done(j);
        j->state = c == ',' ? JS_KEY_START : c == '}' ? JS_DONE : JS_AFTER_VALUE;
      } else {
        json_value_char(j, c);
      }
      break;
    case JS_NESTED:
      if (j->in_string) {
        if (j->escape)
          j->escape = false;
        else if (c == '\\')
          j->escape = true;
        else if (c == '"')
          j->in_string = false;
      } else if (c == '"') {
        j->in_string = true;
      } else if (c == '{' || c == '[') {
        j->depth++;
      } else if ((c == '}' || c == ']') && --j->depth == 0) {
        j->state = JS_AFTER_VALUE;
      }
      break;
    case JS_AFTER_VALUE:
      if (c == ',')
        j->state = JS_KEY_START;
      else if (c == '}')
        j->state = JS_DONE;
      else if (!json_space(c))
        j->state = JS_BAD;
      break;
    case JS_DONE:
      if (!json_space(c))
        j->state = JS_BAD;
      break;
    case JS_BAD:
      return;
    }
  }
}

/* One frame this client sends; it lives until written. */
struct ws_write {
  uv_write_t req;
  struct stream *stream;
  bool then_drop; /* a close frame: the connection ends once it is written */
  unsigned char bytes[];
};

/* The wait before reconnecting once this connection ends. */
static int64_t ws_drop_delay(const struct stream *s) {
  return s->ws_pending_delay_ms >= 0 ? s->ws_pending_delay_ms : failure_backoff_ms();
}

static void on_ws_written(uv_write_t *req, int status) {
  struct ws_write *w = req->data;
  struct stream *s = w->stream;
  bool then_drop = w->then_drop;
  free(w);
  /* Cancelled: the connection is already being closed. */
  if (status == UV_ECANCELED)
    return;
  if (status < 0 || then_drop)
    stream_drop(s, ws_drop_delay(s));
}

/* Sends one masked frame with FIN set (RFC 6455 section 5.2); nothing after a close frame. */
static void ws_send(struct stream *s, enum ws_opcode opcode, const void *payload, size_t len,
                    bool then_drop) {
  if (!s->open || s->closing || s->ws_close_sent)
    return;
  size_t head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  struct ws_write *w = malloc(sizeof *w + head + 4 + len);
  if (!w)
    die("worker: out of memory");
  unsigned char *b = w->bytes;
  b[0] = (unsigned char)(0x80 | opcode);
  if (len < 126) {
    b[1] = (unsigned char)(0x80 | len);
  } else if (len < 65536) {
    b[1] = 0x80 | 126;
    b[2] = (unsigned char)(len >> 8);
    b[3] = (unsigned char)len;
  } else {
    b[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
      b[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  }
  uint64_t r = random_u64();
  unsigned char *mask = b + head;
  for (int i = 0; i < 4; i++)
    mask[i] = (unsigned char)(r >> (8 * i + 16));
  const unsigned char *in = payload;
  for (size_t i = 0; i < len; i++)
    b[head + 4 + i] = in[i] ^ mask[i % 4];
  w->req.data = w;
  w->stream = s;
  w->then_drop = then_drop;
  if (opcode == WS_CLOSE)
    s->ws_close_sent = true;
  uv_buf_t buf = uv_buf_init((char *)b, (unsigned)(head + 4 + len));
  int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_ws_written);
  if (rc < 0) {
    free(w);
    stream_drop(s, ws_drop_delay(s));
  }
}

static void ws_close_with(struct stream *s, uint16_t code) {
  unsigned char payload[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  stream_set_resumed(s, false);
  ws_send(s, WS_CLOSE, payload, sizeof payload, true);
}

/* The server broke the protocol: close with `code` (RFC 6455 section 7.4.1). */
static void ws_fail(struct stream *s, uint16_t code, const char *why) {
  if (W.counters.protocol_errors++ < NOTES_PER_KIND)
    note("worker: stream %u: %s; closing with %u", s->index, why, code);
  ws_close_with(s, code);
}

/* flagwire: subscribe the socket to every flag, from its cursor when it has one. */
static void ws_subscribe(struct stream *s) {
  char msg[256];
  int n = snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"channels\":[\"flags\"]");
  if (s->has_base && s->epoch[0])
    n += snprintf(msg + n, sizeof msg - (size_t)n, ",\"since\":%" PRId64 ",\"epoch\":\"%s\"",
                  s->last_rev, s->epoch);
  if (opt.contexts)
    n += snprintf(msg + n, sizeof msg - (size_t)n, ",\"context\":{\"targetingKey\":\"user-%u\"}",
                  s->index);
  n += snprintf(msg + n, sizeof msg - (size_t)n, "}");
  if (n >= (int)sizeof msg)
    die("worker: the subscribe message does not fit in %zu bytes", sizeof msg);
  ws_send(s, WS_TEXT, msg, (size_t)n, false);
}

static void on_ws_close_wait(uv_timer_t *t) {
  struct stream *s = t->data;
  stream_drop(s, ws_drop_delay(s));
}

/* One whole text message. */
static void ws_on_message(struct stream *s) {
  struct json_scan *j = &s->ws.json;
  if (j->state != JS_DONE) {
    W.counters.other_events++;
    return;
  }
  if (opt.server == SERVER_NCHAN) {
    if (j->has_rev)
      record_change(s, j->rev);
    else
      W.counters.other_events++;
    return;
  }
  switch ((enum ws_kind)j->kind) {
  case WS_MSG_CONNECTED:
    /* A resuming stream keeps the epoch its cursor belongs to. */
    if (!s->epoch[0] && j->epoch[0])
      memcpy(s->epoch, j->epoch, sizeof s->epoch);
    ws_subscribe(s);
    break;
  case WS_MSG_SUBSCRIBED:
    /* Resuming with a current cursor, nothing follows: the stream is back. Were a snapshot
     * to follow, it would count as a resync. */
    if (s->has_base)
      stream_set_resumed(s, true);
    break;
  case WS_MSG_SNAPSHOT: {
    int64_t rev;
    if (j->has_rev)
      rev = j->rev;
    else if (j->has_revision)
      rev = j->revision;
    else {
      W.counters.other_events++;
      break;
    }
    if (j->epoch[0])
      memcpy(s->epoch, j->epoch, sizeof s->epoch);
    snapshot_at(s, rev);
    break;
  }
  case WS_MSG_FLAG_UPDATED:
    /* The change without its revision cannot be placed: the counterpart of an SSE event
     * whose id: and "rev" disagree. */
    if (j->has_rev)
      record_change(s, j->rev);
    else
      W.counters.id_mismatches++;
    break;
  case WS_MSG_GOODBYE:
    s->ws_pending_delay_ms = (int32_t)count_goodbye(
        j->reason ? (enum goodbye_reason)j->reason : REASON_OTHER, j->has_after ? j->after_ms : 0);
    stream_set_resumed(s, false);
    uv_timer_start(&s->retry_timer, on_ws_close_wait, WS_CLOSE_WAIT_MS, 0);
    break;
  case WS_MSG_ERROR:
    if (W.counters.error_messages++ < NOTES_PER_KIND)
      note("worker: stream %u: the server answered an error (code %s)", s->index,
           j->code[0] ? j->code : "none");
    break;
  case WS_MSG_OTHER:
    W.counters.other_events++;
    break;
  }
}

static void ws_on_close(struct stream *s) {
  W.counters.close_frames++;
  if (s->ws_pending_delay_ms < 0) {
    if (s->established)
      W.counters.disconnects++;
    s->ws_pending_delay_ms = (int32_t)failure_backoff_ms();
  }
  /* The close frame is answered with its code; 1005, 1006 and 1015 are never sent. */
  uint16_t code = 1000;
  if (s->ws.control_len >= 2) {
    uint16_t got = (uint16_t)(s->ws.control[0] << 8 | s->ws.control[1]);
    if (got >= 1000 && got != 1005 && got != 1006 && got != 1015)
      code = got;
  }
  ws_close_with(s, code);
}

/* A frame's payload has all arrived. */
static void ws_frame_end(struct stream *s) {
  struct ws_state *ws = &s->ws;
  ws->in_payload = false;
  switch ((enum ws_opcode)ws->opcode) {
  case WS_PING:
    W.counters.heartbeats++;
    ws_send(s, WS_PONG, ws->control, ws->control_len, false);
    return;
  case WS_PONG:
    return;
  case WS_CLOSE:
    ws_on_close(s);
    return;
  case WS_CONTINUATION:
  case WS_TEXT:
  case WS_BINARY:
    break;
  }
  if (!ws->fin)
    return;
  uint8_t message = ws->message;
  ws->message = 0;
  if (message == WS_TEXT)
    ws_on_message(s);
  else
    W.counters.other_events++;
}

/* The frame's header is complete: check it, and start its payload. */
static void ws_frame_start(struct stream *s) {
  struct ws_state *ws = &s->ws;
  const unsigned char *h = ws->head;
  uint64_t len = h[1] & 0x7F;
  if (len == 126) {
    len = (uint64_t)h[2] << 8 | h[3];
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | h[2 + i];
    if (len >> 63) {
      ws_fail(s, 1002, "a frame length has its top bit set");
      return;
    }
  }
  ws->head_len = 0;
  ws->opcode = h[0] & 0x0F;
  ws->fin = (h[0] & 0x80) != 0;
  ws->left = len;
  if (ws->opcode >= WS_CLOSE) {
    ws->control_len = 0;
  } else if (ws->opcode == WS_CONTINUATION) {
    if (!ws->message) {
      ws_fail(s, 1002, "a continuation frame without a message");
      return;
    }
  } else {
    if (ws->message) {
      ws_fail(s, 1002, "a new message inside a fragmented one");
      return;
    }
    ws->message = ws->opcode;
    if (ws->message == WS_TEXT)
      memset(&ws->json, 0, sizeof ws->json);
  }
  if (len == 0)
    ws_frame_end(s);
  else
    ws->in_payload = true;
}

/* The first two bytes of a header: what a server may send (RFC 6455 sections 5.2 and 5.5). */
static bool ws_head_valid(struct stream *s) {
  unsigned char b0 = s->ws.head[0], b1 = s->ws.head[1];
  unsigned opcode = b0 & 0x0F;
  if (b0 & 0x70)
    ws_fail(s, 1002, "a reserved bit is set (no extension was negotiated)");
  else if (b1 & 0x80)
    ws_fail(s, 1002, "a server frame is masked");
  else if ((opcode > WS_BINARY && opcode < WS_CLOSE) || opcode > WS_PONG)
    ws_fail(s, 1002, "a reserved opcode");
  else if (opcode >= WS_CLOSE && !(b0 & 0x80))
    ws_fail(s, 1002, "a fragmented control frame");
  else if (opcode >= WS_CLOSE && (b1 & 0x7F) > WS_CONTROL_MAX)
    ws_fail(s, 1002, "a control frame longer than 125 bytes");
  else
    return true;
  return false;
}

/* Frames as they arrive, split anywhere. */
static void ws_on_bytes(struct stream *s, const unsigned char *bytes, size_t n) {
  struct ws_state *ws = &s->ws;
  size_t i = 0;
  while (i < n && !s->closing && !s->ws_close_sent) {
    if (!ws->in_payload) {
      ws->head[ws->head_len++] = bytes[i++];
      if (ws->head_len == 2 && !ws_head_valid(s))
        return;
      if (ws->head_len < 2)
        continue;
      unsigned len7 = ws->head[1] & 0x7F;
      size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
      if (ws->head_len == need)
        ws_frame_start(s);
      continue;
    }
    size_t take = n - i;
    if (take > ws->left)
      take = (size_t)ws->left;
    if (ws->opcode >= WS_CLOSE) {
      memcpy(ws->control + ws->control_len, bytes + i, take);
      ws->control_len = (uint8_t)(ws->control_len + take);
    } else if (ws->message == WS_TEXT) {
      json_feed(&ws->json, bytes + i, take);
    }
    i += take;
    ws->left -= take;
    if (ws->left == 0)
      ws_frame_end(s);
  }
}

/* A header line of the handshake's answer. */
static void ws_head_line(struct stream *s, const char *line) {
  const char *v;
  if ((v = header_value(line, "Upgrade"))) {
    if (strcasecmp(v, "websocket") == 0)
      s->ws_head |= WS_HEAD_UPGRADE;
  } else if ((v = header_value(line, "Connection"))) {
    if (strcasestr(v, "upgrade"))
      s->ws_head |= WS_HEAD_CONNECTION;
  } else if ((v = header_value(line, "Sec-WebSocket-Accept"))) {
    char key[32], want[29];
    base64_encode(s->ws_key, sizeof s->ws_key, false, key, sizeof key);
    ws_accept_for(key, want);
    if (strcmp(v, want) == 0)
      s->ws_head |= WS_HEAD_ACCEPT;
  } else if (header_value(line, "Sec-WebSocket-Extensions") ||
             header_value(line, "Sec-WebSocket-Protocol")) {
    s->ws_head |= WS_HEAD_REFUSED;
  }
}

/* The handshake's answer is over: 101 and every check passed, or the stream retries. */
static void ws_head_done(struct stream *s) {
  if (s->status != 101) {
    static unsigned notes;
    if (notes++ < NOTES_PER_KIND)
      note("worker: a WebSocket handshake was answered %d, not 101", s->status);
    W.counters.http_errors++;
    stream_drop(s, HTTP_ERROR_BACKOFF_MS);
    return;
  }
  const uint8_t need = WS_HEAD_UPGRADE | WS_HEAD_CONNECTION | WS_HEAD_ACCEPT;
  if ((s->ws_head & need) != need || (s->ws_head & WS_HEAD_REFUSED)) {
    static unsigned notes;
    if (notes++ < NOTES_PER_KIND)
      note("worker: a WebSocket handshake failed:%s%s%s%s",
           s->ws_head & WS_HEAD_UPGRADE ? "" : " no Upgrade: websocket;",
           s->ws_head & WS_HEAD_CONNECTION ? "" : " no Connection: Upgrade;",
           s->ws_head & WS_HEAD_ACCEPT ? "" : " no or a wrong Sec-WebSocket-Accept;",
           s->ws_head & WS_HEAD_REFUSED ? " an extension or subprotocol not offered;" : "");
    W.counters.http_errors++;
    /* A server that answers so will answer so again. */
    s->attempts = MAX_ATTEMPTS;
    stream_drop(s, FAILURE_BACKOFF_MIN_MS);
    return;
  }
  s->phase = PHASE_FRAMES;
  memset(&s->ws, 0, sizeof s->ws);
  s->attempts = 0;
  /* nchan has nothing to say at connect; flagwire sends `connected`. */
  if (opt.server == SERVER_NCHAN) {
    stream_became_established(s);
    stream_set_resumed(s, true);
  }
}

/* --- one stream: connection ------------------------------------------------------------ */

static void on_retry_timer(uv_timer_t *t) {
  struct stream *s = t->data;
  W.counters.reconnects++;
  stream_open(s);
}

static void on_stream_closed(uv_handle_t *h) {
  struct stream *s = h->data;
  s->open = false;
  s->closing = false;
  if (s->failed)
    return;
  if (++s->attempts > MAX_ATTEMPTS) {
    stream_gave_up(s);
    return;
  }
  uv_timer_start(&s->retry_timer, on_retry_timer, (uint64_t)s->next_delay_ms, 0);
}

/* Closes the connection and comes back after reconnect_after_ms. */
static void stream_drop(struct stream *s, int64_t reconnect_after_ms) {
  if (!s->open || s->closing)
    return;
  s->closing = true;
  s->next_delay_ms = reconnect_after_ms;
  stream_set_resumed(s, false);
  uv_close((uv_handle_t *)&s->tcp, on_stream_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_stream_read(uv_stream_t *tcp, ssize_t nread, const uv_buf_t *buf) {
  struct stream *s = tcp->data;
  if (nread < 0) {
    /* After a WebSocket goodbye or close frame the end is expected, and its wait is set. */
    if (s->established && s->ws_pending_delay_ms < 0)
      W.counters.disconnects++;
    stream_drop(s, ws_drop_delay(s));
    return;
  }
  on_bytes(s, buf->base, (size_t)nread);
}

static void on_request_written(uv_write_t *req, int status) {
  struct stream *s = req->data;
  free(s->request);
  s->request = NULL;
  if (status < 0 && status != UV_ECANCELED) {
    W.counters.connect_errors++;
    stream_drop(s, failure_backoff_ms());
  }
}

/* Writes the WebSocket handshake into out, with a fresh key (RFC 6455 section 4.1). */
static int build_ws_request(struct stream *s, char *out, size_t cap) {
  for (size_t i = 0; i < sizeof s->ws_key; i += 8) {
    uint64_t r = random_u64();
    memcpy(s->ws_key + i, &r, sizeof s->ws_key - i < 8 ? sizeof s->ws_key - i : 8);
  }
  char key[32], auth[256] = "";
  base64_encode(s->ws_key, sizeof s->ws_key, false, key, sizeof key);
  if (opt.stream_token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", opt.stream_token);
  int len = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.stream_path, opt.port, key, auth);
  return len > 0 && (size_t)len < cap ? len : -1;
}

/* Writes the request into out: GET, the context when asked, the cursor when resuming. */
static int build_request(struct stream *s, char *out, size_t cap) {
  if (opt.transport == TRANSPORT_WS)
    return build_ws_request(s, out, cap);
  char path[PATH_MAX_LEN];
  int n = snprintf(path, sizeof path, "%s", opt.stream_path);
  char sep = strchr(opt.stream_path, '?') ? '&' : '?';
  if (opt.contexts) {
    char json[96], encoded[160];
    int jl = snprintf(json, sizeof json, "{\"targetingKey\":\"user-%u\"}", s->index);
    base64_encode(json, (size_t)jl, true, encoded, sizeof encoded);
    n += snprintf(path + n, sizeof path - (size_t)n, "%ccontext=%s", sep, encoded);
    sep = '&';
  }
  if (s->last_id[0] && s->epoch[0] && n < (int)sizeof path)
    n += snprintf(path + n, sizeof path - (size_t)n, "%cepoch=%s", sep, s->epoch);
  if (n >= (int)sizeof path)
    return -1;
  char auth[256] = "", cursor[64] = "";
  if (opt.stream_token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", opt.stream_token);
  if (s->last_id[0])
    snprintf(cursor, sizeof cursor, "Last-Event-ID: %s\r\n", s->last_id);
  int len = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s%s\r\n",
                     path, opt.port, auth, cursor);
  return len > 0 && (size_t)len < cap ? len : -1;
}

static void on_stream_connected(uv_connect_t *req, int status) {
  struct stream *s = req->data;
  if (status < 0) {
    if (status != UV_ECANCELED)
      W.counters.connect_errors++;
    stream_drop(s, failure_backoff_ms());
    return;
  }
  if (s->closing)
    return;
  char *request = malloc(REQUEST_MAX);
  if (!request)
    die("worker: out of memory");
  int len = build_request(s, request, REQUEST_MAX);
  if (len < 0)
    die("worker: the request does not fit in %d bytes", REQUEST_MAX);
  uv_buf_t buf = uv_buf_init(request, (unsigned)len);
  s->write_req.data = s;
  s->request = request;
  int rc = uv_write(&s->write_req, (uv_stream_t *)&s->tcp, &buf, 1, on_request_written);
  if (rc < 0) {
    free(request);
    s->request = NULL;
    W.counters.connect_errors++;
    stream_drop(s, failure_backoff_ms());
    return;
  }
  rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_stream_read);
  if (rc < 0)
    stream_drop(s, failure_backoff_ms());
}

/* Opens a connection from this worker's source address; port chosen at connect time. */
static void stream_open(struct stream *s) {
  s->phase = PHASE_STATUS;
  s->status = 0;
  s->line_len = 0;
  s->line_truncated = false;
  s->event[0] = '\0';
  s->data[0] = '\0';
  s->data_len = 0;
  s->data_seen = false;
  s->ws_head = 0;
  s->ws_close_sent = false;
  s->ws_pending_delay_ms = -1;
  int rc = uv_tcp_init_ex(&W.loop, &s->tcp, AF_INET);
  if (rc < 0)
    die("worker: uv_tcp_init_ex: %s", uv_strerror(rc));
  s->tcp.data = s;
  s->open = true;
  s->closing = false;
  uv_os_fd_t fd;
  int one = 1;
  /* Without IP_BIND_ADDRESS_NO_PORT a bind to port 0 reserves a port for every
   * destination; with it the port is picked at connect time, per destination. */
  if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&W.source_addr, 0);
  if (rc == 0) {
    s->connect_req.data = s;
    rc = uv_tcp_connect(&s->connect_req, &s->tcp, (const struct sockaddr *)&W.server_addr,
                        on_stream_connected);
  }
  if (rc < 0) {
    W.counters.connect_errors++;
    stream_drop(s, failure_backoff_ms());
  }
}

/* --- control channel: commands --------------------------------------------------------- */

static void on_command(const struct wire_msg *m) {
  switch (m->type) {
  case MSG_COLLECT: {
    if (m->toggle < 1 || m->toggle > (uint32_t)opt.toggles)
      die("worker: bad toggle %u", m->toggle);
    W.collect_toggle = m->toggle;
    W.collect_t0 = m->t0_ns;
    int64_t left_ms = (m->deadline_ns - now_ns()) / 1000000;
    uv_timer_start(&W.collect_deadline, on_collect_deadline, (uint64_t)(left_ms > 0 ? left_ms : 0),
                   0);
    check_collect_done();
    break;
  }
  case MSG_STORM: {
    W.storm = true;
    W.resumed = 0;
    W.last_resume_ns = 0;
    W.first_goodbye_ns = W.last_goodbye_ns = 0;
    W.storm_t0 = m->t0_ns;
    for (uint32_t i = 0; i < W.count; i++)
      W.streams[i].resumed = false;
    uv_timer_start(&W.storm_deadline, on_storm_deadline, STORM_DEADLINE_MS, 0);
    struct wire_msg ack = {.type = MSG_STORM_ARMED};
    control_send(&ack, NULL, 0);
    break;
  }
  case MSG_QUIT:
    /* Exiting closes every socket at once; the server sees them all end. */
    exit(0);
  default:
    die("worker: unknown command %u", m->type);
  }
}

static void on_control_read(uv_stream_t *pipe, ssize_t nread, const uv_buf_t *buf) {
  (void)pipe;
  if (nread < 0)
    exit(nread == UV_EOF ? 0 : 1); /* the parent has gone */
  size_t i = 0;
  while (i < (size_t)nread) {
    size_t want = sizeof W.control_in - W.control_in_len;
    size_t take = (size_t)nread - i < want ? (size_t)nread - i : want;
    memcpy(W.control_in + W.control_in_len, buf->base + i, take);
    W.control_in_len += take;
    i += take;
    if (W.control_in_len == sizeof W.control_in) {
      struct wire_msg m;
      memcpy(&m, W.control_in, sizeof m);
      W.control_in_len = 0;
      on_command(&m);
    }
  }
}

_Noreturn static void worker_main(int control_fd, uint32_t first_index, uint32_t count,
                                  int worker_no) {
  rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
  W.first_index = first_index;
  W.count = count;
  W.streams = calloc(count, sizeof *W.streams);
  size_t stride = (size_t)opt.toggles + 1;
  W.receipts = calloc((size_t)count * stride, sizeof *W.receipts);
  W.received_per_toggle = calloc(stride, sizeof *W.received_per_toggle);
  if (!W.streams || !W.receipts || !W.received_per_toggle)
    die("worker: out of memory");
  if (uv_loop_init(&W.loop) < 0)
    die("worker: uv_loop_init");
  uv_ip4_addr("127.0.0.1", opt.port, &W.server_addr);
  char source[32];
  snprintf(source, sizeof source, "127.0.0.%d", opt.source_base + worker_no);
  uv_ip4_addr(source, 0, &W.source_addr);
  for (uint32_t i = 0; i < count; i++) {
    struct stream *s = &W.streams[i];
    s->worker = &W;
    s->slot = i;
    s->index = first_index + i;
    uv_timer_init(&W.loop, &s->retry_timer);
    s->retry_timer.data = s;
  }
  uv_timer_init(&W.loop, &W.connect_deadline);
  uv_timer_init(&W.loop, &W.collect_deadline);
  uv_timer_init(&W.loop, &W.storm_grace);
  uv_timer_init(&W.loop, &W.storm_deadline);
  if (uv_pipe_init(&W.loop, &W.control, 0) < 0 || uv_pipe_open(&W.control, control_fd) < 0)
    die("worker: cannot open the control channel");
  uv_read_start((uv_stream_t *)&W.control, on_alloc, on_control_read);
  uv_timer_start(&W.connect_deadline, on_connect_deadline, (uint64_t)opt.connect_deadline_s * 1000,
                 0);
  ramp_fill();
  check_connect_done();
  uv_run(&W.loop, UV_RUN_DEFAULT);
  exit(0);
}

/* =========================================================================================
 * Parent: starts the workers, measures the server, sends the changes, sums up.
 * ======================================================================================= */

struct worker_proc {
  pid_t pid;
  int fd;
  uint32_t count;
};

static struct worker_proc workers[MAX_WORKERS];
static int worker_count;
/* Each worker's counters as of its last message (they only grow). */
static struct counters worker_counters[MAX_WORKERS];

/* Reads exactly len bytes from fd before deadline_ns, or returns false. */
static bool read_exact(int fd, void *buf, size_t len, int64_t deadline_ns) {
  size_t got = 0;
  while (got < len) {
    int64_t left_ms = (deadline_ns - now_ns()) / 1000000;
    if (left_ms <= 0)
      return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0)
      return false;
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    got += (size_t)n;
  }
  return true;
}

static bool write_all(int fd, const void *buf, size_t len) {
  size_t done = 0;
  for (int tries = 0; done < len && tries < 1000; tries++) {
    ssize_t n = write(fd, (const char *)buf + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += (size_t)n;
  }
  return done == len;
}

static void stop_workers(void) {
  struct wire_msg quit = {.type = MSG_QUIT};
  for (int w = 0; w < worker_count; w++)
    (void)write_all(workers[w].fd, &quit, sizeof quit);
  int64_t deadline = now_ns() + (int64_t)10 * 1000000000;
  for (int w = 0; w < worker_count; w++) {
    for (;;) {
      pid_t r = waitpid(workers[w].pid, NULL, WNOHANG);
      if (r == workers[w].pid || (r < 0 && errno != EINTR))
        break;
      if (now_ns() > deadline) {
        kill(workers[w].pid, SIGKILL);
        waitpid(workers[w].pid, NULL, 0);
        break;
      }
      sleep_ms(10);
    }
    close(workers[w].fd);
  }
  worker_count = 0;
}

_Noreturn static void parent_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  for (int w = 0; w < worker_count; w++)
    kill(workers[w].pid, SIGKILL);
  for (int w = 0; w < worker_count; w++)
    waitpid(workers[w].pid, NULL, 0);
  exit(1);
}

static void start_workers(void) {
  worker_count = (opt.streams + opt.per_worker - 1) / opt.per_worker;
  if (worker_count > MAX_WORKERS)
    die("too many workers: %d", worker_count);
  if (opt.source_base + worker_count > 254)
    die("--source-base leaves too few addresses");
  fflush(NULL);
  uint32_t next_index = 0;
  for (int w = 0; w < worker_count; w++) {
    uint32_t count = (uint32_t)opt.streams - next_index;
    if (count > (uint32_t)opt.per_worker)
      count = (uint32_t)opt.per_worker;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
      die("socketpair: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
      parent_fail("fork: %s", strerror(errno));
    if (pid == 0) {
      close(pair[0]);
      for (int o = 0; o < w; o++)
        close(workers[o].fd);
      worker_main(pair[1], next_index, count, w);
    }
    close(pair[1]);
    workers[w] = (struct worker_proc){.pid = pid, .fd = pair[0], .count = count};
    next_index += count;
  }
}

static void send_to_all(const struct wire_msg *m) {
  for (int w = 0; w < worker_count; w++)
    if (!write_all(workers[w].fd, m, sizeof *m))
      parent_fail("worker %d: control write failed", w);
}

static void receive(int w, struct wire_msg *m, uint32_t type, int64_t deadline_ns) {
  if (!read_exact(workers[w].fd, m, sizeof *m, deadline_ns))
    parent_fail("worker %d did not answer in time", w);
  if (m->type != type)
    parent_fail("worker %d answered %u, not %u", w, m->type, type);
  if (type != MSG_STORM_ARMED)
    worker_counters[w] = m->counters;
}

/* --- the server's memory --------------------------------------------------------------- */

/* Sums a "<field>: N kB" line of /proc/<pid>/<file> over every --pids process. */
static long long proc_kib(const char *file, const char *field) {
  long long total = 0;
  size_t flen = strlen(field);
  for (int i = 0; i < opt.pid_count; i++) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)opt.pids[i], file);
    FILE *f = fopen(path, "r");
    if (!f)
      return -1;
    for (int lines = 0; lines < 4096 && fgets(line, sizeof line, f); lines++) {
      if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
        total += strtoll(line + flen + 1, NULL, 10);
        break;
      }
    }
    fclose(f);
  }
  return total;
}

/* The kernel's TCP buffer memory, in pages ("TCP: ... mem N" of /proc/net/sockstat). */
static long long sockstat_tcp_pages(void) {
  FILE *f = fopen("/proc/net/sockstat", "r");
  if (!f)
    return -1;
  char line[512];
  long long pages = -1;
  for (int lines = 0; lines < 64 && fgets(line, sizeof line, f); lines++) {
    if (strncmp(line, "TCP:", 4) != 0)
      continue;
    const char *mem = strstr(line, " mem ");
    if (mem)
      pages = strtoll(mem + 5, NULL, 10);
    break;
  }
  fclose(f);
  return pages;
}

struct memory {
  long long rss_kib, pss_kib, sock_pages;
};

static struct memory measure_memory(void) {
  struct memory m = {-1, -1, sockstat_tcp_pages()};
  if (opt.pid_count) {
    m.rss_kib = proc_kib("status", "VmRSS");
    m.pss_kib = proc_kib("smaps_rollup", "Pss");
  }
  return m;
}

/* --- the trigger ----------------------------------------------------------------------- */

static int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads one HTTP response (Content-Length framed) into buf; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap, int64_t deadline_ns, const char **body) {
  size_t len = 0;
  char *head_end = NULL;
  long long content_length = -1;
  for (int reads = 0; reads < 10000; reads++) {
    if (head_end && content_length >= 0 &&
        (size_t)(len - (size_t)(head_end + 4 - buf)) >= (size_t)content_length)
      break;
    if (len + 1 >= cap)
      return -1;
    int64_t left_ms = (deadline_ns - now_ns()) / 1000000;
    if (left_ms <= 0)
      return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)left_ms) <= 0)
      return -1;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    if (!head_end && (head_end = strstr(buf, "\r\n\r\n"))) {
      const char *cl = strcasestr(buf, "\r\nContent-Length:");
      content_length = cl && cl < head_end ? strtoll(cl + 17, NULL, 10) : 0;
    }
  }
  if (!head_end)
    return -1;
  *body = head_end + 4;
  int status;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
    return -1;
  return status;
}

/* Sends change k. Returns the revision flagwire assigned (nchan: k), and the time just before
 * the request was sent. */
static int64_t trigger(int k, int64_t *t0_ns) {
  char body[128] = "";
  if (opt.server == SERVER_NCHAN)
    snprintf(body, sizeof body, "{\"rev\":%d,\"key\":\"kill\",\"value\":%s}", k,
             k % 2 ? "true" : "false");
  char auth[256] = "";
  if (opt.trigger_token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", opt.trigger_token);
  char request[REQUEST_MAX];
  int len =
      snprintf(request, sizeof request,
               "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Type: application/json\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
               opt.trigger_path, opt.port, auth, strlen(body), body);
  if (len < 0 || (size_t)len >= sizeof request)
    parent_fail("the trigger request is too long");
  int fd = connect_loopback(opt.port);
  if (fd < 0)
    parent_fail("trigger %d: connect: %s", k, strerror(errno));
  *t0_ns = now_ns();
  if (!write_all(fd, request, (size_t)len))
    parent_fail("trigger %d: write failed", k);
  static char response[TRIGGER_RESPONSE_MAX];
  const char *answer = NULL;
  int status = read_response(fd, response, sizeof response,
                             *t0_ns + (int64_t)opt.timeout_ms * 1000000, &answer);
  close(fd);
  if (status < 200 || status > 299)
    parent_fail("trigger %d answered %d: %.300s", k, status, answer ? answer : "");
  if (opt.server == SERVER_NCHAN)
    return k;
  int64_t revision;
  if (!find_int(answer, "\"revision\":", &revision))
    parent_fail("trigger %d: no revision in %.300s", k, answer);
  return revision;
}

/* --- latency samples ------------------------------------------------------------------- */

struct samples {
  uint32_t *v;
  size_t n, cap;
};

static int compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile, in milliseconds. */
static double percentile_ms(const struct samples *s, double p) {
  if (!s->n)
    return -1;
  size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > s->n)
    rank = s->n;
  return s->v[rank - 1] / 1000.0;
}

struct totals {
  uint64_t received, missed;
  struct samples answers; /* per toggle: send to the trigger's answer, in microseconds */
  struct samples firsts;  /* per toggle: send to its earliest receipt */
  struct samples lasts;   /* per toggle: send to its latest receipt */
};

/* One change: send it, then gather every worker's receipts of it. */
static void run_toggle(int k, int64_t base_rev, struct samples *all, struct totals *t) {
  int64_t t0;
  int64_t revision = trigger(k, &t0);
  t->answers.v[t->answers.n++] = (uint32_t)((now_ns() - t0) / 1000);
  size_t first_sample = all->n;
  if (opt.server == SERVER_FLAGWIRE && revision != base_rev + k)
    parent_fail("toggle %d got revision %" PRId64 ", expected %" PRId64
                " (did something else write to the environment?)",
                k, revision, base_rev + k);
  struct wire_msg ask = {.type = MSG_COLLECT,
                         .toggle = (uint32_t)k,
                         .t0_ns = t0,
                         .deadline_ns = t0 + (int64_t)opt.timeout_ms * 1000000};
  send_to_all(&ask);
  for (int w = 0; w < worker_count; w++) {
    struct wire_msg m;
    receive(w, &m, MSG_COLLECTED, ask.deadline_ns + (int64_t)CONTROL_SLACK_MS * 1000000);
    if (m.samples > workers[w].count || all->n + m.samples > all->cap)
      parent_fail("worker %d: too many samples", w);
    if (!read_exact(workers[w].fd, all->v + all->n, sizeof *all->v * m.samples,
                    ask.deadline_ns + (int64_t)CONTROL_SLACK_MS * 1000000))
      parent_fail("worker %d: samples cut short", w);
    all->n += m.samples;
    t->received += m.received;
    t->missed += m.missed;
  }
  if (all->n > first_sample) {
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t i = first_sample; i < all->n; i++) {
      lo = all->v[i] < lo ? all->v[i] : lo;
      hi = all->v[i] > hi ? all->v[i] : hi;
    }
    t->firsts.v[t->firsts.n++] = lo;
    t->lasts.v[t->lasts.n++] = hi;
  }
}

/* --- storm (parent side) --------------------------------------------------------------- */

struct storm_result {
  double resumed_ms, p50_ms, p99_ms;        /* every stream, half, 99 % back after SIGTERM */
  double first_goodbye_ms, last_goodbye_ms; /* goodbyes received after SIGTERM */
  uint32_t resumed, expected;
};

static struct storm_result run_storm(struct samples *resumes) {
  if (!opt.pid_count)
    parent_fail("--mode storm needs --pids (the server to stop)");
  struct wire_msg arm = {.type = MSG_STORM, .t0_ns = now_ns()};
  send_to_all(&arm);
  int64_t deadline = now_ns() + (int64_t)CONTROL_SLACK_MS * 1000000;
  for (int w = 0; w < worker_count; w++) {
    struct wire_msg ack;
    receive(w, &ack, MSG_STORM_ARMED, deadline);
  }
  int64_t t_kill = now_ns();
  if (kill(opt.pids[0], SIGTERM) < 0)
    parent_fail("kill %d: %s", (int)opt.pids[0], strerror(errno));
  struct storm_result r = {0};
  int64_t last = t_kill, first_goodbye = INT64_MAX, last_goodbye = 0;
  deadline = t_kill + (int64_t)(STORM_DEADLINE_MS + CONTROL_SLACK_MS) * 1000000;
  for (int w = 0; w < worker_count; w++) {
    struct wire_msg m;
    receive(w, &m, MSG_RESUMED, deadline);
    if (m.samples > workers[w].count || resumes->n + m.samples > resumes->cap)
      parent_fail("worker %d: too many resume times", w);
    if (!read_exact(workers[w].fd, resumes->v + resumes->n, sizeof *resumes->v * m.samples,
                    deadline))
      parent_fail("worker %d: resume times cut short", w);
    resumes->n += m.samples;
    r.resumed += m.resumed;
    r.expected += m.established;
    if (m.last_ns > last)
      last = m.last_ns;
    if (m.first_ns && m.first_ns < first_goodbye)
      first_goodbye = m.first_ns;
    if (m.goodbye_ns > last_goodbye)
      last_goodbye = m.goodbye_ns;
  }
  /* The workers counted from arm.t0_ns, a little before the signal. */
  int64_t shift_us = (t_kill - arm.t0_ns) / 1000;
  for (size_t i = 0; i < resumes->n; i++)
    resumes->v[i] = resumes->v[i] > shift_us ? (uint32_t)(resumes->v[i] - shift_us) : 0;
  qsort(resumes->v, resumes->n, sizeof *resumes->v, compare_u32);
  r.resumed_ms = (double)(last - t_kill) / 1e6;
  r.p50_ms = percentile_ms(resumes, 50);
  r.p99_ms = percentile_ms(resumes, 99);
  r.first_goodbye_ms = last_goodbye ? (double)(first_goodbye - t_kill) / 1e6 : -1;
  r.last_goodbye_ms = last_goodbye ? (double)(last_goodbye - t_kill) / 1e6 : -1;
  return r;
}

/* --- command line ---------------------------------------------------------------------- */

_Noreturn static void usage(void) {
  fputs("usage: loadgen --server flagwire|nchan --port PORT --streams N\n"
        "               --stream PATH --trigger PATH\n"
        "               [--transport sse|ws] [--mode latency|storm] [--stream-token T]\n"
        "               [--trigger-token T] [--contexts]\n"
        "               [--toggles 50] [--pause-ms 100] [--timeout-ms 10000] [--per-worker 10000]\n"
        "               [--connect-window 256] [--connect-deadline-s 120] [--source-base 1]\n"
        "               [--pids PID,PID,...]\n",
        stderr);
  exit(2);
}

static int int_arg(const char *name, const char *v, int lo, int hi) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi)
    die("%s must be an integer from %d to %d, not '%s'", name, lo, hi, v);
  return (int)x;
}

static void parse_pids(const char *list) {
  const char *p = list;
  while (*p && opt.pid_count < MAX_PIDS) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || pid <= 0)
      die("--pids: bad list '%s'", list);
    opt.pids[opt.pid_count++] = (pid_t)pid;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      die("--pids: bad list '%s'", list);
  }
  if (*p)
    die("--pids: at most %d processes", MAX_PIDS);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--contexts") == 0) {
      opt.contexts = true;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (strcmp(a, "--server") == 0) {
      if (strcmp(v, "flagwire") == 0)
        opt.server = SERVER_FLAGWIRE;
      else if (strcmp(v, "nchan") == 0)
        opt.server = SERVER_NCHAN;
      else
        usage();
    } else if (strcmp(a, "--mode") == 0) {
      if (strcmp(v, "latency") == 0)
        opt.mode = MODE_LATENCY;
      else if (strcmp(v, "storm") == 0)
        opt.mode = MODE_STORM;
      else
        usage();
    } else if (strcmp(a, "--transport") == 0) {
      if (strcmp(v, "sse") == 0)
        opt.transport = TRANSPORT_SSE;
      else if (strcmp(v, "ws") == 0)
        opt.transport = TRANSPORT_WS;
      else
        usage();
    } else if (strcmp(a, "--port") == 0)
      opt.port = int_arg(a, v, 1, 65535);
    else if (strcmp(a, "--stream") == 0)
      opt.stream_path = v;
    else if (strcmp(a, "--stream-token") == 0)
      opt.stream_token = v;
    else if (strcmp(a, "--trigger") == 0)
      opt.trigger_path = v;
    else if (strcmp(a, "--trigger-token") == 0)
      opt.trigger_token = v;
    else if (strcmp(a, "--streams") == 0)
      opt.streams = int_arg(a, v, 1, MAX_STREAMS);
    else if (strcmp(a, "--per-worker") == 0)
      opt.per_worker = int_arg(a, v, 1, MAX_STREAMS);
    else if (strcmp(a, "--toggles") == 0)
      opt.toggles = int_arg(a, v, 1, MAX_TOGGLES);
    else if (strcmp(a, "--pause-ms") == 0)
      opt.pause_ms = int_arg(a, v, 0, 60000);
    else if (strcmp(a, "--timeout-ms") == 0)
      opt.timeout_ms = int_arg(a, v, 1, 600000);
    else if (strcmp(a, "--connect-window") == 0)
      opt.connect_window = int_arg(a, v, 1, 100000);
    else if (strcmp(a, "--connect-deadline-s") == 0)
      opt.connect_deadline_s = int_arg(a, v, 1, 3600);
    else if (strcmp(a, "--source-base") == 0)
      opt.source_base = int_arg(a, v, 1, 253);
    else if (strcmp(a, "--pids") == 0)
      parse_pids(v);
    else
      usage();
  }
  if (!opt.port || !opt.stream_path || !opt.trigger_path || !opt.streams)
    usage();
  if (strlen(opt.stream_path) > PATH_MAX_LEN / 2 || strlen(opt.trigger_path) > PATH_MAX_LEN / 2)
    die("a path is longer than %d bytes", PATH_MAX_LEN / 2);
  if (opt.contexts && opt.server != SERVER_FLAGWIRE)
    die("--contexts is for flagwire");
  if ((size_t)opt.per_worker * ((size_t)opt.toggles + 1) > (size_t)40 * 1000 * 1000)
    die("--per-worker x --toggles is too large for the receipts table");
  if (opt.transport == TRANSPORT_WS) {
    /* The example of RFC 6455 section 1.3: a wrong digest would fail every handshake. */
    char accept[29];
    ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept);
    if (strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
      die("Sec-WebSocket-Accept self-check failed: %s", accept);
  }
}

/* Every stream is an open file: take the soft limit up to the hard one and check the slice. */
static void raise_open_file_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    die("getrlimit: %s", strerror(errno));
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    die("setrlimit: %s", strerror(errno));
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)opt.per_worker + FD_RESERVE > rl.rlim_cur)
    die("--per-worker %d does not fit the open-file limit %llu", opt.per_worker,
        (unsigned long long)rl.rlim_cur);
}

static double per_stream_bytes(long long before, long long after, long long unit, uint32_t n) {
  if (before < 0 || after < 0 || !n)
    return -1;
  return (double)(after - before) * (double)unit / n;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  raise_open_file_limit();
  signal(SIGPIPE, SIG_IGN);
  long page = sysconf(_SC_PAGESIZE);

  struct memory before = measure_memory();
  start_workers();

  /* Connect phase: every worker says when its streams are all up. */
  uint32_t established = 0, failed = 0;
  int64_t first = INT64_MAX, last = 0, base_min = INT64_MAX, base_max = INT64_MIN;
  int64_t deadline =
      now_ns() + ((int64_t)opt.connect_deadline_s * 1000 + CONTROL_SLACK_MS) * 1000000;
  for (int w = 0; w < worker_count; w++) {
    struct wire_msg m;
    receive(w, &m, MSG_READY, deadline);
    established += m.established;
    failed += m.failed;
    if (m.first_ns && m.first_ns < first)
      first = m.first_ns;
    if (m.last_ns > last)
      last = m.last_ns;
    if (m.base_rev_min < base_min)
      base_min = m.base_rev_min;
    if (m.base_rev_max > base_max)
      base_max = m.base_rev_max;
  }
  double connect_s = last > first ? (double)(last - first) / 1e9 : 0;
  if (opt.server == SERVER_NCHAN)
    base_min = base_max = 0;
  if (established && base_min != base_max)
    parent_fail("streams started at different revisions (%" PRId64 "..%" PRId64 ")", base_min,
                base_max);

  /* Let the server finish what the last connections started before reading its memory. */
  sleep_ms(500);
  struct memory after = measure_memory();

  struct storm_result storm = {0};
  struct samples resumes = {.cap = (size_t)opt.streams};
  resumes.v = malloc(sizeof *resumes.v * resumes.cap);
  if (!resumes.v)
    parent_fail("out of memory");
  if (opt.mode == MODE_STORM)
    storm = run_storm(&resumes);
  free(resumes.v);

  struct samples all = {.cap = (size_t)opt.streams * (size_t)opt.toggles};
  all.v = malloc(sizeof *all.v * (all.cap ? all.cap : 1));
  if (!all.v)
    parent_fail("out of memory");
  struct totals totals = {0};
  struct samples *per_toggle[] = {&totals.answers, &totals.firsts, &totals.lasts};
  for (size_t i = 0; i < sizeof per_toggle / sizeof *per_toggle; i++) {
    per_toggle[i]->cap = (size_t)opt.toggles;
    per_toggle[i]->v = calloc(per_toggle[i]->cap, sizeof *per_toggle[i]->v);
    if (!per_toggle[i]->v)
      parent_fail("out of memory");
  }
  for (int k = 1; k <= opt.toggles && established; k++) {
    run_toggle(k, base_min, &all, &totals);
    if (opt.pause_ms)
      sleep_ms(opt.pause_ms);
  }
  int workers_used = worker_count;
  stop_workers();
  qsort(all.v, all.n, sizeof *all.v, compare_u32);
  for (size_t i = 0; i < sizeof per_toggle / sizeof *per_toggle; i++)
    qsort(per_toggle[i]->v, per_toggle[i]->n, sizeof *per_toggle[i]->v, compare_u32);

  struct counters sum = {0};
  for (int w = 0; w < MAX_WORKERS; w++)
    add_counters(&sum, &worker_counters[w]);
  const struct counters *c = &sum;
  printf("result server=%s transport=%s mode=%s streams=%d workers=%d established=%u failed=%u "
         "connect_s=%.3f "
         "connect_per_s=%.0f rss_before_kib=%lld rss_after_kib=%lld rss_per_stream_b=%.0f "
         "pss_per_stream_b=%.0f sock_per_stream_b=%.0f toggles=%d receipts=%" PRIu64
         " missed=%" PRIu64 " gaps=%" PRIu64 " id_mismatches=%" PRIu64 " duplicates=%" PRIu64
         " p50_ms=%.3f p99_ms=%.3f max_ms=%.3f goodbye_shutdown=%" PRIu64
         " goodbye_overloaded=%" PRIu64 " goodbye_other=%" PRIu64 " resyncs=%" PRIu64
         " reconnects=%" PRIu64 " connect_errors=%" PRIu64 " http_errors=%" PRIu64
         " disconnects=%" PRIu64 " given_up=%" PRIu64 " heartbeats=%" PRIu64
         " close_frames=%" PRIu64 " protocol_errors=%" PRIu64 " error_messages=%" PRIu64,
         opt.server == SERVER_FLAGWIRE ? "flagwire" : "nchan",
         opt.transport == TRANSPORT_WS ? "ws" : "sse", opt.mode == MODE_STORM ? "storm" : "latency",
         opt.streams, workers_used, established, failed, connect_s,
         connect_s > 0 ? established / connect_s : 0, before.rss_kib, after.rss_kib,
         per_stream_bytes(before.rss_kib, after.rss_kib, 1024, established),
         per_stream_bytes(before.pss_kib, after.pss_kib, 1024, established),
         per_stream_bytes(before.sock_pages, after.sock_pages, page, established), opt.toggles,
         totals.received, totals.missed, c->gaps, c->id_mismatches, c->duplicates,
         percentile_ms(&all, 50), percentile_ms(&all, 99), all.n ? all.v[all.n - 1] / 1000.0 : -1,
         c->goodbye_shutdown, c->goodbye_overloaded, c->goodbye_other, c->resyncs, c->reconnects,
         c->connect_errors, c->http_errors, c->disconnects, c->given_up, c->heartbeats,
         c->close_frames, c->protocol_errors, c->error_messages);
  if (opt.mode == MODE_STORM)
    printf(" storm_ms=%.1f storm_p50_ms=%.1f storm_p99_ms=%.1f storm_first_goodbye_ms=%.1f"
           " storm_last_goodbye_ms=%.1f storm_resumed=%u storm_expected=%u",
           storm.resumed_ms, storm.p50_ms, storm.p99_ms, storm.first_goodbye_ms,
           storm.last_goodbye_ms, storm.resumed, storm.expected);
  /* Per toggle, medians: the trigger's answer, the first and the last stream to have it. */
  printf(" answer_p50_ms=%.3f answer_max_ms=%.3f first_p50_ms=%.3f last_p50_ms=%.3f",
         percentile_ms(&totals.answers, 50), percentile_ms(&totals.answers, 100),
         percentile_ms(&totals.firsts, 50), percentile_ms(&totals.lasts, 50));
  printf("\n");
  for (size_t i = 0; i < sizeof per_toggle / sizeof *per_toggle; i++)
    free(per_toggle[i]->v);
  free(all.v);
  return 0;
}
