/* Framing of the hub's events for its two transports: a Server-Sent Events block, or a
 * WebSocket text frame holding one JSON object (docs/protocol.md sections 3 and 6).
 *
 * Every event is written as its JSON payload between fw_frame_begin and fw_frame_end.
 * For SSE that is `event: <name>\nid: <rev>\ndata: <payload>\n\n`. For WebSocket the
 * payload object gets `"type":"<name>"` (and `"rev"` when it lacks one) as its first
 * members, and the frame header in front: the same content as the SSE event, in one
 * message a client can dispatch on `type`.
 *
 * Thread: pure functions over the caller's buffer. */
#ifndef FW_HUB_FRAME_H
#define FW_HUB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/common.h"

enum fw_frame_format { FW_FRAME_SSE, FW_FRAME_WS, FW_FRAME_FORMATS };

/* One event being written into `out`; several may follow each other in one buffer. */
struct fw_frame {
  struct fw_buf *out;
  enum fw_frame_format format;
  const char *event; /* NULL: an unnamed SSE event (WebSocket needs a name) */
  int64_t revision;  /* < 0: no id */
  size_t mark;       /* where the payload starts */
};

/* Starts an event; the caller then appends its payload, one JSON object. FW_ENOMEM,
 * FW_ETOOBIG from the buffer. */
FW_MUST_CHECK int fw_frame_begin(struct fw_frame *frame, struct fw_buf *out,
                                 enum fw_frame_format format, const char *event, int64_t revision);

/* Ends the event begun with fw_frame_begin. FW_EINVAL when the payload is not an object. */
FW_MUST_CHECK int fw_frame_end(struct fw_frame *frame);

/* Appends a whole event whose payload is `payload` (an object's text). */
FW_MUST_CHECK int fw_frame_append(struct fw_buf *out, enum fw_frame_format format,
                                  const char *event, int64_t revision, const char *payload,
                                  size_t len);

#endif
