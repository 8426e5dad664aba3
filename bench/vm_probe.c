/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the machine gives right now: the speed of one CPU and whether two
 * threads really run at once. On the project's 2-core VM both move with the
 * host's load, by up to 3x, within minutes, and every figure that crosses
 * threads moves with them; taking this before and after a benchmark says
 * which state it ran in (bench/README.md, "The VM's states").
 *
 * One sample: a fixed loop of dependent integer steps in one thread, then
 * the same loop in two threads at once. Prints the single thread's time a
 * step and the ratio of the two threads' time to the single one's: 1.0 when
 * the two threads ran on two CPUs, 2.0 when they shared one.
 *
 * Usage: vm_probe [SAMPLES] [INTERVAL_MS] (default 1 sample; 1000 ms apart).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { STEPS = 100000000 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Where each chain's result goes, so that the compiler keeps the loop. */
static volatile uint64_t sink[2];

/* A chain of dependent multiply-adds and shifts: the CPU cannot overlap its
 * steps, and it touches no memory until the end. */
static void *chain(void *arg)
{
    uintptr_t slot = (uintptr_t)arg & 1;
    uint64_t x = (uint64_t)(uintptr_t)arg | 1;
    for (long i = 0; i < STEPS; i++)
        x = (x * 6364136223846793005ULL) ^ (x >> 29);
    sink[slot] = x;
    return NULL;
}

int main(int argc, char **argv)
{
    long samples = argc > 1 ? atol(argv[1]) : 1;
    long interval_ms = argc > 2 ? atol(argv[2]) : 1000;
    if (samples < 1 || interval_ms < 0) {
        fprintf(stderr, "usage: vm_probe [SAMPLES] [INTERVAL_MS]\n");
        return 2;
    }
    printf("%-8s %14s %22s\n", "sample", "ns/step, 1", "2 threads / 1 thread");
    for (long s = 0; s < samples; s++) {
        double t0 = now_s();
        (void)chain((void *)(uintptr_t)s);
        double one = now_s() - t0;
        pthread_t a, b;
        t0 = now_s();
        if (pthread_create(&a, NULL, chain, (void *)(uintptr_t)1) != 0 ||
            pthread_create(&b, NULL, chain, (void *)(uintptr_t)2) != 0) {
            fprintf(stderr, "vm_probe: pthread_create failed\n");
            return 1;
        }
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        double two = now_s() - t0;
        printf("%-8ld %14.2f %22.2f\n", s + 1, one * 1e9 / STEPS, two / one);
        fflush(stdout);
        if (s + 1 < samples && interval_ms > 0) {
            struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}
