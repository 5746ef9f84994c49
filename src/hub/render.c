/* What a key may see of an environment, rendered as JSON, and the filters that select
 * parts of it: shared by the stream's snapshot and the evaluation endpoints. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "hub/hub.h"
#include "state/compiled.h"
#include "state/mutations.h"
#include "util/json.h"
#include "util/rawjson.h"

/* Entries one filter list may hold. */
#define FILTER_LIST_MAX 256

/* ---- filters ---- */

static void free_list(char **items, size_t count) {
  for (size_t i = 0; i < count; i++)
    free(items[i]);
  free(items);
}

void fw_hub_filter_free(struct fw_hub_filter *filter) {
  free_list(filter->flags, filter->flag_count);
  free_list(filter->tags, filter->tag_count);
  free_list(filter->configs, filter->config_count);
  *filter = (struct fw_hub_filter){0};
}

/* Splits the comma-separated query value of `name` into keys. */
static bool parse_list(const struct fw_http_request *req, const char *name, char ***items,
                       size_t *count, bool *star, char *error, size_t error_len) {
  const char *raw;
  size_t raw_len;
  if (!fw_http_query(req, name, &raw, &raw_len))
    return true;
  char decoded[FILTER_LIST_MAX * (FW_KEY_MAX + 1)];
  size_t len;
  if (!fw_http_query_decode(raw, raw_len, decoded, sizeof decoded, &len)) {
    snprintf(error, error_len, "'%s' is not a valid list", name);
    return false;
  }
  if (star && len == 1 && decoded[0] == '*') {
    *star = true;
    return true;
  }
  *items = calloc(FILTER_LIST_MAX, sizeof **items);
  if (!*items) {
    snprintf(error, error_len, "the server is out of memory");
    return false;
  }
  const char *p = decoded, *end = decoded + len;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    size_t item_len = (size_t)(stop - p);
    if (*count == FILTER_LIST_MAX || !fw_model_key_valid(p, item_len) ||
        !((*items)[*count] = strndup(p, item_len))) {
      snprintf(error, error_len,
               *count == FILTER_LIST_MAX ? "'%s' names more than 256 entries"
                                         : "'%s' must be a comma-separated list of keys",
               name);
      return false;
    }
    (*count)++;
    p = stop + 1;
  }
  return true;
}

bool fw_hub_filter_parse(const struct fw_http_request *req, struct fw_hub_filter *out, char *error,
                         size_t error_len) {
  *out = (struct fw_hub_filter){0};
  if (parse_list(req, "flags", &out->flags, &out->flag_count, NULL, error, error_len) &&
      parse_list(req, "tags", &out->tags, &out->tag_count, NULL, error, error_len) &&
      parse_list(req, "configs", &out->configs, &out->config_count, &out->all_configs, error,
                 error_len))
    return true;
  fw_hub_filter_free(out);
  return false;
}

static bool filter_active(const struct fw_hub_filter *filter) {
  return filter && (filter->flags || filter->tags || filter->configs || filter->all_configs);
}

static bool listed(char *const *items, size_t count, const char *text, size_t len) {
  for (size_t i = 0; i < count; i++)
    if (strlen(items[i]) == len && !memcmp(items[i], text, len))
      return true;
  return false;
}

bool fw_hub_filter_flag(const struct fw_hub_filter *filter, const char *key, const char *doc,
                        size_t doc_len) {
  if (!filter_active(filter))
    return true;
  if (listed(filter->flags, filter->flag_count, key, strlen(key)))
    return true;
  if (!filter->tags || !doc)
    return false;
  struct fw_rawjson tags, tag;
  if (fw_rawjson_member((struct fw_rawjson){doc, doc_len}, "tags", &tags) != FW_OK ||
      fw_rawjson_type(tags) != FW_RAWJSON_ARRAY)
    return false;
  for (size_t i = 0; fw_rawjson_element(tags, i, &tag) == FW_OK; i++) {
    /* Tags are keys: no escapes, so the text between the quotes is the tag. */
    if (tag.len >= 2 && listed(filter->tags, filter->tag_count, tag.text + 1, tag.len - 2))
      return true;
  }
  return false;
}

bool fw_hub_filter_config(const struct fw_hub_filter *filter, const char *key) {
  if (!filter_active(filter) || filter->all_configs)
    return true;
  return listed(filter->configs, filter->config_count, key, strlen(key));
}

/* ---- rendering ---- */

void fw_hub_env_epoch(const struct fw_env_node *env, char out[40]) {
  struct fw_rawjson value;
  out[0] = '\0';
  if (fw_rawjson_member((struct fw_rawjson){env->env->doc, env->env->doc_len}, "epoch", &value) ==
          FW_OK &&
      value.len >= 2 && value.len < 40) {
    memcpy(out, value.text + 1, value.len - 2);
    out[value.len - 2] = '\0';
  }
}

/* `{"environment":"<key>",["epoch":"...",]"revision":N` */
static int render_head(struct fw_buf *out, const struct fw_env_node *env, bool epoch) {
  int rc = fw_buf_append_str(out, "{\"environment\":");
  if (!rc)
    rc = fw_json_append_string(out, env->env->key, strlen(env->env->key));
  if (!rc && epoch) {
    char text[40];
    fw_hub_env_epoch(env, text);
    rc = fw_buf_append_str(out, ",\"epoch\":");
    if (!rc)
      rc = fw_json_append_string(out, text, strlen(text));
  }
  if (!rc)
    rc = fw_buf_appendf(out, ",\"revision\":%" PRId64, env->revision);
  return rc;
}

int fw_hub_render_definitions(struct fw_buf *out, const struct fw_project_node *project,
                              const struct fw_env_node *env, const struct fw_hub_filter *filter,
                              bool epoch) {
  int rc = render_head(out, env, epoch);
  if (!rc)
    rc = fw_buf_append_str(out, ",\"flags\":[");
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->states); i++) {
    const struct fw_object *state = fw_objects_at(env->states, i);
    const struct fw_object *flag = fw_project_flag(project, state->key);
    if (!flag || !fw_hub_filter_flag(filter, flag->key, flag->doc, flag->doc_len))
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_render_env_flag(out, flag, state);
  }
  if (!rc)
    rc = fw_buf_append_str(out, "],\"segments\":[");
  written = 0;
  /* Segments matter to whoever receives flags. */
  bool segments = !filter_active(filter) || filter->flags || filter->tags;
  for (size_t i = 0; !rc && segments && i < fw_objects_count(env->segment_rules); i++) {
    const struct fw_object *rules = fw_objects_at(env->segment_rules, i);
    const struct fw_object *segment = fw_project_segment(project, rules->key);
    if (!segment)
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_render_env_segment(out, segment, rules);
  }
  if (!rc)
    rc = fw_buf_append_str(out, "],\"configs\":[");
  written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->configs); i++) {
    const struct fw_object *config = fw_objects_at(env->configs, i);
    if (!fw_hub_filter_config(filter, config->key))
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_buf_append(out, config->doc, config->doc_len);
  }
  if (!rc)
    rc = fw_buf_append_str(out, "]}");
  return rc;
}

int fw_hub_render_values(struct fw_buf *out, const struct fw_project_node *project,
                         const struct fw_env_node *env, bool client_only,
                         const struct fw_eval_context *context, const struct fw_hub_filter *filter,
                         bool epoch) {
  int rc = render_head(out, env, epoch);
  if (!rc)
    rc = fw_buf_append_str(out, ",\"flags\":{");
  size_t written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->states); i++) {
    const struct fw_object *state = fw_objects_at(env->states, i);
    const struct fw_compiled_flag *compiled = fw_compiled_flag_of(state);
    if (client_only && !(compiled && compiled->client_visible))
      continue;
    if (filter_active(filter)) {
      const struct fw_object *flag = fw_project_flag(project, state->key);
      if (!flag || !fw_hub_filter_flag(filter, state->key, flag->doc, flag->doc_len))
        continue;
    }
    struct fw_eval_result result;
    fw_compiled_evaluate(env, state, context, &result);
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_json_append_string(out, state->key, strlen(state->key));
    if (!rc)
      rc = fw_buf_append_str(out, ":{");
    if (!rc)
      rc = fw_eval_result_append(out, &result);
    if (!rc)
      rc = fw_buf_append_char(out, '}');
  }
  if (!rc)
    rc = fw_buf_append_str(out, "},\"configs\":{");
  written = 0;
  for (size_t i = 0; !rc && i < fw_objects_count(env->configs); i++) {
    const struct fw_object *config = fw_objects_at(env->configs, i);
    struct fw_rawjson doc = {config->doc, config->doc_len}, value, type;
    if (!fw_hub_filter_config(filter, config->key) ||
        fw_rawjson_member(doc, "value", &value) != FW_OK ||
        fw_rawjson_member(doc, "content_type", &type) != FW_OK)
      continue;
    if (written++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_json_append_string(out, config->key, strlen(config->key));
    if (!rc)
      rc = fw_buf_append_str(out, ":{\"value\":");
    if (!rc)
      rc = fw_buf_append(out, value.text, value.len);
    if (!rc)
      rc = fw_buf_append_str(out, ",\"content_type\":");
    if (!rc)
      rc = fw_buf_append(out, type.text, type.len);
    if (!rc)
      rc = fw_buf_append_char(out, '}');
  }
  if (!rc)
    rc = fw_buf_append_str(out, "}}");
  return rc;
}
