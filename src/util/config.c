#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_LINE_MAX 4096

static void say(char *error, size_t error_len, const char *fmt, ...) FW_PRINTF(3, 4);
static void say(char *error, size_t error_len, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, error_len, fmt, args);
  va_end(args);
}

static void env_name(const char *option, char *out, size_t out_len) {
  size_t n = (size_t)snprintf(out, out_len, "FLAGWIRE_");
  for (const char *p = option; *p && n + 1 < out_len; p++)
    out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  out[n] = '\0';
}

/* Parses an unsigned decimal number and an optional unit suffix; returns the suffix. */
static int parse_number(const char *text, uint64_t *value, const char **suffix) {
  if (!isdigit((unsigned char)*text))
    return FW_EINVAL;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno)
    return FW_EINVAL;
  *value = v;
  *suffix = end;
  return FW_OK;
}

static int scale(uint64_t value, uint64_t unit, uint64_t *out) {
  if (unit && value > UINT64_MAX / unit)
    return FW_EINVAL;
  *out = value * unit;
  return FW_OK;
}

static int parse_size(const char *text, uint64_t *out) {
  uint64_t v;
  const char *suffix;
  if (parse_number(text, &v, &suffix))
    return FW_EINVAL;
  if (!*suffix)
    return scale(v, 1, out);
  if (suffix[1])
    return FW_EINVAL;
  switch (tolower((unsigned char)*suffix)) {
  case 'k':
    return scale(v, 1024, out);
  case 'm':
    return scale(v, 1024 * 1024, out);
  case 'g':
    return scale(v, 1024 * 1024 * 1024, out);
  default:
    return FW_EINVAL;
  }
}

static int parse_duration(const char *text, uint64_t *out) {
  uint64_t v;
  const char *suffix;
  if (parse_number(text, &v, &suffix))
    return FW_EINVAL;
  if (!*suffix)
    return v == 0 ? scale(v, 1, out) : FW_EINVAL;
  if (strcmp(suffix, "ms") == 0)
    return scale(v, 1, out);
  if (strcmp(suffix, "s") == 0)
    return scale(v, 1000, out);
  if (strcmp(suffix, "m") == 0)
    return scale(v, 60 * 1000, out);
  if (strcmp(suffix, "h") == 0)
    return scale(v, 60 * 60 * 1000, out);
  return FW_EINVAL;
}

static void describe_choices(const struct fw_option *opt, char *out, size_t out_len) {
  size_t n = 0;
  out[0] = '\0';
  for (const char *const *c = opt->choices; *c && n < out_len; c++)
    n += (size_t)snprintf(out + n, out_len - n, "%s%s", c == opt->choices ? "" : ", ", *c);
}

/* Stores `text` into the option's field, or explains in `error` why it cannot. */
static int apply(const struct fw_option *opt, void *settings, const char *text, const char *source,
                 char *error, size_t error_len) {
  char *field = (char *)settings + opt->offset;
  uint64_t value = 0;
  int rc = FW_OK;
  switch (opt->type) {
  case FW_OPT_STRING:
    if (strlen(text) >= FW_OPT_STRING_MAX) {
      say(error, error_len, "option --%s (from %s): value is longer than %d bytes", opt->name,
          source, FW_OPT_STRING_MAX - 1);
      return FW_EINVAL;
    }
    memcpy(field, text, strlen(text) + 1);
    return FW_OK;
  case FW_OPT_CHOICE:
    for (int i = 0; opt->choices[i]; i++) {
      if (strcmp(opt->choices[i], text) == 0) {
        memcpy(field, &i, sizeof i);
        return FW_OK;
      }
    }
    char listed[256];
    describe_choices(opt, listed, sizeof listed);
    say(error, error_len, "option --%s (from %s): '%s' is not one of: %s", opt->name, source, text,
        listed);
    return FW_EINVAL;
  case FW_OPT_UINT:
    rc = parse_size(text, &value);
    if (!rc && strpbrk(text, "kKmMgG"))
      rc = FW_EINVAL;
    if (rc) {
      say(error, error_len, "option --%s (from %s): '%s' is not a whole number", opt->name, source,
          text);
      return rc;
    }
    break;
  case FW_OPT_SIZE:
    if (parse_size(text, &value)) {
      say(error, error_len, "option --%s (from %s): '%s' is not a size (examples: 4096, 16k, 1m)",
          opt->name, source, text);
      return FW_EINVAL;
    }
    break;
  case FW_OPT_DURATION:
    if (parse_duration(text, &value)) {
      say(error, error_len,
          "option --%s (from %s): '%s' is not a duration (examples: 250ms, 10s, 2m, 1h)", opt->name,
          source, text);
      return FW_EINVAL;
    }
    break;
  }
  if (value < opt->min || value > opt->max) {
    say(error, error_len,
        "option --%s (from %s): '%s' is out of range (%" PRIu64 " to %" PRIu64 "%s)", opt->name,
        source, text, opt->min, opt->max, opt->type == FW_OPT_DURATION ? " ms" : "");
    return FW_EINVAL;
  }
  memcpy(field, &value, sizeof value);
  return FW_OK;
}

static const struct fw_option *find(const struct fw_option *options, size_t count, const char *name,
                                    size_t name_len) {
  for (size_t i = 0; i < count; i++)
    if (strlen(options[i].name) == name_len && memcmp(options[i].name, name, name_len) == 0)
      return &options[i];
  return NULL;
}

static char *trim(char *text) {
  while (isspace((unsigned char)*text))
    text++;
  char *end = text + strlen(text);
  while (end > text && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return text;
}

static int load_file(const struct fw_option *options, size_t count, void *settings,
                     const char *path, char *error, size_t error_len) {
  FILE *file = fopen(path, "r");
  if (!file) {
    say(error, error_len, "option --config: cannot open '%s': %s", path, strerror(errno));
    return FW_EINVAL;
  }
  char line[CONFIG_LINE_MAX];
  int rc = FW_OK;
  for (unsigned number = 1; !rc && fgets(line, sizeof line, file); number++) {
    if (!strchr(line, '\n') && !feof(file)) {
      say(error, error_len, "config file %s:%u: line is longer than %d bytes", path, number,
          CONFIG_LINE_MAX - 2);
      rc = FW_EINVAL;
      break;
    }
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char *content = trim(line);
    if (!*content)
      continue;
    char *eq = strchr(content, '=');
    if (!eq) {
      say(error, error_len, "config file %s:%u: expected 'name = value'", path, number);
      rc = FW_EINVAL;
      break;
    }
    *eq = '\0';
    char *name = trim(content);
    char *value = trim(eq + 1);
    const struct fw_option *opt = find(options, count, name, strlen(name));
    if (!opt || strcmp(name, "config") == 0) {
      say(error, error_len, "config file %s:%u: unknown option '%s'", path, number, name);
      rc = FW_EINVAL;
      break;
    }
    char source[FW_OPT_STRING_MAX + 32];
    snprintf(source, sizeof source, "%s:%u", path, number);
    rc = apply(opt, settings, value, source, error, error_len);
  }
  fclose(file);
  return rc;
}

/* Splits "--name=value" or "--name value"; advances *index past what it used. */
static int next_flag(const struct fw_option *options, size_t count, int argc, char **argv,
                     int *index, const struct fw_option **opt, const char **value, char *error,
                     size_t error_len) {
  const char *arg = argv[*index];
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
    return FW_ENOTFOUND;
  if (strncmp(arg, "--", 2) != 0) {
    say(error, error_len, "unexpected argument '%s' (options start with --)", arg);
    return FW_EINVAL;
  }
  const char *name = arg + 2;
  const char *eq = strchr(name, '=');
  size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
  *opt = find(options, count, name, name_len);
  if (!*opt) {
    say(error, error_len, "unknown option '--%.*s' (see --help)", (int)name_len, name);
    return FW_EINVAL;
  }
  if (eq) {
    *value = eq + 1;
  } else if (*index + 1 < argc) {
    *value = argv[++*index];
  } else {
    say(error, error_len, "option --%s needs a value", (*opt)->name);
    return FW_EINVAL;
  }
  return FW_OK;
}

int fw_config_load(const struct fw_option *options, size_t count, void *settings, int argc,
                   char **argv, const char *(*environ_lookup)(const char *), char *error,
                   size_t error_len) {
  int rc;
  for (size_t i = 0; i < count; i++) {
    rc = apply(&options[i], settings, options[i].default_text, "the default", error, error_len);
    if (rc)
      return rc;
  }

  /* The file comes first, so find where it is before anything else is applied. */
  const char *config_path = environ_lookup("FLAGWIRE_CONFIG");
  for (int i = 0; i < argc; i++) {
    const struct fw_option *opt;
    const char *value;
    rc = next_flag(options, count, argc, argv, &i, &opt, &value, error, error_len);
    if (rc)
      return rc;
    if (strcmp(opt->name, "config") == 0)
      config_path = value;
  }
  if (config_path && *config_path) {
    rc = load_file(options, count, settings, config_path, error, error_len);
    if (rc)
      return rc;
  }

  for (size_t i = 0; i < count; i++) {
    char variable[128];
    env_name(options[i].name, variable, sizeof variable);
    const char *value = environ_lookup(variable);
    if (value) {
      rc = apply(&options[i], settings, value, variable, error, error_len);
      if (rc)
        return rc;
    }
  }

  for (int i = 0; i < argc; i++) {
    const struct fw_option *opt;
    const char *value;
    rc = next_flag(options, count, argc, argv, &i, &opt, &value, error, error_len);
    if (!rc)
      rc = apply(opt, settings, value, "the command line", error, error_len);
    if (rc)
      return rc;
  }
  return FW_OK;
}

void fw_config_print_help(FILE *out, const struct fw_option *options, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const struct fw_option *opt = &options[i];
    char variable[128];
    env_name(opt->name, variable, sizeof variable);
    fprintf(out, "  --%s  (%s)\n      %s\n", opt->name, variable, opt->help);
    if (opt->type == FW_OPT_CHOICE) {
      char listed[256];
      describe_choices(opt, listed, sizeof listed);
      fprintf(out, "      One of: %s.", listed);
    } else {
      fputs("     ", out);
    }
    fprintf(out, " Default: %s\n", *opt->default_text ? opt->default_text : "(none)");
  }
}
