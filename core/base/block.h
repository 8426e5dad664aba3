/* SPDX-License-Identifier: Apache-2.0 */
/* A thread about to block for long says so (block.c): waiting for a
 * provider's answer, or sleeping before a retry. Whatever scheduled the
 * work the thread runs may then let other work run meanwhile: a bus worker
 * (core/plugin/bus.c) gives its tenant's share of the workers back for
 * that time, so that a slow or failing provider holds neither its
 * tenant's other requests nor a worker's place. The scheduler installs its
 * hooks on its own threads; on any other thread both calls do nothing.
 * Pairs nest (only the outermost pair counts). Not for waits of
 * microseconds: telling costs a lock and may start a thread. */
#ifndef AH_BLOCK_H
#define AH_BLOCK_H

/** What a thread's scheduler does when the thread blocks and when it
 *  goes on; both called on that thread, with arg. */
typedef struct ah_block_hooks {
    void (*begin)(void *arg);
    void (*end)(void *arg);
    void *arg;
} ah_block_hooks;

/** Installs h (borrowed: it must outlive the thread's use of it) for the
 *  calling thread; NULL removes. */
void ah_block_install(const ah_block_hooks *h);
/** The calling thread is about to block for long. */
void ah_block_begin(void);
/** ... and goes on. Every begin is followed by one end on the same thread. */
void ah_block_end(void);

#endif
