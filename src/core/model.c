#include "core/model.h"

#include <string.h>

#include "util/common.h"

static bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool fw_model_key_valid(const char *key, size_t len) {
  if (len == 0 || len > FW_KEY_MAX || !key_char(key[0]) || key[0] == '.' || key[0] == '_' ||
      key[0] == '-')
    return false;
  for (size_t i = 1; i < len; i++)
    if (!key_char(key[i]))
      return false;
  return true;
}

static const char *const type_names[] = {
    [FW_FLAG_BOOLEAN] = "boolean",
    [FW_FLAG_STRING] = "string",
    [FW_FLAG_NUMBER] = "number",
    [FW_FLAG_JSON] = "json",
};

const char *fw_flag_type_name(enum fw_flag_type type) { return type_names[type]; }

bool fw_flag_type_from(const char *name, enum fw_flag_type *type) {
  for (size_t i = 0; i < FW_ARRAY_LEN(type_names); i++) {
    if (!strcmp(name, type_names[i])) {
      *type = (enum fw_flag_type)i;
      return true;
    }
  }
  return false;
}
