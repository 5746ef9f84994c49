/* The management command line: `flagwire projects|envs|flags|configs <command> ...` talks
 * to a running server's /v1 API. Tables for people by default; --json prints the server's
 * JSON (one document, every page of a list gathered) for scripts.
 *
 * The server is --url or FLAGWIRE_URL (default http://127.0.0.1:8080) and the admin
 * token --token or FLAGWIRE_TOKEN; the flags win over the environment. */
#ifndef FW_CLI_CLI_H
#define FW_CLI_CLI_H

#include <stdbool.h>

/* Exit statuses of every command. */
enum fw_cli_exit {
  FW_CLI_EXIT_OK = 0,
  FW_CLI_EXIT_FAILED = 1,      /* the server answered an error (or the output failed) */
  FW_CLI_EXIT_USAGE = 2,       /* the command line is wrong */
  FW_CLI_EXIT_UNREACHABLE = 3, /* no usable answer from the server */
};

/* Whether `name` is one of the command groups handled here. */
bool fw_cli_is_group(const char *name);

/* Runs a group's command: argv[0] is the group ("flags"), argv[1] the command ("list"),
 * the rest its arguments and options. Writes results to standard output and problems to
 * standard error, and returns an fw_cli_exit status. */
int fw_cli_main(int argc, char **argv);

#endif
