/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A record's normalised fields, stored as what they add to its raw payload
 * (schema v5). A plugin's fields mostly repeat raw's values (and often its
 * keys and punctuation): coded as copies from raw (and from themselves)
 * plus the bytes raw does not have, they take ~65 bytes where their text
 * took ~290 (measured on the ERecruit simulator's records). raw stays plain
 * JSON text, stored once; the fields are derived from raw and that delta on
 * read, byte for byte as the plugin gave them. The outbox codes event bodies
 * the same way against a constant dictionary.
 *
 * The delta is a small LZ77 code with no entropy coding (deflate, tried
 * first, took ~56 bytes but ~4 us a record, a quarter of a first sync's
 * CPU; this takes well under 1 us). Format, version 1:
 *   0x01, then tokens until the end:
 *   0x00..0x7f  n: n+1 literal bytes follow
 *   0x80..0xff  c: a copy of (c & 0x3f) + 4 bytes (4..67) from position p
 *               of the stream "dictionary, then the output so far", p being
 *               one byte, or two (big-endian) when c & 0x40; p is before
 *               the current position (a copy may overlap what it writes).
 *
 * The column `fields` holds either TEXT (as given: rows written before v5's
 * migration packed them, or fields the delta would not make smaller) or a
 * BLOB (the delta). Readers go through ah_sq_fields_text; SQL that looks
 * into fields calls ah_fields(raw, fields), a function registered on every
 * connection this engine opens.
 */
#include "sqlite_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PACK_VERSION 1
#define MIN_MATCH 4
#define MAX_MATCH (0x3f + MIN_MATCH)
#define MAX_STREAM 65536 /* dictionary + text: positions fit two bytes */
#define HASH_BITS 10
#define CHAIN_MAX 16

struct ah_sq_packer {
    uint16_t head[1 << HASH_BITS]; /* position + 1 of the newest 4-gram, 0: none */
    uint16_t prev[MAX_STREAM];     /* the previous position + 1 with the same hash */
    unsigned char *out;
    size_t cap;
    /* ah_sq_fields_pack_const's constant dictionary, hashed once: the
     * tables as they stand after its 4-grams (head whole, prev up to its
     * length). An event body is ~130 bytes against a ~130-byte dictionary:
     * hashing that dictionary again for every body was two thirds of the
     * body's packing. */
    const char *cdict;
    size_t cdict_len;
    uint16_t chead[1 << HASH_BITS];
    uint16_t *cprev;
};

ah_sq_packer *ah_sq_packer_new(void)
{
    return calloc(1, sizeof(ah_sq_packer));
}

void ah_sq_packer_free(ah_sq_packer *p)
{
    if (p == NULL)
        return;
    free(p->out);
    free(p->cprev);
    free(p);
}

static inline unsigned hash4(const unsigned char *q)
{
    uint32_t v;
    memcpy(&v, q, 4);
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

/* How many of the first n bytes of a and b are equal: eight at a time
 * where the byte order lets the first difference be found from the low
 * bits (each position of a record's fields is tried against up to
 * CHAIN_MAX earlier ones, and this was two fifths of the packer's time
 * byte by byte). */
static inline size_t common_len(const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t l = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (l + 8 <= n) {
        uint64_t x, y;
        memcpy(&x, a + l, 8);
        memcpy(&y, b + l, 8);
        if (x != y)
            return l + (size_t)(__builtin_ctzll(x ^ y) >> 3);
        l += 8;
    }
#endif
    while (l < n && a[l] == b[l])
        l++;
    return l;
}

/* The length of the match between position j of the stream "dictionary,
 * then text" and q (in the text), at most left bytes. */
static inline size_t match_len(const unsigned char *d, size_t dl, const unsigned char *t, size_t j,
                               const unsigned char *q, size_t left)
{
    size_t l = 0;
    if (j < dl) {
        size_t in_dict = dl - j < left ? dl - j : left;
        l = common_len(d + j, q, in_dict);
        if (l < in_dict)
            return l;
    }
    return l + common_len(t + (j + l - dl), q + l, left - l);
}

/* The tables for a new stream: empty, then the dictionary's 4-grams (those
 * inside it). */
static void hash_dict(ah_sq_packer *p, const unsigned char *d, size_t dl)
{
    memset(p->head, 0, sizeof p->head);
    for (size_t i = 0; i + MIN_MATCH <= dl; i++) {
        unsigned h = hash4(d + i);
        p->prev[i] = p->head[h];
        p->head[h] = (uint16_t)(i + 1);
    }
}

/* The delta of text against the dictionary whose 4-grams are in p's tables
 * (hash_dict or its copy). */
static int pack_hashed(ah_sq_packer *p, const char *dict, size_t dict_len, const char *text,
                       size_t text_len, const void **out, size_t *out_len)
{
    const unsigned char *d = (const unsigned char *)dict, *t = (const unsigned char *)text;
    size_t dl = dict_len, tl = text_len, total = dl + tl;
    size_t need = 1 + tl + tl / 128 + 2;
    if (need > p->cap) {
        unsigned char *nb = realloc(p->out, need);
        if (nb == NULL)
            return -1;
        p->out = nb;
        p->cap = need;
    }
    unsigned char *o = p->out;
    size_t n = 0;
    o[n++] = PACK_VERSION;
    size_t lit_at = 0, lit_n = 0; /* pending literal run, in text */
    size_t i = dl;                /* position in the stream */
    while (i < total) {
        size_t best = 0, bpos = 0;
        if (total - i >= MIN_MATCH) {
            const unsigned char *q = t + (i - dl);
            unsigned h = hash4(q);
            size_t left = total - i < MAX_MATCH ? total - i : MAX_MATCH;
            int walk = 0;
            for (size_t c = p->head[h]; c != 0 && walk < CHAIN_MAX; c = p->prev[c - 1], walk++) {
                size_t j = c - 1, l = match_len(d, dl, t, j, q, left);
                /* Longest; among equals the one a one-byte position reaches. */
                if (l > best || (l == best && l > 0 && j < 256 && bpos >= 256)) {
                    best = l;
                    bpos = j;
                }
            }
            p->prev[i] = p->head[h];
            p->head[h] = (uint16_t)(i + 1);
        }
        if (best >= MIN_MATCH) {
            if (lit_n > 0) {
                o[n++] = (unsigned char)(lit_n - 1);
                memcpy(o + n, t + lit_at, lit_n);
                n += lit_n;
                lit_n = 0;
            }
            if (n + 3 >= p->cap)
                return -1; /* larger than the text: not worth it (caller keeps text) */
            if (bpos < 256) {
                o[n++] = (unsigned char)(0x80 | (best - MIN_MATCH));
                o[n++] = (unsigned char)bpos;
            } else {
                o[n++] = (unsigned char)(0xc0 | (best - MIN_MATCH));
                o[n++] = (unsigned char)(bpos >> 8);
                o[n++] = (unsigned char)(bpos & 0xff);
            }
            /* The copied positions' 4-grams, for later copies; not when
             * the copy came from the dictionary, which has them at
             * bpos + k already (a later copy from there is as long but
             * for the byte after it: 0.2% larger fields on the ERecruit
             * simulator's records, and a third of the packer's time
             * saved, the tables' updates for every copied byte). */
            for (size_t k = 1; bpos >= dl && k < best && i + k + MIN_MATCH <= total; k++) {
                unsigned h = hash4(t + (i + k - dl));
                p->prev[i + k] = p->head[h];
                p->head[h] = (uint16_t)(i + k + 1);
            }
            i += best;
        } else {
            if (lit_n == 0)
                lit_at = i - dl;
            lit_n++;
            i++;
            if (lit_n == 128) {
                if (n + 1 + lit_n > p->cap)
                    return -1;
                o[n++] = 127;
                memcpy(o + n, t + lit_at, lit_n);
                n += lit_n;
                lit_n = 0;
            }
        }
    }
    if (lit_n > 0) {
        if (n + 1 + lit_n > p->cap)
            return -1;
        o[n++] = (unsigned char)(lit_n - 1);
        memcpy(o + n, t + lit_at, lit_n);
        n += lit_n;
    }
    *out = o;
    *out_len = n;
    return 0;
}

int ah_sq_fields_pack(ah_sq_packer *p, const char *dict, size_t dict_len, const char *text,
                      size_t text_len, const void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (p == NULL || dict_len + text_len >= MAX_STREAM)
        return -1;
    hash_dict(p, (const unsigned char *)dict, dict_len);
    return pack_hashed(p, dict, dict_len, text, text_len, out, out_len);
}

int ah_sq_fields_pack_const(ah_sq_packer *p, const char *dict, size_t dict_len,
                            const char *text, size_t text_len, const void **out,
                            size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (p == NULL || dict_len + text_len >= MAX_STREAM)
        return -1;
    if (p->cdict != dict || p->cdict_len != dict_len) {
        uint16_t *cp = malloc((dict_len ? dict_len : 1) * sizeof *cp);
        if (cp == NULL)
            return -1;
        hash_dict(p, (const unsigned char *)dict, dict_len);
        memcpy(p->chead, p->head, sizeof p->head);
        memcpy(cp, p->prev, dict_len * sizeof *cp);
        free(p->cprev);
        p->cprev = cp;
        p->cdict = dict;
        p->cdict_len = dict_len;
    } else {
        memcpy(p->head, p->chead, sizeof p->head);
        memcpy(p->prev, p->cprev, dict_len * sizeof *p->prev);
    }
    return pack_hashed(p, dict, dict_len, text, text_len, out, out_len);
}

char *ah_sq_fields_unpack(const char *dict, size_t dict_len, const void *delta, size_t delta_len)
{
    const unsigned char *z = delta, *d = (const unsigned char *)dict;
    if (z == NULL || delta_len < 1 || z[0] != PACK_VERSION)
        return NULL;
    /* The text's exact length first: a pass over the tokens alone (a
     * literal run is stepped over), far less than the copy below. Sized by
     * the worst case (MAX_MATCH bytes a token byte), a row's text held ~67
     * times its delta's length for as long as the row was kept. */
    size_t cap = 1, n = 0, k = 1;
    while (k < delta_len) {
        unsigned c = z[k++];
        if (c < 0x80) {
            cap += c + 1;
            k += c + 1;
        } else {
            cap += (c & 0x3f) + MIN_MATCH;
            k += c & 0x40 ? 2 : 1;
        }
    }
    if (k != delta_len)
        return NULL; /* a token runs past the end */
    unsigned char *o = malloc(cap);
    if (o == NULL)
        return NULL;
    k = 1;
    while (k < delta_len) {
        unsigned c = z[k++];
        if (c < 0x80) {
            size_t run = c + 1;
            if (run > delta_len - k)
                goto bad;
            memcpy(o + n, z + k, run);
            n += run;
            k += run;
            continue;
        }
        size_t len = (c & 0x3f) + MIN_MATCH, pos;
        if (c & 0x40) {
            if (delta_len - k < 2)
                goto bad;
            pos = (size_t)z[k] << 8 | z[k + 1];
            k += 2;
        } else {
            if (delta_len - k < 1)
                goto bad;
            pos = z[k++];
        }
        if (pos >= dict_len + n)
            goto bad; /* a copy from beyond what exists */
        for (size_t m = 0; m < len; m++, pos++)
            o[n + m] = pos < dict_len ? d[pos] : o[pos - dict_len];
        n += len;
    }
    o[n] = '\0';
    return (char *)o;
bad:
    free(o);
    return NULL;
}

char *ah_sq_fields_text(sqlite3_stmt *st, int raw_col, int fields_col, bool *oom)
{
    if (sqlite3_column_type(st, fields_col) != SQLITE_BLOB)
        return ah_sq_col_dup(st, fields_col, oom);
    const void *z = sqlite3_column_blob(st, fields_col);
    size_t zl = (size_t)sqlite3_column_bytes(st, fields_col);
    const char *raw = (const char *)sqlite3_column_text(st, raw_col);
    size_t rl = raw != NULL ? (size_t)sqlite3_column_bytes(st, raw_col) : 0;
    char *t = ah_sq_fields_unpack(raw != NULL ? raw : "", rl, z, zl);
    if (t == NULL)
        *oom = true; /* a delta that does not inflate: the row cannot be read */
    return t;
}

/* --- SQL functions ------------------------------------------------------ */

/* ah_fields(raw, fields): the fields as text, whichever form is stored. */
static void sql_fields(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[1]) != SQLITE_BLOB) {
        sqlite3_result_value(ctx, argv[1]);
        return;
    }
    const char *raw = (const char *)sqlite3_value_text(argv[0]);
    size_t rl = raw != NULL ? (size_t)sqlite3_value_bytes(argv[0]) : 0;
    const void *z = sqlite3_value_blob(argv[1]);
    size_t zl = (size_t)sqlite3_value_bytes(argv[1]);
    char *t = ah_sq_fields_unpack(raw != NULL ? raw : "", rl, z, zl);
    if (t == NULL) {
        sqlite3_result_error(ctx, "ah_fields: the stored fields do not unpack", -1);
        return;
    }
    sqlite3_result_text(ctx, t, -1, free);
}

/* ah_fields_pack(raw, fields): the form v5 stores (the migration). */
static void sql_fields_pack(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
        sqlite3_result_value(ctx, argv[1]);
        return;
    }
    ah_sq_packer *p = sqlite3_user_data(ctx);
    const char *raw = (const char *)sqlite3_value_text(argv[0]);
    size_t rl = raw != NULL ? (size_t)sqlite3_value_bytes(argv[0]) : 0;
    const char *f = (const char *)sqlite3_value_text(argv[1]);
    size_t fl = (size_t)sqlite3_value_bytes(argv[1]);
    const void *z = NULL;
    size_t zl = 0;
    if (f == NULL || ah_sq_fields_pack(p, raw != NULL ? raw : "", rl, f, fl, &z, &zl) != 0 ||
        zl >= fl)
        sqlite3_result_value(ctx, argv[1]);
    else
        sqlite3_result_blob(ctx, z, (int)zl, SQLITE_TRANSIENT);
}

int ah_sq_fields_register(sqlite3 *db, ah_sq_packer *p)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    if (sqlite3_create_function(db, "ah_fields", 2, flags, NULL, sql_fields, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_create_function(db, "ah_fields_pack", 2, flags, p, sql_fields_pack, NULL,
                                NULL) != SQLITE_OK)
        return -1;
    return 0;
}
