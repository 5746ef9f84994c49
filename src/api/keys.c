#include "api/keys.h"

#include <string.h>
#include <strings.h>

#include "util/digest.h"
#include "util/time.h"

/* Room for any key we issue, with margin, once decoded from a URL. */
#define KEY_TEXT_MAX 128
#define CLIENT_KEY_PREFIX "fw_cli_"

static bool refuse(struct fw_http_response *res, const struct fw_http_request *req, int status,
                   const char *code, const char *message) {
  if (fw_http_set_error(res, req, status, code, message) != FW_OK)
    res->status = 500;
  return false;
}

bool fw_keys_authorize(const struct fw_writer *writer, const struct fw_http_request *req,
                       struct fw_http_response *res, const char *header, unsigned accept,
                       struct fw_key_scope *out) {
  size_t len;
  const char *value = fw_http_header(req, header, &len);
  bool bearer = !strcasecmp(header, "Authorization");
  if (value && bearer) {
    if (len < 7 || strncasecmp(value, "Bearer ", 7) != 0)
      value = NULL;
    else {
      value += 7;
      len -= 7;
    }
  }
  if (!value || len == 0)
    return refuse(res, req, 401, "unauthorized",
                  bearer ? "an environment key is required: 'Authorization: Bearer fw_cli_...'"
                         : "an environment key is required in the X-Environment-Key header");
  return fw_keys_authorize_text(writer, req, res, value, len, accept, out);
}

bool fw_keys_authorize_text(const struct fw_writer *writer, const struct fw_http_request *req,
                            struct fw_http_response *res, const char *value, size_t len,
                            unsigned accept, struct fw_key_scope *out) {
  const struct fw_world *world = fw_writer_world(writer, fw_http_response_loop(res));
  uint8_t hash[FW_SHA256_LEN];
  fw_sha256(value, len, hash);
  const struct fw_credential *credential = fw_world_credential(world, hash);
  if (!credential || (credential->expires_ms && credential->expires_ms <= fw_time_wall_ms()))
    return refuse(res, req, 401, "unauthorized", "the key is unknown or has expired");
  if (credential->kind == FW_CREDENTIAL_ADMIN)
    return refuse(res, req, 403, "forbidden",
                  "an admin token cannot read flags here; use an environment key");
  unsigned kind = credential->kind == FW_CREDENTIAL_SERVER ? FW_KEYS_SERVER : FW_KEYS_CLIENT;
  if (!(accept & kind))
    return refuse(res, req, 403, "forbidden",
                  kind == FW_KEYS_CLIENT ? "this needs a server key; client keys see values only"
                                         : "this takes a client key");
  if (!fw_world_find_env(world, credential->environment_id, &out->project, &out->env))
    return refuse(res, req, 401, "unauthorized", "the key's environment no longer exists");
  out->world = world;
  out->kind = credential->kind;
  out->credential = credential;
  return true;
}

bool fw_keys_authorize_stream(const struct fw_writer *writer, const struct fw_http_request *req,
                              struct fw_http_response *res, unsigned accept,
                              struct fw_key_scope *out) {
  const char *value;
  size_t len;
  if (fw_http_header(req, "Authorization", &len) || !fw_http_query(req, "key", &value, &len))
    return fw_keys_authorize(writer, req, res, "Authorization", accept, out);
  char key[KEY_TEXT_MAX];
  size_t key_len;
  if (!fw_http_query_decode(value, len, key, sizeof key, &key_len) || key_len == 0)
    return refuse(res, req, 401, "unauthorized", "the key is unknown or has expired");
  if (key_len < strlen(CLIENT_KEY_PREFIX) ||
      memcmp(key, CLIENT_KEY_PREFIX, strlen(CLIENT_KEY_PREFIX)) != 0)
    return refuse(res, req, 401, "key_in_url",
                  "only a client key may appear in a URL; send server keys in "
                  "'Authorization: Bearer'");
  return fw_keys_authorize_text(writer, req, res, key, key_len, accept, out);
}
