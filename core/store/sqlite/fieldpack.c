/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A record's normalised fields, stored as what they add to its raw payload
 * (schema v5). A plugin's fields mostly repeat raw's values (and often its
 * keys): compressed with raw itself as the preset dictionary (raw deflate,
 * RFC 1951, zlib's deflateSetDictionary) they take ~56 bytes where their
 * text took ~290 (measured on the ERecruit simulator's records). raw stays
 * plain JSON text, stored once; the fields are derived from raw and that
 * delta on read, byte for byte as the plugin gave them.
 *
 * The column `fields` holds either TEXT (as given: rows written before v5's
 * migration packed them, or fields the delta would not make smaller) or a
 * BLOB (the delta). Readers go through ah_sq_fields_text; SQL that looks
 * into fields calls ah_fields(raw, fields), a function registered on every
 * connection this engine opens.
 */
#include "sqlite_int.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Small hash tables (memLevel 1): resetting the stream for each record
 * then costs little, and records are far smaller than what a larger table
 * would find more matches in (measured: the same 56 bytes). */
#define PACK_LEVEL 6
#define PACK_MEMLEVEL 1
#define PACK_WBITS (-15) /* raw deflate, 32 KiB window */

struct ah_sq_packer {
    z_stream zs;
    bool ready;
    unsigned char *out;
    size_t cap;
};

ah_sq_packer *ah_sq_packer_new(void)
{
    ah_sq_packer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (deflateInit2(&p->zs, PACK_LEVEL, Z_DEFLATED, PACK_WBITS, PACK_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(p);
        return NULL;
    }
    p->ready = true;
    return p;
}

void ah_sq_packer_free(ah_sq_packer *p)
{
    if (p == NULL)
        return;
    if (p->ready)
        deflateEnd(&p->zs);
    free(p->out);
    free(p);
}

int ah_sq_fields_pack(ah_sq_packer *p, const char *raw, size_t raw_len, const char *fields,
                      size_t fields_len, const void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (p == NULL || !p->ready || fields_len > UINT32_MAX || raw_len > UINT32_MAX)
        return -1;
    size_t bound = deflateBound(&p->zs, (uLong)fields_len) + 16;
    if (bound > p->cap) {
        unsigned char *nb = realloc(p->out, bound);
        if (nb == NULL)
            return -1;
        p->out = nb;
        p->cap = bound;
    }
    if (deflateReset(&p->zs) != Z_OK)
        return -1;
    if (raw_len > 0 &&
        deflateSetDictionary(&p->zs, (const Bytef *)raw, (uInt)raw_len) != Z_OK)
        return -1;
    p->zs.next_in = (Bytef *)fields;
    p->zs.avail_in = (uInt)fields_len;
    p->zs.next_out = p->out;
    p->zs.avail_out = (uInt)p->cap;
    if (deflate(&p->zs, Z_FINISH) != Z_STREAM_END)
        return -1;
    *out = p->out;
    *out_len = p->cap - p->zs.avail_out;
    return 0;
}

char *ah_sq_fields_unpack(const char *raw, size_t raw_len, const void *delta, size_t delta_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (delta_len > UINT32_MAX || raw_len > UINT32_MAX ||
        inflateInit2(&zs, PACK_WBITS) != Z_OK)
        return NULL;
    size_t cap = delta_len * 8 + 256, len = 0;
    char *out = malloc(cap);
    bool ok = out != NULL;
    /* Raw deflate takes its dictionary before the first byte. */
    if (ok && raw_len > 0 && inflateSetDictionary(&zs, (const Bytef *)raw, (uInt)raw_len) != Z_OK)
        ok = false;
    zs.next_in = (Bytef *)delta;
    zs.avail_in = (uInt)delta_len;
    int rc = Z_OK;
    while (ok && rc != Z_STREAM_END) {
        if (cap - len < 2) {
            char *nb = cap < (SIZE_MAX / 2) ? realloc(out, cap * 2) : NULL;
            if (nb == NULL) {
                ok = false;
                break;
            }
            out = nb;
            cap *= 2;
        }
        zs.next_out = (Bytef *)out + len;
        zs.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - 1 - zs.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END)
            ok = false;
        else if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out > 0)
            ok = false; /* truncated delta */
    }
    inflateEnd(&zs);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
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
    if (f == NULL || ah_sq_fields_pack(p, raw != NULL ? raw : "", rl, f, fl, &z, &zl) != 0) {
        sqlite3_result_error(ctx, "ah_fields_pack: cannot pack", -1);
        return;
    }
    if (zl >= fl)
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
