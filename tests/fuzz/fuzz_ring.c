/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared memory of an isolated plugin's rings as its process may leave
 * it (core/plugin/ring.c, the daemon's end): the input is a script of what
 * the process does to the memory, byte by byte (op, then its arguments),
 * between the daemon's reads, writes, waits and frame reads:
 *   0 W8   its write index set to W (any value)
 *   1 N B  N bytes B written at its write index, which then moves past them
 *   2 R8   its read index of the daemon's direction set to R (any value)
 *   3      that read index set to the daemon's write index (all taken)
 *   4 F4   the sleep flags and the futex word of both directions set to F
 *   5 C    the daemon reads up to C bytes
 *   6 N    the daemon writes N bytes
 *   7      the daemon waits (no time) for bytes
 *   8      the daemon reads a frame through the ring (ah_frame_read_tail)
 * The process's end of the socket is closed before the script runs, so
 * that a write without room and a wait end (a write after 1 ms: one such a
 * input). Asserted:
 * a read gives at most what was asked; once the ring says broken it stays
 * broken, and no read, write or wait on it succeeds; a frame read gives a
 * JSON object or a refusal that leaves nothing; under ASan, nothing is
 * written outside the caller's buffer.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "fuzz.h"
#include "ring.h"

static void fail(const char *what)
{
    fuzz_fail("fuzz_ring", what);
}

#define DIR_BYTES AH_RING_DIR_BYTES /* the layout: ring.h */

static uint64_t take64(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int i = 0; i < 8 && *p < end; i++)
        v = v << 8 | *(*p)++;
    return v;
}

#define FRAME_MAX_HERE (64u * 1024)

/* The length the reader's next frame says it has: its first four bytes,
 * those the reader holds first, then the ring's from the daemon's read
 * index (which the daemon publishes); 0 when fewer are there. */
static uint32_t next_len(const ah_frame_reader *rd, unsigned char *up,
                         const unsigned char *up_data)
{
    unsigned char h[4];
    size_t n = 0;
    for (size_t i = rd->start; i < rd->end && n < 4; i++)
        h[n++] = rd->buf[i];
    uint64_t r = atomic_load((_Atomic uint64_t *)(void *)(up + AH_RING_OFF_R));
    uint64_t w = atomic_load((_Atomic uint64_t *)(void *)(up + AH_RING_OFF_W));
    for (uint64_t i = r; i != w && w - r <= AH_RING_CAP && n < 4; i++)
        h[n++] = up_data[i % AH_RING_CAP];
    return n < 4 ? 0 : (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* One memory, the daemon's end of it, the process's view (a mapping of
 * its own) and one socket for every input, made once: a memfd, its seals
 * and mappings per input were most of an execution (the munmap's TLB
 * shootdown). Each input starts from a rewound ring. */
static int g_sock = -1;
static unsigned char *g_mem;
static ah_ring *g_ring;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_ring == NULL) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            fail("socketpair");
        close(sv[1]); /* the process's end: gone */
        g_sock = sv[0];
        int mfd = ah_ring_make();
        if (mfd < 0)
            fail("memfd");
        g_mem = mmap(NULL, 2 * DIR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        g_ring = ah_ring_open(mfd, g_sock, true);
        close(mfd);
        if (g_mem == MAP_FAILED || g_ring == NULL)
            fail("map");
    }
    ah_ring *d = g_ring;
    ah_ring_rewind(d);
    unsigned char *m = g_mem;
    unsigned char *down = m, *up = m + DIR_BYTES;
    _Atomic uint64_t *up_w = (_Atomic uint64_t *)(void *)(up + AH_RING_OFF_W);
    _Atomic uint64_t *down_w = (_Atomic uint64_t *)(void *)(down + AH_RING_OFF_W);
    _Atomic uint64_t *down_r = (_Atomic uint64_t *)(void *)(down + AH_RING_OFF_R);
    unsigned char *up_data = up + AH_RING_HDR;
    ah_frame_reader rd = {0};
    ah_frame_reader_reset(&rd, g_sock);
    if (!ah_frame_reader_ring(&rd, d))
        fail("an empty reader refused the ring");
    unsigned char buf[300];
    int room_waits = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        uint8_t op = *p++ % 9;
        bool was_broken = ah_ring_broken(d);
        switch (op) {
        case 0:
            atomic_store(up_w, take64(&p, end));
            break;
        case 1: {
            size_t n = p < end ? *p++ : 0;
            uint64_t w = atomic_load(up_w);
            for (size_t i = 0; i < n && p < end; i++)
                up_data[(w + i) % AH_RING_CAP] = *p++;
            atomic_store(up_w, w + n);
            break;
        }
        case 2:
            atomic_store(down_r, take64(&p, end));
            break;
        case 3:
            atomic_store(down_r, atomic_load(down_w));
            break;
        case 4: {
            uint32_t f = (uint32_t)take64(&p, end);
            for (int k = 0; k < 2; k++) {
                unsigned char *h = k == 0 ? down : up;
                atomic_store((_Atomic uint32_t *)(void *)(h + AH_RING_OFF_RSLEEP), f);
                atomic_store((_Atomic uint32_t *)(void *)(h + AH_RING_OFF_WSLEEP), f >> 1);
                atomic_store((_Atomic uint32_t *)(void *)(h + AH_RING_OFF_RSEQ), f >> 2);
            }
            break;
        }
        case 5: {
            size_t c = p < end ? *p++ : 0;
            ssize_t n = ah_ring_read(d, buf, c);
            if (n > (ssize_t)c || n < -1)
                fail("a read gave more than asked");
            if (n > 0 && was_broken)
                fail("a broken ring gave bytes");
            break;
        }
        case 6: {
            size_t n = p < end ? *p++ : 0;
            /* A write without room waits 1 ms for the gone process: once
             * an input, not a thousand times. */
            uint64_t used = atomic_load(down_w) - atomic_load(down_r);
            if (used <= AH_RING_CAP && AH_RING_CAP - used < n && room_waits++ > 0)
                break;
            memset(buf, 'x', n);
            int r = ah_ring_write(d, buf, n);
            if (r == 0 && was_broken && n > 0)
                fail("a broken ring took bytes");
            break;
        }
        case 7: {
            int r = ah_ring_wait(d, NULL, 0);
            if (r > 0 && was_broken)
                fail("a broken ring woke its reader");
            break;
        }
        case 8: {
            /* A frame that says it is long makes the reader allocate that
             * much (up to 64 MiB, frame.h): the frame target and
             * check_frame have those; here the ring under a reader. */
            if (next_len(&rd, up, up_data) > FRAME_MAX_HERE)
                break;
            cJSON *msg = NULL;
            unsigned char *tail = NULL;
            size_t tail_len = 0;
            int r = ah_frame_read_tail(&rd, &msg, &tail, &tail_len);
            if (r == 0 && !cJSON_IsObject(msg))
                fail("a frame that is no JSON object");
            if (r != 0 && (msg != NULL || tail != NULL))
                fail("a refused frame left something");
            cJSON_Delete(msg);
            free(tail);
            if (r != 0) { /* the daemon would end the process: a new stream */
                ah_frame_reader_reset(&rd, g_sock);
                (void)ah_frame_reader_ring(&rd, d);
            }
            break;
        }
        }
        if (was_broken && !ah_ring_broken(d))
            fail("a broken ring mended");
    }
    ah_frame_reader_free(&rd);
    return 0;
}
