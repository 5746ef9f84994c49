#include "api/admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/body.h"
#include "core/eval.h"
#include "core/flagdef.h"
#include "core/keys.h"
#include "state/mutations.h"
#include "util/json.h"
#include "util/time.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define CHANGES_LIMIT_DEFAULT 100
#define CHANGES_LIMIT_MAX 1000

/* ---- answering ---- */

static void answer_error(struct fw_http_response *res, const struct fw_http_request *req,
                         int status, const char *code, const char *fmt, ...) FW_PRINTF(5, 6);
static void answer_error(struct fw_http_response *res, const struct fw_http_request *req,
                         int status, const char *code, const char *fmt, ...) {
  char message[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  if (fw_http_set_error(res, req, status, code, message) != FW_OK)
    res->status = 500;
}

static void answer_out_of_memory(struct fw_http_response *res, const struct fw_http_request *req) {
  answer_error(res, req, 503, "out_of_memory", "the server is out of memory; retry later");
}

/* Answers 200 with an object's document and its version as a strong ETag. */
static void answer_object(struct fw_http_response *res, const struct fw_http_request *req,
                          const char *doc, size_t len, int64_t version) {
  char etag[32];
  snprintf(etag, sizeof etag, "\"%" PRId64 "\"", version);
  if (fw_http_set_json(res, 200, doc, len) != FW_OK || fw_http_add_header(res, "ETag", etag))
    answer_out_of_memory(res, req);
}

/* ---- authentication ---- */

static const char *const role_names[] = {"viewer", "editor", "admin"};

/* Checks the admin token and its role; returns the world to read, or NULL with the
 * answer set (401 without a valid token, 403 with too low a role or an environment key).
 * `actor` receives "token:<name>". */
static const struct fw_world *authorize(const struct fw_admin *admin,
                                        const struct fw_http_request *req,
                                        struct fw_http_response *res, enum fw_role need,
                                        char *actor, size_t actor_len) {
  const struct fw_world *world = fw_writer_world(admin->writer, fw_http_response_loop(res));
  size_t len;
  const char *value = fw_http_header(req, "Authorization", &len);
  if (!value || len < 7 || strncasecmp(value, "Bearer ", 7) != 0) {
    answer_error(res, req, 401, "unauthorized",
                 "an admin token is required: "
                 "'Authorization: Bearer fw_adm_...'");
    if (fw_http_add_header(res, "WWW-Authenticate", "Bearer") != FW_OK)
      res->status = 500;
    return NULL;
  }
  const char *token = value + 7;
  size_t token_len = len - 7;
  uint8_t hash[FW_SHA256_LEN];
  fw_sha256(token, token_len, hash);
  const struct fw_credential *credential = fw_world_credential(world, hash);
  if (!credential || (credential->expires_ms && credential->expires_ms <= fw_time_wall_ms())) {
    answer_error(res, req, 401, "unauthorized", "the token is unknown or has expired");
    if (fw_http_add_header(res, "WWW-Authenticate", "Bearer error=\"invalid_token\"") != FW_OK)
      res->status = 500;
    return NULL;
  }
  if (credential->kind != FW_CREDENTIAL_ADMIN) {
    answer_error(res, req, 403, "forbidden",
                 "an environment key cannot use the management API; use an admin token");
    return NULL;
  }
  if (credential->role < (int)need) {
    answer_error(res, req, 403, "forbidden", "this needs the %s role; the token is %s",
                 role_names[need], role_names[credential->role]);
    return NULL;
  }
  snprintf(actor, actor_len, "token:%s", credential->name);
  return world;
}

/* ---- request pieces ---- */

/* Reads a key-valued query parameter (keys need no decoding); false when absent or not
 * a key. */
static bool query_key(const struct fw_http_request *req, const char *name, char *out) {
  const char *value;
  size_t len;
  if (!fw_http_query(req, name, &value, &len) || !fw_model_key_valid(value, len))
    return false;
  memcpy(out, value, len);
  out[len] = '\0';
  return true;
}

/* Reads a non-negative integer query parameter into *out (left alone when absent); false
 * with the answer set when it is malformed. */
static bool query_number(const struct fw_http_request *req, struct fw_http_response *res,
                         const char *name, int64_t max, int64_t *out) {
  const char *value;
  size_t len;
  if (!fw_http_query(req, name, &value, &len))
    return true;
  int64_t number = 0;
  bool valid = len > 0;
  for (size_t i = 0; valid && i < len; i++) {
    int digit = value[i] - '0';
    valid = digit >= 0 && digit <= 9 && number <= (max - digit) / 10;
    if (valid)
      number = number * 10 + digit;
  }
  if (!valid || number > max) {
    answer_error(res, req, 400, "invalid_query", "'%s' must be a number from 0 to %" PRId64, name,
                 max);
    return false;
  }
  *out = number;
  return true;
}

/* Copies a path parameter that must be a key; false with a 404 when it cannot name
 * anything. */
static bool path_key(const struct fw_http_request *req, struct fw_http_response *res,
                     const char *name, char *out) {
  const char *value = fw_http_param(req, name);
  if (!value || !fw_model_key_valid(value, strlen(value))) {
    /* The route's parameter names are terse; say what they stand for. */
    const char *noun = !strcmp(name, "env")   ? "environment"
                       : !strcmp(name, "id")  ? "credential"
                       : !strcmp(name, "key") ? "object"
                                              : name;
    answer_error(res, req, 404, "not_found", "no %s '%s' (keys are 1 to %d of [A-Za-z0-9._-])",
                 noun, value ? value : "", FW_KEY_MAX);
    return false;
  }
  memcpy(out, value, strlen(value) + 1);
  return true;
}

/* The version a conditional update expects, from If-Match ("3", W/"3" or 3). False with
 * the answer set when malformed. */
static bool if_match(const struct fw_http_request *req, struct fw_http_response *res,
                     struct fw_mutation *m) {
  size_t len;
  const char *value = fw_http_header(req, "If-Match", &len);
  if (!value)
    return true;
  char text[32];
  if (len >= 2 && value[0] == 'W' && value[1] == '/') {
    value += 2;
    len -= 2;
  }
  if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
    value++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof text) {
    answer_error(res, req, 400, "invalid_header", "If-Match must be a version, e.g. \"3\"");
    return false;
  }
  memcpy(text, value, len);
  text[len] = '\0';
  char *end;
  long long version = strtoll(text, &end, 10);
  if (*end || version < 0) {
    answer_error(res, req, 400, "invalid_header", "If-Match must be a version, e.g. \"3\"");
    return false;
  }
  m->if_version = version;
  m->has_if_version = true;
  return true;
}

/* Reads the optional "version" field of a body into the mutation (If-Match wins). */
static bool body_version(struct fw_body *body, struct fw_mutation *m) {
  struct fw_rawjson raw;
  bool present;
  if (!fw_body_raw(body, "version", false, &raw, &present))
    return false;
  if (!present || m->has_if_version)
    return true;
  char *end;
  long long version = strtoll(raw.text, &end, 10);
  if (fw_rawjson_type(raw) != FW_RAWJSON_NUMBER || end != raw.text + raw.len || version < 0)
    return fw_body_fail(body, 422, "invalid_field", "field 'version' must be a whole number");
  m->if_version = version;
  m->has_if_version = true;
  return true;
}

/* Copies raw JSON into a NUL-terminated string the mutation owns. */
static char *copy_raw(struct fw_rawjson raw) {
  char *copy = malloc(raw.len + 1);
  if (copy) {
    memcpy(copy, raw.text, raw.len);
    copy[raw.len] = '\0';
  }
  return copy;
}

/* Hands a mutation to the writer; answers 503 when that is not possible. */
static void submit(const struct fw_admin *admin, const struct fw_http_request *req,
                   struct fw_http_response *res, fw_write_fn fn, struct fw_mutation *m) {
  int rc = fw_writer_submit(admin->writer, req, res, m->actor, fn, m, fw_mutation_free);
  if (rc == FW_OK)
    return;
  fw_mutation_free(m);
  if (rc == FW_EINVAL)
    answer_error(res, req, 400, "invalid_header",
                 "Idempotency-Key must be 1 to 255 visible ASCII characters");
  else
    answer_out_of_memory(res, req);
}

/* Starts a mutation for an authorised write; NULL with the answer set. */
static struct fw_mutation *begin_write(const struct fw_admin *admin,
                                       const struct fw_http_request *req,
                                       struct fw_http_response *res, enum fw_role need) {
  char actor[96];
  if (!authorize(admin, req, res, need, actor, sizeof actor))
    return NULL;
  struct fw_mutation *m = fw_mutation_new();
  if (!m) {
    answer_out_of_memory(res, req);
    return NULL;
  }
  memcpy(m->actor, actor, sizeof actor);
  return m;
}

/* Fails the request with the body's error and frees the mutation. */
static void reject(struct fw_body *body, struct fw_mutation *m, struct fw_http_response *res,
                   const struct fw_http_request *req) {
  fw_mutation_free(m);
  if (fw_body_answer_error(body, res, req) != FW_OK)
    res->status = 500;
}

static bool read_key(struct fw_body *body, char *out) {
  bool present;
  if (!fw_body_string(body, "key", true, FW_KEY_MAX, out, FW_KEY_MAX + 1, &present))
    return false;
  if (!fw_model_key_valid(out, strlen(out)))
    return fw_body_fail(body, 422, "invalid_field",
                        "field 'key' must be 1 to %d of [A-Za-z0-9._-], starting with a letter "
                        "or digit",
                        FW_KEY_MAX);
  return true;
}

static bool read_name_and_description(struct fw_body *body, struct fw_mutation *m) {
  if (!fw_body_string(body, "name", false, FW_NAME_MAX, m->name, sizeof m->name, &m->has_name))
    return false;
  /* A description may be cleared with "", unlike a name. */
  struct fw_rawjson raw;
  if (!fw_body_raw(body, "description", false, &raw, &m->has_description))
    return false;
  if (m->has_description && raw.len == 2 && fw_rawjson_type(raw) == FW_RAWJSON_STRING) {
    m->description[0] = '\0';
    return true;
  }
  return fw_body_string(body, "description", false, FW_DESCRIPTION_MAX, m->description,
                        sizeof m->description, NULL);
}

/* A PATCH must change something: an empty body is a mistake worth saying. */
static bool require_some_field(struct fw_body *body) {
  size_t cursor = 0;
  struct fw_rawjson name, value;
  if (body->code || fw_rawjson_next_member(body->root, &cursor, &name, &value))
    return !body->code;
  return fw_body_fail(body, 422, "missing_field", "the body names nothing to change");
}

/* ---- lists ---- */

/* Appends a page of an array sorted by key: items after key `after`, at most `limit`,
 * as {"items":[...],"next":"<last key>"|null}. `render` appends item `i`. */
static int render_page(struct fw_buf *out, size_t count,
                       const char *(*key_of)(const void *, size_t),
                       int (*render)(struct fw_buf *, const void *, size_t), const void *items,
                       const char *after, size_t limit) {
  size_t start = 0;
  while (after && start < count && strcmp(key_of(items, start), after) <= 0)
    start++;
  int rc = fw_buf_append_str(out, "{\"items\":[");
  size_t i = start;
  for (; !rc && i < count && i - start < limit; i++) {
    if (i > start)
      rc = fw_buf_append_char(out, ',');
    if (!rc)
      rc = render(out, items, i);
  }
  if (!rc)
    rc = fw_buf_append_str(out, "],\"next\":");
  if (!rc && i < count) {
    const char *last = key_of(items, i - 1);
    rc = fw_json_append_string(out, last, strlen(last));
  } else if (!rc) {
    rc = fw_buf_append_str(out, "null");
  }
  if (!rc)
    rc = fw_buf_append_char(out, '}');
  return rc;
}

/* Reads `limit` and `after` for a list; false with the answer set. */
static bool list_window(const struct fw_http_request *req, struct fw_http_response *res,
                        size_t *limit, char *after, bool *has_after) {
  int64_t value = LIST_LIMIT_DEFAULT;
  if (!query_number(req, res, "limit", LIST_LIMIT_MAX, &value))
    return false;
  if (value == 0) {
    answer_error(res, req, 400, "invalid_query", "'limit' must be from 1 to %d", LIST_LIMIT_MAX);
    return false;
  }
  *limit = (size_t)value;
  const char *raw;
  size_t raw_len;
  *has_after = fw_http_query(req, "after", &raw, &raw_len);
  /* A cursor that is not a key would silently restart the listing: refuse it. */
  if (*has_after && !query_key(req, "after", after)) {
    answer_error(res, req, 400, "invalid_query", "'after' must be a key from a previous page");
    return false;
  }
  return true;
}

static const char *project_key_at(const void *items, size_t i) {
  return ((struct fw_project_node *const *)items)[i]->project->key;
}

static int render_project_at(struct fw_buf *out, const void *items, size_t i) {
  const struct fw_object *project = ((struct fw_project_node *const *)items)[i]->project;
  return fw_buf_append(out, project->doc, project->doc_len);
}

static const char *env_key_at(const void *items, size_t i) {
  return ((struct fw_env_node *const *)items)[i]->env->key;
}

static int render_env_at(struct fw_buf *out, const void *items, size_t i) {
  return fw_render_env(out, ((struct fw_env_node *const *)items)[i]);
}

/* Lists of objects are persistent sets (state/objects.h). */
static const char *object_key_at(const void *items, size_t i) {
  return fw_objects_at(items, i)->key;
}

static int render_object_at(struct fw_buf *out, const void *items, size_t i) {
  const struct fw_object *object = fw_objects_at(items, i);
  return fw_buf_append(out, object->doc, object->doc_len);
}

/* Objects defined per project with a part per environment: a flag and its state, a
 * segment and its rules. Their environment views are read alike. */
struct env_view {
  const char *noun;
  enum fw_store_table table; /* FW_TABLE_FLAGS or FW_TABLE_SEGMENTS */
};

static const struct env_view flag_view = {"flag", FW_TABLE_FLAGS};
static const struct env_view segment_view = {"segment", FW_TABLE_SEGMENTS};

/* The definition of `key` in `project` and its part in `env` (either may be NULL). */
static struct fw_object *env_view_find(const struct env_view *view,
                                       const struct fw_project_node *project,
                                       const struct fw_env_node *env, const char *key,
                                       struct fw_object **part) {
  bool flags = view->table == FW_TABLE_FLAGS;
  struct fw_object *definition =
      flags ? fw_project_flag(project, key) : fw_project_segment(project, key);
  *part = !definition ? NULL : flags ? fw_env_state(env, key) : fw_env_segment_rules(env, key);
  return definition;
}

static int env_view_render(const struct env_view *view, struct fw_buf *out,
                           const struct fw_object *definition, const struct fw_object *part) {
  if (!part)
    return fw_buf_append(out, definition->doc, definition->doc_len);
  return view->table == FW_TABLE_FLAGS ? fw_render_env_flag(out, definition, part)
                                       : fw_render_env_segment(out, definition, part);
}

/* What a list of environment views renders: set for the handler's duration. */
static _Thread_local const struct env_view *rendering_view;
static _Thread_local const struct fw_env_node *rendering_env;

static int render_env_view_at(struct fw_buf *out, const void *items, size_t i) {
  const struct fw_object *definition = fw_objects_at(items, i);
  const struct fw_object *part = rendering_view->table == FW_TABLE_FLAGS
                                     ? fw_env_state(rendering_env, definition->key)
                                     : fw_env_segment_rules(rendering_env, definition->key);
  return env_view_render(rendering_view, out, definition, part);
}

static void answer_list(struct fw_http_response *res, const struct fw_http_request *req,
                        size_t count, const char *(*key_of)(const void *, size_t),
                        int (*render)(struct fw_buf *, const void *, size_t), const void *items) {
  size_t limit;
  char after[FW_KEY_MAX + 1];
  bool has_after;
  if (!list_window(req, res, &limit, after, &has_after))
    return;
  res->status = 200;
  res->content_type = "application/json";
  if (render_page(res->body, count, key_of, render, items, has_after ? after : NULL, limit))
    answer_out_of_memory(res, req);
}

/* ---- lookups for reads ---- */

/* Finds the project (and environment, when `env_out` is given) named by the path. */
static bool find_scope(const struct fw_world *world, const struct fw_http_request *req,
                       struct fw_http_response *res, struct fw_project_node **project_out,
                       struct fw_env_node **env_out) {
  char project_key[FW_KEY_MAX + 1], env_key[FW_KEY_MAX + 1];
  if (!path_key(req, res, "project", project_key))
    return false;
  struct fw_project_node *project = fw_world_project(world, project_key);
  if (!project) {
    answer_error(res, req, 404, "not_found", "no project '%s'", project_key);
    return false;
  }
  *project_out = project;
  if (!env_out)
    return true;
  if (!path_key(req, res, "env", env_key))
    return false;
  struct fw_env_node *env = fw_project_env(project, env_key);
  if (!env) {
    answer_error(res, req, 404, "not_found", "no environment '%s' in project '%s'", env_key,
                 project_key);
    return false;
  }
  *env_out = env;
  return true;
}

/* ---- projects ---- */

static void create_project(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  static const char *const fields[] = {"key", "name", "description", NULL};
  struct fw_body body;
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !read_key(&body, m->project) || !read_name_and_description(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_create_project, m);
}

static void list_projects(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  if (world)
    answer_list(res, req, world->project_count, project_key_at, render_project_at, world->projects);
}

static void get_project(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  if (world && find_scope(world, req, res, &project, NULL))
    answer_object(res, req, project->project->doc, project->project->doc_len,
                  project->project->version);
}

static void update_project(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  static const char *const fields[] = {"name", "description", "version", NULL};
  struct fw_body body;
  if (!path_key(req, res, "project", m->project) || !if_match(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !require_some_field(&body) || !read_name_and_description(&body, m) || !body_version(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_update_project, m);
}

/* ---- environments ---- */

/* Reads the optional "allowed_origins" member: null or [] remove the list, a non-empty
 * array of origins (fw_env_check_origins) replaces it. */
static bool read_allowed_origins(struct fw_body *body, struct fw_mutation *m) {
  struct fw_rawjson raw, first;
  if (!fw_body_raw(body, "allowed_origins", false, &raw, &m->has_allowed_origins))
    return false;
  if (!m->has_allowed_origins)
    return true;
  char error[256];
  if (!fw_env_check_origins(raw, error, sizeof error))
    return fw_body_fail(body, 422, "invalid_field", "%s", error);
  if (fw_rawjson_type(raw) == FW_RAWJSON_NULL || fw_rawjson_element(raw, 0, &first) != FW_OK)
    return true;
  if (!(m->allowed_origins = copy_raw(raw)))
    return fw_body_fail(body, 503, "out_of_memory", "the server is out of memory; retry later");
  return true;
}

static void create_environment(struct fw_http_request *req, struct fw_http_response *res,
                               void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  static const char *const fields[] = {"key", "name", "allowed_origins", NULL};
  struct fw_body body;
  if (!path_key(req, res, "project", m->project)) {
    fw_mutation_free(m);
    return;
  }
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !read_key(&body, m->key) ||
      !fw_body_string(&body, "name", false, FW_NAME_MAX, m->name, sizeof m->name, &m->has_name) ||
      !read_allowed_origins(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_create_environment, m);
}

static void list_environments(struct fw_http_request *req, struct fw_http_response *res,
                              void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  if (world && find_scope(world, req, res, &project, NULL))
    answer_list(res, req, project->env_count, env_key_at, render_env_at, project->envs);
}

static void get_environment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (!world || !find_scope(world, req, res, &project, &env))
    return;
  char etag[32];
  snprintf(etag, sizeof etag, "\"%" PRId64 "\"", env->env->version);
  res->status = 200;
  res->content_type = "application/json";
  if (fw_render_env(res->body, env) || fw_http_add_header(res, "ETag", etag))
    answer_out_of_memory(res, req);
}

static void patch_environment(struct fw_http_request *req, struct fw_http_response *res,
                              void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "env", m->env) ||
      !if_match(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"name", "allowed_origins", "version", NULL};
  struct fw_body body;
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !require_some_field(&body) ||
      !fw_body_string(&body, "name", false, FW_NAME_MAX, m->name, sizeof m->name, &m->has_name) ||
      !read_allowed_origins(&body, m) || !body_version(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_update_environment, m);
}

/* ---- flags ---- */

static void create_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  static const char *const fields[] = {"key",      "name", "description",    "type",
                                       "variants", "tags", "client_visible", NULL};
  struct fw_body body;
  if (!path_key(req, res, "project", m->project)) {
    fw_mutation_free(m);
    return;
  }
  char type[16] = "boolean";
  struct fw_rawjson variants, tags;
  bool has_variants, has_tags;
  char error[256];
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !read_key(&body, m->key) || !read_name_and_description(&body, m) ||
      !fw_body_string(&body, "type", false, 15, type, sizeof type, NULL) ||
      !fw_body_raw(&body, "variants", false, &variants, &has_variants) ||
      !fw_body_raw(&body, "tags", false, &tags, &has_tags) ||
      !fw_body_bool(&body, "client_visible", false, &m->client_visible, &m->has_client_visible))
    return reject(&body, m, res, req);
  if (!fw_flag_type_from(type, &m->type)) {
    fw_body_fail(&body, 422, "invalid_field",
                 "field 'type' must be boolean, string, number or json");
    return reject(&body, m, res, req);
  }
  if (!has_variants && m->type != FW_FLAG_BOOLEAN) {
    fw_body_fail(&body, 422, "missing_field", "a %s flag needs 'variants'", type);
    return reject(&body, m, res, req);
  }
  if (has_variants && !fw_flagdef_check_variants(m->type, variants, error, sizeof error)) {
    fw_body_fail(&body, 422, "invalid_field", "%s", error);
    return reject(&body, m, res, req);
  }
  if (has_tags && !fw_flagdef_check_tags(tags, error, sizeof error)) {
    fw_body_fail(&body, 422, "invalid_field", "%s", error);
    return reject(&body, m, res, req);
  }
  if ((has_variants && !(m->variants = copy_raw(variants))) ||
      (has_tags && !(m->tags = copy_raw(tags)))) {
    fw_mutation_free(m);
    return answer_out_of_memory(res, req);
  }
  submit(ctx, req, res, fw_mutate_create_flag, m);
}

static void list_flags(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  if (world && find_scope(world, req, res, &project, NULL))
    answer_list(res, req, fw_objects_count(project->flags), object_key_at, render_object_at,
                project->flags);
}

static void get_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  char key[FW_KEY_MAX + 1];
  if (!world || !find_scope(world, req, res, &project, NULL) || !path_key(req, res, "key", key))
    return;
  struct fw_object *flag = fw_project_flag(project, key);
  if (!flag)
    return answer_error(res, req, 404, "not_found", "no flag '%s' in project '%s'", key,
                        project->project->key);
  answer_object(res, req, flag->doc, flag->doc_len, flag->version);
}

/* ---- environment views of flags and segments ---- */

static void list_env_views(struct fw_http_request *req, struct fw_http_response *res, void *ctx,
                           const struct env_view *view) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (!world || !find_scope(world, req, res, &project, &env))
    return;
  rendering_view = view;
  rendering_env = env;
  bool flags = view->table == FW_TABLE_FLAGS;
  answer_list(res, req,
              flags ? fw_objects_count(project->flags) : fw_objects_count(project->segments),
              object_key_at, render_env_view_at, flags ? project->flags : project->segments);
  rendering_env = NULL;
}

static void get_env_view(struct fw_http_request *req, struct fw_http_response *res, void *ctx,
                         const struct env_view *view) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  char key[FW_KEY_MAX + 1];
  if (!world || !find_scope(world, req, res, &project, &env) || !path_key(req, res, "key", key))
    return;
  struct fw_object *part;
  struct fw_object *definition = env_view_find(view, project, env, key, &part);
  if (!part)
    return answer_error(res, req, 404, "not_found", "no %s '%s' in project '%s'", view->noun, key,
                        project->project->key);
  /* The tag is the version of the environment's part: what If-Match compares. */
  char etag[32];
  snprintf(etag, sizeof etag, "\"%" PRId64 "\"", part->version);
  res->status = 200;
  res->content_type = "application/json";
  if (env_view_render(view, res->body, definition, part) || fw_http_add_header(res, "ETag", etag))
    answer_out_of_memory(res, req);
}

static void list_env_flags(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  list_env_views(req, res, ctx, &flag_view);
}

static void get_env_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  get_env_view(req, res, ctx, &flag_view);
}

static void list_env_segments(struct fw_http_request *req, struct fw_http_response *res,
                              void *ctx) {
  list_env_views(req, res, ctx, &segment_view);
}

static void get_env_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  get_env_view(req, res, ctx, &segment_view);
}

/* Reads the scope of a flag-state write from the path. */
static bool flag_state_scope(const struct fw_http_request *req, struct fw_http_response *res,
                             struct fw_mutation *m) {
  return path_key(req, res, "project", m->project) && path_key(req, res, "env", m->env) &&
         path_key(req, res, "key", m->key) && if_match(req, res, m);
}

static void patch_env_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!flag_state_scope(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"enabled", "on_variant", "off_variant", "rules",
                                       "rollout", "version",    NULL};
  struct fw_body body;
  struct fw_rawjson rules, rollout;
  bool has_rules, has_rollout;
  char error[256];
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !require_some_field(&body) ||
      !fw_body_bool(&body, "enabled", false, &m->enabled, &m->has_enabled) ||
      !fw_body_string(&body, "on_variant", false, FW_KEY_MAX, m->on_variant, sizeof m->on_variant,
                      NULL) ||
      !fw_body_string(&body, "off_variant", false, FW_KEY_MAX, m->off_variant,
                      sizeof m->off_variant, NULL) ||
      !fw_body_raw(&body, "rules", false, &rules, &has_rules) ||
      !fw_body_raw(&body, "rollout", false, &rollout, &has_rollout) || !body_version(&body, m))
    return reject(&body, m, res, req);
  if (has_rules && !fw_flagdef_check_rules(rules, error, sizeof error)) {
    fw_body_fail(&body, 422, "invalid_field", "%s", error);
    return reject(&body, m, res, req);
  }
  if ((has_rules && !(m->rules = copy_raw(rules))) ||
      (has_rollout && !(m->rollout = copy_raw(rollout)))) {
    fw_mutation_free(m);
    return answer_out_of_memory(res, req);
  }
  submit(ctx, req, res, fw_mutate_flag_state, m);
}

static void toggle_env_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!flag_state_scope(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  m->toggle = true;
  submit(ctx, req, res, fw_mutate_flag_state, m);
}

/* ---- configs ---- */

static void list_configs(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (world && find_scope(world, req, res, &project, &env))
    answer_list(res, req, fw_objects_count(env->configs), object_key_at, render_object_at,
                env->configs);
}

static void get_config(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  char key[FW_KEY_MAX + 1];
  if (!world || !find_scope(world, req, res, &project, &env) || !path_key(req, res, "key", key))
    return;
  struct fw_object *config = fw_env_config(env, key);
  if (!config)
    return answer_error(res, req, 404, "not_found", "no config '%s' in environment '%s'", key,
                        env->env->key);
  answer_object(res, req, config->doc, config->doc_len, config->version);
}

/* Whether a media type (parameters ignored) starts with `prefix`. */
static bool media_type_is(const char *value, size_t len, const char *prefix) {
  size_t prefix_len = strlen(prefix);
  return value && len >= prefix_len && strncasecmp(value, prefix, prefix_len) == 0;
}

/* Reads a config write: a text body (text/...) is the value as a string; a JSON body is
 * the value itself, unless it is an envelope {"value":..., "content_type":...,
 * "version":...} with "value" and nothing else. */
static bool read_config_value(struct fw_body *body, const struct fw_http_request *req,
                              struct fw_mutation *m) {
  size_t type_len;
  const char *type = fw_http_header(req, "Content-Type", &type_len);
  if (req->body_len > FW_VALUE_MAX)
    return fw_body_fail(body, 413, "value_too_large", "a config value is at most %d bytes",
                        FW_VALUE_MAX);
  if (media_type_is(type, type_len, "text/")) {
    size_t base_len = 0;
    while (base_len < type_len && type[base_len] != ';')
      base_len++;
    while (base_len > 0 && type[base_len - 1] == ' ')
      base_len--;
    if (base_len >= sizeof m->content_type)
      return fw_body_fail(body, 415, "unsupported_media_type", "the content type is too long");
    memcpy(m->content_type, type, base_len);
    m->content_type[base_len] = '\0';
    /* Text is kept as a JSON string; invalid UTF-8 is refused rather than repaired. */
    if (!fw_json_utf8_valid(req->body, req->body_len))
      return fw_body_fail(body, 422, "invalid_value", "a text config must be valid UTF-8");
    struct fw_buf text;
    fw_buf_init(&text, 6 * FW_VALUE_MAX + 16);
    if (fw_json_append_string(&text, req->body ? req->body : "", req->body_len) != FW_OK) {
      fw_buf_free(&text);
      return fw_body_fail(body, 503, "out_of_memory", "the server is out of memory");
    }
    size_t value_len;
    m->value = fw_buf_steal(&text, &value_len);
    return m->value != NULL ||
           fw_body_fail(body, 503, "out_of_memory", "the server is out of memory");
  }
  if (type && !media_type_is(type, type_len, "application/json"))
    return fw_body_fail(body, 415, "unsupported_media_type",
                        "a config is sent as application/json or text/*");
  if (!fw_body_parse_value(body, req->body, req->body_len))
    return false;
  snprintf(m->content_type, sizeof m->content_type, "application/json");
  struct fw_rawjson value = body->root, raw;
  bool envelope = fw_rawjson_type(body->root) == FW_RAWJSON_OBJECT &&
                  fw_rawjson_member(body->root, "value", &raw) == FW_OK;
  size_t cursor = 0;
  struct fw_rawjson name, member;
  while (envelope && fw_rawjson_next_member(body->root, &cursor, &name, &member)) {
    char text[16];
    envelope =
        fw_rawjson_string(name, text, sizeof text) == FW_OK &&
        (!strcmp(text, "value") || !strcmp(text, "content_type") || !strcmp(text, "version"));
  }
  if (envelope) {
    value = raw;
    char content_type[64];
    bool has_type;
    if (!fw_body_string(body, "content_type", false, sizeof content_type - 1, content_type,
                        sizeof content_type, &has_type) ||
        !body_version(body, m))
      return false;
    if (has_type) {
      bool text_type = !strncasecmp(content_type, "text/", 5);
      if (!text_type && strcasecmp(content_type, "application/json"))
        return fw_body_fail(body, 422, "invalid_field",
                            "field 'content_type' must be application/json or text/...");
      if (text_type && fw_rawjson_type(value) != FW_RAWJSON_STRING)
        return fw_body_fail(body, 422, "invalid_field", "a text config's 'value' must be a string");
      memcpy(m->content_type, content_type, sizeof content_type);
    }
  }
  m->value = copy_raw(value);
  if (!m->value)
    return fw_body_fail(body, 503, "out_of_memory", "the server is out of memory");
  return true;
}

static void put_config(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!flag_state_scope(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  struct fw_body body;
  memset(&body, 0, sizeof body);
  if (!read_config_value(&body, req, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_put_config, m);
}

/* ---- the change log ---- */

static void list_changes(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_VIEWER);
  if (!m)
    return;
  int64_t after = 0, limit = CHANGES_LIMIT_DEFAULT;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "env", m->env) ||
      !query_number(req, res, "after", INT64_MAX, &after) ||
      !query_number(req, res, "limit", CHANGES_LIMIT_MAX, &limit)) {
    fw_mutation_free(m);
    return;
  }
  m->after = after;
  m->limit = limit > 0 ? (size_t)limit : CHANGES_LIMIT_DEFAULT;
  submit(ctx, req, res, fw_mutate_read_changes, m);
}

/* ---- flag definitions and deletions ---- */

static void patch_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "key", m->key) ||
      !if_match(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"name", "description",    "type",    "variants",
                                       "tags", "client_visible", "version", NULL};
  struct fw_body body;
  char type[16];
  struct fw_rawjson variants, tags;
  bool has_variants, has_tags;
  char error[256];
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !require_some_field(&body) || !read_name_and_description(&body, m) ||
      !fw_body_string(&body, "type", false, 15, type, sizeof type, &m->has_type) ||
      !fw_body_raw(&body, "variants", false, &variants, &has_variants) ||
      !fw_body_raw(&body, "tags", false, &tags, &has_tags) ||
      !fw_body_bool(&body, "client_visible", false, &m->client_visible, &m->has_client_visible) ||
      !body_version(&body, m))
    return reject(&body, m, res, req);
  if (m->has_type && !fw_flag_type_from(type, &m->type)) {
    fw_body_fail(&body, 422, "invalid_field",
                 "field 'type' must be boolean, string, number or json");
    return reject(&body, m, res, req);
  }
  if (has_tags && !fw_flagdef_check_tags(tags, error, sizeof error)) {
    fw_body_fail(&body, 422, "invalid_field", "%s", error);
    return reject(&body, m, res, req);
  }
  /* Variants are checked against the flag's type by the writer, which knows it. */
  if ((has_variants && !(m->variants = copy_raw(variants))) ||
      (has_tags && !(m->tags = copy_raw(tags)))) {
    fw_mutation_free(m);
    return answer_out_of_memory(res, req);
  }
  submit(ctx, req, res, fw_mutate_update_flag, m);
}

/* A DELETE: scope from the path (`env` and `key` when the route has them), If-Match. */
static void delete_object(struct fw_http_request *req, struct fw_http_response *res, void *ctx,
                          enum fw_role need, fw_write_fn fn) {
  struct fw_mutation *m = begin_write(ctx, req, res, need);
  if (!m)
    return;
  bool ok = path_key(req, res, "project", m->project) &&
            (!fw_http_param(req, "env") || path_key(req, res, "env", m->env)) &&
            (!fw_http_param(req, "key") || path_key(req, res, "key", m->key)) &&
            if_match(req, res, m);
  if (!ok) {
    fw_mutation_free(m);
    return;
  }
  submit(ctx, req, res, fn, m);
}

static void delete_project(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  delete_object(req, res, ctx, FW_ROLE_ADMIN, fw_mutate_delete_project);
}

static void delete_environment(struct fw_http_request *req, struct fw_http_response *res,
                               void *ctx) {
  delete_object(req, res, ctx, FW_ROLE_ADMIN, fw_mutate_delete_environment);
}

static void delete_flag(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  delete_object(req, res, ctx, FW_ROLE_EDITOR, fw_mutate_delete_flag);
}

static void delete_config(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  delete_object(req, res, ctx, FW_ROLE_EDITOR, fw_mutate_delete_config);
}

/* ---- segments ---- */

static void create_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"key", "name", "description", NULL};
  struct fw_body body;
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !read_key(&body, m->key) || !read_name_and_description(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_create_segment, m);
}

static void patch_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "key", m->key) ||
      !if_match(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"name", "description", "version", NULL};
  struct fw_body body;
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !require_some_field(&body) || !read_name_and_description(&body, m) || !body_version(&body, m))
    return reject(&body, m, res, req);
  submit(ctx, req, res, fw_mutate_update_segment, m);
}

static void delete_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  delete_object(req, res, ctx, FW_ROLE_EDITOR, fw_mutate_delete_segment);
}

static void list_segments(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  if (world && find_scope(world, req, res, &project, NULL))
    answer_list(res, req, fw_objects_count(project->segments), object_key_at, render_object_at,
                project->segments);
}

static void get_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_VIEWER, actor, sizeof actor);
  struct fw_project_node *project;
  char key[FW_KEY_MAX + 1];
  if (!world || !find_scope(world, req, res, &project, NULL) || !path_key(req, res, "key", key))
    return;
  struct fw_object *segment = fw_project_segment(project, key);
  if (!segment)
    return answer_error(res, req, 404, "not_found", "no segment '%s' in project '%s'", key,
                        project->project->key);
  answer_object(res, req, segment->doc, segment->doc_len, segment->version);
}

static void put_env_segment(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_EDITOR);
  if (!m)
    return;
  if (!flag_state_scope(req, res, m)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"rules", "version", NULL};
  struct fw_body body;
  struct fw_rawjson rules;
  char error[256];
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !fw_body_raw(&body, "rules", true, &rules, NULL) || !body_version(&body, m))
    return reject(&body, m, res, req);
  if (!fw_eval_check_rules(rules, (struct fw_rawjson){"[]", 2}, true, error, sizeof error)) {
    fw_body_fail(&body, 422, "invalid_field", "%s", error);
    return reject(&body, m, res, req);
  }
  if (!(m->rules = copy_raw(rules))) {
    fw_mutation_free(m);
    return answer_out_of_memory(res, req);
  }
  submit(ctx, req, res, fw_mutate_segment_rules, m);
}

/* ---- admin tokens and environment keys ---- */

/* Reads "expires_in_seconds" (absent: `default_ms`, which may be -1 for never). */
static bool read_expiry(struct fw_body *body, int64_t default_ms, int64_t *out) {
  struct fw_rawjson raw;
  bool present;
  if (!fw_body_raw(body, "expires_in_seconds", false, &raw, &present))
    return false;
  *out = default_ms;
  if (!present)
    return true;
  char *end;
  long long seconds = strtoll(raw.text, &end, 10);
  if (fw_rawjson_type(raw) != FW_RAWJSON_NUMBER || end != raw.text + raw.len || seconds < 0 ||
      seconds > 10LL * 365 * 24 * 3600)
    return fw_body_fail(body, 422, "invalid_field",
                        "field 'expires_in_seconds' must be a whole number of seconds, at most "
                        "ten years");
  *out = seconds * 1000;
  return true;
}

static void issue_token(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  static const char *const fields[] = {"name", "role", "expires_in_seconds", NULL};
  struct fw_body body;
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !fw_body_string(&body, "name", true, 47, m->name, sizeof m->name, NULL) ||
      !fw_body_string(&body, "role", true, sizeof m->role - 1, m->role, sizeof m->role, NULL) ||
      !read_expiry(&body, -1, &m->expires_in_ms))
    return reject(&body, m, res, req);
  if (m->expires_in_ms == 0) {
    fw_body_fail(&body, 422, "invalid_field",
                 "field 'expires_in_seconds' must be at least 1 for a token");
    return reject(&body, m, res, req);
  }
  if (strcmp(m->role, "admin") && strcmp(m->role, "editor") && strcmp(m->role, "viewer")) {
    fw_body_fail(&body, 422, "invalid_field", "field 'role' must be admin, editor or viewer");
    return reject(&body, m, res, req);
  }
  submit(ctx, req, res, fw_mutate_issue_admin_token, m);
}

/* Lists the credentials of one kind group: admin tokens, or one environment's keys. */
static void answer_credentials(struct fw_http_response *res, const struct fw_http_request *req,
                               const struct fw_world *world, bool admin_tokens,
                               int64_t environment_id) {
  res->status = 200;
  res->content_type = "application/json";
  int rc = fw_buf_append_str(res->body, "{\"items\":[");
  size_t count = 0;
  for (size_t i = 0; !rc && i < world->credentials->count; i++) {
    const struct fw_credential *c = &world->credentials->items[i];
    bool wanted = admin_tokens
                      ? c->kind == FW_CREDENTIAL_ADMIN
                      : c->kind != FW_CREDENTIAL_ADMIN && c->environment_id == environment_id;
    if (!wanted)
      continue;
    if (count++)
      rc = fw_buf_append_char(res->body, ',');
    if (!rc)
      rc = fw_render_credential(res->body, c);
  }
  if (!rc)
    rc = fw_buf_append_str(res->body, "],\"next\":null}");
  if (rc)
    answer_out_of_memory(res, req);
}

static void list_tokens(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_ADMIN, actor, sizeof actor);
  if (world)
    answer_credentials(res, req, world, true, 0);
}

static void revoke_token(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  if (!path_key(req, res, "id", m->credential_id)) {
    fw_mutation_free(m);
    return;
  }
  submit(ctx, req, res, fw_mutate_revoke_credential, m);
}

static void list_keys(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  char actor[96];
  const struct fw_world *world = authorize(ctx, req, res, FW_ROLE_ADMIN, actor, sizeof actor);
  struct fw_project_node *project;
  struct fw_env_node *env;
  if (world && find_scope(world, req, res, &project, &env))
    answer_credentials(res, req, world, false, env->env->id);
}

static void rotate_key(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "env", m->env)) {
    fw_mutation_free(m);
    return;
  }
  static const char *const fields[] = {"kind", "expires_in_seconds", NULL};
  struct fw_body body;
  char kind[16];
  /* By default the old keys live one more day, so clients can move over. */
  if (!fw_body_parse(&body, req->body, req->body_len) || !fw_body_only(&body, fields) ||
      !fw_body_string(&body, "kind", true, sizeof kind - 1, kind, sizeof kind, NULL) ||
      !read_expiry(&body, 24LL * 3600 * 1000, &m->expires_in_ms))
    return reject(&body, m, res, req);
  if (!strcmp(kind, "server")) {
    m->kind = FW_CREDENTIAL_SERVER;
  } else if (!strcmp(kind, "client")) {
    m->kind = FW_CREDENTIAL_CLIENT;
  } else {
    fw_body_fail(&body, 422, "invalid_field", "field 'kind' must be server or client");
    return reject(&body, m, res, req);
  }
  submit(ctx, req, res, fw_mutate_rotate_key, m);
}

static void revoke_key(struct fw_http_request *req, struct fw_http_response *res, void *ctx) {
  struct fw_mutation *m = begin_write(ctx, req, res, FW_ROLE_ADMIN);
  if (!m)
    return;
  if (!path_key(req, res, "project", m->project) || !path_key(req, res, "env", m->env) ||
      !path_key(req, res, "id", m->credential_id)) {
    fw_mutation_free(m);
    return;
  }
  submit(ctx, req, res, fw_mutate_revoke_credential, m);
}

/* ---- routes ---- */

int fw_admin_register(struct fw_router *router, struct fw_admin *admin) {
  static const struct {
    enum fw_http_method method;
    const char *pattern;
    fw_http_handler handler;
  } routes[] = {
      {FW_HTTP_POST, "/v1/projects", create_project},
      {FW_HTTP_GET, "/v1/projects", list_projects},
      {FW_HTTP_GET, "/v1/projects/{project}", get_project},
      {FW_HTTP_PATCH, "/v1/projects/{project}", update_project},
      {FW_HTTP_DELETE, "/v1/projects/{project}", delete_project},
      {FW_HTTP_POST, "/v1/projects/{project}/environments", create_environment},
      {FW_HTTP_GET, "/v1/projects/{project}/environments", list_environments},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}", get_environment},
      {FW_HTTP_PATCH, "/v1/projects/{project}/environments/{env}", patch_environment},
      {FW_HTTP_DELETE, "/v1/projects/{project}/environments/{env}", delete_environment},
      {FW_HTTP_POST, "/v1/projects/{project}/flags", create_flag},
      {FW_HTTP_GET, "/v1/projects/{project}/flags", list_flags},
      {FW_HTTP_GET, "/v1/projects/{project}/flags/{key}", get_flag},
      {FW_HTTP_PATCH, "/v1/projects/{project}/flags/{key}", patch_flag},
      {FW_HTTP_DELETE, "/v1/projects/{project}/flags/{key}", delete_flag},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/flags", list_env_flags},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/flags/{key}", get_env_flag},
      {FW_HTTP_PATCH, "/v1/projects/{project}/environments/{env}/flags/{key}", patch_env_flag},
      {FW_HTTP_POST, "/v1/projects/{project}/environments/{env}/flags/{key}/toggle",
       toggle_env_flag},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/configs", list_configs},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/configs/{key}", get_config},
      {FW_HTTP_PUT, "/v1/projects/{project}/environments/{env}/configs/{key}", put_config},
      {FW_HTTP_DELETE, "/v1/projects/{project}/environments/{env}/configs/{key}", delete_config},
      {FW_HTTP_POST, "/v1/projects/{project}/segments", create_segment},
      {FW_HTTP_GET, "/v1/projects/{project}/segments", list_segments},
      {FW_HTTP_GET, "/v1/projects/{project}/segments/{key}", get_segment},
      {FW_HTTP_PATCH, "/v1/projects/{project}/segments/{key}", patch_segment},
      {FW_HTTP_DELETE, "/v1/projects/{project}/segments/{key}", delete_segment},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/segments", list_env_segments},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/segments/{key}", get_env_segment},
      {FW_HTTP_PUT, "/v1/projects/{project}/environments/{env}/segments/{key}", put_env_segment},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/changes", list_changes},
      {FW_HTTP_GET, "/v1/projects/{project}/environments/{env}/keys", list_keys},
      {FW_HTTP_POST, "/v1/projects/{project}/environments/{env}/keys", rotate_key},
      {FW_HTTP_DELETE, "/v1/projects/{project}/environments/{env}/keys/{id}", revoke_key},
      {FW_HTTP_POST, "/v1/tokens", issue_token},
      {FW_HTTP_GET, "/v1/tokens", list_tokens},
      {FW_HTTP_DELETE, "/v1/tokens/{id}", revoke_token},
  };
  for (size_t i = 0; i < FW_ARRAY_LEN(routes); i++) {
    int rc = fw_router_add(router, routes[i].method, routes[i].pattern, routes[i].handler, admin);
    if (rc)
      return rc;
  }
  return FW_OK;
}
