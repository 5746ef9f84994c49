#include "hub/frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net/websocket.h"

int fw_frame_begin(struct fw_frame *frame, struct fw_buf *out, enum fw_frame_format format,
                   const char *event, int64_t revision) {
  *frame = (struct fw_frame){out, format, event, revision, 0};
  int rc = FW_OK;
  if (format == FW_FRAME_SSE) {
    if (event)
      rc = fw_buf_appendf(out, "event: %s\n", event);
    if (!rc && revision >= 0)
      rc = fw_buf_appendf(out, "id: %" PRId64 "\n", revision);
    if (!rc)
      rc = fw_buf_append_str(out, "data: ");
  }
  frame->mark = out->len;
  return rc;
}

/* Rewrites the payload object at frame->mark into a WebSocket message: the header, then
 * `{"type":"<event>"[,"rev":N]` and the payload's members. */
static int websocket_end(struct fw_frame *frame) {
  struct fw_buf *out = frame->out;
  size_t payload_len = out->len - frame->mark;
  const char *payload = out->data + frame->mark;
  if (payload_len < 2 || payload[0] != '{' || out->data[out->len - 1] != '}')
    return FW_EINVAL;
  static const char rev_member[] = "{\"rev\":";
  bool has_rev =
      payload_len >= sizeof rev_member - 1 && !memcmp(payload, rev_member, sizeof rev_member - 1);
  char prefix[160];
  int prefix_len =
      frame->revision >= 0 && !has_rev
          ? snprintf(prefix, sizeof prefix, "{\"type\":\"%s\",\"rev\":%" PRId64 "%s",
                     frame->event ? frame->event : "", frame->revision, payload_len > 2 ? "," : "")
          : snprintf(prefix, sizeof prefix, "{\"type\":\"%s\"%s", frame->event ? frame->event : "",
                     payload_len > 2 ? "," : "");
  if (prefix_len < 0 || (size_t)prefix_len >= sizeof prefix)
    return FW_EINVAL;
  /* The message: prefix, then the payload without its opening brace. */
  size_t message_len = (size_t)prefix_len + payload_len - 1;
  uint8_t header[10];
  size_t header_len = fw_ws_frame_header(header, FW_WS_TEXT, message_len);
  size_t grow = header_len + (size_t)prefix_len - 1;
  int rc = fw_buf_reserve(out, grow);
  if (rc)
    return rc;
  char *at = out->data + frame->mark;
  memmove(at + grow + 1, at + 1, payload_len - 1);
  memcpy(at, header, header_len);
  memcpy(at + header_len, prefix, (size_t)prefix_len);
  out->len += grow;
  out->data[out->len] = '\0';
  return FW_OK;
}

int fw_frame_end(struct fw_frame *frame) {
  if (frame->format == FW_FRAME_WS)
    return websocket_end(frame);
  return fw_buf_append_str(frame->out, "\n\n");
}

int fw_frame_append(struct fw_buf *out, enum fw_frame_format format, const char *event,
                    int64_t revision, const char *payload, size_t len) {
  struct fw_frame frame;
  int rc = fw_frame_begin(&frame, out, format, event, revision);
  if (!rc)
    rc = fw_buf_append(out, payload, len);
  if (!rc)
    rc = fw_frame_end(&frame);
  return rc;
}
