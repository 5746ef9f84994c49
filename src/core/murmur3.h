/* MurmurHash3 x86_32, bit for bit as Austin Appleby's reference (MurmurHash3_x86_32 in
 * smhasher): blocks are read as little-endian 32-bit words on every host, so a bucket is
 * the same wherever it is computed. Rollout bucketing (core/eval.h) is defined by it.
 *
 * Besides the one-shot function, the hash can be computed over pieces fed one after
 * another, giving the hash of their concatenation without building it: evaluation hashes
 * "flag.salt.value" without copying, and keeps the state after "flag.salt." precomputed.
 *
 * Thread: pure functions; a state is a value, owned by its caller. */
#ifndef FW_CORE_MURMUR3_H
#define FW_CORE_MURMUR3_H

#include <stddef.h>
#include <stdint.h>

uint32_t fw_murmur3_32(const void *data, size_t len, uint32_t seed);

/* The hash of the bytes fed so far. Copy it to branch: both copies go on independently. */
struct fw_murmur3 {
  uint32_t hash;    /* over the whole blocks consumed */
  uint32_t tail;    /* the 0 to 3 bytes of an unfinished block, first byte lowest */
  size_t tail_len;  /* how many bytes `tail` holds */
  size_t total_len; /* bytes fed in all */
};

void fw_murmur3_init(struct fw_murmur3 *state, uint32_t seed);
void fw_murmur3_update(struct fw_murmur3 *state, const void *data, size_t len);
/* The hash of everything fed; `state` is left as it was, so more may be fed after. */
uint32_t fw_murmur3_final(const struct fw_murmur3 *state);

#endif
