#include "core/eval.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/flagdef.h"
#include "core/murmur3.h"
#include "core/semver.h"
#include "util/digest.h"
#include "util/json.h"

/* Limits on one match of a "matches" pattern: a pattern that backtracks without end
 * (catastrophic backtracking) gives up, and the condition is false. */
#define PATTERN_MATCH_LIMIT 100000
#define PATTERN_DEPTH_LIMIT 1000

/* ---- names ---- */

static const char *const reason_names[] = {
    [FW_REASON_STATIC] = "STATIC",   [FW_REASON_TARGETING_MATCH] = "TARGETING_MATCH",
    [FW_REASON_SPLIT] = "SPLIT",     [FW_REASON_DISABLED] = "DISABLED",
    [FW_REASON_DEFAULT] = "DEFAULT", [FW_REASON_ERROR] = "ERROR",
};

static const char *const error_names[] = {
    [FW_EVAL_OK] = "OK",
    [FW_EVAL_FLAG_NOT_FOUND] = "FLAG_NOT_FOUND",
    [FW_EVAL_PARSE_ERROR] = "PARSE_ERROR",
    [FW_EVAL_TARGETING_KEY_MISSING] = "TARGETING_KEY_MISSING",
    [FW_EVAL_INVALID_CONTEXT] = "INVALID_CONTEXT",
    [FW_EVAL_TYPE_MISMATCH] = "TYPE_MISMATCH",
    [FW_EVAL_GENERAL] = "GENERAL",
};

const char *fw_eval_reason_name(enum fw_eval_reason reason) { return reason_names[reason]; }

const char *fw_eval_error_name(enum fw_eval_error error) { return error_names[error]; }

/* ---- byte strings ---- */

/* Bytes with their length: context strings and operands are compared by length and
 * bytes, never as C strings. */
struct text {
  const char *bytes;
  size_t len;
};

static bool text_equal(struct text a, struct text b) {
  return a.len == b.len && memcmp(a.bytes, b.bytes, a.len) == 0;
}

/* A total order that is cheap to evaluate: shorter first, then bytewise. It sorts the
 * context's attributes and the strings of "in" lists, which are only ever searched. */
static int text_order(struct text a, struct text b) {
  if (a.len != b.len)
    return a.len < b.len ? -1 : 1;
  return memcmp(a.bytes, b.bytes, a.len);
}

static int compare_texts(const void *a, const void *b) {
  return text_order(*(const struct text *)a, *(const struct text *)b);
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- arena ---- */

/* A compiled flag or segment is many small pieces that live and die together: they come
 * from blocks freed all at once. Blocks start small and double, because most compiled
 * flags need a few hundred bytes and a store holds tens of thousands of them: a fixed
 * 4 KiB block each made a 10 000 x 3 store take 150 MiB. */
#define ARENA_FIRST_BLOCK 256
#define ARENA_BLOCK_MAX 4096

struct arena_block {
  struct arena_block *next;
  size_t used;
  size_t size;
  max_align_t data[];
};

struct arena {
  struct arena_block *blocks; /* the first is the one being filled */
};

static void *arena_alloc(struct arena *arena, size_t size) {
  const size_t align = sizeof(max_align_t);
  if (size > SIZE_MAX / 2)
    return NULL;
  size = (size + align - 1) / align * align;
  struct arena_block *current = arena->blocks;
  if (current && current->size - current->used >= size) {
    void *p = (char *)current->data + current->used;
    current->used += size;
    return p;
  }
  size_t next_size = !current                               ? ARENA_FIRST_BLOCK
                     : current->size >= ARENA_BLOCK_MAX / 2 ? ARENA_BLOCK_MAX
                                                            : current->size * 2;
  /* A piece bigger than a quarter of a full block gets a block of its own, behind the
   * current one, so that the space left in the current one is not wasted. A smaller
   * piece that does not fit the next block's size gets a block that does. */
  bool own_block = size > ARENA_BLOCK_MAX / 4;
  size_t block_size = own_block ? size : size > next_size ? size : next_size;
  struct arena_block *block = malloc(sizeof *block + block_size);
  if (!block)
    return NULL;
  block->used = size;
  block->size = block_size;
  if (own_block && current) {
    block->next = current->next;
    current->next = block;
  } else {
    block->next = current;
    arena->blocks = block;
  }
  return block->data;
}

static void arena_free(struct arena *arena) {
  struct arena_block *block = arena->blocks;
  while (block) {
    struct arena_block *next = block->next;
    free(block);
    block = next;
  }
  arena->blocks = NULL;
}

/* A NUL-terminated copy of `len` bytes. */
static char *arena_copy(struct arena *arena, const char *bytes, size_t len) {
  char *copy = arena_alloc(arena, len + 1);
  if (copy) {
    memcpy(copy, bytes, len);
    copy[len] = '\0';
  }
  return copy;
}

/* ---- reading validated JSON ---- */

static bool is_json_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Walks the elements of a validated array once, from first to last. fw_rawjson_element
 * starts from the first element on every call, so reading n elements with it costs n²/2
 * skips: a list of ten thousand user ids in an "in" condition would stall the writer.
 * Like rawjson's accessors this trusts validation, and never reads outside the array. */
struct element_walk {
  const char *p;
  const char *end; /* the closing bracket */
};

static struct element_walk walk_elements(struct fw_rawjson array) {
  if (fw_rawjson_type(array) != FW_RAWJSON_ARRAY || array.len < 2)
    return (struct element_walk){.p = array.text, .end = array.text};
  return (struct element_walk){.p = array.text + 1, .end = array.text + array.len - 1};
}

/* Where the value starting at `p` ends: after its closing quote or bracket, or at the
 * first byte after a number or literal. Brackets inside strings are skipped with them. */
static const char *value_end(const char *p, const char *end) {
  size_t depth = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      for (p++; p < end && *p != '"'; p++)
        if (*p == '\\' && end - p > 1)
          p++;
      p = p < end ? p + 1 : end;
      if (depth == 0)
        return p;
      continue;
    }
    if (c == '[' || c == '{') {
      depth++;
    } else if (c == ']' || c == '}') {
      if (depth == 0)
        return p;
      if (--depth == 0)
        return p + 1;
    } else if (depth == 0 && (c == ',' || is_json_whitespace(c))) {
      return p;
    }
    p++;
  }
  return end;
}

static bool next_element(struct element_walk *walk, struct fw_rawjson *out) {
  const char *p = walk->p;
  while (p < walk->end && (is_json_whitespace(*p) || *p == ','))
    p++;
  if (p == walk->end)
    return false;
  const char *end = value_end(p, walk->end);
  *out = (struct fw_rawjson){.text = p, .len = (size_t)(end - p)};
  walk->p = end;
  return true;
}

static size_t count_elements(struct fw_rawjson array) {
  struct element_walk walk = walk_elements(array);
  struct fw_rawjson element;
  size_t count = 0;
  while (next_element(&walk, &element))
    count++;
  return count;
}

/* Whether raw string `raw` holds a \u0000 escape. Such strings are refused: the
 * unescaper ends C strings at a NUL, so they could not be compared whole. */
static bool has_escaped_nul(struct fw_rawjson raw) {
  const char *p = raw.text, *end = raw.text + raw.len;
  while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
    if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0)
      return true;
    p += end - p >= 2 ? 2 : 1;
  }
  return false;
}

/* Unescapes validated string `raw` into `out`, which has raw.len - 1 bytes (always
 * enough), and returns its length. The caller has refused \u0000. */
static struct text unescape_into(struct fw_rawjson raw, char *out) {
  if (fw_rawjson_string(raw, out, raw.len - 1) != FW_OK)
    out[0] = '\0';
  return (struct text){.bytes = out, .len = strlen(out)};
}

/* Unescapes a short string (a key, a name, an operator) into `out`; false if `raw` is
 * not a string, does not fit, or holds U+0000, which would cut it short. */
static bool read_short_string(struct fw_rawjson raw, char *out, size_t out_len) {
  return fw_rawjson_type(raw) == FW_RAWJSON_STRING && !has_escaped_nul(raw) &&
         fw_rawjson_string(raw, out, out_len) == FW_OK;
}

/* Whether raw string `raw` unescapes to the C string `name`. */
static bool raw_string_is(struct fw_rawjson raw, const char *name) {
  char text[32];
  return read_short_string(raw, text, sizeof text) && strcmp(text, name) == 0;
}

/* Parses a NUL-terminated JSON number. The process never calls setlocale, so strtod
 * reads the "." JSON uses. Beyond a double's range it gives ±HUGE_VAL, which still
 * compares as expected. */
static double parse_number(const char *text) { return strtod(text, NULL); }

/* ---- instants ---- */

static bool read_digits(const char **p, const char *end, int count, int *value) {
  int v = 0;
  for (int i = 0; i < count; i++) {
    if (*p == end || **p < '0' || **p > '9')
      return false;
    v = v * 10 + (*(*p)++ - '0');
  }
  *value = v;
  return true;
}

static bool read_char(const char **p, const char *end, const char *allowed) {
  if (*p == end || **p == '\0' || !strchr(allowed, **p))
    return false;
  (*p)++;
  return true;
}

static bool is_leap_year(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

static int days_in_month(int year, int month) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t year, int month, int day) {
  year -= month <= 2;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  int64_t year_of_era = year - era * 400;
  int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

/* Parses an RFC 3339 date-time ("2024-05-01T12:00:00.250+02:00") into milliseconds since
 * the epoch. "T" and "Z" may be lower case; a leap second (:60) counts as the next
 * second; digits of the fraction beyond milliseconds are dropped, which rounds down. */
static bool parse_rfc3339(const char *text, size_t len, int64_t *ms) {
  const char *p = text, *end = text + len;
  int year, month, day, hour, minute, second;
  if (!read_digits(&p, end, 4, &year) || !read_char(&p, end, "-") ||
      !read_digits(&p, end, 2, &month) || !read_char(&p, end, "-") ||
      !read_digits(&p, end, 2, &day) || !read_char(&p, end, "Tt") ||
      !read_digits(&p, end, 2, &hour) || !read_char(&p, end, ":") ||
      !read_digits(&p, end, 2, &minute) || !read_char(&p, end, ":") ||
      !read_digits(&p, end, 2, &second))
    return false;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60)
    return false;
  int64_t millis = 0;
  if (p < end && *p == '.') {
    p++;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3)
        millis = millis * 10 + (*p - '0');
    if (digits == 0)
      return false;
    for (; digits < 3; digits++)
      millis *= 10;
  }
  int64_t offset_minutes = 0;
  if (!read_char(&p, end, "Zz")) {
    bool behind = p < end && *p == '-';
    int offset_hour, offset_minute;
    if (!read_char(&p, end, "+-") || !read_digits(&p, end, 2, &offset_hour) ||
        !read_char(&p, end, ":") || !read_digits(&p, end, 2, &offset_minute) || offset_hour > 23 ||
        offset_minute > 59)
      return false;
    offset_minutes = (behind ? -1 : 1) * (offset_hour * 60 + offset_minute);
  }
  if (p != end)
    return false;
  int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                    offset_minutes * 60;
  *ms = seconds * 1000 + millis;
  return true;
}

/* A number of milliseconds as an instant: rounded down; false beyond int64. */
static bool instant_from_number(double number, int64_t *ms) {
  double whole = floor(number);
  if (!(whole >= -9223372036854775808.0 && whole < 9223372036854775808.0))
    return false;
  *ms = (int64_t)whole;
  return true;
}

/* ---- compiled structures ---- */

enum opcode {
  OP_SEGMENT,
  OP_EQUALS,
  OP_NOT_EQUALS,
  OP_IN,
  OP_NOT_IN,
  OP_CONTAINS,
  OP_STARTS_WITH,
  OP_ENDS_WITH,
  OP_MATCHES,
  OP_LT,
  OP_LTE,
  OP_GT,
  OP_GTE,
  OP_SEMVER_EQ,
  OP_SEMVER_LT,
  OP_SEMVER_LTE,
  OP_SEMVER_GT,
  OP_SEMVER_GTE,
  OP_BEFORE,
  OP_AFTER
};

/* What an operator's "value" must be. */
enum operand {
  OPERAND_SCALAR,  /* a string, number or boolean */
  OPERAND_LIST,    /* an array of strings and numbers */
  OPERAND_STRING,  /* a string */
  OPERAND_PATTERN, /* a string holding a PCRE2 pattern */
  OPERAND_NUMBER,  /* a number */
  OPERAND_VERSION, /* a string holding a semantic version */
  OPERAND_INSTANT  /* an RFC 3339 string or a number of milliseconds */
};

static const struct {
  const char *name;
  enum opcode op;
  enum operand operand;
} operators[] = {
    {"equals", OP_EQUALS, OPERAND_SCALAR},
    {"not_equals", OP_NOT_EQUALS, OPERAND_SCALAR},
    {"in", OP_IN, OPERAND_LIST},
    {"not_in", OP_NOT_IN, OPERAND_LIST},
    {"contains", OP_CONTAINS, OPERAND_STRING},
    {"starts_with", OP_STARTS_WITH, OPERAND_STRING},
    {"ends_with", OP_ENDS_WITH, OPERAND_STRING},
    {"matches", OP_MATCHES, OPERAND_PATTERN},
    {"lt", OP_LT, OPERAND_NUMBER},
    {"lte", OP_LTE, OPERAND_NUMBER},
    {"gt", OP_GT, OPERAND_NUMBER},
    {"gte", OP_GTE, OPERAND_NUMBER},
    {"semver_eq", OP_SEMVER_EQ, OPERAND_VERSION},
    {"semver_lt", OP_SEMVER_LT, OPERAND_VERSION},
    {"semver_lte", OP_SEMVER_LTE, OPERAND_VERSION},
    {"semver_gt", OP_SEMVER_GT, OPERAND_VERSION},
    {"semver_gte", OP_SEMVER_GTE, OPERAND_VERSION},
    {"before", OP_BEFORE, OPERAND_INSTANT},
    {"after", OP_AFTER, OPERAND_INSTANT},
};

/* The JSON type of an "equals" operand or of a context value. */
enum value_kind { KIND_STRING, KIND_NUMBER, KIND_BOOLEAN, KIND_LIST };

/* The operand of an "in" list, split by type and sorted for binary search. */
struct value_list {
  struct text *strings;
  size_t string_count;
  double *numbers;
  size_t number_count;
};

struct condition {
  enum opcode op;
  bool negate;
  /* The attribute, or for OP_SEGMENT the segment's key (NUL-terminated). */
  struct text name;
  enum value_kind kind; /* of `string`, `number` or `boolean`, for equals and not_equals */
  union {
    struct text string;
    double number;
    bool boolean;
    struct value_list list;
    struct fw_semver version;
    int64_t instant_ms;
    struct {
      pcre2_code *code;
      pcre2_match_context *limits;
    } pattern;
  } value;
};

/* A split of the buckets between variants. */
struct rollout {
  size_t count;
  size_t *variants;              /* indexes into the flag's variants */
  uint32_t *upper_bounds;        /* entry i owns buckets below upper_bounds[i] not owned before */
  struct text bucket_by;         /* the attribute whose value is hashed */
  struct fw_murmur3 hash_prefix; /* the hash state after "<flag key>.<salt>." */
};

struct rule {
  struct condition *conditions;
  size_t condition_count;
  size_t variant;          /* when rollout is NULL */
  struct rollout *rollout; /* NULL: serve `variant`; always NULL in segments */
};

struct rule_list {
  struct rule *rules;
  size_t count;
};

struct variant {
  const char *key;
  struct fw_rawjson value; /* a copy of the definition's text */
};

struct fw_eval_flag {
  struct arena arena;
  const char *key;
  enum fw_flag_type type;
  struct variant *variants;
  size_t variant_count;
  bool enabled;
  bool is_static; /* no rules and no rollout: the on variant is STATIC, not DEFAULT */
  size_t on_variant;
  size_t off_variant;
  struct rule_list rules;
  struct rollout *rollout; /* the flag-level rollout, or NULL */
};

struct fw_eval_segment {
  struct arena arena;
  const char *key;
  struct rule_list rules;
};

/* ---- compilation ---- */

struct compiler {
  struct arena *arena;
  bool in_segment;
  const char *flag_key;           /* for rollouts' hash prefixes */
  struct fw_rawjson variants_raw; /* the flag's variants, for fw_flagdef_check_rollout */
  struct variant *variants;       /* the same, read; none in segments */
  size_t variant_count;
  /* Where compilation is, named in messages: rule `rule` (when `in_rule`), condition
   * `condition` (when `in_condition`). */
  bool in_rule, in_condition;
  size_t rule, condition;
  char *error;
  size_t error_len;
};

/* Writes "rule 2, condition 0: <message>" (as far as compilation got) into the error
 * buffer and returns FW_EINVAL. */
static int fail(struct compiler *c, const char *fmt, ...) FW_PRINTF(2, 3);
static int fail(struct compiler *c, const char *fmt, ...) {
  if (c->error_len == 0)
    return FW_EINVAL;
  int prefix = 0;
  if (c->in_condition)
    prefix = snprintf(c->error, c->error_len, "rule %zu, condition %zu: ", c->rule, c->condition);
  else if (c->in_rule)
    prefix = snprintf(c->error, c->error_len, "rule %zu: ", c->rule);
  size_t offset = prefix > 0 ? (size_t)prefix : 0;
  if (offset < c->error_len) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(c->error + offset, c->error_len - offset, fmt, args);
    va_end(args);
  }
  return FW_EINVAL;
}

static int out_of_memory(struct compiler *c) {
  snprintf(c->error, c->error_len, "out of memory");
  return FW_ENOMEM;
}

/* Copies string `raw` into the arena as a text, refusing \u0000 and, unless
 * `empty_ok`, the empty string; `what` names it in messages. */
static int compile_string(struct compiler *c, struct fw_rawjson raw, const char *what,
                          bool empty_ok, struct text *out) {
  if (fw_rawjson_type(raw) != FW_RAWJSON_STRING)
    return fail(c, "%s must be a string", what);
  if (has_escaped_nul(raw))
    return fail(c, "%s must not hold U+0000", what);
  char *bytes = arena_alloc(c->arena, raw.len - 1);
  if (!bytes)
    return out_of_memory(c);
  *out = unescape_into(raw, bytes);
  if (out->len == 0 && !empty_ok)
    return fail(c, "%s must not be empty", what);
  return FW_OK;
}

/* strtod needs a NUL after the number: short ones are copied to the stack, long ones
 * (JSON numbers have no length limit) to the arena. */
static int compile_number(struct compiler *c, struct fw_rawjson raw, double *out) {
  char short_copy[64];
  char *text = raw.len < sizeof short_copy ? short_copy : arena_alloc(c->arena, raw.len + 1);
  if (!text)
    return out_of_memory(c);
  memcpy(text, raw.text, raw.len);
  text[raw.len] = '\0';
  *out = parse_number(text);
  return FW_OK;
}

static bool find_variant(const struct compiler *c, const char *key, size_t *index) {
  for (size_t i = 0; i < c->variant_count; i++) {
    if (strcmp(c->variants[i].key, key) == 0) {
      *index = i;
      return true;
    }
  }
  return false;
}

static int compile_list(struct compiler *c, struct fw_rawjson raw, struct value_list *out) {
  if (fw_rawjson_type(raw) != FW_RAWJSON_ARRAY)
    return fail(c, "'value' must be an array of strings and numbers");
  size_t count = count_elements(raw);
  *out = (struct value_list){0};
  if (count > 0) {
    out->strings = arena_alloc(c->arena, count * sizeof *out->strings);
    out->numbers = arena_alloc(c->arena, count * sizeof *out->numbers);
    if (!out->strings || !out->numbers)
      return out_of_memory(c);
  }
  struct element_walk walk = walk_elements(raw);
  struct fw_rawjson element;
  while (next_element(&walk, &element)) {
    int rc;
    enum fw_rawjson_type type = fw_rawjson_type(element);
    if (type == FW_RAWJSON_STRING)
      rc = compile_string(c, element, "every item of 'value'", true,
                          &out->strings[out->string_count++]);
    else if (type == FW_RAWJSON_NUMBER)
      rc = compile_number(c, element, &out->numbers[out->number_count++]);
    else
      rc = fail(c, "'value' must be an array of strings and numbers");
    if (rc)
      return rc;
  }
  if (out->string_count > 1)
    qsort(out->strings, out->string_count, sizeof *out->strings, compare_texts);
  if (out->number_count > 1)
    qsort(out->numbers, out->number_count, sizeof *out->numbers, compare_doubles);
  return FW_OK;
}

static int compile_pattern(struct compiler *c, struct fw_rawjson raw, struct condition *out) {
  struct text pattern;
  int rc = compile_string(c, raw, "'value'", true, &pattern);
  if (rc)
    return rc;
  int code;
  PCRE2_SIZE offset;
  /* Patterns and subjects are Unicode text: "." is a character, and \w, \d and \b know
   * letters and digits beyond ASCII (UCP). \C could split a character, so it is refused,
   * which keeps every match inside valid UTF-8. */
  pcre2_code *compiled =
      pcre2_compile((PCRE2_SPTR)pattern.bytes, pattern.len,
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &code, &offset, NULL);
  if (!compiled) {
    PCRE2_UCHAR message[120];
    if (pcre2_get_error_message(code, message, sizeof message) < 0)
      snprintf((char *)message, sizeof message, "error %d", code);
    return fail(c, "'value' is not a valid pattern: %s at offset %zu", (const char *)message,
                (size_t)offset);
  }
  /* The JIT is many times faster; where it is unavailable the interpreter runs. */
  (void)pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);
  pcre2_match_context *limits = pcre2_match_context_create(NULL);
  if (!limits) {
    pcre2_code_free(compiled);
    return out_of_memory(c);
  }
  pcre2_set_match_limit(limits, PATTERN_MATCH_LIMIT);
  pcre2_set_depth_limit(limits, PATTERN_DEPTH_LIMIT);
  out->value.pattern.code = compiled;
  out->value.pattern.limits = limits;
  return FW_OK;
}

/* Reads the "value" of an attribute condition as its operator wants it. */
static int compile_operand(struct compiler *c, enum operand operand, const char *op_name,
                           struct fw_rawjson raw, struct condition *out) {
  enum fw_rawjson_type type = fw_rawjson_type(raw);
  switch (operand) {
  case OPERAND_SCALAR:
    if (type == FW_RAWJSON_STRING) {
      out->kind = KIND_STRING;
      return compile_string(c, raw, "'value'", true, &out->value.string);
    }
    if (type == FW_RAWJSON_NUMBER) {
      out->kind = KIND_NUMBER;
      return compile_number(c, raw, &out->value.number);
    }
    if (type == FW_RAWJSON_TRUE || type == FW_RAWJSON_FALSE) {
      out->kind = KIND_BOOLEAN;
      out->value.boolean = type == FW_RAWJSON_TRUE;
      return FW_OK;
    }
    return fail(c, "'%s' needs a string, number or boolean 'value'", op_name);
  case OPERAND_LIST:
    return compile_list(c, raw, &out->value.list);
  case OPERAND_STRING:
    if (type != FW_RAWJSON_STRING)
      return fail(c, "'%s' needs a string 'value'", op_name);
    return compile_string(c, raw, "'value'", true, &out->value.string);
  case OPERAND_PATTERN:
    if (type != FW_RAWJSON_STRING)
      return fail(c, "'%s' needs a string 'value' (a pattern)", op_name);
    return compile_pattern(c, raw, out);
  case OPERAND_NUMBER:
    if (type != FW_RAWJSON_NUMBER)
      return fail(c, "'%s' needs a number 'value'", op_name);
    return compile_number(c, raw, &out->value.number);
  case OPERAND_VERSION: {
    struct text version;
    int rc = type == FW_RAWJSON_STRING ? compile_string(c, raw, "'value'", true, &version) : 0;
    if (rc)
      return rc;
    if (type != FW_RAWJSON_STRING ||
        !fw_semver_parse(version.bytes, version.len, &out->value.version))
      return fail(c, "'%s' needs a semantic version 'value' (such as \"1.2.3\")", op_name);
    return FW_OK;
  }
  case OPERAND_INSTANT:
    break;
  }
  int rc = FW_OK;
  double number;
  struct text instant;
  if (type == FW_RAWJSON_NUMBER) {
    if (!(rc = compile_number(c, raw, &number)) &&
        !instant_from_number(number, &out->value.instant_ms))
      rc = fail(c, "'%s': 'value' is out of range", op_name);
  } else if (type == FW_RAWJSON_STRING) {
    if (!(rc = compile_string(c, raw, "'value'", true, &instant)) &&
        !parse_rfc3339(instant.bytes, instant.len, &out->value.instant_ms))
      rc = fail(c,
                "'%s' needs an RFC 3339 date-time 'value' (such as "
                "\"2025-01-31T09:00:00Z\") or milliseconds since the epoch",
                op_name);
  } else {
    rc = fail(c, "'%s' needs an RFC 3339 date-time or a number 'value'", op_name);
  }
  return rc;
}

static int compile_condition(struct compiler *c, struct fw_rawjson raw, struct condition *out) {
  if (fw_rawjson_type(raw) != FW_RAWJSON_OBJECT)
    return fail(c, "a condition must be an object");
  struct fw_rawjson attribute = {0}, op = {0}, value = {0}, segment = {0};
  enum fw_rawjson_type negate = FW_RAWJSON_FALSE;
  size_t cursor = 0;
  struct fw_rawjson name, member;
  while (fw_rawjson_next_member(raw, &cursor, &name, &member)) {
    if (raw_string_is(name, "attribute"))
      attribute = member;
    else if (raw_string_is(name, "operator"))
      op = member;
    else if (raw_string_is(name, "value"))
      value = member;
    else if (raw_string_is(name, "segment"))
      segment = member;
    else if (raw_string_is(name, "negate"))
      negate = fw_rawjson_type(member);
    else
      return fail(c,
                  "unknown field %.*s (a condition has 'attribute', 'operator', 'value', "
                  "'segment' and 'negate')",
                  (int)(name.len < 64 ? name.len : 64), name.text);
  }
  if (negate != FW_RAWJSON_TRUE && negate != FW_RAWJSON_FALSE)
    return fail(c, "'negate' must be true or false");
  out->negate = negate == FW_RAWJSON_TRUE;
  if (segment.text) {
    if (c->in_segment)
      return fail(c, "a segment's rules cannot test membership of a segment");
    if (attribute.text || op.text || value.text)
      return fail(c, "a condition is either a 'segment' or an 'attribute' test, not both");
    out->op = OP_SEGMENT;
    int rc = compile_string(c, segment, "'segment'", false, &out->name);
    if (rc)
      return rc;
    if (!fw_model_key_valid(out->name.bytes, out->name.len))
      return fail(c, "'segment' must be a segment key");
    return FW_OK;
  }
  if (!attribute.text || !op.text || !value.text)
    return fail(c, "a condition needs 'attribute', 'operator' and 'value' (or 'segment')");
  int rc = compile_string(c, attribute, "'attribute'", false, &out->name);
  if (rc)
    return rc;
  char op_name[16];
  if (!read_short_string(op, op_name, sizeof op_name))
    return fail(c, "unknown operator %.*s", (int)(op.len < 64 ? op.len : 64), op.text);
  for (size_t i = 0; i < FW_ARRAY_LEN(operators); i++) {
    if (strcmp(operators[i].name, op_name) == 0) {
      out->op = operators[i].op;
      return compile_operand(c, operators[i].operand, op_name, value, out);
    }
  }
  return fail(c, "unknown operator '%s'", op_name);
}

/* Compiles a rollout (validated against the flag's variants first) whose buckets are
 * hashed after "<flag key>.<salt>.". */
static int compile_rollout(struct compiler *c, struct fw_rawjson raw, struct text bucket_by,
                           struct text salt, struct rollout **out) {
  /* fw_flagdef_check_rollout accepts null, for "no rollout": not here. */
  if (fw_rawjson_type(raw) != FW_RAWJSON_ARRAY)
    return fail(c, "'rollout' must be an array of variant weights");
  size_t count = count_elements(raw);
  /* fw_flagdef_check_rollout looks each entry up from the start: keep it short. */
  if (count > FW_VARIANTS_MAX)
    return fail(c, "a rollout has at most %d entries", FW_VARIANTS_MAX);
  char message[200];
  if (!fw_flagdef_check_rollout(raw, c->variants_raw, message, sizeof message))
    return fail(c, "%s", message);
  struct rollout *rollout = arena_alloc(c->arena, sizeof *rollout);
  size_t *variants = arena_alloc(c->arena, count * sizeof *variants);
  uint32_t *upper_bounds = arena_alloc(c->arena, count * sizeof *upper_bounds);
  if (!rollout || !variants || !upper_bounds)
    return out_of_memory(c);
  struct element_walk walk = walk_elements(raw);
  struct fw_rawjson entry, member;
  long total = 0;
  for (size_t i = 0; next_element(&walk, &entry); i++) {
    char key[FW_KEY_MAX + 1] = "";
    long thousandths = 0;
    /* fw_flagdef_check_rollout accepted all of this. */
    if (fw_rawjson_member(entry, "variant", &member) != FW_OK ||
        !read_short_string(member, key, sizeof key) || !find_variant(c, key, &variants[i]) ||
        fw_rawjson_member(entry, "weight", &member) != FW_OK ||
        !fw_flagdef_rollout_weight(member, &thousandths))
      return fail(c, "rollout entry %zu is invalid", i);
    total += thousandths;
    upper_bounds[i] = (uint32_t)total;
  }
  *rollout = (struct rollout){
      .count = count, .variants = variants, .upper_bounds = upper_bounds, .bucket_by = bucket_by};
  fw_murmur3_init(&rollout->hash_prefix, 0);
  fw_murmur3_update(&rollout->hash_prefix, c->flag_key, strlen(c->flag_key));
  fw_murmur3_update(&rollout->hash_prefix, ".", 1);
  fw_murmur3_update(&rollout->hash_prefix, salt.bytes, salt.len);
  fw_murmur3_update(&rollout->hash_prefix, ".", 1);
  *out = rollout;
  return FW_OK;
}

static const struct text targeting_key_name = {"targetingKey", 12};

static int compile_rule(struct compiler *c, struct fw_rawjson raw, struct rule *out) {
  if (fw_rawjson_type(raw) != FW_RAWJSON_OBJECT)
    return fail(c, "a rule must be an object");
  struct fw_rawjson conditions = {"[]", 2}, variant = {0}, rollout = {0}, bucket_by = {0},
                    salt = {0};
  size_t cursor = 0;
  struct fw_rawjson name, member;
  while (fw_rawjson_next_member(raw, &cursor, &name, &member)) {
    if (raw_string_is(name, "conditions"))
      conditions = member;
    else if (!c->in_segment && raw_string_is(name, "variant"))
      variant = member;
    else if (!c->in_segment && raw_string_is(name, "rollout"))
      rollout = member;
    else if (!c->in_segment && raw_string_is(name, "bucket_by"))
      bucket_by = member;
    else if (!c->in_segment && raw_string_is(name, "salt"))
      salt = member;
    else if (c->in_segment)
      return fail(c, "unknown field %.*s (a segment's rule has only 'conditions')",
                  (int)(name.len < 64 ? name.len : 64), name.text);
    else
      return fail(c,
                  "unknown field %.*s (a rule has 'conditions', 'variant' or 'rollout', "
                  "'bucket_by' and 'salt')",
                  (int)(name.len < 64 ? name.len : 64), name.text);
  }
  if (fw_rawjson_type(conditions) != FW_RAWJSON_ARRAY)
    return fail(c, "'conditions' must be an array");
  size_t count = count_elements(conditions);
  out->conditions = arena_alloc(c->arena, count * sizeof *out->conditions);
  if (!out->conditions)
    return out_of_memory(c);
  /* Zeroed and counted before compiling, so that free_patterns can release the patterns
   * of a rule that failed half-way. */
  memset(out->conditions, 0, count * sizeof *out->conditions);
  out->condition_count = count;
  struct element_walk walk = walk_elements(conditions);
  struct fw_rawjson condition;
  c->in_condition = true;
  for (c->condition = 0; next_element(&walk, &condition); c->condition++) {
    int rc = compile_condition(c, condition, &out->conditions[c->condition]);
    if (rc)
      return rc;
  }
  c->in_condition = false;
  if (c->in_segment)
    return FW_OK;

  if ((variant.text != NULL) == (rollout.text != NULL))
    return fail(c, "a rule serves either a 'variant' or a 'rollout'");
  if (variant.text) {
    if (bucket_by.text || salt.text)
      return fail(c, "'bucket_by' and 'salt' go with a 'rollout'");
    char key[FW_KEY_MAX + 1];
    if (!read_short_string(variant, key, sizeof key) || !find_variant(c, key, &out->variant))
      return fail(c, "'variant' %.*s is not a variant of the flag",
                  (int)(variant.len < 80 ? variant.len : 80), variant.text);
    return FW_OK;
  }
  struct text bucket_name = targeting_key_name, salt_text = {"", 0};
  int rc = bucket_by.text ? compile_string(c, bucket_by, "'bucket_by'", false, &bucket_name) : 0;
  if (!rc && salt.text)
    rc = compile_string(c, salt, "'salt'", true, &salt_text);
  if (!rc)
    rc = compile_rollout(c, rollout, bucket_name, salt_text, &out->rollout);
  return rc;
}

static void free_patterns(struct rule_list *list) {
  for (size_t r = 0; r < list->count; r++) {
    const struct rule *rule = &list->rules[r];
    for (size_t i = 0; i < rule->condition_count; i++) {
      if (rule->conditions[i].op == OP_MATCHES) {
        /* Both free functions accept NULL: a condition that failed half-way is fine. */
        pcre2_code_free(rule->conditions[i].value.pattern.code);
        pcre2_match_context_free(rule->conditions[i].value.pattern.limits);
      }
    }
  }
}

/* Compiles a rules array into `out`. On failure what was compiled stays in `out`, for
 * free_patterns to release. */
static int compile_rules(struct compiler *c, struct fw_rawjson raw, struct rule_list *out) {
  *out = (struct rule_list){0};
  if (fw_rawjson_type(raw) != FW_RAWJSON_ARRAY)
    return fail(c, "'rules' must be an array");
  size_t count = count_elements(raw);
  out->rules = arena_alloc(c->arena, count * sizeof *out->rules);
  if (!out->rules)
    return out_of_memory(c);
  struct element_walk walk = walk_elements(raw);
  struct fw_rawjson raw_rule;
  c->in_rule = true;
  for (c->rule = 0; next_element(&walk, &raw_rule); c->rule++) {
    /* Counted before compiling, so that a rule that failed half-way is freed too. */
    struct rule *rule = &out->rules[out->count++];
    *rule = (struct rule){0};
    int rc = compile_rule(c, raw_rule, rule);
    if (rc)
      return rc;
  }
  c->in_rule = false;
  return FW_OK;
}

/* Reads the keys and values of a validated variants array into the arena. */
static int read_variants(struct compiler *c, struct fw_rawjson raw) {
  size_t count = count_elements(raw);
  if (count > FW_VARIANTS_MAX)
    return fail(c, "a flag has at most %d variants", FW_VARIANTS_MAX);
  struct variant *variants = arena_alloc(c->arena, count * sizeof *variants);
  if (!variants)
    return out_of_memory(c);
  struct element_walk walk = walk_elements(raw);
  struct fw_rawjson element, value;
  for (size_t i = 0; next_element(&walk, &element); i++) {
    char key[FW_KEY_MAX + 1];
    if (!fw_flagdef_variant_key(raw, i, key, sizeof key) ||
        fw_rawjson_member(element, "value", &value) != FW_OK)
      return fail(c, "variant %zu needs a 'key' and a 'value'", i);
    char *key_copy = arena_copy(c->arena, key, strlen(key));
    char *value_copy = arena_copy(c->arena, value.text, value.len);
    if (!key_copy || !value_copy)
      return out_of_memory(c);
    variants[i] = (struct variant){.key = key_copy, .value = {value_copy, value.len}};
  }
  c->variants_raw = raw;
  c->variants = variants;
  c->variant_count = count;
  return FW_OK;
}

/* Reads state member `name`, which must name a variant, into its index. */
static int read_served_variant(struct compiler *c, struct fw_rawjson state, const char *name,
                               size_t *index) {
  struct fw_rawjson raw;
  char key[FW_KEY_MAX + 1];
  if (fw_rawjson_member(state, name, &raw) != FW_OK || !read_short_string(raw, key, sizeof key) ||
      !find_variant(c, key, index))
    return fail(c, "'%s' must name a variant of the flag", name);
  return FW_OK;
}

static int compile_flag_parts(struct compiler *c, struct fw_eval_flag *flag,
                              struct fw_rawjson definition, struct fw_rawjson state) {
  struct fw_rawjson raw;
  char text[FW_KEY_MAX + 1];
  if (fw_rawjson_member(definition, "key", &raw) != FW_OK ||
      !read_short_string(raw, text, sizeof text) || !fw_model_key_valid(text, strlen(text)))
    return fail(c, "the definition's 'key' must be a flag key");
  if (!(flag->key = arena_copy(c->arena, text, strlen(text))))
    return out_of_memory(c);
  c->flag_key = flag->key;
  if (fw_rawjson_member(definition, "type", &raw) != FW_OK ||
      !read_short_string(raw, text, sizeof text) || !fw_flag_type_from(text, &flag->type))
    return fail(c, "the definition's 'type' must be boolean, string, number or json");
  char message[200];
  if (fw_rawjson_member(definition, "variants", &raw) != FW_OK)
    return fail(c, "the definition has no 'variants'");
  if (!fw_flagdef_check_variants(flag->type, raw, message, sizeof message))
    return fail(c, "%s", message);
  int rc = read_variants(c, raw);
  if (rc)
    return rc;
  flag->variants = c->variants;
  flag->variant_count = c->variant_count;

  if (fw_rawjson_type(state) != FW_RAWJSON_OBJECT)
    return fail(c, "the state must be an object");
  enum fw_rawjson_type enabled = FW_RAWJSON_NULL;
  if (fw_rawjson_member(state, "enabled", &raw) == FW_OK)
    enabled = fw_rawjson_type(raw);
  if (enabled != FW_RAWJSON_TRUE && enabled != FW_RAWJSON_FALSE)
    return fail(c, "'enabled' must be true or false");
  flag->enabled = enabled == FW_RAWJSON_TRUE;
  if ((rc = read_served_variant(c, state, "on_variant", &flag->on_variant)) ||
      (rc = read_served_variant(c, state, "off_variant", &flag->off_variant)))
    return rc;

  struct fw_rawjson rules = {"[]", 2}, rollout = {"null", 4};
  if (fw_rawjson_member(state, "rules", &raw) == FW_OK)
    rules = raw;
  if (fw_rawjson_member(state, "rollout", &raw) == FW_OK)
    rollout = raw;
  if ((rc = compile_rules(c, rules, &flag->rules)))
    return rc;
  if (fw_rawjson_type(rollout) != FW_RAWJSON_NULL &&
      (rc = compile_rollout(c, rollout, targeting_key_name, (struct text){"", 0}, &flag->rollout)))
    return rc;
  flag->is_static = flag->rules.count == 0 && !flag->rollout;
  return FW_OK;
}

int fw_eval_compile_flag(struct fw_rawjson definition, struct fw_rawjson state,
                         struct fw_eval_flag **out, char *error, size_t error_len) {
  *out = NULL;
  struct fw_eval_flag *flag = calloc(1, sizeof *flag);
  if (!flag) {
    snprintf(error, error_len, "out of memory");
    return FW_ENOMEM;
  }
  struct compiler c = {.arena = &flag->arena, .error = error, .error_len = error_len};
  int rc = compile_flag_parts(&c, flag, definition, state);
  if (rc) {
    fw_eval_flag_free(flag);
    return rc;
  }
  *out = flag;
  return FW_OK;
}

void fw_eval_flag_free(struct fw_eval_flag *flag) {
  if (!flag)
    return;
  free_patterns(&flag->rules);
  arena_free(&flag->arena);
  free(flag);
}

bool fw_eval_check_rules(struct fw_rawjson rules, struct fw_rawjson variants, bool in_segment,
                         char *error, size_t error_len) {
  struct arena arena = {0};
  struct compiler c = {.arena = &arena,
                       .in_segment = in_segment,
                       .flag_key = "",
                       .error = error,
                       .error_len = error_len};
  struct rule_list list = {0};
  int rc = in_segment ? FW_OK : read_variants(&c, variants);
  if (!rc)
    rc = compile_rules(&c, rules, &list);
  free_patterns(&list);
  arena_free(&arena);
  return rc == FW_OK;
}

int fw_eval_compile_segment(const char *key, struct fw_rawjson rules, struct fw_eval_segment **out,
                            char *error, size_t error_len) {
  *out = NULL;
  struct fw_eval_segment *segment = calloc(1, sizeof *segment);
  if (!segment) {
    snprintf(error, error_len, "out of memory");
    return FW_ENOMEM;
  }
  struct compiler c = {.arena = &segment->arena,
                       .in_segment = true,
                       .flag_key = "",
                       .error = error,
                       .error_len = error_len};
  int rc;
  if (!fw_model_key_valid(key, strlen(key)))
    rc = fail(&c, "'%.64s' is not a segment key", key);
  else if (!(segment->key = arena_copy(&segment->arena, key, strlen(key))))
    rc = out_of_memory(&c);
  else
    rc = compile_rules(&c, rules, &segment->rules);
  if (rc) {
    fw_eval_segment_free(segment);
    return rc;
  }
  *out = segment;
  return FW_OK;
}

void fw_eval_segment_free(struct fw_eval_segment *segment) {
  if (!segment)
    return;
  free_patterns(&segment->rules);
  arena_free(&segment->arena);
  free(segment);
}

const char *fw_eval_segment_key(const struct fw_eval_segment *segment) { return segment->key; }

void fw_eval_on_variant(const struct fw_eval_flag *flag, struct fw_eval_result *out) {
  const struct variant *on = &flag->variants[flag->on_variant];
  *out = (struct fw_eval_result){
      .variant = on->key, .value = on->value, .reason = FW_REASON_DEFAULT, .error = FW_EVAL_OK};
}

const char *fw_eval_flag_key(const struct fw_eval_flag *flag) { return flag->key; }

enum fw_flag_type fw_eval_flag_type(const struct fw_eval_flag *flag) { return flag->type; }

/* ---- contexts ---- */

#define STRINGIFY_TEXT(x) #x
#define STRINGIFY(x) STRINGIFY_TEXT(x)

struct attribute {
  struct text name;
  enum value_kind kind;
  /* A string's bytes; a number's JSON text as written; "true" or "false". What rollouts
   * hash. Unused for lists. */
  struct text text;
  double number;
  bool boolean;
  const struct text *items; /* a list's */
  size_t item_count;
  size_t position; /* in the object: of two with one name, the later wins */
};

/* One allocation: this header, the attributes sorted by name (text_order), the items of
 * every list, and the bytes of every name and string. */
struct fw_eval_context {
  struct attribute *attributes;
  size_t count;
  const char *targeting_key; /* NUL-terminated, or NULL */
};

static int context_refused(enum fw_eval_error code, enum fw_eval_error *error_code, char *error,
                           size_t error_len, const char *fmt, ...) FW_PRINTF(5, 6);
static int context_refused(enum fw_eval_error code, enum fw_eval_error *error_code, char *error,
                           size_t error_len, const char *fmt, ...) {
  *error_code = code;
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
  return FW_EINVAL;
}

/* What a context needs once parsed: counted in a first pass, so that it takes one
 * allocation. A string needs at most its raw length less one byte (unescaping never
 * lengthens; the quotes make room for the NUL); a number its text and a NUL. */
struct context_size {
  size_t attributes;
  size_t items;
  size_t bytes;
};

/* Why value `value` of attribute `name` cannot be in a context, or NULL. */
static const char *context_value_problem(struct fw_rawjson name, struct fw_rawjson value,
                                         struct context_size *size) {
  switch (fw_rawjson_type(value)) {
  case FW_RAWJSON_STRING:
    size->bytes += value.len - 1;
    return has_escaped_nul(value) ? "must not hold U+0000" : NULL;
  case FW_RAWJSON_NUMBER:
    if (raw_string_is(name, targeting_key_name.bytes))
      return "must be a string";
    size->bytes += value.len + 1;
    return NULL;
  case FW_RAWJSON_TRUE:
  case FW_RAWJSON_FALSE:
    return raw_string_is(name, targeting_key_name.bytes) ? "must be a string" : NULL;
  case FW_RAWJSON_ARRAY: {
    if (raw_string_is(name, targeting_key_name.bytes))
      return "must be a string";
    struct element_walk walk = walk_elements(value);
    struct fw_rawjson item;
    size_t count = 0;
    while (next_element(&walk, &item)) {
      if (++count > FW_EVAL_CONTEXT_MAX_LIST)
        return "has more than " STRINGIFY(FW_EVAL_CONTEXT_MAX_LIST) " items";
      if (fw_rawjson_type(item) != FW_RAWJSON_STRING)
        return "must be a string, number, boolean or array of strings";
      if (has_escaped_nul(item))
        return "must not hold U+0000";
      size->bytes += item.len - 1;
    }
    size->items += count;
    return NULL;
  }
  case FW_RAWJSON_OBJECT:
  case FW_RAWJSON_NULL:
    break;
  }
  return raw_string_is(name, targeting_key_name.bytes)
             ? "must be a string"
             : "must be a string, number, boolean or array of strings";
}

/* Fills attribute `a` from member `name`: `value`, which the first pass accepted, taking
 * list items from *items and bytes from *bytes. */
static void fill_attribute(struct attribute *a, struct fw_rawjson name, struct fw_rawjson value,
                           struct text **items, char **bytes) {
  a->name = unescape_into(name, *bytes);
  *bytes += name.len - 1;
  switch (fw_rawjson_type(value)) {
  case FW_RAWJSON_STRING:
    a->kind = KIND_STRING;
    a->text = unescape_into(value, *bytes);
    *bytes += value.len - 1;
    break;
  case FW_RAWJSON_NUMBER:
    a->kind = KIND_NUMBER;
    memcpy(*bytes, value.text, value.len);
    (*bytes)[value.len] = '\0';
    a->text = (struct text){*bytes, value.len};
    a->number = parse_number(*bytes);
    *bytes += value.len + 1;
    break;
  case FW_RAWJSON_TRUE:
  case FW_RAWJSON_FALSE:
    a->kind = KIND_BOOLEAN;
    a->boolean = fw_rawjson_type(value) == FW_RAWJSON_TRUE;
    a->text = a->boolean ? (struct text){"true", 4} : (struct text){"false", 5};
    break;
  default: {
    a->kind = KIND_LIST;
    a->items = *items;
    struct element_walk walk = walk_elements(value);
    struct fw_rawjson item;
    while (next_element(&walk, &item)) {
      (*items)[a->item_count++] = unescape_into(item, *bytes);
      *bytes += item.len - 1;
    }
    *items += a->item_count;
    break;
  }
  }
}

/* By name, then by position. */
static int compare_attributes(const void *a, const void *b) {
  const struct attribute *x = a, *y = b;
  int cmp = text_order(x->name, y->name);
  if (cmp)
    return cmp;
  return (x->position > y->position) - (x->position < y->position);
}

int fw_eval_context_parse(const char *text, size_t len, struct fw_eval_context **out,
                          enum fw_eval_error *error_code, char *error, size_t error_len) {
  *out = NULL;
  *error_code = FW_EVAL_OK;
  if (len > FW_EVAL_CONTEXT_MAX_BYTES)
    return context_refused(FW_EVAL_INVALID_CONTEXT, error_code, error, error_len,
                           "the context is larger than %d bytes", FW_EVAL_CONTEXT_MAX_BYTES);
  struct fw_rawjson object = {"{}", 2};
  if (len > 0) {
    size_t offset;
    const char *reason;
    if (fw_rawjson_validate(text, len, &object, &offset, &reason) != FW_OK)
      return context_refused(FW_EVAL_PARSE_ERROR, error_code, error, error_len,
                             "the context is not valid JSON: %s at byte %zu", reason, offset);
    if (fw_rawjson_type(object) != FW_RAWJSON_OBJECT)
      return context_refused(FW_EVAL_PARSE_ERROR, error_code, error, error_len,
                             "the context must be a JSON object");
  }

  struct context_size size = {0};
  size_t cursor = 0;
  struct fw_rawjson name, value;
  while (fw_rawjson_next_member(object, &cursor, &name, &value)) {
    if (++size.attributes > FW_EVAL_CONTEXT_MAX_ATTRIBUTES)
      return context_refused(FW_EVAL_INVALID_CONTEXT, error_code, error, error_len,
                             "the context has more than %d attributes",
                             FW_EVAL_CONTEXT_MAX_ATTRIBUTES);
    const char *problem = has_escaped_nul(name) ? "has a name holding U+0000"
                                                : context_value_problem(name, value, &size);
    if (problem)
      return context_refused(FW_EVAL_INVALID_CONTEXT, error_code, error, error_len,
                             "attribute %.*s %s", (int)(name.len < 64 ? name.len : 64), name.text,
                             problem);
    size.bytes += name.len - 1;
  }

  size_t attributes_at = sizeof(struct fw_eval_context);
  size_t items_at = attributes_at + size.attributes * sizeof(struct attribute);
  size_t bytes_at = items_at + size.items * sizeof(struct text);
  struct fw_eval_context *context = malloc(bytes_at + size.bytes);
  if (!context) {
    context_refused(FW_EVAL_GENERAL, error_code, error, error_len, "out of memory");
    return FW_ENOMEM;
  }
  context->attributes = (struct attribute *)((char *)context + attributes_at);
  struct text *items = (struct text *)((char *)context + items_at);
  char *bytes = (char *)context + bytes_at;
  context->count = 0;
  cursor = 0;
  while (fw_rawjson_next_member(object, &cursor, &name, &value)) {
    struct attribute *a = &context->attributes[context->count];
    *a = (struct attribute){.position = context->count};
    fill_attribute(a, name, value, &items, &bytes);
    context->count++;
  }

  /* Sorted by name and, within a name, by position: keep the last of each run. */
  if (context->count > 1)
    qsort(context->attributes, context->count, sizeof *context->attributes, compare_attributes);
  size_t kept = 0;
  for (size_t i = 0; i < context->count; i++) {
    if (i + 1 < context->count &&
        text_equal(context->attributes[i].name, context->attributes[i + 1].name))
      continue;
    context->attributes[kept++] = context->attributes[i];
  }
  context->count = kept;
  context->targeting_key = NULL;
  for (size_t i = 0; i < context->count; i++)
    if (text_equal(context->attributes[i].name, targeting_key_name))
      context->targeting_key = context->attributes[i].text.bytes;
  *out = context;
  return FW_OK;
}

void fw_eval_context_free(struct fw_eval_context *context) { free(context); }

/* Adds a length-prefixed text to a digest's parts. */
static size_t digest_text(struct fw_bytes *parts, size_t n, uint64_t *len_slot, struct text text) {
  *len_slot = text.len;
  parts[n++] = (struct fw_bytes){len_slot, sizeof *len_slot};
  parts[n++] = (struct fw_bytes){text.bytes, text.len};
  return n;
}

void fw_eval_context_digest(const struct fw_eval_context *context, uint8_t out[32]) {
  /* Each attribute in name order: its name, its kind, and what evaluation reads of it (a
   * number's text as written, since rollouts hash that text). Lengths come first, so that
   * no two different contexts give the same bytes. Digested an attribute at a time. */
  uint8_t running[FW_SHA256_LEN] = {0};
  size_t count = context ? context->count : 0;
  for (size_t i = 0; i < count; i++) {
    const struct attribute *a = &context->attributes[i];
    struct fw_bytes parts[8];
    uint64_t lens[3];
    uint8_t kind = (uint8_t)a->kind;
    size_t n = 0;
    parts[n++] = (struct fw_bytes){running, sizeof running};
    n = digest_text(parts, n, &lens[0], a->name);
    parts[n++] = (struct fw_bytes){&kind, 1};
    if (a->kind != KIND_LIST) {
      n = digest_text(parts, n, &lens[1], a->text);
      fw_sha256_parts(parts, n, running);
      continue;
    }
    lens[1] = a->item_count;
    parts[n++] = (struct fw_bytes){&lens[1], sizeof lens[1]};
    fw_sha256_parts(parts, n, running);
    for (size_t j = 0; j < a->item_count; j++) {
      n = 0;
      parts[n++] = (struct fw_bytes){running, sizeof running};
      n = digest_text(parts, n, &lens[2], a->items[j]);
      fw_sha256_parts(parts, n, running);
    }
  }
  memcpy(out, running, FW_SHA256_LEN);
}

const char *fw_eval_context_targeting_key(const struct fw_eval_context *context) {
  return context ? context->targeting_key : NULL;
}

static const struct attribute *find_attribute(const struct fw_eval_context *context,
                                              struct text name) {
  size_t low = 0, high = context ? context->count : 0;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    int cmp = text_order(context->attributes[mid].name, name);
    if (cmp == 0)
      return &context->attributes[mid];
    if (cmp < 0)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

/* ---- evaluation ---- */

/* What an operator made of an attribute: a condition on an attribute of a type its
 * operator cannot compare (or a string that is not a version or an instant) is
 * INCOMPARABLE, and false whether negated or not, like a missing attribute. */
enum outcome { OUTCOME_FALSE, OUTCOME_TRUE, OUTCOME_INCOMPARABLE };

static enum outcome outcome_of(bool holds) { return holds ? OUTCOME_TRUE : OUTCOME_FALSE; }

static bool list_has_string(const struct value_list *list, struct text string) {
  size_t low = 0, high = list->string_count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    int cmp = text_order(list->strings[mid], string);
    if (cmp == 0)
      return true;
    if (cmp < 0)
      low = mid + 1;
    else
      high = mid;
  }
  return false;
}

static bool list_has_number(const struct value_list *list, double number) {
  size_t low = 0, high = list->number_count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    if (list->numbers[mid] == number)
      return true;
    if (list->numbers[mid] < number)
      low = mid + 1;
    else
      high = mid;
  }
  return false;
}

static enum outcome in_list(const struct value_list *list, const struct attribute *a) {
  switch (a->kind) {
  case KIND_STRING:
    return outcome_of(list_has_string(list, a->text));
  case KIND_NUMBER:
    return outcome_of(list_has_number(list, a->number));
  case KIND_LIST:
    for (size_t i = 0; i < a->item_count; i++)
      if (list_has_string(list, a->items[i]))
        return OUTCOME_TRUE;
    return OUTCOME_FALSE;
  case KIND_BOOLEAN:
    break;
  }
  return OUTCOME_INCOMPARABLE;
}

static enum outcome scalar_equals(const struct condition *c, const struct attribute *a) {
  if (a->kind != c->kind)
    return OUTCOME_INCOMPARABLE;
  switch (c->kind) {
  case KIND_STRING:
    return outcome_of(text_equal(a->text, c->value.string));
  case KIND_NUMBER:
    return outcome_of(a->number == c->value.number);
  case KIND_BOOLEAN:
    return outcome_of(a->boolean == c->value.boolean);
  case KIND_LIST:
    break;
  }
  return OUTCOME_INCOMPARABLE;
}

static enum outcome contains(struct text operand, const struct attribute *a) {
  if (a->kind == KIND_STRING)
    return outcome_of(memmem(a->text.bytes, a->text.len, operand.bytes, operand.len) != NULL);
  if (a->kind != KIND_LIST)
    return OUTCOME_INCOMPARABLE;
  for (size_t i = 0; i < a->item_count; i++)
    if (text_equal(a->items[i], operand))
      return OUTCOME_TRUE;
  return OUTCOME_FALSE;
}

/* Match data for "matches", one per thread, made on first use and kept: a pattern's
 * match runs without allocating (once its backtracking frames have grown) and threads
 * never share one. The key's destructor frees it when its thread ends. */
static pthread_once_t match_data_once = PTHREAD_ONCE_INIT;
static pthread_key_t match_data_key;
static bool match_data_key_made;
static _Thread_local pcre2_match_data *thread_match_data;

static void free_match_data(void *match_data) { pcre2_match_data_free(match_data); }

static void make_match_data_key(void) {
  match_data_key_made = pthread_key_create(&match_data_key, free_match_data) == 0;
}

static pcre2_match_data *match_data_of_thread(void) {
  if (thread_match_data)
    return thread_match_data;
  pthread_once(&match_data_once, make_match_data_key);
  if (!match_data_key_made)
    return NULL;
  /* One pair: evaluation only asks whether there is a match. */
  pcre2_match_data *match_data = pcre2_match_data_create(1, NULL);
  if (match_data && pthread_setspecific(match_data_key, match_data) != 0) {
    pcre2_match_data_free(match_data);
    match_data = NULL;
  }
  thread_match_data = match_data;
  return match_data;
}

/* Without match data (out of memory) a pattern matches nothing. */
static enum outcome matches(const struct condition *c, const struct attribute *a) {
  if (a->kind != KIND_STRING)
    return OUTCOME_INCOMPARABLE;
  pcre2_match_data *match_data = match_data_of_thread();
  if (!match_data)
    return OUTCOME_FALSE;
  /* Context strings are unescaped from validated JSON, so they are valid UTF-8 and the
   * check can be skipped. A limit reached or any other error is no match; 0 (more
   * groups than the one pair) is a match. */
  int rc = pcre2_match(c->value.pattern.code, (PCRE2_SPTR)a->text.bytes, a->text.len, 0,
                       PCRE2_NO_UTF_CHECK, match_data, c->value.pattern.limits);
  return outcome_of(rc >= 0);
}

static enum outcome compare_version(const struct condition *c, const struct attribute *a) {
  struct fw_semver version;
  if (a->kind != KIND_STRING || !fw_semver_parse(a->text.bytes, a->text.len, &version))
    return OUTCOME_INCOMPARABLE;
  int cmp = fw_semver_compare(&version, &c->value.version);
  switch (c->op) {
  case OP_SEMVER_EQ:
    return outcome_of(cmp == 0);
  case OP_SEMVER_LT:
    return outcome_of(cmp < 0);
  case OP_SEMVER_LTE:
    return outcome_of(cmp <= 0);
  case OP_SEMVER_GT:
    return outcome_of(cmp > 0);
  default:
    return outcome_of(cmp >= 0);
  }
}

static enum outcome compare_instant(const struct condition *c, const struct attribute *a) {
  int64_t instant;
  bool valid = a->kind == KIND_STRING   ? parse_rfc3339(a->text.bytes, a->text.len, &instant)
               : a->kind == KIND_NUMBER ? instant_from_number(a->number, &instant)
                                        : false;
  if (!valid)
    return OUTCOME_INCOMPARABLE;
  return outcome_of(c->op == OP_BEFORE ? instant < c->value.instant_ms
                                       : instant > c->value.instant_ms);
}

static enum outcome apply_operator(const struct condition *c, const struct attribute *a) {
  struct text operand = c->value.string;
  switch (c->op) {
  case OP_EQUALS:
    return scalar_equals(c, a);
  case OP_NOT_EQUALS: {
    enum outcome equal = scalar_equals(c, a);
    return equal == OUTCOME_INCOMPARABLE ? equal : outcome_of(equal == OUTCOME_FALSE);
  }
  case OP_IN:
    return in_list(&c->value.list, a);
  case OP_NOT_IN: {
    enum outcome in = in_list(&c->value.list, a);
    return in == OUTCOME_INCOMPARABLE ? in : outcome_of(in == OUTCOME_FALSE);
  }
  case OP_CONTAINS:
    return contains(operand, a);
  case OP_STARTS_WITH:
    if (a->kind != KIND_STRING)
      return OUTCOME_INCOMPARABLE;
    return outcome_of(a->text.len >= operand.len &&
                      memcmp(a->text.bytes, operand.bytes, operand.len) == 0);
  case OP_ENDS_WITH:
    if (a->kind != KIND_STRING)
      return OUTCOME_INCOMPARABLE;
    return outcome_of(
        a->text.len >= operand.len &&
        memcmp(a->text.bytes + a->text.len - operand.len, operand.bytes, operand.len) == 0);
  case OP_MATCHES:
    return matches(c, a);
  case OP_LT:
  case OP_LTE:
  case OP_GT:
  case OP_GTE: {
    if (a->kind != KIND_NUMBER)
      return OUTCOME_INCOMPARABLE;
    double x = a->number, y = c->value.number;
    return outcome_of(c->op == OP_LT    ? x < y
                      : c->op == OP_LTE ? x <= y
                      : c->op == OP_GT  ? x > y
                                        : x >= y);
  }
  case OP_SEMVER_EQ:
  case OP_SEMVER_LT:
  case OP_SEMVER_LTE:
  case OP_SEMVER_GT:
  case OP_SEMVER_GTE:
    return compare_version(c, a);
  case OP_BEFORE:
  case OP_AFTER:
    return compare_instant(c, a);
  case OP_SEGMENT:
    break;
  }
  return OUTCOME_INCOMPARABLE;
}

/* The segments a flag is evaluated with. */
struct segments {
  const struct fw_eval_segment *const *items;
  size_t count;
};

static bool rule_conditions_hold(const struct rule *rule, const struct segments *segments,
                                 const struct fw_eval_context *context);

/* Whether any rule of `segment` holds. Its rules hold no segment conditions, so this
 * never recurses further. */
static bool segment_holds(const struct fw_eval_segment *segment,
                          const struct fw_eval_context *context) {
  for (size_t i = 0; i < segment->rules.count; i++)
    if (rule_conditions_hold(&segment->rules.rules[i], NULL, context))
      return true;
  return false;
}

static const struct fw_eval_segment *find_segment(const struct segments *segments,
                                                  const char *key) {
  size_t low = 0, high = segments ? segments->count : 0;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    int cmp = strcmp(segments->items[mid]->key, key);
    if (cmp == 0)
      return segments->items[mid];
    if (cmp < 0)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

static bool condition_holds(const struct condition *c, const struct segments *segments,
                            const struct fw_eval_context *context) {
  if (c->op == OP_SEGMENT) {
    const struct fw_eval_segment *segment = find_segment(segments, c->name.bytes);
    bool member = segment && segment_holds(segment, context);
    return member != c->negate;
  }
  const struct attribute *a = find_attribute(context, c->name);
  if (!a)
    return false;
  enum outcome outcome = apply_operator(c, a);
  if (outcome == OUTCOME_INCOMPARABLE)
    return false;
  return (outcome == OUTCOME_TRUE) != c->negate;
}

static bool rule_conditions_hold(const struct rule *rule, const struct segments *segments,
                                 const struct fw_eval_context *context) {
  for (size_t i = 0; i < rule->condition_count; i++)
    if (!condition_holds(&rule->conditions[i], segments, context))
      return false;
  return true;
}

static void serve(const struct fw_eval_flag *flag, size_t variant, enum fw_eval_reason reason,
                  struct fw_eval_result *out) {
  *out = (struct fw_eval_result){.variant = flag->variants[variant].key,
                                 .value = flag->variants[variant].value,
                                 .reason = reason,
                                 .error = FW_EVAL_OK};
}

/* Serves the variant owning the context's bucket, or the error of a context without
 * a bucketing value: a missing attribute, an empty string or a list. */
static void split(const struct fw_eval_flag *flag, const struct rollout *rollout,
                  const struct fw_eval_context *context, struct fw_eval_result *out) {
  const struct attribute *a = find_attribute(context, rollout->bucket_by);
  if (!a || a->kind == KIND_LIST || a->text.len == 0) {
    *out =
        (struct fw_eval_result){.reason = FW_REASON_ERROR, .error = FW_EVAL_TARGETING_KEY_MISSING};
    return;
  }
  struct fw_murmur3 hash = rollout->hash_prefix;
  fw_murmur3_update(&hash, a->text.bytes, a->text.len);
  uint32_t bucket = fw_murmur3_final(&hash) % FW_EVAL_BUCKETS;
  size_t entry = 0;
  /* The last bound is FW_EVAL_BUCKETS: weights add up to 100. */
  while (entry + 1 < rollout->count && bucket >= rollout->upper_bounds[entry])
    entry++;
  serve(flag, rollout->variants[entry], FW_REASON_SPLIT, out);
}

void fw_eval(const struct fw_eval_flag *flag, const struct fw_eval_segment *const *segments,
             size_t count, const struct fw_eval_context *context, struct fw_eval_result *out) {
  if (!flag->enabled) {
    serve(flag, flag->off_variant, FW_REASON_DISABLED, out);
    return;
  }
  const struct segments environment = {segments, count};
  for (size_t i = 0; i < flag->rules.count; i++) {
    const struct rule *rule = &flag->rules.rules[i];
    if (!rule_conditions_hold(rule, &environment, context))
      continue;
    if (rule->rollout)
      split(flag, rule->rollout, context, out);
    else
      serve(flag, rule->variant, FW_REASON_TARGETING_MATCH, out);
    return;
  }
  if (flag->rollout)
    split(flag, flag->rollout, context, out);
  else
    serve(flag, flag->on_variant, flag->is_static ? FW_REASON_STATIC : FW_REASON_DEFAULT, out);
}

uint32_t fw_eval_bucket(const char *flag_key, const char *salt, const char *value, size_t len) {
  struct fw_murmur3 hash;
  fw_murmur3_init(&hash, 0);
  fw_murmur3_update(&hash, flag_key, strlen(flag_key));
  fw_murmur3_update(&hash, ".", 1);
  fw_murmur3_update(&hash, salt, strlen(salt));
  fw_murmur3_update(&hash, ".", 1);
  fw_murmur3_update(&hash, value, len);
  return fw_murmur3_final(&hash) % FW_EVAL_BUCKETS;
}

int fw_eval_result_append(struct fw_buf *out, const struct fw_eval_result *result) {
  int rc;
  if (result->reason == FW_REASON_ERROR) {
    rc = fw_buf_append_str(out, "\"reason\":\"ERROR\",\"errorCode\":\"");
    if (!rc)
      rc = fw_buf_append_str(out, fw_eval_error_name(result->error));
    if (!rc)
      rc = fw_buf_append_char(out, '"');
    return rc;
  }
  rc = fw_buf_append_str(out, "\"value\":");
  if (!rc)
    rc = fw_buf_append(out, result->value.text, result->value.len);
  if (!rc)
    rc = fw_buf_append_str(out, ",\"variant\":");
  if (!rc)
    rc = fw_json_append_string(out, result->variant, strlen(result->variant));
  if (!rc)
    rc = fw_buf_append_str(out, ",\"reason\":\"");
  if (!rc)
    rc = fw_buf_append_str(out, fw_eval_reason_name(result->reason));
  if (!rc)
    rc = fw_buf_append_char(out, '"');
  return rc;
}
