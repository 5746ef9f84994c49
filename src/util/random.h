/* Randomness: cryptographic bytes for secrets, a fast per-thread generator for jitter and ids. */
#ifndef FW_UTIL_RANDOM_H
#define FW_UTIL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "util/common.h"

/* Fills `out` with cryptographically strong bytes (OpenSSL). Returns FW_EIO when the
 * generator cannot be seeded. Thread-safe. */
FW_MUST_CHECK int fw_random_secure(void *out, size_t len);

/* A fast, non-cryptographic 64-bit value from a per-thread xoshiro256** state seeded
 * once per thread from fw_random_secure. For jitter and request ids, never for secrets. */
uint64_t fw_random_fast(void);

/* A uniformly distributed value in [low, high] from fw_random_fast. */
uint64_t fw_random_between(uint64_t low, uint64_t high);

#endif
