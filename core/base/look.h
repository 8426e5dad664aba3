/* SPDX-License-Identifier: Apache-2.0 */
/* A look for input before sleeping on it (look.c). Sleeping in poll(),
 * read() or libpq's wait costs a wake-up of an idle CPU, which on a VM is
 * most of a round trip between two processes; looks that keep failing
 * cost the CPU the peer needs, so a reader that finds nothing stops
 * looking. Used by both ends of an isolated plugin's socket pair and by
 * the PostgreSQL engine waiting for a pipeline's results. */
#ifndef AH_LOOK_H
#define AH_LOOK_H

/** One reader's state. Zero-initialised: it first looks at its 64th call. */
typedef struct ah_look {
    int score;      /* the look is worth it while > 0 */
    unsigned waits; /* waits while it was not */
} ah_look;

/** Whether fd has input (poll(2) POLLIN: > 0 yes, 0 no, < 0 error), found
 *  without sleeping: for up to 200 us (yielding the CPU between looks)
 *  when such looks have found input lately, else at once (and every 64th
 *  time, to learn again). One reader at a time per state. */
int ah_look_poll(ah_look *st, int fd);

/** As ah_look_poll, for input that `probe(arg)` sees without a system call
 *  (a word another process writes in shared memory, ring.c): probe's
 *  answer (non-zero ends the look; < 0 is an error, returned as is).
 *  Between probes the CPU pauses; it does not yield (look.c says why). */
int ah_look_for(ah_look *st, int (*probe)(void *), void *arg);

#endif
