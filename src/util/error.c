#include "util/common.h"

const char *fw_strerror(int err) {
  switch (err) {
  case FW_OK:
    return "ok";
  case FW_ENOMEM:
    return "out of memory";
  case FW_ETOOBIG:
    return "too large";
  case FW_EINVAL:
    return "invalid";
  case FW_EIO:
    return "i/o error";
  case FW_ENOTFOUND:
    return "not found";
  case FW_EEXISTS:
    return "already exists";
  case FW_EBUSY:
    return "busy";
  default:
    return "unknown error";
  }
}
