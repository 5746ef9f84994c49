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

/* ---- WebSocket channels ---- */

#define CHANNELS_MAX 256

static size_t channel_count(const struct fw_hub_filter *filter) {
  return filter->flag_count + filter->tag_count + filter->config_count + filter->all_flags +
         filter->all_configs;
}

static bool has_item(char *const *items, size_t count, const char *text, size_t len) {
  for (size_t i = 0; i < count; i++)
    if (strlen(items[i]) == len && !memcmp(items[i], text, len))
      return true;
  return false;
}

/* Adds `text` to a list unless it is there. FW_ENOMEM. */
static int list_add(char ***items, size_t *count, const char *text, size_t len) {
  if (has_item(*items, *count, text, len))
    return FW_OK;
  char **grown = realloc(*items, (*count + 1) * sizeof *grown);
  if (!grown)
    return FW_ENOMEM;
  *items = grown;
  if (!(grown[*count] = strndup(text, len)))
    return FW_ENOMEM;
  (*count)++;
  return FW_OK;
}

static void list_remove(char **items, size_t *count, const char *text) {
  for (size_t i = 0; i < *count; i++)
    if (!strcmp(items[i], text)) {
      free(items[i]);
      memmove(items + i, items + i + 1, (*count - i - 1) * sizeof *items);
      (*count)--;
      return;
    }
}

bool fw_hub_filter_add_channel(struct fw_hub_filter *filter, const char *text, size_t len,
                               int *rc) {
  static const struct {
    const char *prefix;
    int list; /* 0 flags, 1 tags, 2 configs */
  } forms[] = {{"flags.", 0}, {"tags.", 1}, {"configs.", 2}};
  *rc = FW_OK;
  filter->exact = true;
  if (channel_count(filter) >= CHANNELS_MAX) {
    *rc = FW_ETOOBIG;
    return true;
  }
  if (len == 5 && !memcmp(text, "flags", 5)) {
    filter->all_flags = true;
    return true;
  }
  if (len == 7 && !memcmp(text, "configs", 7)) {
    filter->all_configs = true;
    return true;
  }
  for (size_t f = 0; f < FW_ARRAY_LEN(forms); f++) {
    size_t prefix = strlen(forms[f].prefix);
    if (len <= prefix || memcmp(text, forms[f].prefix, prefix) != 0)
      continue;
    const char *key = text + prefix;
    size_t key_len = len - prefix;
    if (!fw_model_key_valid(key, key_len))
      return false;
    char ***items = forms[f].list == 0   ? &filter->flags
                    : forms[f].list == 1 ? &filter->tags
                                         : &filter->configs;
    size_t *count = forms[f].list == 0   ? &filter->flag_count
                    : forms[f].list == 1 ? &filter->tag_count
                                         : &filter->config_count;
    *rc = list_add(items, count, key, key_len);
    return true;
  }
  return false;
}

int fw_hub_filter_merge(struct fw_hub_filter *filter, const struct fw_hub_filter *more) {
  struct fw_hub_filter merged = {.exact = true,
                                 .all_flags = filter->all_flags || more->all_flags,
                                 .all_configs = filter->all_configs || more->all_configs};
  int rc = FW_OK;
  const struct fw_hub_filter *sides[2] = {filter, more};
  for (int s = 0; s < 2 && !rc; s++) {
    for (size_t i = 0; !rc && i < sides[s]->flag_count; i++)
      rc = list_add(&merged.flags, &merged.flag_count, sides[s]->flags[i],
                    strlen(sides[s]->flags[i]));
    for (size_t i = 0; !rc && i < sides[s]->tag_count; i++)
      rc = list_add(&merged.tags, &merged.tag_count, sides[s]->tags[i], strlen(sides[s]->tags[i]));
    for (size_t i = 0; !rc && i < sides[s]->config_count; i++)
      rc = list_add(&merged.configs, &merged.config_count, sides[s]->configs[i],
                    strlen(sides[s]->configs[i]));
  }
  if (!rc && channel_count(&merged) > CHANNELS_MAX)
    rc = FW_ETOOBIG;
  if (rc) {
    fw_hub_filter_free(&merged);
    return rc;
  }
  fw_hub_filter_free(filter);
  *filter = merged;
  return FW_OK;
}

int fw_hub_filter_remove(struct fw_hub_filter *filter, const struct fw_hub_filter *less) {
  filter->all_flags = filter->all_flags && !less->all_flags;
  filter->all_configs = filter->all_configs && !less->all_configs;
  for (size_t i = 0; i < less->flag_count; i++)
    list_remove(filter->flags, &filter->flag_count, less->flags[i]);
  for (size_t i = 0; i < less->tag_count; i++)
    list_remove(filter->tags, &filter->tag_count, less->tags[i]);
  for (size_t i = 0; i < less->config_count; i++)
    list_remove(filter->configs, &filter->config_count, less->configs[i]);
  return FW_OK;
}

/* Appends `"<prefix><item>"` for each item, comma-separated after the first written. */
static int append_channel_list(struct fw_buf *out, const char *prefix, char *const *items,
                               size_t count, size_t *written) {
  int rc = FW_OK;
  for (size_t i = 0; !rc && i < count; i++) {
    if ((*written)++)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = fw_buf_appendf(out, "\"%s%s\"", prefix, items[i]);
  }
  return rc;
}

int fw_hub_filter_append_channels(struct fw_buf *out, const struct fw_hub_filter *filter) {
  /* Keys and tags are keys (no character JSON escapes), so they are written as they are. */
  static char *const flags[] = {"flags"}, *const configs[] = {"configs"};
  size_t written = 0;
  int rc = fw_buf_append_char(out, '[');
  if (!rc)
    rc = append_channel_list(out, "", flags, filter->all_flags, &written);
  if (!rc)
    rc = append_channel_list(out, "flags.", filter->flags, filter->flag_count, &written);
  if (!rc)
    rc = append_channel_list(out, "tags.", filter->tags, filter->tag_count, &written);
  if (!rc)
    rc = append_channel_list(out, "", configs, filter->all_configs, &written);
  if (!rc)
    rc = append_channel_list(out, "configs.", filter->configs, filter->config_count, &written);
  if (!rc)
    rc = fw_buf_append_char(out, ']');
  return rc;
}

static bool filter_active(const struct fw_hub_filter *filter) {
  return filter && (filter->exact || filter->flag_count || filter->tag_count ||
                    filter->config_count || filter->all_flags || filter->all_configs);
}

bool fw_hub_filter_flag(const struct fw_hub_filter *filter, const char *key, const char *doc,
                        size_t doc_len) {
  if (!filter_active(filter) || filter->all_flags)
    return true;
  if (has_item(filter->flags, filter->flag_count, key, strlen(key)))
    return true;
  if (!filter->tag_count || !doc)
    return false;
  struct fw_rawjson tags, tag;
  if (fw_rawjson_member((struct fw_rawjson){doc, doc_len}, "tags", &tags) != FW_OK ||
      fw_rawjson_type(tags) != FW_RAWJSON_ARRAY)
    return false;
  for (size_t i = 0; fw_rawjson_element(tags, i, &tag) == FW_OK; i++) {
    /* Tags are keys: no escapes, so the text between the quotes is the tag. */
    if (tag.len >= 2 && has_item(filter->tags, filter->tag_count, tag.text + 1, tag.len - 2))
      return true;
  }
  return false;
}

bool fw_hub_filter_segments(const struct fw_hub_filter *filter) {
  return !filter_active(filter) || filter->all_flags || filter->flag_count || filter->tag_count;
}

bool fw_hub_filter_config(const struct fw_hub_filter *filter, const char *key) {
  if (!filter_active(filter) || filter->all_configs)
    return true;
  return has_item(filter->configs, filter->config_count, key, strlen(key));
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
  bool segments = fw_hub_filter_segments(filter);
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
