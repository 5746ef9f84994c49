/* Validation of the parts of a flag that arrive as JSON: variants, tags, targeting rules
 * and rollouts. Pure functions over raw JSON (util/rawjson.h); each returns false and
 * writes one sentence naming the problem into `error`.
 *
 * Shapes:
 *   variants  [{"key":"on","value":<JSON of the flag's type>}, ...]  1 to FW_VARIANTS_MAX,
 *             keys valid and distinct
 *   tags      ["beta", ...]  at most FW_TAGS_MAX valid keys
 *   rules     [{...}, ...]   objects; their operators are the evaluation engine's to check
 *   rollout   null, or [{"variant":"on","weight":50}, ...] with existing variants and
 *             weights from 0 to 100 (at most three decimals) adding up to exactly 100 */
#ifndef FW_CORE_FLAGDEF_H
#define FW_CORE_FLAGDEF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/model.h"
#include "util/rawjson.h"

bool fw_flagdef_check_variants(enum fw_flag_type type, struct fw_rawjson variants, char *error,
                               size_t error_len);
bool fw_flagdef_check_tags(struct fw_rawjson tags, char *error, size_t error_len);
bool fw_flagdef_check_rules(struct fw_rawjson rules, char *error, size_t error_len);
/* `variants` is the flag's validated variants array. */
bool fw_flagdef_check_rollout(struct fw_rawjson rollout, struct fw_rawjson variants, char *error,
                              size_t error_len);

/* Reads a rollout weight: a JSON number from 0 to 100 with at most three decimals, in
 * thousandths (100 is 100000). False for anything else. */
bool fw_flagdef_rollout_weight(struct fw_rawjson weight, long *thousandths);

/* Whether validated rules refer to segment `key`: a member "segment" equal to it, or a
 * member "segments" listing it, at any depth. */
bool fw_flagdef_rules_use_segment(struct fw_rawjson rules, const char *key);

/* Whether the validated `variants` array has a variant `key`. */
bool fw_flagdef_has_variant(struct fw_rawjson variants, const char *key);

/* The key of variant `index` into `out`; false past the end. */
bool fw_flagdef_variant_key(struct fw_rawjson variants, size_t index, char *out, size_t out_len);

#endif
