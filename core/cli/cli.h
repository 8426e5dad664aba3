/* SPDX-License-Identifier: Apache-2.0 */
/* The command line (cli.c). */
#ifndef AH_CLI_H
#define AH_CLI_H

#include <stdbool.h>


/* --- CLI (cli.c) --------------------------------------------------------- */
int ah_cli_main(int argc, char **argv);
/** Prints {"error":{"code":code,"message":msg}} on stdout: an error under
 *  --json, the one JSON document the command prints. */
void ah_cli_print_error(const char *code, const char *msg);
/** Starts this process again (execv of /proc/self/exe, the same pid and
 *  arguments) with glibc's tcache at 64 blocks a size unless
 *  GLIBC_TUNABLES sets tcache_count already; returns only when it did not
 *  (set already, or the exec failed: the environment as it was). What
 *  `atshub serve` runs with (cli.c says why); processes it spawns (a
 *  plugin's) inherit it. */
void ah_cli_exec_with_tcache(char **argv);

/* --- CLI (cli_webhooks.c) ---------------------------------------------- */

/** `atshub webhook ...` (argv[0] is the subcommand); types from --types.
 *  Returns the exit code. */
int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types);

#endif
