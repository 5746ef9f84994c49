#include "cli/cli.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/rawjson.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
/* Items per page asked of the server. Small pages keep walking a page cheap: reaching an
 * array element rescans the array from its start. */
#define PAGE_LIMIT 100
#define MAX_PAGES 10000
/* A gathered list, a table or a line of output. */
#define OUTPUT_MAX (64u * 1024u * 1024u)
/* A request body, standard input included. */
#define INPUT_MAX (16u * 1024u * 1024u)
#define TARGET_MAX 4096
/* Table cells longer than this many characters are cut, ending in "...". */
#define CELL_CHARS 60
/* The longest server message we show. */
#define MESSAGE_CHARS 500
#define MAX_ARGS 4
#define MAX_COLUMNS 8

/* ---- the command table ---- */

/* Options a command accepts beyond the common ones (--url, --token, --json, --help). */
enum {
  OPT_NAME = 1u << 0,
  OPT_DESCRIPTION = 1u << 1,
  OPT_ENV = 1u << 2,
  OPT_TYPE = 1u << 3,
  OPT_VARIANTS = 1u << 4,
  OPT_TAGS = 1u << 5,
  OPT_CLIENT_VISIBLE = 1u << 6,
  OPT_TEXT = 1u << 7,
  OPT_COMMON = 1u << 8
};

struct command;

/* One parsed command line. Strings point into argv. */
struct invocation {
  const struct command *command;
  const char *url, *token, *name, *description, *env, *type, *variants, *tags;
  bool json, help, client_visible, text;
  const char *args[MAX_ARGS];
  size_t arg_count;
  struct fw_cli_url server;
};

struct command {
  const char *group, *name;
  size_t args; /* positional arguments, exactly this many */
  unsigned options;
  const char *synopsis; /* what follows "flagwire <group> <name> ", NULL for nothing */
  const char *summary;
  int (*run)(const struct invocation *inv);
};

struct option_spec {
  const char *name;
  unsigned bit;
  bool takes_value;
  size_t offset; /* of a `const char *` member when takes_value, else of a bool member */
};

static const struct option_spec option_specs[] = {
    {"url", OPT_COMMON, true, offsetof(struct invocation, url)},
    {"token", OPT_COMMON, true, offsetof(struct invocation, token)},
    {"json", OPT_COMMON, false, offsetof(struct invocation, json)},
    {"help", OPT_COMMON, false, offsetof(struct invocation, help)},
    {"name", OPT_NAME, true, offsetof(struct invocation, name)},
    {"description", OPT_DESCRIPTION, true, offsetof(struct invocation, description)},
    {"env", OPT_ENV, true, offsetof(struct invocation, env)},
    {"type", OPT_TYPE, true, offsetof(struct invocation, type)},
    {"variants", OPT_VARIANTS, true, offsetof(struct invocation, variants)},
    {"tags", OPT_TAGS, true, offsetof(struct invocation, tags)},
    {"client-visible", OPT_CLIENT_VISIBLE, false, offsetof(struct invocation, client_visible)},
    {"text", OPT_TEXT, false, offsetof(struct invocation, text)},
};

static int projects_list(const struct invocation *inv);
static int projects_get(const struct invocation *inv);
static int projects_create(const struct invocation *inv);
static int envs_list(const struct invocation *inv);
static int envs_get(const struct invocation *inv);
static int envs_create(const struct invocation *inv);
static int flags_list(const struct invocation *inv);
static int flags_get(const struct invocation *inv);
static int flags_create(const struct invocation *inv);
static int flags_on(const struct invocation *inv);
static int flags_off(const struct invocation *inv);
static int configs_list(const struct invocation *inv);
static int configs_get(const struct invocation *inv);
static int configs_set(const struct invocation *inv);

static const struct command commands[] = {
    {"projects", "list", 0, 0, NULL, "list the projects", projects_list},
    {"projects", "get", 1, 0, "<project>", "show a project", projects_get},
    {"projects", "create", 1, OPT_NAME | OPT_DESCRIPTION, "<key> [--name N] [--description D]",
     "create a project", projects_create},
    {"envs", "list", 1, 0, "<project>", "list a project's environments", envs_list},
    {"envs", "get", 2, 0, "<project> <env>", "show an environment", envs_get},
    {"envs", "create", 2, OPT_NAME, "<project> <key> [--name N]",
     "create an environment and print its server and client keys, which are shown only once",
     envs_create},
    {"flags", "list", 1, OPT_ENV, "<project> [--env E]",
     "list a project's flags; with --env, whether each is on there", flags_list},
    {"flags", "get", 2, OPT_ENV, "<project> <flag> [--env E]",
     "show a flag; with --env, with its state there", flags_get},
    {"flags", "create", 2,
     OPT_TYPE | OPT_VARIANTS | OPT_TAGS | OPT_CLIENT_VISIBLE | OPT_NAME | OPT_DESCRIPTION,
     "<project> <key> [--type boolean|string|number|json]\n"
     "      [--variants JSON] [--tags a,b] [--client-visible] [--name N] [--description D]",
     "create a flag (off in every environment); --variants is a JSON array of\n"
     "      {\"key\":...,\"value\":...}, needed for every type but boolean",
     flags_create},
    {"flags", "on", 3, 0, "<project> <env> <flag>",
     "turn a flag on in an environment (setting, not toggling: safe to retry)", flags_on},
    {"flags", "off", 3, 0, "<project> <env> <flag>",
     "turn a flag off in an environment (setting, not toggling: safe to retry)", flags_off},
    {"configs", "list", 2, 0, "<project> <env>", "list an environment's configs", configs_list},
    {"configs", "get", 3, 0, "<project> <env> <key>", "show a config", configs_get},
    {"configs", "set", 4, OPT_TEXT, "<project> <env> <key> <value> [--text]",
     "set a config to a JSON value, or to text with --text; a value of - is read from\n"
     "      standard input; put -- before a value that starts with -",
     configs_set},
};

bool fw_cli_is_group(const char *name) {
  for (size_t i = 0; i < FW_ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].group, name) == 0)
      return true;
  return false;
}

/* Prints "flagwire <group> <name> <synopsis>" and a line break. */
static void print_synopsis(FILE *out, const struct command *command) {
  fprintf(out, "flagwire %s %s%s%s\n", command->group, command->name, command->synopsis ? " " : "",
          command->synopsis ? command->synopsis : "");
}

static void print_group_help(FILE *out, const char *group) {
  fprintf(out, "Usage: flagwire %s <command> [arguments] [options]\n\nCommands:\n", group);
  for (size_t i = 0; i < FW_ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].group, group) == 0) {
      fputs("  ", out);
      print_synopsis(out, &commands[i]);
      fprintf(out, "      %s\n", commands[i].summary);
    }
  fputs("\nOptions of every command:\n"
        "  --url URL      the server; or FLAGWIRE_URL; default " DEFAULT_URL "\n"
        "  --token TOKEN  an admin token; or FLAGWIRE_TOKEN, which keeps it out of the\n"
        "                 process list\n"
        "  --json         print the server's JSON, one document, instead of a table\n"
        "  --help         print this text\n"
        "\nExit status: 0 done, 1 the server answered an error, 2 a usage error, 3 the server\n"
        "could not be reached.\n",
        out);
}

/* Reports a usage problem with the command's synopsis; returns the usage exit status. */
static int usage_error(const struct command *command, const char *problem, const char *detail) {
  fprintf(stderr, "flagwire: %s%s\n", problem, detail ? detail : "");
  fputs("Usage: ", stderr);
  print_synopsis(stderr, command);
  fprintf(stderr, "(flagwire %s --help lists the commands)\n", command->group);
  return FW_CLI_EXIT_USAGE;
}

/* Reports a failure that is ours, not the server's (memory, a full output). */
static int local_failure(const char *what, int rc) {
  fprintf(stderr, "flagwire: %s: %s\n", what, fw_strerror(rc));
  return FW_CLI_EXIT_FAILED;
}

/* ---- parsing the command line ---- */

static const struct option_spec *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < FW_ARRAY_LEN(option_specs); i++)
    if (strlen(option_specs[i].name) == len && memcmp(option_specs[i].name, name, len) == 0)
      return &option_specs[i];
  return NULL;
}

/* Fills `inv` from the arguments after the command name: options anywhere, as
 * `--name value` or `--name=value`; `--` ends them. A lone `-` and negative numbers are
 * arguments. Returns FW_CLI_EXIT_OK or the usage status (the problem printed). */
static int parse_arguments(struct invocation *inv, int argc, char **argv) {
  const struct command *command = inv->command;
  bool options_done = false;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    bool positional =
        options_done || arg[0] != '-' || arg[1] == '\0' || (arg[1] >= '0' && arg[1] <= '9');
    if (!positional && strcmp(arg, "--") == 0) {
      options_done = true;
      continue;
    }
    if (positional) {
      if (inv->arg_count == MAX_ARGS || inv->arg_count == command->args)
        return usage_error(command, "unexpected argument: ", arg);
      inv->args[inv->arg_count++] = arg;
      continue;
    }
    if (strcmp(arg, "-h") == 0) {
      inv->help = true;
      continue;
    }
    const char *name = arg + 2, *equals = strchr(arg, '=');
    size_t name_len = equals ? (size_t)(equals - name) : strlen(name);
    const struct option_spec *spec = arg[1] == '-' ? find_option(name, name_len) : NULL;
    if (!spec || !(spec->bit & (command->options | OPT_COMMON)))
      return usage_error(command, "unknown option: ", arg);
    char *field = (char *)inv + spec->offset;
    if (!spec->takes_value) {
      if (equals)
        return usage_error(command, "this option takes no value: ", arg);
      *(bool *)field = true;
    } else if (equals) {
      *(const char **)field = equals + 1;
    } else if (i + 1 < argc) {
      *(const char **)field = argv[++i];
    } else {
      return usage_error(command, "this option needs a value: ", arg);
    }
  }
  if (!inv->help && inv->arg_count != command->args)
    return usage_error(command, "missing arguments", NULL);
  return FW_CLI_EXIT_OK;
}

/* Settles the server and token: flags first, then the environment, then the default. */
static int resolve_server(struct invocation *inv) {
  const char *from_env = getenv("FLAGWIRE_URL");
  if (!inv->url)
    inv->url = from_env && *from_env ? from_env : DEFAULT_URL;
  from_env = getenv("FLAGWIRE_TOKEN");
  if (!inv->token && from_env && *from_env)
    inv->token = from_env;
  /* The token goes into a header line: nothing that could end or split it. */
  for (const char *c = inv->token; c && *c; c++)
    if (*c <= 0x20 || *c >= 0x7f)
      return usage_error(inv->command, "the token must be printable ASCII without spaces", NULL);
  char error[256];
  if (fw_cli_url_parse(inv->url, &inv->server, error, sizeof error) != FW_OK)
    return usage_error(inv->command, error, NULL);
  return FW_CLI_EXIT_OK;
}

int fw_cli_main(int argc, char **argv) {
  const char *group = argv[0];
  if (argc < 2) {
    print_group_help(stderr, group);
    return FW_CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    print_group_help(stdout, group);
    return FW_CLI_EXIT_OK;
  }
  struct invocation inv;
  memset(&inv, 0, sizeof inv);
  for (size_t i = 0; i < FW_ARRAY_LEN(commands) && !inv.command; i++)
    if (!strcmp(commands[i].group, group) && !strcmp(commands[i].name, name))
      inv.command = &commands[i];
  if (!inv.command) {
    fprintf(stderr, "flagwire: unknown command '%s %s'\n\n", group, name);
    print_group_help(stderr, group);
    return FW_CLI_EXIT_USAGE;
  }
  int status = parse_arguments(&inv, argc - 2, argv + 2);
  if (status == FW_CLI_EXIT_OK && inv.help) {
    fputs("Usage: ", stdout);
    print_synopsis(stdout, inv.command);
    printf("      %s\n(flagwire %s --help lists the common options)\n", inv.command->summary,
           group);
    return FW_CLI_EXIT_OK;
  }
  if (status == FW_CLI_EXIT_OK)
    status = resolve_server(&inv);
  if (status == FW_CLI_EXIT_OK)
    status = inv.command->run(&inv);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fputs("flagwire: the output could not be written\n", stderr);
    return FW_CLI_EXIT_FAILED;
  }
  return status;
}

/* ---- showing text safely ---- */

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The next character of text[*at..len) as it is shown: runs of whitespace holding a line
 * break or tab fold into one space (so JSON and text stay on one line; such runs never
 * occur inside a JSON string), and control characters, C1 controls and bytes that are
 * not UTF-8 become '?' (so data from the server cannot drive the terminal). Writes the
 * bytes to `unit`, advances *at, and returns their byte count. */
static size_t next_unit(const char *text, size_t len, size_t *at, char unit[4]) {
  const unsigned char *p = (const unsigned char *)text + *at;
  size_t avail = len - *at;
  if (is_json_space((char)p[0])) {
    size_t run = 0;
    bool folds = false;
    while (run < avail && is_json_space((char)p[run]))
      folds |= p[run++] != ' ';
    if (folds) {
      *at += run;
      unit[0] = ' ';
      return 1;
    }
  }
  size_t n = p[0] < 0x80                    ? 1
             : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
             : p[0] >= 0xe0 && p[0] <= 0xef ? 3
             : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                            : 0;
  bool valid = n > 0 && n <= avail;
  for (size_t i = 1; valid && i < n; i++)
    valid = (p[i] & 0xc0) == 0x80;
  bool control = p[0] < 0x20 || p[0] == 0x7f || (p[0] == 0xc2 && n == 2 && p[1] < 0xa0);
  if (!valid || control) {
    *at += valid ? n : 1;
    unit[0] = '?';
    return 1;
  }
  memcpy(unit, p, n);
  *at += n;
  return n;
}

/* Appends `text` to `out` as shown by next_unit, "-" when empty, and at most `max_chars`
 * characters (0: no limit), the last three "..." when cut. */
static int append_shown(struct fw_buf *out, const char *text, size_t len, size_t max_chars) {
  if (len == 0)
    return fw_buf_append_char(out, '-');
  char unit[4];
  size_t total = 0;
  for (size_t at = 0; at < len; total++)
    next_unit(text, len, &at, unit);
  size_t keep = max_chars && total > max_chars ? max_chars - 3 : total;
  int rc = FW_OK;
  size_t at = 0;
  for (size_t shown = 0; !rc && shown < keep; shown++) {
    size_t n = next_unit(text, len, &at, unit);
    rc = fw_buf_append(out, unit, n);
  }
  if (!rc && keep < total)
    rc = fw_buf_append_str(out, "...");
  return rc;
}

/* Appends the text of `value`: a string unescaped, anything else its JSON as written. */
static int append_value_text(struct fw_buf *out, struct fw_rawjson value) {
  if (fw_rawjson_type(value) != FW_RAWJSON_STRING)
    return fw_buf_append(out, value.text, value.len);
  /* Unescaping never lengthens a string: value.len bytes hold it and its NUL. */
  int rc = fw_buf_reserve(out, value.len);
  if (!rc)
    rc = fw_rawjson_string(value, out->data + out->len, value.len);
  if (!rc)
    out->len += strlen(out->data + out->len);
  return rc;
}

/* How a member is shown. */
enum shape {
  SHAPE_PLAIN,        /* a string's text, or the JSON */
  SHAPE_ON_OFF,       /* true: "on", anything else "off" */
  SHAPE_VARIANT_KEYS, /* an array of {"key":...}: the keys, comma-separated */
  SHAPE_VARIANTS,     /* the same as key=value, the value as JSON */
  SHAPE_WORDS         /* an array of strings, comma-separated */
};

/* A column of a list, or (header NULL) a line of a detail view labelled by the member. */
struct column {
  const char *header;
  const char *member;
  enum shape shape;
  size_t max_chars; /* 0: no limit */
};

/* Appends member `member` of `item` in `shape`; nothing when it is absent. */
static int append_member_text(struct fw_buf *out, struct fw_rawjson item, const char *member,
                              enum shape shape) {
  struct fw_rawjson value, element, part;
  if (fw_rawjson_member(item, member, &value) != FW_OK)
    return FW_OK;
  if (shape == SHAPE_ON_OFF)
    return fw_buf_append_str(out, fw_rawjson_type(value) == FW_RAWJSON_TRUE ? "on" : "off");
  if (shape == SHAPE_PLAIN || fw_rawjson_type(value) != FW_RAWJSON_ARRAY)
    return append_value_text(out, value);
  int rc = FW_OK;
  for (size_t i = 0; !rc && fw_rawjson_element(value, i, &element) == FW_OK; i++) {
    if (i > 0)
      rc = fw_buf_append_str(out, shape == SHAPE_VARIANTS ? ", " : ",");
    if (!rc && shape == SHAPE_WORDS)
      rc = append_value_text(out, element);
    if (!rc && shape != SHAPE_WORDS && fw_rawjson_member(element, "key", &part) == FW_OK)
      rc = append_value_text(out, part);
    if (!rc && shape == SHAPE_VARIANTS && fw_rawjson_member(element, "value", &part) == FW_OK) {
      rc = fw_buf_append_char(out, '=');
      if (!rc)
        rc = fw_buf_append(out, part.text, part.len);
    }
  }
  return rc;
}

/* ---- tables ---- */

/* Cells in fixed columns, each as wide as its widest cell. */
struct table {
  size_t columns;
  struct fw_buf cells; /* row by row, every cell followed by a NUL */
  struct fw_buf scratch;
};

static void table_init(struct table *t, size_t columns) {
  t->columns = columns;
  fw_buf_init(&t->cells, OUTPUT_MAX);
  fw_buf_init(&t->scratch, OUTPUT_MAX);
}

static void table_free(struct table *t) {
  fw_buf_free(&t->cells);
  fw_buf_free(&t->scratch);
}

static int table_add(struct table *t, const char *text, size_t len, size_t max_chars) {
  int rc = append_shown(&t->cells, text, len, max_chars);
  return rc ? rc : fw_buf_append_char(&t->cells, '\0');
}

/* Adds the cell of `column` for `item`. */
static int table_add_member(struct table *t, struct fw_rawjson item, const struct column *column) {
  fw_buf_reset(&t->scratch);
  int rc = append_member_text(&t->scratch, item, column->member, column->shape);
  return rc ? rc
            : table_add(t, t->scratch.data ? t->scratch.data : "", t->scratch.len,
                        column->max_chars);
}

/* Characters, not bytes: every byte but a UTF-8 continuation byte starts one. */
static size_t display_width(const char *text) {
  size_t width = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    width += (*p & 0xc0) != 0x80;
  return width;
}

static void table_print(const struct table *t, FILE *out) {
  size_t widths[MAX_COLUMNS] = {0};
  const char *start = t->cells.data, *end = start ? start + t->cells.len : NULL;
  size_t i = 0;
  for (const char *p = start; p && p < end; p += strlen(p) + 1, i++) {
    size_t width = display_width(p);
    if (width > widths[i % t->columns])
      widths[i % t->columns] = width;
  }
  i = 0;
  for (const char *p = start; p && p < end; p += strlen(p) + 1, i++) {
    size_t column = i % t->columns;
    fputs(p, out);
    if (column + 1 == t->columns) {
      fputc('\n', out);
      continue;
    }
    for (size_t pad = display_width(p); pad < widths[column] + 2; pad++)
      fputc(' ', out);
  }
}

/* Prints the members of `doc` named in `fields`, one per line, skipping absent ones. */
static int print_detail(struct fw_rawjson doc, const struct column *fields, size_t count) {
  struct table t;
  table_init(&t, 2);
  int rc = FW_OK;
  struct fw_rawjson value;
  for (size_t i = 0; !rc && i < count; i++) {
    if (fw_rawjson_member(doc, fields[i].member, &value) != FW_OK)
      continue;
    rc = table_add(&t, fields[i].member, strlen(fields[i].member), 0);
    if (!rc)
      rc = table_add_member(&t, doc, &fields[i]);
  }
  if (!rc)
    table_print(&t, stdout);
  table_free(&t);
  return rc ? local_failure("building the output", rc) : FW_CLI_EXIT_OK;
}

/* ---- talking to the server ---- */

/* A successful answer: a 2xx whose body is one JSON document. */
struct answer {
  struct fw_cli_response res;
  struct fw_rawjson doc;
};

/* Prints `flagwire: <status> <code>: <message>` from an error answer, or what there is of
 * the body when it is not one of ours (a proxy's page, say). */
static void print_server_error(int status, const char *body, size_t len) {
  struct fw_rawjson doc, error, code, message;
  bool ours = fw_rawjson_validate(body, len, &doc, NULL, NULL) == FW_OK &&
              fw_rawjson_member(doc, "error", &error) == FW_OK &&
              fw_rawjson_member(error, "code", &code) == FW_OK &&
              fw_rawjson_member(error, "message", &message) == FW_OK;
  struct fw_buf line, text;
  fw_buf_init(&line, 16 * MESSAGE_CHARS);
  fw_buf_init(&text, FW_CLI_RESPONSE_MAX);
  int rc = fw_buf_appendf(&line, "flagwire: %d ", status);
  if (ours) {
    if (!rc)
      rc = append_value_text(&text, code);
    if (!rc)
      rc = append_shown(&line, text.data, text.len, MESSAGE_CHARS);
    if (!rc)
      rc = fw_buf_append_str(&line, ": ");
    fw_buf_reset(&text);
    if (!rc)
      rc = append_value_text(&text, message);
    if (!rc)
      rc = append_shown(&line, text.data, text.len, MESSAGE_CHARS);
  } else {
    if (!rc)
      rc = fw_buf_append_str(&line, "unexpected_answer: ");
    if (!rc)
      rc = append_shown(&line, body, len, MESSAGE_CHARS);
  }
  if (rc)
    fprintf(stderr, "flagwire: the server answered %d\n", status);
  else
    fprintf(stderr, "%s\n", line.data);
  fw_buf_free(&line);
  fw_buf_free(&text);
}

/* Sends one request. Returns FW_CLI_EXIT_OK with a 2xx JSON answer in `out`, or prints
 * why not and returns the exit status. The caller frees out->res in every case. */
static int call(const struct invocation *inv, const char *method, const char *target,
                const char *content_type, const struct fw_buf *body, struct answer *out) {
  struct fw_cli_request req = {
      .method = method,
      .target = target,
      .token = inv->token,
      .content_type = content_type,
      .body = body ? body->data : NULL,
      .body_len = body ? body->len : 0,
  };
  char error[512];
  if (fw_cli_exchange(&inv->server, &req, &out->res, error, sizeof error) != FW_OK) {
    fprintf(stderr, "flagwire: %s: %s\n", inv->url, error);
    return FW_CLI_EXIT_UNREACHABLE;
  }
  const char *text = out->res.body.data ? out->res.body.data : "";
  size_t len = out->res.body.len, offset = 0;
  if (out->res.status < 200 || out->res.status > 299) {
    print_server_error(out->res.status, text, len);
    return FW_CLI_EXIT_FAILED;
  }
  const char *reason = "";
  if (fw_rawjson_validate(text, len, &out->doc, &offset, &reason) != FW_OK) {
    fprintf(stderr, "flagwire: %s: the answer is not JSON (%s at byte %zu); is this flagwire?\n",
            inv->url, reason, offset);
    return FW_CLI_EXIT_UNREACHABLE;
  }
  return FW_CLI_EXIT_OK;
}

/* Prints the answer's JSON as it came, on one line of its own. */
static void print_json(const struct answer *answer) {
  fwrite(answer->doc.text, 1, answer->doc.len, stdout);
  fputc('\n', stdout);
}

/* Appends a percent-encoded path segment or query value: only RFC 3986 unreserved
 * characters pass as they are. */
static int append_encoded(struct fw_buf *out, const char *text) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = FW_OK;
  for (const unsigned char *p = (const unsigned char *)text; !rc && *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      rc = fw_buf_append_char(out, (char)*p);
    } else {
      char escape[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = fw_buf_append(out, escape, 3);
    }
  }
  return rc;
}

/* Builds a request target from `parts` (NULL-terminated): literal text and the user's
 * arguments in turn (literal, argument, literal, ...), the arguments percent-encoded.
 * Returns the usage status when an argument is too long for it. */
static int build_target(const struct invocation *inv, struct fw_buf *target,
                        const char *const *parts) {
  fw_buf_init(target, TARGET_MAX);
  int rc = FW_OK;
  for (size_t i = 0; !rc && parts[i]; i++)
    rc = i % 2 ? append_encoded(target, parts[i]) : fw_buf_append_str(target, parts[i]);
  if (rc == FW_ETOOBIG)
    return usage_error(inv->command, "an argument is too long", NULL);
  return rc ? local_failure("building the request", rc) : FW_CLI_EXIT_OK;
}

/* ---- the shapes of commands ---- */

/* One request whose answer is an object: printed as JSON, or as `fields`. */
static int run_show(const struct invocation *inv, const char *method, const char *const *parts,
                    const char *content_type, const struct fw_buf *body,
                    const struct column *fields, size_t count) {
  struct fw_buf target;
  int status = build_target(inv, &target, parts);
  struct answer answer;
  if (status == FW_CLI_EXIT_OK) {
    status = call(inv, method, target.data, content_type, body, &answer);
    if (status == FW_CLI_EXIT_OK && inv->json)
      print_json(&answer);
    else if (status == FW_CLI_EXIT_OK)
      status = print_detail(answer.doc, fields, count);
    fw_cli_response_free(&answer.res);
  }
  fw_buf_free(&target);
  return status;
}

/* Takes one page of a list: its items go into `items` (JSON) or `table`; *more and
 * `after` say where the next page starts. */
static int take_page(const struct invocation *inv, struct fw_rawjson page, struct fw_buf *items,
                     struct table *table, const struct column *columns, struct fw_buf *after,
                     bool *more) {
  struct fw_rawjson list, next, item;
  if (fw_rawjson_member(page, "items", &list) != FW_OK ||
      fw_rawjson_type(list) != FW_RAWJSON_ARRAY) {
    fprintf(stderr, "flagwire: %s: the answer is not a list; is this flagwire?\n", inv->url);
    return FW_CLI_EXIT_UNREACHABLE;
  }
  int rc = FW_OK;
  if (inv->json) {
    /* The array's contents as they came, between its brackets. */
    const char *first = list.text + 1, *last = list.text + list.len - 1;
    while (first < last && is_json_space(*first))
      first++;
    while (last > first && is_json_space(last[-1]))
      last--;
    if (first < last && items->len > 0)
      rc = fw_buf_append_char(items, ',');
    if (!rc)
      rc = fw_buf_append(items, first, (size_t)(last - first));
  } else {
    for (size_t i = 0; !rc && fw_rawjson_element(list, i, &item) == FW_OK; i++)
      for (size_t c = 0; !rc && c < table->columns; c++)
        rc = table_add_member(table, item, &columns[c]);
  }
  fw_buf_reset(after);
  *more = !rc && fw_rawjson_member(page, "next", &next) == FW_OK &&
          fw_rawjson_type(next) == FW_RAWJSON_STRING;
  if (*more)
    rc = append_value_text(after, next);
  return rc ? local_failure("gathering the list", rc) : FW_CLI_EXIT_OK;
}

/* Fetches every page of the list at `path` and prints it: one JSON document
 * {"items":[...],"next":null} with --json, else a table of `columns`. */
static int run_list(const struct invocation *inv, const char *const *parts,
                    const struct column *columns, size_t count) {
  struct fw_buf path, target, after, items;
  int status = build_target(inv, &path, parts);
  fw_buf_init(&target, TARGET_MAX);
  fw_buf_init(&after, TARGET_MAX);
  fw_buf_init(&items, OUTPUT_MAX);
  struct table table;
  table_init(&table, count);
  int rc = FW_OK;
  for (size_t c = 0; !rc && c < count; c++)
    rc = table_add(&table, columns[c].header, strlen(columns[c].header), 0);
  bool more = true;
  for (int page = 0; !rc && status == FW_CLI_EXIT_OK && more && page < MAX_PAGES; page++) {
    fw_buf_reset(&target);
    rc = fw_buf_appendf(&target, "%s?limit=%d", path.data, PAGE_LIMIT);
    if (!rc && after.len > 0)
      rc = fw_buf_append_str(&target, "&after=");
    if (!rc && after.len > 0)
      rc = append_encoded(&target, after.data);
    if (rc)
      break;
    struct answer answer;
    status = call(inv, "GET", target.data, NULL, NULL, &answer);
    if (status == FW_CLI_EXIT_OK)
      status = take_page(inv, answer.doc, &items, &table, columns, &after, &more);
    fw_cli_response_free(&answer.res);
  }
  if (rc)
    status = local_failure("building the request", rc);
  if (status == FW_CLI_EXIT_OK && more) {
    fprintf(stderr, "flagwire: the list did not end within %d pages\n", MAX_PAGES);
    status = FW_CLI_EXIT_FAILED;
  }
  if (status == FW_CLI_EXIT_OK && inv->json)
    printf("{\"items\":[%s],\"next\":null}\n", items.data ? items.data : "");
  else if (status == FW_CLI_EXIT_OK)
    table_print(&table, stdout);
  table_free(&table);
  fw_buf_free(&items);
  fw_buf_free(&after);
  fw_buf_free(&target);
  fw_buf_free(&path);
  return status;
}

/* Appends `,"name":"value"` to a JSON object being built (no comma after its '{'). */
static int add_string_member(struct fw_buf *body, const char *name, const char *value) {
  int rc = fw_buf_appendf(body, "%s\"%s\":", body->len > 1 ? "," : "", name);
  return rc ? rc : fw_json_append_string(body, value, strlen(value));
}

/* ---- the commands ---- */

static const struct column project_columns[] = {
    {"KEY", "key", SHAPE_PLAIN, 0},
    {"NAME", "name", SHAPE_PLAIN, CELL_CHARS},
    {"DESCRIPTION", "description", SHAPE_PLAIN, CELL_CHARS},
};
static const struct column project_fields[] = {
    {NULL, "key", SHAPE_PLAIN, 0},         {NULL, "name", SHAPE_PLAIN, 0},
    {NULL, "description", SHAPE_PLAIN, 0}, {NULL, "version", SHAPE_PLAIN, 0},
    {NULL, "created_at", SHAPE_PLAIN, 0},  {NULL, "updated_at", SHAPE_PLAIN, 0},
};
static const struct column env_columns[] = {
    {"KEY", "key", SHAPE_PLAIN, 0},
    {"NAME", "name", SHAPE_PLAIN, CELL_CHARS},
    {"REVISION", "revision", SHAPE_PLAIN, 0},
    {"CREATED", "created_at", SHAPE_PLAIN, 0},
};
/* The keys are in the answer to a creation only. */
static const struct column env_fields[] = {
    {NULL, "key", SHAPE_PLAIN, 0},        {NULL, "name", SHAPE_PLAIN, 0},
    {NULL, "project", SHAPE_PLAIN, 0},    {NULL, "revision", SHAPE_PLAIN, 0},
    {NULL, "created_at", SHAPE_PLAIN, 0}, {NULL, "server_key", SHAPE_PLAIN, 0},
    {NULL, "client_key", SHAPE_PLAIN, 0},
};
static const struct column flag_columns[] = {
    {"KEY", "key", SHAPE_PLAIN, 0},
    {"TYPE", "type", SHAPE_PLAIN, 0},
    {"VARIANTS", "variants", SHAPE_VARIANT_KEYS, CELL_CHARS},
    {"TAGS", "tags", SHAPE_WORDS, CELL_CHARS},
};
static const struct column env_flag_columns[] = {
    {"KEY", "key", SHAPE_PLAIN, 0},
    {"TYPE", "type", SHAPE_PLAIN, 0},
    {"ENABLED", "enabled", SHAPE_ON_OFF, 0},
    {"VARIANTS", "variants", SHAPE_VARIANT_KEYS, CELL_CHARS},
    {"TAGS", "tags", SHAPE_WORDS, CELL_CHARS},
};
/* The definition, then (with --env) the state in the environment. */
static const struct column flag_fields[] = {
    {NULL, "key", SHAPE_PLAIN, 0},
    {NULL, "name", SHAPE_PLAIN, 0},
    {NULL, "description", SHAPE_PLAIN, 0},
    {NULL, "type", SHAPE_PLAIN, 0},
    {NULL, "variants", SHAPE_VARIANTS, 0},
    {NULL, "tags", SHAPE_WORDS, 0},
    {NULL, "client_visible", SHAPE_PLAIN, 0},
    {NULL, "version", SHAPE_PLAIN, 0},
    {NULL, "updated_at", SHAPE_PLAIN, 0},
    {NULL, "environment", SHAPE_PLAIN, 0},
    {NULL, "enabled", SHAPE_ON_OFF, 0},
    {NULL, "on_variant", SHAPE_PLAIN, 0},
    {NULL, "off_variant", SHAPE_PLAIN, 0},
    {NULL, "rules", SHAPE_PLAIN, 0},
    {NULL, "rollout", SHAPE_PLAIN, 0},
    {NULL, "state_version", SHAPE_PLAIN, 0},
    {NULL, "revision", SHAPE_PLAIN, 0},
    {NULL, "state_updated_at", SHAPE_PLAIN, 0},
};
static const struct column config_columns[] = {
    {"KEY", "key", SHAPE_PLAIN, 0},
    {"TYPE", "content_type", SHAPE_PLAIN, 0},
    {"VERSION", "version", SHAPE_PLAIN, 0},
    {"VALUE", "value", SHAPE_PLAIN, CELL_CHARS},
};
static const struct column config_fields[] = {
    {NULL, "key", SHAPE_PLAIN, 0},        {NULL, "content_type", SHAPE_PLAIN, 0},
    {NULL, "version", SHAPE_PLAIN, 0},    {NULL, "revision", SHAPE_PLAIN, 0},
    {NULL, "updated_at", SHAPE_PLAIN, 0}, {NULL, "value", SHAPE_PLAIN, 0},
};

static int projects_list(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects", NULL};
  return run_list(inv, parts, project_columns, FW_ARRAY_LEN(project_columns));
}

static int projects_get(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects/", inv->args[0], NULL};
  return run_show(inv, "GET", parts, NULL, NULL, project_fields, FW_ARRAY_LEN(project_fields));
}

static int projects_create(const struct invocation *inv) {
  struct fw_buf body;
  fw_buf_init(&body, INPUT_MAX);
  int rc = fw_buf_append_char(&body, '{');
  if (!rc)
    rc = add_string_member(&body, "key", inv->args[0]);
  if (!rc && inv->name)
    rc = add_string_member(&body, "name", inv->name);
  if (!rc && inv->description)
    rc = add_string_member(&body, "description", inv->description);
  if (!rc)
    rc = fw_buf_append_char(&body, '}');
  const char *parts[] = {"/v1/projects", NULL};
  int status = rc ? local_failure("building the request", rc)
                  : run_show(inv, "POST", parts, "application/json", &body, project_fields,
                             FW_ARRAY_LEN(project_fields));
  fw_buf_free(&body);
  return status;
}

static int envs_list(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments", NULL};
  return run_list(inv, parts, env_columns, FW_ARRAY_LEN(env_columns));
}

static int envs_get(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->args[1], NULL};
  return run_show(inv, "GET", parts, NULL, NULL, env_fields, FW_ARRAY_LEN(env_fields));
}

static int envs_create(const struct invocation *inv) {
  struct fw_buf body;
  fw_buf_init(&body, INPUT_MAX);
  int rc = fw_buf_append_char(&body, '{');
  if (!rc)
    rc = add_string_member(&body, "key", inv->args[1]);
  if (!rc && inv->name)
    rc = add_string_member(&body, "name", inv->name);
  if (!rc)
    rc = fw_buf_append_char(&body, '}');
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments", NULL};
  int status = rc ? local_failure("building the request", rc)
                  : run_show(inv, "POST", parts, "application/json", &body, env_fields,
                             FW_ARRAY_LEN(env_fields));
  if (status == FW_CLI_EXIT_OK && !inv->json)
    fputs("flagwire: the server and client keys are shown only this once: keep them now\n", stderr);
  fw_buf_free(&body);
  return status;
}

static int flags_list(const struct invocation *inv) {
  if (!inv->env) {
    const char *parts[] = {"/v1/projects/", inv->args[0], "/flags", NULL};
    return run_list(inv, parts, flag_columns, FW_ARRAY_LEN(flag_columns));
  }
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->env, "/flags", NULL};
  return run_list(inv, parts, env_flag_columns, FW_ARRAY_LEN(env_flag_columns));
}

static int flags_get(const struct invocation *inv) {
  if (!inv->env) {
    const char *parts[] = {"/v1/projects/", inv->args[0], "/flags/", inv->args[1], NULL};
    return run_show(inv, "GET", parts, NULL, NULL, flag_fields, FW_ARRAY_LEN(flag_fields));
  }
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->env, "/flags/",
                         inv->args[1],    NULL};
  return run_show(inv, "GET", parts, NULL, NULL, flag_fields, FW_ARRAY_LEN(flag_fields));
}

/* Appends the tags "a,b" as a JSON array of strings; empty items are dropped, so ""
 * means no tags. */
static int add_tags_member(struct fw_buf *body, const char *tags) {
  int rc = fw_buf_append_str(body, ",\"tags\":[");
  bool first = true;
  for (const char *p = tags; !rc && *p;) {
    size_t len = strcspn(p, ",");
    if (len > 0) {
      rc = first ? FW_OK : fw_buf_append_char(body, ',');
      if (!rc)
        rc = fw_json_append_string(body, p, len);
      first = false;
    }
    p += len + (p[len] == ',');
  }
  return rc ? rc : fw_buf_append_char(body, ']');
}

static int flags_create(const struct invocation *inv) {
  struct fw_rawjson variants;
  if (inv->variants) {
    size_t offset = 0;
    const char *reason = "";
    if (fw_rawjson_validate(inv->variants, strlen(inv->variants), &variants, &offset, &reason)) {
      char detail[128];
      snprintf(detail, sizeof detail, " (%s at byte %zu)", reason, offset);
      return usage_error(inv->command, "--variants is not JSON", detail);
    }
  }
  struct fw_buf body;
  fw_buf_init(&body, INPUT_MAX);
  int rc = fw_buf_append_char(&body, '{');
  if (!rc)
    rc = add_string_member(&body, "key", inv->args[1]);
  if (!rc && inv->name)
    rc = add_string_member(&body, "name", inv->name);
  if (!rc && inv->description)
    rc = add_string_member(&body, "description", inv->description);
  if (!rc && inv->type)
    rc = add_string_member(&body, "type", inv->type);
  if (!rc && inv->variants)
    rc = fw_buf_append_str(&body, ",\"variants\":");
  if (!rc && inv->variants)
    rc = fw_buf_append(&body, variants.text, variants.len);
  if (!rc && inv->tags)
    rc = add_tags_member(&body, inv->tags);
  if (!rc && inv->client_visible)
    rc = fw_buf_append_str(&body, ",\"client_visible\":true");
  if (!rc)
    rc = fw_buf_append_char(&body, '}');
  const char *parts[] = {"/v1/projects/", inv->args[0], "/flags", NULL};
  int status = rc == FW_ETOOBIG ? usage_error(inv->command, "the flag is too large", NULL)
               : rc             ? local_failure("building the request", rc)
                    : run_show(inv, "POST", parts, "application/json", &body, flag_fields,
                               FW_ARRAY_LEN(flag_fields));
  fw_buf_free(&body);
  return status;
}

/* Prints a one-line account of a write from its answer: `members` (NULL-terminated)
 * after `lead`, as "lead: first (second N, third M)". */
static int print_summary(const char *lead, struct fw_rawjson doc, const char *first,
                         const char *const *members) {
  struct fw_buf text, line;
  fw_buf_init(&text, OUTPUT_MAX);
  fw_buf_init(&line, OUTPUT_MAX);
  int rc = fw_buf_appendf(&text, "%s: %s (", lead, first);
  for (size_t i = 0; !rc && members[i]; i++) {
    rc = fw_buf_appendf(&text, "%s%s ", i ? ", " : "", members[i]);
    if (!rc)
      rc = append_member_text(&text, doc, members[i], SHAPE_PLAIN);
  }
  if (!rc)
    rc = fw_buf_append_char(&text, ')');
  if (!rc)
    rc = append_shown(&line, text.data, text.len, 0);
  if (!rc)
    printf("%s\n", line.data);
  fw_buf_free(&text);
  fw_buf_free(&line);
  return rc ? local_failure("building the output", rc) : FW_CLI_EXIT_OK;
}

/* Sets (never toggles) whether a flag is on: sending the same command twice leaves the
 * flag as the first one did, so a retry cannot undo a kill switch. */
static int set_enabled(const struct invocation *inv, bool enabled) {
  struct fw_buf target, body, lead;
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->args[1], "/flags/",
                         inv->args[2],    NULL};
  int status = build_target(inv, &target, parts);
  fw_buf_init(&body, 32);
  fw_buf_init(&lead, TARGET_MAX);
  int rc = fw_buf_appendf(&body, "{\"enabled\":%s}", enabled ? "true" : "false");
  if (!rc)
    rc = fw_buf_appendf(&lead, "%s in %s/%s", inv->args[2], inv->args[0], inv->args[1]);
  if (rc && status == FW_CLI_EXIT_OK)
    status = local_failure("building the request", rc);
  struct answer answer;
  if (status == FW_CLI_EXIT_OK) {
    status = call(inv, "PATCH", target.data, "application/json", &body, &answer);
    static const char *const members[] = {"state_version", "revision", NULL};
    if (status == FW_CLI_EXIT_OK && inv->json)
      print_json(&answer);
    else if (status == FW_CLI_EXIT_OK)
      status = print_summary(lead.data, answer.doc, enabled ? "on" : "off", members);
    fw_cli_response_free(&answer.res);
  }
  fw_buf_free(&lead);
  fw_buf_free(&body);
  fw_buf_free(&target);
  return status;
}

static int flags_on(const struct invocation *inv) { return set_enabled(inv, true); }
static int flags_off(const struct invocation *inv) { return set_enabled(inv, false); }

static int configs_list(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/",
                         inv->args[1],    "/configs",   NULL};
  return run_list(inv, parts, config_columns, FW_ARRAY_LEN(config_columns));
}

static int configs_get(const struct invocation *inv) {
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->args[1], "/configs/",
                         inv->args[2],    NULL};
  return run_show(inv, "GET", parts, NULL, NULL, config_fields, FW_ARRAY_LEN(config_fields));
}

/* Reads all of standard input into `out` (capped by its limit). */
static int read_stdin(struct fw_buf *out) {
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
    int rc = fw_buf_append(out, chunk, got);
    if (rc)
      return rc;
  }
  return ferror(stdin) ? FW_EIO : FW_OK;
}

/* Builds the body of a config write. Text goes as it is. JSON goes inside an envelope,
 * {"value":...}: sent bare, a value that is itself an object with a "value" member would
 * be taken for an envelope by the server and stored without it. */
static int config_body(const struct invocation *inv, struct fw_buf *body) {
  struct fw_buf input;
  fw_buf_init(&input, INPUT_MAX);
  const char *value = inv->args[3];
  size_t len = strlen(value);
  int rc = FW_OK;
  if (strcmp(value, "-") == 0) {
    rc = read_stdin(&input);
    value = input.data ? input.data : "";
    len = input.len;
  }
  int status = FW_CLI_EXIT_OK;
  struct fw_rawjson json;
  size_t offset = 0;
  const char *reason = "";
  if (rc == FW_ETOOBIG)
    status = usage_error(inv->command, "standard input holds more than 16 MiB", NULL);
  else if (rc)
    status = usage_error(inv->command, "standard input cannot be read", NULL);
  else if (inv->text)
    rc = fw_buf_append(body, value, len);
  else if (fw_rawjson_validate(value, len, &json, &offset, &reason) != FW_OK) {
    char detail[160];
    snprintf(detail, sizeof detail, " (%s at byte %zu); --text stores it as text", reason, offset);
    status = usage_error(inv->command, "the value is not JSON", detail);
  } else {
    rc = fw_buf_append_str(body, "{\"value\":");
    if (!rc)
      rc = fw_buf_append(body, json.text, json.len);
    if (!rc)
      rc = fw_buf_append_char(body, '}');
  }
  if (status == FW_CLI_EXIT_OK && rc == FW_ETOOBIG)
    status = usage_error(inv->command, "the value is larger than 16 MiB", NULL);
  else if (status == FW_CLI_EXIT_OK && rc)
    status = local_failure("building the request", rc);
  fw_buf_free(&input);
  return status;
}

static int configs_set(const struct invocation *inv) {
  struct fw_buf target, body, lead;
  const char *parts[] = {"/v1/projects/", inv->args[0], "/environments/", inv->args[1], "/configs/",
                         inv->args[2],    NULL};
  int status = build_target(inv, &target, parts);
  fw_buf_init(&body, INPUT_MAX + 16);
  fw_buf_init(&lead, TARGET_MAX);
  if (status == FW_CLI_EXIT_OK)
    status = config_body(inv, &body);
  if (status == FW_CLI_EXIT_OK &&
      fw_buf_appendf(&lead, "%s in %s/%s", inv->args[2], inv->args[0], inv->args[1]) != FW_OK)
    status = usage_error(inv->command, "an argument is too long", NULL);
  struct answer answer;
  if (status == FW_CLI_EXIT_OK) {
    const char *type = inv->text ? "text/plain; charset=utf-8" : "application/json";
    status = call(inv, "PUT", target.data, type, &body, &answer);
    static const char *const members[] = {"version", "revision", NULL};
    if (status == FW_CLI_EXIT_OK && inv->json)
      print_json(&answer);
    else if (status == FW_CLI_EXIT_OK)
      status = print_summary(lead.data, answer.doc,
                             answer.res.status == 201 ? "created" : "updated", members);
    fw_cli_response_free(&answer.res);
  }
  fw_buf_free(&lead);
  fw_buf_free(&body);
  fw_buf_free(&target);
  return status;
}
