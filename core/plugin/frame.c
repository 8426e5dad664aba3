/* SPDX-License-Identifier: Apache-2.0 */
/* Length-prefixed JSON frames over a stream socket (frame.h). */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "ring.h"

#include "crypto.h"

#include <atshub/util.h>

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The JSON values t makes at most (cJSON nodes, counted before it is
 * parsed): one, and one more at each ',', '[' and '{' outside strings. */
static size_t json_nodes(const unsigned char *t, size_t n)
{
    size_t nodes = 1, i = 0;
    while (i < n) {
        unsigned char c = t[i++];
        if (c == ',' || c == '[' || c == '{') {
            nodes++;
        } else if (c == '"') {
            /* To the quote that ends the string: one after an even run
             * of backslashes. */
            for (;;) {
                const unsigned char *q = memchr(t + i, '"', n - i);
                if (q == NULL)
                    return nodes;
                size_t j = (size_t)(q - t), k = j;
                while (k > i && t[k - 1] == '\\')
                    k--;
                i = j + 1;
                if (((j - k) & 1) == 0)
                    break;
            }
        }
    }
    return nodes;
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int ah_frame_send(int fd, const cJSON *msg)
{
    return ah_frame_send_tail(fd, msg, NULL, 0);
}

int ah_frame_send_tail(int fd, const cJSON *msg, const void *tail, size_t tail_len)
{
    return ah_frame_send_via(fd, NULL, msg, tail, tail_len);
}

int ah_frame_send_via(int fd, struct ah_ring *ring, const cJSON *msg, const void *tail,
                      size_t tail_len)
{
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    /* One buffer, one send: small frames leave in one segment. */
    int rc = ah_frame_append(&buf, &len, &cap, msg, tail, tail_len);
    if (rc == 0)
        rc = ah_frame_put(fd, ring, buf, len);
    free(buf);
    return rc;
}

int ah_frame_append(unsigned char **buf, size_t *len, size_t *cap, const cJSON *msg,
                    const void *tail, size_t tail_len)
{
    char *text = cJSON_PrintUnformatted(msg);
    if (text == NULL)
        return -1;
    size_t tl = strlen(text);
    /* The tail follows the text after a NUL, which JSON text never holds. */
    size_t total = tl + (tail_len > 0 ? 1 + tail_len : 0);
    if (total > AH_FRAME_MAX || total < tl) {
        free(text);
        return AH_FRAME_TOO_LARGE;
    }
    if (*cap - *len < total + 4) {
        size_t ncap = *cap > 0 ? *cap : 256;
        while (ncap - *len < total + 4)
            ncap *= 2;
        unsigned char *nb = realloc(*buf, ncap);
        if (nb == NULL) {
            free(text);
            return -1;
        }
        *buf = nb;
        *cap = ncap;
    }
    unsigned char *o = *buf + *len;
    o[0] = (unsigned char)(total >> 24);
    o[1] = (unsigned char)(total >> 16);
    o[2] = (unsigned char)(total >> 8);
    o[3] = (unsigned char)total;
    memcpy(o + 4, text, tl);
    free(text);
    if (tail_len > 0) {
        o[4 + tl] = '\0';
        memcpy(o + 5 + tl, tail, tail_len);
    }
    *len += total + 4;
    return 0;
}

int ah_frame_write(int fd, const void *buf, size_t len)
{
    return write_all(fd, buf, len);
}

int ah_frame_put(int fd, struct ah_ring *ring, const void *buf, size_t len)
{
    return ring != NULL ? ah_ring_write(ring, buf, len) : write_all(fd, buf, len);
}

int ah_frame_recv(int fd, cJSON **msg)
{
    unsigned char h[4];
    *msg = NULL;
    if (read_all(fd, h, 4) != 0)
        return -1;
    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len == 0 || len > AH_FRAME_MAX)
        return -1;
    char *text = malloc((size_t)len + 1);
    if (text == NULL)
        return -1;
    if (read_all(fd, (unsigned char *)text, len) != 0) {
        free(text);
        return -1;
    }
    text[len] = '\0';
    cJSON *m = cJSON_ParseWithLength(text, len);
    free(text);
    if (m == NULL || !cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return -1;
    }
    *msg = m;
    return 0;
}

/* The buffer's starting size; one larger than this after a big frame is
 * given back once it is empty, so that one large frame does not keep a
 * process's memory high. */
#define READER_CAP 65536

void ah_frame_reader_reset(ah_frame_reader *r, int fd)
{
    r->fd = fd;
    r->ring = NULL;
    r->start = r->end = 0;
    r->broken = false;
    r->stalled = false;
}

bool ah_frame_reader_ring(ah_frame_reader *r, struct ah_ring *ring)
{
    if (r->end != r->start)
        return false;
    r->ring = ring;
    return true;
}

void ah_frame_reader_free(ah_frame_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

static uint32_t frame_len(const unsigned char *h)
{
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

bool ah_frame_buffered(const ah_frame_reader *r)
{
    size_t have = r->end - r->start;
    if (have < 4)
        return false;
    uint32_t len = frame_len(r->buf + r->start);
    /* A bad length is "ready" too: the read refuses it at once. */
    return len == 0 || len > AH_FRAME_MAX || have - 4 >= len;
}

int ah_frame_read(ah_frame_reader *r, cJSON **msg)
{
    return ah_frame_read_tail(r, msg, NULL, NULL);
}

int ah_frame_read_tail(ah_frame_reader *r, cJSON **msg, unsigned char **tail, size_t *tail_len)
{
    *msg = NULL;
    if (tail != NULL) {
        *tail = NULL;
        *tail_len = 0;
    }
    int64_t stall_until = 0; /* when the frame begun must be whole (stall_ms) */
    for (;;) {
        size_t have = r->end - r->start, need = 4;
        if (have >= 4) {
            uint32_t len = frame_len(r->buf + r->start);
            if (len == 0 || len > AH_FRAME_MAX) {
                r->broken = true;
                return -1;
            }
            need = 4 + (size_t)len;
            if (have >= need) {
                const unsigned char *text = r->buf + r->start + 4;
                const unsigned char *nul = memchr(text, '\0', len);
                size_t tl = nul != NULL ? (size_t)(nul - text) : len;
                unsigned char *t = NULL;
                size_t tn = nul != NULL ? len - tl - 1 : 0;
                /* A tail where none is expected, or an empty one, is a
                 * protocol error; so is text that would make more values
                 * than a frame may (its tree many times its bytes). */
                size_t nodes = r->nodes_max > 0 ? json_nodes(text, tl) : 0;
                bool bad = (nul != NULL && (tail == NULL || tn == 0)) ||
                           (r->nodes_max > 0 && nodes > r->nodes_max);
                if (!bad && tn > 0 && (t = malloc(tn + 1)) == NULL)
                    bad = true;
                if (t != NULL) {
                    memcpy(t, nul + 1, tn);
                    t[tn] = '\0';
                }
                cJSON *m = bad ? NULL : cJSON_ParseWithLength((const char *)text, tl);
                r->start += need;
                if (r->start == r->end) {
                    r->start = r->end = 0;
                    if (r->cap > READER_CAP) {
                        free(r->buf);
                        r->buf = NULL;
                        r->cap = 0;
                    }
                }
                if (m == NULL || !cJSON_IsObject(m)) {
                    /* (Out of memory for the tail or the tree is taken
                     * for the peer's fault too: both end the peer.) */
                    r->broken = true;
                    cJSON_Delete(m);
                    free(t);
                    return -1;
                }
                *msg = m;
                r->last_len = need;
                r->last_nodes = nodes;
                if (tail != NULL) {
                    *tail = t;
                    *tail_len = tn;
                }
                return 0;
            }
        }
        /* Room for the rest of this frame at least. */
        if (r->start > 0 && r->cap - r->start < need) {
            memmove(r->buf, r->buf + r->start, have);
            r->start = 0;
            r->end = have;
        }
        if (r->cap - r->start < need || r->buf == NULL) {
            size_t cap = need > READER_CAP ? need : READER_CAP;
            unsigned char *nb = realloc(r->buf, cap);
            if (nb == NULL)
                return -1;
            r->buf = nb;
            r->cap = cap;
        }
        if (r->stall_ms > 0 && have > 0) {
            /* Mid-frame: the whole frame within stall_ms of its first
             * bytes here (not each read: a byte now and then would do),
             * or the peer is broken. */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t t = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
            if (stall_until == 0)
                stall_until = t + r->stall_ms;
            struct pollfd pf = {.fd = r->fd, .events = POLLIN};
            int pr = t >= stall_until ? 0
                     : r->ring != NULL ? ah_ring_wait(r->ring, NULL, (int)(stall_until - t))
                                       : poll(&pf, 1, (int)(stall_until - t));
            if (pr < 0 && r->ring == NULL && errno == EINTR)
                continue;
            if (pr == 0) {
                r->broken = r->stalled = true;
                return -1;
            }
        }
        if (r->ring != NULL) {
            ssize_t n = ah_ring_read(r->ring, r->buf + r->end, r->cap - r->end);
            /* Called with bytes come (or to come), so a wait is short:
             * bounded all the same, by stall_ms, whatever the peer does. */
            if (n == 0 && (n = ah_ring_wait(r->ring, NULL, r->stall_ms > 0 ? r->stall_ms : -1)) > 0)
                continue;
            if (n == 0) {
                r->broken = r->stalled = true;
                return -1;
            }
            if (n < 0) {
                r->broken = ah_ring_broken(r->ring);
                return -1;
            }
            r->end += (size_t)n;
            continue;
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r->end += (size_t)n;
    }
}

cJSON *ah_frame_int(long long v)
{
    char d[AH_INT_TEXT_MAX];
    ah_int_text(v, d);
    return cJSON_CreateRaw(d);
}

bool ah_frame_add_int(cJSON *obj, const char *key, long long v)
{
    cJSON *n = ah_frame_int(v);
    if (n == NULL || !cJSON_AddItemToObject(obj, key, n)) {
        cJSON_Delete(n);
        return false;
    }
    return true;
}

int ah_frame_put_bytes(cJSON *obj, const char *key, const char *data, size_t len)
{
    if (data == NULL)
        return 0;
    if (memchr(data, '\0', len) == NULL) {
        char *copy = strndup(data, len);
        if (copy == NULL)
            return -1;
        cJSON *s = cJSON_CreateString(copy);
        free(copy);
        return s != NULL && cJSON_AddItemToObject(obj, key, s) ? 0 : -1;
    }
    char *out = ah_base64_encode(data, len);
    if (out == NULL)
        return -1;
    char name[80];
    snprintf(name, sizeof name, "%s_b64", key);
    cJSON *s = cJSON_CreateString(out);
    free(out);
    return s != NULL && cJSON_AddItemToObject(obj, name, s) ? 0 : -1;
}

int ah_frame_get_bytes(const cJSON *obj, const char *key, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(s)) {
        *len = strlen(s->valuestring);
        *out = strdup(s->valuestring);
        return *out != NULL ? 0 : -1;
    }
    char name[80];
    snprintf(name, sizeof name, "%s_b64", key);
    s = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(s))
        return 0;
    size_t n = 0;
    unsigned char *buf = ah_base64_decode(s->valuestring, &n);
    if (buf == NULL)
        return -1;
    *out = (char *)buf;
    *len = n;
    return 0;
}

