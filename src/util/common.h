/* Shared conventions: error codes, attributes and tiny helpers used by every module. */
#ifndef FW_UTIL_COMMON_H
#define FW_UTIL_COMMON_H

#include <stddef.h>

/* Fallible functions return 0 or a negative FW_E* code and are marked so that a
 * caller cannot silently drop the result. */
#define FW_MUST_CHECK __attribute__((warn_unused_result))
#define FW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FW_UNUSED(x) ((void)(x))

enum fw_error {
  FW_OK = 0,
  FW_ENOMEM = -1,    /* an allocation failed */
  FW_ETOOBIG = -2,   /* a hard cap on a buffer or count was reached */
  FW_EINVAL = -3,    /* malformed input */
  FW_EIO = -4,       /* the operating system or a library refused */
  FW_ENOTFOUND = -5, /* the thing asked for does not exist */
  FW_EEXISTS = -6,   /* a unique key is taken already */
  FW_EBUSY = -7      /* a limit on what runs at once was reached: try again later */
};

/* Returns a static, human-readable name for an FW_E* code. */
const char *fw_strerror(int err);

#endif
