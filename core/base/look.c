/* SPDX-License-Identifier: Apache-2.0 */
/* The look before sleeping (look.h). Measured on the 2-core VM
 * (bench/README.md, "A look before sleeping"): an isolated call's round
 * trip, 47 us at p50 when both sides slept in poll() and read(), 20 us
 * with the daemon's side looking first, ~10 us with both; an isolated ERP
 * create, whose answers come 20-200 us apart under load, +35-40% with a
 * window of 200 us against 20. Between two looks the thread yields its
 * CPU (sched_yield), so that on a busy machine the process it waits for
 * runs rather than waits for a looker: without it a 100 us window cut
 * synchronous bus calls to an isolated plugin by a third. Adaptive, so
 * that looks that keep failing do not cost the CPU the other process
 * needs: a look that ends with input makes the next more likely (+1, at
 * most LOOK_SCORE_MAX), one that does not, less (-4); at 0 the reader
 * sleeps at once, and looks again every LOOK_PROBE waits. */
#include "look.h"

#include <poll.h>
#include <stdbool.h>
#include <sched.h>
#include <time.h>

#define LOOK_NS 200000L
#define LOOK_SCORE_MAX 16
#define LOOK_PROBE 64

/* The look's common part: probes until one finds input, errs, or the
 * window passes; `yield_every` probes a sched_yield (0: none). */
static int look(ah_look *st, int (*probe)(void *), void *arg, unsigned yield_every)
{
    if (st->score <= 0 && ++st->waits % LOOK_PROBE != 0)
        return 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r;
    unsigned n = 0;
    for (;;) {
        r = probe(arg);
        if (r != 0)
            break;
        n++;
        bool yield = yield_every > 0 && n % yield_every == 0;
        if (yield)
            sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else
            __builtin_ia32_pause();
#endif
        if (!yield && n % 16 != 0)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) >= LOOK_NS)
            break;
    }
    if (r > 0)
        st->score += st->score < LOOK_SCORE_MAX;
    else if (r == 0)
        st->score = st->score > 4 ? st->score - 4 : 0;
    return r;
}

static int poll_probe(void *arg)
{
    struct pollfd pf = {.fd = *(const int *)arg, .events = POLLIN};
    return poll(&pf, 1, 0);
}

int ah_look_poll(ah_look *st, int fd)
{
    /* A poll is a system call: yield after each that finds nothing. */
    return look(st, poll_probe, &fd, 1);
}

int ah_look_for(ah_look *st, int (*probe)(void *), void *arg)
{
    /* A probe of memory costs a cache line, and a yield a system call that
     * on a busy machine is also a switch to another thread: measured with
     * an isolated plugin (bench/README.md, "2026-12-07 (16:38-)"), no
     * yields in the window did best (ERP creates +12% against a yield
     * every 64 probes, an isolated call's p50 6.8 us against 9.5). A look
     * that keeps failing (the peer waits for this CPU) stops by its score
     * as before. */
    return look(st, probe, arg, 0);
}
