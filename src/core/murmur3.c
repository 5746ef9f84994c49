#include "core/murmur3.h"

#define C1 0xcc9e2d51u
#define C2 0x1b873593u

static uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* The reference's mixing of one block into the hash, in two halves: the tail of the
 * input goes through the first half only. */
static uint32_t scramble(uint32_t k) {
  k *= C1;
  k = rotl32(k, 15);
  return k * C2;
}

static uint32_t mix_block(uint32_t hash, uint32_t block) {
  hash ^= scramble(block);
  hash = rotl32(hash, 13);
  return hash * 5 + 0xe6546b64u;
}

static uint32_t finalize(uint32_t hash, size_t len) {
  /* The reference takes the length as an int: only its low 32 bits take part. */
  hash ^= (uint32_t)len;
  hash ^= hash >> 16;
  hash *= 0x85ebca6bu;
  hash ^= hash >> 13;
  hash *= 0xc2b2ae35u;
  hash ^= hash >> 16;
  return hash;
}

static uint32_t read_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t fw_murmur3_32(const void *data, size_t len, uint32_t seed) {
  struct fw_murmur3 state;
  fw_murmur3_init(&state, seed);
  fw_murmur3_update(&state, data, len);
  return fw_murmur3_final(&state);
}

void fw_murmur3_init(struct fw_murmur3 *state, uint32_t seed) {
  *state = (struct fw_murmur3){.hash = seed};
}

void fw_murmur3_update(struct fw_murmur3 *state, const void *data, size_t len) {
  const unsigned char *p = data;
  const unsigned char *end = p + len;
  state->total_len += len;
  /* Complete the block a previous piece left unfinished. */
  while (state->tail_len > 0 && p < end) {
    state->tail |= (uint32_t)*p++ << (8 * state->tail_len);
    if (++state->tail_len == 4) {
      state->hash = mix_block(state->hash, state->tail);
      state->tail = 0;
      state->tail_len = 0;
    }
  }
  for (; end - p >= 4; p += 4)
    state->hash = mix_block(state->hash, read_le32(p));
  for (; p < end; p++)
    state->tail |= (uint32_t)*p << (8 * state->tail_len++);
}

uint32_t fw_murmur3_final(const struct fw_murmur3 *state) {
  uint32_t hash = state->hash;
  if (state->tail_len > 0)
    hash ^= scramble(state->tail);
  return finalize(hash, state->total_len);
}
