/* The vocabulary of the model: keys, flag types, roles, and the rules every name and key
 * follows. Pure: no I/O, no threads.
 *
 * A key (project, environment, flag, config) is 1 to FW_KEY_MAX bytes of
 * [A-Za-z0-9._-], starting with a letter or digit: safe in a URL path, a log line and a
 * Prometheus label without escaping. */
#ifndef FW_CORE_MODEL_H
#define FW_CORE_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#define FW_KEY_MAX 64
#define FW_NAME_MAX 200
#define FW_DESCRIPTION_MAX 2000
#define FW_TAG_MAX 64
#define FW_TAGS_MAX 32
#define FW_VARIANTS_MAX 100
/* Segments per project: evaluation takes an environment's segments as one array. */
#define FW_MODEL_MAX_SEGMENTS 1000
/* A user's JSON value (variant or config) in bytes at most. */
#define FW_VALUE_MAX (256 * 1024)

enum fw_flag_type { FW_FLAG_BOOLEAN, FW_FLAG_STRING, FW_FLAG_NUMBER, FW_FLAG_JSON };

bool fw_model_key_valid(const char *key, size_t len);

/* The name of a flag type ("boolean"), and back; false for an unknown name. */
const char *fw_flag_type_name(enum fw_flag_type type);
bool fw_flag_type_from(const char *name, enum fw_flag_type *type);

#endif
