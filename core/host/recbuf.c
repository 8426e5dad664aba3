/* SPDX-License-Identifier: Apache-2.0 */
/* A page of streamed records as text (recbuf.h). */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "recbuf.h"

#define NO_STR UINT32_MAX

typedef struct ent {
    uint32_t type, remote_id, updated_at, raw, fields; /* offsets; NO_STR: NULL */
} ent;

struct ah_recbuf {
    char *buf;
    size_t len, cap;
    ent *v;
    size_t n, capn;
};

ah_recbuf *ah_recbuf_new(void)
{
    return calloc(1, sizeof(ah_recbuf));
}

void ah_recbuf_free(ah_recbuf *b)
{
    if (b == NULL)
        return;
    free(b->buf);
    free(b->v);
    free(b);
}

void ah_recbuf_free_v(void *b)
{
    ah_recbuf_free(b);
}

void ah_recbuf_clear(ah_recbuf *b)
{
    b->len = 0;
    b->n = 0;
}

static int reserve(ah_recbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 16384;
    while (nc < b->len + more)
        nc *= 2;
    if (nc > UINT32_MAX)
        return -1; /* offsets are 32-bit: a page is far smaller */
    char *nb = realloc(b->buf, nc);
    if (nb == NULL)
        return -1;
    b->buf = nb;
    b->cap = nc;
    return 0;
}

/* Copies s (n bytes) and a NUL; returns its offset. Space reserved. */
static uint32_t put(ah_recbuf *b, const char *s, size_t n)
{
    if (s == NULL)
        return NO_STR;
    uint32_t at = (uint32_t)b->len;
    memcpy(b->buf + b->len, s, n);
    b->buf[b->len + n] = '\0';
    b->len += n + 1;
    return at;
}

int ah_recbuf_add(ah_recbuf *b, const char *type, const char *remote_id,
                  const char *updated_at, const char *raw, size_t raw_len,
                  const char *fields, size_t fields_len)
{
    if (type == NULL || remote_id == NULL || raw == NULL || fields == NULL)
        return -1;
    size_t tl = strlen(type), rl = strlen(remote_id);
    size_t ul = updated_at != NULL ? strlen(updated_at) : 0;
    if (b->n == b->capn) {
        size_t nc = b->capn ? b->capn * 2 : 128;
        ent *nv = realloc(b->v, nc * sizeof *nv);
        if (nv == NULL)
            return -1;
        b->v = nv;
        b->capn = nc;
    }
    if (reserve(b, tl + rl + ul + raw_len + fields_len + 5) != 0)
        return -1;
    ent *e = &b->v[b->n++];
    e->type = put(b, type, tl);
    e->remote_id = put(b, remote_id, rl);
    e->updated_at = put(b, updated_at, ul);
    e->raw = put(b, raw, raw_len);
    e->fields = put(b, fields, fields_len);
    return 0;
}

size_t ah_recbuf_count(const ah_recbuf *b)
{
    return b != NULL ? b->n : 0;
}

size_t ah_recbuf_bytes(const ah_recbuf *b)
{
    return b != NULL ? b->len : 0;
}

static const char *str_at(const ah_recbuf *b, uint32_t off)
{
    return off == NO_STR ? NULL : b->buf + off;
}

void ah_recbuf_get(const ah_recbuf *b, size_t i, ah_recbuf_rec *out)
{
    const ent *e = &b->v[i];
    out->type = str_at(b, e->type);
    out->remote_id = str_at(b, e->remote_id);
    out->updated_at = str_at(b, e->updated_at);
    out->raw = str_at(b, e->raw);
    out->fields = str_at(b, e->fields);
}

cJSON *ah_recbuf_to_json(const ah_recbuf *b)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && b != NULL && i < b->n; i++) {
        ah_recbuf_rec r;
        ah_recbuf_get(b, i, &r);
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON *raw = cJSON_Parse(r.raw), *fields = cJSON_Parse(r.fields);
        bool ok = cJSON_AddStringToObject(o, "type", r.type) != NULL &&
                  cJSON_AddStringToObject(o, "remote_id", r.remote_id) != NULL &&
                  (r.updated_at == NULL ||
                   cJSON_AddStringToObject(o, "updated_at", r.updated_at) != NULL);
        ok = ok && raw != NULL && cJSON_AddItemToObject(o, "raw", raw);
        if (!ok || raw == NULL) {
            cJSON_Delete(raw);
            cJSON_Delete(fields);
            cJSON_Delete(arr);
            return NULL;
        }
        if (fields == NULL || !cJSON_AddItemToObject(o, "fields", fields)) {
            cJSON_Delete(fields);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* --- a JSON checker that builds nothing ----------------------------------- */

typedef struct scan {
    const char *p, *end;
} scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool lit(scan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* The value of four hex digits, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* A \u escape at p (s->end bounds it): one code unit, or a surrogate
 * pair; its length, or 0. The grammar allows a lone surrogate, but
 * cJSON, which reads every stored record back, refuses one: such a record
 * would be served as null, so it is refused when emitted. */
static size_t unicode_escape(const scan *s, const char *p)
{
    long hi = s->end - p >= 6 ? hex4(p + 2) : -1;
    if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
        return 0;
    if (hi < 0xD800 || hi > 0xDBFF)
        return 6;
    long lo = s->end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
    return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : 0;
}

/* The bytes of v (eight of a string, in memory order) that are '"', '\\'
 * or below 0x20, each as its high bit; the lowest one set is the first
 * such byte (the usual has-zero-byte and has-less-than tests: a false
 * mark only ever follows a true one). A first sync checks every record's
 * raw and fields text; byte by byte its strings were 8% of the daemon. */
static inline uint64_t specials8(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & highs;
}

static bool string(scan *s)
{
    s->p++; /* the opening quote */
    while (s->p < s->end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (s->end - s->p >= 8) {
            uint64_t v;
            memcpy(&v, s->p, 8);
            uint64_t m = specials8(v);
            if (m == 0) {
                s->p += 8;
                continue;
            }
            s->p += __builtin_ctzll(m) >> 3; /* to the first one, read below */
        }
#endif
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (s->end - s->p < 2)
                return false;
            char e = s->p[1];
            if (e == 'u') {
                size_t n = unicode_escape(s, s->p);
                if (n == 0)
                    return false;
                s->p += n;
                continue;
            }
            if (strchr("\"\\/bfnrt", e) == NULL || e == '\0')
                return false;
            s->p += 2;
            continue;
        }
        s->p++;
    }
    return false;
}

static bool digits(scan *s)
{
    const char *st = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > st;
}

static bool number(scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!digits(s))
        return false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digits(s))
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!digits(s))
            return false;
    }
    return true;
}

static bool value(scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end || depth > 256)
        return false;
    switch (*s->p) {
    case '"':
        return string(s);
    case '{':
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return true;
        }
        for (;;) {
            ws(s);
            if (s->p >= s->end || *s->p != '"' || !string(s))
                return false;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return false;
            s->p++;
            if (!value(s, depth + 1))
                return false;
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == '}') {
                s->p++;
                return true;
            }
            return false;
        }
    case '[':
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return true;
        }
        for (;;) {
            if (!value(s, depth + 1))
                return false;
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                return true;
            }
            return false;
        }
    case 't':
        return lit(s, "true");
    case 'f':
        return lit(s, "false");
    case 'n':
        return lit(s, "null");
    default:
        return number(s);
    }
}

bool ah_json_valid(const char *text, size_t len)
{
    if (text == NULL)
        return false;
    scan s = {text, text + len};
    if (!value(&s, 0))
        return false;
    ws(&s);
    return s.p == s.end;
}
