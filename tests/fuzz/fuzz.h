/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one entry point every fuzz target defines (libFuzzer's), declared for
 * -Wmissing-prototypes, and helpers the harnesses share.
 */
#ifndef AH_FUZZ_H
#define AH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the harness asserts does not hold: says which and aborts
 * (libFuzzer keeps the input as a crash). */
static inline void fuzz_fail(const char *target, const char *what)
{
    fprintf(stderr, "%s: %s\n", target, what);
    abort();
}

/* The input as a malloc'd NUL-terminated string (it may hold NULs). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits s at its first '\n' (replaced by NUL): returns the rest, or "" when
 * there is none. */
static inline char *fuzz_split(char *s)
{
    char *nl = strchr(s, '\n');
    if (nl == NULL)
        return s + strlen(s);
    *nl = '\0';
    return nl + 1;
}

#endif
