#include "core/keys.h"

#include <string.h>

#include "util/random.h"

static const char *const prefixes[] = {
    [FW_CREDENTIAL_SERVER] = "fw_srv_",
    [FW_CREDENTIAL_CLIENT] = "fw_cli_",
    [FW_CREDENTIAL_ADMIN] = "fw_adm_",
};

int fw_key_generate(enum fw_credential_kind kind, char *text, uint8_t hash[FW_SHA256_LEN]) {
  uint8_t secret[FW_KEY_RANDOM_BYTES];
  int rc = fw_random_secure(secret, sizeof secret);
  if (rc)
    return rc;
  memcpy(text, prefixes[kind], FW_KEY_PREFIX_LEN);
  fw_base64url_encode(secret, sizeof secret, text + FW_KEY_PREFIX_LEN);
  fw_sha256(text, FW_KEY_LEN, hash);
  return FW_OK;
}

bool fw_key_kind(const char *text, size_t len, enum fw_credential_kind *kind) {
  if (len < FW_KEY_PREFIX_LEN)
    return false;
  for (size_t i = 0; i < FW_ARRAY_LEN(prefixes); i++) {
    if (memcmp(text, prefixes[i], FW_KEY_PREFIX_LEN) == 0) {
      *kind = (enum fw_credential_kind)i;
      return true;
    }
  }
  return false;
}
