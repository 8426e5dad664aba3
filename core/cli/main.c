/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int main(int argc, char **argv)
{
    bool serve = false;
    for (int i = 1; argv[i] != NULL; i++)
        if (strcmp(argv[i], "serve") == 0)
            serve = true;
    if (serve)
        ah_cli_exec_with_tcache(argv);
    return ah_cli_main(argc, argv);
}
