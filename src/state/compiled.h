/* The compiled forms the evaluation endpoints read: each flag state and each segment's
 * rules carry, beside their document, what core/eval.h compiled from them. They are
 * built when the object enters the state (on the writer thread, or while loading) and
 * shared, immutable, by every reader.
 *
 * Thread: building on the writer (or loading) thread; reading on any. */
#ifndef FW_STATE_COMPILED_H
#define FW_STATE_COMPILED_H

#include <stdbool.h>

#include "core/eval.h"
#include "state/world.h"

/* What a flag state carries for evaluation. */
struct fw_compiled_flag {
  struct fw_eval_flag *eval; /* NULL when the stored rules could not be compiled */
  bool client_visible;       /* from the definition: whether client keys may see it */
  enum fw_flag_type type;
  char error[160]; /* why `eval` is NULL */
};

/* Compiles `state` (a flag state object) against its flag's definition `flag` and
 * attaches the result to `state`. A state whose rules do not compile still gets a
 * compiled form, without `eval`, so that evaluating it answers a GENERAL error rather
 * than failing a whole write or load. FW_ENOMEM only. */
FW_MUST_CHECK int fw_compile_flag_state(struct fw_object *state, const struct fw_object *flag);

/* Compiles segment rules (a FW_TABLE_SEGMENT_RULES object) and attaches them. Rules that
 * do not compile hold for nobody. FW_ENOMEM only. */
FW_MUST_CHECK int fw_compile_segment_rules(struct fw_object *rules);

/* The compiled form of a flag state, or NULL if it has none. */
const struct fw_compiled_flag *fw_compiled_flag_of(const struct fw_object *state);
/* The compiled segment of segment rules, or NULL. */
const struct fw_eval_segment *fw_compiled_segment_of(const struct fw_object *rules);

/* Evaluates flag state `state` of `env` for `context` with the environment's segments.
 * A state without a compiled form answers reason ERROR, error GENERAL. */
void fw_compiled_evaluate(const struct fw_env_node *env, const struct fw_object *state,
                          const struct fw_eval_context *context, struct fw_eval_result *out);

/* Compiles every flag state and segment rules of a freshly loaded world. */
FW_MUST_CHECK int fw_compile_world(struct fw_world *world);

#endif
