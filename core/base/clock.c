/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"

#include <stdio.h>
#include <time.h>

void ah_iso_in(long ms, char out[32])
{
    struct timespec ts;
    struct tm tm;
    char base[24];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    long long total = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms;
    time_t secs = (time_t)(total / 1000);
    if (gmtime_r(&secs, &tm) == NULL || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, 32, "%.19s.%03dZ", base, (int)(total % 1000));
}

void ah_now_iso(char out[32])
{
    ah_iso_in(0, out);
}
