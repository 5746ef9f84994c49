/* The command line: `flagwire serve`, `flagwire version`, `flagwire help`, and the
 * management commands `flagwire projects|envs|flags|configs ...` (src/cli). */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "cli/cli.h"
#include "settings.h"

static void usage(FILE *out) {
  fputs("flagwire " FLAGWIRE_VERSION " - real-time feature flags and remote config\n"
        "\n"
        "Usage:\n"
        "  flagwire serve [options]   run the server (flagwire serve --help lists the options)\n"
        "  flagwire projects|envs|flags|configs <command> ...\n"
        "                             manage a running server (flagwire flags --help)\n"
        "  flagwire version           print the version\n"
        "  flagwire help              print this text\n",
        out);
}

static int serve(int argc, char **argv) {
  struct fw_settings settings;
  char error[1200];
  int rc = fw_settings_load(&settings, argc, argv, error, sizeof error);
  if (rc == FW_ENOTFOUND) {
    fputs("Usage: flagwire serve [options]\n\n"
          "Each option may also come from the FLAGWIRE_* variable shown beside it, or from\n"
          "the config file (--config), as 'name = value'. The command line wins over the\n"
          "environment, which wins over the file.\n\n",
          stdout);
    fw_settings_print_help(stdout);
    return 0;
  }
  if (rc) {
    fprintf(stderr, "flagwire: %s\n", error);
    return 2;
  }
  return fw_app_serve(&settings);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *command = argv[1];
  if (strcmp(command, "serve") == 0)
    return serve(argc - 2, argv + 2);
  if (fw_cli_is_group(command))
    return fw_cli_main(argc - 1, argv + 1);
  if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
    puts("flagwire " FLAGWIRE_VERSION);
    return 0;
  }
  if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
      strcmp(command, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "flagwire: unknown command '%s'\n\n", command);
  usage(stderr);
  return 2;
}
