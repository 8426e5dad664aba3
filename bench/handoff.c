/* SPDX-License-Identifier: Apache-2.0 */
#include "handoff.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

enum { HANDOFFS = 200000 };

/* The line the two threads pass, alone in its cache line. */
static _Alignas(64) atomic_long ball;

/* Waits for ball to reach each value of its parity and moves it on. */
static void *handoff(void *arg)
{
    long parity = (long)(uintptr_t)arg;
    for (long i = parity; i < 2 * HANDOFFS; i += 2) {
        while (atomic_load_explicit(&ball, memory_order_acquire) != i)
            ;
        atomic_store_explicit(&ball, i + 1, memory_order_release);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double ah_bench_handoff_ns(void)
{
    pthread_t a, b;
    atomic_store(&ball, 0);
    double t0 = now_s();
    if (pthread_create(&a, NULL, handoff, (void *)(uintptr_t)0) != 0)
        return -1;
    if (pthread_create(&b, NULL, handoff, (void *)(uintptr_t)1) != 0) {
        pthread_detach(a); /* it spins until the caller exits on the error */
        return -1;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return (now_s() - t0) * 1e9 / HANDOFFS;
}
