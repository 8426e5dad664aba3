/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void put_digits(char *at, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        at[i] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SS" of secs into out (20 bytes with the NUL); -1 when
 * the clock is outside the years 0-9999 or gmtime fails. Each thread keeps
 * the last second it formatted: the event and the log row of one request
 * (inside the store's serialised section) then cost a clock read and a
 * copy, not gmtime + strftime + snprintf (~2,600 instructions each). */
static int second_text(time_t secs, char out[20])
{
    static _Thread_local time_t last_secs = (time_t)-1;
    static _Thread_local char last[20];
    if (secs == last_secs && secs != (time_t)-1) {
        memcpy(out, last, 20);
        return 0;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return -1;
    char t[20] = "0000-00-00T00:00:00";
    put_digits(t, tm.tm_year + 1900, 4);
    put_digits(t + 5, tm.tm_mon + 1, 2);
    put_digits(t + 8, tm.tm_mday, 2);
    put_digits(t + 11, tm.tm_hour, 2);
    put_digits(t + 14, tm.tm_min, 2);
    put_digits(t + 17, tm.tm_sec, 2);
    memcpy(last, t, 20);
    last_secs = secs;
    memcpy(out, t, 20);
    return 0;
}

void ah_iso_in(long ms, char out[32])
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    long long total = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms;
    long long msec = total % 1000;
    if (msec < 0) /* before the epoch: the second below, and its ms from it */
        msec += 1000;
    time_t secs = (time_t)((total - msec) / 1000);
    if (second_text(secs, out) != 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    out[19] = '.';
    put_digits(out + 20, (int)msec, 3);
    out[23] = 'Z';
    out[24] = '\0';
}

void ah_now_iso(char out[32])
{
    ah_iso_in(0, out);
}

int64_t ah_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t ah_mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int ah_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}
