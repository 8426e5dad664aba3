/* SPDX-License-Identifier: Apache-2.0 */
/* The wall clock in the store's canonical form (clock.c): ISO-8601 UTC with
 * milliseconds, "2026-11-24T03:31:57.123Z", which sorts as text. */
#ifndef AH_CLOCK_H
#define AH_CLOCK_H

/** Now. Never fails (the epoch if the clock cannot be read). */
void ah_now_iso(char out[32]);
/** Now plus ms (negative: in the past). */
void ah_iso_in(long ms, char out[32]);

#endif
