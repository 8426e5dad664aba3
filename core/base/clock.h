/* SPDX-License-Identifier: Apache-2.0 */
/* The wall clock in the store's canonical form (clock.c): ISO-8601 UTC with
 * milliseconds, "2026-11-24T03:31:57.123Z", which sorts as text. */
#ifndef AH_CLOCK_H
#define AH_CLOCK_H

/** Now. Never fails (the epoch if the clock cannot be read). */
void ah_now_iso(char out[32]);
/** Now plus ms (negative: in the past). */
void ah_iso_in(long ms, char out[32]);

#include <stdint.h>

/** CLOCK_MONOTONIC in milliseconds and in microseconds: for deadlines and
 *  pauses, never for what is stored. */
int64_t ah_mono_ms(void);
int64_t ah_mono_us(void);

#include <pthread.h>

/** pthread_cond_init of a condition whose timed waits count on
 *  CLOCK_MONOTONIC (deadlines from ah_mono_ms, immune to the wall clock
 *  being set). 0, or pthread's error. */
int ah_cond_init_mono(pthread_cond_t *cv);

#endif
