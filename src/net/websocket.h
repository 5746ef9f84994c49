/* The WebSocket codec (RFC 6455): reading the frames a client sends, writing the frames a
 * server sends, and the opening handshake's key. No sockets and no threads: the server
 * feeds it bytes and writes what it builds.
 *
 * A reader costs a few dozen bytes while the client is quiet. It allocates only while a
 * message is in flight: a control frame or a data frame split over several reads, or a
 * fragmented message, whose bytes are gathered up to the caps and freed once delivered.
 * No extension is negotiated (no permessage-deflate), so every RSV bit must be zero.
 *
 * Thread: a reader belongs to one thread; the other functions are pure. */
#ifndef FW_NET_WEBSOCKET_H
#define FW_NET_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/common.h"

enum fw_ws_opcode {
  FW_WS_CONTINUATION = 0x0,
  FW_WS_TEXT = 0x1,
  FW_WS_BINARY = 0x2,
  FW_WS_CLOSE = 0x8,
  FW_WS_PING = 0x9,
  FW_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1) that the server sends. */
enum fw_ws_close_code {
  FW_WS_CLOSE_NORMAL = 1000,
  FW_WS_CLOSE_GOING_AWAY = 1001,
  FW_WS_CLOSE_PROTOCOL_ERROR = 1002,
  FW_WS_CLOSE_UNSUPPORTED_DATA = 1003,
  FW_WS_CLOSE_NO_STATUS = 1005, /* received, never sent: a close frame without a code */
  FW_WS_CLOSE_INVALID_DATA = 1007,
  FW_WS_CLOSE_POLICY = 1008,
  FW_WS_CLOSE_TOO_BIG = 1009,
  FW_WS_CLOSE_INTERNAL_ERROR = 1011,
  FW_WS_CLOSE_TRY_AGAIN_LATER = 1013,
};

/* The longest payload of a control frame (RFC 6455 section 5.5). */
#define FW_WS_CONTROL_MAX 125
/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define FW_WS_HEADER_MAX 14

struct fw_ws_limits {
  uint64_t max_frame;   /* payload of one data frame */
  uint64_t max_message; /* payload of a whole (reassembled) message */
};

/* What one call of fw_ws_reader_feed found. */
enum fw_ws_result {
  FW_WS_NEED_MORE, /* every byte was consumed and nothing is complete yet */
  FW_WS_MESSAGE,   /* a whole message or control frame: see the event */
  FW_WS_FAIL,      /* the client broke the protocol: close with the event's code */
};

struct fw_ws_event {
  enum fw_ws_opcode opcode; /* TEXT, BINARY, CLOSE, PING or PONG (never CONTINUATION) */
  /* The unmasked payload (for CLOSE: the reason after the code). Borrowed: valid until the
   * next call on the reader. For TEXT it is valid UTF-8. */
  const uint8_t *payload;
  size_t len;
  /* CLOSE: the code received (FW_WS_CLOSE_NO_STATUS for an empty close frame).
   * FAIL: the code to close with (PROTOCOL_ERROR, INVALID_DATA, TOO_BIG). */
  uint16_t close_code;
  const char *error; /* FAIL: one static sentence naming the problem */
};

/* The incremental reader of one connection's client frames. Zero it (or call
 * fw_ws_reader_init) before use; release it with fw_ws_reader_free. */
struct fw_ws_reader {
  struct fw_ws_limits limits;
  uint8_t header[FW_WS_HEADER_MAX]; /* the current frame's header, while incomplete */
  uint8_t header_len;
  uint8_t opcode;         /* of the current frame */
  uint8_t message_opcode; /* TEXT or BINARY while a fragmented message is in flight; 0 */
  bool fin;               /* of the current frame */
  bool in_payload;        /* the header is complete; payload_left bytes to come */
  uint8_t mask[4];        /* of the current frame */
  uint8_t mask_offset;    /* position in `mask` of the next payload byte */
  uint32_t utf8_state;    /* validation of a text message across frames */
  uint64_t payload_left;  /* of the current frame */
  /* Payload bytes of the data message in flight gathered so far: the earlier fragments and
   * what has come of the current data frame. 0 between messages. Bytes of a control frame
   * gathered in the middle of a message follow these in `gathering`. */
  uint64_t message_len;
  /* Bytes of a message or frame split over reads, or NULL. Owned by the reader; capped at
   * limits.max_message plus one control frame (which may arrive between fragments). It is
   * allocated when the first such byte arrives and freed at the start of the next
   * fw_ws_reader_feed after the message (or control frame) it holds has been delivered, on
   * FW_WS_FAIL, and by fw_ws_reader_free. */
  struct fw_buf *gathering;
};

void fw_ws_reader_init(struct fw_ws_reader *reader, const struct fw_ws_limits *limits);
void fw_ws_reader_free(struct fw_ws_reader *reader);

/* Reads client frames from `data` (which it may unmask in place), stopping after the first
 * complete message or control frame or failure. *consumed tells how many bytes it used:
 * call again with the rest. After FW_WS_FAIL the reader must not be fed again.
 * The payload of an event points into `data` when the whole frame was there (a control
 * frame, or a data message of one frame), and into the reader's memory otherwise. That
 * memory is released at the start of the next call, so a caller that has nothing more to
 * feed can release it at once with a call with `len` 0 (`data` may then be NULL).
 * Client frames must be masked; control frames must be whole (FIN) and at most 125
 * bytes; a continuation needs a message in flight and a new message none; text must be
 * valid UTF-8 (checked as it arrives, so a bad byte fails before the message ends);
 * a close frame's payload is empty or a valid code and a UTF-8 reason. FW_ENOMEM comes
 * back as FW_WS_FAIL with FW_WS_CLOSE_INTERNAL_ERROR. */
enum fw_ws_result fw_ws_reader_feed(struct fw_ws_reader *reader, uint8_t *data, size_t len,
                                    size_t *consumed, struct fw_ws_event *event);

/* Whether the reader holds part of a frame or of a message (its memory is then in use).
 * False between messages, even while the payload of the last event is still borrowed. */
bool fw_ws_reader_busy(const struct fw_ws_reader *reader);

/* Writes the header of an unmasked server frame with FIN set into `out` and returns its
 * length (2, 4 or 10 bytes). */
size_t fw_ws_frame_header(uint8_t out[10], enum fw_ws_opcode opcode, uint64_t payload_len);

/* Appends a whole unmasked server frame (a control frame's payload is at most 125 bytes).
 * FW_ETOOBIG or FW_ENOMEM from the buffer, which is then unchanged. */
FW_MUST_CHECK int fw_ws_frame_append(struct fw_buf *out, enum fw_ws_opcode opcode,
                                     const void *payload, size_t len);

/* Appends a close frame with `code` (one a server may send: not 1005, 1006 or 1015) and
 * `reason` (UTF-8 or NULL; cut to fit 123 bytes, on a UTF-8 boundary). Errors as for
 * fw_ws_frame_append. */
FW_MUST_CHECK int fw_ws_close_append(struct fw_buf *out, uint16_t code, const char *reason);

/* Whether `key` is a valid Sec-WebSocket-Key (the base64 of 16 bytes, 24 characters), and
 * the Sec-WebSocket-Accept that answers a valid key: base64 of SHA-1(key + the RFC's GUID),
 * 28 characters and a NUL (an invalid key gets the empty string). */
bool fw_ws_key_valid(const char *key, size_t len);
void fw_ws_accept_key(const char *key, size_t len, char out[29]);

/* Whether `data` is valid UTF-8 (no overlong forms, no surrogates, nothing past
 * U+10FFFF). */
bool fw_utf8_valid(const uint8_t *data, size_t len);

#endif
