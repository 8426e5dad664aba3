/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A count that many threads add to and one thread reads now and then (the
 * replies a benchmark's callbacks count, on the bus's workers, while its
 * sender keeps a window of requests in flight): a cache line per adding
 * thread, so that the adders do not pass one line between the CPUs at every
 * add, nor the reader with them at every request it sends. On the 2-core VM
 * one contended line costs ~225 ns a crossing in its slow mode
 * (handoff.h), the order of a whole routed request.
 */
#ifndef AH_BENCH_TALLY_H
#define AH_BENCH_TALLY_H

#include <stdatomic.h>

#define AH_TALLY_SLOTS 16

typedef struct ah_tally {
    struct {
        _Alignas(64) atomic_long v;
    } slot[AH_TALLY_SLOTS];
} ah_tally;

/* This thread's slot: threads take slots in turn (two may share one). */
static inline int ah_tally_slot(void)
{
    static atomic_int next;
    static _Thread_local int mine = -1;
    if (mine < 0)
        mine = atomic_fetch_add(&next, 1) % AH_TALLY_SLOTS;
    return mine;
}

static inline void ah_tally_add(ah_tally *t, long n)
{
    atomic_fetch_add_explicit(&t->slot[ah_tally_slot()].v, n, memory_order_release);
}

/* The count: exact once the adders are done, a lower bound meanwhile. */
static inline long ah_tally_sum(ah_tally *t)
{
    long s = 0;
    for (int i = 0; i < AH_TALLY_SLOTS; i++)
        s += atomic_load_explicit(&t->slot[i].v, memory_order_acquire);
    return s;
}

#endif
