#include "state/mutations.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "core/flagdef.h"
#include "state/compiled.h"
#include "util/json.h"
#include "util/random.h"
#include "util/rawjson.h"
#include "util/time.h"

/* Documents are small; this bounds one built in a write. */
#define DOC_MAX (4 * 1024 * 1024)

static const char default_boolean_variants[] =
    "[{\"key\":\"on\",\"value\":true},{\"key\":\"off\",\"value\":false}]";

struct fw_mutation *fw_mutation_new(void) {
  return calloc(1, sizeof(struct fw_mutation));
}

void fw_mutation_free(void *mutation) {
  struct fw_mutation *m = mutation;
  if (!m)
    return;
  free(m->variants);
  free(m->tags);
  free(m->rules);
  free(m->rollout);
  free(m->value);
  free(m->allowed_origins);
  free(m);
}

/* ---- building documents ---- */

/* Appends the members of a JSON object one by one; the first failure sticks. */
struct object_writer {
  struct fw_buf *out;
  bool first;
  int rc;
};

static void ow_begin(struct object_writer *w, struct fw_buf *out) {
  *w = (struct object_writer){.out = out, .first = true};
  w->rc = fw_buf_append_char(out, '{');
}

static void ow_name(struct object_writer *w, const char *name) {
  if (!w->rc && !w->first)
    w->rc = fw_buf_append_char(w->out, ',');
  w->first = false;
  if (!w->rc)
    w->rc = fw_json_append_string(w->out, name, strlen(name));
  if (!w->rc)
    w->rc = fw_buf_append_char(w->out, ':');
}

static void ow_string(struct object_writer *w, const char *name, const char *value) {
  ow_name(w, name);
  if (!w->rc)
    w->rc = fw_json_append_string(w->out, value, strlen(value));
}

static void ow_raw(struct object_writer *w, const char *name, const char *raw, size_t len) {
  ow_name(w, name);
  if (!w->rc)
    w->rc = fw_buf_append(w->out, raw, len);
}

static void ow_int(struct object_writer *w, const char *name, int64_t value) {
  ow_name(w, name);
  if (!w->rc)
    w->rc = fw_buf_appendf(w->out, "%" PRId64, value);
}

static void ow_bool(struct object_writer *w, const char *name, bool value) {
  ow_raw(w, name, value ? "true" : "false", value ? 4 : 5);
}

static void ow_time(struct object_writer *w, const char *name, int64_t ms) {
  char text[FW_ISO_TIME_LEN + 1];
  fw_time_iso8601(ms, text);
  ow_string(w, name, text);
}

static int ow_end(struct object_writer *w) {
  if (!w->rc)
    w->rc = fw_buf_append_char(w->out, '}');
  return w->rc;
}

/* Appends object `a` and object `b` merged into one: `a`'s members, then `b`'s. */
static int append_merged(struct fw_buf *out, const char *a, size_t a_len, const char *b,
                         size_t b_len) {
  int rc = fw_buf_append(out, a, a_len - 1);
  bool b_empty = b_len <= 2;
  if (!rc && !b_empty)
    rc = fw_buf_append_char(out, ',');
  if (!rc)
    rc = fw_buf_append(out, b + 1, b_len - 1);
  return rc;
}

int fw_render_env_flag(struct fw_buf *out, const struct fw_object *flag,
                       const struct fw_object *state) {
  return append_merged(out, flag->doc, flag->doc_len, state->doc, state->doc_len);
}

/* Appends an environment's members with its revision, leaving the object open for more. */
static int append_env_open(struct fw_buf *out, const struct fw_env_node *env) {
  int rc = fw_buf_append(out, env->env->doc, env->env->doc_len - 1);
  if (!rc)
    rc = fw_buf_appendf(out, ",\"revision\":%" PRId64, env->revision);
  return rc;
}

int fw_render_env(struct fw_buf *out, const struct fw_env_node *env) {
  int rc = append_env_open(out, env);
  return rc ? rc : fw_buf_append_char(out, '}');
}

/* ---- reading documents back ---- */

/* Member `name` of the document of `object` (a JSON object we wrote). */
static struct fw_rawjson doc_member(const struct fw_object *object, const char *name) {
  struct fw_rawjson root = {object->doc, object->doc_len}, value = {"null", 4};
  if (fw_rawjson_member(root, name, &value) != FW_OK)
    value = (struct fw_rawjson){"null", 4};
  return value;
}

static bool doc_bool(const struct fw_object *object, const char *name) {
  return fw_rawjson_type(doc_member(object, name)) == FW_RAWJSON_TRUE;
}

static void doc_string(const struct fw_object *object, const char *name, char *out,
                       size_t out_len) {
  if (fw_rawjson_string(doc_member(object, name), out, out_len) != FW_OK)
    out[0] = '\0';
}

/* ---- environments' allowed origins ---- */

/* How much of a bad entry an error message quotes: the message must still fit the 256
 * bytes an error holds once the field, the index and the reason are added. */
#define ORIGIN_QUOTE_MAX 80

static bool origins_fail(char *error, size_t error_len, const char *fmt, ...) FW_PRINTF(3, 4);
static bool origins_fail(char *error, size_t error_len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
  return false;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '.';
}

/* Whether `c` may end the host or the port: what may follow is a port or the path,
 * query or fragment that an origin must not have, each refused with its own reason. */
static bool ends_authority_part(char c) { return c == ':' || c == '/' || c == '?' || c == '#'; }

/* Why `text` (`len` bytes) is not an origin as browsers serialize it, as the end of a
 * sentence naming it; NULL when it is one. */
static const char *origin_problem(const char *text, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (text[i] >= 'A' && text[i] <= 'Z')
      return "must be lowercase, as browsers send origins";
  size_t i;
  unsigned long default_port;
  if (len >= 7 && !memcmp(text, "http://", 7)) {
    i = 7;
    default_port = 80;
  } else if (len >= 8 && !memcmp(text, "https://", 8)) {
    i = 8;
    default_port = 443;
  } else {
    return "must start with http:// or https://";
  }
  size_t host = i;
  if (i < len && text[i] == '[') {
    bool colon = false;
    for (i++; i < len && text[i] != ']'; i++) {
      char c = text[i];
      if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.')
        return "has an IPv6 literal with a character other than 0-9, a-f, ':' and '.'";
      colon = colon || c == ':';
    }
    if (i == len || !colon)
      return "has an unterminated or empty IPv6 literal";
    i++;
    if (i < len && !ends_authority_part(text[i]))
      return "must have nothing but a port after its IPv6 literal";
  } else {
    while (i < len && is_host_char(text[i]))
      i++;
    if (i < len && !ends_authority_part(text[i]))
      return "has a host with a character other than a-z, 0-9, '-' and '.'";
    if (i == host)
      return "has no host";
  }
  if (i < len && text[i] == ':') {
    size_t start = ++i;
    unsigned long port = 0;
    for (; i < len && is_digit(text[i]); i++)
      if (i - start < 6)
        port = port * 10 + (unsigned long)(text[i] - '0');
    if (i == start)
      return "has an empty port";
    if (i < len && !ends_authority_part(text[i]))
      return "has a port that is not a number";
    if (text[start] == '0' && i - start > 1)
      return "has a port with a leading zero";
    if (i - start > 5 || port == 0 || port > 65535)
      return "has a port outside 1 to 65535";
    if (port == default_port)
      return "names its scheme's default port, which browsers leave out";
  }
  if (i == len)
    return NULL;
  if (text[i] == '/' && i + 1 == len)
    return "must not end with '/'";
  if (text[i] == ':')
    return "has a second ':'";
  return "must not have a path, query or fragment";
}

/* Whether a validated JSON string holds an escaped NUL (\u0000), which fw_rawjson_string
 * would turn into an early end of the text. */
static bool string_has_nul(struct fw_rawjson string) {
  for (size_t i = 1; i + 1 < string.len; i++) {
    if (string.text[i] != '\\')
      continue;
    if (string.text[i + 1] == 'u' && i + 5 < string.len && !memcmp(string.text + i + 2, "0000", 4))
      return true;
    i++; /* the escaped character is not a backslash of its own */
  }
  return false;
}

bool fw_env_check_origins(struct fw_rawjson origins, char *error, size_t error_len) {
  enum fw_rawjson_type type = fw_rawjson_type(origins);
  if (type == FW_RAWJSON_NULL)
    return true;
  if (type != FW_RAWJSON_ARRAY)
    return origins_fail(error, error_len,
                        "field 'allowed_origins' must be null or an array of origins such as "
                        "\"https://app.example\"");
  struct fw_rawjson entry;
  for (size_t i = 0; fw_rawjson_element(origins, i, &entry) == FW_OK; i++) {
    if (i == FW_ENV_ORIGINS_MAX)
      return origins_fail(error, error_len, "field 'allowed_origins' holds at most %d origins",
                          FW_ENV_ORIGINS_MAX);
    int quoted = (int)(entry.len < ORIGIN_QUOTE_MAX ? entry.len : ORIGIN_QUOTE_MAX);
    if (fw_rawjson_type(entry) != FW_RAWJSON_STRING)
      return origins_fail(error, error_len, "allowed_origins[%zu] (%.*s%s) must be a string", i,
                          quoted, entry.text, (size_t)quoted < entry.len ? "..." : "");
    char text[FW_ORIGIN_MAX + 1];
    if (fw_rawjson_string(entry, text, sizeof text) != FW_OK)
      return origins_fail(error, error_len,
                          "allowed_origins[%zu] (%.*s...) is longer than %d bytes", i, quoted,
                          entry.text, FW_ORIGIN_MAX);
    size_t len = strlen(text);
    const char *problem =
        string_has_nul(entry) ? "must not hold a NUL character" : origin_problem(text, len);
    if (problem)
      return origins_fail(error, error_len, "allowed_origins[%zu] '%.*s%s' %s", i, ORIGIN_QUOTE_MAX,
                          text, len > ORIGIN_QUOTE_MAX ? "..." : "", problem);
    struct fw_rawjson earlier;
    char earlier_text[FW_ORIGIN_MAX + 1];
    for (size_t j = 0; j < i; j++)
      if (fw_rawjson_element(origins, j, &earlier) == FW_OK &&
          fw_rawjson_string(earlier, earlier_text, sizeof earlier_text) == FW_OK &&
          !strcmp(earlier_text, text))
        return origins_fail(error, error_len,
                            "allowed_origins[%zu] '%.*s%s' repeats allowed_origins[%zu]", i,
                            ORIGIN_QUOTE_MAX, text, len > ORIGIN_QUOTE_MAX ? "..." : "", j);
  }
  return true;
}

bool fw_env_origin_allowed(const struct fw_env_node *env, const char *origin, size_t len) {
  assert(env && (origin || len == 0));
  struct fw_rawjson origins = doc_member(env->env, "allowed_origins"), entry;
  if (fw_rawjson_type(origins) != FW_RAWJSON_ARRAY ||
      fw_rawjson_element(origins, 0, &entry) != FW_OK)
    return true;
  /* No entry is longer than FW_ORIGIN_MAX, so a longer origin matches none. */
  char text[FW_ORIGIN_MAX + 1];
  for (size_t i = 0; len <= FW_ORIGIN_MAX && fw_rawjson_element(origins, i, &entry) == FW_OK; i++)
    if (fw_rawjson_string(entry, text, sizeof text) == FW_OK && strlen(text) == len &&
        !memcmp(text, origin, len))
      return true;
  return false;
}

/* ---- shared steps ---- */

static bool store_failed(struct fw_write_ctx *ctx, int rc, const char *what) {
  if (rc == FW_OK)
    return false;
  if (rc == FW_EEXISTS)
    fw_write_fail(ctx, 409, "duplicate_key", "%s already exists", what);
  else
    fw_write_fail(ctx, 500, "store_failed", "the store refused the write (%s)", fw_strerror(rc));
  return true;
}

static bool out_of_memory(struct fw_write_ctx *ctx) {
  fw_write_fail(ctx, 500, "out_of_memory", "the server is out of memory");
  return true;
}

/* Replaces ctx->next (or starts it from ctx->world) with `next`; false when NULL. */
static bool advance(struct fw_write_ctx *ctx, struct fw_world *next) {
  if (!next)
    return !out_of_memory(ctx);
  fw_world_unref(ctx->next);
  ctx->next = next;
  return true;
}

static const struct fw_world *current(const struct fw_write_ctx *ctx) {
  return ctx->next ? ctx->next : ctx->world;
}

static bool version_matches(struct fw_write_ctx *ctx, const struct fw_mutation *m,
                            int64_t version) {
  if (!m->has_if_version || m->if_version == version)
    return true;
  fw_write_fail(ctx, 409, "version_conflict",
                "the object is at version %" PRId64 ", not %" PRId64 "; read it again", version,
                m->if_version);
  return false;
}

static struct fw_project_node *need_project(struct fw_write_ctx *ctx, const char *key) {
  struct fw_project_node *project = fw_world_project(current(ctx), key);
  if (!project)
    fw_write_fail(ctx, 404, "not_found", "no project '%s'", key);
  return project;
}

static struct fw_env_node *need_env(struct fw_write_ctx *ctx, struct fw_project_node *project,
                                    const char *key) {
  struct fw_env_node *env = fw_project_env(project, key);
  if (!env)
    fw_write_fail(ctx, 404, "not_found", "no environment '%s' in project '%s'", key,
                  project->project->key);
  return env;
}

/* Finds the flag or segment (`table`) the mutation names and checks its version. NULL
 * with the error set. */
static struct fw_object *need_project_object(struct fw_write_ctx *ctx, const struct fw_mutation *m,
                                             enum fw_store_table table,
                                             struct fw_project_node **project_out) {
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project)
    return NULL;
  bool segment = table == FW_TABLE_SEGMENTS;
  struct fw_object *object =
      segment ? fw_project_segment(project, m->key) : fw_project_flag(project, m->key);
  if (!object) {
    fw_write_fail(ctx, 404, "not_found", "no %s '%s' in project '%s'", segment ? "segment" : "flag",
                  m->key, m->project);
    return NULL;
  }
  if (!version_matches(ctx, m, object->version))
    return NULL;
  *project_out = project;
  return object;
}

/* Takes the environment's next revision and appends its change row. */
static bool log_change(struct fw_write_ctx *ctx, const char *project_key,
                       const struct fw_env_node *env, const char *kind, const char *key,
                       const struct fw_buf *object, const struct fw_mutation *m,
                       int64_t *revision_out) {
  int64_t revision, at_ms;
  int rc = ctx->store->ops->next_revision(ctx->store, env->env->id, ctx->now_ms, &revision, &at_ms);
  if (store_failed(ctx, rc, "the revision"))
    return false;
  struct fw_store_change change = {.environment_id = env->env->id,
                                   .revision = revision,
                                   .kind = kind,
                                   .key = key,
                                   .object = object ? object->data : NULL,
                                   .object_len = object ? object->len : 0,
                                   .actor = m->actor,
                                   .at_ms = at_ms};
  rc = fw_write_append_change(ctx, &change);
  if (store_failed(ctx, rc, "the change"))
    return false;
  if (!advance(ctx,
               fw_world_with_revision(current(ctx), project_key, env->env->key, revision, at_ms)))
    return false;
  *revision_out = revision;
  return true;
}

static bool respond(struct fw_write_ctx *ctx, int status, const char *json, size_t len) {
  ctx->status = status;
  fw_buf_reset(ctx->body);
  if (fw_buf_append(ctx->body, json, len) != FW_OK)
    return !out_of_memory(ctx);
  return true;
}

/* ---- projects ---- */

static int project_doc(struct fw_buf *out, const struct fw_mutation *m, const char *name,
                       const char *description, int64_t version, const char *created_at,
                       int64_t now_ms) {
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "key", m->project);
  ow_string(&w, "name", name);
  ow_string(&w, "description", description);
  ow_int(&w, "version", version);
  if (created_at)
    ow_string(&w, "created_at", created_at);
  else
    ow_time(&w, "created_at", now_ms);
  ow_time(&w, "updated_at", now_ms);
  return ow_end(&w);
}

void fw_mutate_create_project(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  if (fw_world_project(ctx->world, m->project)) {
    fw_write_fail(ctx, 409, "duplicate_key", "project '%s' already exists", m->project);
    return;
  }
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  if (project_doc(&doc, m, m->has_name ? m->name : m->project,
                  m->has_description ? m->description : "", 1, NULL, ctx->now_ms)) {
    fw_buf_free(&doc);
    out_of_memory(ctx);
    return;
  }
  struct fw_store_doc row = {.table = FW_TABLE_PROJECTS,
                             .key = m->project,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = 1};
  int rc = ctx->store->ops->put_doc(ctx->store, &row);
  struct fw_object *object = NULL;
  if (!store_failed(ctx, rc, "the project") &&
      (object = fw_object_new(FW_TABLE_PROJECTS, row.id, 0, m->project, doc.data, doc.len, 1)) &&
      advance(ctx, fw_world_with_project(ctx->world, object)))
    respond(ctx, 201, doc.data, doc.len);
  else if (!ctx->error_code)
    out_of_memory(ctx);
  fw_object_unref(object);
  fw_buf_free(&doc);
}

void fw_mutate_update_project(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project || !version_matches(ctx, m, project->project->version))
    return;
  char name[FW_NAME_MAX + 1], description[FW_DESCRIPTION_MAX + 1], created_at[64];
  doc_string(project->project, "name", name, sizeof name);
  doc_string(project->project, "description", description, sizeof description);
  doc_string(project->project, "created_at", created_at, sizeof created_at);
  int64_t version = project->project->version + 1;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  if (project_doc(&doc, m, m->has_name ? m->name : name,
                  m->has_description ? m->description : description, version, created_at,
                  ctx->now_ms)) {
    fw_buf_free(&doc);
    out_of_memory(ctx);
    return;
  }
  struct fw_store_doc row = {.table = FW_TABLE_PROJECTS,
                             .id = project->project->id,
                             .key = m->project,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = version};
  int rc = ctx->store->ops->put_doc(ctx->store, &row);
  struct fw_object *object = NULL;
  if (!store_failed(ctx, rc, "the project") &&
      (object =
           fw_object_new(FW_TABLE_PROJECTS, row.id, 0, m->project, doc.data, doc.len, version)) &&
      advance(ctx, fw_world_with_project(ctx->world, object)))
    respond(ctx, 200, doc.data, doc.len);
  else if (!ctx->error_code)
    out_of_memory(ctx);
  fw_object_unref(object);
  fw_buf_free(&doc);
}

/* ---- flag states ---- */

struct state_fields {
  bool enabled;
  const char *on_variant, *off_variant;
  const char *rules;
  size_t rules_len;
  const char *rollout;
  size_t rollout_len;
  int64_t version, revision;
};

static int state_doc(struct fw_buf *out, const char *env_key, const struct state_fields *f,
                     int64_t now_ms) {
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "environment", env_key);
  ow_bool(&w, "enabled", f->enabled);
  ow_string(&w, "on_variant", f->on_variant);
  ow_string(&w, "off_variant", f->off_variant);
  ow_raw(&w, "rules", f->rules, f->rules_len);
  ow_raw(&w, "rollout", f->rollout, f->rollout_len);
  ow_int(&w, "state_version", f->version);
  ow_int(&w, "revision", f->revision);
  ow_time(&w, "state_updated_at", now_ms);
  return ow_end(&w);
}

/* The state a new flag starts with in every environment: off, serving its first variant
 * when on and its last when off (for a boolean flag: "on" and "off"). */
static void default_state(struct fw_rawjson variants, char *on, char *off, size_t len) {
  fw_flagdef_variant_key(variants, 0, on, len);
  size_t last = 0;
  char key[FW_KEY_MAX + 1];
  while (fw_flagdef_variant_key(variants, last + 1, key, sizeof key))
    last++;
  fw_flagdef_variant_key(variants, last, off, len);
}

/* The fields of a new flag's state: off, no rules, no rollout, version 1. */
static struct state_fields new_state_fields(const char *on, const char *off) {
  return (struct state_fields){.on_variant = on,
                               .off_variant = off,
                               .rules = "[]",
                               .rules_len = 2,
                               .rollout = "null",
                               .rollout_len = 4,
                               .version = 1};
}

/* Writes state `f` of flag `flag` in environment `env`, logs `kind` and advances the
 * world. `view` receives the flag as seen in the environment. */
static bool write_state(struct fw_write_ctx *ctx, const struct fw_mutation *m,
                        const char *project_key, const struct fw_env_node *env,
                        const struct fw_object *flag, struct state_fields *f, const char *kind,
                        struct fw_buf *view) {
  /* The revision goes into the state's document, so it is taken first; the change row
   * then records the document. */
  int64_t revision, at_ms;
  int rc = ctx->store->ops->next_revision(ctx->store, env->env->id, ctx->now_ms, &revision, &at_ms);
  if (store_failed(ctx, rc, "the revision"))
    return false;
  f->revision = revision;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  fw_buf_reset(view);
  if (state_doc(&doc, env->env->key, f, at_ms) ||
      fw_render_env_flag(view, flag, &(struct fw_object){.doc = doc.data, .doc_len = doc.len})) {
    fw_buf_free(&doc);
    return !out_of_memory(ctx);
  }
  struct fw_store_doc row = {.table = FW_TABLE_FLAG_STATES,
                             .id = flag->id,
                             .parent_id = env->env->id,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = f->version};
  struct fw_store_change change = {.environment_id = env->env->id,
                                   .revision = revision,
                                   .kind = kind,
                                   .key = flag->key,
                                   .object = view->data,
                                   .object_len = view->len,
                                   .actor = m->actor,
                                   .at_ms = at_ms};
  rc = ctx->store->ops->put_doc(ctx->store, &row);
  if (!rc)
    rc = fw_write_append_change(ctx, &change);
  bool ok = !store_failed(ctx, rc, "the flag state");
  struct fw_object *object = NULL;
  if (ok) {
    object = fw_object_new(FW_TABLE_FLAG_STATES, flag->id, env->env->id, flag->key, doc.data,
                           doc.len, f->version);
    if (object)
      object->revision = revision;
    ok = object && fw_compile_flag_state(object, flag) == FW_OK &&
         advance(ctx, fw_world_with_env_change(current(ctx), project_key, env->env->key, object,
                                               revision, at_ms));
    if (!ok && !ctx->error_code)
      out_of_memory(ctx);
  }
  fw_object_unref(object);
  fw_buf_free(&doc);
  return ok;
}

/* Reads a state's document back into fields; `on` and `off` hold the variant keys. */
static void read_state(const struct fw_object *state, struct state_fields *f, char *on, char *off,
                       size_t len) {
  doc_string(state, "on_variant", on, len);
  doc_string(state, "off_variant", off, len);
  struct fw_rawjson rules = doc_member(state, "rules"), rollout = doc_member(state, "rollout");
  *f = (struct state_fields){.enabled = doc_bool(state, "enabled"),
                             .on_variant = on,
                             .off_variant = off,
                             .rules = rules.text,
                             .rules_len = rules.len,
                             .rollout = rollout.text,
                             .rollout_len = rollout.len,
                             .version = state->version};
}

/* Whether a state serves only variants of `variants`; `missing` receives one it lacks. */
static bool state_fits_variants(const struct state_fields *f, struct fw_rawjson variants,
                                char *missing, size_t missing_len) {
  const char *served[] = {f->on_variant, f->off_variant};
  for (size_t i = 0; i < 2; i++) {
    if (!fw_flagdef_has_variant(variants, served[i])) {
      snprintf(missing, missing_len, "%s", served[i]);
      return false;
    }
  }
  char error[256];
  struct fw_rawjson rollout = {f->rollout, f->rollout_len};
  if (!fw_flagdef_check_rollout(rollout, variants, error, sizeof error)) {
    snprintf(missing, missing_len, "(one in its rollout)");
    return false;
  }
  return true;
}

/* Whether `f` says exactly what `state` already holds. */
static bool state_unchanged(const struct fw_object *state, const struct state_fields *f) {
  char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1];
  struct state_fields now;
  read_state(state, &now, on, off, sizeof on);
  return now.enabled == f->enabled && !strcmp(now.on_variant, f->on_variant) &&
         !strcmp(now.off_variant, f->off_variant) && now.rules_len == f->rules_len &&
         !memcmp(now.rules, f->rules, f->rules_len) && now.rollout_len == f->rollout_len &&
         !memcmp(now.rollout, f->rollout, f->rollout_len);
}

void fw_mutate_flag_state(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  struct fw_object *flag = fw_project_flag(project, m->key);
  struct fw_object *state = flag ? fw_env_state(env, m->key) : NULL;
  if (!state) {
    fw_write_fail(ctx, 404, "not_found", "no flag '%s' in project '%s'", m->key, m->project);
    return;
  }
  if (!version_matches(ctx, m, state->version))
    return;
  struct fw_rawjson variants = doc_member(flag, "variants");
  char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1];
  struct state_fields f;
  read_state(state, &f, on, off, sizeof on);
  f.enabled = m->toggle ? !f.enabled : (m->has_enabled ? m->enabled : f.enabled);
  if (m->on_variant[0])
    f.on_variant = m->on_variant;
  if (m->off_variant[0])
    f.off_variant = m->off_variant;
  if (m->rules) {
    f.rules = m->rules;
    f.rules_len = strlen(m->rules);
  }
  if (m->rollout) {
    f.rollout = m->rollout;
    f.rollout_len = strlen(m->rollout);
  }
  f.version = state->version + 1;
  char error[256];
  if (!fw_flagdef_has_variant(variants, f.on_variant) ||
      !fw_flagdef_has_variant(variants, f.off_variant)) {
    fw_write_fail(ctx, 422, "invalid_field", "'%s' is not a variant of flag '%s'",
                  fw_flagdef_has_variant(variants, f.on_variant) ? f.off_variant : f.on_variant,
                  m->key);
    return;
  }
  if (m->rules && !fw_eval_check_rules((struct fw_rawjson){f.rules, f.rules_len}, variants, false,
                                       error, sizeof error)) {
    fw_write_fail(ctx, 422, "invalid_field", "%s", error);
    return;
  }
  if (m->rollout && !fw_flagdef_check_rollout((struct fw_rawjson){f.rollout, f.rollout_len},
                                              variants, error, sizeof error)) {
    fw_write_fail(ctx, 422, "invalid_field", "%s", error);
    return;
  }
  struct fw_buf view;
  fw_buf_init(&view, DOC_MAX);
  if (state_unchanged(state, &f)) {
    /* Asking for what already is changes nothing: no version, revision or event, so
     * `on` retried stays one change. */
    if (fw_render_env_flag(&view, flag, state))
      out_of_memory(ctx);
    else
      respond(ctx, 200, view.data, view.len);
  } else if (write_state(ctx, m, m->project, env, flag, &f, "flag_updated", &view)) {
    respond(ctx, 200, view.data, view.len);
  }
  fw_buf_free(&view);
}

/* ---- flags ---- */

/* The fields of a flag definition's document. */
struct flag_fields {
  const char *key, *name, *description, *type;
  const char *variants;
  size_t variants_len;
  const char *tags;
  size_t tags_len;
  bool client_visible;
  int64_t version;
  const char *created_at; /* NULL: now */
};

static int flag_doc(struct fw_buf *out, const struct flag_fields *f, int64_t now_ms) {
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "key", f->key);
  ow_string(&w, "name", f->name);
  ow_string(&w, "description", f->description);
  ow_string(&w, "type", f->type);
  ow_raw(&w, "variants", f->variants, f->variants_len);
  ow_raw(&w, "tags", f->tags, f->tags_len);
  ow_bool(&w, "client_visible", f->client_visible);
  ow_int(&w, "version", f->version);
  if (f->created_at)
    ow_string(&w, "created_at", f->created_at);
  else
    ow_time(&w, "created_at", now_ms);
  ow_time(&w, "updated_at", now_ms);
  return ow_end(&w);
}

void fw_mutate_create_flag(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project)
    return;
  if (fw_project_flag(project, m->key)) {
    fw_write_fail(ctx, 409, "duplicate_key", "flag '%s' already exists in project '%s'", m->key,
                  m->project);
    return;
  }
  const char *variants_text = m->variants ? m->variants : default_boolean_variants;
  struct fw_buf doc, view;
  fw_buf_init(&doc, DOC_MAX);
  fw_buf_init(&view, DOC_MAX);
  struct fw_object *flag = NULL;
  struct flag_fields fields = {.key = m->key,
                               .name = m->has_name ? m->name : m->key,
                               .description = m->has_description ? m->description : "",
                               .type = fw_flag_type_name(m->type),
                               .variants = variants_text,
                               .variants_len = strlen(variants_text),
                               .tags = m->tags ? m->tags : "[]",
                               .tags_len = m->tags ? strlen(m->tags) : 2,
                               .client_visible = m->has_client_visible && m->client_visible,
                               .version = 1};
  if (flag_doc(&doc, &fields, ctx->now_ms)) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_FLAGS,
                             .parent_id = project->project->id,
                             .key = m->key,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = 1};
  if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the flag"))
    goto done;
  flag = fw_object_new(FW_TABLE_FLAGS, row.id, project->project->id, m->key, doc.data, doc.len, 1);
  if (!flag || !advance(ctx, fw_world_with_project_object(ctx->world, m->project, flag))) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  /* One revision in every environment of the project, all in this transaction. */
  struct fw_rawjson variants = {variants_text, strlen(variants_text)};
  char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1];
  default_state(variants, on, off, sizeof on);
  for (size_t i = 0; i < project->env_count; i++) {
    struct state_fields f = new_state_fields(on, off);
    if (!write_state(ctx, m, m->project, project->envs[i], flag, &f, "flag_created", &view))
      goto done;
  }
  respond(ctx, 201, doc.data, doc.len);
done:
  fw_object_unref(flag);
  fw_buf_free(&doc);
  fw_buf_free(&view);
}

void fw_mutate_update_flag(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project;
  struct fw_object *flag = need_project_object(ctx, m, FW_TABLE_FLAGS, &project);
  if (!flag)
    return;
  char name[FW_NAME_MAX + 1], description[FW_DESCRIPTION_MAX + 1], type[16], created_at[64];
  doc_string(flag, "name", name, sizeof name);
  doc_string(flag, "description", description, sizeof description);
  doc_string(flag, "type", type, sizeof type);
  doc_string(flag, "created_at", created_at, sizeof created_at);
  struct fw_rawjson old_variants = doc_member(flag, "variants"),
                    old_tags = doc_member(flag, "tags");
  enum fw_flag_type old_type;
  if (m->has_type && (!fw_flag_type_from(type, &old_type) || old_type != m->type)) {
    fw_write_fail(ctx, 422, "invalid_field", "a flag's type cannot change (it is %s)", type);
    return;
  }
  struct fw_rawjson variants =
      m->variants ? (struct fw_rawjson){m->variants, strlen(m->variants)} : old_variants;
  char error[256];
  if (m->variants && fw_flag_type_from(type, &old_type) &&
      !fw_flagdef_check_variants(old_type, variants, error, sizeof error)) {
    fw_write_fail(ctx, 422, "invalid_field", "%s", error);
    return;
  }
  /* No environment may be left serving a variant that is gone. */
  for (size_t i = 0; m->variants && i < project->env_count; i++) {
    struct fw_object *state = fw_env_state(project->envs[i], m->key);
    char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1], missing[FW_KEY_MAX + 32];
    struct state_fields f;
    read_state(state, &f, on, off, sizeof on);
    if (!state_fits_variants(&f, variants, missing, sizeof missing)) {
      fw_write_fail(ctx, 409, "variant_in_use",
                    "environment '%s' serves variant %s; change its state first",
                    project->envs[i]->env->key, missing);
      return;
    }
    if (!fw_eval_check_rules((struct fw_rawjson){f.rules, f.rules_len}, variants, false, error,
                             sizeof error)) {
      fw_write_fail(ctx, 409, "variant_in_use",
                    "environment '%s' has rules the new variants break (%s); change them first",
                    project->envs[i]->env->key, error);
      return;
    }
  }
  struct flag_fields fields = {.key = m->key,
                               .name = m->has_name ? m->name : name,
                               .description = m->has_description ? m->description : description,
                               .type = type,
                               .variants = variants.text,
                               .variants_len = variants.len,
                               .tags = m->tags ? m->tags : old_tags.text,
                               .tags_len = m->tags ? strlen(m->tags) : old_tags.len,
                               .client_visible = m->has_client_visible
                                                     ? m->client_visible
                                                     : doc_bool(flag, "client_visible"),
                               .version = flag->version + 1,
                               .created_at = created_at};
  struct fw_buf doc, view;
  fw_buf_init(&doc, DOC_MAX);
  fw_buf_init(&view, DOC_MAX);
  struct fw_object *next = NULL;
  if (flag_doc(&doc, &fields, ctx->now_ms)) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_FLAGS,
                             .id = flag->id,
                             .parent_id = project->project->id,
                             .key = m->key,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = fields.version};
  if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the flag"))
    goto done;
  next = fw_object_new(FW_TABLE_FLAGS, flag->id, project->project->id, m->key, doc.data, doc.len,
                       fields.version);
  if (!next || !advance(ctx, fw_world_with_project_object(ctx->world, m->project, next))) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  /* A project-level change: one revision in every environment, in this transaction. */
  for (size_t i = 0; i < project->env_count; i++) {
    struct fw_object *state = fw_env_state(project->envs[i], m->key);
    char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1];
    struct state_fields f;
    read_state(state, &f, on, off, sizeof on);
    if (!write_state(ctx, m, m->project, project->envs[i], next, &f, "flag_updated", &view))
      goto done;
  }
  respond(ctx, 200, doc.data, doc.len);
done:
  fw_object_unref(next);
  fw_buf_free(&doc);
  fw_buf_free(&view);
}

void fw_mutate_delete_flag(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project;
  struct fw_object *flag = need_project_object(ctx, m, FW_TABLE_FLAGS, &project);
  if (!flag)
    return;
  int rc = ctx->store->ops->delete_doc(ctx->store, FW_TABLE_FLAGS, flag->id, 0);
  if (store_failed(ctx, rc, "the flag") ||
      !advance(ctx,
               fw_world_without_project_object(ctx->world, m->project, FW_TABLE_FLAGS, m->key)))
    return;
  for (size_t i = 0; i < project->env_count; i++) {
    int64_t revision;
    if (!log_change(ctx, m->project, project->envs[i], "flag_deleted", m->key, NULL, m, &revision))
      return;
  }
  ctx->status = 204;
}

/* ---- segments ---- */

static int segment_doc(struct fw_buf *out, const char *key, const char *name,
                       const char *description, int64_t version, const char *created_at,
                       int64_t now_ms) {
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "key", key);
  ow_string(&w, "name", name);
  ow_string(&w, "description", description);
  ow_int(&w, "version", version);
  if (created_at)
    ow_string(&w, "created_at", created_at);
  else
    ow_time(&w, "created_at", now_ms);
  ow_time(&w, "updated_at", now_ms);
  return ow_end(&w);
}

/* Writes a segment's rules in one environment as a new revision, logs segment_updated
 * with the segment as the environment sees it, and advances the world. */
static bool write_segment_rules(struct fw_write_ctx *ctx, const struct fw_mutation *m,
                                const struct fw_env_node *env, const struct fw_object *segment,
                                const char *rules, size_t rules_len, int64_t version,
                                struct fw_buf *view) {
  int64_t revision, at_ms;
  int rc = ctx->store->ops->next_revision(ctx->store, env->env->id, ctx->now_ms, &revision, &at_ms);
  if (store_failed(ctx, rc, "the revision"))
    return false;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  struct object_writer w;
  ow_begin(&w, &doc);
  ow_string(&w, "environment", env->env->key);
  ow_raw(&w, "rules", rules, rules_len);
  ow_int(&w, "rules_version", version);
  ow_int(&w, "revision", revision);
  ow_time(&w, "rules_updated_at", at_ms);
  fw_buf_reset(view);
  if (ow_end(&w) || append_merged(view, segment->doc, segment->doc_len, doc.data, doc.len)) {
    fw_buf_free(&doc);
    return !out_of_memory(ctx);
  }
  struct fw_store_doc row = {.table = FW_TABLE_SEGMENT_RULES,
                             .id = segment->id,
                             .parent_id = env->env->id,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = version};
  struct fw_store_change change = {.environment_id = env->env->id,
                                   .revision = revision,
                                   .kind = "segment_updated",
                                   .key = segment->key,
                                   .object = view->data,
                                   .object_len = view->len,
                                   .actor = m->actor,
                                   .at_ms = at_ms};
  rc = ctx->store->ops->put_doc(ctx->store, &row);
  if (!rc)
    rc = fw_write_append_change(ctx, &change);
  bool ok = !store_failed(ctx, rc, "the segment's rules");
  struct fw_object *object = NULL;
  if (ok) {
    object = fw_object_new(FW_TABLE_SEGMENT_RULES, segment->id, env->env->id, segment->key,
                           doc.data, doc.len, version);
    if (object)
      object->revision = revision;
    ok = object && fw_compile_segment_rules(object) == FW_OK &&
         advance(ctx, fw_world_with_env_change(current(ctx), m->project, env->env->key, object,
                                               revision, at_ms));
    if (!ok && !ctx->error_code)
      out_of_memory(ctx);
  }
  fw_object_unref(object);
  fw_buf_free(&doc);
  return ok;
}

int fw_render_env_segment(struct fw_buf *out, const struct fw_object *segment,
                          const struct fw_object *rules) {
  return append_merged(out, segment->doc, segment->doc_len, rules->doc, rules->doc_len);
}

/* Puts a segment definition (new when `existing` is NULL) and re-logs it in every
 * environment with its rules there (empty for a new segment). */
static void put_segment(struct fw_write_ctx *ctx, struct fw_mutation *m,
                        struct fw_project_node *project, const struct fw_object *existing) {
  char name[FW_NAME_MAX + 1] = "", description[FW_DESCRIPTION_MAX + 1] = "", created_at[64];
  if (existing) {
    doc_string(existing, "name", name, sizeof name);
    doc_string(existing, "description", description, sizeof description);
    doc_string(existing, "created_at", created_at, sizeof created_at);
  }
  int64_t version = existing ? existing->version + 1 : 1;
  struct fw_buf doc, view;
  fw_buf_init(&doc, DOC_MAX);
  fw_buf_init(&view, DOC_MAX);
  struct fw_object *segment = NULL;
  if (segment_doc(&doc, m->key, m->has_name ? m->name : (existing ? name : m->key),
                  m->has_description ? m->description : description, version,
                  existing ? created_at : NULL, ctx->now_ms)) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_SEGMENTS,
                             .id = existing ? existing->id : 0,
                             .parent_id = project->project->id,
                             .key = m->key,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = version};
  if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the segment"))
    goto done;
  segment = fw_object_new(FW_TABLE_SEGMENTS, row.id, project->project->id, m->key, doc.data,
                          doc.len, version);
  if (!segment || !advance(ctx, fw_world_with_project_object(ctx->world, m->project, segment))) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  for (size_t i = 0; i < project->env_count; i++) {
    const struct fw_object *rules =
        existing ? fw_env_segment_rules(project->envs[i], m->key) : NULL;
    struct fw_rawjson text = rules ? doc_member(rules, "rules") : (struct fw_rawjson){"[]", 2};
    if (!write_segment_rules(ctx, m, project->envs[i], segment, text.text, text.len,
                             rules ? rules->version : 1, &view))
      goto done;
  }
  respond(ctx, existing ? 200 : 201, doc.data, doc.len);
done:
  fw_object_unref(segment);
  fw_buf_free(&doc);
  fw_buf_free(&view);
}

void fw_mutate_create_segment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project)
    return;
  if (fw_project_segment(project, m->key)) {
    fw_write_fail(ctx, 409, "duplicate_key", "segment '%s' already exists in project '%s'", m->key,
                  m->project);
    return;
  }
  if (fw_objects_count(project->segments) >= FW_MODEL_MAX_SEGMENTS) {
    fw_write_fail(ctx, 409, "too_many", "a project has at most %d segments", FW_MODEL_MAX_SEGMENTS);
    return;
  }
  put_segment(ctx, m, project, NULL);
}

void fw_mutate_update_segment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project;
  struct fw_object *segment = need_project_object(ctx, m, FW_TABLE_SEGMENTS, &project);
  if (segment)
    put_segment(ctx, m, project, segment);
}

void fw_mutate_segment_rules(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  struct fw_object *segment = fw_project_segment(project, m->key);
  struct fw_object *rules = segment ? fw_env_segment_rules(env, m->key) : NULL;
  if (!rules) {
    fw_write_fail(ctx, 404, "not_found", "no segment '%s' in project '%s'", m->key, m->project);
    return;
  }
  if (!version_matches(ctx, m, rules->version))
    return;
  struct fw_buf view;
  fw_buf_init(&view, DOC_MAX);
  if (write_segment_rules(ctx, m, env, segment, m->rules, strlen(m->rules), rules->version + 1,
                          &view))
    respond(ctx, 200, view.data, view.len);
  fw_buf_free(&view);
}

void fw_mutate_delete_segment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project;
  struct fw_object *segment = need_project_object(ctx, m, FW_TABLE_SEGMENTS, &project);
  if (!segment)
    return;
  /* Flags whose rules still use it would silently change meaning: name them. */
  char referrers[200] = "";
  size_t used = 0;
  for (size_t e = 0; e < project->env_count; e++) {
    struct fw_env_node *env = project->envs[e];
    for (size_t f = 0; f < fw_objects_count(env->states) && used + 1 < sizeof referrers; f++) {
      if (fw_flagdef_rules_use_segment(doc_member(fw_objects_at(env->states, f), "rules"), m->key))
        used +=
            (size_t)snprintf(referrers + used, sizeof referrers - used, "%sflag '%s' in '%s'",
                             used ? ", " : "", fw_objects_at(env->states, f)->key, env->env->key);
    }
  }
  if (used) {
    fw_write_fail(ctx, 409, "in_use", "segment '%s' is used by %s", m->key, referrers);
    return;
  }
  int rc = ctx->store->ops->delete_doc(ctx->store, FW_TABLE_SEGMENTS, segment->id, 0);
  if (store_failed(ctx, rc, "the segment") ||
      !advance(ctx,
               fw_world_without_project_object(ctx->world, m->project, FW_TABLE_SEGMENTS, m->key)))
    return;
  for (size_t i = 0; i < project->env_count; i++) {
    int64_t revision;
    if (!log_change(ctx, m->project, project->envs[i], "segment_deleted", m->key, NULL, m,
                    &revision))
      return;
  }
  ctx->status = 204;
}

/* ---- environments ---- */

static const char *const role_names[] = {"viewer", "editor", "admin"};

void fw_credential_id(const struct fw_credential *credential, char out[FW_CREDENTIAL_ID_LEN + 1]) {
  fw_hex_encode(credential->hash, FW_CREDENTIAL_ID_LEN / 2, out);
}

bool fw_credential_valid(const struct fw_credential *credential, int64_t now_ms) {
  return credential->expires_ms == 0 || credential->expires_ms > now_ms;
}

int fw_render_credential(struct fw_buf *out, const struct fw_credential *credential) {
  static const char *const kinds[] = {"server", "client", "admin"};
  char id[FW_CREDENTIAL_ID_LEN + 1];
  fw_credential_id(credential, id);
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "id", id);
  ow_string(&w, "kind", kinds[credential->kind]);
  if (credential->kind == FW_CREDENTIAL_ADMIN) {
    ow_string(&w, "name", credential->name);
    ow_string(&w, "role", role_names[credential->role]);
  }
  ow_time(&w, "created_at", credential->created_ms);
  if (credential->expires_ms)
    ow_time(&w, "expires_at", credential->expires_ms);
  else
    ow_raw(&w, "expires_at", "null", 4);
  return ow_end(&w);
}

/* Stores `credential` (new, or with a new expiry) and puts it into the world. */
static bool put_credential(struct fw_write_ctx *ctx, const struct fw_credential *credential) {
  struct fw_store_credential row = {
      .kind = credential->kind,
      .environment_id = credential->environment_id,
      .role = credential->kind == FW_CREDENTIAL_ADMIN ? role_names[credential->role] : NULL,
      .name = credential->name,
      .created_ms = credential->created_ms,
      .expires_ms = credential->expires_ms};
  memcpy(row.hash, credential->hash, sizeof row.hash);
  if (store_failed(ctx, ctx->store->ops->put_credential(ctx->store, &row), "the credential"))
    return false;
  return advance(ctx, fw_world_with_credential(current(ctx), credential));
}

static bool new_credential(struct fw_write_ctx *ctx, enum fw_credential_kind kind,
                           int64_t environment_id, const char *name, char *text) {
  struct fw_credential credential = {
      .kind = kind, .environment_id = environment_id, .created_ms = ctx->now_ms};
  snprintf(credential.name, sizeof credential.name, "%.47s", name);
  if (fw_key_generate(kind, text, credential.hash) != FW_OK) {
    fw_write_fail(ctx, 500, "no_randomness", "no secure randomness to make a key");
    return false;
  }
  return put_credential(ctx, &credential);
}

/* The fields of an environment's document. */
struct env_fields {
  const char *key, *name, *project, *epoch;
  int64_t version;
  const char *created_at; /* NULL: now */
  /* A non-empty raw JSON array, written byte for byte; NULL: no list, and no member. */
  const char *origins;
  size_t origins_len;
};

static int env_doc(struct fw_buf *out, const struct env_fields *f, int64_t now_ms) {
  struct object_writer w;
  ow_begin(&w, out);
  ow_string(&w, "key", f->key);
  ow_string(&w, "name", f->name);
  ow_string(&w, "project", f->project);
  ow_string(&w, "epoch", f->epoch);
  ow_int(&w, "version", f->version);
  if (f->created_at)
    ow_string(&w, "created_at", f->created_at);
  else
    ow_time(&w, "created_at", now_ms);
  if (f->origins)
    ow_raw(&w, "allowed_origins", f->origins, f->origins_len);
  return ow_end(&w);
}

/* Gives a new environment empty rules for every segment of its project, as part of its
 * first revision. */
static bool add_segment_rules(struct fw_write_ctx *ctx, const struct fw_mutation *m,
                              const struct fw_project_node *project, int64_t environment_id,
                              int64_t revision) {
  struct fw_env_node *env = fw_project_env(fw_world_project(current(ctx), m->project), m->key);
  struct fw_object **rules = calloc(
      fw_objects_count(project->segments) ? fw_objects_count(project->segments) : 1, sizeof *rules);
  size_t count = 0;
  bool ok = rules != NULL;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  for (size_t i = 0; ok && i < fw_objects_count(project->segments); i++) {
    struct fw_object *segment = fw_objects_at(project->segments, i);
    struct object_writer w;
    fw_buf_reset(&doc);
    ow_begin(&w, &doc);
    ow_string(&w, "environment", m->key);
    ow_raw(&w, "rules", "[]", 2);
    ow_int(&w, "rules_version", 1);
    ow_int(&w, "revision", revision);
    ow_time(&w, "rules_updated_at", env->last_change_ms);
    struct fw_store_doc row = {.table = FW_TABLE_SEGMENT_RULES,
                               .id = segment->id,
                               .parent_id = environment_id,
                               .doc = doc.data,
                               .doc_len = doc.len,
                               .version = 1};
    ok = !ow_end(&w) &&
         !store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the segment's rules") &&
         (rules[count] = fw_object_new(FW_TABLE_SEGMENT_RULES, segment->id, environment_id,
                                       segment->key, doc.data, doc.len, 1)) != NULL;
    if (ok && fw_compile_segment_rules(rules[count]) != FW_OK) {
      fw_object_unref(rules[count]);
      ok = false;
    }
    if (ok)
      rules[count++]->revision = revision;
  }
  ok = ok && advance(ctx, fw_world_with_env_objects(current(ctx), m->project, m->key,
                                                    FW_TABLE_SEGMENT_RULES, rules, count));
  if (!ok && !ctx->error_code)
    out_of_memory(ctx);
  for (size_t i = 0; i < count; i++)
    fw_object_unref(rules[i]);
  free(rules);
  fw_buf_free(&doc);
  return ok;
}

void fw_mutate_create_environment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project)
    return;
  if (fw_project_env(project, m->key)) {
    fw_write_fail(ctx, 409, "duplicate_key", "environment '%s' already exists in project '%s'",
                  m->key, m->project);
    return;
  }
  uint8_t epoch_bytes[8];
  char epoch[2 * sizeof epoch_bytes + 1];
  if (fw_random_secure(epoch_bytes, sizeof epoch_bytes) != FW_OK) {
    fw_write_fail(ctx, 500, "no_randomness", "no secure randomness for the epoch");
    return;
  }
  fw_hex_encode(epoch_bytes, sizeof epoch_bytes, epoch);
  struct fw_buf doc, view;
  fw_buf_init(&doc, DOC_MAX);
  fw_buf_init(&view, DOC_MAX);
  struct fw_object *env_object = NULL;
  struct fw_object **states = calloc(
      fw_objects_count(project->flags) ? fw_objects_count(project->flags) : 1, sizeof *states);
  size_t state_count = 0;
  struct env_fields fields = {.key = m->key,
                              .name = m->has_name ? m->name : m->key,
                              .project = m->project,
                              .epoch = epoch,
                              .version = 1,
                              .origins = m->allowed_origins,
                              .origins_len = m->allowed_origins ? strlen(m->allowed_origins) : 0};
  if (env_doc(&doc, &fields, ctx->now_ms) || !states) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_ENVIRONMENTS,
                             .parent_id = project->project->id,
                             .key = m->key,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = 1,
                             .epoch = epoch};
  if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the environment"))
    goto done;
  env_object = fw_object_new(FW_TABLE_ENVIRONMENTS, row.id, project->project->id, m->key, doc.data,
                             doc.len, 1);
  if (!env_object || !advance(ctx, fw_world_with_env(ctx->world, m->project, env_object, 0, 0))) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  /* Its creation is the environment's first revision; every existing flag starts off in
   * it, as the snapshot of that revision. */
  struct fw_env_node *env = fw_project_env(fw_world_project(current(ctx), m->project), m->key);
  int64_t revision;
  if (!log_change(ctx, m->project, env, "environment_created", m->key, &doc, m, &revision))
    goto done;
  env = fw_project_env(fw_world_project(current(ctx), m->project), m->key);
  for (size_t i = 0; i < fw_objects_count(project->flags); i++) {
    struct fw_object *flag = fw_objects_at(project->flags, i);
    char on[FW_KEY_MAX + 1], off[FW_KEY_MAX + 1];
    default_state(doc_member(flag, "variants"), on, off, sizeof on);
    struct state_fields f = new_state_fields(on, off);
    f.revision = revision;
    fw_buf_reset(&view);
    if (state_doc(&view, m->key, &f, env->last_change_ms)) {
      out_of_memory(ctx);
      goto done;
    }
    struct fw_store_doc state_row = {.table = FW_TABLE_FLAG_STATES,
                                     .id = flag->id,
                                     .parent_id = env_object->id,
                                     .doc = view.data,
                                     .doc_len = view.len,
                                     .version = 1};
    if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &state_row), "the flag state"))
      goto done;
    states[state_count] = fw_object_new(FW_TABLE_FLAG_STATES, flag->id, env_object->id, flag->key,
                                        view.data, view.len, 1);
    if (!states[state_count] || fw_compile_flag_state(states[state_count], flag) != FW_OK) {
      fw_object_unref(states[state_count]);
      states[state_count] = NULL;
      out_of_memory(ctx);
      goto done;
    }
    states[state_count++]->revision = revision;
  }
  if (!advance(ctx, fw_world_with_env_objects(current(ctx), m->project, m->key,
                                              FW_TABLE_FLAG_STATES, states, state_count)) ||
      !add_segment_rules(ctx, m, project, env_object->id, revision))
    goto done;
  char server_key[FW_KEY_LEN + 1], client_key[FW_KEY_LEN + 1];
  if (!new_credential(ctx, FW_CREDENTIAL_SERVER, env_object->id, "server", server_key) ||
      !new_credential(ctx, FW_CREDENTIAL_CLIENT, env_object->id, "client", client_key))
    goto done;
  /* The keys are shown in this answer only; the store keeps their hashes. */
  fw_buf_reset(&view);
  env = fw_project_env(fw_world_project(current(ctx), m->project), m->key);
  if (append_env_open(&view, env) ||
      fw_buf_appendf(&view, ",\"server_key\":\"%s\",\"client_key\":\"%s\"}", server_key,
                     client_key)) {
    out_of_memory(ctx);
    goto done;
  }
  respond(ctx, 201, view.data, view.len);
done:
  for (size_t i = 0; i < state_count; i++)
    fw_object_unref(states[i]);
  free(states);
  fw_object_unref(env_object);
  fw_buf_free(&doc);
  fw_buf_free(&view);
}

/* ---- configs ---- */

void fw_mutate_put_config(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  struct fw_object *existing = fw_env_config(env, m->key);
  if (existing && !version_matches(ctx, m, existing->version))
    return;
  if (!existing && m->has_if_version && m->if_version != 0) {
    fw_write_fail(ctx, 409, "version_conflict", "config '%s' does not exist yet", m->key);
    return;
  }
  int64_t version = existing ? existing->version + 1 : 1;
  int64_t revision, at_ms;
  int rc = ctx->store->ops->next_revision(ctx->store, env->env->id, ctx->now_ms, &revision, &at_ms);
  if (store_failed(ctx, rc, "the revision"))
    return;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  struct object_writer w;
  ow_begin(&w, &doc);
  ow_string(&w, "key", m->key);
  ow_string(&w, "content_type", m->content_type);
  ow_raw(&w, "value", m->value, strlen(m->value));
  ow_int(&w, "version", version);
  ow_int(&w, "revision", revision);
  ow_time(&w, "updated_at", at_ms);
  struct fw_object *object = NULL;
  if (ow_end(&w)) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_CONFIGS,
                             .id = existing ? existing->id : 0,
                             .parent_id = env->env->id,
                             .key = m->key,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = version};
  struct fw_store_change change = {.environment_id = env->env->id,
                                   .revision = revision,
                                   .kind = "config_updated",
                                   .key = m->key,
                                   .object = doc.data,
                                   .object_len = doc.len,
                                   .actor = m->actor,
                                   .at_ms = at_ms};
  rc = ctx->store->ops->put_doc(ctx->store, &row);
  if (!rc)
    rc = fw_write_append_change(ctx, &change);
  if (store_failed(ctx, rc, "the config"))
    goto done;
  object =
      fw_object_new(FW_TABLE_CONFIGS, row.id, env->env->id, m->key, doc.data, doc.len, version);
  if (object)
    object->revision = revision;
  if (!object || !advance(ctx, fw_world_with_env_change(ctx->world, m->project, m->env, object,
                                                        revision, at_ms))) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  respond(ctx, existing ? 200 : 201, doc.data, doc.len);
done:
  fw_object_unref(object);
  fw_buf_free(&doc);
}

void fw_mutate_delete_config(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  struct fw_object *config = fw_env_config(env, m->key);
  if (!config) {
    fw_write_fail(ctx, 404, "not_found", "no config '%s' in environment '%s'", m->key, m->env);
    return;
  }
  if (!version_matches(ctx, m, config->version))
    return;
  int64_t revision;
  int rc = ctx->store->ops->delete_doc(ctx->store, FW_TABLE_CONFIGS, config->id, 0);
  if (store_failed(ctx, rc, "the config") ||
      !advance(ctx, fw_world_without_config(ctx->world, m->project, m->env, m->key)) ||
      !log_change(ctx, m->project, env, "config_deleted", m->key, NULL, m, &revision))
    return;
  ctx->status = 204;
}

void fw_mutate_update_environment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env || !version_matches(ctx, m, env->env->version))
    return;
  char epoch[64], created_at[64], name[FW_NAME_MAX + 1];
  doc_string(env->env, "epoch", epoch, sizeof epoch);
  doc_string(env->env, "created_at", created_at, sizeof created_at);
  doc_string(env->env, "name", name, sizeof name);
  /* The list is kept, byte for byte, unless the mutation replaces or removes it. */
  struct fw_rawjson old_origins = doc_member(env->env, "allowed_origins");
  bool had_origins = fw_rawjson_type(old_origins) == FW_RAWJSON_ARRAY;
  struct env_fields fields = {.key = m->env,
                              .name = m->has_name ? m->name : name,
                              .project = m->project,
                              .epoch = epoch,
                              .version = env->env->version + 1,
                              .created_at = created_at};
  if (m->has_allowed_origins && m->allowed_origins) {
    fields.origins = m->allowed_origins;
    fields.origins_len = strlen(m->allowed_origins);
  } else if (!m->has_allowed_origins && had_origins) {
    fields.origins = old_origins.text;
    fields.origins_len = old_origins.len;
  }
  int64_t version = fields.version;
  struct fw_buf doc;
  fw_buf_init(&doc, DOC_MAX);
  struct fw_object *object = NULL;
  if (env_doc(&doc, &fields, ctx->now_ms)) {
    out_of_memory(ctx);
    goto done;
  }
  struct fw_store_doc row = {.table = FW_TABLE_ENVIRONMENTS,
                             .id = env->env->id,
                             .parent_id = project->project->id,
                             .key = m->env,
                             .doc = doc.data,
                             .doc_len = doc.len,
                             .version = version};
  if (store_failed(ctx, ctx->store->ops->put_doc(ctx->store, &row), "the environment"))
    goto done;
  object = fw_object_new(FW_TABLE_ENVIRONMENTS, env->env->id, project->project->id, m->env,
                         doc.data, doc.len, version);
  int64_t revision;
  if (!object || !advance(ctx, fw_world_with_env(ctx->world, m->project, object, 0, 0)) ||
      !log_change(ctx, m->project, env, "environment_updated", m->env, &doc, m, &revision)) {
    if (!ctx->error_code)
      out_of_memory(ctx);
    goto done;
  }
  fw_buf_reset(&doc);
  if (fw_render_env(&doc, fw_project_env(fw_world_project(current(ctx), m->project), m->env)))
    out_of_memory(ctx);
  else
    respond(ctx, 200, doc.data, doc.len);
done:
  fw_object_unref(object);
  fw_buf_free(&doc);
}

void fw_mutate_delete_environment(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env || !version_matches(ctx, m, env->env->version))
    return;
  /* Its states, configs, keys and change log go with it (the store cascades). */
  int rc = ctx->store->ops->delete_doc(ctx->store, FW_TABLE_ENVIRONMENTS, env->env->id, 0);
  if (store_failed(ctx, rc, "the environment") ||
      !advance(ctx, fw_world_without_env(ctx->world, m->project, m->env)))
    return;
  ctx->status = 204;
}

void fw_mutate_delete_project(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  if (!project || !version_matches(ctx, m, project->project->version))
    return;
  /* Deleting what still holds environments or flags would take them silently: name
   * them instead. */
  if (project->env_count || fw_objects_count(project->flags) ||
      fw_objects_count(project->segments)) {
    char referrers[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < project->env_count && used + 1 < sizeof referrers; i++)
      used += (size_t)snprintf(referrers + used, sizeof referrers - used, "%senvironment '%s'",
                               used ? ", " : "", project->envs[i]->env->key);
    for (size_t i = 0; i < fw_objects_count(project->flags) && used + 1 < sizeof referrers; i++)
      used += (size_t)snprintf(referrers + used, sizeof referrers - used, "%sflag '%s'",
                               used ? ", " : "", fw_objects_at(project->flags, i)->key);
    for (size_t i = 0; i < fw_objects_count(project->segments) && used + 1 < sizeof referrers; i++)
      used += (size_t)snprintf(referrers + used, sizeof referrers - used, "%ssegment '%s'",
                               used ? ", " : "", fw_objects_at(project->segments, i)->key);
    fw_write_fail(ctx, 409, "in_use", "project '%s' still has %s; delete them first", m->project,
                  referrers);
    return;
  }
  int rc = ctx->store->ops->delete_doc(ctx->store, FW_TABLE_PROJECTS, project->project->id, 0);
  if (store_failed(ctx, rc, "the project") ||
      !advance(ctx, fw_world_without_project(ctx->world, m->project)))
    return;
  ctx->status = 204;
}

/* ---- the change log ---- */

struct changes_page {
  struct fw_buf *out;
  int64_t last;
  size_t count;
  int rc;
};

static int append_change_item(void *arg, const struct fw_store_change *change) {
  struct changes_page *page = arg;
  struct object_writer w = {.out = page->out, .first = true};
  if (page->count++ && fw_buf_append_char(page->out, ','))
    return FW_ENOMEM;
  w.rc = fw_buf_append_char(page->out, '{');
  ow_int(&w, "revision", change->revision);
  ow_string(&w, "kind", change->kind);
  ow_string(&w, "key", change->key);
  if (change->object)
    ow_raw(&w, "object", change->object, change->object_len);
  else
    ow_raw(&w, "object", "null", 4);
  ow_string(&w, "actor", change->actor);
  ow_time(&w, "at", change->at_ms);
  page->last = change->revision;
  return ow_end(&w);
}

void fw_mutate_read_changes(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  fw_buf_reset(ctx->body);
  struct changes_page page = {.out = ctx->body, .last = m->after};
  int rc = fw_buf_append_str(ctx->body, "{\"items\":[");
  if (!rc)
    rc = ctx->store->ops->changes(ctx->store, env->env->id, m->after, m->limit, append_change_item,
                                  &page);
  if (!rc)
    rc = page.count == m->limit && page.last < env->revision
             ? fw_buf_appendf(ctx->body, "],\"next_after\":%" PRId64 "}", page.last)
             : fw_buf_append_str(ctx->body, "],\"next_after\":null}");
  if (store_failed(ctx, rc, "the change log"))
    return;
  ctx->status = 200;
}

/* ---- admin tokens ---- */

static enum fw_role role_from(const char *name) {
  for (size_t i = 0; i < FW_ARRAY_LEN(role_names); i++)
    if (!strcmp(name, role_names[i]))
      return (enum fw_role)i;
  return FW_ROLE_VIEWER;
}

void fw_mutate_create_admin_token(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_credential credential = {
      .kind = FW_CREDENTIAL_ADMIN, .role = (int)role_from(m->role), .created_ms = ctx->now_ms};
  memcpy(credential.hash, m->token_hash, sizeof credential.hash);
  snprintf(credential.name, sizeof credential.name, "%.47s", m->name);
  if (put_credential(ctx, &credential))
    ctx->status = 201;
}

/* Answers a new credential's description with its secret text, shown this once. */
static void respond_with_secret(struct fw_write_ctx *ctx, const struct fw_credential *credential,
                                const char *field, const char *text) {
  fw_buf_reset(ctx->body);
  int rc = fw_render_credential(ctx->body, credential);
  if (!rc) {
    ctx->body->len--; /* reopen the object for the secret */
    rc = fw_buf_appendf(ctx->body, ",\"%s\":\"%s\"}", field, text);
  }
  if (rc)
    out_of_memory(ctx);
  else
    ctx->status = 201;
}

void fw_mutate_issue_admin_token(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  for (size_t i = 0; i < ctx->world->credentials->count; i++) {
    const struct fw_credential *other = &ctx->world->credentials->items[i];
    if (other->kind == FW_CREDENTIAL_ADMIN && fw_credential_valid(other, ctx->now_ms) &&
        !strcmp(other->name, m->name)) {
      fw_write_fail(ctx, 409, "duplicate_key", "a valid token named '%s' exists already", m->name);
      return;
    }
  }
  struct fw_credential credential = {
      .kind = FW_CREDENTIAL_ADMIN,
      .role = (int)role_from(m->role),
      .created_ms = ctx->now_ms,
      .expires_ms = m->expires_in_ms >= 0 ? ctx->now_ms + m->expires_in_ms : 0};
  snprintf(credential.name, sizeof credential.name, "%.47s", m->name);
  char text[FW_KEY_LEN + 1];
  if (fw_key_generate(FW_CREDENTIAL_ADMIN, text, credential.hash) != FW_OK) {
    fw_write_fail(ctx, 500, "no_randomness", "no secure randomness to make a token");
    return;
  }
  if (put_credential(ctx, &credential))
    respond_with_secret(ctx, &credential, "token", text);
}

void fw_mutate_rotate_key(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  struct fw_project_node *project = need_project(ctx, m->project);
  struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
  if (!env)
    return;
  /* The old keys keep working until their expiry, so clients can move over. */
  int64_t expiry = ctx->now_ms + (m->expires_in_ms > 0 ? m->expires_in_ms : 0);
  for (size_t i = 0; i < ctx->world->credentials->count; i++) {
    struct fw_credential old = ctx->world->credentials->items[i];
    if (old.kind != m->kind || old.environment_id != env->env->id ||
        !fw_credential_valid(&old, ctx->now_ms) || (old.expires_ms && old.expires_ms <= expiry))
      continue;
    old.expires_ms = expiry;
    if (!put_credential(ctx, &old))
      return;
  }
  char text[FW_KEY_LEN + 1];
  const char *name = m->kind == FW_CREDENTIAL_SERVER ? "server" : "client";
  if (!new_credential(ctx, m->kind, env->env->id, name, text))
    return;
  uint8_t hash[FW_SHA256_LEN];
  fw_sha256(text, strlen(text), hash);
  respond_with_secret(ctx, fw_world_credential(current(ctx), hash), "key", text);
}

void fw_mutate_revoke_credential(struct fw_write_ctx *ctx, void *mutation) {
  struct fw_mutation *m = mutation;
  int64_t environment_id = 0;
  if (m->env[0]) {
    struct fw_project_node *project = need_project(ctx, m->project);
    struct fw_env_node *env = project ? need_env(ctx, project, m->env) : NULL;
    if (!env)
      return;
    environment_id = env->env->id;
  }
  const struct fw_credential *found = NULL;
  size_t other_admins = 0;
  for (size_t i = 0; i < ctx->world->credentials->count; i++) {
    const struct fw_credential *c = &ctx->world->credentials->items[i];
    if (!fw_credential_valid(c, ctx->now_ms))
      continue;
    char id[FW_CREDENTIAL_ID_LEN + 1];
    fw_credential_id(c, id);
    bool in_scope = m->env[0]
                        ? c->kind != FW_CREDENTIAL_ADMIN && c->environment_id == environment_id
                        : c->kind == FW_CREDENTIAL_ADMIN;
    if (in_scope && !strcmp(id, m->credential_id))
      found = c;
    else if (c->kind == FW_CREDENTIAL_ADMIN && c->role == FW_ROLE_ADMIN && c->expires_ms == 0)
      other_admins++;
  }
  if (!found) {
    fw_write_fail(ctx, 404, "not_found", "no valid credential '%s' here", m->credential_id);
    return;
  }
  if (found->kind == FW_CREDENTIAL_ADMIN && found->role == FW_ROLE_ADMIN && other_admins == 0) {
    fw_write_fail(ctx, 409, "last_admin",
                  "no other admin token without an expiry would remain; issue one first");
    return;
  }
  struct fw_credential revoked = *found;
  revoked.expires_ms = ctx->now_ms;
  if (put_credential(ctx, &revoked))
    ctx->status = 204;
}
