/* libFuzzer target for the WebSocket frame reader: the bytes one client connection sends
 * after the handshake, read by fw_ws_reader_feed in arbitrary pieces.
 *
 * Input: the first byte chooses how the rest is cut into reads (struct read_plan) and
 * whether the caller releases the reader's memory after each event; the rest is the byte
 * stream of the connection.
 *
 * Besides the sanitizers, the target checks what the interface promises and calls abort()
 * when a promise is broken, which libFuzzer records as a crash with its input:
 * - each call uses at most the bytes it was given, all of them when it needs more, and at
 *   least one when it reports an event;
 * - a TEXT payload and a close reason are valid UTF-8, a close code is one a peer may send
 *   (or 1005 with nothing after it), payloads stay within the caps and within the bytes
 *   just fed or the reader's own memory, and every byte of them can be read;
 * - a failure carries one of the codes the reader may send and leaves nothing allocated;
 *   nothing is fed after it;
 * - a reader between messages holds no memory once the next call has begun;
 * - the events and the failure do not depend on how the stream was cut: the same stream
 *   read in one piece gives the same transcript. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/websocket.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Far below the server's defaults, so that short inputs reach both caps (the message cap
 * with two fragments of 101 bytes) and the 16-bit length form within them. */
static const struct fw_ws_limits limits = {.max_frame = 150, .max_message = 200};

#define TRANSCRIPT_LIMIT (1 << 22)

#define CHECK(condition) ((condition) ? (void)0 : invariant_failed(#condition, __LINE__))

static _Noreturn void invariant_failed(const char *condition, int line) {
  fprintf(stderr, "fuzz_websocket.c:%d: invariant violated: %s\n", line, condition);
  abort();
}

/* ---- reads ---- */

enum read_pattern {
  READ_WHOLE,  /* everything in one read */
  READ_FIXED,  /* reads of 1 to 32 bytes */
  READ_RANDOM, /* reads of pseudo-random length, 1 to 64 bytes */
  READ_BYTES   /* each read's length is set by the low bits of its own first byte */
};

struct read_plan {
  enum read_pattern pattern;
  bool release; /* feed no bytes after each event, to release the reader's memory */
  size_t fixed_len;
  uint32_t random_state;
};

static struct read_plan read_plan_from(uint8_t selector) {
  unsigned parameter = selector / 8u; /* 0 to 31 */
  return (struct read_plan){
      .pattern = (enum read_pattern)(selector % 4u),
      .release = (selector & 4u) != 0,
      .fixed_len = parameter + 1u,
      /* xorshift needs a state other than zero; the constant makes that so. */
      .random_state = 0x9e3779b9u ^ parameter,
  };
}

static size_t next_read_len(struct read_plan *plan, const uint8_t *rest, size_t rest_len) {
  size_t len = rest_len;
  switch (plan->pattern) {
  case READ_WHOLE:
    break;
  case READ_FIXED:
    len = plan->fixed_len;
    break;
  case READ_RANDOM:
    plan->random_state ^= plan->random_state << 13;
    plan->random_state ^= plan->random_state >> 17;
    plan->random_state ^= plan->random_state << 5;
    len = 1u + plan->random_state % 64u;
    break;
  case READ_BYTES:
    len = 1u + (rest[0] & 15u);
    break;
  }
  return len < rest_len ? len : rest_len;
}

/* ---- checks on what the reader hands out ---- */

/* Reads every byte of a range the reader says is valid, so that AddressSanitizer checks
 * the whole of it. */
static volatile unsigned char touched_sum; /* volatile: the reads may not be optimised away */

static void touch(const uint8_t *bytes, size_t len) {
  unsigned char sum = 0;
  for (size_t i = 0; i < len; i++)
    sum = (unsigned char)(sum + bytes[i]);
  touched_sum = (unsigned char)(touched_sum + sum);
}

static bool within(const void *span, size_t len, const void *begin, size_t size) {
  uintptr_t s = (uintptr_t)span, b = (uintptr_t)begin;
  return s >= b && s - b <= size && len <= size - (s - b);
}

static bool close_code_sendable(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static void check_memory(const struct fw_ws_reader *reader) {
  if (reader->gathering)
    CHECK(reader->gathering->len <= limits.max_message + FW_WS_CONTROL_MAX);
  CHECK(reader->message_len <= limits.max_message);
}

static void record_event(struct fw_buf *transcript, enum fw_ws_result result,
                         const struct fw_ws_event *event) {
  uint8_t head[1 + 1 + 2 + sizeof event->len + sizeof event->error];
  head[0] = (uint8_t)result;
  head[1] = (uint8_t)event->opcode;
  head[2] = (uint8_t)(event->close_code >> 8);
  head[3] = (uint8_t)event->close_code;
  memcpy(head + 4, &event->len, sizeof event->len);
  memcpy(head + 4 + sizeof event->len, &event->error, sizeof event->error);
  CHECK(fw_buf_append(transcript, head, sizeof head) == FW_OK);
  if (result == FW_WS_MESSAGE && event->len)
    CHECK(fw_buf_append(transcript, event->payload, event->len) == FW_OK);
}

static void check_event(const struct fw_ws_reader *reader, enum fw_ws_result result,
                        const struct fw_ws_event *event, const uint8_t *piece, size_t piece_len) {
  if (result == FW_WS_FAIL) {
    CHECK(event->error != NULL);
    CHECK(event->close_code == FW_WS_CLOSE_PROTOCOL_ERROR ||
          event->close_code == FW_WS_CLOSE_INVALID_DATA ||
          event->close_code == FW_WS_CLOSE_TOO_BIG ||
          event->close_code == FW_WS_CLOSE_INTERNAL_ERROR);
    CHECK(reader->gathering == NULL);
    CHECK(!fw_ws_reader_busy(reader));
    return;
  }
  CHECK(event->error == NULL);
  CHECK(event->payload != NULL);
  touch(event->payload, event->len);
  if (event->len)
    CHECK(within(event->payload, event->len, piece, piece_len) ||
          (reader->gathering &&
           within(event->payload, event->len, reader->gathering->data, reader->gathering->len)));
  if (event->opcode == FW_WS_TEXT)
    CHECK(fw_utf8_valid(event->payload, event->len));
  switch (event->opcode) {
  case FW_WS_TEXT:
  case FW_WS_BINARY:
    CHECK(event->len <= limits.max_message);
    CHECK(event->close_code == 0);
    CHECK(!fw_ws_reader_busy(reader));
    break;
  case FW_WS_CLOSE:
    CHECK(event->len <= FW_WS_CONTROL_MAX - 2);
    CHECK(fw_utf8_valid(event->payload, event->len));
    CHECK(close_code_sendable(event->close_code) ||
          (event->close_code == FW_WS_CLOSE_NO_STATUS && event->len == 0));
    break;
  case FW_WS_PING:
  case FW_WS_PONG:
    CHECK(event->len <= FW_WS_CONTROL_MAX);
    CHECK(event->close_code == 0);
    break;
  default:
    invariant_failed("an event's opcode is not a message's", __LINE__);
  }
}

/* The next call after an event releases the event's memory: all of it between messages,
 * and anything past the message's own bytes between two frames of one. (In the middle of
 * a frame the reader keeps what it has gathered of it.) */
static void release(struct fw_ws_reader *reader) {
  struct fw_ws_event event;
  size_t consumed = 1;
  CHECK(fw_ws_reader_feed(reader, NULL, 0, &consumed, &event) == FW_WS_NEED_MORE);
  CHECK(consumed == 0);
  bool between_frames = reader->header_len == 0 && !reader->in_payload;
  if (!fw_ws_reader_busy(reader))
    CHECK(reader->gathering == NULL);
  else if (between_frames && reader->gathering)
    CHECK(reader->gathering->len == reader->message_len);
}

/* Reads `stream` as the plan cuts it, each read in a heap block of its own size so that a
 * read past it is caught, and writes what happened into `transcript`. */
static void read_stream(const uint8_t *stream, size_t size, struct read_plan plan,
                        struct fw_buf *transcript) {
  struct fw_ws_reader reader;
  fw_ws_reader_init(&reader, &limits);
  bool failed = false;
  for (size_t at = 0; at < size && !failed;) {
    size_t piece_len = next_read_len(&plan, stream + at, size - at);
    CHECK(piece_len > 0);
    uint8_t *piece = malloc(piece_len);
    if (!piece)
      abort();
    memcpy(piece, stream + at, piece_len);
    size_t pos = 0;
    while (pos < piece_len && !failed) {
      struct fw_ws_event event;
      size_t consumed = SIZE_MAX;
      size_t len = piece_len - pos;
      enum fw_ws_result result = fw_ws_reader_feed(&reader, piece + pos, len, &consumed, &event);
      CHECK(consumed <= len);
      check_memory(&reader);
      if (result == FW_WS_NEED_MORE) {
        CHECK(consumed == len);
        if (!fw_ws_reader_busy(&reader))
          CHECK(reader.gathering == NULL);
      } else {
        CHECK(result == FW_WS_MESSAGE || result == FW_WS_FAIL);
        CHECK(consumed > 0);
        check_event(&reader, result, &event, piece + pos, len);
        record_event(transcript, result, &event);
        failed = result == FW_WS_FAIL;
        if (!failed && plan.release)
          release(&reader);
      }
      pos += consumed;
    }
    free(piece);
    at += piece_len;
  }
  if (!failed)
    release(&reader);
  fw_ws_reader_free(&reader);
  CHECK(reader.gathering == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct read_plan plan = read_plan_from(data[0]);
  const uint8_t *stream = data + 1;
  size_t stream_len = size - 1;

  struct fw_buf cut, whole;
  fw_buf_init(&cut, TRANSCRIPT_LIMIT);
  fw_buf_init(&whole, TRANSCRIPT_LIMIT);
  read_stream(stream, stream_len, plan, &cut);
  read_stream(stream, stream_len, read_plan_from(READ_WHOLE), &whole);
  CHECK(cut.len == whole.len);
  CHECK(cut.len == 0 || memcmp(cut.data, whole.data, cut.len) == 0);
  fw_buf_free(&cut);
  fw_buf_free(&whole);
  return 0;
}
