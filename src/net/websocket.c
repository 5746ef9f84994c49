#include "net/websocket.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/digest.h"

/* The bits of the first two bytes of a frame (RFC 6455 section 5.2). */
#define FIN_BIT 0x80u
#define RSV_BITS 0x70u
#define OPCODE_BITS 0x0Fu
#define MASK_BIT 0x80u
#define LENGTH_BITS 0x7Fu
/* The 7-bit lengths that announce a 16-bit and a 64-bit length. */
#define LENGTH_16 126u
#define LENGTH_64 127u
#define MASK_KEY_LEN 4u

/* The longest close reason: a control frame's payload less the 2 bytes of the code. */
#define CLOSE_REASON_MAX (FW_WS_CONTROL_MAX - 2)

/* Appended to the client's key before hashing (RFC 6455 section 1.3). */
static const char handshake_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Where an empty payload points, so that an event's payload is never NULL. */
static const uint8_t empty_payload[1];

/* ---- UTF-8 ----
 *
 * A deterministic automaton over bytes. A state tells what the bytes seen so far still
 * need to make a whole character; the byte classes are drawn so that the second byte of a
 * three- or four-byte sequence, whose range depends on the first, can be told apart:
 * E0 needs A0-BF (no overlong form), ED needs 80-9F (no surrogate), F0 needs 90-BF (no
 * overlong form) and F4 needs 80-8F (nothing past U+10FFFF). C0, C1 and F5-FF never
 * occur. The state is a plain number so that it fits the reader's utf8_state. */

enum utf8_state {
  UTF8_OK,  /* between characters */
  UTF8_BAD, /* invalid; stays so */
  UTF8_1,   /* one more continuation byte (80-BF) to come */
  UTF8_2,   /* two more */
  UTF8_3,   /* three more */
  UTF8_E0,  /* after E0: A0-BF, then one more */
  UTF8_ED,  /* after ED: 80-9F, then one more */
  UTF8_F0,  /* after F0: 90-BF, then two more */
  UTF8_F4,  /* after F4: 80-8F, then two more */
  UTF8_STATES
};

enum utf8_class {
  CLASS_ASCII,   /* 00-7F */
  CLASS_80,      /* 80-8F */
  CLASS_90,      /* 90-9F */
  CLASS_A0,      /* A0-BF */
  CLASS_INVALID, /* C0, C1, F5-FF */
  CLASS_LEAD2,   /* C2-DF */
  CLASS_E0,      /* E0 */
  CLASS_LEAD3,   /* E1-EC, EE, EF */
  CLASS_ED,      /* ED */
  CLASS_F0,      /* F0 */
  CLASS_LEAD4,   /* F1-F3 */
  CLASS_F4,      /* F4 */
  UTF8_CLASSES
};

/* The next state, by state (rows) and by the class of the byte (columns, in the order of
 * enum utf8_class). */
static const uint8_t utf8_next[UTF8_STATES][UTF8_CLASSES] = {
    [UTF8_OK] = {UTF8_OK, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_1, UTF8_E0, UTF8_2, UTF8_ED,
                 UTF8_F0, UTF8_3, UTF8_F4},
    [UTF8_BAD] = {UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                  UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_1] = {UTF8_BAD, UTF8_OK, UTF8_OK, UTF8_OK, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_2] = {UTF8_BAD, UTF8_1, UTF8_1, UTF8_1, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_3] = {UTF8_BAD, UTF8_2, UTF8_2, UTF8_2, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_E0] = {UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_1, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                 UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_ED] = {UTF8_BAD, UTF8_1, UTF8_1, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                 UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_F0] = {UTF8_BAD, UTF8_BAD, UTF8_2, UTF8_2, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                 UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
    [UTF8_F4] = {UTF8_BAD, UTF8_2, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD,
                 UTF8_BAD, UTF8_BAD, UTF8_BAD, UTF8_BAD},
};

static enum utf8_class utf8_class_of(uint8_t byte) {
  if (byte < 0x80)
    return CLASS_ASCII;
  if (byte < 0x90)
    return CLASS_80;
  if (byte < 0xA0)
    return CLASS_90;
  if (byte < 0xC0)
    return CLASS_A0;
  if (byte < 0xC2 || byte > 0xF4)
    return CLASS_INVALID;
  if (byte < 0xE0)
    return CLASS_LEAD2;
  if (byte == 0xE0)
    return CLASS_E0;
  if (byte == 0xED)
    return CLASS_ED;
  if (byte < 0xF0)
    return CLASS_LEAD3;
  if (byte == 0xF0)
    return CLASS_F0;
  if (byte == 0xF4)
    return CLASS_F4;
  return CLASS_LEAD4;
}

/* Runs the automaton from `state` over `len` bytes and returns the state it ends in,
 * stopping at the first byte that makes the text invalid. */
static uint32_t utf8_run(uint32_t state, const uint8_t *bytes, size_t len) {
  assert(state < UTF8_STATES);
  size_t i = 0;
  while (i < len) {
    /* Between characters, ASCII needs no table. */
    if (state == UTF8_OK) {
      while (i < len && bytes[i] < 0x80)
        i++;
      if (i == len)
        break;
    }
    state = utf8_next[state][utf8_class_of(bytes[i++])];
    if (state == UTF8_BAD)
      break;
  }
  return state;
}

bool fw_utf8_valid(const uint8_t *data, size_t len) {
  assert(data || len == 0);
  return utf8_run(UTF8_OK, data, len) == UTF8_OK;
}

/* ---- reading client frames ---- */

static bool opcode_is_control(unsigned opcode) { return (opcode & 0x8u) != 0; }

static bool opcode_known(unsigned opcode) {
  switch (opcode) {
  case FW_WS_CONTINUATION:
  case FW_WS_TEXT:
  case FW_WS_BINARY:
  case FW_WS_CLOSE:
  case FW_WS_PING:
  case FW_WS_PONG:
    return true;
  default:
    return false;
  }
}

/* The codes a close frame may carry (RFC 6455 section 7.4 and the IANA registry): the
 * defined ones that an endpoint may send, and those left to libraries and applications.
 * 1004 is reserved, and 1005, 1006 and 1015 only report what happened locally. */
static bool close_code_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* A gathered message may be joined by one control frame that arrives between its
 * fragments; the buffer's cap leaves room for it. */
static size_t gathering_limit(const struct fw_ws_limits *limits) {
  const uint64_t most = SIZE_MAX / 2 - FW_WS_CONTROL_MAX;
  uint64_t message = limits->max_message < most ? limits->max_message : most;
  return (size_t)(message + FW_WS_CONTROL_MAX);
}

static void drop_gathering(struct fw_ws_reader *reader) {
  if (!reader->gathering)
    return;
  fw_buf_free(reader->gathering);
  free(reader->gathering);
  reader->gathering = NULL;
}

/* Returns the reader to the state of a fresh one with the same limits. */
static void reset(struct fw_ws_reader *reader) {
  drop_gathering(reader);
  *reader = (struct fw_ws_reader){.limits = reader->limits};
}

void fw_ws_reader_init(struct fw_ws_reader *reader, const struct fw_ws_limits *limits) {
  assert(reader && limits);
  *reader = (struct fw_ws_reader){.limits = *limits};
}

void fw_ws_reader_free(struct fw_ws_reader *reader) { reset(reader); }

bool fw_ws_reader_busy(const struct fw_ws_reader *reader) {
  return reader->header_len > 0 || reader->in_payload || reader->message_opcode != 0;
}

static size_t gathered_len(const struct fw_ws_reader *reader) {
  return reader->gathering ? reader->gathering->len : 0;
}

/* Called at the start of each feed: the payload of the event delivered last is no longer
 * borrowed, so its bytes can go. Between messages the whole buffer is freed, which is
 * what keeps an idle reader from holding memory; in the middle of a fragmented message
 * only the control frame delivered from behind the message's bytes is dropped. */
static void release_delivered(struct fw_ws_reader *reader) {
  struct fw_buf *buf = reader->gathering;
  if (!buf || reader->in_payload || reader->header_len > 0)
    return;
  if (!reader->message_opcode) {
    drop_gathering(reader);
  } else if (buf->len > reader->message_len) {
    buf->len = (size_t)reader->message_len;
    buf->data[buf->len] = '\0';
  }
}

static int gather(struct fw_ws_reader *reader, const uint8_t *bytes, size_t len) {
  if (!reader->gathering) {
    struct fw_buf *buf = malloc(sizeof *buf);
    if (!buf)
      return FW_ENOMEM;
    fw_buf_init(buf, gathering_limit(&reader->limits));
    reader->gathering = buf;
  }
  return fw_buf_append(reader->gathering, bytes, len);
}

/* Unmasks `len` payload bytes in place, continuing the mask where the last call left it. */
static void unmask(struct fw_ws_reader *reader, uint8_t *bytes, size_t len) {
  uint8_t key[MASK_KEY_LEN];
  for (unsigned i = 0; i < MASK_KEY_LEN; i++)
    key[i] = reader->mask[(reader->mask_offset + i) % MASK_KEY_LEN];
  for (size_t i = 0; i < len; i++)
    bytes[i] = (uint8_t)(bytes[i] ^ key[i % MASK_KEY_LEN]);
  reader->mask_offset = (uint8_t)((reader->mask_offset + len) % MASK_KEY_LEN);
}

/* The whole header's length, known once its first two bytes are. Client frames always
 * carry a mask key (one without is refused before this is asked). */
static size_t header_size(uint8_t second_byte) {
  unsigned len7 = second_byte & LENGTH_BITS;
  size_t extended = len7 == LENGTH_16 ? 2 : len7 == LENGTH_64 ? 8 : 0;
  return 2 + extended + MASK_KEY_LEN;
}

/* Checks what the first two bytes of a header tell; NULL when they are acceptable. Every
 * problem found here is a protocol error. */
static const char *check_header_start(const struct fw_ws_reader *reader) {
  unsigned first = reader->header[0], second = reader->header[1];
  unsigned opcode = first & OPCODE_BITS;
  if (first & RSV_BITS)
    return "a reserved bit is set, but no extension was negotiated";
  if (!opcode_known(opcode))
    return "the frame has a reserved opcode";
  if (!(second & MASK_BIT))
    return "a client frame is not masked";
  if (opcode_is_control(opcode)) {
    if (!(first & FIN_BIT))
      return "a control frame is fragmented";
    if ((second & LENGTH_BITS) > FW_WS_CONTROL_MAX)
      return "a control frame's payload is longer than 125 bytes";
  } else if (opcode == FW_WS_CONTINUATION) {
    if (!reader->message_opcode)
      return "a continuation frame arrived with no message in flight";
  } else if (reader->message_opcode) {
    return "a new message began before the fragmented one ended";
  }
  return NULL;
}

/* Ends the reading: the connection is about to close, so what was gathered goes at once
 * rather than waiting for fw_ws_reader_free. */
static enum fw_ws_result fail(struct fw_ws_reader *reader, struct fw_ws_event *event, uint16_t code,
                              const char *error) {
  reset(reader);
  event->close_code = code;
  event->error = error;
  return FW_WS_FAIL;
}

/* Takes the complete header in reader->header: reads the length and the mask key, checks
 * the length against the caps, and starts the frame's payload. */
static enum fw_ws_result begin_frame(struct fw_ws_reader *reader, struct fw_ws_event *event) {
  const uint8_t *header = reader->header;
  unsigned opcode = header[0] & OPCODE_BITS;
  uint64_t len = header[1] & LENGTH_BITS;
  size_t at = 2;
  if (len == LENGTH_16) {
    len = (uint64_t)header[2] << 8 | header[3];
    at = 4;
  } else if (len == LENGTH_64) {
    len = 0;
    for (size_t i = 2; i < 10; i++)
      len = len << 8 | header[i];
    at = 10;
    if (len >> 63)
      return fail(reader, event, FW_WS_CLOSE_PROTOCOL_ERROR,
                  "a 64-bit frame length has its most significant bit set");
  }
  /* A longer length form than needed is accepted: RFC 6455 asks senders for the shortest,
   * and what the frame carries is the same either way. */

  bool fin = (header[0] & FIN_BIT) != 0;
  if (!opcode_is_control(opcode)) {
    if (opcode != FW_WS_CONTINUATION) {
      /* Between messages the reader holds nothing (see release_delivered). */
      assert(!reader->gathering && reader->message_len == 0);
      reader->utf8_state = UTF8_OK;
    }
    if (len > reader->limits.max_frame)
      return fail(reader, event, FW_WS_CLOSE_TOO_BIG, "a frame is larger than the frame limit");
    if (len > reader->limits.max_message || reader->message_len > reader->limits.max_message - len)
      return fail(reader, event, FW_WS_CLOSE_TOO_BIG, "a message is larger than the message limit");
    if (opcode != FW_WS_CONTINUATION && !fin)
      reader->message_opcode = (uint8_t)opcode;
  }
  memcpy(reader->mask, header + at, MASK_KEY_LEN);
  reader->mask_offset = 0;
  reader->opcode = (uint8_t)opcode;
  reader->fin = fin;
  reader->payload_left = len;
  reader->in_payload = true;
  reader->header_len = 0;
  return FW_WS_NEED_MORE;
}

static void set_payload(struct fw_ws_event *event, const uint8_t *payload, size_t len) {
  event->payload = len ? payload : empty_payload;
  event->len = len;
}

/* Delivers a whole control frame whose unmasked payload is `payload`. */
static enum fw_ws_result deliver_control(struct fw_ws_reader *reader, const uint8_t *payload,
                                         size_t len, struct fw_ws_event *event) {
  event->opcode = (enum fw_ws_opcode)reader->opcode;
  if (reader->opcode != FW_WS_CLOSE) {
    set_payload(event, payload, len);
    return FW_WS_MESSAGE;
  }
  if (len == 0) {
    event->close_code = FW_WS_CLOSE_NO_STATUS;
    set_payload(event, payload, 0);
    return FW_WS_MESSAGE;
  }
  if (len == 1)
    return fail(reader, event, FW_WS_CLOSE_PROTOCOL_ERROR,
                "a close frame's payload is a single byte");
  unsigned code = (unsigned)payload[0] << 8 | payload[1];
  if (!close_code_valid(code))
    return fail(reader, event, FW_WS_CLOSE_PROTOCOL_ERROR, "a close frame has an invalid code");
  if (!fw_utf8_valid(payload + 2, len - 2))
    return fail(reader, event, FW_WS_CLOSE_INVALID_DATA, "a close reason is not valid UTF-8");
  event->close_code = (uint16_t)code;
  set_payload(event, payload + 2, len - 2);
  return FW_WS_MESSAGE;
}

/* Whether the current frame's payload is text, to be checked as UTF-8. */
static bool frame_is_text(const struct fw_ws_reader *reader) {
  return reader->opcode == FW_WS_TEXT ||
         (reader->opcode == FW_WS_CONTINUATION && reader->message_opcode == FW_WS_TEXT);
}

static const char invalid_utf8[] = "a text message is not valid UTF-8";
static const char truncated_utf8[] = "a text message ends inside a UTF-8 sequence";

enum fw_ws_result fw_ws_reader_feed(struct fw_ws_reader *reader, uint8_t *data, size_t len,
                                    size_t *consumed, struct fw_ws_event *event) {
  assert(reader && consumed && event && (data || len == 0));
  *event = (struct fw_ws_event){.payload = NULL};
  release_delivered(reader);
  enum fw_ws_result result = FW_WS_NEED_MORE;
  size_t pos = 0;
  for (;;) {
    if (!reader->in_payload) {
      while (reader->header_len < 2 && pos < len)
        reader->header[reader->header_len++] = data[pos++];
      if (reader->header_len < 2)
        break;
      /* The first two bytes are checked before the rest of the header is waited for. */
      const char *error = check_header_start(reader);
      if (error) {
        result = fail(reader, event, FW_WS_CLOSE_PROTOCOL_ERROR, error);
        break;
      }
      size_t need = header_size(reader->header[1]);
      while (reader->header_len < need && pos < len)
        reader->header[reader->header_len++] = data[pos++];
      if (reader->header_len < need)
        break;
      result = begin_frame(reader, event);
      if (result == FW_WS_FAIL)
        break;
    }

    bool control = opcode_is_control(reader->opcode);
    bool text = frame_is_text(reader);
    size_t available = len - pos;

    /* A control frame, or a data frame that is a whole message, whose payload is all here
     * and none of it gathered yet, is delivered from `data` itself. */
    bool alone = control || (reader->fin && !reader->message_opcode);
    bool untouched =
        control ? gathered_len(reader) == reader->message_len : reader->message_len == 0;
    if (alone && untouched && reader->payload_left <= available) {
      size_t n = (size_t)reader->payload_left;
      uint8_t *payload = n ? data + pos : NULL;
      if (n)
        unmask(reader, payload, n);
      pos += n;
      reader->payload_left = 0;
      reader->in_payload = false;
      if (control) {
        result = deliver_control(reader, payload, n, event);
        break;
      }
      if (text) {
        reader->utf8_state = utf8_run(reader->utf8_state, payload, n);
        if (reader->utf8_state != UTF8_OK) {
          result = fail(reader, event, FW_WS_CLOSE_INVALID_DATA,
                        reader->utf8_state == UTF8_BAD ? invalid_utf8 : truncated_utf8);
          break;
        }
      }
      event->opcode = (enum fw_ws_opcode)reader->opcode;
      set_payload(event, payload, n);
      result = FW_WS_MESSAGE;
      break;
    }

    /* Otherwise the payload is gathered as it comes, text checked on arrival. */
    size_t n = reader->payload_left < available ? (size_t)reader->payload_left : available;
    if (n) {
      uint8_t *chunk = data + pos;
      unmask(reader, chunk, n);
      if (text) {
        reader->utf8_state = utf8_run(reader->utf8_state, chunk, n);
        if (reader->utf8_state == UTF8_BAD) {
          pos += n;
          result = fail(reader, event, FW_WS_CLOSE_INVALID_DATA, invalid_utf8);
          break;
        }
      }
      int rc = gather(reader, chunk, n);
      if (rc) {
        /* The caps were checked against the header, so only memory can run out here. */
        assert(rc == FW_ENOMEM);
        result = fail(reader, event, FW_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        break;
      }
      pos += n;
      reader->payload_left -= n;
      if (!control)
        reader->message_len += n;
    }
    if (reader->payload_left)
      break;
    reader->in_payload = false;

    if (control) {
      /* A control frame that arrives in the middle of a message is gathered behind the
       * message's bytes; release_delivered drops it again. */
      assert(reader->gathering && reader->gathering->len > reader->message_len);
      const uint8_t *payload = (const uint8_t *)reader->gathering->data + reader->message_len;
      result =
          deliver_control(reader, payload, reader->gathering->len - reader->message_len, event);
      break;
    }
    if (!reader->fin)
      continue;
    if (text && reader->utf8_state != UTF8_OK) {
      result = fail(reader, event, FW_WS_CLOSE_INVALID_DATA, truncated_utf8);
      break;
    }
    event->opcode = (enum fw_ws_opcode)(
        reader->opcode == FW_WS_CONTINUATION ? reader->message_opcode : reader->opcode);
    set_payload(event, reader->gathering ? (const uint8_t *)reader->gathering->data : NULL,
                (size_t)reader->message_len);
    reader->message_opcode = 0;
    reader->message_len = 0;
    result = FW_WS_MESSAGE;
    break;
  }
  *consumed = pos;
  return result;
}

/* ---- writing server frames ---- */

size_t fw_ws_frame_header(uint8_t out[10], enum fw_ws_opcode opcode, uint64_t payload_len) {
  assert(opcode_known((unsigned)opcode));
  assert(payload_len >> 63 == 0);
  out[0] = (uint8_t)(FIN_BIT | (unsigned)opcode);
  if (payload_len < LENGTH_16) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  if (payload_len <= UINT16_MAX) {
    out[1] = LENGTH_16;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    return 4;
  }
  out[1] = LENGTH_64;
  for (unsigned i = 0; i < 8; i++)
    out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
  return 10;
}

int fw_ws_frame_append(struct fw_buf *out, enum fw_ws_opcode opcode, const void *payload,
                       size_t len) {
  assert(out && (payload || len == 0));
  assert(!opcode_is_control((unsigned)opcode) || len <= FW_WS_CONTROL_MAX);
  uint8_t header[10];
  size_t header_len = fw_ws_frame_header(header, opcode, len);
  if (len > SIZE_MAX - header_len)
    return FW_ETOOBIG;
  /* Reserving the whole frame first leaves the buffer unchanged when it does not fit. */
  int rc = fw_buf_reserve(out, header_len + len);
  if (rc)
    return rc;
  rc = fw_buf_append(out, header, header_len);
  if (!rc)
    rc = fw_buf_append(out, payload, len);
  return rc;
}

int fw_ws_close_append(struct fw_buf *out, uint16_t code, const char *reason) {
  assert(close_code_valid(code));
  size_t reason_len = reason ? strlen(reason) : 0;
  if (reason_len > CLOSE_REASON_MAX) {
    reason_len = CLOSE_REASON_MAX;
    /* Back up to the start of the character that the cut would split. */
    while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0u) == 0x80u)
      reason_len--;
  }
  uint8_t payload[FW_WS_CONTROL_MAX];
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (reason_len)
    memcpy(payload + 2, reason, reason_len);
  return fw_ws_frame_append(out, FW_WS_CLOSE, payload, 2 + reason_len);
}

/* ---- the opening handshake ---- */

/* The length of a Sec-WebSocket-Key: 16 bytes in base64, 22 characters and "==". */
#define KEY_LEN 24

static bool base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

bool fw_ws_key_valid(const char *key, size_t len) {
  /* The 4 bits that the last character carries past the 16th byte are not required to
   * be zero: a decoder may ignore them (RFC 4648 section 3.5), and the accept key is
   * computed from the text, not from the bytes. */
  if (!key || len != KEY_LEN || key[KEY_LEN - 2] != '=' || key[KEY_LEN - 1] != '=')
    return false;
  for (size_t i = 0; i < KEY_LEN - 2; i++)
    if (!base64_char(key[i]))
      return false;
  return true;
}

void fw_ws_accept_key(const char *key, size_t len, char out[29]) {
  /* An invalid key gets no answer; the length check also keeps `joined` in bounds. */
  if (!fw_ws_key_valid(key, len)) {
    out[0] = '\0';
    return;
  }
  char joined[KEY_LEN + sizeof handshake_guid - 1];
  memcpy(joined, key, KEY_LEN);
  memcpy(joined + KEY_LEN, handshake_guid, sizeof handshake_guid - 1);
  uint8_t hash[FW_SHA1_LEN];
  fw_sha1(joined, sizeof joined, hash);
  fw_base64_encode(hash, sizeof hash, out);
}
