/* The WebSocket codec: the examples of RFC 6455, every rule a client frame can break and
 * the close code it earns, UTF-8 checked as it arrives, the caps, the memory an idle
 * reader holds, the frames the server writes, and the opening handshake's key.
 *
 * Every byte stream is read whole and again in pieces of 1, 2, 3, 5, 7 and 64 bytes, and
 * must give the same events each way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net/websocket.h"
#include "util/buf.h"

/* The mask key of the RFC's examples. */
static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static const struct fw_ws_limits roomy = {.max_frame = 1 << 20, .max_message = 1 << 20};

/* ---- building client frames ---- */

enum length_form { LENGTH_SHORTEST, LENGTH_FORCE_16, LENGTH_FORCE_64 };

static void put_bytes(struct fw_buf *wire, const void *bytes, size_t len) {
  assert_int_equal(fw_buf_append(wire, bytes, len), FW_OK);
}

/* Appends a masked client frame whose first byte is `first` (FIN, RSV bits and opcode),
 * with its length in the given form. */
static void put_frame_form(struct fw_buf *wire, uint8_t first, const void *payload, size_t len,
                           enum length_form form) {
  uint8_t header[14];
  size_t n = 0;
  header[n++] = first;
  if (form == LENGTH_SHORTEST && len < 126) {
    header[n++] = (uint8_t)(0x80 | len);
  } else if (form != LENGTH_FORCE_64 && len <= 0xFFFF) {
    header[n++] = 0x80 | 126;
    header[n++] = (uint8_t)(len >> 8);
    header[n++] = (uint8_t)len;
  } else {
    header[n++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      header[n++] = (uint8_t)((uint64_t)len >> shift);
  }
  memcpy(header + n, test_mask, 4);
  n += 4;
  put_bytes(wire, header, n);
  const uint8_t *bytes = payload;
  for (size_t i = 0; i < len; i++) {
    uint8_t masked = (uint8_t)(bytes[i] ^ test_mask[i % 4]);
    put_bytes(wire, &masked, 1);
  }
}

static void put_frame(struct fw_buf *wire, uint8_t first, const void *payload, size_t len) {
  put_frame_form(wire, first, payload, len, LENGTH_SHORTEST);
}

static void put_text(struct fw_buf *wire, uint8_t first, const char *text) {
  put_frame(wire, first, text, strlen(text));
}

static void put_close(struct fw_buf *wire, unsigned code, const char *reason) {
  uint8_t payload[125] = {(uint8_t)(code >> 8), (uint8_t)code};
  size_t reason_len = strlen(reason);
  memcpy(payload + 2, reason, reason_len);
  put_frame(wire, 0x88, payload, 2 + reason_len);
}

static void wire_init(struct fw_buf *wire) { fw_buf_init(wire, 1 << 21); }

/* ---- reading ---- */

#define MAX_EVENTS 32

struct seen {
  enum fw_ws_result result;
  enum fw_ws_opcode opcode;
  uint16_t close_code;
  const char *error;
  uint8_t *payload; /* a copy */
  size_t len;
};

struct transcript {
  struct seen events[MAX_EVENTS];
  size_t count;
};

static void transcript_free(struct transcript *t) {
  for (size_t i = 0; i < t->count; i++)
    free(t->events[i].payload);
  t->count = 0;
}

static bool within(const uint8_t *span, size_t len, const void *begin, size_t size) {
  uintptr_t s = (uintptr_t)span, b = (uintptr_t)begin;
  return s >= b && s - b <= size && len <= size - (s - b);
}

/* Checks what the reader promises about one event, and records it. */
static void record(struct transcript *t, const struct fw_ws_reader *reader,
                   enum fw_ws_result result, const struct fw_ws_event *event, const uint8_t *chunk,
                   size_t chunk_len) {
  if (result == FW_WS_NEED_MORE)
    return;
  assert_true(t->count < MAX_EVENTS);
  struct seen *seen = &t->events[t->count++];
  *seen = (struct seen){.result = result,
                        .opcode = event->opcode,
                        .close_code = event->close_code,
                        .error = event->error};
  if (result == FW_WS_FAIL) {
    assert_non_null(event->error);
    assert_null(reader->gathering);
    assert_false(fw_ws_reader_busy(reader));
    return;
  }
  assert_null(event->error);
  assert_non_null(event->payload);
  assert_true(event->opcode == FW_WS_TEXT || event->opcode == FW_WS_BINARY ||
              event->opcode == FW_WS_CLOSE || event->opcode == FW_WS_PING ||
              event->opcode == FW_WS_PONG);
  if (event->opcode == FW_WS_TEXT || event->opcode == FW_WS_CLOSE)
    assert_true(fw_utf8_valid(event->payload, event->len));
  if (event->opcode != FW_WS_CLOSE)
    assert_int_equal(event->close_code, 0);
  if (event->len) {
    /* The payload is borrowed from the bytes just fed or from the reader's memory. */
    bool in_chunk = within(event->payload, event->len, chunk, chunk_len);
    bool in_reader = reader->gathering && within(event->payload, event->len,
                                                 reader->gathering->data, reader->gathering->len);
    assert_true(in_chunk || in_reader);
  }
  seen->len = event->len;
  seen->payload = malloc(event->len ? event->len : 1);
  assert_non_null(seen->payload);
  if (event->len)
    memcpy(seen->payload, event->payload, event->len);
}

/* Reads `wire` in pieces of `step` bytes (0: all at once), each piece in a heap block of
 * its own size so that a read past it is caught, until the end or a failure. */
static void run(const struct fw_ws_limits *limits, const void *wire, size_t wire_len, size_t step,
                struct transcript *t) {
  struct fw_ws_reader reader;
  fw_ws_reader_init(&reader, limits);
  t->count = 0;
  const uint8_t *bytes = wire;
  bool failed = false;
  for (size_t at = 0; at < wire_len && !failed;) {
    size_t piece_len = step && step < wire_len - at ? step : wire_len - at;
    uint8_t *piece = malloc(piece_len);
    assert_non_null(piece);
    memcpy(piece, bytes + at, piece_len);
    size_t pos = 0;
    while (pos < piece_len) {
      struct fw_ws_event event;
      size_t consumed = SIZE_MAX;
      enum fw_ws_result result =
          fw_ws_reader_feed(&reader, piece + pos, piece_len - pos, &consumed, &event);
      assert_true(consumed <= piece_len - pos);
      if (result == FW_WS_NEED_MORE)
        assert_int_equal(consumed, piece_len - pos);
      else
        assert_true(consumed > 0);
      record(t, &reader, result, &event, piece + pos, piece_len - pos);
      pos += consumed;
      if (result == FW_WS_FAIL) {
        failed = true;
        break;
      }
    }
    free(piece);
    at += piece_len;
  }
  if (!failed) {
    /* Feeding nothing releases the last payload; an idle reader then holds nothing. */
    struct fw_ws_event event;
    size_t consumed = SIZE_MAX;
    assert_int_equal(fw_ws_reader_feed(&reader, NULL, 0, &consumed, &event), FW_WS_NEED_MORE);
    assert_int_equal(consumed, 0);
    if (!fw_ws_reader_busy(&reader))
      assert_null(reader.gathering);
  }
  fw_ws_reader_free(&reader);
  assert_null(reader.gathering);
}

static void assert_same(const struct transcript *a, const struct transcript *b) {
  assert_int_equal(a->count, b->count);
  for (size_t i = 0; i < a->count; i++) {
    const struct seen *x = &a->events[i], *y = &b->events[i];
    assert_int_equal(x->result, y->result);
    assert_int_equal(x->opcode, y->opcode);
    assert_int_equal(x->close_code, y->close_code);
    assert_ptr_equal(x->error, y->error);
    assert_int_equal(x->len, y->len);
    if (x->len)
      assert_memory_equal(x->payload, y->payload, x->len);
  }
}

/* Reads `wire` whole into `out`, and checks that every way of cutting it into pieces
 * gives the same events. */
static void read_every_way(const struct fw_ws_limits *limits, const struct fw_buf *wire,
                           struct transcript *out) {
  static const size_t steps[] = {1, 2, 3, 5, 7, 64};
  run(limits, wire->data, wire->len, 0, out);
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    struct transcript pieces;
    run(limits, wire->data, wire->len, steps[i], &pieces);
    assert_same(out, &pieces);
    transcript_free(&pieces);
  }
}

static void assert_event(const struct transcript *t, size_t i, enum fw_ws_opcode opcode,
                         const void *payload, size_t len) {
  assert_true(i < t->count);
  assert_int_equal(t->events[i].result, FW_WS_MESSAGE);
  assert_int_equal(t->events[i].opcode, opcode);
  assert_int_equal(t->events[i].len, len);
  if (len)
    assert_memory_equal(t->events[i].payload, payload, len);
}

static void assert_text(const struct transcript *t, size_t i, const char *text) {
  assert_event(t, i, FW_WS_TEXT, text, strlen(text));
}

/* Reads `wire` every way; it must end in a failure with `code` after `before` events. The
 * wire is emptied for the next case. */
static void expect_failure_with(const struct fw_ws_limits *limits, struct fw_buf *wire,
                                size_t before, uint16_t code) {
  struct transcript t;
  read_every_way(limits, wire, &t);
  assert_int_equal(t.count, before + 1);
  assert_int_equal(t.events[before].result, FW_WS_FAIL);
  assert_int_equal(t.events[before].close_code, code);
  transcript_free(&t);
  fw_buf_reset(wire);
}

static void expect_failure(struct fw_buf *wire, uint16_t code) {
  expect_failure_with(&roomy, wire, 0, code);
}

/* ---- the examples of RFC 6455 section 5.7 ---- */

static void rfc_single_masked_frame(void **state) {
  (void)state;
  static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  struct fw_buf wire;
  wire_init(&wire);
  put_bytes(&wire, hello, sizeof hello);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 1);
  assert_text(&t, 0, "Hello");
  transcript_free(&t);

  /* The builder the other tests use writes the same bytes. */
  struct fw_buf built;
  wire_init(&built);
  put_text(&built, 0x81, "Hello");
  assert_int_equal(built.len, sizeof hello);
  assert_memory_equal(built.data, hello, sizeof hello);
  fw_buf_free(&built);
  fw_buf_free(&wire);
}

static void rfc_unmasked_frame_is_refused(void **state) {
  (void)state;
  static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  struct fw_buf wire;
  wire_init(&wire);
  put_bytes(&wire, hello, sizeof hello);
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  fw_buf_free(&wire);
}

static void rfc_fragmented_message(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x01, "Hel");
  put_text(&wire, 0x80, "lo");
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 1);
  assert_text(&t, 0, "Hello");
  transcript_free(&t);
  fw_buf_free(&wire);
}

static void rfc_ping_and_pong(void **state) {
  (void)state;
  static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x89, "Hello");
  put_bytes(&wire, pong, sizeof pong);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 2);
  assert_event(&t, 0, FW_WS_PING, "Hello", 5);
  assert_event(&t, 1, FW_WS_PONG, "Hello", 5);
  transcript_free(&t);
  fw_buf_free(&wire);
}

static uint8_t *pattern(size_t len) {
  uint8_t *bytes = malloc(len);
  assert_non_null(bytes);
  for (size_t i = 0; i < len; i++)
    bytes[i] = (uint8_t)(i * 7 + i / 251);
  return bytes;
}

static void rfc_16_and_64_bit_lengths(void **state) {
  (void)state;
  uint8_t *bytes = pattern(65536);
  struct fw_buf wire;
  wire_init(&wire);
  put_frame(&wire, 0x82, bytes, 256);
  assert_int_equal((uint8_t)wire.data[1], 0x80 | 126);
  assert_int_equal((uint8_t)wire.data[2], 0x01);
  assert_int_equal((uint8_t)wire.data[3], 0x00);
  size_t first_len = wire.len;
  put_frame(&wire, 0x82, bytes, 65536);
  assert_int_equal((uint8_t)wire.data[first_len + 1], 0x80 | 127);
  assert_int_equal((uint8_t)wire.data[first_len + 7], 0x01);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 2);
  assert_event(&t, 0, FW_WS_BINARY, bytes, 256);
  assert_event(&t, 1, FW_WS_BINARY, bytes, 65536);
  transcript_free(&t);
  fw_buf_free(&wire);
  free(bytes);
}

/* RFC 6455 asks senders for the shortest length form; a longer one says the same. */
static void longer_length_forms_are_read(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_frame_form(&wire, 0x81, "abc", 3, LENGTH_FORCE_16);
  put_frame_form(&wire, 0x82, "de", 2, LENGTH_FORCE_64);
  put_frame_form(&wire, 0x81, "", 0, LENGTH_FORCE_64);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 3);
  assert_text(&t, 0, "abc");
  assert_event(&t, 1, FW_WS_BINARY, "de", 2);
  assert_text(&t, 2, "");
  transcript_free(&t);
  fw_buf_free(&wire);
}

/* ---- messages ---- */

static void control_frames_between_fragments(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x01, "one ");
  put_text(&wire, 0x89, "ping");
  put_text(&wire, 0x00, "two ");
  put_text(&wire, 0x8A, "");
  put_text(&wire, 0x80, "three");
  put_frame(&wire, 0x02, "\x00\x01", 2);
  put_close(&wire, 1000, "bye");
  put_frame(&wire, 0x80, "\x02", 1);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 5);
  assert_event(&t, 0, FW_WS_PING, "ping", 4);
  assert_event(&t, 1, FW_WS_PONG, "", 0);
  assert_text(&t, 2, "one two three");
  assert_event(&t, 3, FW_WS_CLOSE, "bye", 3);
  assert_int_equal(t.events[3].close_code, 1000);
  assert_event(&t, 4, FW_WS_BINARY, "\x00\x01\x02", 3);
  transcript_free(&t);
  fw_buf_free(&wire);
}

static void empty_messages_and_close(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x81, "");
  put_text(&wire, 0x01, "");
  put_text(&wire, 0x00, "");
  put_text(&wire, 0x80, "");
  put_frame(&wire, 0x82, "", 0);
  put_frame(&wire, 0x88, "", 0);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 4);
  assert_text(&t, 0, "");
  assert_text(&t, 1, "");
  assert_event(&t, 2, FW_WS_BINARY, "", 0);
  assert_event(&t, 3, FW_WS_CLOSE, "", 0);
  assert_int_equal(t.events[3].close_code, FW_WS_CLOSE_NO_STATUS);
  transcript_free(&t);
  fw_buf_free(&wire);
}

/* One call reads up to the end of the first event and says how far it got. */
static void each_call_stops_after_one_event(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x89, "p");
  size_t ping_len = wire.len;
  put_text(&wire, 0x81, "text");
  size_t text_end = wire.len;
  put_text(&wire, 0x01, "par"); /* incomplete message at the end */
  struct fw_ws_reader reader;
  fw_ws_reader_init(&reader, &roomy);
  struct fw_ws_event event;
  size_t consumed;
  uint8_t *data = (uint8_t *)wire.data;
  assert_int_equal(fw_ws_reader_feed(&reader, data, wire.len, &consumed, &event), FW_WS_MESSAGE);
  assert_int_equal(consumed, ping_len);
  assert_int_equal(event.opcode, FW_WS_PING);
  assert_int_equal(
      fw_ws_reader_feed(&reader, data + ping_len, wire.len - ping_len, &consumed, &event),
      FW_WS_MESSAGE);
  assert_int_equal(consumed, text_end - ping_len);
  assert_int_equal(event.opcode, FW_WS_TEXT);
  assert_int_equal(event.len, 4);
  assert_memory_equal(event.payload, "text", 4);
  assert_int_equal(
      fw_ws_reader_feed(&reader, data + text_end, wire.len - text_end, &consumed, &event),
      FW_WS_NEED_MORE);
  assert_int_equal(consumed, wire.len - text_end);
  assert_true(fw_ws_reader_busy(&reader));
  fw_ws_reader_free(&reader);
  fw_buf_free(&wire);
}

/* ---- protocol errors ---- */

static void reserved_bits_and_opcodes(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  static const uint8_t rsv[] = {0x40, 0x20, 0x10};
  for (size_t i = 0; i < sizeof rsv; i++) {
    put_text(&wire, (uint8_t)(0x81 | rsv[i]), "x");
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
    put_text(&wire, (uint8_t)(0x89 | rsv[i]), "x");
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  }
  static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
  for (size_t i = 0; i < sizeof reserved; i++) {
    put_text(&wire, (uint8_t)(0x80 | reserved[i]), "");
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  }
  /* A reserved opcode after a good message: the message still comes first. */
  put_text(&wire, 0x81, "ok");
  put_text(&wire, 0x83, "");
  expect_failure_with(&roomy, &wire, 1, FW_WS_CLOSE_PROTOCOL_ERROR);
  fw_buf_free(&wire);
}

static void control_frame_rules(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  uint8_t big[126];
  memset(big, 'a', sizeof big);
  static const uint8_t controls[] = {0x8, 0x9, 0xA};
  for (size_t i = 0; i < sizeof controls; i++) {
    /* Longer than 125 bytes. */
    put_frame(&wire, (uint8_t)(0x80 | controls[i]), big, 126);
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
    /* Without FIN. */
    put_frame(&wire, controls[i], "", 0);
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  }
  /* Exactly 125 bytes is fine, in the middle of a message too. */
  put_text(&wire, 0x01, "a");
  put_frame(&wire, 0x89, big, 125);
  put_text(&wire, 0x80, "b");
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 2);
  assert_event(&t, 0, FW_WS_PING, big, 125);
  assert_text(&t, 1, "ab");
  transcript_free(&t);
  fw_buf_free(&wire);
}

static void fragmentation_rules(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  /* A continuation with no message in flight, final or not. */
  put_text(&wire, 0x80, "x");
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  put_text(&wire, 0x00, "x");
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  /* ... nor after a message has ended. */
  put_text(&wire, 0x01, "a");
  put_text(&wire, 0x80, "b");
  put_text(&wire, 0x80, "c");
  expect_failure_with(&roomy, &wire, 1, FW_WS_CLOSE_PROTOCOL_ERROR);
  /* A new message while a fragmented one is in flight. */
  put_text(&wire, 0x01, "a");
  put_text(&wire, 0x81, "b");
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  put_frame(&wire, 0x02, "a", 1);
  put_frame(&wire, 0x02, "b", 1);
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  put_frame(&wire, 0x02, "a", 1);
  put_text(&wire, 0x89, "p");
  put_text(&wire, 0x01, "b");
  expect_failure_with(&roomy, &wire, 1, FW_WS_CLOSE_PROTOCOL_ERROR);
  fw_buf_free(&wire);
}

static void length_with_top_bit_set(void **state) {
  (void)state;
  static const uint8_t header[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  struct fw_buf wire;
  wire_init(&wire);
  put_bytes(&wire, header, sizeof header);
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  fw_buf_free(&wire);
}

static void close_frame_rules(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_frame(&wire, 0x88, "\x03", 1);
  expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);

  static const unsigned invalid[] = {0,    999,  1004, 1005, 1006, 1015, 1016,
                                     1100, 2000, 2999, 5000, 6000, 65535};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    put_close(&wire, invalid[i], "");
    expect_failure(&wire, FW_WS_CLOSE_PROTOCOL_ERROR);
  }

  static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                   1010, 1011, 1012, 1013, 1014, 3000, 4999};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    put_close(&wire, valid[i], "why");
    struct transcript t;
    read_every_way(&roomy, &wire, &t);
    assert_int_equal(t.count, 1);
    assert_event(&t, 0, FW_WS_CLOSE, "why", 3);
    assert_int_equal(t.events[0].close_code, valid[i]);
    transcript_free(&t);
    fw_buf_reset(&wire);
  }

  put_close(&wire, 1000, "caf\xc3");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  put_close(&wire, 1000, "\xed\xa0\x80");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  /* A close frame may come between fragments, and its reason is checked on its own. */
  put_text(&wire, 0x01, "\xe2\x82");
  put_close(&wire, 1001, "\xc3\xa9");
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 1);
  assert_event(&t, 0, FW_WS_CLOSE, "\xc3\xa9", 2);
  transcript_free(&t);
  fw_buf_free(&wire);
}

/* ---- UTF-8 as it arrives ---- */

static void text_must_be_utf8(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  put_text(&wire, 0x81, "\xff");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  put_text(&wire, 0x81, "ok \xed\xa0\x80 surrogate");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  /* Ending inside a character, in one frame or across several. */
  put_text(&wire, 0x81, "\xe2\x82");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  put_text(&wire, 0x01, "\xe2");
  put_text(&wire, 0x80, "\x82");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  /* Binary is not checked. */
  put_frame(&wire, 0x82, "\xff\xe2", 2);
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_event(&t, 0, FW_WS_BINARY, "\xff\xe2", 2);
  transcript_free(&t);
  fw_buf_free(&wire);
}

static void utf8_split_across_frames(void **state) {
  (void)state;
  struct fw_buf wire;
  wire_init(&wire);
  /* U+20AC in three frames with a ping between, then U+1F600 in two. */
  put_text(&wire, 0x01, "\xe2");
  put_text(&wire, 0x89, "");
  put_text(&wire, 0x00, "\x82");
  put_text(&wire, 0x80, "\xac");
  put_text(&wire, 0x01, "a\xf0\x9f");
  put_text(&wire, 0x80, "\x98\x80z");
  struct transcript t;
  read_every_way(&roomy, &wire, &t);
  assert_int_equal(t.count, 3);
  assert_event(&t, 0, FW_WS_PING, "", 0);
  assert_text(&t, 1, "\xe2\x82\xac");
  assert_text(&t, 2, "a\xf0\x9f\x98\x80z");
  transcript_free(&t);
  fw_buf_reset(&wire);
  /* A sequence that becomes invalid only in the next frame. */
  put_text(&wire, 0x01, "\xf0");
  put_text(&wire, 0x80, "\x8f\xbf\xbf");
  expect_failure(&wire, FW_WS_CLOSE_INVALID_DATA);
  fw_buf_free(&wire);
}

static enum fw_ws_result feed_all(struct fw_ws_reader *reader, struct fw_buf *wire,
                                  size_t *consumed, struct fw_ws_event *event) {
  return fw_ws_reader_feed(reader, (uint8_t *)wire->data, wire->len, consumed, event);
}

/* A bad byte fails the message at once: before its last fragment, and before the rest of
 * the frame that carries it. */
static void utf8_fails_fast(void **state) {
  (void)state;
  struct fw_ws_reader reader;
  struct fw_ws_event event;
  size_t consumed;
  struct fw_buf wire;
  wire_init(&wire);

  fw_ws_reader_init(&reader, &roomy);
  put_text(&wire, 0x01, "fine so far \xc0 then not");
  assert_int_equal(feed_all(&reader, &wire, &consumed, &event), FW_WS_FAIL);
  assert_int_equal(event.close_code, FW_WS_CLOSE_INVALID_DATA);
  fw_ws_reader_free(&reader);
  fw_buf_reset(&wire);

  /* A frame of 100 bytes of which only 4 have come, the third of them bad. */
  fw_ws_reader_init(&reader, &roomy);
  char text[101];
  memset(text, 'a', 100);
  text[100] = '\0';
  text[2] = '\xff';
  put_text(&wire, 0x81, text);
  assert_int_equal(fw_ws_reader_feed(&reader, (uint8_t *)wire.data, 6 + 4, &consumed, &event),
                   FW_WS_FAIL);
  assert_int_equal(event.close_code, FW_WS_CLOSE_INVALID_DATA);
  assert_true(consumed <= 10);
  fw_ws_reader_free(&reader);
  fw_buf_free(&wire);
}

/* ---- caps ---- */

static void caps_on_frames_and_messages(void **state) {
  (void)state;
  const struct fw_ws_limits tight = {.max_frame = 100, .max_message = 250};
  uint8_t *bytes = pattern(300);
  struct fw_buf wire;
  wire_init(&wire);

  put_frame(&wire, 0x82, bytes, 101);
  expect_failure_with(&tight, &wire, 0, FW_WS_CLOSE_TOO_BIG);
  put_frame(&wire, 0x02, bytes, 100);
  put_frame(&wire, 0x00, bytes, 100);
  put_frame(&wire, 0x80, bytes, 51);
  expect_failure_with(&tight, &wire, 0, FW_WS_CLOSE_TOO_BIG);

  /* Exactly at the caps, with a ping between the fragments. */
  put_frame(&wire, 0x82, bytes, 100);
  put_frame(&wire, 0x02, bytes, 100);
  put_frame(&wire, 0x89, bytes, 125);
  put_frame(&wire, 0x00, bytes + 100, 100);
  put_frame(&wire, 0x80, bytes + 200, 50);
  struct transcript t;
  read_every_way(&tight, &wire, &t);
  assert_int_equal(t.count, 3);
  assert_event(&t, 0, FW_WS_BINARY, bytes, 100);
  assert_event(&t, 1, FW_WS_PING, bytes, 125);
  assert_event(&t, 2, FW_WS_BINARY, bytes, 250);
  transcript_free(&t);
  fw_buf_reset(&wire);

  /* The message cap applies to a single frame too. */
  const struct fw_ws_limits small_message = {.max_frame = 1000, .max_message = 10};
  put_frame(&wire, 0x81, bytes, 11);
  expect_failure_with(&small_message, &wire, 0, FW_WS_CLOSE_TOO_BIG);
  fw_buf_free(&wire);
  free(bytes);
}

/* Too big is known from the header: the payload is never waited for. */
static void caps_fail_before_the_payload(void **state) {
  (void)state;
  const struct fw_ws_limits tight = {.max_frame = 100, .max_message = 150};
  struct fw_ws_reader reader;
  struct fw_ws_event event;
  size_t consumed;
  uint8_t *bytes = pattern(200);
  struct fw_buf wire;
  wire_init(&wire);

  fw_ws_reader_init(&reader, &tight);
  put_frame(&wire, 0x82, bytes, 101);
  assert_int_equal(fw_ws_reader_feed(&reader, (uint8_t *)wire.data, 6, &consumed, &event),
                   FW_WS_FAIL);
  assert_int_equal(event.close_code, FW_WS_CLOSE_TOO_BIG);
  assert_int_equal(consumed, 6);
  fw_ws_reader_free(&reader);
  fw_buf_reset(&wire);

  /* A 64-bit length far past the caps: 14 header bytes are enough. */
  fw_ws_reader_init(&reader, &tight);
  static const uint8_t huge[] = {0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  uint8_t header[sizeof huge];
  memcpy(header, huge, sizeof huge);
  assert_int_equal(fw_ws_reader_feed(&reader, header, sizeof header, &consumed, &event),
                   FW_WS_FAIL);
  assert_int_equal(event.close_code, FW_WS_CLOSE_TOO_BIG);
  fw_ws_reader_free(&reader);

  /* The message cap, on the header of the fragment that would pass it. */
  fw_ws_reader_init(&reader, &tight);
  put_frame(&wire, 0x02, bytes, 100);
  size_t first_len = wire.len;
  put_frame(&wire, 0x80, bytes, 51);
  assert_int_equal(
      fw_ws_reader_feed(&reader, (uint8_t *)wire.data, first_len + 6, &consumed, &event),
      FW_WS_FAIL);
  assert_int_equal(event.close_code, FW_WS_CLOSE_TOO_BIG);
  assert_int_equal(consumed, first_len + 6);
  assert_null(reader.gathering);
  fw_ws_reader_free(&reader);
  fw_buf_free(&wire);
  free(bytes);
}

/* ---- memory ---- */

/* The reader's memory, precisely: nothing while idle or when a whole frame arrives in one
 * piece (the payload is then unmasked in the caller's bytes); a buffer from the first
 * payload byte that has to be kept across calls until the start of the call after the
 * one that delivers the message; freed at once on failure and by fw_ws_reader_free. */
static void idle_reader_holds_nothing(void **state) {
  (void)state;
  struct fw_ws_reader reader;
  struct fw_ws_event event;
  size_t consumed;
  struct fw_buf wire;
  wire_init(&wire);
  fw_ws_reader_init(&reader, &roomy);
  assert_false(fw_ws_reader_busy(&reader));
  assert_null(reader.gathering);

  /* A whole frame: delivered from the caller's bytes. */
  put_text(&wire, 0x81, "Hello");
  uint8_t *data = (uint8_t *)wire.data;
  assert_int_equal(feed_all(&reader, &wire, &consumed, &event), FW_WS_MESSAGE);
  assert_ptr_equal(event.payload, data + 6);
  assert_null(reader.gathering);
  assert_false(fw_ws_reader_busy(&reader));
  fw_buf_reset(&wire);

  /* A frame split inside its header: still nothing allocated. */
  put_text(&wire, 0x81, "Hello");
  data = (uint8_t *)wire.data;
  assert_int_equal(fw_ws_reader_feed(&reader, data, 3, &consumed, &event), FW_WS_NEED_MORE);
  assert_true(fw_ws_reader_busy(&reader));
  assert_null(reader.gathering);
  /* The header's end alone: the payload, when it comes whole, is still not copied. */
  assert_int_equal(fw_ws_reader_feed(&reader, data + 3, 3, &consumed, &event), FW_WS_NEED_MORE);
  assert_null(reader.gathering);
  assert_int_equal(fw_ws_reader_feed(&reader, data + 6, 5, &consumed, &event), FW_WS_MESSAGE);
  assert_ptr_equal(event.payload, data + 6);
  assert_null(reader.gathering);
  fw_buf_reset(&wire);

  /* A frame split inside its payload: gathered, and freed when the next call begins. */
  put_text(&wire, 0x81, "Hello");
  data = (uint8_t *)wire.data;
  assert_int_equal(fw_ws_reader_feed(&reader, data, 8, &consumed, &event), FW_WS_NEED_MORE);
  assert_true(fw_ws_reader_busy(&reader));
  assert_non_null(reader.gathering);
  assert_int_equal(fw_ws_reader_feed(&reader, data + 8, 3, &consumed, &event), FW_WS_MESSAGE);
  assert_int_equal(event.len, 5);
  assert_memory_equal(event.payload, "Hello", 5);
  assert_ptr_equal(event.payload, reader.gathering->data);
  assert_false(fw_ws_reader_busy(&reader));
  assert_int_equal(fw_ws_reader_feed(&reader, NULL, 0, &consumed, &event), FW_WS_NEED_MORE);
  assert_int_equal(consumed, 0);
  assert_null(reader.gathering);
  fw_buf_reset(&wire);

  /* A fragmented message, a ping split in its middle, and the next message. */
  put_text(&wire, 0x01, "abc");
  size_t ping_at = wire.len;
  put_text(&wire, 0x89, "ping");
  size_t final_at = wire.len;
  put_text(&wire, 0x80, "def");
  size_t next_at = wire.len;
  put_text(&wire, 0x81, "next");
  data = (uint8_t *)wire.data;
  assert_int_equal(fw_ws_reader_feed(&reader, data, ping_at + 7, &consumed, &event),
                   FW_WS_NEED_MORE);
  assert_true(fw_ws_reader_busy(&reader));
  assert_non_null(reader.gathering);
  assert_int_equal(
      fw_ws_reader_feed(&reader, data + ping_at + 7, final_at - ping_at - 7, &consumed, &event),
      FW_WS_MESSAGE);
  assert_int_equal(event.opcode, FW_WS_PING);
  assert_memory_equal(event.payload, "ping", 4);
  assert_true(fw_ws_reader_busy(&reader)); /* the message is still in flight */
  assert_int_equal(
      fw_ws_reader_feed(&reader, data + final_at, wire.len - final_at, &consumed, &event),
      FW_WS_MESSAGE);
  assert_int_equal(consumed, next_at - final_at);
  assert_int_equal(event.opcode, FW_WS_TEXT);
  assert_int_equal(event.len, 6);
  assert_memory_equal(event.payload, "abcdef", 6);
  assert_non_null(reader.gathering);
  assert_false(fw_ws_reader_busy(&reader));
  assert_int_equal(
      fw_ws_reader_feed(&reader, data + next_at, wire.len - next_at, &consumed, &event),
      FW_WS_MESSAGE);
  assert_null(reader.gathering);
  assert_ptr_equal(event.payload, data + next_at + 6);
  fw_buf_reset(&wire);

  /* A reader freed in the middle of a message releases what it gathered. */
  put_text(&wire, 0x01, "abc");
  assert_int_equal(feed_all(&reader, &wire, &consumed, &event), FW_WS_NEED_MORE);
  assert_non_null(reader.gathering);
  fw_ws_reader_free(&reader);
  assert_null(reader.gathering);
  assert_false(fw_ws_reader_busy(&reader));
  fw_buf_free(&wire);
}

/* ---- writing ---- */

static void frame_header_lengths(void **state) {
  (void)state;
  uint8_t out[10];
  assert_int_equal(fw_ws_frame_header(out, FW_WS_TEXT, 0), 2);
  assert_memory_equal(out, "\x81\x00", 2);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_TEXT, 125), 2);
  assert_memory_equal(out, "\x81\x7d", 2);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_BINARY, 126), 4);
  assert_memory_equal(out, "\x82\x7e\x00\x7e", 4);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_TEXT, 65535), 4);
  assert_memory_equal(out, "\x81\x7e\xff\xff", 4);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_TEXT, 65536), 10);
  assert_memory_equal(out, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_BINARY, 0x0102030405060708u), 10);
  assert_memory_equal(out, "\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
  assert_int_equal(fw_ws_frame_header(out, FW_WS_PING, 3), 2);
  assert_memory_equal(out, "\x89\x03", 2);
}

static void frame_append_and_close_append(void **state) {
  (void)state;
  struct fw_buf out;
  fw_buf_init(&out, 1 << 20);
  assert_int_equal(fw_ws_frame_append(&out, FW_WS_TEXT, "Hello", 5), FW_OK);
  assert_int_equal(out.len, 7);
  assert_memory_equal(out.data, "\x81\x05Hello", 7);
  fw_buf_reset(&out);
  assert_int_equal(fw_ws_frame_append(&out, FW_WS_PONG, NULL, 0), FW_OK);
  assert_int_equal(out.len, 2);
  assert_memory_equal(out.data, "\x8a\x00", 2);
  fw_buf_reset(&out);
  uint8_t *bytes = pattern(70000);
  assert_int_equal(fw_ws_frame_append(&out, FW_WS_BINARY, bytes, 70000), FW_OK);
  assert_int_equal(out.len, 70010);
  assert_memory_equal(out.data + 10, bytes, 70000);
  free(bytes);
  fw_buf_reset(&out);

  assert_int_equal(fw_ws_close_append(&out, 1000, "bye"), FW_OK);
  assert_int_equal(out.len, 7);
  assert_memory_equal(out.data,
                      "\x88\x05\x03\xe8"
                      "bye",
                      7);
  fw_buf_reset(&out);
  assert_int_equal(fw_ws_close_append(&out, FW_WS_CLOSE_TOO_BIG, NULL), FW_OK);
  assert_int_equal(out.len, 4);
  assert_memory_equal(out.data, "\x88\x02\x03\xf1", 4);
  fw_buf_reset(&out);

  /* 123 bytes of reason fit; past that the reason is cut, never inside a character. */
  char reason[200];
  memset(reason, 'a', 123);
  reason[123] = '\0';
  assert_int_equal(fw_ws_close_append(&out, 1001, reason), FW_OK);
  assert_int_equal(out.len, 2 + 125);
  assert_int_equal((uint8_t)out.data[1], 125);
  fw_buf_reset(&out);
  memset(reason, 'a', 122);
  memcpy(reason + 122, "\xc3\xa9tc", 5); /* U+00E9 would straddle byte 123 */
  assert_int_equal(fw_ws_close_append(&out, 1001, reason), FW_OK);
  assert_int_equal((uint8_t)out.data[1], 2 + 122);
  assert_int_equal(out.len, 2 + 2 + 122);
  assert_true(fw_utf8_valid((const uint8_t *)out.data + 4, 122));
  fw_buf_reset(&out);
  memset(reason, 'a', 121);
  memcpy(reason + 121, "\xf0\x9f\x98\x80", 5); /* U+1F600 from byte 121 to 124 */
  assert_int_equal(fw_ws_close_append(&out, 1001, reason), FW_OK);
  assert_int_equal((uint8_t)out.data[1], 2 + 121);
  fw_buf_free(&out);

  /* A frame that does not fit leaves the buffer as it was. */
  struct fw_buf small;
  fw_buf_init(&small, 8);
  assert_int_equal(fw_ws_frame_append(&small, FW_WS_TEXT, "abc", 3), FW_OK);
  assert_int_equal(fw_ws_frame_append(&small, FW_WS_TEXT, "abcd", 4), FW_ETOOBIG);
  assert_int_equal(small.len, 5);
  assert_memory_equal(small.data,
                      "\x81\x03"
                      "abc",
                      5);
  fw_buf_free(&small);
}

/* What the server writes, the reader reads once it is masked: the two ends agree. */
static void written_frames_read_back(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536};
  uint8_t *bytes = pattern(65536);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    struct fw_buf out;
    fw_buf_init(&out, 1 << 20);
    assert_int_equal(fw_ws_frame_append(&out, FW_WS_BINARY, bytes, sizes[i]), FW_OK);
    /* Set the mask bit and insert the key after the header; mask the payload. */
    uint8_t header[10];
    size_t header_len = fw_ws_frame_header(header, FW_WS_BINARY, sizes[i]);
    assert_memory_equal(out.data, header, header_len);
    struct fw_buf wire;
    wire_init(&wire);
    put_frame(&wire, 0x82, bytes, sizes[i]);
    assert_int_equal(wire.len, out.len + 4);
    assert_int_equal((uint8_t)wire.data[1], (uint8_t)out.data[1] | 0x80);
    assert_memory_equal(wire.data + 2, out.data + 2, header_len - 2);
    struct transcript t;
    run(&roomy, wire.data, wire.len, 0, &t);
    assert_event(&t, 0, FW_WS_BINARY, bytes, sizes[i]);
    transcript_free(&t);
    fw_buf_free(&wire);
    fw_buf_free(&out);
  }
  free(bytes);
}

/* ---- the opening handshake ---- */

static void accept_key_of_the_rfc_example(void **state) {
  (void)state;
  char accept[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  fw_ws_accept_key(key, strlen(key), accept);
  /* RFC 6455 section 1.3. */
  assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  memset(accept, 'x', sizeof accept);
  fw_ws_accept_key("short", 5, accept);
  assert_string_equal(accept, "");
}

static void key_validity(void **state) {
  (void)state;
  static const char *const valid[] = {
      "dGhlIHNhbXBsZSBub25jZQ==",
      "AAAAAAAAAAAAAAAAAAAAAA==",
      "+/+/+/+/+/+/+/+/+/+/+w==",
      "x3JJHMbDL1EzLkh9GBhXDw==",
      /* Nonzero bits past the 16th byte: ignored, as a decoder may. */
      "dGhlIHNhbXBsZSBub25jZR==",
  };
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
    assert_true(fw_ws_key_valid(valid[i], strlen(valid[i])));
  static const char *const invalid[] = {
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 characters */
      "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
      "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
      "dGhlIHNhbXBsZSBub25jZQA=",  /* 17 bytes */
      "dGhlIHNhbXBsZSBub25j",      /* 15 bytes */
      "dGhlIHNhbXBsZSBub25jZQ",    /* padding left out */
      "dGhlIHNhbXBsZSBub25-ZQ==",  /* the URL-safe alphabet */
      "dGhlIHNhbXBsZSBub25_ZQ==",
      "dGhlIHNhbXBs=SBub25jZQ==", /* padding inside */
      "dGhlIHNhbXBsZSBub25jZ===",
      "dGhlIHNhbXBsZSBub25jZQ=A",
      "dGhlIHNhbXBsZSBub25 ZQ==",
      "dGhlIHNhbXBsZSBub25jZQ\0=",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    size_t len = i == sizeof invalid / sizeof invalid[0] - 1 ? 24 : strlen(invalid[i]);
    assert_false(fw_ws_key_valid(invalid[i], len));
  }
  /* The length given is what counts, not the NUL. */
  assert_false(fw_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23));
  assert_false(fw_ws_key_valid(NULL, 0));
}

/* ---- UTF-8 ---- */

static bool utf8(const char *text, size_t len) { return fw_utf8_valid((const uint8_t *)text, len); }

#define UTF8(literal) utf8(literal, sizeof literal - 1)

static void utf8_validity(void **state) {
  (void)state;
  assert_true(fw_utf8_valid(NULL, 0));
  assert_true(UTF8(""));
  assert_true(UTF8("plain ascii"));
  assert_true(UTF8("\0"));
  assert_true(UTF8("\xc2\x80"));               /* U+0080 */
  assert_true(UTF8("\xc3\xa9"));               /* U+00E9 */
  assert_true(UTF8("\xdf\xbf"));               /* U+07FF */
  assert_true(UTF8("\xe0\xa0\x80"));           /* U+0800 */
  assert_true(UTF8("\xe2\x82\xac"));           /* U+20AC */
  assert_true(UTF8("\xed\x9f\xbf"));           /* U+D7FF */
  assert_true(UTF8("\xee\x80\x80"));           /* U+E000 */
  assert_true(UTF8("\xef\xbf\xbf"));           /* U+FFFF */
  assert_true(UTF8("\xf0\x90\x80\x80"));       /* U+10000 */
  assert_true(UTF8("\xf0\x9f\x98\x80"));       /* U+1F600 */
  assert_true(UTF8("\xf4\x8f\xbf\xbf"));       /* U+10FFFF */
  assert_true(UTF8("a\xc3\xa9z\xe2\x82\xac")); /* mixed */

  /* Overlong forms. */
  assert_false(UTF8("\xc0\x80"));
  assert_false(UTF8("\xc1\xbf"));
  assert_false(UTF8("\xe0\x80\x80"));
  assert_false(UTF8("\xe0\x9f\xbf"));
  assert_false(UTF8("\xf0\x80\x80\x80"));
  assert_false(UTF8("\xf0\x8f\xbf\xbf"));
  /* Surrogates. */
  assert_false(UTF8("\xed\xa0\x80"));
  assert_false(UTF8("\xed\xaf\xbf"));
  assert_false(UTF8("\xed\xb0\x80"));
  assert_false(UTF8("\xed\xbf\xbf"));
  assert_false(UTF8("\xed\xa0\xbd\xed\xb8\x80")); /* a surrogate pair, CESU-8 style */
  /* Past U+10FFFF. */
  assert_false(UTF8("\xf4\x90\x80\x80"));
  assert_false(UTF8("\xf5\x80\x80\x80"));
  assert_false(UTF8("\xf7\xbf\xbf\xbf"));
  assert_false(UTF8("\xf8\x88\x80\x80\x80"));
  assert_false(UTF8("\xff"));
  assert_false(UTF8("\xfe"));
  /* Truncated, or continuation bytes out of place. */
  assert_false(UTF8("\xc3"));
  assert_false(UTF8("\xe2\x82"));
  assert_false(UTF8("\xf0\x9f\x98"));
  assert_false(UTF8("abc\xf0"));
  assert_false(UTF8("\x80"));
  assert_false(UTF8("\xbf"));
  assert_false(UTF8("a\x80z"));
  assert_false(UTF8("\xc3z"));
  assert_false(UTF8("\xe2\x82z"));
  assert_false(UTF8("\xc3\xa9\xa9"));
}

/* A plain decoder, written for clarity, to compare against. */
static bool reference_utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i];
    size_t extra;
    uint32_t least;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, c &= 0x1F, least = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, c &= 0x0F, least = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, c &= 0x07, least = 0x10000;
    } else {
      return false;
    }
    if (n - i - 1 < extra)
      return false;
    for (size_t k = 1; k <= extra; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      c = c << 6 | (s[i + k] & 0x3Fu);
    }
    if (c < least || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return false;
    i += extra + 1;
  }
  return true;
}

/* Every sequence of up to three bytes, and four-byte sequences over the bytes that matter,
 * judged the same as the plain decoder judges them. */
static void utf8_agrees_with_a_plain_decoder(void **state) {
  (void)state;
  uint8_t s[4];
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (uint8_t)a;
    assert_int_equal(fw_utf8_valid(s, 1), reference_utf8_valid(s, 1));
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (uint8_t)b;
      assert_int_equal(fw_utf8_valid(s, 2), reference_utf8_valid(s, 2));
      for (unsigned c = 0; c < 256; c++) {
        s[2] = (uint8_t)c;
        if (fw_utf8_valid(s, 3) != reference_utf8_valid(s, 3))
          fail_msg("%02x %02x %02x", a, b, c);
      }
    }
  }
  static const uint8_t edges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  for (unsigned a = 0xC0; a < 256; a++)
    for (unsigned b = 0; b < 256; b++)
      for (size_t c = 0; c < sizeof edges; c++)
        for (size_t d = 0; d < sizeof edges; d++) {
          s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = edges[c], s[3] = edges[d];
          if (fw_utf8_valid(s, 4) != reference_utf8_valid(s, 4))
            fail_msg("%02x %02x %02x %02x", a, b, edges[c], edges[d]);
        }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc_single_masked_frame),
      cmocka_unit_test(rfc_unmasked_frame_is_refused),
      cmocka_unit_test(rfc_fragmented_message),
      cmocka_unit_test(rfc_ping_and_pong),
      cmocka_unit_test(rfc_16_and_64_bit_lengths),
      cmocka_unit_test(longer_length_forms_are_read),
      cmocka_unit_test(control_frames_between_fragments),
      cmocka_unit_test(empty_messages_and_close),
      cmocka_unit_test(each_call_stops_after_one_event),
      cmocka_unit_test(reserved_bits_and_opcodes),
      cmocka_unit_test(control_frame_rules),
      cmocka_unit_test(fragmentation_rules),
      cmocka_unit_test(length_with_top_bit_set),
      cmocka_unit_test(close_frame_rules),
      cmocka_unit_test(text_must_be_utf8),
      cmocka_unit_test(utf8_split_across_frames),
      cmocka_unit_test(utf8_fails_fast),
      cmocka_unit_test(caps_on_frames_and_messages),
      cmocka_unit_test(caps_fail_before_the_payload),
      cmocka_unit_test(idle_reader_holds_nothing),
      cmocka_unit_test(frame_header_lengths),
      cmocka_unit_test(frame_append_and_close_append),
      cmocka_unit_test(written_frames_read_back),
      cmocka_unit_test(accept_key_of_the_rfc_example),
      cmocka_unit_test(key_validity),
      cmocka_unit_test(utf8_validity),
      cmocka_unit_test(utf8_agrees_with_a_plain_decoder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
