/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "harden.h"

int main(int argc, char **argv)
{
    /* Before anything reads a key: a crash must not write the tenants'
     * secrets to a core file (harden.h). */
    char err[160];
    if (ah_harden_no_dumps(err, sizeof err) != 0) {
        fprintf(stderr, "atshub: %s\n", err);
        return 1;
    }
    bool serve = false;
    for (int i = 1; argv[i] != NULL; i++)
        if (strcmp(argv[i], "serve") == 0)
            serve = true;
    if (serve)
        ah_cli_exec_with_tcache(argv);
    return ah_cli_main(argc, argv);
}
