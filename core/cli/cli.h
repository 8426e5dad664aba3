/* SPDX-License-Identifier: Apache-2.0 */
/* The command line (cli.c). */
#ifndef AH_CLI_H
#define AH_CLI_H


/* --- CLI (cli.c) --------------------------------------------------------- */
int ah_cli_main(int argc, char **argv);

#endif
