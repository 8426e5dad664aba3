/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A byte stream each way between the daemon and a plugin host process in
 * shared memory (ring.c), beside their socket pair: on the 2-core VM a
 * write and a read on a socket cost ~6 us a crossing even when nobody
 * sleeps, two rings ~0.4 us (bench/README.md, "2026-12-07 (16:38-)").
 * The socket stays for what memory cannot do: a reader that found nothing
 * sleeps in poll() on it and the writer rings it (one byte) only then; the
 * peer's death is its end of stream.
 *
 * One writer and one reader a direction at a time (the callers' locks).
 * The memory is the peer's to scribble on: every index read from it is
 * checked, bytes are copied out before anyone parses them, and the memory
 * is a sealed memfd, so a peer cannot shrink it under the daemon (SIGBUS).
 */
#ifndef AH_RING_H
#define AH_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "look.h"

/** Bytes a direction holds. */
#define AH_RING_CAP (256u * 1024)

/* The shared memory's layout (ring.c asserts it), for the tests that play a
 * peer scribbling on it: two directions, the creator's (the daemon's
 * writes) first, each a header of AH_RING_HDR bytes and then its
 * AH_RING_CAP bytes. In a header, 64-bit indices at AH_RING_OFF_W (bytes
 * written) and AH_RING_OFF_R (bytes read); 32-bit words at
 * AH_RING_OFF_RSLEEP (the reader sleeps), AH_RING_OFF_WSLEEP (the writer
 * waits for room) and AH_RING_OFF_RSEQ (its futex word). */
#define AH_RING_HDR 256u
#define AH_RING_DIR_BYTES (AH_RING_HDR + AH_RING_CAP)
#define AH_RING_OFF_W 0
#define AH_RING_OFF_R 64
#define AH_RING_OFF_RSLEEP 128
#define AH_RING_OFF_WSLEEP 192
#define AH_RING_OFF_RSEQ 196

typedef struct ah_ring ah_ring;

/** A sealed memfd (close-on-exec) holding both directions, zeroed, for
 *  ah_ring_open on both sides; -1 with errno. */
int ah_ring_make(void);

/** Maps memfd (the caller closes it after) as the `creator`'s end (the
 *  daemon's: it writes the first direction) or the other one, with sock
 *  (the caller's, kept open while the ring lives) for sleeping and the
 *  peer's end. NULL: not a memfd of ah_ring_make's size and seals, or
 *  out of memory. */
ah_ring *ah_ring_open(int memfd, int sock, bool creator);

void ah_ring_close(ah_ring *r);

/** Both directions empty and at their start, their shared words zeroed,
 *  the ring no longer broken or ended, nothing aside: as ah_ring_open
 *  left it, without mapping it again (a munmap's TLB shootdown was most of
 *  a fuzz input's time). Only while nobody else uses the ring: the peer
 *  too must start again from nothing (tests/fuzz/fuzz_ring.c). */
void ah_ring_rewind(ah_ring *r);

/** Appends len bytes; waits for room while the peer lives and takes bytes
 *  within the ring's stall time (ah_ring_set_stall). 0; -1 the peer is
 *  gone, broke the ring (its read index out of range) or stalled it (took
 *  nothing for the stall time while the ring was full: ah_ring_stalled). */
int ah_ring_write(ah_ring *r, const void *buf, size_t len);
/** How long a writer without room waits for the reader to take anything
 *  before giving up (ms; 0, as opened: for as long as the peer lives). One
 *  writer only, before writing. */
void ah_ring_set_stall(ah_ring *r, int ms);
/** Whether a write gave up on a full ring its reader did not empty. */
bool ah_ring_stalled(const ah_ring *r);

/** Takes what has come, up to cap bytes, without waiting. > 0 bytes; 0
 *  none; -1 the peer broke the ring (its write index out of range, or
 *  lower than one it had: bytes seen are never taken back). */
ssize_t ah_ring_read(ah_ring *r, void *buf, size_t cap);

/** Waits until bytes have come: looks first (look, when given: see
 *  look.h), then sleeps on the socket for up to timeout_ms (< 0: no
 *  limit). 1 bytes are there; 0 the time passed; -1 the peer is gone and
 *  nothing is left, or it broke the ring. */
int ah_ring_wait(ah_ring *r, ah_look *look, int timeout_ms);

/** Whether the peer broke the ring (an index it could not have written):
 *  a protocol breach, as against its end. */
bool ah_ring_broken(const ah_ring *r);

/** Bytes the peer wrote to the socket that were not a ring's bell (the
 *  first 64): what a process may write there as it
 *  dies (frame.h's AH_FRAME_OOM). Returns how many were copied to out. */
size_t ah_ring_aside(const ah_ring *r, char *out, size_t cap);

#endif
