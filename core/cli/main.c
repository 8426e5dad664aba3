/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* glibc keeps at most 7 freed blocks of a size per thread (its tcache);
 * the rest go back to the arena, and the next malloc of that size takes
 * its slow path. A request on the daemon's write path frees far more than
 * 7 blocks of the same few sizes at its end (its cJSON trees, SQLite's
 * statement and journal buffers), and many blocks one thread allocates
 * another frees (the HTTP thread, the bus worker): at 7 per size about
 * 50,000 of the ~600,000 instructions of an ERP create were malloc's and
 * free's slow paths (bench/README.md, "wt-erp4"). 64 takes them to the
 * fast path; more did not count fewer. */
#define TCACHE_TUNABLE "glibc.malloc.tcache_count=64"

/* The tcache's size is read from the environment once, when the process
 * starts (GLIBC_TUNABLES; mallopt has no setting for it): `atshub serve`
 * sets it and starts itself again, the same process (execv keeps the pid,
 * the open files and the arguments). An operator's own tcache_count is
 * kept; if the exec fails, the daemon runs with glibc's default. */
static void serve_with_tcache(char **argv)
{
    bool serve = false;
    for (int i = 1; argv[i] != NULL; i++)
        if (strcmp(argv[i], "serve") == 0)
            serve = true;
    const char *env = getenv("GLIBC_TUNABLES");
    if (!serve || (env != NULL && strstr(env, "glibc.malloc.tcache_count=") != NULL))
        return;
    char *have = env != NULL ? strdup(env) : NULL, *value = NULL;
    if ((env != NULL && have == NULL) ||
        asprintf(&value, "%s%s%s", have != NULL ? have : "", have != NULL && *have ? ":" : "",
                 TCACHE_TUNABLE) < 0) {
        free(have);
        return;
    }
    /* The executable's own path (under valgrind, the program's, not the
     * tool's, which /proc/self/exe itself would start). */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0 && setenv("GLIBC_TUNABLES", value, 1) == 0) {
        self[len] = '\0';
        execv(self, argv);
    }
    free(value);
    /* Not started again: as it was. */
    if (have != NULL)
        setenv("GLIBC_TUNABLES", have, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    free(have);
}

int main(int argc, char **argv)
{
    serve_with_tcache(argv);
    return ah_cli_main(argc, argv);
}
