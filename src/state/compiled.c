#include "state/compiled.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static void free_compiled_flag(void *compiled) {
  struct fw_compiled_flag *flag = compiled;
  fw_eval_flag_free(flag->eval);
  free(flag);
}

static void free_compiled_segment(void *compiled) { fw_eval_segment_free(compiled); }

/* Replaces what `object` carries compiled. */
static void attach(struct fw_object *object, void *compiled, void (*free_compiled)(void *)) {
  if (object->free_compiled)
    object->free_compiled(object->compiled);
  object->compiled = compiled;
  object->free_compiled = free_compiled;
}

int fw_compile_flag_state(struct fw_object *state, const struct fw_object *flag) {
  struct fw_compiled_flag *compiled = calloc(1, sizeof *compiled);
  if (!compiled)
    return FW_ENOMEM;
  struct fw_rawjson definition = {flag->doc, flag->doc_len}, doc = {state->doc, state->doc_len};
  struct fw_rawjson value, type;
  compiled->client_visible = fw_rawjson_member(definition, "client_visible", &value) == FW_OK &&
                             fw_rawjson_type(value) == FW_RAWJSON_TRUE;
  char type_name[16] = "";
  if (fw_rawjson_member(definition, "type", &type) != FW_OK ||
      fw_rawjson_string(type, type_name, sizeof type_name) != FW_OK ||
      !fw_flag_type_from(type_name, &compiled->type))
    compiled->type = FW_FLAG_JSON;
  int rc = fw_eval_compile_flag(definition, doc, &compiled->eval, compiled->error,
                                sizeof compiled->error);
  if (rc == FW_ENOMEM) {
    free(compiled);
    return rc;
  }
  if (rc) {
    /* Rules are checked when written, so this is data from before a rule changed
     * meaning: keep serving, and say so. */
    fw_log_with(FW_LOG_WARN, "a flag state does not compile", FW_LOG_STR("flag", flag->key),
                FW_LOG_STR("error", compiled->error));
    compiled->eval = NULL;
  }
  attach(state, compiled, free_compiled_flag);
  return FW_OK;
}

int fw_compile_segment_rules(struct fw_object *rules) {
  struct fw_rawjson doc = {rules->doc, rules->doc_len}, list = {"[]", 2};
  if (fw_rawjson_member(doc, "rules", &list) != FW_OK)
    list = (struct fw_rawjson){"[]", 2};
  struct fw_eval_segment *segment = NULL;
  char error[160];
  int rc = fw_eval_compile_segment(rules->key, list, &segment, error, sizeof error);
  if (rc == FW_ENOMEM)
    return rc;
  if (rc) {
    fw_log_with(FW_LOG_WARN, "segment rules do not compile; they hold for nobody",
                FW_LOG_STR("segment", rules->key), FW_LOG_STR("error", error));
    rc = fw_eval_compile_segment(rules->key, (struct fw_rawjson){"[]", 2}, &segment, error,
                                 sizeof error);
    if (rc)
      return rc;
  }
  attach(rules, segment, free_compiled_segment);
  return FW_OK;
}

const struct fw_compiled_flag *fw_compiled_flag_of(const struct fw_object *state) {
  return state->free_compiled == free_compiled_flag ? state->compiled : NULL;
}

const struct fw_eval_segment *fw_compiled_segment_of(const struct fw_object *rules) {
  return rules->free_compiled == free_compiled_segment ? rules->compiled : NULL;
}

int fw_compile_world(struct fw_world *world) {
  for (size_t p = 0; p < world->project_count; p++) {
    struct fw_project_node *project = world->projects[p];
    for (size_t e = 0; e < project->env_count; e++) {
      struct fw_env_node *env = project->envs[e];
      for (size_t i = 0; i < fw_objects_count(env->states); i++) {
        struct fw_object *flag = fw_project_flag(project, fw_objects_at(env->states, i)->key);
        int rc = flag ? fw_compile_flag_state(fw_objects_at(env->states, i), flag) : FW_EINVAL;
        if (rc)
          return rc;
      }
      for (size_t i = 0; i < fw_objects_count(env->segment_rules); i++) {
        int rc = fw_compile_segment_rules(fw_objects_at(env->segment_rules, i));
        if (rc)
          return rc;
      }
    }
  }
  return FW_OK;
}

/* The environment's compiled segments in key order, in a per-thread array: evaluation
 * takes them as one sorted array, and building it costs a pointer per segment. */
static _Thread_local const struct fw_eval_segment *segment_scratch[FW_MODEL_MAX_SEGMENTS];

void fw_compiled_evaluate(const struct fw_env_node *env, const struct fw_object *state,
                          const struct fw_eval_context *context, struct fw_eval_result *out) {
  const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
  if (!compiled || !compiled->eval) {
    *out = (struct fw_eval_result){.reason = FW_REASON_ERROR, .error = FW_EVAL_GENERAL};
    return;
  }
  size_t count = 0;
  for (size_t i = 0; i < fw_objects_count(env->segment_rules) && count < FW_MODEL_MAX_SEGMENTS;
       i++) {
    const struct fw_eval_segment *segment =
        fw_compiled_segment_of(fw_objects_at(env->segment_rules, i));
    if (segment)
      segment_scratch[count++] = segment;
  }
  fw_eval(compiled->eval, segment_scratch, count, context, out);
}
