#include "util/random.h"

#include <openssl/rand.h>
#include <string.h>
#include <time.h>

int fw_random_secure(void *out, size_t len) {
  if (len > (size_t)INT32_MAX)
    return FW_EINVAL;
  return RAND_bytes(out, (int)len) == 1 ? FW_OK : FW_EIO;
}

static _Thread_local uint64_t fast_state[4];
static _Thread_local int fast_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void seed_fast(void) {
  if (fw_random_secure(fast_state, sizeof fast_state) != FW_OK) {
    /* Jitter and request ids only need to differ between threads and runs. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fast_state[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15u;
    fast_state[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&fast_state;
    fast_state[2] = 0xbf58476d1ce4e5b9u;
    fast_state[3] = 0x94d049bb133111ebu;
  }
  fast_seeded = 1;
}

uint64_t fw_random_fast(void) {
  if (!fast_seeded)
    seed_fast();
  uint64_t *s = fast_state;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t fw_random_between(uint64_t low, uint64_t high) {
  if (high <= low)
    return low;
  uint64_t span = high - low + 1;
  return span ? low + fw_random_fast() % span : fw_random_fast();
}
