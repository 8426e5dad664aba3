/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frames a plugin process sends the daemon (core/plugin/frame.c, read
 * by isolate.c): the input is the whole stream, read through the buffered
 * reader until it refuses or the stream ends. Asserted for every frame it
 * gives: a JSON object; a tail only with its length and a NUL after it;
 * ah_frame_buffered true before a read that then does not need the peer
 * (the stream is whole, so a false one could only be followed by the end);
 * and the frame sent again (ah_frame_append) reads back the same. A refusal
 * other than the end of the stream must set the reader's `broken`.
 */

#include <cjson/cJSON.h>

#include "frame.h"
#include "fuzz.h"

static void fail(const char *what)
{
    fuzz_fail("fuzz_frame", what);
}

/* A reader that holds the whole stream already (a copy of the bytes, in
 * its own malloc'd buffer) and whose descriptor is none: a read it needs
 * then fails as at the end of the stream, without a pipe per input. */
static void reader_of(ah_frame_reader *r, const void *data, size_t size)
{
    ah_frame_reader_reset(r, -1);
    r->buf = malloc(size > 0 ? size : 1);
    if (r->buf == NULL)
        fail("out of memory");
    if (size > 0)
        memcpy(r->buf, data, size);
    r->cap = size > 0 ? size : 1;
    r->start = 0;
    r->end = size;
}

/* m sent as a frame (with its tail) and read back: equal. */
static void round_trip(const cJSON *m, const unsigned char *tail, size_t tail_len)
{
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    if (ah_frame_append(&buf, &len, &cap, m, tail, tail_len) != 0)
        return; /* too large for a frame once printed: refused, not sent */
    ah_frame_reader r = {0};
    reader_of(&r, buf, len);
    free(buf);
    cJSON *back = NULL;
    unsigned char *t2 = NULL;
    size_t t2_len = 0;
    if (ah_frame_read_tail(&r, &back, &t2, &t2_len) != 0)
        fail("a frame the writer made is refused");
    /* As text: cJSON_Compare looks members up by name, which an object
     * with a name twice (JSON allows it) defeats. */
    char *a = cJSON_PrintUnformatted(m), *b = cJSON_PrintUnformatted(back);
    if (a == NULL || b == NULL)
        fail("out of memory");
    if (strcmp(a, b) != 0)
        fail("a frame reads back different");
    free(a);
    free(b);
    if (t2_len != tail_len || (tail_len > 0 && memcmp(t2, tail, tail_len) != 0))
        fail("a tail reads back different");
    cJSON_Delete(back);
    free(t2);
    ah_frame_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ah_frame_reader r = {0};
    reader_of(&r, data, size);
    for (;;) {
        bool ready = ah_frame_buffered(&r);
        cJSON *m = NULL;
        unsigned char *tail = NULL;
        size_t tail_len = 0;
        if (ah_frame_read_tail(&r, &m, &tail, &tail_len) != 0) {
            if (m != NULL || tail != NULL)
                fail("a refused frame handed out");
            if (!r.broken) {
                /* The end of the stream: only a frame cut short is left. */
                if (ready)
                    fail("a frame said buffered, then the stream's end");
                size_t left = r.end - r.start;
                if (left >= 4) {
                    const unsigned char *h = r.buf + r.start;
                    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                                   (uint32_t)h[2] << 8 | h[3];
                    if (len == 0 || len > AH_FRAME_MAX || left - 4 >= len)
                        fail("a whole frame, or a bad length, left unread at the end");
                }
            }
            break;
        }
        if (!cJSON_IsObject(m))
            fail("a frame that is no object");
        if ((tail == NULL) != (tail_len == 0) || (tail != NULL && tail[tail_len] != '\0'))
            fail("a tail without its length or its NUL");
        round_trip(m, tail, tail_len);
        cJSON_Delete(m);
        free(tail);
    }
    ah_frame_reader_free(&r);
    return 0;
}
