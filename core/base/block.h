/* SPDX-License-Identifier: Apache-2.0 */
/* A thread about to block for long says so (block.c): waiting for a
 * provider's answer, or sleeping before a retry. Whatever scheduled the
 * work the thread runs may then let other work run meanwhile: a bus worker
 * (core/plugin/bus.c) gives its tenant's share of the workers back for
 * that time, so that a slow or failing provider holds neither its
 * tenant's other requests nor a worker's place. A wait names what it waits
 * on (a provider's address), and the scheduler may refuse it: so many of
 * its threads wait on that already that one more would leave too few for
 * everything else (one provider's outage must not take every thread). The
 * scheduler installs its hooks on its own threads; on any other thread the
 * calls do nothing and nothing is refused. Pairs nest (only the outermost
 * pair counts). Not for waits of microseconds: telling costs a lock and
 * may start a thread. */
#ifndef AH_BLOCK_H
#define AH_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

/** What a thread's scheduler does when the thread blocks and when it
 *  goes on; both called on that thread, with arg. begin's `on` is what the
 *  thread waits on (NULL: unnamed, never refused); false refuses the wait,
 *  and no end follows. */
typedef struct ah_block_hooks {
    bool (*begin)(void *arg, const char *on);
    void (*end)(void *arg);
    void *arg;
    /* The deadline (ah_mono_ms's clock) of the work the thread does now:
     * its caller's, past which nobody waits for its result. 0, or NULL:
     * none known. */
    int64_t (*deadline)(void *arg);
} ah_block_hooks;

/** Installs h (borrowed: it must outlive the thread's use of it) for the
 *  calling thread; NULL removes. */
void ah_block_install(const ah_block_hooks *h);
/** The calling thread is about to block for long. */
void ah_block_begin(void);
/** The calling thread is about to block for long waiting on `on` (a
 *  provider's scheme, host and port); false: its scheduler refused (the
 *  thread must not wait: give up what it was about to wait for), and no
 *  ah_block_end follows. Inside another pair, always true. */
bool ah_block_begin_on(const char *on);
/** ... and goes on. Every begin that was not refused is followed by one
 *  end on the same thread. */
void ah_block_end(void);
/** The deadline (ah_mono_ms's clock) of the work the calling thread does,
 *  as its scheduler knows it (its caller's); 0: none known. A wait for
 *  something that only then starts the work is better given up past it. */
int64_t ah_block_deadline_ms(void);

#endif
