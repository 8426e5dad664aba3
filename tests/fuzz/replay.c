/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays corpus files through a fuzz target's LLVMFuzzerTestOneInput with
 * any compiler (no libFuzzer): replay_<name> FILE|DIR... Runs every regular
 * file of each directory (sorted by name); fails when none was found or
 * one could not be read. A crash or a sanitizer report ends the run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return -1;
    }
    /* An exact-size copy, so that ASan sees reads past the input's end. */
    uint8_t *exact = malloc(n > 0 ? n : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    if (n > 0)
        memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    long files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (d == NULL) {
            perror(argv[i]);
            return 1;
        }
        char **names = NULL;
        size_t nn = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char **nnames = realloc(names, (nn + 1) * sizeof *names);
            if (nnames == NULL)
                return 1;
            names = nnames;
            size_t len = strlen(argv[i]) + strlen(de->d_name) + 2;
            names[nn] = malloc(len);
            if (names[nn] == NULL)
                return 1;
            snprintf(names[nn], len, "%s/%s", argv[i], de->d_name);
            nn++;
        }
        closedir(d);
        if (nn > 0)
            qsort(names, nn, sizeof *names, name_cmp);
        int rc = 0;
        for (size_t k = 0; k < nn; k++) {
            if (rc == 0 && stat(names[k], &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(names[k]) != 0)
                    rc = 1;
                else
                    files++;
            }
            free(names[k]);
        }
        free(names);
        if (rc != 0)
            return 1;
    }
    printf("replayed %ld input(s)\n", files);
    if (files == 0) {
        fprintf(stderr, "no corpus input found\n");
        return 1;
    }
    return 0;
}
