/* Semantic Versioning 2.0.0 (https://semver.org): parsing and precedence.
 *
 * A version is MAJOR.MINOR.PATCH, each 0 or a number without leading zeros, then
 * optionally "-" and a pre-release of dot-separated identifiers ([0-9A-Za-z-]+, numeric
 * ones without leading zeros), then optionally "+" and build metadata (dot-separated
 * [0-9A-Za-z-]+). A leading "v" is accepted ("v1.2.3"), as tags are often written.
 * Numbers may have any number of digits: they are compared as digit strings, never
 * converted, so no version is too big.
 *
 * A parsed version points into the text it was parsed from and allocates nothing, so
 * versions can be parsed during evaluation.
 *
 * Thread: pure functions. */
#ifndef FW_CORE_SEMVER_H
#define FW_CORE_SEMVER_H

#include <stdbool.h>
#include <stddef.h>

/* Spans of the parsed text; borrowed from it. */
struct fw_semver {
  const char *core[3]; /* major, minor, patch: digits */
  size_t core_len[3];
  const char *prerelease; /* without the "-"; prerelease_len is 0 when there is none */
  size_t prerelease_len;
};

/* Parses `len` bytes of `text` (no NUL needed); false if they are not a version. */
bool fw_semver_parse(const char *text, size_t len, struct fw_semver *out);

/* Precedence: negative, zero or positive as `a` is lower than, equal to or higher than
 * `b`. Build metadata takes no part (1.0.0+a equals 1.0.0+b). */
int fw_semver_compare(const struct fw_semver *a, const struct fw_semver *b);

#endif
