/* SPDX-License-Identifier: Apache-2.0 */
/* The rings between the daemon and a plugin process (core/plugin/ring.c):
 * both ends mapped here, on the two ends of a socket pair. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring.h"

typedef struct pair {
    int sv[2];
    int mfd;
    ah_ring *d; /* the daemon's end (creator) */
    ah_ring *c; /* the plugin process's */
} pair;

static void pair_open(pair *p)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv), 0);
    p->mfd = ah_ring_make();
    ck_assert_int_ge(p->mfd, 0);
    p->d = ah_ring_open(p->mfd, p->sv[0], true);
    p->c = ah_ring_open(p->mfd, p->sv[1], false);
    ck_assert_ptr_nonnull(p->d);
    ck_assert_ptr_nonnull(p->c);
}

static void pair_close(pair *p)
{
    ah_ring_close(p->d);
    ah_ring_close(p->c);
    close(p->mfd);
    if (p->sv[0] >= 0)
        close(p->sv[0]);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
}

/* Byte i of a stream: a pattern that a lost, repeated or reordered chunk
 * breaks. */
static unsigned char pat(uint64_t i)
{
    return (unsigned char)(i * 131 + (i >> 9));
}

typedef struct stream {
    ah_ring *r;
    size_t total;
    size_t chunk;
    int rc;
} stream;

static void *writer(void *arg)
{
    stream *s = arg;
    unsigned char *b = malloc(s->chunk);
    for (size_t at = 0; at < s->total && s->rc == 0;) {
        size_t n = s->total - at < s->chunk ? s->total - at : s->chunk;
        for (size_t i = 0; i < n; i++)
            b[i] = pat(at + i);
        s->rc = ah_ring_write(s->r, b, n);
        at += n;
    }
    free(b);
    return NULL;
}

/* Reads `total` bytes, sleeping when none are there; checks each. */
static void read_stream(ah_ring *r, size_t total)
{
    unsigned char b[7000]; /* not a divisor of the ring's size */
    ah_look look = {0};
    for (size_t at = 0; at < total;) {
        ssize_t n = ah_ring_read(r, b, sizeof b);
        ck_assert_int_ge(n, 0);
        if (n == 0) {
            ck_assert_int_eq(ah_ring_wait(r, &look, -1), 1);
            continue;
        }
        /* One assertion a chunk: Check's per byte cost seconds under
         * the sanitizers. */
        ssize_t bad = -1;
        for (ssize_t i = 0; i < n && bad < 0; i++)
            if (b[i] != pat(at + (size_t)i))
                bad = i;
        ck_assert_msg(bad < 0, "byte %zu of the stream", at + (size_t)bad);
        at += (size_t)n;
    }
}

/* Reads `total` zero bytes, sleeping when none are there. */
static void read_stream_zeros(ah_ring *r, size_t total)
{
    unsigned char b[7000];
    for (size_t at = 0; at < total;) {
        ssize_t n = ah_ring_read(r, b, sizeof b);
        ck_assert_int_ge(n, 0);
        if (n == 0) {
            ck_assert_int_eq(ah_ring_wait(r, NULL, -1), 1);
            continue;
        }
        at += (size_t)n;
    }
}

/* Streams many times the ring's size each way at once, in chunks of odd
 * sizes and in one write larger than the ring: every byte arrives once,
 * in order, with writers waiting for room and readers sleeping. */
START_TEST(test_ring_streams)
{
    pair p;
    pair_open(&p);
    size_t total = 9 * AH_RING_CAP + 12345;
    stream down = {.r = p.d, .total = total, .chunk = 1000 + 37};
    stream up = {.r = p.c, .total = total, .chunk = AH_RING_CAP * 3 + 11};
    pthread_t td, tu;
    pthread_create(&td, NULL, writer, &down);
    pthread_create(&tu, NULL, writer, &up);
    read_stream(p.c, total); /* the daemon's bytes, at the plugin's end */
    read_stream(p.d, total);
    pthread_join(td, NULL);
    pthread_join(tu, NULL);
    ck_assert_int_eq(down.rc, 0);
    ck_assert_int_eq(up.rc, 0);
    /* Nothing more: a wait with a limit ends with 0. */
    unsigned char b[16];
    ck_assert_int_eq(ah_ring_read(p.c, b, sizeof b), 0);
    ck_assert_int_eq(ah_ring_wait(p.c, NULL, 5), 0);
    /* Only bells went through the socket: nothing aside. */
    char aside[64];
    ck_assert_uint_eq(ah_ring_aside(p.d, aside, sizeof aside), 0);
    pair_close(&p);
}
END_TEST

/* The peer's end of the socket gone: a wait with nothing left says so,
 * after the bytes it wrote first are taken; a writer without room stops
 * waiting; what it wrote to the socket as it died is kept aside. */
START_TEST(test_ring_peer_gone)
{
    pair p;
    pair_open(&p);
    ck_assert_int_eq(ah_ring_write(p.c, "last", 4), 0);
    ck_assert_int_eq(write(p.sv[1], "bb{\"t\":\"oom\"}", 13), 13);
    close(p.sv[1]);
    p.sv[1] = -1;
    char b[8];
    ck_assert_int_eq(ah_ring_wait(p.d, NULL, -1), 1);
    ck_assert_int_eq(ah_ring_read(p.d, b, sizeof b), 4);
    ck_assert_int_eq(memcmp(b, "last", 4), 0);
    ck_assert_int_eq(ah_ring_wait(p.d, NULL, -1), -1);
    ck_assert(!ah_ring_broken(p.d));
    char aside[64];
    size_t n = ah_ring_aside(p.d, aside, sizeof aside);
    ck_assert_uint_eq(n, 11);
    ck_assert_int_eq(memcmp(aside, "{\"t\":\"oom\"}", 11), 0);
    /* Nobody reads the daemon's ring any more: filling it, the write
     * waits for room, finds the peer gone and fails. */
    unsigned char *big = calloc(1, AH_RING_CAP + 1);
    ck_assert_int_eq(ah_ring_write(p.d, big, AH_RING_CAP + 1), -1);
    free(big);
    pair_close(&p);
}
END_TEST

/* The shared words as a peer mapping the memory may scribble on them: an
 * index it could not have written makes a read or a write fail (the
 * ring broken), never a copy out of bounds. */
START_TEST(test_ring_hostile_indices)
{
    pair p;
    pair_open(&p);
    /* The layout (ring.h): the daemon writes the first direction. */
    size_t dir_bytes = AH_RING_DIR_BYTES;
    unsigned char *m = mmap(NULL, 2 * dir_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, p.mfd, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    _Atomic uint64_t *up_w = (_Atomic uint64_t *)(void *)(m + dir_bytes + AH_RING_OFF_W);
    /* The plugin's write index past what the ring holds. */
    atomic_store(up_w, (uint64_t)AH_RING_CAP + 1);
    char b[64];
    ck_assert_int_eq(ah_ring_read(p.d, b, sizeof b), -1);
    ck_assert(ah_ring_broken(p.d));
    ck_assert_int_eq(ah_ring_wait(p.d, NULL, -1), -1);
    /* Behind where it was: as bad (the difference wraps). */
    pair q;
    pair_open(&q);
    unsigned char *m2 = mmap(NULL, 2 * dir_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, q.mfd, 0);
    ck_assert_ptr_ne(m2, MAP_FAILED);
    ck_assert_int_eq(ah_ring_write(q.c, "abc", 3), 0);
    ck_assert_int_eq(ah_ring_read(q.d, b, 2), 2);
    atomic_store((_Atomic uint64_t *)(void *)(m2 + dir_bytes + AH_RING_OFF_W), 1);
    ck_assert_int_eq(ah_ring_read(q.d, b, sizeof b), -1);
    ck_assert(ah_ring_broken(q.d));
    /* The plugin's read index ahead of what the daemon wrote: the
     * daemon's write fails. */
    ck_assert(!ah_ring_broken(p.c));
    ck_assert_int_eq(ah_ring_write(p.d, "x", 1), -1); /* p.d broken above */
    pair w;
    pair_open(&w);
    unsigned char *m3 = mmap(NULL, 2 * dir_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w.mfd, 0);
    ck_assert_ptr_ne(m3, MAP_FAILED);
    ck_assert_int_eq(ah_ring_write(w.d, "x", 1), 0);
    atomic_store((_Atomic uint64_t *)(void *)(m3 + AH_RING_OFF_R), 999);
    ck_assert_int_eq(ah_ring_write(w.d, "y", 1), -1);
    ck_assert(ah_ring_broken(w.d));
    /* Rewound, as new: empty, not broken, both ends from the start. */
    ah_ring_rewind(w.d);
    ah_ring_rewind(w.c);
    ck_assert(!ah_ring_broken(w.d));
    ck_assert_int_eq(ah_ring_read(w.c, b, sizeof b), 0);
    ck_assert_int_eq(ah_ring_write(w.d, "again", 5), 0);
    ck_assert_int_eq(ah_ring_read(w.c, b, sizeof b), 5);
    ck_assert_int_eq(memcmp(b, "again", 5), 0);
    munmap(m3, 2 * dir_bytes);
    pair_close(&w);
    munmap(m2, 2 * dir_bytes);
    pair_close(&q);
    munmap(m, 2 * dir_bytes);
    pair_close(&p);
}
END_TEST

/* A write index moved back, though still within what the ring could hold
 * past the daemon's read index: bytes seen are never taken back. (A peer
 * flipping it between the daemon's index and one past made a reader that
 * had seen a byte find none, and sleep on the socket for good.) */
START_TEST(test_ring_write_index_never_back)
{
    pair p;
    pair_open(&p);
    unsigned char *m = mmap(NULL, 2 * AH_RING_DIR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
                            p.mfd, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    _Atomic uint64_t *up_w = (_Atomic uint64_t *)(void *)(m + AH_RING_DIR_BYTES + AH_RING_OFF_W);
    ck_assert_int_eq(ah_ring_write(p.c, "abcd", 4), 0);
    char b[64];
    ck_assert_int_eq(ah_ring_read(p.d, b, 2), 2); /* saw 4, took 2 */
    atomic_store(up_w, 3);                        /* one byte left, not two */
    ck_assert_int_eq(ah_ring_read(p.d, b, sizeof b), -1);
    ck_assert(ah_ring_broken(p.d));
    ck_assert_int_eq(ah_ring_wait(p.d, NULL, -1), -1);
    munmap(m, 2 * AH_RING_DIR_BYTES);
    pair_close(&p);
}
END_TEST

/* A reader that takes nothing while the ring is full, and lives: a writer
 * with a stall time gives up after it (ah_ring_stalled) rather than wait
 * as long as the peer lives; without one it waits (here until the reader
 * takes bytes). */
static void *write_big(void *arg)
{
    stream *s = arg;
    unsigned char *b = calloc(1, s->total);
    s->rc = ah_ring_write(s->r, b, s->total);
    free(b);
    return NULL;
}

START_TEST(test_ring_writer_not_held_by_a_reader_that_stops)
{
    pair p;
    pair_open(&p);
    ah_ring_set_stall(p.d, 200);
    stream s = {.r = p.d, .total = 2 * AH_RING_CAP};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, write_big, &s), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.rc, -1);
    ck_assert(ah_ring_stalled(p.d));
    ck_assert(!ah_ring_broken(p.d));
    pair_close(&p);

    /* No stall time: the write waits, and ends once the reader reads. */
    pair q;
    pair_open(&q);
    stream w = {.r = q.d, .total = 2 * AH_RING_CAP};
    ck_assert_int_eq(pthread_create(&t, NULL, write_big, &w), 0);
    read_stream_zeros(q.c, 2 * AH_RING_CAP);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert(!ah_ring_stalled(q.d));
    pair_close(&q);
}
END_TEST

/* The memory cannot be made smaller under the daemon (SIGBUS on its next
 * touch): ah_ring_make seals its size, and ah_ring_open takes nothing
 * else. */
START_TEST(test_ring_sealed)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int fd = ah_ring_make();
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(ftruncate(fd, 4096), 0);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_ne(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0); /* sealed for good */
    close(fd);
    /* A memfd of the right size without the seals, a file, nothing. */
    int un = memfd_create("unsealed", MFD_CLOEXEC);
    ck_assert_int_ge(un, 0);
    ck_assert_int_eq(ftruncate(un, 2 * AH_RING_DIR_BYTES), 0);
    ck_assert_ptr_null(ah_ring_open(un, sv[0], true));
    close(un);
    ck_assert_ptr_null(ah_ring_open(sv[1], sv[0], true));
    ck_assert_ptr_null(ah_ring_open(-1, sv[0], true));
    close(sv[0]);
    close(sv[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ring_streams);
    tcase_add_test(tc, test_ring_peer_gone);
    tcase_add_test(tc, test_ring_hostile_indices);
    tcase_add_test(tc, test_ring_sealed);
    tcase_add_test(tc, test_ring_write_index_never_back);
    tcase_add_test(tc, test_ring_writer_not_held_by_a_reader_that_stops);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
