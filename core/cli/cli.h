/* SPDX-License-Identifier: Apache-2.0 */
/* The command line (cli.c). */
#ifndef AH_CLI_H
#define AH_CLI_H

#include <stdbool.h>


/* --- CLI (cli.c) --------------------------------------------------------- */
int ah_cli_main(int argc, char **argv);

/* --- CLI (cli_webhooks.c) ---------------------------------------------- */

/** `atshub webhook ...` (argv[0] is the subcommand); types from --types.
 *  Returns the exit code. */
int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types);

#endif
