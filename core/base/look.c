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
#include <sched.h>
#include <time.h>

#define LOOK_NS 200000L
#define LOOK_SCORE_MAX 16
#define LOOK_PROBE 64

int ah_look_poll(ah_look *st, int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (st->score <= 0 && ++st->waits % LOOK_PROBE != 0)
        return 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r;
    do {
        r = poll(&pf, 1, 0);
        if (r == 0)
            sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (r == 0 && (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < LOOK_NS);
    if (r > 0)
        st->score += st->score < LOOK_SCORE_MAX;
    else if (r == 0)
        st->score = st->score > 4 ? st->score - 4 : 0;
    return r;
}
