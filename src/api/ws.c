#include "api/ws.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/keys.h"
#include "net/server.h"
#include "net/websocket.h"
#include "state/mutations.h"
#include "util/json.h"
#include "util/rawjson.h"

/* The longest `id` a request may carry, as JSON text. */
#define ID_TEXT_MAX 64
/* A channel's text: a prefix and a key. */
#define CHANNEL_TEXT_MAX 96
/* What a refused handshake is told to wait, in seconds. */
#define BUSY_RETRY_AFTER "5"

static void answer_error(struct fw_http_response *res, const struct fw_http_request *req,
                         int status, const char *code, const char *message) {
  if (fw_http_set_error(res, req, status, code, message))
    res->status = 500;
}

/* Whether the comma-separated header `name` lists `token` (case-insensitive). */
static bool header_has_token(const struct fw_http_request *req, const char *name,
                             const char *token) {
  size_t len;
  const char *value = fw_http_header(req, name, &len);
  size_t token_len = strlen(token);
  for (size_t i = 0; value && i < len;) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
      i++;
    size_t start = i;
    while (i < len && value[i] != ',')
      i++;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
      end--;
    if (end - start == token_len && !strncasecmp(value + start, token, token_len))
      return true;
  }
  return false;
}

/* 426: the client must speak WebSocket version 13 here. */
static void answer_upgrade_required(struct fw_http_response *res, const struct fw_http_request *req,
                                    const char *message) {
  answer_error(res, req, 426, "upgrade_required", message);
  if (fw_http_add_header(res, "Upgrade", "websocket") ||
      fw_http_add_header(res, "Sec-WebSocket-Version", "13"))
    res->status = 500;
}

/* Checks the opening handshake (RFC 6455 4.2.1). False with the answer set. */
static bool check_handshake(const struct fw_http_request *req, struct fw_http_response *res,
                            char accept[29]) {
  size_t len;
  if (req->method != FW_HTTP_GET) {
    answer_error(res, req, 405, "method_not_allowed", "a WebSocket opens with GET");
    if (fw_http_add_header(res, "Allow", "GET"))
      res->status = 500;
    return false;
  }
  if (!fw_http_header(req, "Upgrade", &len)) {
    answer_upgrade_required(res, req, "this is a WebSocket endpoint: send 'Upgrade: websocket'");
    return false;
  }
  if (!header_has_token(req, "Upgrade", "websocket") ||
      !header_has_token(req, "Connection", "upgrade")) {
    answer_error(res, req, 400, "invalid_handshake",
                 "a WebSocket handshake needs 'Upgrade: websocket' and 'Connection: Upgrade'");
    return false;
  }
  if (req->http10 || !fw_http_header(req, "Host", &len)) {
    answer_error(res, req, 400, "invalid_handshake",
                 "a WebSocket handshake is an HTTP/1.1 request with a Host header");
    return false;
  }
  const char *version = fw_http_header(req, "Sec-WebSocket-Version", &len);
  if (!version || len != 2 || memcmp(version, "13", 2) != 0) {
    answer_upgrade_required(res, req, "only WebSocket version 13 is spoken here");
    return false;
  }
  const char *key = fw_http_header(req, "Sec-WebSocket-Key", &len);
  if (!key || !fw_ws_key_valid(key, len)) {
    answer_error(res, req, 400, "invalid_handshake",
                 "Sec-WebSocket-Key must be the base64 of 16 random bytes");
    return false;
  }
  fw_ws_accept_key(key, len, accept);
  return true;
}

static void open_socket(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  const struct fw_ws_api *api = ctx;
  char accept[29];
  if (!check_handshake(req, res, accept))
    return;
  struct fw_key_scope scope;
  if (!fw_keys_authorize_stream(api->writer, req, res, FW_KEYS_SERVER | FW_KEYS_CLIENT, &scope))
    return;
  size_t origin_len;
  const char *origin = fw_http_header(req, "Origin", &origin_len);
  if (origin && !fw_env_origin_allowed(scope.env, origin, origin_len))
    return answer_error(res, req, 403, "origin_not_allowed",
                        "this environment does not accept WebSockets from this origin");
  struct fw_hub_request request = {.kind = FW_HUB_SOCKET,
                                   .definitions = scope.kind == FW_CREDENTIAL_SERVER,
                                   .environment_id = scope.env->env->id};
  memcpy(request.key_hash, scope.credential->hash, sizeof request.key_hash);
  int rc = fw_hub_open_socket(api->hub, res, &request, accept);
  if (rc == FW_EBUSY) {
    answer_error(res, req, 503, "overloaded", "the server cannot take another stream now");
    if (fw_http_add_header(res, "Retry-After", BUSY_RETRY_AFTER))
      res->status = 500;
  } else if (rc) {
    answer_error(res, req, 503, "out_of_memory", "the server is out of memory");
  }
}

/* ---- messages ---- */

/* A client message as read: its `id` (JSON text) for the answer. */
struct message {
  struct fw_hub_socket *socket;
  struct fw_rawjson body;
  const char *id;
  size_t id_len;
};

/* Answers with `error`; the socket stays open. */
static void send_error(const struct message *m, const char *code, const char *text) {
  struct fw_buf payload;
  /* Room for any message here escaped (a context's error is at most 256 bytes) and an id. */
  fw_buf_init(&payload, 4096);
  int rc = fw_buf_appendf(&payload, "{\"code\":\"%s\",\"message\":", code);
  if (!rc)
    rc = fw_json_append_string(&payload, text, strlen(text));
  if (!rc && m->id) {
    rc = fw_buf_append_str(&payload, ",\"id\":");
    if (!rc)
      rc = fw_buf_append(&payload, m->id, m->id_len);
  }
  if (!rc)
    rc = fw_buf_append_char(&payload, '}');
  if (!rc)
    fw_hub_socket_send(m->socket, "error", -1, payload.data, payload.len);
  fw_buf_free(&payload);
}

/* Reads a list of channels into `filter`. False with the error sent. */
static bool read_channels(const struct message *m, struct fw_hub_filter *filter) {
  struct fw_rawjson channels, channel;
  if (fw_rawjson_member(m->body, "channels", &channels) != FW_OK ||
      fw_rawjson_type(channels) != FW_RAWJSON_ARRAY) {
    send_error(m, "bad_channel", "\"channels\" must be a list of channel names");
    return false;
  }
  /* The list stops at the cap, so a long one costs no more than 256 entries. */
  for (size_t i = 0; fw_rawjson_element(channels, i, &channel) == FW_OK; i++) {
    char text[CHANNEL_TEXT_MAX];
    int rc = FW_OK;
    if (fw_rawjson_type(channel) != FW_RAWJSON_STRING ||
        fw_rawjson_string(channel, text, sizeof text) != FW_OK ||
        !fw_hub_filter_add_channel(filter, text, strlen(text), &rc) || rc) {
      char message[160];
      if (rc == FW_ETOOBIG)
        snprintf(message, sizeof message, "a socket holds at most 256 channels");
      else if (rc)
        snprintf(message, sizeof message, "the server is out of memory");
      else
        snprintf(message, sizeof message,
                 "channel %zu is not flags, flags.<key>, tags.<tag>, configs or configs.<key>", i);
      send_error(m, "bad_channel", message);
      return false;
    }
  }
  return true;
}

/* Reads `since` and `epoch`. False with the error sent. */
static bool read_cursor(const struct message *m, struct fw_hub_socket_change *change) {
  struct fw_rawjson since, epoch;
  if (fw_rawjson_member(m->body, "since", &since) == FW_OK) {
    bool digits = fw_rawjson_type(since) == FW_RAWJSON_NUMBER && since.len <= 18;
    int64_t cursor = 0;
    for (size_t i = 0; digits && i < since.len; i++) {
      digits = since.text[i] >= '0' && since.text[i] <= '9';
      cursor = cursor * 10 + (since.text[i] - '0');
    }
    if (!digits) {
      send_error(m, "bad_cursor", "\"since\" must be a revision: a whole number");
      return false;
    }
    change->has_cursor = true;
    change->cursor = cursor;
  }
  if (fw_rawjson_member(m->body, "epoch", &epoch) == FW_OK &&
      (fw_rawjson_type(epoch) != FW_RAWJSON_STRING ||
       fw_rawjson_string(epoch, change->epoch, sizeof change->epoch) != FW_OK)) {
    send_error(m, "bad_cursor", "\"epoch\" must be the epoch of `connected`, a string");
    return false;
  }
  return true;
}

/* Reads an optional `context` object. False with the error sent. */
static bool read_context(const struct message *m, bool *given, struct fw_eval_context **out) {
  struct fw_rawjson context;
  *given = fw_rawjson_member(m->body, "context", &context) == FW_OK;
  if (!*given)
    return true;
  if (fw_rawjson_type(context) != FW_RAWJSON_OBJECT) {
    send_error(m, "bad_context", "\"context\" must be a JSON object");
    return false;
  }
  enum fw_eval_error code;
  char error[256];
  int rc = fw_eval_context_parse(context.text, context.len, out, &code, error, sizeof error);
  if (rc) {
    send_error(m, "bad_context", rc == FW_ENOMEM ? "the server is out of memory" : error);
    return false;
  }
  return true;
}

static void handle_subscribe(const struct message *m, bool unsubscribe) {
  const struct fw_project_node *project;
  const struct fw_env_node *env;
  bool definitions;
  if (!fw_hub_socket_scope(m->socket, &project, &env, &definitions))
    return;
  struct fw_hub_filter channels = {0};
  struct fw_eval_context *context = NULL;
  struct fw_hub_socket_change change = {.unsubscribe = unsubscribe,
                                        .channels = &channels,
                                        .context = &context,
                                        .id = m->id,
                                        .id_len = m->id_len};
  struct fw_rawjson given;
  if (!unsubscribe && definitions && fw_rawjson_member(m->body, "context", &given) == FW_OK) {
    send_error(m, "context_not_allowed",
               "a server key's socket carries definitions; a context is for client keys");
    goto done;
  }
  if (!read_channels(m, &channels) ||
      (!unsubscribe &&
       (!read_cursor(m, &change) || !read_context(m, &change.replace_context, &context))))
    goto done;
  int rc = fw_hub_socket_subscribe(m->socket, &change);
  if (rc == FW_ETOOBIG)
    send_error(m, "bad_channel", "a socket holds at most 256 channels");
  else if (rc)
    send_error(m, "internal", "the server is out of memory");
done:
  fw_hub_filter_free(&channels);
  fw_eval_context_free(context);
}

static void handle_evaluate(const struct message *m) {
  const struct fw_project_node *project;
  const struct fw_env_node *env;
  bool definitions;
  if (!fw_hub_socket_scope(m->socket, &project, &env, &definitions))
    return;
  struct fw_eval_context *context = NULL;
  struct fw_hub_filter filter = {0};
  struct fw_rawjson flags, flag;
  bool given;
  struct fw_buf values, payload;
  fw_buf_init(&values, FW_WS_MESSAGE_MAX * 64);
  fw_buf_init(&payload, FW_WS_MESSAGE_MAX * 64);
  if (!read_context(m, &given, &context))
    goto done;
  if (fw_rawjson_member(m->body, "flags", &flags) == FW_OK) {
    bool ok = fw_rawjson_type(flags) == FW_RAWJSON_ARRAY;
    filter.exact = true;
    for (size_t i = 0; ok && fw_rawjson_element(flags, i, &flag) == FW_OK; i++) {
      char key[CHANNEL_TEXT_MAX], channel[CHANNEL_TEXT_MAX + 8];
      int rc = FW_OK;
      ok = fw_rawjson_type(flag) == FW_RAWJSON_STRING &&
           fw_rawjson_string(flag, key, sizeof key) == FW_OK &&
           snprintf(channel, sizeof channel, "flags.%s", key) < (int)sizeof channel &&
           fw_hub_filter_add_channel(&filter, channel, strlen(channel), &rc) && !rc;
    }
    if (!ok) {
      send_error(m, "bad_request", "\"flags\" must be a list of at most 256 flag keys");
      goto done;
    }
  }
  int rc = fw_hub_render_values(&values, project, env, !definitions, context,
                                filter.exact ? &filter : NULL, false);
  if (!rc)
    rc = fw_buf_append_char(&payload, '{');
  if (!rc && m->id) {
    rc = fw_buf_append_str(&payload, "\"id\":");
    if (!rc)
      rc = fw_buf_append(&payload, m->id, m->id_len);
    if (!rc && values.len > 2)
      rc = fw_buf_append_char(&payload, ',');
  }
  /* The answer of POST /v1/evaluate, after the id. */
  if (!rc)
    rc = fw_buf_append(&payload, values.data + 1, values.len - 1);
  if (rc)
    send_error(m, "internal", "the answer could not be built");
  else
    fw_hub_socket_send(m->socket, "evaluation_result", env->revision, payload.data, payload.len);
done:
  fw_buf_free(&values);
  fw_buf_free(&payload);
  fw_hub_filter_free(&filter);
  fw_eval_context_free(context);
}

static void on_socket_message(struct fw_hub_socket *socket, const char *text, size_t len,
                              void *ctx) {
  (void)ctx;
  struct message m = {.socket = socket};
  struct fw_rawjson type, id;
  if (fw_rawjson_validate(text, len, &m.body, NULL, NULL) != FW_OK ||
      fw_rawjson_type(m.body) != FW_RAWJSON_OBJECT)
    return send_error(&m, "bad_message", "a message must be one JSON object");
  if (fw_rawjson_member(m.body, "id", &id) == FW_OK) {
    enum fw_rawjson_type id_type = fw_rawjson_type(id);
    bool integer = id_type == FW_RAWJSON_NUMBER && !memchr(id.text, '.', id.len) &&
                   !memchr(id.text, 'e', id.len) && !memchr(id.text, 'E', id.len);
    if ((id_type != FW_RAWJSON_STRING && !integer) || id.len > ID_TEXT_MAX)
      return send_error(&m, "bad_message",
                        "\"id\" must be a string or an integer of at most 64 bytes of JSON");
    m.id = id.text;
    m.id_len = id.len;
  }
  char name[32];
  if (fw_rawjson_member(m.body, "type", &type) != FW_OK ||
      fw_rawjson_type(type) != FW_RAWJSON_STRING ||
      fw_rawjson_string(type, name, sizeof name) != FW_OK)
    return send_error(&m, "bad_message", "a message needs a \"type\"");
  if (!strcmp(name, "subscribe"))
    handle_subscribe(&m, false);
  else if (!strcmp(name, "unsubscribe"))
    handle_subscribe(&m, true);
  else if (!strcmp(name, "evaluate"))
    handle_evaluate(&m);
  else if (!strcmp(name, "ping")) {
    char payload[ID_TEXT_MAX + 16];
    int n = m.id ? snprintf(payload, sizeof payload, "{\"id\":%.*s}", (int)m.id_len, m.id)
                 : snprintf(payload, sizeof payload, "{}");
    fw_hub_socket_send(socket, "pong", -1, payload, (size_t)n);
  } else {
    send_error(&m, "unknown_type", "the type is not subscribe, unsubscribe, evaluate or ping");
  }
}

int fw_ws_api_register(struct fw_router *router, struct fw_ws_api *api) {
  fw_hub_set_socket_handler(api->hub, on_socket_message, api);
  return fw_router_add(router, FW_HTTP_GET, "/v1/ws", open_socket, api);
}
