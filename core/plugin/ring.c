/* SPDX-License-Identifier: Apache-2.0 */
/* Byte streams in shared memory beside a socket pair (ring.h). */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "the rings' indices are shared with another process: lock-free only");

/* One direction's header, in the shared memory; each word its own cache
 * line (the writer's, the reader's, and the two sleep flags). Indices
 * count bytes since the start and never wrap in practice (2^64). */
typedef struct dir {
    _Atomic uint64_t w; /* bytes written (the writer's) */
    char pad0[56];
    _Atomic uint64_t r; /* bytes read (the reader's) */
    char pad1[56];
    _Atomic uint32_t rsleep; /* the reader sleeps on the socket: ring it */
    char pad2[60];
    _Atomic uint32_t wsleep; /* the writer waits for room on `rseq` */
    _Atomic uint32_t rseq;   /* bumped (and woken) by the reader for it */
    char pad3[56];
} dir;

_Static_assert(sizeof(dir) == AH_RING_HDR && offsetof(dir, w) == AH_RING_OFF_W &&
                   offsetof(dir, r) == AH_RING_OFF_R &&
                   offsetof(dir, rsleep) == AH_RING_OFF_RSLEEP &&
                   offsetof(dir, wsleep) == AH_RING_OFF_WSLEEP &&
                   offsetof(dir, rseq) == AH_RING_OFF_RSEQ,
               "the layout ring.h gives (four cache lines a header)");

#define DIR_BYTES AH_RING_DIR_BYTES
#define MEM_BYTES (2 * DIR_BYTES)
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
/* The byte a writer sends to ring a sleeping reader. */
#define BELL 'b'
/* How long a writer without room sleeps before it looks whether the
 * reader is still there. */
#define ROOM_WAIT_NS 1000000L
/* The most one drain of the socket takes (a peer writing there without
 * pause cannot keep the reader draining). */
#define DRAIN_MAX (64 * 1024)
#define ASIDE_MAX 64

struct ah_ring {
    unsigned char *mem;
    dir *tx, *rx;
    unsigned char *txd, *rxd;
    /* Our own indices: the peer may write anything over their shared
     * copies, which only ever tell it where we are. */
    uint64_t tw, rr;
    /* The highest write index of the peer's seen: it never goes back (a
     * peer moving it back and forth would make a reader that saw bytes
     * find none and wait for ever). */
    uint64_t wseen;
    /* A writer without room gives up after this long without the reader
     * taking anything (ms; 0: never): a peer that stops reading must not
     * hold the writer, and every writer queued behind it, for good. */
    int stall_ms;
    atomic_bool stalled;
    int sock;
    /* Set by the reader or the writer, read by both. */
    atomic_bool gone;   /* the socket's end of stream was seen */
    atomic_bool broken; /* the peer's index was one it could not have */
    size_t naside;
    char aside[ASIDE_MAX];
};

int ah_ring_make(void)
{
    int fd = memfd_create("atshub-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)MEM_BYTES) != 0 || fcntl(fd, F_ADD_SEALS, SEALS) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

ah_ring *ah_ring_open(int memfd, int sock, bool creator)
{
    struct stat st;
    int seals = fcntl(memfd, F_GET_SEALS);
    if (fstat(memfd, &st) != 0 || st.st_size != (off_t)MEM_BYTES || seals < 0 ||
        (seals & SEALS) != SEALS)
        return NULL;
    ah_ring *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    void *m = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (m == MAP_FAILED) {
        free(r);
        return NULL;
    }
    /* Frames carry settings and tokens: not in a core file. */
    (void)madvise(m, MEM_BYTES, MADV_DONTDUMP);
    r->mem = m;
    unsigned char *a = r->mem, *b = r->mem + DIR_BYTES;
    r->tx = (dir *)(void *)(creator ? a : b);
    r->rx = (dir *)(void *)(creator ? b : a);
    r->txd = (unsigned char *)(r->tx + 1);
    r->rxd = (unsigned char *)(r->rx + 1);
    r->sock = sock;
    return r;
}

void ah_ring_close(ah_ring *r)
{
    if (r == NULL)
        return;
    munmap(r->mem, MEM_BYTES);
    free(r);
}

void ah_ring_rewind(ah_ring *r)
{
    memset(r->tx, 0, sizeof *r->tx);
    memset(r->rx, 0, sizeof *r->rx);
    r->tw = r->rr = r->wseen = 0;
    atomic_store(&r->gone, false);
    atomic_store(&r->stalled, false);
    atomic_store(&r->broken, false);
    r->naside = 0;
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *t)
{
    /* Not FUTEX_PRIVATE_FLAG: the word is shared with another process. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, t, NULL, 0);
}

/* The peer's end of the socket is gone (POLLHUP), without waiting. */
static bool peer_gone(ah_ring *r)
{
    struct pollfd pf = {.fd = r->sock, .events = 0};
    if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0)
        r->gone = true;
    return r->gone;
}

/* Waits a little for the reader to take bytes (its index past `seen`).
 * 0 it may have; -1 the peer is gone. */
static int wait_room(ah_ring *r, uint64_t seen)
{
    for (int i = 0; i < 1000; i++) {
        if (atomic_load_explicit(&r->tx->r, memory_order_acquire) != seen)
            return 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    atomic_store(&r->tx->wsleep, 1);
    uint32_t seq = atomic_load(&r->tx->rseq);
    if (atomic_load(&r->tx->r) == seen) {
        struct timespec t = {0, ROOM_WAIT_NS};
        (void)futex(&r->tx->rseq, FUTEX_WAIT, seq, &t);
    }
    atomic_store(&r->tx->wsleep, 0);
    return peer_gone(r) ? -1 : 0;
}

void ah_ring_set_stall(ah_ring *r, int ms)
{
    r->stall_ms = ms;
}

int ah_ring_write(ah_ring *r, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    r->stalled = false; /* this write's, if it stalls */
    int64_t full_since = 0; /* when the reader last left us no room */
    uint64_t full_at = 0;   /* its index then */
    while (len > 0) {
        uint64_t rd = atomic_load_explicit(&r->tx->r, memory_order_acquire);
        uint64_t used = r->tw - rd;
        if (used > AH_RING_CAP)
            r->broken = true; /* the reader's index is not one it could have */
        if (r->broken)
            return -1;
        size_t room = AH_RING_CAP - (size_t)used;
        if (room == 0) {
            int64_t now = ah_mono_ms();
            if (full_since == 0 || rd != full_at) {
                full_since = now;
                full_at = rd;
            } else if (r->stall_ms > 0 && now - full_since >= r->stall_ms) {
                r->stalled = true;
                return -1;
            }
            if (wait_room(r, rd) != 0)
                return -1;
            continue;
        }
        size_t n = len < room ? len : room;
        size_t at = (size_t)(r->tw % AH_RING_CAP);
        size_t first = n < AH_RING_CAP - at ? n : AH_RING_CAP - at;
        memcpy(r->txd + at, p, first);
        memcpy(r->txd, p + first, n - first);
        r->tw += n;
        p += n;
        len -= n;
        /* Published, then the flag read (both sequentially consistent,
         * as the reader's flag store and index load are): either it sees
         * these bytes before it sleeps, or this sees it asleep. */
        atomic_store(&r->tx->w, r->tw);
        if (atomic_load(&r->tx->rsleep) != 0 && atomic_exchange(&r->tx->rsleep, 0) != 0) {
            char b = BELL;
            /* A full socket holds bells enough; a gone peer is found by
             * the next wait. */
            (void)send(r->sock, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    return 0;
}

/* Bytes there to read: > 0, 0, or -1 when the writer's index is not one
 * it could have. */
static int64_t avail(ah_ring *r)
{
    uint64_t w = atomic_load_explicit(&r->rx->w, memory_order_acquire);
    uint64_t a = w - r->rr;
    if (a > AH_RING_CAP || w < r->wseen)
        r->broken = true;
    else
        r->wseen = w;
    return r->broken ? -1 : (int64_t)a;
}

ssize_t ah_ring_read(ah_ring *r, void *buf, size_t cap)
{
    int64_t a = avail(r);
    if (a <= 0)
        return (ssize_t)a;
    size_t n = (size_t)a < cap ? (size_t)a : cap;
    size_t at = (size_t)(r->rr % AH_RING_CAP);
    size_t first = n < AH_RING_CAP - at ? n : AH_RING_CAP - at;
    unsigned char *o = buf;
    memcpy(o, r->rxd + at, first);
    memcpy(o + first, r->rxd, n - first);
    r->rr += n;
    atomic_store(&r->rx->r, r->rr);
    if (atomic_load(&r->rx->wsleep) != 0 && atomic_exchange(&r->rx->wsleep, 0) != 0) {
        atomic_fetch_add(&r->rx->rseq, 1);
        (void)futex(&r->rx->rseq, FUTEX_WAKE, 1, NULL);
    }
    return (ssize_t)n;
}

static int probe(void *arg)
{
    int64_t a = avail(arg);
    return a < 0 ? -1 : a > 0;
}

/* Takes what the socket holds: bells, anything else noted aside, its end
 * of stream (gone). */
static void drain(ah_ring *r)
{
    char b[512];
    size_t took = 0;
    while (took < DRAIN_MAX) {
        ssize_t n = recv(r->sock, b, sizeof b, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            r->gone = true;
        if (n <= 0)
            return;
        took += (size_t)n;
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != BELL && r->naside < ASIDE_MAX)
                r->aside[r->naside++] = b[i];
    }
}

int ah_ring_wait(ah_ring *r, ah_look *look, int timeout_ms)
{
    int a = probe(r);
    if (a != 0)
        return a;
    if (look != NULL && (a = ah_look_for(look, probe, r)) != 0)
        return a;
    int64_t until = timeout_ms >= 0 ? ah_mono_ms() + timeout_ms : 0;
    for (;;) {
        if (r->gone)
            return -1;
        /* Asleep, then one more look (see ah_ring_write). */
        atomic_store(&r->rx->rsleep, 1);
        a = probe(r);
        if (a != 0) {
            atomic_store(&r->rx->rsleep, 0);
            return a;
        }
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = until - ah_mono_ms();
            left = l <= 0 ? 0 : l > INT_MAX ? INT_MAX : (int)l;
        }
        struct pollfd pf = {.fd = r->sock, .events = POLLIN};
        int pr = poll(&pf, 1, left);
        atomic_store(&r->rx->rsleep, 0);
        if (pr < 0 && errno != EINTR)
            return -1;
        if (pr > 0)
            drain(r);
        a = probe(r);
        if (a != 0)
            return a;
        if (r->gone)
            return -1;
        if (pr == 0 && left == 0)
            return 0;
        if (timeout_ms >= 0 && ah_mono_ms() >= until)
            return 0;
    }
}

bool ah_ring_broken(const ah_ring *r)
{
    return r->broken;
}

bool ah_ring_stalled(const ah_ring *r)
{
    return r->stalled;
}

size_t ah_ring_aside(const ah_ring *r, char *out, size_t cap)
{
    size_t n = r->naside < cap ? r->naside : cap;
    memcpy(out, r->aside, n);
    return n;
}
