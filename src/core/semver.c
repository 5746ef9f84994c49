#include "core/semver.h"

#include <string.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_identifier_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Length of the run of digits at `p`, at most up to `end`. */
static size_t digits_len(const char *p, const char *end) {
  size_t n = 0;
  while (p + n < end && is_digit(p[n]))
    n++;
  return n;
}

static bool all_digits(const char *p, size_t len) { return digits_len(p, p + len) == len; }

/* A numeric identifier: 0, or digits not starting with 0. */
static bool numeric_valid(const char *p, size_t len) { return len == 1 || p[0] != '0'; }

/* Checks dot-separated identifiers in [p, end): each non-empty of [0-9A-Za-z-], and, when
 * `numeric_strict`, no numeric one with a leading zero. */
static bool identifiers_valid(const char *p, const char *end, bool numeric_strict) {
  for (;;) {
    const char *start = p;
    while (p < end && is_identifier_char(*p))
      p++;
    size_t len = (size_t)(p - start);
    if (len == 0)
      return false;
    if (numeric_strict && all_digits(start, len) && !numeric_valid(start, len))
      return false;
    if (p == end)
      return true;
    if (*p != '.')
      return false;
    p++;
  }
}

bool fw_semver_parse(const char *text, size_t len, struct fw_semver *out) {
  const char *p = text;
  const char *end = text + len;
  if (p < end && *p == 'v')
    p++;
  for (int i = 0; i < 3; i++) {
    if (i > 0) {
      if (p == end || *p != '.')
        return false;
      p++;
    }
    size_t n = digits_len(p, end);
    if (n == 0 || !numeric_valid(p, n))
      return false;
    out->core[i] = p;
    out->core_len[i] = n;
    p += n;
  }
  out->prerelease = p;
  out->prerelease_len = 0;
  if (p < end && *p == '-') {
    const char *start = ++p;
    while (p < end && *p != '+')
      p++;
    if (!identifiers_valid(start, p, true))
      return false;
    out->prerelease = start;
    out->prerelease_len = (size_t)(p - start);
  }
  if (p < end && *p == '+')
    return identifiers_valid(p + 1, end, false);
  return p == end;
}

static int sign(int x) { return (x > 0) - (x < 0); }

/* Numbers without leading zeros: the longer is bigger, else the digits decide. */
static int compare_numeric(const char *a, size_t a_len, const char *b, size_t b_len) {
  if (a_len != b_len)
    return a_len < b_len ? -1 : 1;
  return sign(memcmp(a, b, a_len));
}

/* ASCII order, a prefix first. */
static int compare_ascii(const char *a, size_t a_len, const char *b, size_t b_len) {
  int cmp = memcmp(a, b, a_len < b_len ? a_len : b_len);
  if (cmp)
    return sign(cmp);
  return a_len == b_len ? 0 : a_len < b_len ? -1 : 1;
}

/* The identifier starting at `p` (before `end`) and its length. */
static size_t identifier_len(const char *p, const char *end) {
  const char *dot = memchr(p, '.', (size_t)(end - p));
  return (size_t)((dot ? dot : end) - p);
}

/* Semver 11.4: identifier by identifier; numeric ones numerically and below alphanumeric
 * ones; when all shared ones are equal, the longer list is higher. */
static int compare_prerelease(const struct fw_semver *a, const struct fw_semver *b) {
  const char *pa = a->prerelease, *end_a = pa + a->prerelease_len;
  const char *pb = b->prerelease, *end_b = pb + b->prerelease_len;
  while (pa < end_a && pb < end_b) {
    size_t la = identifier_len(pa, end_a);
    size_t lb = identifier_len(pb, end_b);
    bool numeric_a = all_digits(pa, la);
    bool numeric_b = all_digits(pb, lb);
    int cmp;
    if (numeric_a && numeric_b)
      cmp = compare_numeric(pa, la, pb, lb);
    else if (numeric_a != numeric_b)
      cmp = numeric_a ? -1 : 1;
    else
      cmp = compare_ascii(pa, la, pb, lb);
    if (cmp)
      return cmp;
    /* Past the identifier and its dot; a trailing position equals the end. */
    pa += la < (size_t)(end_a - pa) ? la + 1 : la;
    pb += lb < (size_t)(end_b - pb) ? lb + 1 : lb;
  }
  return (pa < end_a) - (pb < end_b);
}

int fw_semver_compare(const struct fw_semver *a, const struct fw_semver *b) {
  for (int i = 0; i < 3; i++) {
    int cmp = compare_numeric(a->core[i], a->core_len[i], b->core[i], b->core_len[i]);
    if (cmp)
      return cmp;
  }
  /* A pre-release is lower than its release (11.3). */
  bool pre_a = a->prerelease_len > 0, pre_b = b->prerelease_len > 0;
  if (!pre_a || !pre_b)
    return pre_b - pre_a;
  return compare_prerelease(a, b);
}
