/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider times and cursors: ah_iso_normalize (core/store) and
 * ah_sync_time_cmp / ah_sync_time_minus_hours (core/engine/sync.c). The
 * input is split at its first newline into two times a and b. Checks:
 * cmp(a, a) == 0 and cmp(a, b) == -cmp(b, a) in sign when both parse; a
 * normalized time is NUL-terminated within its 32 bytes.
 */
#include <stdio.h>

#include "fuzz.h"
#include "store.h"
#include "sync.h"

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = fuzz_strndup(data, size);
    char *b = fuzz_split(a);
    char out[32];
    if (ah_iso_normalize(a, out) == 0 && memchr(out, '\0', sizeof out) == NULL)
        abort();
    if (ah_iso_normalize(b, out) == 0 && memchr(out, '\0', sizeof out) == NULL)
        abort();
    int c1 = 0, c2 = 0, c0 = 1;
    int r1 = ah_sync_time_cmp(a, b, &c1);
    int r2 = ah_sync_time_cmp(b, a, &c2);
    if (r1 == 0 && r2 == 0 && sign(c1) != -sign(c2)) {
        fprintf(stderr, "time_cmp not antisymmetric: %d %d\n", c1, c2);
        abort();
    }
    if (ah_sync_time_cmp(a, a, &c0) == 0 && c0 != 0) {
        fprintf(stderr, "time_cmp(a, a) = %d\n", c0);
        abort();
    }
    char minus[64];
    unsigned hours = size > 0 ? data[0] : 0;
    if (ah_sync_time_minus_hours(a, hours, minus, sizeof minus) == 0) {
        int c = 0;
        if (ah_sync_time_cmp(minus, a, &c) != 0 || (hours > 0 && c >= 0) ||
            (hours == 0 && c != 0)) {
            fprintf(stderr, "minus_hours(%s, %u) = %s (cmp %d)\n", a, hours, minus, c);
            abort();
        }
    }
    char small[8];
    (void)ah_sync_time_minus_hours(a, 2, small, sizeof small);
    free(a);
    return 0;
}
