/* Keys and tokens (DESIGN.md 1): a prefix naming the kind, then 32 random bytes in
 * base64url. Only their SHA-256 is ever stored; the text is shown once.
 *
 * Thread: any. */
#ifndef FW_CORE_KEYS_H
#define FW_CORE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/common.h"
#include "util/digest.h"

#define FW_KEY_RANDOM_BYTES 32
#define FW_KEY_PREFIX_LEN 7 /* "fw_srv_", "fw_cli_", "fw_adm_" */
#define FW_KEY_LEN (FW_KEY_PREFIX_LEN + FW_BASE64URL_LEN(FW_KEY_RANDOM_BYTES))

/* Makes a new key of `kind` into `text` (FW_KEY_LEN + 1 bytes) and its hash. FW_EIO
 * when no secure randomness is available. */
FW_MUST_CHECK int fw_key_generate(enum fw_credential_kind kind, char *text,
                                  uint8_t hash[FW_SHA256_LEN]);

/* The kind a key's text claims by its prefix; false when it has none of ours. */
bool fw_key_kind(const char *text, size_t len, enum fw_credential_kind *kind);

#endif
