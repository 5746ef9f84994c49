/* Flag evaluation: a pure function from a compiled flag (its definition and its state in
 * one environment), the environment's compiled segments and a context, to a value, a
 * variant, a reason and, when evaluation failed, an error code.
 *
 * Everything is compiled once, when an object enters the state (on the writer thread):
 * evaluation reads compiled structures and never a JSON tree. A compiled flag or segment
 * is immutable and may be evaluated by any number of threads at once.
 *
 * Rules (a flag state's "rules", a segment's rules) are JSON arrays of objects:
 *
 *   {"conditions": [<condition>, ...],         all must hold (none: always holds)
 *    "variant": "<variant key>"                serve this variant...
 *    | "rollout": [{"variant":"a","weight":50}, ...],   ...or split (weights as for the
 *                                              flag-level rollout, adding up to 100)
 *    "bucket_by": "<attribute>",               optional, for "rollout": default the
 *                                              targeting key
 *    "salt": "<text>"}                         optional, for "rollout": default ""
 *
 * In a segment's rules "variant", "rollout", "bucket_by" and "salt" are absent: the
 * context is a member when any rule's conditions all hold.
 *
 * A condition is {"attribute": "<name>", "operator": "<op>", "value": <json>} or
 * {"segment": "<segment key>"} (membership; not allowed inside segments), each with an
 * optional "negate": true. The attribute "targetingKey" is the context's targeting key.
 * An attribute the context lacks makes the condition false, negated or not. Operators:
 *
 *   equals, not_equals          string, number or boolean, same type
 *   in, not_in                  "value" is an array of strings or numbers; a list
 *                               attribute is in when any of its items is
 *   contains                    substring of a string; item of a list attribute
 *   starts_with, ends_with      strings
 *   matches                     PCRE2 pattern (compiled once, match limits applied)
 *   lt, lte, gt, gte            numbers
 *   semver_eq, semver_lt, semver_lte, semver_gt, semver_gte
 *                               Semantic Versioning 2.0.0 precedence; a leading "v" is
 *                               accepted; an attribute that is not a version is false
 *   before, after               instants: RFC 3339 strings, or numbers of milliseconds
 *                               since the epoch
 *
 * Precisely (where the above leaves room):
 * - An attribute of a type its operator cannot compare (a number for "equals" "x", a
 *   boolean for "in", a list for "starts_with", a string that is not a version for the
 *   semver operators or not an instant for before/after) makes the condition false,
 *   negated or not, like a missing attribute. not_equals and not_in hold only for an
 *   attribute of a comparable type (not_in: a string, a number or a list, none of whose
 *   items is in).
 * - "in" lists may mix strings and numbers; a string is looked for among the strings, a
 *   number among the numbers. Numbers compare as doubles (42 equals 42.0).
 * - "matches" patterns are UTF-8 with Unicode classes (PCRE2_UTF | PCRE2_UCP, \C
 *   refused); a match that reaches the match or depth limit does not match (so a
 *   negated condition on it holds).
 * - Instants are compared in whole milliseconds: fractions of a millisecond are dropped
 *   (rounding down). RFC 3339 accepts "t"/"z" in lower case and a leap second (:60).
 * - A segment condition on a segment the environment lacks is not a member: false, and
 *   true when negated.
 * - "negate" must be true or false. Rules and conditions with a member not named here
 *   do not compile; "bucket_by" and "salt" need a "rollout"; a rollout has at most
 *   FW_VARIANTS_MAX entries. Strings holding U+0000 are refused in rules and contexts.
 *
 * Order (reasons are OpenFeature's): a disabled flag serves its off variant (DISABLED);
 * else the first rule that holds decides (TARGETING_MATCH, or SPLIT for a rule's
 * rollout); else the flag-level rollout (SPLIT); else the on variant (STATIC when the
 * state has neither rules nor rollout, DEFAULT otherwise). A rollout whose bucketing
 * attribute is missing from the context is an error: reason ERROR, error
 * TARGETING_KEY_MISSING. So is one whose bucketing attribute is an empty string or a
 * list: there is nothing to tell its holders apart. The flag-level rollout buckets by
 * the targeting key with salt "". Absent "rules" are none; absent "rollout" is null.
 *
 * Bucketing (docs/evaluation.md, reproducible by any SDK): bucket =
 * murmur3_x86_32(utf8(flag_key + "." + salt + "." + value), seed 0) mod 100000; the
 * variants of a rollout own consecutive ranges of buckets in their listed order, each
 * as wide as its weight in thousandths of a percent. The value hashed is a string
 * attribute's UTF-8, a number's JSON text as the context wrote it ("12", "1e3"), or
 * "true"/"false". Hashing is MurmurHash3 x86_32 of smhasher (core/murmur3.h).
 *
 * Thread: compile and free on any thread; evaluate on any number of threads at once.
 * Evaluation allocates nothing, except that a thread's first "matches" makes the PCRE2
 * match data that thread then reuses (freed when the thread exits). */
#ifndef FW_CORE_EVAL_H
#define FW_CORE_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/model.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/rawjson.h"

#define FW_EVAL_BUCKETS 100000

/* Caps on what one context may hold; bigger is INVALID_CONTEXT. */
#define FW_EVAL_CONTEXT_MAX_BYTES (32 * 1024)
#define FW_EVAL_CONTEXT_MAX_ATTRIBUTES 128
#define FW_EVAL_CONTEXT_MAX_LIST 256

enum fw_eval_reason {
  FW_REASON_STATIC,
  FW_REASON_TARGETING_MATCH,
  FW_REASON_SPLIT,
  FW_REASON_DISABLED,
  FW_REASON_DEFAULT,
  FW_REASON_ERROR
};

/* OpenFeature's error codes; FW_EVAL_OK when there is none. */
enum fw_eval_error {
  FW_EVAL_OK,
  FW_EVAL_FLAG_NOT_FOUND,
  FW_EVAL_PARSE_ERROR,
  FW_EVAL_TARGETING_KEY_MISSING,
  FW_EVAL_INVALID_CONTEXT,
  FW_EVAL_TYPE_MISMATCH,
  FW_EVAL_GENERAL
};

/* "STATIC", "TARGETING_MATCH", ... and "FLAG_NOT_FOUND", "PARSE_ERROR", ... */
const char *fw_eval_reason_name(enum fw_eval_reason reason);
const char *fw_eval_error_name(enum fw_eval_error error);

struct fw_eval_flag;    /* opaque, immutable once compiled */
struct fw_eval_segment; /* opaque, immutable once compiled */

/* Compiles a flag from its definition document (key, type, variants) and its state
 * document in one environment (enabled, on_variant, off_variant, rules, rollout), both
 * JSON objects as the store keeps them. On FW_EINVAL, `error` says what is wrong in one
 * sentence (an unknown operator, a bad pattern, a segment condition...). Caller owns
 * *out: fw_eval_flag_free. FW_ENOMEM. */
FW_MUST_CHECK int fw_eval_compile_flag(struct fw_rawjson definition, struct fw_rawjson state,
                                       struct fw_eval_flag **out, char *error, size_t error_len);
void fw_eval_flag_free(struct fw_eval_flag *flag);

/* Checks rules without keeping them: for validating a write before it is accepted.
 * `in_segment` refuses what a segment's rules may not hold (`variants` is then unused).
 * The message is the one compiling the same rules gives. */
bool fw_eval_check_rules(struct fw_rawjson rules, struct fw_rawjson variants, bool in_segment,
                         char *error, size_t error_len);

/* Compiles a segment from its key and its rules in one environment. */
FW_MUST_CHECK int fw_eval_compile_segment(const char *key, struct fw_rawjson rules,
                                          struct fw_eval_segment **out, char *error,
                                          size_t error_len);
void fw_eval_segment_free(struct fw_eval_segment *segment);
const char *fw_eval_segment_key(const struct fw_eval_segment *segment);

/* A parsed context. Owns its memory: fw_eval_context_free. */
struct fw_eval_context;

/* Parses a context: a JSON object with an optional "targetingKey" string and attributes
 * whose values are strings, numbers, booleans or arrays of strings. On failure returns
 * FW_EINVAL with *error_code PARSE_ERROR (not JSON, not an object) or INVALID_CONTEXT
 * (a value of another type, null included, a targetingKey that is not a string, too big)
 * and `error` explaining. Size is checked first: a text over the byte cap is
 * INVALID_CONTEXT whatever it holds. Every member counts toward the attribute cap; of
 * members with the same name the last wins. An empty text is an empty context.
 * FW_ENOMEM (*error_code GENERAL). */
FW_MUST_CHECK int fw_eval_context_parse(const char *text, size_t len, struct fw_eval_context **out,
                                        enum fw_eval_error *error_code, char *error,
                                        size_t error_len);
void fw_eval_context_free(struct fw_eval_context *context);
/* A digest of what evaluation reads of `context` (NULL: the empty context): equal for two
 * contexts that evaluate alike whatever their member order, spacing, escapes or
 * repeated names, and different otherwise (SHA-256). */
void fw_eval_context_digest(const struct fw_eval_context *context, uint8_t out[32]);
/* The targeting key, or NULL (also for a NULL context, the empty one). */
const char *fw_eval_context_targeting_key(const struct fw_eval_context *context);

struct fw_eval_result {
  const char *variant;     /* the variant's key; NULL on error */
  struct fw_rawjson value; /* its value's exact JSON text, borrowed from the flag */
  enum fw_eval_reason reason;
  enum fw_eval_error error; /* FW_EVAL_OK unless reason is ERROR */
};

/* Evaluates `flag` for `context` (NULL: the empty context) with the environment's
 * segments (`segments`, `count` of them, sorted by key; a segment the rules name but the
 * array lacks holds for nobody). Borrowed pointers stay valid while `flag` lives. */
void fw_eval(const struct fw_eval_flag *flag, const struct fw_eval_segment *const *segments,
             size_t count, const struct fw_eval_context *context, struct fw_eval_result *out);

/* Appends the members `"value":<value>,"variant":...,"reason":...` of a result (no
 * braces), or for an error `"reason":"ERROR","errorCode":"..."`. FW_ENOMEM, FW_ETOOBIG. */
FW_MUST_CHECK int fw_eval_result_append(struct fw_buf *out, const struct fw_eval_result *result);

/* What the flag serves when on and no rule or rollout decides: its on variant, reason
 * DEFAULT. For surfaces that must show a value without a context to split by. */
void fw_eval_on_variant(const struct fw_eval_flag *flag, struct fw_eval_result *out);

/* The flag's key and type, for the endpoints. */
const char *fw_eval_flag_key(const struct fw_eval_flag *flag);
enum fw_flag_type fw_eval_flag_type(const struct fw_eval_flag *flag);

/* The bucket (0 to FW_EVAL_BUCKETS - 1) of `value` for flag `flag_key` with `salt`. */
uint32_t fw_eval_bucket(const char *flag_key, const char *salt, const char *value, size_t len);

#endif
