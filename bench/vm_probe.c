/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the machine gives right now: the speed of one CPU and whether two
 * threads really run at once. On the project's 2-core VM both move with the
 * host's load, by up to 3x, within minutes, and every figure that crosses
 * threads moves with them; taking this before and after a benchmark says
 * which state it ran in (bench/README.md, "The VM's states").
 *
 * One sample: two fixed loops, each in one thread and then in two threads at
 * once: a chain of dependent steps in registers, and a counter in memory
 * loaded and stored at each step. Prints each loop's time a step alone and
 * the ratio of the two threads' time to the single one's: 1.0 when the two
 * threads ran on two CPUs, 2.0 when they shared one. On the VM the counter
 * moved by 3x within minutes while the chain stayed put.
 *
 * A third figure, the hand-off (handoff.h): the ns of a cache line's round
 * trip between two threads, which every message that crosses threads pays
 * (the bus's request and its reply, a lock taken on the other CPU).
 *
 * Usage: vm_probe [SAMPLES] [INTERVAL_MS] (default 1 sample; 1000 ms apart).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "handoff.h"

enum { STEPS = 100000000 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Where each chain's result goes, so that the compiler keeps the loop. */
static volatile uint64_t sink[2];

/* A chain of dependent multiply-adds and shifts in registers: the CPU
 * cannot overlap its steps, and it touches no memory until the end. */
static void *chain(void *arg)
{
    uintptr_t slot = (uintptr_t)arg & 1;
    uint64_t x = (uint64_t)(uintptr_t)arg | 1;
    for (long i = 0; i < STEPS; i++)
        x = (x * 6364136223846793005ULL) ^ (x >> 29);
    sink[slot] = x;
    return NULL;
}

/* A counter in memory (the thread's own stack), loaded and stored at every
 * step: what moved by 3x on the VM while the chain above did not. */
static void *counter(void *arg)
{
    volatile uint64_t x = (uint64_t)(uintptr_t)arg;
    for (long i = 0; i < STEPS; i++)
        x += (uint64_t)i;
    sink[(uintptr_t)arg & 1] = x;
    return NULL;
}

/* fn alone, then two of it at once: *one gets the first's ns a step, and
 * the return value the ratio of the two's time to the one's (-1: no
 * thread). */
static double sample(void *(*fn)(void *), double *one_ns)
{
    double t0 = now_s();
    (void)fn((void *)(uintptr_t)3);
    double one = now_s() - t0;
    pthread_t a, b;
    t0 = now_s();
    if (pthread_create(&a, NULL, fn, (void *)(uintptr_t)1) != 0)
        return -1;
    if (pthread_create(&b, NULL, fn, (void *)(uintptr_t)2) != 0) {
        pthread_join(a, NULL);
        return -1;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    *one_ns = one * 1e9 / STEPS;
    return (now_s() - t0) / one;
}

int main(int argc, char **argv)
{
    long samples = argc > 1 ? atol(argv[1]) : 1;
    long interval_ms = argc > 2 ? atol(argv[2]) : 1000;
    if (samples < 1 || interval_ms < 0) {
        fprintf(stderr, "usage: vm_probe [SAMPLES] [INTERVAL_MS]\n");
        return 2;
    }
    printf("%-8s %12s %10s %12s %10s %12s\n", "sample", "chain ns", "2 / 1", "counter ns",
           "2 / 1", "hand-off ns");
    for (long s = 0; s < samples; s++) {
        double chain_ns = 0, counter_ns = 0;
        double chain_two = sample(chain, &chain_ns);
        double counter_two = sample(counter, &counter_ns);
        double hand = ah_bench_handoff_ns();
        if (chain_two < 0 || counter_two < 0 || hand < 0) {
            fprintf(stderr, "vm_probe: pthread_create failed\n");
            return 1;
        }
        printf("%-8ld %12.2f %10.2f %12.2f %10.2f %12.1f\n", s + 1, chain_ns, chain_two,
               counter_ns, counter_two, hand);
        fflush(stdout);
        if (s + 1 < samples && interval_ms > 0) {
            struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}
